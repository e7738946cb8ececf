# shellcheck shell=bash
# bench/common.sh: what the benchmark scripts (run.sh, io.sh) share; sourced
# first thing.  It sources tests/lib.sh (ROOT, LC_ALL=C; need, ort_node,
# json_fields).  The functions use the scripts' OUT and BNFOLD; NAME is the
# prefix of their messages.

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"

# bench_paths VAR...: the variables given in the environment as relative paths
# become absolute ones, relative to where the script was started
bench_paths() {
  local v
  for v in "$@"; do
    if [[ -n "${!v:-}" && "${!v}" != /* ]]; then printf -v "$v" '%s/%s' "$PWD" "${!v}"; fi
  done
}

# bench_tools NAME: /usr/bin/time and onnxruntime-node (installed when missing,
# as the README's commands do); sets NODE (from the environment, else
# /usr/bin/node, else node), exports NODE_PATH, sets ort_version.
bench_tools() {
  need "$1" time test -x /usr/bin/time
  ort_node "$1"
}

# bench_snapshot: BNFOLD becomes a private copy in OUT, so that a concurrent
# `make all` cannot swap the binary mid-run (BNFOLD_SRC keeps the original).
bench_snapshot() {
  mkdir -p "$OUT"
  BNFOLD_SRC="$BNFOLD"
  BNFOLD="$OUT/bnfold.snapshot"
  cp "$BNFOLD_SRC" "$BNFOLD.tmp" && mv -f "$BNFOLD.tmp" "$BNFOLD"
}

# bench_machine: what both reports say of the machine: cpu_model, hyp
# (", virtual machine" or nothing), mem_gb (GiB), commit and dirty (the
# repository's); the list machine starts with the date.
# shellcheck disable=SC2034 # used by the script that sources this file
bench_machine() {
  cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//' || true)
  hyp=""
  if grep -qw hypervisor /proc/cpuinfo; then hyp=", virtual machine"; fi
  mem_gb=$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=""
  if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ]]; then
    dirty=" (+ uncommitted changes)"
  fi
  machine=("date: $(date -u '+%Y-%m-%d %H:%M UTC')")
}

# bench_results TITLE: writes OUT/results.md, "Machine:" with the lines of
# machine, the text on stdin, and the problems (a list) under TITLE; shows it.
# Status 1 when a measurement failed (n_fail > 0).
# shellcheck disable=SC2154 # problems and n_fail are the sourcing script's
bench_results() {
  local l
  {
    echo "Machine:"
    echo
    for l in "${machine[@]}"; do echo "- $l"; done
    echo
    cat
    if [[ ${#problems[@]} -gt 0 ]]; then
      echo
      echo "$1"
      echo
      for l in "${problems[@]}"; do echo "- $l"; done
    fi
  } >"$OUT/results.md"
  echo
  cat "$OUT/results.md"
  [[ $n_fail -eq 0 ]]
}

# cpu_busy: busy CPU time of the whole machine so far, in seconds (from /proc/stat)
cpu_busy() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit}' /proc/stat
}

# wait_idle SECONDS: with SECONDS > 0, wait until the machine was idle for 2 s
# (other processes under 5% of the CPUs), or SECONDS have passed
wait_idle() {
  local limit=${1:-0} start b0 b1 ncpu
  [[ "$limit" =~ ^[0-9]+$ ]] && (( limit > 0 )) || return 0
  start=$(date +%s) ncpu=$(nproc)
  while (( $(date +%s) - start < limit )); do
    b0=$(cpu_busy); sleep 2; b1=$(cpu_busy)
    awk -v a="$b0" -v b="$b1" -v n="$ncpu" 'BEGIN {exit !((b - a) < 0.05 * 2 * n)}' && return 0
  done
  return 0
}

# median V...: element floor(n/2) of the sorted values (the middle one, or the
# upper of the two), n/a when none is given or one is n/a
median() {
  local v
  (( $# > 0 )) || { echo n/a; return; }
  for v in "$@"; do [[ "$v" == n/a ]] && { echo n/a; return; }; done
  printf '%s\n' "$@" | sort -g | awk '{v[NR - 1] = $1} END {print v[int(NR / 2)]}'
}

# ratio A B: A/B with 2 decimals, or n/a
ratio() {
  if [[ "$1" == n/a || "$2" == n/a ]]; then echo n/a; else
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; fi
}

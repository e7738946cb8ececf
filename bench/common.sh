# shellcheck shell=bash
# bench/common.sh: what the benchmark scripts (run.sh, io.sh) share; sourced,
# after they have set ROOT (and cd'ed there), NODE, NODE_DIR, OUT and BNFOLD.
# NAME is the prefix of their messages.

# bench_tools NAME: /usr/bin/time and onnxruntime-node (installed when missing,
# as the README's commands do); exports NODE_PATH, sets ort_version.
bench_tools() {
  local name=$1 sudo=""
  if [[ ! -x /usr/bin/time ]]; then
    echo "$name: installing time (for /usr/bin/time)"
    [[ "$(id -u)" == 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >/dev/null
  fi
  if [[ ! -f "$NODE_DIR/node_modules/onnxruntime-node/package.json" ]]; then
    echo "$name: installing onnxruntime-node into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --ignore-scripts --no-audit --no-fund --prefix "$NODE_DIR" onnxruntime-node
  fi
  export NODE_PATH="$ROOT/$NODE_DIR/node_modules${NODE_PATH:+:$NODE_PATH}"
  # shellcheck disable=SC2034 # used by the script that sources this file
  ort_version=$("$NODE" -e 'console.log(require("onnxruntime-node/package.json").version)') || {
    echo "$name: onnxruntime-node not usable from $NODE_DIR" >&2; exit 2; }
}

# bench_snapshot: BNFOLD becomes a private copy in OUT, so that a concurrent
# `make all` cannot swap the binary mid-run (BNFOLD_SRC keeps the original).
bench_snapshot() {
  mkdir -p "$OUT"
  BNFOLD_SRC="$BNFOLD"
  BNFOLD="$OUT/bnfold.snapshot"
  cp "$BNFOLD_SRC" "$BNFOLD.tmp" && mv -f "$BNFOLD.tmp" "$BNFOLD"
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

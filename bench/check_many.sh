#!/usr/bin/env bash
# bench/check_many.sh: `bnfold check DIR -j 2` over the torchvision models of
# `make interop` (build/interop, manifest.tsv) next to `cat` of the same files
# to /dev/null, page cache warm (issue 16's target: wall time <= 1.5 x cat;
# peak RSS per process <= 64 MiB + what one model needs).  Not a test: prints
# one table row for bench/README.md ("Checking many models").
#
# Environment (all optional):
#   REPEAT   timed runs of each command (median)          (default 5)
#   JOBS     bnfold's -j                                   (default 2)
#   BNFOLD   the CLI to measure                            (default build/bnfold)
#   INTEROP  the interop folder                            (default build/interop)
set -u
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"
REPEAT=${REPEAT:-5}
JOBS=${JOBS:-2}
BNFOLD=${BNFOLD:-$ROOT/build/bnfold}
INTEROP=${INTEROP:-$ROOT/build/interop}
[ -f "$INTEROP/manifest.tsv" ] || { echo "check_many: no $INTEROP/manifest.tsv: run make interop" >&2; exit 2; }
need check_many time test -x /usr/bin/time

# the set: links to the manifest's models in a folder of their own
SET=$ROOT/build/bench-check-many
rm -rf "$SET" && mkdir -p "$SET"
n=0
while IFS=$'\t' read -r name _; do
    [ -f "$INTEROP/$name.onnx" ] || continue
    ln -s "$INTEROP/$name.onnx" "$SET/$name.onnx"
    n=$((n + 1))
done <"$INTEROP/manifest.tsv"
bytes=$(cat "$SET"/*.onnx | wc -c)
biggest=$(for f in "$SET"/*.onnx; do stat -L -c %s "$f"; done | sort -n | tail -1)

# time_it VAR CMD...: wall seconds of each of REPEAT runs into VAR (sorted),
# peak RSS (KiB, GNU time's %M: the largest of the process and the children it
# waited for) into VAR_rss
time_it() {
    local var=$1 t0 t1 i rss=0 r
    shift
    local -a times=()
    for ((i = 0; i < REPEAT; i++)); do
        cat "$SET"/*.onnx >/dev/null # warm
        t0=$EPOCHREALTIME
        /usr/bin/time -f %M -o "$SET/.time" "$@" >/dev/null 2>&1
        t1=$EPOCHREALTIME
        times+=("$(echo "$t1 - $t0" | bc -l)")
        r=$(tail -1 "$SET/.time")
        [ "$r" -gt "$rss" ] && rss=$r
    done
    printf -v "$var" '%s' "$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$((REPEAT / 2 + 1))p")"
    printf -v "${var}_rss" '%s' "$rss"
}

cat_s=0 check_s=0 check_s_rss=0 # set by time_it
time_it cat_s sh -c "cat '$SET'/*.onnx >/dev/null"
time_it check_s "$BNFOLD" check "$SET" -j "$JOBS" -q
"$BNFOLD" check "$SET" -j "$JOBS" | tail -4 >&2
printf '| %s | %d models, %.0f MiB (largest %.0f MiB) | %d | %.3f | %.3f | %.2f | %.0f |\n' \
    "$(date -u '+%Y-%m-%d %H:%M')" "$n" "$(echo "$bytes / 1048576" | bc -l)" \
    "$(echo "$biggest / 1048576" | bc -l)" "$JOBS" "$cat_s" "$check_s" \
    "$(echo "$check_s / $cat_s" | bc -l)" "$(echo "$check_s_rss / 1024" | bc -l)"

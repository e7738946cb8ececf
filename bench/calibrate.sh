#!/usr/bin/env bash
# bench/calibrate.sh: `bnfold calibrate` of resnet50 on SETS input sets next
# to `bnfold run` of the same model SETS times (issue 19's target: calibrate
# <= SETS x one run + 10%; memory as a verified fold's).  Alternating rounds,
# the median of each; prints one table row for bench/README.md ("Calibration").
#
# Environment (all optional):
#   SETS     calibration sets (default 32), seeded 1 x 3 x 224 x 224 normals
#   ROUNDS   alternating rounds (default 3)
#   BNFOLD   the CLI to measure (default build/bnfold)
#   MODEL    the model (default build/bench/resnet50.onnx, from make bench-eval)
set -u
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SETS=${SETS:-32}
ROUNDS=${ROUNDS:-3}
BNFOLD=${BNFOLD:-$ROOT/build/bnfold}
MODEL=${MODEL:-$ROOT/build/bench/resnet50.onnx}
bench_paths BNFOLD MODEL
[ -f "$MODEL" ] || { echo "calibrate: no $MODEL: run make bench-eval (it exports it)" >&2; exit 2; }
need calibrate time test -x /usr/bin/time

DATA=$ROOT/build/bench-calibrate/data
if [ ! -d "$DATA/set_$(printf %03d $((SETS - 1)))" ]; then
    rm -rf "$DATA" && mkdir -p "$DATA"
    "$PY" - "$DATA" "$SETS" <<'EOF'
import os, sys
import numpy as np
d, n = sys.argv[1], int(sys.argv[2])
for k in range(n):
    os.makedirs("%s/set_%03d" % (d, k))
    x = np.random.default_rng(k).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.save("%s/set_%03d/input.npy" % (d, k), x)
EOF
fi

# one timed run: wall seconds and peak RSS (KiB) appended to the arrays
run_t=() run_m=() cal_t=() cal_m=()
timed() { # ARRAY_T ARRAY_M CMD...
    local -n tt=$1 mm=$2
    shift 2
    /usr/bin/time -f "%e %M" -o "$DATA/../time" "$@" >/dev/null 2>&1 || { echo "calibrate: failed: $*" >&2; exit 1; }
    read -r t m <"$DATA/../time"
    tt+=("$t") mm+=("$m")
}
for ((r = 0; r < ROUNDS; r++)); do
    timed run_t run_m "$BNFOLD" run "$MODEL" --repeat "$SETS" -q
    timed cal_t cal_m "$BNFOLD" calibrate "$MODEL" --data "$DATA" -o "$DATA/../out.onnx" -q
done
median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
rt=$(median "${run_t[@]}") ct=$(median "${cal_t[@]}")
printf '| %s | %s | %d | %.2f | %.2f | %.2f | %.0f | %.0f |\n' "$(date -u '+%Y-%m-%d %H:%M')" \
    "$(basename "$MODEL" .onnx)" "$SETS" "$rt" "$ct" "$(echo "$ct / $rt" | bc -l)" \
    "$(echo "$(median "${run_m[@]}") / 1024" | bc -l)" "$(echo "$(median "${cal_m[@]}") / 1024" | bc -l)"

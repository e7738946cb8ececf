#!/usr/bin/env bash
# tests/calibrate_test.sh BIN: bnfold calibrate (cli/calibrate.c,
# src/calibrate/calibrate.c) against an independent producer:
# testdata/gen_calibrate.py exports a torchvision resnet18 with trained and
# with reset (mean 0, var 1) BN statistics, the calibration sets, and the
# statistics torch finds by the same sequential procedure; calibrate_compare.py
# judges bnfold's output (within 1e-5, the same whatever the batching, outputs
# on held-out inputs closer to the trained model's).  Then what a user meets:
# check --fail-on warning before and after, --fold, --only, --json, and bad
# input (no data, data that does not fit, no BN, a training-mode BN): a clear
# error and no output file.
set -u
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
suite_bin calibrate_test "$@"
suite_tmp calibrate

D=$ROOT/build/calibrate
if [ ! -f "$D/ref.json" ] || [ "$ROOT/testdata/gen_calibrate.py" -nt "$D/ref.json" ]; then
    "$PY" "$ROOT/testdata/gen_calibrate.py" "$D" || { echo "calibrate_test: gen_calibrate.py failed" >&2; exit 2; }
fi

begin "calibrated statistics equal torch's sequential reference, any batching"
expect_exit 0 "$BIN" calibrate "$D/untrained.onnx" --data "$D/data" -o "$W/cal.onnx"
expect_stdout_has "20 BatchNormalization calibrated on 6 input set(s)" "wrote $W/cal.onnx" \
    "health warning BN_UNTRAINED: 20 BN(s) before, 0 after"
expect_exit 0 "$BIN" calibrate "$D/untrained.onnx" --data "$D/data2" -o "$W/cal2.onnx" -q
expect_exit 0 "$PY" "$ROOT/tests/calibrate_compare.py" "$D" "$W/cal.onnx" "$W/cal2.onnx"
sed 's/^/  /' "$OUT"
cp "$W/cal.onnx" "$TMP/cal.onnx"
end

begin "check --fail-on warning: fails on the untrained model, passes once calibrated"
expect_exit 1 "$BIN" check "$D/untrained.onnx" --fail-on warning
expect_stdout_has "BN_UNTRAINED"
expect_exit 0 "$BIN" check "$TMP/cal.onnx" --fail-on warning
end

begin "--fold: calibrated and folded in one step, verified"
expect_exit 0 "$BIN" calibrate "$D/untrained.onnx" --data "$D/data" --batches 2 --fold -o "$W/f.onnx"
expect_stdout_has "2 input set(s)" "folded 20 of 20 BatchNormalization"
expect_exit 0 "$BIN" inspect "$W/f.onnx" --json
assert_json_true "$OUT" "d['summary']['batchnorms'] == 0"
end

begin "--only and --json"
expect_exit 0 "$BIN" calibrate "$D/untrained.onnx" --data "$D/data" --only "/bn1/BatchNormalization" \
    --json -o "$W/o.onnx"
assert_json_true "$OUT" "len(d['batchnorms']) == 1 and d['batchnorms'][0]['name'] == '/bn1/BatchNormalization'"
assert_json_true "$OUT" "d['batchnorms'][0]['var_before']['mean'] == 1.0 and d['batchnorms'][0]['var_after']['mean'] != 1.0"
expect_exit 3 "$BIN" calibrate "$D/untrained.onnx" --data "$D/data" --only nosuch -o "$W/n.onnx"
expect_stderr_has "no BatchNormalization named 'nosuch'"
[ ! -e "$W/n.onnx" ] || fail "an output was written"
end

begin "bad input: a clear error, nothing written"
mkdir -p "$W/empty" "$W/bad/set_0"
"$PY" -c "import numpy as np; np.save('$W/bad/set_0/input.npy', np.zeros((1, 3, 5), np.float32))"
expect_exit 2 "$BIN" calibrate "$D/untrained.onnx" -o "$W/x.onnx"
expect_stderr_has "--data DIR is required"
expect_exit 3 "$BIN" calibrate "$D/untrained.onnx" --data "$W/empty" -o "$W/x.onnx"
expect_stderr_has "no calibration data"
expect_exit 3 "$BIN" calibrate "$D/untrained.onnx" --data "$W/bad" -o "$W/x.onnx"
expect_stderr_has "calibration set 1: input 'input' is float [1, 3, 5]"
expect_exit 3 "$BIN" calibrate "$ROOT/testdata/models/roundtrip_no_bn.onnx" --data "$D/data" -o "$W/x.onnx"
expect_stderr_has "no BatchNormalization"
expect_exit 3 "$BIN" calibrate "$ROOT/testdata/health/training_mode.onnx" --data "$D/data" -o "$W/x.onnx"
expect_stderr_has "training mode"
[ ! -e "$W/x.onnx" ] || fail "an output was written"
end

finish

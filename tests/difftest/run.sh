#!/usr/bin/env bash
# The differential test's entry point for make (tests/difftest/difftest.mk):
# onnxruntime-node found or installed (tests/lib.sh ort_node), then
# tests/difftest/difftest.py with the arguments given.
#
#   bash tests/difftest/run.sh run -n 300 --seed 1 -j 2 [--bnfold BIN]
#   bash tests/difftest/run.sh regress [--bnfold BIN]
#
# Environment: BNFOLD (the binary under test, default build/bnfold), NODE;
# sanitizer settings (ASAN_OPTIONS, UBSAN_OPTIONS) pass through to bnfold.
set -euo pipefail

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"

ort_node difftest
export NODE
echo "difftest: onnxruntime-node $ort_version, python $($PY -c 'import onnx; print("onnx", onnx.__version__)')"
exec "$PY" tests/difftest/difftest.py "$@"

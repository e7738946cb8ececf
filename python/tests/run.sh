#!/usr/bin/env bash
# python/tests/run.sh: the Python package as a user installs it (make python-test).
#
# 1. libbnfold installed into a temporary prefix (`make install PREFIX=...`), the
#    package into a fresh venv by Debian's pip, offline (`pip install --no-index
#    ./python`): it must find that libbnfold (the prefix recorded at build time);
#    then every test of python/tests against it, from outside the source tree.
# 2. The self-contained wheel (`make python-wheel`, libbnfold inside) into a venv
#    without system packages (no numpy, no onnx: standard library only): it must
#    load its own copy of the library and fold, inspect and run.
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac  # the build folder (make passes it absolute)
PY=${PYTHON:-/usr/bin/python3}
T=$B/python-test
rm -rf "$T"
mkdir -p "$T"
unset BNFOLD_LIBRARY LD_LIBRARY_PATH PYTHONPATH

echo "== python: make install PREFIX=$T/prefix; pip install --no-index ./python into a venv"
make -C "$ROOT" --no-print-directory install PREFIX="$T/prefix" >"$T/install.log"
"$PY" -m venv --system-site-packages "$T/venv"
PKG_CONFIG_PATH=$T/prefix/lib/pkgconfig "$T/venv/bin/python" -m pip install -q --no-index \
    --no-cache-dir "$ROOT/python"
cd "$T"
"$T/venv/bin/python" -c "
import bnfold, sys
want = '$T/prefix/lib/'
assert bnfold.library_path.startswith(want), (bnfold.library_path, want)
print('bnfold', bnfold.__version__, 'from', bnfold.__file__, 'on', bnfold.library_path)"

echo "== python: the tests"
start=$(date +%s)
BNFOLD_TEST_REQUIRE_ALL=1 BNFOLD_TEST_INSTALLED=1 \
    "$T/venv/bin/python" -m unittest discover -s "$ROOT/python/tests" -t "$ROOT/python/tests" -v
echo "python tests: $(($(date +%s) - start)) s"

echo "== python: the wheel with libbnfold inside, standard library only"
"$PY" -m venv "$T/venv-wheel"
"$T/venv-wheel/bin/python" -m pip install -q --no-index --no-cache-dir "$B"/wheel/bnfold-*.whl
"$T/venv-wheel/bin/python" - "$ROOT/testdata/demo" <<'PYEOF'
import os, sys
import bnfold
demo = sys.argv[1]
here = os.path.dirname(os.path.abspath(bnfold.__file__))
assert os.path.dirname(bnfold.library_path) == here, (bnfold.library_path, here)
for mod in ("numpy", "onnx"):
    assert mod not in sys.modules, mod
data = open(os.path.join(demo, "mobilenet_v2_tiny.onnx"), "rb").read()
folded, report = bnfold.fold(data)
assert isinstance(folded, bytes) and report.summary.batchnorms_after == 0
assert report.verification.end_to_end.passed
out = bnfold.run(folded, [open(os.path.join(demo, "input_0.pb"), "rb").read()])
assert isinstance(out["logits"], bytes)
print("wheel:", bnfold.library_path, "-", repr(report))
PYEOF
echo "python: all passed"

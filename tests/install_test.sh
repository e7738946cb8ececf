#!/usr/bin/env bash
# install_test.sh: `make install` into a temporary DESTDIR, then build the
# example against the installed copy through pkg-config, run it, check that
# the libraries export bnf_ symbols only, and `make uninstall` removes it all.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TMP=$(mktemp -d /tmp/bnfold-install.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PREFIX=/opt/bnfold-test
D=$TMP/root
passed=0
failed=0
check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@" >"$TMP/out" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $name"
        head -20 "$TMP/out"
    fi
}
command -v pkg-config >/dev/null || { apt-get install -y -qq pkg-config >/dev/null 2>&1 || true; }

check "make install" make --no-print-directory install DESTDIR="$D" PREFIX="$PREFIX"
for f in bin/bnfold lib/libbnfold.a lib/libbnfold.so lib/libbnfold.so.0 lib/libbnfold.so.0.1.0 \
         include/bnfold.h lib/pkgconfig/bnfold.pc; do
    check "installed $f" test -e "$D$PREFIX/$f"
done
check "soname is libbnfold.so.0" bash -c "objdump -p '$D$PREFIX/lib/libbnfold.so.0.1.0' | grep -q 'SONAME *libbnfold.so.0'"
check "shared library exports bnf_ only" bash -c \
    "! nm -D --defined-only '$D$PREFIX/lib/libbnfold.so' | awk '{print \$3}' | grep -v '^bnf_' | grep -q ."
check "static library exports bnf_ only" bash -c \
    "! nm -g --defined-only '$D$PREFIX/lib/libbnfold.a' | awk 'NF==3 {print \$3}' | grep -v '^bnf_' | grep -q ."
export PKG_CONFIG_PATH=$D$PREFIX/lib/pkgconfig
PC="pkg-config --define-variable=prefix=$D$PREFIX"
check "pkg-config knows bnfold" bash -c "$PC --modversion bnfold | grep -qx 0.1.0"
check "example builds (shared)" bash -c "cc examples/fold_model.c \$($PC --cflags --libs bnfold) -o '$TMP/ex'"
check "example runs" bash -c "LD_LIBRARY_PATH='$D$PREFIX/lib' '$TMP/ex' testdata/demo/mobilenet_v2_tiny.onnx '$TMP/out.onnx' | grep -q '52 folded, 0 left'"
check "example builds (static)" bash -c "cc examples/fold_model.c \$($PC --cflags bnfold) '$D$PREFIX/lib/libbnfold.a' \$($PC --libs --static bnfold | sed 's/-lbnfold//') -o '$TMP/ex_static'"
check "static example runs" bash -c "'$TMP/ex_static' testdata/models/conv2d.onnx '$TMP/out2.onnx' | grep -q '1 folded'"
check "installed CLI runs" bash -c "'$D$PREFIX/bin/bnfold' --version | grep -qx 'bnfold 0.1.0'"
check "make uninstall" make --no-print-directory uninstall DESTDIR="$D" PREFIX="$PREFIX"
check "nothing left" bash -c "[ -z \"\$(find '$D' -type f -o -type l)\" ]"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

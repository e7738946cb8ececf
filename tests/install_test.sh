#!/usr/bin/env bash
# install_test.sh: `make install` into a temporary DESTDIR, then build the
# example against the installed copy through pkg-config, run it, check that
# the libraries export bnf_ symbols only, and `make uninstall` removes it all.
set -u

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT" || exit 2
suite_tmp install
need install_test pkg-config command -v pkg-config
PREFIX=/opt/bnfold-test
D=$TMP/root

# expect_ok NAME COMMAND...: a case: COMMAND succeeds (else its output is shown)
expect_ok() {
    begin "$1"
    shift
    "$@" >"$W/out" 2>&1 || { fail "$*"; head -20 "$W/out" >&2; }
    end
}

expect_ok "make install" make --no-print-directory install DESTDIR="$D" PREFIX="$PREFIX"
for f in bin/bnfold lib/libbnfold.a lib/libbnfold.so lib/libbnfold.so.0 lib/libbnfold.so.0.1.0 \
         include/bnfold.h lib/pkgconfig/bnfold.pc; do
    expect_ok "installed $f" test -e "$D$PREFIX/$f"
done
expect_ok "soname is libbnfold.so.0" bash -c "objdump -p '$D$PREFIX/lib/libbnfold.so.0.1.0' | grep -q 'SONAME *libbnfold.so.0'"
expect_ok "shared library exports bnf_ only" bash -c \
    "! nm -D --defined-only '$D$PREFIX/lib/libbnfold.so' | awk '{print \$3}' | grep -v '^bnf_' | grep -q ."
expect_ok "static library exports bnf_ only" bash -c \
    "! nm -g --defined-only '$D$PREFIX/lib/libbnfold.a' | awk 'NF==3 {print \$3}' | grep -v '^bnf_' | grep -q ."
export PKG_CONFIG_PATH=$D$PREFIX/lib/pkgconfig
PC="pkg-config --define-variable=prefix=$D$PREFIX"
expect_ok "pkg-config knows bnfold" bash -c "$PC --modversion bnfold | grep -qx 0.1.0"
expect_ok "bnfold.pc names the install PREFIX" bash -c \
    "pkg-config --variable=libdir bnfold | grep -qx '$PREFIX/lib'"
expect_ok "example builds (shared)" bash -c "cc examples/fold_model.c \$($PC --cflags --libs bnfold) -o '$TMP/ex'"
expect_ok "example runs" bash -c "LD_LIBRARY_PATH='$D$PREFIX/lib' '$TMP/ex' testdata/demo/mobilenet_v2_tiny.onnx '$TMP/out.onnx' | grep -q '52 folded, 0 left'"
expect_ok "calibrate example builds and runs (shared)" bash -c "cc examples/calibrate_model.c \$($PC --cflags --libs bnfold) -o '$TMP/cal' && LD_LIBRARY_PATH='$D$PREFIX/lib' '$TMP/cal' testdata/demo/mobilenet_v2_tiny.onnx '$TMP/cal.onnx' | grep -q '52 of 52 BatchNormalization folded'"
expect_ok "example builds (static)" bash -c "cc examples/fold_model.c \$($PC --cflags bnfold) '$D$PREFIX/lib/libbnfold.a' \$($PC --libs --static bnfold | sed 's/-lbnfold//') -o '$TMP/ex_static'"
expect_ok "static example runs" bash -c "'$TMP/ex_static' testdata/models/conv2d.onnx '$TMP/out2.onnx' | grep -q '1 folded'"
expect_ok "installed CLI runs" bash -c "'$D$PREFIX/bin/bnfold' --version | grep -qx 'bnfold 0.1.0'"
expect_ok "make uninstall" make --no-print-directory uninstall DESTDIR="$D" PREFIX="$PREFIX"
expect_ok "nothing left" bash -c "[ -z \"\$(find '$D' -type f -o -type l)\" ]"
finish

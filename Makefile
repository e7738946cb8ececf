# bnfold: `make demo` folds a bundled model, `make test` runs the tests.
# Both install the Debian packages they need when they are missing.

CC      ?= cc
CFLAGS  ?= -O2 -g
VERSION := 0.1.0
SOMAJOR := 0
PREFIX  ?= /usr/local
WARN    := -std=c11 -Wall -Wextra -Werror -D_XOPEN_SOURCE=700
CPPFLAGS += -Isrc -Iproto
LDLIBS  := -lprotobuf-c -ldl -lm -pthread
B       := build
PYTHON  := /usr/bin/python3

# Debian packages: building, testing, and generating test data / interop models.
BUILD_DEPS := libprotobuf-c-dev protobuf-c-compiler libopenblas-dev
TEST_DEPS  := libcmocka-dev python3-jsonschema graphviz groff-base pkg-config
GEN_DEPS   := python3-onnx python3-numpy python3-torch python3-torchvision
# the Python package (python/): pip and venv to install it, the rest for its tests
PY_DEPS    := python3-venv python3-pip python3-numpy python3-onnx python3-jsonschema \
              python3-torch python3-torchvision

LIB_SRC := $(wildcard src/*/*.c src/eval/*/*.c) proto/onnx-ml.pb-c.c
LIB_HDR := $(wildcard src/*.h src/*/*.h src/eval/*/*.h) proto/onnx-ml.pb-c.h
LIB_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC))
TESTS   := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all deps test-deps gen-deps demo test unit cli-test conformance example install \
	uninstall install-test lint check-html bench-eval interop proto testdata clean calibrate-test \
	python-wheel python-test

all: $(B)/bnfold $(B)/libbnfold.a $(B)/libbnfold.so.$(VERSION) $(B)/bnfold.pc

# ---- set-up -------------------------------------------------------------------
define ensure
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call ensure,$(BUILD_DEPS) make gcc)
test-deps: deps
	$(call ensure,$(TEST_DEPS) clang)
gen-deps: deps
	$(call ensure,$(GEN_DEPS))
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  echo "installing: nodejs npm"; SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; \
	fi

# ---- build --------------------------------------------------------------------
# Library objects: position independent, and hidden unless bnfold.h marks
# them BNF_API, so the libraries export bnf_ functions only.
LIB_CFLAGS := -fPIC -fvisibility=hidden

$(B)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LIB_CFLAGS) -std=c11 -Wall -Werror -c $< -o $@

$(B)/obj/%.o: %.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LIB_CFLAGS) -c $< -o $@

# Every object, internal symbols included: for the unit tests.
$(B)/libbnfold_internal.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The installed static library: one object whose hidden symbols are made local,
# so linking it brings in bnf_ functions only (no onnx__ protobuf-c symbols).
$(B)/libbnfold.a: $(LIB_OBJ)
	@rm -f $@ $(B)/bnfold_all.o
	ld -r -o $(B)/bnfold_all.o $^
	objcopy --localize-hidden $(B)/bnfold_all.o
	ar rcs $@ $(B)/bnfold_all.o

$(B)/libbnfold.so.$(VERSION): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libbnfold.so.$(SOMAJOR) -Wl,--no-undefined $^ $(LDLIBS) -o $@
	ln -sf libbnfold.so.$(VERSION) $(B)/libbnfold.so.$(SOMAJOR)
	ln -sf libbnfold.so.$(SOMAJOR) $(B)/libbnfold.so

$(B)/bnfold.pc: bnfold.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@VERSION@|$(VERSION)|' $< > $@

# The CLI uses the public API only: it links the installed form of the library.
CLI_SRC := $(wildcard cli/*.c)
$(B)/bnfold: $(CLI_SRC) cli/cli.h $(B)/libbnfold.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(CLI_SRC) $(B)/libbnfold.a $(LDLIBS) -o $@

# ---- the two README commands -------------------------------------------------------
demo: deps
	@$(MAKE) --no-print-directory all
	$(B)/bnfold inspect testdata/demo/mobilenet_v2_tiny.onnx
	$(B)/bnfold fold testdata/demo/mobilenet_v2_tiny.onnx -o $(B)/mobilenet_v2_tiny.folded.onnx

# In three steps, so that `make -j2 test` never builds one file in two makes at
# once, and the Python tests run with nothing else of this build running.
# SKIP_PYTHON_TEST=1 leaves the Python package out (CI's second, clang pass:
# the binding is the same over either compiler's library).
test: test-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit cli-test conformance example install-test \
	  difftest-regress calibrate-test
	@$(if $(SKIP_PYTHON_TEST),echo "python-test: skipped (SKIP_PYTHON_TEST)",$(MAKE) --no-print-directory python-test)

# ---- tests --------------------------------------------------------------------
$(B)/tests/%: tests/%.c tests/testutil.h $(B)/libbnfold_internal.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(B)/libbnfold_internal.a -lcmocka $(LDLIBS) -o $@

unit: $(TESTS)
	@failed=0; for t in $(TESTS); do echo "== $$t"; $$t || failed=1; done; exit $$failed

NODE_TESTS := $(B)/onnx-node-tests/node
LEGACY_TESTS := $(B)/legacy-node-tests

$(B)/tests/conformance: tests/conformance.c $(B)/libbnfold.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(B)/libbnfold.a $(LDLIBS) -o $@

# The library's example, built against the build tree.
$(B)/examples/fold_model: examples/fold_model.c $(B)/libbnfold.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Isrc $< $(B)/libbnfold.a $(LDLIBS) -o $@

$(B)/examples/calibrate_model: examples/calibrate_model.c $(B)/libbnfold.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Isrc $< $(B)/libbnfold.a $(LDLIBS) -o $@

example: $(B)/examples/fold_model $(B)/examples/calibrate_model
	$(B)/examples/fold_model testdata/demo/mobilenet_v2_tiny.onnx $(B)/examples/folded.onnx
	$(B)/examples/calibrate_model testdata/demo/mobilenet_v2_tiny.onnx $(B)/examples/calibrated.onnx

# ---- install ------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 755 $(B)/bnfold $(DESTDIR)$(PREFIX)/bin/bnfold
	install -m 644 $(B)/libbnfold.a $(DESTDIR)$(PREFIX)/lib/libbnfold.a
	install -m 755 $(B)/libbnfold.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libbnfold.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libbnfold.so.$(SOMAJOR)
	ln -sf libbnfold.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libbnfold.so
	install -m 644 src/bnfold.h $(DESTDIR)$(PREFIX)/include/bnfold.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@VERSION@|$(VERSION)|' bnfold.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/bnfold.pc
	if [ -f docs/bnfold.1 ]; then install -m 644 docs/bnfold.1 $(DESTDIR)$(PREFIX)/share/man/man1/bnfold.1; fi
	if [ -f completion/bnfold.bash ]; then install -m 644 completion/bnfold.bash \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/bnfold; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/bnfold $(DESTDIR)$(PREFIX)/lib/libbnfold.a \
	  $(DESTDIR)$(PREFIX)/lib/libbnfold.so $(DESTDIR)$(PREFIX)/lib/libbnfold.so.$(SOMAJOR) \
	  $(DESTDIR)$(PREFIX)/lib/libbnfold.so.$(VERSION) $(DESTDIR)$(PREFIX)/include/bnfold.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/bnfold.pc $(DESTDIR)$(PREFIX)/share/man/man1/bnfold.1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/bnfold

install-test: all
	bash tests/install_test.sh

# ---- the Python package (python/README.md) ---------------------------------------
# A wheel of python/ with libbnfold inside (debug info stripped), tagged for this
# platform, in build/wheel/: `pip install build/wheel/bnfold-*.whl` needs no
# `make install` (only Debian's libprotobuf-c1 and libopenblas0, which libbnfold
# links).  python/bnfold_build.py builds it: no package index is needed.
python-wheel: deps
	$(call ensure,python3-pip)
	@$(MAKE) --no-print-directory $(B)/libbnfold.so.$(VERSION)
	@rm -rf $(B)/wheel && mkdir -p $(B)/wheel-lib
	cp $(B)/libbnfold.so.$(VERSION) $(B)/wheel-lib/libbnfold.so.0
	strip --strip-debug $(B)/wheel-lib/libbnfold.so.0
	BNFOLD_BUNDLE_LIBRARY=$(abspath $(B))/wheel-lib/libbnfold.so.0 $(PYTHON) -m pip wheel -q \
	  --no-deps --no-index --no-cache-dir -w $(B)/wheel ./python
	@ls $(B)/wheel/*.whl

# The package installed as users install it, tested (python/tests/run.sh).
python-test: deps
	$(call ensure,$(PY_DEPS))
	@$(MAKE) --no-print-directory all python-wheel
	B=$(abspath $(B)) PYTHON=$(PYTHON) bash python/tests/run.sh

# The evaluator against onnxruntime (bench/README.md).
bench-eval: all gen-deps
	bash bench/run.sh

# Static analysis: cppcheck over the library and the CLI (generated code left out).
lint:
	$(call ensure,cppcheck)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 -Isrc -Iproto \
	  --suppress=missingIncludeSystem src cli

# The ONNX backend node tests, generated by Debian's python3-onnx: the one-liner
# is onnx's own `backend-test-tools generate-data -o DIR` (each node test case as
# DIR/node/NAME/model.onnx + test_data_set_*/*.pb), run from python so that a
# numpy shim comes first: onnx 1.12's case generators still use np.float,
# np.bool and np.object, aliases numpy 1.24 (Debian 12) removed; the shim binds
# them (and np.int, np.complex) back to the builtins before onnx is imported;
# without it the generation stops at the first one (AttributeError: np.float).
$(NODE_TESTS):
	$(call ensure,python3-onnx python3-numpy)
	$(PYTHON) -c "import numpy as np; np.float=float; np.int=int; np.bool=bool; \
	  np.object=object; np.complex=complex; import sys; \
	  sys.argv=['x','generate-data','-o','$(B)/onnx-node-tests']; \
	  from onnx.backend.test import cmd_tools; cmd_tools.main()" >/dev/null

# The old operator versions (opsets 1-9) that generator leaves out, as it writes
# each operator's newest version only (testdata/gen_legacy_node_tests.py).
$(LEGACY_TESTS): testdata/gen_legacy_node_tests.py
	$(call ensure,python3-onnx python3-numpy)
	$(PYTHON) testdata/gen_legacy_node_tests.py $@

conformance: $(B)/tests/conformance $(NODE_TESTS) $(LEGACY_TESTS)
	$(B)/tests/conformance $(NODE_TESTS)
	$(B)/tests/conformance $(LEGACY_TESTS)

$(B)/tests/fault_io.so: tests/fault_io.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O2 $< -ldl -o $@

cli-test: $(B)/bnfold $(B)/tests/fault_io.so
	bash tests/cli_test.sh $(B)/bnfold
	bash tests/gate_test.sh $(B)/bnfold
	bash tests/schema_test.sh $(B)/bnfold
	bash tests/dot_test.sh $(B)/bnfold
	bash tests/batch_test.sh $(B)/bnfold

# bnfold calibrate against torch's statistics (testdata/gen_calibrate.py, into
# build/calibrate)
calibrate-test: gen-deps $(B)/bnfold
	bash tests/calibrate_test.sh $(B)/bnfold

# The HTML report rendered by headless Chromium (installed when missing);
# screenshots in build/screenshots.
check-html: all
	$(call ensure,chromium)
	bash tests/check_html.sh $(B)/bnfold

interop: gen-deps
	@$(MAKE) --no-print-directory all
	bash tests/interop/run.sh

# ---- generated files ----------------------------------------------------------
proto: deps
	cd proto && protoc-c --c_out=. onnx-ml.proto

# Every generator of testdata/ (testdata/README.md); gen_common.py is their
# shared module, not a generator.
testdata: gen-deps
	$(PYTHON) testdata/gen_models.py
	$(PYTHON) testdata/gen_patterns.py
	$(PYTHON) testdata/gen_health.py
	$(PYTHON) testdata/gen_demo.py

clean:
	rm -rf $(B)/obj $(B)/tests $(B)/examples $(B)/bnfold $(B)/libbnfold* $(B)/bnfold_all.o \
	  $(B)/bnfold.pc $(B)/wheel $(B)/wheel-lib $(B)/python-test

# ar keeps one member per file name: two sources with one basename would lose one.
DUP_SRC := $(shell echo $(notdir $(LIB_SRC)) | tr ' ' '\n' | sort | uniq -d)
$(if $(DUP_SRC),$(error source files share a basename (ar would drop one): $(DUP_SRC)))

# fuzzing, sanitizers, valgrind and the malformed-model corpus (fuzz/fuzz.mk)
include fuzz/fuzz.mk
include bench/bench.mk

# differential testing on generated models (tests/difftest/difftest.mk)
include tests/difftest/difftest.mk

# bnfold: `make demo` folds a bundled model, `make test` runs the tests.
# Both install the Debian packages they need when they are missing.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Werror -D_XOPEN_SOURCE=700
CPPFLAGS += -Isrc -Iproto
LDLIBS  := -lprotobuf-c -lopenblas -lm
B       := build
PYTHON  := /usr/bin/python3

# Debian packages: building, testing, and generating test data / interop models.
BUILD_DEPS := libprotobuf-c-dev protobuf-c-compiler libopenblas-dev
TEST_DEPS  := libcmocka-dev
GEN_DEPS   := python3-onnx python3-numpy python3-torch python3-torchvision

LIB_SRC := $(wildcard src/*.c src/fold/*.c src/eval/*.c src/eval/ops/*.c) proto/onnx-ml.pb-c.c
LIB_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC))
TESTS   := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all deps test-deps gen-deps demo test unit cli-test interop proto testdata clean

all: $(B)/bnfold $(B)/libbnfold.a

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
$(B)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -std=c11 -Wall -Werror -c $< -o $@

$(B)/obj/%.o: %.c src/bnfold.h src/internal.h src/eval/eval.h proto/onnx-ml.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c $< -o $@

$(B)/libbnfold.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/bnfold: cli/main.c $(B)/libbnfold.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(B)/libbnfold.a $(LDLIBS) -o $@

# ---- the two README commands -------------------------------------------------------
demo: deps
	@$(MAKE) --no-print-directory all
	$(B)/bnfold inspect testdata/demo/mobilenet_v2_tiny.onnx
	$(B)/bnfold fold testdata/demo/mobilenet_v2_tiny.onnx -o $(B)/mobilenet_v2_tiny.folded.onnx

test: test-deps
	@$(MAKE) --no-print-directory all unit cli-test

# ---- tests --------------------------------------------------------------------
$(B)/tests/%: tests/%.c tests/testutil.h $(B)/libbnfold.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(B)/libbnfold.a -lcmocka $(LDLIBS) -o $@

unit: $(TESTS)
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done

cli-test: $(B)/bnfold
	bash tests/cli_test.sh $(B)/bnfold

interop: gen-deps
	@$(MAKE) --no-print-directory all
	bash tests/interop/run.sh

# ---- generated files ----------------------------------------------------------
proto: deps
	cd proto && protoc-c --c_out=. onnx-ml.proto

testdata: gen-deps
	$(PYTHON) testdata/gen_models.py
	$(PYTHON) testdata/gen_demo.py

clean:
	rm -rf $(B)/obj $(B)/tests $(B)/bnfold $(B)/libbnfold.a

# ar keeps one member per file name: two sources with one basename would lose one.
DUP_SRC := $(shell echo $(notdir $(LIB_SRC)) | tr ' ' '\n' | sort | uniq -d)
$(if $(DUP_SRC),$(error source files share a basename (ar would drop one): $(DUP_SRC)))

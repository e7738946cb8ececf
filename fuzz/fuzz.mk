# fuzz/fuzz.mk: fuzzing, sanitizers and valgrind (included by the Makefile;
# until then: make -f Makefile -f fuzz/fuzz.mk TARGET).
#
#   make fuzz-build      build/fuzz/fuzz_{load,fold,eval}: libFuzzer + ASan + UBSan
#   make fuzz            run each harness FUZZ_SECONDS (default 600) on the working
#                        corpus build/fuzz/corpus/NAME, seeded from fuzz/corpus/NAME
#                        (FUZZ_FORK=N: N processes, going on after findings)
#   make fuzz-smoke      the same, FUZZ_SMOKE_SECONDS (20) each: for CI
#   make fuzz-repro      run every reproducer of fuzz/crashes/ once (no workarounds)
#   make sanitize        library, unit tests, CLI, conformance runner under
#                        ASan + UBSan (no recovery) in build/san/, and every suite
#   make valgrind-cli    tests/cli_test.sh with bnfold under valgrind
#
# The library sources are LIB_SRC of the main Makefile; objects go to their own
# folders (build/fuzz/obj, build/san/obj), never mixed with build/obj.

ifndef BNF_FUZZ_MK_INCLUDED
BNF_FUZZ_MK_INCLUDED := 1

FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 600
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_NAMES    := load fold eval
FUZZ_B        := $(B)/fuzz
FUZZ_BINS     := $(addprefix $(FUZZ_B)/fuzz_,$(FUZZ_NAMES))
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   := -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_OBJ      := $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(LIB_SRC))
# -max_len: bigger inputs say nothing new; -rss_limit_mb: a model that makes
# bnfold take 4 GiB is a finding; -timeout: one input taking 10 s is a finding.
FUZZ_FLAGS    ?= -max_len=65536 -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
                 -dict=fuzz/onnx.dict
# Sanitizer settings for every run: no recovery, leaks on, every report fatal.
SAN_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:allocator_may_return_null=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OPENBLAS_NUM_THREADS=1

SAN_CC   ?= clang
SAN_B    := $(B)/san
SAN_OBJ  := $(patsubst %.c,$(SAN_B)/obj/%.o,$(LIB_SRC))
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_TESTS := $(patsubst tests/%.c,$(SAN_B)/tests/%,$(wildcard tests/test_*.c))
# what tests/cli_test.sh needs besides the binary (the main Makefile's rules)
CLI_TEST_AIDS := $(if $(wildcard tests/fault_io.c),$(B)/tests/fault_io.so)

.PHONY: fuzz-deps fuzz-build fuzz fuzz-smoke fuzz-repro san-deps sanitize san-build \
        valgrind-deps valgrind-cli malformed

fuzz-deps: deps
	$(call ensure,clang libclang-rt-14-dev)

# ---- libFuzzer harnesses ------------------------------------------------------
$(FUZZ_B)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -std=c11 -c $< -o $@

$(FUZZ_B)/obj/%.o: %.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_B)/libbnfold.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_B)/fuzz_%: fuzz/fuzz_%.c fuzz/common.h $(FUZZ_B)/libbnfold.a
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_B)/libbnfold.a \
	  $(LDLIBS) -lpthread -o $@

# the same harnesses without their temporary workarounds, for fuzz-repro
$(FUZZ_B)/repro_%: fuzz/fuzz_%.c fuzz/common.h $(FUZZ_B)/libbnfold.a
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_CFLAGS) -DFUZZ_NO_WORKAROUNDS -fsanitize=fuzzer $< \
	  $(FUZZ_B)/libbnfold.a $(LDLIBS) -lpthread -o $@

# the packages first (order-only: a dpkg query, nothing is rebuilt for it)
$(FUZZ_OBJ) $(FUZZ_BINS) $(addprefix $(FUZZ_B)/repro_,$(FUZZ_NAMES)): | fuzz-deps

fuzz-build: $(FUZZ_BINS)

# fuzz_run NAME SECONDS: the working corpus grows in build/fuzz/corpus/NAME (the
# committed seeds are read, never written); findings land in
# build/fuzz/findings/NAME, the log in build/fuzz/fuzz_NAME.log.  It stops at the
# first finding, unless FUZZ_FORK=N: then N worker processes run and keep going
# after crashes, time-outs and OOMs (for long runs; every finding is saved).
define fuzz_run
	@mkdir -p $(FUZZ_B)/corpus/$(1) $(FUZZ_B)/findings/$(1)
	@echo "== fuzz_$(1): $(2) s"
	@$(SAN_ENV) $(FUZZ_B)/fuzz_$(1) $(FUZZ_FLAGS) -max_total_time=$(2) \
	  $(if $(FUZZ_FORK),-fork=$(FUZZ_FORK) -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1) \
	  -artifact_prefix=$(FUZZ_B)/findings/$(1)/ \
	  $(FUZZ_B)/corpus/$(1) fuzz/corpus/$(1) >$(FUZZ_B)/fuzz_$(1).log 2>&1; \
	  grep -E '^#[0-9]+.*(INITED|DONE)|^#[0-9]+: cov|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
	    $(FUZZ_B)/fuzz_$(1).log | tail -n 5
	@! grep -qE '^==[0-9]+== ?ERROR|^SUMMARY|runtime error|broken promise|Test unit written' \
	  $(FUZZ_B)/fuzz_$(1).log || { echo "fuzz_$(1): FINDINGS, see $(FUZZ_B)/fuzz_$(1).log and $(FUZZ_B)/findings/$(1)/"; \
	  echo $(1) >>$(FUZZ_B)/failed; }
endef

# every harness runs; the target fails at the end if any found something
define fuzz_all
	@mkdir -p $(FUZZ_B) && rm -f $(FUZZ_B)/failed
	$(foreach n,$(FUZZ_NAMES),$(call fuzz_run,$(n),$(1))
	)
	@if [ -s $(FUZZ_B)/failed ]; then echo "fuzz: findings in: $$(cat $(FUZZ_B)/failed | tr '\n' ' ')"; exit 1; fi
endef

fuzz: fuzz-build
	$(call fuzz_all,$(FUZZ_SECONDS))

fuzz-smoke: fuzz-build
	$(call fuzz_all,$(FUZZ_SMOKE_SECONDS))

# Every reproducer in fuzz/crashes/NAME-* runs once through harness NAME, built
# without workarounds; the target fails while any finding is still open
# (fuzz/crashes/README.md).
fuzz-repro: $(addprefix $(FUZZ_B)/repro_,$(FUZZ_NAMES))
	@fails=""; for f in fuzz/crashes/*-*.onnx; do [ -f "$$f" ] || continue; \
	  n=$$(basename $$f | cut -d- -f1); \
	  if $(SAN_ENV) $(FUZZ_B)/repro_$$n -rss_limit_mb=4096 -timeout=10 $$f >$(FUZZ_B)/repro.log 2>&1; \
	  then echo "ok    $$f"; else echo "FAILS $$f"; fails="$$fails $$f"; fi; done; \
	[ -z "$$fails" ] || { echo "fuzz-repro: still failing:$$fails"; exit 1; }

# ---- sanitizers -------------------------------------------------------------
san-deps: test-deps
	$(call ensure,clang libclang-rt-14-dev)

$(SAN_B)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(SAN_CC) $(CPPFLAGS) $(SAN_FLAGS) -std=c11 -c $< -o $@

$(SAN_B)/obj/%.o: %.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(SAN_CC) $(CPPFLAGS) $(WARN) $(SAN_FLAGS) -c $< -o $@

$(SAN_B)/libbnfold.a: $(SAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SAN_B)/bnfold: $(wildcard cli/*.c) cli/cli.h $(SAN_B)/libbnfold.a
	$(SAN_CC) $(CPPFLAGS) $(WARN) $(SAN_FLAGS) $(wildcard cli/*.c) $(SAN_B)/libbnfold.a $(LDLIBS) -o $@

$(SAN_B)/tests/conformance: tests/conformance.c $(SAN_B)/libbnfold.a
	@mkdir -p $(dir $@)
	$(SAN_CC) $(CPPFLAGS) $(WARN) $(SAN_FLAGS) $< $(SAN_B)/libbnfold.a $(LDLIBS) -o $@

$(SAN_B)/tests/%: tests/%.c tests/testutil.h $(SAN_B)/libbnfold.a
	@mkdir -p $(dir $@)
	$(SAN_CC) $(CPPFLAGS) $(WARN) $(SAN_FLAGS) $< $(SAN_B)/libbnfold.a -lcmocka $(LDLIBS) -o $@

$(SAN_OBJ) $(SAN_B)/bnfold $(SAN_B)/tests/conformance $(SAN_TESTS): | san-deps

san-build: $(SAN_B)/bnfold $(SAN_B)/tests/conformance $(SAN_TESTS)

# Every suite runs even when an earlier one fails; the target fails if any did.
sanitize: san-build $(NODE_TESTS) $(CLI_TEST_AIDS)
	@export $(SAN_ENV); fails=""; \
	for t in $(SAN_TESTS); do echo "== $$t"; $$t || fails="$$fails $$(basename $$t)"; done; \
	echo "== cli_test.sh $(SAN_B)/bnfold"; \
	bash tests/cli_test.sh $(SAN_B)/bnfold || fails="$$fails cli_test"; \
	echo "== batch_test.sh $(SAN_B)/bnfold"; \
	bash tests/batch_test.sh $(SAN_B)/bnfold || fails="$$fails batch_test"; \
	echo "== calibrate_test.sh $(SAN_B)/bnfold"; \
	bash tests/calibrate_test.sh $(SAN_B)/bnfold || fails="$$fails calibrate_test"; \
	echo "== conformance $(NODE_TESTS)"; \
	$(SAN_B)/tests/conformance $(NODE_TESTS) || fails="$$fails conformance"; \
	echo "== tests/malformed/run.sh $(SAN_B)/bnfold"; \
	bash tests/malformed/run.sh $(SAN_B)/bnfold || fails="$$fails malformed"; \
	if [ -n "$$fails" ]; then echo "sanitize: FAILED:$$fails"; exit 1; fi; \
	echo "sanitize: all suites passed under ASan + UBSan"

# ---- valgrind -----------------------------------------------------------------
valgrind-deps: deps
	$(call ensure,valgrind)

# The suite runs a wrapper that execs (a private copy of) bnfold under valgrind;
# every valgrind report goes to a log file of its own, so an error fails the run
# even in a case that would accept any exit code.
valgrind-cli: valgrind-deps all $(CLI_TEST_AIDS)
	@rm -rf $(B)/valgrind && mkdir -p $(B)/valgrind/logs
	@cp $(B)/bnfold $(B)/valgrind/bnfold.bin
	@printf '%s\n' '#!/bin/sh' \
	  'exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  --log-file=$(abspath $(B))/valgrind/logs/vg.%p "$(abspath $(B))/valgrind/bnfold.bin" "$$@"' \
	  > $(B)/valgrind/bnfold && chmod +x $(B)/valgrind/bnfold
	@ok=1; OPENBLAS_NUM_THREADS=1 bash tests/cli_test.sh $(B)/valgrind/bnfold || ok=0; \
	for f in $(B)/valgrind/logs/vg.*; do [ -s "$$f" ] || continue; ok=0; \
	  echo "== valgrind report $$f"; cat "$$f"; done; \
	[ $$ok = 1 ] && echo "valgrind-cli: no valgrind errors" || { echo "valgrind-cli: FAILED"; exit 1; }

malformed: all
	bash tests/malformed/run.sh $(B)/bnfold

endif # BNF_FUZZ_MK_INCLUDED

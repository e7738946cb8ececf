# tests/difftest/difftest.mk: differential testing on generated models
# (tests/difftest/README.md).  Included by the Makefile.
#
#   make difftest [N=300] [SEED=1] [J=2]   N generated models, J in parallel; summary table
#   make difftest-smoke                    the fixed-seed CI smoke (800 models, about 80 s on 2 cores)
#   make difftest-regress                  every committed regression case (seconds)
#   make difftest-san [N=..] [SEED=..]     the same models against the ASan + UBSan build
#
# A run fails (exit 1) on a failure that is not a known bnfold bug
# (tests/difftest/judge.py KNOWN); known ones are counted in the summary.

ifndef BNF_DIFFTEST_MK_INCLUDED
BNF_DIFFTEST_MK_INCLUDED := 1

N    ?= 300
SEED ?= 1
J    ?= 2
DIFFTEST_SMOKE_N    ?= 800
DIFFTEST_SMOKE_SEED ?= 20250601

.PHONY: difftest-deps difftest difftest-smoke difftest-regress difftest-san

difftest-deps: deps
	$(call ensure,python3-onnx python3-numpy)
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  echo "installing: nodejs npm"; SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; \
	fi

difftest: difftest-deps
	@$(MAKE) --no-print-directory all
	bash tests/difftest/run.sh run -n $(N) --seed $(SEED) -j $(J) --bnfold $(B)/bnfold

difftest-smoke: difftest-deps
	@$(MAKE) --no-print-directory all
	bash tests/difftest/run.sh run -n $(DIFFTEST_SMOKE_N) --seed $(DIFFTEST_SMOKE_SEED) -j 2 \
	  --bnfold $(B)/bnfold

# `all` as a prerequisite, not a recursive make: under `make -j test` a second
# make would link build/bnfold while this one runs it
difftest-regress: difftest-deps all
	bash tests/difftest/run.sh regress --bnfold $(B)/bnfold

# ASan + UBSan (fuzz/fuzz.mk's build/san/bnfold, no recovery, leaks on): a report
# is a failure of kind "sanitizer"
difftest-san: difftest-deps $(SAN_B)/bnfold
	$(SAN_ENV) bash tests/difftest/run.sh run -n $(N) --seed $(SEED) -j $(J) \
	  --bnfold $(SAN_B)/bnfold --out $(B)/difftest-san

endif # BNF_DIFFTEST_MK_INCLUDED

# bench/bench.mk: the model I/O benchmark (included by the Makefile; until then:
# make -f Makefile -f bench/bench.mk bench).
#
#   make bench           build $(B)/bnfold, then bench/io.sh: load / fold / write time
#                        and peak RSS against cp and onnxruntime's offline
#                        optimisation, on resnet50, vgg11_bn and a 3 GB external-data
#                        model (bench/README.md, "Model I/O")
#
# bench/io.sh reads REPEAT, BENCH_MODELS, BENCH_DIR (default build/bench-io: the
# models are cached there, about 3.7 GB, whatever B is), BENCH_BIG_BYTES,
# BENCH_FSYNC_REF and BENCH_VERIFY_ARGS from the environment, e.g.
#   make bench REPEAT=9 BENCH_MODELS="resnet50 big"
# (make exports command-line variables to the script's environment).
# Exit status: 0 every measurement ran, 1 one failed, 2 set-up error; the targets
# are reported in $(BENCH_DIR)/results.md, not enforced.

ifndef BNF_BENCH_MK_INCLUDED
BNF_BENCH_MK_INCLUDED := 1

.PHONY: bench

# gen-deps (Makefile): python3-onnx / torch / torchvision, node and npm.
bench: gen-deps
	@$(MAKE) --no-print-directory all
	BNFOLD=$(B)/bnfold bash bench/io.sh

endif

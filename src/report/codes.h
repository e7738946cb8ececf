/*
 * report/codes.h: the stable codes of reports (docs/contract.md): why a
 * BatchNormalization is not folded, the health findings, and the problem the
 * CI gate adds (BN_UNFOLDED).  One table: the
 * enum, the names in reports, the kind, the default severity and a line of
 * text all come from BNF_CODES below; tests/test_codes.c checks it against
 * docs/report.schema.json and docs/contract.md.  A leaf header: the folds,
 * the health checks and the reports all include it.
 */
#ifndef BNF_CODES_H
#define BNF_CODES_H

#include "bnfold.h"

/* X(code, kind, default severity (findings), what it means) */
#define BNF_CODES(X)                                                                              \
    X(NO_LAYER, SKIP, NULL, "no layer next to the BN can take it (a standalone BN)")              \
    X(LAYER_MULTI_CONSUMER, SKIP, NULL, "the value between the layer and the BN feeds other "     \
      "nodes too")                                                                                \
    X(LAYER_GRAPH_OUTPUT, SKIP, NULL, "the value between the layer and the BN is also a graph "   \
      "output")                                                                                   \
    X(PARAM_NOT_CONSTANT, SKIP, NULL, "a BN or layer parameter is computed at run time")          \
    X(PARAM_OVERRIDABLE, SKIP, NULL, "a parameter is an initializer also listed as a graph "      \
      "input (IR >= 4): a user may override it")                                                  \
    X(TRAINING_MODE, SKIP, NULL, "the BN is in training mode (is_test = 0, training_mode = 1, "   \
      "or its batch statistics are used)")                                                        \
    X(SPATIAL, SKIP, NULL, "spatial = 0: per-element parameters (opset 7 and before)")            \
    X(SHAPE_MISMATCH, SKIP, NULL, "parameter shapes do not match the layer's channels")           \
    X(UNSUPPORTED_DTYPE, SKIP, NULL, "a parameter's type is not float16, float, double or "       \
      "bfloat16")                                                                                 \
    X(NON_FINITE, SKIP, NULL, "a folded value would not be finite, or would overflow or flush "   \
      "to zero in the weight's type")                                                             \
    X(UNSUPPORTED_LAYER, SKIP, NULL, "the layer has a form that does not fold (a MatMul whose "   \
      "input is not of rank 2, a Gemm with transA before the BN)")                                \
    X(PADDING, SKIP, NULL, "the BN is before a Conv that pads its input: folding is not exact")   \
    X(UNVERIFIED, SKIP, NULL, "the fold cannot be checked on its own (a kernel too large for "    \
      "the local check); --no-verify folds it")                                                   \
    X(UNKNOWN_OPSET, SKIP, NULL, "the BN's ai.onnx opset is newer than bnfold knows "              \
      "(BatchNormalization is known up to opset 23): its meaning there is not known")             \
    X(BN_NONFINITE, FINDING, "error", "NaN or infinity in scale, B, mean or variance")            \
    X(BN_NEG_VAR, FINDING, "error", "a negative running variance")                                \
    X(BN_TRAINING_MODE, FINDING, "error", "a training-mode BN in an inference model")             \
    X(BN_EPS_NONPOS, FINDING, "warning", "epsilon <= 0 (an error with a zero variance)")          \
    X(BN_ZERO_VAR, FINDING, "warning", "a running variance of exactly 0")                         \
    X(BN_TINY_VAR, FINDING, "warning", "a running variance below 1e-6: the channel is scaled by " \
      "up to 1/sqrt(epsilon)")                                                                    \
    X(BN_LARGE_SCALE, FINDING, "warning", "a per-channel scale |gamma / sqrt(var + eps)| above "  \
      "1e4: folded weights may overflow float16")                                                 \
    X(BN_UNTRAINED, FINDING, "warning", "running mean all 0 and variance all 1: statistics "      \
      "never collected")                                                                          \
    X(BN_DEAD_CHANNEL, FINDING, "info", "gamma is 0: the channel's output is the constant B")    \
    X(BN_UNFOLDED, GATE, "error", "a BatchNormalization that bnfold fold would fold is still in " \
      "the model (check --fail-on unfolded)")

typedef enum {
    BNF_NO_CODE = 0,
#define BNF_CODE_ENUM(code, kind, severity, text) BNF_##code,
    BNF_CODES(BNF_CODE_ENUM)
#undef BNF_CODE_ENUM
    BNF_CODE_COUNT
} bnf_code;

/* The code's name ("SHAPE_MISMATCH"), NULL for BNF_NO_CODE. */
const char *bnf_code_name(bnf_code c);
/* The finding's default severity ("error", "warning", "info"). */
const char *bnf_code_severity(bnf_code c);
/* The code named by the n bytes at name, BNF_NO_CODE when none is. */
bnf_code bnf_code_find(const char *name, size_t n);

#endif

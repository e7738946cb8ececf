/*
 * fold/fold.h: BatchNormalization semantics and the fold patterns.
 */
#ifndef BNF_FOLD_H
#define BNF_FOLD_H

#include "graph/graph.h"

/* ---- BatchNormalization (bn.c) -------------------------------------------- */

typedef struct {
    int64_t c;
    double eps;
    double *s, *t;        /* scale and shift per channel, length c */
    double min_var, max_abs_scale;
} bnf_bn;

void bnf_bn_release(bnf_bn *bn);
/* Reads a BN's mode and parameters.  Returns BNF_OK with *code NULL when the BN
 * can be folded, or with *code and reason set when it cannot; an error status
 * only for a malformed model.  Statistics are filled whenever readable. */
bnf_status bnf_bn_read(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *node,
                       int64_t opset, bnf_bn *bn, const char **code, char *reason,
                       size_t reason_size, bnf_err *err);

/* Appends the health findings of BN node `bn` (report entry bn_index) to r:
 * variances tiny, zero or negative, epsilon <= 0, huge scales, dead channels,
 * untrained statistics, NaN/Inf, training mode. */
bnf_status bnf_bn_health(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *bn,
                         int training, size_t bn_index, bnf_report *r, bnf_err *err);

/* ---- fold patterns (fold/ *.c, table in fold.c) ---------------------------- */

/* Where the per-channel affine node (BN, or Mul / Add by constants) sits. */
typedef enum {
    BNF_AFTER_LAYER,  /* layer -> BN: scales the layer's output channels */
    BNF_BEFORE_LAYER  /* BN -> layer: scales the layer's input channels */
} bnf_fold_position;

typedef struct {
    const Onnx__NodeProto *layer;
    const bnf_array *w;       /* the layer's weight, input 1 */
    const bnf_array *b;       /* its bias, input 2, or NULL */
    const bnf_bn *bn;         /* y = x * s + t per channel */
    int in_rank;              /* rank of the layer's input 0, -1 when unknown */
    double *new_w;            /* w->n values to fill */
    bnf_array new_b;          /* the pattern fills dims, rank, n and v (malloc) */
    /* Set by bnf_fold_scale instead of filling new_w, when
     * W'[i] = W[i] * s[(i / scale_inner) % scale_channels]: the driver computes
     * W' then, streaming it from the weight's bytes when it can. */
    int scaled;
    size_t scale_inner, scale_channels;
    const char *code;         /* set with reason when the pattern declines */
    char reason[200];
} bnf_fold_job;

typedef struct {
    const char *op_type;
    bnf_fold_position position;
    /* The channels the affine node acts on (the layer's output channels, or
     * input channels for BNF_BEFORE_LAYER) as the weight shows them; -1 if the
     * weight is not of the layer's form. */
    int64_t (*channels)(const Onnx__NodeProto *layer, const bnf_array *w);
    /* Returns BNF_OK having filled new_w and new_b, or BNF_OK with job->code
     * set to decline; BNF_ERR_NOMEM when out of memory. */
    bnf_status (*fold)(bnf_fold_job *job);
    /* Optional: rewrites the node once the new tensors are in place. */
    bnf_status (*finish)(Onnx__NodeProto *layer, bnf_err *err);
} bnf_fold_pattern;

extern const bnf_fold_pattern bnf_fold_conv_bn;
extern const bnf_fold_pattern bnf_fold_conv_transpose_bn;
extern const bnf_fold_pattern bnf_fold_gemm_bn;
extern const bnf_fold_pattern bnf_fold_matmul_bn;
extern const bnf_fold_pattern bnf_fold_bn_conv;
extern const bnf_fold_pattern bnf_fold_bn_gemm;

/* States that the fold scales W's elements by channel (see bnf_fold_job). */
void bnf_fold_scale(bnf_fold_job *job, size_t inner, size_t channels);

/* new_b = b * s + t over m_out output channels (b = 0 when absent): the bias
 * of every fold that scales output channels. */
bnf_status bnf_fold_channel_bias(bnf_fold_job *job, int64_t m_out);

/* Gemm's output-column fold, shared with MatMul (which becomes a Gemm). */
bnf_status bnf_fold_gemm_columns(bnf_fold_job *job);
bnf_status bnf_fold_gemm_finish(Onnx__NodeProto *layer, bnf_err *err);

/* Sets job->code and the formatted reason; returns BNF_OK. */
bnf_status bnf_fold_decline(bnf_fold_job *job, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The rank of value `name` when the model says it (value_info, graph inputs and
 * outputs) or a producer fixes it (Flatten, Gemm, a constant-shape Reshape);
 * -1 when unknown. */
int bnf_graph_rank(const bnf_graph *gi, const char *name);

/* ---- verification (verify.c) ------------------------------------------------ */

/* Runs the layer and the affine node (in their order) and the folded layer on
 * one random input shaped for the layer; *pass tells whether they agree under
 * o's tolerance, *rel_err the worst |diff| / max|out|.  `folded` is the layer
 * as it will be (op type and attributes), its weights new_w and new_b. */
bnf_status bnf_verify_fold_local(const bnf_model *m, const bnf_graph *gi,
                                 const Onnx__NodeProto *layer, const Onnx__NodeProto *affine,
                                 bnf_fold_position pos, const Onnx__NodeProto *folded,
                                 int64_t opset, const bnf_array *w, const bnf_array *b,
                                 const double *new_w, const bnf_array *new_b,
                                 const bnf_verify_options *o, double *rel_err, int *pass,
                                 bnf_err *err);

#endif

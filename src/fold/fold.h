/*
 * fold/fold.h: BatchNormalization semantics and the fold patterns.
 */
#ifndef BNF_FOLD_H
#define BNF_FOLD_H

#include "graph/graph.h"
#include "report/codes.h"

/* ---- BatchNormalization (bn.c) -------------------------------------------- */

/* The newest ai.onnx opset whose BatchNormalization bnfold knows: versions 1,
 * 6, 7, 9, 14 and 15, the last one still current at opset 23 (ONNX 1.18).  A
 * newer opset may have changed it: such a BN is not folded (UNKNOWN_OPSET). */
#define BNF_BN_NEWEST_OPSET 23

typedef struct {
    int64_t c;
    double eps;
    double *s, *t;        /* scale and shift per channel, length c */
    double min_var, max_abs_scale;
} bnf_bn;

void bnf_bn_release(bnf_bn *bn);
/* Reads a BN's mode and parameters.  Returns BNF_OK with *code BNF_NO_CODE when the BN
 * can be folded, or with *code and reason set when it cannot; an error status
 * only for a malformed model.  Statistics are filled whenever readable. */
bnf_status bnf_bn_read(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *node,
                       int64_t opset, bnf_bn *bn, bnf_code *code, char *reason,
                       size_t reason_size, bnf_err *err);

/* Appends the health findings of BN node `bn` (report entry bn_index) to r:
 * variances tiny, zero or negative, epsilon <= 0, huge scales, dead channels,
 * untrained statistics, NaN/Inf, training mode. */
bnf_status bnf_bn_health(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *bn,
                         int training, size_t bn_index, bnf_report *r, bnf_err *err);

/* ---- fold patterns --------------------------------------------------------------
 *
 * A pattern is one file in fold/ that defines a bnf_fold_pattern, and one line
 * in the table at the top of fold/driver.c.  The driver finds an affine node
 * (a BatchNormalization, or a Mul / Add by a per-channel constant) and a layer
 * of the pattern's op type on the pattern's side of it, checks what every fold
 * needs (the value between them read by nothing else and not a graph output,
 * the layer's weight and bias constant), then calls the pattern:
 *
 *   match   with W's shape only (job->w->v is NULL) and the bias's values:
 *           declines (bnf_fold_decline, with a code and a sentence), or says
 *           which channel's scale multiplies each element of W
 *           (bnf_fold_scale: W'[e] = W[e] * s[channel(e)]);
 *   fold    fills job->new_b, the layer's new bias, from job->b, s and t (and
 *           W's values, in job->w->v, when the pattern sets bias_reads_weight;
 *           NULL otherwise);
 *   finish  (optional) rewrites the node once its inputs are the new tensors
 *           (a MatMul becomes a Gemm, a Gemm's beta becomes 1).
 *
 * The driver makes W' from match's scaling (streamed from W's bytes, every
 * value checked to be representable), runs the local check on a scratch copy
 * of the node as finish leaves it, and then rewrites the graph. */

/* Where the per-channel affine node (BN, or Mul / Add by constants) sits. */
typedef enum {
    BNF_AFTER_LAYER,  /* layer -> BN: scales the layer's output channels */
    BNF_BEFORE_LAYER  /* BN -> layer: scales the layer's input channels */
} bnf_fold_position;

/* What the folds need to know of a layer type, whichever side the BN is on
 * (fold/layers.c). */
typedef struct {
    const char *op_type;
    /* The rank of its output given W and the rank of its input 0 (-1 when
     * unknown): the rank a Mul / Add after it acts on. */
    int (*out_rank)(const Onnx__NodeProto *layer, const bnf_array *w, int in_rank);
    /* The input the local check feeds it: batch 1 (Gemm: M rows), the
     * channels W expects, a small extent that fits its kernel;
     * BNF_ERR_UNSUPPORTED when that would be too large to check. */
    bnf_status (*input_shape)(const Onnx__NodeProto *layer, const bnf_array *w,
                              const bnf_array *b, int64_t *dims, size_t *rank, bnf_err *err);
} bnf_fold_layer;

extern const bnf_fold_layer bnf_layer_conv, bnf_layer_conv_transpose, bnf_layer_gemm,
    bnf_layer_matmul;

typedef struct bnf_fold_pattern bnf_fold_pattern;

/* One fold, from match to the local check. */
typedef struct {
    const bnf_fold_pattern *pat;
    const Onnx__NodeProto *layer;
    const Onnx__NodeProto *affine;  /* the BN, Mul or Add */
    const bnf_array *w;       /* the layer's weight (input 1): dims; values see fold */
    const bnf_array *b;       /* its bias (input 2) with values, or NULL */
    const bnf_bn *bn;         /* y = x * s + t per channel */
    int in_rank;              /* rank of the layer's input 0, -1 when unknown */
    int64_t in_dims[BNF_MAX_RANK]; /* its sizes, -1 where unknown */
    bnf_scaling scaling;      /* set by match (bnf_fold_scale) */
    bnf_array new_b;          /* fold fills dims, rank, n and v (bnf_malloc) */
    const Onnx__TensorProto *w_stored; /* W as the model stores it, or NULL */
    const Onnx__TensorProto *new_w; /* W' as it will be written (for the check) */
    bnf_code code;            /* set, with reason, when the pattern declines */
    char reason[200];
} bnf_fold_job;

struct bnf_fold_pattern {
    const bnf_fold_layer *layer;
    bnf_fold_position position;
    /* The channels the affine node acts on (the layer's output channels, or
     * its input channels for BNF_BEFORE_LAYER) as W's shape shows them; -1
     * when W is not of the layer's form. */
    int64_t (*channels)(const Onnx__NodeProto *layer, const bnf_array *w);
    /* Return BNF_OK (declining or not), or BNF_ERR_NOMEM. */
    bnf_status (*match)(bnf_fold_job *job);
    bnf_status (*fold)(bnf_fold_job *job);
    int bias_reads_weight;
    bnf_status (*finish)(Onnx__NodeProto *layer, bnf_err *err);
};

/* match's answer: W'[e] = W[e] * s[channel(e)], see bnf_scaling. */
void bnf_fold_scale(bnf_fold_job *job, size_t inner, size_t per_group, size_t group);
/* Sets job->code and the formatted reason; returns BNF_OK. */
bnf_status bnf_fold_decline(bnf_fold_job *job, bnf_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Shared by patterns (each in the file of the pattern it comes from):
 * new_b = b * s + t over the BN's channels (b = 0 when absent), the bias of
 * every fold that scales a layer's output channels (conv_bn.c); */
bnf_status bnf_fold_channel_bias(bnf_fold_job *job);
/* Gemm's output columns scaled by the BN after it, C' = s * (beta * C) + t
 * (gemm_bn.c, also MatMul -> BN); */
bnf_status bnf_fold_gemm_columns_match(bnf_fold_job *job);
bnf_status bnf_fold_gemm_columns_fold(bnf_fold_job *job);
/* Gemm's input rows scaled by the BN before it, C' = alpha * t B' + beta * C
 * (bn_gemm.c); */
bnf_status bnf_fold_gemm_rows_match(bnf_fold_job *job);
bnf_status bnf_fold_gemm_rows_fold(bnf_fold_job *job);
/* beta := 1 (gemm_bn.c), and MatMul becomes Gemm (matmul_bn.c). */
bnf_status bnf_fold_gemm_finish(Onnx__NodeProto *layer, bnf_err *err);
bnf_status bnf_fold_to_gemm(Onnx__NodeProto *layer, bnf_err *err);


/* ---- the pass (driver.c) and lowering (lower.c) ------------------------------------ */

/* The graph the pass is folding. */
typedef struct {
    bnf_model *m;
    bnf_graph *gi;
    int64_t opset;         /* of the default domain, in force in this graph */
    int in_function;       /* a function body: no initializers, new tensors are Constants */
} bnf_fold_site;

/* Puts a new tensor t (taken over, also on failure) in the site's graph: an
 * initializer, or in a function body a Constant node at the front (*shift
 * counts the nodes inserted). */
bnf_status bnf_fold_add_tensor(const bnf_fold_site *site, Onnx__TensorProto *t, size_t *shift,
                               bnf_err *err);
/* --lower-standalone: the BN at node index i, report entry e, skipped for a
 * reason that lowering answers, becomes Mul(X, S) -> Add(., T) with S and T
 * shaped [C, 1, ..., 1]; e->lowered is set when it did, and *dtype to the
 * type S and T are stored in (the checks' tolerance follows it). */
bnf_status bnf_fold_lower(const bnf_fold_site *site, bnf_names *names, size_t i, bnf_bn_info *e,
                          int32_t *dtype, bnf_err *err);

/* ---- verification (verify/) ------------------------------------------------------- */

/* bnf_verify_models, and in *leaned (when not NULL) how much (of max|value|)
 * the noise floor of 16-bit weights widened the tolerance of an output that
 * needed it to pass: 0 when none did. */
bnf_status bnf_verify_models_noise(const bnf_model *ma, const bnf_model *mb,
                                   const bnf_verify_options *opt, bnf_verify_result *r,
                                   double *leaned, bnf_err *err);

/* The local check of a fold about to be written: the layer and the affine
 * node (in their order) against the layer as the fold leaves it (a scratch
 * copy with the new tensors, finished by the pattern), on one random input of
 * the layer's input_shape.  *pass tells whether they agree under o's
 * tolerance, *rel_err the worst |diff| / max|out|; BNF_ERR_UNSUPPORTED when
 * the evaluator cannot run it. */
bnf_status bnf_verify_fold_local(const bnf_model *m, const bnf_graph *gi, const bnf_fold_job *job,
                                 int64_t opset, const bnf_verify_options *o, double *rel_err,
                                 int *pass, bnf_err *err);

#endif

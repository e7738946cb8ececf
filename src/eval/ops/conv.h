/*
 * eval/ops/conv.h: what Conv (conv.c, which defines these) and ConvTranspose
 * (conv_transpose.c) share: the geometry of the spatial axes and the checks
 * that fill it, in the order both kernels run them:
 *
 *   bnf_conv_inputs  X, W, optional B: float32, X of rank 3 to BNF_MAX_RANK,
 *                    W of X's rank with kernel sizes >= 1, sizes bounded
 *   (the kernel's own channel and group checks)
 *   bnf_conv_frame   B of shape [M]; kernel_shape (if given, W's), strides,
 *                    dilations; X's spatial sizes
 *   (the kernel's own padding and output sizes)
 *   bnf_conv_output  Y, N x M x the output sizes
 */
#ifndef BNF_EVAL_OPS_CONV_H
#define BNF_EVAL_OPS_CONV_H

#include "../eval.h"

typedef struct {
    size_t nsp;                                            /* spatial dimensions */
    int64_t in[BNF_MAX_SPATIAL], out[BNF_MAX_SPATIAL];     /* input and output sizes */
    int64_t k[BNF_MAX_SPATIAL];                            /* kernel sizes */
    int64_t s[BNF_MAX_SPATIAL], d[BNF_MAX_SPATIAL];        /* strides, dilations */
    int64_t pb[BNF_MAX_SPATIAL], pe[BNF_MAX_SPATIAL];      /* padding at the start, at the end */
    size_t is, os, ks; /* elements of an input plane, an output plane, a kernel */
} bnf_conv_geom;

/* Inputs X, W and B (NULL when absent), checked; g zeroed but for nsp. */
bnf_status bnf_conv_inputs(bnf_op_ctx *ctx, const bnf_tensor **x, const bnf_tensor **w,
                           const bnf_tensor **b, bnf_conv_geom *g);
/* B (when given) of shape [m]; k, ks, s, d from W and the attributes; in and is from X. */
bnf_status bnf_conv_frame(bnf_op_ctx *ctx, const bnf_tensor *x, const bnf_tensor *w,
                          const bnf_tensor *b, size_t m, bnf_conv_geom *g);
/* Output 0 allocated as float n x m x g->out. */
bnf_status bnf_conv_output(bnf_op_ctx *ctx, const bnf_conv_geom *g, size_t n, size_t m,
                           bnf_tensor **y);
/* Fills each of `planes` planes of `len` floats with bias[plane % m] (0 when no bias). */
void bnf_conv_fill_bias(float *y, const float *bias, size_t planes, size_t m, size_t len);

#endif

/*
 * eval/ops/conv.h: what Conv (conv.c, which defines these) and ConvTranspose
 * (conv_transpose.c) share: the geometry of the spatial axes and the checks
 * that fill it, in the order both kernels run them:
 *
 *   bnf_conv_inputs  X, W, optional B: float32, X of rank 3 to BNF_MAX_RANK,
 *                    W of X's rank with kernel sizes >= 1, sizes bounded;
 *                    N, C and the group attribute
 *   (the kernel's own channel and group checks: M, Cg, Mg)
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

/* A Conv or ConvTranspose node being run: its operands, channels and geometry. */
typedef struct {
    const bnf_tensor *x, *w, *b; /* inputs (b NULL when absent) */
    bnf_tensor *y;               /* output 0, once bnf_conv_output made it */
    size_t n, c, m;              /* batch, input channels, output channels */
    int64_t group;               /* the attribute, checked by the kernel */
    size_t cg, mg;               /* input and output channels per group */
    bnf_conv_geom g;
} bnf_conv_node;

/* Zeroes cv and fills x, w, b (checked), n, c, group and g.nsp. */
bnf_status bnf_conv_inputs(bnf_op_ctx *ctx, bnf_conv_node *cv);
/* B (when given) of shape [cv->m]; k, ks, s, d from W and the attributes; in
 * and is from X. */
bnf_status bnf_conv_frame(bnf_op_ctx *ctx, bnf_conv_node *cv);
/* cv->y: output 0 allocated as float n x m x g.out. */
bnf_status bnf_conv_output(bnf_op_ctx *ctx, bnf_conv_node *cv);
/* Kernel tap t (row-major over g->k) as a position per axis, into kp. */
static inline void bnf_conv_tap(const bnf_conv_geom *g, size_t t, int64_t *kp)
{
    for (size_t j = g->nsp; j-- > 0;) {
        kp[j] = (int64_t)(t % (size_t)g->k[j]);
        t /= (size_t)g->k[j];
    }
}

/* Where kernel tap kp lands from position p, over the first `axes` spatial
 * axes (all but the last): p[j] * s - pad + kp[j] * d on each (an input
 * position from an output one, as im2col reads, or the reverse, as col2im
 * writes), as a row number in extents lim into *row; whether it falls inside
 * them (else in the padding). */
static inline int bnf_conv_tap_row(const bnf_conv_geom *g, size_t axes, const int64_t *p,
                                   const int64_t *kp, const int64_t *lim, int64_t *row)
{
    int inside = 1;
    *row = 0;
    for (size_t j = 0; j < axes; j++) {
        int64_t q = p[j] * g->s[j] - g->pb[j] + kp[j] * g->d[j];
        if (q < 0 || q >= lim[j])
            inside = 0;
        *row = *row * lim[j] + q;
    }
    return inside;
}

/* Fills each of `planes` planes of `len` floats with bias[plane % m] (0 when no bias). */
void bnf_conv_fill_bias(float *y, const float *bias, size_t planes, size_t m, size_t len);

#endif

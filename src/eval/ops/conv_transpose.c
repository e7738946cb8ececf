/*
 * eval/ops/conv_transpose.c: ConvTranspose on float32 tensors, any number of
 * spatial dimensions, with groups, strides, dilations, output_padding,
 * output_shape, explicit or automatic padding and an optional bias.
 *
 * Per batch and group, col = W^T x X with bnf_sgemm (OpenBLAS), then col is
 * added into Y (col2im); a 1x1 kernel with stride 1 and no padding skips col
 * and multiplies into Y directly.  The bias is written into Y first and the
 * GEMM accumulates into it (beta = 1), so no second pass over Y.  The inputs,
 * the kernel attributes and the output are checked as Conv's (conv.h); every
 * index the loops compute is inside its tensor.
 */
#include "conv.h"

#include <string.h>

/* Adds rows [r0, r1) of col (row r = output channel * ks + kernel position,
 * one column per input position) into the output planes y. */
static void col2im_rows(const float *col, const bnf_conv_geom *g, float *y, size_t r0, size_t r1)
{
    size_t last = g->nsp - 1, iw = (size_t)g->in[last], outer = g->is / iw;
    int64_t ow = g->out[last], s = g->s[last];
    for (size_t r = r0; r < r1; r++) {
        size_t mo = r / g->ks, kr = r % g->ks;
        int64_t kp[BNF_MAX_SPATIAL], ip[BNF_MAX_SPATIAL] = {0}, lo, hi, off;
        const float *row = col + r * g->is;
        float *ym = y + mo * g->os;
        bnf_conv_tap(g, kr, kp);
        off = kp[last] * g->d[last] - g->pb[last];
        /* input columns i whose output i*s + off lies in [0, ow) */
        lo = bnf_clamp64(bnf_ceil_div(-off, s), 0, (int64_t)iw);
        hi = bnf_clamp64(bnf_ceil_div(ow - off, s), lo, (int64_t)iw);
        for (size_t o = 0; o < outer; o++) {
            const float *src = row + o * iw;
            int64_t base;
            if (bnf_conv_tap_row(g, last, ip, kp, g->out, &base)) {
                float *yr = ym + base * ow;
                for (int64_t i = lo; i < hi; i++)
                    yr[i * s + off] += src[i];
            }
            for (size_t j = last; j-- > 0;) {
                if (++ip[j] < g->in[j])
                    break;
                ip[j] = 0;
            }
        }
    }
}

static bnf_status convtranspose_geometry(bnf_op_ctx *ctx, bnf_conv_geom *g)
{
    bnf_status rc;
    int mode;
    int64_t pads[2 * BNF_MAX_SPATIAL], opad[BNF_MAX_SPATIAL], oshape[BNF_MAX_RANK];
    size_t n_os;
    if ((rc = bnf_auto_pad(ctx, &mode)))
        return rc;
    if ((rc = bnf_ctx_ints_range(ctx, "pads", 2 * g->nsp, 0, 0, BNF_ATTR_MAX, pads)) ||
        (rc = bnf_ctx_ints_range(ctx, "output_padding", g->nsp, 0, 0, BNF_ATTR_MAX, opad)))
        return rc;
    n_os = bnf_ctx_ints(ctx, "output_shape", oshape, BNF_MAX_RANK);
    if (n_os) {
        /* spatial sizes, or the whole shape N, C, spatial ... */
        if (n_os != g->nsp && n_os != g->nsp + 2)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": output_shape has %zu values for %zu spatial dimensions",
                            BNF_NODE_ARG(ctx), n_os, g->nsp);
        if (n_os == g->nsp + 2)
            memmove(oshape, oshape + 2, g->nsp * sizeof *oshape);
        for (size_t i = 0; i < g->nsp; i++)
            if (oshape[i] < 1 || oshape[i] > BNF_DIM_MAX)
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": output_shape value %lld is out of range",
                                BNF_NODE_ARG(ctx), (long long)oshape[i]);
    }
    g->os = 1;
    for (size_t i = 0; i < g->nsp; i++) {
        int64_t dk = (g->k[i] - 1) * g->d[i] + 1;
        int64_t full = g->s[i] * (g->in[i] - 1) + opad[i] + dk; /* output with no padding */
        if (n_os || mode == BNF_PAD_SAME_UPPER || mode == BNF_PAD_SAME_LOWER) {
            int64_t out = n_os ? oshape[i] : g->in[i] * g->s[i];
            int64_t total = full - out, half = bnf_floor_div(total, 2);
            if (mode == BNF_PAD_SAME_UPPER) {
                g->pb[i] = half;
                g->pe[i] = total - half;
            } else {
                g->pb[i] = total - half;
                g->pe[i] = half;
            }
            g->out[i] = out;
        } else {
            bnf_explicit_pads(mode, pads, g->nsp, i, &g->pb[i], &g->pe[i]);
            g->out[i] = full - g->pb[i] - g->pe[i];
        }
        if (g->out[i] < 0)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": the padding leaves no output along spatial axis %zu",
                            BNF_NODE_ARG(ctx), i);
        g->os *= (size_t)g->out[i];
    }
    return BNF_OK;
}

static bnf_status op_conv_transpose(bnf_op_ctx *ctx)
{
    bnf_conv_node cv;
    const bnf_conv_geom *g = &cv.g;
    bnf_status rc;
    size_t rows, colsz, ymax;
    float *col = NULL;
    int direct = 1;

    if ((rc = bnf_conv_inputs(ctx, &cv)))
        return rc;
    if (cv.group < 1 || cv.c % (size_t)cv.group)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": group %lld does not divide the %zu input channels",
                        BNF_NODE_ARG(ctx), (long long)cv.group, cv.c);
    cv.cg = cv.c / (size_t)cv.group;
    cv.mg = (size_t)cv.w->dims[1];
    if ((size_t)cv.w->dims[0] != cv.c)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": W has %lld input channels, X has %zu",
                        BNF_NODE_ARG(ctx), (long long)cv.w->dims[0], cv.c);
    if (!bnf_mul_ok(cv.mg, (size_t)cv.group, &cv.m) || cv.m > (size_t)BNF_DIM_MAX)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": too many output channels",
                        BNF_NODE_ARG(ctx));
    if ((rc = bnf_conv_frame(ctx, &cv)) || (rc = convtranspose_geometry(ctx, &cv.g)) ||
        (rc = bnf_conv_output(ctx, &cv)))
        return rc;
    for (size_t i = 0; i < g->nsp; i++)
        if (g->k[i] != 1 || g->s[i] != 1 || g->pb[i] || g->pe[i] || g->out[i] != g->in[i])
            direct = 0;
    if (cv.y->n == 0)
        return BNF_OK;
    if (!bnf_mul_ok(cv.mg, g->ks, &rows) || !bnf_mul_ok(rows, g->is, &colsz) ||
        !bnf_mul_ok(cv.m, g->os, &ymax) || !bnf_blas_ok(rows) || !bnf_blas_ok(g->is) ||
        !bnf_blas_ok(cv.cg) || !bnf_blas_ok(g->os))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": the convolution is too large",
                        BNF_NODE_ARG(ctx));
    {
        const float *xd = cv.x->data, *wd = cv.w->data;
        float *yd = cv.y->data;
        size_t cg = cv.cg, mg = cv.mg;
        bnf_conv_fill_bias(yd, cv.b ? cv.b->data : NULL, cv.n * cv.m, cv.m, g->os);
        if (cg == 0 || g->is == 0)
            return BNF_OK;
        if (!direct) {
            col = bnf_malloc(colsz * sizeof *col);
            if (!col)
                return bnf_fail(ctx->err, BNF_ERR_NOMEM,
                                BNF_NODE_FMT ": out of memory for a %zu x %zu column buffer",
                                BNF_NODE_ARG(ctx), rows, g->is);
        }
        for (size_t in = 0; in < cv.n; in++)
            for (size_t gi = 0; gi < (size_t)cv.group; gi++) {
                const float *xg = xd + (in * cv.c + gi * cg) * g->is;
                const float *wg = wd + gi * cg * rows; /* W[c, mg, k...] rows of group gi */
                float *yg = yd + (in * cv.m + gi * mg) * g->os;
                if (direct) {
                    bnf_sgemm(1, 0, mg, g->is, cg, 1.0f, wg, rows, xg, g->is, 1.0f, yg, g->os);
                } else {
                    bnf_sgemm(1, 0, rows, g->is, cg, 1.0f, wg, rows, xg, g->is, 0.0f, col, g->is);
                    col2im_rows(col, g, yg, 0, rows);
                }
            }
    }
    bnf_free(col);
    return BNF_OK;
}

const bnf_op_def bnf_ops_conv_transpose[] = {
    {"ConvTranspose", 1, op_conv_transpose},
    {NULL, 0, NULL},
};

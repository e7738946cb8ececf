/*
 * eval/ops/conv.c: Conv on float32 tensors, any number of spatial dimensions
 * (1-D, 2-D, 3-D ...), with groups, strides, dilations, explicit or automatic
 * padding and an optional bias; and the checks it shares with ConvTranspose
 * (conv.h).
 *
 * Conv takes one of three paths per node:
 *  - pointwise (1x1 kernel, stride 1, no padding): W[Mg, Cg] x X[Cg, spatial]
 *    per batch and group;
 *  - depthwise (one input channel per group, 1-D or 2-D, strides up to 16
 *    sub-planes): no GEMM, bnf_depthwise (eval/kernels/depthwise.c), unless
 *    it declines the plane;
 *  - otherwise im2col of each batch and group into a scratch buffer
 *    [Cg * kernel, out spatial] (by blocks of output rows when large), then the
 *    GEMM.
 * The GEMMs run on W packed once per session (eval/kernels/gemm_packed.c: our
 * AVX2 / AVX-512 kernels; the packed copy is kept in the node's cache and
 * replaces the weights, see packed_weights()), or on OpenBLAS (bnf_sgemm) on a
 * CPU without AVX2.  They are cut into column (or row) blocks shared out over
 * the session's threads; the bias and the nodes the session fused after the
 * Conv (ctx->epi: BatchNormalization, Relu, Clip, Sigmoid, SiLU, a residual
 * Add) are applied to each block right after its GEMM, while it is in cache,
 * and to each depthwise plane right after it is computed.
 *
 * Shapes and attributes are checked before any work: every index the loops
 * compute is inside its tensor (attributes and spatial sizes are bounded so
 * the int64 shape arithmetic cannot overflow).
 */
#include "conv.h"

#include <stdlib.h>
#include <string.h>

/* ---- what Conv and ConvTranspose share (conv.h) ------------------------------------ */

bnf_status bnf_conv_inputs(bnf_op_ctx *ctx, bnf_conv_node *cv)
{
    const bnf_tensor *x, *w, *b;
    bnf_status rc = bnf_need_inputs(ctx, 2, 3, "inputs X, W and an optional B");
    if (rc)
        return rc;
    memset(cv, 0, sizeof *cv);
    x = cv->x = ctx->in[0];
    w = cv->w = ctx->in[1];
    b = cv->b = ctx->n_in > 2 ? ctx->in[2] : NULL;
    if (x->dtype != BNF_T_FLOAT || w->dtype != BNF_T_FLOAT || (b && b->dtype != BNF_T_FLOAT))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": only float32 is supported (X is %s, W is %s)",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(x->dtype), bnf_dtype_name(w->dtype));
    if ((rc = bnf_check_spatial(ctx, x, w)))
        return rc;
    cv->g.nsp = x->rank - 2;
    cv->n = (size_t)x->dims[0];
    cv->c = (size_t)x->dims[1];
    cv->group = bnf_ctx_int(ctx, "group", 1);
    return BNF_OK;
}

bnf_status bnf_conv_frame(bnf_op_ctx *ctx, bnf_conv_node *cv)
{
    bnf_conv_geom *g = &cv->g;
    const bnf_tensor *x = cv->x, *w = cv->w, *b = cv->b;
    bnf_status rc;
    int64_t ks[BNF_MAX_SPATIAL];
    size_t n;
    if (b && (b->rank != 1 || (size_t)b->dims[0] != cv->m))
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": B must have shape [%zu]",
                        BNF_NODE_ARG(ctx), cv->m);
    n = bnf_ctx_ints(ctx, "kernel_shape", ks, BNF_MAX_SPATIAL);
    if (n) {
        if (n != g->nsp)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": kernel_shape has %zu values for %zu spatial dimensions",
                            BNF_NODE_ARG(ctx), n, g->nsp);
        for (size_t i = 0; i < n; i++)
            if (ks[i] != w->dims[i + 2])
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": kernel_shape[%zu] = %lld, W has %lld",
                                BNF_NODE_ARG(ctx), i, (long long)ks[i], (long long)w->dims[i + 2]);
    }
    g->ks = 1;
    for (size_t i = 0; i < g->nsp; i++) {
        g->k[i] = w->dims[i + 2];
        g->ks *= (size_t)g->k[i];
    }
    if ((rc = bnf_ctx_ints_range(ctx, "strides", g->nsp, 1, 1, BNF_ATTR_MAX, g->s)) ||
        (rc = bnf_ctx_ints_range(ctx, "dilations", g->nsp, 1, 1, BNF_ATTR_MAX, g->d)))
        return rc;
    g->is = 1;
    for (size_t i = 0; i < g->nsp; i++) {
        g->in[i] = x->dims[i + 2];
        g->is *= (size_t)g->in[i];
    }
    return BNF_OK;
}

/* N x M x the output sizes. */
static void conv_dims(const bnf_conv_node *cv, int64_t *dims)
{
    dims[0] = (int64_t)cv->n;
    dims[1] = (int64_t)cv->m;
    for (size_t i = 0; i < cv->g.nsp; i++)
        dims[i + 2] = cv->g.out[i];
}

bnf_status bnf_conv_output(bnf_op_ctx *ctx, bnf_conv_node *cv)
{
    int64_t dims[BNF_MAX_RANK];
    conv_dims(cv, dims);
    return bnf_out(ctx, 0, BNF_T_FLOAT, dims, cv->g.nsp + 2, &cv->y);
}

void bnf_conv_fill_bias(float *y, const float *bias, size_t planes, size_t m, size_t len)
{
    if (!bias) {
        memset(y, 0, planes * len * sizeof *y);
        return;
    }
    for (size_t p = 0; p < planes; p++) {
        float v = bias[p % m], *row = y + p * len;
        bnf_v4f vv = {v, v, v, v};
        size_t i = 0;
        for (; i + 4 <= len; i += 4)
            memcpy(row + i, &vv, sizeof vv);
        for (; i < len; i++)
            row[i] = v;
    }
}

/* ---- Conv: im2col --------------------------------------------------------------- */

/* The output range [lo, hi) along one dimension whose input index o*s - p + kd
 * lies in [0, in). */
static void valid_range(int64_t in, int64_t out, int64_t s, int64_t p, int64_t kd, int64_t *lo,
                        int64_t *hi)
{
    *lo = bnf_clamp64(bnf_ceil_div(p - kd, s), 0, out);
    *hi = bnf_clamp64(bnf_ceil_div(in + p - kd, s), *lo, out);
}

/* dst[i] = src[2 i] for i in [0, n); src has avail readable elements (at
 * least 2 n - 1): the stride-2 rows of im2col (a network's stem). */
static void gather_even(float *dst, const float *src, int64_t n, int64_t avail)
{
    int64_t i = 0;
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    for (; i + 4 <= n && 2 * i + 8 <= avail; i += 4)
        bnf_st4(dst + i, __builtin_shufflevector(bnf_ld4(src + 2 * i), bnf_ld4(src + 2 * i + 4),
                                                 0, 2, 4, 6));
#else
    (void)avail;
#endif
    for (; i < n; i++)
        dst[i] = src[2 * i];
}

/* Rows [r0, r1) of the column matrix of `x` (channels of g->is elements),
 * for the output rows [o0, o1) (an output row: the last spatial dimension):
 * row r = c * ks + kernel position holds, for each of those output positions,
 * the input value under that kernel tap (0 in the padding); rows of col are
 * (o1 - o0) * out[last] long. */
static void im2col_part(const float *x, const bnf_conv_geom *g, float *col, size_t r0, size_t r1,
                        size_t o0, size_t o1)
{
    size_t last = g->nsp - 1, ow = (size_t)g->out[last], len = (o1 - o0) * ow;
    int64_t w = g->in[last], s = g->s[last];
    for (size_t r = r0; r < r1; r++) {
        size_t c = r / g->ks, kr = r % g->ks;
        int64_t kp[BNF_MAX_SPATIAL], op[BNF_MAX_SPATIAL] = {0}, lo, hi, off;
        const float *xc = x + c * g->is;
        float *row = col + r * len;
        bnf_conv_tap(g, kr, kp);
        for (size_t j = last, rest = o0; j-- > 0;) { /* the output position of row o0 */
            op[j] = (int64_t)(rest % (size_t)g->out[j]);
            rest /= (size_t)g->out[j];
        }
        off = kp[last] * g->d[last] - g->pb[last];
        valid_range(w, (int64_t)ow, s, g->pb[last], kp[last] * g->d[last], &lo, &hi);
        for (size_t o = o0; o < o1; o++) {
            float *dst = row + (o - o0) * ow;
            int64_t base;
            if (!bnf_conv_tap_row(g, last, op, kp, g->in, &base) || lo >= hi) {
                memset(dst, 0, ow * sizeof *dst);
            } else {
                const float *xr = xc + base * w;
                for (int64_t i = 0; i < lo; i++)
                    dst[i] = 0;
                if (s == 1)
                    memcpy(dst + lo, xr + lo + off, (size_t)(hi - lo) * sizeof *dst);
                else if (s == 2)
                    gather_even(dst + lo, xr + 2 * lo + off, hi - lo, w - (2 * lo + off));
                else
                    for (int64_t i = lo; i < hi; i++)
                        dst[i] = xr[i * s + off];
                for (int64_t i = hi; i < (int64_t)ow; i++)
                    dst[i] = 0;
            }
            for (size_t j = last; j-- > 0;) {
                if (++op[j] < g->out[j])
                    break;
                op[j] = 0;
            }
        }
    }
}

/* ---- Conv: GEMM ------------------------------------------------------------------ */

/*
 * Y[mg, os] = W[mg, rows] x X'[rows, os] per batch and group, X' being X itself
 * (pointwise) or its im2col.  The GEMM is cut into blocks of output columns
 * (or, when the output is narrow, of rows) shared out over the threads, each
 * block one single-threaded bnf_sgemm; the bias and any fused nodes
 * (ctx->epi) are applied to each block right after its GEMM, while it is in
 * cache: y = act(gemm * scale[c] + shift[c]) with shift = bias * s + t.
 */
typedef struct {
    const float *w, *x;   /* W of the group, X' (rows x os, row stride ldx) */
    float *y;             /* mg x os */
    size_t mg, os, rows, ldx, m0;  /* m0: the group's first output channel */
    size_t blk;           /* columns (or rows, when by_rows) per block */
    int by_rows;
    const bnf_epilogue *epi;
    const bnf_packed *pk; /* W packed (then bnf_packed_gemm), or NULL (OpenBLAS) */
    float *scratch;       /* for bnf_packed_gemm: per thread, sc floats */
    size_t sc;
} gemm_job;

static void gemm_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const gemm_job *j = arg;
    for (size_t b = lo; b < hi; b++) {
        size_t r0 = 0, r1 = j->mg, c0 = 0, c1 = j->os;
        if (j->by_rows) {
            r0 = b * j->blk;
            r1 = r0 + j->blk < j->mg ? r0 + j->blk : j->mg;
        } else {
            c0 = b * j->blk;
            c1 = c0 + j->blk < j->os ? c0 + j->blk : j->os;
        }
        if (r0 >= r1 || c0 >= c1)
            continue;
        if (j->pk)
            bnf_packed_gemm(j->pk, r0, r1, j->x + c0, j->ldx, c1 - c0, j->y + c0, j->os,
                            j->scratch + tid * j->sc);
        else
            bnf_sgemm(0, 0, r1 - r0, c1 - c0, j->rows, 1.0f, j->w + r0 * j->rows, j->rows,
                      j->x + c0, j->ldx, 0.0f, j->y + r0 * j->os + c0, j->os);
        if (j->epi)
            for (size_t r = r0; r < r1; r++)
                bnf_epilogue_apply(j->epi, j->m0 + r, j->y + r * j->os + c0, c1 - c0);
    }
}

typedef struct {
    const float *x;
    const bnf_conv_geom *g;
    float *col;
} im2col_job;

static void im2col_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const im2col_job *j = arg;
    (void)tid;
    im2col_part(j->x, j->g, j->col, lo, hi, 0, j->g->os / (size_t)j->g->out[j->g->nsp - 1]);
}

/* Blocks for gemm_job: column blocks of about 512 KiB of output (so that the
 * epilogue finds the block in cache) but at least 256 columns (each block
 * packs W again), as many blocks as threads at least; narrow outputs (up to
 * 1024 columns, with enough rows) are cut by rows instead. */
static size_t gemm_blocks(gemm_job *j, size_t nt)
{
    size_t nb, per = 131072 / (j->mg ? j->mg : 1);
    if (per < 256)
        per = 256;
    if (nt > 1 && (j->os < 64 * nt || (j->os <= 1024 && j->mg >= 32 * nt))) {
        /* narrow outputs: by rows, each thread packing its rows of W (measured
         * faster than column pieces of fewer than ~512 columns) */
        size_t unit = j->pk ? bnf_packed_mr(j->pk) : 8; /* the packed GEMM's rows per panel */
        j->by_rows = 1;
        j->blk = ((j->mg + nt - 1) / nt + unit - 1) / unit * unit;
        return (j->mg + j->blk - 1) / j->blk;
    }
    j->by_rows = 0;
    if (!j->epi && nt == 1) {
        j->blk = j->os; /* nothing to apply: one GEMM */
        return 1;
    }
    nb = (j->os + per - 1) / per;
    if (nb < nt)
        nb = nt;
    nb = (nb + nt - 1) / nt * nt; /* whole rounds */
    j->blk = (j->os + nb - 1) / nb;
    j->blk = (j->blk + 15) / 16 * 16;
    return (j->os + j->blk - 1) / j->blk;
}

/* The im2col path by blocks of output rows: each block's column matrix (about
 * 256 KiB) is made, multiplied and its outputs finished (bias, fused nodes)
 * while it is in cache, never the whole matrix; blocks are shared out over
 * the threads, each with its own column buffer. */
typedef struct {
    const float *x, *w;  /* the group's input planes and weights */
    float *y;            /* the group's output planes */
    const bnf_conv_geom *g;
    size_t mg, rows, m0; /* output channels, column rows, first output channel */
    size_t ow, outer;    /* output row length, output rows */
    size_t nro;          /* output rows per block */
    float *scratch;      /* per thread: rows * nro * ow floats, then pks for the packed GEMM */
    size_t pks;
    const bnf_epilogue *epi;
    const bnf_packed *pk; /* W packed, or NULL (OpenBLAS) */
} colblk_job;

static void colblk_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const colblk_job *j = arg;
    float *col = j->scratch + tid * (j->rows * j->nro * j->ow + j->pks);
    for (size_t b = lo; b < hi; b++) {
        size_t o0 = b * j->nro, o1 = o0 + j->nro < j->outer ? o0 + j->nro : j->outer;
        size_t c0 = o0 * j->ow, n = (o1 - o0) * j->ow;
        if (o0 >= o1)
            continue;
        im2col_part(j->x, j->g, col, 0, j->rows, o0, o1);
        if (j->pk)
            bnf_packed_gemm(j->pk, 0, j->mg, col, n, n, j->y + c0, j->g->os,
                            col + j->rows * j->nro * j->ow);
        else
            bnf_sgemm(0, 0, j->mg, n, j->rows, 1.0f, j->w, j->rows, col, n, 0.0f, j->y + c0,
                      j->g->os);
        if (j->epi)
            for (size_t r = 0; r < j->mg; r++)
                bnf_epilogue_apply(j->epi, j->m0 + r, j->y + r * j->g->os + c0, n);
    }
}

/* Output rows per block for colblk_job, or 0 when the column matrix is small
 * enough to make whole (fewer blocks than threads, or one). */
static size_t colblk_rows(const bnf_conv_geom *g, size_t rows, size_t nt)
{
    size_t ow = (size_t)g->out[g->nsp - 1], outer = g->os / ow, target, nro, blocks;
    target = 65536 / (rows ? rows : 1);
    if (target < 256)
        target = 256;
    nro = (target + ow - 1) / ow;
    if (nro > outer)
        nro = outer;
    blocks = (outer + nro - 1) / nro;
    if (blocks < 2 || blocks < nt)
        return 0;
    blocks = (blocks + nt - 1) / nt * nt; /* whole rounds */
    return (outer + blocks - 1) / blocks;
}

static bnf_status conv_gemm(bnf_op_ctx *ctx, const bnf_conv_node *cv, const float *wd,
                            size_t rows, int pointwise, const bnf_epilogue *epi,
                            bnf_packed *const *pk)
{
    const bnf_conv_geom *g = &cv->g;
    const float *xd = cv->x->data, *bd = cv->b ? cv->b->data : NULL;
    float *yd = cv->y->data;
    size_t n = cv->n, group = (size_t)cv->group, c = cv->c, m = cv->m, cg = cv->cg, mg = cv->mg;
    bnf_epilogue e = {NULL, NULL, m, BNF_ACT_NONE, 0, 0, NULL, 0, BNF_ACT_NONE, yd};
    float *col = NULL, *aff = NULL, *pscratch = NULL;
    size_t work, nt, nro, psc = 0;
    if (bd || (epi && epi->scale)) {
        /* bias and the fused affine in one: act((y + b) s + t) = act(y s + (b s + t)) */
        if (!(aff = bnf_malloc(2 * m * sizeof *aff)))
            return bnf_nomem(ctx);
        for (size_t i = 0; i < m; i++) {
            double sc = epi && epi->scale ? epi->scale[i] : 1.0;
            double sh = epi && epi->scale ? epi->shift[i] : 0.0;
            aff[i] = (float)sc;
            aff[m + i] = (float)((bd ? bd[i] : 0.0) * sc + sh);
        }
        e.scale = aff;
        e.shift = aff + m;
    }
    if (epi) {
        e.res = epi->res;
        e.res_n = epi->res_n;
        e.post = epi->post;
        e.act = epi->act;
        e.lo = epi->lo;
        e.hi = epi->hi;
    }
    if (rows == 0) { /* no input channels: Y is the bias, through the epilogue */
        bnf_conv_fill_bias(yd, NULL, n * m, m, g->os);
        for (size_t p = 0; p < n * m; p++)
            bnf_epilogue_apply(&e, p % m, yd + p * g->os, g->os);
        bnf_free(aff);
        return BNF_OK;
    }
    if (!bnf_mul_ok(mg * g->os, rows, &work))
        work = SIZE_MAX;
    nt = bnf_par_threads(ctx, mg > g->os ? mg : g->os, work / 8);
    if (!pointwise && (nro = colblk_rows(g, rows, nt)) > 0) {
        size_t ow = (size_t)g->out[g->nsp - 1], outer = g->os / ow;
        size_t blocks = (outer + nro - 1) / nro;
        size_t pks = pk ? bnf_packed_scratch(rows, nro * ow) : 0;
        float *scratch = bnf_malloc(nt * (rows * nro * ow + pks) * sizeof *scratch);
        if (!scratch) {
            bnf_free(aff);
            return bnf_nomem(ctx);
        }
        for (size_t in = 0; in < n; in++)
            for (size_t gi = 0; gi < group; gi++) {
                colblk_job cj = {xd + (in * c + gi * cg) * g->is, wd ? wd + gi * mg * rows : NULL,
                                 yd + (in * m + gi * mg) * g->os, g, mg, rows, gi * mg, ow,
                                 outer, nro, scratch, pks,
                                 e.scale || e.act != BNF_ACT_NONE || e.res ? &e : NULL,
                                 pk ? pk[gi] : NULL};
                bnf_parallel(ctx, nt, blocks, colblk_range, &cj);
            }
        bnf_free(scratch);
        bnf_free(aff);
        return BNF_OK;
    }
    if (pk) {
        psc = bnf_packed_scratch(rows, g->os);
        if (!(pscratch = bnf_malloc(nt * psc * sizeof *pscratch))) {
            bnf_free(aff);
            return bnf_nomem(ctx);
        }
    }
    if (!pointwise) {
        col = bnf_malloc(rows * g->os * sizeof *col);
        if (!col) {
            bnf_free(pscratch);
            bnf_free(aff);
            return bnf_fail(ctx->err, BNF_ERR_NOMEM,
                            BNF_NODE_FMT ": out of memory for a %zu x %zu im2col buffer",
                            BNF_NODE_ARG(ctx), rows, g->os);
        }
    }
    for (size_t in = 0; in < n; in++)
        for (size_t gi = 0; gi < group; gi++) {
            const float *xg = xd + (in * c + gi * cg) * g->is;
            gemm_job j;
            size_t nb;
            if (!pointwise) {
                im2col_job ij = {xg, g, col};
                bnf_parallel(ctx, bnf_par_threads(ctx, rows, rows * g->os), rows, im2col_range,
                             &ij);
            }
            j = (gemm_job){wd ? wd + gi * mg * rows : NULL, pointwise ? xg : col,
                           yd + (in * m + gi * mg) * g->os, mg, g->os, rows,
                           pointwise ? g->is : g->os, gi * mg, 0, 0,
                           e.scale || e.act != BNF_ACT_NONE || e.res ? &e : NULL,
                           pk ? pk[gi] : NULL, pscratch, psc};
            nb = gemm_blocks(&j, nt);
            bnf_parallel(ctx, nt, nb, gemm_range, &j);
        }
    bnf_free(col);
    bnf_free(pscratch);
    bnf_free(aff);
    return BNF_OK;
}

/* ---- Conv ------------------------------------------------------------------------- */

/* Output sizes and padding of a Conv (also used for the shapes of its checks). */
static bnf_status conv_geometry(bnf_op_ctx *ctx, bnf_conv_geom *g)
{
    bnf_status rc;
    int mode;
    int64_t pads[2 * BNF_MAX_SPATIAL];
    if ((rc = bnf_auto_pad(ctx, &mode)))
        return rc;
    if ((rc = bnf_ctx_ints_range(ctx, "pads", 2 * g->nsp, 0, 0, BNF_ATTR_MAX, pads)))
        return rc;
    g->os = 1;
    for (size_t i = 0; i < g->nsp; i++) {
        int64_t dk = (g->k[i] - 1) * g->d[i] + 1, in = g->in[i];
        if (mode == BNF_PAD_SAME_UPPER || mode == BNF_PAD_SAME_LOWER)
            bnf_same_pads(in, g->s[i], dk, mode, &g->pb[i], &g->pe[i]);
        else
            bnf_explicit_pads(mode, pads, g->nsp, i, &g->pb[i], &g->pe[i]);
        if (in + g->pb[i] + g->pe[i] < dk)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": the kernel (%lld with dilation) is larger than the "
                            "padded input (%lld) along spatial axis %zu",
                            BNF_NODE_ARG(ctx), (long long)dk,
                            (long long)(in + g->pb[i] + g->pe[i]), i);
        g->out[i] = (in + g->pb[i] + g->pe[i] - dk) / g->s[i] + 1;
        g->os *= (size_t)g->out[i];
    }
    return BNF_OK;
}

/* W packed for bnf_packed_gemm, one matrix per group (mg x rows each). */
typedef struct {
    size_t groups, mg, rows;
    bnf_packed *pk[];
} packed_set;

static void packed_set_free(void *vp)
{
    packed_set *ps = vp;
    if (!ps)
        return;
    for (size_t i = 0; i < ps->groups; i++)
        bnf_packed_free(ps->pk[i]);
    bnf_free(ps);
}

static packed_set *packed_set_new(const float *w, size_t groups, size_t mg, size_t rows)
{
    packed_set *ps = bnf_calloc(1, sizeof *ps + groups * sizeof ps->pk[0]);
    if (!ps)
        return NULL;
    *ps = (packed_set){0, mg, rows};
    for (; ps->groups < groups; ps->groups++)
        if (!(ps->pk[ps->groups] = bnf_packed_new(w + ps->groups * mg * rows, mg, rows, rows))) {
            packed_set_free(ps);
            return NULL;
        }
    return ps;
}

/* Output columns (batch x positions) below which a Conv outside a session
 * multiplies W as it is, not packed. */
#define ONE_OFF_COLUMNS 256

/* The packed weights: kept in the node's cache when W is a session constant
 * (packed on the first run), else packed for this run (*own, to free). */
static bnf_status packed_weights(bnf_op_ctx *ctx, const float *w, size_t groups, size_t mg,
                                 size_t rows, packed_set **ps, packed_set **own)
{
    packed_set *c = ctx->cache ? ctx->cache->data : NULL;
    /* W a session constant: the same in every run (its data may be gone since
     * the first: see drop_in), so the shape is the key */
    int cacheable = ctx->cache && (ctx->const_in & 2u) &&
                    (!ctx->cache->data || ctx->cache->free == packed_set_free);
    if (cacheable && c && c->groups == groups && c->mg == mg && c->rows == rows) {
        *ps = c;
        return BNF_OK;
    }
    if (!w)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": W has no data",
                        BNF_NODE_ARG(ctx));
    if (groups > SIZE_MAX / sizeof(bnf_packed *) - 1 || !(*ps = packed_set_new(w, groups, mg, rows)))
        return bnf_nomem(ctx);
    if (cacheable) {
        packed_set_free(c);
        ctx->cache->data = *ps;
        ctx->cache->free = packed_set_free;
        ctx->cache->drop_in |= 2u; /* the packed copy is all this node reads of W */
    } else {
        *own = *ps;
    }
    return BNF_OK;
}

static bnf_status op_conv(bnf_op_ctx *ctx)
{
    bnf_conv_node cv;
    const bnf_conv_geom *g = &cv.g;
    bnf_status rc;
    size_t rows, colsz;
    int pointwise = 1;

    if ((rc = bnf_conv_inputs(ctx, &cv)))
        return rc;
    if (ctx->epi && ctx->epi->channels != (size_t)cv.w->dims[0])
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": the fused nodes after it have %zu channels, W has %lld",
                        BNF_NODE_ARG(ctx), ctx->epi->channels, (long long)cv.w->dims[0]);
    cv.m = (size_t)cv.w->dims[0];
    if (cv.group < 1 || cv.c % (size_t)cv.group || cv.m % (size_t)cv.group)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": group %lld does not divide the %zu input and %zu output channels",
                        BNF_NODE_ARG(ctx), (long long)cv.group, cv.c, cv.m);
    cv.cg = cv.c / (size_t)cv.group;
    cv.mg = cv.m / (size_t)cv.group;
    if ((size_t)cv.w->dims[1] != cv.cg)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": W has %lld input channels per group, X has %zu / %lld",
                        BNF_NODE_ARG(ctx), (long long)cv.w->dims[1], cv.c, (long long)cv.group);
    if ((rc = bnf_conv_frame(ctx, &cv)) || (rc = conv_geometry(ctx, &cv.g)) ||
        (rc = bnf_conv_output(ctx, &cv)))
        return rc;
    for (size_t i = 0; i < g->nsp; i++)
        if (g->k[i] != 1 || g->s[i] != 1 || g->pb[i] || g->pe[i])
            pointwise = 0;
    if (ctx->epi && ctx->epi->res && ctx->epi->res_n != cv.y->n)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": the fused Add has %zu elements, the output %zu",
                        BNF_NODE_ARG(ctx), ctx->epi->res_n, cv.y->n);
    if (cv.y->n == 0)
        return BNF_OK;
    if (!bnf_mul_ok(cv.cg, g->ks, &rows) || !bnf_mul_ok(rows, g->os, &colsz) ||
        !bnf_blas_ok(rows) || !bnf_blas_ok(g->os) || !bnf_blas_ok(cv.mg) || !bnf_blas_ok(g->is))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": the convolution is too large",
                        BNF_NODE_ARG(ctx));
    {
        const float *wd = cv.w->data;
        bnf_epilogue el, *epi = NULL;
        if (ctx->epi) { /* the kernel's copy: y0 is this output */
            el = *ctx->epi;
            el.y0 = cv.y->data;
            epi = &el;
        }
        /* depthwise: one input channel per group, strides small enough for
         * the polyphase layout (larger ones are left to im2col) */
        if (cv.cg == 1 && cv.group > 1 && g->nsp <= 2 &&
            (g->nsp == 2 ? g->s[0] * g->s[1] : g->s[0]) <= 16) {
            if (!wd)
                return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": W has no data",
                                BNF_NODE_ARG(ctx));
            int declined = 0;
            bnf_plane pl;
            bnf_plane_init(&pl, g->nsp, g->in, g->out, g->k, g->s, g->pb, g->d);
            rc = bnf_depthwise(ctx, &pl, cv.x->data, wd, cv.b ? cv.b->data : NULL, cv.y->data,
                               cv.n, cv.m, cv.mg, epi, &declined);
            if (rc || !declined)
                return rc;
        }
        {
            packed_set *own = NULL, *ps = NULL;
            /* a copy of W in panels pays when it is kept (a session's node) or
             * used over many output columns; a one-off product on a few columns
             * (the local check's small input) is OpenBLAS's: it copies W in
             * cache-sized pieces, not all of it into a new allocation */
            size_t cols = cv.m ? cv.y->n / cv.m : 0;
            if (rows > 0 && bnf_packed_usable() && (ctx->cache || cols >= ONE_OFF_COLUMNS) &&
                (rc = packed_weights(ctx, wd, (size_t)cv.group, cv.mg, rows, &ps, &own)))
                return rc;
            if (ctx->cache && cv.cg == 1 && cv.group > 1)
                ctx->cache->drop_in = 0; /* a depthwise Conv declined here: W read next time */
            if (!ps && !wd)
                return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": W has no data",
                                BNF_NODE_ARG(ctx));
            rc = conv_gemm(ctx, &cv, wd, rows, pointwise, epi, ps ? ps->pk : NULL);
            packed_set_free(own);
        }
    }
    return rc;
}

bnf_status bnf_conv_out_dims(bnf_op_ctx *ctx, int64_t *dims, size_t *rank)
{
    bnf_conv_node cv;
    bnf_status rc = bnf_conv_inputs(ctx, &cv);
    if (rc)
        return rc;
    cv.b = NULL; /* (B is checked by the kernel) */
    cv.m = (size_t)cv.w->dims[0];
    if ((rc = bnf_conv_frame(ctx, &cv)) || (rc = conv_geometry(ctx, &cv.g)))
        return rc;
    conv_dims(&cv, dims);
    *rank = cv.g.nsp + 2;
    return BNF_OK;
}

const bnf_op_def bnf_ops_conv[] = {
    {"Conv", 1, op_conv},
    {NULL, 0, NULL},
};

/*
 * eval/ops/pool.c: MaxPool (with its optional Indices output), AveragePool,
 * GlobalAveragePool and GlobalMaxPool over any number of spatial dimensions.
 *
 * MaxPool and AveragePool share the window geometry: kernel_shape, strides,
 * dilations, explicit pads or auto_pad, ceil_mode (a window that would start
 * inside the end padding is dropped).  For each output position and each
 * spatial axis a table gives the kernel taps that fall inside the input, so the
 * inner loops never test bounds.  Padding never wins a max; AveragePool divides
 * by the taps inside the input, or with count_include_pad by the taps inside
 * the padded input.
 *
 * float and double have their own loops; MaxPool on int8/uint8 goes through a
 * float copy (exact for those values).  float 1-D and 2-D pools without
 * Indices take a SIMD path instead that reads each plane through a padded copy
 * (-inf or 0 around it), with no bounds tests at all.  Indices are int64 offsets into X
 * (batch and channel included), row-major, or column-major over the spatial
 * axes when storage_order = 1.
 */
#include "../eval.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SP BNF_MAX_SPATIAL

typedef struct {
    int64_t lo, hi;  /* kernel taps inside the input */
    int64_t padded;  /* kernel taps inside the padded input */
} win;

typedef struct {
    size_t nsp;
    int64_t in[MAX_SP], out[MAX_SP], k[MAX_SP], s[MAX_SP], d[MAX_SP], pb[MAX_SP], pe[MAX_SP];
    size_t is, os;
    const win *tab[MAX_SP]; /* per axis, per output index */
} pgeom;

enum { POOL_MAX, POOL_AVG };

/* X of rank >= 3 with spatial sizes in range, of one of the types in `ok`. */
static bnf_status check_x(bnf_op_ctx *ctx, const int32_t *ok, size_t n_ok, const char *types)
{
    const bnf_tensor *x;
    size_t i;
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, "one input X");
    if (rc)
        return rc;
    x = ctx->in[0];
    for (i = 0; i < n_ok && ok[i] != x->dtype; i++)
        ;
    if (i == n_ok)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": X is %s, supported: %s",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(x->dtype), types);
    return bnf_check_spatial(ctx, x, NULL);
}

/* Window geometry of MaxPool / AveragePool from X and the attributes; *tabs
 * receives the tap tables (free it). */
static bnf_status pool_geometry(bnf_op_ctx *ctx, const bnf_tensor *x, pgeom *g, win **tabs)
{
    bnf_status rc;
    int64_t pads[2 * MAX_SP], ceil_mode;
    int mode;
    size_t total = 0;
    win *t;

    memset(g, 0, sizeof *g);
    g->nsp = x->rank - 2;
    if (bnf_ctx_ints(ctx, "kernel_shape", g->k, MAX_SP) != g->nsp)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": kernel_shape must have one value per spatial axis (%zu)",
                        BNF_NODE_ARG(ctx), g->nsp);
    if ((rc = bnf_ctx_ints_range(ctx, "kernel_shape", g->nsp, 1, 1, BNF_DIM_MAX, g->k)) ||
        (rc = bnf_ctx_ints_range(ctx, "strides", g->nsp, 1, 1, BNF_ATTR_MAX, g->s)) ||
        (rc = bnf_ctx_ints_range(ctx, "dilations", g->nsp, 1, 1, BNF_ATTR_MAX, g->d)) ||
        (rc = bnf_ctx_ints_range(ctx, "pads", 2 * g->nsp, 0, 0, BNF_ATTR_MAX, pads)))
        return rc;
    ceil_mode = bnf_ctx_int(ctx, "ceil_mode", 0);
    if ((rc = bnf_auto_pad(ctx, &mode)))
        return rc;
    g->is = g->os = 1;
    for (size_t i = 0; i < g->nsp; i++) {
        int64_t in = x->dims[i + 2], dk = (g->k[i] - 1) * g->d[i] + 1, span;
        g->in[i] = in;
        if (mode == BNF_PAD_SAME_UPPER || mode == BNF_PAD_SAME_LOWER) {
            g->out[i] = bnf_same_pads(in, g->s[i], dk, mode, &g->pb[i], &g->pe[i]);
        } else {
            bnf_explicit_pads(mode, pads, g->nsp, i, &g->pb[i], &g->pe[i]);
            span = in + g->pb[i] + g->pe[i] - dk;
            if (span < 0)
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": the window (%lld with dilation) is larger than the "
                                "padded input (%lld) along spatial axis %zu",
                                BNF_NODE_ARG(ctx), (long long)dk,
                                (long long)(in + g->pb[i] + g->pe[i]), i);
            if (ceil_mode && mode != BNF_PAD_VALID) {
                g->out[i] = bnf_ceil_div(span, g->s[i]) + 1;
                /* the last window must start inside the input or its start padding */
                if ((g->out[i] - 1) * g->s[i] >= in + g->pb[i])
                    g->out[i]--;
            } else {
                g->out[i] = span / g->s[i] + 1;
            }
        }
        g->is *= (size_t)in;
        g->os *= (size_t)g->out[i];
        total += (size_t)g->out[i];
    }
    t = bnf_malloc((total ? total : 1) * sizeof *t);
    if (!t)
        return bnf_nomem(ctx);
    *tabs = t;
    for (size_t i = 0; i < g->nsp; i++) {
        g->tab[i] = t;
        for (int64_t o = 0; o < g->out[i]; o++, t++) {
            int64_t st = o * g->s[i] - g->pb[i], plo, phi;
            t->lo = bnf_clamp64(bnf_ceil_div(-st, g->d[i]), 0, g->k[i]);
            t->hi = bnf_clamp64(bnf_ceil_div(g->in[i] - st, g->d[i]), t->lo, g->k[i]);
            plo = bnf_clamp64(bnf_ceil_div(-g->pb[i] - st, g->d[i]), 0, g->k[i]);
            phi = bnf_clamp64(bnf_ceil_div(g->in[i] + g->pe[i] - st, g->d[i]), plo, g->k[i]);
            t->padded = phi - plo;
        }
    }
    return BNF_OK;
}

/* One (batch, channel) plane: x has g->is elements, y and idx (may be NULL)
 * g->os.  idx gets the row-major offset inside the plane. */
#define POOL_PLANE(NAME, T, LOWEST)                                                             \
    static void NAME(const T *x, T *y, int64_t *idx, const pgeom *g, int kind, int include_pad) \
    {                                                                                           \
        size_t last = g->nsp - 1;                                                               \
        int64_t o[MAX_SP] = {0}, w = g->in[last];                                               \
        for (size_t oi = 0; oi < g->os; oi++) {                                                 \
            int64_t st[MAX_SP], lo[MAX_SP], hi[MAX_SP], t[MAX_SP], cnt = 1, pcnt = 1;           \
            int empty = 0;                                                                      \
            T best = LOWEST;                                                                    \
            int64_t bpos = -1;                                                                  \
            double sum = 0;                                                                     \
            for (size_t j = 0; j < g->nsp; j++) {                                               \
                const win *wj = &g->tab[j][o[j]];                                               \
                st[j] = o[j] * g->s[j] - g->pb[j];                                              \
                lo[j] = t[j] = wj->lo;                                                          \
                hi[j] = wj->hi;                                                                 \
                cnt *= hi[j] - lo[j];                                                           \
                pcnt *= wj->padded;                                                             \
                if (lo[j] >= hi[j])                                                             \
                    empty = 1;                                                                  \
            }                                                                                   \
            while (!empty) {                                                                    \
                int64_t base = 0, d = g->d[last], s0 = st[last];                                \
                const T *row;                                                                   \
                size_t j;                                                                       \
                for (j = 0; j < last; j++)                                                      \
                    base = base * g->in[j] + st[j] + t[j] * g->d[j];                            \
                row = x + base * w;                                                             \
                if (kind == POOL_MAX) {                                                         \
                    for (int64_t tt = lo[last]; tt < hi[last]; tt++)                            \
                        if (row[s0 + tt * d] > best || bpos < 0) {                              \
                            best = row[s0 + tt * d];                                            \
                            bpos = base * w + s0 + tt * d;                                      \
                        }                                                                       \
                } else {                                                                        \
                    for (int64_t tt = lo[last]; tt < hi[last]; tt++)                            \
                        sum += row[s0 + tt * d];                                                \
                }                                                                               \
                for (j = last; j-- > 0;) {                                                      \
                    if (++t[j] < hi[j])                                                         \
                        break;                                                                  \
                    t[j] = lo[j];                                                               \
                }                                                                               \
                if (j == (size_t)-1)                                                            \
                    break;                                                                      \
            }                                                                                   \
            if (kind == POOL_MAX) {                                                             \
                y[oi] = best;                                                                   \
                if (idx)                                                                        \
                    idx[oi] = bpos;                                                             \
            } else {                                                                            \
                int64_t div = include_pad ? pcnt : cnt;                                         \
                y[oi] = (T)(div > 0 ? sum / (double)div : 0.0);                                 \
            }                                                                                   \
            for (size_t j = g->nsp; j-- > 0;) {                                                 \
                if (++o[j] < g->out[j])                                                         \
                    break;                                                                      \
                o[j] = 0;                                                                       \
            }                                                                                   \
        }                                                                                       \
    }

POOL_PLANE(pool_plane_f32, float, -FLT_MAX)
POOL_PLANE(pool_plane_f64, double, -DBL_MAX)

/* ---- float 1-D and 2-D fast path ---------------------------------------------------- */

typedef int32_t v4i __attribute__((vector_size(16)));

static inline __attribute__((always_inline)) bnf_v4f ld4s(const float *p, int64_t s)
{
    bnf_v4f v;
    if (s == 1) {
        memcpy(&v, p, sizeof v);
        return v;
    }
    return (bnf_v4f){p[0], p[s], p[2 * s], p[3 * s]};
}

/* Per lane: b when b > a, else a (the scalar loop's rule). */
static inline __attribute__((always_inline)) bnf_v4f vmax4(bnf_v4f a, bnf_v4f b)
{
    v4i m = b > a;
    return (bnf_v4f)(((v4i)b & m) | ((v4i)a & ~m));
}

/* A 1-D or 2-D plane (1-D as height 1) read through a padded copy of hp x wp,
 * padding -inf for max and 0 for average, so the loops never test bounds. */
typedef struct {
    bnf_plane p;
    const float *rdiv; /* average: per output row, 1 / (taps counted in it) */
    const float *cdiv; /* per output column */
} p2_geom;

/* Output block [ow, ow + 4) of output row oh from padded plane x. */
static inline __attribute__((always_inline)) bnf_v4f p2_block(const float *x, const p2_geom *q,
                                                           int64_t oh, int64_t ow, int kind,
                                                           int64_t sw)
{
    const float *x0 = x + oh * q->p.sh * q->p.wp + ow * sw;
    bnf_v4f acc = ld4s(x0, sw);
    for (int64_t kh = 0; kh < q->p.kh; kh++)
        for (int64_t kw = kh ? 0 : 1; kw < q->p.kw; kw++) {
            bnf_v4f v = ld4s(x0 + kh * q->p.dh * q->p.wp + kw * q->p.dw, sw);
            acc = kind == POOL_MAX ? vmax4(acc, v) : acc + v;
        }
    return acc;
}

static inline __attribute__((always_inline)) float p2_point(const float *x, const p2_geom *q,
                                                            int64_t oh, int64_t ow, int kind)
{
    const float *x0 = x + oh * q->p.sh * q->p.wp + ow * q->p.sw;
    float acc = x0[0];
    for (int64_t kh = 0; kh < q->p.kh; kh++)
        for (int64_t kw = kh ? 0 : 1; kw < q->p.kw; kw++) {
            float v = x0[kh * q->p.dh * q->p.wp + kw * q->p.dw];
            acc = kind == POOL_MAX ? (v > acc ? v : acc) : acc + v;
        }
    return acc;
}

static inline __attribute__((always_inline)) void p2_rows(const float *x, float *y,
                                                          const p2_geom *q, int kind, int64_t sw)
{
    for (int64_t oh = 0; oh < q->p.oh; oh++) {
        float *yr = y + oh * q->p.ow;
        int64_t ow = 0;
        for (; ow + 4 <= q->p.ow; ow += 4) {
            bnf_v4f v = p2_block(x, q, oh, ow, kind, sw);
            if (kind == POOL_AVG) {
                bnf_v4f d;
                memcpy(&d, q->cdiv + ow, sizeof d);
                v = v * d * q->rdiv[oh];
            }
            memcpy(yr + ow, &v, sizeof v);
        }
        for (; ow < q->p.ow; ow++) {
            float v = p2_point(x, q, oh, ow, kind);
            yr[ow] = kind == POOL_AVG ? v * q->cdiv[ow] * q->rdiv[oh] : v;
        }
    }
}

/* Every plane of x (float, 1-D or 2-D, no Indices) into y. */
static bnf_status pool_fast(bnf_op_ctx *ctx, const float *x, float *y, size_t planes,
                            const pgeom *g, int kind, int include_pad)
{
    p2_geom q;
    int two = g->nsp == 2;
    size_t last = g->nsp - 1, padsz;
    float *pad, *div;
    bnf_plane_init(&q.p, g->nsp, g->in, g->out, g->k, g->s, g->pb, g->d);
    padsz = (size_t)q.p.hp * (size_t)q.p.wp;
    pad = bnf_malloc(padsz * sizeof *pad);
    div = bnf_malloc((size_t)(q.p.oh + q.p.ow) * sizeof *div);
    if (!pad || !div) {
        bnf_free(pad);
        bnf_free(div);
        return bnf_nomem(ctx);
    }
    for (int64_t i = 0; i < q.p.oh; i++) {
        const win *t = two ? &g->tab[0][i] : NULL;
        div[i] = 1.0f / (float)(!t ? 1 : include_pad ? t->padded : t->hi - t->lo);
    }
    for (int64_t i = 0; i < q.p.ow; i++) {
        const win *t = &g->tab[last][i];
        div[q.p.oh + i] = 1.0f / (float)(include_pad ? t->padded : t->hi - t->lo);
    }
    q.rdiv = div;
    q.cdiv = div + q.p.oh;
    {
        float fill = kind == POOL_MAX ? -INFINITY : 0.0f;
        for (size_t i = 0; i < padsz; i++)
            pad[i] = fill;
    }
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * g->is;
        for (int64_t i = 0; i < q.p.h; i++)
            memcpy(pad + (i + q.p.ph) * q.p.wp + q.p.pw, xp + i * q.p.w,
                   (size_t)q.p.w * sizeof *pad);
        if (kind == POOL_MAX)
            q.p.sw == 1 ? p2_rows(pad, y + p * g->os, &q, POOL_MAX, 1)
                        : p2_rows(pad, y + p * g->os, &q, POOL_MAX, q.p.sw);
        else
            q.p.sw == 1 ? p2_rows(pad, y + p * g->os, &q, POOL_AVG, 1)
                        : p2_rows(pad, y + p * g->os, &q, POOL_AVG, q.p.sw);
    }
    bnf_free(pad);
    bnf_free(div);
    return BNF_OK;
}

/* Row-major offset `pos` inside a plane of dims in[] to column-major. */
static int64_t to_col_major(int64_t pos, const int64_t *in, size_t nsp)
{
    int64_t c[MAX_SP], r = 0;
    for (size_t j = nsp; j-- > 0;) {
        c[j] = pos % in[j];
        pos /= in[j];
    }
    for (size_t j = nsp; j-- > 0;)
        r = r * in[j] + c[j];
    return r;
}

static bnf_status pool_run(bnf_op_ctx *ctx, int kind)
{
    static const int32_t max_types[] = {BNF_T_FLOAT, BNF_T_DOUBLE, BNF_T_INT8, BNF_T_UINT8};
    const bnf_tensor *x;
    bnf_tensor *y, *ind = NULL;
    pgeom g;
    win *tabs = NULL;
    bnf_status rc;
    int64_t ydims[BNF_MAX_RANK], order = 0, include_pad = 0;
    size_t planes;
    float *xf = NULL, *yf = NULL;

    if ((rc = check_x(ctx, max_types, kind == POOL_MAX ? 4 : 2,
                      kind == POOL_MAX ? "float, double, int8, uint8" : "float, double")))
        return rc;
    x = ctx->in[0];
    if (kind == POOL_MAX) {
        order = bnf_ctx_int(ctx, "storage_order", 0);
        if (order != 0 && order != 1)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": storage_order %lld is not 0 or 1",
                            BNF_NODE_ARG(ctx), (long long)order);
    } else {
        include_pad = bnf_ctx_int(ctx, "count_include_pad", 0);
    }
    if ((rc = pool_geometry(ctx, x, &g, &tabs)))
        return rc;
    ydims[0] = x->dims[0];
    ydims[1] = x->dims[1];
    for (size_t i = 0; i < g.nsp; i++)
        ydims[i + 2] = g.out[i];
    if ((rc = bnf_out(ctx, 0, x->dtype, ydims, x->rank, &y)))
        goto out;
    if (kind == POOL_MAX && bnf_wanted(ctx, 1) &&
        (rc = bnf_out(ctx, 1, BNF_T_INT64, ydims, x->rank, &ind)))
        goto out;
    planes = (size_t)x->dims[0] * (size_t)x->dims[1];
    if (y->n == 0)
        goto out;
    if (g.is == 0) {
        rc = bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": X has an empty spatial extent",
                      BNF_NODE_ARG(ctx));
        goto out;
    }
    if (x->dtype == BNF_T_INT8 || x->dtype == BNF_T_UINT8) {
        xf = bnf_malloc(x->n * sizeof *xf);
        yf = bnf_malloc(y->n * sizeof *yf);
        if (!xf || !yf) {
            rc = bnf_nomem(ctx);
            goto out;
        }
        for (size_t i = 0; i < x->n; i++)
            xf[i] = (float)bnf_get_f64(x, i);
    }
    if (x->dtype == BNF_T_FLOAT && !ind && g.nsp <= 2) {
        /* the fast path needs every window to have a tap inside the input, and
         * a padded plane not much larger than the input and output planes */
        int fast = 1;
        double padded = 1;
        for (size_t j = 0; j < g.nsp; j++) {
            int64_t ext = (g.out[j] - 1) * g.s[j] + (g.k[j] - 1) * g.d[j] + 1;
            padded *= (double)(ext > g.pb[j] + g.in[j] ? ext : g.pb[j] + g.in[j]);
            for (int64_t o = 0; o < g.out[j]; o++)
                if (g.tab[j][o].lo >= g.tab[j][o].hi)
                    fast = 0;
        }
        if (padded > 4.0 * (double)(g.is + g.os) + 65536)
            fast = 0;
        if (fast) {
            rc = pool_fast(ctx, x->data, y->data, planes, &g, kind, include_pad != 0);
            goto out;
        }
    }
    for (size_t p = 0; p < planes; p++) {
        int64_t *ip = ind ? (int64_t *)ind->data + p * g.os : NULL;
        if (x->dtype == BNF_T_DOUBLE)
            pool_plane_f64((const double *)x->data + p * g.is, (double *)y->data + p * g.os, ip, &g,
                           kind, include_pad != 0);
        else
            pool_plane_f32((xf ? xf : (const float *)x->data) + p * g.is,
                           (yf ? yf : (float *)y->data) + p * g.os, ip, &g, kind, include_pad != 0);
        if (ip)
            for (size_t i = 0; i < g.os; i++)
                if (ip[i] >= 0)
                    ip[i] = (int64_t)(p * g.is) + (order ? to_col_major(ip[i], g.in, g.nsp) : ip[i]);
    }
    if (yf)
        for (size_t i = 0; i < y->n; i++)
            bnf_set_f64(y, i, yf[i]);
out:
    bnf_free(tabs);
    bnf_free(xf);
    bnf_free(yf);
    return rc;
}

static bnf_status op_max_pool(bnf_op_ctx *ctx)
{
    return pool_run(ctx, POOL_MAX);
}

static bnf_status op_average_pool(bnf_op_ctx *ctx)
{
    return pool_run(ctx, POOL_AVG);
}

/* ---- global pools ------------------------------------------------------------------- */

/* Sum of n floats: four-lane partial sums over blocks of 1024, each block
 * added into a double (fast, and accurate over large planes). */
static double sum_f32(const float *v, size_t n)
{
    double total = 0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 1024 ? i + 1024 : n;
        bnf_v4f a = {0, 0, 0, 0}, b = a, c = a, d = a;
        float r = 0;
        for (; i + 16 <= end; i += 16) {
            bnf_v4f x[4];
            memcpy(x, v + i, sizeof x);
            a += x[0];
            b += x[1];
            c += x[2];
            d += x[3];
        }
        for (; i < end; i++)
            r += v[i];
        a = (a + b) + (c + d);
        total += (double)a[0] + (double)a[1] + (double)a[2] + (double)a[3] + (double)r;
    }
    return total;
}

/* Largest of n >= 1 floats (the first of equal ones; NaN only when first). */
static float max_f32(const float *v, size_t n)
{
    float m = v[0];
    size_t i = 1;
    if (n >= 17) {
        bnf_v4f a, b, c, d;
        memcpy(&a, v + 1, sizeof a);
        b = c = d = a;
        for (i = 1; i + 16 <= n; i += 16) {
            bnf_v4f x[4];
            memcpy(x, v + i, sizeof x);
            a = vmax4(a, x[0]);
            b = vmax4(b, x[1]);
            c = vmax4(c, x[2]);
            d = vmax4(d, x[3]);
        }
        a = vmax4(vmax4(a, b), vmax4(c, d));
        for (int j = 0; j < 4; j++)
            m = a[j] > m ? a[j] : m;
    }
    for (; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

typedef struct {
    const float *x;
    float *y;
    size_t len;
    int kind;
} global_job;

static void global_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const global_job *j = arg;
    (void)tid;
    for (size_t p = lo; p < hi; p++) {
        const float *v = j->x + p * j->len;
        j->y[p] = j->kind == POOL_MAX ? max_f32(v, j->len)
                                      : (float)(sum_f32(v, j->len) / (double)j->len);
    }
}

static bnf_status global_run(bnf_op_ctx *ctx, int kind)
{
    static const int32_t types[] = {BNF_T_FLOAT, BNF_T_DOUBLE};
    const bnf_tensor *x;
    bnf_tensor *y;
    bnf_status rc;
    int64_t ydims[BNF_MAX_RANK];
    size_t planes, len;

    if ((rc = check_x(ctx, types, 2, "float, double")))
        return rc;
    x = ctx->in[0];
    ydims[0] = x->dims[0];
    ydims[1] = x->dims[1];
    for (size_t i = 2; i < x->rank; i++)
        ydims[i] = 1;
    planes = (size_t)x->dims[0] * (size_t)x->dims[1];
    len = planes ? x->n / planes : 0;
    if (planes && len == 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": X has an empty spatial extent",
                        BNF_NODE_ARG(ctx));
    if ((rc = bnf_out(ctx, 0, x->dtype, ydims, x->rank, &y)))
        return rc;
    if (x->dtype == BNF_T_FLOAT) {
        global_job j = {x->data, y->data, len, kind};
        bnf_parallel(ctx, bnf_par_threads(ctx, planes, x->n), planes, global_range, &j);
    } else {
        const double *xd = x->data;
        double *yd = y->data;
        for (size_t p = 0; p < planes; p++) {
            const double *v = xd + p * len;
            double r = v[0];
            if (kind == POOL_MAX) {
                for (size_t i = 1; i < len; i++)
                    r = v[i] > r ? v[i] : r;
            } else {
                r = 0;
                for (size_t i = 0; i < len; i++)
                    r += v[i];
                r /= (double)len;
            }
            yd[p] = r;
        }
    }
    return BNF_OK;
}

static bnf_status op_global_max_pool(bnf_op_ctx *ctx)
{
    return global_run(ctx, POOL_MAX);
}

static bnf_status op_global_average_pool(bnf_op_ctx *ctx)
{
    return global_run(ctx, POOL_AVG);
}

const bnf_op_def bnf_ops_pool[] = {
    {"MaxPool", 1, op_max_pool},
    {"AveragePool", 1, op_average_pool},
    {"GlobalMaxPool", 1, op_global_max_pool},
    {"GlobalAveragePool", 1, op_global_average_pool},
    {NULL, 0, NULL},
};

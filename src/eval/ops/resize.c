/*
 * eval/ops/resize.c: operators that change spatial extent: Pad (constant,
 * reflect, edge, wrap), Resize (opsets 10, 11, 13, 18, 19) and Upsample
 * (opsets 7, 9).
 *
 * Per axis a small plan maps each output coordinate to up to 4 input indices
 * and weights (nearest 1, linear 2, cubic 4).  Nearest is then one gather pass
 * over output rows and works for every type; linear and cubic (float, double)
 * are separable: each resized axis gets its own pass, shrinking axes first so
 * intermediates never exceed the larger of input and output.  Coordinates
 * follow the ONNX reference implementation (in double; the length used by
 * align_corners and friends is scale * input length), except that
 * pytorch_half_pixel maps a length-1 output to 0 as the spec says where the
 * reference uses -0.5.  Antialiased shrinking (Resize-18 antialias=1) is
 * unsupported.
 */
#include "../eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------ */

/* Reads the `axes` of Pad-18 / Resize-18 (already as ints) into normalised,
 * distinct axes. */
static bnf_status check_axes(const bnf_op_ctx *ctx, int64_t *axes, size_t n, size_t rank)
{
    int seen[BNF_MAX_RANK] = {0};
    for (size_t i = 0; i < n; i++) {
        if (axes[i] < -(int64_t)rank || axes[i] >= (int64_t)rank)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axis %lld is out of range",
                            BNF_NODE_ARG(ctx), (long long)axes[i]);
        if (axes[i] < 0)
            axes[i] += (int64_t)rank;
        if (seen[axes[i]])
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axis %lld repeated",
                            BNF_NODE_ARG(ctx), (long long)axes[i]);
        seen[axes[i]] = 1;
    }
    return BNF_OK;
}

/* The string attribute copied into buf. */
static const char *get_str(const bnf_op_ctx *ctx, const char *name, const char *dflt, char *buf,
                           size_t size)
{
    const char *v = bnf_ctx_string(ctx, name, dflt, buf, size);
    if (v != buf)
        snprintf(buf, size, "%s", v);
    return buf;
}

/* Writes count copies of the es-byte value at val to dst. */
static void fill(char *dst, const void *val, size_t count, size_t es)
{
    switch (es) {
    case 1: memset(dst, *(const uint8_t *)val, count); break;
    case 4: {
        uint32_t v;
        memcpy(&v, val, 4);
        for (size_t i = 0; i < count; i++)
            memcpy(dst + i * 4, &v, 4);
        break;
    }
    default:
        for (size_t i = 0; i < count; i++)
            memcpy(dst + i * es, val, es);
        break;
    }
}

/* ---- Pad ------------------------------------------------------------------------------ */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

/* Source index along an axis of length n for position i (= output - begin pad),
 * or -1 for the constant. */
static int64_t pad_src(int64_t i, int64_t n, int mode)
{
    int64_t p, m;
    if (i >= 0 && i < n)
        return i;
    switch (mode) {
    case PAD_EDGE: return i < 0 ? 0 : n - 1;
    case PAD_WRAP: m = i % n; return m < 0 ? m + n : m;
    case PAD_REFLECT:
        if (n == 1)
            return 0;
        p = 2 * (n - 1);
        m = i % p;
        if (m < 0)
            m += p;
        return m < n ? m : p - m;
    default: return -1;
    }
}

static bnf_status op_pad(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *tp, *tv, *ta;
    bnf_tensor *y;
    int64_t pads[2 * BNF_MAX_RANK], axes[BNF_MAX_RANK],
        begin[BNF_MAX_RANK] = {0}, end[BNF_MAX_RANK] = {0}, dims[BNF_MAX_RANK],
        stride[BNF_MAX_RANK], cnt[BNF_MAX_RANK] = {0};
    int64_t *maps = NULL, *map[BNF_MAX_RANK];
    size_t np, na, r, es, rows, total = 0;
    union {
        double d;
        int64_t i;
        char b[8];
    } value = {0};
    char mbuf[32];
    const char *mname;
    int mode;
    bnf_status rc = bnf_need_inputs(ctx, ctx->opset >= 11 ? 2 : 1,
                                ctx->opset >= 18   ? 4
                                : ctx->opset >= 11 ? 3
                                                   : 1, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    r = x->rank;
    es = bnf_eval_size(x->dtype);
    mname = get_str(ctx, "mode", "constant", mbuf, sizeof mbuf);
    if (strcmp(mname, "constant") == 0)
        mode = PAD_CONSTANT;
    else if (strcmp(mname, "reflect") == 0)
        mode = PAD_REFLECT;
    else if (strcmp(mname, "edge") == 0)
        mode = PAD_EDGE;
    else if (strcmp(mname, "wrap") == 0 && ctx->opset >= 19)
        mode = PAD_WRAP;
    else
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": unknown mode '%s'",
                        BNF_NODE_ARG(ctx), mname);

    if (ctx->opset < 11) {
        const char *pname = ctx->opset < 2 ? "paddings" : "pads";
        float v = bnf_ctx_float(ctx, "value", 0.0f);
        np = bnf_ctx_ints(ctx, pname, pads, 2 * BNF_MAX_RANK);
        if (np != 2 * r)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": '%s' has %zu values for rank %zu", BNF_NODE_ARG(ctx),
                            pname, np, r);
        if (x->dtype == BNF_T_FLOAT) {
            memcpy(value.b, &v, 4);
        } else if (x->dtype == BNF_T_DOUBLE) {
            value.d = v;
        } else if (v == 0 || mode != PAD_CONSTANT) {
            value.i = 0; /* zero bytes are 0 in every type */
        } else {
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                            BNF_NODE_FMT
                            ": a non-zero pad value for %s is not supported before opset 11",
                            BNF_NODE_ARG(ctx), bnf_dtype_name(x->dtype));
        }
        na = r;
        for (size_t i = 0; i < r; i++)
            axes[i] = (int64_t)i;
    } else {
        tp = ctx->in[1];
        tv = bnf_opt_in(ctx, 2);
        ta = ctx->opset >= 18 ? bnf_opt_in(ctx, 3) : NULL;
        if (ta) {
            if ((rc = bnf_read_ints(ctx, ta, "axes", axes, BNF_MAX_RANK, &na)) ||
                (rc = check_axes(ctx, axes, na, r)))
                return rc;
        } else {
            na = r;
            for (size_t i = 0; i < r; i++)
                axes[i] = (int64_t)i;
        }
        if (tp->dtype != BNF_T_INT64 ||
            (rc = bnf_read_ints(ctx, tp, "pads", pads, 2 * BNF_MAX_RANK, &np)))
            return rc ? rc
                      : bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": 'pads' must be int64",
                                 BNF_NODE_ARG(ctx));
        if (np != 2 * na)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": 'pads' has %zu values for %zu axes", BNF_NODE_ARG(ctx),
                            np, na);
        if (tv && tv->n > 0) {
            if (tv->dtype != x->dtype || tv->n != 1)
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": 'constant_value' must be one %s", BNF_NODE_ARG(ctx),
                                bnf_dtype_name(x->dtype));
            memcpy(value.b, tv->data, es);
        }
    }
    for (size_t k = 0; k < na; k++) {
        int64_t a = axes[k], b = pads[k], e = pads[k + na];
        if (b < -(INT64_C(1) << 40) || b > (INT64_C(1) << 40) || e < -(INT64_C(1) << 40) ||
            e > (INT64_C(1) << 40))
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": pads out of range",
                            BNF_NODE_ARG(ctx));
        begin[a] = b;
        end[a] = e;
    }
    for (size_t i = 0; i < r; i++) {
        dims[i] = x->dims[i] + begin[i] + end[i];
        if (dims[i] < 0)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": pads make dimension %zu negative (%lld)",
                            BNF_NODE_ARG(ctx), i, (long long)dims[i]);
        if (dims[i] > 0 && x->dims[i] == 0 && mode != PAD_CONSTANT)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": cannot pad an empty dimension in mode '%s'",
                            BNF_NODE_ARG(ctx), mname);
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, dims, r, &y)))
        return rc;
    if (y->n == 0)
        return BNF_OK;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return BNF_OK;
    }
    /* per-axis maps: output position -> input index or -1 */
    for (size_t i = 0; i < r; i++)
        total += (size_t)dims[i];
    if (!(maps = bnf_malloc(total * sizeof *maps)))
        return bnf_nomem(ctx);
    total = 0;
    for (size_t i = 0; i < r; i++) {
        map[i] = maps + total;
        for (int64_t o = 0; o < dims[i]; o++)
            map[i][o] = pad_src(o - begin[i], x->dims[i], mode);
        total += (size_t)dims[i];
    }
    stride[r - 1] = 1;
    for (size_t i = r - 1; i-- > 0;)
        stride[i] = stride[i + 1] * x->dims[i + 1];
    rows = y->n / (size_t)dims[r - 1];
    {
        int64_t w = dims[r - 1], b = begin[r - 1], n = x->dims[r - 1];
        int64_t lo = b > 0 ? b : 0, hi = b + n < w ? b + n : w;
        const int64_t *lm = map[r - 1];
        char *dst = y->data;
        for (size_t row = 0; row < rows; row++, dst += (size_t)w * es) {
            int64_t off = 0;
            int constant = 0;
            for (size_t i = 0; i + 1 < r; i++) {
                int64_t s = map[i][cnt[i]];
                if (s < 0)
                    constant = 1;
                off += s * stride[i];
            }
            if (constant) {
                fill(dst, value.b, (size_t)w, es);
            } else {
                const char *src = (const char *)x->data + (size_t)off * es;
                if (hi > lo)
                    memcpy(dst + lo * (int64_t)es, src + (lo - b) * (int64_t)es,
                           (size_t)(hi - lo) * es);
                for (int64_t o = 0; o < w; o++) {
                    if (o == lo && hi > lo)
                        o = hi;
                    if (o >= w)
                        break;
                    if (lm[o] < 0)
                        memcpy(dst + o * (int64_t)es, value.b, es);
                    else
                        memcpy(dst + o * (int64_t)es, src + lm[o] * (int64_t)es, es);
                }
            }
            for (size_t k = r - 1; k-- > 0;) {
                if (++cnt[k] < dims[k])
                    break;
                cnt[k] = 0;
            }
        }
    }
    bnf_free(maps);
    return BNF_OK;
}

/* ---- Resize, Upsample ------------------------------------------------------------------ */

enum { RZ_NEAREST, RZ_LINEAR, RZ_CUBIC };
enum {
    CT_HALF_PIXEL,
    CT_HALF_PIXEL_SYMMETRIC,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL_FOR_NN,
    CT_TF_CROP_AND_RESIZE,
};
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };

typedef struct {
    int mode, ctm, nearest;
    double cubic_a;
    int exclude_outside;
    double extrapolation;
} rz_params;

typedef struct {
    int64_t in, out;
    int taps;
    int identity;
    int64_t *idx;     /* out * taps input indices, clamped to [0, in) */
    double *w;        /* out * taps weights */
    uint8_t *outside; /* out flags: tf_crop_and_resize extrapolates */
} rz_axis;

/* Input coordinate of output coordinate x along an axis. */
static double rz_coord(const rz_params *p, double x, double scale, int64_t in, int64_t out,
                       double roi_start, double roi_end)
{
    double len = scale * (double)in; /* the reference's "output_width" */
    switch (p->ctm) {
    case CT_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out / len, center = (double)in / 2;
        return center * (1 - adjustment) + (x + 0.5) / scale - 0.5;
    }
    case CT_PYTORCH_HALF_PIXEL: return len > 1 ? (x + 0.5) / scale - 0.5 : 0;
    case CT_ALIGN_CORNERS: return len == 1 ? 0 : x * (double)(in - 1) / (len - 1);
    case CT_ASYMMETRIC: return x / scale;
    case CT_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / scale;
    case CT_TF_CROP_AND_RESIZE:
        if (len == 1)
            return (roi_end - roi_start) * (double)(in - 1) / 2 + roi_start * (double)(in - 1);
        return x * (roi_end - roi_start) * (double)(in - 1) / (len - 1) +
               roi_start * (double)(in - 1);
    default: return (x + 0.5) / scale - 0.5;
    }
}

static double rz_round(double x, int mode, int down)
{
    double f = floor(x);
    switch (mode) {
    case NM_ROUND_PREFER_CEIL: return x - f < 0.5 ? f : f + 1;
    case NM_FLOOR: return f;
    case NM_CEIL: return ceil(x);
    case NM_SIMPLE: return down ? ceil(x) : f; /* Resize-10 and Upsample, as onnxruntime */
    default: return x - f <= 0.5 ? f : f + 1;
    }
}

static void rz_cubic(double t, double a, double *c)
{
    double t1 = t + 1, u = 1 - t, u1 = u + 1;
    c[0] = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a;
    c[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
    c[2] = ((a + 2) * u - (a + 3)) * u * u + 1;
    c[3] = ((a * u1 - 5 * a) * u1 + 8 * a) * u1 - 4 * a;
}

static void rz_axis_free(rz_axis *ax)
{
    bnf_free(ax->idx);
    bnf_free(ax->w);
    bnf_free(ax->outside);
}

/* Fills the plan of one axis.  Returns 0, or -1 when out of memory. */
static int rz_plan(rz_axis *ax, const rz_params *p, int64_t in, int64_t out, double scale,
                   double roi_start, double roi_end)
{
    int taps = p->mode == RZ_NEAREST ? 1 : p->mode == RZ_LINEAR ? 2 : 4;
    size_t n = (size_t)out * (size_t)taps;
    ax->in = in;
    ax->out = out;
    ax->taps = taps;
    ax->identity = in == out;
    ax->idx = bnf_malloc((n ? n : 1) * sizeof *ax->idx);
    ax->w = bnf_malloc((n ? n : 1) * sizeof *ax->w);
    ax->outside = bnf_calloc(out ? (size_t)out : 1, 1);
    if (!ax->idx || !ax->w || !ax->outside)
        return -1;
    for (int64_t o = 0; o < out; o++) {
        double x = rz_coord(p, (double)o, scale, in, out, roi_start, roi_end), c[4], sum = 0;
        int64_t *ix = ax->idx + o * taps, base;
        double *w = ax->w + o * taps;
        if (p->ctm == CT_TF_CROP_AND_RESIZE && (x < 0 || x > (double)(in - 1))) {
            ax->outside[o] = 1;
            ax->identity = 0;
            for (int k = 0; k < taps; k++) {
                ix[k] = 0;
                w[k] = 0;
            }
            continue;
        }
        if (!(x >= -8)) /* far outside (or NaN): every tap reads the edge anyway */
            x = -8;
        if (x > (double)in + 8)
            x = (double)in + 8;
        if (taps == 1) {
            double v = rz_round(x, p->nearest, scale < 1);
            ix[0] = v < 0 ? 0 : v > (double)(in - 1) ? in - 1 : (int64_t)v;
            w[0] = 1;
            if (ix[0] != o)
                ax->identity = 0;
            continue;
        }
        base = (int64_t)floor(x);
        if (taps == 2) {
            c[0] = 1 - (x - (double)base);
            c[1] = x - (double)base;
        } else {
            rz_cubic(x - (double)base, p->cubic_a, c);
            base -= 1;
        }
        for (int k = 0; k < taps; k++) {
            int64_t i = base + k;
            if (p->exclude_outside && (i < 0 || i >= in))
                c[k] = 0;
            sum += c[k];
            ix[k] = i < 0 ? 0 : i >= in ? in - 1 : i;
        }
        for (int k = 0; k < taps; k++) {
            w[k] = p->exclude_outside && sum != 0 ? c[k] / sum : c[k];
            if (w[k] != 0 && !(ix[k] == o && w[k] == 1))
                ax->identity = 0;
        }
    }
    return 0;
}

/* Copies element i of the map: es-byte elements, constant sizes for memcpy. */
#define RZ_GATHER(ES)                                                                              \
    for (int64_t o = 0; o < last->out; o++)                                                        \
        memcpy(dst + o * (ES), last->outside[o] ? extrap : s + last->idx[o] * (ES), (ES))

/* Nearest in one pass: each output row (all axes but the last) gathers its
 * source row through the last axis' map, or copies the output row before it
 * when both come from the same source row. */
static void rz_nearest(const bnf_tensor *x, bnf_tensor *y, const rz_axis *ax, const void *extrap,
                       size_t es)
{
    size_t r = x->rank, w, rows;
    int64_t cnt[BNF_MAX_RANK] = {0}, stride[BNF_MAX_RANK], prev = -1;
    const rz_axis *last;
    char *dst = y->data;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return;
    }
    last = &ax[r - 1];
    w = (size_t)last->out;
    rows = y->n / w;
    stride[r - 1] = 1;
    for (size_t i = r - 1; i-- > 0;)
        stride[i] = stride[i + 1] * x->dims[i + 1];
    for (size_t row = 0; row < rows; row++, dst += w * es) {
        int64_t off = 0;
        for (size_t i = 0; i + 1 < r; i++) {
            if (ax[i].outside[cnt[i]]) {
                off = -1;
                break;
            }
            off += ax[i].idx[cnt[i]] * stride[i];
        }
        if (off < 0) {
            fill(dst, extrap, w, es);
        } else if (off == prev) {
            memcpy(dst, dst - w * es, w * es);
        } else {
            const char *s = (const char *)x->data + off * (int64_t)es;
            switch (es) {
            case 1: RZ_GATHER(1); break;
            case 2: RZ_GATHER(2); break;
            case 4: RZ_GATHER(4); break;
            default: RZ_GATHER(8); break;
            }
        }
        prev = off;
        for (size_t k = r - 1; k-- > 0;) {
            if (++cnt[k] < y->dims[k])
                break;
            cnt[k] = 0;
        }
    }
}

/* Linear / cubic pass in type T: weighted sums of rows of `inner` elements. */
#define RZ_DEFINE_PASS(NAME, T)                                                                    \
    static void NAME(const T *src, T *dst, size_t outer, const rz_axis *ax, size_t inner,        \
                     T extrap)                                                                     \
    {                                                                                              \
        int taps = ax->taps;                                                                       \
        for (size_t u = 0; u < outer; u++) {                                                       \
            const T *s = src + u * (size_t)ax->in * inner;                                         \
            for (int64_t o = 0; o < ax->out; o++, dst += inner) {                                  \
                const int64_t *ix = ax->idx + o * taps;                                            \
                const double *w = ax->w + o * taps;                                                \
                if (ax->outside[o]) {                                                              \
                    for (size_t j = 0; j < inner; j++)                                             \
                        dst[j] = extrap;                                                           \
                } else if (inner == 1) {                                                           \
                    T acc = 0;                                                                     \
                    for (int k = 0; k < taps; k++)                                                 \
                        acc += (T)w[k] * s[ix[k]];                                                 \
                    dst[0] = acc;                                                                  \
                } else {                                                                           \
                    const T *r0 = s + (size_t)ix[0] * inner;                                       \
                    T w0 = (T)w[0];                                                                \
                    for (size_t j = 0; j < inner; j++)                                             \
                        dst[j] = w0 * r0[j];                                                       \
                    for (int k = 1; k < taps; k++) {                                               \
                        const T *rk = s + (size_t)ix[k] * inner;                                   \
                        T wk = (T)w[k];                                                            \
                        if (wk == 0)                                                               \
                            continue;                                                              \
                        for (size_t j = 0; j < inner; j++)                                         \
                            dst[j] += wk * rk[j];                                                  \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

RZ_DEFINE_PASS(rz_pass_float, float)
RZ_DEFINE_PASS(rz_pass_double, double)

/* Resizes input 0 to out_dims with per-axis scales and (tf_crop_and_resize)
 * roi starts/ends; writes output 0. */
static bnf_status rz_run(bnf_op_ctx *ctx, const rz_params *p, const int64_t *out_dims,
                         const double *scales, const double *roi_start, const double *roi_end)
{
    const bnf_tensor *x = ctx->in[0];
    size_t r = x->rank, es = bnf_eval_size(x->dtype), order[BNF_MAX_RANK], n_order = 0;
    rz_axis ax[BNF_MAX_RANK];
    int64_t cur[BNF_MAX_RANK];
    char *tmp[2] = {NULL, NULL};
    const char *src;
    union {
        float f;
        double d;
    } extrap;
    bnf_tensor *y;
    bnf_status rc;

    memset(ax, 0, sizeof ax);
    if (p->mode != RZ_NEAREST && x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT
                        ": linear and cubic modes are supported for float and double, not %s",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(x->dtype));
    if (p->ctm == CT_TF_CROP_AND_RESIZE && x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT
                        ": tf_crop_and_resize is supported for float and double, not %s",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(x->dtype));
    if (x->dtype == BNF_T_FLOAT)
        extrap.f = (float)p->extrapolation;
    else
        extrap.d = p->extrapolation;
    for (size_t i = 0; i < r; i++)
        if (x->dims[i] == 0 && out_dims[i] != 0)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": cannot resize an empty dimension %zu to %lld",
                            BNF_NODE_ARG(ctx), i, (long long)out_dims[i]);
    if ((rc = bnf_out(ctx, 0, x->dtype, out_dims, r, &y)))
        return rc;
    if (y->n == 0)
        return BNF_OK;
    for (size_t i = 0; i < r; i++) {
        if (rz_plan(&ax[i], p, x->dims[i], out_dims[i], scales[i], roi_start ? roi_start[i] : 0,
                    roi_end ? roi_end[i] : 1)) {
            rc = bnf_nomem(ctx);
            goto out;
        }
    }
    if (p->mode == RZ_NEAREST) {
        rz_nearest(x, y, ax, &extrap, es);
        rc = BNF_OK;
        goto out;
    }
    /* shrinking axes first; then growing ones innermost first, so the passes
     * over the most data copy the longest rows */
    for (size_t i = 0; i < r; i++)
        if (!ax[i].identity && ax[i].out < ax[i].in)
            order[n_order++] = i;
    for (size_t i = r; i-- > 0;)
        if (!ax[i].identity && ax[i].out >= ax[i].in)
            order[n_order++] = i;
    if (n_order == 0) {
        memcpy(y->data, x->data, x->n * es);
        rc = BNF_OK;
        goto out;
    }
    memcpy(cur, x->dims, r * sizeof *cur);
    src = x->data;
    for (size_t k = 0; k < n_order; k++) {
        size_t a = order[k], outer = 1, inner = 1, n_next;
        char *dst;
        for (size_t i = 0; i < a; i++)
            outer *= (size_t)cur[i];
        for (size_t i = a + 1; i < r; i++)
            inner *= (size_t)cur[i];
        n_next = outer * inner * (size_t)ax[a].out;
        if (k + 1 == n_order) {
            dst = y->data;
        } else {
            bnf_free(tmp[k % 2]);
            if (!(tmp[k % 2] = bnf_malloc(n_next * es))) {
                rc = bnf_nomem(ctx);
                goto out;
            }
            dst = tmp[k % 2];
        }
        if (x->dtype == BNF_T_FLOAT)
            rz_pass_float((const float *)src, (float *)dst, outer, &ax[a], inner, extrap.f);
        else
            rz_pass_double((const double *)src, (double *)dst, outer, &ax[a], inner, extrap.d);
        cur[a] = ax[a].out;
        src = dst;
    }
    rc = BNF_OK;
out:
    for (size_t i = 0; i < r; i++)
        rz_axis_free(&ax[i]);
    bnf_free(tmp[0]);
    bnf_free(tmp[1]);
    return rc;
}

/* Output dims floor(in * scale), checking the scales. */
static bnf_status rz_dims_from_scales(bnf_op_ctx *ctx, const double *scales, int64_t *dims)
{
    const bnf_tensor *x = ctx->in[0];
    for (size_t i = 0; i < x->rank; i++) {
        double v = (double)x->dims[i] * scales[i];
        if (!(scales[i] > 0) || isinf(scales[i]))
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": scale %g on axis %zu",
                            BNF_NODE_ARG(ctx), scales[i], i);
        if (!(v < 0x1p62))
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                            BNF_NODE_FMT ": axis %zu would be too long", BNF_NODE_ARG(ctx), i);
        dims[i] = (int64_t)v;
    }
    return BNF_OK;
}

/* Reads a float scales tensor of the input's rank. */
static bnf_status rz_read_scales(bnf_op_ctx *ctx, const bnf_tensor *t, size_t want, double *s)
{
    if ((t->dtype != BNF_T_FLOAT && t->dtype != BNF_T_DOUBLE) || t->rank > 1 || t->n != want)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": 'scales' must be %zu floats",
                        BNF_NODE_ARG(ctx), want);
    for (size_t i = 0; i < want; i++)
        s[i] = bnf_get_f64(t, i);
    return BNF_OK;
}

/* Upsample-7/9 and Resize-10: asymmetric coordinates, nearest or linear. */
static bnf_status rz_simple(bnf_op_ctx *ctx, const double *scales, int upsample)
{
    rz_params p = {RZ_NEAREST, CT_ASYMMETRIC, NM_SIMPLE, -0.75, 0, 0};
    int64_t dims[BNF_MAX_RANK];
    char mbuf[32];
    const char *mode = get_str(ctx, "mode", "nearest", mbuf, sizeof mbuf);
    bnf_status rc;
    if (strcmp(mode, "linear") == 0)
        p.mode = RZ_LINEAR;
    else if (strcmp(mode, "nearest") != 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": unknown mode '%s'",
                        BNF_NODE_ARG(ctx), mode);
    if (upsample)
        for (size_t i = 0; i < ctx->in[0]->rank; i++)
            if (!(scales[i] >= 1))
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": scale %g on axis %zu is below 1", BNF_NODE_ARG(ctx),
                                scales[i], i);
    if ((rc = rz_dims_from_scales(ctx, scales, dims)))
        return rc;
    return rz_run(ctx, &p, dims, scales, NULL, NULL);
}

static bnf_status op_upsample_v7(bnf_op_ctx *ctx)
{
    float fs[BNF_MAX_RANK];
    double s[BNF_MAX_RANK];
    size_t n;
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, NULL);
    if (rc)
        return rc;
    n = bnf_ctx_floats(ctx, "scales", fs, BNF_MAX_RANK);
    if (n != ctx->in[0]->rank)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": 'scales' has %zu values for rank %zu", BNF_NODE_ARG(ctx), n,
                        ctx->in[0]->rank);
    for (size_t i = 0; i < n; i++)
        s[i] = fs[i];
    return rz_simple(ctx, s, 1);
}

/* Upsample-9 and Resize-10: scales input. */
static bnf_status op_upsample_v9(bnf_op_ctx *ctx)
{
    double s[BNF_MAX_RANK];
    bnf_status rc = bnf_need_inputs(ctx, 2, 2, NULL);
    if (rc || (rc = rz_read_scales(ctx, ctx->in[1], ctx->in[0]->rank, s)))
        return rc;
    return rz_simple(ctx, s, strcmp(ctx->node->op_type, "Upsample") == 0);
}

/* Resize-11 and later: roi, scales, sizes inputs; coordinate modes; cubic;
 * axes and keep_aspect_ratio_policy from 18. */
static bnf_status op_resize_v11(bnf_op_ctx *ctx)
{
    static const char *const ctms[] = {
        "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
        "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    rz_params p = {RZ_NEAREST, -1, -1, -0.75, 0, 0};
    const bnf_tensor *x, *troi, *tsc, *tsz;
    int64_t axes[BNF_MAX_RANK], dims[BNF_MAX_RANK], sizes[BNF_MAX_RANK];
    double scales[BNF_MAX_RANK], rs[BNF_MAX_RANK], re[BNF_MAX_RANK];
    size_t r, na, n;
    char buf[64];
    const char *s;
    bnf_status rc = bnf_need_inputs(ctx, 1, 4, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    r = x->rank;
    s = get_str(ctx, "mode", "nearest", buf, sizeof buf);
    if (strcmp(s, "linear") == 0)
        p.mode = RZ_LINEAR;
    else if (strcmp(s, "cubic") == 0)
        p.mode = RZ_CUBIC;
    else if (strcmp(s, "nearest") != 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": unknown mode '%s'",
                        BNF_NODE_ARG(ctx), s);
    s = get_str(ctx, "coordinate_transformation_mode", "half_pixel", buf, sizeof buf);
    p.ctm = bnf_find_name(s, ctms, sizeof ctms / sizeof ctms[0]);
    if (p.ctm < 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": unknown coordinate_transformation_mode '%s'",
                        BNF_NODE_ARG(ctx), s);
    s = get_str(ctx, "nearest_mode", "round_prefer_floor", buf, sizeof buf);
    p.nearest = bnf_find_name(s, nms, sizeof nms / sizeof nms[0]);
    if (p.nearest < 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": unknown nearest_mode '%s'",
                        BNF_NODE_ARG(ctx), s);
    p.cubic_a = bnf_ctx_float(ctx, "cubic_coeff_a", -0.75f);
    p.exclude_outside = bnf_ctx_int(ctx, "exclude_outside", 0) != 0;
    p.extrapolation = bnf_ctx_float(ctx, "extrapolation_value", 0.0f);

    /* axes (18+) */
    na = r;
    for (size_t i = 0; i < r; i++)
        axes[i] = (int64_t)i;
    if (ctx->opset >= 18 && bnf_node_attr(ctx->node, "axes")) {
        na = bnf_ctx_ints(ctx, "axes", axes, BNF_MAX_RANK);
        if (na > r)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": %zu axes for rank %zu",
                            BNF_NODE_ARG(ctx), na, r);
        if ((rc = check_axes(ctx, axes, na, r)))
            return rc;
    }
    troi = bnf_opt_in(ctx, 1);
    tsc = bnf_opt_in(ctx, 2);
    tsz = bnf_opt_in(ctx, 3);
    if (tsc && tsc->n == 0)
        tsc = NULL;
    if (tsz && tsz->n == 0)
        tsz = NULL;
    if (!tsc == !tsz)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": exactly one of 'scales' and 'sizes' must be given",
                        BNF_NODE_ARG(ctx));
    for (size_t i = 0; i < r; i++) {
        rs[i] = 0;
        re[i] = 1;
        scales[i] = 1;
        dims[i] = x->dims[i];
    }
    if (p.ctm == CT_TF_CROP_AND_RESIZE) {
        if (!troi || troi->n != 2 * na ||
            (troi->dtype != BNF_T_FLOAT && troi->dtype != BNF_T_DOUBLE))
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": tf_crop_and_resize needs 'roi' of %zu reals",
                            BNF_NODE_ARG(ctx), 2 * na);
        for (size_t k = 0; k < na; k++) {
            rs[axes[k]] = bnf_get_f64(troi, k);
            re[axes[k]] = bnf_get_f64(troi, k + na);
        }
    }
    if (tsc) {
        double sc[BNF_MAX_RANK];
        if ((rc = rz_read_scales(ctx, tsc, na, sc)))
            return rc;
        for (size_t k = 0; k < na; k++)
            scales[axes[k]] = sc[k];
        if ((rc = rz_dims_from_scales(ctx, scales, dims)))
            return rc;
    } else {
        char pbuf[32];
        const char *policy = ctx->opset >= 18 ? get_str(ctx, "keep_aspect_ratio_policy", "stretch",
                                                        pbuf, sizeof pbuf)
                                              : "stretch";
        if (tsz->dtype != BNF_T_INT64 ||
            (rc = bnf_read_ints(ctx, tsz, "sizes", sizes, BNF_MAX_RANK, &n)) || n != na)
            return rc ? rc
                      : bnf_fail(ctx->err, BNF_ERR_INVALID,
                                 BNF_NODE_FMT ": 'sizes' must be %zu int64", BNF_NODE_ARG(ctx), na);
        for (size_t k = 0; k < na; k++) {
            int64_t a = axes[k];
            if (sizes[k] < 0)
                return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": sizes[%zu] is %lld",
                                BNF_NODE_ARG(ctx), k, (long long)sizes[k]);
            dims[a] = sizes[k];
            scales[a] = x->dims[a] ? (double)sizes[k] / (double)x->dims[a] : 1;
        }
        if (strcmp(policy, "not_larger") == 0 || strcmp(policy, "not_smaller") == 0) {
            int larger = policy[4] == 's';
            double sc = scales[axes[0]];
            for (size_t k = 1; k < na; k++) {
                double v = scales[axes[k]];
                sc = larger ? (v > sc ? v : sc) : (v < sc ? v : sc);
            }
            for (size_t k = 0; k < na; k++) {
                double v = sc * (double)x->dims[axes[k]] + 0.5;
                if (!(v < 0x1p62))
                    return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": size too large",
                                    BNF_NODE_ARG(ctx));
                scales[axes[k]] = sc;
                dims[axes[k]] = (int64_t)v;
            }
        } else if (strcmp(policy, "stretch") != 0) {
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": unknown keep_aspect_ratio_policy '%s'",
                            BNF_NODE_ARG(ctx), policy);
        }
    }
    if (ctx->opset >= 18 && bnf_ctx_int(ctx, "antialias", 0) && p.mode != RZ_NEAREST)
        for (size_t i = 0; i < r; i++)
            if (scales[i] < 1)
                return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                                BNF_NODE_FMT ": antialiased downscaling is not supported",
                                BNF_NODE_ARG(ctx));
    for (size_t i = 0; i < r; i++)
        if (!(scales[i] > 0))
            scales[i] = 1; /* sizes 0: nothing is computed on that axis */
    return rz_run(ctx, &p, dims, scales, rs, re);
}

const bnf_op_def bnf_ops_resize[] = {
    {"Pad", 1, op_pad},
    {"Upsample", 7, op_upsample_v7},
    {"Upsample", 9, op_upsample_v9},
    {"Resize", 10, op_upsample_v9},
    {"Resize", 11, op_resize_v11},
    {NULL, 0, NULL},
};

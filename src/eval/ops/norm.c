/*
 * eval/ops/norm.c: BatchNormalization, InstanceNormalization and
 * LayerNormalization on float and double tensors.
 *
 * Every normalisation ends as y = x * s + t with s and t worked out in double
 * per channel (BatchNormalization, InstanceNormalization) or per row
 * (LayerNormalization), then applied in the tensor's own type.  Statistics
 * (batch, instance and layer mean and variance) are accumulated in double,
 * two passes (mean, then the mean of squared deviations).
 *
 * BatchNormalization: inference at every opset; spatial = 0 (opsets < 9) takes
 * per-element parameters of shape C x D1 x ...; training_mode = 1 (opset 14+)
 * normalises with the batch statistics and outputs the updated running mean
 * and variance.  The training outputs of opsets before 14 are not supported.
 */
#include "../eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int real_type(int32_t t)
{
    return t == BNF_T_FLOAT || t == BNF_T_DOUBLE;
}

/* y[i] = x[i] * s + t for len elements of type dtype (float or double). */
static void affine(void *y, const void *x, int32_t dtype, size_t len, double s, double t)
{
    if (dtype == BNF_T_FLOAT) {
        const float *xs = x;
        float *ys = y;
        float fs = (float)s, ft = (float)t;
        bnf_v4f vs = {fs, fs, fs, fs}, vt = {ft, ft, ft, ft};
        size_t i = 0;
        for (; i + 8 <= len; i += 8) {
            bnf_v4f a, b;
            memcpy(&a, xs + i, sizeof a);
            memcpy(&b, xs + i + 4, sizeof b);
            a = a * vs + vt;
            b = b * vs + vt;
            memcpy(ys + i, &a, sizeof a);
            memcpy(ys + i + 4, &b, sizeof b);
        }
        for (; i < len; i++)
            ys[i] = xs[i] * fs + ft;
    } else {
        const double *xs = x;
        double *ys = y;
        for (size_t i = 0; i < len; i++)
            ys[i] = xs[i] * s + t;
    }
}

/* y[i] = (x[i] - mean) * s + b: the operator's own formula, for a channel
 * whose s or t = b - mean * s is not finite (x * s + t would give NaN where
 * the formula gives an infinity). */
static void affine_centered(void *y, const void *x, int32_t dtype, size_t len, double mean,
                            double s, double b)
{
    for (size_t i = 0; i < len; i++) {
        if (dtype == BNF_T_FLOAT)
            ((float *)y)[i] = (float)(((double)((const float *)x)[i] - mean) * s + b);
        else
            ((double *)y)[i] = (((const double *)x)[i] - mean) * s + b;
    }
}

/* Mean and population variance of len elements (len > 0). */
static void moments(const void *x, int32_t dtype, size_t len, double *mean, double *var)
{
    double s = 0, q = 0, m;
    if (dtype == BNF_T_FLOAT) {
        const float *v = x;
        for (size_t i = 0; i < len; i++)
            s += v[i];
        m = s / (double)len;
        for (size_t i = 0; i < len; i++)
            q += ((double)v[i] - m) * ((double)v[i] - m);
    } else {
        const double *v = x;
        for (size_t i = 0; i < len; i++)
            s += v[i];
        m = s / (double)len;
        for (size_t i = 0; i < len; i++)
            q += (v[i] - m) * (v[i] - m);
    }
    *mean = m;
    *var = q / (double)len;
}

/* ---- BatchNormalization ------------------------------------------------------------- */

static bnf_status op_batch_normalization(bnf_op_ctx *ctx)
{
    static const char *const names[4] = {"scale", "B", "mean", "var"};
    const bnf_tensor *x, *p[4];
    bnf_tensor *y;
    bnf_status rc = BNF_OK;
    size_t n, c, inner, np, es;
    int spatial = 1, training = 0;
    double eps, momentum, *s = NULL, *t = NULL, *bmean = NULL, *bvar = NULL;

    if ((rc = bnf_need_inputs(ctx, 5, 5, "inputs X, scale, B, mean and var")))
        return rc;
    x = ctx->in[0];
    for (size_t i = 0; i < 4; i++)
        p[i] = ctx->in[i + 1];
    if (!real_type(x->dtype))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": X is %s, supported: float, double",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(x->dtype));
    if (x->rank < 2)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": X has rank %zu, expected >= 2",
                        BNF_NODE_ARG(ctx), x->rank);
    n = (size_t)x->dims[0];
    c = (size_t)x->dims[1];
    inner = 1;
    for (size_t i = 2; i < x->rank; i++)
        inner *= (size_t)x->dims[i];
    eps = bnf_attr_float(ctx->node, "epsilon", 1e-5);
    momentum = bnf_attr_float(ctx->node, "momentum", 0.9);
    if (ctx->opset < 9)
        spatial = bnf_ctx_int(ctx, "spatial", 1) != 0;
    if (ctx->opset < 7 && bnf_ctx_int(ctx, "is_test", 0) == 0)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": is_test = 0 (training mode) at opset %lld is not supported",
                        BNF_NODE_ARG(ctx), (long long)ctx->opset);
    if (ctx->opset >= 14)
        training = bnf_ctx_int(ctx, "training_mode", 0) != 0;
    else
        for (size_t i = 1; i < 5; i++)
            if (bnf_wanted(ctx, i))
                return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                                BNF_NODE_FMT ": the training outputs of opset %lld are not supported",
                                BNF_NODE_ARG(ctx), (long long)ctx->opset);
    np = spatial ? c : c * inner;
    for (size_t i = 0; i < 4; i++) {
        if (!real_type(p[i]->dtype))
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": %s is %s",
                            BNF_NODE_ARG(ctx), names[i], bnf_dtype_name(p[i]->dtype));
        if (p[i]->n != np || (spatial && p[i]->rank != 1))
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": %s has %zu values, expected %zu%s", BNF_NODE_ARG(ctx),
                            names[i], p[i]->n, np, spatial ? " (one per channel)" : "");
    }
    if (!isfinite(eps) || eps < 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": epsilon %g is invalid",
                        BNF_NODE_ARG(ctx), eps);
    if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
        return rc;
    s = bnf_malloc((np ? np : 1) * sizeof *s);
    t = bnf_malloc((np ? np : 1) * sizeof *t);
    if (!s || !t) {
        rc = bnf_nomem(ctx);
        goto out;
    }
    es = bnf_eval_size(x->dtype);
    if (training) {
        /* batch statistics per channel over N and the spatial axes */
        size_t cnt = n * inner;
        bmean = bnf_calloc(c ? c : 1, sizeof *bmean);
        bvar = bnf_calloc(c ? c : 1, sizeof *bvar);
        if (!bmean || !bvar) {
            rc = bnf_nomem(ctx);
            goto out;
        }
        for (size_t ch = 0; ch < c && cnt; ch++) {
            double sum = 0, sq = 0;
            for (size_t b = 0; b < n; b++) {
                size_t off = (b * c + ch) * inner;
                for (size_t i = 0; i < inner; i++)
                    sum += bnf_get_f64(x, off + i);
            }
            bmean[ch] = sum / (double)cnt;
            for (size_t b = 0; b < n; b++) {
                size_t off = (b * c + ch) * inner;
                for (size_t i = 0; i < inner; i++) {
                    double d = bnf_get_f64(x, off + i) - bmean[ch];
                    sq += d * d;
                }
            }
            bvar[ch] = sq / (double)cnt;
        }
    }
    for (size_t i = 0; i < np; i++) {
        double mean = training ? bmean[i] : bnf_get_f64(p[2], i);
        double var = training ? bvar[i] : bnf_get_f64(p[3], i);
        s[i] = bnf_get_f64(p[0], i) / sqrt(var + eps);
        t[i] = bnf_get_f64(p[1], i) - mean * s[i];
    }
    for (size_t b = 0; b < n; b++)
        for (size_t ch = 0; ch < c; ch++) {
            size_t off = (b * c + ch) * inner;
            for (size_t i = 0; i < (spatial ? 1 : inner); i++) {
                size_t k = spatial ? ch : ch * inner + i, len = spatial ? inner : 1;
                char *yo = (char *)y->data + (off + i) * es;
                const char *xo = (const char *)x->data + (off + i) * es;
                if (x->dtype == BNF_T_FLOAT ? isfinite((float)s[k]) && isfinite((float)t[k])
                                            : isfinite(s[k]) && isfinite(t[k]))
                    affine(yo, xo, x->dtype, len, s[k], t[k]);
                else
                    affine_centered(yo, xo, x->dtype, len,
                                    training ? bmean[k] : bnf_get_f64(p[2], k), s[k],
                                    bnf_get_f64(p[1], k));
            }
        }
    /* running mean and variance: updated in training mode, passed through otherwise */
    for (size_t o = 1; o <= 2; o++) {
        const bnf_tensor *in = p[o + 1];
        bnf_tensor *r;
        if (!bnf_wanted(ctx, o))
            continue;
        if ((rc = bnf_out(ctx, o, in->dtype, in->dims, in->rank, &r)))
            goto out;
        for (size_t i = 0; i < np; i++) {
            double v = bnf_get_f64(in, i);
            if (training)
                v = v * momentum + (o == 1 ? bmean[i] : bvar[i]) * (1.0 - momentum);
            bnf_set_f64(r, i, v);
        }
    }
out:
    bnf_free(s);
    bnf_free(t);
    bnf_free(bmean);
    bnf_free(bvar);
    return rc;
}

/* ---- InstanceNormalization ----------------------------------------------------------- */

static bnf_status op_instance_normalization(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *sc, *bi;
    bnf_tensor *y;
    bnf_status rc;
    size_t n, c, inner = 1, es;
    double eps;

    if ((rc = bnf_need_inputs(ctx, 3, 3, "inputs X, scale and B")))
        return rc;
    x = ctx->in[0];
    sc = ctx->in[1];
    bi = ctx->in[2];
    if (!real_type(x->dtype) || !real_type(sc->dtype) || !real_type(bi->dtype))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": X, scale and B must be float or double", BNF_NODE_ARG(ctx));
    if (x->rank < 3)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": X has rank %zu, expected >= 3",
                        BNF_NODE_ARG(ctx), x->rank);
    n = (size_t)x->dims[0];
    c = (size_t)x->dims[1];
    for (size_t i = 2; i < x->rank; i++)
        inner *= (size_t)x->dims[i];
    if (sc->rank != 1 || (size_t)sc->dims[0] != c || bi->rank != 1 || (size_t)bi->dims[0] != c)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": scale and B must have shape [%zu]",
                        BNF_NODE_ARG(ctx), c);
    eps = bnf_attr_float(ctx->node, "epsilon", 1e-5);
    if (!isfinite(eps) || eps < 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": epsilon %g is invalid",
                        BNF_NODE_ARG(ctx), eps);
    if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
        return rc;
    if (inner == 0)
        return BNF_OK;
    es = bnf_eval_size(x->dtype);
    for (size_t b = 0; b < n; b++)
        for (size_t ch = 0; ch < c; ch++) {
            size_t off = (b * c + ch) * inner * es;
            double mean, var, s;
            moments((const char *)x->data + off, x->dtype, inner, &mean, &var);
            s = bnf_get_f64(sc, ch) / sqrt(var + eps);
            affine((char *)y->data + off, (const char *)x->data + off, x->dtype, inner, s,
                   bnf_get_f64(bi, ch) - mean * s);
        }
    return BNF_OK;
}

/* ---- LayerNormalization ------------------------------------------------------------------ */

/* For Scale or B of shape `t` broadcast (numpy, right-aligned) to the normalized
 * shape dims[axis:] of X: NULL when the element index is the position itself
 * (same number of elements), else a table of inner indices; *scalar when t has
 * one element.  Fails when t does not broadcast. */
static bnf_status ln_param(bnf_op_ctx *ctx, const char *name, const bnf_tensor *t,
                           const bnf_tensor *x, size_t axis, size_t inner, size_t **idx)
{
    size_t r = x->rank - axis;
    bnf_tensor shaped;
    *idx = NULL;
    if (!real_type(t->dtype))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": %s is %s", BNF_NODE_ARG(ctx),
                        name, bnf_dtype_name(t->dtype));
    for (size_t i = 0; i < t->rank; i++) {
        /* leading dimensions beyond the normalized shape must be 1 */
        size_t xi = t->rank - i <= r ? x->rank - (t->rank - i) : SIZE_MAX;
        if (xi == SIZE_MAX ? t->dims[i] != 1 : t->dims[i] != 1 && t->dims[i] != x->dims[xi])
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": %s does not broadcast to the normalized shape (axis %zu)",
                            BNF_NODE_ARG(ctx), name, axis);
    }
    if (t->n == inner || t->n == 1)
        return BNF_OK;
    /* a genuine broadcast: index table over the normalized shape */
    memset(&shaped, 0, sizeof shaped);
    shaped.rank = t->rank < r ? t->rank : r;
    memcpy(shaped.dims, t->dims + (t->rank - shaped.rank), shaped.rank * sizeof *shaped.dims);
    *idx = bnf_malloc((inner ? inner : 1) * sizeof **idx);
    if (!*idx)
        return bnf_nomem(ctx);
    bnf_broadcast_index(&shaped, x->dims + axis, r, *idx);
    return BNF_OK;
}

static bnf_status op_layer_normalization(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *sc, *bi;
    bnf_tensor *y, *mo = NULL, *io = NULL;
    bnf_status rc;
    int64_t axis, sdims[BNF_MAX_RANK], stash;
    size_t ax, outer = 1, inner = 1, *sidx = NULL, *bidx = NULL;
    int32_t utype;
    double eps, *row_s = NULL;

    if ((rc = bnf_need_inputs(ctx, 2, 3, "inputs X, Scale and an optional B")))
        return rc;
    x = ctx->in[0];
    sc = ctx->in[1];
    bi = ctx->n_in > 2 ? ctx->in[2] : NULL;
    if (!real_type(x->dtype))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": X is %s, supported: float, double",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(x->dtype));
    if (x->rank < 1)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": X must have rank >= 1",
                        BNF_NODE_ARG(ctx));
    if ((rc = bnf_norm_axis(ctx, bnf_ctx_int(ctx, "axis", -1), x->rank, 0, &axis)))
        return rc;
    ax = (size_t)axis;
    stash = bnf_ctx_int(ctx, "stash_type", BNF_T_FLOAT);
    if (stash != BNF_T_FLOAT && stash != BNF_T_DOUBLE)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": stash_type %lld is not supported (float or double only)",
                        BNF_NODE_ARG(ctx), (long long)stash);
    utype = (int32_t)stash;
    eps = bnf_attr_float(ctx->node, "epsilon", 1e-5);
    if (!isfinite(eps) || eps < 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": epsilon %g is invalid",
                        BNF_NODE_ARG(ctx), eps);
    for (size_t i = 0; i < x->rank; i++) {
        if (i < ax)
            outer *= (size_t)x->dims[i];
        else
            inner *= (size_t)x->dims[i];
        sdims[i] = i < ax ? x->dims[i] : 1;
    }
    if ((rc = ln_param(ctx, "Scale", sc, x, ax, inner, &sidx)) ||
        (bi && (rc = ln_param(ctx, "B", bi, x, ax, inner, &bidx))))
        goto out;
    if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)) ||
        (bnf_wanted(ctx, 1) && (rc = bnf_out(ctx, 1, utype, sdims, x->rank, &mo))) ||
        (bnf_wanted(ctx, 2) && (rc = bnf_out(ctx, 2, utype, sdims, x->rank, &io))))
        goto out;
    if (inner == 0 || outer == 0)
        goto out;
    row_s = bnf_malloc(2 * inner * sizeof *row_s); /* scale and bias over the normalized shape */
    if (!row_s) {
        rc = bnf_nomem(ctx);
        goto out;
    }
    for (size_t i = 0; i < inner; i++) {
        row_s[i] = bnf_get_f64(sc, sidx ? sidx[i] : sc->n == 1 ? 0 : i);
        row_s[inner + i] = !bi ? 0.0 : bnf_get_f64(bi, bidx ? bidx[i] : bi->n == 1 ? 0 : i);
    }
    for (size_t r = 0; r < outer; r++) {
        double mean, var, inv;
        size_t off = r * inner;
        moments((const char *)x->data + off * bnf_eval_size(x->dtype), x->dtype, inner, &mean, &var);
        inv = 1.0 / sqrt(var + eps);
        if (x->dtype == BNF_T_FLOAT) {
            const float *xs = (const float *)x->data + off;
            float *ys = (float *)y->data + off;
            for (size_t i = 0; i < inner; i++)
                ys[i] = (float)(((double)xs[i] - mean) * inv * row_s[i] + row_s[inner + i]);
        } else {
            const double *xs = (const double *)x->data + off;
            double *ys = (double *)y->data + off;
            for (size_t i = 0; i < inner; i++)
                ys[i] = (xs[i] - mean) * inv * row_s[i] + row_s[inner + i];
        }
        if (mo)
            bnf_set_f64(mo, r, mean);
        if (io)
            bnf_set_f64(io, r, inv);
    }
out:
    bnf_free(sidx);
    bnf_free(bidx);
    bnf_free(row_s);
    return rc;
}

const bnf_op_def bnf_ops_norm[] = {
    {"BatchNormalization", 1, op_batch_normalization},
    {"InstanceNormalization", 1, op_instance_normalization},
    {"LayerNormalization", 17, op_layer_normalization},
    {NULL, 0, NULL},
};

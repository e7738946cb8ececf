/*
 * eval/ops/op_util.c: what the operator kernels share: the node's outputs
 * (bnf_out), its attributes (bnf_ctx_*), the checks of its inputs, of
 * shape-like tensors and of axes, numpy broadcasting, and the window geometry
 * of Conv, ConvTranspose and the pools.
 *
 * Every check returns BNF_OK or a bnf_fail() status whose message starts with
 * the node (BNF_NODE_FMT), so a kernel passes a failure on as it is.  Nothing
 * here keeps state.
 */
#include "../eval.h"

#include <string.h>

/* ---- outputs ---------------------------------------------------------------------- */

bnf_status bnf_out(bnf_op_ctx *ctx, size_t i, int32_t dtype, const int64_t *dims, size_t rank,
                   bnf_tensor **out)
{
    bnf_status rc;
    if (i >= ctx->n_out || !ctx->out[i])
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT " has no output %zu",
                        BNF_NODE_ARG(ctx), i);
    rc = bnf_tensor_alloc(ctx->out[i], dtype, dims, rank, ctx->err);
    if (rc == BNF_OK && out)
        *out = ctx->out[i];
    return rc;
}

/* ---- attributes ------------------------------------------------------------------ */

int64_t bnf_ctx_int(const bnf_op_ctx *ctx, const char *name, int64_t dflt)
{
    return bnf_attr_int(ctx->node, name, dflt);
}

float bnf_ctx_float(const bnf_op_ctx *ctx, const char *name, float dflt)
{
    return (float)bnf_attr_float(ctx->node, name, dflt);
}

const char *bnf_ctx_string(const bnf_op_ctx *ctx, const char *name, const char *dflt, char *buf,
                           size_t size)
{
    const Onnx__AttributeProto *a = bnf_node_attr(ctx->node, name);
    if (!a || !a->has_s)
        return dflt;
    if (!size)
        return "";
    snprintf(buf, size, "%.*s", (int)(a->s.len < size - 1 ? a->s.len : size - 1),
             (const char *)a->s.data);
    return buf;
}

/* The first min(n, max) of n values of es bytes into dst; returns n. */
static size_t copy_values(void *dst, const void *src, size_t n, size_t max, size_t es)
{
    if (n && max)
        memcpy(dst, src, (n < max ? n : max) * es);
    return n;
}

size_t bnf_ctx_ints(const bnf_op_ctx *ctx, const char *name, int64_t *vals, size_t max)
{
    const Onnx__AttributeProto *a = bnf_node_attr(ctx->node, name);
    return a ? copy_values(vals, a->ints, a->n_ints, max, sizeof *vals) : 0;
}

size_t bnf_ctx_floats(const bnf_op_ctx *ctx, const char *name, float *vals, size_t max)
{
    const Onnx__AttributeProto *a = bnf_node_attr(ctx->node, name);
    return a ? copy_values(vals, a->floats, a->n_floats, max, sizeof *vals) : 0;
}

const Onnx__TensorProto *bnf_ctx_tensor(const bnf_op_ctx *ctx, const char *name)
{
    const Onnx__AttributeProto *a = bnf_node_attr(ctx->node, name);
    return a ? a->t : NULL;
}

bnf_status bnf_ctx_ints_range(bnf_op_ctx *ctx, const char *name, size_t want, int64_t dflt,
                              int64_t lo, int64_t hi, int64_t *v)
{
    size_t n = bnf_ctx_ints(ctx, name, v, want);
    if (n == 0) {
        for (size_t i = 0; i < want; i++)
            v[i] = dflt;
        return BNF_OK;
    }
    if (n != want)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": %s has %zu values, expected %zu",
                        BNF_NODE_ARG(ctx), name, n, want);
    for (size_t i = 0; i < want; i++)
        if (v[i] < lo || v[i] > hi)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": %s[%zu] = %lld is out of range [%lld, %lld]",
                            BNF_NODE_ARG(ctx), name, i, (long long)v[i], (long long)lo,
                            (long long)hi);
    return BNF_OK;
}

int bnf_find_name(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- inputs and errors --------------------------------------------------------------- */

bnf_status bnf_run_with_second(bnf_op_ctx *ctx, const bnf_tensor *b,
                               bnf_status (*run)(bnf_op_ctx *))
{
    const bnf_tensor *const *saved = ctx->in;
    const bnf_tensor *ins[2] = {ctx->in[0], b};
    bnf_status rc;
    ctx->in = ins;
    rc = run(ctx);
    ctx->in = saved;
    return rc;
}

bnf_status bnf_need_inputs(const bnf_op_ctx *ctx, size_t lo, size_t hi, const char *what)
{
    size_t present = hi == SIZE_MAX ? ctx->n_in : lo, i = 0;
    int count_ok = ctx->n_in >= lo && ctx->n_in <= hi;
    if (count_ok)
        while (i < present && ctx->in[i])
            i++;
    if (count_ok && i == present)
        return BNF_OK;
    if (what)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": needs %s", BNF_NODE_ARG(ctx),
                        what);
    if (count_ok)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": input %zu is missing",
                        BNF_NODE_ARG(ctx), i);
    if (hi == SIZE_MAX)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": has %zu inputs, needs at least %zu", BNF_NODE_ARG(ctx),
                        ctx->n_in, lo);
    return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": has %zu inputs, needs %zu to %zu",
                    BNF_NODE_ARG(ctx), ctx->n_in, lo, hi);
}

bnf_status bnf_unsupported_type(const bnf_op_ctx *ctx, int32_t dtype)
{
    return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": %s inputs are not supported",
                    BNF_NODE_ARG(ctx), bnf_dtype_name(dtype));
}

bnf_status bnf_nomem(const bnf_op_ctx *ctx)
{
    return bnf_fail(ctx->err, BNF_ERR_NOMEM, BNF_NODE_FMT ": out of memory", BNF_NODE_ARG(ctx));
}

/* ---- shape-like tensors and axes ------------------------------------------------------ */

bnf_status bnf_read_ints(const bnf_op_ctx *ctx, const bnf_tensor *t, const char *what,
                         int64_t *vals, size_t max, size_t *n)
{
    if (t->dtype != BNF_T_INT64 && t->dtype != BNF_T_INT32)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": '%s' must be int64 or int32",
                        BNF_NODE_ARG(ctx), what);
    if (t->rank > 1)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": '%s' must be 1-D, not rank %zu",
                        BNF_NODE_ARG(ctx), what, t->rank);
    if (t->n > max)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": '%s' has %zu values, more than the %zu handled",
                        BNF_NODE_ARG(ctx), what, t->n, max);
    for (size_t i = 0; i < t->n; i++)
        vals[i] = t->dtype == BNF_T_INT64 ? ((const int64_t *)t->data)[i]
                                          : ((const int32_t *)t->data)[i];
    *n = t->n;
    return BNF_OK;
}

bnf_status bnf_norm_axis(const bnf_op_ctx *ctx, int64_t axis, size_t rank, int inclusive,
                         int64_t *out)
{
    int64_t r = (int64_t)rank, hi = inclusive ? r : r - 1;
    if (axis < -r || axis > hi)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": axis %lld is out of range for rank %zu", BNF_NODE_ARG(ctx),
                        (long long)axis, rank);
    *out = axis < 0 ? axis + r : axis;
    return BNF_OK;
}

/* ---- broadcasting ---------------------------------------------------------------- */

bnf_status bnf_broadcast_shape(const bnf_op_ctx *ctx, const bnf_tensor *a, const bnf_tensor *b,
                               int64_t *dims, size_t *rank)
{
    size_t r = a->rank > b->rank ? a->rank : b->rank;
    for (size_t i = 0; i < r; i++) {
        int64_t da = i < r - a->rank ? 1 : a->dims[i - (r - a->rank)];
        int64_t db = i < r - b->rank ? 1 : b->dims[i - (r - b->rank)];
        if (da != db && da != 1 && db != 1)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": shapes do not broadcast (dimension %zu: %lld vs %lld)",
                            BNF_NODE_ARG(ctx), i, (long long)da, (long long)db);
        dims[i] = da == 1 ? db : da;
    }
    *rank = r;
    return BNF_OK;
}

void bnf_broadcast_index(const bnf_tensor *t, const int64_t *dims, size_t rank, size_t *idx)
{
    int64_t stride[BNF_MAX_RANK], counter[BNF_MAX_RANK] = {0};
    size_t n = 1, off = rank - t->rank, s = 1, pos = 0;
    for (size_t i = 0; i < rank; i++)
        n *= (size_t)dims[i];
    for (size_t i = rank; i-- > 0;) {
        int64_t d = i < off ? 1 : t->dims[i - off];
        stride[i] = d == 1 ? 0 : (int64_t)s;
        s *= (size_t)d;
    }
    for (size_t k = 0; k < n; k++) {
        idx[k] = pos;
        for (size_t i = rank; i-- > 0;) {
            counter[i]++;
            pos += (size_t)stride[i];
            if (counter[i] < dims[i])
                break;
            pos -= (size_t)(stride[i] * counter[i]);
            counter[i] = 0;
        }
    }
}

/* ---- windowed operators: Conv, ConvTranspose, MaxPool, AveragePool ---------------------- */

bnf_status bnf_check_spatial(bnf_op_ctx *ctx, const bnf_tensor *x, const bnf_tensor *w)
{
    if (x->rank < 3 || x->rank > BNF_MAX_RANK)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": X has rank %zu, expected N x C x D1 ... (rank 3 to %d)",
                        BNF_NODE_ARG(ctx), x->rank, BNF_MAX_RANK);
    if (w && w->rank != x->rank)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": W has rank %zu, X has rank %zu",
                        BNF_NODE_ARG(ctx), w->rank, x->rank);
    for (size_t i = 2; i < x->rank; i++) {
        if (w && (w->dims[i] < 1 || w->dims[i] > BNF_DIM_MAX))
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": W dimension %zu is %lld",
                            BNF_NODE_ARG(ctx), i, (long long)w->dims[i]);
        if (x->dims[i] > BNF_DIM_MAX)
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": X dimension %zu is %lld",
                            BNF_NODE_ARG(ctx), i, (long long)x->dims[i]);
    }
    return BNF_OK;
}

bnf_status bnf_auto_pad(bnf_op_ctx *ctx, int *mode)
{
    static const char *const names[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    char buf[16];
    const char *s = bnf_ctx_string(ctx, "auto_pad", "NOTSET", buf, sizeof buf);
    *mode = s[0] ? bnf_find_name(s, names, sizeof names / sizeof names[0]) : BNF_PAD_NOTSET;
    if (*mode < 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": unknown auto_pad '%s'",
                        BNF_NODE_ARG(ctx), s);
    return BNF_OK;
}

void bnf_explicit_pads(int mode, const int64_t *pads, size_t nsp, size_t i, int64_t *pb,
                       int64_t *pe)
{
    if (mode == BNF_PAD_VALID) {
        *pb = *pe = 0;
    } else {
        *pb = pads[i];
        *pe = pads[i + nsp];
    }
}

int64_t bnf_same_pads(int64_t in, int64_t s, int64_t dk, int mode, int64_t *pb, int64_t *pe)
{
    int64_t out = bnf_ceil_div(in, s), total = (out - 1) * s + dk - in;
    if (total < 0)
        total = 0;
    *pb = mode == BNF_PAD_SAME_UPPER ? total / 2 : total - total / 2;
    *pe = total - *pb;
    return out;
}

/*
 * eval/ops/generate.c: operators that make tensors from attributes or
 * convert them: Constant, ConstantOfShape, Range, Cast and CastLike.
 *
 * Types are the evaluator's (float, double, the 8- to 64-bit integers, bool).
 * Cast to float16 or bfloat16 yields float32 holding the value rounded to that
 * type, the way the evaluator holds every float16/bfloat16 tensor; string
 * tensors, sparse constants and external-data constants are unsupported.
 */
#include "../eval.h"

#include <math.h>
#include <string.h>

/* Decodes an attribute tensor into t, prefixing any error with the node. */
static bnf_status decode_attr_tensor(bnf_op_ctx *ctx, const Onnx__TensorProto *p, bnf_tensor *t)
{
    bnf_status rc;
    char msg[sizeof ctx->err->msg];
    if (bnf_proto_is_external(p))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": a constant with external data is not supported",
                        BNF_NODE_ARG(ctx));
    if (p->data_type == BNF_T_STRING)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": string tensors are not supported", BNF_NODE_ARG(ctx));
    if ((rc = bnf_tensor_from_proto(NULL, p, t, ctx->err))) {
        snprintf(msg, sizeof msg, "%s", ctx->err->msg);
        return bnf_fail(ctx->err, rc, BNF_NODE_FMT ": %s", BNF_NODE_ARG(ctx), msg);
    }
    return BNF_OK;
}

static int attr_is(const Onnx__AttributeProto *a, Onnx__AttributeProto__AttributeType type)
{
    return !a->has_type || a->type == type;
}

/* ---- Constant -------------------------------------------------------------------- */

/* Output 0 = the n values at v of type dtype: a scalar (rank 0, n = 1) or 1-D. */
static bnf_status values_out(bnf_op_ctx *ctx, int32_t dtype, const void *v, size_t n,
                             size_t rank)
{
    int64_t dims[1] = {(int64_t)n};
    bnf_tensor *y;
    bnf_status rc = bnf_out(ctx, 0, dtype, dims, rank, &y);
    if (rc == BNF_OK && n)
        memcpy(y->data, v, n * bnf_eval_size(dtype));
    return rc;
}

static bnf_status op_constant(bnf_op_ctx *ctx)
{
    static const char *const names[] = {"value",        "sparse_value", "value_float",
                                        "value_floats", "value_int",    "value_ints",
                                        "value_string", "value_strings"};
    const Onnx__AttributeProto *a = NULL;
    const char *which = NULL;
    size_t count = 0;

    if (ctx->n_in != 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": takes no inputs",
                        BNF_NODE_ARG(ctx));
    if (ctx->n_out < 1 || !ctx->out[0])
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": has no output",
                        BNF_NODE_ARG(ctx));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const Onnx__AttributeProto *x = bnf_node_attr(ctx->node, names[i]);
        if (x) {
            a = x;
            which = names[i];
            count++;
        }
    }
    if (count != 1)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": needs exactly one value attribute, has %zu",
                        BNF_NODE_ARG(ctx), count);
    if (strcmp(which, "value") == 0) {
        if (!a->t)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": 'value' holds no tensor",
                            BNF_NODE_ARG(ctx));
        return decode_attr_tensor(ctx, a->t, ctx->out[0]);
    }
    if (strcmp(which, "value_float") == 0 &&
        attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT))
        return values_out(ctx, BNF_T_FLOAT, &a->f, 1, 0);
    if (strcmp(which, "value_int") == 0 && attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT))
        return values_out(ctx, BNF_T_INT64, &a->i, 1, 0);
    if (strcmp(which, "value_floats") == 0 &&
        attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS))
        return values_out(ctx, BNF_T_FLOAT, a->floats, a->n_floats, 1);
    if (strcmp(which, "value_ints") == 0 &&
        attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS))
        return values_out(ctx, BNF_T_INT64, a->ints, a->n_ints, 1);
    if (strcmp(which, "sparse_value") == 0 || strncmp(which, "value_string", 12) == 0)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": '%s' is not supported",
                        BNF_NODE_ARG(ctx), which);
    return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": attribute '%s' has the wrong type",
                    BNF_NODE_ARG(ctx), which);
}

/* ---- ConstantOfShape --------------------------------------------------------------- */

static bnf_status op_constant_of_shape(bnf_op_ctx *ctx)
{
    const bnf_tensor *s;
    const Onnx__TensorProto *p;
    bnf_tensor v = {0}, *y;
    int64_t dims[BNF_MAX_RANK];
    float zero = 0.0f;
    const void *value = &zero;
    int32_t dtype = BNF_T_FLOAT;
    size_t es = 4, total, done;
    bnf_status rc;

    if ((rc = bnf_need_inputs(ctx, 1, 1, "one input")))
        return rc;
    s = ctx->in[0];
    if (s->dtype != BNF_T_INT64 || s->rank != 1)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": the shape must be a 1-D int64",
                        BNF_NODE_ARG(ctx));
    if (s->n > BNF_MAX_RANK)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": rank %zu is over %d",
                        BNF_NODE_ARG(ctx), s->n, BNF_MAX_RANK);
    for (size_t i = 0; i < s->n; i++) {
        dims[i] = ((const int64_t *)s->data)[i];
        if (dims[i] < 0)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": shape[%zu] is %lld",
                            BNF_NODE_ARG(ctx), i, (long long)dims[i]);
    }
    if ((p = bnf_ctx_tensor(ctx, "value"))) {
        if ((rc = decode_attr_tensor(ctx, p, &v)))
            return rc;
        if (v.n != 1) {
            bnf_tensor_release(&v);
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": 'value' must hold one element", BNF_NODE_ARG(ctx));
        }
        dtype = v.dtype;
        es = bnf_eval_size(dtype);
        value = v.data;
    }
    if ((rc = bnf_out(ctx, 0, dtype, dims, s->n, &y)))
        goto out;
    total = y->n * es;
    if (total) {
        /* one element, then doubling copies */
        memcpy(y->data, value, es);
        for (done = es; done < total; done *= 2)
            memcpy((char *)y->data + done, y->data, done < total - done ? done : total - done);
    }
out:
    bnf_tensor_release(&v);
    return rc;
}

/* ---- Range ------------------------------------------------------------------------ */

static bnf_status op_range(bnf_op_ctx *ctx)
{
    const bnf_tensor *t[3];
    bnf_tensor *y;
    int64_t dims[1];
    int32_t dt;
    bnf_status rc;

    if (ctx->n_in != 3)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": needs 3 inputs",
                        BNF_NODE_ARG(ctx));
    for (size_t i = 0; i < 3; i++) {
        t[i] = ctx->in[i];
        if (!t[i] || t[i]->n != 1 || t[i]->rank > 1)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": input %zu must be a scalar",
                            BNF_NODE_ARG(ctx), i);
        if (t[i]->dtype != t[0]->dtype)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": inputs differ in type",
                            BNF_NODE_ARG(ctx));
    }
    dt = t[0]->dtype;
    if (dt == BNF_T_FLOAT || dt == BNF_T_DOUBLE) {
        double start = bnf_get_f64(t[0], 0), delta = bnf_get_f64(t[2], 0), count;
        /* the count is computed in the inputs' own precision, as the spec says */
        if (dt == BNF_T_FLOAT) {
            float s = (float)start, l = (float)bnf_get_f64(t[1], 0), d = (float)delta;
            float q = (l - s) / d;
            count = ceil((double)q);
        } else {
            count = ceil((bnf_get_f64(t[1], 0) - start) / delta);
        }
        if (delta == 0 || isnan(count))
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": delta is 0 or a value is NaN", BNF_NODE_ARG(ctx));
        if (count > (double)(INT64_MAX / 16))
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": %g elements is too many",
                            BNF_NODE_ARG(ctx), count);
        dims[0] = count > 0 ? (int64_t)count : 0;
        if ((rc = bnf_out(ctx, 0, dt, dims, 1, &y)))
            return rc;
        if (dt == BNF_T_FLOAT)
            for (int64_t i = 0; i < dims[0]; i++)
                ((float *)y->data)[i] = (float)(start + (double)i * delta);
        else
            for (int64_t i = 0; i < dims[0]; i++)
                ((double *)y->data)[i] = start + (double)i * delta;
        return BNF_OK;
    }
    if (dt == BNF_T_INT64 || dt == BNF_T_INT32 || dt == BNF_T_INT16) {
        int64_t start = bnf_get_i64(t[0], 0), limit = bnf_get_i64(t[1], 0),
                delta = bnf_get_i64(t[2], 0);
        uint64_t span, step, count = 0;
        if (delta == 0)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": delta is 0",
                            BNF_NODE_ARG(ctx));
        if (delta > 0 && limit > start) {
            span = (uint64_t)limit - (uint64_t)start;
            step = (uint64_t)delta;
            count = span / step + (span % step != 0);
        } else if (delta < 0 && limit < start) {
            span = (uint64_t)start - (uint64_t)limit;
            step = (uint64_t)0 - (uint64_t)delta;
            count = span / step + (span % step != 0);
        }
        if (count > (uint64_t)INT64_MAX)
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": too many elements",
                            BNF_NODE_ARG(ctx));
        dims[0] = (int64_t)count;
        if ((rc = bnf_out(ctx, 0, dt, dims, 1, &y)))
            return rc;
        /* start + i * delta stays between start and limit: no overflow */
        for (int64_t i = 0; i < dims[0]; i++) {
            int64_t v = (int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)delta);
            if (dt == BNF_T_INT64)
                ((int64_t *)y->data)[i] = v;
            else if (dt == BNF_T_INT32)
                ((int32_t *)y->data)[i] = (int32_t)v;
            else
                ((int16_t *)y->data)[i] = (int16_t)v;
        }
        return BNF_OK;
    }
    return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": Range of %s is not supported",
                    BNF_NODE_ARG(ctx), bnf_dtype_name(dt));
}

/* ---- Cast -------------------------------------------------------------------------- */

/* Real to integer: truncation toward zero, saturating at the type's range
 * (out-of-range is undefined in ONNX; C makes it undefined behaviour), NaN -> 0. */
static inline int64_t real_to_i64(double v)
{
    if (v != v)
        return 0;
    if (v >= 0x1p63)
        return INT64_MAX;
    if (v <= -0x1p63)
        return INT64_MIN;
    return (int64_t)v;
}

static inline uint64_t real_to_u64(double v)
{
    if (!(v > 0))
        return 0;
    if (v >= 0x1p64)
        return UINT64_MAX;
    return (uint64_t)v;
}

static inline int64_t real_to_range(double v, double lo, double hi)
{
    if (v != v)
        return 0;
    if (v <= lo)
        return (int64_t)lo;
    if (v >= hi)
        return (int64_t)hi;
    return (int64_t)v;
}

#define CAST_LOOP(DT, EXPR)                                                                        \
    do {                                                                                           \
        DT *d_ = y->data;                                                                          \
        for (size_t i = 0; i < n; i++)                                                             \
            d_[i] = (EXPR);                                                                        \
    } while (0)

/* Converts n elements of s to y's type `to`: the same for every source type
 * but for the narrowing to an integer type, NARROW(T, UT, lo, hi) of s[i] for
 * the types of up to 32 bits, TO_I64(v) and TO_U64(v) for the 64-bit ones. */
#define CAST_SWITCH(s, NARROW, TO_I64, TO_U64)                                                     \
    switch (to) {                                                                                  \
    case BNF_T_FLOAT: CAST_LOOP(float, (float)s[i]); break;                                        \
    case BNF_T_DOUBLE: CAST_LOOP(double, (double)s[i]); break;                                     \
    case BNF_T_INT64: CAST_LOOP(int64_t, TO_I64(s[i])); break;                                     \
    case BNF_T_INT32: CAST_LOOP(int32_t, NARROW(int32_t, uint32_t, -0x1p31, 0x1p31 - 1)); break;   \
    case BNF_T_INT8: CAST_LOOP(int8_t, NARROW(int8_t, uint8_t, -128.0, 127.0)); break;             \
    case BNF_T_UINT8: CAST_LOOP(uint8_t, NARROW(uint8_t, uint8_t, 0.0, 255.0)); break;             \
    case BNF_T_INT16: CAST_LOOP(int16_t, NARROW(int16_t, uint16_t, -32768.0, 32767.0)); break;     \
    case BNF_T_UINT16: CAST_LOOP(uint16_t, NARROW(uint16_t, uint16_t, 0.0, 65535.0)); break;       \
    case BNF_T_UINT32: CAST_LOOP(uint32_t, NARROW(uint32_t, uint32_t, 0.0, 0x1p32 - 1)); break;    \
    case BNF_T_UINT64: CAST_LOOP(uint64_t, TO_U64(s[i])); break;                                   \
    case BNF_T_BOOL: CAST_LOOP(uint8_t, s[i] != 0); break;                                         \
    default: CAST_LOOP(float, (float)bnf_round_to(to, (double)s[i])); break;                       \
    }

/* Reals saturate at the target's range (NaN -> 0); integers convert modulo
 * 2^bits to narrower integers, as numpy does. */
#define REAL_NARROW(T, UT, lo, hi) ((T)real_to_range(s[i], (lo), (hi)))
#define INT_NARROW(T, UT, lo, hi) ((T)(UT)s[i])
#define INT_TO_I64(v) ((int64_t)(v))
#define INT_TO_U64(v) ((uint64_t)(v))
#define CAST_FROM_REAL(s) CAST_SWITCH(s, REAL_NARROW, real_to_i64, real_to_u64)
#define CAST_FROM_INT(s) CAST_SWITCH(s, INT_NARROW, INT_TO_I64, INT_TO_U64)
/* The case of the source switch for integer type TT (C type CT). */
#define FROM_INT_CASE(TT, CT)                                                                      \
    case TT: {                                                                                     \
        const CT *s = x->data;                                                                     \
        CAST_FROM_INT(s);                                                                          \
        break;                                                                                     \
    }

/* Cast-1 names its target type with a string. */
static int32_t type_from_name(const char *s)
{
    static const struct {
        const char *name;
        int32_t type;
    } names[] = {
        {"FLOAT", BNF_T_FLOAT},       {"DOUBLE", BNF_T_DOUBLE},   {"INT64", BNF_T_INT64},
        {"INT32", BNF_T_INT32},       {"INT8", BNF_T_INT8},       {"UINT8", BNF_T_UINT8},
        {"BOOL", BNF_T_BOOL},         {"FLOAT16", BNF_T_FLOAT16}, {"STRING", BNF_T_STRING},
        {"BFLOAT16", BNF_T_BFLOAT16}, {"INT16", BNF_T_INT16},     {"UINT16", BNF_T_UINT16},
        {"UINT32", BNF_T_UINT32},     {"UINT64", BNF_T_UINT64},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].type;
    return -1;
}

/* Output 0 = x converted to type `to`. */
static bnf_status cast_to(bnf_op_ctx *ctx, const bnf_tensor *x, int32_t to)
{
    bnf_tensor *y;
    int32_t out_dt;
    size_t n;
    bnf_status rc;

    switch (to) {
    case BNF_T_FLOAT:
    case BNF_T_DOUBLE:
    case BNF_T_INT64:
    case BNF_T_INT32:
    case BNF_T_INT8:
    case BNF_T_UINT8:
    case BNF_T_BOOL:
    case BNF_T_INT16:
    case BNF_T_UINT16:
    case BNF_T_UINT32:
    case BNF_T_UINT64: out_dt = to; break;
    case BNF_T_FLOAT16:
    case BNF_T_BFLOAT16:
        out_dt = BNF_T_FLOAT; /* held as float32, rounded to the narrower type */
        break;
    default:
        return bnf_fail(
            ctx->err, BNF_ERR_UNSUPPORTED,
            BNF_NODE_FMT
            ": cast to %s (type %d) is not supported: the evaluator has no such tensors",
            BNF_NODE_ARG(ctx), bnf_dtype_name(to), (int)to);
    }
    if (!bnf_eval_size(x->dtype))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": cast from %s is not supported", BNF_NODE_ARG(ctx),
                        bnf_dtype_name(x->dtype));
    if ((rc = bnf_out(ctx, 0, out_dt, x->dims, x->rank, &y)))
        return rc;
    n = x->n;
    if (to == x->dtype) {
        memcpy(y->data, x->data, n * bnf_eval_size(to));
        return BNF_OK;
    }
    switch (x->dtype) {
    case BNF_T_FLOAT: {
        const float *s = x->data;
        CAST_FROM_REAL(s);
        break;
    }
    case BNF_T_DOUBLE: {
        const double *s = x->data;
        CAST_FROM_REAL(s);
        break;
    }
    BNF_INT_TYPES(FROM_INT_CASE)
    FROM_INT_CASE(BNF_T_BOOL, uint8_t)
    default:
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": cast from %s is not supported", BNF_NODE_ARG(ctx),
                        bnf_dtype_name(x->dtype));
    }
    return BNF_OK;
}

static bnf_status op_cast(bnf_op_ctx *ctx)
{
    int32_t to;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 1, 1, "one input")))
        return rc;
    if (ctx->opset < 6) {
        char name[32];
        bnf_ctx_string(ctx, "to", "", name, sizeof name);
        if (!bnf_node_attr(ctx->node, "to"))
            name[0] = '\0';
        to = type_from_name(name);
        if (to < 0)
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                            BNF_NODE_FMT ": cast to '%s' is not supported", BNF_NODE_ARG(ctx),
                            name);
    } else {
        if (!bnf_node_attr(ctx->node, "to"))
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": no 'to' attribute",
                            BNF_NODE_ARG(ctx));
        to = (int32_t)bnf_ctx_int(ctx, "to", 0);
    }
    return cast_to(ctx, ctx->in[0], to);
}

/* CastLike: to the type of input 1 (a float16 `like` reaches the evaluator as
 * float32, so casting "like float16" yields float32 unrounded). */
static bnf_status op_cast_like(bnf_op_ctx *ctx)
{
    bnf_status rc = bnf_need_inputs(ctx, 2, 2, "two inputs");
    return rc ? rc : cast_to(ctx, ctx->in[0], ctx->in[1]->dtype);
}

const bnf_op_def bnf_ops_generate[] = {
    {"Constant", 1, op_constant},
    {"ConstantOfShape", 9, op_constant_of_shape},
    {"Range", 11, op_range},
    {"Cast", 1, op_cast},
    {"CastLike", 15, op_cast_like},
    {NULL, 0, NULL},
};

/*
 * eval/ops/activation.c: activations.  Pointwise Relu LeakyRelu Elu Selu Celu
 * ThresholdedRelu Sigmoid HardSigmoid HardSwish Tanh Softplus Softsign Mish
 * Gelu Shrink and Clip; PRelu (slope broadcast to X, unidirectionally; before
 * opset 7 also along the one dimension of X its size matches);
 * Softmax, LogSoftmax and Hardmax.
 *
 * Float and double throughout; Relu (opset 14+) and Clip (12+) also on
 * integers.  Pointwise activations are shared out over the session's threads;
 * float Sigmoid uses the vectorised exp of eval/kernels/vecmath.c.  Attribute
 * defaults are the spec's.  Softmax subtracts the maximum before
 * exponentiating.  Before opset 13 Softmax/LogSoftmax/Hardmax coerce the input
 * to 2-D at `axis` (default 1) and normalise over the flattened trailing
 * block; from 13 they normalise along `axis` alone (default -1).
 */
#include "../eval.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- pointwise ------------------------------------------------------------------------ */

/* Attribute values a pointwise activation reads, already defaulted. */
typedef struct {
    double alpha, beta, gamma;
} act_params;

typedef void (*act_fn)(void *out, const void *in, size_t n, const act_params *p);

/* The expressions below are written in forms gcc turns into min/max/select
 * instructions (x < 0 ? 0 : x, not a multiply inside a conditional), and
 * propagate NaN; BLOCKED_LOOP (eval.h) gets them vectorised. */
/* A pointwise run over type T: EXPR computes from x (T) and the T-typed locals
 * alpha, beta, gamma. */
#define ACT_RUN(name, T, EXPR)                                                           \
    static void name##_loop(T *restrict o, const T *restrict p, size_t n, const T alpha,  \
                            const T beta, const T gamma)                               \
    {                                                                                  \
        (void)alpha, (void)beta, (void)gamma;                                          \
        BLOCKED_LOOP(n, T x = p[i]; o[i] = (T)(EXPR));                                 \
    }                                                                                  \
    static void name(void *out, const void *in, size_t n, const act_params *prm)         \
    {                                                                                  \
        name##_loop(out, in, n, (T)prm->alpha, (T)prm->beta, (T)prm->gamma);           \
    }

#define ACT_REAL(op, FEXPR, DEXPR)                                                      \
    ACT_RUN(op##_f32, float, FEXPR)                                                    \
    ACT_RUN(op##_f64, double, DEXPR)

ACT_REAL(relu, x < 0 ? 0 : x, x < 0 ? 0 : x)
ACT_RUN(relu_i32, int32_t, x < 0 ? 0 : x)
ACT_RUN(relu_i64, int64_t, x < 0 ? 0 : x)
ACT_RUN(relu_i8, int8_t, x < 0 ? 0 : x)
ACT_RUN(relu_i16, int16_t, x < 0 ? 0 : x)
/* max(x, 0) + alpha * min(x, 0) */
ACT_REAL(leaky, (x < 0 ? 0 : x) + alpha * (x > 0 ? 0 : x), (x < 0 ? 0 : x) + alpha * (x > 0 ? 0 : x))
ACT_REAL(elu, x < 0 ? alpha * expm1f(x) : x, x < 0 ? alpha * expm1(x) : x)
ACT_REAL(selu, x > 0 ? gamma * x : gamma * alpha * expm1f(x),
         x > 0 ? gamma * x : gamma * alpha * expm1(x))
ACT_REAL(celu, x > 0 ? x : alpha * expm1f(x / alpha), x > 0 ? x : alpha * expm1(x / alpha))
ACT_REAL(thresh, x > alpha ? x : 0, x > alpha ? x : 0)
ACT_RUN(sigmoid_f64, double, 1.0 / (1.0 + exp(-x)))
static void sigmoid_f32(void *out, const void *in, size_t n, const act_params *prm)
{
    (void)prm;
    bnf_sigmoid_f32(out, in, n); /* vectorised exp (eval/kernels/vecmath.c) */
}
#define CLAMP01(v) ((v) < 0 ? 0 : (v) > 1 ? 1 : (v))
ACT_REAL(hsigmoid, CLAMP01(alpha * x + beta), CLAMP01(alpha * x + beta))
/* x * clamp(x + 3, 0, 6) / 6 */
#define HSWISH(T, x) ((x) * ((x) + 3 < 0 ? 0 : (x) + 3 > 6 ? (T)6 : (x) + 3) * ((T)1 / 6))
ACT_REAL(hswish, HSWISH(float, x), HSWISH(double, x))
ACT_REAL(tanh, tanhf(x), tanh(x))
/* log(1 + e^x) without overflow */
ACT_REAL(softplus, x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)),
         x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))
/* Shrink: alpha = lambd, beta = bias */
#define SHRINK(x) ((x) < -alpha ? (x) + beta : (x) > alpha ? (x) - beta : 0)
ACT_REAL(shrink, SHRINK(x), SHRINK(x))
ACT_REAL(softsign, x / (1.0f + fabsf(x)), x / (1.0 + fabs(x)))
ACT_REAL(mish, x * tanhf(x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x))),
         x * tanh(x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))))
ACT_REAL(gelu, 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)),
         0.5 * x * (1.0 + erf(x * 0.70710678118654752440)))
ACT_REAL(gelu_tanh,
         0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x))),
         0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x))))

typedef struct {
    act_fn f32, f64, i32, i64, i8, i16;
} act_fns;

typedef struct {
    act_fn fn;
    void *y;
    const void *x;
    size_t es;
    const act_params *prm;
} pointwise_job;

/* Elements [lo, hi) of a pointwise activation (bnf_parallel). */
static void pointwise_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const pointwise_job *j = arg;
    (void)tid;
    j->fn((char *)j->y + lo * j->es, (const char *)j->x + lo * j->es, hi - lo, j->prm);
}

static bnf_status pointwise(bnf_op_ctx *ctx, const act_fns *fns, const act_params *prm)
{
    const bnf_tensor *x;
    bnf_tensor *y;
    act_fn fn = NULL;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 1, 1, NULL)))
        return rc;
    x = ctx->in[0];
    switch (x->dtype) {
    case BNF_T_FLOAT: fn = fns->f32; break;
    case BNF_T_DOUBLE: fn = fns->f64; break;
    case BNF_T_INT32: fn = fns->i32; break;
    case BNF_T_INT64: fn = fns->i64; break;
    case BNF_T_INT8: fn = fns->i8; break;
    case BNF_T_INT16: fn = fns->i16; break;
    default: break;
    }
    if (!fn)
        return bnf_unsupported_type(ctx, x->dtype);
    if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
        return rc;
    {
        pointwise_job j = {fn, y->data, x->data, bnf_eval_size(x->dtype), prm};
        bnf_parallel(ctx, bnf_par_threads(ctx, x->n, x->n), x->n, pointwise_range, &j);
    }
    return BNF_OK;
}

#define REAL_FNS(op) {op##_f32, op##_f64, NULL, NULL, NULL, NULL}
#define RELU_FNS {relu_f32, relu_f64, relu_i32, relu_i64, relu_i8, relu_i16}

/* The kernel `name`: the loops FNS (an act_fns initialiser) with the
 * act_params {__VA_ARGS__} (alpha, beta, gamma: attribute values, defaulted). */
#define POINTWISE_OP(name, FNS, ...)                                                    \
    static bnf_status name(bnf_op_ctx *ctx)                                            \
    {                                                                                  \
        static const act_fns f = FNS;                                                  \
        act_params p = {__VA_ARGS__};                                                  \
        return pointwise(ctx, &f, &p);                                                 \
    }

POINTWISE_OP(op_relu, RELU_FNS, 0, 0, 0)
POINTWISE_OP(op_leaky_relu, REAL_FNS(leaky), bnf_ctx_float(ctx, "alpha", 0.01f), 0, 0)
POINTWISE_OP(op_elu, REAL_FNS(elu), bnf_ctx_float(ctx, "alpha", 1.0f), 0, 0)
POINTWISE_OP(op_selu, REAL_FNS(selu), bnf_ctx_float(ctx, "alpha", 1.67326319217681884765625f), 0,
             bnf_ctx_float(ctx, "gamma", 1.05070102214813232421875f))
POINTWISE_OP(op_thresholded_relu, REAL_FNS(thresh), bnf_ctx_float(ctx, "alpha", 1.0f), 0, 0)
POINTWISE_OP(op_sigmoid, REAL_FNS(sigmoid), 0, 0, 0)
POINTWISE_OP(op_hard_sigmoid, REAL_FNS(hsigmoid), bnf_ctx_float(ctx, "alpha", 0.2f),
             bnf_ctx_float(ctx, "beta", 0.5f), 0)
POINTWISE_OP(op_hard_swish, REAL_FNS(hswish), 0, 0, 0)
POINTWISE_OP(op_tanh, REAL_FNS(tanh), 0, 0, 0)
POINTWISE_OP(op_softplus, REAL_FNS(softplus), 0, 0, 0)
POINTWISE_OP(op_shrink, REAL_FNS(shrink), bnf_ctx_float(ctx, "lambd", 0.5f),
             bnf_ctx_float(ctx, "bias", 0.0f), 0)
POINTWISE_OP(op_softsign, REAL_FNS(softsign), 0, 0, 0)
POINTWISE_OP(op_mish, REAL_FNS(mish), 0, 0, 0)

static bnf_status op_celu(bnf_op_ctx *ctx)
{
    static const act_fns f = REAL_FNS(celu);
    act_params p = {bnf_ctx_float(ctx, "alpha", 1.0f), 0, 0};
    if (p.alpha == 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": alpha must not be 0",
                        BNF_NODE_ARG(ctx));
    return pointwise(ctx, &f, &p);
}

static bnf_status op_gelu(bnf_op_ctx *ctx)
{
    static const act_fns exact = REAL_FNS(gelu), approx = REAL_FNS(gelu_tanh);
    act_params p = {0, 0, 0};
    char buf[16];
    const char *mode = bnf_ctx_string(ctx, "approximate", "none", buf, sizeof buf);
    if (strcmp(mode, "none") == 0)
        return pointwise(ctx, &exact, &p);
    if (strcmp(mode, "tanh") == 0)
        return pointwise(ctx, &approx, &p);
    return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": approximate '%s' is not none or tanh",
                    BNF_NODE_ARG(ctx), mode);
}

/* ---- Clip ------------------------------------------------------------------------------ */

#define CLIP_RUN(name, T)                                                               \
    static void name(T *restrict o, const T *restrict p, size_t n, T lo, T hi)          \
    {                                                                                  \
        BLOCKED_LOOP(n, T x = p[i]; x = x < lo ? lo : x; o[i] = x > hi ? hi : x);      \
    }
CLIP_RUN(clip_f32, float)
CLIP_RUN(clip_f64, double)
CLIP_RUN(clip_i32, int32_t)
CLIP_RUN(clip_i64, int64_t)
CLIP_RUN(clip_i8, int8_t)
CLIP_RUN(clip_u8, uint8_t)
CLIP_RUN(clip_i16, int16_t)
CLIP_RUN(clip_u16, uint16_t)
CLIP_RUN(clip_u32, uint32_t)
CLIP_RUN(clip_u64, uint64_t)

/* Real types take the bounds lo_f/hi_f; integer types read them from the
 * one-element tensors lo_t/hi_t (x's type), absent ones being the type's
 * range.  min > max gives max everywhere. */
static bnf_status clip_apply(bnf_op_ctx *ctx, const bnf_tensor *x, double lo_f, double hi_f,
                             const bnf_tensor *lo_t, const bnf_tensor *hi_t)
{
    bnf_tensor *y;
    bnf_status rc;
    int64_t lo = 0, hi = 0;
    switch (x->dtype) {
    case BNF_T_FLOAT: case BNF_T_DOUBLE: case BNF_T_UINT64: break;
    case BNF_T_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
    case BNF_T_INT64: lo = INT64_MIN; hi = INT64_MAX; break;
    case BNF_T_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
    case BNF_T_UINT8: lo = 0; hi = UINT8_MAX; break;
    case BNF_T_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
    case BNF_T_UINT16: lo = 0; hi = UINT16_MAX; break;
    case BNF_T_UINT32: lo = 0; hi = UINT32_MAX; break;
    default: return bnf_unsupported_type(ctx, x->dtype);
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
        return rc;
    if (lo_t && x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE && x->dtype != BNF_T_UINT64)
        lo = bnf_get_i64(lo_t, 0); /* x's type: in range */
    if (hi_t && x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE && x->dtype != BNF_T_UINT64)
        hi = bnf_get_i64(hi_t, 0);
    switch (x->dtype) {
    case BNF_T_FLOAT: clip_f32(y->data, x->data, x->n, (float)lo_f, (float)hi_f); break;
    case BNF_T_DOUBLE: clip_f64(y->data, x->data, x->n, lo_f, hi_f); break;
    case BNF_T_INT32: clip_i32(y->data, x->data, x->n, (int32_t)lo, (int32_t)hi); break;
    case BNF_T_INT64: clip_i64(y->data, x->data, x->n, lo, hi); break;
    case BNF_T_INT8: clip_i8(y->data, x->data, x->n, (int8_t)lo, (int8_t)hi); break;
    case BNF_T_UINT8: clip_u8(y->data, x->data, x->n, (uint8_t)lo, (uint8_t)hi); break;
    case BNF_T_INT16: clip_i16(y->data, x->data, x->n, (int16_t)lo, (int16_t)hi); break;
    case BNF_T_UINT16: clip_u16(y->data, x->data, x->n, (uint16_t)lo, (uint16_t)hi); break;
    case BNF_T_UINT32: clip_u32(y->data, x->data, x->n, (uint32_t)lo, (uint32_t)hi); break;
    default:
        clip_u64(y->data, x->data, x->n, lo_t ? ((const uint64_t *)lo_t->data)[0] : 0,
                 hi_t ? ((const uint64_t *)hi_t->data)[0] : UINT64_MAX);
        break;
    }
    return BNF_OK;
}

/* Opsets 1-10: bounds are the min/max attributes (default: float's range). */
static bnf_status op_clip_v1(bnf_op_ctx *ctx)
{
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 1, 1, NULL)))
        return rc;
    if (ctx->in[0]->dtype != BNF_T_FLOAT && ctx->in[0]->dtype != BNF_T_DOUBLE)
        return bnf_unsupported_type(ctx, ctx->in[0]->dtype);
    return clip_apply(ctx, ctx->in[0], bnf_ctx_float(ctx, "min", -FLT_MAX),
                      bnf_ctx_float(ctx, "max", FLT_MAX), NULL, NULL);
}

/* Opset 11+: bounds are the optional inputs 1 and 2, one-element tensors of x's type. */
static bnf_status op_clip_v11(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *b[2] = {NULL, NULL};
    double f[2] = {-INFINITY, INFINITY};
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 1, 3, NULL)))
        return rc;
    if (bnf_node_attr(ctx->node, "min") || bnf_node_attr(ctx->node, "max"))
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": has min/max attributes, but at opset %lld they are inputs 1 and 2",
                        BNF_NODE_ARG(ctx), (long long)ctx->opset);
    x = ctx->in[0];
    for (size_t i = 0; i < 2; i++) {
        if (ctx->n_in <= i + 1 || !(b[i] = ctx->in[i + 1]))
            continue;
        if (b[i]->dtype != x->dtype)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": %s is %s, input is %s",
                            BNF_NODE_ARG(ctx), i ? "max" : "min", bnf_dtype_name(b[i]->dtype),
                            bnf_dtype_name(x->dtype));
        if (b[i]->n != 1)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": %s has %zu elements, must be a scalar",
                            BNF_NODE_ARG(ctx), i ? "max" : "min", b[i]->n);
        f[i] = bnf_get_f64(b[i], 0);
    }
    return clip_apply(ctx, x, f[0], f[1], b[0], b[1]);
}

/* ---- PRelu ------------------------------------------------------------------------------ */

/* max(x, 0) + slope * min(x, 0), slope contiguous (s_vec) or one value */
#define PRELU_RUN(name, T)                                                              \
    static void name(T *restrict o, const T *restrict x, const T *restrict s, size_t n,  \
                     int s_vec)                                                        \
    {                                                                                  \
        if (s_vec) {                                                                   \
            BLOCKED_LOOP(n, T v = x[i]; o[i] = (v < 0 ? 0 : v) + s[i] * (v > 0 ? 0 : v)); \
        } else {                                                                       \
            const T k = s[0];                                                          \
            BLOCKED_LOOP(n, T v = x[i]; o[i] = (v < 0 ? 0 : v) + k * (v > 0 ? 0 : v));  \
        }                                                                              \
    }
PRELU_RUN(prelu_f32, float)
PRELU_RUN(prelu_f64, double)

/* Y = X < 0 ? slope * X : X with slope broadcast to X's shape.  Dimensions are
 * coalesced so that the inner run is contiguous in X and either contiguous or
 * one repeated value in slope (e.g. a [C,1,1] slope: runs of H*W). */
static bnf_status op_prelu(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *s;
    bnf_tensor *y;
    bnf_status rc;
    size_t off, rank = 0, dims[BNF_MAX_RANK], sst[BNF_MAX_RANK];
    size_t cnt[BNF_MAX_RANK] = {0}, soff = 0, inner, outer;
    if ((rc = bnf_need_inputs(ctx, 2, 2, NULL)))
        return rc;
    x = ctx->in[0];
    s = ctx->in[1];
    if (s->dtype != x->dtype)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": slope is %s, input is %s",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(s->dtype), bnf_dtype_name(x->dtype));
    if (x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE)
        return bnf_unsupported_type(ctx, x->dtype);
    if (s->rank > x->rank)
        goto bad_shape;
    off = x->rank - s->rank;
    for (size_t i = 0; i < s->rank; i++)
        if (s->dims[i] != 1 && s->dims[i] != x->dims[off + i])
            goto bad_shape;
    if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
        return rc;
    if (x->n == 0)
        return BNF_OK;
    {
        /* slope strides per X dimension, then coalesce (x is always contiguous) */
        size_t st[BNF_MAX_RANK], sz = 1;
        for (size_t i = x->rank; i-- > 0;) {
            size_t d = i < off ? 1 : (size_t)s->dims[i - off];
            st[i] = d == 1 ? 0 : sz;
            sz *= d;
        }
        for (size_t i = 0; i < x->rank; i++) {
            size_t d = (size_t)x->dims[i];
            if (d == 1)
                continue;
            if (rank > 0 && sst[rank - 1] == st[i] * d) {
                dims[rank - 1] *= d;
                sst[rank - 1] = st[i];
                continue;
            }
            dims[rank] = d;
            sst[rank] = st[i];
            rank++;
        }
        if (rank == 0) {
            dims[0] = 1;
            sst[0] = 0;
            rank = 1;
        }
    }
    inner = dims[rank - 1];
    outer = x->n / inner;
    for (size_t it = 0; it < outer; it++) {
        size_t xo = it * inner;
        if (x->dtype == BNF_T_FLOAT)
            prelu_f32((float *)y->data + xo, (const float *)x->data + xo,
                      (const float *)s->data + soff, inner, sst[rank - 1] != 0);
        else
            prelu_f64((double *)y->data + xo, (const double *)x->data + xo,
                      (const double *)s->data + soff, inner, sst[rank - 1] != 0);
        for (size_t d = rank - 1; d-- > 0;) {
            cnt[d]++;
            soff += sst[d];
            if (cnt[d] < dims[d])
                break;
            soff -= sst[d] * dims[d];
            cnt[d] = 0;
        }
    }
    return BNF_OK;
bad_shape:
    return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": slope (rank %zu) does not broadcast to the input (rank %zu)",
                    BNF_NODE_ARG(ctx), s->rank, x->rank);
}

/* PRelu 1-6: the slope broadcast as numpy would, or else (a slope of d values
 * with d one dimension of X, and only one) along that dimension, as the ONNX
 * reference implementation reads the older versions (caffe2 exports: a [C]
 * slope of an NCHW input). */
static bnf_status op_prelu_1(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *s;
    bnf_tensor view;
    size_t off, axis = 0, found = 0;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 2, 2, NULL)))
        return rc;
    x = ctx->in[0];
    s = ctx->in[1];
    if (s->rank <= x->rank) {
        int fits = 1;
        off = x->rank - s->rank;
        for (size_t i = 0; i < s->rank; i++)
            fits &= s->dims[i] == 1 || s->dims[i] == x->dims[off + i];
        if (fits)
            return op_prelu(ctx);
    }
    for (size_t i = 0; i < x->rank; i++)
        if ((size_t)x->dims[i] == s->n) {
            axis = i;
            found++;
        }
    if (found != 1)
        return op_prelu(ctx); /* its message: the slope does not broadcast */
    view = *s;
    view.rank = x->rank - axis;
    view.dims[0] = (int64_t)s->n;
    for (size_t i = 1; i < view.rank; i++)
        view.dims[i] = 1;
    return bnf_run_with_second(ctx, &view, op_prelu);
}

/* ---- Softmax, LogSoftmax ------------------------------------------------------------------ */

/* Over `outer` blocks of [d, inner] elements, normalise along d.  tmp holds
 * 2 * inner values (used when inner > 1). */
#define SOFTMAX_RUN(name, T, EXP, LOG)                                                  \
    static void name(T *y, const T *x, size_t outer, size_t d, size_t inner, int log_out, \
                     T *tmp)                                                            \
    {                                                                                  \
        for (size_t o = 0; o < outer; o++, x += d * inner, y += d * inner) {           \
            if (inner == 1) {                                                          \
                T m = x[0], s = 0;                                                     \
                for (size_t k = 1; k < d; k++)                                         \
                    m = x[k] > m ? x[k] : m;                                           \
                if (log_out) {                                                         \
                    for (size_t k = 0; k < d; k++)                                     \
                        s += EXP(x[k] - m);                                            \
                    s = LOG(s);                                                        \
                    for (size_t k = 0; k < d; k++)                                     \
                        y[k] = x[k] - m - s;                                           \
                } else {                                                               \
                    for (size_t k = 0; k < d; k++) {                                   \
                        y[k] = EXP(x[k] - m);                                          \
                        s += y[k];                                                     \
                    }                                                                  \
                    s = 1 / s;                                                         \
                    for (size_t k = 0; k < d; k++)                                     \
                        y[k] *= s;                                                     \
                }                                                                      \
                continue;                                                              \
            }                                                                          \
            T *m = tmp, *s = tmp + inner;                                              \
            for (size_t j = 0; j < inner; j++) {                                       \
                m[j] = x[j];                                                           \
                s[j] = 0;                                                              \
            }                                                                          \
            for (size_t k = 1; k < d; k++)                                             \
                for (size_t j = 0; j < inner; j++)                                     \
                    m[j] = x[k * inner + j] > m[j] ? x[k * inner + j] : m[j];          \
            for (size_t k = 0; k < d; k++)                                             \
                for (size_t j = 0; j < inner; j++) {                                   \
                    T e = EXP(x[k * inner + j] - m[j]);                                \
                    if (!log_out)                                                      \
                        y[k * inner + j] = e;                                          \
                    s[j] += e;                                                         \
                }                                                                      \
            for (size_t j = 0; j < inner; j++)                                         \
                s[j] = log_out ? m[j] + LOG(s[j]) : 1 / s[j];                          \
            for (size_t k = 0; k < d; k++)                                             \
                for (size_t j = 0; j < inner; j++) {                                   \
                    if (log_out)                                                       \
                        y[k * inner + j] = x[k * inner + j] - s[j];                    \
                    else                                                               \
                        y[k * inner + j] *= s[j];                                      \
                }                                                                      \
        }                                                                              \
    }
SOFTMAX_RUN(softmax_f32, float, expf, logf)
SOFTMAX_RUN(softmax_f64, double, exp, log)

/* Hardmax over the same blocks: 1 at the first maximum along d, 0 elsewhere. */
#define HARDMAX_RUN(name, T)                                                            \
    static void name(T *y, const T *x, size_t outer, size_t d, size_t inner)             \
    {                                                                                  \
        for (size_t o = 0; o < outer; o++, x += d * inner, y += d * inner)             \
            for (size_t j = 0; j < inner; j++) {                                       \
                size_t best = 0;                                                       \
                for (size_t k = 1; k < d; k++)                                         \
                    if (x[k * inner + j] > x[best * inner + j])                        \
                        best = k;                                                      \
                for (size_t k = 0; k < d; k++)                                         \
                    y[k * inner + j] = k == best;                                      \
            }                                                                          \
    }
HARDMAX_RUN(hardmax_f32, float)
HARDMAX_RUN(hardmax_f64, double)

enum { SOFTMAX, LOG_SOFTMAX, HARDMAX };

static bnf_status softmax(bnf_op_ctx *ctx, int mode)
{
    const bnf_tensor *x;
    bnf_tensor *y;
    bnf_status rc;
    int64_t r, axis;
    size_t outer = 1, d = 1, inner = 1, es;
    int coerce = ctx->opset < 13;
    void *tmp = NULL;
    if ((rc = bnf_need_inputs(ctx, 1, 1, NULL)))
        return rc;
    x = ctx->in[0];
    if (x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE)
        return bnf_unsupported_type(ctx, x->dtype);
    r = (int64_t)x->rank;
    if ((rc = bnf_norm_axis(ctx, bnf_ctx_int(ctx, "axis", coerce ? 1 : -1), x->rank, 0, &axis)))
        return rc;
    for (int64_t i = 0; i < r; i++) {
        size_t v = (size_t)x->dims[i];
        if (i < axis)
            outer *= v;
        else if (i == axis || coerce)
            d *= v;
        else
            inner *= v;
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
        return rc;
    if (x->n == 0)
        return BNF_OK;
    es = bnf_eval_size(x->dtype);
    if (mode == HARDMAX) {
        if (x->dtype == BNF_T_FLOAT)
            hardmax_f32(y->data, x->data, outer, d, inner);
        else
            hardmax_f64(y->data, x->data, outer, d, inner);
        return BNF_OK;
    }
    if (inner > 1 && !(tmp = bnf_malloc(2 * inner * es)))
        return bnf_nomem(ctx);
    if (x->dtype == BNF_T_FLOAT)
        softmax_f32(y->data, x->data, outer, d, inner, mode == LOG_SOFTMAX, tmp);
    else
        softmax_f64(y->data, x->data, outer, d, inner, mode == LOG_SOFTMAX, tmp);
    bnf_free(tmp);
    return BNF_OK;
}

static bnf_status op_softmax(bnf_op_ctx *ctx) { return softmax(ctx, SOFTMAX); }
static bnf_status op_log_softmax(bnf_op_ctx *ctx) { return softmax(ctx, LOG_SOFTMAX); }
static bnf_status op_hardmax(bnf_op_ctx *ctx) { return softmax(ctx, HARDMAX); }

/* ---- the table ---------------------------------------------------------------------------- */

const bnf_op_def bnf_ops_activation[] = {
    /* opset 1 versions differ from 6 only by the legacy consumed_inputs hint */
    {"Relu", 1, op_relu},
    {"LeakyRelu", 1, op_leaky_relu},
    {"PRelu", 1, op_prelu_1},
    {"PRelu", 7, op_prelu},
    {"Elu", 1, op_elu},
    {"Selu", 1, op_selu},
    {"Celu", 12, op_celu},
    {"ThresholdedRelu", 10, op_thresholded_relu},
    {"Sigmoid", 1, op_sigmoid},
    {"HardSigmoid", 1, op_hard_sigmoid},
    {"HardSwish", 14, op_hard_swish},
    {"Tanh", 1, op_tanh},
    {"Softplus", 1, op_softplus},
    {"Softsign", 1, op_softsign},
    {"Mish", 18, op_mish},
    {"Gelu", 20, op_gelu},
    {"Clip", 1, op_clip_v1},
    {"Clip", 11, op_clip_v11},
    {"Softmax", 1, op_softmax},
    {"LogSoftmax", 1, op_log_softmax},
    {"Hardmax", 1, op_hardmax},
    {"Shrink", 9, op_shrink},
    {NULL, 0, NULL},
};

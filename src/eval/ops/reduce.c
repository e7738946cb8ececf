/*
 * eval/ops/reduce.c: reductions.  ReduceSum ReduceMean ReduceMax ReduceMin
 * ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSum ReduceLogSumExp,
 * and ArgMax ArgMin.
 *
 * Reduce*: the axes are the `axes` attribute (ReduceSum before opset 13, the
 * others before 18) or the optional second input (from then on, where
 * `noop_with_empty_axes` makes empty axes an identity instead of "all axes").
 * Negative axes count from the end; repeated or out-of-range axes are errors.
 * An empty reduction gives the operation's identity: 0 for sums and norms, 1
 * for the product, -inf (or the type's minimum) for Max, +inf (or maximum) for
 * Min, NaN for Mean, -inf for the logarithms.
 *
 * How: the input is walked in memory order; each input dimension gets the
 * output's stride (0 when reduced), size-1 dimensions are dropped and
 * neighbours merged when the output strides allow, so the inner run is either
 * reduced (a contiguous sum into one accumulator) or kept (a contiguous row
 * added to a row of accumulators).  Float and double inputs accumulate in
 * double through typed loops; integer inputs take a slower element-by-element
 * path in int64 (wrapping) or, for L2 and the logarithms, in double.
 *
 * ArgMax/ArgMin: `axis` (default 0), `keepdims` (default 1),
 * `select_last_index` (default 0, opset 12+); int64 output.
 */
#include "../eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_SUMSQ, R_LOGSUM, R_LOGSUMEXP } red_op;

/* What a pass accumulates. */
typedef enum { A_SUM, A_MAX, A_MIN, A_PROD, A_ABS, A_SQ, A_EXP } acc_kind;

static acc_kind acc_of(red_op op)
{
    switch (op) {
    case R_MAX: return A_MAX;
    case R_MIN: return A_MIN;
    case R_PROD: return A_PROD;
    case R_L1: return A_ABS;
    case R_L2: case R_SUMSQ: return A_SQ;
    case R_LOGSUMEXP: return A_EXP;
    default: return A_SUM;
    }
}

/* ---- the walk ------------------------------------------------------------------------ */

typedef struct {
    size_t rank;                 /* >= 1 after coalescing */
    size_t dims[BNF_MAX_RANK];
    size_t ost[BNF_MAX_RANK];    /* output stride of each input dimension, 0 if reduced */
    size_t n_in;
} walk;

static void walk_make(walk *w, const bnf_tensor *x, const int *reduced)
{
    size_t ost[BNF_MAX_RANK], s = 1;
    for (size_t i = x->rank; i-- > 0;) {
        ost[i] = reduced[i] ? 0 : s;
        if (!reduced[i])
            s *= (size_t)x->dims[i];
    }
    w->rank = 0;
    w->n_in = x->n;
    for (size_t i = 0; i < x->rank; i++) {
        size_t d = (size_t)x->dims[i];
        if (d == 1)
            continue;
        if (w->rank > 0 && w->ost[w->rank - 1] == ost[i] * d) {
            w->dims[w->rank - 1] *= d;
            w->ost[w->rank - 1] = ost[i];
            continue;
        }
        w->dims[w->rank] = d;
        w->ost[w->rank] = ost[i];
        w->rank++;
    }
    if (w->rank == 0) {
        w->rank = 1;
        w->dims[0] = 1;
        w->ost[0] = 0;
    }
}

/* Typed run over n contiguous inputs: into one accumulator (vec 0) or a row
 * (vec 1).  Sums into one accumulator use four partial sums (independent
 * additions, which also lets the compiler vectorize). */
#define RED_RUN(name, T)                                                                \
    static double sum4_##name(const T *x, size_t n, int square)                         \
    {                                                                                  \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                         \
        size_t i = 0;                                                                  \
        if (square) {                                                                  \
            for (; i + 4 <= n; i += 4) {                                               \
                s0 += (double)x[i] * x[i];                                             \
                s1 += (double)x[i + 1] * x[i + 1];                                     \
                s2 += (double)x[i + 2] * x[i + 2];                                     \
                s3 += (double)x[i + 3] * x[i + 3];                                     \
            }                                                                          \
            for (; i < n; i++)                                                         \
                s0 += (double)x[i] * x[i];                                             \
        } else {                                                                       \
            for (; i + 4 <= n; i += 4) {                                               \
                s0 += x[i];                                                            \
                s1 += x[i + 1];                                                        \
                s2 += x[i + 2];                                                        \
                s3 += x[i + 3];                                                        \
            }                                                                          \
            for (; i < n; i++)                                                         \
                s0 += x[i];                                                            \
        }                                                                              \
        return (s0 + s1) + (s2 + s3);                                                  \
    }                                                                                  \
    static void name(acc_kind k, const T *x, size_t n, int vec, double *acc,             \
                     const double *shift)                                              \
    {                                                                                  \
        if (!vec) {                                                                    \
            double a = *acc;                                                           \
            switch (k) {                                                               \
            case A_SUM: a += sum4_##name(x, n, 0); break;                              \
            case A_MAX: for (size_t i = 0; i < n; i++) a = x[i] > a ? x[i] : a; break; \
            case A_MIN: for (size_t i = 0; i < n; i++) a = x[i] < a ? x[i] : a; break; \
            case A_PROD: for (size_t i = 0; i < n; i++) a *= x[i]; break;              \
            case A_ABS: for (size_t i = 0; i < n; i++) a += fabs((double)x[i]); break; \
            case A_SQ: a += sum4_##name(x, n, 1); break;                               \
            case A_EXP: {                                                              \
                double m = *shift;                                                     \
                for (size_t i = 0; i < n; i++)                                         \
                    a += exp(x[i] - m);                                                \
                break;                                                                 \
            }                                                                          \
            }                                                                          \
            *acc = a;                                                                  \
            return;                                                                    \
        }                                                                              \
        switch (k) {                                                                   \
        case A_SUM: for (size_t i = 0; i < n; i++) acc[i] += x[i]; break;              \
        case A_MAX:                                                                    \
            for (size_t i = 0; i < n; i++) acc[i] = x[i] > acc[i] ? x[i] : acc[i];     \
            break;                                                                     \
        case A_MIN:                                                                    \
            for (size_t i = 0; i < n; i++) acc[i] = x[i] < acc[i] ? x[i] : acc[i];     \
            break;                                                                     \
        case A_PROD: for (size_t i = 0; i < n; i++) acc[i] *= x[i]; break;             \
        case A_ABS: for (size_t i = 0; i < n; i++) acc[i] += fabs((double)x[i]); break; \
        case A_SQ: for (size_t i = 0; i < n; i++) acc[i] += (double)x[i] * x[i]; break; \
        case A_EXP:                                                                    \
            for (size_t i = 0; i < n; i++) acc[i] += exp(x[i] - shift[i]);             \
            break;                                                                     \
        }                                                                              \
    }
RED_RUN(red_f32, float)
RED_RUN(red_f64, double)

/* Element by element, in double, for any input type. */
static void red_any_f64(acc_kind k, const bnf_tensor *t, size_t off, size_t n, int vec,
                        double *acc, const double *shift)
{
    for (size_t i = 0; i < n; i++) {
        double v = bnf_get_f64(t, off + i), *a = vec ? acc + i : acc;
        switch (k) {
        case A_SUM: *a += v; break;
        case A_MAX: *a = v > *a ? v : *a; break;
        case A_MIN: *a = v < *a ? v : *a; break;
        case A_PROD: *a *= v; break;
        case A_ABS: *a += fabs(v); break;
        case A_SQ: *a += v * v; break;
        case A_EXP: *a += exp(v - (vec ? shift[i] : *shift)); break;
        }
    }
}

/* Element by element, in int64 wrapping arithmetic, for integer inputs. */
static void red_any_i64(acc_kind k, const bnf_tensor *t, size_t off, size_t n, int vec,
                        int64_t *acc)
{
    for (size_t i = 0; i < n; i++) {
        int64_t v = bnf_get_i64(t, off + i), *a = vec ? acc + i : acc;
        switch (k) {
        case A_SUM: *a = (int64_t)((uint64_t)*a + (uint64_t)v); break;
        case A_MAX: *a = v > *a ? v : *a; break;
        case A_MIN: *a = v < *a ? v : *a; break;
        case A_PROD: *a = (int64_t)((uint64_t)*a * (uint64_t)v); break;
        case A_ABS: *a = (int64_t)((uint64_t)*a + (v < 0 ? 0u - (uint64_t)v : (uint64_t)v)); break;
        case A_SQ: *a = (int64_t)((uint64_t)*a + (uint64_t)v * (uint64_t)v); break;
        default: break;
        }
    }
}

/* One pass over x: accumulates into dacc (double) or iacc (int64). */
static void walk_run(const walk *w, const bnf_tensor *x, acc_kind k, double *dacc, int64_t *iacc,
                     const double *shift)
{
    size_t r = w->rank, inner = w->dims[r - 1], outer, cnt[BNF_MAX_RANK] = {0}, o = 0;
    int vec = w->ost[r - 1] != 0;
    if (w->n_in == 0)
        return;
    outer = w->n_in / inner;
    for (size_t it = 0; it < outer; it++) {
        size_t in = it * inner;
        if (iacc)
            red_any_i64(k, x, in, inner, vec, iacc + o);
        else if (x->dtype == BNF_T_FLOAT)
            red_f32(k, (const float *)x->data + in, inner, vec, dacc + o, shift ? shift + o : NULL);
        else if (x->dtype == BNF_T_DOUBLE)
            red_f64(k, (const double *)x->data + in, inner, vec, dacc + o, shift ? shift + o : NULL);
        else
            red_any_f64(k, x, in, inner, vec, dacc + o, shift ? shift + o : NULL);
        for (size_t d = r - 1; d-- > 0;) {
            cnt[d]++;
            o += w->ost[d];
            if (cnt[d] < w->dims[d])
                break;
            o -= w->ost[d] * w->dims[d];
            cnt[d] = 0;
        }
    }
}

/* ---- Reduce* ----------------------------------------------------------------------------- */

/* Integer types whose values int64 holds (uint64 is not reduced). */
static int is_int(int32_t t)
{
    return t == BNF_T_INT32 || t == BNF_T_INT64 || t == BNF_T_INT8 || t == BNF_T_UINT8 ||
           t == BNF_T_INT16 || t == BNF_T_UINT16 || t == BNF_T_UINT32;
}

static void int_range(int32_t t, int64_t *lo, int64_t *hi)
{
    switch (t) {
    case BNF_T_INT32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case BNF_T_INT8: *lo = INT8_MIN; *hi = INT8_MAX; break;
    case BNF_T_UINT8: *lo = 0; *hi = UINT8_MAX; break;
    case BNF_T_INT16: *lo = INT16_MIN; *hi = INT16_MAX; break;
    case BNF_T_UINT16: *lo = 0; *hi = UINT16_MAX; break;
    case BNF_T_UINT32: *lo = 0; *hi = UINT32_MAX; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

/* Stores v (wrapping) into element i of an integer tensor. */
static void store_i64(bnf_tensor *t, size_t i, int64_t v)
{
    switch (t->dtype) {
    case BNF_T_INT64: ((int64_t *)t->data)[i] = v; break;
    case BNF_T_INT32: ((int32_t *)t->data)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
    case BNF_T_INT8: ((int8_t *)t->data)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
    case BNF_T_INT16: ((int16_t *)t->data)[i] = (int16_t)(uint16_t)(uint64_t)v; break;
    case BNF_T_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)(uint64_t)v; break;
    case BNF_T_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)(uint64_t)v; break;
    default: ((uint8_t *)t->data)[i] = (uint8_t)(uint64_t)v; break;
    }
}

/* Reads and checks the axes into reduced[] (no axes: all of them, or none and
 * *noop set when noop_with_empty_axes says so). */
static bnf_status get_axes(bnf_op_ctx *ctx, const bnf_tensor *x, int from_input, int *reduced,
                           int *noop)
{
    int64_t ax[BNF_MAX_RANK];
    size_t n = 0;
    *noop = 0;
    memset(reduced, 0, BNF_MAX_RANK * sizeof *reduced);
    if (from_input) {
        const bnf_tensor *a = ctx->n_in > 1 ? ctx->in[1] : NULL;
        if (bnf_node_attr(ctx->node, "axes"))
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": has an axes attribute, but at opset %lld the axes are input 1",
                            BNF_NODE_ARG(ctx), (long long)ctx->opset);
        if (a) {
            if (a->dtype != BNF_T_INT64 && a->dtype != BNF_T_INT32)
                return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axes are %s, must be int64",
                                BNF_NODE_ARG(ctx), bnf_dtype_name(a->dtype));
            if (a->rank > 1)
                return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axes have rank %zu, must be 1-D",
                                BNF_NODE_ARG(ctx), a->rank);
            if (a->n > x->rank)
                goto too_many;
            n = a->n;
            for (size_t i = 0; i < n; i++)
                ax[i] = bnf_get_i64(a, i);
        }
        if (n == 0 && bnf_ctx_int(ctx, "noop_with_empty_axes", 0))
            *noop = 1;
    } else {
        n = bnf_ctx_ints(ctx, "axes", ax, BNF_MAX_RANK);
        if (n > x->rank)
            goto too_many;
    }
    if (n == 0) {
        for (size_t i = 0; i < x->rank; i++)
            reduced[i] = !*noop;
        return BNF_OK;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t a;
        bnf_status rc = bnf_norm_axis(ctx, ax[i], x->rank, 0, &a);
        if (rc)
            return rc;
        if (reduced[a])
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axis %lld is given twice",
                            BNF_NODE_ARG(ctx), (long long)a);
        reduced[a] = 1;
    }
    return BNF_OK;
too_many:
    return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": more axes than the input's %zu dimensions",
                    BNF_NODE_ARG(ctx), x->rank);
}

static bnf_status reduce(bnf_op_ctx *ctx, red_op op, int from_input)
{
    const bnf_tensor *x;
    bnf_tensor *y;
    bnf_status rc;
    int reduced[BNF_MAX_RANK], noop, keep, int_dom;
    int64_t dims[BNF_MAX_RANK], lo, hi;
    size_t rank = 0, count = 1, n_out;
    double *dacc = NULL, *shift = NULL;
    int64_t *iacc = NULL;
    walk w;

    if ((rc = bnf_need_inputs(ctx, 1, from_input ? 2 : 1,
                              from_input ? "the data input and optional axes"
                                         : "the data input only")))
        return rc;
    x = ctx->in[0];
    if (x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE && !is_int(x->dtype))
        return bnf_unsupported_type(ctx, x->dtype);
    if ((rc = get_axes(ctx, x, from_input, reduced, &noop)))
        return rc;
    if (noop) {
        if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
            return rc;
        memcpy(y->data, x->data, x->n * bnf_eval_size(x->dtype));
        return BNF_OK;
    }
    keep = bnf_ctx_int(ctx, "keepdims", 1) != 0;
    for (size_t i = 0; i < x->rank; i++) {
        if (reduced[i])
            count *= (size_t)x->dims[i];
        if (!reduced[i])
            dims[rank++] = x->dims[i];
        else if (keep)
            dims[rank++] = 1;
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, dims, rank, &y)))
        return rc;
    n_out = y->n;
    if (n_out == 0)
        return BNF_OK;
    int_dom = is_int(x->dtype) && op != R_L2 && op != R_LOGSUM && op != R_LOGSUMEXP;
    if (int_dom)
        iacc = bnf_malloc(n_out * sizeof *iacc);
    else
        dacc = bnf_malloc(n_out * sizeof *dacc);
    if (op == R_LOGSUMEXP)
        shift = bnf_malloc(n_out * sizeof *shift);
    if ((int_dom ? !iacc : !dacc) || (op == R_LOGSUMEXP && !shift)) {
        rc = bnf_nomem(ctx);
        goto out;
    }
    walk_make(&w, x, reduced);
    int_range(x->dtype, &lo, &hi);
    if (int_dom) {
        int64_t init = op == R_PROD ? 1 : op == R_MAX ? lo : op == R_MIN ? hi : 0;
        for (size_t i = 0; i < n_out; i++)
            iacc[i] = init;
        walk_run(&w, x, acc_of(op), NULL, iacc, NULL);
        for (size_t i = 0; i < n_out; i++)
            store_i64(y, i, op == R_MEAN ? (count ? iacc[i] / (int64_t)count : 0) : iacc[i]);
        goto out;
    }
    if (op == R_LOGSUMEXP) {
        for (size_t i = 0; i < n_out; i++)
            shift[i] = -INFINITY;
        walk_run(&w, x, A_MAX, shift, NULL, NULL);
        for (size_t i = 0; i < n_out; i++)
            shift[i] = isfinite(shift[i]) ? shift[i] : 0;
    }
    {
        double init = op == R_PROD ? 1 : op == R_MAX ? -INFINITY : op == R_MIN ? INFINITY : 0;
        for (size_t i = 0; i < n_out; i++)
            dacc[i] = init;
    }
    walk_run(&w, x, acc_of(op), dacc, NULL, shift);
    for (size_t i = 0; i < n_out; i++) {
        double v = dacc[i];
        switch (op) {
        case R_MEAN: v /= (double)count; break;
        case R_L2: v = sqrt(v); break;
        case R_LOGSUM: v = log(v); break;
        case R_LOGSUMEXP: v = log(v) + shift[i]; break;
        default: break;
        }
        if (x->dtype == BNF_T_FLOAT)
            ((float *)y->data)[i] = (float)v;
        else if (x->dtype == BNF_T_DOUBLE)
            ((double *)y->data)[i] = v;
        else /* integer L2 / logarithms: truncate, saturating */
            store_i64(y, i, v != v ? 0 : v <= (double)lo ? lo : v >= (double)hi ? hi : (int64_t)v);
    }
out:
    bnf_free(dacc);
    bnf_free(iacc);
    bnf_free(shift);
    return rc;
}

/* op_reduce_<name>_v1 (the axes attribute) and op_reduce_<name>_v<since> (the
 * axes input, from opset `since`). */
#define REDUCE_KERNELS(name, op, since)                                                 \
    static bnf_status op_reduce_##name##_v1(bnf_op_ctx *ctx) { return reduce(ctx, op, 0); } \
    static bnf_status op_reduce_##name##_v##since(bnf_op_ctx *ctx) { return reduce(ctx, op, 1); }

REDUCE_KERNELS(sum, R_SUM, 13)
REDUCE_KERNELS(mean, R_MEAN, 18)
REDUCE_KERNELS(max, R_MAX, 18)
REDUCE_KERNELS(min, R_MIN, 18)
REDUCE_KERNELS(prod, R_PROD, 18)
REDUCE_KERNELS(l1, R_L1, 18)
REDUCE_KERNELS(l2, R_L2, 18)
REDUCE_KERNELS(sum_square, R_SUMSQ, 18)
REDUCE_KERNELS(log_sum, R_LOGSUM, 18)
REDUCE_KERNELS(log_sum_exp, R_LOGSUMEXP, 18)

/* ---- ArgMax, ArgMin --------------------------------------------------------------------- */

#define ARG_RUN(name, T)                                                                \
    static void name(const T *x, int64_t *y, size_t outer, size_t d, size_t inner,       \
                     int want_max, int last)                                           \
    {                                                                                  \
        for (size_t o = 0; o < outer; o++)                                             \
            for (size_t j = 0; j < inner; j++) {                                       \
                const T *p = x + o * d * inner + j;                                    \
                T best = p[0];                                                         \
                int64_t bi = 0;                                                        \
                for (size_t k = 1; k < d; k++) {                                       \
                    T v = p[k * inner];                                                \
                    int better = want_max ? (last ? v >= best : v > best)              \
                                          : (last ? v <= best : v < best);             \
                    if (better) {                                                      \
                        best = v;                                                      \
                        bi = (int64_t)k;                                               \
                    }                                                                  \
                }                                                                      \
                y[o * inner + j] = bi;                                                 \
            }                                                                          \
    }
ARG_RUN(arg_f32, float)
ARG_RUN(arg_f64, double)
ARG_RUN(arg_i32, int32_t)
ARG_RUN(arg_i64, int64_t)
ARG_RUN(arg_i8, int8_t)
ARG_RUN(arg_u8, uint8_t)
ARG_RUN(arg_i16, int16_t)
ARG_RUN(arg_u16, uint16_t)
ARG_RUN(arg_u32, uint32_t)
ARG_RUN(arg_u64, uint64_t)

static bnf_status arg_reduce(bnf_op_ctx *ctx, int want_max)
{
    const bnf_tensor *x;
    bnf_tensor *y;
    bnf_status rc;
    int64_t r, axis, dims[BNF_MAX_RANK];
    size_t rank = 0, outer = 1, d, inner = 1;
    int keep, last;
    if ((rc = bnf_need_inputs(ctx, 1, 1, NULL)))
        return rc;
    x = ctx->in[0];
    r = (int64_t)x->rank;
    keep = bnf_ctx_int(ctx, "keepdims", 1) != 0;
    last = bnf_ctx_int(ctx, "select_last_index", 0) != 0;
    if ((rc = bnf_norm_axis(ctx, bnf_ctx_int(ctx, "axis", 0), x->rank, 0, &axis)))
        return rc;
    d = (size_t)x->dims[axis];
    for (int64_t i = 0; i < r; i++) {
        if (i < axis)
            outer *= (size_t)x->dims[i];
        else if (i > axis)
            inner *= (size_t)x->dims[i];
        if (i != axis)
            dims[rank++] = x->dims[i];
        else if (keep)
            dims[rank++] = 1;
    }
    if (d == 0 && outer * inner > 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axis %lld is empty, no index to return",
                        BNF_NODE_ARG(ctx), (long long)axis);
    switch (x->dtype) {
    case BNF_T_FLOAT: case BNF_T_DOUBLE: case BNF_T_INT32: case BNF_T_INT64:
    case BNF_T_INT8: case BNF_T_UINT8: case BNF_T_INT16: case BNF_T_UINT16:
    case BNF_T_UINT32: case BNF_T_UINT64: break;
    default:
        return bnf_unsupported_type(ctx, x->dtype);
    }
    if ((rc = bnf_out(ctx, 0, BNF_T_INT64, dims, rank, &y)))
        return rc;
    if (y->n == 0)
        return BNF_OK;
    switch (x->dtype) {
    case BNF_T_FLOAT: arg_f32(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_DOUBLE: arg_f64(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_INT32: arg_i32(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_INT64: arg_i64(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_INT8: arg_i8(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_UINT8: arg_u8(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_INT16: arg_i16(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_UINT16: arg_u16(x->data, y->data, outer, d, inner, want_max, last); break;
    case BNF_T_UINT32: arg_u32(x->data, y->data, outer, d, inner, want_max, last); break;
    default: arg_u64(x->data, y->data, outer, d, inner, want_max, last); break;
    }
    return BNF_OK;
}

static bnf_status op_arg_max(bnf_op_ctx *ctx) { return arg_reduce(ctx, 1); }
static bnf_status op_arg_min(bnf_op_ctx *ctx) { return arg_reduce(ctx, 0); }

/* ---- the table ---------------------------------------------------------------------------- */

const bnf_op_def bnf_ops_reduce[] = {
    /* axes attribute until the version where they became input 1 */
    {"ReduceSum", 1, op_reduce_sum_v1},
    {"ReduceSum", 13, op_reduce_sum_v13},
    {"ReduceMean", 1, op_reduce_mean_v1},
    {"ReduceMean", 18, op_reduce_mean_v18},
    {"ReduceMax", 1, op_reduce_max_v1},
    {"ReduceMax", 18, op_reduce_max_v18},
    {"ReduceMin", 1, op_reduce_min_v1},
    {"ReduceMin", 18, op_reduce_min_v18},
    {"ReduceProd", 1, op_reduce_prod_v1},
    {"ReduceProd", 18, op_reduce_prod_v18},
    {"ReduceL1", 1, op_reduce_l1_v1},
    {"ReduceL1", 18, op_reduce_l1_v18},
    {"ReduceL2", 1, op_reduce_l2_v1},
    {"ReduceL2", 18, op_reduce_l2_v18},
    {"ReduceSumSquare", 1, op_reduce_sum_square_v1},
    {"ReduceSumSquare", 18, op_reduce_sum_square_v18},
    {"ReduceLogSum", 1, op_reduce_log_sum_v1},
    {"ReduceLogSum", 18, op_reduce_log_sum_v18},
    {"ReduceLogSumExp", 1, op_reduce_log_sum_exp_v1},
    {"ReduceLogSumExp", 18, op_reduce_log_sum_exp_v18},
    {"ArgMax", 1, op_arg_max},
    {"ArgMin", 1, op_arg_min},
    {NULL, 0, NULL},
};

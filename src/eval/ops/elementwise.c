/*
 * eval/ops/elementwise.c: elementwise math.  Binary arithmetic and comparisons
 * (Add Sub Mul Div Pow Mod BitShift Min Max Equal Less Greater LessOrEqual
 * GreaterOrEqual And Or Xor), the variadic Sum Mean Min Max, Where, and the
 * unary Abs Neg Sign Sqrt Exp Log Erf Reciprocal Floor Ceil Round Not IsNaN
 * IsInf and the trigonometric and hyperbolic functions.
 *
 * Broadcasting is numpy's (multidirectional); before opset 7 the binary
 * operators broadcast only on request (the broadcast and axis attributes),
 * which legacy() turns into numpy's.  Every n-ary operation goes
 * through one plan: the output shape is walked with the operands' strides (0 on
 * a broadcast dimension), size-1 dimensions are dropped and neighbouring
 * dimensions merged wherever every operand is contiguous (or broadcast) across
 * both.  What is left is an outer odometer and an inner run in which each
 * operand is either contiguous or one repeated value, so equal shapes, a scalar
 * operand and a per-channel [C,1,1] operand all become plain loops (one
 * indirect call per run, none per element), written so that gcc -O2 and clang
 * vectorize them.
 *
 * Types: float and double; all integer types the evaluator has (int8-64,
 * uint8-64) for arithmetic, Min/Max, comparisons, Abs/Neg/Sign; bool for the
 * logical operators.  Integers wrap as two's complement; integer Div truncates
 * as C does; integer x/0 and x mod 0 give 0.  Pow: float/double/int32/int64
 * bases with any numeric exponent.  Binary operators are registered from opset
 * 7: opsets 1-6 had the `broadcast`/`axis` attributes, which are not supported.
 * Unary and variadic operators are registered from opset 1: their first
 * versions differ only by the legacy `consumed_inputs` hint.
 */
#include "../eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPERANDS 3

/* ---- the broadcast plan --------------------------------------------------------- */

typedef struct {
    size_t rank;                          /* >= 1 after coalescing */
    size_t dims[BNF_MAX_RANK];
    size_t stride[MAX_OPERANDS][BNF_MAX_RANK]; /* in elements, 0 when broadcast */
    size_t n;                             /* output elements */
} plan;

/* Inner run: out[i] = f(in[0][i*s[0]], in[1][i*s[1]], ...) for i < n, s[k] in {0, 1}. */
typedef void (*run_fn)(void *out, const void *const *in, const size_t *s, size_t n);

/* Builds the plan for operands `ops` (each broadcastable to dims; callers check). */
static void plan_make(plan *p, const int64_t *dims, size_t rank, const bnf_tensor *const *ops,
                      size_t n_ops)
{
    size_t st[MAX_OPERANDS][BNF_MAX_RANK];
    p->n = 1;
    for (size_t i = 0; i < rank; i++)
        p->n *= (size_t)dims[i];
    for (size_t k = 0; k < n_ops; k++) {
        size_t off = rank - ops[k]->rank, s = 1;
        for (size_t i = rank; i-- > 0;) {
            size_t d = i < off ? 1 : (size_t)ops[k]->dims[i - off];
            st[k][i] = d == 1 ? 0 : s;
            s *= d;
        }
    }
    p->rank = 0;
    for (size_t i = 0; i < rank; i++) {
        size_t d = (size_t)dims[i], j = p->rank - 1, k;
        if (d == 1)
            continue;
        if (p->rank > 0) {
            for (k = 0; k < n_ops; k++)
                if (p->stride[k][j] != st[k][i] * d)
                    break;
            if (k == n_ops) { /* merge into the previous dimension */
                p->dims[j] *= d;
                for (k = 0; k < n_ops; k++)
                    p->stride[k][j] = st[k][i];
                continue;
            }
        }
        p->dims[p->rank] = d;
        for (k = 0; k < n_ops; k++)
            p->stride[k][p->rank] = st[k][i];
        p->rank++;
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->dims[0] = 1;
        for (size_t k = 0; k < n_ops; k++)
            p->stride[k][0] = 0;
    }
}

/* Runs fn over outer iterations [it0, it1) of the plan, elements [j0, j1) of
 * each inner run.  out is dense in the output shape; es are element sizes. */
static void plan_run_part(const plan *p, void *out, size_t out_es, const void *const *in,
                          const size_t *es, size_t n_ops, run_fn fn, size_t it0, size_t it1,
                          size_t j0, size_t j1)
{
    size_t r = p->rank, inner = p->dims[r - 1], cnt[BNF_MAX_RANK] = {0};
    size_t off[MAX_OPERANDS] = {0}, s[MAX_OPERANDS];
    const void *ptr[MAX_OPERANDS];
    for (size_t k = 0; k < n_ops; k++)
        s[k] = p->stride[k][r - 1] != 0;
    /* the odometer at outer iteration it0 */
    for (size_t d = r - 1, rest = it0; d-- > 0;) {
        cnt[d] = rest % p->dims[d];
        rest /= p->dims[d];
        for (size_t k = 0; k < n_ops; k++)
            off[k] += cnt[d] * p->stride[k][d];
    }
    for (size_t it = it0; it < it1; it++) {
        for (size_t k = 0; k < n_ops; k++)
            ptr[k] = (const char *)in[k] + (off[k] + j0 * s[k]) * es[k];
        fn((char *)out + (it * inner + j0) * out_es, ptr, s, j1 - j0);
        for (size_t d = r - 1; d-- > 0;) {
            cnt[d]++;
            for (size_t k = 0; k < n_ops; k++)
                off[k] += p->stride[k][d];
            if (cnt[d] < p->dims[d])
                break;
            for (size_t k = 0; k < n_ops; k++)
                off[k] -= p->stride[k][d] * p->dims[d];
            cnt[d] = 0;
        }
    }
}

typedef struct {
    const plan *p;
    void *out;
    size_t out_es, n_ops;
    const void *const *in;
    const size_t *es;
    run_fn fn;
    int by_outer; /* ranges of outer iterations, else of each inner run */
} plan_job;

static void plan_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const plan_job *j = arg;
    size_t inner = j->p->dims[j->p->rank - 1], outer = j->p->n / inner;
    (void)tid;
    if (j->by_outer)
        plan_run_part(j->p, j->out, j->out_es, j->in, j->es, j->n_ops, j->fn, lo, hi, 0, inner);
    else
        plan_run_part(j->p, j->out, j->out_es, j->in, j->es, j->n_ops, j->fn, 0, outer, lo, hi);
}

/* Runs fn over the plan, shared out over the session's threads when large:
 * by outer iterations when there are enough, else by pieces of the inner runs. */
static void plan_run(const bnf_op_ctx *ctx, const plan *p, void *out, size_t out_es,
                     const void *const *in, const size_t *es, size_t n_ops, run_fn fn)
{
    size_t inner, outer, nt;
    plan_job j;
    if (p->n == 0)
        return;
    inner = p->dims[p->rank - 1];
    outer = p->n / inner;
    nt = bnf_par_threads(ctx, p->n, p->n);
    if (nt <= 1) {
        plan_run_part(p, out, out_es, in, es, n_ops, fn, 0, outer, 0, inner);
        return;
    }
    j = (plan_job){p, out, out_es, n_ops, in, es, fn, outer >= 4 * nt};
    bnf_parallel(ctx, nt, j.by_outer ? outer : inner, plan_range, &j);
}

/* ---- typed inner runs ------------------------------------------------------------- */

/* A binary run: EXPR computes the result from `a` (TA) and `b` (TB).  The
 * loops sit in functions with restrict parameters (which gcc honours; block-
 * scope restrict pointers it does not), so operands must not overlap the output. */
#define BIN_RUN(name, TA, TB, TO, EXPR)                                                  \
    static void name##_vv(TO *restrict o, const TA *restrict pa, const TB *restrict pb,  \
                          size_t n)                                                    \
    {                                                                                  \
        BLOCKED_LOOP(n, TA a = pa[i]; TB b = pb[i]; o[i] = (TO)(EXPR));                \
    }                                                                                  \
    static void name##_vs(TO *restrict o, const TA *restrict pa, const TB b, size_t n)   \
    {                                                                                  \
        BLOCKED_LOOP(n, TA a = pa[i]; o[i] = (TO)(EXPR));                              \
    }                                                                                  \
    static void name##_sv(TO *restrict o, const TA a, const TB *restrict pb, size_t n)   \
    {                                                                                  \
        BLOCKED_LOOP(n, TB b = pb[i]; o[i] = (TO)(EXPR));                              \
    }                                                                                  \
    static void name(void *out, const void *const *in, const size_t *s, size_t n)        \
    {                                                                                  \
        const TA *pa = in[0];                                                          \
        const TB *pb = in[1];                                                          \
        if (s[0] && s[1]) {                                                            \
            name##_vv(out, pa, pb, n);                                                 \
        } else if (s[0]) {                                                             \
            name##_vs(out, pa, pb[0], n);                                              \
        } else if (s[1]) {                                                             \
            name##_sv(out, pa[0], pb, n);                                              \
        } else {                                                                       \
            TO *o = out;                                                               \
            const TA a = pa[0];                                                        \
            const TB b = pb[0];                                                        \
            const TO v = (TO)(EXPR);                                                   \
            for (size_t i = 0; i < n; i++)                                             \
                o[i] = v;                                                              \
        }                                                                              \
    }

typedef struct {
    int32_t dtype;
    run_fn fn;
} typed_run;

/* Integer arithmetic wraps (two's complement) without signed overflow: the
 * operands are converted to the unsigned type UT, at least 32 bits wide so
 * that narrow types are not promoted to (overflowing) int.  x/0 gives 0. */
#define WRAP(T, UT, op) ((T)((UT)a op (UT)b))
#define S_ADD(T, UT) WRAP(T, UT, +)
#define S_SUB(T, UT) WRAP(T, UT, -)
#define S_MUL(T, UT) WRAP(T, UT, *)
#define S_DIV(T, UT) (b == 0 ? (T)0 : b == -1 ? (T)(0u - (UT)a) : (T)(a / b))
#define U_DIV(T, UT) (b == 0 ? (T)0 : (T)(a / b))
/* (min/max written in the forms gcc turns into min/max instructions) */
#define X_MIN(T, UT) (b < a ? b : a)
#define X_MAX(T, UT) (b > a ? b : a)

/* An arithmetic operator: FEXPR for the real types, SX(T, UT) for the signed
 * and UX(T, UT) for the unsigned integer types. */
#define ARITH_SET(op, FEXPR, SX, UX)                                                     \
    BIN_RUN(op##_f32, float, float, float, FEXPR)                                      \
    BIN_RUN(op##_f64, double, double, double, FEXPR)                                   \
    BIN_RUN(op##_i8, int8_t, int8_t, int8_t, SX(int8_t, uint32_t))                     \
    BIN_RUN(op##_i16, int16_t, int16_t, int16_t, SX(int16_t, uint32_t))                \
    BIN_RUN(op##_i32, int32_t, int32_t, int32_t, SX(int32_t, uint32_t))                \
    BIN_RUN(op##_i64, int64_t, int64_t, int64_t, SX(int64_t, uint64_t))                \
    BIN_RUN(op##_u8, uint8_t, uint8_t, uint8_t, UX(uint8_t, uint32_t))                 \
    BIN_RUN(op##_u16, uint16_t, uint16_t, uint16_t, UX(uint16_t, uint32_t))            \
    BIN_RUN(op##_u32, uint32_t, uint32_t, uint32_t, UX(uint32_t, uint32_t))            \
    BIN_RUN(op##_u64, uint64_t, uint64_t, uint64_t, UX(uint64_t, uint64_t))            \
    static const typed_run op##_runs[] = {                                             \
        {BNF_T_FLOAT, op##_f32},  {BNF_T_DOUBLE, op##_f64}, {BNF_T_INT8, op##_i8},     \
        {BNF_T_INT16, op##_i16},  {BNF_T_INT32, op##_i32},  {BNF_T_INT64, op##_i64},   \
        {BNF_T_UINT8, op##_u8},   {BNF_T_UINT16, op##_u16}, {BNF_T_UINT32, op##_u32},  \
        {BNF_T_UINT64, op##_u64}, {0, NULL}};

ARITH_SET(add, a + b, S_ADD, S_ADD)
ARITH_SET(sub, a - b, S_SUB, S_SUB)
ARITH_SET(mul, a * b, S_MUL, S_MUL)
ARITH_SET(div, a / b, S_DIV, U_DIV)
ARITH_SET(min, b < a ? b : a, X_MIN, X_MIN)
ARITH_SET(max, b > a ? b : a, X_MAX, X_MAX)

/* Comparisons: numeric inputs (Equal also bool), bool output. */
#define CMP_SET(op, EXPR, ...)                                                          \
    BIN_RUN(op##_f32, float, float, uint8_t, EXPR)                                     \
    BIN_RUN(op##_f64, double, double, uint8_t, EXPR)                                   \
    BIN_RUN(op##_i8, int8_t, int8_t, uint8_t, EXPR)                                    \
    BIN_RUN(op##_i16, int16_t, int16_t, uint8_t, EXPR)                                 \
    BIN_RUN(op##_i32, int32_t, int32_t, uint8_t, EXPR)                                 \
    BIN_RUN(op##_i64, int64_t, int64_t, uint8_t, EXPR)                                 \
    BIN_RUN(op##_u8, uint8_t, uint8_t, uint8_t, EXPR)                                  \
    BIN_RUN(op##_u16, uint16_t, uint16_t, uint8_t, EXPR)                               \
    BIN_RUN(op##_u32, uint32_t, uint32_t, uint8_t, EXPR)                               \
    BIN_RUN(op##_u64, uint64_t, uint64_t, uint8_t, EXPR)                               \
    static const typed_run op##_runs[] = {                                             \
        {BNF_T_FLOAT, op##_f32},  {BNF_T_DOUBLE, op##_f64}, {BNF_T_INT8, op##_i8},     \
        {BNF_T_INT16, op##_i16},  {BNF_T_INT32, op##_i32},  {BNF_T_INT64, op##_i64},   \
        {BNF_T_UINT8, op##_u8},   {BNF_T_UINT16, op##_u16}, {BNF_T_UINT32, op##_u32},  \
        {BNF_T_UINT64, op##_u64}, __VA_ARGS__ {0, NULL}};

CMP_SET(less, a < b)
CMP_SET(greater, a > b)
CMP_SET(less_eq, a <= b)
CMP_SET(greater_eq, a >= b)
BIN_RUN(equal_b, uint8_t, uint8_t, uint8_t, (a != 0) == (b != 0))
CMP_SET(equal, a == b, {BNF_T_BOOL, equal_b},)

/* Mod: fmod=1 is C's remainder (sign of the dividend: fmod, %), fmod=0 the
 * floored one (sign of the divisor), integers only.  x mod 0 gives 0 for
 * integers. */
#define S_REM(T, UT) (b == 0 || b == -1 ? (T)0 : (T)(a % b))
#define S_FLOORMOD(T, UT) (b == 0 || b == -1 ? (T)0 : (T)(a % b != 0 && (a % b < 0) != (b < 0) ? a % b + b : a % b))
#define U_REM(T, UT) (b == 0 ? (T)0 : (T)(a % b))
ARITH_SET(rem, fmod(a, b), S_REM, U_REM)
/* (the real entries are unreachable: the spec requires fmod=1 for real types) */
#define F_FLOORMOD (fmod(a, b) != 0 && (fmod(a, b) < 0) != (b < 0) ? fmod(a, b) + b : fmod(a, b))
ARITH_SET(floormod, F_FLOORMOD, S_FLOORMOD, U_REM)

/* BitShift (unsigned only); a shift of the width or more gives 0. */
#define SHL(T, W) (b >= W ? (T)0 : (T)((T)a << b))
#define SHR(T, W) (b >= W ? (T)0 : (T)(a >> b))
BIN_RUN(shl_u8, uint8_t, uint8_t, uint8_t, SHL(uint8_t, 8))
BIN_RUN(shl_u16, uint16_t, uint16_t, uint16_t, SHL(uint16_t, 16))
BIN_RUN(shl_u32, uint32_t, uint32_t, uint32_t, SHL(uint32_t, 32))
BIN_RUN(shl_u64, uint64_t, uint64_t, uint64_t, SHL(uint64_t, 64))
BIN_RUN(shr_u8, uint8_t, uint8_t, uint8_t, SHR(uint8_t, 8))
BIN_RUN(shr_u16, uint16_t, uint16_t, uint16_t, SHR(uint16_t, 16))
BIN_RUN(shr_u32, uint32_t, uint32_t, uint32_t, SHR(uint32_t, 32))
BIN_RUN(shr_u64, uint64_t, uint64_t, uint64_t, SHR(uint64_t, 64))
static const typed_run shl_runs[] = {{BNF_T_UINT8, shl_u8},   {BNF_T_UINT16, shl_u16},
                                     {BNF_T_UINT32, shl_u32}, {BNF_T_UINT64, shl_u64},
                                     {0, NULL}};
static const typed_run shr_runs[] = {{BNF_T_UINT8, shr_u8},   {BNF_T_UINT16, shr_u16},
                                     {BNF_T_UINT32, shr_u32}, {BNF_T_UINT64, shr_u64},
                                     {0, NULL}};

BIN_RUN(and_b, uint8_t, uint8_t, uint8_t, (a != 0) & (b != 0))
BIN_RUN(or_b, uint8_t, uint8_t, uint8_t, (a != 0) | (b != 0))
BIN_RUN(xor_b, uint8_t, uint8_t, uint8_t, (a != 0) ^ (b != 0))
static const typed_run and_runs[] = {{BNF_T_BOOL, and_b}, {0, NULL}};
static const typed_run or_runs[] = {{BNF_T_BOOL, or_b}, {0, NULL}};
static const typed_run xor_runs[] = {{BNF_T_BOOL, xor_b}, {0, NULL}};

/* Pow: the fast paths; other type pairs go through pow_generic(). */
BIN_RUN(pow_f32, float, float, float, powf(a, b))
BIN_RUN(pow_f64, double, double, double, pow(a, b))
BIN_RUN(square_f32, float, float, float, ((void)b, a * a))

static run_fn find_run(const typed_run *runs, int32_t dtype)
{
    for (; runs->fn; runs++)
        if (runs->dtype == dtype)
            return runs->fn;
    return NULL;
}

/* ---- checks ------------------------------------------------------------------------ */

static bnf_status same_type(bnf_op_ctx *ctx, const bnf_tensor *a, const bnf_tensor *b)
{
    if (a->dtype != b->dtype)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": inputs are %s and %s, must be one type",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(a->dtype), bnf_dtype_name(b->dtype));
    return BNF_OK;
}

/* out = fn(a, b) broadcast, output type out_dtype. */
static bnf_status binary_apply(bnf_op_ctx *ctx, const bnf_tensor *a, const bnf_tensor *b,
                               int32_t out_dtype, run_fn fn)
{
    int64_t dims[BNF_MAX_RANK];
    size_t rank, es[2] = {bnf_eval_size(a->dtype), bnf_eval_size(b->dtype)};
    bnf_tensor *y;
    const bnf_tensor *ops[2] = {a, b};
    const void *in[2] = {a->data, b->data};
    bnf_status rc;
    plan p;
    if ((rc = bnf_broadcast_shape(ctx, a, b, dims, &rank)))
        return rc;
    if ((rc = bnf_out(ctx, 0, out_dtype, dims, rank, &y)))
        return rc;
    plan_make(&p, dims, rank, ops, 2);
    plan_run(ctx, &p, y->data, bnf_eval_size(out_dtype), in, es, 2, fn);
    return BNF_OK;
}

static bnf_status binary(bnf_op_ctx *ctx, const typed_run *runs, int bool_out)
{
    bnf_status rc;
    run_fn fn;
    if ((rc = bnf_need_inputs(ctx, 2, 2, NULL)) || (rc = same_type(ctx, ctx->in[0], ctx->in[1])))
        return rc;
    if (!(fn = find_run(runs, ctx->in[0]->dtype)))
        return bnf_unsupported_type(ctx, ctx->in[0]->dtype);
    return binary_apply(ctx, ctx->in[0], ctx->in[1], bool_out ? BNF_T_BOOL : ctx->in[0]->dtype, fn);
}

static bnf_status op_add(bnf_op_ctx *ctx) { return binary(ctx, add_runs, 0); }
static bnf_status op_sub(bnf_op_ctx *ctx) { return binary(ctx, sub_runs, 0); }
static bnf_status op_mul(bnf_op_ctx *ctx) { return binary(ctx, mul_runs, 0); }
static bnf_status op_div(bnf_op_ctx *ctx) { return binary(ctx, div_runs, 0); }
static bnf_status op_equal(bnf_op_ctx *ctx) { return binary(ctx, equal_runs, 1); }
static bnf_status op_less(bnf_op_ctx *ctx) { return binary(ctx, less_runs, 1); }
static bnf_status op_greater(bnf_op_ctx *ctx) { return binary(ctx, greater_runs, 1); }
static bnf_status op_less_or_equal(bnf_op_ctx *ctx) { return binary(ctx, less_eq_runs, 1); }
static bnf_status op_greater_or_equal(bnf_op_ctx *ctx) { return binary(ctx, greater_eq_runs, 1); }
static bnf_status op_and(bnf_op_ctx *ctx) { return binary(ctx, and_runs, 1); }

static bnf_status op_mod(bnf_op_ctx *ctx)
{
    int64_t fm = bnf_ctx_int(ctx, "fmod", 0);
    int32_t dt = ctx->n_in > 0 && ctx->in[0] ? ctx->in[0]->dtype : 0;
    if (fm != 0 && fm != 1)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": fmod is %lld, must be 0 or 1",
                        BNF_NODE_ARG(ctx), (long long)fm);
    if (fm == 0 && (dt == BNF_T_FLOAT || dt == BNF_T_DOUBLE))
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": fmod must be 1 for %s inputs",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(dt));
    return binary(ctx, fm ? rem_runs : floormod_runs, 0);
}

static bnf_status op_bit_shift(bnf_op_ctx *ctx)
{
    char buf[8];
    const char *dir = bnf_ctx_string(ctx, "direction", "", buf, sizeof buf);
    if (strcmp(dir, "LEFT") == 0)
        return binary(ctx, shl_runs, 0);
    if (strcmp(dir, "RIGHT") == 0)
        return binary(ctx, shr_runs, 0);
    return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": direction '%s' is not LEFT or RIGHT",
                    BNF_NODE_ARG(ctx), dir);
}
static bnf_status op_or(bnf_op_ctx *ctx) { return binary(ctx, or_runs, 1); }
static bnf_status op_xor(bnf_op_ctx *ctx) { return binary(ctx, xor_runs, 1); }

/* ---- Pow ------------------------------------------------------------------------------ */

static int is_int_type(int32_t t)
{
    return t == BNF_T_INT32 || t == BNF_T_INT64 || t == BNF_T_INT8 || t == BNF_T_UINT8 ||
           t == BNF_T_INT16 || t == BNF_T_UINT16 || t == BNF_T_UINT32 || t == BNF_T_UINT64;
}

/* Integer power by squaring, wrapping; negative exponents truncate 1/x^k. */
static int64_t ipow(int64_t x, int64_t e)
{
    uint64_t r = 1, b = (uint64_t)x;
    if (e < 0)
        return x == 1 ? 1 : x == -1 ? ((e & 1) ? -1 : 1) : 0;
    while (e) {
        if (e & 1)
            r *= b;
        b *= b;
        e >>= 1;
    }
    return (int64_t)r;
}

/* Any supported type pair, element by element through index tables (not a hot path). */
static bnf_status pow_generic(bnf_op_ctx *ctx, const bnf_tensor *x, const bnf_tensor *e)
{
    int64_t dims[BNF_MAX_RANK];
    size_t rank, *ix = NULL, *ie = NULL;
    bnf_tensor *y;
    bnf_status rc;
    int ints = is_int_type(x->dtype) && is_int_type(e->dtype);
    if ((rc = bnf_broadcast_shape(ctx, x, e, dims, &rank)) ||
        (rc = bnf_out(ctx, 0, x->dtype, dims, rank, &y)))
        return rc;
    if (y->n == 0)
        return BNF_OK;
    ix = bnf_malloc(y->n * sizeof *ix);
    ie = bnf_malloc(y->n * sizeof *ie);
    if (!ix || !ie) {
        rc = bnf_nomem(ctx);
        goto out;
    }
    bnf_broadcast_index(x, dims, rank, ix);
    bnf_broadcast_index(e, dims, rank, ie);
    for (size_t i = 0; i < y->n; i++) {
        if (ints) {
            int64_t v = ipow(bnf_get_i64(x, ix[i]), bnf_get_i64(e, ie[i]));
            if (y->dtype == BNF_T_INT64) /* else int32: the base types are (u)int32/64, float */
                ((int64_t *)y->data)[i] = v;
            else
                ((int32_t *)y->data)[i] = (int32_t)(uint32_t)(uint64_t)v;
        } else {
            double v = pow(bnf_get_f64(x, ix[i]), bnf_get_f64(e, ie[i]));
            if (is_int_type(y->dtype)) /* keep the integer conversion defined */
                v = v != v ? 0 : v < -9.2e18 ? -9.2e18 : v > 9.2e18 ? 9.2e18 : v;
            if (y->dtype == BNF_T_INT64)
                ((int64_t *)y->data)[i] = (int64_t)v;
            else
                bnf_set_f64(y, i, y->dtype == BNF_T_INT32 ? (double)(int32_t)(int64_t)v : v);
        }
    }
out:
    bnf_free(ix);
    bnf_free(ie);
    return rc;
}

static bnf_status op_pow(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *e;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 2, 2, NULL)))
        return rc;
    x = ctx->in[0];
    e = ctx->in[1];
    if (x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE && x->dtype != BNF_T_INT32 &&
        x->dtype != BNF_T_INT64)
        return bnf_unsupported_type(ctx, x->dtype);
    if (!bnf_eval_size(e->dtype) || e->dtype == BNF_T_BOOL)
        return bnf_unsupported_type(ctx, e->dtype);
    if (x->dtype == BNF_T_FLOAT && e->dtype == BNF_T_FLOAT) {
        if (e->n == 1 && ((const float *)e->data)[0] == 2.0f)
            return binary_apply(ctx, x, e, BNF_T_FLOAT, square_f32);
        return binary_apply(ctx, x, e, BNF_T_FLOAT, pow_f32);
    }
    if (x->dtype == BNF_T_DOUBLE && e->dtype == BNF_T_DOUBLE)
        return binary_apply(ctx, x, e, BNF_T_DOUBLE, pow_f64);
    return pow_generic(ctx, x, e);
}

/* ---- opsets 1-6: broadcasting on request ------------------------------------------- */

/* Before opset 7 the binary operators broadcast only when asked (broadcast =
 * 1): B onto A, B's dimensions being A's from `axis` on (by default A's last
 * ones), a B of one element a scalar; with broadcast = 0 the shapes are equal.
 * B is given the shape with which numpy's broadcasting computes the same, and
 * the opset-7 kernel runs; consumed_inputs (opset 1) changes nothing. */
static bnf_status legacy(bnf_op_ctx *ctx, bnf_status (*modern)(bnf_op_ctx *))
{
    const bnf_tensor *a, *b;
    bnf_tensor view;
    int64_t axis;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 2, 2, NULL)))
        return rc;
    a = ctx->in[0];
    b = ctx->in[1];
    if (!bnf_ctx_int(ctx, "broadcast", 0)) {
        if (a->rank != b->rank || (a->rank && memcmp(a->dims, b->dims, a->rank * sizeof *a->dims)))
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": broadcast is 0, so its "
                            "inputs must have one shape (ranks %zu and %zu)", BNF_NODE_ARG(ctx),
                            a->rank, b->rank);
        return modern(ctx);
    }
    view = *b;
    if (b->n == 1) {
        view.rank = 0;
    } else {
        axis = bnf_node_attr(ctx->node, "axis") ? bnf_ctx_int(ctx, "axis", 0)
                                                : (int64_t)a->rank - (int64_t)b->rank;
        if (b->rank > a->rank || axis < 0 || (size_t)axis > a->rank - b->rank)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": B of rank %zu does not "
                            "fit A of rank %zu from axis %lld", BNF_NODE_ARG(ctx), b->rank,
                            a->rank, (long long)axis);
        for (size_t i = 0; i < a->rank; i++)
            view.dims[i] = 1;
        for (size_t i = 0; i < b->rank; i++) {
            if (b->dims[i] != a->dims[axis + (int64_t)i] && b->dims[i] != 1)
                return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": B's dimension %zu "
                                "is %lld where A's dimension %lld is %lld", BNF_NODE_ARG(ctx), i,
                                (long long)b->dims[i], (long long)(axis + (int64_t)i),
                                (long long)a->dims[axis + (int64_t)i]);
            view.dims[axis + (int64_t)i] = b->dims[i];
        }
        view.rank = a->rank;
    }
    return bnf_run_with_second(ctx, &view, modern);
}

#define LEGACY(name, modern) \
    static bnf_status name(bnf_op_ctx *ctx) { return legacy(ctx, modern); }
LEGACY(op_add_1, op_add)
LEGACY(op_sub_1, op_sub)
LEGACY(op_mul_1, op_mul)
LEGACY(op_div_1, op_div)
LEGACY(op_pow_1, op_pow)
LEGACY(op_equal_1, op_equal)
LEGACY(op_less_1, op_less)
LEGACY(op_greater_1, op_greater)
LEGACY(op_and_1, op_and)
LEGACY(op_or_1, op_or)
LEGACY(op_xor_1, op_xor)
#undef LEGACY

/* ---- variadic Sum Mean Min Max ------------------------------------------------------ */

static bnf_status variadic(bnf_op_ctx *ctx, const typed_run *runs, int mean)
{
    int64_t dims[BNF_MAX_RANK];
    size_t rank, es;
    bnf_tensor shape, *y;
    bnf_status rc;
    run_fn fn;
    int32_t dt;
    if ((rc = bnf_need_inputs(ctx, 1, SIZE_MAX, NULL)))
        return rc;
    dt = ctx->in[0]->dtype;
    if (mean && dt != BNF_T_FLOAT && dt != BNF_T_DOUBLE)
        return bnf_unsupported_type(ctx, dt);
    if (!(fn = find_run(runs, dt)))
        return bnf_unsupported_type(ctx, dt);
    es = bnf_eval_size(dt);
    memset(&shape, 0, sizeof shape);
    shape.rank = ctx->in[0]->rank;
    memcpy(shape.dims, ctx->in[0]->dims, sizeof shape.dims);
    for (size_t k = 1; k < ctx->n_in; k++) {
        if ((rc = same_type(ctx, ctx->in[0], ctx->in[k])) ||
            (rc = bnf_broadcast_shape(ctx, &shape, ctx->in[k], dims, &rank)))
            return rc;
        shape.rank = rank;
        memcpy(shape.dims, dims, rank * sizeof *dims);
    }
    if ((rc = bnf_out(ctx, 0, dt, shape.dims, shape.rank, &y)))
        return rc;
    if (y->n == 0)
        return BNF_OK;
    if (ctx->n_in == 1) {
        memcpy(y->data, ctx->in[0]->data, y->n * es);
    } else {
        /* step k combines the previous result with input k; results alternate
         * between y and tmp (runs must not write their operands) so that the
         * last lands in y */
        void *tmp = NULL, *prev = ctx->in[0]->data;
        if (ctx->n_in > 2 && !(tmp = bnf_malloc(y->n * es)))
            return bnf_nomem(ctx);
        for (size_t k = 1; k < ctx->n_in; k++) {
            const bnf_tensor *ops[2] = {k == 1 ? ctx->in[0] : y, ctx->in[k]};
            const void *in[2] = {prev, ctx->in[k]->data};
            size_t ess[2] = {es, es};
            void *dst = (ctx->n_in - 1 - k) % 2 == 0 ? y->data : tmp;
            plan p;
            plan_make(&p, y->dims, y->rank, ops, 2); /* y: only its shape is read */
            plan_run(ctx, &p, dst, es, in, ess, 2, fn);
            prev = dst;
        }
        bnf_free(tmp);
    }
    if (mean) {
        if (dt == BNF_T_FLOAT) {
            float *v = y->data, s = 1.0f / (float)ctx->n_in;
            for (size_t i = 0; i < y->n; i++)
                v[i] *= s;
        } else {
            double *v = y->data, s = (double)ctx->n_in;
            for (size_t i = 0; i < y->n; i++)
                v[i] /= s;
        }
    }
    return BNF_OK;
}

static bnf_status op_sum(bnf_op_ctx *ctx) { return variadic(ctx, add_runs, 0); }
static bnf_status op_mean(bnf_op_ctx *ctx) { return variadic(ctx, add_runs, 1); }
static bnf_status op_min(bnf_op_ctx *ctx) { return variadic(ctx, min_runs, 0); }
static bnf_status op_max(bnf_op_ctx *ctx) { return variadic(ctx, max_runs, 0); }

/* ---- Where ---------------------------------------------------------------------------- */

#define WHERE_RUN(name, T)                                                              \
    static void name(void *out, const void *const *in, const size_t *s, size_t n)        \
    {                                                                                  \
        T *o = out;                                                                    \
        const uint8_t *c = in[0];                                                      \
        const T *x = in[1], *y = in[2];                                                \
        for (size_t i = 0; i < n; i++) {                                               \
            T a = x[i * s[1]], b = y[i * s[2]];                                        \
            o[i] = c[i * s[0]] ? a : b;                                                \
        }                                                                              \
    }
WHERE_RUN(where_1, uint8_t)
WHERE_RUN(where_2, uint16_t)
WHERE_RUN(where_4, uint32_t)
WHERE_RUN(where_8, uint64_t)

static bnf_status op_where(bnf_op_ctx *ctx)
{
    int64_t d1[BNF_MAX_RANK], dims[BNF_MAX_RANK];
    size_t r1, rank, es;
    bnf_tensor shape, *y;
    const bnf_tensor *c, *a, *b;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 3, 3, NULL)))
        return rc;
    c = ctx->in[0];
    a = ctx->in[1];
    b = ctx->in[2];
    if (c->dtype != BNF_T_BOOL)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": condition is %s, must be bool",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(c->dtype));
    if ((rc = same_type(ctx, a, b)))
        return rc;
    es = bnf_eval_size(a->dtype);
    if ((rc = bnf_broadcast_shape(ctx, a, b, d1, &r1)))
        return rc;
    memset(&shape, 0, sizeof shape);
    shape.rank = r1;
    memcpy(shape.dims, d1, sizeof d1);
    if ((rc = bnf_broadcast_shape(ctx, c, &shape, dims, &rank)) ||
        (rc = bnf_out(ctx, 0, a->dtype, dims, rank, &y)))
        return rc;
    {
        const bnf_tensor *ops[3] = {c, a, b};
        const void *in[3] = {c->data, a->data, b->data};
        size_t ess[3] = {1, es, es};
        plan p;
        plan_make(&p, dims, rank, ops, 3);
        plan_run(ctx, &p, y->data, es, in, ess, 3,
                 es == 1 ? where_1 : es == 2 ? where_2 : es == 4 ? where_4 : where_8);
    }
    return BNF_OK;
}

/* ---- unary ------------------------------------------------------------------------------ */

typedef void (*unary_fn)(void *out, const void *in, size_t n);

#define UN_RUN(name, T, EXPR)                                                           \
    static void name##_loop(T *restrict o, const T *restrict p, size_t n)               \
    {                                                                                  \
        BLOCKED_LOOP(n, T x = p[i]; o[i] = (T)(EXPR));                                 \
    }                                                                                  \
    static void name(void *out, const void *in, size_t n)                               \
    {                                                                                  \
        name##_loop(out, in, n);                                                       \
    }

typedef struct {
    int32_t dtype;
    unary_fn fn;
} typed_unary;

#define UN_REAL(op, FEXPR, DEXPR)                                                       \
    UN_RUN(op##_f32, float, FEXPR)                                                     \
    UN_RUN(op##_f64, double, DEXPR)                                                    \
    static const typed_unary op##_uns[] = {                                            \
        {BNF_T_FLOAT, op##_f32}, {BNF_T_DOUBLE, op##_f64}, {0, NULL}};

UN_REAL(sqrt, sqrtf(x), sqrt(x))
UN_REAL(exp, expf(x), exp(x))
UN_REAL(log, logf(x), log(x))
UN_REAL(erf, erff(x), erf(x))
UN_REAL(recip, 1.0f / x, 1.0 / x)
UN_REAL(floor, floorf(x), floor(x))
UN_REAL(ceil, ceilf(x), ceil(x))
UN_REAL(round, rintf(x), rint(x)) /* the default rounding mode: half to even */
UN_REAL(sin, sinf(x), sin(x))
UN_REAL(cos, cosf(x), cos(x))
UN_REAL(tan, tanf(x), tan(x))
UN_REAL(asin, asinf(x), asin(x))
UN_REAL(acos, acosf(x), acos(x))
UN_REAL(atan, atanf(x), atan(x))
UN_REAL(sinh, sinhf(x), sinh(x))
UN_REAL(cosh, coshf(x), cosh(x))
UN_REAL(asinh, asinhf(x), asinh(x))
UN_REAL(acosh, acoshf(x), acosh(x))
UN_REAL(atanh, atanhf(x), atanh(x))

UN_RUN(abs_f32, float, fabsf(x))
UN_RUN(abs_f64, double, fabs(x))
UN_RUN(abs_i8, int8_t, x < 0 ? -x : x)
UN_RUN(abs_i16, int16_t, x < 0 ? -x : x)
UN_RUN(abs_i32, int32_t, x < 0 ? 0u - (uint32_t)x : (uint32_t)x)
UN_RUN(abs_i64, int64_t, x < 0 ? 0u - (uint64_t)x : (uint64_t)x)
static const typed_unary abs_uns[] = {{BNF_T_FLOAT, abs_f32}, {BNF_T_DOUBLE, abs_f64},
                                      {BNF_T_INT8, abs_i8},   {BNF_T_INT16, abs_i16},
                                      {BNF_T_INT32, abs_i32}, {BNF_T_INT64, abs_i64},
                                      {0, NULL}};

UN_RUN(neg_f32, float, -x)
UN_RUN(neg_f64, double, -x)
UN_RUN(neg_i8, int8_t, -x)
UN_RUN(neg_i16, int16_t, -x)
UN_RUN(neg_i32, int32_t, 0u - (uint32_t)x)
UN_RUN(neg_i64, int64_t, 0u - (uint64_t)x)
static const typed_unary neg_uns[] = {{BNF_T_FLOAT, neg_f32}, {BNF_T_DOUBLE, neg_f64},
                                      {BNF_T_INT8, neg_i8},   {BNF_T_INT16, neg_i16},
                                      {BNF_T_INT32, neg_i32}, {BNF_T_INT64, neg_i64},
                                      {0, NULL}};

#define SIGN(x) (((x) > 0) - ((x) < 0))
UN_RUN(sign_f32, float, x != x ? x : (float)SIGN(x))
UN_RUN(sign_f64, double, x != x ? x : (double)SIGN(x))
UN_RUN(sign_i8, int8_t, SIGN(x))
UN_RUN(sign_i16, int16_t, SIGN(x))
UN_RUN(sign_i32, int32_t, SIGN(x))
UN_RUN(sign_i64, int64_t, SIGN(x))
UN_RUN(sign_u8, uint8_t, x != 0)
UN_RUN(sign_u16, uint16_t, x != 0)
UN_RUN(sign_u32, uint32_t, x != 0)
UN_RUN(sign_u64, uint64_t, x != 0)
static const typed_unary sign_uns[] = {
    {BNF_T_FLOAT, sign_f32},  {BNF_T_DOUBLE, sign_f64}, {BNF_T_INT8, sign_i8},
    {BNF_T_INT16, sign_i16},  {BNF_T_INT32, sign_i32},  {BNF_T_INT64, sign_i64},
    {BNF_T_UINT8, sign_u8},   {BNF_T_UINT16, sign_u16},
    {BNF_T_UINT32, sign_u32}, {BNF_T_UINT64, sign_u64}, {0, NULL}};

UN_RUN(not_b, uint8_t, x == 0)
static const typed_unary not_uns[] = {{BNF_T_BOOL, not_b}, {0, NULL}};

static bnf_status unary(bnf_op_ctx *ctx, const typed_unary *fns)
{
    const bnf_tensor *x;
    bnf_tensor *y;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 1, 1, NULL)))
        return rc;
    x = ctx->in[0];
    for (; fns->fn; fns++)
        if (fns->dtype == x->dtype) {
            if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
                return rc;
            fns->fn(y->data, x->data, x->n);
            return BNF_OK;
        }
    return bnf_unsupported_type(ctx, x->dtype);
}

/* IsNaN, IsInf: real input, bool output. */
static bnf_status classify(bnf_op_ctx *ctx, int nan, int pos, int neg)
{
    const bnf_tensor *x;
    bnf_tensor *y;
    uint8_t *o;
    bnf_status rc;
    if ((rc = bnf_need_inputs(ctx, 1, 1, NULL)))
        return rc;
    x = ctx->in[0];
    if (x->dtype != BNF_T_FLOAT && x->dtype != BNF_T_DOUBLE)
        return bnf_unsupported_type(ctx, x->dtype);
    if ((rc = bnf_out(ctx, 0, BNF_T_BOOL, x->dims, x->rank, &y)))
        return rc;
    o = y->data;
    for (size_t i = 0; i < x->n; i++) {
        double v = x->dtype == BNF_T_FLOAT ? ((const float *)x->data)[i]
                                           : ((const double *)x->data)[i];
        o[i] = nan ? v != v : (pos && v == INFINITY) || (neg && v == -INFINITY);
    }
    return BNF_OK;
}

static bnf_status op_is_nan(bnf_op_ctx *ctx) { return classify(ctx, 1, 0, 0); }

static bnf_status op_is_inf(bnf_op_ctx *ctx)
{
    return classify(ctx, 0, bnf_ctx_int(ctx, "detect_positive", 1) != 0,
                    bnf_ctx_int(ctx, "detect_negative", 1) != 0);
}

static bnf_status op_sqrt(bnf_op_ctx *ctx) { return unary(ctx, sqrt_uns); }
static bnf_status op_sin(bnf_op_ctx *ctx) { return unary(ctx, sin_uns); }
static bnf_status op_cos(bnf_op_ctx *ctx) { return unary(ctx, cos_uns); }
static bnf_status op_tan(bnf_op_ctx *ctx) { return unary(ctx, tan_uns); }
static bnf_status op_asin(bnf_op_ctx *ctx) { return unary(ctx, asin_uns); }
static bnf_status op_acos(bnf_op_ctx *ctx) { return unary(ctx, acos_uns); }
static bnf_status op_atan(bnf_op_ctx *ctx) { return unary(ctx, atan_uns); }
static bnf_status op_sinh(bnf_op_ctx *ctx) { return unary(ctx, sinh_uns); }
static bnf_status op_cosh(bnf_op_ctx *ctx) { return unary(ctx, cosh_uns); }
static bnf_status op_asinh(bnf_op_ctx *ctx) { return unary(ctx, asinh_uns); }
static bnf_status op_acosh(bnf_op_ctx *ctx) { return unary(ctx, acosh_uns); }
static bnf_status op_atanh(bnf_op_ctx *ctx) { return unary(ctx, atanh_uns); }
static bnf_status op_exp(bnf_op_ctx *ctx) { return unary(ctx, exp_uns); }
static bnf_status op_log(bnf_op_ctx *ctx) { return unary(ctx, log_uns); }
static bnf_status op_erf(bnf_op_ctx *ctx) { return unary(ctx, erf_uns); }
static bnf_status op_reciprocal(bnf_op_ctx *ctx) { return unary(ctx, recip_uns); }
static bnf_status op_floor(bnf_op_ctx *ctx) { return unary(ctx, floor_uns); }
static bnf_status op_ceil(bnf_op_ctx *ctx) { return unary(ctx, ceil_uns); }
static bnf_status op_round(bnf_op_ctx *ctx) { return unary(ctx, round_uns); }
static bnf_status op_abs(bnf_op_ctx *ctx)
{
    const bnf_tensor *x = ctx->n_in == 1 ? ctx->in[0] : NULL;
    bnf_tensor *y;
    bnf_status rc;
    if (x && (x->dtype == BNF_T_UINT8 || x->dtype == BNF_T_UINT16 || x->dtype == BNF_T_UINT32 ||
              x->dtype == BNF_T_UINT64)) { /* unsigned: the identity */
        if ((rc = bnf_out(ctx, 0, x->dtype, x->dims, x->rank, &y)))
            return rc;
        memcpy(y->data, x->data, x->n * bnf_eval_size(x->dtype));
        return BNF_OK;
    }
    return unary(ctx, abs_uns);
}
static bnf_status op_neg(bnf_op_ctx *ctx) { return unary(ctx, neg_uns); }
static bnf_status op_sign(bnf_op_ctx *ctx) { return unary(ctx, sign_uns); }
static bnf_status op_not(bnf_op_ctx *ctx) { return unary(ctx, not_uns); }

/* ---- the table ---------------------------------------------------------------------------- */

const bnf_op_def bnf_ops_elementwise[] = {
    /* binary: 1-6 broadcast on request (legacy), since 7 numpy's broadcasting */
    {"Add", 1, op_add_1},
    {"Add", 7, op_add},
    {"Sub", 1, op_sub_1},
    {"Sub", 7, op_sub},
    {"Mul", 1, op_mul_1},
    {"Mul", 7, op_mul},
    {"Div", 1, op_div_1},
    {"Div", 7, op_div},
    {"Pow", 1, op_pow_1},
    {"Pow", 7, op_pow},
    {"Equal", 1, op_equal_1},
    {"Equal", 7, op_equal},
    {"Less", 1, op_less_1},
    {"Less", 7, op_less},
    {"Greater", 1, op_greater_1},
    {"Greater", 7, op_greater},
    {"LessOrEqual", 12, op_less_or_equal},
    {"GreaterOrEqual", 12, op_greater_or_equal},
    {"And", 1, op_and_1},
    {"And", 7, op_and},
    {"Or", 1, op_or_1},
    {"Or", 7, op_or},
    {"Xor", 1, op_xor_1},
    {"Xor", 7, op_xor},
    {"Mod", 10, op_mod},
    {"BitShift", 11, op_bit_shift},
    {"Where", 9, op_where},
    /* variadic: 1-5 differ only by consumed_inputs, 6-7 required equal shapes
     * (a subset of what is accepted), 8+ broadcast */
    {"Sum", 1, op_sum},
    {"Mean", 1, op_mean},
    {"Min", 1, op_min},
    {"Max", 1, op_max},
    /* unary */
    {"Sqrt", 1, op_sqrt},
    {"Exp", 1, op_exp},
    {"Log", 1, op_log},
    {"Erf", 9, op_erf},
    {"Reciprocal", 1, op_reciprocal},
    {"Floor", 1, op_floor},
    {"Ceil", 1, op_ceil},
    {"Round", 11, op_round},
    {"Abs", 1, op_abs},
    {"Neg", 1, op_neg},
    {"Sign", 9, op_sign},
    {"Not", 1, op_not},
    {"IsNaN", 9, op_is_nan},
    {"IsInf", 10, op_is_inf},
    {"Sin", 7, op_sin},
    {"Cos", 7, op_cos},
    {"Tan", 7, op_tan},
    {"Asin", 7, op_asin},
    {"Acos", 7, op_acos},
    {"Atan", 7, op_atan},
    {"Sinh", 9, op_sinh},
    {"Cosh", 9, op_cosh},
    {"Asinh", 9, op_asinh},
    {"Acosh", 9, op_acosh},
    {"Atanh", 9, op_atanh},
    {NULL, 0, NULL},
};

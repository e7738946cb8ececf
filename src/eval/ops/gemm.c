/*
 * eval/ops/gemm.c: Gemm and MatMul.
 *
 * float32 goes to bnf_sgemm_par (OpenBLAS, cut into pieces shared out over the
 * session's threads; a one-row product is a GEMV): Gemm writes beta * C into Y
 * first and lets the GEMM accumulate into it; MatMul runs one GEMM per batch (numpy
 * semantics: 1-D operands, broadcast batch dimensions), or a single GEMM when
 * B has no batch and A's batches are contiguous rows.  double, int32 and int64
 * take a plain triple loop (double accumulation for double, int64 for the
 * integer types, which wrap like the hardware).
 */
#include "../eval.h"

#include <string.h>

static int type_ok(int32_t t)
{
    return t == BNF_T_FLOAT || t == BNF_T_DOUBLE || t == BNF_T_INT32 || t == BNF_T_INT64;
}

/* ---- generic (slow) paths --------------------------------------------------------- */

/* y[i, j] = sum_k a[i, k] b[k, j] for non-float types, with element strides
 * (row, column) for a and b so transposed operands need no copy. */
static void gemm_generic(const bnf_tensor *a, size_t a_off, size_t a_rs, size_t a_cs,
                         const bnf_tensor *b, size_t b_off, size_t b_rs, size_t b_cs, bnf_tensor *y,
                         size_t y_off, size_t m, size_t n, size_t k, double alpha)
{
    int integer = y->dtype == BNF_T_INT32 || y->dtype == BNF_T_INT64;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            size_t ai = a_off + i * a_rs, bj = b_off + j * b_cs, yi;
            if (integer) {
                uint64_t acc = 0; /* wraps instead of overflowing */
                for (size_t t = 0; t < k; t++)
                    acc += (uint64_t)bnf_get_i64(a, ai + t * a_cs) *
                           (uint64_t)bnf_get_i64(b, bj + t * b_rs);
                yi = y_off + i * n + j;
                if (alpha != 1.0)
                    bnf_set_f64(y, yi, alpha * (double)(int64_t)acc);
                else if (y->dtype == BNF_T_INT64)
                    ((int64_t *)y->data)[yi] = (int64_t)acc;
                else
                    ((int32_t *)y->data)[yi] = (int32_t)(uint32_t)acc;
            } else {
                double acc = 0;
                for (size_t t = 0; t < k; t++)
                    acc += bnf_get_f64(a, ai + t * a_cs) * bnf_get_f64(b, bj + t * b_rs);
                bnf_set_f64(y, y_off + i * n + j, alpha * acc);
            }
        }
}

/* ---- Gemm ----------------------------------------------------------------------------- */

/* Rows of a streamed B read at a time: about this many bytes. */
#define STREAM_PIECE (4u << 20)

/* Y (m x n, beta already applied as acc_beta) += alpha op(A) op(B) with B a
 * streamed weight, read a few rows at a time.  transB: B's rows are Y's
 * columns, each piece gives its columns whole.  Else B's rows are the inner
 * dimension: each piece adds its part of the sum (so the sum is ordered by
 * pieces: the same in every run). */
static bnf_status gemm_streamed(bnf_op_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k,
                                float alpha, const bnf_tensor *a, const bnf_tensor *b,
                                float acc_beta, float *yd)
{
    size_t rows = (size_t)b->dims[0], row = (size_t)b->dims[1];
    size_t step = row * sizeof(float) >= STREAM_PIECE ? 1 : STREAM_PIECE / (row * sizeof(float));
    const float *ad = a->data, *bp;
    float *scratch;
    if (step > rows)
        step = rows;
    if (!(scratch = bnf_malloc(step * row * sizeof *scratch)))
        return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
    for (size_t r0 = 0; r0 < rows; r0 += step) {
        size_t nr = rows - r0 < step ? rows - r0 : step;
        bnf_in_rows(ctx, 1, r0, nr, scratch, &bp);
        if (tb) /* B is n x k: columns r0.. of Y */
            bnf_sgemm_par(ctx, ta, 1, m, nr, k, alpha, ad, (size_t)a->dims[1], bp, row, acc_beta,
                          yd + r0, n);
        else /* B is k x n: rows r0.. of the inner dimension */
            bnf_sgemm_par(ctx, ta, 0, m, n, nr, alpha, ta ? ad + r0 * m : ad + r0,
                          (size_t)a->dims[1], bp, row, r0 ? 1.0f : acc_beta, yd, n);
        bnf_in_rows_done(ctx, 1, r0, nr);
    }
    bnf_free(scratch);
    return BNF_OK;
}

static bnf_status op_gemm(bnf_op_ctx *ctx)
{
    const bnf_tensor *a, *b, *c;
    bnf_tensor *y;
    bnf_status rc;
    int64_t ta, tb, ydims[2], c0 = 1, c1 = 1;
    size_t m, n, k, k2;
    float alpha, beta;

    if ((rc = bnf_need_inputs(ctx, 2, 3, "inputs A, B and an optional C")))
        return rc;
    a = ctx->in[0];
    b = ctx->in[1];
    c = ctx->n_in > 2 ? ctx->in[2] : NULL;
    if (!type_ok(a->dtype) || b->dtype != a->dtype || (c && c->dtype != a->dtype))
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": A, B and C must share one type, float, double, int32 or "
                        "int64 (A is %s, B is %s%s%s)",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(a->dtype), bnf_dtype_name(b->dtype),
                        c ? ", C is " : "", c ? bnf_dtype_name(c->dtype) : "");
    if (a->rank != 2 || b->rank != 2)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": A and B must be 2-D (ranks %zu, %zu)",
                        BNF_NODE_ARG(ctx), a->rank, b->rank);
    ta = bnf_ctx_int(ctx, "transA", 0);
    tb = bnf_ctx_int(ctx, "transB", 0);
    alpha = bnf_ctx_float(ctx, "alpha", 1.0f);
    beta = bnf_ctx_float(ctx, "beta", 1.0f);
    m = (size_t)(ta ? a->dims[1] : a->dims[0]);
    k = (size_t)(ta ? a->dims[0] : a->dims[1]);
    k2 = (size_t)(tb ? b->dims[1] : b->dims[0]);
    n = (size_t)(tb ? b->dims[0] : b->dims[1]);
    if (k != k2)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": inner dimensions differ (A gives %zu, B gives %zu)",
                        BNF_NODE_ARG(ctx), k, k2);
    if (c) {
        /* unidirectional broadcast of C to [M, N] */
        if (c->rank > 2)
            goto bad_c;
        if (c->rank == 2) {
            c0 = c->dims[0];
            c1 = c->dims[1];
        } else if (c->rank == 1) {
            c1 = c->dims[0];
        }
        if ((c0 != 1 && (size_t)c0 != m) || (c1 != 1 && (size_t)c1 != n))
            goto bad_c;
    }
    ydims[0] = (int64_t)m;
    ydims[1] = (int64_t)n;
    if ((rc = bnf_out(ctx, 0, a->dtype, ydims, 2, &y)))
        return rc;
    if (y->n == 0)
        return BNF_OK;
    if (a->dtype == BNF_T_FLOAT) {
        float *yd = y->data;
        float acc_beta = 0.0f;
        if (!bnf_blas_ok(m) || !bnf_blas_ok(n) || !bnf_blas_ok(k))
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": the matrices are too large",
                            BNF_NODE_ARG(ctx));
        if (c && beta != 0.0f) {
            const float *cd = c->data;
            for (size_t i = 0; i < m; i++) {
                float *row = yd + i * n;
                const float *cr = cd + (c0 == 1 ? 0 : i * (size_t)c1);
                if (c1 == 1)
                    for (size_t j = 0; j < n; j++)
                        row[j] = beta * cr[0];
                else
                    for (size_t j = 0; j < n; j++)
                        row[j] = beta * cr[j];
            }
            acc_beta = 1.0f;
        } else if (k == 0) {
            memset(yd, 0, y->n * sizeof *yd);
        }
        if (k > 0 && (ctx->streamed_in & 2u))
            return gemm_streamed(ctx, ta != 0, tb != 0, m, n, k, alpha, a, b, acc_beta, yd);
        if (k > 0)
            bnf_sgemm_par(ctx, ta != 0, tb != 0, m, n, k, alpha, a->data, (size_t)a->dims[1],
                          b->data, (size_t)b->dims[1], acc_beta, yd, n);
        return BNF_OK;
    }
    if (ctx->streamed_in & 2u)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": B was not read",
                        BNF_NODE_ARG(ctx));
    /* generic types */
    gemm_generic(a, 0, ta ? 1 : k, ta ? m : 1, b, 0, tb ? 1 : n, tb ? k : 1, y, 0, m, n, k, alpha);
    if (c && beta != 0.0f)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                size_t ci = (c0 == 1 ? 0 : i * (size_t)c1) + (c1 == 1 ? 0 : j);
                if (y->dtype == BNF_T_INT64 && beta == 1.0f)
                    ((int64_t *)y->data)[i * n + j] += ((const int64_t *)c->data)[ci];
                else
                    bnf_set_f64(y, i * n + j, bnf_get_f64(y, i * n + j) + beta * bnf_get_f64(c, ci));
            }
    return BNF_OK;
bad_c:
    return bnf_fail(ctx->err, BNF_ERR_INVALID,
                    BNF_NODE_FMT ": C (rank %zu) does not broadcast to [%zu, %zu]", BNF_NODE_ARG(ctx),
                    c->rank, m, n);
}

/* ---- MatMul ----------------------------------------------------------------------------- */

static bnf_status op_matmul(bnf_op_ctx *ctx)
{
    const bnf_tensor *a, *b;
    bnf_tensor *y;
    bnf_status rc;
    int64_t ydims[BNF_MAX_RANK], bat[BNF_MAX_RANK], abat[BNF_MAX_RANK], bbat[BNF_MAX_RANK];
    size_t m, n, k, nb, yr = 0, astr[BNF_MAX_RANK], bstr[BNF_MAX_RANK], batches = 1;
    size_t arank, brank;

    if ((rc = bnf_need_inputs(ctx, 2, 2, "inputs A and B")))
        return rc;
    a = ctx->in[0];
    b = ctx->in[1];
    if (!type_ok(a->dtype) || b->dtype != a->dtype)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT ": A and B must both be float, double, int32 or int64 (%s, %s)",
                        BNF_NODE_ARG(ctx), bnf_dtype_name(a->dtype), bnf_dtype_name(b->dtype));
    if (a->rank < 1 || b->rank < 1)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": A and B must have rank >= 1",
                        BNF_NODE_ARG(ctx));
    /* 1-D A is [1, K] and 1-D B is [K, 1], the added dimension dropped from Y */
    m = a->rank == 1 ? 1 : (size_t)a->dims[a->rank - 2];
    k = (size_t)a->dims[a->rank - 1];
    n = b->rank == 1 ? 1 : (size_t)b->dims[b->rank - 1];
    if ((size_t)b->dims[b->rank == 1 ? 0 : b->rank - 2] != k)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": inner dimensions differ (A has %zu, B has %lld)",
                        BNF_NODE_ARG(ctx), k, (long long)b->dims[b->rank == 1 ? 0 : b->rank - 2]);
    arank = a->rank > 2 ? a->rank - 2 : 0;
    brank = b->rank > 2 ? b->rank - 2 : 0;
    nb = arank > brank ? arank : brank;
    {
        /* broadcast batch dimensions, with element strides of each batch in A and B */
        size_t sa = m * k, sb = k * n;
        for (size_t i = nb; i-- > 0;) {
            int64_t da = i < nb - arank ? 1 : a->dims[i - (nb - arank)];
            int64_t db = i < nb - brank ? 1 : b->dims[i - (nb - brank)];
            if (da != db && da != 1 && db != 1)
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": batch dimensions do not broadcast (%lld vs %lld)",
                                BNF_NODE_ARG(ctx), (long long)da, (long long)db);
            abat[i] = da;
            bbat[i] = db;
            bat[i] = da == 1 ? db : da;
            astr[i] = da == 1 ? 0 : sa;
            bstr[i] = db == 1 ? 0 : sb;
            sa *= (size_t)da;
            sb *= (size_t)db;
        }
    }
    for (size_t i = 0; i < nb; i++) {
        ydims[yr++] = bat[i];
        batches *= (size_t)bat[i];
    }
    if (a->rank > 1)
        ydims[yr++] = (int64_t)m;
    if (b->rank > 1)
        ydims[yr++] = (int64_t)n;
    if ((rc = bnf_out(ctx, 0, a->dtype, ydims, yr, &y)))
        return rc;
    if (y->n == 0)
        return BNF_OK;
    if (a->dtype == BNF_T_FLOAT && k == 0) {
        memset(y->data, 0, y->n * sizeof(float));
        return BNF_OK;
    }
    if (a->dtype == BNF_T_FLOAT) {
        int b_single = 1; /* B has no batch: A's batches stack into one tall GEMM */
        for (size_t i = 0; i < nb; i++)
            if (bbat[i] != 1 || abat[i] != bat[i])
                b_single = 0;
        if (b_single) {
            if (!bnf_blas_ok(batches * m) || !bnf_blas_ok(n) || !bnf_blas_ok(k))
                goto too_large;
            bnf_sgemm_par(ctx, 0, 0, batches * m, n, k, 1.0f, a->data, k, b->data, n, 0.0f,
                          y->data, n);
            return BNF_OK;
        }
        if (!bnf_blas_ok(m) || !bnf_blas_ok(n) || !bnf_blas_ok(k))
            goto too_large;
    }
    {
        /* one GEMM per batch: float through OpenBLAS, the other types generic */
        int64_t idx[BNF_MAX_RANK] = {0};
        for (size_t t = 0; t < batches; t++) {
            size_t ao = 0, bo = 0;
            for (size_t i = 0; i < nb; i++) {
                ao += (size_t)idx[i] * astr[i];
                bo += (size_t)idx[i] * bstr[i];
            }
            if (a->dtype == BNF_T_FLOAT)
                bnf_sgemm_par(ctx, 0, 0, m, n, k, 1.0f, (const float *)a->data + ao, k,
                              (const float *)b->data + bo, n, 0.0f, (float *)y->data + t * m * n,
                              n);
            else
                gemm_generic(a, ao, k, 1, b, bo, n, 1, y, t * m * n, m, n, k, 1.0);
            for (size_t i = nb; i-- > 0;) {
                if (++idx[i] < bat[i])
                    break;
                idx[i] = 0;
            }
        }
    }
    return BNF_OK;
too_large:
    return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": the matrices are too large",
                    BNF_NODE_ARG(ctx));
}

const bnf_op_def bnf_ops_gemm[] = {
    {"Gemm", 1, op_gemm},
    {"MatMul", 1, op_matmul},
    {NULL, 0, NULL},
};

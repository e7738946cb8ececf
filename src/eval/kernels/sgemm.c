/*
 * eval/kernels/sgemm.c: float GEMM through OpenBLAS (Gemm, MatMul,
 * ConvTranspose, and Conv on a CPU without AVX2): bnf_sgemm on the calling
 * thread, a matrix-vector product when A has one row or B one column (OpenBLAS
 * would pack the other operand first); bnf_sgemm_par cut along the longer
 * side of C in multiples of 16 over the session's threads.  OpenBLAS itself
 * runs on one thread (the session sets it).
 */
#include "../eval.h"

#include <cblas.h>

void bnf_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (n == 1 && m > 1 && k > 0) {
        /* one column (a 1x1 Conv on a 1x1 map): y = op(A) b */
        blasint inc = trans_b ? 1 : (blasint)ldb;
        if (trans_a)
            cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)k, (blasint)m, alpha, a,
                        (blasint)lda, b, inc, beta, c, (blasint)ldc);
        else
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)m, (blasint)k, alpha, a,
                        (blasint)lda, b, inc, beta, c, (blasint)ldc);
        return;
    }
    if (m == 1 && k > 0) {
        /* one row (a classifier on one image): a matrix-vector product, which
         * OpenBLAS runs at memory speed where sgemm would pack B first */
        blasint inc = trans_a ? (blasint)lda : 1;
        if (trans_b)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)k, alpha, b,
                        (blasint)ldb, a, inc, beta, c, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)k, (blasint)n, alpha, b,
                        (blasint)ldb, a, inc, beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, alpha, a,
                (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

typedef struct {
    int ta, tb;
    size_t m, n, k, lda, ldb, ldc, blk;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int by_rows;
} sgemm_job;

static void sgemm_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const sgemm_job *j = arg;
    (void)tid;
    for (size_t p = lo; p < hi; p++) {
        size_t x0 = p * j->blk, x1 = x0 + j->blk;
        if (j->by_rows) {
            x1 = x1 < j->m ? x1 : j->m;
            if (x0 < x1)
                bnf_sgemm(j->ta, j->tb, x1 - x0, j->n, j->k, j->alpha,
                          j->a + (j->ta ? x0 : x0 * j->lda), j->lda, j->b, j->ldb, j->beta,
                          j->c + x0 * j->ldc, j->ldc);
        } else {
            x1 = x1 < j->n ? x1 : j->n;
            if (x0 < x1)
                bnf_sgemm(j->ta, j->tb, j->m, x1 - x0, j->k, j->alpha, j->a, j->lda,
                          j->b + (j->tb ? x0 * j->ldb : x0), j->ldb, j->beta, j->c + x0, j->ldc);
        }
    }
}

void bnf_sgemm_par(const bnf_op_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                   float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                   float beta, float *c, size_t ldc)
{
    size_t big = m > n ? m : n, work = m * n, nt;
    sgemm_job j;
    work = k && work > SIZE_MAX / k ? SIZE_MAX : work * k;
    nt = bnf_par_threads(ctx, big, work / 8);
    if (nt <= 1) {
        bnf_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* cut the longer side, in multiples of 16 */
    j = (sgemm_job){trans_a != 0, trans_b != 0, m, n, k, lda, ldb, ldc, 0, alpha, beta, a, b, c,
                    m > n};
    j.blk = ((big + nt - 1) / nt + 15) / 16 * 16;
    bnf_parallel(ctx, nt, (big + j.blk - 1) / j.blk, sgemm_range, &j);
}

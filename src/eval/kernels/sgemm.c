/*
 * eval/kernels/sgemm.c: float GEMM through OpenBLAS (Gemm, MatMul,
 * ConvTranspose, and Conv on a CPU without AVX2): bnf_sgemm on the calling
 * thread, a matrix-vector product when A has one row or B one column (OpenBLAS
 * would pack the other operand first); bnf_sgemm_par cut along the longer
 * side of C in multiples of 16 over the session's threads.
 *
 * OpenBLAS is loaded (dlopen) when the first evaluation needs it, not when the
 * process starts: inspect, check and an unverified fold never pay for it
 * (about 4 ms of relocations per process), and it is told to keep to one
 * thread before it loads, as only the environment can tell it: the evaluator
 * shares GEMMs out over threads of its own, and OpenBLAS's own would each spin
 * for about 0.1 s after it loads.  Without OpenBLAS (not installed, or a
 * size beyond its int) a plain C GEMM computes the same products, slower.
 */
#include "../eval.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint,
                         blasint, blasint, float, const float *, blasint, const float *, blasint,
                         float, float *, blasint);
typedef void (*sgemv_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, blasint, blasint, float,
                         const float *, blasint, const float *, blasint, float, float *, blasint);
typedef void (*threads_fn)(int);

static struct {
    sgemm_fn sgemm;
    sgemv_fn sgemv;
    threads_fn set_threads;
} blas;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_open(void)
{
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
    void *h = NULL;
    setenv("OPENBLAS_NUM_THREADS", "1", 0); /* 0: a value the environment gives stays */
    for (size_t i = 0; i < sizeof names / sizeof *names && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    /* a function pointer from dlsym's object pointer: POSIX guarantees it */
    *(void **)&blas.sgemm = dlsym(h, "cblas_sgemm");
    *(void **)&blas.sgemv = dlsym(h, "cblas_sgemv");
    *(void **)&blas.set_threads = dlsym(h, "openblas_set_num_threads");
    if (!blas.sgemm || !blas.sgemv) {
        blas.sgemm = NULL;
        blas.sgemv = NULL;
    }
}

void bnf_blas_load(void)
{
    pthread_once(&blas_once, blas_open);
    /* the kernels share GEMMs out over the session's threads themselves (a
     * host process may have loaded OpenBLAS with more before us) */
    if (blas.set_threads)
        blas.set_threads(1);
}

int bnf_blas_loaded(void)
{
    pthread_once(&blas_once, blas_open);
    return blas.sgemm != NULL;
}

/* op(A)[i][p] and op(B)[p][j] of row-major A and B */
#define AT(i, p) (trans_a ? a[(p) * lda + (i)] : a[(i) * lda + (p)])
#define BT(p, j) (trans_b ? b[(j) * ldb + (p)] : b[(p) * ldb + (j)])

/* The plain GEMM: each C[i][j] summed in float over p, as the reference
 * formula says; beta 0 sets C whatever it held. */
void bnf_sgemm_plain(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                     const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                     size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float sum = 0;
            for (size_t p = 0; p < k; p++)
                sum += AT(i, p) * BT(p, j);
            c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
        }
}
#undef AT
#undef BT

void bnf_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (!bnf_blas_loaded() || !bnf_blas_ok(m) || !bnf_blas_ok(n) || !bnf_blas_ok(k) ||
        !bnf_blas_ok(lda) || !bnf_blas_ok(ldb) || !bnf_blas_ok(ldc)) {
        bnf_sgemm_plain(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (n == 1 && m > 1 && k > 0) {
        /* one column (a 1x1 Conv on a 1x1 map): y = op(A) b */
        blasint inc = trans_b ? 1 : (blasint)ldb;
        if (trans_a)
            blas.sgemv(CblasRowMajor, CblasTrans, (blasint)k, (blasint)m, alpha, a,
                       (blasint)lda, b, inc, beta, c, (blasint)ldc);
        else
            blas.sgemv(CblasRowMajor, CblasNoTrans, (blasint)m, (blasint)k, alpha, a,
                       (blasint)lda, b, inc, beta, c, (blasint)ldc);
        return;
    }
    if (m == 1 && k > 0) {
        /* one row (a classifier on one image): a matrix-vector product, which
         * OpenBLAS runs at memory speed where sgemm would pack B first */
        blasint inc = trans_a ? (blasint)lda : 1;
        if (trans_b)
            blas.sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)k, alpha, b,
                       (blasint)ldb, a, inc, beta, c, 1);
        else
            blas.sgemv(CblasRowMajor, CblasTrans, (blasint)k, (blasint)n, alpha, b,
                       (blasint)ldb, a, inc, beta, c, 1);
        return;
    }
    blas.sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
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

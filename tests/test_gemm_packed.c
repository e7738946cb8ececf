/* test_gemm_packed.c: the packed-weight GEMM of the convolutions
 * (eval/kernels/gemm_packed.c), and bnf_sgemm with and without OpenBLAS
 * (eval/kernels/sgemm.c), against a plain double-precision product, over shapes
 * that exercise every edge: partial row panels (M not a multiple of 6),
 * narrow last column panels (N mod 16 of 1..15: the 4-, 8- and 16-wide
 * tiles), K across the K blocks, N across the column blocks and the narrow
 * (N <= 64) path, row ranges that start inside the matrix, a B with a row
 * stride larger than N, and the Inf / NaN a product must keep. */
#include "testutil.h"

static uint64_t rng = 88172645463325252u;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* C[r0..r1) of A (m x k) x B (k x n, stride ldb) by bnf_packed_gemm, with
 * scratch for sn >= n columns (exactly that: the sanitizers see an overrun), each
 * element within 1e-5 of the double sum relative to sum |a||b|; the rows
 * outside [r0, r1) untouched. */
static void check(size_t m, size_t k, size_t n, size_t r0, size_t r1, size_t ldb, size_t sn)
{
    float *a = malloc((m * k + 1) * sizeof *a), *b = malloc((k * ldb + 1) * sizeof *b);
    float *c = malloc((m * n + 1) * sizeof *c);
    float *scratch = malloc(bnf_packed_scratch(k, sn) * sizeof *scratch);
    bnf_packed *pk;
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(scratch);
    for (size_t i = 0; i < m * k; i++)
        a[i] = frand();
    for (size_t i = 0; i < k * ldb; i++)
        b[i] = frand();
    for (size_t i = 0; i < m * n; i++)
        c[i] = 12345.0f;
    pk = bnf_packed_new(a, m, k, k);
    assert_non_null(pk);
    bnf_packed_gemm(pk, r0, r1, b, ldb, n, c + 0, n, scratch);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double want = 0, mag = 0;
            float got = c[i * n + j];
            if (i < r0 || i >= r1) {
                if (got != 12345.0f)
                    fail_msg("%zux%zux%zu rows [%zu, %zu): row %zu written", m, k, n, r0, r1, i);
                continue;
            }
            for (size_t t = 0; t < k; t++) {
                want += (double)a[i * k + t] * b[t * ldb + j];
                mag += fabs((double)a[i * k + t] * b[t * ldb + j]);
            }
            if (fabs(got - want) > 1e-5 * mag + 1e-30)
                fail_msg("%zux%zux%zu (ldb %zu) C[%zu][%zu] = %.9g, expected %.9g", m, k, n, ldb,
                         i, j, got, want);
        }
    bnf_packed_free(pk);
    free(a);
    free(b);
    free(c);
    free(scratch);
}

/* Rows per panel of the kernel set packs use now. */
static size_t current_mr(void)
{
    float a[1] = {0};
    bnf_packed *pk = bnf_packed_new(a, 1, 1, 1);
    size_t mr;
    assert_non_null(pk);
    mr = bnf_packed_mr(pk);
    bnf_packed_free(pk);
    return mr;
}

static void test_shapes(void **state)
{
    static const size_t shapes[][3] = {
        {1, 1, 1},     {6, 1, 16},    {7, 3, 17},     {16, 32, 49},   {12, 5, 4},
        {13, 9, 8},    {5, 7, 5},     {24, 100, 33},  {30, 257, 64},  {11, 300, 65},
        {18, 513, 3},  {64, 40, 200}, {8, 16, 530},   {7, 600, 1100}, {200, 20, 9},
        {96, 16, 785}, {6, 4097, 10}, {1, 2, 2000},   {37, 70, 127},  {48, 1, 515},
        {16, 2304, 56},
    };
    (void)state;
    for (int isa = BNF_ISA_AVX512; isa >= BNF_ISA_BASE; isa--) /* every set the CPU has, then C */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t m = shapes[i][0], k = shapes[i][1], n = shapes[i][2], mr;
        bnf_packed_force_isa(isa);
        mr = current_mr();
        check(m, k, n, 0, m, n, n);
        check(m, k, n, 0, m, n + 7, n); /* B inside a wider matrix (an im2col block) */
        /* the last, narrower block of a caller that sized the scratch for its
         * widest (vgg11_bn's 3x3 convolutions overran it once) */
        check(m, k, n, 0, m, n, n + 300);
        if (m > mr) /* a thread's rows: from a panel boundary */
            check(m, k, n, mr, m, n, n);
        if (m > 2 * mr)
            check(m, k, n, 0, 2 * mr, n, n);
    }
    bnf_packed_force_isa(-1);
}

static void test_non_finite(void **state)
{
    /* a NaN or Inf in A or B reaches the C elements it feeds, and only those */
    size_t m = 7, k = 300, n = 20;
    float a[7 * 300], b[300 * 20], c[7 * 20], *scratch;
    bnf_packed *pk;
    (void)state;
    for (size_t i = 0; i < m * k; i++)
        a[i] = 0.5f;
    for (size_t i = 0; i < k * n; i++)
        b[i] = 0.25f;
    a[3 * k + 299] = NAN;      /* row 3, the last K block */
    b[17 * n + 18] = INFINITY; /* column 18 */
    scratch = malloc(bnf_packed_scratch(k, n) * sizeof *scratch);
    assert_non_null(scratch);
    pk = bnf_packed_new(a, m, k, k);
    assert_non_null(pk);
    bnf_packed_gemm(pk, 0, m, b, n, n, c, n, scratch);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float v = c[i * n + j];
            if (i == 3)
                assert_true(isnan(v));
            else if (j == 18)
                assert_true(isinf(v) && v > 0);
            else
                assert_float_equal(v, 0.125f * 300, 1e-3);
        }
    bnf_packed_free(pk);
    free(scratch);
}

/* bnf_sgemm (OpenBLAS, loaded on first use) and bnf_sgemm_plain (the C
 * product it falls back on without OpenBLAS) against the double sum, for
 * both transposes, alpha, beta (0: C's old NaN forgotten), strides larger
 * than the rows, and the one-row / one-column shapes that go to sgemv. */
static void test_sgemm_both_ways(void **state)
{
    static const size_t shapes[][3] = {{5, 7, 3}, {1, 9, 6}, {8, 4, 1}, {1, 1, 1}, {17, 33, 20}};
    (void)state;
    assert_true(bnf_blas_loaded()); /* Debian's libopenblas0 is a dependency */
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int way = 0; way < 2; way++)
                    for (int bz = 0; bz < 2; bz++) {
                        size_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
                        size_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3, ldc = n + 1;
                        float alpha = 0.75f, beta = bz ? 0.0f : -0.5f;
                        float *a = malloc((ta ? k : m) * lda * sizeof *a);
                        float *b = malloc((tb ? n : k) * ldb * sizeof *b);
                        float *c = malloc(m * ldc * sizeof *c), *c0 = malloc(m * ldc * sizeof *c0);
                        assert_true(a && b && c && c0);
                        for (size_t i = 0; i < (ta ? k : m) * lda; i++)
                            a[i] = frand();
                        for (size_t i = 0; i < (tb ? n : k) * ldb; i++)
                            b[i] = frand();
                        for (size_t i = 0; i < m * ldc; i++)
                            c0[i] = c[i] = bz ? NAN : frand();
                        (way ? bnf_sgemm_plain : bnf_sgemm)(ta, tb, m, n, k, alpha, a, lda, b, ldb,
                                                            beta, c, ldc);
                        for (size_t i = 0; i < m; i++)
                            for (size_t j = 0; j < n; j++) {
                                double want = 0, mag = 0;
                                for (size_t p = 0; p < k; p++) {
                                    double x = (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                                               (tb ? b[j * ldb + p] : b[p * ldb + j]);
                                    want += x;
                                    mag += fabs(x);
                                }
                                want = alpha * want + (bz ? 0 : beta * (double)c0[i * ldc + j]);
                                if (!(fabs(c[i * ldc + j] - want) <= 1e-5 * (mag + 1)))
                                    fail_msg("%s %zux%zux%zu ta %d tb %d beta %g: C[%zu][%zu] = "
                                             "%.9g, expected %.9g", way ? "plain" : "openblas",
                                             m, k, n, ta, tb, beta, i, j, c[i * ldc + j], want);
                            }
                        free(a);
                        free(b);
                        free(c);
                        free(c0);
                    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_non_finite),
        cmocka_unit_test(test_sgemm_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

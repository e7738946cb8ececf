/*
 * eval/kernels/within.c: the screen of the checks' element comparison
 * (verify/tolerance.c) for two float32 arrays, vectorised: AVX-512F (8 doubles
 * a vector), AVX2 (4), plain C, picked at run time (bnf_cpu_isa).
 *
 * One pass finds max|a| over the elements where neither side is NaN and a is
 * finite; a second decides every element with the arithmetic of the exact
 * comparison, in double: b == a (equal infinities included), or
 * |b - a| <= atol_rel * max|a| + rtol * |a|.  It also finds max |b - a| over
 * the elements that are not equal.  Only "every element passes" is answered
 * here: when one does not (or is NaN), the caller compares the slow way, which
 * also says which element is the worst.
 */
#include "../eval.h"

#include <float.h>
#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* ---- plain C ------------------------------------------------------------------- */

static float max_abs_base(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float w = fabsf(a[i]);
        if (w <= FLT_MAX && b[i] == b[i] && w > m)
            m = w;
    }
    return m;
}

static int within_base(const float *a, const float *b, size_t n, double rtol, double atol,
                       double *max_abs)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double x = b[i], y = a[i], d;
        if (x == y)
            continue;
        d = fabs(x - y);
        if (!(d <= atol + rtol * fabs(y)))
            return 0;
        if (d > worst)
            worst = d;
    }
    *max_abs = worst;
    return 1;
}

#ifdef HAVE_X86

/* ---- AVX2 ---------------------------------------------------------------------- */

#define AVX2_FN __attribute__((target("avx2")))

AVX2_FN static float max_abs_avx2(const float *a, const float *b, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
    __m256 m = _mm256_setzero_ps();
    size_t i = 0;
    float r = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 w = _mm256_andnot_ps(sign, _mm256_loadu_ps(a + i));
        __m256 vb = _mm256_loadu_ps(b + i);
        /* w finite (a not NaN, not infinite) and b not NaN */
        __m256 keep = _mm256_and_ps(_mm256_cmp_ps(w, big, _CMP_LE_OQ),
                                    _mm256_cmp_ps(vb, vb, _CMP_EQ_OQ));
        m = _mm256_max_ps(m, _mm256_and_ps(w, keep));
    }
    {
        float lanes[8];
        _mm256_storeu_ps(lanes, m);
        for (int j = 0; j < 8; j++)
            r = lanes[j] > r ? lanes[j] : r;
    }
    {
        float t = max_abs_base(a + i, b + i, n - i);
        return t > r ? t : r;
    }
}

AVX2_FN static int within_avx2(const float *a, const float *b, size_t n, double rtol,
                               double atol, double *max_abs)
{
    const __m256d sign = _mm256_set1_pd(-0.0), vr = _mm256_set1_pd(rtol),
                  va = _mm256_set1_pd(atol);
    __m256d worst = _mm256_setzero_pd();
    size_t i = 0;
    double w = 0, tail = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(b + i));
        __m256d y = _mm256_cvtps_pd(_mm_loadu_ps(a + i));
        __m256d eq = _mm256_cmp_pd(x, y, _CMP_EQ_OQ);
        __m256d d = _mm256_andnot_pd(sign, _mm256_sub_pd(x, y));
        __m256d lim = _mm256_add_pd(va, _mm256_mul_pd(vr, _mm256_andnot_pd(sign, y)));
        __m256d ok = _mm256_or_pd(eq, _mm256_cmp_pd(d, lim, _CMP_LE_OQ));
        if (_mm256_movemask_pd(ok) != 0xF)
            return 0;
        worst = _mm256_max_pd(worst, _mm256_andnot_pd(eq, d));
    }
    {
        double lanes[4];
        _mm256_storeu_pd(lanes, worst);
        for (int j = 0; j < 4; j++)
            w = lanes[j] > w ? lanes[j] : w;
    }
    if (!within_base(a + i, b + i, n - i, rtol, atol, &tail))
        return 0;
    *max_abs = tail > w ? tail : w;
    return 1;
}

/* ---- AVX-512F ------------------------------------------------------------------ */

#define AVX512_FN __attribute__((target("avx512f,avx2")))

AVX512_FN static float max_abs_avx512(const float *a, const float *b, size_t n)
{
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    __m512 m = _mm512_setzero_ps();
    size_t i = 0;
    float r, t;
    for (; i + 16 <= n; i += 16) {
        __m512 w = _mm512_abs_ps(_mm512_loadu_ps(a + i));
        __m512 vb = _mm512_loadu_ps(b + i);
        __mmask16 keep = _mm512_cmp_ps_mask(w, big, _CMP_LE_OQ) &
                         _mm512_cmp_ps_mask(vb, vb, _CMP_EQ_OQ);
        m = _mm512_mask_max_ps(m, keep, m, w);
    }
    r = _mm512_reduce_max_ps(m);
    t = max_abs_base(a + i, b + i, n - i);
    return t > r ? t : r;
}

AVX512_FN static int within_avx512(const float *a, const float *b, size_t n, double rtol,
                                   double atol, double *max_abs)
{
    const __m512d vr = _mm512_set1_pd(rtol), va = _mm512_set1_pd(atol);
    __m512d worst = _mm512_setzero_pd();
    size_t i = 0;
    double w, tail = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(b + i));
        __m512d y = _mm512_cvtps_pd(_mm256_loadu_ps(a + i));
        __mmask8 eq = _mm512_cmp_pd_mask(x, y, _CMP_EQ_OQ);
        __m512d d = _mm512_abs_pd(_mm512_sub_pd(x, y));
        __m512d lim = _mm512_add_pd(va, _mm512_mul_pd(vr, _mm512_abs_pd(y)));
        __mmask8 ok = eq | _mm512_cmp_pd_mask(d, lim, _CMP_LE_OQ);
        if (ok != 0xFF)
            return 0;
        worst = _mm512_mask_max_pd(worst, (__mmask8)~eq, worst, d);
    }
    w = _mm512_reduce_max_pd(worst);
    if (!within_base(a + i, b + i, n - i, rtol, atol, &tail))
        return 0;
    *max_abs = tail > w ? tail : w;
    return 1;
}

#endif /* HAVE_X86 */

int bnf_f32_within(const float *a, const float *b, size_t n, double rtol, double atol_rel,
                   double *max_want, double *max_abs)
{
    int isa = bnf_cpu_isa();
    float m;
    *max_abs = 0;
#ifdef HAVE_X86
    m = isa >= BNF_ISA_AVX512 ? max_abs_avx512(a, b, n)
        : isa >= BNF_ISA_AVX2 ? max_abs_avx2(a, b, n)
                              : max_abs_base(a, b, n);
    *max_want = m;
    if (isa >= BNF_ISA_AVX512)
        return within_avx512(a, b, n, rtol, atol_rel * *max_want, max_abs);
    if (isa >= BNF_ISA_AVX2)
        return within_avx2(a, b, n, rtol, atol_rel * *max_want, max_abs);
#else
    (void)isa;
    m = max_abs_base(a, b, n);
    *max_want = m;
#endif
    return within_base(a, b, n, rtol, atol_rel * *max_want, max_abs);
}

/*
 * eval/kernels/depthwise.c: depthwise convolution (one input channel per
 * group, mg outputs each) of 1-D and 2-D float planes, without a GEMM; the
 * planes are shared out over the session's threads, and the nodes the session
 * fused after the Conv (bnf_epilogue) are applied to each output plane right
 * after it is computed.
 *
 * Three paths, picked per Conv:
 *  - with AVX2 + FMA, square 3x3 and 5x5 kernels with stride 1 or 2 on small
 *    planes (up to DW8_MAX_PLANE elements) run 8 channels at a time, one per
 *    lane (interleaved by 8x8 transposes);
 *  - with AVX2 + FMA, the same kernels with "same" padding on larger planes
 *    run direct loops over rows of the plane (padded rows kept in a small
 *    ring, even and odd columns split for stride 2);
 *  - any other plane is split into its polyphase components so that every
 *    kernel tap is a stride-1 read, then one SIMD loop runs over the whole
 *    plane (AVX2 + FMA when the CPU has them, else 4-lane vectors).
 * A plane whose polyphase layout would be much larger than its input and
 * output (huge dilations or padding) is declined: the caller uses im2col.
 */
#include "../eval.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DW_AVX2 1 /* an AVX2 + FMA depthwise loop, used when the CPU has them */
#endif

/*
 * A depthwise plane is first split into its sh x sw polyphase components: the
 * zero-padded plane P (hp x wp) becomes sub-planes S[a][b] (hq x wq) with
 * S[a][b][r][c] = P[r sh + a][c sw + b].  Output (oh, ow), kernel tap (kh, kw)
 * reads P[oh sh + kh dh][ow sw + kw dw] = S[a][b][oh + kh dh / sh][ow + kw dw / sw]
 * with a = kh dh % sh, b = kw dw % sw: a stride-1 read.  Over the sub-planes
 * laid end to end, output i = oh * wq + ow is then sum_t k[t] src[i + off[t]],
 * one long vectorised run over the whole plane (dw_flat); the wq - ow extra
 * columns of each row are computed too and dropped.  With stride 1 and no
 * padding the input plane is read in place.
 */
typedef void (*dw_flat_fn)(const float *x, const float *k, const int64_t *off, size_t taps,
                           float bias, float *y, size_t n);

/* y (oh x ow) = bias + x (h x w) convolved with k (K x K, K odd), stride 1
 * or 2, padding (K - 1) / 2 at the start (and zeros past the end); ring:
 * DW_RING(K, w) floats of scratch, all zero before the first plane of a Conv
 * (the kernels keep their padding zero). */
typedef void (*dw_same_fn)(const float *x, int64_t h, int64_t w, int64_t oh, int64_t ow,
                           const float *k, float bias, float *y, float *ring);
#define DW_RING(K, w) ((size_t)((K) + 1) * (size_t)((w) + 2 * (K) + 24))

typedef struct {
    bnf_plane p;     /* hp, wp: the zero-padded plane */
    int64_t hq, wq;  /* each polyphase sub-plane */
    int copy;        /* the plane is laid out in scratch (else read in place) */
    dw_flat_fn flat;
    dw_same_fn same; /* a direct kernel for this shape, or NULL */
} dw_geom;

/* y[i] = bias + sum_t k[t] x[i + off[t]] for i in [0, n). */
static void dw_flat(const float *x, const float *k, const int64_t *off, size_t taps, float bias,
                    float *y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        bnf_v4f a0 = {bias, bias, bias, bias}, a1 = a0, a2 = a0, a3 = a0;
        for (size_t t = 0; t < taps; t++) {
            const float *p = x + i + off[t];
            float wv = k[t];
            a0 += wv * bnf_ld4(p);
            a1 += wv * bnf_ld4(p + 4);
            a2 += wv * bnf_ld4(p + 8);
            a3 += wv * bnf_ld4(p + 12);
        }
        bnf_st4(y + i, a0);
        bnf_st4(y + i + 4, a1);
        bnf_st4(y + i + 8, a2);
        bnf_st4(y + i + 12, a3);
    }
    for (; i + 4 <= n; i += 4) {
        bnf_v4f a0 = {bias, bias, bias, bias}, a1 = {0, 0, 0, 0};
        size_t t = 0;
        for (; t + 2 <= taps; t += 2) {
            a0 += k[t] * bnf_ld4(x + i + off[t]);
            a1 += k[t + 1] * bnf_ld4(x + i + off[t + 1]);
        }
        if (t < taps)
            a0 += k[t] * bnf_ld4(x + i + off[t]);
        bnf_st4(y + i, a0 + a1);
    }
    for (; i < n; i++) {
        float acc = bias;
        for (size_t t = 0; t < taps; t++)
            acc += k[t] * x[i + off[t]];
        y[i] = acc;
    }
}

#ifdef DW_AVX2
/* dw_flat with AVX2 and FMA, 8 lanes; picked at run time when the CPU has them. */
__attribute__((target("avx2,fma"))) static void dw_flat_avx2(const float *x, const float *k,
                                                             const int64_t *off, size_t taps,
                                                             float bias, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 a0 = _mm256_set1_ps(bias), a1 = a0, a2 = a0, a3 = a0;
        for (size_t t = 0; t < taps; t++) {
            const float *p = x + i + off[t];
            __m256 wv = _mm256_set1_ps(k[t]);
            a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p), a0);
            a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 8), a1);
            a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 16), a2);
            a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 24), a3);
        }
        _mm256_storeu_ps(y + i, a0);
        _mm256_storeu_ps(y + i + 8, a1);
        _mm256_storeu_ps(y + i + 16, a2);
        _mm256_storeu_ps(y + i + 24, a3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 a0 = _mm256_set1_ps(bias), a1 = _mm256_setzero_ps();
        size_t t = 0;
        for (; t + 2 <= taps; t += 2) {
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(k[t]), _mm256_loadu_ps(x + i + off[t]), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(k[t + 1]), _mm256_loadu_ps(x + i + off[t + 1]),
                                 a1);
        }
        if (t < taps)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(k[t]), _mm256_loadu_ps(x + i + off[t]), a0);
        _mm256_storeu_ps(y + i, _mm256_add_ps(a0, a1));
    }
    if (i < n) /* the rest, 4 lanes (the sum only depends on x from i on) */
        dw_flat(x + i, k, off, taps, bias, y + i, n - i);
}
#endif

#ifdef DW_AVX2
/* The head of a direct kernel (a dw_same_fn) with AVX2 + FMA. */
#define DW_DIRECT(NAME)                                                                      \
    __attribute__((target("avx2,fma"))) static void NAME(                                   \
        const float *x, int64_t h, int64_t w, int64_t oh_n, int64_t ow_n, const float *k,    \
        float bias, float *y, float *ring)

/* The direct kernels' output row yr[0, n), 8 at a time: bias plus the sum over
 * the K x K taps of kv[tap] x the 8 values from SRC + ow (SRC an expression
 * of the tap's row r and column c), in two partial sums; the last partial
 * vector through a small buffer. */
#define DW_ROW(K, SRC, n)                                                                    \
    for (int64_t ow = 0; ow < (n); ow += 8) {                                                \
        __m256 a0 = _mm256_set1_ps(bias), a1 = _mm256_setzero_ps();                          \
        _Pragma("GCC unroll 8")                                                              \
        for (int r = 0; r < K; r++)                                                          \
            _Pragma("GCC unroll 8")                                                          \
            for (int c = 0; c < K; c++) {                                                    \
                __m256 v = _mm256_loadu_ps(SRC + ow);                                        \
                if ((r * K + c) & 1)                                                         \
                    a1 = _mm256_fmadd_ps(kv[r * K + c], v, a1);                              \
                else                                                                         \
                    a0 = _mm256_fmadd_ps(kv[r * K + c], v, a0);                              \
            }                                                                                \
        a0 = _mm256_add_ps(a0, a1);                                                          \
        if (ow + 8 <= (n)) {                                                                 \
            _mm256_storeu_ps(yr + ow, a0);                                                   \
        } else {                                                                             \
            float buf[8];                                                                    \
            _mm256_storeu_ps(buf, a0);                                                       \
            memcpy(yr + ow, buf, (size_t)((n) - ow) * sizeof *buf);                          \
        }                                                                                    \
    }

/*
 * The direct "same" kernels.  Each input row is copied once into a ring of K
 * zero-padded rows (P zeros on the left, at least P + 8 on the right; rows
 * outside the plane are a row of zeros), then every output row runs 8 lanes
 * at a time over the whole row with the K * K weights in registers, the last
 * partial vector through a small buffer.  No per-plane layout, no border
 * special cases.
 */
#define DW_SAME(NAME, K)                                                                     \
    DW_DIRECT(NAME)                                                                          \
    {                                                                                        \
        enum { P = (K - 1) / 2 };                                                            \
        const int64_t len = w + 2 * P + 8;                                                   \
        (void)oh_n;                                                                          \
        (void)ow_n;                                                                          \
        const float *zero = ring + K * len;                                                  \
        __m256 kv[K * K];                                                                    \
        for (int t = 0; t < K * K; t++)                                                      \
            kv[t] = _mm256_set1_ps(k[t]);                                                    \
        for (int64_t ih = 0; ih < P && ih < h; ih++)                                         \
            memcpy(ring + (ih % K) * len + P, x + ih * w, (size_t)w * sizeof *x);            \
        for (int64_t oh = 0; oh < h; oh++) {                                                 \
            const float *row[K];                                                             \
            float *yr = y + oh * w;                                                          \
            if (oh + P < h)                                                                  \
                memcpy(ring + ((oh + P) % K) * len + P, x + (oh + P) * w,                    \
                       (size_t)w * sizeof *x);                                               \
            for (int r = 0; r < K; r++) {                                                    \
                int64_t ih = oh + r - P;                                                     \
                row[r] = ih >= 0 && ih < h ? ring + (ih % K) * len : zero;                   \
            }                                                                                \
            DW_ROW(K, row[r] + c, w);                                                        \
        }                                                                                    \
    }
DW_SAME(dw_same3_avx2, 3)
DW_SAME(dw_same5_avx2, 5)
#endif

static dw_flat_fn pick_dw_flat(void)
{
#ifdef DW_AVX2
    if (bnf_cpu_isa() >= BNF_ISA_AVX2)
        return dw_flat_avx2;
#endif
    return dw_flat;
}

/* Per-thread scratch (the laid-out plane, the flat output) and the shared
 * tap offsets. */
typedef struct {
    float *plane, *flat;
    const int64_t *off;
} dw_scratch;

/* The even elements of src[0, n) into ev, the odd ones into od. */
static void deinterleave(const float *src, float *ev, float *od, int64_t n)
{
    int64_t j = 0;
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    for (; 2 * j + 8 <= n; j += 4) {
        bnf_v4f a = bnf_ld4(src + 2 * j), b = bnf_ld4(src + 2 * j + 4);
        bnf_st4(ev + j, __builtin_shufflevector(a, b, 0, 2, 4, 6));
        bnf_st4(od + j, __builtin_shufflevector(a, b, 1, 3, 5, 7));
    }
#endif
    for (; 2 * j + 1 < n; j++) {
        ev[j] = src[2 * j];
        od[j] = src[2 * j + 1];
    }
    if (2 * j < n)
        ev[j] = src[2 * j];
}

#ifdef DW_AVX2
/*
 * Stride 2: each input row, zero-padded, is split into its even and odd
 * columns E and O once (a ring of K rows keyed by row number), so that tap c
 * of output column j reads E[j + c / 2] (c even) or O[j + c / 2] (c odd):
 * contiguous loads again, 8 outputs at a time.
 */
#define DW_S2(NAME, K)                                                                       \
    DW_DIRECT(NAME)                                                                          \
    {                                                                                        \
        enum { P = (K - 1) / 2 };                                                            \
        const int64_t half = w / 2 + K + 9; /* E or O of one row */                          \
        const float *zero = ring + (size_t)K * 2 * half;                                     \
        int64_t slot_row[K];                                                                 \
        __m256 kv[K * K];                                                                    \
        for (int t = 0; t < K * K; t++)                                                      \
            kv[t] = _mm256_set1_ps(k[t]);                                                    \
        for (int t = 0; t < K; t++)                                                          \
            slot_row[t] = -1;                                                                \
        for (int64_t oh = 0; oh < oh_n; oh++) {                                              \
            const float *e[K], *o[K];                                                        \
            float *yr = y + oh * ow_n;                                                       \
            for (int r = 0; r < K; r++) {                                                    \
                int64_t ih = 2 * oh + r - P;                                                 \
                float *se, *so;                                                              \
                if (ih < 0 || ih >= h) {                                                     \
                    e[r] = o[r] = zero;                                                      \
                    continue;                                                                \
                }                                                                            \
                se = ring + (size_t)(ih % K) * 2 * half;                                     \
                so = se + half;                                                              \
                if (slot_row[ih % K] != ih) {                                                \
                    /* padded column i + P: even ones to E, odd ones to O */                 \
                    if (P % 2 == 0)                                                          \
                        deinterleave(x + ih * w, se + P / 2, so + P / 2, w);                 \
                    else                                                                     \
                        deinterleave(x + ih * w, so + (P - 1) / 2, se + (P + 1) / 2, w);     \
                    slot_row[ih % K] = ih;                                                   \
                }                                                                            \
                e[r] = se;                                                                   \
                o[r] = so;                                                                   \
            }                                                                                \
            DW_ROW(K, (c % 2 ? o[r] : e[r]) + c / 2, ow_n);                                 \
        }                                                                                    \
    }
DW_S2(dw_s2k3_avx2, 3)
DW_S2(dw_s2k5_avx2, 5)
#undef DW_ROW
#endif

#ifdef DW_AVX2
/*
 * Small planes (up to DW8_MAX_PLANE elements, where the per-plane loops above
 * spend more on row set-up than on arithmetic): 8 channels at a time, one per
 * lane.  The 8 input planes are interleaved into a zero-padded hp x wp x 8
 * block, the kernels into K * K x 8, then each output position is a sum over
 * the K * K taps of whole 8-lane vectors (4 positions of a row at a time, so
 * that each weight vector loaded serves 4 FMAs), and the result is split back
 * into the 8 output planes.
 */
enum { DW8_MAX_PLANE = 256 };

#define DW8(NAME, K, S)                                                                      \
    __attribute__((target("avx2,fma"))) static void NAME(const float *xt, const float *kt,     \
                                                         const float *bv, float *yt,          \
                                                         int64_t wp, int64_t oh_n,            \
                                                         int64_t ow_n)                        \
    {                                                                                        \
        __m256 bias = _mm256_loadu_ps(bv);                                                   \
        for (int64_t oh = 0; oh < oh_n; oh++) {                                              \
            const float *top = xt + (oh * S) * wp * 8;                                       \
            float *yr = yt + oh * ow_n * 8;                                                  \
            int64_t ow = 0;                                                                  \
            for (; ow + 4 <= ow_n; ow += 4) {                                                \
                __m256 a0 = bias, a1 = bias, a2 = bias, a3 = bias;                           \
                _Pragma("GCC unroll 8")                                                      \
                for (int r = 0; r < K; r++)                                                  \
                    _Pragma("GCC unroll 8")                                                  \
                    for (int c = 0; c < K; c++) {                                            \
                        __m256 wv = _mm256_loadu_ps(kt + (r * K + c) * 8);                   \
                        const float *px = top + (r * wp + ow * S + c) * 8;                   \
                        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(px), a0);                   \
                        a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(px + S * 8), a1);           \
                        a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(px + 2 * S * 8), a2);       \
                        a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(px + 3 * S * 8), a3);       \
                    }                                                                        \
                _mm256_storeu_ps(yr + ow * 8, a0);                                           \
                _mm256_storeu_ps(yr + ow * 8 + 8, a1);                                       \
                _mm256_storeu_ps(yr + ow * 8 + 16, a2);                                      \
                _mm256_storeu_ps(yr + ow * 8 + 24, a3);                                      \
            }                                                                                \
            for (; ow < ow_n; ow++) {                                                        \
                __m256 a0 = bias;                                                            \
                for (int r = 0; r < K; r++)                                                  \
                    for (int c = 0; c < K; c++)                                              \
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(kt + (r * K + c) * 8),          \
                                             _mm256_loadu_ps(top + (r * wp + ow * S + c) * 8), \
                                             a0);                                            \
                _mm256_storeu_ps(yr + ow * 8, a0);                                           \
            }                                                                                \
        }                                                                                    \
    }
DW8(dw8_k3s1, 3, 1)
DW8(dw8_k3s2, 3, 2)
DW8(dw8_k5s1, 5, 1)
DW8(dw8_k5s2, 5, 2)

typedef void (*dw8_fn)(const float *xt, const float *kt, const float *bv, float *yt, int64_t wp,
                       int64_t oh_n, int64_t ow_n);

/* The kernel for q, or NULL when the channel-blocked path does not apply. */
static dw8_fn pick_dw8(const dw_geom *q, size_t mg)
{
    if (mg != 1 || q->p.kh != q->p.kw || (q->p.kh != 3 && q->p.kh != 5) || q->p.sh != q->p.sw ||
        (q->p.sh != 1 && q->p.sh != 2) || q->p.dh != 1 || q->p.dw != 1 ||
        q->p.h * q->p.w > DW8_MAX_PLANE || bnf_cpu_isa() < BNF_ISA_AVX2)
        return NULL;
    if (q->p.kh == 3)
        return q->p.sh == 1 ? dw8_k3s1 : dw8_k3s2;
    return q->p.sh == 1 ? dw8_k5s1 : dw8_k5s2;
}

/* Scratch floats per thread: the interleaved input, output, kernels, bias. */
static size_t dw8_scratch(const dw_geom *q)
{
    return (size_t)(q->p.hp * q->p.wp * 8 + q->p.oh * q->p.ow * 8 + q->p.kh * q->p.kw * 8 + 8);
}

typedef struct {
    const float *x, *w, *b;
    float *y;
    const dw_geom *q;
    size_t m;            /* channels (= input channels: one output per input channel) */
    size_t groups;       /* groups of 8 channels per batch */
    float *scratch;      /* dw8_scratch(q) floats per thread */
    dw8_fn fn;
    const bnf_epilogue *epi;
} dw8_job;

/* r[0..8) = its transpose (row i of the result: lane i of every r[j]). */
__attribute__((target("avx2,fma"))) static inline void transpose8(__m256 *r)
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* The nc (<= 8) planes x[l * is ..] (h x w) into the interleaved padded block
 * xt (position (ih + ph, iw + pw) at ((ih + ph) * wp + iw + pw) * 8 + l),
 * 8 positions at a time through a transpose; lanes past nc are left as they
 * were (their kernels are zero and their outputs never read). */
static inline float *dw8_at(float *xt, const dw_geom *q, size_t w, size_t p) /* position p */
{
    return xt + (((int64_t)(p / w) + q->p.ph) * q->p.wp + (int64_t)(p % w) + q->p.pw) * 8;
}

__attribute__((target("avx2,fma"))) static void dw8_in(const float *x, size_t is, size_t nc,
                                                       const dw_geom *q, float *xt)
{
    static const float zero[8];
    size_t w = (size_t)q->p.w, f = 0;
    for (; f + 8 <= is; f += 8) {
        __m256 r[8];
        for (size_t l = 0; l < 8; l++)
            r[l] = _mm256_loadu_ps(l < nc ? x + l * is + f : zero);
        transpose8(r);
        for (size_t i = 0; i < 8; i++)
            _mm256_storeu_ps(dw8_at(xt, q, w, f + i), r[i]);
    }
    for (; f < is; f++)
        for (size_t l = 0; l < nc; l++)
            dw8_at(xt, q, w, f)[l] = x[l * is + f];
}

/* The interleaved output yt (os positions x 8 lanes) back into nc planes y[l * os ..]. */
__attribute__((target("avx2,fma"))) static void dw8_out(const float *yt, size_t os, size_t nc,
                                                        float *y)
{
    size_t f = 0;
    for (; f + 8 <= os; f += 8) {
        __m256 r[8];
        for (size_t i = 0; i < 8; i++)
            r[i] = _mm256_loadu_ps(yt + (f + i) * 8);
        transpose8(r);
        for (size_t l = 0; l < nc; l++)
            _mm256_storeu_ps(y + l * os + f, r[l]);
    }
    for (; f < os; f++)
        for (size_t l = 0; l < nc; l++)
            y[l * os + f] = yt[f * 8 + l];
}

/* Channel blocks [lo, hi) (block = batch * groups + channel / 8). */
static void dw8_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const dw8_job *j = arg;
    const dw_geom *q = j->q;
    size_t is = (size_t)(q->p.h * q->p.w), os = (size_t)(q->p.oh * q->p.ow);
    size_t ks = (size_t)(q->p.kh * q->p.kw);
    float *xt = j->scratch + tid * dw8_scratch(q), *yt = xt + q->p.hp * q->p.wp * 8;
    float *kt = yt + os * 8, *bv = kt + ks * 8;
    /* the padding stays zero: dw8_in writes the inside of the block only */
    memset(xt, 0, (size_t)(q->p.hp * q->p.wp) * 8 * sizeof *xt);
    for (size_t blk = lo; blk < hi; blk++) {
        size_t nb = blk / j->groups, c0 = blk % j->groups * 8;
        size_t nc = j->m - c0 < 8 ? j->m - c0 : 8;
        const float *x = j->x + (nb * j->m + c0) * is;
        float *y = j->y + (nb * j->m + c0) * os;
        dw8_in(x, is, nc, q, xt);
        for (size_t t = 0; t < ks; t++)
            for (size_t l = 0; l < 8; l++)
                kt[t * 8 + l] = l < nc ? j->w[(c0 + l) * ks + t] : 0.0f;
        for (size_t l = 0; l < 8; l++)
            bv[l] = l < nc && j->b ? j->b[c0 + l] : 0.0f;
        j->fn(xt, kt, bv, yt, q->p.wp, q->p.oh, q->p.ow);
        dw8_out(yt, os, nc, y);
        if (j->epi)
            for (size_t l = 0; l < nc; l++)
                bnf_epilogue_apply(j->epi, c0 + l, y + l * os, os);
    }
}
#endif

/* The direct kernel for a plane geometry, or NULL (then the polyphase path). */
static dw_same_fn pick_dw_same(const dw_geom *q)
{
#ifdef DW_AVX2
    int k = (int)q->p.kh, p = (k - 1) / 2;
    if (q->p.kh != q->p.kw || (k != 3 && k != 5) || q->p.dh != 1 || q->p.dw != 1 || q->p.ph != p ||
        q->p.pw != p || q->p.h < 1 || q->p.w < 1 || q->p.oh < 1 || q->p.ow < 1 ||
        bnf_cpu_isa() < BNF_ISA_AVX2)
        return NULL;
    if (q->p.sh == 1 && q->p.sw == 1 && q->p.oh == q->p.h && q->p.ow == q->p.w)
        return k == 3 ? dw_same3_avx2 : dw_same5_avx2;
    /* stride 2: every row and column read lies in the padded plane or right after it */
    if (q->p.sh == 2 && q->p.sw == 2 && 2 * (q->p.oh - 1) - p + k <= q->p.h + p + 1 &&
        2 * (q->p.ow - 1) - p + k <= q->p.w + p + 1)
        return k == 3 ? dw_s2k3_avx2 : dw_s2k5_avx2;
#else
    (void)q;
#endif
    return NULL;
}

/* Splits input plane x (h x w) into the zero-padded polyphase sub-planes in
 * dst (sh * sw sub-planes of hq x wq, sub-plane a * sw + b). */
static void dw_layout(const float *x, const dw_geom *q, float *dst)
{
    size_t sub = (size_t)(q->hq * q->wq);
    memset(dst, 0, sub * (size_t)(q->p.sh * q->p.sw) * sizeof *dst);
    for (int64_t i = 0; i < q->p.h; i++) {
        int64_t r = i + q->p.ph; /* padded row */
        const float *xr = x + i * q->p.w;
        float *d0 = dst + (size_t)(r % q->p.sh * q->p.sw) * sub + (size_t)(r / q->p.sh * q->wq);
        if (q->p.sw == 1) {
            memcpy(d0 + q->p.pw, xr, (size_t)q->p.w * sizeof *d0);
        } else if (q->p.sw == 2) {
            /* padded column c + pw of input column c: the even input columns go
             * to the half of pw's parity */
            float *half0 = d0 + (q->p.pw & 1) * (int64_t)sub;
            float *half1 = d0 + (~q->p.pw & 1) * (int64_t)sub;
            deinterleave(xr, half0 + q->p.pw / 2, half1 + (q->p.pw + 1) / 2, q->p.w);
        } else {
            for (int64_t c = 0; c < q->p.w; c++) {
                int64_t pc = c + q->p.pw;
                d0[(pc % q->p.sw) * (int64_t)sub + pc / q->p.sw] = xr[c];
            }
        }
    }
}

/* One output plane y of one input plane x through kernel k (kh * kw). */
static void dw_plane(const float *x, const float *k, float bias, float *y, const dw_geom *q,
                     const dw_scratch *sc)
{
    size_t taps = (size_t)(q->p.kh * q->p.kw), n = (size_t)((q->p.oh - 1) * q->wq + q->p.ow);
    if (q->same) {
        q->same(x, q->p.h, q->p.w, q->p.oh, q->p.ow, k, bias, y, sc->plane); /* the zeroed ring */
        return;
    }
    if (q->copy) {
        dw_layout(x, q, sc->plane);
        x = sc->plane;
    }
    if (q->wq == q->p.ow) {
        q->flat(x, k, sc->off, taps, bias, y, n);
    } else {
        q->flat(x, k, sc->off, taps, bias, sc->flat, n);
        for (int64_t oh = 0; oh < q->p.oh; oh++)
            memcpy(y + oh * q->p.ow, sc->flat + oh * q->wq, (size_t)q->p.ow * sizeof *y);
    }
}

typedef struct {
    const float *x, *w, *b;
    float *y;
    const dw_geom *q;
    const dw_scratch *sc; /* one per thread id */
    size_t m, mg;   /* output channels, output channels per group (input channel = m / mg) */
    const bnf_epilogue *epi; /* fused nodes, or NULL */
} dw_job;

static void dw_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const dw_job *j = arg;
    const dw_geom *q = j->q;
    size_t is = (size_t)(q->p.h * q->p.w), os = (size_t)(q->p.oh * q->p.ow);
    size_t ks = (size_t)(q->p.kh * q->p.kw), c = j->m / j->mg;
    for (size_t p = lo; p < hi; p++) { /* p = n * M + m */
        size_t n = p / j->m, m = p % j->m;
        dw_plane(j->x + (n * c + m / j->mg) * is, j->w + m * ks, j->b ? j->b[m] : 0.0f,
                 j->y + p * os, q, &j->sc[tid]);
        if (j->epi)
            bnf_epilogue_apply(j->epi, m, j->y + p * os, os);
    }
}

bnf_status bnf_depthwise(const bnf_op_ctx *ctx, const bnf_plane *pl, const float *x,
                         const float *w, const float *b, float *y, size_t n, size_t m, size_t mg,
                         const bnf_epilogue *epi, int *declined)
{
    dw_geom q;
    dw_job job;
    dw_scratch sc[BNF_MAX_THREADS];
    size_t is = (size_t)(pl->h * pl->w), os = (size_t)(pl->oh * pl->ow);
    size_t planesz = 0, flatsz = 0, ks = (size_t)(pl->kh * pl->kw), nt, per, work;
    float *mem;
    int64_t *off;
    q.p = *pl;
#ifdef DW_AVX2
    {
        dw8_fn fn = pick_dw8(&q, mg); /* (NULL for a 1-D plane: its kh is 1) */
        if (fn) {
            size_t groups = (m + 7) / 8, blocks = n * groups;
            dw8_job j8;
            if (!bnf_mul_ok(os * n * m, ks, &work))
                work = SIZE_MAX;
            nt = bnf_par_threads(ctx, blocks, work);
            mem = bnf_malloc(nt * dw8_scratch(&q) * sizeof *mem);
            if (!mem)
                return bnf_nomem(ctx);
            j8 = (dw8_job){x, w, b, y, &q, m, groups, mem, fn, epi};
            bnf_parallel(ctx, nt, blocks, dw8_range, &j8);
            bnf_free(mem);
            *declined = 0;
            return BNF_OK;
        }
    }
#endif
    q.hq = (q.p.hp + q.p.sh - 1) / q.p.sh;
    q.wq = (q.p.wp + q.p.sw - 1) / q.p.sw;
    q.copy = q.p.sh > 1 || q.p.sw > 1 || q.p.hp > q.p.h || q.p.wp > q.p.w || q.p.ph || q.p.pw;
    if (!q.copy) {
        q.p.hp = q.hq = q.p.h;
        q.p.wp = q.wq = q.p.w;
    }
    q.flat = pick_dw_flat();
    q.same = pick_dw_same(&q);
    *declined = !bnf_mul_ok((size_t)q.hq, (size_t)q.wq, &planesz) ||
                !bnf_mul_ok(planesz, (size_t)(q.p.sh * q.p.sw), &planesz) ||
                planesz / 4 > is + os + 16384;
    if (*declined)
        return BNF_OK;
    if (!q.copy)
        planesz = 0;
    flatsz = (size_t)q.p.oh * (size_t)q.wq;
    if (q.same) { /* the ring of padded rows only */
        planesz = DW_RING(q.p.kh, q.p.w);
        flatsz = 0;
    }
    per = planesz + flatsz;
    if (!bnf_mul_ok(os * n * m, ks, &work))
        work = SIZE_MAX;
    nt = bnf_par_threads(ctx, n * m, work);
    off = bnf_malloc(ks * sizeof *off);
    mem = bnf_malloc((nt * per + 1) * sizeof *mem);
    if (!off || !mem) {
        bnf_free(off);
        bnf_free(mem);
        return bnf_nomem(ctx);
    }
    for (int64_t kh = 0; kh < q.p.kh; kh++)
        for (int64_t kw = 0; kw < q.p.kw; kw++) {
            int64_t r = kh * q.p.dh, c = kw * q.p.dw; /* padded row and column of the tap */
            int64_t sub = (r % q.p.sh) * q.p.sw + c % q.p.sw;
            off[kh * q.p.kw + kw] = sub * q.hq * q.wq + (r / q.p.sh) * q.wq + c / q.p.sw;
        }
    for (size_t t = 0; t < nt; t++) {
        sc[t].plane = mem + t * per;
        sc[t].flat = sc[t].plane + planesz;
        sc[t].off = off;
        if (q.same)
            memset(sc[t].plane, 0, planesz * sizeof *mem);
    }
    job = (dw_job){x, w, b, y, &q, sc, m, mg, epi};
    bnf_parallel(ctx, nt, n * m, dw_range, &job);
    bnf_free(off);
    bnf_free(mem);
    return BNF_OK;
}

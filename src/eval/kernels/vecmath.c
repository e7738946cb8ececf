/*
 * eval/kernels/vecmath.c: vectorised float math for the kernels: Sigmoid, SiLU
 * (x * sigmoid(x)) and the epilogue a Conv applies to its output when the
 * session fused the nodes after it (bnf_epilogue).
 *
 * exp is Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two
 * parts), a degree-6 polynomial for e^r, and 2^n put in the exponent bits;
 * about 1e-7 relative error on [-87, 88], the argument being clamped to that
 * range (so e^x >= 1.6e-38 and sigmoid(x) is exact to float rounding there).
 * NaN propagates.  Written once with the GCC/Clang vector extension and
 * compiled three times: 4 lanes with SSE2 (any x86-64, and other targets), 8
 * lanes with AVX2 + FMA, 16 with AVX-512F, picked at run time (bnf_cpu_isa,
 * defined here for every kernel) when the CPU has them.
 */
#include "../eval.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* The loops are written once, as macros over an instruction set's vector
 * type VF (W lanes, integer vector VI) and its multiply-add MADD(a, b, c) and
 * NaN-keeping CLAMP(x, lo, hi): 4 lanes for SSE2, 8 for AVX2 (8 lanes on SSE2
 * would compile its compares lane by lane), 16 for AVX-512. */
#define VS(VF, x) ((VF){0} + (x))

/* x = e^x on a VF. */
#define VEXP_BODY(VF, VI, MADD, CLAMP, x)                                              \
    do {                                                                               \
        VF t_, n_, r_, p_;                                                             \
        x = CLAMP(x, -87.0f, 88.0f);                                                   \
        /* n = round(x / ln2): adding 1.5 * 2^23 leaves n in the low mantissa bits */  \
        t_ = MADD(x, VS(VF, 1.44269504088896341f), VS(VF, 12582912.0f));               \
        n_ = t_ - VS(VF, 12582912.0f);                                                 \
        r_ = MADD(n_, VS(VF, -0.693359375f), x);                                       \
        r_ = MADD(n_, VS(VF, 2.12194440e-4f), r_);                                     \
        p_ = VS(VF, 1.9875691500e-4f);                                                 \
        p_ = MADD(p_, r_, VS(VF, 1.3981999507e-3f));                                   \
        p_ = MADD(p_, r_, VS(VF, 8.3334519073e-3f));                                   \
        p_ = MADD(p_, r_, VS(VF, 4.1665795894e-2f));                                   \
        p_ = MADD(p_, r_, VS(VF, 1.6666665459e-1f));                                   \
        p_ = MADD(p_, r_, VS(VF, 5.0000001201e-1f));                                   \
        p_ = MADD(p_, r_ * r_, r_ + VS(VF, 1.0f));                                     \
        /* 2^n: n + 127 (in [1, 254]) in the exponent bits */                          \
        x = p_ * (VF)((((VI)t_) - 0x4B400000 + 127) << 23);                            \
    } while (0)

/* Unaligned load and store of a whole vector (macros, not functions: passing
 * 32-byte vectors by value would change the ABI between the SSE2 and AVX2
 * copies). */
#define LDV(v, p) memcpy(&(v), (p), sizeof(v))
#define STV(p, v) memcpy((p), &(v), sizeof(v))

/* One vector: y = EXPR of v = x * s + t, with e = exp(-v). */
#define ONE_VEC(VF, VI, MADD, CLAMP, y, x, EXPR)                                       \
    do {                                                                               \
        VF v, e, r;                                                                    \
        LDV(v, x);                                                                     \
        v = MADD(v, VS(VF, s), VS(VF, t));                                             \
        e = -v;                                                                        \
        VEXP_BODY(VF, VI, MADD, CLAMP, e);                                             \
        r = EXPR;                                                                      \
        STV(y, r);                                                                     \
    } while (0)

/* The array loops: two vectors at a time (independent chains for the CPU to
 * overlap), then one, then the tail through a padded vector. */
#define ARRAY_LOOP(ATTR, name, VF, VI, W, MADD, CLAMP, EXPR)                           \
    ATTR static void name(float *y, const float *x, size_t n, float s, float t)        \
    {                                                                                  \
        size_t i = 0;                                                                  \
        for (; i + 2 * W <= n; i += 2 * W) {                                           \
            ONE_VEC(VF, VI, MADD, CLAMP, y + i, x + i, EXPR);                          \
            ONE_VEC(VF, VI, MADD, CLAMP, y + i + W, x + i + W, EXPR);                  \
        }                                                                              \
        for (; i + W <= n; i += W)                                                     \
            ONE_VEC(VF, VI, MADD, CLAMP, y + i, x + i, EXPR);                          \
        if (i < n) {                                                                   \
            float buf[W] = {0};                                                        \
            memcpy(buf, x + i, (n - i) * sizeof *buf);                                 \
            ONE_VEC(VF, VI, MADD, CLAMP, buf, buf, EXPR);                              \
            memcpy(y + i, buf, (n - i) * sizeof *buf);                                 \
        }                                                                              \
    }

/* sigmoid_<sfx> and silu_<sfx> for one instruction set. */
#define ISA_LOOPS(ATTR, sfx, VF, VI, W, MADD, CLAMP)                                   \
    ARRAY_LOOP(ATTR, sigmoid_##sfx, VF, VI, W, MADD, CLAMP,                            \
               VS(VF, 1.0f) / (VS(VF, 1.0f) + e))                                      \
    ARRAY_LOOP(ATTR, silu_##sfx, VF, VI, W, MADD, CLAMP, v / (VS(VF, 1.0f) + e))

/* SSE2: 4 lanes */
#define MADD_SSE(a, b, c) ((a) * (b) + (c))
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* min(hi, max(lo, x)) in this operand order: maxps/minps return their second
 * operand when one is NaN, so NaN stays NaN */
#define CLAMP_SSE(x, lo, hi) ((v4f)_mm_min_ps(VS(v4f, hi), _mm_max_ps(VS(v4f, lo), (x))))
#else
#define CLAMP_SSE(x, lo, hi) clamp_blend4((x), (lo), (hi))
static inline v4f clamp_blend4(v4f x, float lo, float hi)
{
    v4i l = x < ((v4f){0} + lo), h = x > ((v4f){0} + hi), xi = (v4i)x;
    xi = (xi & ~l) | ((v4i)((v4f){0} + lo) & l);
    xi = (xi & ~h) | ((v4i)((v4f){0} + hi) & h);
    return (v4f)xi;
}
#endif
ISA_LOOPS(, sse, v4f, v4i, 4, MADD_SSE, CLAMP_SSE)

typedef void (*array_fn)(float *y, const float *x, size_t n, float s, float t);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VM_AVX2 1
/* AVX2 + FMA: 8 lanes */
#define MADD_AVX2(a, b, c) ((v8f)_mm256_fmadd_ps((a), (b), (c)))
#define CLAMP_AVX2(x, lo, hi) ((v8f)_mm256_min_ps(VS(v8f, hi), _mm256_max_ps(VS(v8f, lo), (x))))
ISA_LOOPS(__attribute__((target("avx2,fma"))), avx2, v8f, v8i, 8, MADD_AVX2, CLAMP_AVX2)

/* AVX-512F: 16 lanes (about 15% faster than AVX2 on a Zen 4, which splits
 * them in two: half the instructions to issue) */
#define MADD_AVX512(a, b, c) ((v16f)_mm512_fmadd_ps((a), (b), (c)))
#define CLAMP_AVX512(x, lo, hi)                                                        \
    ((v16f)_mm512_min_ps(VS(v16f, hi), _mm512_max_ps(VS(v16f, lo), (x))))
ISA_LOOPS(__attribute__((target("avx512f"))), avx512, v16f, v16i, 16, MADD_AVX512,
          CLAMP_AVX512)
#endif

int bnf_cpu_isa(void)
{
#ifdef VM_AVX2
    static int isa = -1; /* (a benign race: every thread computes the same value) */
    if (isa < 0) {
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        isa = avx2 && __builtin_cpu_supports("avx512f") ? BNF_ISA_AVX512
              : avx2                                    ? BNF_ISA_AVX2
                                                        : BNF_ISA_BASE;
    }
    return isa;
#else
    return BNF_ISA_BASE;
#endif
}

/* The SSE2, AVX2 or AVX-512 copy of the sigmoid (silu = 0) or SiLU (silu = 1)
 * loop, the widest the CPU has. */
static array_fn pick(int silu)
{
#ifdef VM_AVX2
    switch (bnf_cpu_isa()) {
    case BNF_ISA_AVX512:
        return silu ? silu_avx512 : sigmoid_avx512;
    case BNF_ISA_AVX2:
        return silu ? silu_avx2 : sigmoid_avx2;
    default:
        break;
    }
#endif
    return silu ? silu_sse : sigmoid_sse;
}

void bnf_sigmoid_f32(float *y, const float *x, size_t n)
{
    pick(0)(y, x, n, 1.0f, 0.0f);
}

void bnf_silu_f32(float *y, const float *x, size_t n)
{
    pick(1)(y, x, n, 1.0f, 0.0f);
}

/* ---- the Conv epilogue ------------------------------------------------------------- */

/* x < lo ? lo : x is the form gcc turns into maxps; NaN stays NaN, as in the
 * unfused kernels. */
static void affine_clip(float *restrict y, size_t n, float s, float t, float lo, float hi)
{
    BLOCKED_LOOP(n, float v = y[i] * s + t; v = v < lo ? lo : v; y[i] = v > hi ? hi : v);
}

static void affine_relu(float *restrict y, size_t n, float s, float t)
{
    BLOCKED_LOOP(n, float v = y[i] * s + t; y[i] = v < 0 ? 0 : v);
}

static void relu(float *restrict y, size_t n)
{
    BLOCKED_LOOP(n, float v = y[i]; y[i] = v < 0 ? 0 : v);
}

static void clip(float *restrict y, size_t n, float lo, float hi)
{
    BLOCKED_LOOP(n, float v = y[i]; v = v < lo ? lo : v; y[i] = v > hi ? hi : v);
}

static void affine(float *restrict y, size_t n, float s, float t)
{
    BLOCKED_LOOP(n, y[i] = y[i] * s + t);
}

static void add(float *restrict y, const float *restrict r, size_t n)
{
    BLOCKED_LOOP(n, y[i] = y[i] + r[i]);
}

static void add_relu(float *restrict y, const float *restrict r, size_t n)
{
    BLOCKED_LOOP(n, float v = y[i] + r[i]; y[i] = v < 0 ? 0 : v);
}

void bnf_epilogue_apply(const bnf_epilogue *e, size_t c, float *y, size_t n)
{
    int aff = e->scale != NULL;
    float s = aff ? e->scale[c] : 1.0f, t = aff ? e->shift[c] : 0.0f;
    switch (e->act) {
    case BNF_ACT_RELU:
        if (aff)
            affine_relu(y, n, s, t);
        else
            relu(y, n);
        break;
    case BNF_ACT_CLIP:
        if (aff)
            affine_clip(y, n, s, t, e->lo, e->hi);
        else
            clip(y, n, e->lo, e->hi);
        break;
    case BNF_ACT_SIGMOID:
        pick(0)(y, y, n, s, t);
        break;
    case BNF_ACT_SILU:
        pick(1)(y, y, n, s, t);
        break;
    default:
        if (aff)
            affine(y, n, s, t);
        break;
    }
    if (e->res) {
        const float *r = e->res + (y - e->y0);
        if (e->post == BNF_ACT_RELU)
            add_relu(y, r, n);
        else
            add(y, r, n);
    }
}

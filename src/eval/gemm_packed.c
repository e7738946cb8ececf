/*
 * eval/gemm_packed.c: C = A x B for a constant A (a Conv's weights), packed
 * once, with our own register-blocked kernel.
 *
 * Why not OpenBLAS here: a convolution's GEMM is short and wide or small
 * (M = output channels, K = input channels x kernel taps, N = output pixels,
 * as few as 49), and OpenBLAS packs A again on every call and is weak when N
 * is small (20-45 GMAC/s measured on the mobilenet_v2 shapes).  A is packed
 * when the session first runs the node (bnf_packed_new) and kept.
 *
 * The layout and the loops are the usual ones (GotoBLAS): A is cut into
 * panels of MR rows, each stored k-major (MR floats per k, zero rows past M);
 * B is copied, KC rows by NC columns at a time, into panels of NR columns
 * (zero columns past N), so that one B panel (KC x NR, 16 KiB) sits in L1
 * while the A panels of up to MC rows stream from L2 through the kernel,
 * which keeps an MR x NR tile of C in registers.  The kernel is AVX2 + FMA
 * (6 x 16: 12 accumulators), picked at run time; without AVX2 a plain C
 * kernel of the same shape does the work (correct, slower: such machines get
 * OpenBLAS instead, see bnf_packed_usable()).
 */
#include "eval.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GP_AVX2 1
#endif

#define MR 6
#define NR 16
#define KC 256
#define NC 512
#define MC 192 /* a multiple of MR */

struct bnf_packed {
    float *p;   /* panels of MR rows: p[(i / MR) * k * MR + kk * MR + i % MR] */
    size_t m, k;
    const float *src; /* the weights it was packed from (a cache key) */
};

size_t bnf_packed_mr(void)
{
    return MR;
}

/* Narrow B (N <= NARROW_N columns, K <= NARROW_K rows) is packed whole and A
 * streamed once, panel after panel, each panel meeting all of B (a 7x7
 * feature map: 49 columns); else A is the one re-read, block by block from L2. */
#define NARROW_N 64
#define NARROW_K 4096

static int narrow(size_t k, size_t n)
{
    return n <= NARROW_N && k <= NARROW_K;
}

size_t bnf_packed_scratch(size_t k, size_t n)
{
    size_t kc = k < KC ? k : KC, nc = n < NC ? (n + NR - 1) / NR * NR : NC;
    if (narrow(k, n))
        kc = k;
    return (kc ? kc : 1) * (nc ? nc : NR);
}

bnf_packed *bnf_packed_new(const float *a, size_t m, size_t k, size_t lda)
{
    size_t panels = (m + MR - 1) / MR;
    bnf_packed *pk = bnf_malloc(sizeof *pk);
    if (!pk)
        return NULL;
    pk->p = bnf_malloc(panels * k * MR * sizeof *pk->p);
    if (!pk->p) {
        bnf_free(pk);
        return NULL;
    }
    pk->m = m;
    pk->k = k;
    pk->src = a;
    for (size_t pi = 0; pi < panels; pi++) {
        float *dst = pk->p + pi * k * MR;
        size_t i0 = pi * MR, rows = m - i0 < MR ? m - i0 : MR;
        for (size_t kk = 0; kk < k; kk++) {
            size_t r = 0;
            for (; r < rows; r++)
                dst[kk * MR + r] = a[(i0 + r) * lda + kk];
            for (; r < MR; r++)
                dst[kk * MR + r] = 0.0f;
        }
    }
    return pk;
}

void bnf_packed_free(bnf_packed *pk)
{
    if (!pk)
        return;
    bnf_free(pk->p);
    bnf_free(pk);
}

const float *bnf_packed_source(const bnf_packed *pk)
{
    return pk->src;
}

/* The width a panel of B starting w columns before the end is packed at: NR,
 * or for the last, narrow panel 8 or 4 (less wasted work when N is small:
 * 49 = 16 + 16 + 16 + 1 is three full tiles and one of 4 columns, not 16). */
static size_t panel_width(size_t w)
{
    return w > 8 ? NR : w > 4 ? 8 : 4;
}

/* B[k0 .. k0 + kc, j0 .. j0 + nc] into panels (kc rows of panel_width()
 * floats each, zero-padded), one after the other. */
static void pack_b(const float *b, size_t ldb, size_t kc, size_t nc, float *dst)
{
    for (size_t j = 0; j < nc; j += NR) {
        size_t w = nc - j < NR ? nc - j : NR, pw = panel_width(w);
        const float *src = b + j;
        if (w == NR) /* (a constant size: two vector moves, not a call) */
            for (size_t kk = 0; kk < kc; kk++, dst += NR)
                memcpy(dst, src + kk * ldb, NR * sizeof *dst);
        else
            for (size_t kk = 0; kk < kc; kk++, dst += pw) {
                memcpy(dst, src + kk * ldb, w * sizeof *dst);
                memset(dst + w, 0, (pw - w) * sizeof *dst);
            }
    }
}

/* An MR x nr tile (nr = 16, 8 or 4: the panel's width): c (+)= a x b over kc. */
typedef void (*tile_fn)(size_t kc, const float *a, const float *b, float *c, size_t ldc, int acc);

#define TILE_C(NAME, NRW)                                                                   \
    static void NAME(size_t kc, const float *a, const float *b, float *c, size_t ldc, int acc) \
    {                                                                                      \
        float t[MR][NRW] = {{0}};                                                          \
        for (size_t kk = 0; kk < kc; kk++, a += MR, b += NRW)                              \
            for (size_t r = 0; r < MR; r++)                                                \
                for (size_t j = 0; j < NRW; j++)                                           \
                    t[r][j] += a[r] * b[j];                                                \
        for (size_t r = 0; r < MR; r++)                                                    \
            for (size_t j = 0; j < NRW; j++)                                               \
                c[r * ldc + j] = acc ? c[r * ldc + j] + t[r][j] : t[r][j];                 \
    }
TILE_C(tile16_c, 16)
TILE_C(tile8_c, 8)
TILE_C(tile4_c, 4)
#undef TILE_C

#ifdef GP_AVX2
/* AVX2 + FMA: V vectors of L lanes per row of the tile (16 = 2 x 8, 8 = 1 x 8,
 * 4 = 1 x 4), MR rows: up to 12 accumulators, B's vectors and a broadcast of A. */
#define AVX2_FN __attribute__((target("avx2,fma")))
#define TILE_AVX2(NAME, VT, L, LOAD, STORE, ADD, FMA, BCAST, ZERO)                         \
    AVX2_FN static void NAME(size_t kc, const float *a, const float *b, float *c, size_t ldc,  \
                             int acc)                                                      \
    {                                                                                      \
        enum { V = NRW_ / L };                                                             \
        VT cr[MR][V];                                                                      \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                                       \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                                                    \
                cr[r][v] = ZERO();                                                         \
        for (size_t kk = 0; kk < kc; kk++, a += MR, b += NRW_) {                           \
            VT bv[V];                                                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                                                    \
                bv[v] = LOAD(b + v * L);                                                   \
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                                                 \
                VT av = BCAST(a + r);                                                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                                                \
                    cr[r][v] = FMA(av, bv[v], cr[r][v]);                                   \
            }                                                                              \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                                       \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) {                                                  \
                float *cp = c + r * ldc + v * L;                                           \
                STORE(cp, acc ? ADD(cr[r][v], LOAD(cp)) : cr[r][v]);                       \
            }                                                                              \
    }
#define NRW_ 16
TILE_AVX2(tile16_avx2, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps,
          _mm256_fmadd_ps, _mm256_broadcast_ss, _mm256_setzero_ps)
#undef NRW_
#define NRW_ 8
TILE_AVX2(tile8_avx2, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps,
          _mm256_fmadd_ps, _mm256_broadcast_ss, _mm256_setzero_ps)
#undef NRW_
#define NRW_ 4
TILE_AVX2(tile4_avx2, __m128, 4, _mm_loadu_ps, _mm_storeu_ps, _mm_add_ps, _mm_fmadd_ps,
          _mm_broadcast_ss, _mm_setzero_ps)
#undef NRW_
#undef TILE_AVX2
#endif

/* The tile kernels for panels 16, 8 and 4 wide. */
static const tile_fn *pick_tiles(void)
{
    static const tile_fn plain[3] = {tile16_c, tile8_c, tile4_c};
#ifdef GP_AVX2
    static const tile_fn avx2[3] = {tile16_avx2, tile8_avx2, tile4_avx2};
    static int have = -1; /* (a benign race: every thread computes the same value) */
    if (have < 0)
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (have)
        return avx2;
#endif
    return plain;
}

int bnf_packed_usable(void)
{
#ifdef GP_AVX2
    return pick_tiles()[0] == tile16_avx2;
#else
    return 0;
#endif
}

void bnf_packed_gemm(const bnf_packed *pk, size_t r0, size_t r1, const float *b, size_t ldb,
                     size_t n, float *c, size_t ldc, float *scratch)
{
    const tile_fn *tiles = pick_tiles();
    size_t k = pk->k;
    if (narrow(k, n)) {
        pack_b(b, ldb, k, n, scratch);
        for (size_t i = r0; i < r1; i += MR) {
            const float *ap = pk->p + (i / MR) * k * MR;
            size_t h = r1 - i < MR ? r1 - i : MR;
            for (size_t j = 0; j < n; j += NR) {
                size_t w = n - j < NR ? n - j : NR, pw = panel_width(w);
                tile_fn tile = tiles[pw == 16 ? 0 : pw == 8 ? 1 : 2];
                float *cp = c + i * ldc + j;
                if (w == pw && h == MR) {
                    tile(k, ap, scratch + j * k, cp, ldc, 0);
                } else {
                    float t[MR * NR];
                    tile(k, ap, scratch + j * k, t, pw, 0);
                    for (size_t r = 0; r < h; r++)
                        memcpy(cp + r * ldc, t + r * pw, w * sizeof *t);
                }
            }
        }
        return;
    }
    for (size_t j0 = 0; j0 < n; j0 += NC) {
        size_t nc = n - j0 < NC ? n - j0 : NC;
        for (size_t k0 = 0; k0 < k; k0 += KC) {
            size_t kc = k - k0 < KC ? k - k0 : KC;
            int acc = k0 > 0;
            pack_b(b + k0 * ldb + j0, ldb, kc, nc, scratch);
            for (size_t i0 = r0; i0 < r1; i0 += MC) {
                size_t i1 = r1 - i0 < MC ? r1 : i0 + MC;
                for (size_t j = 0; j < nc; j += NR) {
                    const float *bp = scratch + j * kc;
                    size_t w = nc - j < NR ? nc - j : NR, pw = panel_width(w);
                    tile_fn tile = tiles[pw == 16 ? 0 : pw == 8 ? 1 : 2];
                    for (size_t i = i0; i < i1; i += MR) {
                        const float *ap = pk->p + (i / MR) * k * MR + k0 * MR;
                        float *cp = c + i * ldc + j0 + j;
                        size_t h = i1 - i < MR ? i1 - i : MR;
                        if (w == pw && h == MR) {
                            tile(kc, ap, bp, cp, ldc, acc);
                        } else { /* through a whole tile, the part inside C copied */
                            float t[MR * NR] = {0};
                            if (acc)
                                for (size_t r = 0; r < h; r++)
                                    memcpy(t + r * pw, cp + r * ldc, w * sizeof *t);
                            tile(kc, ap, bp, t, pw, acc);
                            for (size_t r = 0; r < h; r++)
                                memcpy(cp + r * ldc, t + r * pw, w * sizeof *t);
                        }
                    }
                }
            }
        }
    }
}

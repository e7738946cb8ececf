/*
 * eval/kernels/gemm_packed.c: C = A x B for a constant A (a Conv's weights), packed
 * once, with our own register-blocked kernels.
 *
 * Why not OpenBLAS here: a convolution's GEMM is short and wide or small
 * (M = output channels, K = input channels x kernel taps, N = output pixels,
 * as few as 49), and OpenBLAS packs A again and zeroes C on every call (~8% of
 * efficientnet_b0's time).  A is packed when the session first runs the node
 * (bnf_packed_new) and kept.
 *
 * The layout and the loops are the usual ones (GotoBLAS): A is cut into
 * panels of MR rows, each stored k-major (MR floats per k, zero rows past M);
 * B is copied, KC rows by NC columns at a time, into panels of NR columns
 * (zero columns past N; the last panel of a block only as wide as needed:
 * 49 columns are 48 + 1, not 2 x 48), and each B panel meets the A panels of
 * up to MC rows, which stream from L2 through the kernel while it keeps an
 * MR x NR tile of C in registers.  Narrow B (a 7x7 map) is packed whole
 * instead and A streamed once; with few rows of A, B is read in place.
 *
 * Kernel sets, picked at run time (the packing follows the set's MR):
 * - AVX-512F: 8 x 48 (24 of the 32 registers accumulate: fewer loads per
 *   multiply-add than AVX2's tile, which is what keeps a Zen 4 fed from L2);
 * - AVX2 + FMA: 6 x 16 (12 accumulators of 16 registers);
 * - plain C, 6 x 16 (correct, slow: without AVX2 bnf_packed_usable() says
 *   no and the convolutions use OpenBLAS).
 * Narrower panels have their own kernels (32, 16, 8, then 4, 2, 1 columns
 * vectorised along the rows).
 */
#include "../eval.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GP_X86 1
#endif

#define MR_MAX 8
#define NR_MAX 48
#define KC 256
#define NC 480   /* a multiple of both NRs */
#define MC 192   /* a multiple of both MRs */

/* Narrow B (N <= NARROW_N columns, K <= NARROW_K rows) is packed whole and A
 * streamed once, panel after panel, each panel meeting all of B; else A is
 * the one re-read, block by block from L2. */
#define NARROW_N 64
#define NARROW_K 4096
/* Up to this many rows of A per call, B is read in place (see bnf_packed_gemm). */
#define DIRECT_M 96

/* An mr x w tile: c (+)= a x b over kc (a: kc x mr packed, b: kc rows of w,
 * ldb apart: a packed panel, or B itself). */
typedef void (*tile_fn)(size_t kc, const float *a, const float *b, size_t ldb, float *c,
                        size_t ldc, int acc);

/* A kernel set: rows per panel, the widest panel, and a kernel per width
 * (widths[i], widest first). */
typedef struct kernel_set_ {
    size_t mr, nr;
    size_t n_widths;
    size_t widths[7];
    tile_fn tiles[7];
} kernel_set;

struct bnf_packed {
    float *p;   /* panels of mr rows: p[(i / mr) * k * mr + kk * mr + i % mr] */
    size_t k, mr;
    const struct kernel_set_ *ks; /* the kernels it is packed for */
};

/* ---- kernels ------------------------------------------------------------------------ */

#define TILE_C(NAME, MRR, NRW)                                                              \
    static void NAME(size_t kc, const float *a, const float *b, size_t ldb, float *c,         \
                     size_t ldc, int acc)                                                  \
    {                                                                                      \
        float t[MRR][NRW] = {{0}};                                                         \
        for (size_t kk = 0; kk < kc; kk++, a += MRR, b += ldb)                             \
            for (size_t r = 0; r < MRR; r++)                                               \
                for (size_t j = 0; j < NRW; j++)                                           \
                    t[r][j] += a[r] * b[j];                                                \
        for (size_t r = 0; r < MRR; r++)                                                   \
            for (size_t j = 0; j < NRW; j++)                                               \
                c[r * ldc + j] = acc ? c[r * ldc + j] + t[r][j] : t[r][j];                 \
    }
TILE_C(tile16_c, 6, 16)
TILE_C(tile8_c, 6, 8)
TILE_C(tile4_c, 6, 4)
#undef TILE_C

#ifdef GP_X86
/* MRR rows x V vectors of L lanes (NRW = V * L columns): MRR * V accumulators,
 * B's V vectors, a broadcast of A. */
#define TILE_SIMD(ATTR, NAME, MRR, NRW, VT, L, LOAD, STORE, ADD, FMA, BCAST, ZERO)         \
    ATTR static void NAME(size_t kc, const float *a, const float *b, size_t ldb, float *c,     \
                          size_t ldc, int acc)                                             \
    {                                                                                      \
        enum { V = (NRW) / (L) };                                                          \
        VT cr[MRR][V];                                                                     \
        _Pragma("GCC unroll 8") for (int r = 0; r < MRR; r++)                              \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) cr[r][v] = ZERO();         \
        for (size_t kk = 0; kk < kc; kk++, a += MRR, b += ldb) {                           \
            VT bv[V];                                                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) bv[v] = LOAD(b + v * L);   \
            _Pragma("GCC unroll 8") for (int r = 0; r < MRR; r++) {                        \
                VT av = BCAST(a + r);                                                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                        \
                    cr[r][v] = FMA(av, bv[v], cr[r][v]);                                   \
            }                                                                              \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < MRR; r++)                              \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) {                          \
                float *cp = c + r * ldc + v * L;                                           \
                STORE(cp, acc ? ADD(cr[r][v], LOAD(cp)) : cr[r][v]);                       \
            }                                                                              \
    }

/* (through TILE: YMM and friends expand to several arguments first) */
#define TILE(...) TILE_SIMD(__VA_ARGS__)
#define AVX2_FN __attribute__((target("avx2,fma")))
#define YMM __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_fmadd_ps, \
            _mm256_broadcast_ss, _mm256_setzero_ps
#define XMM __m128, 4, _mm_loadu_ps, _mm_storeu_ps, _mm_add_ps, _mm_fmadd_ps, \
            _mm_broadcast_ss, _mm_setzero_ps
TILE(AVX2_FN, tile6x16_avx2, 6, 16, YMM)
TILE(AVX2_FN, tile6x8_avx2, 6, 8, YMM)
TILE(AVX2_FN, tile6x4_avx2, 6, 4, XMM)

#define AVX512_FN __attribute__((target("avx512f,avx2,fma")))
static inline AVX512_FN __m512 bcast16(const float *p)
{
    return _mm512_set1_ps(*p);
}
#define ZMM __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps, _mm512_fmadd_ps, \
            bcast16, _mm512_setzero_ps
TILE(AVX512_FN, tile8x48_avx512, 8, 48, ZMM)
TILE(AVX512_FN, tile8x32_avx512, 8, 32, ZMM)
TILE(AVX512_FN, tile8x16_avx512, 8, 16, ZMM)
TILE(AVX512_FN, tile8x8_avx512, 8, 8, YMM)
#undef TILE_SIMD
#undef TILE

/* The last, narrow panels of the AVX-512 set (NRW = 4, 2, 1 columns: a 7x7
 * map's 49 = 48 + 1) the other way round: the 8 rows of the A panel in one
 * vector, a broadcast of B per column, and four partial sums per column
 * (k mod 4) so that the multiply-adds do not wait on each other: for one
 * column, one vector multiply-add per k instead of 8 of 4 lanes. */
#define TILE_MV(NAME, NRW)                                                                  \
    AVX512_FN static void NAME(size_t kc, const float *a, const float *b, size_t ldb,        \
                               float *c, size_t ldc, int acc)                               \
    {                                                                                      \
        __m256 s[NRW][4];                                                                  \
        size_t kk = 0;                                                                     \
        _Pragma("GCC unroll 4") for (int j = 0; j < NRW; j++)                              \
            _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++) s[j][p] = _mm256_setzero_ps(); \
        for (; kk + 4 <= kc; kk += 4, a += 32, b += 4 * ldb)                                \
            _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++) {                          \
                __m256 av = _mm256_loadu_ps(a + 8 * p);                                    \
                _Pragma("GCC unroll 4") for (int j = 0; j < NRW; j++)                      \
                    s[j][p] = _mm256_fmadd_ps(av, _mm256_broadcast_ss(b + p * ldb + j), s[j][p]); \
            }                                                                              \
        for (; kk < kc; kk++, a += 8, b += ldb) {                                          \
            __m256 av = _mm256_loadu_ps(a);                                                \
            _Pragma("GCC unroll 4") for (int j = 0; j < NRW; j++)                          \
                s[j][0] = _mm256_fmadd_ps(av, _mm256_broadcast_ss(b + j), s[j][0]);        \
        }                                                                                  \
        _Pragma("GCC unroll 4") for (int j = 0; j < NRW; j++) {                            \
            float t[8];                                                                    \
            _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s[j][0], s[j][1]),             \
                                              _mm256_add_ps(s[j][2], s[j][3])));           \
            for (int r = 0; r < 8; r++)                                                    \
                c[r * ldc + j] = acc ? c[r * ldc + j] + t[r] : t[r];                       \
        }                                                                                  \
    }
TILE_MV(tile8x4mv_avx512, 4)
TILE_MV(tile8x2mv_avx512, 2)
TILE_MV(tile8x1mv_avx512, 1)
#undef TILE_MV
#endif

static const kernel_set set_c = {6, 16, 3, {16, 8, 4}, {tile16_c, tile8_c, tile4_c}};
#ifdef GP_X86
static const kernel_set set_avx2 = {6, 16, 3, {16, 8, 4},
                                    {tile6x16_avx2, tile6x8_avx2, tile6x4_avx2}};
static const kernel_set set_avx512 = {8, 48, 7, {48, 32, 16, 8, 4, 2, 1},
                                      {tile8x48_avx512, tile8x32_avx512, tile8x16_avx512,
                                       tile8x8_avx512, tile8x4mv_avx512, tile8x2mv_avx512,
                                       tile8x1mv_avx512}};
#endif

static int forced = -1; /* bnf_packed_force_isa (tests) */

/* The widest kernel set the CPU has (or the one a test forced). */
static const kernel_set *kernels(void)
{
#ifdef GP_X86
    int isa = bnf_cpu_isa();
    switch (forced >= 0 && forced < isa ? forced : isa) {
    case BNF_ISA_AVX512:
        return &set_avx512;
    case BNF_ISA_AVX2:
        return &set_avx2;
    default:
        break;
    }
#endif
    return &set_c;
}

int bnf_packed_force_isa(int isa)
{
    int was = forced;
    forced = isa;
    return was;
}

int bnf_packed_usable(void)
{
    return kernels() != &set_c;
}

size_t bnf_packed_mr(const bnf_packed *pk)
{
    return pk->mr;
}

/* ---- packing -------------------------------------------------------------------------- */

static int narrow(size_t k, size_t n)
{
    return n <= NARROW_N && k <= NARROW_K;
}

/* Enough for any call with B of k x n' columns, n' <= n (the last, narrower
 * block of a caller that cut its columns may take the narrow path: all of K). */
size_t bnf_packed_scratch(size_t k, size_t n)
{
    size_t kc = k < KC ? k : KC, nc = n < NC ? (n + NR_MAX - 1) / NR_MAX * NR_MAX : NC;
    size_t blocked = (kc ? kc : 1) * (nc ? nc : NR_MAX), whole = 0;
    if (k <= NARROW_K) { /* the narrow path: k x (up to NARROW_N columns, rounded up) */
        size_t nn = n < NARROW_N ? n : NARROW_N;
        whole = (k ? k : 1) * ((nn + NR_MAX - 1) / NR_MAX * NR_MAX + (nn ? 0 : NR_MAX));
    }
    return blocked > whole ? blocked : whole;
}

bnf_packed *bnf_packed_new(const float *a, size_t m, size_t k, size_t lda)
{
    const kernel_set *ks = kernels();
    size_t mr = ks->mr, panels = (m + mr - 1) / mr;
    bnf_packed *pk = bnf_malloc(sizeof *pk);
    if (!pk)
        return NULL;
    pk->p = bnf_malloc(panels * k * mr * sizeof *pk->p);
    if (!pk->p) {
        bnf_free(pk);
        return NULL;
    }
    pk->k = k;
    pk->mr = mr;
    pk->ks = ks;
    for (size_t pi = 0; pi < panels; pi++) {
        float *dst = pk->p + pi * k * mr;
        size_t i0 = pi * mr, rows = m - i0 < mr ? m - i0 : mr;
        for (size_t kk = 0; kk < k; kk++) {
            size_t r = 0;
            for (; r < rows; r++)
                dst[kk * mr + r] = a[(i0 + r) * lda + kk];
            for (; r < mr; r++)
                dst[kk * mr + r] = 0.0f;
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

/* The kernel (index into ks->tiles) for a panel of w columns: the widest
 * panel, or the narrowest width that holds w. */
static size_t width_index(const kernel_set *ks, size_t w)
{
    size_t i = ks->n_widths - 1;
    while (i > 0 && ks->widths[i] < w)
        i--;
    return i;
}

/* B[0 .. kc, 0 .. nc] (row stride ldb) into panels of the set's widths (kc
 * rows of the panel's width each, zero-padded), one after the other. */
static void pack_b(const kernel_set *ks, const float *b, size_t ldb, size_t kc, size_t nc,
                   float *dst)
{
    for (size_t j = 0; j < nc; j += ks->nr) {
        size_t w = nc - j < ks->nr ? nc - j : ks->nr, pw = ks->widths[width_index(ks, w)];
        const float *src = b + j;
        if (w == 16 && pw == 16) /* constant sizes: vector moves, not calls */
            for (size_t kk = 0; kk < kc; kk++, dst += 16)
                memcpy(dst, src + kk * ldb, 16 * sizeof *dst);
        else if (w == 48 && pw == 48)
            for (size_t kk = 0; kk < kc; kk++, dst += 48)
                memcpy(dst, src + kk * ldb, 48 * sizeof *dst);
        else
            for (size_t kk = 0; kk < kc; kk++, dst += pw) {
                memcpy(dst, src + kk * ldb, w * sizeof *dst);
                memset(dst + w, 0, (pw - w) * sizeof *dst);
            }
    }
}

/* One tile at C (h <= mr rows, w <= panel width columns inside C); B's rows
 * ldb apart. */
static void tile_at(const kernel_set *ks, size_t wi, size_t kc, const float *ap, const float *bp,
                    size_t ldb, float *cp, size_t ldc, size_t h, size_t w, int acc)
{
    size_t pw = ks->widths[wi];
    float t[MR_MAX * NR_MAX];
    if (w == pw && h == ks->mr) {
        ks->tiles[wi](kc, ap, bp, ldb, cp, ldc, acc);
        return;
    }
    /* through a whole tile, the part inside C copied */
    if (acc) {
        memset(t, 0, sizeof t);
        for (size_t r = 0; r < h; r++)
            memcpy(t + r * pw, cp + r * ldc, w * sizeof *t);
    }
    ks->tiles[wi](kc, ap, bp, ldb, t, pw, acc);
    for (size_t r = 0; r < h; r++)
        memcpy(cp + r * ldc, t + r * pw, w * sizeof *t);
}

void bnf_packed_gemm(const bnf_packed *pk, size_t r0, size_t r1, const float *b, size_t ldb,
                     size_t n, float *c, size_t ldc, float *scratch)
{
    const kernel_set *ks = pk->ks;
    size_t k = pk->k, mr = ks->mr, nr = ks->nr;
    /* few rows of A: copying B into panels would cost about as much as the
     * multiply-adds (B is used r1 - r0 times), so the whole-width panels are
     * read from B in place; only the last, partial one is copied (a kernel
     * reads its whole width) */
    int direct = r1 - r0 <= DIRECT_M;
    if (narrow(k, n)) {
        pack_b(ks, b, ldb, k, n, scratch);
        for (size_t i = r0; i < r1; i += mr) {
            const float *ap = pk->p + (i / mr) * k * mr;
            size_t h = r1 - i < mr ? r1 - i : mr;
            for (size_t j = 0; j < n; j += nr) {
                size_t w = n - j < nr ? n - j : nr, wi = width_index(ks, w);
                tile_at(ks, wi, k, ap, scratch + j * k, ks->widths[wi], c + i * ldc + j, ldc, h,
                        w, 0);
            }
        }
        return;
    }
    for (size_t j0 = 0; j0 < n; j0 += NC) {
        size_t nc = n - j0 < NC ? n - j0 : NC, tail = nc % nr;
        for (size_t k0 = 0; k0 < k; k0 += KC) {
            size_t kc = k - k0 < KC ? k - k0 : KC;
            const float *bk = b + k0 * ldb + j0;
            if (!direct)
                pack_b(ks, bk, ldb, kc, nc, scratch);
            else if (tail)
                pack_b(ks, bk + (nc - tail), ldb, kc, tail, scratch);
            for (size_t i0 = r0; i0 < r1; i0 += MC) {
                size_t i1 = r1 - i0 < MC ? r1 : i0 + MC;
                for (size_t j = 0; j < nc; j += nr) {
                    size_t w = nc - j < nr ? nc - j : nr, wi = width_index(ks, w);
                    const float *bp = scratch + j * kc;
                    size_t bstride = ks->widths[wi];
                    if (direct && w == nr) {
                        bp = bk + j;
                        bstride = ldb;
                    } else if (direct) {
                        bp = scratch;
                    }
                    for (size_t i = i0; i < i1; i += mr)
                        tile_at(ks, wi, kc, pk->p + (i / mr) * k * mr + k0 * mr, bp, bstride,
                                c + i * ldc + j0 + j, ldc, i1 - i < mr ? i1 - i : mr, w, k0 > 0);
                }
            }
        }
    }
}

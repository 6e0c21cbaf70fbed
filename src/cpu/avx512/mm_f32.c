/* AVX-512 f32-mode matmul: y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j] for
 * rows [r0, r1) of a [rows][k] Q1_0_G128 or TQ2_0_G128 matrix and fp32
 * tokens x_t = x + t * k, t in [0, m). fp32 products and sums, matching
 * bonsai_ref_mm_f32 (src/ref/ref_kernels.c) to fp32 rounding (the sums are
 * grouped differently).
 *
 * Lookup tables built per token: every 4 bits of weight code index a table
 * of 16 fp32 partial dot products, one zmm.
 *   Q1: 4 weights per nibble (bit i of nibble = sign of weight i); entry e
 *       of the table of activations x0..x3 is sum_i (bit i of e ? +x_i : -x_i).
 *   TQ2: 2 weights per nibble (two 2-bit codes, 00 -> -1, 01 -> 0, 10 -> +1,
 *       11 -> 0); entry e is w(e & 3) x0 + w(e >> 2) x1.
 * A pass takes 16 rows, row i in lane i: the rows' code dwords are
 * transposed (16-byte loads, 128-bit inserts, unpacks) so that lane i holds
 * row i's dword j; a shift brings each nibble to the low bits and a vpermps
 * (which reads only index bits 0-3) fetches every row's entry from the
 * nibble's table at once: per 16 rows x 4 bits, one shift, one vpermps with
 * the table as memory operand, one add. Per (row, block) the table sums
 * are multiplied by the block's scale and accumulated in fp32.
 * k is walked in chunks of TABLES tables (16 KB, L1-resident): per chunk the
 * tables are built, then every 16-row pass runs over the chunk's blocks and
 * adds its sums into y (the first chunk stores); each pass prefetches its
 * chunk of the rows two passes on. Every lane does the same
 * operations in the same order, so a row's result does not depend on r0,
 * r1 or which lane it lands in; tokens are processed one at a time, so one
 * token per call and many give bitwise the same outputs. */
#include "cpu/avx512/avx512_internal.h"

#define TABLES 256 /* tables per k chunk: 16 KB of fp32 */
/* A pass prefetches its chunk of the rows this many passes on: without it
 * the weights of a cold matrix came in at 0.2 of the read roof (each chunk
 * sweep reads 2-3 lines per row, too scattered for the hardware
 * prefetcher); bench/NOTES.md "f32 prefetch". */
#define PF_PASSES 2

/* Q1 tables for n4 groups of 4 activations: tab[16 g + e]. */
static void q1_tables(const float *x, size_t n4, float *tab)
{
    const __m512 s0 = _mm512_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
    const __m512 s1 = _mm512_setr_ps(-1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1);
    const __m512 s2 = _mm512_setr_ps(-1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1);
    const __m512 s3 = _mm512_setr_ps(-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1);
    for (size_t g = 0; g < n4; g++) { // [k chunk / 4]
        __m512 t = _mm512_mul_ps(_mm512_set1_ps(x[4 * g]), s0);
        t = _mm512_fmadd_ps(_mm512_set1_ps(x[4 * g + 1]), s1, t);
        t = _mm512_fmadd_ps(_mm512_set1_ps(x[4 * g + 2]), s2, t);
        t = _mm512_fmadd_ps(_mm512_set1_ps(x[4 * g + 3]), s3, t);
        _mm512_store_ps(tab + 16 * g, t);
    }
}

/* TQ2 tables for n2 pairs of activations: tab[16 g + e]. */
static void tq2_tables(const float *x, size_t n2, float *tab)
{
    const __m512 w0 = _mm512_setr_ps(-1, 0, 1, 0, -1, 0, 1, 0, -1, 0, 1, 0, -1, 0, 1, 0);
    const __m512 w1 = _mm512_setr_ps(-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
    for (size_t g = 0; g < n2; g++) { // [k chunk / 2]
        __m512 t = _mm512_mul_ps(_mm512_set1_ps(x[2 * g]), w0);
        t = _mm512_fmadd_ps(_mm512_set1_ps(x[2 * g + 1]), w1, t);
        _mm512_store_ps(tab + 16 * g, t);
    }
}

/* v[j] lane i = dword j of the 16 bytes at q + i * rb, j in [0, 4). */
AVX512_INLINE void load_transposed(const uint8_t *q, size_t rb, __m512i v[4])
{
    __m512i a[4]; /* a[g]: 128-bit lane L holds row 4 L + g */
    UNROLL for (int g = 0; g < 4; g++) { /* insert positions must be literals (clang) */
        a[g] = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(q + g * rb)));
        a[g] = _mm512_inserti32x4(a[g], _mm_loadu_si128((const __m128i *)(q + (4 + g) * rb)), 1);
        a[g] = _mm512_inserti32x4(a[g], _mm_loadu_si128((const __m128i *)(q + (8 + g) * rb)), 2);
        a[g] = _mm512_inserti32x4(a[g], _mm_loadu_si128((const __m128i *)(q + (12 + g) * rb)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]), t1 = _mm512_unpackhi_epi32(a[0], a[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]), t3 = _mm512_unpackhi_epi32(a[2], a[3]);
    v[0] = _mm512_unpacklo_epi64(t0, t2);
    v[1] = _mm512_unpackhi_epi64(t0, t2);
    v[2] = _mm512_unpacklo_epi64(t1, t3);
    v[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* Sum over nibbles n in [0, 8) of each lane of v of its entry in table
 * tab + 16 n, added as a tree (depth 3). The adds are fma(e, 1, f) (the
 * same value): they then run on the FMA pipes, not on the two pipes the
 * shifts need. */
AVX512_INLINE __m512 lookup8(__m512i v, const float *tab)
{
    __m512 e[8];
    UNROLL for (int n = 0; n < 8; n++)
        e[n] = _mm512_permutexvar_ps(n ? _mm512_srli_epi32(v, 4 * n) : v, _mm512_load_ps(tab + 16 * n));
    const __m512 one = _mm512_set1_ps(1.0f);
    UNROLL for (int h = 4; h >= 1; h /= 2)
        UNROLL for (int n = 0; n < h; n++)
            e[n] = _mm512_fmadd_ps(e[n], one, e[n + h]);
    return e[0];
}

#define CHUNK_BLOCKS_MAX 8 /* Q1: TABLES / 32 blocks per chunk; TQ2: TABLES / 64 */

/* One 16-row pass over blocks [0, nb) at rows base + i * rb (the chunk's
 * first block): lane i of the result = sum over the blocks of
 * d_b * (table sum of block b). */
AVX512_INLINE __m512 pass(const uint8_t *base, size_t rb, size_t nb, const float *tab,
                          const uint8_t *next, const int tq2)
{
    const size_t block_bytes = tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES;
    if (next) /* the same chunk of the rows PF_PASSES passes on, every line */
        for (size_t off = 0; off < nb * block_bytes + 63; off += 64) // [chunk bytes / 64]
            UNROLL for (int i = 0; i < 16; i++)
                _mm_prefetch((const char *)(next + i * rb + off), _MM_HINT_T0);
    const size_t qs_at = tq2 ? 0 : 2, d_at = tq2 ? 32 : 0;
    const int dwords = tq2 ? 8 : 4;
    /* the scales first: 16 x nb copies, done before the loop so that the
     * wide reloads below do not wait on the narrow stores */
    uint16_t dh[CHUNK_BLOCKS_MAX][16];
    for (size_t b = 0; b < nb; b++) // [blocks of the chunk]
        UNROLL for (int i = 0; i < 16; i++)
            dh[b][i] = load_u16(base + i * rb + b * block_bytes + d_at);
    __m512 acc = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [blocks of the chunk]
        const uint8_t *q = base + b * block_bytes + qs_at;
        __m512i v[8];
        load_transposed(q, rb, v);
        if (tq2)
            load_transposed(q + 16, rb, v + 4);
        const float *t = tab + (size_t)16 * 8 * dwords * b;
        __m512 s[8];
        UNROLL for (int j = 0; j < dwords; j++)
            s[j] = lookup8(v[j], t + 16 * 8 * j);
        UNROLL for (int h = dwords / 2; h >= 1; h /= 2)
            UNROLL for (int j = 0; j < h; j++)
                s[j] = _mm512_add_ps(s[j], s[j + h]);
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh[b]));
        acc = _mm512_fmadd_ps(s[0], d, acc);
    }
    return acc;
}

/* One token: y[r - r0] for rows [r0, r1). */
AVX512_INLINE void token(const uint8_t *w, size_t k, size_t r0, size_t r1, const float *x,
                         float *y, const int tq2)
{
    float tab[16 * TABLES] __attribute__((aligned(64)));
    const size_t block_bytes = tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES;
    const size_t nb = k / 128, row_bytes = nb * block_bytes;
    const size_t chunk_blocks = TABLES / (tq2 ? 64 : 32);
    for (size_t b0 = 0; b0 < nb; b0 += chunk_blocks) { // [k / chunk]
        const size_t cb = nb - b0 < chunk_blocks ? nb - b0 : chunk_blocks;
        if (tq2)
            tq2_tables(x + 128 * b0, 64 * cb, tab);
        else
            q1_tables(x + 128 * b0, 32 * cb, tab);
        for (size_t r = r0; r < r1; r += 16) { // [rows / 16]
            const size_t n = r1 - r < 16 ? r1 - r : 16;
            const uint8_t *first = w + r * row_bytes + b0 * block_bytes;
            __m512 acc;
            if (n == 16) {
                const int ahead = r + (PF_PASSES + 1) * 16 <= r1;
                acc = pass(first, row_bytes, cb, tab,
                           ahead ? first + PF_PASSES * 16 * row_bytes : NULL, tq2);
            } else { /* the n rows' chunk, then copies of the last row */
                uint8_t part[16][CHUNK_BLOCKS_MAX * TQ2_BLOCK_BYTES];
                for (size_t i = 0; i < 16; i++)
                    memcpy(part[i], first + (i < n ? i : n - 1) * row_bytes, cb * block_bytes);
                acc = pass(part[0], sizeof part[0], cb, tab, NULL, tq2);
            }
            const __mmask16 keep = (__mmask16)((1u << n) - 1);
            float *out = y + (r - r0);
            _mm512_mask_storeu_ps(out, keep,
                                  b0 ? _mm512_add_ps(_mm512_maskz_loadu_ps(keep, out), acc) : acc);
        }
    }
}

void bonsai_avx512_mm_f32_q1(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                             size_t m, float *y, size_t ldy)
{
    for (size_t t = 0; t < m; t++) // [m tokens]
        token(w, k, r0, r1, x + t * k, y + t * ldy, 0);
}

void bonsai_avx512_mm_f32_tq2(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                              size_t m, float *y, size_t ldy)
{
    for (size_t t = 0; t < m; t++) // [m tokens]
        token(w, k, r0, r1, x + t * k, y + t * ldy, 1);
}

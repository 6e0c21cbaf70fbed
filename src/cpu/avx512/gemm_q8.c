/* AVX-512 q8 GEMM (many tokens): y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j]
 * for rows [r0, r1) of a [rows][k] Q1_0_G128 or TQ2_0_G128 matrix and
 * tokens t in [0, m), x_t given as k/128 q8 blocks. Matches
 * bonsai_ref_mm_q8 (src/ref/ref_kernels.c): exact int32 sums per block,
 * scaled by d_w * d_x, summed in fp32.
 *
 * Weights are expanded once per tile of 8 rows x 32 blocks into an L1
 * buffer of unsigned bytes u = w + 1 (Q1: 0 or 2; TQ2: 0, 1 or 2), laid out
 * [block][16-byte chunk j][row quad g][row 0..3][16 bytes]: one zmm holds
 * chunk j of four rows, so a 16-byte broadcast of the activations feeds a
 * vpdpbusd whose 128-bit lane i accumulates row i, and the per-block
 * int32 -> fp32 scale step costs one cvt + one mul + one fma per four
 * rows. sum u q - sum q is the dot product: -sum q (bonsai_block_q8.sum)
 * seeds lanes 0, 4, 8, 12 of the accumulator.
 *
 * The register-blocked micro-kernel keeps 2 row quads x 4 tokens of int32
 * and fp32 accumulators. Rows past r1 are expanded as zero weights with a
 * zero scale and never stored; tokens come in tiles of 4 and a tail of 1-3. */
#include "cpu/avx512/avx512_internal.h"

#define QUADS 2                  /* row quads per tile: 8 rows */
#define TILE_ROWS (4 * QUADS)
#define CHUNK_BLOCKS 32          /* blocks of k per expanded tile */
#define TILE_TOKENS 4

typedef struct expanded_tile {
    _Alignas(64) uint8_t u[CHUNK_BLOCKS][8][QUADS][64]; /* [block][chunk][quad][row][16] */
    _Alignas(64) float dw[CHUNK_BLOCKS][QUADS][16];     /* [block][quad][row x 4] */
} expanded_tile;

/* Four rows' 64-byte vectors (one half block each) -> four chunk vectors
 * out[c] = [row0.c, row1.c, row2.c, row3.c] (a 4x4 transpose of 128-bit
 * lanes). */
AVX512_INLINE void transpose_quad(const __m512i v[4], uint8_t *out, size_t stride)
{
    __m512i a = _mm512_shuffle_i64x2(v[0], v[1], 0x44), b = _mm512_shuffle_i64x2(v[2], v[3], 0x44);
    __m512i c = _mm512_shuffle_i64x2(v[0], v[1], 0xEE), d = _mm512_shuffle_i64x2(v[2], v[3], 0xEE);
    _mm512_store_si512(out + 0 * stride, _mm512_shuffle_i64x2(a, b, 0x88));
    _mm512_store_si512(out + 1 * stride, _mm512_shuffle_i64x2(a, b, 0xDD));
    _mm512_store_si512(out + 2 * stride, _mm512_shuffle_i64x2(c, d, 0x88));
    _mm512_store_si512(out + 3 * stride, _mm512_shuffle_i64x2(c, d, 0xDD));
}

/* u bytes of half h (64 weights) of one block, natural order. */
AVX512_INLINE __m512i q1_half(const uint8_t *blk, int h)
{
    return _mm512_maskz_mov_epi8(load_mask64(blk + 2 + 8 * h), _mm512_set1_epi8(2));
}

AVX512_INLINE __m512i tq2_half(const uint8_t *blk, int h)
{
    /* byte i of lane L <- code byte 4L + i/4 (vpshufb on a broadcast), then
     * test that byte's two code bits at 2 * (i % 4) */
    const __m512i spread = _mm512_setr_epi32(
        0x00000000, 0x01010101, 0x02020202, 0x03030303, 0x04040404, 0x05050505, 0x06060606,
        0x07070707, 0x08080808, 0x09090909, 0x0a0a0a0a, 0x0b0b0b0b, 0x0c0c0c0c, 0x0d0d0d0d,
        0x0e0e0e0e, 0x0f0f0f0f);
    const __m512i lo_bit = _mm512_set1_epi32(0x40100401), hi_bit = _mm512_set1_epi32(0x80200802);
    __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + 16 * h)));
    q = _mm512_shuffle_epi8(q, spread);
    __mmask64 hi = _mm512_test_epi8_mask(q, hi_bit), lo = _mm512_test_epi8_mask(q, lo_bit);
    /* 00 -> 0, 10 -> 2, x1 -> 1 */
    return _mm512_mask_mov_epi8(_mm512_maskz_mov_epi8(hi, _mm512_set1_epi8(2)), lo,
                                _mm512_set1_epi8(1));
}

/* Expands rows [row, row + n) (n <= TILE_ROWS; the rest zero) over blocks
 * [b0, b0 + nb) of the chunk into t. */
AVX512_INLINE void expand_tile(bonsai_type type, const uint8_t *w, size_t row_bytes, size_t row,
                               size_t n, size_t b0, size_t nb, expanded_tile *t)
{
    const size_t bb = type == BONSAI_TYPE_Q1_0_G128 ? Q1_BLOCK_BYTES : TQ2_BLOCK_BYTES;
    const size_t d_off = type == BONSAI_TYPE_Q1_0_G128 ? 0 : 32;
    for (size_t b = 0; b < nb; b++) { // [chunk blocks]
        for (int g = 0; g < QUADS; g++) { // [quads]
            __m512i v[2][4];
            uint16_t dw[8] = {0}; /* fp16 scales of the 4 rows */
            for (int i = 0; i < 4; i++) {
                const size_t rr = (size_t)(4 * g + i);
                if (rr >= n) {
                    v[0][i] = v[1][i] = _mm512_setzero_si512();
                    continue;
                }
                const uint8_t *blk = w + (row + rr) * row_bytes + (b0 + b) * bb;
                for (int h = 0; h < 2; h++)
                    v[h][i] = type == BONSAI_TYPE_Q1_0_G128 ? q1_half(blk, h) : tq2_half(blk, h);
                dw[i] = load_u16(blk + d_off);
            }
            for (int h = 0; h < 2; h++)
                transpose_quad(v[h], t->u[b][4 * h][g], QUADS * 64);
            /* [d0 x4, d1 x4, d2 x4, d3 x4] */
            __m512 d = _mm512_cvtph_ps(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)dw)));
            _mm512_store_ps(t->dw[b][g],
                            _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2,
                                                                    2, 2, 3, 3, 3, 3),
                                                  d));
        }
    }
}

/* Sum of each 128-bit lane (row i of the quad) -> 4 floats. */
AVX512_INLINE __m128 quad_sums(__m512 v)
{
    v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
    return _mm512_castps512_ps128(_mm512_maskz_compress_ps(0x1111, v));
}

/* N tokens (1..4) x 8 rows over the nb expanded blocks; x points at block
 * b0 of token 0, tokens xs blocks apart. Writes (first) or adds 4 floats per
 * quad and token into y. */
AVX512_INLINE void micro(const expanded_tile *t, size_t nb, const bonsai_block_q8 *x, size_t xs,
                         float *y, size_t ldy, size_t n_rows, int first, const int N,
                         const int vnni)
{
    __m512 accf[QUADS][TILE_TOKENS];
    for (int g = 0; g < QUADS; g++)
        for (int j = 0; j < N; j++)
            accf[g][j] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [chunk blocks]
        __m512i acc[QUADS][TILE_TOKENS];
        for (int g = 0; g < QUADS; g++)
            for (int j = 0; j < N; j++)
                acc[g][j] = _mm512_setzero_si512();
        for (int c = 0; c < 8; c++) { // [16-byte chunks of the block]
            __m512i u[QUADS];
            for (int g = 0; g < QUADS; g++)
                u[g] = _mm512_load_si512(t->u[b][c][g]);
            for (int j = 0; j < N; j++) {
                const __m512i xv = _mm512_broadcast_i32x4(
                    _mm_loadu_si128((const __m128i *)(x[(size_t)j * xs + b].qs + 16 * c)));
                for (int g = 0; g < QUADS; g++)
                    acc[g][j] = vnni ? _mm512_dpbusd_epi32(acc[g][j], u[g], xv)
                                     : _mm512_add_epi16(acc[g][j], _mm512_maddubs_epi16(u[g], xv));
            }
        }
        for (int j = 0; j < N; j++) {
            const bonsai_block_q8 *xb = x + (size_t)j * xs + b;
            const __m512i seed = _mm512_maskz_set1_epi32(0x1111, -xb->sum);
            const __m512 dx = _mm512_set1_ps(xb->d);
            for (int g = 0; g < QUADS; g++) {
                /* BW: int16 pair sums, |.| <= 8 * 2 * 2 * 127, widened here */
                __m512i s = vnni ? _mm512_add_epi32(acc[g][j], seed)
                                 : _mm512_add_epi32(_mm512_madd_epi16(acc[g][j],
                                                                      _mm512_set1_epi16(1)),
                                                    seed);
                accf[g][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
                                             _mm512_mul_ps(_mm512_load_ps(t->dw[b][g]), dx),
                                             accf[g][j]);
            }
        }
    }
    for (int j = 0; j < N; j++)
        for (int g = 0; g < QUADS; g++) {
            if ((size_t)(4 * g) >= n_rows)
                break;
            const size_t n = n_rows - (size_t)(4 * g) < 4 ? n_rows - (size_t)(4 * g) : 4;
            const __mmask8 keep = (__mmask8)((1u << n) - 1);
            float *out = y + (size_t)j * ldy + (size_t)(4 * g);
            __m128 v = quad_sums(accf[g][j]);
            if (!first)
                v = _mm_add_ps(v, _mm_maskz_loadu_ps(keep, out));
            _mm_mask_storeu_ps(out, keep, v);
        }
}

AVX512_INLINE void gemm(bonsai_type type, const uint8_t *w, size_t k, size_t r0, size_t r1,
                        const bonsai_block_q8 *x, size_t m, float *y, size_t ldy, const int vnni)
{
    expanded_tile tile;
    const size_t nb = k / 128;
    const size_t row_bytes = nb * (type == BONSAI_TYPE_Q1_0_G128 ? Q1_BLOCK_BYTES : TQ2_BLOCK_BYTES);
    for (size_t r = r0; r < r1; r += TILE_ROWS) { // [rows / 8]
        const size_t n_rows = r1 - r < TILE_ROWS ? r1 - r : TILE_ROWS;
        for (size_t c0 = 0; c0 < nb; c0 += CHUNK_BLOCKS) { // [k / (128 * 32)]
            const size_t cn = nb - c0 < CHUNK_BLOCKS ? nb - c0 : CHUNK_BLOCKS;
            expand_tile(type, w, row_bytes, r, n_rows, c0, cn, &tile);
            size_t t = 0;
            for (; t + TILE_TOKENS <= m; t += TILE_TOKENS) // [m / 4]
                micro(&tile, cn, x + t * nb + c0, nb, y + t * ldy + (r - r0), ldy, n_rows,
                      c0 == 0, TILE_TOKENS, vnni);
            const bonsai_block_q8 *xt = x + t * nb + c0;
            float *yt = y + t * ldy + (r - r0);
            switch (m - t) {
            case 3:
                micro(&tile, cn, xt, nb, yt, ldy, n_rows, c0 == 0, 3, vnni);
                break;
            case 2:
                micro(&tile, cn, xt, nb, yt, ldy, n_rows, c0 == 0, 2, vnni);
                break;
            case 1:
                micro(&tile, cn, xt, nb, yt, ldy, n_rows, c0 == 0, 1, vnni);
                break;
            default:
                break;
            }
        }
    }
}

void bonsai_avx512_gemm_q8_q1_vnni(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                   const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_Q1_0_G128, w, k, r0, r1, x, m, y, ldy, 1);
}

void bonsai_avx512_gemm_q8_q1_bw(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_Q1_0_G128, w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_avx512_gemm_q8_tq2_vnni(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                    const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_TQ2_0_G128, w, k, r0, r1, x, m, y, ldy, 1);
}

void bonsai_avx512_gemm_q8_tq2_bw(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_TQ2_0_G128, w, k, r0, r1, x, m, y, ldy, 0);
}

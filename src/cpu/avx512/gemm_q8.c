/* AVX-512 q8 GEMM (many tokens): y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j]
 * for rows [r0, r1) of a [rows][k] Q1_0_G128 or TQ2_0_G128 matrix and
 * tokens t in [0, m), x_t given as k/128 q8 blocks. Matches
 * bonsai_ref_mm_q8 (src/ref/ref_kernels.c): exact int32 sums per block,
 * scaled by d_w * d_x, summed in fp32.
 *
 * Sums in the order of Q8_CHUNK_BLOCKS (avx512_internal.h), bitwise equal
 * to the GEMV's.
 *
 * Weights are expanded once per tile of 8 rows x 32 blocks into an L1
 * buffer of unsigned bytes u = w + 1 (Q1: 0 or 2; TQ2: 0, 1 or 2), laid out
 * [block][16-byte chunk c][row quad g][row 0..3][16 bytes]: one zmm holds
 * chunk c of four rows, so a 16-byte broadcast of a token's activations
 * feeds a vpdpbusd whose 128-bit lane L accumulates row L. At the end of a
 * block the four tokens of a quad are reduced exactly into one vector
 * (lane 4L + t: row L, token t), -sum q (bonsai_block_q8.sum) is
 * subtracted (sum u q - sum q is the dot product), and one cvt + mul + fma
 * scales 16 (row, token) sums by d_w * d_x.
 *
 * The register-blocked micro-kernel keeps 2 row quads x 8 tokens of int32
 * accumulators (4 tokens for tiles of <= 4). Rows past r1 are expanded as
 * zero weights with a zero scale and never stored; tokens past m repeat the
 * last token and are never stored. */
#include "cpu/avx512/avx512_internal.h"

#define QUADS 2                  /* row quads per tile: 8 rows */
#define TILE_ROWS (4 * QUADS)
#define CHUNK_BLOCKS Q8_CHUNK_BLOCKS /* blocks of k per expanded tile */
#define TOKEN_QUADS 2
#define TILE_TOKENS (4 * TOKEN_QUADS)

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
        UNROLL for (int g = 0; g < QUADS; g++) { // [quads]
            __m512i v[2][4];
            uint16_t dw[8] = {0}; /* fp16 scales of the 4 rows */
            UNROLL for (int i = 0; i < 4; i++) {
                const size_t rr = (size_t)(4 * g + i);
                if (rr >= n) {
                    v[0][i] = v[1][i] = _mm512_setzero_si512();
                    continue;
                }
                const uint8_t *blk = w + (row + rr) * row_bytes + (b0 + b) * bb;
                UNROLL for (int h = 0; h < 2; h++)
                    v[h][i] = type == BONSAI_TYPE_Q1_0_G128 ? q1_half(blk, h) : tq2_half(blk, h);
                dw[i] = load_u16(blk + d_off);
            }
            UNROLL for (int h = 0; h < 2; h++)
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

/* Scales and sums of the tile's tokens for one chunk, grouped by token quad
 * so one 16-byte broadcast gives [t0, t1, t2, t3] in every 128-bit lane. */
typedef struct token_scales {
    _Alignas(16) float dx[CHUNK_BLOCKS][TOKEN_QUADS][4];
    _Alignas(16) int32_t sum[CHUNK_BLOCKS][TOKEN_QUADS][4];
} token_scales;

/* NT (4 or 8) tokens x 8 rows over the nb expanded blocks. xt[j] points at
 * block 0 of the chunk for token j; tokens j >= nt repeat a valid token and
 * are not stored. Writes (first) or adds into y[j * ldy + row]. */
AVX512_INLINE void micro(const expanded_tile *t, size_t nb, const bonsai_block_q8 *const *xt,
                         size_t nt, float *y, size_t ldy, size_t n_rows, int first, const int NT,
                         const int vnni)
{
    token_scales ts;
    for (size_t b = 0; b < nb; b++)
        UNROLL for (int j = 0; j < NT; j++) {
            ts.dx[b][j / 4][j % 4] = (size_t)j < nt ? xt[j][b].d : 0.0f;
            ts.sum[b][j / 4][j % 4] = (size_t)j < nt ? xt[j][b].sum : 0;
        }
    __m512 accf[QUADS][TOKEN_QUADS]; /* lane 4L + i: row 4g + L, token 4tq + i */
    UNROLL for (int g = 0; g < QUADS; g++)
        UNROLL for (int q = 0; q < NT / 4; q++)
            accf[g][q] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [chunk blocks]
        __m512i acc[QUADS][TILE_TOKENS]; /* 128-bit lane L: row 4g + L */
        UNROLL for (int g = 0; g < QUADS; g++)
            UNROLL for (int j = 0; j < NT; j++)
                acc[g][j] = _mm512_setzero_si512();
        UNROLL for (int c = 0; c < 8; c++) { // [16-byte chunks of the block]
            __m512i u[QUADS];
            UNROLL for (int g = 0; g < QUADS; g++)
                u[g] = _mm512_load_si512(t->u[b][c][g]);
            UNROLL for (int j = 0; j < NT; j++) {
                const __m512i xv =
                    _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xt[j][b].qs + 16 * c)));
                UNROLL for (int g = 0; g < QUADS; g++)
                    acc[g][j] = vnni ? _mm512_dpbusd_epi32(acc[g][j], u[g], xv)
                                     : _mm512_add_epi16(acc[g][j], _mm512_maddubs_epi16(u[g], xv));
            }
        }
        UNROLL for (int q = 0; q < NT / 4; q++) {
            const __m512 dx = _mm512_broadcast_f32x4(_mm_load_ps(ts.dx[b][q]));
            const __m512i sum = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)ts.sum[b][q]));
            UNROLL for (int g = 0; g < QUADS; g++) {
                __m512i a[4];
                UNROLL for (int i = 0; i < 4; i++) /* BW: int16 pair sums, |.| <= 8 * 2 * 2 * 127 */
                    a[i] = vnni ? acc[g][4 * q + i]
                                : _mm512_madd_epi16(acc[g][4 * q + i], _mm512_set1_epi16(1));
                const __m512i isum = _mm512_sub_epi32(reduce4_lanes_epi32(a), sum);
                accf[g][q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                                             _mm512_mul_ps(_mm512_load_ps(t->dw[b][g]), dx),
                                             accf[g][q]);
            }
        }
    }
    UNROLL for (int g = 0; g < QUADS; g++)
        UNROLL for (int q = 0; q < NT / 4; q++) {
            _Alignas(64) float out[16];
            _mm512_store_ps(out, accf[g][q]);
            for (int i = 0; i < 4 && (size_t)(4 * q + i) < nt; i++)
                for (int L = 0; L < 4 && (size_t)(4 * g + L) < n_rows; L++) {
                    float *o = y + (size_t)(4 * q + i) * ldy + (size_t)(4 * g + L);
                    *o = first ? out[4 * L + i] : out[4 * L + i] + *o;
                }
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
            for (size_t t0 = 0; t0 < m; t0 += TILE_TOKENS) { // [m / 8]
                const size_t nt = m - t0 < TILE_TOKENS ? m - t0 : TILE_TOKENS;
                const bonsai_block_q8 *xt[TILE_TOKENS];
                for (size_t j = 0; j < TILE_TOKENS; j++)
                    xt[j] = x + (t0 + (j < nt ? j : nt - 1)) * nb + c0;
                float *yt = y + t0 * ldy + (r - r0);
                if (nt > 4)
                    micro(&tile, cn, xt, nt, yt, ldy, n_rows, c0 == 0, TILE_TOKENS, vnni);
                else
                    micro(&tile, cn, xt, nt, yt, ldy, n_rows, c0 == 0, 4, vnni);
            }
        }
    }
}

void bonsai_avx512_gemm_q8_q1_vnni(const void *w, size_t k, size_t r0, size_t r1,
                                   const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_Q1_0_G128, w, k, r0, r1, x, m, y, ldy, 1);
}

void bonsai_avx512_gemm_q8_q1_bw(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_Q1_0_G128, w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_avx512_gemm_q8_tq2_vnni(const void *w, size_t k, size_t r0, size_t r1,
                                    const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_TQ2_0_G128, w, k, r0, r1, x, m, y, ldy, 1);
}

void bonsai_avx512_gemm_q8_tq2_bw(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    gemm(BONSAI_TYPE_TQ2_0_G128, w, k, r0, r1, x, m, y, ldy, 0);
}

/* AVX2 q8-mode matmul for Q1_0_g128 and TQ2_0_g128 (matches
 * bonsai_ref_mm_q8): y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j], x_t as
 * k/128 q8 blocks.
 *
 * Each block's weights become 128 unsigned bytes u, summed against the int8
 * activations by vpmaddubsw + vpmaddwd in exact int32 and scaled once per
 * block by d_w * d_x:
 *   Q1 (18-byte blocks, fp16 d then qs[16]; bit set -> +d, clear -> -d):
 *     u = bit (32 bits at a time: broadcast, vpshufb to the owning byte,
 *     and with the bit, min 1), and sum_j w_j q_j = d_w (2 sum u q - sum q);
 *   TQ2 (34-byte blocks, qs[32] then fp16 d; code 00 -> -d, 01 -> 0, 10 ->
 *     +d, 11 -> 0): u = w + 1 (c ^ ((c & c>>1 & 1) << 1) maps 3 to 1, all 64
 *     fields of a 32-byte load at once; the four 2-bit planes are split
 *     with shifts and interleaved back to weight order with byte/word
 *     unpacks, a vpermd first making the in-lane unpacks land in order),
 *     and sum_j w_j q_j = d_w (sum u q - sum q).
 * sum q is the q8 block's sum. Rows are processed one at a time; up to
 * AVX2_Q8_TOKEN_GROUP tokens share each decoded block. */
#include "cpu/token_groups.h"
#include "cpu/avx2/avx2_kernels.h"

#define Q1_BLOCK_BYTES 18
#define TQ2_BLOCK_BYTES 34

/* 32 sign bits at p -> 32 bytes of 0/1 (byte i = bit i). */
static inline __m256i q1_bits_to_01(const uint8_t *p)
{
    const __m256i owner = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
                                           2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i v = _mm256_shuffle_epi8(avx2_broadcast_u32(p), owner);
    return _mm256_min_epu8(_mm256_and_si256(v, bit), _mm256_set1_epi8(1));
}

/* The 128 codes at qs -> u[4]: bytes u = w + 1 of weights 32c..32c+31. */
static inline void tq2_codes_to_u(const uint8_t *qs, __m256i u[4])
{
    __m256i v = _mm256_loadu_si256((const __m256i *)qs);
    /* dwords 0,2,4,6 | 1,3,5,7: the in-lane unpacks below then emit weights in order */
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const __m256i both = _mm256_and_si256(_mm256_and_si256(v, _mm256_srli_epi16(v, 1)),
                                          _mm256_set1_epi8(0x55));
    v = _mm256_xor_si256(v, _mm256_add_epi8(both, both)); /* code 3 -> 1 */
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i p0 = _mm256_and_si256(v, m3);
    const __m256i p1 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
    const __m256i p2 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
    const __m256i p3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
    const __m256i a_lo = _mm256_unpacklo_epi8(p0, p1), a_hi = _mm256_unpackhi_epi8(p0, p1);
    const __m256i b_lo = _mm256_unpacklo_epi8(p2, p3), b_hi = _mm256_unpackhi_epi8(p2, p3);
    u[0] = _mm256_unpacklo_epi16(a_lo, b_lo);
    u[1] = _mm256_unpackhi_epi16(a_lo, b_lo);
    u[2] = _mm256_unpacklo_epi16(a_hi, b_hi);
    u[3] = _mm256_unpackhi_epi16(a_hi, b_hi);
}

/* One row against nt tokens (nt <= AVX2_Q8_TOKEN_GROUP, a constant after
 * inlining): y[t * ldy] = row . x_t. */
static inline __attribute__((always_inline)) void
q8_row(const uint8_t *row, const bonsai_block_q8 *x, size_t nb, const int nt, float *y,
       size_t ldy, const int tq2)
{
    const size_t block_bytes = tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES;
    __m256 acc[AVX2_Q8_TOKEN_GROUP];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * block_bytes;
        __m256i u[4];
        if (tq2) {
            tq2_codes_to_u(blk, u);
        } else {
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                u[c] = q1_bits_to_01(blk + 2 + 4 * c);
        }
        const __m256 dw = _mm256_set1_ps(avx2_load_fp16(blk + (tq2 ? 32 : 0)));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const bonsai_block_q8 *xb = x + (size_t)t * nb + b;
            /* Q1: 2 S - sum; TQ2: sum (w+1) q - sum */
            __m256i s = avx2_block_dot(u, xb->qs, tq2 ? 1 : 2, xb->sum);
            __m256 scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb->d));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = avx2_hsum_ps(acc[t]);
}

static inline __attribute__((always_inline)) void
mm_q8(const void *w, size_t k, size_t r0, size_t r1, const bonsai_block_q8 *x, size_t m, float *y,
      size_t ldy, const int tq2)
{
    const size_t nb = k / BONSAI_QK, row_bytes = nb * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
#define ROW(row, t, nt, yt) q8_row(row, x + (t) * nb, nb, nt, yt, ldy, tq2)
    BONSAI_FOR_ROWS_AND_TOKEN_GROUPS(w, row_bytes, r0, r1, m, y, ldy, AVX2_Q8_TOKEN_GROUP, ROW)
#undef ROW
}

void bonsai_avx2_mm_q8_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    mm_q8(w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_avx2_mm_q8_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    mm_q8(w, k, r0, r1, x, m, y, ldy, 1);
}

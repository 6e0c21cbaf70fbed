/* AVX2 kernels for Q1_0_g128 weights: [rows][k/128] blocks of 18 bytes,
 * fp16 d then qs[16]; bit j%8 of qs[j/8] set -> +d, clear -> -d.
 *
 * q8 mode (matches bonsai_ref_mm_q8): per block, the 1-bit identity
 *     sum_j w_j q_j = d_w * (2 * sum_{bit j set} q_j - sum_j q_j)
 * with sum_j q_j taken from the q8 block. 32 bits at a time become 32 bytes
 * of 0/1 (broadcast, vpshufb to the owning byte, and with the bit, min 1);
 * vpmaddubsw + vpmaddwd sum the selected int8 activations in int32, so each
 * block's integer sum is exact and is scaled once by d_w * d_x.
 * f32 mode (matches bonsai_ref_mm_f32): 8 weights at a time, each lane
 * shifts its bit to position 0 (vpsrlvd) and vpermps picks -d or +d from a
 * table, then one FMA per token.
 * Rows are processed one at a time; up to AVX2_Q8_TOKEN_GROUP (q8) or
 * AVX2_TOKEN_GROUP (f32) tokens share each decoded weight vector. */
#include "cpu/avx2/avx2_kernels.h"

#define Q1_BLOCK_BYTES 18

/* 32 sign bits at p -> 32 bytes of 0/1 (byte i = bit i). */
static inline __m256i q1_bits_to_01(const uint8_t *p)
{
    const __m256i owner = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
                                           2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i v = _mm256_shuffle_epi8(avx2_broadcast_u32(p), owner);
    return _mm256_min_epu8(_mm256_and_si256(v, bit), _mm256_set1_epi8(1));
}

/* One row against nt tokens (nt <= AVX2_Q8_TOKEN_GROUP, a constant after
 * inlining): y[t * ldy] = row . x_t. */
static inline __attribute__((always_inline)) void
q1_q8_row(const uint8_t *row, const bonsai_block_q8 *x, size_t nb, const int nt, float *y,
          size_t ldy)
{
    __m256 acc[AVX2_Q8_TOKEN_GROUP];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * Q1_BLOCK_BYTES;
        __m256i u[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            u[c] = q1_bits_to_01(blk + 2 + 4 * c);
        const __m256 dw = _mm256_set1_ps(avx2_load_fp16(blk));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const bonsai_block_q8 *xb = x + (size_t)t * nb + b;
            __m256i s = avx2_block_dot(u, xb->qs, 2, xb->sum); /* 2 S - sum */
            __m256 scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb->d));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = avx2_hsum_ps(acc[t]);
}

void bonsai_avx2_mm_q8_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    const size_t nb = k / BONSAI_QK;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * nb * Q1_BLOCK_BYTES;
        float *yr = y + (r - r0);
        size_t t = 0;
        for (; t + AVX2_Q8_TOKEN_GROUP <= m; t += AVX2_Q8_TOKEN_GROUP)
            q1_q8_row(row, x + t * nb, nb, AVX2_Q8_TOKEN_GROUP, yr + t * ldy, ldy);
        for (; t + AVX2_TOKEN_GROUP <= m; t += AVX2_TOKEN_GROUP)
            q1_q8_row(row, x + t * nb, nb, AVX2_TOKEN_GROUP, yr + t * ldy, ldy);
        switch (m - t) {
        case 3: q1_q8_row(row, x + t * nb, nb, 3, yr + t * ldy, ldy); break;
        case 2: q1_q8_row(row, x + t * nb, nb, 2, yr + t * ldy, ldy); break;
        case 1: q1_q8_row(row, x + t * nb, nb, 1, yr + t * ldy, ldy); break;
        default: break;
        }
    }
}

/* f32 mode: accumulators per token; na chains each so one token still has
 * enough independent FMAs in flight. */
static inline __attribute__((always_inline)) void
q1_f32_row(const uint8_t *row, const float *x, size_t k, const int nt, float *y, size_t ldy)
{
    enum { NA_MAX = 4 };
    const int na = nt >= 3 ? 2 : NA_MAX;
    const __m256i shift[4] = {
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15),
        _mm256_setr_epi32(16, 17, 18, 19, 20, 21, 22, 23),
        _mm256_setr_epi32(24, 25, 26, 27, 28, 29, 30, 31),
    };
    /* index bit 0 is the weight's bit: 0 -> -1, 1 -> +1 */
    const __m256 sign_table = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
    const size_t nb = k / BONSAI_QK;
    __m256 acc[AVX2_TOKEN_GROUP][NA_MAX];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
        for (int a = 0; a < na; a++)
            acc[t][a] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * Q1_BLOCK_BYTES;
        const __m256 table = _mm256_mul_ps(sign_table, _mm256_set1_ps(avx2_load_fp16(blk)));
#pragma GCC unroll 4
        for (int word = 0; word < 4; word++) { // 32 weights per 32-bit word
            const __m256i bits = avx2_broadcast_u32(blk + 2 + 4 * word);
#pragma GCC unroll 4
            for (int part = 0; part < 4; part++) {
                const int chunk = 4 * word + part;
                const __m256 wv = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(bits, shift[part]));
                const size_t j = b * BONSAI_QK + 8 * (size_t)chunk;
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++)
                    acc[t][chunk % na] =
                        _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t)t * k + j), acc[t][chunk % na]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        __m256 s = acc[t][0];
#pragma GCC unroll 4
        for (int a = 1; a < na; a++)
            s = _mm256_add_ps(s, acc[t][a]);
        y[(size_t)t * ldy] = avx2_hsum_ps(s);
    }
}

void bonsai_avx2_mm_f32_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                  size_t m, float *y, size_t ldy)
{
    const size_t nb = k / BONSAI_QK;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * nb * Q1_BLOCK_BYTES;
        float *yr = y + (r - r0);
        size_t t = 0;
        for (; t + AVX2_TOKEN_GROUP <= m; t += AVX2_TOKEN_GROUP)
            q1_f32_row(row, x + t * k, k, AVX2_TOKEN_GROUP, yr + t * ldy, ldy);
        switch (m - t) {
        case 3: q1_f32_row(row, x + t * k, k, 3, yr + t * ldy, ldy); break;
        case 2: q1_f32_row(row, x + t * k, k, 2, yr + t * ldy, ldy); break;
        case 1: q1_f32_row(row, x + t * k, k, 1, yr + t * ldy, ldy); break;
        default: break;
        }
    }
}

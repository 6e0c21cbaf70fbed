/* AVX2 kernels for TQ2_0_g128 weights: [rows][k/128] blocks of 34 bytes,
 * qs[32] then fp16 d; code c = (qs[j/4] >> 2*(j%4)) & 3, 00 -> -d, 01 -> 0,
 * 10 -> +d, 11 -> 0.
 *
 * q8 mode (matches bonsai_ref_mm_q8): each code becomes u = w + 1 in
 * {0, 1, 2} (c ^ ((c & c>>1 & 1) << 1) maps 3 to 1, all 64 fields of a
 * 32-byte load at once); the four 2-bit planes are split with shifts and
 * interleaved back to weight order with byte/word unpacks (a vpermd first
 * makes the in-lane unpacks land in natural order). vpmaddubsw + vpmaddwd
 * give sum_j u_j q_j, and sum_j w_j q_j = that - sum_j q_j (the q8 block's
 * sum), exact in int32, scaled once per block by d_w * d_x.
 * f32 mode (matches bonsai_ref_mm_f32): 8 weights at a time, each lane
 * shifts its code to bits 0-1 (vpsrlvd) and vpermps picks -d, 0 or +d from
 * a table, then one FMA per token.
 * Rows are processed one at a time; up to AVX2_Q8_TOKEN_GROUP (q8) or
 * AVX2_TOKEN_GROUP (f32) tokens share each decoded weight vector. */
#include "cpu/avx2/avx2_kernels.h"

#define TQ2_BLOCK_BYTES 34

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
tq2_q8_row(const uint8_t *row, const bonsai_block_q8 *x, size_t nb, const int nt, float *y,
           size_t ldy)
{
    __m256 acc[AVX2_Q8_TOKEN_GROUP];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * TQ2_BLOCK_BYTES;
        __m256i u[4];
        tq2_codes_to_u(blk, u);
        const __m256 dw = _mm256_set1_ps(avx2_load_fp16(blk + 32));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const bonsai_block_q8 *xb = x + (size_t)t * nb + b;
            __m256i s = avx2_block_dot(u, xb->qs, 1, xb->sum); /* sum (w+1) q - sum q */
            __m256 scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb->d));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = avx2_hsum_ps(acc[t]);
}

void bonsai_avx2_mm_q8_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    const size_t nb = k / BONSAI_QK;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * nb * TQ2_BLOCK_BYTES;
        float *yr = y + (r - r0);
        size_t t = 0;
        for (; t + AVX2_Q8_TOKEN_GROUP <= m; t += AVX2_Q8_TOKEN_GROUP)
            tq2_q8_row(row, x + t * nb, nb, AVX2_Q8_TOKEN_GROUP, yr + t * ldy, ldy);
        for (; t + AVX2_TOKEN_GROUP <= m; t += AVX2_TOKEN_GROUP)
            tq2_q8_row(row, x + t * nb, nb, AVX2_TOKEN_GROUP, yr + t * ldy, ldy);
        switch (m - t) {
        case 3: tq2_q8_row(row, x + t * nb, nb, 3, yr + t * ldy, ldy); break;
        case 2: tq2_q8_row(row, x + t * nb, nb, 2, yr + t * ldy, ldy); break;
        case 1: tq2_q8_row(row, x + t * nb, nb, 1, yr + t * ldy, ldy); break;
        default: break;
        }
    }
}

/* f32 mode: accumulators per token; na chains each so one token still has
 * enough independent FMAs in flight. */
static inline __attribute__((always_inline)) void
tq2_f32_row(const uint8_t *row, const float *x, size_t k, const int nt, float *y, size_t ldy)
{
    enum { NA_MAX = 4 };
    const int na = nt >= 3 ? 2 : NA_MAX;
    const __m256i shift[2] = {
        _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14),
        _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30),
    };
    /* index bits 0-1 are the code (bit 2 belongs to the next code) */
    const __m256 code_table = _mm256_setr_ps(-1, 0, 1, 0, -1, 0, 1, 0);
    const size_t nb = k / BONSAI_QK;
    __m256 acc[AVX2_TOKEN_GROUP][NA_MAX];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
        for (int a = 0; a < na; a++)
            acc[t][a] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * TQ2_BLOCK_BYTES;
        const __m256 table = _mm256_mul_ps(code_table, _mm256_set1_ps(avx2_load_fp16(blk + 32)));
#pragma GCC unroll 8
        for (int word = 0; word < 8; word++) { // 16 weights per 32-bit word
            const __m256i codes = avx2_broadcast_u32(blk + 4 * word);
#pragma GCC unroll 2
            for (int part = 0; part < 2; part++) {
                const int chunk = 2 * word + part;
                const __m256 wv = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(codes, shift[part]));
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

void bonsai_avx2_mm_f32_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                   size_t m, float *y, size_t ldy)
{
    const size_t nb = k / BONSAI_QK;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * nb * TQ2_BLOCK_BYTES;
        float *yr = y + (r - r0);
        size_t t = 0;
        for (; t + AVX2_TOKEN_GROUP <= m; t += AVX2_TOKEN_GROUP)
            tq2_f32_row(row, x + t * k, k, AVX2_TOKEN_GROUP, yr + t * ldy, ldy);
        switch (m - t) {
        case 3: tq2_f32_row(row, x + t * k, k, 3, yr + t * ldy, ldy); break;
        case 2: tq2_f32_row(row, x + t * k, k, 2, yr + t * ldy, ldy); break;
        case 1: tq2_f32_row(row, x + t * k, k, 1, yr + t * ldy, ldy); break;
        default: break;
        }
    }
}

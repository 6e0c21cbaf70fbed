/* AVX2 f32-mode matmul for Q1_0_g128 and TQ2_0_g128 (matches
 * bonsai_ref_mm_f32): y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j], fp32
 * tokens x_t = x + t * k.
 *
 * 8 weights at a time: each lane shifts its bit (Q1) or 2-bit code (TQ2) to
 * the low bits with vpsrlvd, vpermps picks the weight from a table scaled
 * by the block's d (Q1: -d, +d by bit 0; TQ2: -d, 0, +d, 0 by bits 0-1),
 * then one FMA per token. Blocks as in mm_q8.c. Rows are processed one at
 * a time; up to AVX2_TOKEN_GROUP tokens share each weight vector, with na
 * accumulator chains per token so that one token still has enough
 * independent FMAs in flight. */
#include "cpu/token_groups.h"
#include "cpu/avx2/avx2_kernels.h"

#define Q1_BLOCK_BYTES 18
#define TQ2_BLOCK_BYTES 34

static inline __attribute__((always_inline)) void
f32_row(const uint8_t *row, const float *x, size_t k, const int nt, float *y, size_t ldy,
        const int tq2)
{
    enum { NA_MAX = 4 };
    const int na = nt >= 3 ? 2 : NA_MAX;
    /* Q1: a 32-bit word holds 32 weights, 4 parts of 8 (shift by 1 per lane);
     * TQ2: 16 weights, 2 parts of 8 (shift by 2 per lane) */
    const int words = tq2 ? 8 : 4, parts = tq2 ? 2 : 4;
    const __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i shift0 = tq2 ? _mm256_add_epi32(step, step) : step;
    const int part_shift = tq2 ? 16 : 8;
    /* Q1: index bit 0 is the weight's bit; TQ2: bits 0-1 are the code (bit 2
     * belongs to the next weight) */
    const __m256 table0 = tq2 ? _mm256_setr_ps(-1, 0, 1, 0, -1, 0, 1, 0)
                              : _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
    const size_t block_bytes = tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES;
    const size_t nb = k / BONSAI_QK;
    __m256 acc[AVX2_TOKEN_GROUP][NA_MAX];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
        for (int a = 0; a < na; a++)
            acc[t][a] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * block_bytes;
        const uint8_t *codes = blk + (tq2 ? 0 : 2);
        const __m256 table = _mm256_mul_ps(table0, _mm256_set1_ps(avx2_load_fp16(blk + (tq2 ? 32 : 0))));
#pragma GCC unroll 8
        for (int word = 0; word < words; word++) {
            const __m256i bits = avx2_broadcast_u32(codes + 4 * word);
#pragma GCC unroll 4
            for (int part = 0; part < parts; part++) {
                const int chunk = parts * word + part;
                const __m256i sh = _mm256_add_epi32(shift0, _mm256_set1_epi32(part * part_shift));
                const __m256 wv = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(bits, sh));
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

static inline __attribute__((always_inline)) void
mm_f32(const void *w, size_t k, size_t r0, size_t r1, const float *x, size_t m, float *y,
       size_t ldy, const int tq2)
{
    const size_t row_bytes = k / BONSAI_QK * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
#define ROW(row, t, nt, yt) f32_row(row, x + (t) * k, k, nt, yt, ldy, tq2)
    BONSAI_FOR_ROWS_AND_TOKEN_GROUPS(w, row_bytes, r0, r1, m, y, ldy, AVX2_TOKEN_GROUP, ROW)
#undef ROW
}

void bonsai_avx2_mm_f32_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                  size_t m, float *y, size_t ldy)
{
    mm_f32(w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_avx2_mm_f32_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                   size_t m, float *y, size_t ldy)
{
    mm_f32(w, k, r0, r1, x, m, y, ldy, 1);
}

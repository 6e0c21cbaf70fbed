/* NEON f32-mode matmul for Q1_0_g128 and TQ2_0_g128 (matches
 * bonsai_ref_mm_f32): y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j], fp32
 * tokens x_t = x + t * k. Weights become int8 -1/+1 (Q1: vbsl on the bit
 * masks) or -1/0/+1 (TQ2: neon_tq2_weights), are widened to floats times
 * d, and take one FMA per token. Blocks as in mm_q8.c. Rows one at a time;
 * up to NEON_TOKEN_GROUP tokens share each decoded block. */
#include "cpu/token_groups.h"
#include "cpu/neon/neon_kernels.h"

static inline __attribute__((always_inline)) void
f32_row(const uint8_t *row, const float *x, size_t k, const int nt, float *y, size_t ldy,
        const int tq2)
{
    const size_t nb = k / BONSAI_QK;
    float32x4_t acc[NEON_TOKEN_GROUP][4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++)
            acc[t][g] = vdupq_n_f32(0);
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
        int8x16_t wv[8];
        const float dw = neon_block_s8(blk, wv, tq2);
        if (!tq2) /* bit masks -> +1 where set, -1 where clear */
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++)
                wv[c] = vbslq_s8(vreinterpretq_u8_s8(wv[c]), vdupq_n_s8(1), vdupq_n_s8(-1));
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++)
            neon_f32_chunk(wv[c], dw, x, k, b * BONSAI_QK + 16 * (size_t)c, nt, acc);
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = neon_f32_sum(acc[t]);
}

static inline __attribute__((always_inline)) void
mm_f32(const void *w, size_t k, size_t r0, size_t r1, const float *x, size_t m, float *y,
       size_t ldy, const int tq2)
{
    const size_t row_bytes = k / BONSAI_QK * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
#define ROW(row, t, nt, yt) f32_row(row, x + (t) * k, k, nt, yt, ldy, tq2)
    BONSAI_FOR_ROWS_AND_TOKEN_GROUPS(w, row_bytes, r0, r1, m, y, ldy, NEON_TOKEN_GROUP, ROW)
#undef ROW
}

void bonsai_neon_mm_f32_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                  size_t m, float *y, size_t ldy)
{
    mm_f32(w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_neon_mm_f32_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                   size_t m, float *y, size_t ldy)
{
    mm_f32(w, k, r0, r1, x, m, y, ldy, 1);
}

/* NEON kernels (base ARMv8-A, no DOTPROD) for TQ2_0_g128 weights:
 * [rows][k/128] blocks of 34 bytes, qs[32] then fp16 d; code
 * c = (qs[j/4] >> 2*(j%4)) & 3: 00 -> -d, 01 -> 0, 10 -> +d, 11 -> 0.
 *
 * q8 mode (matches bonsai_ref_mm_q8): codes become int8 weights -1/0/+1 in
 * weight order (neon_tq2_weights); w * q never exceeds 127 in magnitude, so
 * vmul on int8 is exact, and vpadal sums pairs into int16 (at most 16 terms
 * of 127 per lane), once per block into int32: each block's integer sum is
 * exact and is scaled once by d_w * d_x. The DOTPROD variant is in
 * q8_dotprod.c.
 * f32 mode (matches bonsai_ref_mm_f32): the same int8 weights widened to
 * floats times d, one FMA per token.
 * Rows one at a time; up to NEON_TOKEN_GROUP tokens share each decoded
 * block. */
#include "cpu/neon/neon_kernels.h"

static inline __attribute__((always_inline)) void
tq2_q8_row(const uint8_t *row, const bonsai_block_q8 *x, size_t nb, const int nt, float *y,
           size_t ldy)
{
    float acc[NEON_TOKEN_GROUP] = {0, 0, 0, 0};
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * TQ2_BLOCK_BYTES;
        int8x16_t wv[8];
        neon_tq2_weights(blk, wv);
        const float dw = neon_load_fp16(blk + 32);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const bonsai_block_q8 *xb = x + (size_t)t * nb + b;
            int16x8_t s16[2] = {vdupq_n_s16(0), vdupq_n_s16(0)};
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) // 16 weights each
                s16[c & 1] = vpadalq_s8(s16[c & 1], vmulq_s8(wv[c], vld1q_s8(xb->qs + 16 * c)));
            const int32_t dot = vaddlvq_s16(vaddq_s16(s16[0], s16[1]));
            acc[t] += dw * xb->d * (float)dot;
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = acc[t];
}

void bonsai_neon_mm_q8_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    const size_t nb = k / BONSAI_QK;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * nb * TQ2_BLOCK_BYTES;
        float *yr = y + (r - r0);
        size_t t = 0;
        for (; t + NEON_TOKEN_GROUP <= m; t += NEON_TOKEN_GROUP)
            tq2_q8_row(row, x + t * nb, nb, NEON_TOKEN_GROUP, yr + t * ldy, ldy);
        switch (m - t) {
        case 3: tq2_q8_row(row, x + t * nb, nb, 3, yr + t * ldy, ldy); break;
        case 2: tq2_q8_row(row, x + t * nb, nb, 2, yr + t * ldy, ldy); break;
        case 1: tq2_q8_row(row, x + t * nb, nb, 1, yr + t * ldy, ldy); break;
        default: break;
        }
    }
}

static inline __attribute__((always_inline)) void
tq2_f32_row(const uint8_t *row, const float *x, size_t k, const int nt, float *y, size_t ldy)
{
    const size_t nb = k / BONSAI_QK;
    float32x4_t acc[NEON_TOKEN_GROUP][4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++)
            acc[t][g] = vdupq_n_f32(0);
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * TQ2_BLOCK_BYTES;
        int8x16_t wv[8];
        neon_tq2_weights(blk, wv);
        const float dw = neon_load_fp16(blk + 32);
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++)
            neon_f32_chunk(wv[c], dw, x, k, b * BONSAI_QK + 16 * (size_t)c, nt, acc);
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = neon_f32_sum(acc[t]);
}

void bonsai_neon_mm_f32_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                   size_t m, float *y, size_t ldy)
{
    const size_t nb = k / BONSAI_QK;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * nb * TQ2_BLOCK_BYTES;
        float *yr = y + (r - r0);
        size_t t = 0;
        for (; t + NEON_TOKEN_GROUP <= m; t += NEON_TOKEN_GROUP)
            tq2_f32_row(row, x + t * k, k, NEON_TOKEN_GROUP, yr + t * ldy, ldy);
        switch (m - t) {
        case 3: tq2_f32_row(row, x + t * k, k, 3, yr + t * ldy, ldy); break;
        case 2: tq2_f32_row(row, x + t * k, k, 2, yr + t * ldy, ldy); break;
        case 1: tq2_f32_row(row, x + t * k, k, 1, yr + t * ldy, ldy); break;
        default: break;
        }
    }
}

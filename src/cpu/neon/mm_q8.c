/* NEON q8-mode matmul (base ARMv8-A, no DOTPROD) for Q1_0_g128 and
 * TQ2_0_g128 (matches bonsai_ref_mm_q8): y[t * ldy + (r - r0)] =
 * sum_j W[r][j] x_t[j], x_t as k/128 q8 blocks. The DOTPROD variant is in
 * q8_dotprod.c.
 *   Q1 (18-byte blocks, fp16 d then qs[16]; bit set -> +d, clear -> -d):
 *     the 1-bit identity sum_j w_j q_j = d_w (2 sum_{bit set} q_j - sum q)
 *     with sum q from the q8 block; bits become byte masks (vtbl copies each
 *     byte 8 times, vtst picks its bit) that select the int8 activations.
 *   TQ2 (34-byte blocks, qs[32] then fp16 d; code 00 -> -d, 01 -> 0, 10 ->
 *     +d, 11 -> 0): codes become int8 weights -1/0/+1 in weight order
 *     (neon_tq2_weights); |w q| <= 127, so vmul on int8 is exact.
 * Products are summed pairwise with vpadal into int16 (at most 16 terms of
 * 127 per lane) and once per block into int32: each block's integer sum is
 * exact and is scaled once by d_w * d_x. Rows one at a time; up to
 * NEON_TOKEN_GROUP tokens share each decoded block. */
#include "cpu/token_groups.h"
#include "cpu/neon/neon_kernels.h"

static inline __attribute__((always_inline)) void
q8_row(const uint8_t *row, const bonsai_block_q8 *x, size_t nb, const int nt, float *y,
       size_t ldy, const int tq2)
{
    float acc[NEON_TOKEN_GROUP] = {0, 0, 0, 0};
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
        int8x16_t wv[8]; /* TQ2: weights; Q1: -1 where a bit is set, else 0 */
        const float dw = neon_block_s8(blk, wv, tq2);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const bonsai_block_q8 *xb = x + (size_t)t * nb + b;
            int16x8_t s16[2] = {vdupq_n_s16(0), vdupq_n_s16(0)};
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) { // 16 weights each
                const int8x16_t q = vld1q_s8(xb->qs + 16 * c);
                s16[c & 1] = vpadalq_s8(s16[c & 1], tq2 ? vmulq_s8(wv[c], q) : vandq_s8(q, wv[c]));
            }
            const int32_t s = vaddlvq_s16(vaddq_s16(s16[0], s16[1]));
            /* TQ2: the dot product; Q1: the sum over set bits */
            acc[t] += dw * xb->d * (float)(tq2 ? s : 2 * s - xb->sum);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = acc[t];
}

static inline __attribute__((always_inline)) void
mm_q8(const void *w, size_t k, size_t r0, size_t r1, const bonsai_block_q8 *x, size_t m, float *y,
      size_t ldy, const int tq2)
{
    const size_t nb = k / BONSAI_QK, row_bytes = nb * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
#define ROW(row, t, nt, yt) q8_row(row, x + (t) * nb, nb, nt, yt, ldy, tq2)
    BONSAI_FOR_ROWS_AND_TOKEN_GROUPS(w, row_bytes, r0, r1, m, y, ldy, NEON_TOKEN_GROUP, ROW)
#undef ROW
}

void bonsai_neon_mm_q8_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    mm_q8(w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_neon_mm_q8_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    mm_q8(w, k, r0, r1, x, m, y, ldy, 1);
}

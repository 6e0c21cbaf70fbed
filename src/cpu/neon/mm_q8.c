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
 * exact and is scaled once by d_w * d_x. The kernel is neon_mm_q8
 * (neon_kernels.h), built here without DOTPROD; rows one at a time, up to
 * NEON_TOKEN_GROUP tokens sharing each decoded block. */
#include "cpu/neon/neon_kernels.h"

void bonsai_neon_mm_q8_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    neon_mm_q8(w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_neon_mm_q8_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    neon_mm_q8(w, k, r0, r1, x, m, y, ldy, 1);
}

/* NEON q8-mode kernels with DOTPROD (SDOT), for Q1_0_g128 and TQ2_0_g128.
 * This file alone is compiled with +dotprod; bonsai_cpu_fill_neon installs
 * these only when the CPU reports DOTPROD (HWCAP_ASIMDDP).
 *
 * Q1_0_g128 (18-byte blocks, fp16 d then 128 sign bits): the byte masks of
 * neon_q1_masks are -1 where a bit is set, so SDOT of the activations with
 * the masks gives -sum_{bit set} q_j, and the block dot is
 * d_w * d_x * (2 * sum_{bit set} q_j - sum_j q_j) with sum_j q_j from the
 * q8 block. TQ2_0_g128 (34-byte blocks, 128 2-bit codes then fp16 d): SDOT
 * of the activations with the int8 weights -1/0/+1 of neon_tq2_weights.
 * Integer sums per block are exact in int32; both match bonsai_ref_mm_q8.
 * The kernel is neon_mm_q8 (neon_kernels.h), whose block sums take SDOT
 * in this file; rows one at a time, up to NEON_TOKEN_GROUP tokens sharing
 * each decoded block. */
#include "cpu/neon/neon_kernels.h"

void bonsai_neon_mm_q8_q1_0_g128_dotprod(const void *w, size_t k, size_t r0, size_t r1,
                                         const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    neon_mm_q8(w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_neon_mm_q8_tq2_0_g128_dotprod(const void *w, size_t k, size_t r0, size_t r1,
                                          const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    neon_mm_q8(w, k, r0, r1, x, m, y, ldy, 1);
}

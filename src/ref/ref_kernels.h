/* Internal: scalar reference kernels, the oracle every fast tier must match.
 * Clear, never clever. Shapes as in src/cpu/kernel_table.h. */
#ifndef BONSAI_REF_KERNELS_H
#define BONSAI_REF_KERNELS_H
#include "cpu/kernel_table.h"

/* f32 mode: weights dequantized per block, fp32 products and sums. Works for
 * every quantized type in the traits table. */
void bonsai_ref_mm_f32(bonsai_type type, const void *w, size_t k, size_t r0, size_t r1,
                       const float *x, size_t m, float *y, size_t ldy);
/* q8 mode: integer weight codes times int8 activations, summed in int32 per
 * block and scaled by d_w * d_x. Q1_0_G128, TQ2_0_G128, PQ2_0, Q2_0_G64. */
void bonsai_ref_mm_q8(bonsai_type type, const void *w, size_t k, size_t r0, size_t r1,
                      const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
/* d = max|x| / 127, q = round(x / d), sum = sum q. */
void bonsai_ref_quantize_q8(const float *x, size_t k, bonsai_block_q8 *out);
/* h = silu(g) * u = g / (1 + e^-g) * u, n elements. */
void bonsai_ref_silu_mul(const float *g, const float *u, float *h, size_t n);
/* RMSNorm (contract and summation order in kernel_table.h). */
void bonsai_ref_rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y);
/* Attention for a group of query rows (contract in kernel_table.h), any D,
 * one per cache type; ref_attention.c. */
extern const bonsai_attn_group_fn bonsai_ref_attn_group[BONSAI_CACHE_TYPES];

#endif

/* Internal: the NEON tier's kernels and the weight decoders they share.
 * Included only by the files of src/cpu/neon. Those are compiled for plain
 * ARMv8-A (NEON is part of every AArch64 core) except *_dotprod.c, which
 * are built with +dotprod and run only when the CPU reports DOTPROD. Every
 * helper here is static inline and uses base NEON only, so it is safe in
 * both, except neon_block_sum, which takes SDOT where the file is built
 * with DOTPROD. Kernel shapes as in src/cpu/kernel_table.h. */
#ifndef BONSAI_CPU_NEON_KERNELS_H
#define BONSAI_CPU_NEON_KERNELS_H
#include <arm_neon.h>
#include <string.h>

#include "cpu/kernel_table.h"
#include "cpu/token_groups.h"

#define Q1_BLOCK_BYTES 18
#define TQ2_BLOCK_BYTES 34
/* Tokens handled together by one pass over a weight row. */
#define NEON_TOKEN_GROUP 4

/* base NEON (q1_0_g128.c, tq2_0_g128.c, convert.c) */
void bonsai_neon_mm_q8_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
void bonsai_neon_mm_f32_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                  size_t m, float *y, size_t ldy);
void bonsai_neon_mm_q8_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
void bonsai_neon_mm_f32_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                   size_t m, float *y, size_t ldy);
void bonsai_neon_quantize_q8(const float *x, size_t k, bonsai_block_q8 *out);
void bonsai_neon_fp16_to_fp32(const uint16_t *src, float *dst, size_t n);
void bonsai_neon_fp32_to_fp16(const float *src, uint16_t *dst, size_t n);
void bonsai_neon_rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y);
/* attention.c: group kernels per cache type, D % 16 == 0 */
extern const bonsai_attn_group_fn bonsai_neon_attn_group[BONSAI_CACHE_TYPES];
/* DOTPROD (q8_dotprod.c): call only when the CPU has it */
void bonsai_neon_mm_q8_q1_0_g128_dotprod(const void *w, size_t k, size_t r0, size_t r1,
                                         const bonsai_block_q8 *x, size_t m, float *y,
                                         size_t ldy);
void bonsai_neon_mm_q8_tq2_0_g128_dotprod(const void *w, size_t k, size_t r0, size_t r1,
                                          const bonsai_block_q8 *x, size_t m, float *y,
                                          size_t ldy);

static inline float neon_load_fp16(const uint8_t *p)
{
    uint16_t h[4] = {0, 0, 0, 0};
    memcpy(h, p, 2);
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h))), 0);
}

/* The 128 sign bits of a Q1_0_g128 block -> m[c]: 0xff where the bit of
 * weight 16c + i is set, 0 where clear (vtst on each byte, copied 8 times). */
static inline void neon_q1_masks(const uint8_t *qs, uint8x16_t m[8])
{
    static const uint8_t bit_of[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bits = vld1q_u8(qs), sel = vld1q_u8(bit_of);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        const uint8x16_t owner = vcombine_u8(vdup_n_u8((uint8_t)(2 * c)), vdup_n_u8((uint8_t)(2 * c + 1)));
        m[c] = vtstq_u8(vqtbl1q_u8(bits, owner), sel);
    }
}

/* The 128 2-bit codes of a TQ2_0_g128 block -> w[c]: int8 weights -1/0/+1 of
 * weights 16c..16c+15. Each half of 16 bytes splits into four planes
 * (plane p holds weight 4i+p at byte i), a table maps code -> weight and
 * zips put the planes back in weight order. */
static inline void neon_tq2_weights(const uint8_t *qs, int8x16_t w[8])
{
    static const int8_t code_value[16] = {-1, 0, 1, 0};
    const int8x16_t table = vld1q_s8(code_value);
    const uint8x16_t m3 = vdupq_n_u8(3);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const uint8x16_t v = vld1q_u8(qs + 16 * h);
        const int8x16_t p0 = vqtbl1q_s8(table, vandq_u8(v, m3));
        const int8x16_t p1 = vqtbl1q_s8(table, vandq_u8(vshrq_n_u8(v, 2), m3));
        const int8x16_t p2 = vqtbl1q_s8(table, vandq_u8(vshrq_n_u8(v, 4), m3));
        const int8x16_t p3 = vqtbl1q_s8(table, vshrq_n_u8(v, 6));
        const int16x8_t e_lo = vreinterpretq_s16_s8(vzip1q_s8(p0, p1));
        const int16x8_t e_hi = vreinterpretq_s16_s8(vzip2q_s8(p0, p1));
        const int16x8_t f_lo = vreinterpretq_s16_s8(vzip1q_s8(p2, p3));
        const int16x8_t f_hi = vreinterpretq_s16_s8(vzip2q_s8(p2, p3));
        w[4 * h + 0] = vreinterpretq_s8_s16(vzip1q_s16(e_lo, f_lo));
        w[4 * h + 1] = vreinterpretq_s8_s16(vzip2q_s16(e_lo, f_lo));
        w[4 * h + 2] = vreinterpretq_s8_s16(vzip1q_s16(e_hi, f_hi));
        w[4 * h + 3] = vreinterpretq_s8_s16(vzip2q_s16(e_hi, f_hi));
    }
}

/* One block's 128 weights as int8 in weight order, and its scale d:
 * TQ2_0_g128 the weights -1/0/+1 (neon_tq2_weights); Q1_0_g128 the bit masks
 * as int8, -1 where the bit is set (weight +d) and 0 where clear (-d). */
static inline __attribute__((always_inline)) float neon_block_s8(const uint8_t *blk,
                                                                 int8x16_t w[8], const int tq2)
{
    if (tq2) {
        neon_tq2_weights(blk, w);
        return neon_load_fp16(blk + 32);
    }
    uint8x16_t m[8];
    neon_q1_masks(blk + 2, m);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
        w[c] = vreinterpretq_s8_u8(m[c]);
    return neon_load_fp16(blk);
}

/* 16 int8 weights times d -> 4 x 4 floats (exact: the weights are small
 * integers). */
static inline void neon_weights_to_f32(int8x16_t w, float d, float32x4_t out[4])
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(w)), hi = vmovl_high_s8(w);
    out[0] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d);
    out[1] = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d);
    out[2] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d);
    out[3] = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d);
}

/* f32 mode for any format once its block is decoded to int8 weights:
 * acc[t][.] += w * x_t over 16 weights at x offset j (4 chains per token,
 * 2 when 3 or 4 tokens keep enough FMAs in flight; unused chains stay 0). */
static inline __attribute__((always_inline)) void
neon_f32_chunk(int8x16_t w, float d, const float *x, size_t k, size_t j, const int nt,
               float32x4_t acc[NEON_TOKEN_GROUP][4])
{
    const int chains = nt >= 3 ? 2 : 4;
    float32x4_t wf[4];
    neon_weights_to_f32(w, d, wf);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++)
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            acc[t][g % chains] = vfmaq_f32(acc[t][g % chains], wf[g],
                                           vld1q_f32(x + (size_t)t * k + j + 4 * (size_t)g));
}

static inline float neon_f32_sum(const float32x4_t a[4])
{
    return vaddvq_f32(vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3])));
}

/* The exact integer sum of a block decoded by neon_block_s8 with its 128
 * q8 activations: TQ2 sum_j w_j q_j; Q1 the sum of q over the set bits
 * (w = -1 there, else 0). With DOTPROD (the *_dotprod.c files) 8 SDOTs in
 * two chains; else AND (Q1) or multiply (TQ2, |w q| <= 127, exact in int8)
 * and pairwise adds into int16 (at most 16 terms of 127 per lane). */
static inline __attribute__((always_inline)) int32_t neon_block_sum(const int8x16_t w[8],
                                                                    const int8_t *q, const int tq2)
{
#ifdef __ARM_FEATURE_DOTPROD
    int32x4_t s[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
        s[c & 1] = vdotq_s32(s[c & 1], w[c], vld1q_s8(q + 16 * c));
    const int32_t dot = vaddvq_s32(vaddq_s32(s[0], s[1]));
    return tq2 ? dot : -dot;
#else
    int16x8_t s16[2] = {vdupq_n_s16(0), vdupq_n_s16(0)};
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        const int8x16_t v = vld1q_s8(q + 16 * c);
        s16[c & 1] = vpadalq_s8(s16[c & 1], tq2 ? vmulq_s8(w[c], v) : vandq_s8(v, w[c]));
    }
    return vaddlvq_s16(vaddq_s16(s16[0], s16[1]));
#endif
}

/* One row of q8 blocks against nt tokens (a constant at each call): each
 * block decoded once for all of them, its integer sum scaled once by
 * d_w * d_x (Q1 through the 1-bit identity d_w d_x (2 S - sum q)). */
static inline __attribute__((always_inline)) void
neon_q8_row(const uint8_t *row, const bonsai_block_q8 *x, size_t nb, const int nt, float *y,
            size_t ldy, const int tq2)
{
    float acc[NEON_TOKEN_GROUP] = {0, 0, 0, 0};
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const uint8_t *blk = row + b * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
        int8x16_t wv[8];
        const float dw = neon_block_s8(blk, wv, tq2);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const bonsai_block_q8 *xb = x + (size_t)t * nb + b;
            const int32_t s = neon_block_sum(wv, xb->qs, tq2);
            acc[t] += dw * xb->d * (float)(tq2 ? s : 2 * s - xb->sum);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = acc[t];
}

/* The q8 mm kernel (kernel_table.h) of either format on neon_q8_row. */
static inline __attribute__((always_inline)) void
neon_mm_q8(const void *w, size_t k, size_t r0, size_t r1, const bonsai_block_q8 *x, size_t m,
           float *y, size_t ldy, const int tq2)
{
    const size_t nb = k / BONSAI_QK, row_bytes = nb * (tq2 ? TQ2_BLOCK_BYTES : Q1_BLOCK_BYTES);
#define NEON_Q8_ROW(row, t, nt, yt) neon_q8_row(row, x + (t) * nb, nb, nt, yt, ldy, tq2)
    BONSAI_FOR_ROWS_AND_TOKEN_GROUPS(w, row_bytes, r0, r1, m, y, ldy, NEON_TOKEN_GROUP,
                                     NEON_Q8_ROW)
#undef NEON_Q8_ROW
}

#endif

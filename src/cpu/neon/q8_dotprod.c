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
 * Rows one at a time; up to NEON_TOKEN_GROUP tokens share each decoded
 * block. */
#include "cpu/token_groups.h"
#include "cpu/neon/neon_kernels.h"

/* sum over 128 int8 pairs: 8 SDOTs in two chains */
static inline int32_t dot128(const int8x16_t w[8], const int8_t *q)
{
    int32x4_t s[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
        s[c & 1] = vdotq_s32(s[c & 1], w[c], vld1q_s8(q + 16 * c));
    return vaddvq_s32(vaddq_s32(s[0], s[1]));
}

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
            const int32_t s = dot128(wv, xb->qs); /* Q1: -sum over set bits */
            acc[t] += dw * xb->d * (float)(tq2 ? s : -2 * s - xb->sum);
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

void bonsai_neon_mm_q8_q1_0_g128_dotprod(const void *w, size_t k, size_t r0, size_t r1,
                                         const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    mm_q8(w, k, r0, r1, x, m, y, ldy, 0);
}

void bonsai_neon_mm_q8_tq2_0_g128_dotprod(const void *w, size_t k, size_t r0, size_t r1,
                                          const bonsai_block_q8 *x, size_t m, float *y,
                                          size_t ldy)
{
    mm_q8(w, k, r0, r1, x, m, y, ldy, 1);
}

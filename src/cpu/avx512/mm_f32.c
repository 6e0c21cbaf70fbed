/* AVX-512 f32-mode matmul: y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j] for
 * rows [r0, r1) of a [rows][k] Q1_0_G128 or TQ2_0_G128 matrix and fp32
 * tokens x_t = x + t * k, t in [0, m). fp32 products and sums, matching
 * bonsai_ref_mm_f32 (src/ref/ref_kernels.c) to fp32 rounding.
 *
 * Q1: with S = sum of x_j over set bits and X = sum of all x_j in the block,
 * sum_j w_j x_j = d * (2 S - X). Each 16 sign bits load as a __mmask16 and a
 * merge-masked vaddps adds the selected activations: one instruction per 16
 * weights; X is shared by the four rows of a pass.
 * TQ2: per 16 codes (one dword, broadcast) three vptestm give the masks of
 * code 10 (+1) and code 00 (-1); two masked adds accumulate them apart.
 * One token at a time (its activations stay in L1), four rows per pass. */
#include "cpu/avx512/avx512_internal.h"

/* 8 x 16 activations of block b and their lane-wise sum. */
AVX512_INLINE __m512 load_block(const float *xb, __m512 xv[8])
{
    UNROLL for (int c = 0; c < 8; c++)
        xv[c] = _mm512_loadu_ps(xb + 16 * c);
    __m512 a = _mm512_add_ps(_mm512_add_ps(xv[0], xv[1]), _mm512_add_ps(xv[2], xv[3]));
    __m512 b = _mm512_add_ps(_mm512_add_ps(xv[4], xv[5]), _mm512_add_ps(xv[6], xv[7]));
    return _mm512_add_ps(a, b);
}

AVX512_INLINE void q1_rows(const uint8_t *row, size_t row_bytes, const float *x, size_t nb,
                           float *out, const int R)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    const __m512 two = _mm512_set1_ps(2.0f);
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        __m512 xv[8];
        const __m512 all = load_block(x + 128 * b, xv);
        UNROLL for (int r = 0; r < R; r++) { // [R rows]
            const uint8_t *blk = row + (size_t)r * row_bytes + b * Q1_BLOCK_BYTES;
            __m512 s0 = _mm512_maskz_mov_ps(load_mask16(blk + 2), xv[0]);
            __m512 s1 = _mm512_maskz_mov_ps(load_mask16(blk + 4), xv[1]);
            UNROLL for (int c = 2; c < 8; c += 2) {
                s0 = _mm512_mask_add_ps(s0, load_mask16(blk + 2 + 2 * c), s0, xv[c]);
                s1 = _mm512_mask_add_ps(s1, load_mask16(blk + 4 + 2 * c), s1, xv[c + 1]);
            }
            __m512 t = _mm512_fmsub_ps(_mm512_add_ps(s0, s1), two, all);
            acc[r] = _mm512_fmadd_ps(t, load_scale16(blk), acc[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        out[r] = _mm512_reduce_add_ps(acc[r]);
}

AVX512_INLINE void tq2_rows(const uint8_t *row, size_t row_bytes, const float *x, size_t nb,
                            float *out, const int R)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    /* lane i: the bits of code i of a dword */
    const __m512i lane = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i lo = _mm512_sllv_epi32(_mm512_set1_epi32(1), lane);
    const __m512i hi = _mm512_sllv_epi32(_mm512_set1_epi32(2), lane);
    const __m512i both = _mm512_or_si512(lo, hi);
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const float *xb = x + 128 * b;
        UNROLL for (int r = 0; r < R; r++) { // [R rows]
            const uint8_t *blk = row + (size_t)r * row_bytes + b * TQ2_BLOCK_BYTES;
            __m512 plus = _mm512_setzero_ps(), minus = _mm512_setzero_ps();
            UNROLL for (int c = 0; c < 8; c++) { // [8 x 16 codes]
                int32_t word;
                memcpy(&word, blk + 4 * c, 4);
                const __m512i q = _mm512_set1_epi32(word);
                const __m512 xv = _mm512_loadu_ps(xb + 16 * c);
                __mmask16 h = _mm512_test_epi32_mask(q, hi);
                __mmask16 p = _mm512_mask_testn_epi32_mask(h, q, lo); /* code 10 */
                __mmask16 z = _mm512_testn_epi32_mask(q, both);       /* code 00 */
                plus = _mm512_mask_add_ps(plus, p, plus, xv);
                minus = _mm512_mask_add_ps(minus, z, minus, xv);
            }
            acc[r] = _mm512_fmadd_ps(_mm512_sub_ps(plus, minus), load_scale16(blk + 32), acc[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        out[r] = _mm512_reduce_add_ps(acc[r]);
}

/* One token: rows [r0, r1) in passes of 4, then the 1-3 left. */
AVX512_INLINE void token(bonsai_type type, const uint8_t *w, size_t k, size_t r0, size_t r1,
                         const float *x, float *y)
{
    const size_t nb = k / 128;
    const size_t row_bytes = nb * (type == BONSAI_TYPE_Q1_0_G128 ? Q1_BLOCK_BYTES : TQ2_BLOCK_BYTES);
    for (size_t r = r0; r < r1; r += 4) { // [rows / 4]
        const size_t n = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *row = w + r * row_bytes;
        float *out = y + (r - r0);
        if (type == BONSAI_TYPE_Q1_0_G128) {
            if (n == 4)
                q1_rows(row, row_bytes, x, nb, out, 4);
            else if (n == 3)
                q1_rows(row, row_bytes, x, nb, out, 3);
            else if (n == 2)
                q1_rows(row, row_bytes, x, nb, out, 2);
            else
                q1_rows(row, row_bytes, x, nb, out, 1);
        } else {
            if (n == 4)
                tq2_rows(row, row_bytes, x, nb, out, 4);
            else if (n == 3)
                tq2_rows(row, row_bytes, x, nb, out, 3);
            else if (n == 2)
                tq2_rows(row, row_bytes, x, nb, out, 2);
            else
                tq2_rows(row, row_bytes, x, nb, out, 1);
        }
    }
}

void bonsai_avx512_mm_f32_q1(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                             size_t m, float *y, size_t ldy)
{
    for (size_t t = 0; t < m; t++) // [m tokens]
        token(BONSAI_TYPE_Q1_0_G128, w, k, r0, r1, x + t * k, y + t * ldy);
}

void bonsai_avx512_mm_f32_tq2(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                              size_t m, float *y, size_t ldy)
{
    for (size_t t = 0; t < m; t++) // [m tokens]
        token(BONSAI_TYPE_TQ2_0_G128, w, k, r0, r1, x + t * k, y + t * ldy);
}

/* AVX-512 f32-mode matmul: y[t * ldy + (r - r0)] = sum_j W[r][j] x_t[j] for
 * rows [r0, r1) of a [rows][k] Q1_0_G128 or TQ2_0_G128 matrix and fp32
 * tokens x_t = x + t * k, t in [0, m). fp32 products and sums, matching
 * bonsai_ref_mm_f32 (src/ref/ref_kernels.c) to fp32 rounding.
 *
 * Q1: per 32 weights one dword of sign bits is broadcast; a vpsrlvd puts
 * bit i (or 16 + i) in lane i's bit 0 and a vpermps turns it into -1 or +1
 * for an fma (measured faster than __mmask16 loads + masked adds, which
 * queue on the mask-register moves).
 * TQ2: the same with 16 two-bit codes per dword: a vpsrlvd puts code i in lane
 * i's low bits and a vpermps turns it into the weight -1, 0 or +1 for an
 * fma.
 * One token at a time (its activations stay in L1), four rows per pass. */
#include "cpu/avx512/avx512_internal.h"

AVX512_INLINE void q1_rows(const uint8_t *row, size_t row_bytes, const float *x, size_t nb,
                           float *out, const int R)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    /* lane i shifts bit i (low half) or 16 + i (high half) of a dword to
     * bit 0; vpermps then reads -1 or +1 from the low 4 index bits */
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(16));
    const __m512 value = _mm512_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        __m512 xv[8];
        UNROLL for (int c = 0; c < 8; c++)
            xv[c] = _mm512_loadu_ps(x + 128 * b + 16 * c);
        UNROLL for (int r = 0; r < R; r++) { // [R rows]
            const uint8_t *blk = row + (size_t)r * row_bytes + b * Q1_BLOCK_BYTES;
            __m512 s[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            UNROLL for (int c = 0; c < 8; c += 2) { // [4 x 32 signs]
                int32_t word;
                memcpy(&word, blk + 2 + 2 * c, 4);
                const __m512i q = _mm512_set1_epi32(word);
                s[0] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(q, lo), value),
                                       xv[c], s[0]);
                s[1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(q, hi), value),
                                       xv[c + 1], s[1]);
            }
            acc[r] = _mm512_fmadd_ps(_mm512_add_ps(s[0], s[1]), load_scale16(blk), acc[r]);
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
    /* lane i shifts code i of a dword to bits 0-1; vpermps then reads the
     * weight from the low 4 index bits (the next code in bits 2-3 is
     * ignored by the table) */
    const __m512i shifts =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 value = _mm512_setr_ps(-1, 0, 1, 0, -1, 0, 1, 0, -1, 0, 1, 0, -1, 0, 1, 0);
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        __m512 xv[8];
        UNROLL for (int c = 0; c < 8; c++)
            xv[c] = _mm512_loadu_ps(x + 128 * b + 16 * c);
        UNROLL for (int r = 0; r < R; r++) { // [R rows]
            const uint8_t *blk = row + (size_t)r * row_bytes + b * TQ2_BLOCK_BYTES;
            __m512 s[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            UNROLL for (int c = 0; c < 8; c++) { // [8 x 16 codes]
                int32_t word;
                memcpy(&word, blk + 4 * c, 4);
                const __m512i idx = _mm512_srlv_epi32(_mm512_set1_epi32(word), shifts);
                s[c & 1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx, value), xv[c], s[c & 1]);
            }
            acc[r] = _mm512_fmadd_ps(_mm512_add_ps(s[0], s[1]), load_scale16(blk + 32), acc[r]);
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

/* Internal to the AVX-512 tier: the pieces of the Q1_0_G128 one-token
 * GEMV by table lookup that both of its weight layouts share (the file's
 * row-major blocks, gemv_q1_tables.c; 32-row panels, gemv_q1_panels.c):
 * the activation tables, the 32-row transpose of sign bits, the lookups and
 * the per-block scaling. The method is described in gemv_q1_tables.c. */
#ifndef BONSAI_CPU_AVX512_Q1_LOOKUP_H
#define BONSAI_CPU_AVX512_Q1_LOOKUP_H
#include "cpu/avx512/avx512_internal.h"

#define PASS_ROWS 32
#define TABLE_BYTES 32
#define TABLES_PER_BLOCK 32

/* Dword lane n: byte j = bit j of n, multiplied with the 4 broadcast
 * activation bytes of a group. */
AVX512_INLINE __m512i table_pattern(void)
{
    return _mm512_setr_epi32(0x00000000, 0x00000001, 0x00000100, 0x00000101, 0x00010000,
                             0x00010001, 0x00010100, 0x00010101, 0x01000000, 0x01000001,
                             0x01000100, 0x01000101, 0x01010000, 0x01010001, 0x01010100,
                             0x01010101);
}

AVX512_INLINE void prep(const bonsai_block_q8 *x, size_t k, uint8_t *tables, const int vnni)
{
    const __m512i pattern = table_pattern();
    for (size_t b = 0; b < k / 128; b++) // [k / 128]
        UNROLL for (int g = 0; g < TABLES_PER_BLOCK; g++) {
            int32_t v;
            memcpy(&v, x[b].qs + 4 * g, 4);
            const __m512i e = dot_u8s8(_mm512_setzero_si512(), pattern, _mm512_set1_epi32(v), vnni);
            _mm256_store_si256((__m256i *)(tables + (b * TABLES_PER_BLOCK + g) * TABLE_BYTES),
                               _mm512_cvtepi32_epi16(e));
        }
}

/* Table i of t, its 16 words in both halves of a vector. */
AVX512_INLINE __m512i table_at(const uint8_t *t, int i)
{
    return _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)(t + (size_t)i * TABLE_BYTES)));
}

/* z[j] holds rows j, 8 + j, 16 + j, 24 + j (one per 128-bit lane, 8 words
 * each); afterwards z[w] holds word w of row i in word lane i. */
AVX512_INLINE void transpose_rows(__m512i z[8])
{
    __m512i t[8], u[8];
    UNROLL for (int i = 0; i < 4; i++) {
        t[i] = _mm512_unpacklo_epi16(z[2 * i], z[2 * i + 1]);
        t[4 + i] = _mm512_unpackhi_epi16(z[2 * i], z[2 * i + 1]);
    }
    /* t[i]: words 0-3 of rows 2i, 2i+1 interleaved; t[4 + i]: words 4-7 */
    UNROLL for (int h = 0; h < 2; h++) {
        u[4 * h + 0] = _mm512_unpacklo_epi32(t[4 * h + 0], t[4 * h + 1]);
        u[4 * h + 1] = _mm512_unpackhi_epi32(t[4 * h + 0], t[4 * h + 1]);
        u[4 * h + 2] = _mm512_unpacklo_epi32(t[4 * h + 2], t[4 * h + 3]);
        u[4 * h + 3] = _mm512_unpackhi_epi32(t[4 * h + 2], t[4 * h + 3]);
    }
    /* u[4h + s]: words 4h + 2(s&1) .. +1 of rows 0-3 (s < 2) or 4-7 (s >= 2) */
    UNROLL for (int h = 0; h < 2; h++)
        UNROLL for (int s = 0; s < 2; s++) {
            z[4 * h + 2 * s] = _mm512_unpacklo_epi64(u[4 * h + s], u[4 * h + 2 + s]);
            z[4 * h + 2 * s + 1] = _mm512_unpackhi_epi64(u[4 * h + s], u[4 * h + 2 + s]);
        }
}

/* Address of row i of a pass: rows are rb bytes apart; a last, partial
 * pass (full = 0) reads row R - 1 in place of the rows past it. */
AVX512_INLINE const uint8_t *row_at(const uint8_t *base, size_t rb, int i, int R, const int full)
{
    return base + (size_t)(full || i < R ? i : R - 1) * rb;
}

/* 16 bytes at off of each of the 32 rows, transposed (see above). */
AVX512_INLINE void load_transposed(const uint8_t *base, size_t rb, int R, size_t off, __m512i z[8],
                                   const int full)
{
    UNROLL for (int j = 0; j < 8; j++) {
        const uint8_t *p[4];
        UNROLL for (int l = 0; l < 4; l++)
            p[l] = row_at(base, rb, 8 * l + j, R, full) + off;
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p[0]));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p[1]), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p[2]), 2);
        z[j] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p[3]), 3);
    }
    transpose_rows(z);
}

/* acc + the lookups of the 4 nibbles of z's words in tables 0..3 of t. */
AVX512_INLINE __m512i lookup_word(__m512i acc, __m512i z, const uint8_t *t)
{
    /* vpermw reads index bits 0-4; bit 4 picks a copy of the table */
    const __m512i l0 = _mm512_permutexvar_epi16(z, table_at(t, 0));
    const __m512i l1 = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 4), table_at(t, 1));
    const __m512i l2 = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 8), table_at(t, 2));
    const __m512i l3 = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 12), table_at(t, 3));
    return _mm512_add_epi16(acc, _mm512_add_epi16(_mm512_add_epi16(l0, l1), _mm512_add_epi16(l2, l3)));
}

/* p[h] (rows 16 h .. 16 h + 15) += block sums times scales: s16 the 32 rows'
 * int16 subset sums S, dw16 their fp16 scales, xb the activations' block. */
AVX512_INLINE void finish_block(__m512i s16, __m512i dw16, const bonsai_block_q8 *xb, __m512 p[2])
{
    const __m512 dx = _mm512_set1_ps(xb->d);
    const __m512i sum = _mm512_set1_epi32(xb->sum);
    UNROLL for (int h = 0; h < 2; h++) {
        const __m512i s = _mm512_cvtepi16_epi32(h ? _mm512_extracti64x4_epi64(s16, 1)
                                                  : _mm512_castsi512_si256(s16));
        const __m512i isum = _mm512_sub_epi32(_mm512_add_epi32(s, s), sum); /* 2 S - sum q */
        const __m512 dw = _mm512_cvtph_ps(h ? _mm512_extracti64x4_epi64(dw16, 1)
                                            : _mm512_castsi512_si256(dw16));
        p[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, dx), p[h]);
    }
}

/* A pass's R <= 32 sums p (rows 16 h .. 16 h + 15 in p[h]) into y: stored
 * (first k chunk) or added to y. */
AVX512_INLINE void store_pass(const __m512 p[2], int R, float *y, int first)
{
    UNROLL for (int h = 0; h < 2; h++) {
        const int n = R - 16 * h < 0 ? 0 : R - 16 * h > 16 ? 16 : R - 16 * h;
        const __mmask16 valid = (__mmask16)((1u << n) - 1);
        __m512 v = p[h];
        if (!first)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(valid, y + 16 * h));
        _mm512_mask_storeu_ps(y + 16 * h, valid, v);
    }
}

#endif

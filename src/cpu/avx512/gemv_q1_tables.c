/* AVX-512 q8 GEMV (one token) for Q1_0_G128 by table lookup:
 * y[r - r0] = sum_j W[r][j] x[j] for rows [r0, r1) of a [rows][k] matrix, x
 * given as k/128 q8 blocks. Matches bonsai_ref_mm_q8 (src/ref/ref_kernels.c)
 * with m = 1: exact int32 sums per block, scaled by d_w * d_x, summed in
 * fp32 in the order of Q8_CHUNK_BLOCKS (avx512_internal.h), which the GEMM
 * shares, so one token and many give bitwise the same outputs.
 *
 * Tables, built once per call (prep) and read by every row: one per group
 * of 4 weights, 16 int16 entries (32 bytes), entry n = the sum of the
 * activations q[4g + j] whose bit j of n is set (|.| <= 4 * 127). The
 * nibble of a row's sign bits for group g then looks up S_g = the sum of q
 * over the set bits, and the block's dot product is 2 sum_g S_g - sum(q)
 * (bit 1 = +1, bit 0 = -1; sum q is bonsai_block_q8.sum). An entry is the
 * u8 x s8 dot product (dot_u8s8) of the nibble's bits with the group's 4
 * activation bytes: 16 entries from one broadcast and one vpdpbusd.
 *
 * A pass takes 32 rows. Per block it loads each row's 16 bytes of sign
 * bits, transposes them so that word lane i holds row i (8x8 16-bit
 * transposes inside 128-bit lanes: 24 unpacks), and for every nibble of
 * every word does one shift, one vpermw (the lookup for all 32 rows; the
 * table is broadcast to both halves of the vector, so index bit 4 does not
 * matter) and one 16-bit add. The 32 block sums stay in int16
 * (<= 32 * 508), are widened, scaled and accumulated in two fp32 vectors
 * of 16 rows. The tables take 8 bytes per k: 16 KB at k = 2048, in L1.
 * Each pass prefetches its rows' counterparts in the next pass (32 rows
 * further) every other block. Measurements: bench/NOTES.md, "GEMV by table
 * lookup". */
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

/* fp16 scales at off of the 32 rows, word lane i = row i. */
AVX512_INLINE __m512i load_scales(const uint8_t *base, size_t rb, int R, size_t off, const int full)
{
    uint64_t dh[8];
    UNROLL for (int q = 0; q < 8; q++) {
        dh[q] = 0;
        UNROLL for (int i = 0; i < 4; i++)
            dh[q] |= (uint64_t)load_u16(row_at(base, rb, 4 * q + i, R, full) + off) << (16 * i);
    }
    return _mm512_set_epi64((long long)dh[7], (long long)dh[6], (long long)dh[5], (long long)dh[4],
                            (long long)dh[3], (long long)dh[2], (long long)dh[1], (long long)dh[0]);
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

/* Rows base + i rb, i < R <= 32 (only R are stored), blocks [0, nb) of a
 * chunk (base, x and tables already at the chunk's first block); prefetch:
 * whether 32 more rows follow. y[i] = partial sum (first chunk) or y[i] +
 * partial sum. */
AVX512_INLINE void pass(const uint8_t *base, size_t rb, int R, int prefetch,
                        const bonsai_block_q8 *x, const uint8_t *tables, size_t nb, float *y,
                        int first, const int full)
{
    __m512 p[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t b = 0; b < nb; b++) { // [chunk blocks]
        const size_t off = b * Q1_BLOCK_BYTES;
        /* every other block: 36-byte steps touch every line of a row */
        if (prefetch && b % 2 == 0)
            UNROLL for (int i = 0; i < PASS_ROWS; i++)
                _mm_prefetch((const char *)(base + (size_t)(PASS_ROWS + i) * rb + off), _MM_HINT_T0);
        const uint8_t *t = tables + b * TABLES_PER_BLOCK * TABLE_BYTES;
        __m512i z[8];
        load_transposed(base, rb, R, off + 2, z, full);
        __m512i s16 = _mm512_setzero_si512();
        UNROLL for (int j = 0; j < 8; j++)
            s16 = lookup_word(s16, z[j], t + (size_t)(4 * j) * TABLE_BYTES);
        finish_block(s16, load_scales(base, rb, R, off, full), x + b, p);
    }
    UNROLL for (int h = 0; h < 2; h++) {
        const int n = R - 16 * h < 0 ? 0 : R - 16 * h > 16 ? 16 : R - 16 * h;
        const __mmask16 valid = (__mmask16)((1u << n) - 1);
        __m512 v = p[h];
        if (!first)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(valid, y + 16 * h));
        _mm512_mask_storeu_ps(y + 16 * h, valid, v);
    }
}

/* Passes outer, k chunks inner: a pass's rows are streamed in full, in
 * address order, before the next pass (chunks outer re-walked every row
 * once per chunk; 2048x6144 cold went 73-79 -> 67-76 us, bench/NOTES.md
 * "Decode: where the time went"). y[i] holds chunk 0's sum, then y[i] +
 * each next chunk's: the order the GEMM sums in. */
void bonsai_avx512_gemv_q8_q1(const void *w, size_t k, size_t r0, size_t r1,
                              const bonsai_block_q8 *x, const void *tables, float *y)
{
    const size_t nb = k / 128, row_bytes = nb * Q1_BLOCK_BYTES;
    for (size_t r = r0; r < r1; r += PASS_ROWS) { // [rows / 32]
        const int R = r1 - r < PASS_ROWS ? (int)(r1 - r) : PASS_ROWS;
        const int prefetch = r + 2 * PASS_ROWS <= r1; /* a full pass follows */
        for (size_t c0 = 0; c0 < nb; c0 += Q8_CHUNK_BLOCKS) { // [k / (128 * chunk)]
            const size_t cn = nb - c0 < Q8_CHUNK_BLOCKS ? nb - c0 : Q8_CHUNK_BLOCKS;
            const uint8_t *wc = (const uint8_t *)w + r * row_bytes + c0 * Q1_BLOCK_BYTES;
            const uint8_t *tc = (const uint8_t *)tables + c0 * TABLES_PER_BLOCK * TABLE_BYTES;
            if (R == PASS_ROWS)
                pass(wc, row_bytes, R, prefetch, x + c0, tc, cn, y + (r - r0), c0 == 0, 1);
            else
                pass(wc, row_bytes, R, 0, x + c0, tc, cn, y + (r - r0), c0 == 0, 0);
        }
    }
}

void bonsai_avx512_gemv_q8_prep_q1_vnni(const bonsai_block_q8 *x, size_t k, void *tables)
{
    prep(x, k, tables, 1);
}

void bonsai_avx512_gemv_q8_prep_q1_bw(const bonsai_block_q8 *x, size_t k, void *tables)
{
    prep(x, k, tables, 0);
}

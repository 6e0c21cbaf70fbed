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
#include "cpu/avx512/q1_lookup.h"

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
    store_pass(p, R, y, first);
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

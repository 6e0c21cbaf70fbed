/* AVX-512 q8 GEMV (one token), TQ2_0_G128: y[r - r0] = sum_j W[r][j] * x[j]
 * for rows [r0, r1) of a [rows][k] matrix, x given as k/128 q8 blocks.
 * Matches bonsai_ref_mm_q8 (src/ref/ref_kernels.c) with m = 1: exact int32
 * sums per block, scaled by d_w * d_x, summed in fp32 in the order of
 * Q8_CHUNK_BLOCKS (avx512_internal.h), which the GEMM shares. (Q1_0_G128
 * has its own, table-driven GEMV: gemv_q1_tables.c; the same tables were
 * slower here, bench/NOTES.md "GEMV by table lookup".)
 *
 * Each 2-bit code becomes u = w + 1
 * (00 -> 0, 01 -> 1, 10 -> 2, 11 -> 1) with one vpsrlvq, one vpand and one
 * vpshufb per 64 codes; the codes then come out in the order "code 4i + s
 * at position 16s + i", so the activations are permuted the same way once
 * per chunk, and again sum u q - sum q is the dot product.
 *
 * 16 rows per pass share the activation loads; their 16 int32 vectors are
 * reduced exactly into one vector (lane = row), so the scale step (cvt,
 * mul, fma) runs once per 16 rows. The 16 fp16 scales are loaded as scalars
 * and packed four per 64-bit register, then moved into one vector: cheaper
 * than two vpgatherqd per block and than a stack array whose 32-byte reload
 * waits on 16 narrow stores (see bench/NOTES.md, "gemv2").
 * Each row prefetches its counterpart of the next pass (16 short row
 * streams defeat the hardware prefetcher when the weights come from DRAM:
 * cold 4096x4096 Q1 went from 355 to 132 us on one core). */
#include "cpu/avx512/avx512_internal.h"

#define PASS_ROWS 16

/* TQ2 codes -> unsigned weight + 1 (00 -> 0, 01 -> 1, 10 -> 2, 11 -> 1), as a
 * vpshufb table indexed by a code in the low two bits. */
AVX512_INLINE __m512i tq2_code_lut(void)
{
    return _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1));
}

/* Lane sums of 16 vectors: lane p of the result = sum of the 16 lanes of
 * a[p]. Exact (int32); 45 shuffles and adds. */
AVX512_INLINE __m512i reduce16_epi32(const __m512i a[16])
{
    __m512i t[8], u[4], v[2];
    UNROLL for (int q = 0; q < 8; q++) /* lane L: [a2q, a2q+1, a2q, a2q+1] partials */
        t[q] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * q], a[2 * q + 1]),
                                _mm512_unpackhi_epi32(a[2 * q], a[2 * q + 1]));
    UNROLL for (int q = 0; q < 4; q++) /* lane L: [a4q .. a4q+3] partials of lane L */
        u[q] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * q], t[2 * q + 1]),
                                _mm512_unpackhi_epi64(t[2 * q], t[2 * q + 1]));
    UNROLL for (int q = 0; q < 2; q++)
        v[q] = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2 * q], u[2 * q + 1], 0x88),
                                _mm512_shuffle_i32x4(u[2 * q], u[2 * q + 1], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(v[0], v[1], 0x88),
                            _mm512_shuffle_i32x4(v[0], v[1], 0xDD));
}

/* 64 codes at p -> u = code + 1 mapping, permuted order (see above). */
AVX512_INLINE __m512i tq2_half_u(const uint8_t *p)
{
    const __m512i shifts = _mm512_setr_epi64(0, 0, 2, 2, 4, 4, 6, 6);
    __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p));
    q = _mm512_and_si512(_mm512_srlv_epi64(q, shifts), _mm512_set1_epi8(3));
    return _mm512_shuffle_epi8(tq2_code_lut(), q);
}

AVX512_INLINE void tq2_block_u(const uint8_t *blk, __m512i u[2])
{
    u[0] = tq2_half_u(blk);
    u[1] = tq2_half_u(blk + 16);
}

/* One 64-byte half of a block reordered so position 16s + i holds byte
 * 4i + s: a 4x4 byte transpose inside each 128-bit lane, then a 4x4 dword
 * transpose across lanes. */
AVX512_INLINE __m512i tq2_permute_half(__m512i v)
{
    const __m512i in_lane = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    const __m512i across = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_epi32(across, _mm512_shuffle_epi8(v, in_lane));
}

/* Rows [0, R) of a pass (R <= 16, row i at row + i * row_bytes), blocks
 * [0, nb) of a chunk, w and x already offset to the chunk's first block;
 * xp: the chunk's activations in weight order.
 * y[i] = partial sum (first chunk) or y[i] + partial sum. */
AVX512_INLINE void pass(const uint8_t *row, size_t row_bytes, int R, const int8_t *xp, size_t nb,
                        const bonsai_block_q8 *x, float *y, int first, const int vnni)
{
    const size_t bb = TQ2_BLOCK_BYTES;
    const __mmask16 valid = (__mmask16)((1u << R) - 1);
    __m512 p = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) { // [chunk blocks]
        const __m512i xv[2] = {_mm512_load_si512(xp + 128 * b),
                               _mm512_load_si512(xp + 128 * b + 64)};
        __m512i a[PASS_ROWS];
        /* fp16 scale of row i's block b in bits [16 (i % 4), +16) of dh[i / 4] */
        uint64_t dh[PASS_ROWS / 4] = {0};
        UNROLL for (int i = 0; i < PASS_ROWS; i++) { // [16 rows]
            if (i >= R) {
                a[i] = _mm512_setzero_si512();
                continue;
            }
            const uint8_t *blk = row + (size_t)i * row_bytes + b * bb;
            dh[i / 4] |= (uint64_t)load_u16(blk + 32) << (16 * (i % 4));
            /* this row of the next pass: 34-byte steps touch every line */
            _mm_prefetch((const char *)(blk + PASS_ROWS * row_bytes), _MM_HINT_T0);
            __m512i u[2];
            tq2_block_u(blk, u);
            a[i] = dot2_u8s8(_mm512_setzero_si512(), u[0], xv[0], u[1], xv[1], vnni);
        }
        const __m512i isum = _mm512_sub_epi32(reduce16_epi32(a), _mm512_set1_epi32(x[b].sum));
        const __m512 dw = _mm512_cvtph_ps(_mm256_set_epi64x((long long)dh[3], (long long)dh[2],
                                                            (long long)dh[1], (long long)dh[0]));
        p = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(x[b].d)), p);
    }
    if (!first)
        p = _mm512_add_ps(p, _mm512_maskz_loadu_ps(valid, y));
    _mm512_mask_storeu_ps(y, valid, p);
}

AVX512_INLINE void gemv(const uint8_t *w, size_t k, size_t r0, size_t r1,
                        const bonsai_block_q8 *x, float *y, const int vnni)
{
    _Alignas(64) int8_t xp[Q8_CHUNK_BLOCKS * 128];
    const size_t nb = k / 128, bb = TQ2_BLOCK_BYTES, row_bytes = nb * bb;
    for (size_t c0 = 0; c0 < nb; c0 += Q8_CHUNK_BLOCKS) { // [k / (128 * chunk)]
        const size_t cn = nb - c0 < Q8_CHUNK_BLOCKS ? nb - c0 : Q8_CHUNK_BLOCKS;
        for (size_t b = 0; b < cn; b++)
            UNROLL for (int h = 0; h < 2; h++)
                _mm512_store_si512(xp + 128 * b + 64 * h, tq2_permute_half(_mm512_loadu_si512(
                                                              x[c0 + b].qs + 64 * h)));
        const uint8_t *wc = w + c0 * bb;
        size_t r = r0;
        for (; r + PASS_ROWS <= r1; r += PASS_ROWS) // [rows / 16]
            pass(wc + r * row_bytes, row_bytes, PASS_ROWS, xp, cn, x + c0, y + (r - r0), c0 == 0,
                 vnni);
        if (r < r1)
            pass(wc + r * row_bytes, row_bytes, (int)(r1 - r), xp, cn, x + c0, y + (r - r0),
                 c0 == 0, vnni);
    }
}

void bonsai_avx512_gemv_q8_tq2_vnni(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                    const bonsai_block_q8 *x, float *y)
{
    gemv(w, k, r0, r1, x, y, 1);
}

void bonsai_avx512_gemv_q8_tq2_bw(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, float *y)
{
    gemv(w, k, r0, r1, x, y, 0);
}

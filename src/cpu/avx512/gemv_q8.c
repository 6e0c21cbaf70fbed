/* AVX-512 q8 GEMV (one token): y[r - r0] = sum_j W[r][j] * x[j] for rows
 * [r0, r1) of a [rows][k] Q1_0_G128 or TQ2_0_G128 matrix, x given as k/128
 * q8 blocks. Matches bonsai_ref_mm_q8 (src/ref/ref_kernels.c) with m = 1:
 * exact int32 sums per block, scaled by d_w * d_x and summed in fp32.
 *
 * Q1: the 128 sign bits of a block are two __mmask64; a zero-masked move of
 * the byte 2 gives u = 2 * bit (0 or 2) without ever unpacking bits, and
 * sum_j u_j q_j - sum_j q_j = sum_j (2 bit_j - 1) q_j is the dot product;
 * the -sum q term (bonsai_block_q8.sum) seeds lane 0 of the int32
 * accumulator. TQ2: each 2-bit code c becomes u = w + 1 (00 -> 0, 01 -> 1,
 * 10 -> 2, 11 -> 1) with one vpsrlvq, one vpand and one vpshufb per 64
 * codes; the codes then come out in the order "4i + s at position 16s + i",
 * so the activations are permuted the same way once per call, and again
 * sum u q - sum q is the dot product.
 *
 * Four rows per pass share the activation loads. Per block and row the int32
 * lanes are converted and scaled once (the scales differ per block). */
#include "cpu/avx512/avx512_internal.h"

/* ---- Q1_0_G128 -------------------------------------------------------- */

/* R (1..4) rows starting at row, all nb blocks; out[r] = dot of row r. */
AVX512_INLINE void q1_rows(const uint8_t *row, size_t row_bytes, const bonsai_block_q8 *x,
                           size_t nb, float *out, const int R, const int vnni)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    const __m512i two = _mm512_set1_epi8(2);
    for (size_t b = 0; b < nb; b++) { // [k / 128]
        const bonsai_block_q8 *xb = x + b;
        const __m512i x0 = _mm512_loadu_si512(xb->qs), x1 = _mm512_loadu_si512(xb->qs + 64);
        const __m512i seed = _mm512_maskz_set1_epi32(1, -xb->sum);
        const __m512 dx = _mm512_set1_ps(xb->d);
        for (int r = 0; r < R; r++) { // [R rows]
            const uint8_t *blk = row + (size_t)r * row_bytes + b * Q1_BLOCK_BYTES;
            __m512i u0 = _mm512_maskz_mov_epi8(load_mask64(blk + 2), two);
            __m512i u1 = _mm512_maskz_mov_epi8(load_mask64(blk + 10), two);
            __m512i s = dot2_u8s8(seed, u0, x0, u1, x1, vnni);
            __m512 scale = _mm512_mul_ps(load_scale16(blk), dx);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[r]);
        }
    }
    for (int r = 0; r < R; r++)
        out[r] = _mm512_reduce_add_ps(acc[r]);
}

AVX512_INLINE void gemv_q1(const uint8_t *w, size_t k, size_t r0, size_t r1,
                           const bonsai_block_q8 *x, float *y, const int vnni)
{
    const size_t nb = k / 128, row_bytes = nb * Q1_BLOCK_BYTES;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) // [rows / 4]
        q1_rows(w + r * row_bytes, row_bytes, x, nb, y + (r - r0), 4, vnni);
    switch (r1 - r) {
    case 3:
        q1_rows(w + r * row_bytes, row_bytes, x, nb, y + (r - r0), 3, vnni);
        break;
    case 2:
        q1_rows(w + r * row_bytes, row_bytes, x, nb, y + (r - r0), 2, vnni);
        break;
    case 1:
        q1_rows(w + r * row_bytes, row_bytes, x, nb, y + (r - r0), 1, vnni);
        break;
    default:
        break;
    }
}

void bonsai_avx512_gemv_q8_q1_vnni(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                   const bonsai_block_q8 *x, float *y)
{
    gemv_q1(w, k, r0, r1, x, y, 1);
}

void bonsai_avx512_gemv_q8_q1_bw(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, float *y)
{
    gemv_q1(w, k, r0, r1, x, y, 0);
}

/* ---- TQ2_0_G128 ------------------------------------------------------- */

/* Activation blocks per pass: the permuted copy lives on the stack. */
#define TQ2_CHUNK_BLOCKS 64

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

/* u = code + 1 mapping of 64 codes (16 bytes at p) in permuted order. */
AVX512_INLINE __m512i tq2_unpack_half(const uint8_t *p, __m512i shifts, __m512i lut)
{
    __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p));
    q = _mm512_and_si512(_mm512_srlv_epi64(q, shifts), _mm512_set1_epi8(3));
    return _mm512_shuffle_epi8(lut, q);
}

/* R (1..4) rows, nb blocks with permuted activations xp[nb][128]. */
AVX512_INLINE void tq2_rows(const uint8_t *row, size_t row_bytes, const bonsai_block_q8 *x,
                            const int8_t *xp, size_t nb, float *out, const int R, const int vnni)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    const __m512i shifts = _mm512_setr_epi64(0, 0, 2, 2, 4, 4, 6, 6);
    const __m512i lut = tq2_code_lut();
    for (size_t b = 0; b < nb; b++) { // [chunk blocks]
        const __m512i x0 = _mm512_load_si512(xp + 128 * b);
        const __m512i x1 = _mm512_load_si512(xp + 128 * b + 64);
        const __m512i seed = _mm512_maskz_set1_epi32(1, -x[b].sum);
        const __m512 dx = _mm512_set1_ps(x[b].d);
        for (int r = 0; r < R; r++) { // [R rows]
            const uint8_t *blk = row + (size_t)r * row_bytes + b * TQ2_BLOCK_BYTES;
            __m512i u0 = tq2_unpack_half(blk, shifts, lut);
            __m512i u1 = tq2_unpack_half(blk + 16, shifts, lut);
            __m512i s = dot2_u8s8(seed, u0, x0, u1, x1, vnni);
            __m512 scale = _mm512_mul_ps(load_scale16(blk + 32), dx);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[r]);
        }
    }
    for (int r = 0; r < R; r++)
        out[r] = _mm512_reduce_add_ps(acc[r]);
}

AVX512_INLINE void gemv_tq2(const uint8_t *w, size_t k, size_t r0, size_t r1,
                            const bonsai_block_q8 *x, float *y, const int vnni)
{
    _Alignas(64) int8_t xp[TQ2_CHUNK_BLOCKS * 128];
    const size_t nb = k / 128, row_bytes = nb * TQ2_BLOCK_BYTES;
    for (size_t c0 = 0; c0 < nb; c0 += TQ2_CHUNK_BLOCKS) { // [k / (128 * chunk)]
        const size_t cn = nb - c0 < TQ2_CHUNK_BLOCKS ? nb - c0 : TQ2_CHUNK_BLOCKS;
        for (size_t b = 0; b < cn; b++)
            for (int h = 0; h < 2; h++)
                _mm512_store_si512(xp + 128 * b + 64 * h,
                                   tq2_permute_half(_mm512_loadu_si512(x[c0 + b].qs + 64 * h)));
        const uint8_t *wc = w + c0 * TQ2_BLOCK_BYTES;
        for (size_t r = r0; r < r1; r += 4) { // [rows / 4]
            float part[4];
            const size_t n = r1 - r < 4 ? r1 - r : 4;
            const uint8_t *row = wc + r * row_bytes;
            if (n == 4)
                tq2_rows(row, row_bytes, x + c0, xp, cn, part, 4, vnni);
            else if (n == 3)
                tq2_rows(row, row_bytes, x + c0, xp, cn, part, 3, vnni);
            else if (n == 2)
                tq2_rows(row, row_bytes, x + c0, xp, cn, part, 2, vnni);
            else
                tq2_rows(row, row_bytes, x + c0, xp, cn, part, 1, vnni);
            for (size_t i = 0; i < n; i++)
                y[r - r0 + i] = c0 == 0 ? part[i] : y[r - r0 + i] + part[i];
        }
    }
}

void bonsai_avx512_gemv_q8_tq2_vnni(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                    const bonsai_block_q8 *x, float *y)
{
    gemv_tq2(w, k, r0, r1, x, y, 1);
}

void bonsai_avx512_gemv_q8_tq2_bw(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, float *y)
{
    gemv_tq2(w, k, r0, r1, x, y, 0);
}

/* Internal: the AVX2 tier's kernels and the small helpers they share.
 * Included only by the files of src/cpu/avx2, which are compiled with
 * -mavx2 -mfma -mf16c; every helper is static inline so no AVX2 code
 * reaches generic files. Kernel shapes as in src/cpu/kernel_table.h. */
#ifndef BONSAI_CPU_AVX2_KERNELS_H
#define BONSAI_CPU_AVX2_KERNELS_H
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cpu/kernel_table.h"

void bonsai_avx2_mm_q8_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
void bonsai_avx2_mm_f32_q1_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                  size_t m, float *y, size_t ldy);
void bonsai_avx2_mm_q8_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
void bonsai_avx2_mm_f32_tq2_0_g128(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                   size_t m, float *y, size_t ldy);
void bonsai_avx2_quantize_q8(const float *x, size_t k, bonsai_block_q8 *out);
void bonsai_avx2_fp16_to_fp32(const uint16_t *src, float *dst, size_t n);
void bonsai_avx2_fp32_to_fp16(const float *src, uint16_t *dst, size_t n);
void bonsai_avx2_rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y);
/* attention.c: group kernels per cache type, D % 16 == 0 */
extern const bonsai_attn_group_fn bonsai_avx2_attn_group[BONSAI_CACHE_TYPES];

/* Tokens handled together by one pass over a weight row: f32 mode, and q8
 * mode (whose accumulators are one register per token; groups of 8, then 4,
 * then the 1..3 left). */
#define AVX2_TOKEN_GROUP 4
#define AVX2_Q8_TOKEN_GROUP 8

static inline float avx2_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* fp16 scale stored little-endian at p. */
static inline float avx2_load_fp16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

static inline __m256i avx2_broadcast_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32((int)v);
}

/* Sum over 32 bytes of u (unsigned, <= 2) times q (int8), as 8 int32 lanes
 * once the four pair sums are added by the caller; no saturation since
 * |pair sum| <= 2 * 2 * 127. */
static inline __m256i avx2_dot_u8_s8_pairs(__m256i u, const int8_t *q)
{
    return _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)q));
}

/* Block dot of 128 unsigned weight codes u[4] with the int8 activations q:
 * sum_j u_j q_j - bias, in the 8 int32 lanes of the result (the bias goes
 * into lane 0). |sum| <= 128 * 2 * 127, so int16 pair sums of 4 chunks fit. */
static inline __m256i avx2_block_dot(const __m256i u[4], const int8_t *q, int32_t scale_u,
                                     int32_t bias)
{
    __m256i s = _mm256_add_epi16(
        _mm256_add_epi16(avx2_dot_u8_s8_pairs(u[0], q), avx2_dot_u8_s8_pairs(u[1], q + 32)),
        _mm256_add_epi16(avx2_dot_u8_s8_pairs(u[2], q + 64), avx2_dot_u8_s8_pairs(u[3], q + 96)));
    __m256i s32 = _mm256_madd_epi16(s, _mm256_set1_epi16((short)scale_u));
    return _mm256_sub_epi32(s32, _mm256_zextsi128_si256(_mm_cvtsi32_si128(bias)));
}

#endif

/* AVX2 conversions: q8 quantization of fp32 activations and bulk
 * fp16 <-> fp32 (F16C).
 *
 * quantize_q8: k floats (k % 128 == 0) -> k/128 bonsai_block_q8, exactly
 * bonsai_ref_quantize_q8: d = max|x| / 127 (the same float division),
 * q = round-to-nearest-even(x * (1/d)) via vcvtps2dq under the default
 * MXCSR rounding, sum = sum of q. |x * (1/d)| <= 127 * (1 + 2^-22), so no
 * clamp is needed and the pack's saturation never acts.
 * fp16 <-> fp32: vcvtph2ps / vcvtps2ph (round to nearest even), 8 at a
 * time, the tail one by one; bit-exact with bonsai_fp16_to_fp32 /
 * bonsai_fp32_to_fp16 except NaN payloads (a NaN stays a NaN). */
#include "cpu/avx2/avx2_kernels.h"

static inline float hmax_ps(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

void bonsai_avx2_quantize_q8(const float *x, size_t k, bonsai_block_q8 *out)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    /* packs interleave 4-element groups per lane; this restores order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t b = 0; b < k / BONSAI_QK; b++, x += BONSAI_QK) {
        __m256 v[16];
        __m256 vmax = _mm256_setzero_ps();
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            vmax = _mm256_max_ps(vmax, _mm256_and_ps(v[i], abs_mask));
        }
        const float d = hmax_ps(vmax) / 127.0f;
        const __m256 inv = _mm256_set1_ps(d > 0 ? 1.0f / d : 0.0f);
        __m256i sum = _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int i = 0; i < 16; i += 4) { // 32 codes per store
            __m256i q[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i + j], inv));
                sum = _mm256_add_epi32(sum, q[j]);
            }
            __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]),
                                                _mm256_packs_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(out[b].qs + 8 * i),
                                _mm256_permutevar8x32_epi32(packed, order));
        }
        out[b].d = d;
        out[b].sum = hsum_epi32(sum);
    }
}

void bonsai_avx2_fp16_to_fp32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

void bonsai_avx2_fp32_to_fp16(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

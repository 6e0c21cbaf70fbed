/* NEON conversions (base ARMv8-A): q8 quantization of fp32 activations and
 * bulk fp16 <-> fp32.
 *
 * quantize_q8: k floats (k % 128 == 0) -> k/128 bonsai_block_q8, exactly
 * bonsai_ref_quantize_q8: d = max|x| / 127 (the same float division),
 * q = round-to-nearest-even(x * (1/d)) (FCVTNS), sum = sum of q.
 * |x * (1/d)| <= 127 * (1 + 2^-22), so the saturating narrows never act.
 * fp16 <-> fp32: FCVTL / FCVTN (vcvt_f32_f16 / vcvt_f16_f32, round to
 * nearest even under the default FPCR), 8 at a time, the tail through a
 * padded vector; bit-exact with bonsai_fp16_to_fp32 / bonsai_fp32_to_fp16
 * except NaN payloads (a NaN stays a NaN). */
#include "cpu/neon/neon_kernels.h"

void bonsai_neon_quantize_q8(const float *x, size_t k, bonsai_block_q8 *out)
{
    for (size_t b = 0; b < k / BONSAI_QK; b++, x += BONSAI_QK) {
        float32x4_t v[32];
        float32x4_t vmax = vdupq_n_f32(0);
#pragma GCC unroll 32
        for (int i = 0; i < 32; i++) {
            v[i] = vld1q_f32(x + 4 * i);
            vmax = vmaxq_f32(vmax, vabsq_f32(v[i]));
        }
        const float d = vmaxvq_f32(vmax) / 127.0f;
        const float inv = d > 0 ? 1.0f / d : 0.0f;
        int32x4_t sum = vdupq_n_s32(0);
#pragma GCC unroll 8
        for (int i = 0; i < 32; i += 4) { // 16 codes per store
            int32x4_t q[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                q[j] = vcvtnq_s32_f32(vmulq_n_f32(v[i + j], inv));
                sum = vaddq_s32(sum, q[j]);
            }
            const int16x8_t lo = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            const int16x8_t hi = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            vst1q_s8(out[b].qs + 4 * i, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
        }
        out[b].d = d;
        out[b].sum = vaddvq_s32(sum);
    }
}

void bonsai_neon_fp16_to_fp32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(src + i));
        vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(h)));
        vst1q_f32(dst + i + 4, vcvt_high_f32_f16(h));
    }
    for (; i < n; i += 4) {
        uint16_t h[4] = {0, 0, 0, 0};
        float f[4];
        const size_t left = n - i < 4 ? n - i : 4;
        memcpy(h, src + i, left * sizeof *h);
        vst1q_f32(f, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h))));
        memcpy(dst + i, f, left * sizeof *f);
    }
}

void bonsai_neon_fp32_to_fp16(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x4_t lo = vcvt_f16_f32(vld1q_f32(src + i));
        vst1q_u16(dst + i, vreinterpretq_u16_f16(vcvt_high_f16_f32(lo, vld1q_f32(src + i + 4))));
    }
    for (; i < n; i += 4) {
        float f[4] = {0, 0, 0, 0};
        uint16_t h[4];
        const size_t left = n - i < 4 ? n - i : 4;
        memcpy(f, src + i, left * sizeof *f);
        vst1_u16(h, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(f))));
        memcpy(dst + i, h, left * sizeof *h);
    }
}

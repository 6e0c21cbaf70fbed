/* NEON attention kernel for one group of query rows sharing a KV head
 * (contract in src/cpu/kernel_table.h; D % 16 == 0), over an fp32, fp16
 * (FCVTL) or q8 cache (a q8 row's scale multiplies its scores and, folded
 * into the softmax weights, its values). Instantiated per row count (1..4)
 * so absent rows cost nothing. Scores: each key row loaded once for the
 * group's dot products, 8 dimensions per step; softmax with a 4-lane exp
 * polynomial; the weighted sum of value rows keeps 16 dimensions of every
 * row's output in registers while it walks the value rows. Matches
 * src/ref/ref_attention.c to fp32 rounding. */
#include <math.h>

#include "cpu/neon/neon_kernels.h"

#define NEON_INLINE static inline __attribute__((always_inline))

/* 8 elements of a cache row from element i, as floats (a q8 row unscaled). */
NEON_INLINE void load8(const void *row, size_t i, const bonsai_cache_type type,
                       float32x4_t out[2])
{
    if (type == BONSAI_CACHE_F16) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16((const uint16_t *)row + i));
        out[0] = vcvt_f32_f16(vget_low_f16(h));
        out[1] = vcvt_f32_f16(vget_high_f16(h));
    } else if (type == BONSAI_CACHE_Q8) {
        const int16x8_t w = vmovl_s8(vld1_s8((const int8_t *)row + i));
        out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
        out[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
    } else {
        out[0] = vld1q_f32((const float *)row + i);
        out[1] = vld1q_f32((const float *)row + i + 4);
    }
}

/* e^x for x <= 0, 4 lanes: x = n ln2 + r, |r| <= ln2 / 2, e^r by its
 * degree-7 Taylor polynomial, times 2^n through the exponent bits; below
 * -87 the result is 0. */
NEON_INLINE float32x4_t exp_neg4(float32x4_t x)
{
    const uint32x4_t keep = vcgeq_f32(x, vdupq_n_f32(-87.0f));
    x = vmaxq_f32(x, vdupq_n_f32(-87.0f));
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.0f / 5040);
    static const float c[] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
    for (int i = 0; i < 7; i++)
        p = vfmaq_f32(vdupq_n_f32(c[i]), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    const float32x4_t v = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), keep));
}

/* scores[r][j] = (q[r] . K[j]) * scale (* k_scale[j]) for j < n_max, r < R */
NEON_INLINE void scores_pass(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,
                             float scale, float *scores, size_t stride, size_t n_max, const int R,
                             const bonsai_cache_type type)
{
    const size_t row_bytes = (size_t)D * bonsai_cache_elem_bytes(type);
    for (size_t j = 0; j < n_max; j++) { // [keys]
        const char *k = (const char *)kv->k + j * row_bytes;
        float32x4_t acc[BONSAI_ATTN_ROWS][2];
        for (int r = 0; r < R; r++)
            acc[r][0] = acc[r][1] = vdupq_n_f32(0);
        for (uint32_t d = 0; d < D; d += 8) { // [D / 8]
            float32x4_t kr[2];
            load8(k, d, type, kr);
            for (int r = 0; r < R; r++) {
                acc[r][0] = vfmaq_f32(acc[r][0], vld1q_f32(g->q[r] + d), kr[0]);
                acc[r][1] = vfmaq_f32(acc[r][1], vld1q_f32(g->q[r] + d + 4), kr[1]);
            }
        }
        const float row_scale = type == BONSAI_CACHE_Q8 ? kv->k_scale[j] * scale : scale;
        for (int r = 0; r < R; r++)
            scores[(size_t)r * stride + j] = vaddvq_f32(vaddq_f32(acc[r][0], acc[r][1])) * row_scale;
    }
}

/* scores[r][0 .. n_keys[r]) -> exp(s - max) (times v_scale[j] when given),
 * [n_keys[r], n_max) -> 0; 1 / sum of the exponentials per row in inv */
NEON_INLINE void softmax_pass(const bonsai_attn_group *g, float *scores, size_t stride,
                              size_t n_max, const float *v_scale, float inv[BONSAI_ATTN_ROWS],
                              const int R)
{
    for (int r = 0; r < R; r++) {
        float *s = scores + (size_t)r * stride;
        const size_t n = g->n_keys[r], n4 = n / 4 * 4;
        float mx = -INFINITY;
        for (size_t j = 0; j < n; j++)
            mx = s[j] > mx ? s[j] : mx;
        const float32x4_t mv = vdupq_n_f32(mx);
        float32x4_t sum4 = vdupq_n_f32(0);
        size_t j = 0;
        for (; j < n4; j += 4) { // [n / 4]
            const float32x4_t e = exp_neg4(vsubq_f32(vld1q_f32(s + j), mv));
            sum4 = vaddq_f32(sum4, e);
            vst1q_f32(s + j, v_scale ? vmulq_f32(e, vld1q_f32(v_scale + j)) : e);
        }
        float sum = vaddvq_f32(sum4);
        for (; j < n; j++) {
            const float e = expf(s[j] - mx);
            sum += e;
            s[j] = v_scale ? e * v_scale[j] : e;
        }
        for (j = n; j < n_max; j++)
            s[j] = 0;
        inv[r] = 1.0f / sum;
    }
}

/* out[r][d .. d + 16) = inv[r] * sum_{j < n_max} p[r][j] V[j][d ..] */
NEON_INLINE void value_chunk(const bonsai_attn_group *g, const void *V, size_t row_bytes,
                             const float *scores, size_t stride, size_t n_max,
                             const float inv[BONSAI_ATTN_ROWS], uint32_t d, const int R,
                             const bonsai_cache_type type)
{
    float32x4_t acc[BONSAI_ATTN_ROWS][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < 4; c++)
            acc[r][c] = vdupq_n_f32(0);
    for (size_t j = 0; j < n_max; j++) { // [keys]
        const char *v = (const char *)V + j * row_bytes;
        float32x4_t vv[4];
        load8(v, d, type, vv);
        load8(v, d + 8, type, vv + 2);
        for (int r = 0; r < R; r++) {
            const float w = scores[(size_t)r * stride + j];
            for (int c = 0; c < 4; c++)
                acc[r][c] = vfmaq_n_f32(acc[r][c], vv[c], w);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < 4; c++)
            vst1q_f32(g->out[r] + d + 4 * c, vmulq_n_f32(acc[r][c], inv[r]));
}

NEON_INLINE void group_rows(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,
                            float scale, float *scores, size_t stride, const int R,
                            const bonsai_cache_type type)
{
    size_t n_max = 0;
    for (int r = 0; r < R; r++)
        n_max = g->n_keys[r] > n_max ? g->n_keys[r] : n_max;
    scores_pass(g, kv, D, scale, scores, stride, n_max, R, type);
    float inv[BONSAI_ATTN_ROWS];
    softmax_pass(g, scores, stride, n_max, type == BONSAI_CACHE_Q8 ? kv->v_scale : NULL, inv, R);
    const size_t row_bytes = (size_t)D * bonsai_cache_elem_bytes(type);
    for (uint32_t d = 0; d < D; d += 16) // [D / 16]
        value_chunk(g, kv->v, row_bytes, scores, stride, n_max, inv, d, R, type);
}

BONSAI_DEFINE_ATTN_BY_ROWS(group, group_rows)

BONSAI_DEFINE_ATTN_GROUPS(bonsai_neon_attn_group, group);

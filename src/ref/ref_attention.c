/* Scalar reference attention for a group of query rows sharing a KV head
 * (contract in src/cpu/kernel_table.h): scores by dot products in 8
 * partial sums, softmax with expf, then the weighted sum of value rows.
 * Any head dimension D; fp32, fp16 or q8 cache rows (a q8 row's scale
 * multiplies its dot product and its softmax weight). */
#include <math.h>

#include "bonsai/formats.h"
#include "ref/ref_kernels.h"

/* Element i of a cache row, as stored (a q8 row without its scale). */
static inline float kv_at(const void *row, size_t i, const bonsai_cache_type type)
{
    switch (type) {
    case BONSAI_CACHE_F16: return bonsai_fp16_to_fp32(((const uint16_t *)row)[i]);
    case BONSAI_CACHE_Q8: return (float)((const int8_t *)row)[i];
    default: return ((const float *)row)[i];
    }
}

/* dot product of n floats with a cache row, 8 independent partial sums */
static inline float dot(const float *a, const void *b, size_t n, const bonsai_cache_type type)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * kv_at(b, i + l, type);
    float s = 0;
    for (; i < n; i++)
        s += a[i] * kv_at(b, i, type);
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* scores[r][0 .. n_keys[r]) -> exp(s - max); returns 1 / sum per row */
static void softmax(const bonsai_attn_group *g, float *scores, size_t stride,
                    float inv[BONSAI_ATTN_ROWS])
{
    for (int r = 0; r < g->n_rows; r++) {
        float *s = scores + (size_t)r * stride;
        const size_t n = g->n_keys[r];
        float mx = -INFINITY;
        for (size_t j = 0; j < n; j++)
            mx = s[j] > mx ? s[j] : mx;
        float sum = 0;
        for (size_t j = 0; j < n; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        inv[r] = 1.0f / sum;
    }
}

static void group(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D, float scale,
                  float *scores, size_t stride, const bonsai_cache_type type)
{
    const size_t rb = (size_t)D * bonsai_cache_elem_bytes(type);
    const int q8 = type == BONSAI_CACHE_Q8;
    for (int r = 0; r < g->n_rows; r++) {
        float *s = scores + (size_t)r * stride;
        for (size_t j = 0; j < g->n_keys[r]; j++)
            s[j] = dot(g->q[r], (const char *)kv->k + j * rb, D, type) *
                   (q8 ? kv->k_scale[j] : 1.0f) * scale;
    }
    float inv[BONSAI_ATTN_ROWS];
    softmax(g, scores, stride, inv);
    for (int r = 0; r < g->n_rows; r++) {
        const float *p = scores + (size_t)r * stride;
        float *o = g->out[r];
        for (uint32_t i = 0; i < D; i++)
            o[i] = 0;
        for (size_t j = 0; j < g->n_keys[r]; j++) {
            const void *v = (const char *)kv->v + j * rb;
            const float w = p[j] * (q8 ? kv->v_scale[j] : 1.0f);
            for (uint32_t i = 0; i < D; i++)
                o[i] += w * kv_at(v, i, type);
        }
        for (uint32_t i = 0; i < D; i++)
            o[i] *= inv[r];
    }
}

BONSAI_DEFINE_ATTN_GROUPS(bonsai_ref_attn_group, group);


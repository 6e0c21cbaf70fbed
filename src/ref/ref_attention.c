/* Scalar reference attention for a group of query rows sharing a KV head
 * (contract in src/cpu/kernel_table.h): scores by dot products in 8
 * partial sums, softmax with expf, then the weighted sum of value rows.
 * Any head dimension D; fp32 or fp16 cache rows. */
#include <math.h>

#include "bonsai/formats.h"
#include "ref/ref_kernels.h"

/* Element i of a cache row, fp16 or fp32. */
static inline float kv_at(const void *row, size_t i, const int f16)
{
    return f16 ? bonsai_fp16_to_fp32(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

/* dot product of n floats with a cache row, 8 independent partial sums */
static inline float dot(const float *a, const void *b, size_t n, const int f16)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * kv_at(b, i + l, f16);
    float s = 0;
    for (; i < n; i++)
        s += a[i] * kv_at(b, i, f16);
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

static void group(const bonsai_attn_group *g, const void *K, const void *V, uint32_t D,
                  float scale, float *scores, size_t stride, const int f16)
{
    const size_t row_bytes = (size_t)D * (f16 ? sizeof(uint16_t) : sizeof(float));
    for (int r = 0; r < g->n_rows; r++) {
        float *s = scores + (size_t)r * stride;
        for (size_t j = 0; j < g->n_keys[r]; j++)
            s[j] = dot(g->q[r], (const char *)K + j * row_bytes, D, f16) * scale;
    }
    float inv[BONSAI_ATTN_ROWS];
    softmax(g, scores, stride, inv);
    for (int r = 0; r < g->n_rows; r++) {
        const float *p = scores + (size_t)r * stride;
        float *o = g->out[r];
        for (uint32_t i = 0; i < D; i++)
            o[i] = 0;
        for (size_t j = 0; j < g->n_keys[r]; j++) {
            const void *v = (const char *)V + j * row_bytes;
            for (uint32_t i = 0; i < D; i++)
                o[i] += p[j] * kv_at(v, i, f16);
        }
        for (uint32_t i = 0; i < D; i++)
            o[i] *= inv[r];
    }
}

void bonsai_ref_attn_group_f32(const bonsai_attn_group *g, const void *K, const void *V,
                               uint32_t D, float scale, float *scores, size_t stride)
{
    group(g, K, V, D, scale, scores, stride, 0);
}

void bonsai_ref_attn_group_f16(const bonsai_attn_group *g, const void *K, const void *V,
                               uint32_t D, float scale, float *scores, size_t stride)
{
    group(g, K, V, D, scale, scores, stride, 1);
}

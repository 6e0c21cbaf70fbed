/* Internal: the attention kernels of one group of up to 4 query rows that
 * share a KV head (attention.c picks the ISA variant).
 *
 * For rows r < n_rows with key counts n_keys[r] (keys 0 .. n_keys[r] - 1):
 *     s[r][j] = (q[r] . K[j]) * scale,  p = softmax over j < n_keys[r],
 *     out[r] = sum_j p[r][j] V[j]
 * q[r], out[r]: D floats; K, V: [n_keys max][D], fp32 or fp16 (the _f16
 * variants); scores: [4][stride] scratch with stride >= max n_keys. Rows
 * r >= n_rows are ignored. */
#ifndef BONSAI_MODEL_ATTENTION_H
#define BONSAI_MODEL_ATTENTION_H
#include <stddef.h>
#include <stdint.h>

#define BONSAI_ATTN_ROWS 4

typedef struct bonsai_attn_group {
    const float *q[BONSAI_ATTN_ROWS];
    float *out[BONSAI_ATTN_ROWS];
    size_t n_keys[BONSAI_ATTN_ROWS];
    int n_rows;
} bonsai_attn_group;

typedef void (*bonsai_attn_group_fn)(const bonsai_attn_group *g, const void *K, const void *V,
                                     uint32_t D, float scale, float *scores, size_t stride);

/* Turns scores[r][0 .. n_keys[r]) into exp(s - max) and zeroes
 * [n_keys[r], n_max); returns 1 / sum per row in inv. */
void bonsai_attn_softmax(const bonsai_attn_group *g, float *scores, size_t stride, size_t n_max,
                         float inv[BONSAI_ATTN_ROWS]);

/* AVX2 + FMA (+ F16C) variants (attention_avx2.c); need D % 16 == 0. */
void bonsai_attn_group_avx2(const bonsai_attn_group *g, const void *K, const void *V,
                            uint32_t D, float scale, float *scores, size_t stride);
void bonsai_attn_group_avx2_f16(const bonsai_attn_group *g, const void *K, const void *V,
                                uint32_t D, float scale, float *scores, size_t stride);

#endif

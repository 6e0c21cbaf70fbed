/* AVX-512 attention kernel for one group of query rows sharing a KV head
 * (contract in src/cpu/kernel_table.h; D % 16 == 0), over an fp32, fp16 or
 * q8 cache (a q8 row's scale multiplies its scores and, folded into the
 * softmax weights, its values). The code is instantiated per row count (1..4), so a decode step's
 * group (one token, H / KV query heads, 2 for Qwen3-1.7B) does no work for
 * absent rows. Scores: each key row is loaded once for the group's dot
 * products, 16 dimensions per step; the softmax takes 16 scores at a time
 * with exp16; the weighted sum of value rows keeps up to 4 x 16 dimensions
 * of every row's output in registers while it walks the value rows. Key
 * rows are prefetched a few rows ahead and value rows into L2 during the
 * scores, as the cache rarely holds them (a token's weights stream through
 * in between). Matches src/ref/ref_attention.c to fp32 rounding. */
#include <math.h>

#include "cpu/avx512/avx512_internal.h"

#define KEY_PREFETCH_ROWS 8

/* 16 elements of a cache row from element i, as floats (a q8 row unscaled). */
AVX512_INLINE __m512 load16(const void *row, size_t i, const bonsai_cache_type type)
{
    if (type == BONSAI_CACHE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
    if (type == BONSAI_CACHE_Q8)
        return _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((const int8_t *)row + i))));
    return _mm512_loadu_ps((const float *)row + i);
}

/* scores[r][j] = (q[r] . K[j]) * scale for j < n_max, rows r < R */
AVX512_INLINE void scores_pass(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,
                               float scale, float *scores, size_t stride, size_t n_max,
                               const int R, const bonsai_cache_type type)
{
    const size_t row_bytes = (size_t)D * bonsai_cache_elem_bytes(type);
    for (size_t j = 0; j < n_max; j++) { // [keys]
        const char *k = (const char *)kv->k + j * row_bytes;
        for (size_t off = 0; off < row_bytes; off += 64) {
            _mm_prefetch(k + KEY_PREFETCH_ROWS * row_bytes + off, _MM_HINT_T0);
            _mm_prefetch((const char *)kv->v + j * row_bytes + off, _MM_HINT_T1);
        }
        __m512 acc[BONSAI_ATTN_ROWS];
        UNROLL for (int r = 0; r < R; r++)
            acc[r] = _mm512_setzero_ps();
        for (uint32_t d = 0; d < D; d += 16) { // [D / 16]
            const __m512 kr = load16(k, d, type);
            UNROLL for (int r = 0; r < R; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(g->q[r] + d), kr, acc[r]);
        }
        const float row_scale = type == BONSAI_CACHE_Q8 ? kv->k_scale[j] * scale : scale;
        UNROLL for (int r = 0; r < R; r++)
            scores[(size_t)r * stride + j] = _mm512_reduce_add_ps(acc[r]) * row_scale;
    }
}

/* scores[r][0 .. n_keys[r]) -> exp(s - max), [n_keys[r], n_max) -> 0;
 * returns 1 / sum per row in inv. With v_scale (q8), the weights that
 * multiply the value rows then become exp(s - max) * v_scale[j]. */
AVX512_INLINE void softmax_pass(const bonsai_attn_group *g, float *scores, size_t stride,
                                size_t n_max, const float *v_scale, float inv[BONSAI_ATTN_ROWS],
                                const int R)
{
    UNROLL for (int r = 0; r < R; r++) {
        float *s = scores + (size_t)r * stride;
        const size_t n = g->n_keys[r];
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (size_t j = 0; j < n; j += 16) { // [n / 16]
            const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
            mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, s + j));
        }
        const __m512 mxv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (size_t j = 0; j < n_max; j += 16) { // [n_max / 16]
            const size_t left = n > j ? n - j : 0;
            const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            const __mmask16 store = n_max - j >= 16 ? (__mmask16)0xffff
                                                    : (__mmask16)((1u << (n_max - j)) - 1);
            const __m512 e = _mm512_maskz_mov_ps(
                m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), mxv)));
            sum = _mm512_add_ps(sum, e);
            const __m512 w = v_scale ? _mm512_mul_ps(e, _mm512_maskz_loadu_ps(m, v_scale + j)) : e;
            _mm512_mask_storeu_ps(s + j, store, w);
        }
        inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
}

/* out[r][d .. d + 16 NV) = inv[r] * sum_{j < n_max} p[r][j] V[j][d ..] */
AVX512_INLINE void value_chunk(const bonsai_attn_group *g, const void *V, size_t row_bytes,
                               const float *scores, size_t stride, size_t n_max,
                               const float inv[BONSAI_ATTN_ROWS], uint32_t d, const int R,
                               const int NV, const bonsai_cache_type type)
{
    __m512 acc[BONSAI_ATTN_ROWS][4];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int c = 0; c < NV; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (size_t j = 0; j < n_max; j++) { // [keys]
        const char *v = (const char *)V + j * row_bytes;
        __m512 vv[4];
        UNROLL for (int c = 0; c < NV; c++)
            vv[c] = load16(v, d + 16 * (uint32_t)c, type);
        UNROLL for (int r = 0; r < R; r++) {
            const __m512 w = _mm512_set1_ps(scores[(size_t)r * stride + j]);
            UNROLL for (int c = 0; c < NV; c++)
                acc[r][c] = _mm512_fmadd_ps(w, vv[c], acc[r][c]);
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int c = 0; c < NV; c++)
            _mm512_storeu_ps(g->out[r] + d + 16 * c, _mm512_mul_ps(acc[r][c], _mm512_set1_ps(inv[r])));
}

AVX512_INLINE void group_rows(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,
                              float scale, float *scores, size_t stride, const int R,
                              const bonsai_cache_type type)
{
    const size_t row_bytes = (size_t)D * bonsai_cache_elem_bytes(type);
    size_t n_max = 0;
    UNROLL for (int r = 0; r < R; r++)
        n_max = g->n_keys[r] > n_max ? g->n_keys[r] : n_max;
    scores_pass(g, kv, D, scale, scores, stride, n_max, R, type);
    float inv[BONSAI_ATTN_ROWS];
    softmax_pass(g, scores, stride, n_max, type == BONSAI_CACHE_Q8 ? kv->v_scale : NULL, inv, R);
    uint32_t d = 0;
    for (; d + 64 <= D; d += 64) // [D / 64]
        value_chunk(g, kv->v, row_bytes, scores, stride, n_max, inv, d, R, 4, type);
    for (; d < D; d += 16) // [D % 64 / 16]
        value_chunk(g, kv->v, row_bytes, scores, stride, n_max, inv, d, R, 1, type);
}

BONSAI_DEFINE_ATTN_BY_ROWS(group, group_rows)

BONSAI_DEFINE_ATTN_GROUPS(bonsai_avx512_attn_group, group);


/* AVX2 + FMA attention kernel for one group of up to four query rows
 * sharing a KV head (contract in attention.h; D % 16 == 0). Each key row
 * is loaded once for the four dot products; each value row once for the
 * four weighted sums, 16 dimensions at a time. Compiled for AVX2 by
 * function attribute and called only when the context's tier is AVX2 or
 * AVX-512. Matches group_portable in attention.c to fp32 rounding. */
#include "model/attention.h"

#ifdef BONSAI_HAVE_AVX2
#include <immintrin.h>

#define AVX2_FN __attribute__((target("avx2,fma")))

/* the four horizontal sums of a0..a3 */
AVX2_FN static inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 t0 = _mm256_hadd_ps(a0, a1); /* a0 01 23, a1 01 23 | a0 45 67, a1 45 67 */
    __m256 t1 = _mm256_hadd_ps(a2, a3);
    __m256 t2 = _mm256_hadd_ps(t0, t1); /* a0 a1 a2 a3 (low half sums) | (high half) */
    return _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps(t2, 1));
}

AVX2_FN void bonsai_attn_group_avx2(const bonsai_attn_group *g, const float *K, const float *V,
                                    uint32_t D, float scale, float *scores, size_t stride)
{
    const float *q[BONSAI_ATTN_ROWS];
    size_t n_max = 0;
    for (int r = 0; r < BONSAI_ATTN_ROWS; r++) {
        q[r] = g->q[r < g->n_rows ? r : 0]; /* padding rows repeat row 0 */
        if (r < g->n_rows && g->n_keys[r] > n_max)
            n_max = g->n_keys[r];
    }
    /* scores: four dots per key row */
    for (size_t j = 0; j < n_max; j++) {
        const float *k = K + j * D;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t d = 0; d < D; d += 8) {
            const __m256 kv = _mm256_loadu_ps(k + d);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q[0] + d), kv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q[1] + d), kv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q[2] + d), kv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q[3] + d), kv, a3);
        }
        float s[4];
        _mm_storeu_ps(s, _mm_mul_ps(hsum4(a0, a1, a2, a3), _mm_set1_ps(scale)));
        for (int r = 0; r < g->n_rows; r++)
            scores[(size_t)r * stride + j] = s[r];
    }
    float inv[BONSAI_ATTN_ROWS];
    bonsai_attn_softmax(g, scores, stride, n_max, inv);
    const float *p[BONSAI_ATTN_ROWS];
    for (int r = 0; r < BONSAI_ATTN_ROWS; r++)
        p[r] = scores + (size_t)(r < g->n_rows ? r : 0) * stride;
    /* out[r] = sum_j p[r][j] V[j], 16 dimensions per pass */
    for (uint32_t d = 0; d < D; d += 16) {
        __m256 o00 = _mm256_setzero_ps(), o01 = o00, o10 = o00, o11 = o00;
        __m256 o20 = o00, o21 = o00, o30 = o00, o31 = o00;
        for (size_t j = 0; j < n_max; j++) {
            const __m256 v0 = _mm256_loadu_ps(V + j * D + d), v1 = _mm256_loadu_ps(V + j * D + d + 8);
            __m256 w = _mm256_broadcast_ss(p[0] + j);
            o00 = _mm256_fmadd_ps(w, v0, o00);
            o01 = _mm256_fmadd_ps(w, v1, o01);
            w = _mm256_broadcast_ss(p[1] + j);
            o10 = _mm256_fmadd_ps(w, v0, o10);
            o11 = _mm256_fmadd_ps(w, v1, o11);
            w = _mm256_broadcast_ss(p[2] + j);
            o20 = _mm256_fmadd_ps(w, v0, o20);
            o21 = _mm256_fmadd_ps(w, v1, o21);
            w = _mm256_broadcast_ss(p[3] + j);
            o30 = _mm256_fmadd_ps(w, v0, o30);
            o31 = _mm256_fmadd_ps(w, v1, o31);
        }
        const __m256 lo[4] = {o00, o10, o20, o30}, hi[4] = {o01, o11, o21, o31};
        for (int r = 0; r < g->n_rows; r++) {
            const __m256 s = _mm256_set1_ps(inv[r]);
            _mm256_storeu_ps(g->out[r] + d, _mm256_mul_ps(lo[r], s));
            _mm256_storeu_ps(g->out[r] + d + 8, _mm256_mul_ps(hi[r], s));
        }
    }
}
#endif

/* AVX2 + FMA attention kernel for one group of up to four query rows
 * sharing a KV head (contract in src/cpu/kernel_table.h; D % 16 == 0), over
 * an fp32, fp16 (F16C) or q8 cache. Each key row is loaded once for the
 * four dot products; each value row once for the four weighted sums, 16
 * dimensions at a time; the softmax's exponentials are a vector
 * polynomial. A q8 row's scale multiplies its scores and, folded into the
 * softmax weights, its values. Matches src/ref/ref_attention.c to fp32
 * rounding. */
#include <math.h>

#include "cpu/avx2/avx2_kernels.h"

/* 8 elements of a cache row from element i, as floats (a q8 row unscaled). */
static inline __m256 load8(const void *row, size_t i, const bonsai_cache_type type)
{
    if (type == BONSAI_CACHE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    if (type == BONSAI_CACHE_Q8)
        return _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)row + i))));
    return _mm256_loadu_ps((const float *)row + i);
}

/* the four horizontal sums of a0..a3 */
static inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 t0 = _mm256_hadd_ps(a0, a1); /* a0 01 23, a1 01 23 | a0 45 67, a1 45 67 */
    __m256 t1 = _mm256_hadd_ps(a2, a3);
    __m256 t2 = _mm256_hadd_ps(t0, t1); /* a0 a1 a2 a3 (low half sums) | (high half) */
    return _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps(t2, 1));
}

/* e^x for x <= 0 (scores minus their max), 8 lanes: x = n ln2 + r with
 * |r| <= ln2 / 2, e^r by a degree-6 Taylor polynomial (relative error
 * < 2e-7 on that range), scaled by 2^n through the exponent bits; x below
 * -87 gives 0. */
static inline __m256 exp_neg(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* r = x - n ln2, ln2 split in two for precision */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

/* scores[r][0 .. n_keys[r]) -> exp(s - max), [n_keys[r], n_max) -> 0,
 * 8 scores at a time; returns 1 / sum per row in inv. */
static void softmax_avx2(const bonsai_attn_group *g, float *scores, size_t stride, size_t n_max,
                         float inv[BONSAI_ATTN_ROWS])
{
    for (int r = 0; r < g->n_rows; r++) {
        float *s = scores + (size_t)r * stride;
        const size_t n = g->n_keys[r], n8 = n / 8 * 8;
        float mx = -INFINITY;
        __m256 vmx = _mm256_set1_ps(-INFINITY);
        for (size_t j = 0; j < n8; j += 8)
            vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(s + j));
        float lanes[8];
        _mm256_storeu_ps(lanes, vmx);
        for (int l = 0; l < 8; l++)
            mx = lanes[l] > mx ? lanes[l] : mx;
        for (size_t j = n8; j < n; j++)
            mx = s[j] > mx ? s[j] : mx;
        const __m256 m8 = _mm256_set1_ps(mx);
        __m256 vsum = _mm256_setzero_ps();
        for (size_t j = 0; j < n8; j += 8) {
            const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + j), m8));
            _mm256_storeu_ps(s + j, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        _mm256_storeu_ps(lanes, vsum);
        float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
                    ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        for (size_t j = n8; j < n; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        for (size_t j = n; j < n_max; j++)
            s[j] = 0;
        inv[r] = 1.0f / sum;
    }
}

/* p[r][j] *= scale[j] for the group's rows, j < n_max */
static void scale_weights(const bonsai_attn_group *g, float *scores, size_t stride, size_t n_max,
                          const float *scale)
{
    for (int r = 0; r < g->n_rows; r++) {
        float *p = scores + (size_t)r * stride;
        size_t j = 0;
        for (; j + 8 <= n_max; j += 8)
            _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(scale + j)));
        for (; j < n_max; j++)
            p[j] *= scale[j];
    }
}

static inline void group(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,
                         float scale, float *scores, size_t stride, const bonsai_cache_type type)
{
    const size_t row_bytes = (size_t)D * bonsai_cache_elem_bytes(type);
    const char *K = kv->k, *V = kv->v;
    const float *q[BONSAI_ATTN_ROWS];
    size_t n_max = 0;
    for (int r = 0; r < BONSAI_ATTN_ROWS; r++) {
        q[r] = g->q[r < g->n_rows ? r : 0]; /* padding rows repeat row 0 */
        if (r < g->n_rows && g->n_keys[r] > n_max)
            n_max = g->n_keys[r];
    }
    /* scores: four dots per key row. The cache rarely holds K and V (a
     * token's weights stream through in between), so key rows are
     * prefetched a few rows ahead and each value row into L2 while the
     * scores are computed; the value pass then waits on no memory. */
    for (size_t j = 0; j < n_max; j++) {
        const char *k = (const char *)K + j * row_bytes;
        for (size_t off = 0; off < row_bytes; off += 64) {
            _mm_prefetch(k + 4 * row_bytes + off, _MM_HINT_T0);
            _mm_prefetch((const char *)V + j * row_bytes + off, _MM_HINT_T1);
        }
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t d = 0; d < D; d += 8) {
            const __m256 kr = load8(k, d, type);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q[0] + d), kr, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q[1] + d), kr, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q[2] + d), kr, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q[3] + d), kr, a3);
        }
        const float row_scale = type == BONSAI_CACHE_Q8 ? kv->k_scale[j] * scale : scale;
        float s[4];
        _mm_storeu_ps(s, _mm_mul_ps(hsum4(a0, a1, a2, a3), _mm_set1_ps(row_scale)));
        for (int r = 0; r < g->n_rows; r++)
            scores[(size_t)r * stride + j] = s[r];
    }
    float inv[BONSAI_ATTN_ROWS];
    softmax_avx2(g, scores, stride, n_max, inv);
    if (type == BONSAI_CACHE_Q8)
        scale_weights(g, scores, stride, n_max, kv->v_scale);
    const float *p[BONSAI_ATTN_ROWS];
    for (int r = 0; r < BONSAI_ATTN_ROWS; r++)
        p[r] = scores + (size_t)(r < g->n_rows ? r : 0) * stride;
    /* out[r] = sum_j p[r][j] V[j], 16 dimensions per pass */
    for (uint32_t d = 0; d < D; d += 16) {
        __m256 o00 = _mm256_setzero_ps(), o01 = o00, o10 = o00, o11 = o00;
        __m256 o20 = o00, o21 = o00, o30 = o00, o31 = o00;
        for (size_t j = 0; j < n_max; j++) {
            const char *v = (const char *)V + j * row_bytes;
            const __m256 v0 = load8(v, d, type), v1 = load8(v, d + 8, type);
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

BONSAI_DEFINE_ATTN_GROUPS(bonsai_avx2_attn_group, group);


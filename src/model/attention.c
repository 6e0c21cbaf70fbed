/* Causal grouped-query attention over a layer's KV cache.
 *
 * For query token t (position p = n_past + t) and query head h, with KV
 * head g = h / (H / KV):
 *     s_j = (q[t][h] . K[g][j]) / sqrt(D)     for j in [0, p]
 *     out[t][h] = sum_j softmax(s)_j V[g][j]
 * q [m][q_stride] (heads at the start of each row), out [m][H*D];
 * K, V [KV][n_ctx][D] (positions 0 .. p already stored).
 *
 * The query rows (t, h) of one KV head are taken in groups of up to four
 * (the heads of a token first, then the next token), so each key and value
 * row loaded serves four queries. Work is split over the context's pool by
 * (KV head, chunk of tokens); each worker has its own [4][n_ctx] scores.
 * The portable kernel is here; attention_avx2.c has the AVX2 + FMA one.
 * Reference: the float64 forward in tests/model_fixture.h. */
#include <math.h>

#include "cpu/context.h"
#include "model/attention.h"
#include "model/model_internal.h"

#define TOKENS_PER_TASK 16

void bonsai_attn_softmax(const bonsai_attn_group *g, float *scores, size_t stride, size_t n_max,
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
        for (size_t j = n; j < n_max; j++)
            s[j] = 0;
        inv[r] = 1.0f / sum;
    }
}

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

static inline void group_portable(const bonsai_attn_group *g, const void *K, const void *V,
                                  uint32_t D, float scale, float *scores, size_t stride,
                                  const int f16)
{
    const size_t row_bytes = (size_t)D * (f16 ? sizeof(uint16_t) : sizeof(float));
    size_t n_max = 0;
    for (int r = 0; r < g->n_rows; r++) {
        float *s = scores + (size_t)r * stride;
        for (size_t j = 0; j < g->n_keys[r]; j++)
            s[j] = dot(g->q[r], (const char *)K + j * row_bytes, D, f16) * scale;
        n_max = g->n_keys[r] > n_max ? g->n_keys[r] : n_max;
    }
    float inv[BONSAI_ATTN_ROWS];
    bonsai_attn_softmax(g, scores, stride, n_max, inv);
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

static void group_portable_f32(const bonsai_attn_group *g, const void *K, const void *V,
                               uint32_t D, float scale, float *scores, size_t stride)
{
    group_portable(g, K, V, D, scale, scores, stride, 0);
}

static void group_portable_f16(const bonsai_attn_group *g, const void *K, const void *V,
                               uint32_t D, float scale, float *scores, size_t stride)
{
    group_portable(g, K, V, D, scale, scores, stride, 1);
}

typedef struct attn_job {
    const bonsai_hparams *hp;
    uint32_t n_ctx, n_past;
    size_t m, chunks, q_stride, elem;
    const float *q;
    const void *k, *v;
    float *scores, *out;
    bonsai_attn_group_fn kernel;
} attn_job;

static void attn_task(void *arg, size_t task, int worker)
{
    const attn_job *jb = arg;
    const uint32_t D = jb->hp->head_dim, H = jb->hp->n_heads;
    const uint32_t G = H / jb->hp->n_kv_heads; /* query heads per KV head */
    const uint32_t kvh = (uint32_t)(task / jb->chunks);
    const size_t t0 = (task % jb->chunks) * TOKENS_PER_TASK;
    const size_t t1 = t0 + TOKENS_PER_TASK < jb->m ? t0 + TOKENS_PER_TASK : jb->m;
    const size_t head_bytes = (size_t)kvh * jb->n_ctx * D * jb->elem;
    const void *K = (const char *)jb->k + head_bytes; /* [n_ctx][D] */
    const void *V = (const char *)jb->v + head_bytes;
    float *scores = jb->scores + (size_t)worker * BONSAI_ATTN_ROWS * jb->n_ctx;
    const float scale = 1.0f / sqrtf((float)D);
    /* rows i = (t - t0) * G + hh, taken four at a time */
    const size_t n_rows = (t1 - t0) * G;
    for (size_t i0 = 0; i0 < n_rows; i0 += BONSAI_ATTN_ROWS) {
        bonsai_attn_group g = {.n_rows = 0};
        for (size_t i = i0; i < n_rows && i < i0 + BONSAI_ATTN_ROWS; i++) {
            const size_t t = t0 + i / G, h = (size_t)kvh * G + i % G;
            g.q[g.n_rows] = jb->q + t * jb->q_stride + h * D;
            g.out[g.n_rows] = jb->out + t * H * D + h * D;
            g.n_keys[g.n_rows] = (size_t)jb->n_past + t + 1;
            g.n_rows++;
        }
        jb->kernel(&g, K, V, D, scale, scores, jb->n_ctx);
    }
}

void bonsai_attention(bonsai_ctx *ctx, const bonsai_hparams *hp, uint32_t n_ctx, uint32_t n_past,
                      size_t m, const float *q, size_t q_stride, const void *k_layer,
                      const void *v_layer, int kv_f16, float *scores, float *out)
{
    attn_job jb = {.hp = hp, .n_ctx = n_ctx, .n_past = n_past, .m = m,
                   .chunks = (m + TOKENS_PER_TASK - 1) / TOKENS_PER_TASK, .q_stride = q_stride,
                   .elem = kv_f16 ? sizeof(uint16_t) : sizeof(float),
                   .q = q, .k = k_layer, .v = v_layer, .scores = scores, .out = out,
                   .kernel = kv_f16 ? group_portable_f16 : group_portable_f32};
#ifdef BONSAI_HAVE_AVX2
    const bonsai_cpu_tier tier = bonsai_ctx_tier(ctx);
    if ((tier == BONSAI_TIER_AVX2 || tier == BONSAI_TIER_AVX512) && hp->head_dim % 16 == 0)
        jb.kernel = kv_f16 ? bonsai_attn_group_avx2_f16 : bonsai_attn_group_avx2;
#endif
    bonsai_pool_run(ctx->pool, (size_t)hp->n_kv_heads * jb.chunks, attn_task, &jb);
}

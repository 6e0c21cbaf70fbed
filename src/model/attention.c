/* Causal grouped-query attention over a layer's KV cache.
 *
 * For query token t (position p = n_past + t) and query head h, with KV
 * head g = h / (H / KV):
 *     s_j = (q[t][h] . K[g][j]) / sqrt(D)     for j in [0, p]
 *     out[t][h] = sum_j softmax(s)_j V[g][j]
 * q, out [m][H*D]; K, V [KV][n_ctx][D] (positions 0 .. p already stored).
 * Work is split over the context's pool by (head, chunk of tokens); each
 * worker keeps its scores in its own row of scores [n_threads][n_ctx].
 * Reference: the float64 forward in tests/test_model.c. */
#include <math.h>

#include "cpu/context.h"
#include "model/model_internal.h"

#define TOKENS_PER_TASK 16

typedef struct attn_job {
    const bonsai_hparams *hp;
    uint32_t n_ctx, n_past;
    size_t m, chunks;
    const float *q, *k, *v;
    float *scores, *out;
} attn_job;

/* dot product of n floats with 8 independent partial sums */
static float dot(const float *a, const float *b, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = 0;
    for (; i < n; i++)
        s += a[i] * b[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* y += a * x for n floats */
static void axpy(float *y, float a, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void attend_one(const attn_job *jb, size_t t, uint32_t h, float *s)
{
    const uint32_t D = jb->hp->head_dim, H = jb->hp->n_heads;
    const uint32_t g = h / (H / jb->hp->n_kv_heads);
    const size_t n_keys = (size_t)jb->n_past + t + 1;
    const float *q = jb->q + t * H * D + (size_t)h * D;
    const float *K = jb->k + (size_t)g * jb->n_ctx * D; /* [n_ctx][D] */
    const float *V = jb->v + (size_t)g * jb->n_ctx * D;
    const float scale = 1.0f / sqrtf((float)D);
    float mx = -INFINITY;
    for (size_t j = 0; j < n_keys; j++) {
        s[j] = dot(q, K + j * D, D) * scale;
        mx = s[j] > mx ? s[j] : mx;
    }
    float sum = 0;
    for (size_t j = 0; j < n_keys; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    const float inv = 1.0f / sum;
    float *o = jb->out + t * H * D + (size_t)h * D;
    for (uint32_t i = 0; i < D; i++)
        o[i] = 0;
    for (size_t j = 0; j < n_keys; j++)
        axpy(o, s[j] * inv, V + j * D, D);
}

static void attn_task(void *arg, size_t task, int worker)
{
    const attn_job *jb = arg;
    const uint32_t h = (uint32_t)(task / jb->chunks);
    const size_t t0 = (task % jb->chunks) * TOKENS_PER_TASK;
    const size_t t1 = t0 + TOKENS_PER_TASK < jb->m ? t0 + TOKENS_PER_TASK : jb->m;
    float *s = jb->scores + (size_t)worker * jb->n_ctx;
    for (size_t t = t0; t < t1; t++)
        attend_one(jb, t, h, s);
}

void bonsai_attention(bonsai_ctx *ctx, const bonsai_hparams *hp, uint32_t n_ctx, uint32_t n_past,
                      size_t m, const float *q, const float *k_layer, const float *v_layer,
                      float *scores, float *out)
{
    attn_job jb = {.hp = hp, .n_ctx = n_ctx, .n_past = n_past, .m = m,
                   .chunks = (m + TOKENS_PER_TASK - 1) / TOKENS_PER_TASK,
                   .q = q, .k = k_layer, .v = v_layer, .scores = scores, .out = out};
    bonsai_pool_run(ctx->pool, (size_t)hp->n_heads * jb.chunks, attn_task, &jb);
}

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
 * The group kernels are the CPU tier's (src/cpu/kernel_table.h); the scalar
 * one (src/ref/ref_attention.c) serves head sizes the tier's does not.
 * Reference: the float64 forward in tests/model_fixture.h. */
#include <math.h>

#include "cpu/context.h"
#include "ref/ref_kernels.h"
#include "model/model_internal.h"

#define TOKENS_PER_TASK 16

typedef struct attn_job {
    const bonsai_session *s;
    size_t il, m, chunks, q_stride;
    const float *q;
    float *out;
    bonsai_attn_group_fn kernel;
} attn_job;

static void attn_task(void *arg, size_t task, int worker)
{
    const attn_job *jb = arg;
    const bonsai_session *s = jb->s;
    const bonsai_hparams *hp = &s->model->hp;
    const uint32_t D = hp->head_dim, H = hp->n_heads;
    const uint32_t G = H / hp->n_kv_heads; /* query heads per KV head */
    const uint32_t kvh = (uint32_t)(task / jb->chunks);
    const size_t t0 = (task % jb->chunks) * TOKENS_PER_TASK;
    const size_t t1 = t0 + TOKENS_PER_TASK < jb->m ? t0 + TOKENS_PER_TASK : jb->m;
    const bonsai_attn_kv kv = bonsai_kv_head(s, jb->il, kvh);
    float *scores = s->scores + (size_t)worker * BONSAI_ATTN_ROWS * s->n_ctx;
    const float scale = 1.0f / sqrtf((float)D);
    /* rows i = (t - t0) * G + hh, taken four at a time */
    const size_t n_rows = (t1 - t0) * G;
    for (size_t i0 = 0; i0 < n_rows; i0 += BONSAI_ATTN_ROWS) {
        bonsai_attn_group g = {.n_rows = 0};
        for (size_t i = i0; i < n_rows && i < i0 + BONSAI_ATTN_ROWS; i++) {
            const size_t t = t0 + i / G, h = (size_t)kvh * G + i % G;
            g.q[g.n_rows] = jb->q + t * jb->q_stride + h * D;
            g.out[g.n_rows] = jb->out + t * H * D + h * D;
            g.n_keys[g.n_rows] = (size_t)s->n_past + t + 1;
            g.n_rows++;
        }
        jb->kernel(&g, &kv, D, scale, scores, s->n_ctx);
    }
}

void bonsai_attention(const bonsai_session *s, size_t il, size_t m, const float *q, size_t q_stride,
                      float *out)
{
    const bonsai_ctx *ctx = s->model->ctx;
    const bonsai_hparams *hp = &s->model->hp;
    attn_job jb = {.s = s, .il = il, .m = m, .chunks = (m + TOKENS_PER_TASK - 1) / TOKENS_PER_TASK,
                   .q_stride = q_stride, .q = q, .out = out,
                   .kernel = ctx->kernels->attn_group[s->kv_type]};
    if (hp->head_dim % ctx->kernels->attn_dim_multiple != 0)
        jb.kernel = bonsai_ref_attn_group[s->kv_type];
    bonsai_pool_run(ctx->pool, (size_t)hp->n_kv_heads * jb.chunks, attn_task, &jb);
}

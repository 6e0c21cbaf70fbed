/* The Qwen3 forward pass over m tokens (m = 1: decode with GEMV; m > 1:
 * prefill with GEMM), writing K and V of every token into the session's
 * cache at positions n_past .. n_past + m - 1:
 *
 *   x = embed(tokens)                                   [m][E]
 *   per layer:
 *     xn = rmsnorm(x) * attn_norm
 *     q, k, v = Wq xn, Wk xn, Wv xn                      [m][H*D], [m][KV*D]
 *       (one matmul over a fused view when the file stores them back to back)
 *     q, k = rmsnorm per head (attn_q_norm, attn_k_norm); RoPE NeoX
 *     cache <- k, v;  a = attention(q, cache)            [m][H*D]
 *     x += Wo a
 *     xn = rmsnorm(x) * ffn_norm
 *     x += Wdown (silu(Wgate xn) * (Wup xn))
 *   logits = Woutput (rmsnorm(x[m-1]) * output_norm)     [V]
 *
 * In q8 mode each normed vector is quantized once and serves every matrix
 * that reads it (Q, K and V; gate and up). */

#include "core/error.h"
#include "cpu/context.h"
#include "model/model_internal.h"

typedef struct pass {
    bonsai_session *s;
    bonsai_ctx *ctx;
    int q8;
    size_t m;
} pass;

/* y (+)= W x for the pass's m tokens; x [m][W.k] is quantized first in q8
 * mode unless x_quantized says xq already holds it. */
static bonsai_status linear(const pass *p, const bonsai_matrix *w, const float *x,
                            int x_quantized, int add, float *y)
{
    const size_t m = p->m, y_len = m * w->rows;
    if (!p->q8)
        return add ? bonsai_matmul_add_f32(p->ctx, w, x, m * w->k, m, y, y_len)
                   : bonsai_matmul_f32(p->ctx, w, x, m * w->k, m, y, y_len);
    const size_t blocks = m * (w->k / BONSAI_QK);
    bonsai_status st = BONSAI_OK;
    if (!x_quantized)
        st = bonsai_quantize_q8(p->ctx, x, m * w->k, m, w->k, p->s->xq, blocks);
    if (st != BONSAI_OK)
        return st;
    return add ? bonsai_matmul_add_q8(p->ctx, w, p->s->xq, blocks, m, y, y_len)
               : bonsai_matmul_q8(p->ctx, w, p->s->xq, blocks, m, y, y_len);
}

static bonsai_status swiglu(const pass *p, const bonsai_layer *L, const float *x, float *h)
{
    const size_t m = p->m, k = L->gate.k, h_len = m * L->gate.rows;
    if (!p->q8)
        return bonsai_matmul_swiglu_f32(p->ctx, &L->gate, &L->up, x, m * k, m, h, h_len);
    const size_t blocks = m * (k / BONSAI_QK);
    bonsai_status st = bonsai_quantize_q8(p->ctx, x, m * k, m, k, p->s->xq, blocks);
    if (st != BONSAI_OK)
        return st;
    return bonsai_matmul_swiglu_q8(p->ctx, &L->gate, &L->up, p->s->xq, blocks, m, h, h_len);
}

static bonsai_status embed(const bonsai_model *mdl, const int32_t *tokens, size_t m, float *x)
{
    const bonsai_gguf_tensor *t = mdl->tok_embd;
    const uint32_t E = mdl->hp.n_embd;
    for (size_t i = 0; i < m; i++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)tokens[i] * mdl->embd_row_bytes;
        bonsai_status st = bonsai_dequantize(t->type, row, mdl->embd_row_bytes, x + i * E, E);
        if (st != BONSAI_OK)
            return bonsai_fail(st, "model: token_embd.weight row %d: %s", (int)tokens[i],
                               bonsai_last_error());
    }
    return BONSAI_OK;
}

/* Token-parallel steps: fn over tokens [t0, t1), spread over the pool in
 * chunks when there are several tokens. */
typedef void (*token_fn)(const pass *p, const void *arg, size_t t0, size_t t1);

typedef struct token_job {
    const pass *p;
    token_fn fn;
    const void *arg;
    size_t per_task;
} token_job;

static void token_task(void *arg, size_t task, int worker)
{
    const token_job *jb = arg;
    (void)worker;
    const size_t t0 = task * jb->per_task;
    const size_t t1 = t0 + jb->per_task < jb->p->m ? t0 + jb->per_task : jb->p->m;
    jb->fn(jb->p, jb->arg, t0, t1);
}

static void for_tokens(const pass *p, token_fn fn, const void *arg)
{
    const size_t tasks_wanted = 4 * (size_t)bonsai_ctx_n_threads(p->ctx);
    token_job jb = {p, fn, arg, (p->m + tasks_wanted - 1) / tasks_wanted};
    bonsai_pool_run(p->ctx->pool, (p->m + jb.per_task - 1) / jb.per_task, token_task, &jb);
}

typedef struct norm_args {
    const float *x, *w;
    float *y;
} norm_args;

static void norm_tokens(const pass *p, const void *arg, size_t t0, size_t t1)
{
    const norm_args *a = arg;
    const bonsai_hparams *hp = &p->s->model->hp;
    const size_t E = hp->n_embd;
    p->ctx->kernels->rms_norm(a->x + t0 * E, a->w, t1 - t0, E, hp->rms_eps, a->y + t0 * E);
}

/* y = rmsnorm(x) * w for the pass's tokens, x and y [m][E] */
static void norm_all(const pass *p, const float *x, const float *w, float *y)
{
    norm_args a = {x, w, y};
    for_tokens(p, norm_tokens, &a);
}

/* Where a pass finds each token's Q, K and V in s->qkv: fused, one row of
 * [H*D + 2*KV*D] per token holding all three at the layer's offsets; apart,
 * three blocks [m][H*D], [m][KV*D], [m][KV*D]. */
typedef struct qkv_layout {
    float *q, *k, *v;
    size_t q_stride, k_stride, v_stride;
} qkv_layout;

typedef struct qk_args {
    const bonsai_layer *L;
    size_t il;
    qkv_layout lay;
} qk_args;

/* Per-head RMSNorm and RoPE of q and k, then k and v into the cache. */
static void qk_norm_rope_store(const pass *p, const void *arg, size_t t0, size_t t1)
{
    const qk_args *a = arg;
    const bonsai_layer *L = a->L;
    bonsai_session *s = p->s;
    const bonsai_hparams *hp = &s->model->hp;
    const uint32_t D = hp->head_dim, H = hp->n_heads, KV = hp->n_kv_heads;
    for (size_t t = t0; t < t1; t++) {
        float *q = a->lay.q + t * a->lay.q_stride, *k = a->lay.k + t * a->lay.k_stride;
        const float *v = a->lay.v + t * a->lay.v_stride;
        const float *rope = s->rope + t * D;
        p->ctx->kernels->rms_norm(q, L->q_norm, H, D, hp->rms_eps, q);
        p->ctx->kernels->rms_norm(k, L->k_norm, KV, D, hp->rms_eps, k);
        bonsai_rope_apply(q, H, D, rope);
        bonsai_rope_apply(k, KV, D, rope);
        bonsai_kv_store(s, a->il, (size_t)s->n_past + t, k, v);
    }
}

static bonsai_status layer_pass(const pass *p, size_t il)
{
    bonsai_session *s = p->s;
    const bonsai_model *mdl = s->model;
    const bonsai_hparams *hp = &mdl->hp;
    const bonsai_layer *L = &mdl->layers[il];
    const size_t m = p->m;
    bonsai_status st;

    norm_all(p, s->x, L->attn_norm, s->xn);
    const size_t QD = (size_t)hp->n_heads * hp->head_dim, KVD = (size_t)hp->n_kv_heads * hp->head_dim;
    qk_args qa = {L, il, {0}};
    qkv_layout *lay = &qa.lay;
    if (L->qkv.rows) {
        if ((st = linear(p, &L->qkv, s->xn, 0, 0, s->qkv)) != BONSAI_OK)
            return st;
        *lay = (qkv_layout){s->qkv + L->q_off, s->qkv + L->k_off, s->qkv + L->v_off,
                            L->qkv.rows, L->qkv.rows, L->qkv.rows};
    } else {
        *lay = (qkv_layout){s->qkv, s->qkv + m * QD, s->qkv + m * (QD + KVD), QD, KVD, KVD};
        if ((st = linear(p, &L->wq, s->xn, 0, 0, lay->q)) != BONSAI_OK ||
            (st = linear(p, &L->wk, s->xn, 1, 0, lay->k)) != BONSAI_OK ||
            (st = linear(p, &L->wv, s->xn, 1, 0, lay->v)) != BONSAI_OK)
            return st;
    }
    for_tokens(p, qk_norm_rope_store, &qa);
    bonsai_attention(s, il, m, lay->q, lay->q_stride, s->att);
    if ((st = linear(p, &L->wo, s->att, 0, 1, s->x)) != BONSAI_OK)
        return st;

    norm_all(p, s->x, L->ffn_norm, s->xn);
    if ((st = swiglu(p, L, s->xn, s->h)) != BONSAI_OK)
        return st;
    return linear(p, &L->down, s->h, 0, 1, s->x);
}

bonsai_status bonsai_forward(bonsai_session *s, const int32_t *tokens, size_t m, float *logits)
{
    bonsai_model *mdl = s->model;
    const bonsai_hparams *hp = &mdl->hp;
    bonsai_status st = bonsai_session_reserve(s, m);
    if (st != BONSAI_OK)
        return st;
    pass p = {.s = s, .ctx = mdl->ctx, .q8 = mdl->params.act_mode == BONSAI_ACT_Q8, .m = m};
    if ((st = embed(mdl, tokens, m, s->x)) != BONSAI_OK)
        return st;
    bonsai_rope_table(s->n_past, m, hp->head_dim, hp->rope_theta, s->rope);
    for (size_t il = 0; il < hp->n_layers; il++)
        if ((st = layer_pass(&p, il)) != BONSAI_OK)
            return st;
    if (logits) {
        const float *last = s->x + (m - 1) * hp->n_embd;
        p.ctx->kernels->rms_norm(last, mdl->output_norm, 1, hp->n_embd, hp->rms_eps, s->xn);
        pass head = p;
        head.m = 1;
        if ((st = linear(&head, &mdl->output, s->xn, 0, 0, logits)) != BONSAI_OK)
            return st;
    }
    s->n_past += (uint32_t)m;
    return BONSAI_OK;
}

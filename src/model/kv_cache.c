/* bonsai_session: the KV cache ([layer][kv_head][n_ctx][head_dim] for K and
 * for V; fp16 in q8 mode, whose error budget it fits and whose decode reads
 * the cache at every step, fp32 in f32 mode) and the activation buffers of
 * a forward pass, which grow to the largest token count seen (at most
 * BONSAI_MODEL_MAX_CHUNK). The cache is allocated untouched: pages are
 * committed as positions are written. */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "cpu/kernel_table.h"
#include "model/model_internal.h"

static void free_buffers(bonsai_session *s)
{
    float **bufs[] = {&s->x, &s->xn, &s->qkv, &s->att, &s->h, &s->rope};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        bonsai_free(*bufs[i]);
        *bufs[i] = NULL;
    }
    bonsai_free(s->xq);
    s->xq = NULL;
    s->cap = 0;
}

bonsai_status bonsai_session_create(bonsai_model *m, bonsai_session **out)
{
    if (!out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "session: out is NULL");
    *out = NULL;
    if (!m)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "session: model is NULL");
    const bonsai_hparams *hp = &m->hp;
    bonsai_session *s = calloc(1, sizeof *s);
    if (!s)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "session: out of memory");
    s->model = m;
    s->n_ctx = m->n_ctx;
    s->kv_f16 = m->params.act_mode == BONSAI_ACT_Q8;
    const size_t elem = s->kv_f16 ? sizeof(uint16_t) : sizeof(float);
    size_t per_layer, cache;
    int ok = bonsai_mul_size((size_t)hp->n_kv_heads * hp->head_dim, s->n_ctx, &per_layer) &&
             bonsai_mul_size(per_layer, hp->n_layers, &cache);
    if (ok) {
        s->k_cache = bonsai_alloc_array(cache, elem);
        s->v_cache = bonsai_alloc_array(cache, elem);
        s->scores = bonsai_alloc_array((size_t)bonsai_ctx_n_threads(m->ctx) * BONSAI_ATTN_ROWS * s->n_ctx,
                                       sizeof(float));
    }
    if (!ok || !s->k_cache || !s->v_cache || !s->scores) {
        bonsai_session_free(s);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                           "session: no memory for a KV cache of %u positions x %u layers x %u "
                           "kv heads x %u (2 x %s)",
                           m->n_ctx, hp->n_layers, hp->n_kv_heads, hp->head_dim,
                           s->kv_f16 ? "fp16" : "fp32");
    }
    *out = s;
    return BONSAI_OK;
}

void bonsai_session_free(bonsai_session *s)
{
    if (!s)
        return;
    free_buffers(s);
    bonsai_free(s->k_cache);
    bonsai_free(s->v_cache);
    bonsai_free(s->scores);
    free(s);
}

void bonsai_session_reset(bonsai_session *s)
{
    if (s)
        s->n_past = 0;
}

uint32_t bonsai_session_n_past(const bonsai_session *s)
{
    return s ? s->n_past : 0;
}

/* Makes the activation buffers hold m tokens. */
bonsai_status bonsai_session_reserve(bonsai_session *s, size_t m)
{
    if (m <= s->cap)
        return BONSAI_OK;
    const bonsai_hparams *hp = &s->model->hp;
    const size_t E = hp->n_embd, QD = (size_t)hp->n_heads * hp->head_dim,
                 KVD = (size_t)hp->n_kv_heads * hp->head_dim, F = hp->n_ff;
    size_t widest = E > QD ? E : QD;
    widest = widest > F ? widest : F;
    free_buffers(s);
    s->x = bonsai_alloc_array(m * E, sizeof(float));
    s->xn = bonsai_alloc_array(m * E, sizeof(float));
    s->qkv = bonsai_alloc_array(m * (QD + 2 * KVD), sizeof(float));
    s->att = bonsai_alloc_array(m * QD, sizeof(float));
    s->h = bonsai_alloc_array(m * F, sizeof(float));
    s->rope = bonsai_alloc_array(m * hp->head_dim, sizeof(float));
    s->xq = bonsai_alloc_array(m * (widest / BONSAI_QK), sizeof(bonsai_block_q8));
    if (!s->x || !s->xn || !s->qkv || !s->att || !s->h || !s->rope || !s->xq) {
        free_buffers(s);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                           "session: no memory for the activations of %zu tokens", m);
    }
    s->cap = m;
    return BONSAI_OK;
}

/* bonsai_session: the KV cache ([layer][kv_head][n_ctx][head_dim] for K and
 * for V, of the model's kv_type: fp16 by default in q8 mode, whose error
 * budget it fits and whose decode reads the cache at every step, fp32 in
 * f32 mode; q8 on request, D int8 values and one float scale per row,
 * d = max |x| / 127, half the bytes of fp16) and the activation buffers of
 * a forward pass, which grow to the largest token count seen (at most
 * BONSAI_MODEL_MAX_CHUNK). The cache is allocated untouched: pages are
 * committed as positions are written. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "cpu/context.h"
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
    s->kv_type = bonsai_model_cache_type(m);
    const int q8 = s->kv_type == BONSAI_CACHE_Q8;
    size_t rows, cache;
    int ok = bonsai_mul_size((size_t)hp->n_kv_heads * hp->n_layers, s->n_ctx, &rows) &&
             bonsai_mul_size(rows, hp->head_dim, &cache);
    if (ok) {
        s->k_cache = bonsai_alloc_array(cache, bonsai_cache_elem_bytes(s->kv_type));
        s->v_cache = bonsai_alloc_array(cache, bonsai_cache_elem_bytes(s->kv_type));
        if (q8) {
            s->k_scale = bonsai_alloc_array(rows, sizeof(float));
            s->v_scale = bonsai_alloc_array(rows, sizeof(float));
        }
        s->scores = bonsai_alloc_array((size_t)bonsai_ctx_n_threads(m->ctx) * BONSAI_ATTN_ROWS * s->n_ctx,
                                       sizeof(float));
    }
    if (!ok || !s->k_cache || !s->v_cache || !s->scores || (q8 && (!s->k_scale || !s->v_scale))) {
        bonsai_session_free(s);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                           "session: no memory for a KV cache of %u positions x %u layers x %u "
                           "kv heads x %u (2 x %s)",
                           m->n_ctx, hp->n_layers, hp->n_kv_heads, hp->head_dim,
                           bonsai_kv_type_name(m->kv_type));
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
    bonsai_free(s->k_scale);
    bonsai_free(s->v_scale);
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

bonsai_attn_kv bonsai_kv_head(const bonsai_session *s, size_t il, uint32_t g)
{
    const bonsai_hparams *hp = &s->model->hp;
    const size_t row = (il * hp->n_kv_heads + g) * s->n_ctx; /* the head's row 0 */
    const size_t off = row * hp->head_dim * bonsai_cache_elem_bytes(s->kv_type);
    const int q8 = s->kv_type == BONSAI_CACHE_Q8;
    return (bonsai_attn_kv){(const char *)s->k_cache + off, (const char *)s->v_cache + off,
                            q8 ? s->k_scale + row : NULL, q8 ? s->v_scale + row : NULL};
}

/* x (D floats) as one q8 row: d = max |x| / 127, q = round(x / d) */
static float quantize_row(const float *x, uint32_t D, int8_t *q)
{
    float amax = 0;
    for (uint32_t i = 0; i < D; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
    for (uint32_t i = 0; i < D; i++)
        q[i] = (int8_t)lrintf(x[i] * inv);
    return d;
}

void bonsai_kv_store(bonsai_session *s, size_t il, size_t pos, const float *k, const float *v)
{
    const bonsai_hparams *hp = &s->model->hp;
    const uint32_t D = hp->head_dim;
    for (uint32_t g = 0; g < hp->n_kv_heads; g++) {
        const size_t row = (il * hp->n_kv_heads + g) * s->n_ctx + pos;
        const float *kg = k + (size_t)g * D, *vg = v + (size_t)g * D;
        switch (s->kv_type) {
        case BONSAI_CACHE_F16:
            s->model->ctx->kernels->fp32_to_fp16(kg, (uint16_t *)s->k_cache + row * D, D);
            s->model->ctx->kernels->fp32_to_fp16(vg, (uint16_t *)s->v_cache + row * D, D);
            break;
        case BONSAI_CACHE_Q8:
            s->k_scale[row] = quantize_row(kg, D, (int8_t *)s->k_cache + row * D);
            s->v_scale[row] = quantize_row(vg, D, (int8_t *)s->v_cache + row * D);
            break;
        default:
            memcpy((float *)s->k_cache + row * D, kg, D * sizeof(float));
            memcpy((float *)s->v_cache + row * D, vg, D * sizeof(float));
        }
    }
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

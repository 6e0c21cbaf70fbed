/* bonsai_model: load (GGUF open, weights checked, context created), info,
 * free. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_internal.h"

bonsai_model_params bonsai_model_default_params(void)
{
    bonsai_model_params p = {.n_threads = 0, .tier = BONSAI_TIER_AUTO, .n_ctx = 0,
                             .act_mode = BONSAI_ACT_Q8, .q2_variant = BONSAI_Q2_AUTO};
    return p;
}

bonsai_status bonsai_model_load(const char *path, const bonsai_model_params *params,
                                bonsai_model **out)
{
    if (!out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "model load: out is NULL");
    *out = NULL;
    if (!path)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "model load: path is NULL");
    bonsai_model_params p = params ? *params : bonsai_model_default_params();
    if (p.act_mode != BONSAI_ACT_Q8 && p.act_mode != BONSAI_ACT_F32)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "model load: act_mode %d is not q8 (0) or f32 (1)",
                           (int)p.act_mode);
    if ((unsigned)p.kv_type >= BONSAI_KV_TYPES)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "model load: kv_type %d is not auto (0), f32 (1), f16 (2) or q8 (3)",
                           (int)p.kv_type);
    bonsai_model *m = calloc(1, sizeof *m);
    if (!m)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "model load: out of memory");
    m->params = p;
    m->kv_type = p.kv_type != BONSAI_KV_AUTO  ? p.kv_type
                 : p.act_mode == BONSAI_ACT_Q8 ? BONSAI_KV_F16
                                               : BONSAI_KV_F32;
    bonsai_gguf_params gp = bonsai_gguf_default_params();
    gp.q2_variant = p.q2_variant;
    gp.progress = p.progress;
    gp.progress_user = p.progress_user;
    bonsai_status s = bonsai_gguf_open(path, &gp, &m->gguf);
    if (s == BONSAI_OK)
        s = bonsai_model_read_weights(m);
    if (s == BONSAI_OK) {
        m->n_ctx = p.n_ctx ? p.n_ctx
                           : (m->hp.n_ctx_train < BONSAI_MODEL_DEFAULT_CTX ? m->hp.n_ctx_train
                                                                          : BONSAI_MODEL_DEFAULT_CTX);
        bonsai_ctx_params cp = bonsai_ctx_default_params();
        cp.n_threads = p.n_threads;
        cp.tier = p.tier;
        s = bonsai_ctx_create(&cp, &m->ctx);
    }
    if (s == BONSAI_OK)
        s = bonsai_model_pack_weights(m);
    if (s != BONSAI_OK) {
        bonsai_model_free(m);
        return s;
    }
    *out = m;
    return BONSAI_OK;
}

void bonsai_model_free(bonsai_model *m)
{
    if (!m)
        return;
    bonsai_model_unpack_weights(m);
    bonsai_model_free_weights(m);
    bonsai_ctx_free(m->ctx);
    bonsai_gguf_close(m->gguf);
    free(m);
}

bonsai_status bonsai_model_get_info(const bonsai_model *m, bonsai_model_info *out)
{
    if (!m || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "model info: %s is NULL", m ? "out" : "model");
    const bonsai_hparams *hp = &m->hp;
    *out = (bonsai_model_info){
        .n_layers = hp->n_layers, .n_embd = hp->n_embd, .n_heads = hp->n_heads,
        .n_kv_heads = hp->n_kv_heads, .head_dim = hp->head_dim, .n_ff = hp->n_ff,
        .n_vocab = hp->n_vocab, .n_ctx_train = hp->n_ctx_train, .n_ctx = m->n_ctx,
        .rope_theta = hp->rope_theta, .rms_eps = hp->rms_eps, .tied_embeddings = m->tied,
        .weight_type = m->layers[0].wq.type, .act_mode = m->params.act_mode,
        .kv_type = m->kv_type,
        .tier = bonsai_ctx_tier(m->ctx), .n_threads = bonsai_ctx_n_threads(m->ctx),
        .n_params = m->n_params, .file_weight_bytes = m->file_weight_bytes,
        .bytes_per_token = m->bytes_per_token, .packed_bytes = bonsai_model_packed_bytes(m)};
    return BONSAI_OK;
}

static const char *const kv_type_names[BONSAI_KV_TYPES] = {"auto", "f32", "f16", "q8"};

const char *bonsai_kv_type_name(bonsai_kv_type t)
{
    return (unsigned)t < BONSAI_KV_TYPES ? kv_type_names[t] : "unknown";
}

bonsai_status bonsai_kv_type_from_name(const char *name, bonsai_kv_type *out)
{
    if (!name || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "kv type: %s is NULL", name ? "out" : "name");
    for (int t = 0; t < BONSAI_KV_TYPES; t++)
        if (strcmp(name, kv_type_names[t]) == 0) {
            *out = (bonsai_kv_type)t;
            return BONSAI_OK;
        }
    return bonsai_fail(BONSAI_ERR_INVALID_ARG, "kv type '%s' is not auto, f32, f16 or q8", name);
}

bonsai_cache_type bonsai_model_cache_type(const bonsai_model *m)
{
    return m->kv_type == BONSAI_KV_F32   ? BONSAI_CACHE_F32
           : m->kv_type == BONSAI_KV_F16 ? BONSAI_CACHE_F16
                                         : BONSAI_CACHE_Q8;
}

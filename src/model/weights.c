/* GGUF -> Qwen3 weights: hyperparameters from the qwen3.* metadata and
 * every tensor the forward pass reads, each checked for presence, type and
 * shape before use. Matrices stay in the file mapping; norm vectors (a few
 * KB) are converted to fp32 copies. Every refusal names the key or tensor
 * with the expected and actual values. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "model/model_internal.h"

#define ARCH "qwen3"

static bonsai_status read_u32(const bonsai_gguf *g, const char *key, int required,
                              uint32_t fallback, uint32_t *out)
{
    bonsai_status s = bonsai_gguf_get_u32(g, key, out);
    if (s == BONSAI_ERR_NOT_FOUND && !required) {
        *out = fallback;
        return BONSAI_OK;
    }
    if (s == BONSAI_ERR_NOT_FOUND)
        return bonsai_fail(s, "model: metadata key %s is missing", key);
    if (s != BONSAI_OK)
        return bonsai_fail(s, "model: metadata key %s: %s", key, bonsai_last_error());
    return BONSAI_OK;
}

static bonsai_status read_f32(const bonsai_gguf *g, const char *key, float fallback, float *out)
{
    bonsai_status s = bonsai_gguf_get_f32(g, key, out);
    if (s == BONSAI_ERR_NOT_FOUND) {
        *out = fallback;
        return BONSAI_OK;
    }
    if (s != BONSAI_OK)
        return bonsai_fail(s, "model: metadata key %s: %s", key, bonsai_last_error());
    return BONSAI_OK;
}

static bonsai_status check_range(const char *key, uint32_t v, uint32_t lo, uint32_t hi)
{
    if (v < lo || v > hi)
        return bonsai_fail(BONSAI_ERR_FORMAT, "model: %s = %" PRIu32 " is outside [%" PRIu32
                           ", %" PRIu32 "]", key, v, lo, hi);
    return BONSAI_OK;
}

static bonsai_status read_hparams(const bonsai_gguf *g, bonsai_hparams *hp)
{
    const char *arch;
    size_t arch_len;
    bonsai_status s = bonsai_gguf_get_str(g, "general.architecture", &arch, &arch_len);
    if (s == BONSAI_ERR_NOT_FOUND)
        return bonsai_fail(s, "model: metadata key general.architecture is missing");
    if (s != BONSAI_OK)
        return bonsai_fail(s, "model: general.architecture: %s", bonsai_last_error());
    if (arch_len != strlen(ARCH) || memcmp(arch, ARCH, arch_len) != 0)
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "model: general.architecture is '%.*s', only '" ARCH "' is supported",
                           (int)(arch_len > 64 ? 64 : arch_len), arch);
    uint32_t key_len, value_len;
    if ((s = read_u32(g, ARCH ".block_count", 1, 0, &hp->n_layers)) ||
        (s = read_u32(g, ARCH ".embedding_length", 1, 0, &hp->n_embd)) ||
        (s = read_u32(g, ARCH ".feed_forward_length", 1, 0, &hp->n_ff)) ||
        (s = read_u32(g, ARCH ".attention.head_count", 1, 0, &hp->n_heads)) ||
        (s = read_u32(g, ARCH ".attention.head_count_kv", 0, hp->n_heads, &hp->n_kv_heads)) ||
        (s = read_u32(g, ARCH ".context_length", 0, 40960, &hp->n_ctx_train)) ||
        (s = read_f32(g, ARCH ".rope.freq_base", 1000000.0f, &hp->rope_theta)) ||
        (s = read_f32(g, ARCH ".attention.layer_norm_rms_epsilon", 1e-6f, &hp->rms_eps)))
        return s;
    if ((s = check_range(ARCH ".block_count", hp->n_layers, 1, 1024)) ||
        (s = check_range(ARCH ".embedding_length", hp->n_embd, 1, 1u << 16)) ||
        (s = check_range(ARCH ".feed_forward_length", hp->n_ff, 1, 1u << 18)) ||
        (s = check_range(ARCH ".attention.head_count", hp->n_heads, 1, 1024)) ||
        (s = check_range(ARCH ".attention.head_count_kv", hp->n_kv_heads, 1, hp->n_heads)) ||
        (s = check_range(ARCH ".context_length", hp->n_ctx_train, 1, 1u << 24)))
        return s;
    if (hp->n_heads % hp->n_kv_heads != 0)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "model: head_count = %" PRIu32 " is not a multiple of head_count_kv = %"
                           PRIu32, hp->n_heads, hp->n_kv_heads);
    /* head_dim: key_length when present (hidden / heads is wrong for the 4B) */
    if ((s = read_u32(g, ARCH ".attention.key_length", 0, hp->n_embd / hp->n_heads, &key_len)) ||
        (s = read_u32(g, ARCH ".attention.value_length", 0, key_len, &value_len)))
        return s;
    if ((s = check_range(ARCH ".attention.key_length", key_len, 2, 1024)))
        return s;
    if (key_len % 2 != 0)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "model: attention.key_length = %" PRIu32 " is odd (RoPE rotates pairs)",
                           key_len);
    if (value_len != key_len)
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "model: attention.value_length = %" PRIu32
                           " differs from key_length = %" PRIu32, value_len, key_len);
    hp->head_dim = key_len;
    if (!(hp->rope_theta > 0) || !(hp->rms_eps > 0) || hp->rms_eps > 1)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "model: rope.freq_base = %g must be > 0 and "
                           "layer_norm_rms_epsilon = %g in (0, 1]",
                           (double)hp->rope_theta, (double)hp->rms_eps);
    return BONSAI_OK;
}

/* The tensor called name, or NOT_FOUND naming what was expected. */
static bonsai_status find(const bonsai_model *m, const char *name, const bonsai_gguf_tensor **out)
{
    *out = bonsai_gguf_find_tensor(m->gguf, name);
    if (!*out)
        return bonsai_fail(BONSAI_ERR_NOT_FOUND, "model: tensor %s is missing", name);
    return BONSAI_OK;
}

static bonsai_status check_shape(const bonsai_gguf_tensor *t, uint32_t want_dims, uint64_t ne0,
                                 uint64_t ne1)
{
    int ok = t->ne[0] == ne0 && (want_dims == 1 || t->ne[1] == ne1);
    for (uint32_t d = want_dims; d < t->n_dims && d < 4; d++)
        ok = ok && t->ne[d] == 1;
    if (ok)
        return BONSAI_OK;
    if (want_dims == 1)
        return bonsai_fail(BONSAI_ERR_SHAPE,
                           "model: tensor %s has %" PRIu32 " dims [%" PRIu64 ", %" PRIu64
                           "], expected [%" PRIu64 "]", t->name, t->n_dims, t->ne[0],
                           t->n_dims > 1 ? t->ne[1] : 1, ne0);
    return bonsai_fail(BONSAI_ERR_SHAPE,
                       "model: tensor %s has shape [%" PRIu64 ", %" PRIu64 "], expected [%" PRIu64
                       ", %" PRIu64 "] (ne0 = input features, ne1 = rows)",
                       t->name, t->ne[0], t->n_dims > 1 ? t->ne[1] : 1, ne0, ne1);
}

/* A [rows][k] quantized matrix read in place. */
static bonsai_status matrix_from(bonsai_model *m, const bonsai_gguf_tensor *t, uint32_t k,
                                 uint32_t rows, bonsai_matrix *out)
{
    bonsai_status s = check_shape(t, 2, k, rows);
    if (s != BONSAI_OK)
        return s;
    if (bonsai_type_block_elems(t->type) != BONSAI_QK)
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "model: tensor %s has type %s; matrices must be a 128-group "
                           "quantized type (q1_0_g128, tq2_0_g128, pq2_0)",
                           t->name, bonsai_type_name(t->type) ? bonsai_type_name(t->type) : "?");
    size_t need;
    if ((s = bonsai_type_matrix_bytes(t->type, rows, k, &need)) != BONSAI_OK)
        return bonsai_fail(s, "model: tensor %s: %s", t->name, bonsai_last_error());
    if (t->bytes < need)
        return bonsai_fail(BONSAI_ERR_FORMAT, "model: tensor %s holds %zu bytes, %zu needed",
                           t->name, t->bytes, need);
    *out = (bonsai_matrix){.type = t->type, .rows = rows, .k = k, .data = t->data,
                           .data_bytes = need, .name = t->name};
    m->bytes_per_token += need;
    return BONSAI_OK;
}

static bonsai_status matrix(bonsai_model *m, const char *name, uint32_t k, uint32_t rows,
                            bonsai_matrix *out)
{
    const bonsai_gguf_tensor *t;
    bonsai_status s = find(m, name, &t);
    return s != BONSAI_OK ? s : matrix_from(m, t, k, rows, out);
}

/* A norm weight of n elements (f32, f16 or bf16) as an owned fp32 copy. */
static bonsai_status vector(bonsai_model *m, const char *name, uint32_t n, float **out)
{
    const bonsai_gguf_tensor *t;
    bonsai_status s = find(m, name, &t);
    if (s == BONSAI_OK)
        s = check_shape(t, 1, n, 1);
    if (s != BONSAI_OK)
        return s;
    if (bonsai_type_block_elems(t->type) != 1)
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "model: tensor %s has type %s; norm weights must be f32, f16 or bf16",
                           t->name, bonsai_type_name(t->type) ? bonsai_type_name(t->type) : "?");
    *out = bonsai_alloc_array(n, sizeof(float));
    if (!*out)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "model: out of memory for %s", name);
    if (bonsai_dequantize(t->type, t->data, t->bytes, *out, n) != BONSAI_OK)
        return bonsai_fail(BONSAI_ERR_FORMAT, "model: tensor %s: %s", name, bonsai_last_error());
    m->bytes_per_token += (uint64_t)n * bonsai_type_block_bytes(t->type);
    return BONSAI_OK;
}

/* When Q, K and V lie back to back in the file (in any order) with one type,
 * views them as one matrix so a single matmul computes all three. */
static void fuse_qkv(uint32_t il, bonsai_layer *L)
{
    const bonsai_matrix *m[3] = {&L->wq, &L->wk, &L->wv};
    size_t *off[3] = {&L->q_off, &L->k_off, &L->v_off};
    int order[3] = {0, 1, 2}; /* by address */
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if ((const uint8_t *)m[order[j]]->data < (const uint8_t *)m[order[i]]->data) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    L->qkv.rows = 0;
    for (int i = 0; i < 2; i++) {
        const bonsai_matrix *a = m[order[i]], *b = m[order[i + 1]];
        if (a->type != b->type || (const uint8_t *)a->data + a->data_bytes != b->data)
            return;
    }
    size_t rows = 0, bytes = 0;
    for (int i = 0; i < 3; i++) {
        *off[order[i]] = rows;
        rows += m[order[i]]->rows;
        bytes += m[order[i]]->data_bytes;
    }
    snprintf(L->qkv_name, sizeof L->qkv_name, "blk.%" PRIu32 ".attn_q+k+v", il);
    L->qkv = (bonsai_matrix){.type = L->wq.type, .rows = rows, .k = L->wq.k,
                             .data = m[order[0]]->data, .data_bytes = bytes,
                             .name = L->qkv_name};
}

static bonsai_status read_layer(bonsai_model *m, uint32_t il, bonsai_layer *L)
{
    const bonsai_hparams *hp = &m->hp;
    const uint32_t E = hp->n_embd, D = hp->head_dim, F = hp->n_ff;
    const uint32_t QD = hp->n_heads * D, KVD = hp->n_kv_heads * D;
    char name[96];
    bonsai_status s;
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%" PRIu32 "." suffix, il), name)
    if ((s = vector(m, NAME("attn_norm.weight"), E, &L->attn_norm)) ||
        (s = matrix(m, NAME("attn_q.weight"), E, QD, &L->wq)) ||
        (s = matrix(m, NAME("attn_k.weight"), E, KVD, &L->wk)) ||
        (s = matrix(m, NAME("attn_v.weight"), E, KVD, &L->wv)) ||
        (s = vector(m, NAME("attn_q_norm.weight"), D, &L->q_norm)) ||
        (s = vector(m, NAME("attn_k_norm.weight"), D, &L->k_norm)) ||
        (s = matrix(m, NAME("attn_output.weight"), QD, E, &L->wo)) ||
        (s = vector(m, NAME("ffn_norm.weight"), E, &L->ffn_norm)) ||
        (s = matrix(m, NAME("ffn_gate.weight"), E, F, &L->gate)) ||
        (s = matrix(m, NAME("ffn_up.weight"), E, F, &L->up)) ||
        (s = matrix(m, NAME("ffn_down.weight"), F, E, &L->down)))
        return s;
#undef NAME
    fuse_qkv(il, L);
    return BONSAI_OK;
}

bonsai_status bonsai_model_read_weights(bonsai_model *m)
{
    bonsai_status s = read_hparams(m->gguf, &m->hp);
    if (s != BONSAI_OK)
        return s;
    bonsai_hparams *hp = &m->hp;

    const bonsai_gguf_tensor *embd;
    if ((s = find(m, "token_embd.weight", &embd)) != BONSAI_OK)
        return s;
    if (embd->n_dims < 2 || embd->ne[1] == 0 || embd->ne[1] > INT32_MAX)
        return bonsai_fail(BONSAI_ERR_SHAPE,
                           "model: tensor token_embd.weight has %" PRIu32 " dims, expected [%" PRIu32
                           ", n_vocab] with 0 < n_vocab <= 2^31 - 1",
                           embd->n_dims, hp->n_embd);
    hp->n_vocab = (uint32_t)embd->ne[1];
    if ((s = check_shape(embd, 2, hp->n_embd, hp->n_vocab)) != BONSAI_OK)
        return s;
    if ((s = bonsai_type_matrix_bytes(embd->type, 1, hp->n_embd, &m->embd_row_bytes)) !=
        BONSAI_OK)
        return bonsai_fail(s, "model: token_embd.weight: %s", bonsai_last_error());
    if (embd->bytes / m->embd_row_bytes < hp->n_vocab)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "model: tensor token_embd.weight holds %zu bytes, %" PRIu32
                           " rows of %zu needed", embd->bytes, hp->n_vocab, m->embd_row_bytes);
    m->tok_embd = embd;

    const uint32_t E = hp->n_embd, QD = hp->n_heads * hp->head_dim, F = hp->n_ff;
    if (E % BONSAI_QK || QD % BONSAI_QK || F % BONSAI_QK)
        return bonsai_fail(BONSAI_ERR_SHAPE,
                           "model: embedding_length = %" PRIu32 ", head_count x key_length = %" PRIu32
                           " and feed_forward_length = %" PRIu32 " must be multiples of 128",
                           E, QD, F);

    m->layers = calloc(hp->n_layers, sizeof *m->layers);
    if (!m->layers)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "model: out of memory for layers");
    for (uint32_t il = 0; il < hp->n_layers; il++)
        if ((s = read_layer(m, il, &m->layers[il])) != BONSAI_OK)
            return s;
    if ((s = vector(m, "output_norm.weight", E, &m->output_norm)) != BONSAI_OK)
        return s;

    const bonsai_gguf_tensor *out = bonsai_gguf_find_tensor(m->gguf, "output.weight");
    m->tied = out == NULL;
    if ((s = matrix_from(m, m->tied ? embd : out, E, hp->n_vocab, &m->output)) != BONSAI_OK)
        return s;
    m->bytes_per_token += m->embd_row_bytes;

    for (size_t i = 0; i < bonsai_gguf_n_tensors(m->gguf); i++) {
        const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(m->gguf, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims && d < 4; d++)
            n *= t->ne[d];
        m->n_params += n;
        m->file_weight_bytes += t->bytes;
    }
    return BONSAI_OK;
}

void bonsai_model_free_weights(bonsai_model *m)
{
    if (m->layers)
        for (uint32_t il = 0; il < m->hp.n_layers; il++) {
            bonsai_layer *L = &m->layers[il];
            bonsai_free(L->attn_norm);
            bonsai_free(L->ffn_norm);
            bonsai_free(L->q_norm);
            bonsai_free(L->k_norm);
        }
    free(m->layers);
    bonsai_free(m->output_norm);
    m->layers = NULL;
    m->output_norm = NULL;
}

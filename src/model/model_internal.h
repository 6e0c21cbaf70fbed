/* Internal: the model and session objects shared by the files of src/model.
 *
 * Shapes (GGUF stores [k, rows]; a bonsai_matrix is [rows][k]):
 *   E = n_embd, H = n_heads, KV = n_kv_heads, D = head_dim, F = n_ff, V = n_vocab
 *   token_embd [V][E]  attn_q [H*D][E]  attn_k, attn_v [KV*D][E]
 *   attn_output [E][H*D]  ffn_gate, ffn_up [F][E]  ffn_down [E][F]  output [V][E]
 *   norms: attn_norm, ffn_norm, output_norm [E]; attn_q_norm, attn_k_norm [D]
 * The KV cache is [layer][kv_head][position][D] in fp32 for K and for V. */
#ifndef BONSAI_MODEL_INTERNAL_H
#define BONSAI_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bonsai/gguf.h"
#include "bonsai/kernels.h"
#include "bonsai/model.h"
#include "cpu/kernel_table.h"

/* Most tokens one forward pass takes; longer prompts run in chunks
 * (a build may set another value, e.g. to measure the trade-off). */
#ifndef BONSAI_MODEL_MAX_CHUNK
#define BONSAI_MODEL_MAX_CHUNK 512
#endif
/* Default positions per session when the params say 0. */
#define BONSAI_MODEL_DEFAULT_CTX 4096

typedef struct bonsai_hparams {
    uint32_t n_layers, n_embd, n_heads, n_kv_heads, head_dim, n_ff, n_vocab, n_ctx_train;
    float rope_theta, rms_eps;
} bonsai_hparams;

typedef struct bonsai_layer {
    bonsai_matrix wq, wk, wv, wo, gate, up, down;
    /* Q, K and V as one [H*D + 2*KV*D][E] view when the file stores them
     * back to back (one matmul, one pass over the pool); qkv.rows == 0
     * when they are apart. q_off, k_off, v_off: their first rows in it. */
    bonsai_matrix qkv;
    size_t q_off, k_off, v_off;
    char qkv_name[48];
    float *attn_norm, *ffn_norm; /* [E], owned */
    float *q_norm, *k_norm;      /* [D], owned */
} bonsai_layer;

struct bonsai_model {
    bonsai_gguf *gguf;
    bonsai_ctx *ctx;
    bonsai_hparams hp;
    bonsai_model_params params;
    uint32_t n_ctx;
    bonsai_kv_type kv_type;             /* params.kv_type resolved */
    const bonsai_gguf_tensor *tok_embd; /* rows dequantized on lookup */
    size_t embd_row_bytes;
    bonsai_matrix output;               /* LM head: output.weight or token_embd */
    int tied;
    float *output_norm;                 /* [E], owned */
    bonsai_layer *layers;
    uint64_t n_params, file_weight_bytes, bytes_per_token;
};

struct bonsai_session {
    bonsai_model *model;
    uint32_t n_ctx, n_past;
    /* rows [L][KV][n_ctx] of D elements of kv_type (kv_cache.c), and for
     * q8 one scale per row in k_scale, v_scale */
    void *k_cache, *v_cache;
    float *k_scale, *v_scale;
    bonsai_cache_type kv_type;
    /* activations for up to cap tokens, grown on demand */
    size_t cap;
    float *x;    /* [cap][E] residual stream */
    float *xn;   /* [cap][E] normed */
    float *qkv;  /* [cap][H*D + 2*KV*D]: Q, K, V of each token (see forward.c) */
    float *att;  /* [cap][H*D] attention output */
    float *h;    /* [cap][F] SwiGLU output */
    float *rope; /* [cap][2][D/2] cosines, sines per position */
    bonsai_block_q8 *xq; /* [cap][max(E, H*D, F)/128] */
    float *scores;       /* [n_threads][4][n_ctx] attention scratch */
};

/* weights.c: reads hyperparameters and every tensor, checking all. */
bonsai_status bonsai_model_read_weights(bonsai_model *m);
void bonsai_model_free_weights(bonsai_model *m);
/* pack_weights.c: bonsai_matrix_pack on every matrix decode reads (when
 * the params ask for it, q8 mode), and the undoing of it. */
bonsai_status bonsai_model_pack_weights(bonsai_model *m);
void bonsai_model_unpack_weights(bonsai_model *m);
uint64_t bonsai_model_packed_bytes(const bonsai_model *m);

/* rope.c: cos/sin table for positions pos0 .. pos0 + m - 1: [m][2][D/2]. */
void bonsai_rope_table(uint32_t pos0, size_t m, uint32_t head_dim, float theta, float *table);
/* NeoX half-split rotation of n_heads vectors of head_dim at one position. */
void bonsai_rope_apply(float *v, size_t n_heads, uint32_t head_dim, const float *table_row);

/* attention.c: causal GQA attention of m query tokens at positions
 * n_past .. n_past + m - 1 over layer il of the session's cache (which
 * already holds them). q: token t's heads at q + t * q_stride; out [m][H*D]. */
void bonsai_attention(const bonsai_session *s, size_t il, size_t m, const float *q, size_t q_stride,
                      float *out);

/* model.c: the kernels' element type of the model's KV cache. */
bonsai_cache_type bonsai_model_cache_type(const bonsai_model *m);

/* kv_cache.c: the cache of KV head g of layer il, and the storing of one
 * token's K and V ([KV][D] each) at position pos. */
bonsai_attn_kv bonsai_kv_head(const bonsai_session *s, size_t il, uint32_t g);
void bonsai_kv_store(bonsai_session *s, size_t il, size_t pos, const float *k, const float *v);

/* kv_cache.c: makes the activation buffers hold m tokens. */
bonsai_status bonsai_session_reserve(bonsai_session *s, size_t m);

/* forward.c: one pass over n_tokens <= BONSAI_MODEL_MAX_CHUNK tokens at
 * n_past (room checked by the caller); logits of the last token when not
 * NULL. Advances n_past on success. */
bonsai_status bonsai_forward(bonsai_session *s, const int32_t *tokens, size_t n_tokens,
                             float *logits);

#endif

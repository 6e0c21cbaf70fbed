/* The Qwen3 decoder (Bonsai models) on the CPU, and token sampling.
 *
 * A model is loaded from a GGUF file: every expected tensor is checked for
 * type and shape, metadata for range, and the big matrices are read in
 * place from the file mapping. A session owns a KV cache of n_ctx
 * positions; prefill (many tokens, GEMM) and decode (one token, GEMV) write
 * the same cache, so prefill-then-decode gives the tokens decode-only gives.
 *
 * Threads: a model owns one bonsai_ctx (tier + thread pool); its sessions
 * run their forward passes on it, so use a model and its sessions from one
 * thread at a time.
 *
 *   bonsai_model *m;  bonsai_session *s;
 *   bonsai_model_params mp = bonsai_model_default_params();
 *   bonsai_model_load("model.gguf", &mp, &m);
 *   bonsai_session_create(m, &s);
 *   bonsai_session_prefill(s, prompt, n_prompt, logits, n_vocab);
 *   bonsai_session_decode(s, token, logits, n_vocab);
 */
#ifndef BONSAI_MODEL_H
#define BONSAI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "kernels.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bonsai_model bonsai_model;
typedef struct bonsai_session bonsai_session;

/* How activations meet the quantized weights (see kernels.h). */
typedef enum bonsai_act_mode {
    BONSAI_ACT_Q8 = 0, /* int8 per 128 with an fp32 scale: fast (default) */
    BONSAI_ACT_F32     /* fp32 activations: the exact reference semantics */
} bonsai_act_mode;

/* How the KV cache stores each K and V row of head_dim values. */
typedef enum bonsai_kv_type {
    BONSAI_KV_AUTO = 0, /* fp16 in q8 mode, fp32 in f32 mode */
    BONSAI_KV_F32,
    BONSAI_KV_F16,
    BONSAI_KV_Q8,       /* int8 with one fp32 scale per row (max |x| / 127):
                           half the bytes of fp16, so long contexts decode
                           faster; the attention sees ~0.4% error per value */
    BONSAI_KV_TYPES
} bonsai_kv_type;

const char *bonsai_kv_type_name(bonsai_kv_type t); /* "auto", "f32", "f16", "q8" */
/* INVALID_ARG naming the text when it is none of those names. */
bonsai_status bonsai_kv_type_from_name(const char *name, bonsai_kv_type *out);

typedef struct bonsai_model_params {
    int n_threads;            /* <= 0: one per physical core */
    bonsai_cpu_tier tier;     /* AUTO: best supported, or BONSAI_CPU_TIER */
    uint32_t n_ctx;           /* positions per session; 0: the model's context
                                 length, at most 4096 */
    bonsai_act_mode act_mode;
    bonsai_q2_variant q2_variant; /* how to read GGUF type 42 */
    int pack_weights;         /* 1, q8 mode: copy the matrices into the layout
                                 of the tier's fastest decode kernel, where it
                                 has one (bonsai_matrix_pack): faster decode,
                                 but the load makes and fills a copy of the
                                 weights. 0 (default): the kernels read the
                                 mapped file in place */
    bonsai_kv_type kv_type;   /* the sessions' KV cache (AUTO: by act_mode) */
    bonsai_progress_fn progress;  /* may be NULL */
    void *progress_user;
} bonsai_model_params;

bonsai_model_params bonsai_model_default_params(void);
bonsai_status bonsai_model_load(const char *path, const bonsai_model_params *params,
                                bonsai_model **out);
void bonsai_model_free(bonsai_model *m); /* NULL is a no-op */

typedef struct bonsai_model_info {
    uint32_t n_layers, n_embd, n_heads, n_kv_heads, head_dim, n_ff, n_vocab;
    uint32_t n_ctx_train; /* qwen3.context_length */
    uint32_t n_ctx;       /* positions per session (from the params) */
    float rope_theta, rms_eps;
    int tied_embeddings;  /* 1 when the LM head is token_embd.weight */
    bonsai_type weight_type;   /* type of the layer matrices */
    bonsai_act_mode act_mode;
    bonsai_kv_type kv_type;    /* as resolved: never AUTO */
    bonsai_cpu_tier tier;
    int n_threads;
    uint64_t n_params;         /* elements of every tensor */
    uint64_t file_weight_bytes;/* bytes of every tensor in the file */
    uint64_t bytes_per_token;  /* weight bytes one decode step reads:
                                  every layer matrix, the LM head, one
                                  embedding row and the norms */
    uint64_t packed_bytes;     /* memory of the weight copies packed for
                                  decode (model params pack_weights); 0:
                                  none */
} bonsai_model_info;

bonsai_status bonsai_model_get_info(const bonsai_model *m, bonsai_model_info *out);

/* ---- sessions: a KV cache and the forward pass ---------------------------- */

bonsai_status bonsai_session_create(bonsai_model *m, bonsai_session **out);
void bonsai_session_free(bonsai_session *s); /* NULL is a no-op */
/* Forget every position (the cache is reused). */
void bonsai_session_reset(bonsai_session *s);
/* Positions already in the cache. */
uint32_t bonsai_session_n_past(const bonsai_session *s);

/* Runs n_tokens tokens at positions n_past .. n_past + n_tokens - 1 in one
 * pass (GEMM) and appends them to the cache. When logits is not NULL it
 * receives the n_vocab logits of the last token (logits_len >= n_vocab).
 * Token ids must be < n_vocab. CONTEXT_FULL (nothing written) when
 * n_past + n_tokens > n_ctx. Prompts longer than 512 tokens run in passes
 * of 512; if a later pass fails, the earlier ones stay in the cache
 * (bonsai_session_n_past counts them). */
bonsai_status bonsai_session_prefill(bonsai_session *s, const int32_t *tokens, size_t n_tokens,
                                     float *logits, size_t logits_len);
/* One token (GEMV): the same as prefill with n_tokens = 1. */
bonsai_status bonsai_session_decode(bonsai_session *s, int32_t token, float *logits,
                                    size_t logits_len);

/* ---- sampling (llama.cpp's meanings) --------------------------------------
 * Order: repetition penalty -> top-k -> top-p -> min-p -> temperature ->
 * draw. temperature <= 0 is greedy (argmax after the penalty).
 *   repeat_penalty: logits of tokens among the last repeat_last_n accepted
 *     tokens are divided by it when positive, multiplied when negative
 *     (1 = off);
 *   top_k: keep the k largest (<= 0 = off);
 *   top_p: keep the smallest set of largest-probability tokens whose
 *     probabilities sum to >= top_p (>= 1 = off);
 *   min_p: keep tokens with probability >= min_p * the largest (<= 0 = off). */

typedef struct bonsai_sampler bonsai_sampler;

typedef struct bonsai_sampler_params {
    float temperature;    /* default 0.8 */
    int32_t top_k;        /* default 40 */
    float top_p;          /* default 0.95 */
    float min_p;          /* default 0.05 */
    float repeat_penalty; /* default 1.0 (off) */
    int32_t repeat_last_n;/* default 64 */
    uint64_t seed;        /* default 0; same seed, same sequence */
} bonsai_sampler_params;

bonsai_sampler_params bonsai_sampler_default_params(void);
bonsai_status bonsai_sampler_create(const bonsai_sampler_params *params, size_t n_vocab,
                                    bonsai_sampler **out);
void bonsai_sampler_free(bonsai_sampler *s); /* NULL is a no-op */
/* Picks a token from n_vocab logits (logits are not modified). */
bonsai_status bonsai_sampler_sample(bonsai_sampler *s, const float *logits, size_t n_vocab,
                                    int32_t *token);
/* Records a token in the history the repetition penalty looks at (the
 * prompt's tokens and each generated one). */
bonsai_status bonsai_sampler_accept(bonsai_sampler *s, int32_t token);
/* Clears the history and reseeds the RNG with the params' seed. */
void bonsai_sampler_reset(bonsai_sampler *s);

#ifdef __cplusplus
}
#endif
#endif

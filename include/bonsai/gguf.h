/* GGUF files: a validating reader (mmap) and the synthetic-model writer.
 *
 * The reader trusts nothing in the file: every count, length, offset and
 * size is checked against the file and against overflow before use, and a
 * refusal names the key or tensor with expected and actual values.
 * Tensor data stays in the mapping; pointers are valid until close. */
#ifndef BONSAI_GGUF_H
#define BONSAI_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "formats.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bonsai_gguf bonsai_gguf;

/* GGUF metadata value types (the file's own numbering). */
typedef enum bonsai_gguf_type {
    BONSAI_GGUF_UINT8 = 0, BONSAI_GGUF_INT8 = 1, BONSAI_GGUF_UINT16 = 2, BONSAI_GGUF_INT16 = 3,
    BONSAI_GGUF_UINT32 = 4, BONSAI_GGUF_INT32 = 5, BONSAI_GGUF_FLOAT32 = 6, BONSAI_GGUF_BOOL = 7,
    BONSAI_GGUF_STRING = 8, BONSAI_GGUF_ARRAY = 9, BONSAI_GGUF_UINT64 = 10, BONSAI_GGUF_INT64 = 11,
    BONSAI_GGUF_FLOAT64 = 12
} bonsai_gguf_type;

/* How to read GGUF type id 42, which means three things in the wild. */
typedef enum bonsai_q2_variant {
    BONSAI_Q2_AUTO = 0,      /* decide by block size and metadata; AMBIGUOUS if unsure */
    BONSAI_Q2_TQ2_0_G128,    /* this project's / oxibonsai's: codes then d, 11 -> 0 */
    BONSAI_Q2_PRISM_G128,    /* PrismML legacy Q2_0 g128: d then codes, 11 -> +2d */
    BONSAI_Q2_GGML_G64       /* upstream ggml Q2_0: 64 per block, 18 bytes */
} bonsai_q2_variant;

/* "auto", "tq2", "prism", "ggml" (the CLI's --q2-variant names). */
const char *bonsai_q2_variant_name(bonsai_q2_variant v);
/* Parses those names; INVALID_ARG naming the choices otherwise. */
bonsai_status bonsai_q2_variant_from_name(const char *name, bonsai_q2_variant *out);

typedef struct bonsai_gguf_params {
    bonsai_q2_variant q2_variant;
    bonsai_progress_fn progress; /* may be NULL */
    void *progress_user;
} bonsai_gguf_params;

bonsai_gguf_params bonsai_gguf_default_params(void);
bonsai_status bonsai_gguf_open(const char *path, const bonsai_gguf_params *params,
                               bonsai_gguf **out);
void bonsai_gguf_close(bonsai_gguf *g); /* NULL is a no-op */
/* The same reader over a buffer in memory (size bytes at data), which must
 * stay valid and unchanged until close; tensor data points into it. */
bonsai_status bonsai_gguf_open_memory(const void *data, size_t size,
                                      const bonsai_gguf_params *params, bonsai_gguf **out);

uint32_t bonsai_gguf_version(const bonsai_gguf *g);
/* Which reading of id 42 was chosen (AUTO if no tensor has id 42). */
bonsai_q2_variant bonsai_gguf_q2_variant(const bonsai_gguf *g);

/* ---- metadata ----------------------------------------------------------- */
size_t bonsai_gguf_n_kv(const bonsai_gguf *g);
const char *bonsai_gguf_kv_key(const bonsai_gguf *g, size_t i);
bonsai_gguf_type bonsai_gguf_kv_type(const bonsai_gguf *g, size_t i);
/* Index of key, or -1 when absent. */
long bonsai_gguf_find_key(const bonsai_gguf *g, const char *key);
/* Typed getters: NOT_FOUND when absent, FORMAT when the stored type does not
 * convert (integers convert when the value fits; floats from FLOAT32/64). */
bonsai_status bonsai_gguf_get_u64(const bonsai_gguf *g, const char *key, uint64_t *out);
bonsai_status bonsai_gguf_get_u32(const bonsai_gguf *g, const char *key, uint32_t *out);
bonsai_status bonsai_gguf_get_i64(const bonsai_gguf *g, const char *key, int64_t *out);
bonsai_status bonsai_gguf_get_f32(const bonsai_gguf *g, const char *key, float *out);
bonsai_status bonsai_gguf_get_bool(const bonsai_gguf *g, const char *key, int *out);
/* String values are not NUL-terminated in the file: (pointer, length). */
bonsai_status bonsai_gguf_get_str(const bonsai_gguf *g, const char *key, const char **s,
                                  size_t *len);
/* Arrays: element type and count; numeric elements read in place (data
 * points into the file and may be unaligned: read with memcpy). For arrays
 * of strings or arrays, data is the elements' GGUF encoding. */
bonsai_status bonsai_gguf_get_array(const bonsai_gguf *g, const char *key,
                                    bonsai_gguf_type *elem_type, uint64_t *count,
                                    const void **data);
bonsai_status bonsai_gguf_get_array_str(const bonsai_gguf *g, const char *key, uint64_t i,
                                        const char **s, size_t *len);

/* ---- tensors ------------------------------------------------------------ */
typedef struct bonsai_gguf_tensor {
    const char *name;     /* NUL-terminated copy */
    uint32_t ggml_type;   /* the id stored in the file */
    bonsai_type type;     /* how bonsai decodes it (a type ggml defines but bonsai
                           * does not read fails the open with UNSUPPORTED, an
                           * id nobody defines with FORMAT) */
    uint32_t n_dims;
    uint64_t ne[4];       /* ne[0] = input features (k), ne[1] = rows */
    const void *data;     /* in the mapping */
    size_t bytes;
} bonsai_gguf_tensor;

size_t bonsai_gguf_n_tensors(const bonsai_gguf *g);
const bonsai_gguf_tensor *bonsai_gguf_tensor_at(const bonsai_gguf *g, size_t i);
/* NULL when absent. */
const bonsai_gguf_tensor *bonsai_gguf_find_tensor(const bonsai_gguf *g, const char *name);

/* ---- synthetic models ----------------------------------------------------- */
/* Presets (layers, hidden, q heads, kv heads, head_dim, ffn, vocab, context,
 * tied embeddings):
 *   micro        1,  128,  2, 1,  64,   128,    300,   512, no  (~30 kB: fuzz seeds)
 *   tiny         2,  256,  4, 2,  64,   512,    512,  2048, no  (~0.2 MB in q1_0_g128)
 *   tiny-tied    as tiny with output.weight absent (LM head = token_embd)
 *   bonsai-1.7b 28, 2048, 16, 8, 128,  6144, 151936, 40960, yes
 *   bonsai-4b   36, 2560, 32, 8, 128,  9728, 151936, 40960, yes
 *   bonsai-8b   36, 4096, 32, 8, 128, 12288, 151936, 40960, no  (~1.1 GB in q1_0_g128)
 * Linear weights and token_embd have weight_type, norms are f32 near 1.
 * Tensor order: token_embd, then per layer attn_norm, attn_q, attn_k,
 * attn_v (back to back: the model fuses them into one matmul), attn_output,
 * attn_q_norm, attn_k_norm, ffn_norm, ffn_gate, ffn_up, ffn_down; then
 * output_norm and output.
 * The tokenizer (tokenizer.ggml.*, model "gpt2", pre "qwen2") is described
 * in src/gguf/synth_tokenizer.c; bos = <|endoftext|>, eos = <|im_end|>.
 * A 2-bit weight_type also writes bonsai.q2_layout = its type name, which
 * the reader uses to read id 42 without ambiguity. */
typedef struct bonsai_synth_params {
    const char *preset;       /* a name from the table above (NULL: "tiny") */
    bonsai_type weight_type;  /* Q1_0_G128 (default) or a 2-bit type */
    uint64_t seed;
    bonsai_progress_fn progress;
    void *progress_user;
} bonsai_synth_params;

bonsai_synth_params bonsai_synth_default_params(void);
/* Writes a complete Qwen3 GGUF (metadata llama.cpp needs, a small valid
 * tokenizer, random quantized weights) atomically to path. */
bonsai_status bonsai_synth_write(const char *path, const bonsai_synth_params *params);

#ifdef __cplusplus
}
#endif
#endif

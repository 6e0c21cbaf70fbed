/* Synthetic Qwen3 models: a complete GGUF (the metadata llama.cpp reads for
 * arch qwen3, a small consistent tokenizer, every tensor of the real model
 * with random values) for the presets documented in bonsai/gguf.h.
 *
 * Tensors stream: each is generated in row chunks (rows spread over a
 * thread pool, one xorshift stream per row seeded from the seed, the
 * tensor's index and the row, so values depend on neither chunking nor
 * thread count), quantized with bonsai_quantize and written, so memory
 * stays at one chunk whatever the model size. Linear weights are
 * uniform in [-a, a] with a = sqrt(3 / k) (variance 1/k, k = ne[0]); norm
 * weights are 1 +- 0.1, f32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bonsai/kernels.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "gguf/gguf_types.h"
#include "gguf/synth_internal.h"

/* Floats per chunk: each chunk is one pool job (one barrier), so chunks
 * are large; quantized output needs at most 34/128 byte per float, and f32
 * tensors are single rows of at most 12288 floats, so CHUNK_FLOATS bytes
 * hold any chunk's output. */
#define CHUNK_FLOATS (1u << 22)
#define ROWS_PER_TASK 16
#define SYNTH_MAX_THREADS 64
#define MAX_SYNTH_TENSORS (3 + 11 * 64)

typedef struct synth_preset {
    const char *name;
    uint32_t n_layer, hidden, n_head, n_head_kv, head_dim, ffn, vocab, context;
    int tied;
} synth_preset;

static const synth_preset presets[] = {
    {"micro", 1, 128, 2, 1, 64, 128, 300, 512, 0},
    {"tiny", 2, 256, 4, 2, 64, 512, 512, 2048, 0},
    {"tiny-tied", 2, 256, 4, 2, 64, 512, 512, 2048, 1},
    {"bonsai-1.7b", 28, 2048, 16, 8, 128, 6144, 151936, 40960, 1},
    {"bonsai-4b", 36, 2560, 32, 8, 128, 9728, 151936, 40960, 1},
    {"bonsai-8b", 36, 4096, 32, 8, 128, 12288, 151936, 40960, 0},
};

typedef struct synth_tensor {
    char name[48];
    bonsai_type type;
    uint64_t ne0, ne1; /* ne1 = 1: a vector */
    size_t bytes;
} synth_tensor;

bonsai_synth_params bonsai_synth_default_params(void)
{
    bonsai_synth_params p = {"tiny", BONSAI_TYPE_Q1_0_G128, 0, NULL, NULL};
    return p;
}

static void add_tensor(synth_tensor *list, size_t *n, const char *name, bonsai_type type,
                       uint64_t ne0, uint64_t ne1)
{
    synth_tensor *t = &list[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->ne0 = ne0;
    t->ne1 = ne1;
    /* shapes are the presets' own: multiples of 128, far below overflow */
    t->bytes = (size_t)(ne0 / bonsai_type_block_elems(type) * bonsai_type_block_bytes(type) * ne1);
}

/* The tensors of preset p in file order, llama.cpp's names for qwen3. */
static size_t list_tensors(const synth_preset *p, bonsai_type wt, synth_tensor *list)
{
    size_t n = 0;
    uint64_t q = (uint64_t)p->n_head * p->head_dim, kv = (uint64_t)p->n_head_kv * p->head_dim;
    char name[48];
    add_tensor(list, &n, "token_embd.weight", wt, p->hidden, p->vocab);
    for (uint32_t l = 0; l < p->n_layer; l++) {
        static const struct {
            const char *suffix;
            int kind; /* 0 norm of hidden, 1 norm of head_dim, 2 linear */
        } parts[] = {
            {"attn_norm", 0}, {"attn_q", 2}, {"attn_k", 2}, {"attn_v", 2},
            {"attn_output", 2}, {"attn_q_norm", 1}, {"attn_k_norm", 1}, {"ffn_norm", 0},
            {"ffn_gate", 2}, {"ffn_up", 2}, {"ffn_down", 2},
        };
        const uint64_t in[] = {0, p->hidden, p->hidden, p->hidden, q, 0, 0, 0,
                               p->hidden, p->hidden, p->ffn};
        const uint64_t out[] = {0, q, kv, kv, p->hidden, 0, 0, 0, p->ffn, p->ffn, p->hidden};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, parts[i].suffix);
            if (parts[i].kind == 0)
                add_tensor(list, &n, name, BONSAI_TYPE_F32, p->hidden, 1);
            else if (parts[i].kind == 1)
                add_tensor(list, &n, name, BONSAI_TYPE_F32, p->head_dim, 1);
            else
                add_tensor(list, &n, name, wt, in[i], out[i]);
        }
    }
    add_tensor(list, &n, "output_norm.weight", BONSAI_TYPE_F32, p->hidden, 1);
    if (!p->tied)
        add_tensor(list, &n, "output.weight", wt, p->hidden, p->vocab);
    return n;
}

static bonsai_status add_metadata(bonsai_gguf_writer *w, const synth_preset *p,
                                  const bonsai_synth_params *sp)
{
    char name[64];
    snprintf(name, sizeof name, "bonsai-synth-%s-%s", p->name, bonsai_type_name(sp->weight_type));
    bonsai_status s = bonsai_gguf_writer_add_str(w, "general.architecture", "qwen3");
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_str(w, "general.name", name);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_u32(w, "general.quantization_version", 2);
    /* llama.cpp's LLAMA_FTYPE_MOSTLY_Q1_0 = 40; the 2-bit types have no
     * agreed file type, so the key is left out for them */
    if (s == BONSAI_OK && sp->weight_type == BONSAI_TYPE_Q1_0_G128)
        s = bonsai_gguf_writer_add_u32(w, "general.file_type", 40);
    const struct {
        const char *key;
        uint32_t v;
    } u32s[] = {
        {"qwen3.context_length", p->context},
        {"qwen3.embedding_length", p->hidden},
        {"qwen3.block_count", p->n_layer},
        {"qwen3.feed_forward_length", p->ffn},
        {"qwen3.attention.head_count", p->n_head},
        {"qwen3.attention.head_count_kv", p->n_head_kv},
        {"qwen3.attention.key_length", p->head_dim},
        {"qwen3.attention.value_length", p->head_dim},
    };
    for (size_t i = 0; s == BONSAI_OK && i < sizeof u32s / sizeof u32s[0]; i++)
        s = bonsai_gguf_writer_add_u32(w, u32s[i].key, u32s[i].v);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_f32(w, "qwen3.rope.freq_base", 1000000.0f);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_f32(w, "qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
    if (s == BONSAI_OK && sp->weight_type != BONSAI_TYPE_Q1_0_G128)
        s = bonsai_gguf_writer_add_str(w, "bonsai.q2_layout", bonsai_type_name(sp->weight_type));
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_str(w, "bonsai.synth.preset", p->name);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_scalar(w, "bonsai.synth.seed", BONSAI_GGUF_UINT64, &sp->seed);
    if (s == BONSAI_OK)
        s = synth_add_tokenizer(w, p->vocab);
    return s;
}

typedef struct stream_state {
    float *f;
    uint8_t *q;
    uint64_t done, total;
    const bonsai_synth_params *sp;
    bonsai_pool *pool;
    /* the chunk being made */
    const synth_tensor *t;
    size_t tensor_index;
    uint64_t row0;
    size_t rows, row_bytes;
    bonsai_status status[SYNTH_MAX_THREADS];
} stream_state;

/* One task: rows [row0 + a, row0 + b) of the chunk, generated from one
 * xorshift stream per row (so values depend on neither chunks nor
 * threads), then quantized. */
static void make_rows(void *arg, size_t task, int worker)
{
    stream_state *st = arg;
    const synth_tensor *t = st->t;
    size_t a = task * ROWS_PER_TASK, b = a + ROWS_PER_TASK < st->rows ? a + ROWS_PER_TASK : st->rows;
    int norm = t->type == BONSAI_TYPE_F32;
    float scale = norm ? 0.1f : sqrtf(3.0f / (float)t->ne0);
    float offset = norm ? 1.0f : 0.0f;
    size_t k = (size_t)t->ne0;
    for (size_t r = a; r < b; r++) {
        uint64_t rng = synth_rng_seed(st->sp->seed ^ (0x9e3779b97f4a7c15ull * (st->tensor_index + 1)),
                                      st->row0 + r);
        float *row = st->f + r * k;
        for (size_t j = 0; j < k; j++) // [k]
            row[j] = offset + scale * synth_rng_uniform(&rng);
    }
    bonsai_status s = bonsai_quantize(t->type, st->f + a * k, (b - a) * k,
                                      st->q + a * st->row_bytes, (b - a) * st->row_bytes);
    if (s != BONSAI_OK)
        st->status[worker] = s;
}

/* Generates, quantizes and writes tensor t (index i) in row chunks. */
static bonsai_status stream_tensor(bonsai_gguf_writer *w, const synth_tensor *t, size_t i,
                                   stream_state *st)
{
    st->t = t;
    st->tensor_index = i;
    st->row_bytes = t->bytes / t->ne1;
    size_t rows_per_chunk = CHUNK_FLOATS / t->ne0; /* >= 1: every preset's k is < 2^22 */
    for (uint64_t r = 0; r < t->ne1; r += rows_per_chunk) {
        st->row0 = r;
        st->rows = (size_t)(t->ne1 - r < rows_per_chunk ? t->ne1 - r : rows_per_chunk);
        bonsai_pool_run(st->pool, (st->rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK, make_rows, st);
        for (int k = 0; k < SYNTH_MAX_THREADS; k++)
            if (st->status[k] != BONSAI_OK)
                return st->status[k];
        bonsai_status s = bonsai_gguf_writer_write(w, st->q, st->rows * st->row_bytes);
        if (s != BONSAI_OK)
            return s;
        st->done += st->rows * st->row_bytes;
        if (st->sp->progress)
            st->sp->progress(st->sp->progress_user, "synth", st->done, st->total);
    }
    return BONSAI_OK;
}

static bonsai_status check_params(const char *path, const bonsai_synth_params *sp,
                                  const synth_preset **preset)
{
    if (!path || !sp)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "synth: path or params is NULL");
    const char *name = sp->preset ? sp->preset : "tiny";
    *preset = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0)
            *preset = &presets[i];
    if (!*preset)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "synth: unknown preset '%s' (known: micro, tiny, "
                           "tiny-tied, bonsai-1.7b, bonsai-4b, bonsai-8b)", name);
    switch (sp->weight_type) {
    case BONSAI_TYPE_Q1_0_G128: case BONSAI_TYPE_TQ2_0_G128: case BONSAI_TYPE_PQ2_0:
    case BONSAI_TYPE_Q2_0_G64:
        return BONSAI_OK;
    default:
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "synth: weight type %s is not one of "
                           "q1_0_g128, tq2_0_g128, pq2_0, q2_0_g64",
                           bonsai_type_name(sp->weight_type) ? bonsai_type_name(sp->weight_type)
                                                             : "(invalid)");
    }
}

bonsai_status bonsai_synth_write(const char *path, const bonsai_synth_params *sp)
{
    const synth_preset *p = NULL;
    bonsai_status s = check_params(path, sp, &p);
    if (s != BONSAI_OK)
        return s;
    synth_tensor *list = malloc(MAX_SYNTH_TENSORS * sizeof *list);
    stream_state st = {0};
    st.f = malloc(CHUNK_FLOATS * sizeof(float));
    st.q = malloc(CHUNK_FLOATS);
    st.sp = sp;
    bonsai_gguf_writer *w = NULL;
    if (!list || !st.f || !st.q)
        s = bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "synth %s: no memory for buffers", path);
    int threads = bonsai_physical_cores();
    if (s == BONSAI_OK)
        s = bonsai_pool_create(threads < SYNTH_MAX_THREADS ? threads : SYNTH_MAX_THREADS,
                               &st.pool);
    size_t n = s == BONSAI_OK ? list_tensors(p, sp->weight_type, list) : 0;
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_create(path, 32, &w);
    if (s == BONSAI_OK)
        s = add_metadata(w, p, sp);
    for (size_t i = 0; s == BONSAI_OK && i < n; i++) {
        uint32_t id;
        gguf_bonsai_to_ggml(list[i].type, &id);
        uint64_t ne[2] = {list[i].ne0, list[i].ne1};
        s = bonsai_gguf_writer_add_tensor(w, list[i].name, id, list[i].ne1 == 1 ? 1 : 2, ne,
                                          list[i].bytes);
        st.total += list[i].bytes;
    }
    for (size_t i = 0; s == BONSAI_OK && i < n; i++)
        s = stream_tensor(w, &list[i], i, &st);
    if (s == BONSAI_OK) {
        s = bonsai_gguf_writer_finish(w);
    } else {
        bonsai_gguf_writer_abort(w);
    }
    bonsai_pool_free(st.pool);
    free(list);
    free(st.f);
    free(st.q);
    return s;
}

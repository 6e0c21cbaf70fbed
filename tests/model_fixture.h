/* Test fixture for the model tests: builds small Qwen3 models of any shape
 * in memory (random quantized weights, random norm weights), writes them
 * as GGUF v3 files with a writer of its own (so a test can drop, reshape or
 * retype any tensor and any key), and runs a plain float64 reference
 * forward on the dequantized weights: its own RMSNorm, RoPE, attention and
 * SwiGLU, independent of src/model. Include after harness.h. */
#ifndef BONSAI_TEST_MODEL_FIXTURE_H
#define BONSAI_TEST_MODEL_FIXTURE_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bonsai/bonsai.h"

typedef struct fx_config {
    uint32_t n_layers, n_embd, n_heads, n_kv_heads, head_dim, n_ff, n_vocab, n_ctx_train;
    float theta, eps;
    int tied;            /* no output.weight: the LM head is token_embd */
    int write_key_length;/* write qwen3.attention.key_length */
    bonsai_type wtype;   /* type of every matrix */
    int qkv_apart;       /* store attn_output between attn_k and attn_v */
} fx_config;

enum { FX_U32 = 4, FX_F32 = 6, FX_STR = 8 }; /* GGUF value types */

typedef struct fx_kv {
    char key[96];
    uint32_t type;
    uint32_t u32;
    float f32;
    char str[32];
} fx_kv;

typedef struct fx_tensor {
    char name[64];
    bonsai_type type;
    uint32_t ggml_type;   /* written to the file; normally the type's id */
    uint32_t n_dims;
    uint64_t ne[2];       /* ne[0] = k, ne[1] = rows */
    uint8_t *data;
    size_t bytes;
    double *deq;          /* dequantized [rows][k] */
} fx_tensor;

typedef struct fx_model {
    fx_config cfg;
    fx_kv kv[32];
    size_t n_kv;
    fx_tensor t[512];
    size_t n_t;
} fx_model;

static inline uint32_t fx_ggml_id(bonsai_type t)
{
    switch (t) {
    case BONSAI_TYPE_F32: return 0;
    case BONSAI_TYPE_F16: return 1;
    case BONSAI_TYPE_Q1_0_G128: return 41;
    case BONSAI_TYPE_TQ2_0_G128: return 42;
    default: return 0xffff;
    }
}

static inline fx_kv *fx_add_kv(fx_model *fm, const char *key, uint32_t type)
{
    fx_kv *kv = &fm->kv[fm->n_kv++];
    memset(kv, 0, sizeof *kv);
    snprintf(kv->key, sizeof kv->key, "%s", key);
    kv->type = type;
    return kv;
}

static inline void fx_set_u32(fx_model *fm, const char *key, uint32_t v) { fx_add_kv(fm, key, FX_U32)->u32 = v; }
static inline void fx_set_f32(fx_model *fm, const char *key, float v) { fx_add_kv(fm, key, FX_F32)->f32 = v; }

static inline fx_kv *fx_find_kv(fx_model *fm, const char *key)
{
    for (size_t i = 0; i < fm->n_kv; i++)
        if (strcmp(fm->kv[i].key, key) == 0)
            return &fm->kv[i];
    return NULL;
}

static inline void fx_remove_kv(fx_model *fm, const char *key)
{
    fx_kv *kv = fx_find_kv(fm, key);
    if (kv)
        *kv = fm->kv[--fm->n_kv];
}

static inline fx_tensor *fx_find(fx_model *fm, const char *name)
{
    for (size_t i = 0; i < fm->n_t; i++)
        if (strcmp(fm->t[i].name, name) == 0)
            return &fm->t[i];
    return NULL;
}

static inline void fx_remove(fx_model *fm, const char *name)
{
    fx_tensor *t = fx_find(fm, name);
    if (!t)
        return;
    free(t->data);
    free(t->deq);
    *t = fm->t[--fm->n_t];
}

/* A [rows][k] tensor of type t from random values of standard deviation sd
 * (norm weights: 1 + uniform noise); keeps the dequantized values. */
static inline void fx_add_tensor(fx_model *fm, const char *name, bonsai_type type, uint32_t n_dims,
                          uint64_t k, uint64_t rows, int is_norm, float sd)
{
    fx_tensor *t = &fm->t[fm->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->ggml_type = fx_ggml_id(type);
    t->n_dims = n_dims;
    t->ne[0] = k;
    t->ne[1] = rows;
    size_t n = (size_t)(k * rows);
    float *f = malloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = is_norm ? rng_uniform(0.7f, 1.3f) : rng_normal() * sd;
    bonsai_type_matrix_bytes(type, rows, k, &t->bytes);
    t->data = malloc(t->bytes);
    bonsai_quantize(type, f, n, t->data, t->bytes);
    bonsai_dequantize(type, t->data, t->bytes, f, n);
    t->deq = malloc(n * sizeof *t->deq);
    for (size_t i = 0; i < n; i++)
        t->deq[i] = f[i];
    free(f);
}

static inline void fx_build(fx_model *fm, const fx_config *cfg)
{
    memset(fm, 0, sizeof *fm);
    fm->cfg = *cfg;
    const uint32_t E = cfg->n_embd, D = cfg->head_dim, F = cfg->n_ff, V = cfg->n_vocab;
    const uint32_t QD = cfg->n_heads * D, KVD = cfg->n_kv_heads * D;
    fx_kv *arch = fx_add_kv(fm, "general.architecture", FX_STR);
    snprintf(arch->str, sizeof arch->str, "qwen3");
    fx_set_u32(fm, "qwen3.block_count", cfg->n_layers);
    fx_set_u32(fm, "qwen3.embedding_length", E);
    fx_set_u32(fm, "qwen3.feed_forward_length", F);
    fx_set_u32(fm, "qwen3.attention.head_count", cfg->n_heads);
    fx_set_u32(fm, "qwen3.attention.head_count_kv", cfg->n_kv_heads);
    fx_set_u32(fm, "qwen3.context_length", cfg->n_ctx_train);
    fx_set_f32(fm, "qwen3.rope.freq_base", cfg->theta);
    fx_set_f32(fm, "qwen3.attention.layer_norm_rms_epsilon", cfg->eps);
    if (cfg->write_key_length) {
        fx_set_u32(fm, "qwen3.attention.key_length", D);
        fx_set_u32(fm, "qwen3.attention.value_length", D);
    }
    if (cfg->wtype == BONSAI_TYPE_TQ2_0_G128) /* GGUF id 42 has three readings */
        snprintf(fx_add_kv(fm, "bonsai.q2_layout", FX_STR)->str, 32, "tq2_0_g128");
    fx_add_tensor(fm, "token_embd.weight", cfg->wtype, 2, E, V, 0, 1.0f);
    fx_add_tensor(fm, "output_norm.weight", BONSAI_TYPE_F32, 1, E, 1, 1, 0);
    if (!cfg->tied)
        fx_add_tensor(fm, "output.weight", cfg->wtype, 2, E, V, 0, 2.0f / sqrtf((float)E));
    for (uint32_t l = 0; l < cfg->n_layers; l++) {
        char nm[64];
#define FX_T(suffix, dims, k, rows, norm)                                                       \
    (snprintf(nm, sizeof nm, "blk.%u." suffix, l),                                             \
     fx_add_tensor(fm, nm, (norm) ? BONSAI_TYPE_F32 : cfg->wtype, dims, k, rows, norm,          \
                   1.0f / sqrtf((float)(k))))
        FX_T("attn_norm.weight", 1, E, 1, 1);
        FX_T("attn_q.weight", 2, E, QD, 0);
        FX_T("attn_k.weight", 2, E, KVD, 0);
        if (cfg->qkv_apart)
            FX_T("attn_output.weight", 2, QD, E, 0);
        FX_T("attn_v.weight", 2, E, KVD, 0);
        FX_T("attn_q_norm.weight", 1, D, 1, 1);
        FX_T("attn_k_norm.weight", 1, D, 1, 1);
        if (!cfg->qkv_apart)
            FX_T("attn_output.weight", 2, QD, E, 0);
        FX_T("ffn_norm.weight", 1, E, 1, 1);
        FX_T("ffn_gate.weight", 2, E, F, 0);
        FX_T("ffn_up.weight", 2, E, F, 0);
        FX_T("ffn_down.weight", 2, F, E, 0);
#undef FX_T
    }
}

static inline void fx_free(fx_model *fm)
{
    for (size_t i = 0; i < fm->n_t; i++) {
        free(fm->t[i].data);
        free(fm->t[i].deq);
    }
    fm->n_t = 0;
}

/* ---- GGUF v3 writer --------------------------------------------------------- */

static inline void fx_w64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static inline void fx_w32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static inline void fx_wstr(FILE *f, const char *s)
{
    fx_w64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}

/* 1 on success. Alignment 32, tensors in order. */
static inline int fx_write(const fx_model *fm, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite("GGUF", 1, 4, f);
    fx_w32(f, 3);
    fx_w64(f, fm->n_t);
    fx_w64(f, fm->n_kv);
    for (size_t i = 0; i < fm->n_kv; i++) {
        const fx_kv *kv = &fm->kv[i];
        fx_wstr(f, kv->key);
        fx_w32(f, kv->type);
        if (kv->type == FX_U32)
            fx_w32(f, kv->u32);
        else if (kv->type == FX_F32)
            fwrite(&kv->f32, 4, 1, f);
        else
            fx_wstr(f, kv->str);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < fm->n_t; i++) {
        const fx_tensor *t = &fm->t[i];
        fx_wstr(f, t->name);
        fx_w32(f, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            fx_w64(f, t->ne[d]);
        fx_w32(f, t->ggml_type);
        fx_w64(f, off);
        off += (t->bytes + 31) / 32 * 32;
    }
    long pos = ftell(f);
    for (; pos % 32; pos++)
        fputc(0, f);
    for (size_t i = 0; i < fm->n_t; i++) {
        const fx_tensor *t = &fm->t[i];
        fwrite(t->data, 1, t->bytes, f);
        for (size_t p = t->bytes; p % 32; p++)
            fputc(0, f);
    }
    return fclose(f) == 0;
}

/* ---- float64 reference forward -------------------------------------------- */

typedef struct fx_ref {
    const fx_model *fm;
    uint32_t n_ctx, n_past;
    double *kc, *vc; /* [L][n_ctx][KV*D] */
} fx_ref;

static inline void fx_ref_init(fx_ref *r, const fx_model *fm, uint32_t n_ctx)
{
    const fx_config *c = &fm->cfg;
    size_t n = (size_t)c->n_layers * n_ctx * c->n_kv_heads * c->head_dim;
    r->fm = fm;
    r->n_ctx = n_ctx;
    r->n_past = 0;
    r->kc = malloc(n * sizeof(double));
    r->vc = malloc(n * sizeof(double));
}

static inline void fx_ref_free(fx_ref *r)
{
    free(r->kc);
    free(r->vc);
}

static inline const double *fx_w(const fx_model *fm, uint32_t layer, const char *suffix)
{
    char nm[64];
    if (layer == UINT32_MAX)
        snprintf(nm, sizeof nm, "%s", suffix);
    else
        snprintf(nm, sizeof nm, "blk.%u.%s", layer, suffix);
    fx_tensor *t = fx_find((fx_model *)fm, nm);
    return t ? t->deq : NULL;
}

static inline void fx_rmsnorm(const double *x, const double *w, size_t n, double eps, double *y)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / (double)n + eps);
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * s * w[i];
}

/* y[r] (+)= sum_j W[r][j] x[j] */
static inline void fx_matvec(const double *w, const double *x, size_t rows, size_t k, int add, double *y)
{
    for (size_t r = 0; r < rows; r++) {
        double acc = 0;
        for (size_t j = 0; j < k; j++)
            acc += w[r * k + j] * x[j];
        y[r] = add ? y[r] + acc : acc;
    }
}

static inline void fx_rope(double *v, uint32_t D, uint32_t pos, double theta)
{
    for (uint32_t i = 0; i < D / 2; i++) {
        double a = pos * pow(theta, -2.0 * i / D);
        double x0 = v[i], x1 = v[i + D / 2];
        v[i] = x0 * cos(a) - x1 * sin(a);
        v[i + D / 2] = x0 * sin(a) + x1 * cos(a);
    }
}

/* One token at position n_past; logits [V]. */
static inline void fx_ref_step(fx_ref *r, int32_t token, double *logits)
{
    const fx_model *fm = r->fm;
    const fx_config *c = &fm->cfg;
    const size_t E = c->n_embd, D = c->head_dim, H = c->n_heads, KV = c->n_kv_heads;
    const size_t F = c->n_ff, V = c->n_vocab, QD = H * D, KVD = KV * D;
    const uint32_t pos = r->n_past;
    double *x = malloc(E * sizeof *x), *xn = malloc(E * sizeof *xn);
    double *q = malloc(QD * sizeof *q), *att = malloc(QD * sizeof *att);
    double *g = malloc(F * sizeof *g), *u = malloc(F * sizeof *u);
    double *sc = malloc((pos + 1) * sizeof *sc);
    memcpy(x, fx_w(fm, UINT32_MAX, "token_embd.weight") + (size_t)token * E, E * sizeof *x);
    for (uint32_t l = 0; l < c->n_layers; l++) {
        double *kc = r->kc + ((size_t)l * r->n_ctx + pos) * KVD;
        double *vc = r->vc + ((size_t)l * r->n_ctx + pos) * KVD;
        fx_rmsnorm(x, fx_w(fm, l, "attn_norm.weight"), E, c->eps, xn);
        fx_matvec(fx_w(fm, l, "attn_q.weight"), xn, QD, E, 0, q);
        fx_matvec(fx_w(fm, l, "attn_k.weight"), xn, KVD, E, 0, kc);
        fx_matvec(fx_w(fm, l, "attn_v.weight"), xn, KVD, E, 0, vc);
        for (size_t h = 0; h < H; h++) {
            fx_rmsnorm(q + h * D, fx_w(fm, l, "attn_q_norm.weight"), D, c->eps, q + h * D);
            fx_rope(q + h * D, (uint32_t)D, pos, c->theta);
        }
        for (size_t h = 0; h < KV; h++) {
            fx_rmsnorm(kc + h * D, fx_w(fm, l, "attn_k_norm.weight"), D, c->eps, kc + h * D);
            fx_rope(kc + h * D, (uint32_t)D, pos, c->theta);
        }
        for (size_t h = 0; h < H; h++) {
            size_t kvh = h / (H / KV);
            double mx = -INFINITY, sum = 0;
            for (uint32_t j = 0; j <= pos; j++) {
                const double *kj = r->kc + ((size_t)l * r->n_ctx + j) * KVD + kvh * D;
                double d = 0;
                for (size_t i = 0; i < D; i++)
                    d += q[h * D + i] * kj[i];
                sc[j] = d / sqrt((double)D);
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (uint32_t j = 0; j <= pos; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            for (size_t i = 0; i < D; i++) {
                double o = 0;
                for (uint32_t j = 0; j <= pos; j++)
                    o += sc[j] / sum * r->vc[((size_t)l * r->n_ctx + j) * KVD + kvh * D + i];
                att[h * D + i] = o;
            }
        }
        fx_matvec(fx_w(fm, l, "attn_output.weight"), att, E, QD, 1, x);
        fx_rmsnorm(x, fx_w(fm, l, "ffn_norm.weight"), E, c->eps, xn);
        fx_matvec(fx_w(fm, l, "ffn_gate.weight"), xn, F, E, 0, g);
        fx_matvec(fx_w(fm, l, "ffn_up.weight"), xn, F, E, 0, u);
        for (size_t i = 0; i < F; i++)
            g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
        fx_matvec(fx_w(fm, l, "ffn_down.weight"), g, E, F, 1, x);
    }
    fx_rmsnorm(x, fx_w(fm, UINT32_MAX, "output_norm.weight"), E, c->eps, xn);
    const double *head = c->tied ? fx_w(fm, UINT32_MAX, "token_embd.weight")
                                 : fx_w(fm, UINT32_MAX, "output.weight");
    fx_matvec(head, xn, V, E, 0, logits);
    r->n_past++;
    free(x); free(xn); free(q); free(att); free(g); free(u); free(sc);
}

static inline size_t fx_argmax_d(const double *v, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

static inline size_t fx_argmax_f(const float *v, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

#endif

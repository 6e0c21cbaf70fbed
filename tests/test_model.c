/* Model forward: the fast Qwen3 forward (src/model) against a plain float64
 * forward on the dequantized weights of small random models
 * (model_fixture.h), on every CPU tier this host runs:
 *   f32 mode: logits NMSE <= 1e-8 at each of 64 decode steps;
 *   q8 mode:  logits NMSE <= 1e-3 at each step and the same greedy token in
 *             >= 95% of all steps; so is q8 mode with the int8 KV cache
 *             (kv_type Q8);
 *   prefill-then-decode gives decode-only's greedy token at every step in
 *   both modes and with the int8 KV cache (logits: f32 NMSE <= 1e-9, q8
 *   NMSE <= 1e-3);
 *   a prompt longer than one pass (chunked prefill) matches the reference;
 *   tied and untied LM heads; head_dim != hidden / heads (4B-like) and
 *   head_dim from hidden / heads when key_length is absent; Q, K, V back
 *   to back in the file (one fused matmul) and apart (three); 1-bit and
 *   ternary (tq2_0_g128) weights;
 *   the context bound is refused with CONTEXT_FULL and nothing written;
 *   weights packed for decode (pack_weights = 1) and read from the file's
 *   layout (the default) give bitwise the same logits.
 * The token stream is fixed random ids (teacher forcing), so one diverging
 * token does not change every later step. */
#include <string.h>

#include "harness.h"
#include "model_fixture.h"

#define STEPS 64

typedef struct named_config {
    const char *name;
    fx_config cfg;
} named_config;

static const named_config configs[] = {
    {"untied, head_dim = hidden/heads, GQA 4:2",
     {2, 256, 4, 2, 64, 384, 300, 4096, 1000000.0f, 1e-6f, 0, 1, BONSAI_TYPE_Q1_0_G128, 0}},
    {"tied, 4B-like head_dim 64 != 128/4",
     {2, 128, 4, 2, 64, 256, 200, 4096, 10000.0f, 1e-5f, 1, 1, BONSAI_TYPE_Q1_0_G128, 0}},
    {"no key_length key, MHA 2:2, head_dim 128, Q K V apart in the file",
     {1, 256, 2, 2, 128, 512, 257, 2048, 500000.0f, 1e-6f, 0, 0, BONSAI_TYPE_Q1_0_G128, 1}},
    {"ternary tq2_0_g128 weights, tied, GQA 4:1",
     {2, 256, 4, 1, 64, 256, 160, 2048, 1000000.0f, 1e-6f, 1, 1, BONSAI_TYPE_TQ2_0_G128, 0}},
};

static char tmp_path[256];

static int pack_weights = 0;
static bonsai_kv_type kv_type = BONSAI_KV_AUTO;

static bonsai_model *load(const char *path, bonsai_cpu_tier tier, bonsai_act_mode mode,
                          uint32_t n_ctx, int n_threads)
{
    bonsai_model_params p = bonsai_model_default_params();
    p.pack_weights = pack_weights;
    p.kv_type = kv_type;
    p.tier = tier;
    p.act_mode = mode;
    p.n_ctx = n_ctx;
    p.n_threads = n_threads;
    bonsai_model *m = NULL;
    bonsai_status s = bonsai_model_load(path, &p, &m);
    CHECK(s == BONSAI_OK, "load %s: %s: %s", path, bonsai_status_name(s), bonsai_last_error());
    return m;
}

static float *poisoned(size_t n)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = NAN;
    return v;
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static size_t greedy_total, greedy_same;

/* 32 decode steps against the float64 reference. */
static void decode_vs_reference(const fx_model *fm, const char *name, bonsai_cpu_tier tier,
                                bonsai_act_mode mode)
{
    const fx_config *c = &fm->cfg;
    bonsai_model *m = load(tmp_path, tier, mode, 96, 2);
    if (!m)
        return;
    bonsai_model_info info;
    CHECK(bonsai_model_get_info(m, &info) == BONSAI_OK && info.head_dim == c->head_dim &&
              info.n_vocab == c->n_vocab && info.tied_embeddings == c->tied &&
              info.n_layers == c->n_layers && info.n_ctx == 96,
          "%s: info head_dim %u vocab %u tied %d layers %u n_ctx %u", name, info.head_dim,
          info.n_vocab, info.tied_embeddings, info.n_layers, info.n_ctx);
    const bonsai_kv_type want_kv = kv_type != BONSAI_KV_AUTO  ? kv_type
                                   : mode == BONSAI_ACT_Q8 ? BONSAI_KV_F16
                                                           : BONSAI_KV_F32;
    CHECK(info.kv_type == want_kv, "%s: info kv_type %s, want %s", name,
          bonsai_kv_type_name(info.kv_type), bonsai_kv_type_name(want_kv));
    bonsai_session *s = NULL;
    CHECK(bonsai_session_create(m, &s) == BONSAI_OK, "%s: session: %s", name, bonsai_last_error());
    fx_ref ref;
    fx_ref_init(&ref, fm, 96);
    const size_t V = c->n_vocab;
    double *want = malloc(V * sizeof *want);
    double worst = 0;
    int bad_steps = 0;
    for (int step = 0; step < STEPS && s; step++) {
        int32_t tok = (int32_t)(rng_u64() % V);
        float *got = poisoned(V);
        bonsai_status st = bonsai_session_decode(s, tok, got, V);
        fx_ref_step(&ref, tok, want);
        double e = nmse(got, want, V);
        worst = e > worst ? e : worst;
        if (st != BONSAI_OK || !all_finite(got, V) ||
            e > (mode == BONSAI_ACT_F32 ? 1e-8 : 1e-3))
            bad_steps++;
        if (mode == BONSAI_ACT_Q8) {
            greedy_total++;
            greedy_same += fx_argmax_f(got, V) == fx_argmax_d(want, V);
        }
        free(got);
    }
    CHECK(bad_steps == 0 && bonsai_session_n_past(s) == STEPS,
          "%s [%s, %s, kv %s]: %d of %d steps failed (status, poison or NMSE; worst NMSE "
          "%.3g), n_past %u", name, bonsai_cpu_tier_name(tier),
          mode == BONSAI_ACT_F32 ? "f32" : "q8", bonsai_kv_type_name(kv_type), bad_steps, STEPS, worst, bonsai_session_n_past(s));
    fx_ref_free(&ref);
    free(want);
    bonsai_session_free(s);
    bonsai_model_free(m);
}

/* Prefill of n_prompt tokens then decode, against decode-only. */
static void prefill_vs_decode(const fx_model *fm, const char *name, bonsai_act_mode mode,
                              size_t n_prompt)
{
    const size_t V = fm->cfg.n_vocab, n_total = n_prompt + 12;
    bonsai_model *m = load(tmp_path, BONSAI_TIER_AUTO, mode, (uint32_t)n_total, 2);
    if (!m)
        return;
    bonsai_session *a = NULL, *b = NULL;
    bonsai_session_create(m, &a);
    bonsai_session_create(m, &b);
    int32_t *toks = malloc(n_total * sizeof *toks);
    for (size_t i = 0; i < n_total; i++)
        toks[i] = (int32_t)(rng_u64() % V);
    float *la = poisoned(V), *lb = poisoned(V);
    bonsai_status st = bonsai_session_prefill(a, toks, n_prompt, la, V);
    CHECK(st == BONSAI_OK && bonsai_session_n_past(a) == n_prompt && all_finite(la, V),
          "%s: prefill %zu: %s", name, n_prompt, bonsai_last_error());
    for (size_t i = 0; i < n_prompt; i++)
        bonsai_session_decode(b, toks[i], lb, V);
    /* Every tier sums a token's blocks in the same order in GEMM and GEMV,
     * so prefill-then-decode must pick the same greedy token at every step
     * in both modes. Logits: f32 agree to fp32 rounding; q8 within the q8
     * bound (one last-bit difference would flip an int8 rounding later). */
    const int q8 = mode == BONSAI_ACT_Q8;
    const double tol = q8 ? 1e-3 : 1e-9;
    double *ref = malloc(V * sizeof *ref);
    int same = 0, close = 1;
    double worst = 0;
    for (size_t step = 0;; step++) {
        for (size_t i = 0; i < V; i++)
            ref[i] = lb[i];
        double e = nmse(la, ref, V);
        worst = e > worst ? e : worst;
        close &= e <= tol;
        same += fx_argmax_f(la, V) == fx_argmax_f(lb, V);
        if (step == 12)
            break;
        /* both continue with the same token: decode-only's greedy choice */
        int32_t next = (int32_t)fx_argmax_f(lb, V);
        CHECK(bonsai_session_decode(a, next, la, V) == BONSAI_OK &&
                  bonsai_session_decode(b, next, lb, V) == BONSAI_OK,
              "%s: decode after prefill", name);
    }
    if (q8) {
        greedy_total += 13;
        greedy_same += (size_t)same;
    }
    CHECK(close && same == 13,
          "%s [%s, prompt %zu]: prefill-then-decode vs decode-only: same greedy token in %d "
          "of 13 steps, worst logits NMSE %.3g (tol %.0e)",
          name, q8 ? "q8" : "f32", n_prompt, same, worst, tol);
    free(ref);
    free(toks);
    free(la);
    free(lb);
    bonsai_session_free(a);
    bonsai_session_free(b);
    bonsai_model_free(m);
}

/* Decode with packed weights against decode from the file's layout. */
static void packed_vs_file(const fx_model *fm, const char *name)
{
    const size_t V = fm->cfg.n_vocab;
    bonsai_model *m[2];
    bonsai_session *s[2] = {NULL, NULL};
    float *l[2];
    for (int i = 0; i < 2; i++) {
        pack_weights = i == 0;
        m[i] = load(tmp_path, BONSAI_TIER_AUTO, BONSAI_ACT_Q8, 32, 2);
        if (m[i])
            bonsai_session_create(m[i], &s[i]);
        l[i] = poisoned(V);
    }
    pack_weights = 0;
    int same = m[0] && m[1];
    for (size_t step = 0; step < 16 && same; step++) {
        const int32_t tok = (int32_t)(rng_u64() % V);
        same = bonsai_session_decode(s[0], tok, l[0], V) == BONSAI_OK &&
               bonsai_session_decode(s[1], tok, l[1], V) == BONSAI_OK &&
               memcmp(l[0], l[1], V * sizeof *l[0]) == 0;
    }
    CHECK(same, "%s: q8 decode with packed weights differs from the file layout's", name);
    for (int i = 0; i < 2; i++) {
        bonsai_session_free(s[i]);
        bonsai_model_free(m[i]);
        free(l[i]);
    }
}

/* A prompt longer than one pass (BONSAI_MODEL_MAX_CHUNK = 512) in f32,
 * final logits against the reference. */
static void long_prefill(const fx_model *fm)
{
    const size_t V = fm->cfg.n_vocab, n = 530;
    bonsai_model *m = load(tmp_path, BONSAI_TIER_AUTO, BONSAI_ACT_F32, 600, 2);
    if (!m)
        return;
    bonsai_session *s = NULL;
    bonsai_session_create(m, &s);
    int32_t *toks = malloc(n * sizeof *toks);
    for (size_t i = 0; i < n; i++)
        toks[i] = (int32_t)(rng_u64() % V);
    float *got = poisoned(V);
    double *want = malloc(V * sizeof *want);
    bonsai_status st = bonsai_session_prefill(s, toks, n, got, V);
    fx_ref ref;
    fx_ref_init(&ref, fm, 600);
    for (size_t i = 0; i < n; i++)
        fx_ref_step(&ref, toks[i], want);
    double e = nmse(got, want, V);
    CHECK(st == BONSAI_OK && e <= 1e-8 && bonsai_session_n_past(s) == n,
          "prefill of %zu tokens (two passes): status %s, NMSE %.3g, n_past %u", n,
          bonsai_status_name(st), e, bonsai_session_n_past(s));
    fx_ref_free(&ref);
    free(toks);
    free(got);
    free(want);
    bonsai_session_free(s);
    bonsai_model_free(m);
}

static void context_full(const fx_model *fm)
{
    const size_t V = fm->cfg.n_vocab;
    bonsai_model *m = load(tmp_path, BONSAI_TIER_AUTO, BONSAI_ACT_Q8, 8, 1);
    if (!m)
        return;
    bonsai_session *s = NULL;
    bonsai_session_create(m, &s);
    int32_t toks[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float *l = poisoned(V);
    CHECK(bonsai_session_prefill(s, toks, 9, l, V) == BONSAI_ERR_CONTEXT_FULL &&
              bonsai_session_n_past(s) == 0 && isnan(l[0]),
          "9 tokens into n_ctx 8: refused, nothing written");
    CHECK(strstr(bonsai_last_error(), "n_ctx = 8") != NULL, "message names n_ctx: '%s'",
          bonsai_last_error());
    CHECK(bonsai_session_prefill(s, toks, 6, l, V) == BONSAI_OK, "6 of 8");
    CHECK(bonsai_session_prefill(s, toks, 3, l, V) == BONSAI_ERR_CONTEXT_FULL &&
              bonsai_session_n_past(s) == 6,
          "6 + 3 > 8 refused, n_past stays 6");
    CHECK(bonsai_session_decode(s, 1, l, V) == BONSAI_OK &&
              bonsai_session_decode(s, 2, l, V) == BONSAI_OK,
          "decode up to exactly n_ctx");
    CHECK(bonsai_session_decode(s, 3, l, V) == BONSAI_ERR_CONTEXT_FULL &&
              bonsai_session_n_past(s) == 8,
          "decode past n_ctx refused");
    bonsai_session_reset(s);
    CHECK(bonsai_session_n_past(s) == 0 && bonsai_session_decode(s, 3, l, V) == BONSAI_OK,
          "reset frees the context");
    free(l);
    bonsai_session_free(s);
    bonsai_model_free(m);
}

int main(void)
{
    harness_init();
    snprintf(tmp_path, sizeof tmp_path, "/tmp/bonsai_test_model_%d.gguf", (int)getpid());
    fx_model *fm = malloc(sizeof *fm);
    for (size_t ci = 0; ci < sizeof configs / sizeof configs[0]; ci++) {
        const named_config *nc = &configs[ci];
        fx_build(fm, &nc->cfg);
        if (!CHECK(fx_write(fm, tmp_path), "write %s", tmp_path)) {
            fx_free(fm);
            continue;
        }
        for (int t = BONSAI_TIER_SCALAR; t < BONSAI_TIER_COUNT; t++) {
            if (!bonsai_cpu_tier_supported((bonsai_cpu_tier)t))
                continue;
            decode_vs_reference(fm, nc->name, (bonsai_cpu_tier)t, BONSAI_ACT_F32);
            decode_vs_reference(fm, nc->name, (bonsai_cpu_tier)t, BONSAI_ACT_Q8);
            kv_type = BONSAI_KV_Q8; /* int8 cache rows: judged as q8 mode is */
            decode_vs_reference(fm, nc->name, (bonsai_cpu_tier)t, BONSAI_ACT_Q8);
            kv_type = BONSAI_KV_AUTO;
        }
        prefill_vs_decode(fm, nc->name, BONSAI_ACT_F32, 20);
        prefill_vs_decode(fm, nc->name, BONSAI_ACT_Q8, 20);
        kv_type = BONSAI_KV_Q8;
        prefill_vs_decode(fm, nc->name, BONSAI_ACT_Q8, 20);
        kv_type = BONSAI_KV_AUTO;
        packed_vs_file(fm, nc->name);
        if (ci == 0) {
            prefill_vs_decode(fm, nc->name, BONSAI_ACT_Q8, 1);
            prefill_vs_decode(fm, nc->name, BONSAI_ACT_Q8, 70);
            long_prefill(fm);
            context_full(fm);
        }
        fx_free(fm);
    }
    CHECK(greedy_total > 0 && greedy_same * 100 >= greedy_total * 95,
          "q8 greedy token equals the float64 reference's in %zu of %zu steps (>= 95%%)",
          greedy_same, greedy_total);
    printf("q8 greedy agreement: %zu of %zu steps\n", greedy_same, greedy_total);
    remove(tmp_path);
    free(fm);
    return harness_finish();
}

/* Synthetic models: bonsai_synth_write of the tiny presets in every weight
 * type, opened with the reader and checked against the preset table in
 * bonsai/gguf.h (shapes, types and byte sizes worked out here from the
 * block layouts), the qwen3 and tokenizer metadata, value ranges of the
 * random weights, Q/K/V stored back to back, determinism per seed, argument
 * errors, no temporary file left behind; and `bonsai info -m` on the
 * result. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bonsai/bonsai.h"
#include "harness.h"

static char dir[64];

static void path_in_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static int str_is(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static void check_u32(const bonsai_gguf *g, const char *key, uint32_t want)
{
    uint32_t v = 0;
    bonsai_status s = bonsai_gguf_get_u32(g, key, &v);
    CHECK(s == BONSAI_OK && v == want, "%s = %u (%s), want %u", key, v, bonsai_status_name(s),
          want);
}

/* Bytes of a [rows][k] matrix: whole blocks of the type's layout. */
static size_t matrix_bytes(bonsai_type t, uint64_t k, uint64_t rows)
{
    size_t block = t == BONSAI_TYPE_F32 ? 1 : t == BONSAI_TYPE_Q2_0_G64 ? 64 : 128;
    size_t bytes = t == BONSAI_TYPE_F32 ? 4
                   : (t == BONSAI_TYPE_Q1_0_G128 || t == BONSAI_TYPE_Q2_0_G64) ? 18 : 34;
    return (size_t)(k / block * bytes * rows);
}

static void check_tensor(const bonsai_gguf *g, const char *name, bonsai_type type, uint64_t ne0,
                         uint64_t ne1)
{
    const bonsai_gguf_tensor *t = bonsai_gguf_find_tensor(g, name);
    if (!CHECK(t != NULL, "tensor %s missing", name))
        return;
    uint32_t dims = ne1 ? 2 : 1;
    CHECK(t->type == type, "%s: type %s, want %s", name, bonsai_type_name(t->type),
          bonsai_type_name(type));
    CHECK(t->n_dims == dims && t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1),
          "%s: shape %u dims [%llu, %llu], want [%llu, %llu]", name, t->n_dims,
          (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)ne0,
          (unsigned long long)ne1);
    CHECK(t->bytes == matrix_bytes(type, ne0, ne1 ? ne1 : 1), "%s: %zu bytes, want %zu", name,
          t->bytes, matrix_bytes(type, ne0, ne1 ? ne1 : 1));
    CHECK(t->data != NULL && ((uintptr_t)t->data % 32) == 0, "%s: data 32-byte aligned", name);
}

/* Norms are 1 +- 0.1; a linear weight's dequantized values stay within the
 * uniform range sqrt(3/k) scaled by the format's largest code (2 for pq2). */
static void check_values(const bonsai_gguf *g, bonsai_type wt)
{
    const bonsai_gguf_tensor *n = bonsai_gguf_find_tensor(g, "blk.1.ffn_norm.weight");
    if (n) {
        const float *v = n->data;
        int ok = 1;
        for (size_t i = 0; i < 256; i++)
            ok &= v[i] >= 0.9f && v[i] <= 1.1f;
        CHECK(ok, "norm weights within 1 +- 0.1");
    }
    const bonsai_gguf_tensor *t = bonsai_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    if (!t)
        return;
    size_t count = (size_t)(t->ne[0] * t->ne[1]);
    float *f = malloc(count * sizeof *f);
    bonsai_status s = bonsai_dequantize(wt, t->data, t->bytes, f, count);
    double limit = sqrt(3.0 / (double)t->ne[0]) * (wt == BONSAI_TYPE_PQ2_0 ||
                                                   wt == BONSAI_TYPE_Q2_0_G64 ? 2.0 : 1.0) * 1.01;
    int ok = s == BONSAI_OK, nonzero = 0;
    for (size_t i = 0; ok && i < count; i++) {
        ok &= fabs(f[i]) <= limit;
        nonzero += f[i] != 0;
    }
    CHECK(ok, "ffn_down values within +-%g (%s)", limit, bonsai_status_name(s));
    CHECK(nonzero > (int)(count / 4), "ffn_down has %d nonzero values of %zu", nonzero, count);
    free(f);
}

static void check_tokenizer(const bonsai_gguf *g, uint32_t vocab)
{
    const char *s;
    size_t len;
    CHECK(bonsai_gguf_get_str(g, "tokenizer.ggml.model", &s, &len) == BONSAI_OK &&
              str_is(s, len, "gpt2"), "tokenizer.ggml.model = gpt2");
    bonsai_gguf_type et;
    uint64_t n = 0, n_merges = 0;
    const void *data;
    CHECK(bonsai_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n, &data) == BONSAI_OK &&
              et == BONSAI_GGUF_STRING && n == vocab, "tokens: %llu strings, want %u",
          (unsigned long long)n, vocab);
    CHECK(bonsai_gguf_get_array(g, "tokenizer.ggml.token_type", &et, &n, &data) == BONSAI_OK &&
              et == BONSAI_GGUF_INT32 && n == vocab, "token_type: %llu int32", (unsigned long long)n);
    CHECK(bonsai_gguf_get_array(g, "tokenizer.ggml.merges", &et, &n_merges, &data) ==
              BONSAI_OK && et == BONSAI_GGUF_STRING && n_merges == vocab - 3 - 256,
          "merges: %llu, want %u", (unsigned long long)n_merges, vocab - 259);
    /* byte tokens in GPT-2 spelling: 'A' is itself, space is U+0120 */
    CHECK(bonsai_gguf_get_array_str(g, "tokenizer.ggml.tokens", 'A', &s, &len) == BONSAI_OK &&
              str_is(s, len, "A"), "token 65 = A");
    CHECK(bonsai_gguf_get_array_str(g, "tokenizer.ggml.tokens", ' ', &s, &len) == BONSAI_OK &&
              str_is(s, len, "\xc4\xa0"), "token 32 = U+0120");
    /* merge r joins two earlier tokens into token 256 + r */
    int ok = 1;
    for (uint64_t r = 0; r < n_merges; r++) {
        const char *m, *t;
        size_t ml, tl;
        ok &= bonsai_gguf_get_array_str(g, "tokenizer.ggml.merges", r, &m, &ml) == BONSAI_OK;
        ok &= bonsai_gguf_get_array_str(g, "tokenizer.ggml.tokens", 256 + r, &t, &tl) ==
              BONSAI_OK;
        const char *sp = ok ? memchr(m, ' ', ml) : NULL;
        ok &= sp && tl == ml - 1 && memcmp(t, m, (size_t)(sp - m)) == 0 &&
              memcmp(t + (sp - m), sp + 1, ml - (size_t)(sp - m) - 1) == 0;
        if (!ok)
            break;
    }
    CHECK(ok, "every merge 'a b' makes token ab at 256 + rank");
    check_u32(g, "tokenizer.ggml.bos_token_id", vocab - 3);
    check_u32(g, "tokenizer.ggml.eos_token_id", vocab - 1);
    CHECK(bonsai_gguf_get_array_str(g, "tokenizer.ggml.tokens", vocab - 1, &s, &len) ==
              BONSAI_OK && str_is(s, len, "<|im_end|>"), "eos token is <|im_end|>");
}

static void test_preset(const char *preset, bonsai_type wt, int tied)
{
    char path[128];
    path_in_dir(path, sizeof path, "model.gguf");
    bonsai_synth_params p = bonsai_synth_default_params();
    p.preset = preset;
    p.weight_type = wt;
    p.seed = rng_u64();
    bonsai_status s = bonsai_synth_write(path, &p);
    if (!CHECK(s == BONSAI_OK, "synth %s %s: %s %s", preset, bonsai_type_name(wt),
               bonsai_status_name(s), bonsai_last_error()))
        return;
    bonsai_gguf *g = NULL;
    s = bonsai_gguf_open(path, NULL, &g);
    if (!CHECK(s == BONSAI_OK, "open synth %s: %s", preset, bonsai_last_error()))
        return;
    const char *arch;
    size_t len;
    CHECK(bonsai_gguf_version(g) == 3, "version 3");
    CHECK(bonsai_gguf_get_str(g, "general.architecture", &arch, &len) == BONSAI_OK &&
              str_is(arch, len, "qwen3"), "architecture qwen3");
    check_u32(g, "qwen3.block_count", 2);
    check_u32(g, "qwen3.embedding_length", 256);
    check_u32(g, "qwen3.feed_forward_length", 512);
    check_u32(g, "qwen3.attention.head_count", 4);
    check_u32(g, "qwen3.attention.head_count_kv", 2);
    check_u32(g, "qwen3.attention.key_length", 64);
    check_u32(g, "qwen3.attention.value_length", 64);
    check_u32(g, "qwen3.context_length", 2048);
    check_u32(g, "general.alignment", 32);
    float f = 0;
    CHECK(bonsai_gguf_get_f32(g, "qwen3.rope.freq_base", &f) == BONSAI_OK && f == 1e6f,
          "rope base 1e6");
    CHECK(bonsai_gguf_get_f32(g, "qwen3.attention.layer_norm_rms_epsilon", &f) == BONSAI_OK &&
              f == 1e-6f, "rms eps 1e-6");
    bonsai_q2_variant want_variant = wt == BONSAI_TYPE_TQ2_0_G128 ? BONSAI_Q2_TQ2_0_G128
                                     : wt == BONSAI_TYPE_Q2_0_G64 ? BONSAI_Q2_GGML_G64
                                                                  : BONSAI_Q2_AUTO;
    CHECK(bonsai_gguf_q2_variant(g) == want_variant, "%s: q2 variant %d, want %d",
          bonsai_type_name(wt), bonsai_gguf_q2_variant(g), want_variant);
    check_tokenizer(g, 512);
    CHECK(bonsai_gguf_n_tensors(g) == (size_t)(tied ? 24 : 25), "%zu tensors",
          bonsai_gguf_n_tensors(g));
    check_tensor(g, "token_embd.weight", wt, 256, 512);
    check_tensor(g, "output_norm.weight", BONSAI_TYPE_F32, 256, 0);
    if (tied)
        CHECK(bonsai_gguf_find_tensor(g, "output.weight") == NULL, "tied: no output.weight");
    else
        check_tensor(g, "output.weight", wt, 256, 512);
    for (int l = 0; l < 2; l++) {
        static const struct {
            const char *part;
            int f32;
            uint64_t ne0, ne1;
        } parts[] = {
            {"attn_norm", 1, 256, 0},   {"attn_q", 0, 256, 256},     {"attn_k", 0, 256, 128},
            {"attn_v", 0, 256, 128},    {"attn_output", 0, 256, 256}, {"attn_q_norm", 1, 64, 0},
            {"attn_k_norm", 1, 64, 0},  {"ffn_norm", 1, 256, 0},     {"ffn_gate", 0, 256, 512},
            {"ffn_up", 0, 256, 512},    {"ffn_down", 0, 512, 256},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, parts[i].part);
            check_tensor(g, name, parts[i].f32 ? BONSAI_TYPE_F32 : wt, parts[i].ne0,
                         parts[i].ne1);
        }
    }
    /* Q, K and V back to back (the model fuses them when they are) */
    for (int l = 0; l < 2; l++) {
        char q[32], k[32], v[32];
        snprintf(q, sizeof q, "blk.%d.attn_q.weight", l);
        snprintf(k, sizeof k, "blk.%d.attn_k.weight", l);
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", l);
        const bonsai_gguf_tensor *tq = bonsai_gguf_find_tensor(g, q),
                                 *tk = bonsai_gguf_find_tensor(g, k),
                                 *tv = bonsai_gguf_find_tensor(g, v);
        CHECK(tq && tk && tv && (const uint8_t *)tq->data + tq->bytes == tk->data &&
                  (const uint8_t *)tk->data + tk->bytes == tv->data,
              "layer %d: attn_q, attn_k, attn_v back to back", l);
    }
    check_values(g, wt);
    bonsai_gguf_close(g);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int x = fgetc(fa), y = fgetc(fb);
        eq = x == y;
        if (x == EOF || y == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

static void test_determinism(void)
{
    char a[128], b[128];
    path_in_dir(a, sizeof a, "a.gguf");
    path_in_dir(b, sizeof b, "b.gguf");
    bonsai_synth_params p = bonsai_synth_default_params();
    p.seed = rng_u64();
    CHECK(bonsai_synth_write(a, &p) == BONSAI_OK && bonsai_synth_write(b, &p) == BONSAI_OK,
          "two writes");
    CHECK(file_size(a) > 0 && files_equal(a, b), "same seed gives the same file");
    p.seed ^= 1;
    CHECK(bonsai_synth_write(b, &p) == BONSAI_OK, "third write");
    CHECK(!files_equal(a, b), "another seed gives another file");
    unlink(a);
    unlink(b);
}

static void progress_count(void *user, const char *what, uint64_t done, uint64_t total)
{
    uint64_t *last = user;
    if (strcmp(what, "synth") == 0 && done <= total && done >= last[0]) {
        last[0] = done;
        last[1] = total;
        last[2]++;
    } else {
        last[3]++; /* out of order or wrong name */
    }
}

static void test_progress_and_errors(void)
{
    char path[128];
    path_in_dir(path, sizeof path, "p.gguf");
    uint64_t seen[4] = {0};
    bonsai_synth_params p = bonsai_synth_default_params();
    p.progress = progress_count;
    p.progress_user = seen;
    CHECK(bonsai_synth_write(path, &p) == BONSAI_OK, "synth with progress");
    CHECK(seen[2] > 0 && seen[3] == 0 && seen[0] == seen[1] && seen[1] > 0,
          "progress monotonic, ends at total (%llu calls, %llu bad, %llu of %llu)",
          (unsigned long long)seen[2], (unsigned long long)seen[3], (unsigned long long)seen[0],
          (unsigned long long)seen[1]);
    unlink(path);

    bonsai_synth_params bad = bonsai_synth_default_params();
    bad.preset = "bonsai-70b";
    bonsai_status s = bonsai_synth_write(path, &bad);
    CHECK(s == BONSAI_ERR_INVALID_ARG && strstr(bonsai_last_error(), "bonsai-70b"),
          "unknown preset: %s %s", bonsai_status_name(s), bonsai_last_error());
    bad = bonsai_synth_default_params();
    bad.weight_type = BONSAI_TYPE_F16;
    s = bonsai_synth_write(path, &bad);
    CHECK(s == BONSAI_ERR_INVALID_ARG && strstr(bonsai_last_error(), "f16"),
          "f16 weights refused: %s %s", bonsai_status_name(s), bonsai_last_error());
    CHECK(bonsai_synth_write(NULL, &p) == BONSAI_ERR_NULL_ARG, "NULL path");
    CHECK(bonsai_synth_write(path, NULL) == BONSAI_ERR_NULL_ARG, "NULL params");
    s = bonsai_synth_write("/nonexistent-dir/x.gguf", &p);
    CHECK(s == BONSAI_ERR_IO, "unwritable directory: %s", bonsai_status_name(s));
    CHECK(file_size(path) < 0, "no file after failures");
}

/* Nothing but what the test wrote remains: no temporary files. */
static void test_no_leftovers(void)
{
    DIR *d = opendir(dir);
    int others = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "model.gguf"))
            others++;
    if (d)
        closedir(d);
    CHECK(others == 0, "%d unexpected files left in %s", others, dir);
}

/* The bonsai CLI sits next to this test in the build directory. */
static void test_cli_info(void)
{
    char exe[PATH_MAX], cmd[PATH_MAX + 256], model[128];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        skip("cannot find the test's own path");
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "bonsai");
    if (access(exe, X_OK) != 0) {
        skip("bonsai CLI not built next to the test (%s)", exe);
        return;
    }
    snprintf(cmd, sizeof cmd, "%s --version >/dev/null 2>&1", exe);
    if (system(cmd) != 0) {
        skip("the bonsai CLI does not run here (cross build under an emulator?)");
        return;
    }
    path_in_dir(model, sizeof model, "cli.gguf");
    snprintf(cmd, sizeof cmd, "%s synth --preset tiny --type tq2_0_g128 -o %s 2>&1", exe, model);
    CHECK(system(cmd) == 0, "bonsai synth exits 0");
    snprintf(cmd, sizeof cmd, "%s info -m %s 2>&1", exe, model);
    FILE *f = popen(cmd, "r");
    char out[16384] = {0};
    size_t got = f ? fread(out, 1, sizeof out - 1, f) : 0;
    int rc = f ? pclose(f) : -1;
    out[got] = '\0';
    CHECK(rc == 0, "bonsai info -m exits 0 (%d)", rc);
    const char *want[] = {"architecture: qwen3", "layers: 2  hidden: 256  ffn: 512  vocab: 512",
                          "heads: 4 q, 2 kv, head_dim 64", "type 42 read as: tq2",
                          "tq2_0_g128", "tokenizer.ggml.tokens", "embeddings: separate"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(strstr(out, want[i]) != NULL, "info output has '%s'", want[i]);
    snprintf(cmd, sizeof cmd, "%s info -m %s/missing.gguf >/dev/null 2>&1", exe, dir);
    CHECK(system(cmd) != 0, "info on a missing file fails");
    snprintf(cmd, sizeof cmd, "%s info >/dev/null 2>&1", exe);
    CHECK(system(cmd) == 0, "bonsai info exits 0");
    unlink(model);
}

int main(void)
{
    harness_init();
    snprintf(dir, sizeof dir, "/tmp/bonsai_test_synth_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_preset("tiny", BONSAI_TYPE_Q1_0_G128, 0);
    test_preset("tiny-tied", BONSAI_TYPE_Q1_0_G128, 1);
    test_preset("tiny", BONSAI_TYPE_TQ2_0_G128, 0);
    test_preset("tiny", BONSAI_TYPE_PQ2_0, 0);
    test_preset("tiny", BONSAI_TYPE_Q2_0_G64, 0);
    test_determinism();
    test_progress_and_errors();
    test_no_leftovers();
    test_cli_info();
    char model[128];
    path_in_dir(model, sizeof model, "model.gguf");
    unlink(model);
    rmdir(dir);
    return harness_finish();
}

/* Model loading and session error paths: each broken file (a tensor
 * missing, of the wrong shape or type; metadata missing or out of range)
 * and each bad call gives its status and a message naming the tensor, key
 * or value. Files are written with model_fixture.h's GGUF writer. */
#include <string.h>

#include "harness.h"
#include "model_fixture.h"

static const fx_config base = {2, 128, 2, 1, 64, 256, 64, 1024, 10000.0f, 1e-6f, 0, 1,
                               BONSAI_TYPE_Q1_0_G128, 0};

static char tmp_path[256];

/* Replaces tensor name by one of type t and shape [k, rows] (n_dims). */
static void retensor(fx_model *fm, const char *name, bonsai_type t, uint32_t n_dims, uint64_t k,
                     uint64_t rows)
{
    fx_remove(fm, name);
    fx_add_tensor(fm, name, t, n_dims, k, rows, t == BONSAI_TYPE_F32, 0.1f);
}

typedef void (*mutation)(fx_model *fm);

static void drop_ffn_up(fx_model *fm) { fx_remove(fm, "blk.1.ffn_up.weight"); }
static void drop_output_norm(fx_model *fm) { fx_remove(fm, "output_norm.weight"); }
static void drop_embd(fx_model *fm) { fx_remove(fm, "token_embd.weight"); }
static void drop_k_norm(fx_model *fm) { fx_remove(fm, "blk.0.attn_k_norm.weight"); }
static void k_rows(fx_model *fm)
{
    retensor(fm, "blk.0.attn_k.weight", BONSAI_TYPE_Q1_0_G128, 2, 128, 128);
}
static void down_transposed(fx_model *fm)
{
    retensor(fm, "blk.1.ffn_down.weight", BONSAI_TYPE_Q1_0_G128, 2, 128, 256);
}
static void q_norm_len(fx_model *fm)
{
    retensor(fm, "blk.0.attn_q_norm.weight", BONSAI_TYPE_F32, 1, 128, 1);
}
static void output_vocab(fx_model *fm)
{
    retensor(fm, "output.weight", BONSAI_TYPE_Q1_0_G128, 2, 128, 65);
}
static void q_f32(fx_model *fm)
{
    retensor(fm, "blk.0.attn_q.weight", BONSAI_TYPE_F32, 2, 128, 128);
}
static void norm_q1(fx_model *fm)
{
    retensor(fm, "blk.1.ffn_norm.weight", BONSAI_TYPE_Q1_0_G128, 1, 128, 1);
}
static void no_block_count(fx_model *fm) { fx_remove_kv(fm, "qwen3.block_count"); }
static void no_arch(fx_model *fm) { fx_remove_kv(fm, "general.architecture"); }
static void arch_llama(fx_model *fm)
{
    snprintf(fx_find_kv(fm, "general.architecture")->str, 32, "llama");
}
static void kv_heads_3(fx_model *fm)
{
    fx_find_kv(fm, "qwen3.attention.head_count")->u32 = 4;
    fx_find_kv(fm, "qwen3.attention.head_count_kv")->u32 = 3;
}
static void kv_heads_0(fx_model *fm) { fx_find_kv(fm, "qwen3.attention.head_count_kv")->u32 = 0; }
static void key_len_odd(fx_model *fm) { fx_find_kv(fm, "qwen3.attention.key_length")->u32 = 63; }
static void value_len(fx_model *fm) { fx_find_kv(fm, "qwen3.attention.value_length")->u32 = 32; }
static void eps_negative(fx_model *fm)
{
    fx_find_kv(fm, "qwen3.attention.layer_norm_rms_epsilon")->f32 = -1e-6f;
}
static void ffn_zero(fx_model *fm) { fx_find_kv(fm, "qwen3.feed_forward_length")->u32 = 0; }
static void three_layers(fx_model *fm) { fx_find_kv(fm, "qwen3.block_count")->u32 = 3; }
static void block_count_f32(fx_model *fm)
{
    fx_remove_kv(fm, "qwen3.block_count");
    fx_set_f32(fm, "qwen3.block_count", 2.0f);
}

static const struct {
    const char *name;
    mutation mutate;
    bonsai_status want;
    const char *in_message;
} cases[] = {
    {"missing layer matrix", drop_ffn_up, BONSAI_ERR_NOT_FOUND, "blk.1.ffn_up.weight"},
    {"missing output_norm", drop_output_norm, BONSAI_ERR_NOT_FOUND, "output_norm.weight"},
    {"missing token_embd", drop_embd, BONSAI_ERR_NOT_FOUND, "token_embd.weight"},
    {"missing k norm", drop_k_norm, BONSAI_ERR_NOT_FOUND, "blk.0.attn_k_norm.weight"},
    {"attn_k with 128 rows, 64 expected", k_rows, BONSAI_ERR_SHAPE, "blk.0.attn_k.weight"},
    {"ffn_down transposed", down_transposed, BONSAI_ERR_SHAPE, "blk.1.ffn_down.weight"},
    {"q norm of 128, 64 expected", q_norm_len, BONSAI_ERR_SHAPE, "blk.0.attn_q_norm.weight"},
    {"output vocab 65, token_embd 64", output_vocab, BONSAI_ERR_SHAPE, "output.weight"},
    {"attn_q in f32", q_f32, BONSAI_ERR_UNSUPPORTED, "blk.0.attn_q.weight"},
    {"ffn_norm quantized", norm_q1, BONSAI_ERR_UNSUPPORTED, "blk.1.ffn_norm.weight"},
    {"no block_count", no_block_count, BONSAI_ERR_NOT_FOUND, "qwen3.block_count"},
    {"block_count stored as f32", block_count_f32, BONSAI_ERR_FORMAT, "qwen3.block_count"},
    {"no architecture", no_arch, BONSAI_ERR_NOT_FOUND, "general.architecture"},
    {"architecture llama", arch_llama, BONSAI_ERR_UNSUPPORTED, "llama"},
    {"4 heads over 3 kv heads", kv_heads_3, BONSAI_ERR_FORMAT, "head_count_kv = 3"},
    {"0 kv heads", kv_heads_0, BONSAI_ERR_FORMAT, "head_count_kv = 0"},
    {"odd key_length", key_len_odd, BONSAI_ERR_FORMAT, "key_length = 63"},
    {"value_length != key_length", value_len, BONSAI_ERR_UNSUPPORTED, "value_length = 32"},
    {"negative rms epsilon", eps_negative, BONSAI_ERR_FORMAT, "layer_norm_rms_epsilon"},
    {"feed_forward_length 0", ffn_zero, BONSAI_ERR_FORMAT, "feed_forward_length = 0"},
    {"block_count 3, two layers stored", three_layers, BONSAI_ERR_NOT_FOUND, "blk.2."},
};

static void test_broken_files(void)
{
    fx_model *fm = malloc(sizeof *fm);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_build(fm, &base);
        cases[i].mutate(fm);
        fx_write(fm, tmp_path);
        fx_free(fm);
        bonsai_model *m = (bonsai_model *)&m; /* poison: must be set to NULL */
        bonsai_status s = bonsai_model_load(tmp_path, NULL, &m);
        CHECK(s == cases[i].want && m == NULL &&
                  strstr(bonsai_last_error(), cases[i].in_message) != NULL,
              "%s: got %s '%s', want %s naming '%s'", cases[i].name, bonsai_status_name(s),
              bonsai_last_error(), bonsai_status_name(cases[i].want), cases[i].in_message);
        bonsai_model_free(s == BONSAI_OK ? m : NULL);
    }
    free(fm);
}

static void test_bad_calls(void)
{
    fx_model *fm = malloc(sizeof *fm);
    fx_build(fm, &base);
    fx_write(fm, tmp_path);
    fx_free(fm);
    free(fm);
    bonsai_model *m = NULL;
    bonsai_model_params p = bonsai_model_default_params();
    CHECK(bonsai_model_load(NULL, &p, &m) == BONSAI_ERR_NULL_ARG, "load: path NULL");
    CHECK(bonsai_model_load(tmp_path, &p, NULL) == BONSAI_ERR_NULL_ARG, "load: out NULL");
    CHECK(bonsai_model_load("/nonexistent/bonsai.gguf", &p, &m) == BONSAI_ERR_NOT_FOUND && !m,
          "load: no such file: %s", bonsai_last_error());
    p.act_mode = (bonsai_act_mode)7;
    CHECK(bonsai_model_load(tmp_path, &p, &m) == BONSAI_ERR_INVALID_ARG && !m, "load: mode 7");
    p = bonsai_model_default_params();
    p.n_ctx = 4;
    p.n_threads = 2;
    if (!CHECK(bonsai_model_load(tmp_path, &p, &m) == BONSAI_OK, "load: %s", bonsai_last_error()))
        return;
    bonsai_model_info info;
    CHECK(bonsai_model_get_info(NULL, &info) == BONSAI_ERR_NULL_ARG, "info: model NULL");
    CHECK(bonsai_model_get_info(m, NULL) == BONSAI_ERR_NULL_ARG, "info: out NULL");
    bonsai_session *s = NULL;
    CHECK(bonsai_session_create(NULL, &s) == BONSAI_ERR_NULL_ARG && !s, "session: model NULL");
    CHECK(bonsai_session_create(m, NULL) == BONSAI_ERR_NULL_ARG, "session: out NULL");
    CHECK(bonsai_session_create(m, &s) == BONSAI_OK, "session");
    float logits[64];
    int32_t toks[2] = {1, 2};
    CHECK(bonsai_session_prefill(NULL, toks, 2, logits, 64) == BONSAI_ERR_NULL_ARG,
          "prefill: session NULL");
    CHECK(bonsai_session_prefill(s, NULL, 2, logits, 64) == BONSAI_ERR_NULL_ARG,
          "prefill: tokens NULL");
    CHECK(bonsai_session_prefill(s, toks, 0, logits, 64) == BONSAI_ERR_INVALID_ARG,
          "prefill: 0 tokens");
    CHECK(bonsai_session_prefill(s, toks, 2, logits, 63) == BONSAI_ERR_BUFFER_TOO_SMALL,
          "prefill: 63 logits for a vocab of 64");
    CHECK(bonsai_session_decode(s, 64, logits, 64) == BONSAI_ERR_INVALID_ARG &&
              strstr(bonsai_last_error(), "64") != NULL,
          "decode: token 64 of 64: %s", bonsai_last_error());
    CHECK(bonsai_session_decode(s, -1, logits, 64) == BONSAI_ERR_INVALID_ARG, "decode: token -1");
    CHECK(bonsai_session_n_past(s) == 0, "refused calls leave the cache empty");
    CHECK(bonsai_session_prefill(s, toks, 2, NULL, 0) == BONSAI_OK &&
              bonsai_session_n_past(s) == 2,
          "prefill without logits");
    bonsai_session_free(s);
    bonsai_session_free(NULL);
    bonsai_model_free(m);
    bonsai_model_free(NULL);

    FILE *f = fopen(tmp_path, "wb");
    fputs("this is not a GGUF file at all, not even close", f);
    fclose(f);
    m = NULL;
    CHECK(bonsai_model_load(tmp_path, NULL, &m) == BONSAI_ERR_FORMAT && !m,
          "load: not GGUF: %s", bonsai_last_error());
}

int main(void)
{
    harness_init();
    snprintf(tmp_path, sizeof tmp_path, "/tmp/bonsai_test_model_errors_%d.gguf", (int)getpid());
    test_broken_files();
    test_bad_calls();
    remove(tmp_path);
    return harness_finish();
}

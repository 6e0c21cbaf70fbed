/* GGUF type id 42 and its three readings (see src/gguf/q2_variant.c):
 * hand-built blocks whose values are worked out here from each layout
 *   tq2_0_g128: qs[32] then fp16 d; 00 -> -d, 01 -> 0, 10 -> +d, 11 -> 0
 *   PrismML g128 (pq2_0): fp16 d then qs[32]; value (c - 1) * d
 *   ggml Q2_0 g64: fp16 d then qs[16]; value (c - 1) * d
 * are read by block size when that decides, by bonsai.q2_layout, or by the
 * explicit option, and are refused (AMBIGUOUS, naming the tensor and the
 * option) when nothing decides; a reading that does not fit is FORMAT. */
#include <string.h>

#include "bonsai/bonsai.h"
#include "harness.h"
#include "gguf_test_file.h"

enum layout { TQ2, PRISM, G64 };

/* Random blocks in one layout: random codes, d a random fp16 in [0.5, 2). */
static uint8_t *random_blocks(enum layout l, uint64_t k, uint64_t rows, size_t *bytes)
{
    size_t per = l == G64 ? 64 : 128, bsz = l == G64 ? 18 : 34;
    size_t n_blocks = (size_t)(k / per * rows);
    uint8_t *p = malloc(n_blocks * bsz);
    for (size_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = p + b * bsz;
        for (size_t i = 0; i < bsz; i++)
            blk[i] = (uint8_t)rng_u64();
        /* both places a 34-byte reading may take d from hold a normal fp16,
         * so tq2 and prism readings of the same bytes both decode */
        for (size_t at = 0; at < bsz; at += 32) {
            uint16_t d = (uint16_t)(0x3800 + rng_u64() % 0x800); /* [0.5, 2) */
            blk[at] = (uint8_t)d;
            blk[at + 1] = (uint8_t)(d >> 8);
        }
    }
    *bytes = n_blocks * bsz;
    return p;
}

/* fp16 -> double for normal positive values, computed here. */
static double half(uint16_t h)
{
    int e = (h >> 10) & 31;
    return ldexp(1.0 + (h & 1023) / 1024.0, e - 15);
}

/* The value of weight j of the blocks read as layout l. */
static double expected(enum layout l, const uint8_t *p, size_t j)
{
    size_t per = l == G64 ? 64 : 128, bsz = l == G64 ? 18 : 34;
    const uint8_t *blk = p + j / per * bsz;
    size_t w = j % per;
    const uint8_t *qs = l == TQ2 ? blk : blk + 2;
    const uint8_t *dp = l == TQ2 ? blk + 32 : blk;
    double d = half((uint16_t)(dp[0] | dp[1] << 8));
    int c = (qs[w / 4] >> (2 * (w % 4))) & 3;
    if (l == TQ2)
        return c == 0 ? -d : c == 2 ? d : 0.0;
    return (c - 1) * d;
}

typedef struct q2_file {
    tf_spec spec;
    bb bytes;
    uint8_t *blocks[2];
} q2_file;

/* One or two id-42 tensors (k x rows each, in the given layouts), an f32
 * tensor after the first, and optionally bonsai.q2_layout. */
static void make_file(q2_file *f, enum layout l0, uint64_t k0, uint64_t rows0, int two,
                      enum layout l1, const char *q2_layout)
{
    memset(f, 0, sizeof *f);
    tf_init(&f->spec, 3);
    if (q2_layout) {
        kv_str(&f->spec.kv, "bonsai.q2_layout", q2_layout);
        f->spec.n_kv = 1;
    }
    size_t n;
    f->blocks[0] = random_blocks(l0, k0, rows0, &n);
    tf_add(&f->spec, "q.weight", 42, 2, k0, rows0, n)->data = f->blocks[0];
    tf_add(&f->spec, "norm.weight", 0, 1, 16, 0, 64);
    if (two) {
        f->blocks[1] = random_blocks(l1, 4096, 2, &n);
        tf_add(&f->spec, "r.weight", 42, 2, 4096, 2, n)->data = f->blocks[1];
    }
    tf_build(&f->spec, &f->bytes);
}

static void free_file(q2_file *f)
{
    bb_free(&f->bytes);
    bb_free(&f->spec.kv);
    free(f->blocks[0]);
    free(f->blocks[1]);
}

static bonsai_status open_as(q2_file *f, bonsai_q2_variant v, bonsai_gguf **g)
{
    bonsai_gguf_params p = bonsai_gguf_default_params();
    p.q2_variant = v;
    *g = NULL;
    return bonsai_gguf_open_memory(f->bytes.p, f->bytes.len, &p, g);
}

/* Opens f with option v and checks the reading and every decoded value. */
static void expect_reading(const char *what, q2_file *f, bonsai_q2_variant v,
                           bonsai_q2_variant want, enum layout l)
{
    static const bonsai_type types[] = {BONSAI_TYPE_TQ2_0_G128, BONSAI_TYPE_PQ2_0,
                                        BONSAI_TYPE_Q2_0_G64};
    bonsai_gguf *g;
    bonsai_status s = open_as(f, v, &g);
    if (!CHECK(s == BONSAI_OK, "%s: %s %s", what, bonsai_status_name(s), bonsai_last_error()))
        return;
    CHECK(bonsai_gguf_q2_variant(g) == want, "%s: variant %s, want %s", what,
          bonsai_q2_variant_name(bonsai_gguf_q2_variant(g)), bonsai_q2_variant_name(want));
    const bonsai_gguf_tensor *t = bonsai_gguf_find_tensor(g, "q.weight");
    CHECK(t->ggml_type == 42 && t->type == types[l], "%s: type %s, want %s", what,
          bonsai_type_name(t->type), bonsai_type_name(types[l]));
    size_t n = (size_t)(t->ne[0] * t->ne[1]);
    size_t want_bytes = n / (l == G64 ? 64 : 128) * (l == G64 ? 18 : 34);
    CHECK(t->bytes == want_bytes, "%s: %zu bytes, want %zu", what, t->bytes, want_bytes);
    float *out = malloc(n * sizeof *out);
    for (size_t j = 0; j < n; j++)
        out[j] = NAN;
    s = bonsai_dequantize(t->type, t->data, t->bytes, out, n);
    int ok = s == BONSAI_OK;
    for (size_t j = 0; ok && j < n; j++)
        ok &= out[j] == (float)expected(l, t->data, j);
    CHECK(ok, "%s: every value decodes as %s", what, bonsai_type_name(types[l]));
    free(out);
    bonsai_gguf_close(g);
}

static void expect_refusal(const char *what, q2_file *f, bonsai_q2_variant v,
                           bonsai_status want, const char *msg1, const char *msg2)
{
    bonsai_gguf *g;
    bonsai_status s = open_as(f, v, &g);
    const char *m = bonsai_last_error();
    CHECK(s == want && g == NULL, "%s: %s, want %s (%s)", what, bonsai_status_name(s),
          bonsai_status_name(want), m);
    CHECK(strstr(m, msg1) != NULL, "%s: message '%s' lacks '%s'", what, m, msg1);
    if (msg2)
        CHECK(strstr(m, msg2) != NULL, "%s: message '%s' lacks '%s'", what, m, msg2);
    if (s == BONSAI_OK)
        bonsai_gguf_close(g);
}

static void test_34_byte_blocks_without_metadata(void)
{
    q2_file f;
    make_file(&f, TQ2, 4096, 2, 0, TQ2, NULL);
    expect_refusal("34-byte blocks, auto", &f, BONSAI_Q2_AUTO, BONSAI_ERR_AMBIGUOUS,
                   "tensor q.weight has type 42", "--q2-variant tq2|prism)");
    expect_refusal("34-byte blocks, auto (option named)", &f, BONSAI_Q2_AUTO,
                   BONSAI_ERR_AMBIGUOUS, "params.q2_variant", NULL);
    expect_reading("34-byte blocks, --q2-variant tq2", &f, BONSAI_Q2_TQ2_0_G128,
                   BONSAI_Q2_TQ2_0_G128, TQ2);
    expect_reading("34-byte blocks, --q2-variant prism", &f, BONSAI_Q2_PRISM_G128,
                   BONSAI_Q2_PRISM_G128, PRISM);
    expect_refusal("34-byte blocks, --q2-variant ggml", &f, BONSAI_Q2_GGML_G64,
                   BONSAI_ERR_FORMAT, "tensor q.weight: params.q2_variant says type 42 is "
                   "q2_0_g64, which needs 2304 bytes", "spans 2176 bytes");
    free_file(&f);
}

static void test_18_byte_blocks(void)
{
    q2_file f;
    make_file(&f, G64, 4096, 2, 0, G64, NULL);
    expect_reading("18-byte blocks, auto", &f, BONSAI_Q2_AUTO, BONSAI_Q2_GGML_G64, G64);
    expect_reading("18-byte blocks, --q2-variant ggml", &f, BONSAI_Q2_GGML_G64,
                   BONSAI_Q2_GGML_G64, G64);
    expect_refusal("18-byte blocks, --q2-variant tq2", &f, BONSAI_Q2_TQ2_0_G128,
                   BONSAI_ERR_FORMAT, "tensor q.weight", "needs 2176 bytes");
    free_file(&f);
    /* k = 64: only blocks of 64 can hold it */
    make_file(&f, G64, 64, 4, 0, G64, NULL);
    expect_reading("k = 64, auto", &f, BONSAI_Q2_AUTO, BONSAI_Q2_GGML_G64, G64);
    expect_refusal("k = 64, --q2-variant prism", &f, BONSAI_Q2_PRISM_G128, BONSAI_ERR_FORMAT,
                   "tensor q.weight: ne[0] = 64 is not a multiple of 128", NULL);
    free_file(&f);
}

static void test_metadata(void)
{
    q2_file f;
    make_file(&f, TQ2, 4096, 2, 0, TQ2, "tq2_0_g128");
    expect_reading("bonsai.q2_layout tq2_0_g128", &f, BONSAI_Q2_AUTO, BONSAI_Q2_TQ2_0_G128, TQ2);
    expect_reading("the option wins over bonsai.q2_layout", &f, BONSAI_Q2_PRISM_G128,
                   BONSAI_Q2_PRISM_G128, PRISM);
    free_file(&f);
    make_file(&f, PRISM, 4096, 2, 0, PRISM, "pq2_0");
    expect_reading("bonsai.q2_layout pq2_0", &f, BONSAI_Q2_AUTO, BONSAI_Q2_PRISM_G128, PRISM);
    free_file(&f);
    make_file(&f, G64, 4096, 2, 0, G64, "q2_0_g64");
    expect_reading("bonsai.q2_layout q2_0_g64", &f, BONSAI_Q2_AUTO, BONSAI_Q2_GGML_G64, G64);
    free_file(&f);
    make_file(&f, TQ2, 4096, 2, 0, TQ2, "q2_0_g64");
    expect_refusal("bonsai.q2_layout disagrees with the sizes", &f, BONSAI_Q2_AUTO,
                   BONSAI_ERR_FORMAT, "key bonsai.q2_layout says type 42 is q2_0_g64",
                   "tensor q.weight");
    free_file(&f);
    make_file(&f, TQ2, 4096, 2, 0, TQ2, "bogus");
    expect_refusal("bonsai.q2_layout unknown", &f, BONSAI_Q2_AUTO, BONSAI_ERR_FORMAT,
                   "key bonsai.q2_layout is 'bogus'", "tq2_0_g128, pq2_0 or q2_0_g64");
    free_file(&f);
}

static void test_small_tensor_fits_both(void)
{
    /* 128 weights: 34 bytes as g128, 36 as g64; both within the 32-byte padding */
    q2_file f;
    make_file(&f, G64, 128, 1, 0, G64, NULL);
    expect_refusal("fits both block sizes, auto", &f, BONSAI_Q2_AUTO, BONSAI_ERR_AMBIGUOUS,
                   "tensor q.weight", "--q2-variant tq2|prism|ggml");
    expect_reading("fits both, --q2-variant ggml", &f, BONSAI_Q2_GGML_G64, BONSAI_Q2_GGML_G64,
                   G64);
    free_file(&f);
}

static void test_mixed_block_sizes(void)
{
    q2_file f;
    make_file(&f, G64, 4096, 2, 1, TQ2, NULL);
    expect_refusal("one tensor g64, another g128", &f, BONSAI_Q2_AUTO, BONSAI_ERR_FORMAT,
                   "tensor r.weight has type 42", "fits neither");
    free_file(&f);
}

static void test_no_id_42(void)
{
    tf_spec s;
    bb file = {0};
    tf_init(&s, 3);
    tf_add(&s, "w", 41, 2, 128, 2, 36);
    tf_build(&s, &file);
    bonsai_gguf_params p = bonsai_gguf_default_params();
    p.q2_variant = BONSAI_Q2_TQ2_0_G128;
    bonsai_gguf *g = NULL;
    CHECK(bonsai_gguf_open_memory(file.p, file.len, &p, &g) == BONSAI_OK &&
              bonsai_gguf_q2_variant(g) == BONSAI_Q2_AUTO, "no id 42: variant AUTO");
    bonsai_gguf_close(g);
    bb_free(&file);
    bb_free(&s.kv);
}

static void test_variant_names(void)
{
    static const char *const names[] = {"auto", "tq2", "prism", "ggml"};
    for (int v = 0; v < 4; v++) {
        bonsai_q2_variant got = (bonsai_q2_variant)-1;
        CHECK(strcmp(bonsai_q2_variant_name((bonsai_q2_variant)v), names[v]) == 0 &&
                  bonsai_q2_variant_from_name(names[v], &got) == BONSAI_OK && (int)got == v,
              "variant name %s", names[v]);
    }
    bonsai_q2_variant got;
    CHECK(bonsai_q2_variant_from_name("q2", &got) == BONSAI_ERR_INVALID_ARG &&
              strstr(bonsai_last_error(), "tq2, prism, ggml"), "unknown variant name refused");
    CHECK(bonsai_q2_variant_from_name(NULL, &got) == BONSAI_ERR_NULL_ARG, "NULL name");
}

int main(void)
{
    harness_init();
    test_34_byte_blocks_without_metadata();
    test_18_byte_blocks();
    test_metadata();
    test_small_tensor_fits_both();
    test_mixed_block_sizes();
    test_no_id_42();
    test_variant_names();
    return harness_finish();
}

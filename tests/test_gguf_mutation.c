/* Mutation test of the GGUF reader: thousands of damaged copies of small
 * valid files (random byte flips, huge counts and lengths written over
 * fields, odd type ids, truncations) must each either open, with every
 * tensor inside the buffer and every metadata value readable, or fail with
 * FORMAT / UNSUPPORTED / AMBIGUOUS and a message; never crash or read out
 * of bounds. Each copy sits in a heap block of exactly its size, so an
 * AddressSanitizer build (-fsanitize=address) catches any overread. Bases:
 * a hand-built file with every metadata kind and an id-42 tensor, and the
 * synthetic tiny model (real tokenizer arrays). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bonsai/bonsai.h"
#include "harness.h"
#include "gguf_test_file.h"

#define MUTATIONS_PER_BASE 2000

static int outcomes[BONSAI_STATUS_COUNT];

static void build_small(bb *out, size_t *meta_end)
{
    tf_spec s;
    tf_init(&s, 3);
    bb *kv = &s.kv;
    kv_str(kv, "general.architecture", "qwen3");
    kv_u32(kv, "qwen3.block_count", 2);
    kv_head(kv, "k.f64", T_F64); bb_f64(kv, 2.5);
    kv_head(kv, "k.i8", T_I8); bb_u8(kv, 0xfe);
    kv_head(kv, "k.strs", T_ARR); bb_u32(kv, T_STR); bb_u64(kv, 3);
    bb_str(kv, "a"); bb_str(kv, "bc"); bb_str(kv, "");
    kv_head(kv, "k.nested", T_ARR); bb_u32(kv, T_ARR); bb_u64(kv, 2);
    bb_u32(kv, T_U16); bb_u64(kv, 2); bb_u16(kv, 1); bb_u16(kv, 2);
    bb_u32(kv, T_STR); bb_u64(kv, 1); bb_str(kv, "z");
    kv_str(kv, "bonsai.q2_layout", "tq2_0_g128");
    kv_u32(kv, "general.alignment", 32);
    s.n_kv = 8;
    tf_add(&s, "a", 41, 2, 256, 2, 72);
    tf_add(&s, "b", 42, 2, 128, 2, 68);
    tf_add(&s, "c", 0, 1, 8, 0, 32);
    tf_add(&s, "d", 142, 3, 128, 1, 68)->ne[2] = 2;
    size_t data_start = tf_build(&s, out);
    *meta_end = data_start;
    bb_free(&s.kv);
}

static int read_file(const char *path, bb *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        bb_bytes(out, buf, n);
    fclose(f);
    return 1;
}

/* Everything a user could touch after a successful open. */
static int walk(const bonsai_gguf *g, const uint8_t *buf, size_t len)
{
    volatile unsigned sink = 0;
    for (size_t i = 0; i < bonsai_gguf_n_kv(g); i++) {
        const char *key = bonsai_gguf_kv_key(g, i);
        uint64_t u;
        float f;
        int b;
        const char *s;
        size_t sl;
        bonsai_gguf_type et;
        uint64_t n;
        const void *d;
        bonsai_gguf_get_u64(g, key, &u);
        bonsai_gguf_get_f32(g, key, &f);
        bonsai_gguf_get_bool(g, key, &b);
        if (bonsai_gguf_get_str(g, key, &s, &sl) == BONSAI_OK) {
            if ((const uint8_t *)s < buf || (const uint8_t *)s + sl > buf + len)
                return 0;
            for (size_t j = 0; j < sl; j++)
                sink += (uint8_t)s[j];
        }
        if (bonsai_gguf_get_array(g, key, &et, &n, &d) == BONSAI_OK && et == BONSAI_GGUF_STRING) {
            for (uint64_t j = 0; j < n; j++) {
                if (bonsai_gguf_get_array_str(g, key, j, &s, &sl) != BONSAI_OK ||
                    (const uint8_t *)s < buf || (const uint8_t *)s + sl > buf + len)
                    return 0;
                for (size_t k = 0; k < sl; k++)
                    sink += (uint8_t)s[k];
            }
        }
    }
    for (size_t i = 0; i < bonsai_gguf_n_tensors(g); i++) {
        const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (!t->name || bonsai_gguf_find_tensor(g, t->name) != t || t->bytes == 0 || p < buf ||
            t->bytes > len || p > buf + len - t->bytes)
            return 0;
        sink += p[0] + p[t->bytes - 1];
    }
    (void)sink;
    return 1;
}

static void mutate(uint8_t *p, size_t *len, size_t hot)
{
    int ops = 1 + (int)(rng_u64() % 3);
    for (int k = 0; k < ops && *len > 0; k++) {
        /* most damage lands in the header, metadata and tensor infos */
        size_t region = rng_u64() % 5 ? (hot < *len ? hot : *len) : *len;
        size_t at = (size_t)(rng_u64() % region);
        switch (rng_u64() % 5) {
        case 0: /* flip bits */
            p[at] ^= (uint8_t)(1 + rng_u64() % 255);
            break;
        case 1: { /* a huge or edge count/length over 8 bytes */
            static const uint64_t edges[] = {UINT64_MAX, (uint64_t)1 << 63, (uint64_t)1 << 32,
                                             0xffffffffu, 0, 1, 65, (uint64_t)1 << 40};
            uint64_t v = rng_u64() % 3 ? edges[rng_u64() % 8] : rng_u64();
            for (size_t j = 0; j < 8 && at + j < *len; j++)
                p[at + j] = (uint8_t)(v >> (8 * j));
            break;
        }
        case 2: { /* a type id over 4 bytes */
            static const uint32_t ids[] = {0, 1, 2, 8, 9, 12, 13, 30, 41, 42, 99, 142, 143};
            uint32_t v = ids[rng_u64() % 13];
            for (size_t j = 0; j < 4 && at + j < *len; j++)
                p[at + j] = (uint8_t)(v >> (8 * j));
            break;
        }
        case 3: /* truncate */
            *len = at;
            break;
        default: /* small count bump */
            p[at] = (uint8_t)(p[at] + 1);
            break;
        }
    }
}

static void run_base(const char *name, const bb *base, size_t hot)
{
    int bad_status = 0, bad_walk = 0, bad_msg = 0;
    for (int m = 0; m < MUTATIONS_PER_BASE; m++) {
        size_t len = base->len;
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, base->p, len);
        mutate(copy, &len, hot);
        /* the exact-size block ASan watches */
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, copy, len);
        free(copy);
        bonsai_gguf *g = (bonsai_gguf *)&len;
        bonsai_gguf_params p = bonsai_gguf_default_params();
        p.q2_variant = (bonsai_q2_variant)(rng_u64() % 4);
        bonsai_status s = bonsai_gguf_open_memory(exact, len, &p, &g);
        outcomes[s < BONSAI_STATUS_COUNT ? s : 0]++;
        if (s == BONSAI_OK) {
            bad_walk += !walk(g, exact, len);
            bonsai_gguf_close(g);
        } else {
            bad_status += !(s == BONSAI_ERR_FORMAT || s == BONSAI_ERR_UNSUPPORTED ||
                            s == BONSAI_ERR_AMBIGUOUS) || g != NULL;
            bad_msg += bonsai_last_error()[0] == '\0';
            if (bad_status == 1 && !(s == BONSAI_ERR_FORMAT || s == BONSAI_ERR_UNSUPPORTED ||
                                     s == BONSAI_ERR_AMBIGUOUS))
                fprintf(stderr, "%s mutation %d: %s %s\n", name, m, bonsai_status_name(s),
                        bonsai_last_error());
        }
        free(exact);
    }
    CHECK(bad_status == 0, "%s: %d mutations failed with an unexpected status", name, bad_status);
    CHECK(bad_walk == 0, "%s: %d opened mutations had data outside the buffer", name, bad_walk);
    CHECK(bad_msg == 0, "%s: %d refusals without a message", name, bad_msg);
}

/* A few mutations through the file path (mmap) as well. */
static void run_files(const bb *base, size_t hot)
{
    char path[] = "/tmp/bonsai_test_mutation_XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0, "temp file"))
        return;
    close(fd);
    int bad = 0;
    for (int m = 0; m < 100; m++) {
        size_t len = base->len;
        uint8_t *copy = malloc(len);
        memcpy(copy, base->p, len);
        mutate(copy, &len, hot);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(copy, 1, len, f);
            fclose(f);
        }
        bonsai_gguf *g = NULL;
        bonsai_status s = bonsai_gguf_open(path, NULL, &g);
        if (s == BONSAI_OK) {
            const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(g, 0);
            volatile uint8_t x = t ? ((const uint8_t *)t->data)[t->bytes - 1] : 0;
            (void)x;
            bonsai_gguf_close(g);
        } else {
            bad += !(s == BONSAI_ERR_FORMAT || s == BONSAI_ERR_UNSUPPORTED ||
                     s == BONSAI_ERR_AMBIGUOUS);
        }
        free(copy);
    }
    CHECK(bad == 0, "file path: %d mutations with an unexpected status", bad);
    unlink(path);
}

int main(void)
{
    harness_init();
    bb small = {0};
    size_t small_hot;
    build_small(&small, &small_hot);
    bonsai_gguf *g = NULL;
    CHECK(bonsai_gguf_open_memory(small.p, small.len, NULL, &g) == BONSAI_OK,
          "small base opens: %s", bonsai_last_error());
    bonsai_gguf_close(g);
    run_base("small", &small, small_hot);
    run_files(&small, small_hot);

    char path[] = "/tmp/bonsai_test_mutation_synth_XXXXXX";
    int fd = mkstemp(path);
    bb synth = {0};
    bonsai_synth_params sp = bonsai_synth_default_params();
    sp.seed = rng_u64();
    if (fd >= 0 && (close(fd), bonsai_synth_write(path, &sp) == BONSAI_OK) &&
        read_file(path, &synth)) {
        g = NULL;
        CHECK(bonsai_gguf_open_memory(synth.p, synth.len, NULL, &g) == BONSAI_OK,
              "synth base opens");
        /* the hot region: everything before the first tensor's data */
        size_t hot = (size_t)((const uint8_t *)bonsai_gguf_tensor_at(g, 0)->data - synth.p);
        bonsai_gguf_close(g);
        run_base("synth tiny", &synth, hot);
    } else {
        CHECK(0, "synth base: %s", bonsai_last_error());
    }
    unlink(path);
    fprintf(stderr, "outcomes:");
    for (int s = 0; s < BONSAI_STATUS_COUNT; s++)
        if (outcomes[s])
            fprintf(stderr, " %s %d", bonsai_status_name((bonsai_status)s), outcomes[s]);
    fprintf(stderr, "\n");
    bb_free(&small);
    bb_free(&synth);
    return harness_finish();
}

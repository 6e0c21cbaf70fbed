/* GGUF writer -> reader round trip: every scalar type, strings (empty and
 * UTF-8), arrays of every fixed-size type, arrays of strings, empty
 * arrays, nested arrays (given encoded), tensors of every type the writer
 * is used for with random bytes, padding to the alignment; and the writer's
 * refusals (duplicates, reserved key, sizes that do not match, calls out
 * of order), each leaving no file behind. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bonsai/bonsai.h"
#include "gguf/gguf_writer.h"
#include "harness.h"
#include "gguf_test_file.h"

static char dir[64], path[128];

static int dir_is_empty(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n == 0;
}

typedef struct scalar_case {
    const char *key;
    bonsai_gguf_type type;
    uint8_t bytes[8];
} scalar_case;

static void test_round_trip(uint32_t alignment)
{
    /* scalars: random payloads of each type's size */
    scalar_case sc[] = {
        {"s.u8", BONSAI_GGUF_UINT8, {0}},   {"s.i8", BONSAI_GGUF_INT8, {0}},
        {"s.u16", BONSAI_GGUF_UINT16, {0}}, {"s.i16", BONSAI_GGUF_INT16, {0}},
        {"s.u32", BONSAI_GGUF_UINT32, {0}}, {"s.i32", BONSAI_GGUF_INT32, {0}},
        {"s.f32", BONSAI_GGUF_FLOAT32, {0}}, {"s.bool", BONSAI_GGUF_BOOL, {0}},
        {"s.u64", BONSAI_GGUF_UINT64, {0}}, {"s.i64", BONSAI_GGUF_INT64, {0}},
        {"s.f64", BONSAI_GGUF_FLOAT64, {0}},
    };
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    size_t n_sc = sizeof sc / sizeof sc[0];
    for (size_t i = 0; i < n_sc; i++)
        for (size_t j = 0; j < 8; j++)
            sc[i].bytes[j] = (uint8_t)rng_u64();
    sc[7].bytes[0] = 1; /* bool */
    /* arrays of each fixed-size type: 0..40 random elements */
    static const bonsai_gguf_type arr_types[] = {
        BONSAI_GGUF_UINT8, BONSAI_GGUF_INT8, BONSAI_GGUF_UINT16, BONSAI_GGUF_INT16,
        BONSAI_GGUF_UINT32, BONSAI_GGUF_INT32, BONSAI_GGUF_FLOAT32, BONSAI_GGUF_BOOL,
        BONSAI_GGUF_UINT64, BONSAI_GGUF_INT64, BONSAI_GGUF_FLOAT64};
    size_t n_arr = sizeof arr_types / sizeof arr_types[0];
    uint8_t arr_data[11][40 * 8];
    uint64_t arr_count[11];
    for (size_t i = 0; i < n_arr; i++) {
        arr_count[i] = i == 3 ? 0 : rng_u64() % 41;
        for (size_t j = 0; j < sizeof arr_data[i]; j++)
            arr_data[i][j] = arr_types[i] == BONSAI_GGUF_BOOL ? (uint8_t)(rng_u64() & 1)
                                                               : (uint8_t)rng_u64();
    }
    const char *strs[] = {"", "plain", "\xc4\xa0space", "tab\tand\nnewline", "last"};
    /* nested: [[u8 1, 2], [u8], [u8 3]] encoded by hand */
    bb nested = {0};
    bb_u32(&nested, T_ARR);
    bb_u64(&nested, 3);
    bb_u32(&nested, T_U8); bb_u64(&nested, 2); bb_u8(&nested, 1); bb_u8(&nested, 2);
    bb_u32(&nested, T_U8); bb_u64(&nested, 0);
    bb_u32(&nested, T_U8); bb_u64(&nested, 1); bb_u8(&nested, 3);
    /* tensors: f32 [8], f16 [16, 3], q1_0 [256, 2], pq2_0 [128, 3], bf16 [4, 2, 2, 2] */
    static const struct {
        const char *name;
        uint32_t id, n_dims;
        uint64_t ne[4];
        uint64_t bytes;
        bonsai_type type;
    } tens[] = {
        {"t.f32", 0, 1, {8, 1, 1, 1}, 32, BONSAI_TYPE_F32},
        {"t.f16", 1, 2, {16, 3, 1, 1}, 96, BONSAI_TYPE_F16},
        {"t.q1", 41, 2, {256, 2, 1, 1}, 72, BONSAI_TYPE_Q1_0_G128},
        {"t.pq2", 142, 2, {128, 3, 1, 1}, 102, BONSAI_TYPE_PQ2_0},
        {"t.bf16", 30, 4, {4, 2, 2, 2}, 64, BONSAI_TYPE_BF16},
    };
    size_t n_t = sizeof tens / sizeof tens[0];
    uint8_t data[5][128];
    for (size_t i = 0; i < n_t; i++)
        for (size_t j = 0; j < 128; j++)
            data[i][j] = (uint8_t)rng_u64();

    bonsai_gguf_writer *w = NULL;
    bonsai_status s = bonsai_gguf_writer_create(path, alignment, &w);
    if (!CHECK(s == BONSAI_OK, "create: %s", bonsai_last_error()))
        return;
    for (size_t i = 0; i < n_sc; i++)
        s |= bonsai_gguf_writer_add_scalar(w, sc[i].key, sc[i].type, sc[i].bytes);
    s |= bonsai_gguf_writer_add_str(w, "s.str", "hello \xc4\xa0 world");
    for (size_t i = 0; i < n_arr; i++) {
        char key[32];
        snprintf(key, sizeof key, "a.%zu", i);
        s |= bonsai_gguf_writer_add_array(w, key, arr_types[i], arr_count[i], arr_data[i]);
    }
    s |= bonsai_gguf_writer_add_array_str(w, "a.str", 5, strs);
    s |= bonsai_gguf_writer_add_array_str(w, "a.str_empty", 0, strs);
    s |= bonsai_gguf_writer_add_encoded(w, "a.nested", BONSAI_GGUF_ARRAY, nested.p, nested.len);
    for (size_t i = 0; i < n_t; i++)
        s |= bonsai_gguf_writer_add_tensor(w, tens[i].name, tens[i].id, tens[i].n_dims,
                                           tens[i].ne, tens[i].bytes);
    /* data in uneven pieces, crossing tensor boundaries */
    uint8_t all[1024];
    size_t total = 0;
    for (size_t i = 0; i < n_t; i++) {
        memcpy(all + total, data[i], (size_t)tens[i].bytes);
        total += (size_t)tens[i].bytes;
    }
    for (size_t at = 0; at < total && s == BONSAI_OK;) {
        size_t piece = 1 + rng_u64() % 50;
        if (piece > total - at)
            piece = total - at;
        s = bonsai_gguf_writer_write(w, all + at, piece);
        at += piece;
    }
    if (!CHECK(s == BONSAI_OK, "writes: %s", bonsai_last_error())) {
        bonsai_gguf_writer_abort(w);
        return;
    }
    s = bonsai_gguf_writer_finish(w);
    if (!CHECK(s == BONSAI_OK, "finish: %s", bonsai_last_error()))
        return;

    bonsai_gguf *g = NULL;
    s = bonsai_gguf_open(path, NULL, &g);
    if (!CHECK(s == BONSAI_OK, "read back (alignment %u): %s", alignment, bonsai_last_error()))
        return;
    CHECK(bonsai_gguf_version(g) == 3, "version 3");
    size_t want_kv = n_sc + 1 + n_arr + 3 + 1;
    CHECK(bonsai_gguf_n_kv(g) == want_kv, "%zu keys, want %zu", bonsai_gguf_n_kv(g), want_kv);
    /* scalars: same bytes back, via the array-free path: compare through getters */
    for (size_t i = 0; i < n_sc; i++) {
        long k = bonsai_gguf_find_key(g, sc[i].key);
        CHECK(k >= 0 && bonsai_gguf_kv_type(g, (size_t)k) == sc[i].type, "%s type", sc[i].key);
    }
    uint64_t u;
    uint8_t b8[8];
    memcpy(b8, sc[8].bytes, 8);
    uint64_t want64;
    memcpy(&want64, b8, 8);
    CHECK(bonsai_gguf_get_u64(g, "s.u64", &u) == BONSAI_OK && u == want64, "u64 value");
    uint32_t want32, got32;
    memcpy(&want32, sc[4].bytes, 4);
    CHECK(bonsai_gguf_get_u32(g, "s.u32", &got32) == BONSAI_OK && got32 == want32, "u32 value");
    float wf, gf;
    memcpy(&wf, sc[6].bytes, 4);
    CHECK(bonsai_gguf_get_f32(g, "s.f32", &gf) == BONSAI_OK &&
              memcmp(&wf, &gf, 4) == 0, "f32 bits");
    double wd;
    memcpy(&wd, sc[10].bytes, 8);
    CHECK(bonsai_gguf_get_f32(g, "s.f64", &gf) == BONSAI_OK &&
              (isnan(wd) ? isnan(gf) : gf == (float)wd), "f64 value");
    int bv;
    CHECK(bonsai_gguf_get_bool(g, "s.bool", &bv) == BONSAI_OK && bv == 1, "bool value");
    const char *str;
    size_t len;
    CHECK(bonsai_gguf_get_str(g, "s.str", &str, &len) == BONSAI_OK &&
              len == strlen("hello \xc4\xa0 world") && memcmp(str, "hello \xc4\xa0 world", len) == 0,
          "string value");
    for (size_t i = 0; i < n_arr; i++) {
        char key[32];
        snprintf(key, sizeof key, "a.%zu", i);
        bonsai_gguf_type et;
        uint64_t n;
        const void *d;
        s = bonsai_gguf_get_array(g, key, &et, &n, &d);
        size_t esz = sizes[arr_types[i]];
        CHECK(s == BONSAI_OK && et == arr_types[i] && n == arr_count[i] &&
                  (n == 0 || memcmp(d, arr_data[i], (size_t)n * esz) == 0),
              "array %s of %llu", key, (unsigned long long)arr_count[i]);
    }
    for (uint64_t i = 0; i < 5; i++)
        CHECK(bonsai_gguf_get_array_str(g, "a.str", i, &str, &len) == BONSAI_OK &&
                  len == strlen(strs[i]) && memcmp(str, strs[i], len) == 0, "a.str[%llu]",
              (unsigned long long)i);
    bonsai_gguf_type et;
    uint64_t n;
    const void *d;
    CHECK(bonsai_gguf_get_array(g, "a.str_empty", &et, &n, &d) == BONSAI_OK &&
              et == BONSAI_GGUF_STRING && n == 0, "empty string array");
    CHECK(bonsai_gguf_get_array(g, "a.nested", &et, &n, &d) == BONSAI_OK &&
              et == BONSAI_GGUF_ARRAY && n == 3 && memcmp(d, nested.p + 12, nested.len - 12) == 0,
          "nested array");
    uint32_t al;
    CHECK(bonsai_gguf_get_u32(g, "general.alignment", &al) == BONSAI_OK && al == alignment,
          "general.alignment written: %u", al);
    CHECK(bonsai_gguf_n_tensors(g) == n_t, "%zu tensors", bonsai_gguf_n_tensors(g));
    const uint8_t *first = NULL;
    for (size_t i = 0; i < n_t; i++) {
        const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(g, i);
        if (!CHECK(t && strcmp(t->name, tens[i].name) == 0, "tensor %zu name", i))
            continue;
        if (!first)
            first = t->data;
        CHECK(t->type == tens[i].type && t->n_dims == tens[i].n_dims &&
                  memcmp(t->ne, tens[i].ne, sizeof t->ne) == 0 && t->bytes == tens[i].bytes,
              "%s: type/shape/bytes", t->name);
        CHECK(memcmp(t->data, data[i], (size_t)tens[i].bytes) == 0, "%s: data", t->name);
        CHECK((size_t)((const uint8_t *)t->data - first) % alignment == 0 &&
                  (uintptr_t)t->data % alignment == 0, "%s: aligned to %u", t->name, alignment);
    }
    bonsai_gguf_close(g);
    unlink(path);
    bb_free(&nested);
}

static void test_refusals(void)
{
    bonsai_gguf_writer *w = NULL;
    uint64_t ne[2] = {8, 1};
    float f[8] = {0};
    CHECK(bonsai_gguf_writer_create(path, 24, &w) == BONSAI_ERR_INVALID_ARG && !w,
          "alignment 24 refused");
    CHECK(bonsai_gguf_writer_create(NULL, 32, &w) == BONSAI_ERR_NULL_ARG, "NULL path");
    CHECK(bonsai_gguf_writer_create("/nonexistent-dir/x.gguf", 32, &w) == BONSAI_ERR_IO,
          "unwritable directory: IO");

    /* duplicates and reserved keys are refused without spoiling the writer */
    CHECK(bonsai_gguf_writer_create(path, 32, &w) == BONSAI_OK, "create");
    CHECK(bonsai_gguf_writer_add_u32(w, "k", 1) == BONSAI_OK, "first k");
    CHECK(bonsai_gguf_writer_add_u32(w, "k", 2) == BONSAI_ERR_INVALID_ARG &&
              strstr(bonsai_last_error(), "key k added twice"), "duplicate key: %s",
          bonsai_last_error());
    CHECK(bonsai_gguf_writer_add_u32(w, "general.alignment", 64) == BONSAI_ERR_INVALID_ARG,
          "general.alignment is the writer's");
    CHECK(bonsai_gguf_writer_add_u32(w, "", 1) == BONSAI_ERR_INVALID_ARG, "empty key");
    CHECK(bonsai_gguf_writer_add_scalar(w, "s", BONSAI_GGUF_STRING, "x") ==
              BONSAI_ERR_INVALID_ARG, "string via add_scalar");
    CHECK(bonsai_gguf_writer_add_array(w, "a", BONSAI_GGUF_STRING, 1, "x") ==
              BONSAI_ERR_INVALID_ARG, "string array via add_array");
    CHECK(bonsai_gguf_writer_add_tensor(w, "t", 0, 1, ne, 32) == BONSAI_OK, "tensor t");
    CHECK(bonsai_gguf_writer_add_tensor(w, "t", 0, 1, ne, 32) == BONSAI_ERR_INVALID_ARG &&
              strstr(bonsai_last_error(), "tensor t declared twice"), "duplicate tensor");
    CHECK(bonsai_gguf_writer_add_tensor(w, "u", 0, 5, ne, 32) == BONSAI_ERR_INVALID_ARG,
          "5 dims refused");
    CHECK(bonsai_gguf_writer_write(w, f, 16) == BONSAI_OK, "half of t");
    CHECK(bonsai_gguf_writer_add_u32(w, "late", 1) == BONSAI_ERR_INVALID_ARG,
          "key after data refused");
    CHECK(bonsai_gguf_writer_finish(w) == BONSAI_ERR_INVALID_ARG &&
              strstr(bonsai_last_error(), "tensor t has 16 of 32 bytes"),
          "finish with missing bytes: %s", bonsai_last_error());
    CHECK(dir_is_empty(), "nothing left after a refused finish");

    CHECK(bonsai_gguf_writer_create(path, 32, &w) == BONSAI_OK, "create again");
    CHECK(bonsai_gguf_writer_add_tensor(w, "t", 0, 1, ne, 32) == BONSAI_OK, "tensor t");
    CHECK(bonsai_gguf_writer_write(w, f, 32) == BONSAI_OK, "all of t");
    CHECK(bonsai_gguf_writer_write(w, f, 4) == BONSAI_ERR_INVALID_ARG &&
              strstr(bonsai_last_error(), "past the last declared tensor"), "extra bytes");
    CHECK(bonsai_gguf_writer_finish(w) == BONSAI_ERR_INVALID_ARG, "finish after a failure");
    CHECK(dir_is_empty(), "nothing left after a failed writer");

    CHECK(bonsai_gguf_writer_create(path, 32, &w) == BONSAI_OK, "create to abort");
    CHECK(bonsai_gguf_writer_add_u32(w, "k", 1) == BONSAI_OK, "k");
    bonsai_gguf_writer_abort(w);
    CHECK(dir_is_empty(), "nothing left after abort");
    bonsai_gguf_writer_abort(NULL);
}

int main(void)
{
    harness_init();
    snprintf(dir, sizeof dir, "/tmp/bonsai_test_writer_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/w.gguf", dir);
    test_round_trip(32);
    test_round_trip(64);
    test_round_trip(1);
    test_refusals();
    rmdir(dir);
    return harness_finish();
}

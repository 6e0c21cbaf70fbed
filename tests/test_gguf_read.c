/* GGUF reader on files built byte by byte here (tests/gguf_test_file.h),
 * for versions 2 and 3, through both the file (mmap) and memory entry
 * points: every metadata type (all scalars, strings, arrays of numbers and
 * strings, empty arrays, nested arrays), the typed getters' conversions and
 * refusals, key order and lookup, tensor infos (every type bonsai reads,
 * 1..4 dims) and data pointers into the file, general.alignment, progress. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bonsai/bonsai.h"
#include "harness.h"
#include "gguf_test_file.h"

/* The metadata of the reference file, in file order. */
static const char *const keys[] = {
    "k.u8", "k.i8", "k.u16", "k.i16", "k.u32", "k.i32", "k.f32", "k.bool", "k.str",
    "k.u64", "k.i64", "k.f64", "k.arr_u16", "k.arr_str", "k.arr_empty", "k.nested",
    "k.nested_str", "k.str_empty", "general.alignment",
};
static const bonsai_gguf_type key_types[] = {
    BONSAI_GGUF_UINT8, BONSAI_GGUF_INT8, BONSAI_GGUF_UINT16, BONSAI_GGUF_INT16,
    BONSAI_GGUF_UINT32, BONSAI_GGUF_INT32, BONSAI_GGUF_FLOAT32, BONSAI_GGUF_BOOL,
    BONSAI_GGUF_STRING, BONSAI_GGUF_UINT64, BONSAI_GGUF_INT64, BONSAI_GGUF_FLOAT64,
    BONSAI_GGUF_ARRAY, BONSAI_GGUF_ARRAY, BONSAI_GGUF_ARRAY, BONSAI_GGUF_ARRAY,
    BONSAI_GGUF_ARRAY, BONSAI_GGUF_STRING, BONSAI_GGUF_UINT32,
};
#define N_KEYS (sizeof keys / sizeof keys[0])
static const uint16_t arr_u16[5] = {1, 2, 65535, 0, 7};
static const char *const arr_str[4] = {"alpha", "", "\xc4\xa0gamma", "d"};

static void build_reference(tf_spec *s, uint32_t version, uint32_t alignment)
{
    tf_init(s, version);
    s->alignment = alignment;
    bb *kv = &s->kv;
    kv_head(kv, keys[0], T_U8);  bb_u8(kv, 200);
    kv_head(kv, keys[1], T_I8);  bb_u8(kv, (uint8_t)-5);
    kv_head(kv, keys[2], T_U16); bb_u16(kv, 60000);
    kv_head(kv, keys[3], T_I16); bb_u16(kv, (uint16_t)-30000);
    kv_head(kv, keys[4], T_U32); bb_u32(kv, 4000000000u);
    kv_head(kv, keys[5], T_I32); bb_u32(kv, (uint32_t)-7);
    kv_head(kv, keys[6], T_F32); bb_f32(kv, 1.5f);
    kv_head(kv, keys[7], T_BOOL); bb_u8(kv, 1);
    kv_str(kv, keys[8], "hello gguf");
    kv_head(kv, keys[9], T_U64); bb_u64(kv, 0x123456789abcull);
    kv_head(kv, keys[10], T_I64); bb_u64(kv, (uint64_t)-9);
    kv_head(kv, keys[11], T_F64); bb_f64(kv, 0.25);
    kv_head(kv, keys[12], T_ARR); bb_u32(kv, T_U16); bb_u64(kv, 5);
    for (int i = 0; i < 5; i++)
        bb_u16(kv, arr_u16[i]);
    kv_head(kv, keys[13], T_ARR); bb_u32(kv, T_STR); bb_u64(kv, 4);
    for (int i = 0; i < 4; i++)
        bb_str(kv, arr_str[i]);
    kv_head(kv, keys[14], T_ARR); bb_u32(kv, T_F32); bb_u64(kv, 0);
    /* [[1, -2, 3], []] of int32 */
    kv_head(kv, keys[15], T_ARR); bb_u32(kv, T_ARR); bb_u64(kv, 2);
    bb_u32(kv, T_I32); bb_u64(kv, 3); bb_u32(kv, 1); bb_u32(kv, (uint32_t)-2); bb_u32(kv, 3);
    bb_u32(kv, T_I32); bb_u64(kv, 0);
    /* [["x", "yz"]] */
    kv_head(kv, keys[16], T_ARR); bb_u32(kv, T_ARR); bb_u64(kv, 1);
    bb_u32(kv, T_STR); bb_u64(kv, 2); bb_str(kv, "x"); bb_str(kv, "yz");
    kv_str(kv, keys[17], "");
    kv_u32(kv, keys[18], alignment);
    s->n_kv = N_KEYS;
    tf_add(s, "t.f32", 0, 1, 5, 0, 20);
    tf_add(s, "t.f16", 1, 2, 4, 3, 24);
    tf_add(s, "t.bf16", 30, 3, 2, 2, 2 * 2 * 2 * 2)->ne[2] = 2;
    tf_add(s, "t.q1", 41, 2, 256, 2, 2 * 2 * 18);
    tf_tensor *t = tf_add(s, "t.pq2", 142, 4, 128, 1, 34 * 6);
    t->ne[2] = 2;
    t->ne[3] = 3;
}

static int str_is(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static void check_scalars(const bonsai_gguf *g)
{
    uint64_t u = 0;
    uint32_t u32 = 0;
    float f = 0;
    int b = -1;
    const char *s;
    size_t len;
    CHECK(bonsai_gguf_get_u64(g, "k.u8", &u) == BONSAI_OK && u == 200, "u8 -> u64: %llu",
          (unsigned long long)u);
    CHECK(bonsai_gguf_get_u32(g, "k.u16", &u32) == BONSAI_OK && u32 == 60000, "u16 -> u32");
    CHECK(bonsai_gguf_get_u32(g, "k.u32", &u32) == BONSAI_OK && u32 == 4000000000u, "u32");
    CHECK(bonsai_gguf_get_u64(g, "k.u64", &u) == BONSAI_OK && u == 0x123456789abcull, "u64");
    CHECK(bonsai_gguf_get_u32(g, "k.u64", &u32) == BONSAI_ERR_FORMAT &&
              strstr(bonsai_last_error(), "k.u64"), "u64 too big for u32: %s", bonsai_last_error());
    CHECK(bonsai_gguf_get_u64(g, "k.i8", &u) == BONSAI_ERR_FORMAT &&
              strstr(bonsai_last_error(), "negative"), "negative i8 as u64 refused");
    CHECK(bonsai_gguf_get_u64(g, "k.i16", &u) == BONSAI_ERR_FORMAT, "negative i16 refused");
    CHECK(bonsai_gguf_get_u64(g, "k.i32", &u) == BONSAI_ERR_FORMAT, "negative i32 refused");
    CHECK(bonsai_gguf_get_u64(g, "k.i64", &u) == BONSAI_ERR_FORMAT, "negative i64 refused");
    int64_t i64 = 0;
    CHECK(bonsai_gguf_get_i64(g, "k.i8", &i64) == BONSAI_OK && i64 == -5, "i8 -> i64");
    CHECK(bonsai_gguf_get_i64(g, "k.i16", &i64) == BONSAI_OK && i64 == -30000, "i16 -> i64");
    CHECK(bonsai_gguf_get_i64(g, "k.i32", &i64) == BONSAI_OK && i64 == -7, "i32 -> i64");
    CHECK(bonsai_gguf_get_i64(g, "k.i64", &i64) == BONSAI_OK && i64 == -9, "i64");
    CHECK(bonsai_gguf_get_i64(g, "k.u32", &i64) == BONSAI_OK && i64 == 4000000000ll, "u32 -> i64");
    CHECK(bonsai_gguf_get_i64(g, "k.f64", &i64) == BONSAI_ERR_FORMAT, "float as i64 refused");
    CHECK(bonsai_gguf_get_i64(g, "k.absent", &i64) == BONSAI_ERR_NOT_FOUND, "absent i64");
    CHECK(bonsai_gguf_get_f32(g, "k.f32", &f) == BONSAI_OK && f == 1.5f, "f32");
    CHECK(bonsai_gguf_get_f32(g, "k.f64", &f) == BONSAI_OK && f == 0.25f, "f64 -> f32");
    CHECK(bonsai_gguf_get_f32(g, "k.u32", &f) == BONSAI_ERR_FORMAT &&
              strstr(bonsai_last_error(), "uint32"), "int as float refused: %s",
          bonsai_last_error());
    CHECK(bonsai_gguf_get_bool(g, "k.bool", &b) == BONSAI_OK && b == 1, "bool");
    CHECK(bonsai_gguf_get_bool(g, "k.u8", &b) == BONSAI_ERR_FORMAT, "u8 as bool refused");
    CHECK(bonsai_gguf_get_str(g, "k.str", &s, &len) == BONSAI_OK &&
              str_is(s, len, "hello gguf"), "string");
    CHECK(bonsai_gguf_get_str(g, "k.str_empty", &s, &len) == BONSAI_OK && len == 0,
          "empty string");
    CHECK(bonsai_gguf_get_str(g, "k.u8", &s, &len) == BONSAI_ERR_FORMAT, "u8 as string refused");
    CHECK(bonsai_gguf_get_u64(g, "k.str", &u) == BONSAI_ERR_FORMAT, "string as int refused");
    CHECK(bonsai_gguf_get_u64(g, "no.such.key", &u) == BONSAI_ERR_NOT_FOUND &&
              strstr(bonsai_last_error(), "no.such.key"), "absent key: NOT_FOUND");
    CHECK(bonsai_gguf_get_u64(g, "k.u8", NULL) == BONSAI_ERR_NULL_ARG, "NULL out");
    CHECK(bonsai_gguf_get_u64(NULL, "k.u8", &u) == BONSAI_ERR_NULL_ARG, "NULL file");
    CHECK(bonsai_gguf_get_str(g, "k.str", &s, NULL) == BONSAI_ERR_NULL_ARG, "NULL len");
}

static void check_arrays(const bonsai_gguf *g)
{
    bonsai_gguf_type et;
    uint64_t n = 0;
    const void *data = NULL;
    const char *s;
    size_t len;
    CHECK(bonsai_gguf_get_array(g, "k.arr_u16", &et, &n, &data) == BONSAI_OK &&
              et == BONSAI_GGUF_UINT16 && n == 5, "u16 array header");
    int ok = data != NULL;
    for (int i = 0; ok && i < 5; i++) {
        uint16_t v;
        memcpy(&v, (const uint8_t *)data + 2 * i, 2);
        ok &= v == arr_u16[i];
    }
    CHECK(ok, "u16 array values in place");
    CHECK(bonsai_gguf_get_array(g, "k.arr_empty", &et, &n, &data) == BONSAI_OK &&
              et == BONSAI_GGUF_FLOAT32 && n == 0, "empty array");
    CHECK(bonsai_gguf_get_array(g, "k.arr_str", &et, &n, &data) == BONSAI_OK &&
              et == BONSAI_GGUF_STRING && n == 4, "string array header");
    for (uint64_t i = 0; i < 4; i++)
        CHECK(bonsai_gguf_get_array_str(g, "k.arr_str", i, &s, &len) == BONSAI_OK &&
                  str_is(s, len, arr_str[i]), "string array [%llu]", (unsigned long long)i);
    CHECK(bonsai_gguf_get_array_str(g, "k.arr_str", 4, &s, &len) == BONSAI_ERR_INVALID_ARG,
          "string index past the end");
    CHECK(bonsai_gguf_get_array_str(g, "k.arr_u16", 0, &s, &len) == BONSAI_ERR_FORMAT &&
              strstr(bonsai_last_error(), "uint16"), "array_str on a u16 array: %s",
          bonsai_last_error());
    CHECK(bonsai_gguf_get_array(g, "k.u8", &et, &n, &data) == BONSAI_ERR_FORMAT,
          "scalar as array refused");
    /* nested: [[1, -2, 3], []] of int32, raw encoding handed back */
    CHECK(bonsai_gguf_get_array(g, "k.nested", &et, &n, &data) == BONSAI_OK &&
              et == BONSAI_GGUF_ARRAY && n == 2, "nested array header");
    bb want = {0};
    bb_u32(&want, T_I32); bb_u64(&want, 3); bb_u32(&want, 1); bb_u32(&want, (uint32_t)-2);
    bb_u32(&want, 3); bb_u32(&want, T_I32); bb_u64(&want, 0);
    CHECK(data && memcmp(data, want.p, want.len) == 0, "nested array bytes");
    bb_free(&want);
    CHECK(bonsai_gguf_get_array(g, "k.nested_str", &et, &n, &data) == BONSAI_OK &&
              et == BONSAI_GGUF_ARRAY && n == 1, "nested string array header");
}

/* base: where the reader's view of the file starts (the buffer or the
 * mapping); data_start: the data section's file offset. */
static void check_tensors(const bonsai_gguf *g, const tf_spec *spec, const uint8_t *file,
                          size_t file_len, const uint8_t *base, size_t data_start)
{
    static const bonsai_type types[] = {BONSAI_TYPE_F32, BONSAI_TYPE_F16, BONSAI_TYPE_BF16,
                                        BONSAI_TYPE_Q1_0_G128, BONSAI_TYPE_PQ2_0};
    CHECK(bonsai_gguf_n_tensors(g) == spec->n_tensors, "%zu tensors", bonsai_gguf_n_tensors(g));
    for (size_t i = 0; i < spec->n_tensors; i++) {
        const tf_tensor *w = &spec->t[i];
        const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(g, i);
        if (!CHECK(t && bonsai_gguf_find_tensor(g, w->name) == t, "tensor %s", w->name))
            continue;
        CHECK(strcmp(t->name, w->name) == 0 && t->ggml_type == w->type && t->type == types[i] &&
                  t->n_dims == w->n_dims, "%s: name/type/dims", w->name);
        for (uint32_t d = 0; d < 4; d++)
            CHECK(t->ne[d] == (d < w->n_dims ? w->ne[d] : 1), "%s ne[%u] = %llu", w->name, d,
                  (unsigned long long)t->ne[d]);
        CHECK(t->bytes == w->bytes, "%s: %zu bytes, want %llu", w->name, t->bytes,
              (unsigned long long)w->bytes);
        /* data pointer: same bytes as the file at data_start + offset */
        size_t at = (size_t)((const uint8_t *)t->data - base);
        CHECK(at == data_start + w->offset && at + t->bytes <= file_len,
              "%s: data at %zu, want %zu", w->name, at, (size_t)(data_start + w->offset));
        int same = at + t->bytes <= file_len;
        for (uint64_t j = 0; same && j < w->bytes; j++)
            same &= ((const uint8_t *)t->data)[j] == tf_data_byte(i, j) &&
                    file[at + j] == tf_data_byte(i, j);
        CHECK(same, "%s: data bytes", w->name);
    }
    CHECK(data_start % spec->alignment == 0, "data section aligned to %u", spec->alignment);
    CHECK(bonsai_gguf_find_tensor(g, "absent") == NULL, "absent tensor -> NULL");
    CHECK(bonsai_gguf_tensor_at(g, spec->n_tensors) == NULL, "index past the end -> NULL");
}

static void check_file(const bonsai_gguf *g, const tf_spec *spec, const bb *file,
                       const uint8_t *base, size_t data_start)
{
    CHECK(bonsai_gguf_version(g) == spec->version, "version %u", bonsai_gguf_version(g));
    CHECK(bonsai_gguf_n_kv(g) == N_KEYS, "%zu keys", bonsai_gguf_n_kv(g));
    for (size_t i = 0; i < N_KEYS && i < bonsai_gguf_n_kv(g); i++) {
        CHECK(strcmp(bonsai_gguf_kv_key(g, i), keys[i]) == 0 && bonsai_gguf_kv_type(g, i) ==
                  key_types[i] && bonsai_gguf_find_key(g, keys[i]) == (long)i,
              "key %zu: %s", i, keys[i]);
    }
    CHECK(bonsai_gguf_find_key(g, "k.u") == -1 && bonsai_gguf_kv_key(g, N_KEYS) == NULL,
          "absent key -> -1, index past end -> NULL");
    CHECK(bonsai_gguf_q2_variant(g) == BONSAI_Q2_AUTO, "no id 42: variant AUTO");
    check_scalars(g);
    check_arrays(g);
    check_tensors(g, spec, file->p, file->len, base, data_start);
}

static int progress_calls;
static void on_progress(void *user, const char *what, uint64_t done, uint64_t total)
{
    (void)user;
    progress_calls += strcmp(what, "gguf") == 0 && done <= total;
}

static void test_reference(uint32_t version, uint32_t alignment)
{
    tf_spec spec;
    bb file = {0};
    build_reference(&spec, version, alignment);
    size_t data_start = tf_build(&spec, &file);
    /* memory */
    bonsai_gguf *g = NULL;
    bonsai_status s = bonsai_gguf_open_memory(file.p, file.len, NULL, &g);
    if (CHECK(s == BONSAI_OK, "v%u align %u (memory): %s %s", version, alignment,
              bonsai_status_name(s), bonsai_last_error()))
        check_file(g, &spec, &file, file.p, data_start);
    bonsai_gguf_close(g);
    /* file, through mmap */
    char path[] = "/tmp/bonsai_test_gguf_read_XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0 && write(fd, file.p, file.len) == (ssize_t)file.len, "temp file"))
        return;
    close(fd);
    bonsai_gguf_params p = bonsai_gguf_default_params();
    p.progress = on_progress;
    progress_calls = 0;
    g = NULL;
    s = bonsai_gguf_open(path, &p, &g);
    if (CHECK(s == BONSAI_OK, "v%u align %u (file): %s %s", version, alignment,
              bonsai_status_name(s), bonsai_last_error())) {
        /* the mapping's start, from the first tensor's known file position */
        const uint8_t *base = (const uint8_t *)bonsai_gguf_tensor_at(g, 0)->data -
                              (data_start + spec.t[0].offset);
        check_file(g, &spec, &file, base, data_start);
        CHECK(progress_calls >= 2, "progress reported (%d calls)", progress_calls);
    }
    bonsai_gguf_close(g);
    unlink(path);
    bb_free(&file);
    bb_free(&spec.kv);
}

int main(void)
{
    harness_init();
    test_reference(3, 32);
    test_reference(2, 32);
    test_reference(3, 64);
    test_reference(2, 8);
    return harness_finish();
}

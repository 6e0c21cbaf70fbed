/* Every refusal of the GGUF reader, one bent field each, on a small valid
 * file built byte by byte here: its status and a message naming the key or
 * tensor with the expected and actual values. Also the argument and file
 * errors of bonsai_gguf_open. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bonsai/bonsai.h"
#include "harness.h"
#include "gguf_test_file.h"

/* The valid base: two keys and three tensors (q1_0 [256, 2], f32 [8],
 * f16 [16, 2]). A case adds its keys after these. */
static void base_spec(tf_spec *s)
{
    tf_init(s, 3);
    kv_str(&s->kv, "general.architecture", "qwen3");
    kv_u32(&s->kv, "x.count", 7);
    s->n_kv = 2;
    tf_add(s, "a.weight", 41, 2, 256, 2, 72);
    tf_add(s, "b.weight", 0, 1, 8, 0, 32);
    tf_add(s, "c.weight", 1, 2, 16, 2, 64);
}

/* ---- bends of the spec ---- */
static void version_1(tf_spec *s) { s->version = 1; }
static void version_4(tf_spec *s) { s->version = 4; }
static void version_big_endian(tf_spec *s) { s->version = 0x03000000u; }
static void huge_n_kv(tf_spec *s) { s->n_kv_field = (int64_t)1 << 40; }
static void huge_n_tensors(tf_spec *s) { s->n_tensors_field = (int64_t)1 << 40; }
static void more_kv_than_present(tf_spec *s) { s->n_kv_field = 3; }
static void key_empty(tf_spec *s) { kv_u32(&s->kv, "", 1); s->n_kv++; }
static void key_with_nul(tf_spec *s)
{
    bb_u64(&s->kv, 3);
    bb_bytes(&s->kv, "a\0b", 3);
    bb_u32(&s->kv, T_U8);
    bb_u8(&s->kv, 1);
    s->n_kv++;
}
static void key_huge_length(tf_spec *s)
{
    bb_u64(&s->kv, (uint64_t)1 << 50);
    bb_bytes(&s->kv, "abc", 3);
    s->n_kv++;
}
static void key_past_end(tf_spec *s)
{
    bb_u64(&s->kv, 60000);
    bb_bytes(&s->kv, "abc", 3);
    s->n_kv++;
}
static void value_type_13(tf_spec *s) { kv_head(&s->kv, "bad.type", 13); bb_u32(&s->kv, 0); s->n_kv++; }
static void string_past_end(tf_spec *s)
{
    kv_head(&s->kv, "long.string", T_STR);
    bb_u64(&s->kv, (uint64_t)1 << 40);
    bb_bytes(&s->kv, "xy", 2);
    s->n_kv++;
}
static void array_huge_count(tf_spec *s)
{
    kv_head(&s->kv, "big.array", T_ARR);
    bb_u32(&s->kv, T_U32);
    bb_u64(&s->kv, (uint64_t)1 << 62);
    s->n_kv++;
}
static void array_huge_string_count(tf_spec *s)
{
    kv_head(&s->kv, "big.strings", T_ARR);
    bb_u32(&s->kv, T_STR);
    bb_u64(&s->kv, UINT64_MAX);
    s->n_kv++;
}
static void array_bad_elem_type(tf_spec *s)
{
    kv_head(&s->kv, "odd.array", T_ARR);
    bb_u32(&s->kv, 99);
    bb_u64(&s->kv, 1);
    s->n_kv++;
}
static void array_too_deep(tf_spec *s)
{
    kv_head(&s->kv, "deep.array", T_ARR);
    for (int i = 0; i < 9; i++) {
        bb_u32(&s->kv, T_ARR);
        bb_u64(&s->kv, 1);
    }
    bb_u32(&s->kv, T_U8);
    bb_u64(&s->kv, 0);
    s->n_kv++;
}
static void duplicate_key(tf_spec *s) { kv_u32(&s->kv, "x.count", 8); s->n_kv++; }
static void alignment_u64(tf_spec *s)
{
    kv_head(&s->kv, "general.alignment", T_U64);
    bb_u64(&s->kv, 32);
    s->n_kv++;
}
static void alignment_24(tf_spec *s) { kv_u32(&s->kv, "general.alignment", 24); s->n_kv++; }
static void alignment_0(tf_spec *s) { kv_u32(&s->kv, "general.alignment", 0); s->n_kv++; }
static void name_empty(tf_spec *s) { s->t[1].name = ""; }
static void name_65(tf_spec *s)
{
    s->t[1].name = "n2345678901234567890123456789012345678901234567890123456789012345";
}
static void name_duplicate(tf_spec *s) { s->t[2].name = "a.weight"; }
static void dims_0(tf_spec *s) { s->t[1].n_dims = 0; }
static void dims_5(tf_spec *s) { s->t[1].n_dims = 5; }
static void dim_zero(tf_spec *s) { s->t[2].ne[1] = 0; }
static void dims_overflow(tf_spec *s)
{
    s->t[2].n_dims = 3;
    s->t[2].ne[1] = (uint64_t)1 << 40;
    s->t[2].ne[2] = (uint64_t)1 << 40;
}
static void dim_above_int64(tf_spec *s) { s->t[1].ne[0] = (uint64_t)1 << 63; }
static void type_unknown(tf_spec *s) { s->t[1].type = 77; }
static void type_q4_0(tf_spec *s) { s->t[1].type = 2; }
static void type_ptq1(tf_spec *s) { s->t[1].type = 143; }
static void q1_not_multiple(tf_spec *s) { s->t[0].ne[0] = 100; }
static void offset_misaligned(tf_spec *s) { s->t[1].offset += 4; }
static void offset_past_end(tf_spec *s) { s->t[2].offset_field = 1 << 20; }
static void offset_same(tf_spec *s) { s->t[2].offset = s->t[1].offset; s->t[2].bytes = 0; }
static void size_disagrees(tf_spec *s) { s->t[0].ne[1] = 4; }
static void last_past_file_end(tf_spec *s) { s->t[2].ne[1] = 3; }
static void data_start_past_end(tf_spec *s)
{
    for (size_t i = 0; i < s->n_tensors; i++)
        s->t[i].bytes = 0;
}

/* ---- bends of the built bytes ---- */
static void bad_magic(bb *b) { b->p[0] = 'X'; }
static void short_file(bb *b) { b->len = 20; }
static void truncate_infos(bb *b) { b->len = 150; }

typedef struct refusal {
    const char *what;
    void (*bend)(tf_spec *);
    void (*bend_bytes)(bb *);
    bonsai_status status;
    const char *msg1, *msg2;
} refusal;

static const refusal cases[] = {
    {"bad magic", NULL, bad_magic, BONSAI_ERR_FORMAT, "not a GGUF file", "47 47 55 46"},
    {"short file", NULL, short_file, BONSAI_ERR_FORMAT, "20 bytes", "needs 24"},
    {"version 1", version_1, NULL, BONSAI_ERR_UNSUPPORTED, "version 1", "2 or 3"},
    {"version 4", version_4, NULL, BONSAI_ERR_FORMAT, "version 4", "expected 2 or 3"},
    {"big-endian", version_big_endian, NULL, BONSAI_ERR_FORMAT, "big-endian", "0x03000000"},
    {"huge n_kv", huge_n_kv, NULL, BONSAI_ERR_FORMAT, "1099511627776 metadata entries",
     "at most"},
    {"huge n_tensors", huge_n_tensors, NULL, BONSAI_ERR_FORMAT, "1099511627776 tensors",
     "at most"},
    {"n_kv beyond entries", more_kv_than_present, NULL, BONSAI_ERR_FORMAT, "tensor 0", NULL},
    {"empty key", key_empty, NULL, BONSAI_ERR_FORMAT, "key length 0", "1..65535"},
    {"key with NUL", key_with_nul, NULL, BONSAI_ERR_FORMAT, "metadata entry 2", "NUL"},
    {"key length huge", key_huge_length, NULL, BONSAI_ERR_FORMAT, "key length 1125899906842624",
     NULL},
    {"key past end", key_past_end, NULL, BONSAI_ERR_FORMAT, "key of 60000 bytes", "past the end"},
    {"value type 13", value_type_13, NULL, BONSAI_ERR_FORMAT, "key bad.type has value type 13",
     "0..12"},
    {"string past end", string_past_end, NULL, BONSAI_ERR_FORMAT, "key long.string",
     "length 1099511627776"},
    {"array count huge", array_huge_count, NULL, BONSAI_ERR_FORMAT, "key big.array",
     "4611686018427387904 uint32"},
    {"string array count huge", array_huge_string_count, NULL, BONSAI_ERR_FORMAT,
     "key big.strings", "string elements"},
    {"array element type 99", array_bad_elem_type, NULL, BONSAI_ERR_FORMAT, "key odd.array",
     "element type 99"},
    {"arrays nested 10 deep", array_too_deep, NULL, BONSAI_ERR_FORMAT, "key deep.array",
     "deeper than 8"},
    {"duplicate key", duplicate_key, NULL, BONSAI_ERR_FORMAT, "key x.count appears twice",
     "entries 1 and 2"},
    {"alignment u64", alignment_u64, NULL, BONSAI_ERR_FORMAT,
     "general.alignment has type uint64", "expected uint32"},
    {"alignment 24", alignment_24, NULL, BONSAI_ERR_FORMAT, "general.alignment is 24",
     "power of two"},
    {"alignment 0", alignment_0, NULL, BONSAI_ERR_FORMAT, "general.alignment is 0",
     "power of two"},
    {"empty tensor name", name_empty, NULL, BONSAI_ERR_FORMAT, "tensor 1: name length 0",
     "1..64"},
    {"65-byte tensor name", name_65, NULL, BONSAI_ERR_FORMAT, "name length 65", "1..64"},
    {"duplicate tensor name", name_duplicate, NULL, BONSAI_ERR_FORMAT,
     "tensor name a.weight appears twice", "tensors 0 and 2"},
    {"n_dims 0", dims_0, NULL, BONSAI_ERR_FORMAT, "tensor b.weight has n_dims = 0",
     "expected 1..4"},
    {"n_dims 5", dims_5, NULL, BONSAI_ERR_FORMAT, "tensor b.weight has n_dims = 5",
     "expected 1..4"},
    {"zero dim", dim_zero, NULL, BONSAI_ERR_FORMAT, "tensor c.weight has ne[1] = 0", "expected 1.."},
    {"element count overflow", dims_overflow, NULL, BONSAI_ERR_FORMAT, "tensor c.weight",
     "overflows"},
    {"dim above int64", dim_above_int64, NULL, BONSAI_ERR_FORMAT,
     "tensor b.weight has ne[0] = 9223372036854775808", NULL},
    {"unknown type", type_unknown, NULL, BONSAI_ERR_FORMAT,
     "tensor b.weight has type 77 (unknown)", "does not read"},
    {"q4_0", type_q4_0, NULL, BONSAI_ERR_UNSUPPORTED,
     "tensor b.weight has type 2 (q4_0), which bonsai does not read", NULL},
    {"ptq1_0", type_ptq1, NULL, BONSAI_ERR_UNSUPPORTED, "tensor b.weight has type 143 (ptq1_0)",
     NULL},
    {"ne[0] not a multiple of 128", q1_not_multiple, NULL, BONSAI_ERR_FORMAT,
     "tensor a.weight: ne[0] = 100 is not a multiple of 128", "q1_0_g128"},
    {"misaligned offset", offset_misaligned, NULL, BONSAI_ERR_FORMAT,
     "tensor b.weight: data offset 100", "alignment 32"},
    {"offset past end", offset_past_end, NULL, BONSAI_ERR_FORMAT,
     "tensor c.weight: data offset 1048576", "past the end of the data section"},
    {"two tensors at one offset", offset_same, NULL, BONSAI_ERR_FORMAT,
     "tensor b.weight needs 32 bytes", "overlaps tensor c.weight"},
    {"size disagrees with shape", size_disagrees, NULL, BONSAI_ERR_FORMAT,
     "tensor a.weight needs 144 bytes", "overlaps tensor b.weight, which starts 96 bytes"},
    {"last tensor past the end", last_past_file_end, NULL, BONSAI_ERR_FORMAT,
     "tensor c.weight needs 96 bytes", "file ends 64 bytes after its start"},
    {"no data section", data_start_past_end, NULL, BONSAI_ERR_FORMAT, "tensor", NULL},
    {"truncated tensor infos", NULL, truncate_infos, BONSAI_ERR_FORMAT, "3 tensors", "at most 1"},
};

static void test_base_is_valid(void)
{
    tf_spec s;
    bb file = {0};
    base_spec(&s);
    tf_build(&s, &file);
    bonsai_gguf *g = NULL;
    bonsai_status st = bonsai_gguf_open_memory(file.p, file.len, NULL, &g);
    CHECK(st == BONSAI_OK && bonsai_gguf_n_tensors(g) == 3, "base file opens: %s",
          bonsai_last_error());
    bonsai_gguf_close(g);
    bb_free(&file);
    bb_free(&s.kv);
}

static void test_case(const refusal *c)
{
    tf_spec s;
    bb file = {0};
    base_spec(&s);
    if (c->bend)
        c->bend(&s);
    tf_build(&s, &file);
    if (c->bend_bytes)
        c->bend_bytes(&file);
    bonsai_gguf *g = (bonsai_gguf *)&s; /* poison: must come back NULL */
    bonsai_status st = bonsai_gguf_open_memory(file.p, file.len, NULL, &g);
    const char *msg = bonsai_last_error();
    CHECK(st == c->status, "%s: %s, want %s (%s)", c->what, bonsai_status_name(st),
          bonsai_status_name(c->status), msg);
    CHECK(g == NULL, "%s: out is NULL on failure", c->what);
    CHECK(strstr(msg, c->msg1) != NULL, "%s: message '%s' lacks '%s'", c->what, msg, c->msg1);
    if (c->msg2)
        CHECK(strstr(msg, c->msg2) != NULL, "%s: message '%s' lacks '%s'", c->what, msg,
              c->msg2);
    if (st == BONSAI_OK)
        bonsai_gguf_close(g);
    bb_free(&file);
    bb_free(&s.kv);
}

static void test_open_errors(void)
{
    bonsai_gguf *g = NULL;
    char dir[] = "/tmp/bonsai_test_refusals_XXXXXX", path[128];
    if (!CHECK(mkdtemp(dir) != NULL, "temp dir"))
        return;
    snprintf(path, sizeof path, "%s/missing.gguf", dir);
    CHECK(bonsai_gguf_open(path, NULL, &g) == BONSAI_ERR_NOT_FOUND &&
              strstr(bonsai_last_error(), "missing.gguf"), "missing file: NOT_FOUND (%s)",
          bonsai_last_error());
    CHECK(bonsai_gguf_open(dir, NULL, &g) == BONSAI_ERR_IO &&
              strstr(bonsai_last_error(), "not a regular file"), "directory: IO (%s)",
          bonsai_last_error());
    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    FILE *f = fopen(path, "wb");
    if (f)
        fclose(f);
    CHECK(bonsai_gguf_open(path, NULL, &g) == BONSAI_ERR_FORMAT &&
              strstr(bonsai_last_error(), "0 bytes"), "empty file: FORMAT (%s)",
          bonsai_last_error());
    unlink(path);
    rmdir(dir);
    CHECK(bonsai_gguf_open(NULL, NULL, &g) == BONSAI_ERR_NULL_ARG, "NULL path");
    CHECK(bonsai_gguf_open("x", NULL, NULL) == BONSAI_ERR_NULL_ARG, "NULL out");
    CHECK(bonsai_gguf_open_memory(NULL, 10, NULL, &g) == BONSAI_ERR_NULL_ARG, "NULL data");
    bonsai_gguf_params p = bonsai_gguf_default_params();
    p.q2_variant = (bonsai_q2_variant)9;
    CHECK(bonsai_gguf_open_memory("GGUF", 4, &p, &g) == BONSAI_ERR_INVALID_ARG &&
              strstr(bonsai_last_error(), "q2_variant 9"), "bad q2_variant: INVALID_ARG");
    /* the accessors tolerate NULL */
    CHECK(bonsai_gguf_n_tensors(NULL) == 0 && bonsai_gguf_n_kv(NULL) == 0 &&
              bonsai_gguf_find_tensor(NULL, "a") == NULL && bonsai_gguf_find_key(NULL, "a") == -1 &&
              bonsai_gguf_version(NULL) == 0, "NULL handle accessors");
    bonsai_gguf_close(NULL);
}

int main(void)
{
    harness_init();
    test_base_is_valid();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_case(&cases[i]);
    test_open_errors();
    return harness_finish();
}

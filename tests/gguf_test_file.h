/* GGUF bytes written by the tests themselves, byte by byte, independent of
 * bonsai's writer: a growable byte buffer, encoders for metadata entries,
 * and a file spec (header fields, metadata bytes, tensor infos, data) that
 * a test can bend field by field before building it. Include after
 * harness.h. */
#ifndef BONSAI_GGUF_TEST_FILE_H
#define BONSAI_GGUF_TEST_FILE_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct bb {
    uint8_t *p;
    size_t len, cap;
} bb;

static inline void bb_bytes(bb *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            fprintf(stderr, "test: out of memory\n");
            exit(1);
        }
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Little-endian, spelled out so the bytes do not depend on the host. */
static inline void bb_le(bb *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t byte = (uint8_t)(v >> (8 * i));
        bb_bytes(b, &byte, 1);
    }
}
static inline void bb_u8(bb *b, uint8_t v) { bb_le(b, v, 1); }
static inline void bb_u16(bb *b, uint16_t v) { bb_le(b, v, 2); }
static inline void bb_u32(bb *b, uint32_t v) { bb_le(b, v, 4); }
static inline void bb_u64(bb *b, uint64_t v) { bb_le(b, v, 8); }
static inline void bb_f32(bb *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    bb_u32(b, u);
}
static inline void bb_f64(bb *b, double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    bb_u64(b, u);
}
static inline void bb_str(bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_bytes(b, s, strlen(s));
}
static inline void bb_free(bb *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Metadata entries: key, type, value. */
enum { T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64,
       T_F64 };
static inline void kv_head(bb *b, const char *key, uint32_t type)
{
    bb_str(b, key);
    bb_u32(b, type);
}
static inline void kv_u32(bb *b, const char *key, uint32_t v)
{
    kv_head(b, key, T_U32);
    bb_u32(b, v);
}
static inline void kv_str(bb *b, const char *key, const char *s)
{
    kv_head(b, key, T_STR);
    bb_str(b, s);
}

#define TF_MAX_TENSORS 8
typedef struct tf_tensor {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    uint64_t offset;  /* relative to the data section */
    uint64_t bytes;   /* data bytes emitted at offset (pseudo-random) */
    int64_t offset_field; /* >= 0: written as the offset instead (data stays) */
    const uint8_t *data;  /* non-NULL: these bytes instead of the pattern */
} tf_tensor;

typedef struct tf_spec {
    uint32_t version;
    uint64_t n_kv;          /* entries in kv */
    bb kv;                  /* encoded entries */
    size_t n_tensors;
    tf_tensor t[TF_MAX_TENSORS];
    uint32_t alignment;     /* for the data section start and the tail pad */
    int64_t n_tensors_field, n_kv_field; /* >= 0: written instead of the real counts */
    int pad_tail;           /* pad the file end to the alignment */
} tf_spec;

static inline void tf_init(tf_spec *s, uint32_t version)
{
    memset(s, 0, sizeof *s);
    s->version = version;
    s->alignment = 32;
    s->n_tensors_field = s->n_kv_field = -1;
    s->pad_tail = 1;
}

/* Adds a tensor placed after the previous one (aligned). */
static inline tf_tensor *tf_add(tf_spec *s, const char *name, uint32_t type, uint32_t n_dims,
                         uint64_t ne0, uint64_t ne1, uint64_t bytes)
{
    uint64_t off = 0;
    if (s->n_tensors) {
        const tf_tensor *p = &s->t[s->n_tensors - 1];
        off = (p->offset + p->bytes + s->alignment - 1) / s->alignment * s->alignment;
    }
    tf_tensor *t = &s->t[s->n_tensors++];
    *t = (tf_tensor){name, n_dims, {ne0, ne1, 1, 1}, type, off, bytes, -1, NULL};
    return t;
}

/* Data bytes: byte j of tensor i is a fixed function of (i, j). */
static inline uint8_t tf_data_byte(size_t i, uint64_t j)
{
    return (uint8_t)(j * 31 + i * 7 + (j >> 8));
}

/* Builds the file into out; returns the data section's file offset. */
static inline size_t tf_build(const tf_spec *s, bb *out)
{
    out->len = 0;
    bb_bytes(out, "GGUF", 4);
    bb_u32(out, s->version);
    bb_u64(out, s->n_tensors_field >= 0 ? (uint64_t)s->n_tensors_field : s->n_tensors);
    bb_u64(out, s->n_kv_field >= 0 ? (uint64_t)s->n_kv_field : s->n_kv);
    bb_bytes(out, s->kv.p, s->kv.len);
    for (size_t i = 0; i < s->n_tensors; i++) {
        const tf_tensor *t = &s->t[i];
        bb_str(out, t->name);
        bb_u32(out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 4; d++)
            bb_u64(out, t->ne[d]);
        bb_u32(out, t->type);
        bb_u64(out, t->offset_field >= 0 ? (uint64_t)t->offset_field : t->offset);
    }
    while (out->len % s->alignment)
        bb_u8(out, 0);
    size_t data_start = out->len;
    uint64_t end = 0;
    for (size_t i = 0; i < s->n_tensors; i++)
        if (s->t[i].offset + s->t[i].bytes > end)
            end = s->t[i].offset + s->t[i].bytes;
    for (uint64_t j = 0; j < end; j++)
        bb_u8(out, 0);
    for (size_t i = 0; i < s->n_tensors; i++)
        for (uint64_t j = 0; j < s->t[i].bytes; j++)
            out->p[data_start + s->t[i].offset + j] =
                s->t[i].data ? s->t[i].data[j] : tf_data_byte(i, j);
    while (s->pad_tail && (out->len - data_start) % s->alignment)
        bb_u8(out, 0);
    return data_start;
}

#endif

/* Internal: the parsed GGUF file and the helpers its parts share.
 *
 * File layout (all little-endian; bonsai targets little-endian hosts):
 *   magic "GGUF" | version u32 | n_tensors u64 | n_kv u64      (v2, v3)
 *   n_kv x  { key: string | value type u32 | value }
 *   n_tensors x { name: string | n_dims u32 | ne[n_dims] u64 | ggml type u32 |
 *                 offset u64 (relative to the data section) }
 *   padding to general.alignment (default 32), then the data section.
 * A string is a u64 length followed by that many bytes (no NUL). An array
 * value is elem type u32 | count u64 | count elements (which may themselves
 * be strings or arrays). GGUF v1 used 32-bit counts and lengths; it is refused. */
#ifndef BONSAI_GGUF_INTERNAL_H
#define BONSAI_GGUF_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "bonsai/gguf.h"

#define GGUF_MAGIC_BYTES "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DIMS 4u
#define GGUF_MAX_TENSOR_NAME 64u   /* the GGUF spec's limit */
#define GGUF_MAX_KEY 65535u        /* the GGUF spec's limit */
#define GGUF_MAX_ARRAY_DEPTH 8     /* nested arrays deeper than this are refused */
#define GGUF_TYPE_COUNT 13u

/* A bounds-checked reader over the mapping. Every read fails (returns 0)
 * instead of passing the end; pos never exceeds size. */
typedef struct gguf_cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
} gguf_cursor;

static inline size_t gguf_cursor_left(const gguf_cursor *c)
{
    return c->size - c->pos;
}

static inline int gguf_read_bytes(gguf_cursor *c, void *dst, size_t n)
{
    if (gguf_cursor_left(c) < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)dst)[i] = c->base[c->pos + i];
    c->pos += n;
    return 1;
}

static inline int gguf_read_u32(gguf_cursor *c, uint32_t *v)
{
    return gguf_read_bytes(c, v, 4);
}

static inline int gguf_read_u64(gguf_cursor *c, uint64_t *v)
{
    return gguf_read_bytes(c, v, 8);
}

static inline int gguf_skip(gguf_cursor *c, uint64_t n)
{
    if ((uint64_t)gguf_cursor_left(c) < n)
        return 0;
    c->pos += (size_t)n;
    return 1;
}

/* Growth in step with what has been parsed, so a file's claimed counts
 * never size an allocation (gguf_buffers.c). */
/* Ensures *p holds at least need elements of elem bytes (doubling; new
 * elements zeroed). 0 on overflow or no memory. */
int gguf_grow(void **p, size_t *cap, size_t need, size_t elem);
/* NUL-terminated strings appended to one buffer; owners keep offsets (the
 * buffer moves when it grows). */
typedef struct gguf_pool {
    char *p;
    size_t len, cap;
} gguf_pool;
/* Appends n bytes and a NUL; 0 on no memory. */
int gguf_pool_add(gguf_pool *pool, const uint8_t *s, size_t n, size_t *off);

/* A name and the position of its owner, sorted by name for lookup. */
typedef struct gguf_name_index {
    const char *name;
    size_t index;
} gguf_name_index;

/* Sorts ix by name (ties by index). Returns 1 and the two owners' indices
 * when a name appears twice, else 0 (gguf_index.c). */
int gguf_index_sort(gguf_name_index *ix, size_t n, size_t *dup_first, size_t *dup_second);
/* Owner index of name in a sorted ix, or -1. */
long gguf_index_find(const gguf_name_index *ix, size_t n, const char *name);

/* One metadata entry. Values stay in the mapping. */
typedef struct gguf_kv {
    const char *key;            /* NUL-terminated copy (in key_pool) */
    size_t key_off;             /* its offset in key_pool */
    bonsai_gguf_type type;
    const uint8_t *value;       /* scalar payload, or string length field */
    /* arrays only */
    bonsai_gguf_type elem_type;
    uint64_t count;
    const uint8_t *elems;       /* first element */
    const uint8_t **strs;       /* string arrays: each element's length field */
} gguf_kv;

struct bonsai_gguf {
    const uint8_t *map;
    size_t size;
    int owns_map;               /* 1: mapped by bonsai_gguf_open, unmapped by close */
    uint32_t version;
    uint32_t alignment;
    size_t data_start;          /* file offset of the data section */

    gguf_kv *kvs;
    size_t n_kv;
    gguf_name_index *kv_by_key;
    size_t cap_kv;
    gguf_pool key_pool;

    bonsai_gguf_tensor *tensors;
    uint64_t *tensor_offsets;   /* as stored: relative to data_start */
    size_t n_tensors, cap_tensors;
    size_t *name_offsets;       /* each tensor name's offset in name_pool */
    gguf_name_index *tensor_by_name;
    gguf_pool name_pool;

    bonsai_q2_variant q2_variant;
};

/* Size in bytes of a fixed-size metadata type; 0 for string/array/unknown. */
size_t gguf_type_size(uint32_t type);
/* "uint8", ..., "float64"; "unknown" when out of range. */
const char *gguf_type_name(uint32_t type);

/* Parse n_kv entries at c (gguf_metadata.c). */
bonsai_status gguf_parse_metadata(bonsai_gguf *g, gguf_cursor *c, uint64_t n_kv);
/* Parse n_tensors tensor infos at c (gguf_tensor_info.c): names, shapes,
 * types, offsets; sizes of every tensor except those of id 42. */
bonsai_status gguf_parse_tensor_infos(bonsai_gguf *g, gguf_cursor *c, uint64_t n_tensors);
/* Place tensors in the data section (gguf_layout.c): alignment, extents,
 * the id-42 reading, sizes, overlap and in-file checks, data pointers. */
bonsai_status gguf_place_tensors(bonsai_gguf *g, bonsai_q2_variant requested);
/* Decide how id-42 tensors are read (q2_variant.c). extent[i] is the number
 * of bytes from tensor i's start to the next tensor's start or the file end. */
bonsai_status gguf_resolve_q2(bonsai_gguf *g, bonsai_q2_variant requested,
                              const uint64_t *extent);

/* Size of a tensor of bonsai type t and element shape ne; FORMAT naming the
 * tensor if ne[0] is not a multiple of the block or the size overflows. */
bonsai_status gguf_tensor_bytes(const bonsai_gguf_tensor *t, bonsai_type type, size_t *bytes);

#endif

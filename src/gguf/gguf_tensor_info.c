/* GGUF tensor infos: names, shapes, types and offsets, each validated as it
 * is read: name length 1..64 without NUL, 1..4 dims each >= 1, an element
 * count that fits, a type bonsai reads, ne[0] a multiple of the block, no
 * duplicate names. Sizes of id-42 tensors wait for q2_variant.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "gguf/gguf_internal.h"
#include "gguf/gguf_types.h"

/* name length u64 + 1 byte + n_dims u32 + one dim u64 + type u32 + offset u64 */
#define GGUF_MIN_TENSOR_INFO_BYTES 33u

/* "[4096, 151936]" into buf, for messages. */
static const char *shape_str(const bonsai_gguf_tensor *t, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, d ? ", %" PRIu64 : "%" PRIu64, t->ne[d]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

bonsai_status gguf_tensor_bytes(const bonsai_gguf_tensor *t, bonsai_type type, size_t *bytes)
{
    char shape[128];
    size_t block = bonsai_type_block_elems(type), block_bytes = bonsai_type_block_bytes(type);
    if (t->ne[0] % block != 0)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "tensor %s: ne[0] = %" PRIu64 " is not a multiple of %zu, the block "
                           "size of %s (shape %s)", t->name, t->ne[0], block,
                           bonsai_type_name(type), shape_str(t, shape, sizeof shape));
    size_t total = block_bytes, dim;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        dim = (size_t)(d == 0 ? t->ne[0] / block : t->ne[d]);
        if ((uint64_t)dim != (d == 0 ? t->ne[0] / block : t->ne[d]) ||
            !bonsai_mul_size(total, dim, &total))
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s: shape %s of %s overflows the byte count", t->name,
                               shape_str(t, shape, sizeof shape), bonsai_type_name(type));
    }
    *bytes = total;
    return BONSAI_OK;
}

/* Reads the name of tensor index into the pool; *name points at it until
 * the pool grows. */
static bonsai_status read_name(gguf_cursor *c, uint64_t index, gguf_pool *pool, size_t *off,
                               const char **name)
{
    size_t at = c->pos;
    uint64_t len;
    if (!gguf_read_u64(c, &len))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "tensor %llu: name length at file offset %zu runs past the end of "
                           "the file (%zu bytes)", (unsigned long long)index, at, c->size);
    if (len == 0 || len > GGUF_MAX_TENSOR_NAME)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "tensor %llu: name length %llu at file offset %zu is outside 1..%u",
                           (unsigned long long)index, (unsigned long long)len, at,
                           GGUF_MAX_TENSOR_NAME);
    if (gguf_cursor_left(c) < len)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "tensor %llu: name of %llu bytes at file offset %zu runs past the "
                           "end of the file", (unsigned long long)index, (unsigned long long)len,
                           at);
    const uint8_t *src = c->base + c->pos;
    if (memchr(src, 0, (size_t)len))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "tensor %llu: name at file offset %zu contains a NUL byte",
                           (unsigned long long)index, at);
    if (!gguf_pool_add(pool, src, (size_t)len, off))
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "tensor %llu: no memory for its name",
                           (unsigned long long)index);
    c->pos += (size_t)len;
    *name = pool->p + *off;
    return BONSAI_OK;
}

/* Reads n_dims and ne[], refusing 0 or > 4 dims and zero or huge dims. */
static bonsai_status read_shape(gguf_cursor *c, bonsai_gguf_tensor *t)
{
    if (!gguf_read_u32(c, &t->n_dims))
        return bonsai_fail(BONSAI_ERR_FORMAT, "tensor %s: n_dims runs past the end of the file",
                           t->name);
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return bonsai_fail(BONSAI_ERR_FORMAT, "tensor %s has n_dims = %u; expected 1..%u",
                           t->name, t->n_dims, GGUF_MAX_DIMS);
    uint64_t elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (!gguf_read_u64(c, &t->ne[d]))
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s: ne[%u] runs past the end of the file", t->name, d);
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s has ne[%u] = %" PRIu64 "; expected 1..%" PRId64,
                               t->name, d, t->ne[d], INT64_MAX);
        if (elems > (uint64_t)INT64_MAX / t->ne[d])
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s: the element count of its %u dims overflows 64 bits",
                               t->name, t->n_dims);
        elems *= t->ne[d];
    }
    return BONSAI_OK;
}

/* Reads and maps the type; sizes known types (id 42 waits). */
static bonsai_status read_type(gguf_cursor *c, bonsai_gguf_tensor *t)
{
    if (!gguf_read_u32(c, &t->ggml_type))
        return bonsai_fail(BONSAI_ERR_FORMAT, "tensor %s: type runs past the end of the file",
                           t->name);
    if (t->ggml_type == GGML_TYPE_Q2_42)
        return BONSAI_OK;
    if (!gguf_ggml_to_bonsai(t->ggml_type, &t->type))
        /* a type ggml names is a valid file bonsai cannot read; an id nobody
         * names is a malformed one */
        return bonsai_fail(strcmp(gguf_ggml_type_name(t->ggml_type), "unknown")
                               ? BONSAI_ERR_UNSUPPORTED : BONSAI_ERR_FORMAT,
                           "tensor %s has type %u (%s), which bonsai does not read (it reads "
                           "f32, f16, bf16, q1_0 (41), id 42 and pq2_0 (142))", t->name,
                           t->ggml_type, gguf_ggml_type_name(t->ggml_type));
    return gguf_tensor_bytes(t, t->type, &t->bytes);
}

static bonsai_status sort_names(bonsai_gguf *g)
{
    g->tensor_by_name = malloc(g->n_tensors ? g->n_tensors * sizeof *g->tensor_by_name : 1);
    if (!g->tensor_by_name)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "no memory to index %zu tensor names",
                           g->n_tensors);
    for (size_t i = 0; i < g->n_tensors; i++)
        g->tensor_by_name[i] = (gguf_name_index){g->tensors[i].name, i};
    size_t first, second;
    if (gguf_index_sort(g->tensor_by_name, g->n_tensors, &first, &second))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "tensor name %s appears twice (tensors %zu and %zu); expected each "
                           "name once", g->tensors[first].name, first, second);
    return BONSAI_OK;
}

/* Makes room for tensor i in the arrays that grow with the tensors read. */
static bonsai_status grow_tensors(bonsai_gguf *g, size_t i)
{
    size_t cap = g->cap_tensors, cap2 = g->cap_tensors, cap3 = g->cap_tensors;
    void *t = g->tensors, *o = g->tensor_offsets, *n = g->name_offsets;
    int ok = gguf_grow(&t, &cap, i + 1, sizeof *g->tensors);
    g->tensors = t;
    ok = ok && gguf_grow(&o, &cap2, i + 1, sizeof *g->tensor_offsets);
    g->tensor_offsets = o;
    ok = ok && gguf_grow(&n, &cap3, i + 1, sizeof *g->name_offsets);
    g->name_offsets = n;
    if (!ok)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "no memory for tensor info %zu", i);
    g->cap_tensors = cap;
    return BONSAI_OK;
}

bonsai_status gguf_parse_tensor_infos(bonsai_gguf *g, gguf_cursor *c, uint64_t n_tensors)
{
    if (n_tensors > gguf_cursor_left(c) / GGUF_MIN_TENSOR_INFO_BYTES)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "header says %llu tensors, but the %zu bytes left in the file hold "
                           "at most %zu tensor infos", (unsigned long long)n_tensors,
                           gguf_cursor_left(c), gguf_cursor_left(c) / GGUF_MIN_TENSOR_INFO_BYTES);
    /* the arrays grow as infos are read: the claimed count sizes nothing */
    for (size_t i = 0; i < (size_t)n_tensors; i++) {
        bonsai_status s = grow_tensors(g, i);
        if (s != BONSAI_OK)
            return s;
        g->n_tensors = i + 1;
        bonsai_gguf_tensor *t = &g->tensors[i];
        s = read_name(c, i, &g->name_pool, &g->name_offsets[i], &t->name);
        if (s == BONSAI_OK)
            s = read_shape(c, t);
        if (s == BONSAI_OK)
            s = read_type(c, t);
        if (s != BONSAI_OK)
            return s;
        if (!gguf_read_u64(c, &g->tensor_offsets[i]))
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s: data offset runs past the end of the file", t->name);
    }
    /* the pool has stopped moving: point every name into it */
    for (size_t i = 0; i < g->n_tensors; i++)
        g->tensors[i].name = g->name_pool.p + g->name_offsets[i];
    return sort_names(g);
}

/* GGUF metadata section: parses n_kv key/value entries from the mapping,
 * validating every length and count against the bytes left in the file
 * before trusting it, and refusing duplicate keys. Values stay in the
 * mapping; keys are copied (NUL-terminated) into one pool. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf_internal.h"

/* The smallest encoding of one entry: key length u64 + 1 key byte + type
 * u32 + a 1-byte value. Bounds n_kv before anything is allocated. */
#define GGUF_MIN_KV_BYTES 14u

size_t gguf_type_size(uint32_t type)
{
    switch (type) {
    case BONSAI_GGUF_UINT8: case BONSAI_GGUF_INT8: case BONSAI_GGUF_BOOL: return 1;
    case BONSAI_GGUF_UINT16: case BONSAI_GGUF_INT16: return 2;
    case BONSAI_GGUF_UINT32: case BONSAI_GGUF_INT32: case BONSAI_GGUF_FLOAT32: return 4;
    case BONSAI_GGUF_UINT64: case BONSAI_GGUF_INT64: case BONSAI_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_type_name(uint32_t type)
{
    static const char *const names[GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool",  "string", "array", "uint64", "int64", "float64",
    };
    return type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

/* Skips one string (u64 length + bytes); what names it for the message. */
static bonsai_status skip_string(gguf_cursor *c, const char *key, const char *what)
{
    size_t at = c->pos;
    uint64_t len;
    if (!gguf_read_u64(c, &len))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s: %s length at file offset %zu runs past the end of the "
                           "file (%zu bytes)", key, what, at, c->size);
    if (!gguf_skip(c, len))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s: %s at file offset %zu has length %llu, but only %zu bytes "
                           "are left in the file", key, what, at, (unsigned long long)len,
                           gguf_cursor_left(c));
    return BONSAI_OK;
}

static bonsai_status skip_value(gguf_cursor *c, uint32_t type, int depth, const char *key);

/* Reads an array header and skips its elements. */
static bonsai_status skip_array(gguf_cursor *c, int depth, const char *key, uint32_t *elem_type,
                                uint64_t *count)
{
    size_t at = c->pos;
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s: arrays nested deeper than %d levels (at file offset %zu)",
                           key, GGUF_MAX_ARRAY_DEPTH, at);
    if (!gguf_read_u32(c, elem_type) || !gguf_read_u64(c, count))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s: array header at file offset %zu runs past the end of the "
                           "file (%zu bytes)", key, at, c->size);
    if (*elem_type >= GGUF_TYPE_COUNT)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s: array element type %u is not a GGUF type (0..%u)", key,
                           *elem_type, GGUF_TYPE_COUNT - 1);
    size_t elem = gguf_type_size(*elem_type);
    /* smallest element: fixed size, or an empty string (8), or an empty array (12) */
    uint64_t min_elem = elem ? elem : (*elem_type == BONSAI_GGUF_STRING ? 8 : 12);
    if (*count > gguf_cursor_left(c) / min_elem)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s: array of %llu %s elements needs at least %llu bytes per "
                           "element, but only %zu bytes are left in the file", key,
                           (unsigned long long)*count, gguf_type_name(*elem_type),
                           (unsigned long long)min_elem, gguf_cursor_left(c));
    if (elem) {
        c->pos += (size_t)(*count * elem); /* fits: checked against the bytes left */
        return BONSAI_OK;
    }
    for (uint64_t i = 0; i < *count; i++) {
        bonsai_status s = skip_value(c, *elem_type, depth + 1, key);
        if (s != BONSAI_OK)
            return s;
    }
    return BONSAI_OK;
}

static bonsai_status skip_value(gguf_cursor *c, uint32_t type, int depth, const char *key)
{
    if (type == BONSAI_GGUF_STRING)
        return skip_string(c, key, "string");
    if (type == BONSAI_GGUF_ARRAY) {
        uint32_t elem_type;
        uint64_t count;
        return skip_array(c, depth, key, &elem_type, &count);
    }
    size_t n = gguf_type_size(type);
    if (!gguf_skip(c, n))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s: %s value at file offset %zu runs past the end of the "
                           "file (%zu bytes)", key, gguf_type_name(type), c->pos, c->size);
    return BONSAI_OK;
}

/* Records where each element of a string array starts (already validated). */
static bonsai_status index_strings(gguf_kv *kv)
{
    kv->strs = malloc(kv->count ? (size_t)kv->count * sizeof *kv->strs : 1);
    if (!kv->strs)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                           "key %s: no memory to index %llu strings", kv->key,
                           (unsigned long long)kv->count);
    const uint8_t *p = kv->elems;
    for (uint64_t i = 0; i < kv->count; i++) {
        uint64_t len;
        memcpy(&len, p, 8);
        kv->strs[i] = p;
        p += 8 + len;
    }
    return BONSAI_OK;
}

/* Reads one key into the pool; *key points at it until the pool grows. */
static bonsai_status read_key(gguf_cursor *c, uint64_t index, gguf_pool *pool, size_t *off,
                              const char **key)
{
    size_t at = c->pos;
    uint64_t len;
    if (!gguf_read_u64(c, &len))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "metadata entry %llu: key length at file offset %zu runs past the "
                           "end of the file (%zu bytes)", (unsigned long long)index, at,
                           c->size);
    if (len == 0 || len > GGUF_MAX_KEY)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "metadata entry %llu: key length %llu at file offset %zu is outside "
                           "1..%u", (unsigned long long)index, (unsigned long long)len, at,
                           GGUF_MAX_KEY);
    if (gguf_cursor_left(c) < len)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "metadata entry %llu: key of %llu bytes at file offset %zu runs past "
                           "the end of the file (%zu bytes left)", (unsigned long long)index,
                           (unsigned long long)len, at, gguf_cursor_left(c));
    const uint8_t *src = c->base + c->pos;
    if (memchr(src, 0, (size_t)len))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "metadata entry %llu: key at file offset %zu contains a NUL byte",
                           (unsigned long long)index, at);
    if (!gguf_pool_add(pool, src, (size_t)len, off))
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "metadata entry %llu: no memory for its "
                           "key", (unsigned long long)index);
    c->pos += (size_t)len;
    *key = pool->p + *off;
    return BONSAI_OK;
}

/* Sorts keys for lookup and refuses duplicates. */
static bonsai_status sort_keys(bonsai_gguf *g)
{
    g->kv_by_key = malloc(g->n_kv ? g->n_kv * sizeof *g->kv_by_key : 1);
    if (!g->kv_by_key)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "no memory to index %zu keys", g->n_kv);
    for (size_t i = 0; i < g->n_kv; i++)
        g->kv_by_key[i] = (gguf_name_index){g->kvs[i].key, i};
    size_t first, second;
    if (gguf_index_sort(g->kv_by_key, g->n_kv, &first, &second))
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key %s appears twice (metadata entries %zu and %zu); expected "
                           "each key once", g->kvs[first].key, first, second);
    return BONSAI_OK;
}

bonsai_status gguf_parse_metadata(bonsai_gguf *g, gguf_cursor *c, uint64_t n_kv)
{
    if (n_kv > gguf_cursor_left(c) / GGUF_MIN_KV_BYTES)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "header says %llu metadata entries, but the %zu bytes left in the "
                           "file hold at most %zu", (unsigned long long)n_kv,
                           gguf_cursor_left(c), gguf_cursor_left(c) / GGUF_MIN_KV_BYTES);
    /* entries grow as they are read: the claimed count sizes nothing */
    for (size_t i = 0; i < (size_t)n_kv; i++) {
        void *kvs = g->kvs;
        if (!gguf_grow(&kvs, &g->cap_kv, i + 1, sizeof *g->kvs))
            return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "no memory for metadata entry %zu", i);
        g->kvs = kvs;
        g->n_kv = i + 1;
        gguf_kv *kv = &g->kvs[i];
        bonsai_status s = read_key(c, i, &g->key_pool, &kv->key_off, &kv->key);
        if (s != BONSAI_OK)
            return s;
        uint32_t type;
        if (!gguf_read_u32(c, &type))
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "key %s: value type runs past the end of the file (%zu bytes)",
                               kv->key, c->size);
        if (type >= GGUF_TYPE_COUNT)
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "key %s has value type %u; GGUF types are 0..%u", kv->key, type,
                               GGUF_TYPE_COUNT - 1);
        kv->type = (bonsai_gguf_type)type;
        kv->value = c->base + c->pos;
        if (type == BONSAI_GGUF_ARRAY) {
            uint32_t elem_type;
            s = skip_array(c, 0, kv->key, &elem_type, &kv->count);
            if (s != BONSAI_OK)
                return s;
            kv->elem_type = (bonsai_gguf_type)elem_type;
            kv->elems = kv->value + 12;
            if (elem_type == BONSAI_GGUF_STRING && (s = index_strings(kv)) != BONSAI_OK)
                return s;
        } else if ((s = skip_value(c, type, 0, kv->key)) != BONSAI_OK) {
            return s;
        }
    }
    /* the pool has stopped moving: point every key into it */
    for (size_t i = 0; i < g->n_kv; i++)
        g->kvs[i].key = g->key_pool.p + g->kvs[i].key_off;
    return sort_keys(g);
}

/* Typed metadata getters. Integers convert between widths when the value
 * fits; floats come from FLOAT32 or FLOAT64; values are read from the
 * mapping with memcpy (they need not be aligned). */
#include <string.h>

#include "core/error.h"
#include "gguf/gguf_internal.h"

size_t bonsai_gguf_n_kv(const bonsai_gguf *g)
{
    return g ? g->n_kv : 0;
}

const char *bonsai_gguf_kv_key(const bonsai_gguf *g, size_t i)
{
    return g && i < g->n_kv ? g->kvs[i].key : NULL;
}

bonsai_gguf_type bonsai_gguf_kv_type(const bonsai_gguf *g, size_t i)
{
    return g && i < g->n_kv ? g->kvs[i].type : (bonsai_gguf_type)-1;
}

long bonsai_gguf_find_key(const bonsai_gguf *g, const char *key)
{
    if (!g || !key)
        return -1;
    return gguf_index_find(g->kv_by_key, g->n_kv, key);
}

static bonsai_status lookup(const bonsai_gguf *g, const char *key, const void *out,
                            const gguf_kv **kv)
{
    if (!g || !key || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf get: NULL argument (key %s)",
                           key ? key : "(null)");
    long i = bonsai_gguf_find_key(g, key);
    if (i < 0)
        return bonsai_fail(BONSAI_ERR_NOT_FOUND, "key %s is not in the file", key);
    *kv = &g->kvs[i];
    return BONSAI_OK;
}

static bonsai_status wrong_type(const gguf_kv *kv, const char *wanted)
{
    return bonsai_fail(BONSAI_ERR_FORMAT, "key %s has type %s; expected %s", kv->key,
                       gguf_type_name(kv->type), wanted);
}

/* Reads an integer value as signed/unsigned parts: 1 if kv is an integer. */
static int read_integer(const gguf_kv *kv, uint64_t *u, int *negative)
{
    *negative = 0;
    switch (kv->type) {
    case BONSAI_GGUF_UINT8: { uint8_t v; memcpy(&v, kv->value, 1); *u = v; return 1; }
    case BONSAI_GGUF_UINT16: { uint16_t v; memcpy(&v, kv->value, 2); *u = v; return 1; }
    case BONSAI_GGUF_UINT32: { uint32_t v; memcpy(&v, kv->value, 4); *u = v; return 1; }
    case BONSAI_GGUF_UINT64: memcpy(u, kv->value, 8); return 1;
    case BONSAI_GGUF_INT8: case BONSAI_GGUF_INT16: case BONSAI_GGUF_INT32:
    case BONSAI_GGUF_INT64: {
        int64_t v;
        if (kv->type == BONSAI_GGUF_INT8) { int8_t x; memcpy(&x, kv->value, 1); v = x; }
        else if (kv->type == BONSAI_GGUF_INT16) { int16_t x; memcpy(&x, kv->value, 2); v = x; }
        else if (kv->type == BONSAI_GGUF_INT32) { int32_t x; memcpy(&x, kv->value, 4); v = x; }
        else memcpy(&v, kv->value, 8);
        *negative = v < 0;
        *u = v < 0 ? 0 : (uint64_t)v;
        return 1;
    }
    default: return 0;
    }
}

bonsai_status bonsai_gguf_get_u64(const bonsai_gguf *g, const char *key, uint64_t *out)
{
    const gguf_kv *kv = NULL;
    bonsai_status s = lookup(g, key, out, &kv);
    if (s != BONSAI_OK)
        return s;
    uint64_t u;
    int negative;
    if (!read_integer(kv, &u, &negative))
        return wrong_type(kv, "an integer");
    if (negative)
        return bonsai_fail(BONSAI_ERR_FORMAT, "key %s is negative; expected a value >= 0", key);
    *out = u;
    return BONSAI_OK;
}

bonsai_status bonsai_gguf_get_i64(const bonsai_gguf *g, const char *key, int64_t *out)
{
    const gguf_kv *kv = NULL;
    bonsai_status s = lookup(g, key, out, &kv);
    if (s != BONSAI_OK)
        return s;
    uint64_t u;
    int negative;
    if (!read_integer(kv, &u, &negative))
        return wrong_type(kv, "an integer");
    if (negative) {
        /* signed types: read the value again as it is stored */
        int64_t v = 0;
        if (kv->type == BONSAI_GGUF_INT8) { int8_t x; memcpy(&x, kv->value, 1); v = x; }
        else if (kv->type == BONSAI_GGUF_INT16) { int16_t x; memcpy(&x, kv->value, 2); v = x; }
        else if (kv->type == BONSAI_GGUF_INT32) { int32_t x; memcpy(&x, kv->value, 4); v = x; }
        else memcpy(&v, kv->value, 8);
        *out = v;
        return BONSAI_OK;
    }
    if (u > (uint64_t)INT64_MAX)
        return bonsai_fail(BONSAI_ERR_FORMAT, "key %s is %llu; expected at most %lld", key,
                           (unsigned long long)u, (long long)INT64_MAX);
    *out = (int64_t)u;
    return BONSAI_OK;
}

bonsai_status bonsai_gguf_get_u32(const bonsai_gguf *g, const char *key, uint32_t *out)
{
    uint64_t v;
    bonsai_status s = bonsai_gguf_get_u64(g, key, out ? &v : NULL);
    if (s != BONSAI_OK)
        return s;
    if (v > UINT32_MAX)
        return bonsai_fail(BONSAI_ERR_FORMAT, "key %s is %llu; expected at most %u", key,
                           (unsigned long long)v, UINT32_MAX);
    *out = (uint32_t)v;
    return BONSAI_OK;
}

bonsai_status bonsai_gguf_get_f32(const bonsai_gguf *g, const char *key, float *out)
{
    const gguf_kv *kv = NULL;
    bonsai_status s = lookup(g, key, out, &kv);
    if (s != BONSAI_OK)
        return s;
    if (kv->type == BONSAI_GGUF_FLOAT32) {
        memcpy(out, kv->value, 4);
    } else if (kv->type == BONSAI_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->value, 8);
        *out = (float)d;
    } else {
        return wrong_type(kv, "float32 or float64");
    }
    return BONSAI_OK;
}

bonsai_status bonsai_gguf_get_bool(const bonsai_gguf *g, const char *key, int *out)
{
    const gguf_kv *kv = NULL;
    bonsai_status s = lookup(g, key, out, &kv);
    if (s != BONSAI_OK)
        return s;
    if (kv->type != BONSAI_GGUF_BOOL)
        return wrong_type(kv, "bool");
    *out = kv->value[0] != 0;
    return BONSAI_OK;
}

/* A validated string at p: u64 length then bytes. */
static void string_at(const uint8_t *p, const char **s, size_t *len)
{
    uint64_t n;
    memcpy(&n, p, 8);
    *s = (const char *)p + 8;
    *len = (size_t)n;
}

bonsai_status bonsai_gguf_get_str(const bonsai_gguf *g, const char *key, const char **s,
                                  size_t *len)
{
    const gguf_kv *kv = NULL;
    bonsai_status st = lookup(g, key, s, &kv);
    if (st != BONSAI_OK)
        return st;
    if (!len)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf get %s: len is NULL", key);
    if (kv->type != BONSAI_GGUF_STRING)
        return wrong_type(kv, "string");
    string_at(kv->value, s, len);
    return BONSAI_OK;
}

bonsai_status bonsai_gguf_get_array(const bonsai_gguf *g, const char *key,
                                    bonsai_gguf_type *elem_type, uint64_t *count,
                                    const void **data)
{
    const gguf_kv *kv = NULL;
    bonsai_status s = lookup(g, key, elem_type, &kv);
    if (s != BONSAI_OK)
        return s;
    if (!count || !data)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf get %s: count or data is NULL", key);
    if (kv->type != BONSAI_GGUF_ARRAY)
        return wrong_type(kv, "array");
    *elem_type = kv->elem_type;
    *count = kv->count;
    *data = kv->elems;
    return BONSAI_OK;
}

bonsai_status bonsai_gguf_get_array_str(const bonsai_gguf *g, const char *key, uint64_t i,
                                        const char **s, size_t *len)
{
    const gguf_kv *kv = NULL;
    bonsai_status st = lookup(g, key, s, &kv);
    if (st != BONSAI_OK)
        return st;
    if (!len)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf get %s: len is NULL", key);
    if (kv->type != BONSAI_GGUF_ARRAY || kv->elem_type != BONSAI_GGUF_STRING)
        return bonsai_fail(BONSAI_ERR_FORMAT, "key %s has type %s%s%s; expected an array of "
                           "strings", key, gguf_type_name(kv->type),
                           kv->type == BONSAI_GGUF_ARRAY ? " of " : "",
                           kv->type == BONSAI_GGUF_ARRAY ? gguf_type_name(kv->elem_type) : "");
    if (i >= kv->count)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "key %s: index %llu is past its %llu strings",
                           key, (unsigned long long)i, (unsigned long long)kv->count);
    string_at(kv->strs[i], s, len);
    return BONSAI_OK;
}

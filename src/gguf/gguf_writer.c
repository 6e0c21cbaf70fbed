/* Streaming GGUF v3 writer (see gguf_writer.h): metadata and tensor infos
 * are encoded into memory as they are added; tensor data streams through a
 * buffered FILE into a temporary file that finish renames onto the path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "gguf/gguf_internal.h"
#include "gguf/gguf_writer.h"

#define WRITER_BUFFER (4u << 20)

typedef struct byte_buf {
    uint8_t *p;
    size_t len, cap;
} byte_buf;

typedef struct declared_tensor {
    char *name;
    uint64_t bytes;
} declared_tensor;

struct bonsai_gguf_writer {
    char *path, *tmp_path;
    FILE *f;
    uint32_t alignment;
    byte_buf kv, info;
    uint64_t n_kv;
    char **keys;
    declared_tensor *tensors;
    size_t n_tensors, cap_tensors, cap_keys;
    uint64_t next_offset;      /* data offset of the next declared tensor */
    int data_started;
    size_t cur;                /* tensor being written */
    uint64_t cur_written;      /* bytes of it written so far */
    bonsai_status failed;      /* sticky: first failure */
};

static bonsai_status put(bonsai_gguf_writer *w, byte_buf *b, const void *p, size_t n)
{
    if (b->len + n < b->len)
        return bonsai_fail(BONSAI_ERR_OVERFLOW, "gguf writer %s: metadata too large", w->path);
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "gguf writer %s: no memory for %zu "
                               "bytes of metadata", w->path, cap);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return BONSAI_OK;
}

static bonsai_status put_u32(bonsai_gguf_writer *w, byte_buf *b, uint32_t v)
{
    return put(w, b, &v, 4);
}

static bonsai_status put_u64(bonsai_gguf_writer *w, byte_buf *b, uint64_t v)
{
    return put(w, b, &v, 8);
}

static bonsai_status put_str(bonsai_gguf_writer *w, byte_buf *b, const char *s)
{
    size_t n = strlen(s);
    bonsai_status st = put_u64(w, b, n);
    return st != BONSAI_OK ? st : put(w, b, s, n);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

bonsai_status bonsai_gguf_writer_create(const char *path, uint32_t alignment,
                                        bonsai_gguf_writer **out)
{
    if (!path || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: path or out is NULL");
    *out = NULL;
    if (alignment == 0)
        alignment = GGUF_DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1))
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "gguf writer %s: alignment %u is not a power of two", path, alignment);
    bonsai_gguf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "gguf writer %s: no memory", path);
    w->alignment = alignment;
    w->path = dup_str(path);
    w->tmp_path = malloc(strlen(path) + 16);
    if (!w->path || !w->tmp_path) {
        bonsai_gguf_writer_abort(w);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "gguf writer %s: no memory", path);
    }
    sprintf(w->tmp_path, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(w->tmp_path);
    if (fd < 0) {
        bonsai_status s = bonsai_fail(BONSAI_ERR_IO, "cannot create a temporary file next to %s: "
                                      "%s", path, strerror(errno));
        w->tmp_path[0] = '\0';
        bonsai_gguf_writer_abort(w);
        return s;
    }
    fchmod(fd, 0644);
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        close(fd);
        bonsai_gguf_writer_abort(w);
        return bonsai_fail(BONSAI_ERR_IO, "cannot open a stream on %s", path);
    }
    setvbuf(w->f, NULL, _IOFBF, WRITER_BUFFER);
    *out = w;
    return BONSAI_OK;
}

void bonsai_gguf_writer_abort(bonsai_gguf_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (w->tmp_path && w->tmp_path[0])
        unlink(w->tmp_path);
    for (size_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv.p);
    free(w->info.p);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

/* Refusals of a key, before anything is recorded (the writer stays usable). */
static bonsai_status check_key(bonsai_gguf_writer *w, const char *key, bonsai_gguf_type type)
{
    if (!w || !key)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: NULL writer or key");
    if (w->failed)
        return w->failed;
    if (w->data_started)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: key %s added after tensor "
                           "data started", w->path, key);
    if (!*key || strlen(key) > GGUF_MAX_KEY)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: key length %zu is outside "
                           "1..%u", w->path, strlen(key), GGUF_MAX_KEY);
    if ((unsigned)type >= GGUF_TYPE_COUNT)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: key %s has type %d, not a "
                           "GGUF type", w->path, key, (int)type);
    if (strcmp(key, "general.alignment") == 0)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: general.alignment is set "
                           "by the writer (create's alignment argument)", w->path);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: key %s added twice",
                               w->path, key);
    return BONSAI_OK;
}

/* Records a checked key and encodes it with its type. */
static bonsai_status begin_key(bonsai_gguf_writer *w, const char *key, bonsai_gguf_type type)
{
    if (w->n_kv == w->cap_keys) {
        size_t cap = w->cap_keys ? 2 * w->cap_keys : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k)
            return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "gguf writer %s: no memory", w->path);
        w->keys = k;
        w->cap_keys = cap;
    }
    if (!(w->keys[w->n_kv] = dup_str(key)))
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "gguf writer %s: no memory", w->path);
    w->n_kv++;
    bonsai_status s = put_str(w, &w->kv, key);
    return s != BONSAI_OK ? s : put_u32(w, &w->kv, (uint32_t)type);
}

/* Marks the writer failed (so finish refuses) and returns s. */
static bonsai_status fail_sticky(bonsai_gguf_writer *w, bonsai_status s)
{
    if (w && s != BONSAI_OK && !w->failed)
        w->failed = s;
    return s;
}

bonsai_status bonsai_gguf_writer_add_scalar(bonsai_gguf_writer *w, const char *key,
                                            bonsai_gguf_type type, const void *value)
{
    size_t n = gguf_type_size(type);
    if (w && !n)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer: key %s: type %s is not a "
                           "scalar", key ? key : "(null)", gguf_type_name(type));
    if (!value)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: key %s: NULL value",
                           key ? key : "(null)");
    bonsai_status s = check_key(w, key, type);
    if (s != BONSAI_OK)
        return s;
    s = begin_key(w, key, type);
    if (s == BONSAI_OK)
        s = put(w, &w->kv, value, n);
    return fail_sticky(w, s);
}

bonsai_status bonsai_gguf_writer_add_u32(bonsai_gguf_writer *w, const char *key, uint32_t v)
{
    return bonsai_gguf_writer_add_scalar(w, key, BONSAI_GGUF_UINT32, &v);
}

bonsai_status bonsai_gguf_writer_add_f32(bonsai_gguf_writer *w, const char *key, float v)
{
    return bonsai_gguf_writer_add_scalar(w, key, BONSAI_GGUF_FLOAT32, &v);
}

bonsai_status bonsai_gguf_writer_add_str(bonsai_gguf_writer *w, const char *key, const char *s)
{
    if (!s)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: key %s: NULL string",
                           key ? key : "(null)");
    bonsai_status st = check_key(w, key, BONSAI_GGUF_STRING);
    if (st != BONSAI_OK)
        return st;
    st = begin_key(w, key, BONSAI_GGUF_STRING);
    if (st == BONSAI_OK)
        st = put_str(w, &w->kv, s);
    return fail_sticky(w, st);
}

bonsai_status bonsai_gguf_writer_add_array(bonsai_gguf_writer *w, const char *key,
                                           bonsai_gguf_type elem_type, uint64_t count,
                                           const void *data)
{
    size_t n = gguf_type_size(elem_type);
    if (w && !n)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer: key %s: element type %s is "
                           "not fixed-size", key ? key : "(null)", gguf_type_name(elem_type));
    if (!data && count)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: key %s: NULL data",
                           key ? key : "(null)");
    if (count > SIZE_MAX / n)
        return bonsai_fail(BONSAI_ERR_OVERFLOW, "gguf writer: key %s: %llu elements overflow",
                           key ? key : "(null)", (unsigned long long)count);
    bonsai_status s = check_key(w, key, BONSAI_GGUF_ARRAY);
    if (s != BONSAI_OK)
        return s;
    s = begin_key(w, key, BONSAI_GGUF_ARRAY);
    if (s == BONSAI_OK)
        s = put_u32(w, &w->kv, (uint32_t)elem_type);
    if (s == BONSAI_OK)
        s = put_u64(w, &w->kv, count);
    if (s == BONSAI_OK && count)
        s = put(w, &w->kv, data, (size_t)count * n);
    return fail_sticky(w, s);
}

bonsai_status bonsai_gguf_writer_add_array_str(bonsai_gguf_writer *w, const char *key,
                                               uint64_t count, const char *const *strs)
{
    if (!strs && count)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: key %s: NULL strings",
                           key ? key : "(null)");
    for (uint64_t i = 0; i < count; i++)
        if (!strs[i])
            return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: key %s: string %llu is NULL",
                               key ? key : "(null)", (unsigned long long)i);
    bonsai_status s = check_key(w, key, BONSAI_GGUF_ARRAY);
    if (s != BONSAI_OK)
        return s;
    s = begin_key(w, key, BONSAI_GGUF_ARRAY);
    if (s == BONSAI_OK)
        s = put_u32(w, &w->kv, BONSAI_GGUF_STRING);
    if (s == BONSAI_OK)
        s = put_u64(w, &w->kv, count);
    for (uint64_t i = 0; s == BONSAI_OK && i < count; i++)
        s = put_str(w, &w->kv, strs[i]);
    return fail_sticky(w, s);
}

bonsai_status bonsai_gguf_writer_add_encoded(bonsai_gguf_writer *w, const char *key,
                                             bonsai_gguf_type type, const void *bytes, size_t n)
{
    if (!bytes && n)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: key %s: NULL bytes",
                           key ? key : "(null)");
    bonsai_status s = check_key(w, key, type);
    if (s != BONSAI_OK)
        return s;
    s = begin_key(w, key, type);
    if (s == BONSAI_OK && n)
        s = put(w, &w->kv, bytes, n);
    return fail_sticky(w, s);
}

bonsai_status bonsai_gguf_writer_add_tensor(bonsai_gguf_writer *w, const char *name,
                                            uint32_t ggml_type, uint32_t n_dims,
                                            const uint64_t *ne, uint64_t bytes)
{
    if (!w || !name || !ne)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: NULL writer, name or shape");
    if (w->failed)
        return w->failed;
    if (w->data_started)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: tensor %s declared after "
                           "data started", w->path, name);
    size_t len = strlen(name);
    if (len == 0 || len > GGUF_MAX_TENSOR_NAME)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: tensor name length %zu is "
                           "outside 1..%u", w->path, len, GGUF_MAX_TENSOR_NAME);
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: tensor %s has %u dims; "
                           "expected 1..%u", w->path, name, n_dims, GGUF_MAX_DIMS);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: tensor %s declared "
                               "twice", w->path, name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        declared_tensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t)
            return fail_sticky(w, bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                                              "gguf writer %s: no memory", w->path));
        w->tensors = t;
        w->cap_tensors = cap;
    }
    char *copy = dup_str(name);
    if (!copy)
        return fail_sticky(w, bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                                          "gguf writer %s: no memory", w->path));
    w->tensors[w->n_tensors++] = (declared_tensor){copy, bytes};
    bonsai_status s = put_str(w, &w->info, name);
    if (s == BONSAI_OK)
        s = put_u32(w, &w->info, n_dims);
    for (uint32_t d = 0; s == BONSAI_OK && d < n_dims; d++)
        s = put_u64(w, &w->info, ne[d]);
    if (s == BONSAI_OK)
        s = put_u32(w, &w->info, ggml_type);
    if (s == BONSAI_OK)
        s = put_u64(w, &w->info, w->next_offset);
    uint64_t padded = bytes + (w->alignment - bytes % w->alignment) % w->alignment;
    if (s == BONSAI_OK && (padded < bytes || w->next_offset + padded < w->next_offset))
        s = bonsai_fail(BONSAI_ERR_OVERFLOW, "gguf writer %s: tensor %s: data offsets overflow",
                        w->path, name);
    w->next_offset += padded;
    return fail_sticky(w, s);
}

static bonsai_status write_raw(bonsai_gguf_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return fail_sticky(w, bonsai_fail(BONSAI_ERR_IO, "writing %s: %s", w->tmp_path,
                                          strerror(errno)));
    return BONSAI_OK;
}

static bonsai_status write_padding(bonsai_gguf_writer *w, uint64_t pos)
{
    static const uint8_t zeros[256];
    size_t pad = (size_t)((w->alignment - pos % w->alignment) % w->alignment);
    bonsai_status s = BONSAI_OK;
    while (pad && s == BONSAI_OK) {
        size_t n = pad < sizeof zeros ? pad : sizeof zeros;
        s = write_raw(w, zeros, n);
        pad -= n;
    }
    return s;
}

/* Writes header, metadata (with general.alignment) and tensor infos. */
static bonsai_status start_data(bonsai_gguf_writer *w)
{
    uint32_t version = 3;
    uint64_t n_tensors = w->n_tensors, n_kv = w->n_kv + 1;
    bonsai_status s = write_raw(w, GGUF_MAGIC_BYTES, 4);
    if (s == BONSAI_OK)
        s = write_raw(w, &version, 4);
    if (s == BONSAI_OK)
        s = write_raw(w, &n_tensors, 8);
    if (s == BONSAI_OK)
        s = write_raw(w, &n_kv, 8);
    if (s == BONSAI_OK)
        s = write_raw(w, w->kv.p, w->kv.len);
    byte_buf align_kv = {0};
    if (s == BONSAI_OK)
        s = put_str(w, &align_kv, "general.alignment");
    if (s == BONSAI_OK)
        s = put_u32(w, &align_kv, BONSAI_GGUF_UINT32);
    if (s == BONSAI_OK)
        s = put_u32(w, &align_kv, w->alignment);
    if (s == BONSAI_OK)
        s = write_raw(w, align_kv.p, align_kv.len);
    free(align_kv.p);
    if (s == BONSAI_OK)
        s = write_raw(w, w->info.p, w->info.len);
    if (s == BONSAI_OK)
        s = write_padding(w, 24 + (uint64_t)w->kv.len + align_kv.len + w->info.len);
    w->data_started = 1;
    return fail_sticky(w, s);
}

bonsai_status bonsai_gguf_writer_write(bonsai_gguf_writer *w, const void *data, size_t n)
{
    if (!w || (!data && n))
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: NULL writer or data");
    if (w->failed)
        return w->failed;
    bonsai_status s = w->data_started ? BONSAI_OK : start_data(w);
    const uint8_t *p = data;
    while (s == BONSAI_OK && n) {
        if (w->cur >= w->n_tensors)
            return fail_sticky(w, bonsai_fail(BONSAI_ERR_INVALID_ARG,
                                              "gguf writer %s: %zu bytes of data past the last "
                                              "declared tensor", w->path, n));
        declared_tensor *t = &w->tensors[w->cur];
        uint64_t left = t->bytes - w->cur_written;
        size_t take = n < left ? n : (size_t)left;
        s = write_raw(w, p, take);
        p += take;
        n -= take;
        w->cur_written += take;
        if (s == BONSAI_OK && w->cur_written == t->bytes) {
            s = write_padding(w, t->bytes);
            w->cur++;
            w->cur_written = 0;
        }
    }
    return fail_sticky(w, s);
}

bonsai_status bonsai_gguf_writer_finish(bonsai_gguf_writer *w)
{
    if (!w)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf writer: NULL writer");
    bonsai_status s = w->failed;
    if (s == BONSAI_OK && !w->data_started)
        s = start_data(w);
    /* zero-byte tensors are complete without a write */
    while (s == BONSAI_OK && w->cur < w->n_tensors && w->tensors[w->cur].bytes == 0)
        w->cur++;
    if (s == BONSAI_OK && w->cur < w->n_tensors)
        s = bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf writer %s: tensor %s has %llu of %llu "
                        "bytes written", w->path, w->tensors[w->cur].name,
                        (unsigned long long)w->cur_written,
                        (unsigned long long)w->tensors[w->cur].bytes);
    if (s == BONSAI_OK) {
        int rc = fclose(w->f);
        w->f = NULL;
        if (rc != 0)
            s = bonsai_fail(BONSAI_ERR_IO, "writing %s: %s", w->tmp_path, strerror(errno));
    }
    if (s == BONSAI_OK && rename(w->tmp_path, w->path) != 0)
        s = bonsai_fail(BONSAI_ERR_IO, "cannot rename %s to %s: %s", w->tmp_path, w->path,
                        strerror(errno));
    if (s == BONSAI_OK)
        w->tmp_path[0] = '\0'; /* renamed: nothing to remove */
    bonsai_gguf_writer_abort(w);
    return s;
}

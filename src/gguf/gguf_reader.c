/* GGUF reader: maps the file read-only, checks the header, then hands the
 * metadata, tensor infos and data placement to their own files. Nothing in
 * the file is trusted; tensor data is never copied. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "gguf/gguf_internal.h"

#define GGUF_HEADER_BYTES 24u /* magic, version, n_tensors u64, n_kv u64 */

bonsai_gguf_params bonsai_gguf_default_params(void)
{
    bonsai_gguf_params p = {BONSAI_Q2_AUTO, NULL, NULL};
    return p;
}

static bonsai_status map_file(const char *path, bonsai_gguf *g)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bonsai_fail(errno == ENOENT ? BONSAI_ERR_NOT_FOUND : BONSAI_ERR_IO,
                           "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        close(fd);
        return bonsai_fail(BONSAI_ERR_IO, "%s is not a regular file%s%s", path,
                           err ? ": " : "", err ? strerror(err) : "");
    }
    if ((uint64_t)st.st_size < GGUF_HEADER_BYTES) {
        close(fd);
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "%s is %lld bytes; a GGUF header needs %u", path,
                           (long long)st.st_size, GGUF_HEADER_BYTES);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED, "%s is too large to map here", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED)
        return bonsai_fail(BONSAI_ERR_IO, "cannot map %s: %s", path, strerror(err));
#ifdef MADV_HUGEPAGE
    /* A hint only (failure is harmless): pages read in from now on may come
     * as 2 MiB folios and be mapped as huge pages, which the weight streams
     * of decoding read ~10% faster per core (bench/NOTES.md, "Decode"). */
    (void)madvise(map, (size_t)st.st_size, MADV_HUGEPAGE);
#endif
    g->map = map;
    g->size = (size_t)st.st_size;
    return BONSAI_OK;
}

static bonsai_status read_header(bonsai_gguf *g, gguf_cursor *c, uint64_t *n_tensors,
                                 uint64_t *n_kv, const char *path)
{
    uint8_t magic[4] = {0};
    gguf_read_bytes(c, magic, 4);
    if (memcmp(magic, GGUF_MAGIC_BYTES, 4) != 0)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "%s is not a GGUF file: it starts with bytes %02x %02x %02x %02x, "
                           "expected 47 47 55 46 (\"GGUF\")", path, magic[0], magic[1],
                           magic[2], magic[3]);
    gguf_read_u32(c, &g->version);
    if (g->version == 1)
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "%s is GGUF version 1 (32-bit counts), which bonsai does not read; "
                           "expected version 2 or 3 (convert it with a current llama.cpp)",
                           path);
    if (g->version != 2 && g->version != 3)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "%s has GGUF version %u (0x%08x); expected 2 or 3%s", path,
                           g->version, g->version,
                           (g->version & 0xffff) == 0 ? " (a big-endian file?)" : "");
    gguf_read_u64(c, n_tensors);
    gguf_read_u64(c, n_kv);
    return BONSAI_OK;
}

/* general.alignment: absent -> 32; else a UINT32 power of two. */
static bonsai_status read_alignment(bonsai_gguf *g)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    long i = bonsai_gguf_find_key(g, "general.alignment");
    if (i < 0)
        return BONSAI_OK;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type != BONSAI_GGUF_UINT32)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key general.alignment has type %s; expected uint32",
                           gguf_type_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->value, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "key general.alignment is %u; expected a power of two", a);
    g->alignment = a;
    return BONSAI_OK;
}

static void report(const bonsai_gguf_params *p, const char *what, uint64_t done, uint64_t total)
{
    if (p->progress)
        p->progress(p->progress_user, what, done, total);
}

static bonsai_status check_params(const bonsai_gguf_params *params, const char *name,
                                  bonsai_gguf_params *p)
{
    *p = params ? *params : bonsai_gguf_default_params();
    if ((unsigned)p->q2_variant > BONSAI_Q2_GGML_G64)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "gguf open %s: q2_variant %d is not one of "
                           "AUTO, TQ2_0_G128, PRISM_G128, GGML_G64", name, (int)p->q2_variant);
    return BONSAI_OK;
}

/* Parses the bytes g->map[0, g->size); name is used in messages. */
static bonsai_status parse(bonsai_gguf *g, const bonsai_gguf_params *p, const char *name)
{
    if (g->size < GGUF_HEADER_BYTES)
        return bonsai_fail(BONSAI_ERR_FORMAT, "%s is %zu bytes; a GGUF header needs %u", name,
                           g->size, GGUF_HEADER_BYTES);
    report(p, "gguf", 0, 3);
    gguf_cursor c = {g->map, g->size, 0};
    uint64_t n_tensors = 0, n_kv = 0;
    bonsai_status s = read_header(g, &c, &n_tensors, &n_kv, name);
    if (s == BONSAI_OK)
        s = gguf_parse_metadata(g, &c, n_kv);
    if (s == BONSAI_OK)
        s = read_alignment(g);
    report(p, "gguf", 1, 3);
    if (s == BONSAI_OK)
        s = gguf_parse_tensor_infos(g, &c, n_tensors);
    if (s == BONSAI_OK) {
        /* the data section starts at the next multiple of the alignment */
        size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
        g->data_start = c.pos + pad < c.pos ? SIZE_MAX : c.pos + pad;
        s = gguf_place_tensors(g, p->q2_variant);
    }
    report(p, "gguf", 2, 3);
    if (s == BONSAI_OK)
        report(p, "gguf", 3, 3);
    return s;
}

bonsai_status bonsai_gguf_open(const char *path, const bonsai_gguf_params *params,
                               bonsai_gguf **out)
{
    if (!path || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf open: path or out is NULL");
    *out = NULL;
    bonsai_gguf_params p;
    bonsai_status s = check_params(params, path, &p);
    if (s != BONSAI_OK)
        return s;
    bonsai_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "gguf open %s: no memory", path);
    s = map_file(path, g);
    if (s != BONSAI_OK) {
        free(g);
        return s;
    }
    g->owns_map = 1;
    s = parse(g, &p, path);
    if (s != BONSAI_OK) {
        bonsai_gguf_close(g);
        return s;
    }
    *out = g;
    return BONSAI_OK;
}

bonsai_status bonsai_gguf_open_memory(const void *data, size_t size,
                                      const bonsai_gguf_params *params, bonsai_gguf **out)
{
    if (!data || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "gguf open (memory): data or out is NULL");
    *out = NULL;
    bonsai_gguf_params p;
    bonsai_status s = check_params(params, "(memory)", &p);
    if (s != BONSAI_OK)
        return s;
    bonsai_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "gguf open (memory): no memory");
    g->map = data;
    g->size = size;
    s = parse(g, &p, "(memory)");
    if (s != BONSAI_OK) {
        bonsai_gguf_close(g);
        return s;
    }
    *out = g;
    return BONSAI_OK;
}

void bonsai_gguf_close(bonsai_gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; g->kvs && i < g->n_kv; i++)
        free(g->kvs[i].strs);
    free(g->kvs);
    free(g->kv_by_key);
    free(g->key_pool.p);
    free(g->tensors);
    free(g->tensor_offsets);
    free(g->tensor_by_name);
    free(g->name_pool.p);
    free(g->name_offsets);
    if (g->map && g->owns_map)
        munmap((void *)g->map, g->size);
    free(g);
}

uint32_t bonsai_gguf_version(const bonsai_gguf *g)
{
    return g ? g->version : 0;
}

bonsai_q2_variant bonsai_gguf_q2_variant(const bonsai_gguf *g)
{
    return g ? g->q2_variant : BONSAI_Q2_AUTO;
}

size_t bonsai_gguf_n_tensors(const bonsai_gguf *g)
{
    return g ? g->n_tensors : 0;
}

const bonsai_gguf_tensor *bonsai_gguf_tensor_at(const bonsai_gguf *g, size_t i)
{
    return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const bonsai_gguf_tensor *bonsai_gguf_find_tensor(const bonsai_gguf *g, const char *name)
{
    if (!g || !name)
        return NULL;
    long i = gguf_index_find(g->tensor_by_name, g->n_tensors, name);
    return i < 0 ? NULL : &g->tensors[i];
}

/* The kernel cache file: header, checksum, atomic write, validation
 * (format in cache.h). Plain C and POSIX; tested without a GPU. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "cuda/cache.h"

uint64_t bonsai_hash64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

bonsai_status bonsai_cache_dir(const char *override, char *out, size_t cap)
{
    const char *env;
    int len;
    if (override && *override)
        len = snprintf(out, cap, "%s", override);
    else if ((env = getenv("BONSAI_CACHE_DIR")) && *env)
        len = snprintf(out, cap, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env)
        len = snprintf(out, cap, "%s/bonsai", env);
    else if ((env = getenv("HOME")) && *env)
        len = snprintf(out, cap, "%s/.cache/bonsai", env);
    else
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "kernel cache: no directory (BONSAI_CACHE_DIR, XDG_CACHE_HOME and "
                           "HOME are all unset)");
    if (len < 0 || (size_t)len >= cap)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "kernel cache: directory name longer than %zu",
                           cap - 1);
    return BONSAI_OK;
}

bonsai_status bonsai_cache_path(const char *dir, uint64_t key, char *out, size_t cap)
{
    int len = snprintf(out, cap, "%s/kernels-%016llx.cubin", dir, (unsigned long long)key);
    if (len < 0 || (size_t)len >= cap)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "kernel cache: path in %s longer than %zu", dir, cap - 1);
    return BONSAI_OK;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* mkdir -p */
static bonsai_status make_dirs(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return bonsai_fail(BONSAI_ERR_IO, "kernel cache: bad directory name '%s'", dir);
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return bonsai_fail(BONSAI_ERR_IO, "kernel cache: cannot create %s: %s", path,
                               strerror(errno));
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return bonsai_fail(BONSAI_ERR_IO, "kernel cache: %s is not a directory", dir);
    return BONSAI_OK;
}

static int write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

bonsai_status bonsai_cache_write(const char *dir, uint64_t key, const void *data, size_t n)
{
    if (n > BONSAI_CACHE_MAX_PAYLOAD)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "kernel cache: payload of %zu bytes > %u", n,
                           BONSAI_CACHE_MAX_PAYLOAD);
    bonsai_status s = make_dirs(dir);
    if (s != BONSAI_OK)
        return s;
    char path[4096], tmp[4200];
    if ((s = bonsai_cache_path(dir, key, path, sizeof path)) != BONSAI_OK)
        return s;
    static _Thread_local unsigned counter;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return bonsai_fail(BONSAI_ERR_IO, "kernel cache: cannot create %s: %s", tmp,
                           strerror(errno));
    unsigned char header[BONSAI_CACHE_HEADER_BYTES];
    memcpy(header, BONSAI_CACHE_MAGIC, 8);
    put_u32(header + 8, BONSAI_CACHE_VERSION);
    put_u32(header + 12, BONSAI_CACHE_HEADER_BYTES);
    put_u64(header + 16, key);
    put_u64(header + 24, n);
    put_u64(header + 32, bonsai_hash64(BONSAI_HASH64_INIT, data, n));
    int err = write_all(fd, header, sizeof header) || write_all(fd, data, n) || fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && !err) {
        err = 1;
        saved = errno;
    }
    if (!err && rename(tmp, path) != 0) {
        err = 1;
        saved = errno;
    }
    if (err) {
        unlink(tmp);
        return bonsai_fail(BONSAI_ERR_IO, "kernel cache: cannot write %s: %s", path,
                           strerror(saved));
    }
    return BONSAI_OK;
}

bonsai_status bonsai_cache_read(const char *dir, uint64_t key, void **data, size_t *n)
{
    char path[4096];
    bonsai_status s = bonsai_cache_path(dir, key, path, sizeof path);
    if (s != BONSAI_OK)
        return s;
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return bonsai_fail(BONSAI_ERR_NOT_FOUND, "kernel cache: no file %s", path);
        return bonsai_fail(BONSAI_ERR_IO, "kernel cache: cannot open %s: %s", path,
                           strerror(errno));
    }
    unsigned char header[BONSAI_CACHE_HEADER_BYTES];
    size_t got = fread(header, 1, sizeof header, f);
    if (got != sizeof header) {
        fclose(f);
        return bonsai_fail(BONSAI_ERR_FORMAT, "kernel cache: %s is truncated (%zu of %u header bytes)",
                           path, got, BONSAI_CACHE_HEADER_BYTES);
    }
    if (memcmp(header, BONSAI_CACHE_MAGIC, 8) != 0) {
        fclose(f);
        return bonsai_fail(BONSAI_ERR_FORMAT, "kernel cache: %s is not a bonsai cache file (bad magic)",
                           path);
    }
    uint32_t version = get_u32(header + 8), hbytes = get_u32(header + 12);
    uint64_t fkey = get_u64(header + 16), len = get_u64(header + 24), sum = get_u64(header + 32);
    if (version != BONSAI_CACHE_VERSION || hbytes != BONSAI_CACHE_HEADER_BYTES) {
        fclose(f);
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "kernel cache: %s has version %u / header %u, expected %u / %u", path,
                           version, hbytes, BONSAI_CACHE_VERSION, BONSAI_CACHE_HEADER_BYTES);
    }
    if (fkey != key) {
        fclose(f);
        return bonsai_fail(BONSAI_ERR_FORMAT, "kernel cache: %s holds key %016llx, expected %016llx",
                           path, (unsigned long long)fkey, (unsigned long long)key);
    }
    if (len == 0 || len > BONSAI_CACHE_MAX_PAYLOAD) {
        fclose(f);
        return bonsai_fail(BONSAI_ERR_FORMAT, "kernel cache: %s claims %llu payload bytes", path,
                           (unsigned long long)len);
    }
    unsigned char *buf = malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "kernel cache: %llu bytes for %s",
                           (unsigned long long)len, path);
    }
    got = fread(buf, 1, (size_t)len + 1, f); // one more: a longer file is also wrong
    fclose(f);
    if (got != len) {
        free(buf);
        return bonsai_fail(BONSAI_ERR_FORMAT, "kernel cache: %s holds %zu%s payload bytes, header says %llu",
                           path, got, got > len ? " or more" : "", (unsigned long long)len);
    }
    uint64_t actual = bonsai_hash64(BONSAI_HASH64_INIT, buf, (size_t)len);
    if (actual != sum) {
        free(buf);
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "kernel cache: %s is corrupt (checksum %016llx, header says %016llx)",
                           path, (unsigned long long)actual, (unsigned long long)sum);
    }
    *data = buf;
    *n = (size_t)len;
    return BONSAI_OK;
}

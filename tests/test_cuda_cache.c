/* The CUDA kernel cache file (src/cuda/cache.c), tested on the CPU: no GPU,
 * driver or NVRTC needed. Format, atomic write, and the refusal of every
 * kind of damaged or foreign file. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda/cache.h"
#include "harness.h"

static char root[256];

static void make_root(void)
{
    snprintf(root, sizeof root, "/tmp/bonsai-cache-test-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const unsigned char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_hash(void)
{
    // FNV-1a 64 reference values
    CHECK(bonsai_hash64(BONSAI_HASH64_INIT, "", 0) == 0xcbf29ce484222325ull, "hash of ''");
    CHECK(bonsai_hash64(BONSAI_HASH64_INIT, "a", 1) == 0xaf63dc4c8601ec8cull, "hash of 'a'");
    CHECK(bonsai_hash64(BONSAI_HASH64_INIT, "foobar", 6) == 0x85944171f73967e8ull,
          "hash of 'foobar'");
    uint64_t chained = bonsai_hash64(bonsai_hash64(BONSAI_HASH64_INIT, "foo", 3), "bar", 3);
    CHECK(chained == 0x85944171f73967e8ull, "chained hash equals whole hash");
}

static void test_dir_resolution(void)
{
    char out[512];
    setenv("BONSAI_CACHE_DIR", "/x/env", 1);
    setenv("XDG_CACHE_HOME", "/x/xdg", 1);
    setenv("HOME", "/x/home", 1);
    CHECK(bonsai_cache_dir("/x/param", out, sizeof out) == BONSAI_OK && !strcmp(out, "/x/param"),
          "parameter wins: %s", out);
    CHECK(bonsai_cache_dir(NULL, out, sizeof out) == BONSAI_OK && !strcmp(out, "/x/env"),
          "BONSAI_CACHE_DIR next: %s", out);
    unsetenv("BONSAI_CACHE_DIR");
    CHECK(bonsai_cache_dir("", out, sizeof out) == BONSAI_OK && !strcmp(out, "/x/xdg/bonsai"),
          "XDG_CACHE_HOME/bonsai next: %s", out);
    unsetenv("XDG_CACHE_HOME");
    CHECK(bonsai_cache_dir(NULL, out, sizeof out) == BONSAI_OK &&
              !strcmp(out, "/x/home/.cache/bonsai"),
          "HOME/.cache/bonsai last: %s", out);
    unsetenv("HOME");
    CHECK(bonsai_cache_dir(NULL, out, sizeof out) == BONSAI_ERR_INVALID_ARG,
          "no variable set -> INVALID_ARG");
    char tiny[8];
    CHECK(bonsai_cache_dir("/a/long/directory", tiny, sizeof tiny) == BONSAI_ERR_INVALID_ARG,
          "too long -> INVALID_ARG");
    CHECK(bonsai_cache_path("/a/long/directory", 1, tiny, sizeof tiny) ==
              BONSAI_ERR_BUFFER_TOO_SMALL,
          "path too long -> BUFFER_TOO_SMALL");
}

static void test_round_trip_and_layout(void)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/a/b/c", root); // parents created too
    const uint64_t key = rng_u64();
    size_t n = 1 + rng_u64() % 5000;
    unsigned char *payload = malloc(n);
    for (size_t i = 0; i < n; i++)
        payload[i] = (unsigned char)rng_u64();
    CHECK(bonsai_cache_write(dir, key, payload, n) == BONSAI_OK, "write: %s", bonsai_last_error());
    CHECK(count_entries(dir) == 1, "one file, no temporary left (%d entries)", count_entries(dir));
    bonsai_cache_path(dir, key, path, sizeof path);
    size_t file_n = 0;
    unsigned char *file = read_file(path, &file_n);
    CHECK(file && file_n == BONSAI_CACHE_HEADER_BYTES + n, "file size %zu = 40 + %zu", file_n, n);
    if (file && file_n == BONSAI_CACHE_HEADER_BYTES + n) {
        uint64_t fkey = 0, flen = 0;
        for (int i = 0; i < 8; i++) {
            fkey |= (uint64_t)file[16 + i] << (8 * i);
            flen |= (uint64_t)file[24 + i] << (8 * i);
        }
        CHECK(!memcmp(file, "BNSCUBIN", 8), "magic");
        CHECK(file[8] == 1 && file[9] == 0 && file[12] == 40, "version 1, header 40 (LE)");
        CHECK(fkey == key && flen == n, "key and length little-endian");
        CHECK(!memcmp(file + 40, payload, n), "payload verbatim");
    }
    free(file);
    void *back = NULL;
    size_t back_n = 0;
    CHECK(bonsai_cache_read(dir, key, &back, &back_n) == BONSAI_OK, "read: %s",
          bonsai_last_error());
    CHECK(back && back_n == n && !memcmp(back, payload, n), "read returns the payload");
    free(back);
    // overwrite with other content: the reader sees the new file whole
    payload[0] ^= 0xff;
    CHECK(bonsai_cache_write(dir, key, payload, n) == BONSAI_OK, "rewrite");
    CHECK(bonsai_cache_read(dir, key, &back, &back_n) == BONSAI_OK && back_n == n &&
              !memcmp(back, payload, n),
          "rewritten payload read back");
    free(back);
    CHECK(bonsai_cache_read(dir, key ^ 1, &back, &back_n) == BONSAI_ERR_NOT_FOUND && !back,
          "other key: NOT_FOUND");
    free(payload);
}

/* Each damaged variant of a good file must be refused with FORMAT, and a
 * fresh write must make the key readable again. */
static void test_damaged_files(void)
{
    char dir[512], path[600], other[600];
    snprintf(dir, sizeof dir, "%s/damaged", root);
    const uint64_t key = rng_u64() | 1;
    const size_t n = 64 + rng_u64() % 1000;
    unsigned char *payload = malloc(n);
    for (size_t i = 0; i < n; i++)
        payload[i] = (unsigned char)rng_u64();
    bonsai_cache_write(dir, key, payload, n);
    bonsai_cache_path(dir, key, path, sizeof path);
    size_t good_n = 0;
    unsigned char *good = read_file(path, &good_n);
    unsigned char *bad = malloc(good_n + 16);

    struct { const char *name; size_t cut; int flip_at; int append; } cases[] = {
        {"empty file", 0, -1, 0},
        {"header cut", 20, -1, 0},
        {"payload cut", good_n - 1, -1, 0},
        {"header only", 40, -1, 0},
        {"payload byte flipped", good_n, 40 + (int)(n / 2), 0},
        {"last byte flipped", good_n, (int)good_n - 1, 0},
        {"magic flipped", good_n, 3, 0},
        {"version flipped", good_n, 8, 0},
        {"key flipped", good_n, 17, 0},
        {"length flipped", good_n, 24, 0},
        {"checksum flipped", good_n, 33, 0},
        {"bytes appended", good_n, -1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(bad, good, good_n);
        size_t len = cases[c].cut;
        if (cases[c].flip_at >= 0)
            bad[cases[c].flip_at] ^= 0x10;
        if (cases[c].append)
            len += 7;
        write_file(path, bad, len);
        void *back = (void *)1;
        size_t back_n = 99;
        bonsai_status s = bonsai_cache_read(dir, key, &back, &back_n);
        CHECK(s == BONSAI_ERR_FORMAT && back == NULL && back_n == 0, "%s: %s (%s)", cases[c].name,
              bonsai_status_name(s), bonsai_last_error());
        CHECK(strstr(bonsai_last_error(), path) != NULL, "%s: message names the file: %s",
              cases[c].name, bonsai_last_error());
        CHECK(bonsai_cache_write(dir, key, payload, n) == BONSAI_OK &&
                  bonsai_cache_read(dir, key, &back, &back_n) == BONSAI_OK && back_n == n,
              "%s: rebuilt file is read", cases[c].name);
        if (back != (void *)1)
            free(back);
    }
    // a valid file of another key under this key's name (foreign)
    const uint64_t key2 = key + 2;
    bonsai_cache_write(dir, key2, payload, n);
    bonsai_cache_path(dir, key2, other, sizeof other);
    rename(other, path);
    void *back = NULL;
    size_t back_n = 0;
    bonsai_status s = bonsai_cache_read(dir, key, &back, &back_n);
    CHECK(s == BONSAI_ERR_FORMAT && strstr(bonsai_last_error(), "key"),
          "file of another key: %s (%s)", bonsai_status_name(s), bonsai_last_error());
    // a directory where the file should be
    remove(path);
    mkdir(path, 0755);
    s = bonsai_cache_read(dir, key, &back, &back_n);
    CHECK(s == BONSAI_ERR_FORMAT || s == BONSAI_ERR_IO, "a directory in place of the file: %s",
          bonsai_status_name(s));
    rmdir(path);
    free(good);
    free(bad);
    free(payload);
}

static void test_unwritable(void)
{
    char file[512], dir[600];
    snprintf(file, sizeof file, "%s/plain-file", root);
    write_file(file, (const unsigned char *)"x", 1);
    snprintf(dir, sizeof dir, "%s/sub", file); // a directory below a regular file
    unsigned char data[100] = {1, 2, 3};
    bonsai_status s = bonsai_cache_write(dir, 7, data, sizeof data);
    CHECK(s == BONSAI_ERR_IO, "directory under a file: %s", bonsai_status_name(s));
    CHECK(strstr(bonsai_last_error(), "plain-file") != NULL, "message names the path: %s",
          bonsai_last_error());
    void *back = NULL;
    size_t n = 0;
    s = bonsai_cache_read(dir, 7, &back, &n);
    CHECK(s == BONSAI_ERR_NOT_FOUND || s == BONSAI_ERR_IO, "read from it: %s",
          bonsai_status_name(s));

    char ro[512];
    snprintf(ro, sizeof ro, "%s/read-only", root);
    mkdir(ro, 0500);
    if (access(ro, W_OK) == 0) {
        skip("read-only directory case: running as root, permissions do not bind");
    } else {
        s = bonsai_cache_write(ro, 7, data, sizeof data);
        CHECK(s == BONSAI_ERR_IO, "read-only directory: %s", bonsai_status_name(s));
        CHECK(count_entries(ro) == 0, "nothing left behind in the read-only directory");
    }
    chmod(ro, 0700);
    CHECK(bonsai_cache_write(root, 1, data, (size_t)BONSAI_CACHE_MAX_PAYLOAD + 1) ==
              BONSAI_ERR_INVALID_ARG,
          "oversized payload refused");
}

int main(void)
{
    harness_init();
    make_root();
    test_hash();
    test_round_trip_and_layout();
    test_damaged_files();
    test_unwritable();
    test_dir_resolution();
    remove_tree(root);
    return harness_finish();
}

/* bench_common: clock, statistics, timing loop, host facts (LLC, memory,
 * read-bandwidth roof), random data and flag parsing for `bonsai bench`.
 * See bench_common.h. This file is compiled without SIMD flags; the roof's
 * read loop uses 16-byte generic vectors (SSE2 / NEON, the baseline). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

/* ---- clock and statistics ------------------------------------------------ */

double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

bench_stats bench_stats_of(double *samples, int n)
{
    bench_stats s = {0};
    if (n <= 0)
        return s;
    qsort(samples, (size_t)n, sizeof *samples, cmp_double);
    s.n = n;
    s.min = samples[0];
    s.max = samples[n - 1];
    s.median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += samples[i];
    s.mean = sum / n;
    double sq = 0;
    for (int i = 0; i < n; i++)
        sq += (samples[i] - s.mean) * (samples[i] - s.mean);
    s.stddev = n > 1 ? sqrt(sq / (n - 1)) : 0;
    return s;
}

int bench_time_calls(bench_call_fn fn, void *arg, int warmup, int reps, bench_stats *out)
{
    enum { AUTO_MAX = 1000, AUTO_MIN = 10, AUTO_MIN_SLOW = 3 };
    for (int w = 0; w < warmup; w++) {
        int rc = fn(arg, -1);
        if (rc)
            return rc;
    }
    int cap = reps > 0 ? reps : AUTO_MAX;
    double *samples = malloc((size_t)cap * sizeof *samples);
    if (!samples)
        return -1;
    double start = bench_now_us();
    int n = 0;
    while (n < cap) {
        double t0 = bench_now_us();
        int rc = fn(arg, n);
        double t1 = bench_now_us();
        if (rc) {
            free(samples);
            return rc;
        }
        samples[n++] = t1 - t0;
        if (reps <= 0) {
            double elapsed_s = (t1 - start) * 1e-6;
            if ((n >= AUTO_MIN && elapsed_s >= 0.5) || (n >= AUTO_MIN_SLOW && elapsed_s >= 3.0))
                break;
        }
    }
    *out = bench_stats_of(samples, n);
    free(samples);
    return 0;
}

/* ---- the host ------------------------------------------------------------ */

static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    return ok ? 0 : -1;
}

size_t bench_llc_bytes(int *level)
{
    size_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; i++) {
        char path[128], type[32], text[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (read_line(path, type, sizeof type) != 0)
            break;
        if (strncmp(type, "Data", 4) != 0 && strncmp(type, "Unified", 7) != 0)
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (read_line(path, text, sizeof text) != 0)
            continue;
        int lv = atoi(text);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (read_line(path, text, sizeof text) != 0)
            continue;
        char *end;
        unsigned long long v = strtoull(text, &end, 10);
        if (*end == 'K')
            v <<= 10;
        else if (*end == 'M')
            v <<= 20;
        else if (*end == 'G')
            v <<= 30;
        if (lv > best_level || (lv == best_level && v > best)) {
            best_level = lv;
            best = (size_t)v;
        }
    }
    if (level)
        *level = best_level;
    return best;
}

size_t bench_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    size_t bytes = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            bytes = (size_t)kb << 10;
            break;
        }
    }
    fclose(f);
    return bytes;
}

size_t bench_default_roof_bytes(void)
{
    size_t bytes = 256 * BENCH_MIB, llc = bench_llc_bytes(NULL);
    if (llc > 0 && llc <= SIZE_MAX / 8 && 8 * llc > bytes)
        bytes = 8 * llc;
    return bytes;
}

typedef uint64_t bench_v2u64 __attribute__((vector_size(16)));

/* Sum of a slice read as 64-byte lines: four independent vector sums so the
 * loads, not the adds, set the pace. p is 64-byte aligned. */
static uint64_t sum_slice(const unsigned char *p, size_t bytes)
{
    const bench_v2u64 *v = (const bench_v2u64 *)(const void *)p;
    bench_v2u64 a0 = {0, 0}, a1 = {0, 0}, a2 = {0, 0}, a3 = {0, 0};
    size_t lines = bytes / 64;
    for (size_t i = 0; i < lines; i++) { // [lines][4 x 16 B]
        a0 += v[4 * i];
        a1 += v[4 * i + 1];
        a2 += v[4 * i + 2];
        a3 += v[4 * i + 3];
    }
    a0 += a1 + a2 + a3;
    return a0[0] + a0[1];
}

typedef struct roof_job {
    const unsigned char *buf;
    size_t slice;             /* bytes per thread, a multiple of 64 */
    int threads, passes;      /* passes includes the warm-up pass */
    pthread_barrier_t barrier;
    pthread_mutex_t lock;     /* with start: holds workers until all exist */
    pthread_cond_t start;
    int state;                /* 0 wait, 1 go, -1 abort */
    double *pass_us;
    volatile uint64_t sink[64];
} roof_job;

typedef struct roof_worker {
    roof_job *job;
    int id;
} roof_worker;

static void *roof_run(void *arg)
{
    roof_worker *w = arg;
    roof_job *job = w->job;
    pthread_mutex_lock(&job->lock);
    while (job->state == 0)
        pthread_cond_wait(&job->start, &job->lock);
    int go = job->state > 0;
    pthread_mutex_unlock(&job->lock);
    if (!go)
        return NULL;
    uint64_t total = 0;
    for (int pass = 0; pass < job->passes; pass++) {
        pthread_barrier_wait(&job->barrier);
        double t0 = bench_now_us();
        total += sum_slice(job->buf + (size_t)w->id * job->slice, job->slice);
        pthread_barrier_wait(&job->barrier);
        if (w->id == 0)
            job->pass_us[pass] = bench_now_us() - t0;
    }
    job->sink[w->id % 64] = total;
    return NULL;
}

struct bench_roof_buffer {
    unsigned char *buf;
    size_t slice, bytes; /* bytes = slice * threads */
    int threads;
};

bench_roof_buffer *bench_roof_buffer_new(int threads, size_t bytes)
{
    if (threads < 1) {
        fprintf(stderr, "bench: read roof needs threads >= 1\n");
        return NULL;
    }
    size_t slice = bytes / (size_t)threads / 64 * 64;
    if (slice == 0) {
        fprintf(stderr, "bench: read roof buffer of %zu bytes is too small for %d threads\n",
                bytes, threads);
        return NULL;
    }
    bench_roof_buffer *b = calloc(1, sizeof *b);
    bytes = slice * (size_t)threads;
    unsigned char *buf = bench_alloc(bytes, 1);
    if (!b || !buf) {
        fprintf(stderr, "bench: no memory for the %zu MiB read-roof buffer\n", bytes / BENCH_MIB);
        free(b);
        free(buf);
        return NULL;
    }
    for (size_t i = 0; i < bytes; i++) /* touch every page with nonzero data */
        buf[i] = (unsigned char)(i * 131u + 7u);
    *b = (bench_roof_buffer){buf, slice, bytes, threads};
    return b;
}

void bench_roof_buffer_free(bench_roof_buffer *b)
{
    if (b)
        free(b->buf);
    free(b);
}

int bench_roof_measure(bench_roof_buffer *b, int passes, bench_roof *out)
{
    if (passes < 1) {
        fprintf(stderr, "bench: read roof needs passes >= 1\n");
        return -1;
    }
    const int threads = b->threads;
    roof_job *job = calloc(1, sizeof *job);
    roof_worker *workers = calloc((size_t)threads, sizeof *workers);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    double *pass_us = calloc((size_t)passes + 1, sizeof *pass_us);
    int rc = -1;
    if (!job || !workers || !tids || !pass_us) {
        fprintf(stderr, "bench: no memory for the read-roof threads\n");
        goto done;
    }
    job->buf = b->buf;
    job->slice = b->slice;
    job->threads = threads;
    job->passes = passes + 1;
    job->pass_us = pass_us;
    pthread_barrier_init(&job->barrier, NULL, (unsigned)threads);
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->start, NULL);
    int started = 1;
    for (int t = 0; t < threads; t++)
        workers[t] = (roof_worker){job, t};
    for (int t = 1; t < threads; t++, started++)
        if (pthread_create(&tids[t], NULL, roof_run, &workers[t]) != 0)
            break;
    pthread_mutex_lock(&job->lock);
    job->state = started == threads ? 1 : -1;
    pthread_cond_broadcast(&job->start);
    pthread_mutex_unlock(&job->lock);
    if (started == threads)
        roof_run(&workers[0]);
    for (int t = 1; t < started; t++)
        pthread_join(tids[t], NULL);
    pthread_barrier_destroy(&job->barrier);
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->start);
    if (started < threads) {
        fprintf(stderr, "bench: could not start %d read-roof threads\n", threads);
        goto done;
    }
    out->us = bench_stats_of(pass_us + 1, passes); /* pass 0 is the warm-up */
    out->gbps = out->us.median > 0 ? (double)b->bytes / out->us.median * 1e-3 : 0;
    out->bytes = b->bytes;
    out->threads = threads;
    out->passes = passes;
    rc = 0;
done:
    free(job);
    free(workers);
    free(tids);
    free(pass_us);
    return rc;
}

int bench_read_roof(int threads, size_t bytes, int passes, bench_roof *out)
{
    bench_roof_buffer *b = bench_roof_buffer_new(threads, bytes);
    if (!b)
        return -1;
    int rc = bench_roof_measure(b, passes, out);
    bench_roof_buffer_free(b);
    return rc;
}

/* ---- data ------------------------------------------------------------------ */

uint64_t bench_rng_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t bench_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
}

static float rng_unit(uint64_t *rng) /* [0, 1) */
{
    return (float)((bench_rng_u64(rng) >> 40) * (1.0 / 16777216.0));
}

/* Offset of the fp16 scale inside a block. */
static size_t scale_offset(bonsai_type t)
{
    return t == BONSAI_TYPE_TQ2_0_G128 ? 32 : 0;
}

void bench_random_weights(bonsai_type t, void *w, size_t bytes, uint64_t *rng)
{
    unsigned char *p = w;
    size_t words = bytes / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t v = bench_rng_u64(rng);
        memcpy(p + 8 * i, &v, 8);
    }
    for (size_t i = words * 8; i < bytes; i++)
        p[i] = (unsigned char)bench_rng_u64(rng);
    size_t bb = bonsai_type_block_bytes(t);
    if (bb == 0)
        return;
    if (bonsai_type_block_elems(t) == 1) { /* float types: values in [-1, 1) */
        for (size_t i = 0; i < bytes / bb; i++) {
            float f = 2 * rng_unit(rng) - 1;
            if (t == BONSAI_TYPE_F32) {
                memcpy(p + i * 4, &f, 4);
            } else {
                uint16_t h = t == BONSAI_TYPE_F16 ? bonsai_fp32_to_fp16(f) : bonsai_fp32_to_bf16(f);
                memcpy(p + i * 2, &h, 2);
            }
        }
        return;
    }
    for (size_t b = 0; b < bytes / bb; b++) {
        uint16_t d = bonsai_fp32_to_fp16(0.01f + 0.09f * rng_unit(rng));
        p[b * bb + scale_offset(t)] = (unsigned char)d;
        p[b * bb + scale_offset(t) + 1] = (unsigned char)(d >> 8);
    }
}

void bench_random_floats(float *x, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int j = 0; j < 4; j++)
            s += 2 * rng_unit(rng) - 1;
        x[i] = s * 0.8660254f;
    }
}

void *bench_alloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t bytes = (n * size + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

/* ---- flags ----------------------------------------------------------------- */

int bench_flag_is(const char *arg, const char *flag)
{
    size_t n = strlen(flag);
    return strncmp(arg, flag, n) == 0 && (arg[n] == '\0' || (arg[n] == '=' && flag[1] == '-'));
}

const char *bench_flag_value(const char *cmd, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    const char *eq = arg[0] == '-' && arg[1] == '-' ? strchr(arg, '=') : NULL;
    if (eq)
        return eq + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value (see --help)\n", cmd, arg);
        return NULL;
    }
    return argv[++*i];
}

int bench_parse_long(const char *cmd, const char *flag, const char *text, long min, long max,
                     long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s: %s expects an integer in [%ld, %ld], got '%s'\n", cmd, flag, min, max,
                text);
        return -1;
    }
    *out = v;
    return 0;
}

int bench_for_each_item(const char *list, int (*item)(void *ctx, const char *piece), void *ctx)
{
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char piece[64];
        if (len >= sizeof piece)
            len = sizeof piece - 1;
        memcpy(piece, p, len);
        piece[len] = '\0';
        if (len > 0) {
            int rc = item(ctx, piece);
            if (rc)
                return rc;
        }
        p += comma ? (size_t)(comma - p) + 1 : strlen(p);
    }
    return 0;
}

int bench_parse_format(const char *cmd, const char *flag, const char *text, bench_format *out)
{
    if (strcmp(text, "md") == 0)
        *out = BENCH_FORMAT_MD;
    else if (strcmp(text, "json") == 0)
        *out = BENCH_FORMAT_JSON;
    else {
        fprintf(stderr, "%s: %s expects md or json, got '%s'\n", cmd, flag, text);
        return -1;
    }
    return 0;
}

/* Shared pieces of `bonsai bench`: the clock and statistics, the timing
 * loop (warm-up, then medians over repetitions), the host's read-bandwidth
 * roof, cache and memory sizes from sysfs/procfs, random weight blocks,
 * flag parsing helpers, the option set of the kernel benches (shared by the
 * CPU and CUDA backends) and the report writer (markdown table or JSON
 * array on stdout). Messages go to stderr; stdout carries only the report.
 *
 * Exit codes of every bench: 0 done, 1 a run-time failure (library error,
 * out of memory), 2 a bad flag or value (the message names the flag). */
#ifndef BONSAI_CLI_BENCH_COMMON_H
#define BONSAI_CLI_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bonsai/bonsai.h"

#define BENCH_EXIT_OK 0
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2

#define BENCH_MIB ((size_t)1 << 20)

/* ---- clock and statistics ------------------------------------------------ */

/* CLOCK_MONOTONIC in microseconds. */
double bench_now_us(void);

typedef struct bench_stats {
    double median, mean, stddev, min, max; /* stddev: sample (n - 1) */
    int n;
} bench_stats;

/* Statistics of n samples (sorts them in place); all zero when n == 0. */
bench_stats bench_stats_of(double *samples, int n);

/* One timed call; rep counts the timed calls from 0 (warm-up calls get -1).
 * Returns 0 on success; nonzero stops the timing loop. */
typedef int (*bench_call_fn)(void *arg, int rep);

/* Calls fn warmup times untimed, then times each call separately.
 * reps > 0: exactly reps timed calls. reps <= 0 (auto): at least 10 calls
 * and 0.5 s, or at least 3 calls once 3 s have passed; at most 1000.
 * Returns fn's nonzero result, -1 when out of memory, else 0. */
int bench_time_calls(bench_call_fn fn, void *arg, int warmup, int reps, bench_stats *out);

/* ---- the host ------------------------------------------------------------ */

/* Size in bytes of the largest data or unified cache of cpu0 (sysfs), and
 * its level in *level when level is not NULL; 0 when unknown. */
size_t bench_llc_bytes(int *level);

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
size_t bench_mem_available(void);

typedef struct bench_roof {
    double gbps;        /* median over passes, 1e9 bytes per second */
    bench_stats us;     /* per-pass times */
    size_t bytes;       /* buffer size */
    int threads, passes;
} bench_roof;

/* Host read bandwidth: threads read disjoint slices of one buffer of bytes,
 * summing the data so no read can be dropped, passes times after one
 * warm-up pass; the median pass gives gbps. Returns 0, or -1 with a message
 * on stderr (out of memory, thread creation). */
int bench_read_roof(int threads, size_t bytes, int passes, bench_roof *out);

/* The same with the buffer kept between measurements (allocating and
 * touching 256 MiB costs far more than reading it): new returns NULL with
 * a message on stderr; measure returns 0 or -1 as bench_read_roof. */
typedef struct bench_roof_buffer bench_roof_buffer;
bench_roof_buffer *bench_roof_buffer_new(int threads, size_t bytes);
int bench_roof_measure(bench_roof_buffer *b, int passes, bench_roof *out);
void bench_roof_buffer_free(bench_roof_buffer *b);

/* The default roof buffer: 256 MiB, or 8 x LLC when that is larger. */
size_t bench_default_roof_bytes(void);

/* ---- data ------------------------------------------------------------------ */

/* splitmix64 */
uint64_t bench_rng_u64(uint64_t *state);
/* Random seed from the clock and pid. */
uint64_t bench_seed(void);

/* Fills bytes of blocks of type t with random codes and fp16 scales in
 * [0.01, 0.1) (valid blocks for every block type; float types get random
 * values in [-1, 1)). bytes must be a whole number of blocks. */
void bench_random_weights(bonsai_type t, void *w, size_t bytes, uint64_t *rng);

/* n floats, roughly normal with mean 0 and sd 1. */
void bench_random_floats(float *x, size_t n, uint64_t *rng);

/* Zeroed memory aligned to 64 bytes; NULL on failure or overflow. free() it. */
void *bench_alloc(size_t n, size_t size);

/* ---- flags ----------------------------------------------------------------- */

/* For a flag at argv[*i] that takes a value: returns the value (from the
 * next argument, or after '=' in --flag=value) and advances *i; prints
 * "CMD: FLAG needs a value" and returns NULL when there is none. */
const char *bench_flag_value(const char *cmd, int argc, char **argv, int *i);

/* If arg is flag itself or "flag=...", 1; else 0. */
int bench_flag_is(const char *arg, const char *flag);

/* Parses a whole decimal integer in [min, max]; else prints
 * "CMD: FLAG expects an integer in [min, max], got 'text'" and returns -1. */
int bench_parse_long(const char *cmd, const char *flag, const char *text, long min, long max,
                     long *out);

/* Splits a comma-separated list: calls item(ctx, piece) for every non-empty
 * piece (pieces up to 63 characters); returns the first nonzero result. */
int bench_for_each_item(const char *list, int (*item)(void *ctx, const char *piece), void *ctx);

/* ---- report ---------------------------------------------------------------- */

typedef enum bench_format { BENCH_FORMAT_MD, BENCH_FORMAT_JSON } bench_format;

/* "md" or "json"; else prints "CMD: FLAG expects md or json" and returns -1. */
int bench_parse_format(const char *cmd, const char *flag, const char *text, bench_format *out);

/* A table of rows of named fields. Markdown: one column per key in order of
 * first appearance, "-" where a row lacks the key. JSON: an array with one
 * object per row, holding the row's own fields. */
typedef struct bench_report bench_report;

bench_report *bench_report_new(void); /* NULL when out of memory */
void bench_report_free(bench_report *r);
/* Starts a new row; later puts fill it. */
void bench_report_row(bench_report *r);
void bench_put_str(bench_report *r, const char *key, const char *value);
void bench_put_int(bench_report *r, const char *key, long long value);
void bench_put_num(bench_report *r, const char *key, double value, int decimals);
void bench_put_bool(bench_report *r, const char *key, int value);
/* Markdown: "mean ± sd"; JSON: key = mean and key_stddev = sd. */
void bench_put_mean_sd(bench_report *r, const char *key, double mean, double sd, int decimals);
/* Leaves key out of one format: BENCH_FORMAT_MD or BENCH_FORMAT_JSON. */
void bench_report_hide(bench_report *r, const char *key, bench_format in);
/* Writes the report; returns -1 if a put ran out of memory earlier or the
 * write failed, else 0. */
int bench_report_print(const bench_report *r, bench_format f, FILE *out);

/* ---- kernel benches: options shared by the CPU and CUDA backends ---------- */

#define BENCH_MAX_ITEMS 32

typedef enum bench_mode { BENCH_MODE_F32, BENCH_MODE_Q8 } bench_mode;

typedef struct bench_shape {
    size_t rows, k;
} bench_shape;

typedef struct bench_kernel_options {
    bonsai_type types[BENCH_MAX_ITEMS];
    int n_types;
    bench_mode modes[BENCH_MAX_ITEMS];
    int n_modes;
    bench_shape shapes[BENCH_MAX_ITEMS];
    int n_shapes;
    size_t tokens[BENCH_MAX_ITEMS];
    int n_tokens;
    bonsai_cpu_tier tiers[BENCH_MAX_ITEMS]; /* CPU backend only */
    int n_tiers;
    int threads;        /* 0: one per physical core */
    int hot, cold;      /* which cache states to run (default hot only) */
    int reps;           /* 0: auto (see bench_time_calls) */
    size_t roof_bytes;  /* 0: bench_default_roof_bytes() */
    bench_format format;
    int help;           /* --help was given */
} bench_kernel_options;

const char *bench_mode_name(bench_mode m);

/* Parses `bonsai bench kernels` flags (argv[0] is the subcommand) and fills
 * the defaults: q1_0_g128, modes q8 and f32, the Bonsai-8B shapes, n = 1,
 * tier auto, hot. Returns 0, or BENCH_EXIT_USAGE after printing what is
 * wrong. cmd names the command in messages ("bonsai bench kernels"). */
int bench_kernel_options_parse(const char *cmd, int argc, char **argv, bench_kernel_options *o);
void bench_kernel_options_usage(FILE *f);

/* ---- the benches: one entry point per (what, backend) --------------------
 * Each takes argv[0] = the bench's name ("kernels") with --backend removed
 * and returns an exit code; cmd_bench.c's table lists them. */

int bench_kernels_cpu(int argc, char **argv);
int bench_model_cpu(int argc, char **argv);
int bench_kernels_cuda(int argc, char **argv); /* bench_cuda.c */

#endif

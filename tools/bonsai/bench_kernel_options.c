/* The flags of `bonsai bench kernels`, shared by the CPU and CUDA backends:
 * parsing, validation (every bad value names its flag, exit code 2) and
 * the defaults (the Bonsai-8B matrix shapes). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

static const bench_shape bonsai_8b_shapes[] = {
    {4096, 4096}, {6144, 4096}, {24576, 4096}, {4096, 12288}, {151936, 4096},
};

/* Shapes up to 2^24 rows by 2^24 inputs: far past any real model, small
 * enough that rows * k and the byte counts fit comfortably in size_t. */
#define MAX_DIM ((size_t)1 << 24)

const char *bench_mode_name(bench_mode m)
{
    return m == BENCH_MODE_Q8 ? "q8" : "f32";
}

void bench_kernel_options_usage(FILE *f)
{
    fprintf(f,
        "usage: bonsai bench kernels [options]\n"
        "\n"
        "Times the matmul kernels (GEMV for n = 1, GEMM otherwise) on random weights\n"
        "and measures, in the same run, the host's read bandwidth they are judged\n"
        "against. List flags take comma lists and may be repeated; every combination\n"
        "runs, so ratios come from one run.\n"
        "\n"
        "  --type T        q1_0_g128 (q1), tq2_0_g128 (tq2), pq2_0, q2_0_g64 [q1_0_g128]\n"
        "  --mode M        f32 | q8: activation mode [q8,f32]\n"
        "  --shape RxK     weight rows x input features, K a multiple of 128\n"
        "                  [Bonsai-8B: 4096x4096,6144x4096,24576x4096,4096x12288,151936x4096]\n"
        "  -n N            tokens per call [1]\n"
        "  -t N            threads [one per physical core: %d]\n"
        "  --tier T        CPU tier: auto, scalar, avx2, avx512, neon [auto]\n"
        "  --hot           same weights every call (the default)\n"
        "  --cold          rotate over weight copies several times the last-level\n"
        "                  cache, so every call reads from DRAM (with --hot: both)\n"
        "  -r N            timed calls per case [auto: >= 10 calls and 0.5 s,\n"
        "                  or >= 3 calls once 3 s passed]\n"
        "  --roof-mib N    read-bandwidth buffer in MiB [256, or 8 x LLC if larger]\n"
        "  -o md|json      output: markdown table or JSON array on stdout [md]\n"
        "  -h, --help      this text\n"
        "\n"
        "Per case: op, type, mode, tier, threads, rows, k, n, cache (hot/cold), median\n"
        "microseconds, weight GB/s (weight bytes / time), GFLOP/s (2 rows k n / time),\n"
        "roof_frac (weight GB/s / measured read GB/s), quantize time (q8).\n",
        bonsai_physical_cores());
}

typedef struct parse_ctx {
    const char *cmd, *flag;
    bench_kernel_options *o;
} parse_ctx;

static int too_many(const parse_ctx *p)
{
    fprintf(stderr, "%s: %s: at most %d values\n", p->cmd, p->flag, BENCH_MAX_ITEMS);
    return BENCH_EXIT_USAGE;
}

static int add_type(void *arg, const char *text)
{
    parse_ctx *p = arg;
    bonsai_type t;
    const char *name = strcmp(text, "q1") == 0 ? "q1_0_g128"
                       : strcmp(text, "tq2") == 0 ? "tq2_0_g128" : text;
    if (bonsai_type_from_name(name, &t) != BONSAI_OK || bonsai_type_block_elems(t) == 1) {
        fprintf(stderr,
                "%s: %s '%s' is not a weight type (q1_0_g128, tq2_0_g128, pq2_0, q2_0_g64)\n",
                p->cmd, p->flag, text);
        return BENCH_EXIT_USAGE;
    }
    if (p->o->n_types == BENCH_MAX_ITEMS)
        return too_many(p);
    p->o->types[p->o->n_types++] = t;
    return 0;
}

static int add_mode(void *arg, const char *text)
{
    parse_ctx *p = arg;
    bench_mode m;
    if (strcmp(text, "f32") == 0)
        m = BENCH_MODE_F32;
    else if (strcmp(text, "q8") == 0)
        m = BENCH_MODE_Q8;
    else {
        fprintf(stderr, "%s: %s expects f32 or q8, got '%s'\n", p->cmd, p->flag, text);
        return BENCH_EXIT_USAGE;
    }
    if (p->o->n_modes == BENCH_MAX_ITEMS)
        return too_many(p);
    p->o->modes[p->o->n_modes++] = m;
    return 0;
}

static int parse_dim(const char *s, char **end, size_t *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, end, 10);
    if (errno || v == 0 || v > MAX_DIM)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int add_shape(void *arg, const char *text)
{
    parse_ctx *p = arg;
    bench_shape s;
    char *end;
    if (parse_dim(text, &end, &s.rows) != 0 || (*end != 'x' && *end != 'X') ||
        parse_dim(end + 1, &end, &s.k) != 0 || *end != '\0') {
        fprintf(stderr, "%s: %s expects ROWSxK with 1 <= ROWS, K <= %zu, got '%s'\n", p->cmd,
                p->flag, MAX_DIM, text);
        return BENCH_EXIT_USAGE;
    }
    if (s.k % BONSAI_QK != 0) {
        fprintf(stderr, "%s: %s %s: k = %zu is not a multiple of %d\n", p->cmd, p->flag, text,
                s.k, BONSAI_QK);
        return BENCH_EXIT_USAGE;
    }
    if (p->o->n_shapes == BENCH_MAX_ITEMS)
        return too_many(p);
    p->o->shapes[p->o->n_shapes++] = s;
    return 0;
}

static int add_tokens(void *arg, const char *text)
{
    parse_ctx *p = arg;
    long n;
    if (bench_parse_long(p->cmd, p->flag, text, 1, 65536, &n) != 0)
        return BENCH_EXIT_USAGE;
    if (p->o->n_tokens == BENCH_MAX_ITEMS)
        return too_many(p);
    p->o->tokens[p->o->n_tokens++] = (size_t)n;
    return 0;
}

static int add_tier(void *arg, const char *text)
{
    parse_ctx *p = arg;
    int found = -1;
    for (int t = 0; t < BONSAI_TIER_COUNT && found < 0; t++) {
        const char *name = bonsai_cpu_tier_name((bonsai_cpu_tier)t);
        if (name && strcmp(name, text) == 0)
            found = t;
    }
    if (found < 0) {
        fprintf(stderr, "%s: %s expects auto, scalar, avx2, avx512 or neon, got '%s'\n", p->cmd,
                p->flag, text);
        return BENCH_EXIT_USAGE;
    }
    if (p->o->n_tiers == BENCH_MAX_ITEMS)
        return too_many(p);
    p->o->tiers[p->o->n_tiers++] = (bonsai_cpu_tier)found;
    return 0;
}

/* The list flags: the first use replaces the default. */
typedef struct list_flag {
    const char *name, *alias;
    int (*add)(void *, const char *);
    size_t count_offset; /* of the list's int count in bench_kernel_options */
} list_flag;

#define COUNT(field) offsetof(bench_kernel_options, field)
static const list_flag list_flags[] = {
    {"--type", NULL, add_type, COUNT(n_types)},
    {"--mode", NULL, add_mode, COUNT(n_modes)},
    {"--shape", NULL, add_shape, COUNT(n_shapes)},
    {"-n", "--tokens", add_tokens, COUNT(n_tokens)},
    {"--tier", NULL, add_tier, COUNT(n_tiers)},
};
#undef COUNT

int bench_kernel_options_parse(const char *cmd, int argc, char **argv, bench_kernel_options *o)
{
    memset(o, 0, sizeof *o);
    o->format = BENCH_FORMAT_MD;
    int given_hot = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            o->help = 1;
            return 0;
        }
        if (strcmp(arg, "--hot") == 0) {
            given_hot = 1;
            continue;
        }
        if (strcmp(arg, "--cold") == 0) {
            o->cold = 1;
            continue;
        }
        int matched = 0;
        for (size_t f = 0; f < sizeof list_flags / sizeof list_flags[0] && !matched; f++) {
            const list_flag *lf = &list_flags[f];
            const char *name = bench_flag_is(arg, lf->name) ? lf->name
                               : lf->alias && bench_flag_is(arg, lf->alias) ? lf->alias : NULL;
            if (!name)
                continue;
            matched = 1;
            const char *value = bench_flag_value(cmd, argc, argv, &i);
            if (!value)
                return BENCH_EXIT_USAGE;
            parse_ctx p = {cmd, name, o};
            const int *count = (const int *)(const void *)((const char *)o + lf->count_offset);
            int before = *count;
            int rc = bench_for_each_item(value, lf->add, &p);
            if (rc)
                return rc;
            if (*count == before) {
                fprintf(stderr, "%s: %s needs a value, got '%s'\n", cmd, name, value);
                return BENCH_EXIT_USAGE;
            }
        }
        if (matched)
            continue;
        long v;
        const char *value;
        if (bench_flag_is(arg, "-t") || bench_flag_is(arg, "--threads")) {
            if (!(value = bench_flag_value(cmd, argc, argv, &i)) ||
                bench_parse_long(cmd, arg[1] == '-' ? "--threads" : "-t", value, 1, 1024, &v))
                return BENCH_EXIT_USAGE;
            o->threads = (int)v;
        } else if (bench_flag_is(arg, "-r") || bench_flag_is(arg, "--reps")) {
            if (!(value = bench_flag_value(cmd, argc, argv, &i)) ||
                bench_parse_long(cmd, arg[1] == '-' ? "--reps" : "-r", value, 1, 100000, &v))
                return BENCH_EXIT_USAGE;
            o->reps = (int)v;
        } else if (bench_flag_is(arg, "--roof-mib")) {
            if (!(value = bench_flag_value(cmd, argc, argv, &i)) ||
                bench_parse_long(cmd, "--roof-mib", value, 1, 1 << 20, &v))
                return BENCH_EXIT_USAGE;
            o->roof_bytes = (size_t)v * BENCH_MIB;
        } else if (bench_flag_is(arg, "-o") || bench_flag_is(arg, "--output")) {
            if (!(value = bench_flag_value(cmd, argc, argv, &i)) ||
                bench_parse_format(cmd, arg[1] == '-' ? "--output" : "-o", value, &o->format))
                return BENCH_EXIT_USAGE;
        } else if (arg[0] == '-') {
            fprintf(stderr, "%s: unknown flag '%s' (see --help)\n", cmd, arg);
            return BENCH_EXIT_USAGE;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd, arg);
            return BENCH_EXIT_USAGE;
        }
    }
    if (o->n_types == 0)
        o->types[o->n_types++] = BONSAI_TYPE_Q1_0_G128;
    if (o->n_modes == 0) {
        o->modes[o->n_modes++] = BENCH_MODE_Q8;
        o->modes[o->n_modes++] = BENCH_MODE_F32;
    }
    if (o->n_shapes == 0)
        for (size_t s = 0; s < sizeof bonsai_8b_shapes / sizeof bonsai_8b_shapes[0]; s++)
            o->shapes[o->n_shapes++] = bonsai_8b_shapes[s];
    if (o->n_tokens == 0)
        o->tokens[o->n_tokens++] = 1;
    if (o->n_tiers == 0)
        o->tiers[o->n_tiers++] = BONSAI_TIER_AUTO;
    o->hot = given_hot || !o->cold;
    return 0;
}

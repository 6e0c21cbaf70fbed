/* `bonsai bench kernels` on the CPU: times bonsai_matmul_f32 /
 * bonsai_matmul_q8 (GEMV for n = 1, GEMM for n > 1) on random weight blocks
 * through the public API, after measuring the host's read bandwidth with
 * the same thread count in the same run, and reports weight GB/s as a
 * fraction of it.
 *
 * Hot: the same weights every call (they may sit in cache when small).
 * Cold: calls rotate over copies of the weights that together exceed the
 * last-level cache BENCH_COLD_LLC_TIMES times, so each call reads from DRAM.
 * In q8 mode the activations are quantized once outside the timed region;
 * the quantize time is reported on its own (quant_us). */
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define CMD "bonsai bench kernels"
#define BENCH_COLD_LLC_TIMES 4
#define ROOF_PASSES 15
#define FALLBACK_LLC (32 * BENCH_MIB)

/* One timed matmul: the weight copies it rotates over and its operands. */
typedef struct timed_matmul {
    bonsai_ctx *ctx;
    bench_mode mode;
    const bonsai_matrix *mats;
    int n_mats;
    const float *x;
    size_t x_len;
    bonsai_block_q8 *xq;
    size_t x_blocks;
    size_t m;
    float *y;
    size_t y_len;
    bonsai_status status;
} timed_matmul;

static int call_matmul(void *arg, int rep)
{
    timed_matmul *t = arg;
    const bonsai_matrix *w = &t->mats[rep < 0 ? 0 : rep % t->n_mats];
    t->status = t->mode == BENCH_MODE_Q8
                    ? bonsai_matmul_q8(t->ctx, w, t->xq, t->x_blocks, t->m, t->y, t->y_len)
                    : bonsai_matmul_f32(t->ctx, w, t->x, t->x_len, t->m, t->y, t->y_len);
    return t->status != BONSAI_OK;
}

static int call_quantize(void *arg, int rep)
{
    (void)rep;
    timed_matmul *t = arg;
    t->status = bonsai_quantize_q8(t->ctx, t->x, t->x_len, t->m, t->mats[0].k, t->xq,
                                   t->x_blocks);
    return t->status != BONSAI_OK;
}

/* Bytes of one case's buffers besides the weights: x, its q8 blocks, y. */
static size_t operand_bytes(bench_shape s, size_t m)
{
    return m * s.k * sizeof(float) + m * (s.k / BONSAI_QK) * sizeof(bonsai_block_q8) +
           m * s.rows * sizeof(float);
}

/* Checks every case fits in budget bytes before any work starts. */
static int check_memory(const bench_kernel_options *o, size_t budget)
{
    for (int s = 0; s < o->n_shapes; s++)
        for (int t = 0; t < o->n_types; t++)
            for (int n = 0; n < o->n_tokens; n++) {
                bench_shape sh = o->shapes[s];
                size_t bytes;
                if (bonsai_type_matrix_bytes(o->types[t], sh.rows, sh.k, &bytes) != BONSAI_OK) {
                    fprintf(stderr, "%s: --shape %zux%zu: %s\n", CMD, sh.rows, sh.k,
                            bonsai_last_error());
                    return BENCH_EXIT_USAGE;
                }
                size_t need = bytes + operand_bytes(sh, o->tokens[n]);
                if (need > budget) {
                    fprintf(stderr,
                            "%s: --shape %zux%zu -n %zu (%s) needs %zu MiB; the budget is "
                            "%zu MiB (half of the available memory)\n",
                            CMD, sh.rows, sh.k, o->tokens[n], bonsai_type_name(o->types[t]),
                            need / BENCH_MIB + 1, budget / BENCH_MIB);
                    return BENCH_EXIT_USAGE;
                }
            }
    return 0;
}

/* The weights of one (shape, type): copy 0 random, the others its copies. */
typedef struct weights {
    unsigned char *data;
    size_t bytes; /* of one copy, rounded up to 64 */
    bonsai_matrix *mats; /* [copies] */
    int copies;
} weights;

static int weights_make(weights *w, bonsai_type type, bench_shape s, int copies, uint64_t *rng)
{
    size_t bytes;
    bonsai_type_matrix_bytes(type, s.rows, s.k, &bytes); /* checked in check_memory */
    w->bytes = (bytes + 63) / 64 * 64;
    w->data = bench_alloc((size_t)copies, w->bytes);
    w->mats = bench_alloc((size_t)copies, sizeof *w->mats);
    if (!w->data || !w->mats) {
        fprintf(stderr, "%s: no memory for %d copies of %zux%zu %s (%zu MiB)\n", CMD, copies,
                s.rows, s.k, bonsai_type_name(type), (size_t)copies * w->bytes / BENCH_MIB);
        return -1;
    }
    bench_random_weights(type, w->data, bytes, rng);
    w->copies = copies;
    for (int c = 0; c < copies; c++) {
        if (c > 0)
            memcpy(w->data + (size_t)c * w->bytes, w->data, bytes);
        w->mats[c] = (bonsai_matrix){.type = type, .rows = s.rows, .k = s.k,
                                     .data = w->data + (size_t)c * w->bytes, .data_bytes = bytes,
                                     .name = "bench weights"};
    }
    return 0;
}

/* Copies for a cold run: enough to exceed the LLC BENCH_COLD_LLC_TIMES
 * times, at least 2, at most what the memory budget holds. */
static int cold_copies(size_t bytes, size_t llc, size_t budget, const char *what)
{
    size_t target = BENCH_COLD_LLC_TIMES * llc;
    size_t copies = (target + bytes - 1) / bytes;
    if (copies < 2)
        copies = 2;
    if (copies * bytes > budget) {
        copies = budget / bytes;
        if (copies < 1)
            copies = 1;
        fprintf(stderr, "note: %s cold: capped at %zu copies (%zu MiB) by the memory budget\n",
                what, copies, copies * bytes / BENCH_MIB);
    }
    return (int)copies;
}

typedef struct run_env {
    const bench_kernel_options *o;
    const bench_roof *roof;
    bench_report *report;
} run_env;

/* Times one case and appends its row. Returns 0 or BENCH_EXIT_FAIL. */
static int run_case(const run_env *env, timed_matmul *t, int cold, double quant_us)
{
    bench_stats st;
    int rc = bench_time_calls(call_matmul, t, 2, env->o->reps, &st);
    if (rc) {
        fprintf(stderr, "%s: %s matmul failed: %s\n", CMD, bench_mode_name(t->mode),
                rc < 0 ? "out of memory" : bonsai_last_error());
        return BENCH_EXIT_FAIL;
    }
    const bonsai_matrix *w = &t->mats[0];
    double us = st.median;
    double gbps = (double)w->data_bytes / us * 1e-3;
    double gflops = 2.0 * (double)w->rows * (double)w->k * (double)t->m / us * 1e-3;
    bench_report *r = env->report;
    bench_report_row(r);
    bench_put_str(r, "op", t->m == 1 ? "gemv" : "gemm");
    bench_put_str(r, "type", bonsai_type_name(w->type));
    bench_put_str(r, "mode", bench_mode_name(t->mode));
    bench_put_str(r, "tier", bonsai_cpu_tier_name(bonsai_ctx_tier(t->ctx)));
    bench_put_int(r, "threads", bonsai_ctx_n_threads(t->ctx));
    bench_put_int(r, "rows", (long long)w->rows);
    bench_put_int(r, "k", (long long)w->k);
    bench_put_int(r, "n", (long long)t->m);
    bench_put_str(r, "cache", cold ? "cold" : "hot");
    bench_put_bool(r, "cold", cold);
    bench_put_int(r, "copies", t->n_mats);
    bench_put_int(r, "reps", st.n);
    bench_put_num(r, "us", us, 2);
    bench_put_num(r, "us_mean", st.mean, 2);
    bench_put_num(r, "us_stddev", st.stddev, 2);
    bench_put_num(r, "us_min", st.min, 2);
    bench_put_int(r, "weight_bytes", (long long)w->data_bytes);
    bench_put_num(r, "weight_gbps", gbps, 2);
    bench_put_num(r, "gflops", gflops, 2);
    bench_put_num(r, "roof_gbps", env->roof->gbps, 2);
    bench_put_num(r, "roof_best_gbps", (double)env->roof->bytes / env->roof->us.min * 1e-3, 2);
    bench_put_num(r, "roof_frac", gbps / env->roof->gbps, 3);
    if (t->mode == BENCH_MODE_Q8)
        bench_put_num(r, "quant_us", quant_us, 2);
    fprintf(stderr, "  %-10s %-3s %-6s %6zux%-5zu n=%-4zu %s: %10.2f us  %7.2f GB/s  %.3f of roof\n",
            bonsai_type_name(w->type), bench_mode_name(t->mode),
            bonsai_cpu_tier_name(bonsai_ctx_tier(t->ctx)), w->rows, w->k, t->m,
            cold ? "cold" : "hot", us, gbps, gbps / env->roof->gbps);
    return 0;
}

/* All tiers x token counts x modes x cache states of one weight set. */
static int run_weights(const run_env *env, bonsai_ctx *const *ctxs, const weights *w,
                       uint64_t *rng)
{
    const bench_kernel_options *o = env->o;
    bench_shape s = {w->mats[0].rows, w->mats[0].k};
    for (int ti = 0; ti < o->n_tiers; ti++)
        for (int ni = 0; ni < o->n_tokens; ni++) {
            size_t m = o->tokens[ni];
            timed_matmul t = {.ctx = ctxs[ti], .mats = w->mats, .n_mats = 1, .m = m};
            t.x_len = m * s.k;
            t.x_blocks = m * (s.k / BONSAI_QK);
            t.y_len = m * s.rows;
            float *x = bench_alloc(t.x_len, sizeof(float));
            t.xq = bench_alloc(t.x_blocks, sizeof(bonsai_block_q8));
            t.y = bench_alloc(t.y_len, sizeof(float));
            int rc = 0;
            if (!x || !t.xq || !t.y) {
                fprintf(stderr, "%s: no memory for the activations of %zux%zu n=%zu\n", CMD,
                        s.rows, s.k, m);
                rc = BENCH_EXIT_FAIL;
            }
            if (!rc) {
                bench_random_floats(x, t.x_len, rng);
                t.x = x;
            }
            for (int mi = 0; mi < o->n_modes && !rc; mi++) {
                t.mode = o->modes[mi];
                bench_stats q = {0};
                if (t.mode == BENCH_MODE_Q8 &&
                    bench_time_calls(call_quantize, &t, 1, o->reps, &q) != 0) {
                    fprintf(stderr, "%s: quantize_q8 failed: %s\n", CMD, bonsai_last_error());
                    rc = BENCH_EXIT_FAIL;
                    break;
                }
                for (int cold = 0; cold <= 1 && !rc; cold++) {
                    if (cold ? !o->cold : !o->hot)
                        continue;
                    t.n_mats = cold ? w->copies : 1;
                    rc = run_case(env, &t, cold, q.median);
                }
            }
            free(x);
            free(t.xq);
            free(t.y);
            if (rc)
                return rc;
        }
    return 0;
}

static int run_all(const bench_kernel_options *o, bonsai_ctx *const *ctxs, int threads)
{
    int llc_level = 0;
    size_t llc = bench_llc_bytes(&llc_level);
    if (llc == 0) {
        llc = FALLBACK_LLC;
        fprintf(stderr, "note: last-level cache size unknown; assuming %zu MiB\n",
                llc / BENCH_MIB);
    }
    size_t avail = bench_mem_available();
    size_t budget = avail ? avail / 2 : (size_t)4 << 30;
    int rc = check_memory(o, budget);
    if (rc)
        return rc;

    size_t roof_bytes = o->roof_bytes ? o->roof_bytes : bench_default_roof_bytes();
    if (roof_bytes > budget) {
        roof_bytes = budget;
        fprintf(stderr, "note: read-roof buffer capped at %zu MiB by the memory budget\n",
                roof_bytes / BENCH_MIB);
    }
    bench_roof roof;
    if (bench_read_roof(threads, roof_bytes, ROOF_PASSES, &roof) != 0)
        return BENCH_EXIT_FAIL;
    fprintf(stderr,
            "roof: host read bandwidth %.2f GB/s (%d threads, %zu MiB buffer, median of %d "
            "passes; best pass %.2f GB/s, worst %.2f GB/s); L%d cache %zu MiB\n",
            roof.gbps, roof.threads, roof.bytes / BENCH_MIB, roof.passes,
            (double)roof.bytes / roof.us.min * 1e-3, (double)roof.bytes / roof.us.max * 1e-3,
            llc_level, llc / BENCH_MIB);

    bench_report *report = bench_report_new();
    if (!report) {
        fprintf(stderr, "%s: out of memory\n", CMD);
        return BENCH_EXIT_FAIL;
    }
    bench_report_hide(report, "cold", BENCH_FORMAT_MD);
    bench_report_hide(report, "cache", BENCH_FORMAT_JSON);
    const char *json_only[] = {"copies",    "reps",         "us_mean",
                               "us_stddev", "weight_bytes", "roof_best_gbps"};
    for (size_t i = 0; i < sizeof json_only / sizeof json_only[0]; i++)
        bench_report_hide(report, json_only[i], BENCH_FORMAT_MD);

    run_env env = {o, &roof, report};
    uint64_t rng = bench_seed();
    weights *w = calloc(1, sizeof *w);
    if (!w)
        rc = BENCH_EXIT_FAIL;
    for (int si = 0; si < o->n_shapes && !rc; si++)
        for (int ti = 0; ti < o->n_types && !rc; ti++) {
            bench_shape s = o->shapes[si];
            size_t bytes;
            bonsai_type_matrix_bytes(o->types[ti], s.rows, s.k, &bytes);
            char what[96];
            snprintf(what, sizeof what, "%zux%zu %s", s.rows, s.k, bonsai_type_name(o->types[ti]));
            int copies = o->cold ? cold_copies((bytes + 63) / 64 * 64, llc, budget, what) : 1;
            if (weights_make(w, o->types[ti], s, copies, &rng) != 0) {
                free(w->data);
                free(w->mats);
                rc = BENCH_EXIT_FAIL;
                break;
            }
            rc = run_weights(&env, ctxs, w, &rng);
            free(w->data);
            free(w->mats);
            *w = (weights){0};
        }
    free(w);
    if (!rc && bench_report_print(report, o->format, stdout) != 0) {
        fprintf(stderr, "%s: could not write the report\n", CMD);
        rc = BENCH_EXIT_FAIL;
    }
    bench_report_free(report);
    return rc;
}

int bench_kernels_cpu(int argc, char **argv)
{
    bench_kernel_options o;
    int rc = bench_kernel_options_parse(CMD, argc, argv, &o);
    if (rc)
        return rc;
    if (o.help) {
        bench_kernel_options_usage(stdout);
        return BENCH_EXIT_OK;
    }
    int threads = o.threads > 0 ? o.threads : bonsai_physical_cores();
    bonsai_ctx *ctxs[BENCH_MAX_ITEMS] = {0};
    for (int i = 0; i < o.n_tiers && !rc; i++) {
        bonsai_ctx_params p = bonsai_ctx_default_params();
        p.n_threads = threads;
        p.tier = o.tiers[i];
        bonsai_status s = bonsai_ctx_create(&p, &ctxs[i]);
        if (s != BONSAI_OK) {
            fprintf(stderr, "%s: --tier %s: %s\n", CMD, bonsai_cpu_tier_name(o.tiers[i]),
                    bonsai_last_error());
            rc = s == BONSAI_ERR_UNSUPPORTED ? BENCH_EXIT_USAGE : BENCH_EXIT_FAIL;
        }
    }
    if (!rc)
        rc = run_all(&o, ctxs, threads);
    for (int i = 0; i < o.n_tiers; i++)
        bonsai_ctx_free(ctxs[i]);
    return rc;
}

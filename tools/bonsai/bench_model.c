/* `bonsai bench model`: whole-model speed, llama-bench style.
 *
 *   ppN: prefill of N random tokens into an empty cache, one pass (GEMM);
 *   tgN: N decode steps (GEMV) from an empty cache, one token at a time.
 * Each test runs once untimed, then -r times; t/s is reported as mean +-
 * sample stddev over the repetitions. For tg rows the weight bytes one
 * decode step reads (every layer matrix, the LM head, one embedding row,
 * the norms) give the achieved weight bandwidth, reported as a fraction of
 * the host read bandwidth with the same thread count (bench_read_roof),
 * measured right before each timed repetition (the median of those): on a
 * shared host the bandwidth on offer moves within a run. */
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define CMD "bonsai bench model"
#define ROOF_PASSES 3 /* per repetition */
#define MAX_TESTS 16

typedef struct model_options {
    const char *model;
    long pp[MAX_TESTS], tg[MAX_TESTS];
    int n_pp, n_tg;
    long reps, threads;
    bonsai_act_mode mode;
    bonsai_kv_type kv_type;
    long repack;
    bench_format format;
} model_options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " CMD " -m FILE [options]\n\n"
            "Prompt processing (ppN: N tokens in one prefill pass) and text generation\n"
            "(tgN: N decode steps) from an empty context, t/s as mean +- stddev over\n"
            "repetitions after one warm-up run; tg rows add the weight bytes per token\n"
            "and the fraction of the host read bandwidth measured in the same run.\n\n"
            "  -m, --model FILE   GGUF model (required)\n"
            "  -p, --n-prompt N   prompt lengths, comma-separated; 0 = none (default 512)\n"
            "  -n, --n-gen N      generation lengths, comma-separated; 0 = none (default 128)\n"
            "  -r, --repetitions N  timed runs per test (default 5)\n"
            "  -t, --threads N    threads (default: one per physical core)\n"
            "      --mode q8|f32  activation mode (default q8)\n"
            "      --kv-type T    KV cache rows: auto (f16 in q8 mode, f32 in f32 mode;\n"
            "                     default), f16, q8, f32, as bonsai run --kv-type\n"
            "      --repack 0|1   1 (default): decode from a copy of the weights packed\n"
            "                     for the tier's decode kernel, as bonsai run --repack;\n"
            "                     0: from the mapped file in place (bonsai run's default)\n"
            "  -o, --output md|json  report format (default md)\n");
}

typedef struct list_ctx {
    const char *flag;
    long *out;
    int *n;
} list_ctx;

static int list_item(void *arg, const char *piece)
{
    list_ctx *c = arg;
    if (*c->n == MAX_TESTS) {
        fprintf(stderr, CMD ": %s takes at most %d values\n", c->flag, MAX_TESTS);
        return -1;
    }
    long v;
    if (bench_parse_long(CMD, c->flag, piece, 0, 1L << 20, &v) != 0)
        return -1;
    if (v > 0)
        c->out[(*c->n)++] = v;
    return 0;
}

static int parse_options(int argc, char **argv, model_options *o)
{
    *o = (model_options){.pp = {512}, .n_pp = 1, .tg = {128}, .n_tg = 1, .reps = 5,
                         .mode = BONSAI_ACT_Q8, .repack = 1, .format = BENCH_FORMAT_MD};
    int pp_given = 0, tg_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        const char *flag = a;
        if (!(v = bench_flag_value(CMD, argc, argv, &i)))
            return -1;
        int r = 0;
        if (bench_flag_is(flag, "-m") || bench_flag_is(flag, "--model"))
            o->model = v;
        else if (bench_flag_is(flag, "-p") || bench_flag_is(flag, "--n-prompt")) {
            if (!pp_given++)
                o->n_pp = 0;
            r = bench_for_each_item(v, list_item, &(list_ctx){"-p", o->pp, &o->n_pp});
        } else if (bench_flag_is(flag, "-n") || bench_flag_is(flag, "--n-gen")) {
            if (!tg_given++)
                o->n_tg = 0;
            r = bench_for_each_item(v, list_item, &(list_ctx){"-n", o->tg, &o->n_tg});
        } else if (bench_flag_is(flag, "-r") || bench_flag_is(flag, "--repetitions"))
            r = bench_parse_long(CMD, "-r", v, 1, 1000, &o->reps);
        else if (bench_flag_is(flag, "-t") || bench_flag_is(flag, "--threads"))
            r = bench_parse_long(CMD, "-t", v, 0, 1024, &o->threads);
        else if (bench_flag_is(flag, "--repack"))
            r = bench_parse_long(CMD, "--repack", v, 0, 1, &o->repack);
        else if (bench_flag_is(flag, "--kv-type")) {
            if (bonsai_kv_type_from_name(v, &o->kv_type) != BONSAI_OK) {
                fprintf(stderr, CMD ": --kv-type: %s\n", bonsai_last_error());
                r = -1;
            }
        } else if (bench_flag_is(flag, "--mode")) {
            if (!strcmp(v, "q8") || !strcmp(v, "f32"))
                o->mode = !strcmp(v, "q8") ? BONSAI_ACT_Q8 : BONSAI_ACT_F32;
            else {
                fprintf(stderr, CMD ": --mode expects q8 or f32, got '%s'\n", v);
                r = -1;
            }
        } else if (bench_flag_is(flag, "-o") || bench_flag_is(flag, "--output"))
            r = bench_parse_format(CMD, "-o", v, &o->format);
        else {
            fprintf(stderr, CMD ": unknown option '%s'\n", flag);
            r = -1;
        }
        if (r)
            return -1;
    }
    if (!o->model) {
        fprintf(stderr, CMD ": -m FILE is required\n");
        return -1;
    }
    if (o->n_pp + o->n_tg == 0) {
        fprintf(stderr, CMD ": nothing to run (-p and -n are both 0)\n");
        return -1;
    }
    return 0;
}

typedef struct model_env {
    const model_options *o;
    bonsai_model *model;
    bonsai_session *sess;
    bonsai_model_info info;
    bench_report *report;
    const char *name;
    int32_t *tokens;
    float *logits; /* [n_vocab] */
    bench_roof_buffer *roof; /* read before each timed tg repetition */
} model_env;

/* One run of a test from an empty cache: seconds, or < 0 on failure.
 * Like llama-bench, prefill computes the last token's logits and every
 * decode step its own (the LM head is part of a token's cost). */
static double run_once(model_env *e, int prefill, long n)
{
    bonsai_session_reset(e->sess);
    bonsai_status s = BONSAI_OK;
    double t0 = bench_now_us();
    if (prefill)
        s = bonsai_session_prefill(e->sess, e->tokens, (size_t)n, e->logits, e->info.n_vocab);
    else
        for (long i = 0; i < n && s == BONSAI_OK; i++)
            s = bonsai_session_decode(e->sess, e->tokens[i], e->logits, e->info.n_vocab);
    double t = (bench_now_us() - t0) * 1e-6;
    if (s != BONSAI_OK) {
        fprintf(stderr, CMD ": %s: %s\n", bonsai_status_name(s), bonsai_last_error());
        return -1;
    }
    return t;
}

static int run_test(model_env *e, int prefill, long n)
{
    char test[32];
    snprintf(test, sizeof test, "%s%ld", prefill ? "pp" : "tg", n);
    double *tps = malloc((size_t)e->o->reps * sizeof *tps);
    double *roofs = malloc((size_t)e->o->reps * sizeof *roofs);
    if (!tps || !roofs) {
        free(tps);
        free(roofs);
        return -1;
    }
    int rc = run_once(e, prefill, n) < 0 ? -1 : 0; /* warm-up */
    for (long r = 0; r < e->o->reps && !rc; r++) {
        bench_roof roof;
        if (!prefill) {
            rc = bench_roof_measure(e->roof, ROOF_PASSES, &roof);
            roofs[r] = roof.gbps;
        }
        double t = rc ? -1 : run_once(e, prefill, n);
        rc = t < 0 ? -1 : 0;
        tps[r] = (double)n / t;
    }
    bench_stats st = bench_stats_of(tps, rc ? 0 : (int)e->o->reps);
    bench_stats roof = bench_stats_of(roofs, rc || prefill ? 0 : (int)e->o->reps);
    free(tps);
    free(roofs);
    if (rc)
        return rc;
    const bonsai_model_info *in = &e->info;
    bench_report *rp = e->report;
    bench_report_row(rp);
    bench_put_str(rp, "model", e->name);
    bench_put_num(rp, "size_mib", (double)in->file_weight_bytes / (1024.0 * 1024), 1);
    bench_put_num(rp, "params_m", (double)in->n_params * 1e-6, 1);
    bench_put_str(rp, "backend", "cpu");
    bench_put_str(rp, "tier", bonsai_cpu_tier_name(in->tier));
    bench_put_int(rp, "threads", in->n_threads);
    bench_put_str(rp, "mode", in->act_mode == BONSAI_ACT_Q8 ? "q8" : "f32");
    bench_put_str(rp, "kv", bonsai_kv_type_name(in->kv_type));
    bench_put_bool(rp, "repack", in->packed_bytes > 0);
    bench_put_str(rp, "test", test);
    bench_put_mean_sd(rp, "t/s", st.mean, st.stddev, 2);
    if (!prefill) {
        const double bytes = (double)in->bytes_per_token;
        const double gbps = bytes * st.mean * 1e-9;
        bench_put_num(rp, "MB/token", bytes * 1e-6, 1);
        bench_put_int(rp, "weight_bytes", (long long)in->bytes_per_token);
        bench_put_num(rp, "weight_gbps", gbps, 2);
        bench_put_num(rp, "roof_gbps", roof.median, 2);
        bench_put_num(rp, "roof_gbps_min", roof.min, 2);
        bench_put_num(rp, "roof_gbps_max", roof.max, 2);
        bench_put_num(rp, "roof_frac", gbps / roof.median, 3);
        fprintf(stderr, "  %-7s %9.2f +- %.2f t/s; roof %.2f GB/s (median; %.2f-%.2f over the "
                "%d repetitions, %d threads)\n", test, st.mean, st.stddev, roof.median, roof.min,
                roof.max, roof.n, in->n_threads);
    } else
        fprintf(stderr, "  %-7s %9.2f +- %.2f t/s\n", test, st.mean, st.stddev);
    return 0;
}

int bench_model_cpu(int argc, char **argv)
{
    model_options o;
    int r = parse_options(argc, argv, &o);
    if (r)
        return r > 0 ? BENCH_EXIT_OK : BENCH_EXIT_USAGE;
    long longest = 1;
    for (int i = 0; i < o.n_pp; i++)
        longest = o.pp[i] > longest ? o.pp[i] : longest;
    for (int i = 0; i < o.n_tg; i++)
        longest = o.tg[i] > longest ? o.tg[i] : longest;

    bonsai_model_params mp = bonsai_model_default_params();
    mp.n_threads = (int)o.threads;
    mp.act_mode = o.mode;
    mp.kv_type = o.kv_type;
    mp.pack_weights = (int)o.repack;
    mp.n_ctx = (uint32_t)longest;
    model_env e = {.o = &o};
    double t0 = bench_now_us();
    bonsai_status s = bonsai_model_load(o.model, &mp, &e.model);
    if (s != BONSAI_OK) {
        fprintf(stderr, CMD ": %s: %s: %s\n", o.model, bonsai_status_name(s), bonsai_last_error());
        return BENCH_EXIT_FAIL;
    }
    double load_s = (bench_now_us() - t0) * 1e-6;
    bonsai_model_get_info(e.model, &e.info);
    const char *slash = strrchr(o.model, '/');
    e.name = slash ? slash + 1 : o.model;
    fprintf(stderr, "model: %s (%.1f M params, %.1f MB per token), loaded in %.3f s (%.1f MB "
            "packed for decode); tier %s, %d threads, %s\n", e.name, (double)e.info.n_params * 1e-6,
            (double)e.info.bytes_per_token * 1e-6, load_s, (double)e.info.packed_bytes * 1e-6,
            bonsai_cpu_tier_name(e.info.tier),
            e.info.n_threads, o.mode == BONSAI_ACT_Q8 ? "q8" : "f32");

    int rc = BENCH_EXIT_FAIL;
    e.report = bench_report_new();
    e.tokens = malloc((size_t)longest * sizeof *e.tokens);
    e.logits = malloc((size_t)e.info.n_vocab * sizeof *e.logits);
    if (!e.report || !e.tokens || !e.logits || bonsai_session_create(e.model, &e.sess) != BONSAI_OK) {
        fprintf(stderr, CMD ": setup: %s\n", e.report && e.tokens && e.logits ? bonsai_last_error()
                                                                  : "out of memory");
        goto done;
    }
    bench_report_hide(e.report, "MB/token", BENCH_FORMAT_JSON);
    bench_report_hide(e.report, "weight_bytes", BENCH_FORMAT_MD);
    bench_report_hide(e.report, "roof_gbps_min", BENCH_FORMAT_MD);
    bench_report_hide(e.report, "roof_gbps_max", BENCH_FORMAT_MD);
    uint64_t rng = bench_seed();
    for (long i = 0; i < longest; i++)
        e.tokens[i] = (int32_t)(bench_rng_u64(&rng) % e.info.n_vocab);
    for (int i = 0; i < o.n_pp; i++)
        if (run_test(&e, 1, o.pp[i]) != 0)
            goto done;
    if (o.n_tg > 0 && !(e.roof = bench_roof_buffer_new(e.info.n_threads, bench_default_roof_bytes())))
        goto done;
    for (int i = 0; i < o.n_tg; i++)
        if (run_test(&e, 0, o.tg[i]) != 0)
            goto done;
    if (bench_report_print(e.report, o.format, stdout) != 0) {
        fprintf(stderr, CMD ": could not write the report\n");
        goto done;
    }
    rc = BENCH_EXIT_OK;
done:
    bench_roof_buffer_free(e.roof);
    free(e.tokens);
    free(e.logits);
    bench_report_free(e.report);
    bonsai_session_free(e.sess);
    bonsai_model_free(e.model);
    return rc;
}

/* `bonsai run`: load a model, run a prompt through it (one prefill pass)
 * and generate tokens one at a time with the sampler. Until a tokenizer
 * exists the prompt is a list of token ids and the output is token ids:
 * the generated ids go to stdout, space-separated, as they come; load
 * time and prompt / generation speeds go to stderr. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bonsai/bonsai.h"
#include "commands.h"

typedef struct run_options {
    const char *model, *prompt;
    long n_predict;
    bonsai_model_params mp;
    bonsai_sampler_params sp;
    int seed_given;
} run_options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bonsai run -m FILE [options]\n\n"
            "Generates tokens from a Qwen3 GGUF model. There is no tokenizer yet: the\n"
            "prompt is comma-separated token ids and the output is token ids (stdout,\n"
            "space-separated); timings go to stderr. Exactly -n tokens are generated\n"
            "(no end-of-sequence stop).\n\n"
            "  -m, --model FILE        GGUF model (required)\n"
            "  -p, --prompt IDS        prompt token ids, e.g. \"1,2,3\" (default \"0\")\n"
            "  -n, --n-predict N       tokens to generate (default 64)\n"
            "  -t, --threads N         threads (default: one per physical core)\n"
            "  -c, --ctx-size N        context length in tokens (default: the model's, at "
            "most 4096)\n"
            "      --temp T            temperature; <= 0 is greedy (default 0.8)\n"
            "      --top-k K           keep the K most likely tokens; 0 = off (default 40)\n"
            "      --top-p P           nucleus: keep the smallest set reaching P; 1 = off "
            "(default 0.95)\n"
            "      --min-p P           keep tokens with p >= P * p_max; 0 = off (default "
            "0.05)\n"
            "      --repeat-penalty R  penalise the last --repeat-last-n tokens; 1 = off "
            "(default 1.0)\n"
            "      --repeat-last-n N   tokens the penalty looks back on (default 64)\n"
            "  -s, --seed N            sampler seed (default: random, printed on stderr)\n"
            "      --mode q8|f32       activation mode (default q8)\n"
            "      --kv-type T         KV cache rows: f16, q8 (int8 + a scale per row: half\n"
            "                          the bytes, faster decode at long contexts), f32, or\n"
            "                          auto (default: f16 in q8 mode, f32 in f32 mode)\n"
            "      --q2-variant V      how to read GGUF type 42: auto, tq2, prism, ggml "
            "(default auto)\n"
            "      --repack            decode from a copy of the weights packed for the CPU\n"
            "                          tier's decode kernel (q8, AVX-512, Q1_0_g128): faster\n"
            "                          decode, slower load, the weights' bytes in memory\n"
            "                          again (default: read the mapped file in place)\n");
}

static int parse_long(const char *flag, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "bonsai run: %s expects an integer in [%ld, %ld], got '%s'\n", flag, min,
                max, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *text, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(text, &end);
    if (errno || end == text || *end) {
        fprintf(stderr, "bonsai run: %s expects a number, got '%s'\n", flag, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, run_options *o)
{
    o->mp = bonsai_model_default_params();
    o->sp = bonsai_sampler_default_params();
    o->prompt = "0";
    o->n_predict = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--repack")) {
            o->mp.pack_weights = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bonsai run: unknown option or missing value: '%s'\n", a);
            return -1;
        }
        const char *v = argv[++i];
        long n;
        int r = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
            r = parse_long(a, v, 0, 1L << 24, &o->n_predict);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            r = parse_long(a, v, 0, 1024, &n);
            o->mp.n_threads = (int)n;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            r = parse_long(a, v, 1, 1L << 24, &n);
            o->mp.n_ctx = (uint32_t)n;
        } else if (!strcmp(a, "--temp"))
            r = parse_float(a, v, &o->sp.temperature);
        else if (!strcmp(a, "--top-k")) {
            r = parse_long(a, v, 0, INT32_MAX, &n);
            o->sp.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p"))
            r = parse_float(a, v, &o->sp.top_p);
        else if (!strcmp(a, "--min-p"))
            r = parse_float(a, v, &o->sp.min_p);
        else if (!strcmp(a, "--repeat-penalty"))
            r = parse_float(a, v, &o->sp.repeat_penalty);
        else if (!strcmp(a, "--repeat-last-n")) {
            r = parse_long(a, v, 0, 1L << 20, &n);
            o->sp.repeat_last_n = (int32_t)n;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->sp.seed = strtoull(v, &end, 10);
            o->seed_given = 1;
            if (errno || end == v || *end) {
                fprintf(stderr, "bonsai run: %s expects a non-negative integer, got '%s'\n", a, v);
                r = -1;
            }
        } else if (!strcmp(a, "--q2-variant")) {
            if (bonsai_q2_variant_from_name(v, &o->mp.q2_variant) != BONSAI_OK) {
                fprintf(stderr, "bonsai run: --q2-variant: %s\n", bonsai_last_error());
                r = -1;
            }
        } else if (!strcmp(a, "--kv-type")) {
            if (bonsai_kv_type_from_name(v, &o->mp.kv_type) != BONSAI_OK) {
                fprintf(stderr, "bonsai run: --kv-type: %s\n", bonsai_last_error());
                r = -1;
            }
        } else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "q8"))
                o->mp.act_mode = BONSAI_ACT_Q8;
            else if (!strcmp(v, "f32"))
                o->mp.act_mode = BONSAI_ACT_F32;
            else {
                fprintf(stderr, "bonsai run: --mode expects q8 or f32, got '%s'\n", v);
                r = -1;
            }
        } else {
            fprintf(stderr, "bonsai run: unknown option '%s'\n", a);
            r = -1;
        }
        if (r)
            return -1;
    }
    if (!o->model) {
        fprintf(stderr, "bonsai run: -m FILE is required\n");
        return -1;
    }
    return 0;
}

/* "1,2,3" -> ids; returns the count, or -1 with a message. */
static long parse_prompt(const char *text, int32_t **out)
{
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    const char *p = text;
    while (ids && *p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "bonsai run: -p expects comma-separated token ids, got '%s'\n", text);
            free(ids);
            return -1;
        }
        if (n == cap) {
            int32_t *grown = realloc(ids, 2 * cap * sizeof *ids);
            if (!grown)
                break;
            ids = grown;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!ids || *p) {
        fprintf(stderr, "bonsai run: out of memory for the prompt\n");
        free(ids);
        return -1;
    }
    if (n == 0) {
        fprintf(stderr, "bonsai run: -p is empty: give at least one token id\n");
        free(ids);
        return -1;
    }
    *out = ids;
    return (long)n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void draw_progress(void *user, const char *what, uint64_t done, uint64_t total)
{
    (void)user;
    if (total)
        fprintf(stderr, "\r%s: %3d%%", what, (int)(100 * done / total));
    if (done == total)
        fputc('\n', stderr);
}

static int fail(const char *what, bonsai_status s)
{
    fprintf(stderr, "bonsai run: %s: %s: %s\n", what, bonsai_status_name(s), bonsai_last_error());
    return 1;
}

int cmd_run(int argc, char **argv)
{
    run_options o = {0};
    int r = parse_args(argc, argv, &o);
    if (r)
        return r > 0 ? 0 : 2;
    if (!o.seed_given)
        o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int32_t *prompt = NULL;
    long n_prompt = parse_prompt(o.prompt, &prompt);
    if (n_prompt < 0)
        return 2;
    if (isatty(STDERR_FILENO))
        o.mp.progress = draw_progress;

    int rc = 1;
    bonsai_model *m = NULL;
    bonsai_session *sess = NULL;
    bonsai_sampler *smp = NULL;
    float *logits = NULL;
    double t0 = now_s();
    bonsai_status s = bonsai_model_load(o.model, &o.mp, &m);
    if (s != BONSAI_OK) {
        rc = fail(o.model, s);
        goto done;
    }
    double t_load = now_s() - t0;
    bonsai_model_info info;
    bonsai_model_get_info(m, &info);
    fprintf(stderr,
            "model: %s: %u layers, hidden %u, heads %u/%u x %u, ffn %u, vocab %u, %s%s\n"
            "load: %.3f s (%.1f MB packed for decode); %s mode, kv %s, tier %s, %d threads, "
            "n_ctx %u, seed %" PRIu64 "\n",
            o.model, info.n_layers, info.n_embd, info.n_heads, info.n_kv_heads, info.head_dim,
            info.n_ff, info.n_vocab, bonsai_type_name(info.weight_type),
            info.tied_embeddings ? ", tied head" : "", t_load, (double)info.packed_bytes * 1e-6,
            info.act_mode == BONSAI_ACT_Q8 ? "q8" : "f32", bonsai_kv_type_name(info.kv_type),
            bonsai_cpu_tier_name(info.tier),
            info.n_threads, info.n_ctx, o.sp.seed);
    if ((s = bonsai_session_create(m, &sess)) != BONSAI_OK ||
        (s = bonsai_sampler_create(&o.sp, info.n_vocab, &smp)) != BONSAI_OK) {
        rc = fail("setup", s);
        goto done;
    }
    logits = malloc((size_t)info.n_vocab * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "bonsai run: out of memory for the logits\n");
        goto done;
    }
    /* the last generated token needs no position: its logits are not used */
    if ((uint64_t)n_prompt + (uint64_t)(o.n_predict > 0 ? o.n_predict - 1 : 0) > info.n_ctx) {
        fprintf(stderr,
                "bonsai run: %ld prompt tokens + %ld generated need %ld positions; the context "
                "holds %u (raise -c)\n", n_prompt, o.n_predict,
                n_prompt + (o.n_predict > 0 ? o.n_predict - 1 : 0), info.n_ctx);
        rc = 2;
        goto done;
    }
    t0 = now_s();
    if ((s = bonsai_session_prefill(sess, prompt, (size_t)n_prompt, logits, info.n_vocab)) !=
        BONSAI_OK) {
        rc = fail("prompt", s);
        goto done;
    }
    double t_prompt = now_s() - t0;
    for (long i = 0; i < n_prompt; i++)
        bonsai_sampler_accept(smp, prompt[i]); /* ids checked by the prefill */
    t0 = now_s();
    long generated = 0;
    for (; generated < o.n_predict; generated++) {
        int32_t tok;
        if ((s = bonsai_sampler_sample(smp, logits, info.n_vocab, &tok)) != BONSAI_OK ||
            (s = bonsai_sampler_accept(smp, tok)) != BONSAI_OK) {
            rc = fail("sampling", s);
            goto done;
        }
        printf("%s%" PRId32, generated ? " " : "", tok);
        fflush(stdout);
        if (generated + 1 == o.n_predict)
            break; /* the last token's logits are not needed */
        if ((s = bonsai_session_decode(sess, tok, logits, info.n_vocab)) != BONSAI_OK) {
            putchar('\n');
            rc = fail("generation", s);
            goto done;
        }
    }
    if (o.n_predict > 0) {
        generated++;
        putchar('\n');
        fflush(stdout);
    }
    double t_gen = now_s() - t0;
    fprintf(stderr, "prompt: %ld tokens in %.3f s (%.2f t/s)\n", n_prompt, t_prompt,
            (double)n_prompt / t_prompt);
    /* the first generated token comes from the prompt's logits: gen t/s
     * counts the decode steps */
    if (generated > 1)
        fprintf(stderr, "generation: %ld tokens in %.3f s (%.2f t/s)\n", generated, t_gen,
                (double)(generated - 1) / t_gen);
    rc = 0;
done:
    free(logits);
    free(prompt);
    bonsai_sampler_free(smp);
    bonsai_session_free(sess);
    bonsai_model_free(m);
    return rc;
}

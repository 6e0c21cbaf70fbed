/* CLI: `bonsai run` and `bonsai bench model` end to end, through the built
 * binary (found next to this test), on a small model written with
 * model_fixture.h:
 *   greedy `run` prints exactly -n ids, the ones the library's own greedy
 *   loop gives, on stdout alone, with timings on stderr; the same seed gives
 *   the same ids; too small a context, bad flags and bad ids exit 2 (usage)
 *   or 1 (run-time) with nothing on stdout and a message naming the problem;
 *   `bench model -o json` gives one pp and one tg object whose bandwidth
 *   fields agree with each other.
 * Counted as skipped where the binary cannot run (cross builds). */
#include <limits.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "model_fixture.h"

static char exe[PATH_MAX], dir[64], model[128];

typedef struct result {
    int code;
    char *out, *err;
} result;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s = calloc(1 << 16, 1);
    if (f) {
        size_t n = fread(s, 1, (1 << 16) - 1, f);
        s[n] = '\0';
        fclose(f);
    }
    return s;
}

static result run(const char *args)
{
    char cmd[PATH_MAX + 1024], out[128], err[128];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    snprintf(cmd, sizeof cmd, "'%s' %s >%s 2>%s", exe, args, out, err);
    int st = system(cmd);
    result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out), slurp(err)};
    return r;
}

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* Parses space-separated ids ending in a newline; -1 if malformed. */
static int parse_ids(const char *s, int32_t *ids, int max)
{
    int n = 0;
    while (*s && *s != '\n') {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || n == max)
            return -1;
        ids[n++] = (int32_t)v;
        s = end;
        if (*s == ' ')
            s++;
    }
    return *s == '\n' && s[1] == '\0' ? n : -1;
}

/* Greedy ids from the library: prefill, then argmax / decode. */
static void library_greedy(const int32_t *prompt, int n_prompt, int n, int32_t *out)
{
    bonsai_model_params p = bonsai_model_default_params();
    p.n_threads = 2;
    bonsai_model *m = NULL;
    bonsai_session *s = NULL;
    if (bonsai_model_load(model, &p, &m) != BONSAI_OK || bonsai_session_create(m, &s) != BONSAI_OK) {
        CHECK(0, "library load: %s", bonsai_last_error());
        bonsai_model_free(m);
        return;
    }
    float logits[64];
    bonsai_session_prefill(s, prompt, (size_t)n_prompt, logits, 64);
    for (int i = 0; i < n; i++) {
        out[i] = (int32_t)fx_argmax_f(logits, 64);
        bonsai_session_decode(s, out[i], logits, 64);
    }
    bonsai_session_free(s);
    bonsai_model_free(m);
}

static void test_run(void)
{
    char args[512];
    int32_t ids[64], again[64], want[8];
    const int32_t prompt[3] = {1, 2, 3};
    snprintf(args, sizeof args, "run -m %s -p 1,2,3 -n 8 --temp 0 -t 2", model);
    result r = run(args);
    int n = parse_ids(r.out, ids, 64);
    CHECK(r.code == 0 && n == 8, "greedy run: exit %d, %d ids in '%s' (stderr: %s)", r.code, n,
          r.out, r.err);
    CHECK(strstr(r.err, "prompt: 3 tokens") && strstr(r.err, "generation: 8 tokens"),
          "timings on stderr: '%s'", r.err);
    library_greedy(prompt, 3, 8, want);
    CHECK(n == 8 && memcmp(ids, want, sizeof want) == 0,
          "CLI greedy ids equal the library's greedy loop");
    result_free(&r);
    snprintf(args, sizeof args, "run -m %s -p 1,2,3 -n 8 --temp 0 -t 2 --repack", model);
    r = run(args);
    n = parse_ids(r.out, ids, 64);
    CHECK(r.code == 0 && n == 8 && memcmp(ids, want, sizeof want) == 0 &&
              strstr(r.err, "packed for decode"),
          "--repack: exit %d, ids '%s' (the unpacked run's expected), stderr '%s'", r.code, r.out,
          r.err);
    result_free(&r);

    snprintf(args, sizeof args, "run -m %s -p 5,6 -n 16 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 "
             "-s 42", model);
    r = run(args);
    result r2 = run(args);
    n = parse_ids(r.out, ids, 64);
    int n2 = parse_ids(r2.out, again, 64);
    CHECK(r.code == 0 && n == 16 && n2 == 16 && memcmp(ids, again, 16 * sizeof *ids) == 0,
          "same seed, same ids: '%s' vs '%s'", r.out, r2.out);
    int in_range = 1;
    for (int i = 0; i < n; i++)
        in_range &= ids[i] >= 0 && ids[i] < 64;
    CHECK(in_range, "sampled ids within the vocabulary: '%s'", r.out);
    result_free(&r);
    result_free(&r2);
    snprintf(args, sizeof args, "run -m %s -p 5,6 -n 16 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 "
             "-s 43", model);
    r2 = run(args);
    n2 = parse_ids(r2.out, again, 64);
    CHECK(n2 == 16 && memcmp(ids, again, 16 * sizeof *ids) != 0,
          "another seed, other ids (16 draws over 64 tokens)");
    result_free(&r2);

    snprintf(args, sizeof args, "run -m %s -p 1 -n 4 --mode f32 --temp 0", model);
    r = run(args);
    CHECK(r.code == 0 && parse_ids(r.out, ids, 64) == 4 && strstr(r.err, "f32 mode, kv f32"),
          "f32 mode runs: exit %d, '%s'", r.code, r.err);
    result_free(&r);

    snprintf(args, sizeof args, "run -m %s -p 1,2,3 -n 8 --temp 0 -t 2 --kv-type q8", model);
    r = run(args);
    CHECK(r.code == 0 && parse_ids(r.out, ids, 64) == 8 && strstr(r.err, "q8 mode, kv q8"),
          "--kv-type q8 runs: exit %d, '%s'", r.code, r.err);
    result_free(&r);
}

static void test_refusals(void)
{
    static const struct {
        const char *args; /* after "run -m MODEL" unless it starts with '!' */
        int code;
        const char *in_err;
    } cases[] = {
        {"-p 1,2,3 -n 10 -c 8", 2, "raise -c"},
        {"-p 1,x", 2, "-p"},
        {"-p ''", 2, "-p"},
        {"--mode q4", 2, "--mode"},
        {"--kv-type q4", 2, "kv type 'q4'"},
        {"--top-k -1", 2, "--top-k"},
        {"-n abc", 2, "-n"},
        {"--temp", 2, "--temp"},
        {"--bogus 1", 2, "--bogus"},
        {"-p 64", 1, "outside"},
        {"--min-p 2", 1, "min_p"},
        {"!run -p 1", 2, "-m FILE is required"},
        {"!run -m /nonexistent/model.gguf", 1, "/nonexistent/model.gguf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512];
        if (cases[i].args[0] == '!')
            snprintf(args, sizeof args, "%s", cases[i].args + 1);
        else
            snprintf(args, sizeof args, "run -m %s %s", model, cases[i].args);
        result r = run(args);
        CHECK(r.code == cases[i].code && r.out[0] == '\0' && strstr(r.err, cases[i].in_err),
              "'%s': exit %d (want %d), stdout '%s', stderr '%s' (want it to name '%s')",
              cases[i].args, r.code, cases[i].code, r.out, r.err, cases[i].in_err);
        result_free(&r);
    }
    result r = run("run --help");
    CHECK(r.code == 0 && strstr(r.out, "token ids"), "run --help says the prompt is token ids");
    result_free(&r);
}

static double field(const char *obj, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(obj, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static void test_bench(void)
{
    char args[512];
    snprintf(args, sizeof args, "bench model -m %s -p 16 -n 4 -r 2 -t 2 -o json", model);
    result r = run(args);
    const char *pp = strstr(r.out, "\"test\": \"pp16\""), *tg = strstr(r.out, "\"test\": \"tg4\"");
    CHECK(r.code == 0 && r.out[0] == '[' && pp && tg, "bench model json: exit %d, '%s' (%s)",
          r.code, r.out, r.err);
    if (tg) {
        const char *obj = tg;
        while (obj > r.out && *obj != '{')
            obj--;
        double tps = field(obj, "t/s"), bytes = field(obj, "weight_bytes");
        double gbps = field(obj, "weight_gbps"), roof = field(obj, "roof_gbps");
        double frac = field(obj, "roof_frac");
        CHECK(tps > 0 && bytes > 0 && roof > 0 &&
                  fabs(gbps - bytes * tps * 1e-9) <= 0.005 + 0.001 * gbps &&
                  fabs(frac - gbps / roof) <= 0.002 + 0.01 * frac,
              "tg fields: t/s %g, weight_bytes %g, weight_gbps %g, roof %g, frac %g", tps, bytes,
              gbps, roof, frac);
    }
    result_free(&r);
    for (int repack = 0; repack <= 1; repack++) {
        snprintf(args, sizeof args, "bench model -m %s -p 0 -n 2 -r 1 -t 2 --repack %d -o json",
                 model, repack);
        r = run(args);
        /* weights are packed where the tier has a packed layout: AVX-512 */
        const int packs = repack && strstr(r.out, "\"tier\": \"avx512");
        CHECK(r.code == 0 && strstr(r.out, packs ? "\"repack\": true" : "\"repack\": false"),
              "bench model --repack %d: exit %d, '%s'", repack, r.code, r.out);
        result_free(&r);
    }
    snprintf(args, sizeof args, "bench model -m %s -p 0 -n 2 -r 1 --kv-type q8 -o json", model);
    r = run(args);
    CHECK(r.code == 0 && strstr(r.out, "\"kv\": \"q8\""), "bench model --kv-type q8: exit %d, '%s'",
          r.code, r.out);
    result_free(&r);
    snprintf(args, sizeof args, "bench model -m %s -p 0 -n 0", model);
    r = run(args);
    CHECK(r.code == 2 && r.out[0] == '\0', "bench model with nothing to run exits 2");
    result_free(&r);
}

int main(void)
{
    harness_init();
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash)
        snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "bonsai");
    snprintf(dir, sizeof dir, "/tmp/bonsai_test_model_cli_XXXXXX");
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "'%s' --version >/dev/null 2>&1", exe);
    if (!slash || access(exe, X_OK) != 0 || system(cmd) != 0) {
        skip("the bonsai CLI is not built next to the test or does not run here");
        return harness_finish();
    }
    if (!mkdtemp(dir)) {
        skip("no temporary directory");
        return harness_finish();
    }
    snprintf(model, sizeof model, "%s/m.gguf", dir);
    const fx_config cfg = {2, 128, 2, 1, 64, 256, 64, 1024, 10000.0f, 1e-6f, 0, 1,
                           BONSAI_TYPE_Q1_0_G128, 0};
    fx_model *fm = malloc(sizeof *fm);
    fx_build(fm, &cfg);
    if (CHECK(fx_write(fm, model), "write %s", model)) {
        test_run();
        test_refusals();
        test_bench();
    }
    fx_free(fm);
    free(fm);
    char path[128];
    const char *files[] = {"m.gguf", "out", "err"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    remove(dir);
    return harness_finish();
}

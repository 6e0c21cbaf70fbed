/* CLI: `bonsai bench kernels` end to end, through the built binary.
 * The JSON run must hold one object per (type, mode, n, cache) combination
 * with every required field of the right kind and values consistent with
 * the shape (weight bytes and flops recomputed here from the formats'
 * block sizes). Every bad flag or value must exit with code 2, print
 * nothing on stdout and name the flag on stderr.
 * The binary's path comes from BONSAI_CLI (set by CMakeLists.txt), run
 * through BONSAI_CLI_EMULATOR when cross-compiled; without a runnable
 * binary the checks are counted as skipped. */
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static const char *cli;
static const char *emulator;
static char tmpdir[64];

/* Output of one run of the CLI. */
typedef struct result {
    int code; /* exit code; -1 if killed by a signal */
    char *out, *err;
} result;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
    if (n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = '\0';
    fclose(f);
    return s;
}

static result run_cli(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s' %s >%s/out 2>%s/err", emulator, cli, args, tmpdir,
             tmpdir);
    int st = system(cmd);
    result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, NULL, NULL};
    char path[128];
    snprintf(path, sizeof path, "%s/out", tmpdir);
    r.out = slurp(path);
    snprintf(path, sizeof path, "%s/err", tmpdir);
    r.err = slurp(path);
    return r;
}

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* ---- a strict reader for a JSON array of flat objects --------------------- */

enum { MAX_OBJECTS = 64, MAX_KEYS = 40 };

typedef enum { J_STR, J_NUM, J_BOOL, J_NULL } jkind;

typedef struct jfield {
    char key[40];
    jkind kind;
    char str[64];
    double num;
} jfield;

typedef struct jobject {
    jfield f[MAX_KEYS];
    int n;
} jobject;

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
        (*p)++;
}

static int read_string(const char **p, char *out, size_t len)
{
    if (**p != '"')
        return -1;
    size_t n = 0;
    for ((*p)++; **p != '"'; (*p)++) {
        if (**p == '\0' || (unsigned char)**p < 0x20)
            return -1;
        if (**p == '\\') {
            (*p)++;
            if (!strchr("\"\\/bfnrtu", **p) || **p == '\0')
                return -1;
        }
        if (n + 1 < len)
            out[n++] = **p;
    }
    (*p)++;
    out[n] = '\0';
    return 0;
}

static int read_value(const char **p, jfield *f)
{
    if (**p == '"') {
        f->kind = J_STR;
        return read_string(p, f->str, sizeof f->str);
    }
    static const struct {
        const char *word;
        jkind kind;
        double num;
    } words[] = {{"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
    for (size_t i = 0; i < 3; i++)
        if (strncmp(*p, words[i].word, strlen(words[i].word)) == 0) {
            *p += strlen(words[i].word);
            f->kind = words[i].kind;
            f->num = words[i].num;
            return 0;
        }
    char *end;
    f->num = strtod(*p, &end);
    if (end == *p || !(**p == '-' || (**p >= '0' && **p <= '9')))
        return -1;
    f->kind = J_NUM;
    *p = end;
    return 0;
}

/* Parses text as [ {..}, ... ] into objs; returns the count or -1. */
static int parse_json(const char *text, jobject *objs, int max)
{
    const char *p = text;
    int n = 0;
    skip_ws(&p);
    if (*p++ != '[')
        return -1;
    skip_ws(&p);
    if (*p == ']')
        return (p++, skip_ws(&p), *p == '\0') ? 0 : -1;
    for (;;) {
        if (n == max)
            return -1;
        jobject *o = &objs[n++];
        o->n = 0;
        skip_ws(&p);
        if (*p++ != '{')
            return -1;
        for (;;) {
            skip_ws(&p);
            if (o->n == MAX_KEYS)
                return -1;
            jfield *f = &o->f[o->n++];
            if (read_string(&p, f->key, sizeof f->key) != 0)
                return -1;
            skip_ws(&p);
            if (*p++ != ':')
                return -1;
            skip_ws(&p);
            if (read_value(&p, f) != 0)
                return -1;
            skip_ws(&p);
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p++ != '}')
                return -1;
            break;
        }
        skip_ws(&p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != ']')
            return -1;
        skip_ws(&p);
        return *p == '\0' ? n : -1;
    }
}

static const jfield *get(const jobject *o, const char *key, jkind kind)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->f[i].key, key) == 0)
            return o->f[i].kind == kind ? &o->f[i] : NULL;
    return NULL;
}

/* ---- the checks ------------------------------------------------------------ */

static int near(double got, double want)
{
    return fabs(got - want) <= 1e-9 + 1e-3 * fabs(want); /* JSON carries 6 digits */
}

static void check_json_run(void)
{
    const size_t rows = 256, k = 512;
    result r = run_cli("bench kernels --shape 256x512 --type q1_0_g128,tq2_0_g128 "
                       "--mode q8 --mode f32 -n 1,3 --hot --cold -r 3 --roof-mib 16 -o json");
    CHECK(r.code == 0, "json run exits 0, got %d; stderr:\n%s", r.code, r.err);
    static jobject objs[MAX_OBJECTS];
    int n = parse_json(r.out, objs, MAX_OBJECTS);
    CHECK(n == 16, "json run: 2 types x 2 modes x 2 n x hot/cold = 16 objects, parsed %d from:\n%s",
          n, r.out);
    int seen[2][2][2][2] = {{{{0}}}};
    for (int i = 0; i < n; i++) {
        const jobject *o = &objs[i];
        static const char *const strs[] = {"op", "type", "mode", "tier"};
        static const char *const nums[] = {"rows", "k", "n", "threads", "us", "weight_gbps",
                                           "gflops", "roof_gbps", "roof_frac"};
        int complete = 1;
        for (size_t j = 0; j < sizeof strs / sizeof strs[0]; j++)
            complete &= CHECK(get(o, strs[j], J_STR) != NULL, "object %d: string field %s", i,
                              strs[j]);
        for (size_t j = 0; j < sizeof nums / sizeof nums[0]; j++)
            complete &= CHECK(get(o, nums[j], J_NUM) != NULL, "object %d: number field %s", i,
                              nums[j]);
        complete &= CHECK(get(o, "cold", J_BOOL) != NULL, "object %d: bool field cold", i);
        if (!complete)
            continue;
        const char *type = get(o, "type", J_STR)->str, *mode = get(o, "mode", J_STR)->str;
        double tokens = get(o, "n", J_NUM)->num, us = get(o, "us", J_NUM)->num;
        int ti = strcmp(type, "tq2_0_g128") == 0, mi = strcmp(mode, "f32") == 0;
        int ni = tokens == 3, ci = (int)get(o, "cold", J_BOOL)->num;
        CHECK(ti || strcmp(type, "q1_0_g128") == 0, "object %d: type %s", i, type);
        CHECK(mi || strcmp(mode, "q8") == 0, "object %d: mode %s", i, mode);
        CHECK(tokens == 1 || tokens == 3, "object %d: n = %g", i, tokens);
        CHECK(strcmp(get(o, "op", J_STR)->str, tokens == 1 ? "gemv" : "gemm") == 0,
              "object %d: op %s for n = %g", i, get(o, "op", J_STR)->str, tokens);
        CHECK(get(o, "rows", J_NUM)->num == rows && get(o, "k", J_NUM)->num == k,
              "object %d: shape %gx%g", i, get(o, "rows", J_NUM)->num, get(o, "k", J_NUM)->num);
        CHECK(get(o, "tier", J_STR)->str[0] != '\0', "object %d: tier is empty", i);
        CHECK(get(o, "threads", J_NUM)->num >= 1, "object %d: threads", i);
        if (!CHECK(us > 0 && us < 60e6, "object %d: us = %g", i, us))
            continue;
        double bytes = (double)rows * k / 128 * (ti ? 34 : 18);
        CHECK(near(get(o, "weight_gbps", J_NUM)->num, bytes / us * 1e-3),
              "object %d: weight_gbps %g, expected %g", i, get(o, "weight_gbps", J_NUM)->num,
              bytes / us * 1e-3);
        CHECK(near(get(o, "gflops", J_NUM)->num, 2.0 * rows * k * tokens / us * 1e-3),
              "object %d: gflops %g, expected %g", i, get(o, "gflops", J_NUM)->num,
              2.0 * rows * k * tokens / us * 1e-3);
        double roof = get(o, "roof_gbps", J_NUM)->num;
        CHECK(roof > 0 && roof < 1e5, "object %d: roof_gbps %g", i, roof);
        CHECK(roof <= 0 || near(get(o, "roof_frac", J_NUM)->num, bytes / us * 1e-3 / roof),
              "object %d: roof_frac %g, expected %g", i, get(o, "roof_frac", J_NUM)->num,
              roof > 0 ? bytes / us * 1e-3 / roof : 0);
        CHECK((get(o, "quant_us", J_NUM) != NULL) == !mi, "object %d: quant_us only in q8", i);
        seen[ti][mi][ni][ci]++;
    }
    for (int a = 0; a < 16; a++)
        CHECK(seen[a >> 3][(a >> 2) & 1][(a >> 1) & 1][a & 1] == 1 || n != 16,
              "combination %d appears %d times", a, seen[a >> 3][(a >> 2) & 1][(a >> 1) & 1][a & 1]);
    result_free(&r);
}

static void check_md_run(void)
{
    result r = run_cli("bench kernels --shape 128x128,256x256 --mode q8 -r 2 --roof-mib 16");
    CHECK(r.code == 0, "md run exits 0, got %d; stderr:\n%s", r.code, r.err);
    int lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    CHECK(strncmp(r.out, "| op |", 6) == 0 && lines == 4,
          "md run: header, rule and 2 rows, got:\n%s", r.out);
    CHECK(strstr(r.err, "roof:") != NULL, "md run: the roof note goes to stderr:\n%s", r.err);
    result_free(&r);
}

static void check_help(void)
{
    static const char *const helps[] = {"bench --help", "bench kernels --help",
                                        "bench kernels -h", "bench --backend cpu kernels -h"};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        result r = run_cli(helps[i]);
        CHECK(r.code == 0 && strstr(r.out, "usage: bonsai bench"),
              "'%s' exits 0 with usage on stdout; got %d", helps[i], r.code);
        result_free(&r);
    }
}

typedef struct bad_case {
    const char *args, *names; /* names: what stderr must mention */
} bad_case;

static const bad_case bad_cases[] = {
    {"bench", "usage"},
    {"bench nosuch", "nosuch"},
    {"bench kernels --backend nosuch", "--backend"},
    {"bench kernels --backend", "--backend"},
    {"bench --backend nosuch kernels", "--backend"},
    {"bench --backend cpu", "usage"},
    {"bench kernels --type foo", "--type"},
    {"bench kernels --type ,", "--type"},
    {"bench kernels --type f32", "--type"},
    {"bench kernels --mode f16", "--mode"},
    {"bench kernels --shape 10x100", "--shape"},
    {"bench kernels --shape 0x128", "--shape"},
    {"bench kernels --shape 128", "--shape"},
    {"bench kernels --shape 128x128x2", "--shape"},
    {"bench kernels --shape 99999999999999999999999x128", "--shape"},
    {"bench kernels --shape -5x128", "--shape"},
    {"bench kernels --shape", "--shape"},
    {"bench kernels -t 0", "-t"},
    {"bench kernels -t -1", "-t"},
    {"bench kernels -t 2x", "-t"},
    {"bench kernels -t", "-t"},
    {"bench kernels -n 0", "-n"},
    {"bench kernels -n", "-n"},
    {"bench kernels -r 0", "-r"},
    {"bench kernels -r abc", "-r"},
    {"bench kernels -o xml", "-o"},
    {"bench kernels -o", "-o"},
    {"bench kernels --tier bogus", "--tier"},
    {"bench kernels --roof-mib 0", "--roof-mib"},
    {"bench kernels --bogus", "--bogus"},
    {"bench kernels extra", "extra"},
};

static void check_bad_flags(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        result r = run_cli(c->args);
        CHECK(r.code == 2, "'%s' exits 2, got %d", c->args, r.code);
        CHECK(r.out[0] == '\0', "'%s' prints nothing on stdout, got:\n%s", c->args, r.out);
        CHECK(strstr(r.err, c->names) != NULL, "'%s': stderr names %s, got:\n%s", c->args,
              c->names, r.err);
        result_free(&r);
    }
}

int main(void)
{
    harness_init();
    cli = getenv("BONSAI_CLI");
    emulator = getenv("BONSAI_CLI_EMULATOR");
    if (!emulator)
        emulator = "";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bonsai_cli_bench_XXXXXX");
    if (!cli || !*cli) {
        skip("BONSAI_CLI is not set (run through ctest)");
    } else if (!mkdtemp(tmpdir)) {
        skip("no temporary directory");
    } else {
        result v = run_cli("--version");
        int runnable = v.code == 0;
        result_free(&v);
        if (!runnable) {
            skip("'%s %s --version' does not run here", emulator, cli);
        } else {
            check_json_run();
            check_md_run();
            check_help();
            check_bad_flags();
        }
        char path[128];
        snprintf(path, sizeof path, "%s/out", tmpdir);
        remove(path);
        snprintf(path, sizeof path, "%s/err", tmpdir);
        remove(path);
        remove(tmpdir);
    }
    return harness_finish();
}

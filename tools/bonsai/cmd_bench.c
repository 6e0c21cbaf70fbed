/* `bonsai bench <what> [--backend B] [options]`: picks the bench for
 * (what, backend) from the table below and hands it the remaining flags
 * (argv[0] = what, --backend removed). To add a bench or a backend, write
 * its entry point (declared in bench_common.h) and add one row here. */
#include <stdio.h>
#include <string.h>

#include "bench_common.h"
#include "commands.h"

typedef struct bench_entry {
    const char *what, *backend;
    int (*run)(int argc, char **argv);
    const char *summary;
} bench_entry;

static const bench_entry benches[] = {
    {"kernels", "cpu", bench_kernels_cpu, "matmul kernels vs the host's read bandwidth"},
    {"kernels", "cuda", bench_kernels_cuda, "CUDA matmul kernels vs device copy bandwidth, cuBLAS bar"},
    {"model", "cpu", bench_model_cpu, "whole-model pp/tg t/s (llama-bench style) vs read bandwidth"},
};
#define N_BENCHES (sizeof benches / sizeof benches[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: bonsai bench <what> [--backend B] [options]\n\n");
    for (size_t i = 0; i < N_BENCHES; i++)
        fprintf(f, "  %-8s --backend %-5s %s%s\n", benches[i].what, benches[i].backend,
                benches[i].summary, strcmp(benches[i].backend, "cpu") == 0 ? " (default)" : "");
    fprintf(f, "\n'bonsai bench <what> --help' describes its options.\n");
}

/* Backends built in for what, comma separated, into buf. */
static const char *backends_of(const char *what, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < N_BENCHES; i++)
        if (strcmp(benches[i].what, what) == 0) {
            size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%s", used ? ", " : "", benches[i].backend);
        }
    return buf;
}

int cmd_bench(int argc, char **argv)
{
    /* argv[1..] without --backend B (which may come before or after what):
     * the bench's own argv, argv[0] = what */
    const char *backend = "cpu";
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (bench_flag_is(argv[i], "--backend")) {
            backend = bench_flag_value("bonsai bench", argc, argv, &i);
            if (!backend)
                return BENCH_EXIT_USAGE;
            continue;
        }
        argv[n++] = argv[i];
    }
    if (n == 0) {
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    const char *what = argv[0];
    if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0) {
        usage(stdout);
        return BENCH_EXIT_OK;
    }
    char list[128];
    if (!*backends_of(what, list, sizeof list)) {
        fprintf(stderr, "bonsai bench: unknown bench '%s'\n", what);
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    for (size_t i = 0; i < N_BENCHES; i++)
        if (strcmp(benches[i].what, what) == 0 && strcmp(benches[i].backend, backend) == 0)
            return benches[i].run(n, argv);
    fprintf(stderr, "bonsai bench %s: --backend '%s' is not built in (available: %s)\n", what,
            backend, list);
    return BENCH_EXIT_USAGE;
}

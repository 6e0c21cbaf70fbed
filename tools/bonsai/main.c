/* bonsai CLI: dispatches to the subcommands in cmd_*.c. stdout carries only
 * data; messages and progress go to stderr. */
#include <stdio.h>
#include <string.h>

#include "bonsai/bonsai.h"
#include "commands.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"bench", cmd_bench, "benchmarks: kernels vs the host's read bandwidth"},
    {"help", NULL, "this list"},
    {"info", cmd_info, "build and CPU, or a GGUF model's contents (-m FILE)"},
    {"synth", cmd_synth, "write a synthetic Qwen3 GGUF model (--preset NAME -o FILE)"},
    {"run", cmd_run, "generate tokens with a model (token ids in and out for now)"},
};

/* The lines --version and `bonsai info` share: version, commit, compiler,
 * CPU tiers built and selected. */
void cli_print_build(void)
{
    bonsai_cpu_tier tier = BONSAI_TIER_SCALAR;
    bonsai_status s = bonsai_cpu_tier_select(&tier);
    printf("bonsai %s (commit %s)\n", bonsai_version_string(), bonsai_build_commit());
    printf("compiler: %s\n", bonsai_build_compiler());
    printf("cpu tiers built: %s\n", bonsai_cpu_tiers_built());
    printf("cpu features: %s\n", *bonsai_cpu_features() ? bonsai_cpu_features() : "(none extra)");
    if (s == BONSAI_OK)
        printf("cpu tier selected: %s\n", bonsai_cpu_tier_name(tier));
    else
        printf("cpu tier selected: none (%s)\n", bonsai_last_error());
}

static void print_version(void)
{
    cli_print_build();
    printf("cuda archs built: %s\n", bonsai_cuda_archs_built());
}

static void print_usage(FILE *f)
{
    fprintf(f, "usage: bonsai [--version] [--help] <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'bonsai <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].run && strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "bonsai: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return 2;
}

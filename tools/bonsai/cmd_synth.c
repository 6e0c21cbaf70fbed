/* bonsai synth: writes a synthetic Qwen3 GGUF of one of the presets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bonsai/bonsai.h"
#include "commands.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bonsai synth --preset NAME [--type TYPE] [--seed N] -o FILE\n"
            "  --preset NAME  micro, tiny, tiny-tied, bonsai-1.7b, bonsai-4b, bonsai-8b\n"
            "                 (default tiny)\n"
            "  --type TYPE    q1_0_g128 (default), tq2_0_g128, pq2_0, q2_0_g64\n"
            "  --seed N       random seed (default 0)\n"
            "  -o FILE        output path (written atomically)\n");
}

/* Progress bar on stderr, redrawn in place. */
static void draw_progress(void *user, const char *what, uint64_t done, uint64_t total)
{
    int *last = user;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct == *last)
        return;
    *last = pct;
    int bar = pct * 40 / 100;
    fprintf(stderr, "\r%s [%.*s%*s] %3d%% (%.1f / %.1f MB)", what, bar,
            "========================================", 40 - bar, "", pct, done / 1e6,
            total / 1e6);
    if (done >= total)
        fputc('\n', stderr);
}

int cmd_synth(int argc, char **argv)
{
    bonsai_synth_params p = bonsai_synth_default_params();
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--preset") == 0 && has_value) {
            p.preset = argv[++i];
        } else if (strcmp(a, "--type") == 0 && has_value) {
            if (bonsai_type_from_name(argv[++i], &p.weight_type) != BONSAI_OK) {
                fprintf(stderr, "bonsai synth: %s\n", bonsai_last_error());
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0 && has_value) {
            char *end;
            p.seed = strtoull(argv[++i], &end, 0);
            if (*end || !*argv[i]) {
                fprintf(stderr, "bonsai synth: --seed '%s' is not a number\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "-o") == 0 && has_value) {
            out = argv[++i];
        } else {
            fprintf(stderr, "bonsai synth: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "bonsai synth: -o FILE is required\n");
        usage(stderr);
        return 2;
    }
    int last = -1;
    if (isatty(STDERR_FILENO)) {
        p.progress = draw_progress;
        p.progress_user = &last;
    }
    bonsai_status s = bonsai_synth_write(out, &p);
    if (s != BONSAI_OK) {
        fprintf(stderr, "bonsai synth: %s: %s\n", bonsai_status_name(s), bonsai_last_error());
        return 1;
    }
    return 0;
}

/* bonsai info: the build and CPU (no arguments), or a GGUF file's contents
 * (-m FILE): architecture, shapes, tensor types and sizes, the reading of
 * type id 42, and a metadata summary. Output on stdout. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bonsai/bonsai.h"
#include "commands.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bonsai info [-m FILE [--q2-variant auto|tq2|prism|ggml] [--tensors]]\n"
            "  (no -m)        version, build and CPU tiers\n"
            "  -m FILE        describe a GGUF model file\n"
            "  --q2-variant   how to read GGUF type 42 (default auto)\n"
            "  --tensors      list every tensor\n");
}

static void print_build(void)
{
    cli_print_build(); /* main.c */
    info_cuda_print(); /* info_cuda.c */
}

/* A string on one line: control bytes escaped, at most max bytes shown. */
static void print_escaped(const char *s, size_t len, size_t max)
{
    putchar('"');
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    if (len > max)
        fputs("...", stdout);
}

/* One metadata value in a line: scalars in full, strings up to 60 bytes,
 * arrays as element type and count. */
static void print_value(const bonsai_gguf *g, size_t i)
{
    const char *key = bonsai_gguf_kv_key(g, i);
    bonsai_gguf_type t = bonsai_gguf_kv_type(g, i);
    uint64_t u;
    int64_t sv;
    float f;
    int b;
    const char *s;
    size_t len;
    if (t == BONSAI_GGUF_STRING && bonsai_gguf_get_str(g, key, &s, &len) == BONSAI_OK) {
        print_escaped(s, len, 60);
    } else if (t == BONSAI_GGUF_ARRAY) {
        bonsai_gguf_type et;
        uint64_t n;
        const void *data;
        if (bonsai_gguf_get_array(g, key, &et, &n, &data) == BONSAI_OK)
            printf("[%" PRIu64 " x %s]", n,
                   et == BONSAI_GGUF_STRING ? "string" : et == BONSAI_GGUF_ARRAY ? "array"
                                                                            : "number");
    } else if (t == BONSAI_GGUF_BOOL && bonsai_gguf_get_bool(g, key, &b) == BONSAI_OK) {
        printf("%s", b ? "true" : "false");
    } else if ((t == BONSAI_GGUF_FLOAT32 || t == BONSAI_GGUF_FLOAT64) &&
               bonsai_gguf_get_f32(g, key, &f) == BONSAI_OK) {
        printf("%g", f);
    } else if (bonsai_gguf_get_u64(g, key, &u) == BONSAI_OK) {
        printf("%" PRIu64, u);
    } else if (bonsai_gguf_get_i64(g, key, &sv) == BONSAI_OK) {
        printf("%" PRId64, sv);
    }
}

static uint64_t get_u32_or(const bonsai_gguf *g, const char *arch, const char *suffix,
                           uint64_t fallback)
{
    char key[128];
    uint32_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return bonsai_gguf_get_u32(g, key, &v) == BONSAI_OK ? v : fallback;
}

static void print_shapes(const bonsai_gguf *g)
{
    const char *arch_s = "";
    size_t arch_len = 0;
    char arch[64] = "(none)";
    if (bonsai_gguf_get_str(g, "general.architecture", &arch_s, &arch_len) == BONSAI_OK)
        snprintf(arch, sizeof arch, "%.*s", (int)(arch_len < 63 ? arch_len : 63), arch_s);
    const char *name = "";
    size_t name_len = 0;
    bonsai_gguf_get_str(g, "general.name", &name, &name_len);
    printf("architecture: %s\nname: %.*s\n", arch, (int)name_len, name);
    uint64_t hidden = get_u32_or(g, arch, "embedding_length", 0);
    uint64_t heads = get_u32_or(g, arch, "attention.head_count", 0);
    uint64_t head_dim = get_u32_or(g, arch, "attention.key_length", heads ? hidden / heads : 0);
    bonsai_gguf_type et;
    uint64_t vocab = 0;
    const void *data;
    bonsai_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &vocab, &data);
    printf("layers: %" PRIu64 "  hidden: %" PRIu64 "  ffn: %" PRIu64 "  vocab: %" PRIu64
           "  context: %" PRIu64 "\n",
           get_u32_or(g, arch, "block_count", 0), hidden,
           get_u32_or(g, arch, "feed_forward_length", 0), vocab,
           get_u32_or(g, arch, "context_length", 0));
    printf("heads: %" PRIu64 " q, %" PRIu64 " kv, head_dim %" PRIu64 "\n", heads,
           get_u32_or(g, arch, "attention.head_count_kv", heads), head_dim);
    printf("embeddings: %s\n", bonsai_gguf_find_tensor(g, "output.weight")
                                   ? "separate output.weight" : "tied (no output.weight)");
}

static void print_tensors(const bonsai_gguf *g, int list)
{
    uint64_t count[BONSAI_TYPE_COUNT] = {0}, bytes[BONSAI_TYPE_COUNT] = {0}, total = 0;
    for (size_t i = 0; i < bonsai_gguf_n_tensors(g); i++) {
        const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(g, i);
        count[t->type]++;
        bytes[t->type] += t->bytes;
        total += t->bytes;
    }
    printf("tensors: %zu, %.2f MB of data\n", bonsai_gguf_n_tensors(g), total / 1e6);
    for (int t = 0; t < BONSAI_TYPE_COUNT; t++)
        if (count[t])
            printf("  %-11s %5" PRIu64 " tensors %12.2f MB\n", bonsai_type_name((bonsai_type)t),
                   count[t], bytes[t] / 1e6);
    printf("type 42 read as: %s\n",
           bonsai_gguf_q2_variant(g) == BONSAI_Q2_AUTO
               ? "(no tensor has type 42)" : bonsai_q2_variant_name(bonsai_gguf_q2_variant(g)));
    if (!list)
        return;
    for (size_t i = 0; i < bonsai_gguf_n_tensors(g); i++) {
        const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(g, i);
        printf("  %-32s %-10s id %3u [", t->name, bonsai_type_name(t->type), t->ggml_type);
        for (uint32_t d = 0; d < t->n_dims; d++)
            printf(d ? ", %" PRIu64 : "%" PRIu64, t->ne[d]);
        printf("] %zu bytes\n", t->bytes);
    }
}

static int describe(const char *path, bonsai_q2_variant variant, int list)
{
    bonsai_gguf_params p = bonsai_gguf_default_params();
    p.q2_variant = variant;
    bonsai_gguf *g;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bonsai_status s = bonsai_gguf_open(path, &p, &g);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (s != BONSAI_OK) {
        fprintf(stderr, "bonsai info: %s: %s\n", bonsai_status_name(s), bonsai_last_error());
        return 1;
    }
    printf("file: %s\ngguf version: %u\nopen time: %.2f ms\n", path, bonsai_gguf_version(g),
           (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    print_shapes(g);
    print_tensors(g, list);
    printf("metadata: %zu keys\n", bonsai_gguf_n_kv(g));
    for (size_t i = 0; i < bonsai_gguf_n_kv(g); i++) {
        printf("  %-40s ", bonsai_gguf_kv_key(g, i));
        print_value(g, i);
        putchar('\n');
    }
    bonsai_gguf_close(g);
    return 0;
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL;
    bonsai_q2_variant variant = BONSAI_Q2_AUTO;
    int list = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-m") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(a, "--q2-variant") == 0 && i + 1 < argc) {
            if (bonsai_q2_variant_from_name(argv[++i], &variant) != BONSAI_OK) {
                fprintf(stderr, "bonsai info: %s\n", bonsai_last_error());
                return 2;
            }
        } else if (strcmp(a, "--tensors") == 0) {
            list = 1;
        } else {
            fprintf(stderr, "bonsai info: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        print_build();
        return 0;
    }
    return describe(model, variant, list);
}

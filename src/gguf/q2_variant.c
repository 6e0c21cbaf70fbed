/* GGUF type id 42 means three layouts in the wild:
 *   tq2_0_g128  this project's (and oxibonsai's): 34-byte blocks of 128, codes then d
 *   PrismML legacy Q2_0 g128: 34-byte blocks of 128, d then codes (read as pq2_0)
 *   ggml Q2_0: 18-byte blocks of 64, d then codes (q2_0_g64)
 * The rule, applied to the whole file (one reading for every id-42 tensor):
 *   1. params.q2_variant, when not AUTO, decides;
 *   2. else the metadata key bonsai.q2_layout ("tq2_0_g128", "pq2_0" or
 *      "q2_0_g64"; bonsai's writer sets it) decides;
 *   3. else the byte extents decide between 18-per-64 and 34-per-128: a
 *      reading fits a tensor when its size is at most the tensor's extent
 *      (bytes to the next tensor or the file end) and short of it by less
 *      than general.alignment (the padding a writer leaves). If only the
 *      18-byte reading fits every tensor, it is ggml Q2_0; if the 34-byte
 *      reading fits, the two 34-byte layouts cannot be told apart and the
 *      file is refused as AMBIGUOUS, naming the tensor and the option.
 * Whatever decided, each tensor must then fit the chosen reading. */
#include <inttypes.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf_internal.h"
#include "gguf/gguf_types.h"

static const char *const variant_names[] = {"auto", "tq2", "prism", "ggml"};

const char *bonsai_q2_variant_name(bonsai_q2_variant v)
{
    return (unsigned)v <= BONSAI_Q2_GGML_G64 ? variant_names[v] : "invalid";
}

bonsai_status bonsai_q2_variant_from_name(const char *name, bonsai_q2_variant *out)
{
    if (!name || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "q2 variant: NULL argument");
    for (int v = 0; v <= BONSAI_Q2_GGML_G64; v++) {
        if (strcmp(name, variant_names[v]) == 0) {
            *out = (bonsai_q2_variant)v;
            return BONSAI_OK;
        }
    }
    return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                       "unknown q2 variant '%s' (choices: auto, tq2, prism, ggml)", name);
}

static bonsai_type variant_type(bonsai_q2_variant v)
{
    switch (v) {
    case BONSAI_Q2_TQ2_0_G128: return BONSAI_TYPE_TQ2_0_G128;
    case BONSAI_Q2_PRISM_G128: return BONSAI_TYPE_PQ2_0;
    default: return BONSAI_TYPE_Q2_0_G64;
    }
}

/* Size of t under type, or 0 when the shape does not fit its blocks. */
static uint64_t size_as(const bonsai_gguf_tensor *t, bonsai_type type)
{
    size_t block = bonsai_type_block_elems(type), bytes = bonsai_type_block_bytes(type);
    if (t->ne[0] % block != 0)
        return 0;
    uint64_t n = bytes;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t dim = d == 0 ? t->ne[0] / block : t->ne[d];
        if (n > UINT64_MAX / dim)
            return 0;
        n *= dim;
    }
    return n;
}

static int fits(uint64_t size, uint64_t extent, uint32_t alignment)
{
    return size != 0 && size <= extent && extent - size < alignment;
}

/* Reading from metadata; NOT_FOUND when the key is absent. */
static bonsai_status variant_from_metadata(const bonsai_gguf *g, bonsai_q2_variant *v)
{
    static const struct {
        const char *name;
        bonsai_q2_variant v;
    } layouts[] = {
        {"tq2_0_g128", BONSAI_Q2_TQ2_0_G128},
        {"pq2_0", BONSAI_Q2_PRISM_G128},
        {"q2_0_g64", BONSAI_Q2_GGML_G64},
    };
    if (bonsai_gguf_find_key(g, "bonsai.q2_layout") < 0)
        return BONSAI_ERR_NOT_FOUND;
    const char *s;
    size_t len;
    bonsai_status st = bonsai_gguf_get_str(g, "bonsai.q2_layout", &s, &len);
    if (st != BONSAI_OK)
        return st;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        if (strlen(layouts[i].name) == len && memcmp(layouts[i].name, s, len) == 0) {
            *v = layouts[i].v;
            return BONSAI_OK;
        }
    }
    return bonsai_fail(BONSAI_ERR_FORMAT,
                       "key bonsai.q2_layout is '%.*s'; expected tq2_0_g128, pq2_0 or q2_0_g64",
                       (int)(len > 64 ? 64 : len), s);
}

/* Decides from the byte extents alone (rule 3). */
static bonsai_status variant_from_sizes(const bonsai_gguf *g, const uint64_t *extent,
                                        bonsai_q2_variant *v)
{
    int all64 = 1, all128 = 1;
    size_t first = g->n_tensors;
    for (size_t i = 0; i < g->n_tensors; i++) {
        const bonsai_gguf_tensor *t = &g->tensors[i];
        if (t->ggml_type != GGML_TYPE_Q2_42)
            continue;
        if (first == g->n_tensors)
            first = i;
        uint64_t s64 = size_as(t, BONSAI_TYPE_Q2_0_G64), s128 = size_as(t, BONSAI_TYPE_PQ2_0);
        all64 &= fits(s64, extent[i], g->alignment);
        all128 &= fits(s128, extent[i], g->alignment);
        if (!all64 && !all128)
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s has type 42 and spans %" PRIu64 " bytes, which fits "
                               "neither 18-byte blocks of 64 (%" PRIu64 " bytes) nor 34-byte "
                               "blocks of 128 (%" PRIu64 " bytes) consistently with the other "
                               "type-42 tensors", t->name, extent[i], s64, s128);
    }
    const char *name = g->tensors[first].name;
    if (all64 && !all128) {
        *v = BONSAI_Q2_GGML_G64;
        return BONSAI_OK;
    }
    if (all64)
        return bonsai_fail(BONSAI_ERR_AMBIGUOUS,
                           "tensor %s has type 42, and its size fits both ggml Q2_0 (18-byte "
                           "blocks of 64) and 34-byte blocks of 128 (tq2_0_g128 or PrismML "
                           "Q2_0 g128); the file has no bonsai.q2_layout key. Choose the "
                           "reading with params.q2_variant (CLI: --q2-variant tq2|prism|ggml)",
                           name);
    return bonsai_fail(BONSAI_ERR_AMBIGUOUS,
                       "tensor %s has type 42 with 34-byte blocks of 128, which is either "
                       "tq2_0_g128 (codes then scale) or PrismML's legacy Q2_0 g128 (scale then "
                       "codes), and the file has no bonsai.q2_layout key. Choose the reading "
                       "with params.q2_variant (CLI: --q2-variant tq2|prism)", name);
}

bonsai_status gguf_resolve_q2(bonsai_gguf *g, bonsai_q2_variant requested,
                              const uint64_t *extent)
{
    size_t n42 = 0;
    for (size_t i = 0; i < g->n_tensors; i++)
        n42 += g->tensors[i].ggml_type == GGML_TYPE_Q2_42;
    g->q2_variant = BONSAI_Q2_AUTO;
    if (n42 == 0)
        return BONSAI_OK;
    bonsai_q2_variant v = requested;
    const char *source = "params.q2_variant";
    if (v == BONSAI_Q2_AUTO) {
        source = "key bonsai.q2_layout";
        bonsai_status s = variant_from_metadata(g, &v);
        if (s == BONSAI_ERR_NOT_FOUND) {
            source = "the tensor sizes";
            s = variant_from_sizes(g, extent, &v);
        }
        if (s != BONSAI_OK)
            return s;
    }
    bonsai_type type = variant_type(v);
    for (size_t i = 0; i < g->n_tensors; i++) {
        bonsai_gguf_tensor *t = &g->tensors[i];
        if (t->ggml_type != GGML_TYPE_Q2_42)
            continue;
        bonsai_status s = gguf_tensor_bytes(t, type, &t->bytes);
        if (s != BONSAI_OK)
            return s;
        if (!fits(t->bytes, extent[i], g->alignment))
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s: %s says type 42 is %s, which needs %zu bytes, but "
                               "the tensor spans %" PRIu64 " bytes (to the next tensor or the "
                               "file end)", t->name, source, bonsai_type_name(type), t->bytes,
                               extent[i]);
        t->type = type;
    }
    g->q2_variant = v;
    return BONSAI_OK;
}

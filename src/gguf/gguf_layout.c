/* Tensor placement in the data section: every data offset a multiple of
 * general.alignment, every tensor's bytes inside the file, no two tensors
 * overlapping. The byte extent of each tensor (up to the next tensor's start
 * or the file end) also decides how id 42 is read (q2_variant.c). Data
 * pointers point into the mapping; nothing is copied. */
#include <inttypes.h>
#include <stdlib.h>

#include "core/error.h"
#include "gguf/gguf_internal.h"

typedef struct by_offset {
    uint64_t offset;
    size_t index;
} by_offset;

static int cmp_offset(const void *a, const void *b)
{
    const by_offset *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static bonsai_status check_offsets(const bonsai_gguf *g, uint64_t data_bytes)
{
    for (size_t i = 0; i < g->n_tensors; i++) {
        uint64_t off = g->tensor_offsets[i];
        const char *name = g->tensors[i].name;
        if (off % g->alignment != 0)
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s: data offset %" PRIu64 " is not a multiple of the "
                               "alignment %u (next aligned offset %" PRIu64 ")", name, off,
                               g->alignment, off + (g->alignment - off % g->alignment));
        if (off >= data_bytes)
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s: data offset %" PRIu64 " is past the end of the data "
                               "section (%" PRIu64 " bytes)", name, off, data_bytes);
    }
    return BONSAI_OK;
}

/* Each tensor's bytes must end before the next one starts (or the file ends). */
static bonsai_status check_extents(const bonsai_gguf *g, const by_offset *order,
                                   const uint64_t *extent)
{
    for (size_t r = 0; r < g->n_tensors; r++) {
        const bonsai_gguf_tensor *t = &g->tensors[order[r].index];
        if ((uint64_t)t->bytes <= extent[order[r].index])
            continue;
        if (r + 1 < g->n_tensors)
            return bonsai_fail(BONSAI_ERR_FORMAT,
                               "tensor %s needs %zu bytes (type %s, %" PRIu64 " x %" PRIu64
                               " ...) but overlaps tensor %s, which starts %" PRIu64
                               " bytes after it", t->name, t->bytes, bonsai_type_name(t->type),
                               t->ne[0], t->ne[1], g->tensors[order[r + 1].index].name,
                               extent[order[r].index]);
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "tensor %s needs %zu bytes (type %s, %" PRIu64 " x %" PRIu64
                           " ...) but the file ends %" PRIu64 " bytes after its start",
                           t->name, t->bytes, bonsai_type_name(t->type), t->ne[0], t->ne[1],
                           extent[order[r].index]);
    }
    return BONSAI_OK;
}

bonsai_status gguf_place_tensors(bonsai_gguf *g, bonsai_q2_variant requested)
{
    if (g->n_tensors == 0)
        return gguf_resolve_q2(g, requested, NULL);
    if (g->data_start > g->size)
        return bonsai_fail(BONSAI_ERR_FORMAT,
                           "the data section starts at file offset %zu (after alignment to "
                           "%u), past the end of the file (%zu bytes)", g->data_start,
                           g->alignment, g->size);
    uint64_t data_bytes = g->size - g->data_start;
    bonsai_status s = check_offsets(g, data_bytes);
    if (s != BONSAI_OK)
        return s;
    by_offset *order = malloc(g->n_tensors * sizeof *order);
    uint64_t *extent = malloc(g->n_tensors * sizeof *extent);
    if (!order || !extent) {
        free(order);
        free(extent);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "no memory to place %zu tensors",
                           g->n_tensors);
    }
    for (size_t i = 0; i < g->n_tensors; i++)
        order[i] = (by_offset){g->tensor_offsets[i], i};
    qsort(order, g->n_tensors, sizeof *order, cmp_offset);
    for (size_t r = 0; r < g->n_tensors; r++) {
        uint64_t end = r + 1 < g->n_tensors ? order[r + 1].offset : data_bytes;
        extent[order[r].index] = end - order[r].offset;
    }
    s = gguf_resolve_q2(g, requested, extent);
    if (s == BONSAI_OK)
        s = check_extents(g, order, extent);
    free(order);
    free(extent);
    if (s != BONSAI_OK)
        return s;
    for (size_t i = 0; i < g->n_tensors; i++)
        g->tensors[i].data = g->map + g->data_start + g->tensor_offsets[i];
    return BONSAI_OK;
}

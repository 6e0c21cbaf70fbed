/* Format traits table, type names and matrix sizes. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "formats/formats_internal.h"

_Static_assert(sizeof(bonsai_block_q1_0_g128) == 18, "Q1_0_g128 block is 18 bytes");
_Static_assert(sizeof(bonsai_block_tq2_0_g128) == 34, "TQ2_0_g128 block is 34 bytes");
_Static_assert(sizeof(bonsai_block_pq2_0) == 34, "PQ2_0 block is 34 bytes");
_Static_assert(sizeof(bonsai_block_q2_0_g64) == 18, "Q2_0 (g64) block is 18 bytes");

static const bonsai_format_traits traits[BONSAI_TYPE_COUNT] = {
    [BONSAI_TYPE_F32] = {"f32", 1, 4, bonsai_quantize_f32, bonsai_dequantize_f32},
    [BONSAI_TYPE_F16] = {"f16", 1, 2, bonsai_quantize_f16, bonsai_dequantize_f16},
    [BONSAI_TYPE_BF16] = {"bf16", 1, 2, bonsai_quantize_bf16, bonsai_dequantize_bf16},
    [BONSAI_TYPE_Q1_0_G128] = {"q1_0_g128", 128, 18, bonsai_quantize_q1_0_g128,
                               bonsai_dequantize_q1_0_g128},
    [BONSAI_TYPE_TQ2_0_G128] = {"tq2_0_g128", 128, 34, bonsai_quantize_tq2_0_g128,
                                bonsai_dequantize_tq2_0_g128},
    [BONSAI_TYPE_PQ2_0] = {"pq2_0", 128, 34, bonsai_quantize_pq2_0, bonsai_dequantize_pq2_0},
    [BONSAI_TYPE_Q2_0_G64] = {"q2_0_g64", 64, 18, bonsai_quantize_q2_0_g64,
                              bonsai_dequantize_q2_0_g64},
};

const bonsai_format_traits *bonsai_format_traits_get(bonsai_type t)
{
    if ((unsigned)t >= BONSAI_TYPE_COUNT)
        return NULL;
    return &traits[t];
}

const char *bonsai_type_name(bonsai_type t)
{
    const bonsai_format_traits *tr = bonsai_format_traits_get(t);
    return tr ? tr->name : NULL;
}

bonsai_status bonsai_type_from_name(const char *name, bonsai_type *out)
{
    if (!name || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "type name: NULL argument");
    for (int t = 0; t < BONSAI_TYPE_COUNT; t++) {
        if (strcmp(traits[t].name, name) == 0) {
            *out = (bonsai_type)t;
            return BONSAI_OK;
        }
    }
    return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                       "unknown type '%s' (known: f32, f16, bf16, q1_0_g128, tq2_0_g128, "
                       "pq2_0, q2_0_g64)", name);
}

size_t bonsai_type_block_elems(bonsai_type t)
{
    const bonsai_format_traits *tr = bonsai_format_traits_get(t);
    return tr ? tr->block_elems : 0;
}

size_t bonsai_type_block_bytes(bonsai_type t)
{
    const bonsai_format_traits *tr = bonsai_format_traits_get(t);
    return tr ? tr->block_bytes : 0;
}

bonsai_status bonsai_type_matrix_bytes(bonsai_type t, size_t rows, size_t k, size_t *bytes)
{
    const bonsai_format_traits *tr = bonsai_format_traits_get(t);
    if (!tr)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "type id %d is not a bonsai type", (int)t);
    if (!bytes)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matrix bytes: out is NULL");
    if (k % tr->block_elems != 0)
        return bonsai_fail(BONSAI_ERR_SHAPE, "k = %zu is not a multiple of %zu (type %s)", k,
                           tr->block_elems, tr->name);
    size_t row_bytes, total;
    if (!bonsai_mul_size(k / tr->block_elems, tr->block_bytes, &row_bytes) ||
        !bonsai_mul_size(row_bytes, rows, &total))
        return bonsai_fail(BONSAI_ERR_OVERFLOW,
                           "a %zu x %zu %s matrix overflows size_t bytes", rows, k, tr->name);
    *bytes = total;
    return BONSAI_OK;
}

static bonsai_status check_conversion(bonsai_type t, const void *floats, const void *blocks,
                                      size_t n, size_t bytes, const char *what,
                                      const bonsai_format_traits **tr_out)
{
    const bonsai_format_traits *tr = bonsai_format_traits_get(t);
    if (!tr)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "%s: type id %d is not a bonsai type", what,
                           (int)t);
    if (!floats || !blocks)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "%s %s: NULL buffer", what, tr->name);
    size_t need;
    bonsai_status s = bonsai_type_matrix_bytes(t, 1, n, &need);
    if (s != BONSAI_OK)
        return s;
    if (bytes < need)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "%s %s: %zu elements need %zu bytes of blocks, buffer has %zu", what,
                           tr->name, n, need, bytes);
    *tr_out = tr;
    return BONSAI_OK;
}

bonsai_status bonsai_quantize(bonsai_type t, const float *src, size_t n, void *dst,
                              size_t dst_bytes)
{
    const bonsai_format_traits *tr;
    bonsai_status s = check_conversion(t, src, dst, n, dst_bytes, "quantize", &tr);
    if (s != BONSAI_OK)
        return s;
    tr->quantize(src, dst, n / tr->block_elems);
    return BONSAI_OK;
}

bonsai_status bonsai_dequantize(bonsai_type t, const void *src, size_t src_bytes, float *dst,
                                size_t n)
{
    const bonsai_format_traits *tr;
    bonsai_status s = check_conversion(t, dst, src, n, src_bytes, "dequantize", &tr);
    if (s != BONSAI_OK)
        return s;
    tr->dequantize(src, dst, n / tr->block_elems);
    return BONSAI_OK;
}

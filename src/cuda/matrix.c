/* Uploads a Q1_0_G128 / TQ2_0_G128 matrix once, re-laid out for the GPU
 * (kernels/layout.cuh): bits or recoded 2-bit codes [rows_pad][k/8 or k/4],
 * scales [rows_pad/8][k/128][8] fp16, rows padded to 128 with zeros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "cuda/backend.h"
#include "cuda/loader.h"

/* TQ2 byte of four codes -> four codes c' = value + 1 (00 -> 0, 01 -> 1,
 * 10 -> 2, 11 -> 1). */
static uint8_t recode_tq2(uint8_t b)
{
    static const uint8_t code[4] = {0, 1, 2, 1};
    uint8_t out = 0;
    for (int j = 0; j < 4; j++)
        out |= (uint8_t)(code[(b >> (2 * j)) & 3] << (2 * j));
    return out;
}

static bonsai_status check_matrix(const bonsai_matrix *w)
{
    if (!w)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "bonsai_cuda_matrix_upload: matrix is NULL");
    const char *name = w->name ? w->name : "matrix";
    if (w->type != BONSAI_TYPE_Q1_0_G128 && w->type != BONSAI_TYPE_TQ2_0_G128) {
        const char *tn = bonsai_type_name(w->type);
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "CUDA matmul: %s has type %s; the GPU takes q1_0_g128 or tq2_0_g128",
                           name, tn ? tn : "(invalid)");
    }
    if (!w->data)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "CUDA matmul: data of %s is NULL", name);
    if (w->rows == 0 || w->k == 0 || w->rows > (1u << 30) || w->k > (1u << 24))
        return bonsai_fail(BONSAI_ERR_SHAPE, "CUDA matmul: %s has shape %zu x %zu", name, w->rows,
                           w->k);
    if (w->k % BONSAI_QK != 0)
        return bonsai_fail(BONSAI_ERR_SHAPE, "k = %zu is not a multiple of 128 (tensor %s)", w->k,
                           name);
    size_t need;
    bonsai_status s = bonsai_type_matrix_bytes(w->type, w->rows, w->k, &need);
    if (s != BONSAI_OK)
        return s;
    if (w->data_bytes < need)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "CUDA matmul: %s (%zu x %zu %s) needs %zu bytes, buffer has %zu", name,
                           w->rows, w->k, bonsai_type_name(w->type), need, w->data_bytes);
    return BONSAI_OK;
}

bonsai_status bonsai_cuda_matrix_upload(bonsai_cuda *cu, const bonsai_matrix *w,
                                        bonsai_cuda_matrix **out)
{
    if (!cu || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "bonsai_cuda_matrix_upload: NULL argument");
    *out = NULL;
    bonsai_status s = check_matrix(w);
    if (s != BONSAI_OK)
        return s;
    const int q1 = w->type == BONSAI_TYPE_Q1_0_G128;
    const size_t nb = w->k / BONSAI_QK, rows_pad = (w->rows + 127) / 128 * 128;
    const size_t code_bytes = q1 ? 16 : 32, block_bytes = q1 ? 18 : 34;
    const size_t row_bytes = nb * code_bytes;
    const size_t bits_bytes = rows_pad * row_bytes, scales_bytes = rows_pad * nb * 2;
    uint8_t *bits = bonsai_alloc_array(bits_bytes, 1);
    uint16_t *scales = bonsai_alloc_array(rows_pad * nb, 2);
    bonsai_cuda_matrix *m = calloc(1, sizeof *m);
    if (!bits || !scales || !m) {
        bonsai_free(bits);
        bonsai_free(scales);
        free(m);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "CUDA upload of %s: %zu bytes of staging",
                           w->name ? w->name : "matrix", bits_bytes + scales_bytes);
    }
    memset(bits, 0, bits_bytes);
    memset(scales, 0, scales_bytes);
    const uint8_t *src = w->data;
    int huge_scale = 0;
    for (size_t r = 0; r < w->rows; r++) // [rows][k/128] blocks
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = src + (r * nb + b) * block_bytes;
            uint8_t *dst = bits + r * row_bytes + b * code_bytes;
            const uint8_t *d = q1 ? blk : blk + 32;
            if (q1)
                memcpy(dst, blk + 2, 16);
            else
                for (int j = 0; j < 32; j++)
                    dst[j] = recode_tq2(blk[j]);
            const uint16_t h = (uint16_t)(d[0] | (d[1] << 8));
            scales[((r / 8) * nb + b) * 8 + r % 8] = h;
            huge_scale |= (h & 0x7FFF) >= 0x7800; // |d| >= 2^15, inf or NaN
        }

    m->cu = cu;
    m->type = w->type;
    m->fmt = q1 ? 0 : 1;
    m->rows = w->rows;
    m->rows_pad = rows_pad;
    m->k = w->k;
    m->huge_scale = huge_scale;
    m->bits_bytes = bits_bytes;
    m->scales_bytes = scales_bytes;
    snprintf(m->name, sizeof m->name, "%s", w->name ? w->name : "matrix");
    const bonsai_cuda_api *api = cu->api;
    CUresult r = api->cuMemAlloc(&m->bits, bits_bytes);
    const char *what = "cuMemAlloc (weights)";
    if (r == CUDA_SUCCESS) {
        r = api->cuMemAlloc(&m->scales, scales_bytes);
        what = "cuMemAlloc (scales)";
    }
    if (r == CUDA_SUCCESS) {
        r = api->cuMemcpyHtoDAsync(m->bits, bits, bits_bytes, cu->stream);
        what = "cuMemcpyHtoDAsync (weights)";
    }
    if (r == CUDA_SUCCESS) {
        r = api->cuMemcpyHtoDAsync(m->scales, scales, scales_bytes, cu->stream);
        what = "cuMemcpyHtoDAsync (scales)";
    }
    if (r == CUDA_SUCCESS) {
        r = api->cuStreamSynchronize(cu->stream);
        what = "cuStreamSynchronize (upload)";
    }
    bonsai_free(bits);
    bonsai_free(scales);
    if (r != CUDA_SUCCESS) {
        s = bonsai_cuda_fail(api, r, what);
        bonsai_cuda_matrix_free(m);
        return s;
    }
    *out = m;
    return BONSAI_OK;
}

void bonsai_cuda_matrix_free(bonsai_cuda_matrix *m)
{
    if (!m)
        return;
    const bonsai_cuda_api *api = m->cu->api;
    api->cuStreamSynchronize(m->cu->stream);
    if (m->bits)
        api->cuMemFree(m->bits);
    if (m->scales)
        api->cuMemFree(m->scales);
    free(m);
}

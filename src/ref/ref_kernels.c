/* Scalar reference kernels (see ref_kernels.h). */
#include <math.h>
#include <string.h>

#include "formats/formats_internal.h"
#include "ref/ref_kernels.h"

void bonsai_ref_mm_f32(bonsai_type type, const void *w, size_t k, size_t r0, size_t r1,
                       const float *x, size_t m, float *y, size_t ldy)
{
    const bonsai_format_traits *tr = bonsai_format_traits_get(type);
    const size_t n_blocks = k / tr->block_elems;
    const size_t row_bytes = n_blocks * tr->block_bytes;
    float wf[BONSAI_QK];
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        for (size_t t = 0; t < m; t++) {
            const float *xt = x + t * k;
            float acc = 0;
            for (size_t b = 0; b < n_blocks; b++) { // [k / block_elems]
                tr->dequantize(row + b * tr->block_bytes, wf, 1);
                float block_sum = 0;
                for (size_t j = 0; j < tr->block_elems; j++)
                    block_sum += wf[j] * xt[b * tr->block_elems + j];
                acc += block_sum;
            }
            y[t * ldy + (r - r0)] = acc;
        }
    }
}

static float load_fp16(const uint8_t *p)
{
    return bonsai_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

/* Integer codes of the 128 weights at block position b of a row, and the
 * scale of each 64-weight half (equal except for the group-64 format). */
static void weight_codes(bonsai_type type, const uint8_t *row, size_t b, int8_t codes[BONSAI_QK],
                         float d[2])
{
    switch (type) {
    case BONSAI_TYPE_Q1_0_G128: {
        const uint8_t *blk = row + b * 18;
        d[0] = d[1] = load_fp16(blk);
        for (int j = 0; j < BONSAI_QK; j++)
            codes[j] = ((blk[2 + j / 8] >> (j % 8)) & 1) ? 1 : -1;
        break;
    }
    case BONSAI_TYPE_TQ2_0_G128: {
        static const int8_t value[4] = {-1, 0, 1, 0};
        const uint8_t *blk = row + b * 34;
        d[0] = d[1] = load_fp16(blk + 32);
        for (int j = 0; j < BONSAI_QK; j++)
            codes[j] = value[(blk[j / 4] >> (2 * (j % 4))) & 3];
        break;
    }
    case BONSAI_TYPE_PQ2_0: {
        const uint8_t *blk = row + b * 34;
        d[0] = d[1] = load_fp16(blk);
        for (int j = 0; j < BONSAI_QK; j++)
            codes[j] = (int8_t)(((blk[2 + j / 4] >> (2 * (j % 4))) & 3) - 1);
        break;
    }
    case BONSAI_TYPE_Q2_0_G64:
        for (int h = 0; h < 2; h++) {
            const uint8_t *blk = row + (2 * b + (size_t)h) * 18;
            d[h] = load_fp16(blk);
            for (int j = 0; j < 64; j++)
                codes[64 * h + j] = (int8_t)(((blk[2 + j / 4] >> (2 * (j % 4))) & 3) - 1);
        }
        break;
    default:
        memset(codes, 0, BONSAI_QK);
        d[0] = d[1] = 0;
        break;
    }
}

void bonsai_ref_mm_q8(bonsai_type type, const void *w, size_t k, size_t r0, size_t r1,
                      const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    const bonsai_format_traits *tr = bonsai_format_traits_get(type);
    const size_t n_blocks = k / BONSAI_QK;
    const size_t row_bytes = k / tr->block_elems * tr->block_bytes;
    int8_t codes[BONSAI_QK];
    float d[2];
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        for (size_t t = 0; t < m; t++) {
            const bonsai_block_q8 *xt = x + t * n_blocks;
            float acc = 0;
            for (size_t b = 0; b < n_blocks; b++) { // [k / 128]
                weight_codes(type, row, b, codes, d);
                int32_t half[2] = {0, 0};
                for (int j = 0; j < BONSAI_QK; j++)
                    half[j / 64] += codes[j] * xt[b].qs[j];
                acc += xt[b].d * (d[0] * (float)half[0] + d[1] * (float)half[1]);
            }
            y[t * ldy + (r - r0)] = acc;
        }
    }
}

void bonsai_ref_silu_mul(const float *g, const float *u, float *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void bonsai_ref_rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y)
{
    for (size_t t = 0; t < m; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        double acc[8] = {0};
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += (double)xr[i + l] * xr[i + l];
        double ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (; i < n; i++)
            ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        for (size_t i = 0; i < n; i++)
            yr[i] = xr[i] * scale * w[i];
    }
}

void bonsai_ref_quantize_q8(const float *x, size_t k, bonsai_block_q8 *out)
{
    for (size_t b = 0; b < k / BONSAI_QK; b++, x += BONSAI_QK) {
        float amax = 0;
        for (int j = 0; j < BONSAI_QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float inv = d > 0 ? 1.0f / d : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < BONSAI_QK; j++) {
            int q = (int)lrintf(x[j] * inv);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            out[b].qs[j] = (int8_t)q;
            sum += q;
        }
        out[b].d = d;
        out[b].sum = sum;
    }
}

/* PrismML PQ2_0 (GGUF 142, also legacy group-128 Q2_0 under id 42) and
 * upstream ggml Q2_0 (id 42, group 64): fp16 d first, then 2-bit codes at
 * (qs[j/4] >> 2*(j%4)) & 3, value (c - 1) * d: 00 -> -d, 01 -> 0, 10 -> +d,
 * 11 -> +2d. The quantizer picks the smallest d whose range [-d, 2d] covers
 * the block and the nearest code. */
#include <math.h>
#include <string.h>

#include "formats/formats_internal.h"

static void quantize_q2(const float *src, uint8_t *blk, size_t group)
{
    float maxv = 0, minv = 0;
    for (size_t j = 0; j < group; j++) {
        maxv = fmaxf(maxv, src[j]);
        minv = fminf(minv, src[j]);
    }
    float d = fmaxf(maxv / 2, -minv);
    uint16_t dh = bonsai_fp32_to_fp16(d);
    float dq = bonsai_fp16_to_fp32(dh);
    blk[0] = (uint8_t)dh;
    blk[1] = (uint8_t)(dh >> 8);
    uint8_t *qs = blk + 2;
    memset(qs, 0, group / 4);
    for (size_t j = 0; j < group; j++) {
        int c = 1;
        if (dq > 0) {
            c = (int)lrintf(src[j] / dq) + 1;
            c = c < 0 ? 0 : c > 3 ? 3 : c;
        }
        qs[j / 4] |= (uint8_t)(c << (2 * (j % 4)));
    }
}

static void dequantize_q2(const uint8_t *blk, float *dst, size_t group)
{
    float d = bonsai_fp16_to_fp32((uint16_t)(blk[0] | (blk[1] << 8)));
    const uint8_t *qs = blk + 2;
    for (size_t j = 0; j < group; j++)
        dst[j] = (float)((int)((qs[j / 4] >> (2 * (j % 4))) & 3) - 1) * d;
}

void bonsai_quantize_pq2_0(const float *src, void *dst, size_t n_blocks)
{
    for (size_t b = 0; b < n_blocks; b++)
        quantize_q2(src + b * 128, (uint8_t *)dst + b * sizeof(bonsai_block_pq2_0), 128);
}

void bonsai_dequantize_pq2_0(const void *src, float *dst, size_t n_blocks)
{
    for (size_t b = 0; b < n_blocks; b++)
        dequantize_q2((const uint8_t *)src + b * sizeof(bonsai_block_pq2_0), dst + b * 128, 128);
}

void bonsai_quantize_q2_0_g64(const float *src, void *dst, size_t n_blocks)
{
    for (size_t b = 0; b < n_blocks; b++)
        quantize_q2(src + b * 64, (uint8_t *)dst + b * sizeof(bonsai_block_q2_0_g64), 64);
}

void bonsai_dequantize_q2_0_g64(const void *src, float *dst, size_t n_blocks)
{
    for (size_t b = 0; b < n_blocks; b++)
        dequantize_q2((const uint8_t *)src + b * sizeof(bonsai_block_q2_0_g64), dst + b * 64, 64);
}

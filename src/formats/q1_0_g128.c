/* Q1_0_g128: 18-byte blocks of 128 weights, fp16 d then 128 sign bits
 * (bit j%8 of qs[j/8], LSB first): 1 -> +d, 0 -> -d. Byte-identical to
 * ggml's Q1_0 (GGUF type 41). d = mean |x| minimises the squared error of
 * sign codes. */
#include <math.h>
#include <string.h>

#include "formats/formats_internal.h"

void bonsai_quantize_q1_0_g128(const float *src, void *dst, size_t n_blocks)
{
    bonsai_block_q1_0_g128 *out = dst;
    for (size_t b = 0; b < n_blocks; b++, src += BONSAI_QK) {
        bonsai_block_q1_0_g128 blk;
        double sum_abs = 0;
        memset(blk.qs, 0, sizeof blk.qs);
        for (int j = 0; j < BONSAI_QK; j++) {
            sum_abs += fabsf(src[j]);
            if (src[j] >= 0)
                blk.qs[j / 8] |= (uint8_t)(1u << (j % 8));
        }
        blk.d = bonsai_fp32_to_fp16((float)(sum_abs / BONSAI_QK));
        memcpy(&out[b], &blk, sizeof blk);
    }
}

void bonsai_dequantize_q1_0_g128(const void *src, float *dst, size_t n_blocks)
{
    const uint8_t *p = src;
    for (size_t b = 0; b < n_blocks; b++, p += sizeof(bonsai_block_q1_0_g128)) {
        float d = bonsai_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
        const uint8_t *qs = p + 2;
        for (int j = 0; j < BONSAI_QK; j++)
            *dst++ = ((qs[j / 8] >> (j % 8)) & 1) ? d : -d;
    }
}

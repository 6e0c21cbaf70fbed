/* TQ2_0_g128 (this project's and oxibonsai's meaning of GGUF id 42):
 * 34-byte blocks, qs[32] then fp16 d. Code c = (qs[j/4] >> 2*(j%4)) & 3:
 * 00 -> -d, 01 -> 0, 10 -> +d, 11 -> 0 (never written, read as zero).
 * Quantizer (the seed's rule): d = max |x|; |x| < d/2 -> 0, else sign. */
#include <math.h>
#include <string.h>

#include "formats/formats_internal.h"

void bonsai_quantize_tq2_0_g128(const float *src, void *dst, size_t n_blocks)
{
    bonsai_block_tq2_0_g128 *out = dst;
    for (size_t b = 0; b < n_blocks; b++, src += BONSAI_QK) {
        bonsai_block_tq2_0_g128 blk;
        float amax = 0;
        for (int j = 0; j < BONSAI_QK; j++)
            amax = fmaxf(amax, fabsf(src[j]));
        memset(blk.qs, 0, sizeof blk.qs);
        for (int j = 0; j < BONSAI_QK; j++) {
            unsigned code = 1; /* zero */
            if (amax > 0 && fabsf(src[j]) >= 0.5f * amax)
                code = src[j] > 0 ? 2 : 0;
            blk.qs[j / 4] |= (uint8_t)(code << (2 * (j % 4)));
        }
        blk.d = bonsai_fp32_to_fp16(amax);
        memcpy(&out[b], &blk, sizeof blk);
    }
}

void bonsai_dequantize_tq2_0_g128(const void *src, float *dst, size_t n_blocks)
{
    const uint8_t *p = src;
    for (size_t b = 0; b < n_blocks; b++, p += sizeof(bonsai_block_tq2_0_g128)) {
        float d = bonsai_fp16_to_fp32((uint16_t)(p[32] | (p[33] << 8)));
        const float value[4] = {-d, 0.0f, d, 0.0f};
        for (int j = 0; j < BONSAI_QK; j++)
            *dst++ = value[(p[j / 4] >> (2 * (j % 4))) & 3];
    }
}

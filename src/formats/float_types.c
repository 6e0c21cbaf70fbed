/* F32, F16 and BF16 "blocks": one element each. */
#include <string.h>

#include "formats/formats_internal.h"

void bonsai_quantize_f32(const float *src, void *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

void bonsai_dequantize_f32(const void *src, float *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

/* Byte-wise little-endian access keeps unaligned file data safe. */
static uint16_t load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void store_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void bonsai_quantize_f16(const float *src, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_u16((uint8_t *)dst + 2 * i, bonsai_fp32_to_fp16(src[i]));
}

void bonsai_dequantize_f16(const void *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bonsai_fp16_to_fp32(load_u16((const uint8_t *)src + 2 * i));
}

void bonsai_quantize_bf16(const float *src, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_u16((uint8_t *)dst + 2 * i, bonsai_fp32_to_bf16(src[i]));
}

void bonsai_dequantize_bf16(const void *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bonsai_bf16_to_fp32(load_u16((const uint8_t *)src + 2 * i));
}

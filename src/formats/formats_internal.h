/* Internal: per-format traits and the block converters behind them.
 * Converters take whole blocks and trust their arguments (the public
 * bonsai_quantize / bonsai_dequantize validate). */
#ifndef BONSAI_FORMATS_INTERNAL_H
#define BONSAI_FORMATS_INTERNAL_H
#include <stddef.h>

#include "bonsai/formats.h"

typedef void (*bonsai_quantize_fn)(const float *src, void *dst, size_t n_blocks);
typedef void (*bonsai_dequantize_fn)(const void *src, float *dst, size_t n_blocks);

typedef struct bonsai_format_traits {
    const char *name;
    size_t block_elems;
    size_t block_bytes;
    bonsai_quantize_fn quantize;
    bonsai_dequantize_fn dequantize;
} bonsai_format_traits;

/* NULL for an out-of-range type. */
const bonsai_format_traits *bonsai_format_traits_get(bonsai_type t);

void bonsai_quantize_f32(const float *src, void *dst, size_t n);
void bonsai_dequantize_f32(const void *src, float *dst, size_t n);
void bonsai_quantize_f16(const float *src, void *dst, size_t n);
void bonsai_dequantize_f16(const void *src, float *dst, size_t n);
void bonsai_quantize_bf16(const float *src, void *dst, size_t n);
void bonsai_dequantize_bf16(const void *src, float *dst, size_t n);
void bonsai_quantize_q1_0_g128(const float *src, void *dst, size_t n_blocks);
void bonsai_dequantize_q1_0_g128(const void *src, float *dst, size_t n_blocks);
void bonsai_quantize_tq2_0_g128(const float *src, void *dst, size_t n_blocks);
void bonsai_dequantize_tq2_0_g128(const void *src, float *dst, size_t n_blocks);
void bonsai_quantize_pq2_0(const float *src, void *dst, size_t n_blocks);
void bonsai_dequantize_pq2_0(const void *src, float *dst, size_t n_blocks);
void bonsai_quantize_q2_0_g64(const float *src, void *dst, size_t n_blocks);
void bonsai_dequantize_q2_0_g64(const void *src, float *dst, size_t n_blocks);

#endif

/* Weight formats: block layouts, traits, quantizers and dequantizers.
 *
 * Byte-exact layouts (little-endian, fp16 = IEEE binary16):
 *   Q1_0_G128  18 B / 128 w : fp16 d, qs[16]; bit j%8 of qs[j/8]: 1 -> +d, 0 -> -d
 *   TQ2_0_G128 34 B / 128 w : qs[32], fp16 d; code (qs[j/4] >> 2*(j%4)) & 3:
 *                             00 -> -d, 01 -> 0, 10 -> +d, 11 -> 0
 *   PQ2_0      34 B / 128 w : fp16 d, qs[32]; same code position, value (c-1)*d
 *   Q2_0_G64   18 B /  64 w : fp16 d, qs[16]; as PQ2_0 with 64 per block (ggml Q2_0)
 *   F32, F16, BF16          : one element per "block".
 */
#ifndef BONSAI_FORMATS_H
#define BONSAI_FORMATS_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bonsai_type {
    BONSAI_TYPE_F32 = 0,
    BONSAI_TYPE_F16,
    BONSAI_TYPE_BF16,
    BONSAI_TYPE_Q1_0_G128,
    BONSAI_TYPE_TQ2_0_G128,
    BONSAI_TYPE_PQ2_0,
    BONSAI_TYPE_Q2_0_G64,
    BONSAI_TYPE_COUNT
} bonsai_type;

#define BONSAI_QK 128 /* weights per block in the 128-group formats */

typedef struct bonsai_block_q1_0_g128 {
    uint16_t d;        /* fp16 scale */
    uint8_t qs[16];    /* 128 sign bits, LSB first */
} bonsai_block_q1_0_g128;

typedef struct bonsai_block_tq2_0_g128 {
    uint8_t qs[32];    /* 128 2-bit codes, 4 per byte, LSB first */
    uint16_t d;        /* fp16 scale, stored after the codes */
} bonsai_block_tq2_0_g128;

typedef struct bonsai_block_pq2_0 {
    uint16_t d;
    uint8_t qs[32];
} bonsai_block_pq2_0;

typedef struct bonsai_block_q2_0_g64 {
    uint16_t d;
    uint8_t qs[16];
} bonsai_block_q2_0_g64;

/* Name ("q1_0_g128"), or NULL for an out-of-range type. */
const char *bonsai_type_name(bonsai_type t);
/* Type from its name; BONSAI_ERR_INVALID_ARG for an unknown name. */
bonsai_status bonsai_type_from_name(const char *name, bonsai_type *out);
/* Elements per block (1 for float types) and bytes per block; 0 if invalid. */
size_t bonsai_type_block_elems(bonsai_type t);
size_t bonsai_type_block_bytes(bonsai_type t);
/* Bytes of a row-major [rows][k] matrix of type t. Fails with SHAPE if k is
 * not a multiple of the block size, OVERFLOW if the count overflows size_t. */
bonsai_status bonsai_type_matrix_bytes(bonsai_type t, size_t rows, size_t k, size_t *bytes);

/* n floats -> blocks of type t (n a multiple of the block size).
 * Q1_0_G128: d = mean |x|; TQ2_0_G128: d = max |x|, |x| < d/2 -> 0;
 * PQ2_0 / Q2_0_G64: smallest d whose range [-d, 2d] covers the block,
 * nearest code. */
bonsai_status bonsai_quantize(bonsai_type t, const float *src, size_t n,
                              void *dst, size_t dst_bytes);
/* Blocks of type t -> n floats. */
bonsai_status bonsai_dequantize(bonsai_type t, const void *src, size_t src_bytes,
                                float *dst, size_t n);

/* IEEE binary16 and bfloat16 conversions (round to nearest even). */
float bonsai_fp16_to_fp32(uint16_t h);
uint16_t bonsai_fp32_to_fp16(float f);
float bonsai_bf16_to_fp32(uint16_t h);
uint16_t bonsai_fp32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif

/* Internal: ggml tensor type ids as they appear in GGUF files, and the
 * mapping to and from bonsai_type. */
#ifndef BONSAI_GGUF_TYPES_H
#define BONSAI_GGUF_TYPES_H
#include <stdint.h>

#include "bonsai/formats.h"

#define GGML_TYPE_F32 0u
#define GGML_TYPE_F16 1u
#define GGML_TYPE_BF16 30u
#define GGML_TYPE_Q1_0 41u    /* = bonsai q1_0_g128 */
#define GGML_TYPE_Q2_42 42u   /* tq2_0_g128, PrismML legacy Q2_0 g128 or ggml Q2_0 g64 */
#define GGML_TYPE_PQ2_0 142u  /* PrismML PQ2_0 */

/* Lower-case name of a ggml type id ("q4_0"), or "unknown". */
const char *gguf_ggml_type_name(uint32_t id);
/* 1 and *out for ids bonsai reads without ambiguity (0, 1, 30, 41, 142);
 * 0 otherwise (including 42, which q2_variant.c decides). */
int gguf_ggml_to_bonsai(uint32_t id, bonsai_type *out);
/* The ggml id bonsai writes for a bonsai type (42 for tq2_0_g128 and
 * q2_0_g64); 0 and no output for an out-of-range type. */
int gguf_bonsai_to_ggml(bonsai_type t, uint32_t *out);

#endif

/* Matrix kernels on raw block buffers, run on a context's thread pool.
 *
 * Shapes: a weight matrix W is [rows][k], row-major in blocks (row r holds
 * blocks [r*k/128, (r+1)*k/128)); k must be a multiple of 128.
 * Activations are token-major: X is [m][k], Y is [m][rows].
 *
 * Two activation modes:
 *   f32: fp32 activations, fp32 accumulation.
 *   q8 : activations quantized once per 128 elements to int8 with an fp32
 *        scale (bonsai_quantize_q8), reusable across every matrix that reads
 *        the same vectors; weights consumed by integer dot products.
 *
 * Ops (Y = W X per token):
 *   bonsai_matmul_*        Y  = W X          (m = 1 is GEMV, m > 1 GEMM)
 *   bonsai_matmul_add_*    Y += W X          (residual add fused)
 *   bonsai_matmul_swiglu_* H  = silu(G X) * (U X), gate and up in one pass
 */
#ifndef BONSAI_KERNELS_H
#define BONSAI_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "formats.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CPU tiers ---------------------------------------------------------- */

typedef enum bonsai_cpu_tier {
    BONSAI_TIER_AUTO = 0, /* best the CPU and OS support (or BONSAI_CPU_TIER) */
    BONSAI_TIER_SCALAR,
    BONSAI_TIER_AVX2,     /* AVX2 + FMA + F16C */
    BONSAI_TIER_AVX512,   /* F/BW/VL, VNNI used when present */
    BONSAI_TIER_NEON,     /* DOTPROD used when present */
    BONSAI_TIER_COUNT
} bonsai_cpu_tier;

const char *bonsai_cpu_tier_name(bonsai_cpu_tier t);
/* 1 if this build has the tier compiled in and this CPU/OS can run it. */
int bonsai_cpu_tier_supported(bonsai_cpu_tier t);
/* The tier AUTO resolves to: BONSAI_CPU_TIER if set (error if unsupported),
 * else the best supported tier. */
bonsai_status bonsai_cpu_tier_select(bonsai_cpu_tier *out);
/* Comma-separated list of the tiers compiled into this build. */
const char *bonsai_cpu_tiers_built(void);
/* Extra CPU features the tiers can use when present: "vnni", "dotprod" or "". */
const char *bonsai_cpu_features(void);

/* ---- context: tier + persistent thread pool ----------------------------- */

typedef struct bonsai_ctx bonsai_ctx;

typedef struct bonsai_ctx_params {
    int n_threads;          /* <= 0: one per physical core */
    bonsai_cpu_tier tier;   /* AUTO: see bonsai_cpu_tier_select */
} bonsai_ctx_params;

bonsai_ctx_params bonsai_ctx_default_params(void);
bonsai_status bonsai_ctx_create(const bonsai_ctx_params *params, bonsai_ctx **out);
void bonsai_ctx_free(bonsai_ctx *ctx); /* NULL is a no-op */
int bonsai_ctx_n_threads(const bonsai_ctx *ctx);
bonsai_cpu_tier bonsai_ctx_tier(const bonsai_ctx *ctx);
/* Number of physical cores (>= 1). */
int bonsai_physical_cores(void);

/* ---- operands ------------------------------------------------------------ */

typedef struct bonsai_matrix {
    bonsai_type type;     /* BONSAI_TYPE_Q1_0_G128 or BONSAI_TYPE_TQ2_0_G128
                             (other quantized types run on the scalar path) */
    size_t rows, k;
    const void *data;     /* rows * k / 128 blocks */
    size_t data_bytes;    /* size of the buffer at data, checked */
    const char *name;     /* for error messages; may be NULL */
    /* Set by bonsai_matrix_pack, else zero: a copy of the weights in the
     * layout (id packed_layout) of one tier's one-token q8 kernel. */
    void *packed;
    size_t packed_bytes;
    int packed_layout;
} bonsai_matrix;

/* One 128-element block of int8 activations: x[j] ~= d * qs[j];
 * sum = sum_j qs[j] (used by the 1-bit identity). */
typedef struct bonsai_block_q8 {
    float d;
    int32_t sum;
    int8_t qs[BONSAI_QK];
} bonsai_block_q8;

/* Quantize m token vectors X[m][k] to q8 blocks: out holds m * k/128 blocks. */
bonsai_status bonsai_quantize_q8(bonsai_ctx *ctx, const float *x, size_t x_len, size_t m,
                                 size_t k, bonsai_block_q8 *out, size_t out_blocks);

/* ---- matmul -------------------------------------------------------------
 * x_len / x_blocks and y_len / h_len are the element (block) counts of the
 * caller's buffers; they must hold at least m * k (m * k/128) and m * rows. */

bonsai_status bonsai_matmul_f32(bonsai_ctx *ctx, const bonsai_matrix *w, const float *x,
                                size_t x_len, size_t m, float *y, size_t y_len);
bonsai_status bonsai_matmul_q8(bonsai_ctx *ctx, const bonsai_matrix *w,
                               const bonsai_block_q8 *x, size_t x_blocks, size_t m, float *y,
                               size_t y_len);
bonsai_status bonsai_matmul_add_f32(bonsai_ctx *ctx, const bonsai_matrix *w, const float *x,
                                    size_t x_len, size_t m, float *y, size_t y_len);
bonsai_status bonsai_matmul_add_q8(bonsai_ctx *ctx, const bonsai_matrix *w,
                                   const bonsai_block_q8 *x, size_t x_blocks, size_t m,
                                   float *y, size_t y_len);
/* Optional, for decode speed: copies w's weights into the layout the
 * context's one-token q8 kernel reads fastest (AVX-512, Q1_0_G128: 32-row
 * panels, src/cpu/avx512/gemv_q1_panels.c), using the context's threads.
 * Afterwards one-token q8 matmuls on w (with any context of the same tier)
 * read the copy, with bitwise the same results; everything else still
 * reads w->data. Where the tier has no such layout it returns BONSAI_OK
 * and leaves w as it was. Costs w's weight bytes again in memory. */
bonsai_status bonsai_matrix_pack(bonsai_ctx *ctx, bonsai_matrix *w);
/* Frees the copy (no-op when there is none). */
void bonsai_matrix_unpack(bonsai_matrix *w);

/* gate and up must have the same type and shape; h is [m][rows]. */
bonsai_status bonsai_matmul_swiglu_f32(bonsai_ctx *ctx, const bonsai_matrix *gate,
                                       const bonsai_matrix *up, const float *x, size_t x_len,
                                       size_t m, float *h, size_t h_len);
bonsai_status bonsai_matmul_swiglu_q8(bonsai_ctx *ctx, const bonsai_matrix *gate,
                                      const bonsai_matrix *up, const bonsai_block_q8 *x,
                                      size_t x_blocks, size_t m, float *h, size_t h_len);

#ifdef __cplusplus
}
#endif
#endif

/* Internal: the table of CPU kernels a tier provides.
 *
 * A tier's fill function overwrites only the slots it implements; the
 * scalar tier (src/ref) fills every slot first. Kernels trust their
 * arguments: validation happens in src/cpu/matmul.c.
 *
 * mm kernels compute, for tokens t in [0, m) and rows r in [r0, r1):
 *     y[t * ldy + (r - r0)] = sum_j W[r][j] * x_t[j]
 * where w is the start of the whole [rows][k] matrix (k % 128 == 0),
 * x_t = x + t * k (f32) or x + t * k/128 (q8 blocks). */
#ifndef BONSAI_CPU_KERNEL_TABLE_H
#define BONSAI_CPU_KERNEL_TABLE_H
#include <stddef.h>
#include <stdint.h>

#include "bonsai/kernels.h"

typedef void (*bonsai_mm_f32_fn)(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                                 size_t m, float *y, size_t ldy);
typedef void (*bonsai_mm_q8_fn)(const void *w, size_t k, size_t r0, size_t r1,
                                const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
/* k floats (k % 128 == 0) -> k/128 q8 blocks. */
typedef void (*bonsai_quantize_q8_fn)(const float *x, size_t k, bonsai_block_q8 *out);
typedef void (*bonsai_fp16_to_fp32_fn)(const uint16_t *src, float *dst, size_t n);
typedef void (*bonsai_fp32_to_fp16_fn)(const float *src, uint16_t *dst, size_t n);
/* h = silu(g) * u, the SwiGLU epilogue; n elements, any n. */
typedef void (*bonsai_silu_mul_fn)(const float *g, const float *u, float *h, size_t n);

/* RMSNorm of m rows of n floats, as Qwen3 uses it:
 *     y = x / sqrt(mean(x^2) + eps) * w
 * x, y [m][n] (may alias), w [n]. The sum of squares is taken in double as
 * 8 partial sums, lane l over elements l, l + 8, ... (combined as
 * ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7)), then the tail), so
 * every tier gives bitwise the reference's result: a float's square is
 * exact in double, so a fused multiply-add rounds as mul + add does. */
typedef void (*bonsai_rms_norm_fn)(const float *x, const float *w, size_t m, size_t n, float eps,
                                   float *y);

/* Element types of a KV cache row. Q8: D int8 values q and one float scale
 * d per row; element i is d * q[i]. */
typedef enum bonsai_cache_type {
    BONSAI_CACHE_F32,
    BONSAI_CACHE_F16,
    BONSAI_CACHE_Q8,
    BONSAI_CACHE_TYPES
} bonsai_cache_type;

static inline size_t bonsai_cache_elem_bytes(bonsai_cache_type type)
{
    return type == BONSAI_CACHE_F32 ? 4 : type == BONSAI_CACHE_F16 ? 2 : 1;
}

/* One KV head's cache: K and V rows [n][D] of the cache type, and for Q8
 * the rows' scales k_scale, v_scale [n] (NULL otherwise). */
typedef struct bonsai_attn_kv {
    const void *k, *v;
    const float *k_scale, *v_scale;
} bonsai_attn_kv;

/* Attention for one group of up to four query rows that share a KV head.
 * For rows r < n_rows with key counts n_keys[r] (keys 0 .. n_keys[r] - 1):
 *     s[r][j] = (q[r] . K[j]) * scale,  p = softmax over j < n_keys[r],
 *     out[r] = sum_j p[r][j] V[j]
 * q[r], out[r]: D floats; kv: the head's cache, read by attn_group[type];
 * scores: [4][stride] scratch, stride >= max n_keys. Rows r >= n_rows are
 * ignored. Tier kernels need D to be a multiple of attn_dim_multiple (the
 * model uses the scalar kernel otherwise) and match the reference to fp32
 * rounding. */
#define BONSAI_ATTN_ROWS 4
typedef struct bonsai_attn_group {
    const float *q[BONSAI_ATTN_ROWS];
    float *out[BONSAI_ATTN_ROWS];
    size_t n_keys[BONSAI_ATTN_ROWS];
    int n_rows;
} bonsai_attn_group;
typedef void (*bonsai_attn_group_fn)(const bonsai_attn_group *g, const bonsai_attn_kv *kv,
                                     uint32_t D, float scale, float *scores, size_t stride);

/* Defines `static void group(g, kv, D, scale, scores, stride, type)` that
 * calls GROUP_ROWS(..., R, type) with a compile-time row count R = n_rows
 * (1..4), for kernels unrolled per row count. */
#define BONSAI_DEFINE_ATTN_BY_ROWS(group, GROUP_ROWS)                                          \
    static inline __attribute__((always_inline)) void group(                                   \
        const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D, float scale,         \
        float *scores, size_t stride, const bonsai_cache_type type)                            \
    {                                                                                          \
        switch (g->n_rows) {                                                                   \
        case 1: GROUP_ROWS(g, kv, D, scale, scores, stride, 1, type); break;                   \
        case 2: GROUP_ROWS(g, kv, D, scale, scores, stride, 2, type); break;                   \
        case 3: GROUP_ROWS(g, kv, D, scale, scores, stride, 3, type); break;                   \
        case 4: GROUP_ROWS(g, kv, D, scale, scores, stride, 4, type); break;                   \
        default: break;                                                                        \
        }                                                                                      \
    }

/* Defines `const bonsai_attn_group_fn table[BONSAI_CACHE_TYPES]` from one
 * kernel body GROUP(g, kv, D, scale, scores, stride, type) whose last
 * argument is a compile-time bonsai_cache_type: one instance per type. */
#define BONSAI_DEFINE_ATTN_GROUPS(table, GROUP)                                                \
    static void table##_f32(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,  \
                            float scale, float *scores, size_t stride)                         \
    {                                                                                          \
        GROUP(g, kv, D, scale, scores, stride, BONSAI_CACHE_F32);                              \
    }                                                                                          \
    static void table##_f16(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,  \
                            float scale, float *scores, size_t stride)                         \
    {                                                                                          \
        GROUP(g, kv, D, scale, scores, stride, BONSAI_CACHE_F16);                              \
    }                                                                                          \
    static void table##_q8(const bonsai_attn_group *g, const bonsai_attn_kv *kv, uint32_t D,   \
                           float scale, float *scores, size_t stride)                          \
    {                                                                                          \
        GROUP(g, kv, D, scale, scores, stride, BONSAI_CACHE_Q8);                               \
    }                                                                                          \
    const bonsai_attn_group_fn table[BONSAI_CACHE_TYPES] = {table##_f32, table##_f16, table##_q8}

/* An optional one-token q8 path that first turns the activations into
 * lookup tables, once per call: prep fills bytes_per_k * k bytes (64-byte
 * aligned) that every task's gemv then reads for its rows [r0, r1),
 * writing y[r - r0]. Must give bitwise the sums mm_q8 gives for m = 1. */
typedef void (*bonsai_gemv_prep_fn)(const bonsai_block_q8 *x, size_t k, void *tables);
typedef void (*bonsai_gemv_tables_fn)(const void *w, size_t k, size_t r0, size_t r1,
                                      const bonsai_block_q8 *x, const void *tables, float *y);
/* The same GEMV on weights packed into a layout of the tier's own (layout
 * id packed_layout, pack_rows-row panels): packed_bytes sizes the buffer,
 * pack fills panels [p0, p1) of it from the file layout, gemv_packed reads
 * it for rows [r0, r1), r0 a multiple of pack_rows, with bitwise the sums
 * of gemv. packed_layout 0: the tier has none. */
typedef size_t (*bonsai_packed_bytes_fn)(size_t rows, size_t k);
typedef void (*bonsai_pack_fn)(const void *w, size_t rows, size_t k, size_t p0, size_t p1,
                               void *out);
typedef struct bonsai_gemv_tables_kernels {
    size_t bytes_per_k;
    bonsai_gemv_prep_fn prep;
    bonsai_gemv_tables_fn gemv;
    int packed_layout;
    size_t pack_rows;
    bonsai_packed_bytes_fn packed_bytes;
    bonsai_pack_fn pack;
    bonsai_gemv_tables_fn gemv_packed;
} bonsai_gemv_tables_kernels;

typedef struct bonsai_cpu_kernels {
    const char *name;
    bonsai_mm_f32_fn mm_f32[BONSAI_TYPE_COUNT];
    bonsai_mm_q8_fn mm_q8[BONSAI_TYPE_COUNT];
    bonsai_gemv_tables_kernels gemv_tables[BONSAI_TYPE_COUNT]; /* gemv NULL: none */
    bonsai_quantize_q8_fn quantize_q8;
    bonsai_fp16_to_fp32_fn fp16_to_fp32;
    bonsai_fp32_to_fp16_fn fp32_to_fp16;
    bonsai_silu_mul_fn silu_mul;
    bonsai_rms_norm_fn rms_norm;
    bonsai_attn_group_fn attn_group[BONSAI_CACHE_TYPES];
    uint32_t attn_dim_multiple;
    /* work split preferences: rows per task are a multiple of row_multiple;
     * GEMM tasks take up to tile_tokens tokens (<= BONSAI_MAX_TILE_TOKENS) */
    size_t row_multiple;
    size_t tile_tokens;
} bonsai_cpu_kernels;

#define BONSAI_MAX_TILE_ROWS 512
#define BONSAI_MAX_TILE_TOKENS 64

/* Fills every slot with the scalar reference (src/ref). */
void bonsai_cpu_fill_scalar(bonsai_cpu_kernels *t);
/* Tier fills, compiled only where the tier is built (BONSAI_HAVE_<TIER>). */
void bonsai_cpu_fill_avx2(bonsai_cpu_kernels *t);
void bonsai_cpu_fill_avx512(bonsai_cpu_kernels *t, int has_vnni);
void bonsai_cpu_fill_neon(bonsai_cpu_kernels *t, int has_dotprod);

/* The kernel table for a supported tier (AUTO resolved first); INVALID_ARG
 * for a value that is no tier, UNSUPPORTED for a tier not usable here. */
bonsai_status bonsai_cpu_kernels_get(bonsai_cpu_tier tier, const bonsai_cpu_kernels **out);

#endif

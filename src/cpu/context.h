/* Internal: the context object behind bonsai_ctx. */
#ifndef BONSAI_CPU_CONTEXT_H
#define BONSAI_CPU_CONTEXT_H
#include "core/threadpool.h"
#include "cpu/kernel_table.h"

struct bonsai_ctx {
    bonsai_cpu_tier tier;
    const bonsai_cpu_kernels *kernels;
    bonsai_pool *pool;
    float *scratch;        /* per worker: 2 tiles of MAX_TILE_ROWS x MAX_TILE_TOKENS */
    void *tables;          /* GEMV activation tables (kernel_table.h), grown on demand */
    size_t tables_bytes;
};

/* ctx->tables with room for bytes, or NULL when out of memory. */
void *bonsai_ctx_tables(bonsai_ctx *ctx, size_t bytes);

/* BONSAI_OK when w is a quantized matrix whose buffer holds its shape;
 * else the error, naming w and its role ("weight", "gate", "up"). */
bonsai_status bonsai_check_matrix(const bonsai_matrix *w, const char *role);

#define BONSAI_SCRATCH_FLOATS (2 * BONSAI_MAX_TILE_ROWS * BONSAI_MAX_TILE_TOKENS)

static inline float *bonsai_ctx_scratch(bonsai_ctx *ctx, int worker)
{
    return ctx->scratch + (size_t)worker * BONSAI_SCRATCH_FLOATS;
}

#endif

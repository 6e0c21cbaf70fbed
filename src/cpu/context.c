/* bonsai_ctx: a CPU tier plus a persistent thread pool and scratch tiles. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "cpu/context.h"

int bonsai_physical_cores(void)
{
    /* count distinct (package, core) pairs in sysfs; fall back to online CPUs */
    enum { MAX_CPUS = 1024 };
    long seen[MAX_CPUS]; /* local: the function may run on several threads */
    int n_seen = 0;
    for (int cpu = 0; cpu < MAX_CPUS; cpu++) {
        char path[128];
        long core = -1, pkg = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        if (fscanf(f, "%ld", &core) != 1)
            core = cpu;
        fclose(f);
        snprintf(path, sizeof path,
                 "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &pkg) != 1)
                pkg = 0;
            fclose(f);
        }
        long key = pkg * 65536 + core;
        int dup = 0;
        for (int i = 0; i < n_seen && !dup; i++)
            dup = seen[i] == key;
        if (!dup)
            seen[n_seen++] = key;
    }
    if (n_seen > 0)
        return n_seen;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bonsai_ctx_params bonsai_ctx_default_params(void)
{
    bonsai_ctx_params p = {.n_threads = 0, .tier = BONSAI_TIER_AUTO};
    return p;
}

bonsai_status bonsai_ctx_create(const bonsai_ctx_params *params, bonsai_ctx **out)
{
    if (!out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "context: out is NULL");
    *out = NULL;
    bonsai_ctx_params p = params ? *params : bonsai_ctx_default_params();
    bonsai_cpu_tier tier = p.tier;
    if (tier == BONSAI_TIER_AUTO) {
        bonsai_status s = bonsai_cpu_tier_select(&tier);
        if (s != BONSAI_OK)
            return s;
    }
    const bonsai_cpu_kernels *kernels = NULL;
    bonsai_status ks = bonsai_cpu_kernels_get(tier, &kernels);
    if (ks != BONSAI_OK)
        return ks;
    int n_threads = p.n_threads > 0 ? p.n_threads : bonsai_physical_cores();
    bonsai_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "context: out of memory");
    ctx->tier = tier;
    ctx->kernels = kernels;
    bonsai_status s = bonsai_pool_create(n_threads, &ctx->pool);
    if (s != BONSAI_OK) {
        free(ctx);
        return s;
    }
    ctx->scratch = bonsai_alloc_array((size_t)n_threads, BONSAI_SCRATCH_FLOATS * sizeof(float));
    if (!ctx->scratch) {
        bonsai_ctx_free(ctx);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "context: no memory for %d scratch tiles",
                           n_threads);
    }
    *out = ctx;
    return BONSAI_OK;
}

void *bonsai_ctx_tables(bonsai_ctx *ctx, size_t bytes)
{
    if (bytes > ctx->tables_bytes) {
        bonsai_free(ctx->tables);
        ctx->tables = bonsai_alloc_array(1, bytes);
        ctx->tables_bytes = ctx->tables ? bytes : 0;
    }
    return ctx->tables;
}

void bonsai_ctx_free(bonsai_ctx *ctx)
{
    if (!ctx)
        return;
    bonsai_pool_free(ctx->pool);
    bonsai_free(ctx->tables);
    bonsai_free(ctx->scratch);
    free(ctx);
}

int bonsai_ctx_n_threads(const bonsai_ctx *ctx)
{
    return ctx ? bonsai_pool_size(ctx->pool) : 0;
}

bonsai_cpu_tier bonsai_ctx_tier(const bonsai_ctx *ctx)
{
    return ctx ? ctx->tier : BONSAI_TIER_AUTO;
}

/* For tests that run a check on every CPU tier: the tier's kernel table, or
 * a context on it, or NULL after counting a skip when the tier is not built
 * here or the CPU lacks it (a context that cannot be made is a failed
 * check). */
#ifndef BONSAI_TEST_TIER_KERNELS_H
#define BONSAI_TEST_TIER_KERNELS_H
#include "bonsai/bonsai.h"
#include "cpu/kernel_table.h"
#include "harness.h"

static inline int tier_supported_or_skip(int tier)
{
    if (bonsai_cpu_tier_supported((bonsai_cpu_tier)tier))
        return 1;
    skip("tier %s: not built or not supported by this CPU",
         bonsai_cpu_tier_name((bonsai_cpu_tier)tier));
    return 0;
}

static inline const bonsai_cpu_kernels *tier_kernels_or_skip(int tier)
{
    const bonsai_cpu_kernels *kt = NULL;
    if (!tier_supported_or_skip(tier) ||
        !CHECK(bonsai_cpu_kernels_get((bonsai_cpu_tier)tier, &kt) == BONSAI_OK,
               "kernel table of %s: %s", bonsai_cpu_tier_name((bonsai_cpu_tier)tier),
               bonsai_last_error()))
        return NULL;
    return kt;
}

/* A context of n_threads on the tier; the caller frees it. */
static inline bonsai_ctx *tier_context_or_skip(int tier, int n_threads)
{
    if (!tier_supported_or_skip(tier))
        return NULL;
    bonsai_ctx *ctx = NULL;
    bonsai_ctx_params p = {.n_threads = n_threads, .tier = (bonsai_cpu_tier)tier};
    if (!CHECK(bonsai_ctx_create(&p, &ctx) == BONSAI_OK, "context for %s: %s",
               bonsai_cpu_tier_name((bonsai_cpu_tier)tier), bonsai_last_error()))
        return NULL;
    return ctx;
}

#endif

/* For tests that run a check on every CPU tier's kernel table: the table of
 * tier, or NULL after counting a skip when the tier is not built here or
 * the CPU lacks it. */
#ifndef BONSAI_TEST_TIER_KERNELS_H
#define BONSAI_TEST_TIER_KERNELS_H
#include "bonsai/bonsai.h"
#include "cpu/kernel_table.h"
#include "harness.h"

static inline const bonsai_cpu_kernels *tier_kernels_or_skip(int tier)
{
    const bonsai_cpu_kernels *kt = NULL;
    if (!bonsai_cpu_tier_supported((bonsai_cpu_tier)tier) ||
        bonsai_cpu_kernels_get((bonsai_cpu_tier)tier, &kt) != BONSAI_OK) {
        skip("tier %s: not built or not supported by this CPU",
             bonsai_cpu_tier_name((bonsai_cpu_tier)tier));
        return NULL;
    }
    return kt;
}

#endif

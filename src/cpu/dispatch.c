/* CPU tier selection: which tiers are built, which this CPU/OS runs, the
 * BONSAI_CPU_TIER override, and one kernel table per tier filled once. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu_features.h"
#include "core/error.h"
#include "cpu/kernel_table.h"

static const char *const tier_names[BONSAI_TIER_COUNT] = {
    [BONSAI_TIER_AUTO] = "auto",     [BONSAI_TIER_SCALAR] = "scalar",
    [BONSAI_TIER_AVX2] = "avx2",     [BONSAI_TIER_AVX512] = "avx512",
    [BONSAI_TIER_NEON] = "neon",
};

const char *bonsai_cpu_tier_name(bonsai_cpu_tier t)
{
    if ((unsigned)t >= BONSAI_TIER_COUNT)
        return "unknown";
    return tier_names[t];
}

static int tier_built(bonsai_cpu_tier t)
{
    switch (t) {
    case BONSAI_TIER_SCALAR:
        return 1;
#ifdef BONSAI_HAVE_AVX2
    case BONSAI_TIER_AVX2:
        return 1;
#endif
#ifdef BONSAI_HAVE_AVX512
    case BONSAI_TIER_AVX512:
        return 1;
#endif
#ifdef BONSAI_HAVE_NEON
    case BONSAI_TIER_NEON:
        return 1;
#endif
    default:
        return 0;
    }
}

static int tier_runs_here(bonsai_cpu_tier t)
{
    const bonsai_cpu_caps *caps = bonsai_cpu_caps_get();
    switch (t) {
    case BONSAI_TIER_SCALAR:
        return 1;
    case BONSAI_TIER_AVX2:
        return caps->avx2_fma_f16c;
    case BONSAI_TIER_AVX512:
        return caps->avx512;
    case BONSAI_TIER_NEON:
        return caps->neon;
    default:
        return 0;
    }
}

int bonsai_cpu_tier_supported(bonsai_cpu_tier t)
{
    return tier_built(t) && tier_runs_here(t);
}

const char *bonsai_cpu_tiers_built(void)
{
    static const char *const list = "scalar"
#ifdef BONSAI_HAVE_AVX2
                                    ",avx2"
#endif
#ifdef BONSAI_HAVE_AVX512
                                    ",avx512"
#endif
#ifdef BONSAI_HAVE_NEON
                                    ",neon"
#endif
        ;
    return list;
}

const char *bonsai_cpu_features(void)
{
    const bonsai_cpu_caps *caps = bonsai_cpu_caps_get();
    if (caps->avx512_vnni)
        return "vnni";
    if (caps->neon_dotprod)
        return "dotprod";
    return "";
}

static bonsai_status parse_env_tier(const char *s, bonsai_cpu_tier *out)
{
    for (int t = BONSAI_TIER_SCALAR; t < BONSAI_TIER_COUNT; t++) {
        if (strcmp(s, tier_names[t]) == 0) {
            *out = (bonsai_cpu_tier)t;
            return BONSAI_OK;
        }
    }
    return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                       "BONSAI_CPU_TIER=%s is not a tier (scalar, avx2, avx512, neon)", s);
}

static bonsai_status check_supported(bonsai_cpu_tier t, const char *why)
{
    if (!tier_built(t))
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED, "%s: CPU tier %s is not built into this library"
                           " (built: %s)", why, bonsai_cpu_tier_name(t), bonsai_cpu_tiers_built());
    if (!tier_runs_here(t))
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "%s: this CPU (or OS) lacks what CPU tier %s needs", why,
                           bonsai_cpu_tier_name(t));
    return BONSAI_OK;
}

bonsai_status bonsai_cpu_tier_select(bonsai_cpu_tier *out)
{
    if (!out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "tier select: out is NULL");
    const char *env = getenv("BONSAI_CPU_TIER");
    if (env && *env && strcmp(env, "auto") != 0) {
        bonsai_cpu_tier t = BONSAI_TIER_SCALAR;
        bonsai_status s = parse_env_tier(env, &t);
        if (s == BONSAI_OK)
            s = check_supported(t, "BONSAI_CPU_TIER");
        if (s == BONSAI_OK)
            *out = t;
        return s;
    }
    static const bonsai_cpu_tier best_first[] = {BONSAI_TIER_AVX512, BONSAI_TIER_AVX2,
                                                 BONSAI_TIER_NEON, BONSAI_TIER_SCALAR};
    for (size_t i = 0; i < sizeof best_first / sizeof best_first[0]; i++) {
        if (bonsai_cpu_tier_supported(best_first[i])) {
            *out = best_first[i];
            return BONSAI_OK;
        }
    }
    *out = BONSAI_TIER_SCALAR;
    return BONSAI_OK;
}

static bonsai_cpu_kernels tables[BONSAI_TIER_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void fill_tables(void)
{
    const bonsai_cpu_caps *caps = bonsai_cpu_caps_get();
    for (int t = BONSAI_TIER_SCALAR; t < BONSAI_TIER_COUNT; t++) {
        if (!bonsai_cpu_tier_supported((bonsai_cpu_tier)t))
            continue;
        bonsai_cpu_fill_scalar(&tables[t]);
        switch (t) {
#ifdef BONSAI_HAVE_AVX2
        case BONSAI_TIER_AVX2:
            bonsai_cpu_fill_avx2(&tables[t]);
            break;
#endif
#ifdef BONSAI_HAVE_AVX512
        case BONSAI_TIER_AVX512:
            bonsai_cpu_fill_avx512(&tables[t], caps->avx512_vnni);
            break;
#endif
#ifdef BONSAI_HAVE_NEON
        case BONSAI_TIER_NEON:
            bonsai_cpu_fill_neon(&tables[t], caps->neon_dotprod);
            break;
#endif
        default:
            break;
        }
    }
    (void)caps;
}

bonsai_status bonsai_cpu_kernels_get(bonsai_cpu_tier tier, const bonsai_cpu_kernels **out)
{
    if (tier == BONSAI_TIER_AUTO) {
        bonsai_status s = bonsai_cpu_tier_select(&tier);
        if (s != BONSAI_OK)
            return s;
    }
    if ((unsigned)tier >= BONSAI_TIER_COUNT)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "CPU tier %d is not a tier", (int)tier);
    bonsai_status s = check_supported(tier, "kernel table");
    if (s != BONSAI_OK)
        return s;
    pthread_once(&tables_once, fill_tables);
    *out = &tables[tier];
    return BONSAI_OK;
}

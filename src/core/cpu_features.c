/* CPU feature probe: CPUID + XGETBV on x86, HWCAP on aarch64. */
#include <pthread.h>

#include "core/cpu_features.h"

static bonsai_cpu_caps caps;
static pthread_once_t caps_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void probe(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return;
    unsigned long long xcr0 = read_xcr0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;
    int zmm_ok = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    int vnni = (c >> 11) & 1;
    caps.avx2_fma_f16c = ymm_ok && avx2 && fma && f16c;
    caps.avx512 = caps.avx2_fma_f16c && zmm_ok && avx512f && avx512bw && avx512vl;
    caps.avx512_vnni = caps.avx512 && vnni;
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
static void probe(void)
{
    unsigned long hw = getauxval(AT_HWCAP);
    caps.neon = 1; /* mandatory in AArch64 */
    caps.neon_dotprod = (hw & HWCAP_ASIMDDP) != 0;
}
#else
static void probe(void)
{
}
#endif

const bonsai_cpu_caps *bonsai_cpu_caps_get(void)
{
    pthread_once(&caps_once, probe);
    return &caps;
}

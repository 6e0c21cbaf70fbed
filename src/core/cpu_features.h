/* Internal: what this CPU and OS can run, probed once. */
#ifndef BONSAI_CORE_CPU_FEATURES_H
#define BONSAI_CORE_CPU_FEATURES_H

typedef struct bonsai_cpu_caps {
    int avx2_fma_f16c;  /* AVX2 + FMA + F16C with OS-saved YMM state */
    int avx512;         /* AVX-512 F/BW/VL with OS-saved ZMM state */
    int avx512_vnni;
    int neon;
    int neon_dotprod;
} bonsai_cpu_caps;

/* Probed on first use; thread-safe. */
const bonsai_cpu_caps *bonsai_cpu_caps_get(void);

#endif

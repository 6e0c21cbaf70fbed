/* Internal: the CUDA handle types behind include/bonsai/cuda.h, shared by
 * the backend's files, its tests and the CLI's bench. */
#ifndef BONSAI_CUDA_BACKEND_H
#define BONSAI_CUDA_BACKEND_H
#include <stddef.h>

#include "bonsai/cuda.h"
#include "cuda/cuda_api.h"

#define BONSAI_CUDA_FMTS 2      /* 0: Q1_0_G128, 1: TQ2_0_G128 (layout.cuh FMT_*) */
#define BONSAI_CUDA_GEMV_NT 4   /* token groups of 1, 2, 4, 8 */
#define BONSAI_CUDA_GEMV_SWIGLU_NT 3 /* 1, 2, 4 */
#define BONSAI_CUDA_GEMV_WARPS 4     /* warps per GEMV block (128 threads) */
#define BONSAI_CUDA_GEMV_B1_THREADS 512 /* 16 warps (B1_WARPS in kernels/gemv_b1.cu) */
/* kernels/gemv_b1.cu's tiling by format (its CH, GEMV_B1 instances, B1_ROW):
 * block pairs per unit, ring stages per warp, bytes per staged row */
#define BONSAI_CUDA_B1_CH(fmt) ((fmt) == 0 ? 4 : 2)
#define BONSAI_CUDA_B1_STAGES(fmt) 2
#define BONSAI_CUDA_B1_PITCH(fmt) 128
#define BONSAI_CUDA_GEMM_TOKENS 128  /* tokens per GEMM tile; activations padded to it */
/* kernels/gemm_small.cu: n8 tiles per block (its GEMM_SMALL_ALL instances),
 * 2 .. BONSAI_CUDA_SMALL_MAX_TOKENS tokens */
#define BONSAI_CUDA_SMALL_NTS 6
#define BONSAI_CUDA_SMALL_NT {1, 2, 3, 4, 6, 8}
#define BONSAI_CUDA_SMALL_MAX_TOKENS 127

/* gemm90h's tiles (kernels/gemm90h.cu): 128 weight rows (SwiGLU: 64 of
 * each matrix) x tokens per block of 256 threads, k split over a cluster
 * of ksplit blocks; its kernels' name suffix and dynamic shared memory
 * (gemm90h_cfg::SMEM) per format; the table is in pipeline.c. */
enum { BONSAI_G90H_128X128, BONSAI_G90H_128X256, BONSAI_G90H_128X256K2, BONSAI_G90H_TILES };
typedef struct bonsai_cuda_g90h_tile {
    const char *name; /* "128x256": BONSAI_CUDA_GEMM90H_TILE's value */
    const char *suffix; /* "" or "_128x256" */
    unsigned tokens, ksplit;
    size_t smem[BONSAI_CUDA_FMTS];
} bonsai_cuda_g90h_tile;
extern const bonsai_cuda_g90h_tile bonsai_cuda_g90h_tiles[BONSAI_G90H_TILES];

/* The embedded kernels (generated at build time by src/cuda/embed.cmake). */
typedef struct bonsai_cuda_source_file {
    const char *name;
    const char *text;
} bonsai_cuda_source_file;
extern const unsigned char bonsai_cuda_fatbin[];
extern const size_t bonsai_cuda_fatbin_size;           /* 0: built without CUDA */
extern const bonsai_cuda_source_file bonsai_cuda_sources[];
extern const size_t bonsai_cuda_n_sources;
extern const char bonsai_cuda_unity_source[];          /* #includes each kernels/NAME.cu */
extern const char bonsai_cuda_fatbin_archs[];          /* "80;90" */

struct bonsai_cuda {
    const bonsai_cuda_api *api;
    CUdevice dev;
    CUcontext ctx; /* the device's primary context, retained */
    CUstream stream;
    CUmodule module;
    bonsai_cuda_info info;
    CUfunction quantize;
    CUfunction gemv[BONSAI_CUDA_FMTS][BONSAI_CUDA_GEMV_NT];
    CUfunction gemv_r2[BONSAI_CUDA_FMTS]; /* one token, 2 rows per warp */
    CUfunction gemv_swiglu[BONSAI_CUDA_FMTS][BONSAI_CUDA_GEMV_SWIGLU_NT];
    CUfunction gemm[BONSAI_CUDA_FMTS], gemm_swiglu[BONSAI_CUDA_FMTS];         /* 128-token tiles */
    CUfunction gemm64[BONSAI_CUDA_FMTS], gemm64_swiglu[BONSAI_CUDA_FMTS];     /* 64-token tiles */
    size_t gemm_smem[BONSAI_CUDA_FMTS], gemm64_smem[BONSAI_CUDA_FMTS];
    int gemm_tile_tokens; /* 64 or 128 (BONSAI_CUDA_GEMM_BN); 0: rule in matmul.c */
    /* sm_90a wgmma GEMM (kernels/gemm90.cu, 128-token tiles); NULL where the
     * loaded module has none (other architectures, the fatbinary's PTX) */
    CUfunction gemm90[BONSAI_CUDA_FMTS], gemm90_swiglu[BONSAI_CUDA_FMTS];
    size_t gemm90_smem[BONSAI_CUDA_FMTS];
    int gemm_wgmma; /* 1: gemm90 for every GEMM, 0: never (BONSAI_CUDA_GEMM_WGMMA); -1: rule */
    /* sm_90a fp16 wgmma GEMM (kernels/gemm90h.cu) on fp16 activations
     * (kernels/quantize_f16.cu): more accurate than q8 and faster than
     * gemm90 (bench/NOTES.md), so the default wherever gemm90 would run;
     * BONSAI_CUDA_GEMM_F16=0 runs gemm90 instead (1: the default); its tile
     * by the rule in matmul.c or BONSAI_CUDA_GEMM90H_TILE */
    CUfunction quantize_f16;
    CUfunction gemm90h[BONSAI_G90H_TILES][BONSAI_CUDA_FMTS];
    CUfunction gemm90h_swiglu[BONSAI_G90H_TILES][BONSAI_CUDA_FMTS];
    int gemm_f16; /* 0: gemm90 instead of gemm90h; 1 or -1: gemm90h */
    int gemm90h_tile; /* BONSAI_CUDA_GEMM90H_TILE (a tile's name): forced; -1: rule */
    /* small batches (2 .. 127 tokens) on int8 mma.sync streaming the weights
     * (kernels/gemm_small.cu), [fmt][BONSAI_CUDA_SMALL_NT index] */
    CUfunction gemm_small[BONSAI_CUDA_FMTS][BONSAI_CUDA_SMALL_NTS];
    CUfunction gemm_small_swiglu[BONSAI_CUDA_FMTS][BONSAI_CUDA_SMALL_NTS];
    int gemm_small_mode; /* 1: every matmul of 2 .. 127 tokens, 0: never
                          * (BONSAI_CUDA_GEMM_SMALL); -1: the rule in matmul.c */
    int gemm_small_ks;   /* k-slices per block, 1, 2 or 4 (BONSAI_CUDA_GEMM_SMALL_KS);
                          * 0: the rule in matmul.c */
    int gemm_small_nt;   /* n8 tiles per block, one of BONSAI_CUDA_SMALL_NT
                          * (BONSAI_CUDA_GEMM_SMALL_NT); 0: the rule in matmul.c */
    size_t gemm_small_calls; /* its launches so far (tests check that it ran) */
    /* fp16 activations: xh [m_pad][k] fp16, xinv [m_pad] fp32 */
    CUdeviceptr act_h, act_hinv;
    size_t act_h_bytes, act_h_tokens; /* capacities of act_h and act_hinv */
    int act_f16; /* the last quantize wrote fp16 activations (for gemm90h) */
    /* quantized activations: qs [m_pad][k] int8, d and s [k/128][m_pad] */
    CUdeviceptr act_qs, act_d, act_s;
    size_t act_bytes; /* capacity of act_qs; act_d/act_s hold act_bytes/128 */
    size_t act_m, act_k; /* what the last quantize wrote */
    int act_fmt;
    int act_gemv; /* piece order for the GEMV (m < gemm_min_tokens), else block order */
    size_t gemm_min_tokens; /* m from which the GEMM runs; 0: rule in matmul.c */
    size_t gemv_r8_min_rows; /* one-token GEMV: 8 rows per warp from here, else 2 */
    /* one-token GEMV on the binary tensor cores with the weights asked into
     * L2 before the PDL wait (kernels/gemv_b1.cu) */
    CUfunction gemv_b1[BONSAI_CUDA_FMTS];
    int gemv_b1_mode;     /* 1: every one-token matmul (SwiGLU aside), 0: never
                           * (BONSAI_CUDA_GEMV_B1); -1: the rule in matmul.c */
    int gemv_b1_pf16;     /* sixteenths of its rows past the rings' first fill
                           * that a block asks L2 for before the wait (8; 0
                           * where that passes half of L2: matmul.c) */
    int gemv_b1_evict_first; /* weight loads with the L2 evict_first policy (1) */
    int gemv_b1_trigger;  /* where a block lets the next launch start (PDL):
                           * 0 at its start, 1 after its B fragments, 2 after
                           * its units, 3 right after the wait
                           * (kernels/gemv_b1.cu); -1: the rule in matmul.c */
    int gemv_b1_depth;    /* copies of 16 bytes per lane in flight before the
                           * wait (1 to 4, above 4: 8; 0: all at once; -1: the
                           * rule in matmul.c) */
    int gemv_b1_blocks;   /* grid size; 0: one block per SM (tests force fewer) */
    size_t gemv_b1_smem_max; /* dynamic shared memory it may take: half an SM's */
    size_t gemv_b1_calls; /* its launches so far (tests check that it ran) */
    CUdeviceptr act_planes;  /* bit planes of one token's q8 blocks [k/128][8][4] u32 */
    size_t act_planes_bytes;
    int act_planes_ok;       /* the last quantize (one token) wrote them */
};

struct bonsai_cuda_buffer {
    bonsai_cuda *cu;
    CUdeviceptr ptr;
    size_t n;
};

struct bonsai_cuda_matrix {
    bonsai_cuda *cu;
    bonsai_type type;
    int fmt; /* BONSAI_CUDA_FMTS index */
    size_t rows, rows_pad, k;
    CUdeviceptr bits, scales; /* layouts in kernels/layout.cuh */
    size_t bits_bytes, scales_bytes;
    /* some block scale has |d| >= 2^15 (or is inf / NaN): gemm90h's TQ2 A
     * build, 2 (c' - 1) d in fp16, would overflow, so its TQ2 GEMMs take
     * the q8 paths (matmul.c f16_exact) */
    int huge_scale;
    char name[96];
};

/* pipeline.c: obtains the kernels (embedded / cache / NVRTC), loads the
 * module and looks up every function; fills cu->info.source, load_ms,
 * cache_path, cache_note, nvrtc version. */
bonsai_status bonsai_cuda_load_kernels(bonsai_cuda *cu, const bonsai_cuda_params *params);

/* Compiles the embedded kernel source with NVRTC for sm_<arch> (no device
 * needed); *cubin (free with free()) holds *n bytes. */
bonsai_status bonsai_cuda_nvrtc_compile(int arch, void **cubin, size_t *n);

/* The two halves of every matmul, for the bench (quantize once, time the
 * matmul alone): quantize x [m][k] for w's format (and u's, the SwiGLU
 * partner, or NULL) into the handle's activation buffers; then run w (and u
 * for SwiGLU) on them. Arguments are
 * checked by the public entry points, not here (except that the quantized
 * activations must match w's k and format and hold at least m tokens). */
bonsai_status bonsai_cuda_quantize_activations(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                               const bonsai_cuda_matrix *u,
                                               const bonsai_cuda_buffer *x, size_t m);
bonsai_status bonsai_cuda_matmul_quantized(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                           const bonsai_cuda_matrix *u, size_t m,
                                           bonsai_cuda_buffer *y, int add);

/* Token count from which matmuls use the GEMM kernel instead of GEMV token
 * groups (default 0: a measured rule by m and rows, in matmul.c); tests set
 * it to run every m through both. The quantize step decides the path (the
 * two read different orders). */
void bonsai_cuda_set_gemm_min_tokens(bonsai_cuda *cu, size_t m); /* 0: the rule */

#endif

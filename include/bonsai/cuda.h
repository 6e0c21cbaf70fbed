/* Optional NVIDIA GPU backend.
 *
 * The CUDA driver (libcuda.so.1) and NVRTC are opened at run time: this
 * header and the library build and load everywhere, and bonsai_cuda_open()
 * answers BONSAI_ERR_NO_CUDA_DEVICE (with a message saying why) when the
 * build has no CUDA, the driver or a device is missing, or NVRTC is needed
 * (see the pipeline below) and cannot be loaded.
 *
 * Kernel pipeline, in the order tried by BONSAI_CUDA_PIPELINE_AUTO:
 *   embedded : the fatbinary built by nvcc and embedded in the library,
 *              when it holds a cubin for the device's architecture;
 *   cache    : a cubin compiled earlier by NVRTC for exactly this device,
 *              read from the cache directory (BONSAI_CACHE_DIR, else
 *              $XDG_CACHE_HOME/bonsai, else ~/.cache/bonsai); a truncated,
 *              corrupt or foreign file is detected and ignored;
 *   nvrtc    : the embedded kernel source compiled by NVRTC for the device,
 *              then written to the cache atomically (an unwritable cache
 *              costs one warning, not correctness).
 * BONSAI_CUDA_PIPELINE=embedded|jit|cache|nvrtc (or params.pipeline) forces
 * a level: jit = cache, else nvrtc (what AUTO does without a cubin);
 * cache = the cached cubin or an error; nvrtc = always compile.
 *
 * Numerics: activations arrive as fp32; each matmul quantizes them on the
 * device to int8 per 128 elements (d = max|x|/127, the CPU q8 mode's rule),
 * multiplies with integer dot products / int8 tensor cores and returns
 * fp32. Results match bonsai_matmul_q8 on the same inputs up to fp32
 * summation order (NMSE vs float64 <= 5e-4 on random data).
 *
 * Work is queued on the context's stream; bonsai_cuda_buffer_read and
 * bonsai_cuda_sync wait for it. A handle is used by one thread at a time. */
#ifndef BONSAI_CUDA_H
#define BONSAI_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bonsai_cuda bonsai_cuda;               /* device + context + kernels */
typedef struct bonsai_cuda_buffer bonsai_cuda_buffer; /* fp32 vector(s) on the device */
typedef struct bonsai_cuda_matrix bonsai_cuda_matrix; /* weights uploaded once */

typedef enum bonsai_cuda_pipeline {
    BONSAI_CUDA_PIPELINE_AUTO = 0, /* BONSAI_CUDA_PIPELINE if set, else embedded -> cache -> nvrtc */
    BONSAI_CUDA_PIPELINE_EMBEDDED, /* the embedded fatbinary only */
    BONSAI_CUDA_PIPELINE_JIT,      /* skip the fatbinary: cache, else nvrtc */
    BONSAI_CUDA_PIPELINE_CACHE,    /* the cached cubin only; error if absent or invalid */
    BONSAI_CUDA_PIPELINE_NVRTC     /* compile with NVRTC now, then store in the cache */
} bonsai_cuda_pipeline;

/* Where the loaded kernels came from. */
typedef enum bonsai_cuda_source {
    BONSAI_CUDA_FROM_EMBEDDED_CUBIN = 0,
    BONSAI_CUDA_FROM_EMBEDDED_PTX, /* fatbinary PTX compiled by the driver (no NVRTC) */
    BONSAI_CUDA_FROM_CACHE,
    BONSAI_CUDA_FROM_NVRTC
} bonsai_cuda_source;

typedef struct bonsai_cuda_params {
    int device;                    /* ordinal, default 0 */
    bonsai_cuda_pipeline pipeline; /* default AUTO */
    const char *cache_dir;         /* NULL: BONSAI_CACHE_DIR / XDG / ~/.cache/bonsai */
} bonsai_cuda_params;

typedef struct bonsai_cuda_info {
    char name[256];
    int cc_major, cc_minor;
    int sm_count;
    size_t total_mem, l2_bytes;
    int driver_version;            /* e.g. 13000 */
    int nvrtc_major, nvrtc_minor;  /* 0 when NVRTC was not loaded */
    bonsai_cuda_source source;
    double load_ms;                /* time to obtain and load the kernels */
    char cache_path[1024];         /* cache file used or written ("" if none) */
    char cache_note[256];          /* why a cache file was rejected or not written ("" if none) */
} bonsai_cuda_info;

bonsai_cuda_params bonsai_cuda_default_params(void);
/* Opens the device, loads the kernels. NO_CUDA_DEVICE when there is none. */
bonsai_status bonsai_cuda_open(const bonsai_cuda_params *params, bonsai_cuda **out);
void bonsai_cuda_close(bonsai_cuda *cu); /* NULL is a no-op */
bonsai_status bonsai_cuda_get_info(const bonsai_cuda *cu, bonsai_cuda_info *info);
const char *bonsai_cuda_source_name(bonsai_cuda_source s); /* "embedded cubin", ... */
/* Architectures with a cubin in the embedded fatbinary, e.g. "sm_80,sm_90",
 * or "none (built without CUDA)". */
const char *bonsai_cuda_archs_built(void);
/* Waits for all queued work; CUDA's error text on failure. */
bonsai_status bonsai_cuda_sync(bonsai_cuda *cu);

/* ---- buffers: n fp32 values ------------------------------------------------ */
bonsai_status bonsai_cuda_buffer_alloc(bonsai_cuda *cu, size_t n, bonsai_cuda_buffer **out);
void bonsai_cuda_buffer_free(bonsai_cuda_buffer *b); /* NULL is a no-op */
size_t bonsai_cuda_buffer_len(const bonsai_cuda_buffer *b);
/* Copies n values between host and b[offset, offset + n). Both wait: write
 * until src has been copied, read for all queued work before it. */
bonsai_status bonsai_cuda_buffer_write(bonsai_cuda_buffer *b, size_t offset, const float *src,
                                       size_t n);
bonsai_status bonsai_cuda_buffer_read(bonsai_cuda_buffer *b, size_t offset, float *dst, size_t n);

/* ---- weights ----------------------------------------------------------------
 * Q1_0_G128 and TQ2_0_G128 matrices; uploaded once and re-laid out for the
 * GPU (bits apart from scales; see src/cuda/kernels/layout.cuh). */
bonsai_status bonsai_cuda_matrix_upload(bonsai_cuda *cu, const bonsai_matrix *w,
                                        bonsai_cuda_matrix **out);
void bonsai_cuda_matrix_free(bonsai_cuda_matrix *w); /* NULL is a no-op */

/* ---- matmul (queued; X is [m][k], Y and H are [m][rows], token-major) -------
 * Any m >= 1. Buffers must hold m * k (x) and m * rows (y, h) values. */
bonsai_status bonsai_cuda_matmul(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                 const bonsai_cuda_buffer *x, size_t m, bonsai_cuda_buffer *y);
/* Y += W X (residual add fused). */
bonsai_status bonsai_cuda_matmul_add(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                     const bonsai_cuda_buffer *x, size_t m,
                                     bonsai_cuda_buffer *y);
/* H = silu(G X) * (U X); gate and up of the same type and shape. */
bonsai_status bonsai_cuda_matmul_swiglu(bonsai_cuda *cu, const bonsai_cuda_matrix *gate,
                                        const bonsai_cuda_matrix *up,
                                        const bonsai_cuda_buffer *x, size_t m,
                                        bonsai_cuda_buffer *h);

#ifdef __cplusplus
}
#endif
#endif

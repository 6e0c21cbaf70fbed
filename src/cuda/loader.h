/* Internal: opens the CUDA driver and NVRTC at run time (once per process). */
#ifndef BONSAI_CUDA_LOADER_H
#define BONSAI_CUDA_LOADER_H
#include "bonsai/status.h"
#include "cuda/cuda_api.h"

/* The driver entries (libcuda.so.1). NO_CUDA_DEVICE with the reason when
 * the library or one of its entries is missing. */
bonsai_status bonsai_cuda_api_get(const bonsai_cuda_api **out);
/* NVRTC alone (no driver needed): only its entries are valid. */
bonsai_status bonsai_cuda_api_get_nvrtc_only(const bonsai_cuda_api **out);
/* Also loads NVRTC into the same table (libnvrtc.so.13, .12, ...). */
bonsai_status bonsai_cuda_api_get_nvrtc(const bonsai_cuda_api **out);
/* "what failed: CUDA's error text (code)" as BONSAI_ERR_CUDA. */
bonsai_status bonsai_cuda_fail(const bonsai_cuda_api *api, CUresult r, const char *what);

#endif

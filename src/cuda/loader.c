/* Opens libcuda and libnvrtc with dlopen and fills the entry table of
 * cuda_api.h from two name tables. Loaded at most once per process
 * (pthread_once); the result, success or the reason for failure, is kept. */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "cuda/loader.h"

static bonsai_cuda_api api;
static pthread_once_t driver_once = PTHREAD_ONCE_INIT, nvrtc_once = PTHREAD_ONCE_INIT;
static char driver_error[512], nvrtc_error[512];

typedef struct entry {
    const char *symbol;
    size_t offset; /* of the function pointer in bonsai_cuda_api */
} entry;
#define ENTRY(field, symbol) {symbol, offsetof(bonsai_cuda_api, field)}

static const entry driver_entries[] = {
    ENTRY(cuInit, "cuInit"),
    ENTRY(cuDriverGetVersion, "cuDriverGetVersion"),
    ENTRY(cuDeviceGetCount, "cuDeviceGetCount"),
    ENTRY(cuDeviceGet, "cuDeviceGet"),
    ENTRY(cuDeviceGetName, "cuDeviceGetName"),
    ENTRY(cuDeviceGetAttribute, "cuDeviceGetAttribute"),
    ENTRY(cuDeviceTotalMem, "cuDeviceTotalMem_v2"),
    ENTRY(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    ENTRY(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    ENTRY(cuCtxSetCurrent, "cuCtxSetCurrent"),
    ENTRY(cuCtxSynchronize, "cuCtxSynchronize"),
    ENTRY(cuGetErrorString, "cuGetErrorString"),
    ENTRY(cuModuleLoadData, "cuModuleLoadData"),
    ENTRY(cuModuleUnload, "cuModuleUnload"),
    ENTRY(cuModuleGetFunction, "cuModuleGetFunction"),
    ENTRY(cuFuncSetAttribute, "cuFuncSetAttribute"),
    ENTRY(cuLaunchKernel, "cuLaunchKernel"),
    ENTRY(cuMemAlloc, "cuMemAlloc_v2"),
    ENTRY(cuMemFree, "cuMemFree_v2"),
    ENTRY(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    ENTRY(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
    ENTRY(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    ENTRY(cuMemsetD32Async, "cuMemsetD32Async"),
    ENTRY(cuStreamCreate, "cuStreamCreate"),
    ENTRY(cuStreamDestroy, "cuStreamDestroy_v2"),
    ENTRY(cuStreamSynchronize, "cuStreamSynchronize"),
    ENTRY(cuEventCreate, "cuEventCreate"),
    ENTRY(cuEventDestroy, "cuEventDestroy_v2"),
    ENTRY(cuEventRecord, "cuEventRecord"),
    ENTRY(cuEventSynchronize, "cuEventSynchronize"),
    ENTRY(cuEventElapsedTime, "cuEventElapsedTime"),
};

static const entry nvrtc_entries[] = {
    ENTRY(nvrtcVersion, "nvrtcVersion"),
    ENTRY(nvrtcGetErrorString, "nvrtcGetErrorString"),
    ENTRY(nvrtcCreateProgram, "nvrtcCreateProgram"),
    ENTRY(nvrtcCompileProgram, "nvrtcCompileProgram"),
    ENTRY(nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize"),
    ENTRY(nvrtcGetProgramLog, "nvrtcGetProgramLog"),
    ENTRY(nvrtcGetCUBINSize, "nvrtcGetCUBINSize"),
    ENTRY(nvrtcGetCUBIN, "nvrtcGetCUBIN"),
    ENTRY(nvrtcDestroyProgram, "nvrtcDestroyProgram"),
};

/* Looks up every entry; 0, or -1 with err naming the missing symbol. */
static int bind_entries(void *lib, const char *lib_name, const entry *e, size_t n, char *err,
                        size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        void *sym = dlsym(lib, e[i].symbol);
        if (!sym) {
            snprintf(err, cap, "%s lacks %s", lib_name, e[i].symbol);
            return -1;
        }
        memcpy((char *)&api + e[i].offset, &sym, sizeof sym); /* POSIX: data <-> function ptr */
    }
    return 0;
}

static void load_driver(void)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(driver_error, sizeof driver_error, "no CUDA driver (dlopen libcuda.so.1: %s)",
                 e ? e : "not found");
        return;
    }
    if (bind_entries(lib, "libcuda.so.1", driver_entries,
                     sizeof driver_entries / sizeof driver_entries[0], driver_error,
                     sizeof driver_error) == 0) {
        void *ex = dlsym(lib, "cuLaunchKernelEx"); /* optional */
        memcpy(&api.cuLaunchKernelEx, &ex, sizeof ex);
        api.libcuda = lib;
    }
}

static void load_nvrtc(void)
{
    static const char *const names[] = {
        "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so",
        "/usr/local/cuda/lib64/libnvrtc.so.13", "/usr/local/cuda/lib64/libnvrtc.so.12",
        "/usr/local/cuda/lib64/libnvrtc.so",
    };
    void *lib = NULL;
    const char *name = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
        lib = dlopen(name = names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(nvrtc_error, sizeof nvrtc_error,
                 "no NVRTC (tried libnvrtc.so.13, .so.12, .so and /usr/local/cuda/lib64)");
        return;
    }
    if (bind_entries(lib, name, nvrtc_entries, sizeof nvrtc_entries / sizeof nvrtc_entries[0],
                     nvrtc_error, sizeof nvrtc_error) == 0)
        api.libnvrtc = lib;
}

bonsai_status bonsai_cuda_api_get(const bonsai_cuda_api **out)
{
    pthread_once(&driver_once, load_driver);
    if (!api.libcuda)
        return bonsai_fail(BONSAI_ERR_NO_CUDA_DEVICE, "no CUDA device: %s", driver_error);
    *out = &api;
    return BONSAI_OK;
}

bonsai_status bonsai_cuda_api_get_nvrtc_only(const bonsai_cuda_api **out)
{
    pthread_once(&nvrtc_once, load_nvrtc);
    if (!api.libnvrtc)
        return bonsai_fail(BONSAI_ERR_NO_CUDA_DEVICE, "no CUDA kernel compiler: %s", nvrtc_error);
    *out = &api;
    return BONSAI_OK;
}

bonsai_status bonsai_cuda_api_get_nvrtc(const bonsai_cuda_api **out)
{
    bonsai_status s = bonsai_cuda_api_get(out);
    if (s != BONSAI_OK)
        return s;
    return bonsai_cuda_api_get_nvrtc_only(out);
}

bonsai_status bonsai_cuda_fail(const bonsai_cuda_api *a, CUresult r, const char *what)
{
    const char *text = NULL;
    if (!a || !a->cuGetErrorString || a->cuGetErrorString(r, &text) != CUDA_SUCCESS || !text)
        text = "unknown CUDA error";
    return bonsai_fail(BONSAI_ERR_CUDA, "%s failed: %s (CUDA error %d)", what, text, r);
}

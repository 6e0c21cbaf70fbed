/* The CUDA handle: device, primary context, stream, kernels; device
 * buffers. Every driver call is checked; failures carry CUDA's text. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cuda/backend.h"
#include "cuda/loader.h"

static bonsai_status check(const bonsai_cuda *cu, CUresult r, const char *what)
{
    return r == CUDA_SUCCESS ? BONSAI_OK : bonsai_cuda_fail(cu->api, r, what);
}

bonsai_cuda_params bonsai_cuda_default_params(void)
{
    bonsai_cuda_params p = {0, BONSAI_CUDA_PIPELINE_AUTO, NULL};
    return p;
}

const char *bonsai_cuda_source_name(bonsai_cuda_source s)
{
    switch (s) {
    case BONSAI_CUDA_FROM_EMBEDDED_CUBIN: return "embedded cubin";
    case BONSAI_CUDA_FROM_EMBEDDED_PTX: return "embedded PTX (driver JIT)";
    case BONSAI_CUDA_FROM_CACHE: return "cache";
    case BONSAI_CUDA_FROM_NVRTC: return "nvrtc";
    }
    return "unknown";
}

const char *bonsai_cuda_archs_built(void)
{
    static char text[128];
    if (bonsai_cuda_fatbin_size == 0)
        return "none (built without CUDA)";
    if (!text[0]) { // "80;90a" -> "sm_80,sm_90a" (constant input: same result in every thread)
        char out[128] = "";
        const char *p = bonsai_cuda_fatbin_archs;
        while (*p) {
            size_t len = strlen(out);
            const char *end = strchr(p, ';');
            int n = end ? (int)(end - p) : (int)strlen(p);
            snprintf(out + len, sizeof out - len, "%ssm_%.*s", len ? "," : "", n, p);
            p = strchr(p, ';');
            if (!p)
                break;
            p++;
        }
        memcpy(text, out, sizeof text);
    }
    return text;
}

/* The environment variable name as a whole decimal number in [lo, hi], or
 * fallback where it is unset or anything else. */
static long env_knob(const char *name, long lo, long hi, long fallback)
{
    const char *env = getenv(name);
    if (!env || !*env)
        return fallback;
    char *end;
    errno = 0;
    long v = strtol(env, &end, 10);
    return *end || errno || v < lo || v > hi ? fallback : v;
}

static bonsai_status query_device(bonsai_cuda *cu)
{
    const bonsai_cuda_api *api = cu->api;
    bonsai_cuda_info *info = &cu->info;
    int sm = 0, l2 = 0;
    bonsai_status s = check(cu, api->cuDeviceGetName(info->name, sizeof info->name, cu->dev),
                               "cuDeviceGetName");
    if (s == BONSAI_OK)
        s = check(cu, api->cuDeviceGetAttribute(&info->cc_major,
                                                   CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                                   cu->dev), "cuDeviceGetAttribute(cc major)");
    if (s == BONSAI_OK)
        s = check(cu, api->cuDeviceGetAttribute(&info->cc_minor,
                                                   CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                                   cu->dev), "cuDeviceGetAttribute(cc minor)");
    if (s == BONSAI_OK)
        s = check(cu, api->cuDeviceGetAttribute(&sm, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                                   cu->dev), "cuDeviceGetAttribute(SM count)");
    if (s == BONSAI_OK)
        s = check(cu, api->cuDeviceGetAttribute(&l2, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, cu->dev),
                     "cuDeviceGetAttribute(L2 size)");
    if (s == BONSAI_OK)
        s = check(cu, api->cuDeviceTotalMem(&info->total_mem, cu->dev), "cuDeviceTotalMem");
    if (s == BONSAI_OK)
        s = check(cu, api->cuDriverGetVersion(&info->driver_version), "cuDriverGetVersion");
    info->sm_count = sm;
    info->l2_bytes = (size_t)l2;
    if (s == BONSAI_OK && info->cc_major < 8)
        s = bonsai_fail(BONSAI_ERR_NO_CUDA_DEVICE,
                        "no usable CUDA device: %s has compute capability %d.%d, bonsai needs 8.0 "
                        "or later (int8 tensor cores, cp.async)",
                        info->name, info->cc_major, info->cc_minor);
    return s;
}

bonsai_status bonsai_cuda_open(const bonsai_cuda_params *params, bonsai_cuda **out)
{
    if (!out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "bonsai_cuda_open: out is NULL");
    *out = NULL;
    bonsai_cuda_params p = params ? *params : bonsai_cuda_default_params();
    if (bonsai_cuda_fatbin_size == 0)
        return bonsai_fail(BONSAI_ERR_NO_CUDA_DEVICE,
                           "no CUDA device: built without CUDA (nvcc was not found at build time "
                           "or BONSAI_CUDA=OFF)");
    const bonsai_cuda_api *api;
    bonsai_status s = bonsai_cuda_api_get(&api);
    if (s != BONSAI_OK)
        return s;
    CUresult r = api->cuInit(0);
    if (r != CUDA_SUCCESS) {
        const char *text = NULL;
        api->cuGetErrorString(r, &text);
        return bonsai_fail(BONSAI_ERR_NO_CUDA_DEVICE, "no CUDA device: cuInit: %s (CUDA error %d)",
                           text ? text : "unknown error", r);
    }
    int count = 0;
    if (api->cuDeviceGetCount(&count) != CUDA_SUCCESS || count <= 0)
        return bonsai_fail(BONSAI_ERR_NO_CUDA_DEVICE, "no CUDA device: the driver sees none");
    if (p.device < 0 || p.device >= count)
        return bonsai_fail(BONSAI_ERR_NO_CUDA_DEVICE, "no CUDA device %d (the driver sees %d)",
                           p.device, count);

    bonsai_cuda *cu = calloc(1, sizeof *cu);
    if (!cu)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "bonsai_cuda_open: out of memory");
    cu->api = api;
    // tuning knobs (bench/NOTES.md); unset or out of range: the default,
    // mostly the measured rule in matmul.c (0 or -1)
    cu->gemm_min_tokens = (size_t)env_knob("BONSAI_CUDA_GEMM_MIN_TOKENS", 1, LONG_MAX, 0);
    const long bn = env_knob("BONSAI_CUDA_GEMM_BN", 64, 128, 0);
    cu->gemm_tile_tokens = bn == 64 || bn == 128 ? (int)bn : 0;
    cu->gemm_wgmma = (int)env_knob("BONSAI_CUDA_GEMM_WGMMA", 0, 1, -1);
    cu->gemm_f16 = (int)env_knob("BONSAI_CUDA_GEMM_F16", 0, 1, -1); // gemm90h or gemm90
    cu->gemm_small_mode = (int)env_knob("BONSAI_CUDA_GEMM_SMALL", 0, 1, -1);
    const long gs_ks = env_knob("BONSAI_CUDA_GEMM_SMALL_KS", 1, 4, 0);
    cu->gemm_small_ks = gs_ks == 3 ? 0 : (int)gs_ks; // 1, 2 or 4 k-slices
    const long gs_nt = env_knob("BONSAI_CUDA_GEMM_SMALL_NT", 1, 8, 0);
    cu->gemm_small_nt = gs_nt == 5 || gs_nt == 7 ? 0 : (int)gs_nt; // 1, 2, 3, 4, 6 or 8
    cu->gemm90h_tile = -1; // gemm90h's tile, by name ("128x256")
    const char *tile = getenv("BONSAI_CUDA_GEMM90H_TILE");
    for (int t = 0; tile && t < BONSAI_G90H_TILES; t++)
        if (strcmp(tile, bonsai_cuda_g90h_tiles[t].name) == 0)
            cu->gemm90h_tile = t;
    cu->gemv_b1_mode = (int)env_knob("BONSAI_CUDA_GEMV_B1", 0, 1, -1);
    // measured (bench/NOTES.md gemv4): half of the rest, cold
    cu->gemv_b1_pf16 = (int)env_knob("BONSAI_CUDA_GEMV_B1_PF16", 0, 16, 8);
    cu->gemv_b1_evict_first = (int)env_knob("BONSAI_CUDA_GEMV_B1_EVICT_FIRST", 0, 1, 1);
    cu->gemv_b1_trigger = (int)env_knob("BONSAI_CUDA_GEMV_B1_TRIGGER", 0, 3, -1);
    cu->gemv_b1_depth = (int)env_knob("BONSAI_CUDA_GEMV_B1_DEPTH", 0, 8, -1);
    cu->gemv_b1_blocks = (int)env_knob("BONSAI_CUDA_GEMV_B1_BLOCKS", 1, INT_MAX, 0);
    // measured: bench/NOTES.md CUDA
    cu->gemv_r8_min_rows = (size_t)env_knob("BONSAI_CUDA_GEMV_R8_MIN_ROWS", 1, LONG_MAX, 8192);
    s = check(cu, api->cuDeviceGet(&cu->dev, p.device), "cuDeviceGet");
    if (s == BONSAI_OK)
        s = check(cu, api->cuDevicePrimaryCtxRetain(&cu->ctx, cu->dev),
                     "cuDevicePrimaryCtxRetain");
    if (s != BONSAI_OK) {
        free(cu);
        return s;
    }
    s = check(cu, api->cuCtxSetCurrent(cu->ctx), "cuCtxSetCurrent");
    if (s == BONSAI_OK)
        s = query_device(cu);
    if (s == BONSAI_OK)
        s = check(cu, api->cuStreamCreate(&cu->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    if (s == BONSAI_OK)
        s = bonsai_cuda_load_kernels(cu, &p);
    if (s != BONSAI_OK) {
        bonsai_cuda_close(cu);
        return s;
    }
    *out = cu;
    return BONSAI_OK;
}

void bonsai_cuda_close(bonsai_cuda *cu)
{
    if (!cu)
        return;
    const bonsai_cuda_api *api = cu->api;
    api->cuCtxSetCurrent(cu->ctx);
    if (cu->stream)
        api->cuStreamSynchronize(cu->stream);
    if (cu->act_qs)
        api->cuMemFree(cu->act_qs);
    if (cu->act_d)
        api->cuMemFree(cu->act_d);
    if (cu->act_s)
        api->cuMemFree(cu->act_s);
    if (cu->act_planes)
        api->cuMemFree(cu->act_planes);
    if (cu->act_h)
        api->cuMemFree(cu->act_h);
    if (cu->act_hinv)
        api->cuMemFree(cu->act_hinv);
    if (cu->module)
        api->cuModuleUnload(cu->module);
    if (cu->stream)
        api->cuStreamDestroy(cu->stream);
    api->cuDevicePrimaryCtxRelease(cu->dev);
    free(cu);
}

bonsai_status bonsai_cuda_get_info(const bonsai_cuda *cu, bonsai_cuda_info *info)
{
    if (!cu || !info)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "bonsai_cuda_get_info: NULL argument");
    *info = cu->info;
    return BONSAI_OK;
}

bonsai_status bonsai_cuda_sync(bonsai_cuda *cu)
{
    if (!cu)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "bonsai_cuda_sync: cu is NULL");
    return check(cu, cu->api->cuStreamSynchronize(cu->stream), "cuStreamSynchronize");
}

void bonsai_cuda_set_gemm_min_tokens(bonsai_cuda *cu, size_t m)
{
    cu->gemm_min_tokens = m;
}

/* ---- buffers ------------------------------------------------------------ */

bonsai_status bonsai_cuda_buffer_alloc(bonsai_cuda *cu, size_t n, bonsai_cuda_buffer **out)
{
    if (!cu || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "bonsai_cuda_buffer_alloc: NULL argument");
    *out = NULL;
    if (n == 0 || n > ((size_t)1 << 40))
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "bonsai_cuda_buffer_alloc: %zu floats", n);
    bonsai_cuda_buffer *b = calloc(1, sizeof *b);
    if (!b)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "bonsai_cuda_buffer_alloc: out of memory");
    bonsai_status s = check(cu, cu->api->cuMemAlloc(&b->ptr, n * sizeof(float)), "cuMemAlloc");
    if (s != BONSAI_OK) {
        free(b);
        return s;
    }
    b->cu = cu;
    b->n = n;
    *out = b;
    return BONSAI_OK;
}

void bonsai_cuda_buffer_free(bonsai_cuda_buffer *b)
{
    if (!b)
        return;
    b->cu->api->cuStreamSynchronize(b->cu->stream);
    b->cu->api->cuMemFree(b->ptr);
    free(b);
}

size_t bonsai_cuda_buffer_len(const bonsai_cuda_buffer *b)
{
    return b ? b->n : 0;
}

static bonsai_status check_range(const bonsai_cuda_buffer *b, size_t offset, const void *host,
                                 size_t n, const char *fn)
{
    if (!b || !host)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "%s: NULL argument", fn);
    if (offset > b->n || n > b->n - offset)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "%s: range [%zu, %zu + %zu) outside the buffer of %zu floats", fn,
                           offset, offset, n, b->n);
    return BONSAI_OK;
}

bonsai_status bonsai_cuda_buffer_write(bonsai_cuda_buffer *b, size_t offset, const float *src,
                                       size_t n)
{
    bonsai_status s = check_range(b, offset, src, n, "bonsai_cuda_buffer_write");
    if (s != BONSAI_OK || n == 0)
        return s;
    bonsai_cuda *cu = b->cu;
    s = check(cu, cu->api->cuMemcpyHtoDAsync(b->ptr + offset * sizeof(float), src,
                                                n * sizeof(float), cu->stream),
                 "cuMemcpyHtoDAsync");
    // pageable source: the copy is staged before return, but wait so src is free for sure
    if (s == BONSAI_OK)
        s = bonsai_cuda_sync(cu);
    return s;
}

bonsai_status bonsai_cuda_buffer_read(bonsai_cuda_buffer *b, size_t offset, float *dst, size_t n)
{
    bonsai_status s = check_range(b, offset, dst, n, "bonsai_cuda_buffer_read");
    if (s != BONSAI_OK || n == 0)
        return s;
    bonsai_cuda *cu = b->cu;
    s = check(cu, cu->api->cuMemcpyDtoHAsync(dst, b->ptr + offset * sizeof(float),
                                                n * sizeof(float), cu->stream),
                 "cuMemcpyDtoHAsync");
    if (s == BONSAI_OK)
        s = bonsai_cuda_sync(cu);
    return s;
}

/* The kernel pipeline: embedded fatbinary -> disk cache -> NVRTC.
 *
 * AUTO loads the embedded fatbinary when it holds a cubin the device can
 * run (same major architecture, minor not above the device's). Otherwise
 * (or when forced by BONSAI_CUDA_PIPELINE / params) the embedded source is
 * compiled by NVRTC for exactly this device; the cubin is cached under a key
 * hashing the sources, the options, the NVRTC version and the architecture,
 * and found there by the next start. Without NVRTC, AUTO falls back to the
 * fatbinary's PTX (compiled by the driver). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "cuda/backend.h"
#include "cuda/cache.h"
#include "cuda/loader.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bonsai_status resolve_pipeline(bonsai_cuda_pipeline requested, bonsai_cuda_pipeline *out)
{
    static const struct { const char *name; bonsai_cuda_pipeline p; } names[] = {
        {"auto", BONSAI_CUDA_PIPELINE_AUTO},   {"embedded", BONSAI_CUDA_PIPELINE_EMBEDDED},
        {"jit", BONSAI_CUDA_PIPELINE_JIT},     {"cache", BONSAI_CUDA_PIPELINE_CACHE},
        {"nvrtc", BONSAI_CUDA_PIPELINE_NVRTC},
    };
    *out = requested;
    if (requested != BONSAI_CUDA_PIPELINE_AUTO)
        return BONSAI_OK;
    const char *env = getenv("BONSAI_CUDA_PIPELINE");
    if (!env || !*env)
        return BONSAI_OK;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(env, names[i].name) == 0) {
            *out = names[i].p;
            return BONSAI_OK;
        }
    return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                       "BONSAI_CUDA_PIPELINE=%s: expected auto, embedded, jit, cache or nvrtc", env);
}

/* 1 if the fatbinary has a cubin the device (cc major.minor) can run. */
static int fatbin_has_cubin(int major, int minor)
{
    const char *p = bonsai_cuda_fatbin_archs;
    while (*p) {
        int arch = atoi(p);
        if (arch / 10 == major && arch % 10 <= minor)
            return 1;
        p = strchr(p, ';');
        if (!p)
            break;
        p++;
    }
    return 0;
}

#define N_OPTIONS 2

/* sm_90 devices get sm_90a code (wgmma, kernels/gemm90.cu), as the
 * fatbinary's sm_90a cubin does, so every level loads the same kernels. */
static void nvrtc_options(int arch, char arch_opt[32], const char *opts[N_OPTIONS])
{
    snprintf(arch_opt, 32, "--gpu-architecture=sm_%d%s", arch, arch == 90 ? "a" : "");
    opts[0] = arch_opt;
    opts[1] = "--std=c++17";
}

static uint64_t cache_key(int arch, int nvrtc_major, int nvrtc_minor)
{
    char arch_opt[32];
    const char *opts[N_OPTIONS];
    nvrtc_options(arch, arch_opt, opts);
    uint64_t h = bonsai_hash64(BONSAI_HASH64_INIT, bonsai_cuda_unity_source,
                               strlen(bonsai_cuda_unity_source) + 1);
    for (size_t i = 0; i < bonsai_cuda_n_sources; i++) {
        h = bonsai_hash64(h, bonsai_cuda_sources[i].name, strlen(bonsai_cuda_sources[i].name) + 1);
        h = bonsai_hash64(h, bonsai_cuda_sources[i].text, strlen(bonsai_cuda_sources[i].text) + 1);
    }
    for (int i = 0; i < N_OPTIONS; i++)
        h = bonsai_hash64(h, opts[i], strlen(opts[i]) + 1);
    int tail[3] = {nvrtc_major, nvrtc_minor, arch};
    return bonsai_hash64(h, tail, sizeof tail);
}

bonsai_status bonsai_cuda_nvrtc_compile(int arch, void **cubin, size_t *n)
{
    const bonsai_cuda_api *api;
    bonsai_status s = bonsai_cuda_api_get_nvrtc_only(&api);
    if (s != BONSAI_OK)
        return s;
    const char *names[32], *texts[32];
    size_t count = bonsai_cuda_n_sources < 32 ? bonsai_cuda_n_sources : 32;
    for (size_t i = 0; i < count; i++) {
        names[i] = bonsai_cuda_sources[i].name;
        texts[i] = bonsai_cuda_sources[i].text;
    }
    nvrtcProgram prog;
    nvrtcResult r = api->nvrtcCreateProgram(&prog, bonsai_cuda_unity_source, "bonsai_kernels.cu",
                                            (int)count, texts, names);
    if (r != 0)
        return bonsai_fail(BONSAI_ERR_CUDA, "nvrtcCreateProgram failed: %s",
                           api->nvrtcGetErrorString(r));
    char arch_opt[32];
    const char *opts[N_OPTIONS];
    nvrtc_options(arch, arch_opt, opts);
    r = api->nvrtcCompileProgram(prog, N_OPTIONS, opts);
    if (r != 0) {
        size_t log_n = 0;
        char log[768] = "";
        if (api->nvrtcGetProgramLogSize(prog, &log_n) == 0 && log_n > 0) {
            char *full = malloc(log_n);
            if (full && api->nvrtcGetProgramLog(prog, full) == 0)
                snprintf(log, sizeof log, "%s", full);
            free(full);
        }
        api->nvrtcDestroyProgram(&prog);
        return bonsai_fail(BONSAI_ERR_CUDA, "NVRTC could not compile the kernels for sm_%d: %s: %s",
                           arch, api->nvrtcGetErrorString(r), log);
    }
    size_t size = 0;
    char *buf = NULL;
    r = api->nvrtcGetCUBINSize(prog, &size);
    if (r == 0 && size > 0 && (buf = malloc(size)) != NULL)
        r = api->nvrtcGetCUBIN(prog, buf);
    api->nvrtcDestroyProgram(&prog);
    if (r != 0 || !buf) {
        free(buf);
        return bonsai_fail(BONSAI_ERR_CUDA, "NVRTC gave no cubin for sm_%d: %s", arch,
                           r != 0 ? api->nvrtcGetErrorString(r) : "out of memory");
    }
    *cubin = buf;
    *n = size;
    return BONSAI_OK;
}

static void warn_once(const char *msg)
{
    static atomic_flag warned = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&warned))
        fprintf(stderr, "bonsai: warning: %s (kernels are compiled again at each start)\n", msg);
}

static bonsai_status load_module(bonsai_cuda *cu, const void *image, const char *what)
{
    CUresult r = cu->api->cuModuleLoadData(&cu->module, image);
    if (r != CUDA_SUCCESS) {
        cu->module = NULL;
        char msg[160];
        snprintf(msg, sizeof msg, "cuModuleLoadData (%s)", what);
        return bonsai_cuda_fail(cu->api, r, msg);
    }
    return BONSAI_OK;
}

/* The cache / NVRTC levels. */
static bonsai_status load_jit(bonsai_cuda *cu, bonsai_cuda_pipeline p, const char *dir_param)
{
    bonsai_cuda_info *info = &cu->info;
    const bonsai_cuda_api *api;
    bonsai_status s = bonsai_cuda_api_get_nvrtc(&api);
    if (s != BONSAI_OK)
        return s;
    api->nvrtcVersion(&info->nvrtc_major, &info->nvrtc_minor);
    const int arch = info->cc_major * 10 + info->cc_minor;
    const uint64_t key = cache_key(arch, info->nvrtc_major, info->nvrtc_minor);
    char dir[1024];
    int have_dir = bonsai_cache_dir(dir_param, dir, sizeof dir) == BONSAI_OK;
    if (have_dir)
        bonsai_cache_path(dir, key, info->cache_path, sizeof info->cache_path);
    else
        snprintf(info->cache_note, sizeof info->cache_note, "%s", bonsai_last_error());

    if (p != BONSAI_CUDA_PIPELINE_NVRTC && have_dir) {
        void *cubin = NULL;
        size_t n = 0;
        s = bonsai_cache_read(dir, key, &cubin, &n);
        if (s == BONSAI_OK) {
            s = load_module(cu, cubin, "cached cubin");
            free(cubin);
            if (s == BONSAI_OK) {
                info->source = BONSAI_CUDA_FROM_CACHE;
                return BONSAI_OK;
            }
        }
        if (s != BONSAI_ERR_NOT_FOUND) // a rejected file: say why, then rebuild it
            snprintf(info->cache_note, sizeof info->cache_note, "%s", bonsai_last_error());
        if (p == BONSAI_CUDA_PIPELINE_CACHE)
            return bonsai_fail(s == BONSAI_ERR_NOT_FOUND ? BONSAI_ERR_NOT_FOUND : BONSAI_ERR_FORMAT,
                               "BONSAI_CUDA_PIPELINE=cache: no usable cached kernels for sm_%d "
                               "(%s)", arch, bonsai_last_error());
    } else if (p == BONSAI_CUDA_PIPELINE_CACHE) {
        return bonsai_fail(BONSAI_ERR_NOT_FOUND, "BONSAI_CUDA_PIPELINE=cache: %s",
                           info->cache_note);
    }

    void *cubin = NULL;
    size_t n = 0;
    if ((s = bonsai_cuda_nvrtc_compile(arch, &cubin, &n)) != BONSAI_OK)
        return s;
    if (have_dir && (s = bonsai_cache_write(dir, key, cubin, n)) != BONSAI_OK) {
        snprintf(info->cache_note, sizeof info->cache_note, "%s", bonsai_last_error());
        warn_once(info->cache_note);
    }
    s = load_module(cu, cubin, "NVRTC cubin");
    free(cubin);
    if (s == BONSAI_OK)
        info->source = BONSAI_CUDA_FROM_NVRTC;
    return s;
}

static bonsai_status get_function(bonsai_cuda *cu, const char *name, CUfunction *f)
{
    CUresult r = cu->api->cuModuleGetFunction(f, cu->module, name);
    if (r != CUDA_SUCCESS) {
        char msg[128];
        snprintf(msg, sizeof msg, "cuModuleGetFunction(%s)", name);
        return bonsai_cuda_fail(cu->api, r, msg);
    }
    return BONSAI_OK;
}

/* kernels/gemv_b1.cu: a block may take half an SM's shared memory less the
 * 1 KB the driver keeps per block (cu->gemv_b1_smem_max), so that the blocks
 * of two launches fit an SM together; carveout: all shared memory. */
static bonsai_status get_gemv_b1(bonsai_cuda *cu, const char *name, CUfunction *f)
{
    bonsai_status s = get_function(cu, name, f);
    if (s != BONSAI_OK)
        return s;
    int per_sm = 0;
    CUresult r = cu->api->cuDeviceGetAttribute(
        &per_sm, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, cu->dev);
    if (r != CUDA_SUCCESS)
        return bonsai_cuda_fail(cu->api, r, "cuDeviceGetAttribute(shared memory per SM)");
    cu->gemv_b1_smem_max = per_sm > 4096 ? (size_t)per_sm / 2 - 1024 : 0;
    r = cu->api->cuFuncSetAttribute(*f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                    (int)cu->gemv_b1_smem_max);
    if (r == CUDA_SUCCESS)
        r = cu->api->cuFuncSetAttribute(*f, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                                        100);
    if (r != CUDA_SUCCESS) {
        char what[160];
        snprintf(what, sizeof what, "cuFuncSetAttribute(%s shared memory)", name);
        return bonsai_cuda_fail(cu->api, r, what);
    }
    return BONSAI_OK;
}

/* gemm90h_cfg<FMT, N>::SMEM (kernels/gemm90h.cu, which checks these): 6
 * stages of 32 KB of activations and 128 rows' weight bits and scales,
 * 1024-aligned, plus 1024 bytes of alignment slack. */
const bonsai_cuda_g90h_tile bonsai_cuda_g90h_tiles[BONSAI_G90H_TILES] = {
    {"128x128", "", 128, 1, {216064, 228352}},
    {"128x256", "_128x256", 256, 1, {216064, 228352}},
    {"128x256k2", "_128x256k2", 256, 2, {216064, 228352}},
};

/* The sm_90a GEMMs of kernels/gemm90.cu and gemm90h.cu: absent from modules
 * built for other targets, which leaves *f NULL (matmul.c then runs gemm.cu's
 * kernels). */
static bonsai_status get_optional_function(bonsai_cuda *cu, const char *name, size_t smem,
                                           CUfunction *f)
{
    *f = NULL;
    CUresult r = cu->api->cuModuleGetFunction(f, cu->module, name);
    if (r == CUDA_ERROR_NOT_FOUND) {
        *f = NULL;
        return BONSAI_OK;
    }
    if (r != CUDA_SUCCESS) {
        *f = NULL;
        char msg[128];
        snprintf(msg, sizeof msg, "cuModuleGetFunction(%s)", name);
        return bonsai_cuda_fail(cu->api, r, msg);
    }
    r = cu->api->cuFuncSetAttribute(*f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)smem);
    if (r != CUDA_SUCCESS)
        return bonsai_cuda_fail(cu->api, r, "cuFuncSetAttribute(gemm90 shared memory)");
    return BONSAI_OK;
}

static bonsai_status get_functions(bonsai_cuda *cu)
{
    static const char *const fmt[BONSAI_CUDA_FMTS] = {"q1", "tq2"};
    static const int nt[BONSAI_CUDA_GEMV_NT] = {1, 2, 4, 8};
    /* 3 stages of gemm_cfg<FMT, BN>::STAGE (gemm.cu) */
    static const size_t gemm_smem[BONSAI_CUDA_FMTS] = {3 * 21760, 3 * 25856};
    static const size_t gemm64_smem[BONSAI_CUDA_FMTS] = {3 * 12032, 3 * 16128};
    /* gemm90_cfg<FMT>::SMEM (gemm90.cu): 6 stages + 1024 bytes of alignment slack */
    static const size_t gemm90_smem[BONSAI_CUDA_FMTS] = {6 * 19456 + 1024, 6 * 23552 + 1024};
    char name[64];
    bonsai_status s = get_function(cu, "bonsai_quantize_q8", &cu->quantize);
    if (s == BONSAI_OK)
        s = get_function(cu, "bonsai_quantize_f16", &cu->quantize_f16);
    for (int f = 0; f < BONSAI_CUDA_FMTS && s == BONSAI_OK; f++) {
        for (int i = 0; i < BONSAI_CUDA_GEMV_NT && s == BONSAI_OK; i++) {
            snprintf(name, sizeof name, "bonsai_gemv_%s_t%d", fmt[f], nt[i]);
            s = get_function(cu, name, &cu->gemv[f][i]);
        }
        for (int i = 0; i < BONSAI_CUDA_GEMV_SWIGLU_NT && s == BONSAI_OK; i++) {
            snprintf(name, sizeof name, "bonsai_gemv_swiglu_%s_t%d", fmt[f], nt[i]);
            s = get_function(cu, name, &cu->gemv_swiglu[f][i]);
        }
        snprintf(name, sizeof name, "bonsai_gemv_%s_t1_r2", fmt[f]);
        if (s == BONSAI_OK)
            s = get_function(cu, name, &cu->gemv_r2[f]);
        snprintf(name, sizeof name, "bonsai_gemv_b1_%s", fmt[f]);
        if (s == BONSAI_OK)
            s = get_gemv_b1(cu, name, &cu->gemv_b1[f]);
        static const int small_nt[BONSAI_CUDA_SMALL_NTS] = BONSAI_CUDA_SMALL_NT;
        for (int i = 0; i < BONSAI_CUDA_SMALL_NTS && s == BONSAI_OK; i++) {
            snprintf(name, sizeof name, "bonsai_gemm_small_%s_n%d", fmt[f], small_nt[i]);
            s = get_function(cu, name, &cu->gemm_small[f][i]);
            snprintf(name, sizeof name, "bonsai_gemm_small_swiglu_%s_n%d", fmt[f], small_nt[i]);
            if (s == BONSAI_OK)
                s = get_function(cu, name, &cu->gemm_small_swiglu[f][i]);
        }
        snprintf(name, sizeof name, "bonsai_gemm_%s", fmt[f]);
        if (s == BONSAI_OK)
            s = get_function(cu, name, &cu->gemm[f]);
        snprintf(name, sizeof name, "bonsai_gemm_swiglu_%s", fmt[f]);
        if (s == BONSAI_OK)
            s = get_function(cu, name, &cu->gemm_swiglu[f]);
        snprintf(name, sizeof name, "bonsai_gemm_%s_bn64", fmt[f]);
        if (s == BONSAI_OK)
            s = get_function(cu, name, &cu->gemm64[f]);
        snprintf(name, sizeof name, "bonsai_gemm_swiglu_%s_bn64", fmt[f]);
        if (s == BONSAI_OK)
            s = get_function(cu, name, &cu->gemm64_swiglu[f]);
        cu->gemm_smem[f] = gemm_smem[f];
        cu->gemm64_smem[f] = gemm64_smem[f];
        const CUfunction fns[4] = {cu->gemm[f], cu->gemm_swiglu[f], cu->gemm64[f],
                                   cu->gemm64_swiglu[f]};
        const size_t bytes[4] = {gemm_smem[f], gemm_smem[f], gemm64_smem[f], gemm64_smem[f]};
        for (int i = 0; i < 4 && s == BONSAI_OK; i++) {
            CUresult r = cu->api->cuFuncSetAttribute(
                fns[i], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)bytes[i]);
            if (r != CUDA_SUCCESS)
                s = bonsai_cuda_fail(cu->api, r, "cuFuncSetAttribute(GEMM shared memory)");
        }
        cu->gemm90_smem[f] = gemm90_smem[f];
        snprintf(name, sizeof name, "bonsai_gemm90_%s", fmt[f]);
        if (s == BONSAI_OK)
            s = get_optional_function(cu, name, gemm90_smem[f], &cu->gemm90[f]);
        snprintf(name, sizeof name, "bonsai_gemm90_swiglu_%s", fmt[f]);
        if (s == BONSAI_OK)
            s = get_optional_function(cu, name, gemm90_smem[f], &cu->gemm90_swiglu[f]);
        for (int t = 0; t < BONSAI_G90H_TILES && s == BONSAI_OK; t++) {
            const bonsai_cuda_g90h_tile *tile = &bonsai_cuda_g90h_tiles[t];
            snprintf(name, sizeof name, "bonsai_gemm90h_%s%s", fmt[f], tile->suffix);
            s = get_optional_function(cu, name, tile->smem[f], &cu->gemm90h[t][f]);
            snprintf(name, sizeof name, "bonsai_gemm90h_swiglu_%s%s", fmt[f], tile->suffix);
            if (s == BONSAI_OK)
                s = get_optional_function(cu, name, tile->smem[f], &cu->gemm90h_swiglu[t][f]);
        }
    }
    return s;
}

bonsai_status bonsai_cuda_load_kernels(bonsai_cuda *cu, const bonsai_cuda_params *params)
{
    bonsai_cuda_pipeline p;
    bonsai_status s = resolve_pipeline(params->pipeline, &p);
    if (s != BONSAI_OK)
        return s;
    const double t0 = now_ms();
    const int has_cubin = fatbin_has_cubin(cu->info.cc_major, cu->info.cc_minor);
    if (p == BONSAI_CUDA_PIPELINE_EMBEDDED || (p == BONSAI_CUDA_PIPELINE_AUTO && has_cubin)) {
        s = load_module(cu, bonsai_cuda_fatbin, "embedded fatbinary");
        cu->info.source = has_cubin ? BONSAI_CUDA_FROM_EMBEDDED_CUBIN : BONSAI_CUDA_FROM_EMBEDDED_PTX;
    } else {
        s = load_jit(cu, p, params->cache_dir);
        if (s == BONSAI_ERR_NO_CUDA_DEVICE && p == BONSAI_CUDA_PIPELINE_AUTO) {
            // no NVRTC: let the driver compile the fatbinary's PTX
            snprintf(cu->info.cache_note, sizeof cu->info.cache_note, "%s", bonsai_last_error());
            s = load_module(cu, bonsai_cuda_fatbin, "embedded PTX");
            cu->info.source = BONSAI_CUDA_FROM_EMBEDDED_PTX;
        }
    }
    if (s == BONSAI_OK)
        s = get_functions(cu);
    cu->info.load_ms = now_ms() - t0;
    return s;
}

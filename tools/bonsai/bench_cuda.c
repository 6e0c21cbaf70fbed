/* `bonsai bench kernels --backend cuda`: the CUDA matmul kernels on random
 * weights, with the flags and JSON fields of the CPU bench (bench_kernels.c).
 *
 * Roof: device-to-device copy bandwidth (bytes read + written) of a buffer
 * much larger than L2, measured in the same run (cuMemcpyDtoDAsync, CUDA
 * events, median of passes). Each case quantizes the activations once
 * (quant_us, timed alone) and then times the matmul kernel alone:
 *   us        back to back: BATCH calls between two events, per call, median
 *             of batches (cold: the calls rotate over weight copies totalling
 *             more than 4 x L2, so each call reads its weights from HBM);
 *   us_launch one call between two events, median;
 *   us_enqueue host time to enqueue one call of the back-to-back batch
 *             (median of batches): near `us`, the GPU waited on the host.
 * cuBLAS (libcublas opened at run time) runs an fp16 GEMM (cublasGemmEx,
 * fp32 accumulation) on the dequantized weights in the same run as a bar:
 * cublas_us, back to back, hot. The CUDA path has one activation mode (fp32
 * in and out, int8 inside), reported as mode q8; --mode and --tier and -t
 * are accepted and ignored. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "core/error.h"
#include "cuda/backend.h"
#include "cuda/loader.h"

#define CMD "bonsai bench kernels --backend cuda"
#define COLD_L2_TIMES 4
#define BATCH 20
#define ROOF_PASSES 20

typedef struct gpu_timer {
    const bonsai_cuda_api *api;
    CUstream stream;
    CUevent start, stop;
    double enqueue_us; /* host time per call of the last time_median, median */
} gpu_timer;

/* One call of a case: rep selects the weight copy. */
typedef bonsai_status (*gpu_call_fn)(void *arg, int rep);

static int timer_init(gpu_timer *t, bonsai_cuda *cu)
{
    t->api = cu->api;
    t->stream = cu->stream;
    if (t->api->cuEventCreate(&t->start, CU_EVENT_DEFAULT) != CUDA_SUCCESS ||
        t->api->cuEventCreate(&t->stop, CU_EVENT_DEFAULT) != CUDA_SUCCESS)
        return -1;
    return 0;
}

/* Microseconds of `calls` back-to-back calls between two events, per call. */
static int time_batch(gpu_timer *t, gpu_call_fn fn, void *arg, int first, int calls, double *us,
                      double *host_us)
{
    if (t->api->cuEventRecord(t->start, t->stream) != CUDA_SUCCESS)
        return -1;
    const double h0 = bench_now_us();
    for (int i = 0; i < calls; i++)
        if (fn(arg, first + i) != BONSAI_OK)
            return -1;
    *host_us = (bench_now_us() - h0) / calls;
    float ms = 0;
    if (t->api->cuEventRecord(t->stop, t->stream) != CUDA_SUCCESS ||
        t->api->cuEventSynchronize(t->stop) != CUDA_SUCCESS ||
        t->api->cuEventElapsedTime(&ms, t->start, t->stop) != CUDA_SUCCESS)
        return -1;
    *us = ms * 1e3 / calls;
    return 0;
}

/* Median per-call time over reps samples of `calls` calls each, after warm-up. */
static int time_median(gpu_timer *t, gpu_call_fn fn, void *arg, int calls, int reps,
                       bench_stats *out)
{
    double samples[256], host[256], us, host_us;
    if (reps > 256)
        reps = 256;
    if (time_batch(t, fn, arg, 0, calls, &us, &host_us) != 0) // warm-up
        return -1;
    for (int r = 0; r < reps; r++) {
        if (time_batch(t, fn, arg, (r + 1) * calls, calls, &us, &host_us) != 0)
            return -1;
        samples[r] = us;
        host[r] = host_us;
    }
    *out = bench_stats_of(samples, reps);
    t->enqueue_us = bench_stats_of(host, reps).median;
    return 0;
}

/* ---- roof: device-to-device copy ------------------------------------------- */

typedef struct copy_arg {
    bonsai_cuda *cu;
    CUdeviceptr a, b;
    size_t bytes;
} copy_arg;

static bonsai_status call_copy(void *arg, int rep)
{
    copy_arg *c = arg;
    CUresult r = c->cu->api->cuMemcpyDtoDAsync(rep % 2 ? c->a : c->b, rep % 2 ? c->b : c->a,
                                               c->bytes, c->cu->stream);
    return r == CUDA_SUCCESS ? BONSAI_OK : bonsai_cuda_fail(c->cu->api, r, "cuMemcpyDtoDAsync");
}

/* ---- cuBLAS, opened at run time -------------------------------------------- */

typedef struct cublas_api {
    void *lib;
    int (*create)(cublasHandle_t *);
    int (*destroy)(cublasHandle_t);
    int (*set_stream)(cublasHandle_t, CUstream);
    int (*gemm_ex)(cublasHandle_t, int, int, int, int, int, const void *, const void *, int, int,
                   const void *, int, int, const void *, void *, int, int, int, int);
    cublasHandle_t handle;
} cublas_api;

static int cublas_open(cublas_api *c, CUstream stream)
{
    static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so",
                                        "/usr/local/cuda/lib64/libcublas.so"};
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !c->lib; i++)
        c->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!c->lib)
        return -1;
    void *f[4] = {dlsym(c->lib, "cublasCreate_v2"), dlsym(c->lib, "cublasDestroy_v2"),
                  dlsym(c->lib, "cublasSetStream_v2"), dlsym(c->lib, "cublasGemmEx")};
    for (int i = 0; i < 4; i++)
        if (!f[i])
            return -1;
    memcpy(&c->create, &f[0], sizeof f[0]);
    memcpy(&c->destroy, &f[1], sizeof f[1]);
    memcpy(&c->set_stream, &f[2], sizeof f[2]);
    memcpy(&c->gemm_ex, &f[3], sizeof f[3]);
    if (c->create(&c->handle) != 0)
        return -1;
    return c->set_stream(c->handle, stream) == 0 ? 0 : -1;
}

typedef struct cublas_case {
    cublas_api *cb;
    CUdeviceptr w, x, y; /* fp16 [rows][k], fp16 [n][k], fp16 [n][rows] */
    int rows, k, n;
} cublas_case;

static bonsai_status call_cublas(void *arg, int rep)
{
    (void)rep;
    cublas_case *c = arg;
    const float one = 1.0f, zero = 0.0f;
    // column-major: Y^T (rows x n) = W^T^T ... i.e. C[rows][n] = op(W)=W (rows x k) * X (k x n)
    int st = c->cb->gemm_ex(c->cb->handle, CUBLAS_OP_T, CUBLAS_OP_N, c->rows, c->n, c->k, &one,
                            (const void *)(uintptr_t)c->w, CUDA_R_16F, c->k,
                            (const void *)(uintptr_t)c->x, CUDA_R_16F, c->k, &zero,
                            (void *)(uintptr_t)c->y, CUDA_R_16F, c->rows, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT);
    return st == 0 ? BONSAI_OK : bonsai_fail(BONSAI_ERR_CUDA, "cublasGemmEx: status %d", st);
}

/* ---- our matmul ---------------------------------------------------------------- */

typedef struct mm_case {
    bonsai_cuda *cu;
    bonsai_cuda_matrix **mats;
    int n_mats;
    bonsai_cuda_buffer *x, *y;
    size_t m;
} mm_case;

static bonsai_status call_matmul(void *arg, int rep)
{
    mm_case *c = arg;
    return bonsai_cuda_matmul_quantized(c->cu, c->mats[rep % c->n_mats], NULL, c->m, c->y, 0);
}

static bonsai_status call_quantize(void *arg, int rep)
{
    (void)rep;
    mm_case *c = arg;
    return bonsai_cuda_quantize_activations(c->cu, c->mats[0], NULL, c->x, c->m);
}

typedef struct bench_env {
    bonsai_cuda *cu;
    bonsai_cuda_info info;
    gpu_timer timer;
    cublas_api cublas;
    int have_cublas;
    double roof_gbps, roof_best_gbps;
    const bench_kernel_options *o;
    bench_report *report;
    uint64_t rng;
} bench_env;

static void alloc_fail(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", CMD, what, bonsai_last_error());
}

/* cuBLAS fp16 GEMM on the dequantized weights: hot, back to back. */
static int time_cublas(bench_env *e, const void *blocks, size_t bytes, bonsai_type type,
                       bench_shape s, size_t m, bench_stats *out)
{
    const bonsai_cuda_api *api = e->cu->api;
    size_t nw = s.rows * s.k;
    float *wf = malloc(nw * sizeof *wf);
    uint16_t *wh = malloc(nw * sizeof *wh), *xh = malloc(m * s.k * sizeof *xh);
    int rc = -1;
    cublas_case c = {&e->cublas, 0, 0, 0, (int)s.rows, (int)s.k, (int)m};
    if (wf && wh && xh && bonsai_dequantize(type, blocks, bytes, wf, nw) == BONSAI_OK) {
        for (size_t i = 0; i < nw; i++)
            wh[i] = bonsai_fp32_to_fp16(wf[i]);
        for (size_t i = 0; i < m * s.k; i++)
            xh[i] = bonsai_fp32_to_fp16((float)((int)(bench_rng_u64(&e->rng) % 2001) - 1000) /
                                        1000.0f);
        if (api->cuMemAlloc(&c.w, nw * 2) == CUDA_SUCCESS &&
            api->cuMemAlloc(&c.x, m * s.k * 2) == CUDA_SUCCESS &&
            api->cuMemAlloc(&c.y, m * s.rows * 2) == CUDA_SUCCESS &&
            api->cuMemcpyHtoDAsync(c.w, wh, nw * 2, e->cu->stream) == CUDA_SUCCESS &&
            api->cuMemcpyHtoDAsync(c.x, xh, m * s.k * 2, e->cu->stream) == CUDA_SUCCESS &&
            api->cuStreamSynchronize(e->cu->stream) == CUDA_SUCCESS)
            rc = time_median(&e->timer, call_cublas, &c, BATCH, 15, out);
    }
    api->cuStreamSynchronize(e->cu->stream);
    if (c.w)
        api->cuMemFree(c.w);
    if (c.x)
        api->cuMemFree(c.x);
    if (c.y)
        api->cuMemFree(c.y);
    free(wf);
    free(wh);
    free(xh);
    return rc;
}

static void put_row(bench_env *e, bonsai_type type, bench_shape s, size_t m, int cold,
                    int copies, const bench_stats *st, double us_launch, double us_enqueue,
                    double quant_us, size_t bytes, const bench_stats *cb)
{
    bench_report *r = e->report;
    double us = st->median, gbps = (double)bytes / us * 1e-3;
    double gflops = 2.0 * (double)s.rows * (double)s.k * (double)m / us * 1e-3;
    bench_report_row(r);
    bench_put_str(r, "op", m == 1 ? "gemv" : "gemm");
    bench_put_str(r, "type", bonsai_type_name(type));
    bench_put_str(r, "mode", "q8");
    bench_put_str(r, "tier", "cuda");
    bench_put_int(r, "threads", e->info.sm_count);
    bench_put_int(r, "rows", (long long)s.rows);
    bench_put_int(r, "k", (long long)s.k);
    bench_put_int(r, "n", (long long)m);
    bench_put_str(r, "cache", cold ? "cold" : "hot");
    bench_put_bool(r, "cold", cold);
    bench_put_int(r, "copies", copies);
    bench_put_int(r, "reps", st->n);
    bench_put_num(r, "us", us, 2);
    bench_put_num(r, "us_mean", st->mean, 2);
    bench_put_num(r, "us_stddev", st->stddev, 2);
    bench_put_num(r, "us_min", st->min, 2);
    bench_put_num(r, "us_launch", us_launch, 2);
    bench_put_num(r, "us_enqueue", us_enqueue, 2);
    bench_put_int(r, "weight_bytes", (long long)bytes);
    bench_put_num(r, "weight_gbps", gbps, 1);
    bench_put_num(r, "gflops", gflops, 0);
    bench_put_num(r, "roof_gbps", e->roof_gbps, 1);
    bench_put_num(r, "roof_best_gbps", e->roof_best_gbps, 1);
    bench_put_num(r, "roof_frac", gbps / e->roof_gbps, 3);
    bench_put_num(r, "quant_us", quant_us, 2);
    if (cb) {
        bench_put_num(r, "cublas_us", cb->median, 2);
        bench_put_num(r, "cublas_gflops",
                      2.0 * (double)s.rows * (double)s.k * (double)m / cb->median * 1e-3, 0);
    }
    fprintf(stderr,
            "  %-10s %6zux%-5zu n=%-4zu %s: %9.2f us (launch %.2f, enqueue %.2f)  %7.1f GB/s  "
            "%.3f of roof  %8.1f TFLOP/s%s",
            bonsai_type_name(type), s.rows, s.k, m, cold ? "cold" : "hot ", us, us_launch,
            us_enqueue, gbps,
            gbps / e->roof_gbps, gflops * 1e-3, cb ? "" : "\n");
    if (cb)
        fprintf(stderr, "  | cuBLAS fp16 %.2f us\n", cb->median);
}

/* All token counts x cache states of one (shape, type). */
static int run_weights(bench_env *e, bonsai_type type, bench_shape s)
{
    const bench_kernel_options *o = e->o;
    size_t bytes;
    bonsai_type_matrix_bytes(type, s.rows, s.k, &bytes);
    void *blocks = bench_alloc(bytes, 1);
    if (!blocks) {
        fprintf(stderr, "%s: no host memory for %zux%zu\n", CMD, s.rows, s.k);
        return BENCH_EXIT_FAIL;
    }
    bench_random_weights(type, blocks, bytes, &e->rng);
    bonsai_matrix hm = {.type = type, .rows = s.rows, .k = s.k, .data = blocks, .data_bytes = bytes,
                        .name = "bench weights"};
    int copies = o->cold ? (int)((COLD_L2_TIMES * e->info.l2_bytes + bytes - 1) / bytes) : 1;
    if (copies < 2 && o->cold)
        copies = 2;
    bonsai_cuda_matrix **mats = calloc((size_t)copies, sizeof *mats);
    int rc = mats ? 0 : BENCH_EXIT_FAIL;
    for (int c = 0; c < copies && !rc; c++)
        if (bonsai_cuda_matrix_upload(e->cu, &hm, &mats[c]) != BONSAI_OK) {
            alloc_fail("weight upload");
            rc = BENCH_EXIT_FAIL;
        }
    for (int ni = 0; ni < o->n_tokens && !rc; ni++) {
        size_t m = o->tokens[ni];
        mm_case c = {e->cu, mats, 1, NULL, NULL, m};
        float *x = bench_alloc(m * s.k, sizeof *x);
        if (!x || bonsai_cuda_buffer_alloc(e->cu, m * s.k, &c.x) != BONSAI_OK ||
            bonsai_cuda_buffer_alloc(e->cu, m * s.rows, &c.y) != BONSAI_OK) {
            alloc_fail("activation buffers");
            rc = BENCH_EXIT_FAIL;
        }
        if (!rc) {
            bench_random_floats(x, m * s.k, &e->rng);
            bonsai_cuda_buffer_write(c.x, 0, x, m * s.k);
        }
        bench_stats q, cb;
        int have_cb = 0;
        if (!rc && time_median(&e->timer, call_quantize, &c, 1, 15, &q) != 0) {
            alloc_fail("quantize");
            rc = BENCH_EXIT_FAIL;
        }
        if (!rc && e->have_cublas)
            have_cb = time_cublas(e, blocks, bytes, type, s, m, &cb) == 0;
        if (!rc && call_quantize(&c, 0) != BONSAI_OK)
            rc = BENCH_EXIT_FAIL;
        for (int cold = 0; cold <= 1 && !rc; cold++) {
            if (cold ? !o->cold : !o->hot)
                continue;
            c.n_mats = cold ? copies : 1;
            bench_stats st, one;
            int reps = o->reps > 0 ? o->reps : 31;
            int failed = time_median(&e->timer, call_matmul, &c, BATCH, reps, &st) != 0;
            const double enqueue = e->timer.enqueue_us; // of the back-to-back batches
            if (failed || time_median(&e->timer, call_matmul, &c, 1, reps, &one) != 0) {
                alloc_fail("matmul");
                rc = BENCH_EXIT_FAIL;
                break;
            }
            put_row(e, type, s, m, cold, c.n_mats, &st, one.median, enqueue, q.median, bytes,
                    have_cb && !cold ? &cb : NULL);
        }
        free(x);
        bonsai_cuda_buffer_free(c.x);
        bonsai_cuda_buffer_free(c.y);
    }
    for (int c = 0; c < copies && mats; c++)
        bonsai_cuda_matrix_free(mats[c]);
    free(mats);
    free(blocks);
    return rc;
}

static int measure_roof(bench_env *e, size_t bytes)
{
    copy_arg c = {e->cu, 0, 0, bytes};
    const bonsai_cuda_api *api = e->cu->api;
    int rc = -1;
    bench_stats st;
    if (api->cuMemAlloc(&c.a, bytes) == CUDA_SUCCESS &&
        api->cuMemAlloc(&c.b, bytes) == CUDA_SUCCESS &&
        api->cuMemsetD32Async(c.a, 0x3f800000u, bytes / 4, e->cu->stream) == CUDA_SUCCESS &&
        time_median(&e->timer, call_copy, &c, 1, ROOF_PASSES, &st) == 0) {
        e->roof_gbps = 2.0 * (double)bytes / st.median * 1e-3;
        e->roof_best_gbps = 2.0 * (double)bytes / st.min * 1e-3;
        rc = 0;
    }
    api->cuStreamSynchronize(e->cu->stream);
    if (c.a)
        api->cuMemFree(c.a);
    if (c.b)
        api->cuMemFree(c.b);
    return rc;
}

int bench_kernels_cuda(int argc, char **argv)
{
    bench_kernel_options o;
    int rc = bench_kernel_options_parse(CMD, argc, argv, &o);
    if (rc)
        return rc;
    if (o.help) {
        bench_kernel_options_usage(stdout);
        return BENCH_EXIT_OK;
    }
    for (int i = 0; i < o.n_types; i++)
        if (o.types[i] != BONSAI_TYPE_Q1_0_G128 && o.types[i] != BONSAI_TYPE_TQ2_0_G128) {
            fprintf(stderr, "%s: --type %s: the CUDA backend takes q1_0_g128 and tq2_0_g128\n",
                    CMD, bonsai_type_name(o.types[i]));
            return BENCH_EXIT_USAGE;
        }
    bench_env e;
    memset(&e, 0, sizeof e);
    e.o = &o;
    e.rng = bench_seed();
    bonsai_status s = bonsai_cuda_open(NULL, &e.cu);
    if (s != BONSAI_OK) {
        fprintf(stderr, "%s: %s\n", CMD, bonsai_last_error());
        return BENCH_EXIT_FAIL;
    }
    bonsai_cuda_get_info(e.cu, &e.info);
    size_t roof_bytes = o.roof_bytes ? o.roof_bytes : 8 * e.info.l2_bytes;
    if (roof_bytes < ((size_t)512 << 20))
        roof_bytes = (size_t)512 << 20;
    if (timer_init(&e.timer, e.cu) != 0 || measure_roof(&e, roof_bytes) != 0) {
        fprintf(stderr, "%s: copy roof failed\n", CMD);
        bonsai_cuda_close(e.cu);
        return BENCH_EXIT_FAIL;
    }
    // BONSAI_BENCH_CUDA_NO_CUBLAS=1: no bar (it dequantizes each case on the host: slow)
    const char *no_cublas = getenv("BONSAI_BENCH_CUDA_NO_CUBLAS");
    e.have_cublas = !(no_cublas && *no_cublas == '1') && cublas_open(&e.cublas, e.cu->stream) == 0;
    fprintf(stderr,
            "device: %s (sm_%d%d, %d SMs, L2 %zu MiB); kernels: %s (%.1f ms)\n"
            "roof: device-to-device copy %.1f GB/s read+write (%zu MiB, median of %d; best "
            "%.1f GB/s)%s\n",
            e.info.name, e.info.cc_major, e.info.cc_minor, e.info.sm_count,
            e.info.l2_bytes >> 20, bonsai_cuda_source_name(e.info.source), e.info.load_ms,
            e.roof_gbps, roof_bytes >> 20, ROOF_PASSES, e.roof_best_gbps,
            e.have_cublas ? "" : "; cuBLAS not found, no bar");

    e.report = bench_report_new();
    if (!e.report)
        rc = BENCH_EXIT_FAIL;
    else {
        bench_report_hide(e.report, "cold", BENCH_FORMAT_MD);
        bench_report_hide(e.report, "cache", BENCH_FORMAT_JSON);
        const char *json_only[] = {"copies", "reps", "us_mean", "us_stddev", "weight_bytes",
                                   "us_enqueue",
                                   "roof_best_gbps", "threads", "mode", "tier"};
        for (size_t i = 0; i < sizeof json_only / sizeof json_only[0]; i++)
            bench_report_hide(e.report, json_only[i], BENCH_FORMAT_MD);
    }
    for (int si = 0; si < o.n_shapes && !rc; si++)
        for (int ti = 0; ti < o.n_types && !rc; ti++)
            rc = run_weights(&e, o.types[ti], o.shapes[si]);
    if (!rc && bench_report_print(e.report, o.format, stdout) != 0)
        rc = BENCH_EXIT_FAIL;
    bench_report_free(e.report);
    if (e.have_cublas)
        e.cublas.destroy(e.cublas.handle);
    e.cu->api->cuEventDestroy(e.timer.start);
    e.cu->api->cuEventDestroy(e.timer.stop);
    bonsai_cuda_close(e.cu);
    return rc;
}

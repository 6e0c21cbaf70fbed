/* The CUDA backend against the CPU scalar reference (src/ref) and float64.
 *
 * Without a device (no driver, no GPU, or built without CUDA) every GPU
 * case is reported as skipped; the API's NULL / no-device answers and the
 * NVRTC compile of the embedded source (when NVRTC exists) still run.
 * With a device: every token count 1..33 and 64, 100, 256, 300, 512, 1000 through
 * both the GEMV token groups and the tensor-core GEMM, for Q1_0_G128 and
 * TQ2_0_G128, awkward shapes, fused add and SwiGLU, outputs poisoned with
 * NaN; per case NMSE <= 1e-9 against the CPU q8 reference (same int8
 * activations), and NMSE <= 5e-4 against float64 pooled per type and op;
 * the one-token GEMV on the binary tensor cores (gemv_b1.cu, forced, one
 * block per SM and 3 blocks with uneven group shares, partial prefetch);
 * the fp16 wgmma GEMM (gemm90h, fp16 activations; each of its tiles) per case NMSE <= 1e-9
 * against float64 on the same fp16 activations (fp16_reference), pooled
 * 5e-4 against float64 on the fp32 activations; each pipeline level (embedded, nvrtc, cache, jit) with bit-identical
 * results; corrupt, truncated and foreign cache files; an unwritable cache
 * directory; every error path's status. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bonsai/bonsai.h"
#include "cuda/backend.h"
#include "cuda/cache.h"
#include "harness.h"
#include "ref/ref_kernels.h"

/* what main runs on a device, each reported skipped when there is none */
static const char *const gpu_groups[] = {
    "device info",     "error paths",          "token counts 1..33 and large",
    "awkward shapes",  "huge TQ2 scales",      "fused add and SwiGLU",
    "pooled fp16 NMSE", "pipeline levels",
};

/* ---- test data ------------------------------------------------------------ */

typedef struct host_matrix {
    bonsai_matrix m;
    uint8_t *data;
    double *w64; /* dequantized [rows][k] */
} host_matrix;

/* test_huge_scales: where nonzero, every huge_scale_every-th TQ2 block
 * gets a scale in [2^15, 65504] */
static size_t huge_scale_every;

/* Random blocks: every bit pattern (TQ2 code 11 included), scales in
 * [0.005, 0.05). */
static host_matrix make_matrix(bonsai_type type, size_t rows, size_t k)
{
    host_matrix h;
    size_t bytes = 0;
    bonsai_type_matrix_bytes(type, rows, k, &bytes);
    h.data = malloc(bytes);
    const size_t bb = bonsai_type_block_bytes(type), nblk = bytes / bb;
    for (size_t i = 0; i < nblk; i++) {
        uint8_t *blk = h.data + i * bb;
        for (size_t j = 0; j < bb; j++)
            blk[j] = (uint8_t)rng_u64();
        uint16_t d = bonsai_fp32_to_fp16(rng_uniform(0.005f, 0.05f));
        if (huge_scale_every && type == BONSAI_TYPE_TQ2_0_G128 && i % huge_scale_every == 0)
            d = bonsai_fp32_to_fp16(rng_uniform(32768.0f, 65504.0f));
        uint8_t *dp = type == BONSAI_TYPE_Q1_0_G128 ? blk : blk + 32;
        dp[0] = (uint8_t)d;
        dp[1] = (uint8_t)(d >> 8);
    }
    float *wf = malloc(rows * k * sizeof *wf);
    bonsai_dequantize(type, h.data, bytes, wf, rows * k);
    h.w64 = malloc(rows * k * sizeof *h.w64);
    for (size_t i = 0; i < rows * k; i++)
        h.w64[i] = wf[i];
    free(wf);
    h.m = (bonsai_matrix){.type = type, .rows = rows, .k = k, .data = h.data, .data_bytes = bytes,
                          .name = "test matrix"};
    return h;
}

static void free_matrix(host_matrix *h)
{
    free(h->data);
    free(h->w64);
}

static float *random_x(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = rng_normal() * (rng_u64() % 16 == 0 ? 4.0f : 1.0f); // some larger values
    return x;
}

/* q8 reference (the same int8 the GPU makes) and float64 reference. Every
 * q8 path adds one exact integer sum per (row, block) in fp32 (gemv_b1's TQ2
 * path too: its two half-block sums are one integer before the conversion,
 * bench/NOTES.md gemv7), so a plain NMSE judges them. */
static void references(const host_matrix *h, const float *x, size_t m, float *yq, double *y64)
{
    const size_t k = h->m.k, rows = h->m.rows, nb = k / BONSAI_QK;
    bonsai_block_q8 *xq = calloc(m * nb, sizeof *xq);
    for (size_t t = 0; t < m; t++)
        bonsai_ref_quantize_q8(x + t * k, k, xq + t * nb);
    bonsai_ref_mm_q8(h->m.type, h->data, k, 0, rows, xq, m, yq, rows);
    free(xq);
    for (size_t t = 0; t < m; t++)
        for (size_t r = 0; r < rows; r++) {
            double acc = 0;
            for (size_t j = 0; j < k; j++)
                acc += h->w64[r * k + j] * x[t * k + j];
            y64[t * rows + r] = acc;
        }
}

/* The reference of the fp16 GEMM (kernels/layout_f16.cuh): each token's
 * activations times 2^p (p = clamp(141 - biased exponent of max |x|, -126,
 * 126)), rounded to fp16 (nearest even), times 2^-p; the dot products with
 * the dequantized weights in float64. The GPU's products of fp16 are exact,
 * so the only difference left is its fp32 accumulation, whose rounding
 * scales with the product terms rather than with their sum: sq gets each
 * output's sum of squared terms, the floor of the NMSE that judges it (an
 * output that cancels to near zero failed a plain 1e-9 NMSE once, 1x128
 * m=1 at 1.55e-9 on the H100). */
static void fp16_reference(const host_matrix *h, const float *x, size_t m, double *yh, double *sq)
{
    const size_t k = h->m.k, rows = h->m.rows;
    double *xr = malloc(k * sizeof *xr);
    for (size_t t = 0; t < m; t++) {
        const float *xt = x + t * k;
        float amax = 0;
        for (size_t j = 0; j < k; j++)
            amax = fmaxf(amax, fabsf(xt[j]));
        uint32_t bits;
        memcpy(&bits, &amax, sizeof bits);
        int p = 141 - (int)((bits >> 23) & 0xFF);
        p = p < -126 ? -126 : p > 126 ? 126 : p;
        for (size_t j = 0; j < k; j++)
            xr[j] = ldexp(bonsai_fp16_to_fp32(bonsai_fp32_to_fp16(ldexpf(xt[j], p))), -p);
        for (size_t r = 0; r < rows; r++) {
            double acc = 0, acc2 = 0;
            for (size_t j = 0; j < k; j++) {
                const double term = h->w64[r * k + j] * xr[j];
                acc += term;
                acc2 += term * term;
            }
            yh[t * rows + r] = acc;
            sq[t * rows + r] = acc2;
        }
    }
    free(xr);
}

static double nmse_f(const float *got, const float *ref, size_t n)
{
    double *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = ref[i];
    double e = nmse(got, r, n);
    free(r);
    return e;
}

static size_t count_nonfinite(const float *v, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(v[i]);
    return bad;
}

static bonsai_cuda_buffer *upload_floats(bonsai_cuda *cu, const float *v, size_t n)
{
    bonsai_cuda_buffer *b = NULL;
    if (bonsai_cuda_buffer_alloc(cu, n, &b) == BONSAI_OK)
        bonsai_cuda_buffer_write(b, 0, v, n);
    return b;
}

static void poison(bonsai_cuda_buffer *b, size_t n)
{
    float *nan = malloc(n * sizeof *nan);
    for (size_t i = 0; i < n; i++)
        nan[i] = NAN;
    bonsai_cuda_buffer_write(b, 0, nan, n);
    free(nan);
}

/* ---- without a device ----------------------------------------------------- */

static void test_api_without_device(void)
{
    bonsai_cuda *cu = (bonsai_cuda *)1;
    CHECK(bonsai_cuda_open(NULL, NULL) == BONSAI_ERR_NULL_ARG, "open(out = NULL)");
    bonsai_cuda_close(NULL);
    bonsai_cuda_buffer_free(NULL);
    bonsai_cuda_matrix_free(NULL);
    bonsai_cuda_info info;
    CHECK(bonsai_cuda_get_info(NULL, &info) == BONSAI_ERR_NULL_ARG, "get_info(NULL)");
    CHECK(bonsai_cuda_sync(NULL) == BONSAI_ERR_NULL_ARG, "sync(NULL)");
    CHECK(bonsai_cuda_buffer_alloc(NULL, 4, (bonsai_cuda_buffer **)&cu) == BONSAI_ERR_NULL_ARG,
          "buffer_alloc(NULL)");
    CHECK(bonsai_cuda_matrix_upload(NULL, NULL, (bonsai_cuda_matrix **)&cu) == BONSAI_ERR_NULL_ARG,
          "matrix_upload(NULL)");
    CHECK(bonsai_cuda_matmul(NULL, NULL, NULL, 1, NULL) == BONSAI_ERR_NULL_ARG, "matmul(NULL)");
    CHECK(bonsai_cuda_matmul_swiglu(NULL, NULL, NULL, NULL, 1, NULL) == BONSAI_ERR_NULL_ARG,
          "swiglu(NULL)");
    CHECK(bonsai_cuda_buffer_len(NULL) == 0, "buffer_len(NULL)");
    CHECK(strcmp(bonsai_cuda_source_name(BONSAI_CUDA_FROM_CACHE), "cache") == 0, "source name");
    const char *archs = bonsai_cuda_archs_built();
    CHECK(archs && *archs, "archs built: %s", archs);
    if (bonsai_cuda_fatbin_size > 0)
        CHECK(strstr(archs, "sm_") != NULL, "fatbinary archs listed: %s", archs);
}

/* The embedded source compiles with NVRTC for sm_90 (as sm_90a; needs NVRTC only). */
static void test_nvrtc_compiles(void)
{
    if (bonsai_cuda_fatbin_size == 0) {
        skip("NVRTC compile: built without CUDA");
        return;
    }
    void *cubin = NULL;
    size_t n = 0;
    bonsai_status s = bonsai_cuda_nvrtc_compile(90, &cubin, &n);
    if (s == BONSAI_ERR_NO_CUDA_DEVICE) {
        skip("NVRTC compile: %s", bonsai_last_error());
        return;
    }
    CHECK(s == BONSAI_OK && n > 1000, "NVRTC compiles the embedded source for sm_90: %s",
          s == BONSAI_OK ? "ok" : bonsai_last_error());
    CHECK(n >= 4 && memcmp(cubin, "\177ELF", 4) == 0, "NVRTC output is an ELF cubin");
    // sm_90 is compiled as sm_90a, so the wgmma GEMM (gemm90.cu) is in it
    static const char name[] = "bonsai_gemm90_swiglu_tq2";
    int found = 0;
    for (size_t i = 0; s == BONSAI_OK && !found && i + sizeof name <= n; i++)
        found = memcmp((const char *)cubin + i, name, sizeof name) == 0;
    CHECK(found, "NVRTC sm_90 cubin holds %s", name);
    free(cubin);
}

/* ---- matmul correctness --------------------------------------------------- */

typedef enum { OP_MATMUL, OP_ADD, OP_SWIGLU } op_kind;
static const char *const op_names[] = {"matmul", "matmul_add", "swiglu"};

/* Error and norm against float64 pooled per (activations: 0 int8, 1 fp16;
 * type, op) over all cases, as in the CPU q8 tests: one dot product of 128
 * terms alone can miss 5e-4. */
static double pool_err[2][2][3], pool_norm[2][2][3];

/* gemm90h's tile forced on path 5 (128 x 128), 11 (128 x 256), 12 (128 x
 * 256, k split over a cluster of 2); -1 on the other paths. */
static int g90h_tile(int path)
{
    return path == 5    ? BONSAI_G90H_128X128
           : path == 11 ? BONSAI_G90H_128X256
           : path == 12 ? BONSAI_G90H_128X256K2
                        : -1;
}

/* The paths through the large GEMMs (every token count). */
static const int gemm_paths[] = {0, 1, 3, 4, 5, 11, 12};
#define GEMM_PATHS 7

/* One case: op on (rows x k, type) for m tokens through the GEMV (path 0;
 * 2 rows per warp for one token), the GEMM with 128-token tiles (path 1),
 * the GEMV with 8 rows per warp (path 2), the GEMM with 64-token tiles
 * (path 3), the sm_90a int8 wgmma GEMM (path 4) or the sm_90a fp16 wgmma
 * GEMM with its tile forced (paths 5, 11, 12: g90h_tile) (4, 5, 11, 12:
 * skipped where the loaded kernels have none), the
 * one-token GEMV on the binary tensor cores (gemv_b1.cu) forced with one
 * block per SM, an L2 prefetch of all rows past the rings and the next
 * launch let in after the units (trigger 2) and a fill of four copies in
 * flight per lane (depth 4, path 6) or with uneven shares of at most 13
 * groups per block, a prefetch of 5/16 of them, no evict_first policy,
 * trigger 1 (3 for an odd block count) and depth k / 128 % 4 (0 = all at
 * once, 1, 2, 3) (path 7), against the q8 (5, 11, 12:
 * fp16_reference)
 * and float64 references, or the small-batch kernel (gemm_small.cu) with
 * the k-slices per block of matmul.c's rule (path 8: 4 on the small
 * matrices here), 1 (path 9) or 2 (path 10). Path 0 takes matmul.c's rule (gemv_b1 on large one-token
 * matrices on Hopper), path 2 never gemv_b1; paths 0 to 7 never
 * gemm_small (its rule yields to the forced GEMV / GEMM split; path 0
 * with the GEMV forced). Paths 6 and 7 are for one token (matmul,
 * matmul_add); paths 8 to 10 run gemm_small for 2 .. 127 tokens and the
 * usual kernels otherwise. */
static void run_case(bonsai_cuda *cu, bonsai_type type, size_t rows, size_t k, size_t m, int path,
                     op_kind op)
{
    const char *tn = bonsai_type_name(type);
    const int tile = g90h_tile(path), f16 = tile >= 0;
    if ((path == 4 && !cu->gemm90[type == BONSAI_TYPE_Q1_0_G128 ? 0 : 1]) ||
        (f16 && !cu->gemm90h[tile][type == BONSAI_TYPE_Q1_0_G128 ? 0 : 1])) {
        skip("%s gemm90%s %zux%zu m=%zu: no sm_90a kernels on this device", tn,
             f16 ? "h" : "", rows, k, m);
        return;
    }
    host_matrix w = make_matrix(type, rows, k), u = {0};
    if (op == OP_SWIGLU)
        u = make_matrix(type, rows, k);
    float *x = random_x(m * k);
    const size_t ny = m * rows;
    float *yq = malloc(ny * sizeof *yq), *uq = NULL, *y0 = NULL, *got = malloc(ny * sizeof *got);
    double *y64 = malloc(ny * sizeof *y64), *u64 = NULL, *yh = NULL, *uh = NULL;
    double *ysq = NULL, *usq = NULL; /* fp16 path: the NMSE floor (fp16_reference) */
    references(&w, x, m, yq, y64);
    if (f16) { // the fp16 path's reference replaces the q8 one
        yh = malloc(ny * sizeof *yh);
        ysq = malloc(ny * sizeof *ysq);
        fp16_reference(&w, x, m, yh, ysq);
        if (op == OP_SWIGLU) {
            uh = malloc(ny * sizeof *uh);
            usq = malloc(ny * sizeof *usq);
            fp16_reference(&u, x, m, uh, usq);
        }
    }
    if (op == OP_SWIGLU) {
        uq = malloc(ny * sizeof *uq);
        u64 = malloc(ny * sizeof *u64);
        references(&u, x, m, uq, u64);
        for (size_t i = 0; i < ny; i++) {
            double g = yq[i];
            yq[i] = (float)(g / (1.0 + exp(-g)) * uq[i]);
            y64[i] = y64[i] / (1.0 + exp(-y64[i])) * u64[i];
            if (yh) { /* silu's slope is within [-0.1, 1.1]: its floor, scaled */
                const double sg = yh[i] / (1.0 + exp(-yh[i]));
                ysq[i] = 1.21 * ysq[i] * uh[i] * uh[i] + sg * sg * usq[i];
                yh[i] = sg * uh[i];
            }
        }
    } else if (op == OP_ADD) {
        y0 = random_x(ny);
        for (size_t i = 0; i < ny; i++) {
            yq[i] += y0[i];
            y64[i] += y0[i];
            if (yh)
                yh[i] += y0[i];
        }
    }

    bonsai_cuda_matrix *dw = NULL, *du = NULL;
    bonsai_status s = bonsai_cuda_matrix_upload(cu, &w.m, &dw);
    if (s == BONSAI_OK && op == OP_SWIGLU)
        s = bonsai_cuda_matrix_upload(cu, &u.m, &du);
    bonsai_cuda_buffer *dx = upload_floats(cu, x, m * k), *dy = NULL;
    if (s == BONSAI_OK)
        s = bonsai_cuda_buffer_alloc(cu, ny, &dy);
    if (s == BONSAI_OK && dx) {
        if (op == OP_ADD)
            bonsai_cuda_buffer_write(dy, 0, y0, ny);
        else
            poison(dy, ny);
        const int small = path >= 8 && path <= 10;
        bonsai_cuda_set_gemm_min_tokens(cu, small ? 0
                                            : path == 1 || path == 3 || path == 4 || f16
                                                ? 1
                                                : (size_t)1 << 30);
        cu->gemm_small_mode = small ? 1 : 0;
        cu->gemm_small_ks = path == 9 ? 1 : path == 10 ? 2 : 0;
        const size_t small_calls = cu->gemm_small_calls;
        cu->gemv_r8_min_rows = path == 2 ? 1 : (size_t)1 << 30;
        const int tile_tokens = cu->gemm_tile_tokens;
        cu->gemm_tile_tokens = path == 3 ? 64 : path == 1 ? 128 : 0;
        const int f16_mode = cu->gemm_f16;
        cu->gemm_wgmma = path >= 4 ? 1 : 0;
        cu->gemm_f16 = f16;
        cu->gemm90h_tile = tile;
        cu->gemv_b1_mode = path == 6 || path == 7 ? 1 : path == 2 ? 0 : -1;
        // path 7: uneven shares of at most 13 groups of 16 rows per block
        const int groups = (int)((rows + 127) / 128 * 8);
        cu->gemv_b1_blocks = path == 7 ? (groups / 13 + 1 > 3 ? groups / 13 + 1 : 3) : 0;
        const size_t b1_calls = cu->gemv_b1_calls;
        const int b1_pf16 = cu->gemv_b1_pf16; // the handle's default, restored below
        cu->gemv_b1_pf16 = path == 7 ? 5 : path == 6 ? 16 : b1_pf16;
        cu->gemv_b1_evict_first = path != 7;
        const int b1_trigger = cu->gemv_b1_trigger;
        cu->gemv_b1_trigger = path == 7 ? (k / 128 % 2 ? 3 : 1) : path == 6 ? 2 : b1_trigger;
        const int b1_depth = cu->gemv_b1_depth;
        cu->gemv_b1_depth = path == 7 ? (int)(k / 128 % 4) : path == 6 ? 4 : b1_depth;
        s = op == OP_SWIGLU ? bonsai_cuda_matmul_swiglu(cu, dw, du, dx, m, dy)
            : op == OP_ADD  ? bonsai_cuda_matmul_add(cu, dw, dx, m, dy)
                            : bonsai_cuda_matmul(cu, dw, dx, m, dy);
        if (s == BONSAI_OK)
            s = bonsai_cuda_buffer_read(dy, 0, got, ny);
        if ((path == 6 || path == 7) && cu->info.cc_major >= 9) // elsewhere it may not fit half an SM
            CHECK(cu->gemv_b1_calls == b1_calls + 1, "%s %zux%zu m=%zu: gemv_b1 forced but "
                  "not launched", tn, rows, k, m);
        if (small && m >= 2 && m <= BONSAI_CUDA_SMALL_MAX_TOKENS)
            CHECK(cu->gemm_small_calls == small_calls + 1, "%s %zux%zu m=%zu: gemm_small "
                  "forced but not launched", tn, rows, k, m);
        bonsai_cuda_set_gemm_min_tokens(cu, 0);
        cu->gemm_small_mode = -1;
        cu->gemm_small_ks = 0;
        cu->gemm_tile_tokens = tile_tokens;
        cu->gemm_wgmma = -1;
        cu->gemm_f16 = f16_mode;
        cu->gemm90h_tile = -1;
        cu->gemv_b1_mode = -1;
        cu->gemv_b1_blocks = 0;
        cu->gemv_b1_pf16 = b1_pf16;
        cu->gemv_b1_evict_first = 1;
        cu->gemv_b1_trigger = b1_trigger;
        cu->gemv_b1_depth = b1_depth;
    }
    const char *path_name = path == 1   ? "gemm"
                            : path == 2 ? "gemv-r8"
                            : path == 3 ? "gemm-bn64"
                            : path == 4 ? "gemm90"
                            : path == 5 ? "gemm90h"
                            : path == 6 ? "gemv-b1"
                            : path == 7 ? "gemv-b1-3blocks-pf5"
                            : path == 8 ? "gemm-small"
                            : path == 9 ? "gemm-small-ks1"
                            : path == 10 ? "gemm-small-ks2"
                            : path == 11 ? "gemm90h-128x256"
                            : path == 12 ? "gemm90h-128x256k2"
                                         : "gemv";
    if (CHECK(s == BONSAI_OK, "%s %s %s %zux%zu m=%zu: %s", op_names[op], path_name, tn, rows, k, m,
              bonsai_last_error())) {
        size_t bad = count_nonfinite(got, ny);
        double eq = yh ? nmse_floored(got, yh, ysq, ny) : nmse_f(got, yq, ny);
        const int ti = type == BONSAI_TYPE_Q1_0_G128 ? 0 : 1, ai = f16;
        for (size_t i = 0; i < ny; i++) {
            double d = got[i] - y64[i];
            pool_err[ai][ti][op] += isfinite(d) ? d * d : INFINITY;
            pool_norm[ai][ti][op] += y64[i] * y64[i];
        }
        CHECK(bad == 0, "%s %s %s %zux%zu m=%zu: %zu of %zu outputs not written / not finite",
              op_names[op], path_name, tn, rows, k, m, bad, ny);
        CHECK(eq <= 1e-9, "%s %s %s %zux%zu m=%zu: NMSE vs CPU %s reference %.3g > 1e-9",
              op_names[op], path_name, tn, rows, k, m, yh ? "fp16" : "q8", eq);
    }
    bonsai_cuda_buffer_free(dx);
    bonsai_cuda_buffer_free(dy);
    bonsai_cuda_matrix_free(dw);
    bonsai_cuda_matrix_free(du);
    free_matrix(&w);
    if (op == OP_SWIGLU)
        free_matrix(&u);
    free(x);
    free(yq);
    free(uq);
    free(y0);
    free(got);
    free(y64);
    free(u64);
    free(yh);
    free(uh);
    free(ysq);
    free(usq);
}

static const bonsai_type types[2] = {BONSAI_TYPE_Q1_0_G128, BONSAI_TYPE_TQ2_0_G128};

static void check_pooled(void)
{
    static const char *const acts[2] = {"int8", "fp16"};
    for (int ai = 0; ai < 2; ai++)
        for (int ti = 0; ti < 2; ti++)
            for (int op = 0; op < 3; op++) {
                if (ai == 1 && pool_norm[ai][ti][op] == 0) // no sm_90a kernels: skipped
                    continue;
                double e = pool_norm[ai][ti][op] > 0
                               ? pool_err[ai][ti][op] / pool_norm[ai][ti][op]
                               : INFINITY;
                CHECK(e <= 5e-4, "%s %s: NMSE %.3g over all cases (%s activations) vs float64 "
                      "> 5e-4", bonsai_type_name(types[ti]), op_names[op], e, acts[ai]);
                printf("%s %s: NMSE %.3g vs float64 over all cases (%s activations)\n",
                       bonsai_type_name(types[ti]), op_names[op], e, acts[ai]);
            }
}

static void test_token_counts(bonsai_cuda *cu)
{
    for (int ti = 0; ti < 2; ti++)
        for (int pi = 0; pi < GEMM_PATHS; pi++) {
            const int gemm = gemm_paths[pi];
            for (size_t m = 1; m <= 33; m++)
                run_case(cu, types[ti], 67, 384, m, gemm, OP_MATMUL);
            run_case(cu, types[ti], 67, 384, 1, 2, OP_MATMUL);
            static const size_t big[] = {64, 100, 256, 300, 512, 1000};
            for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
                run_case(cu, types[ti], 197, 256, big[i], gemm, OP_MATMUL);
        }
    for (int ti = 0; ti < 2; ti++)
        for (int path = 6; path < 8; path++) { // one token only
            run_case(cu, types[ti], 67, 384, 1, path, OP_MATMUL);
            run_case(cu, types[ti], 197, 256, 1, path, OP_MATMUL);
        }
    // gemm_small: every token count it takes, by the rule's k-slices (4 on
    // these small matrices) and with 1 and 2 forced; k = 384 (3 blocks: an
    // odd last Q1 pair) and 640
    for (int ti = 0; ti < 2; ti++)
        for (int path = 8; path <= 10; path++) {
            for (size_t m = 1; m <= 33; m++)
                run_case(cu, types[ti], 67, 384, m, path, OP_MATMUL);
            static const size_t big[] = {40, 57, 64, 65, 100, 127, 128};
            for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
                run_case(cu, types[ti], 197, 640, big[i], path, OP_MATMUL);
        }
    // gemm_small with each n8-tile count forced: other token groups than
    // the rule's (127 tokens in 6 groups of 24 would pass the 128 padded
    // tokens: the host raises NT)
    static const int small_nt[] = BONSAI_CUDA_SMALL_NT;
    static const size_t nt_ms[] = {2, 9, 33, 127};
    for (int ti = 0; ti < 2; ti++)
        for (size_t ni = 0; ni < sizeof small_nt / sizeof small_nt[0]; ni++)
            for (size_t i = 0; i < sizeof nt_ms / sizeof nt_ms[0]; i++) {
                cu->gemm_small_nt = small_nt[ni]; // run_case leaves it as it is
                run_case(cu, types[ti], 67, 384, nt_ms[i], 8, OP_MATMUL);
                run_case(cu, types[ti], 131, 640, nt_ms[i], 8, OP_SWIGLU);
                cu->gemm_small_nt = 0;
            }
}

static void test_shapes(bonsai_cuda *cu)
{
    static const struct { size_t rows, k, m; } shapes[] = {
        {1, 128, 1},    {1, 128, 3},     {7, 256, 2},     {8, 128, 9},    {129, 128, 40},
        {130, 4224, 1}, {130, 4224, 3},  {64, 4224, 130}, {300, 1024, 1}, {300, 1024, 8},
        {1024, 2048, 40}, {255, 640, 255}, {200, 2560, 260}, {1024, 2048, 1}, {2000, 128, 1},
        {9000, 384, 1}, {8200, 4224, 1}, {24576, 4096, 1},
        {33, 128, 5}, {2048, 2048, 16}, {1000, 12288, 7}, {4500, 512, 100},
    };
    for (int ti = 0; ti < 2; ti++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int path = 0; path < 13; path++)
                if ((path != 2 && path < 6) || path >= 8 || shapes[i].m == 1) // 2, 6, 7: one token
                    run_case(cu, types[ti], shapes[i].rows, shapes[i].k, shapes[i].m, path,
                             OP_MATMUL);
}

/* TQ2 block scales of 2^15 and more: gemm90h's fp16 A build (2 (c' - 1) d)
 * would overflow there, so such matrices take the q8 GEMM. By the default
 * rule (which on Hopper picks gemm90h for ordinary matrices at these token
 * counts) every output is finite and matches float64; the int8 gemm90 on
 * such matrices passes run_case's checks; activations quantized to fp16
 * for an ordinary matrix are refused for such a one with a clear error. */
static void test_huge_scales(bonsai_cuda *cu)
{
    const size_t rows = 130, k = 512, m = 256, ny = m * rows;
    huge_scale_every = 5;
    host_matrix w = make_matrix(BONSAI_TYPE_TQ2_0_G128, rows, k);
    run_case(cu, BONSAI_TYPE_TQ2_0_G128, rows, k, 300, 4, OP_MATMUL);
    run_case(cu, BONSAI_TYPE_TQ2_0_G128, rows, k, 300, 4, OP_SWIGLU);
    huge_scale_every = 0;
    host_matrix plain = make_matrix(BONSAI_TYPE_TQ2_0_G128, rows, k);
    float *x = random_x(m * k), *yq = malloc(ny * sizeof *yq), *got = malloc(ny * sizeof *got);
    double *y64 = malloc(ny * sizeof *y64);
    references(&w, x, m, yq, y64);
    bonsai_cuda_matrix *dw = NULL, *dp = NULL;
    bonsai_cuda_buffer *dx = upload_floats(cu, x, m * k), *dy = NULL;
    bonsai_status s = bonsai_cuda_matrix_upload(cu, &w.m, &dw);
    if (s == BONSAI_OK)
        s = bonsai_cuda_matrix_upload(cu, &plain.m, &dp);
    if (s == BONSAI_OK)
        s = bonsai_cuda_buffer_alloc(cu, ny, &dy);
    if (CHECK(s == BONSAI_OK && dx, "huge scales: upload: %s", bonsai_last_error())) {
        poison(dy, ny);
        s = bonsai_cuda_matmul(cu, dw, dx, m, dy);
        if (s == BONSAI_OK)
            s = bonsai_cuda_buffer_read(dy, 0, got, ny);
        double err = 0, norm = 0;
        size_t bad = 0;
        for (size_t i = 0; i < ny && s == BONSAI_OK; i++) {
            bad += !isfinite(got[i]);
            err += (got[i] - y64[i]) * (got[i] - y64[i]);
            norm += y64[i] * y64[i];
        }
        CHECK(s == BONSAI_OK && bad == 0 && err <= 5e-4 * norm,
              "huge TQ2 scales, %zu tokens, default rule: %s, %zu outputs not finite, NMSE "
              "%.3g vs float64", m, s == BONSAI_OK ? "ran" : bonsai_last_error(), bad,
              norm > 0 ? err / norm : INFINITY);
        // fp16 activations (where the ordinary matrix gets them) refused for dw
        s = bonsai_cuda_quantize_activations(cu, dp, NULL, dx, m);
        if (s == BONSAI_OK && cu->act_f16) {
            s = bonsai_cuda_matmul_quantized(cu, dw, NULL, m, dy, 0);
            CHECK(s == BONSAI_ERR_INVALID_ARG && strstr(bonsai_last_error(), "2^15"),
                  "fp16 activations on a matrix with huge TQ2 scales: status %d, '%s'", (int)s,
                  bonsai_last_error());
        } else if (CHECK(s == BONSAI_OK, "quantize for the ordinary matrix: %s",
                         bonsai_last_error())) {
            skip("huge TQ2 scales: the refusal of fp16 activations (this device has no fp16 "
                 "GEMM at %zu tokens)", m);
        }
    }
    bonsai_cuda_buffer_free(dx);
    bonsai_cuda_buffer_free(dy);
    bonsai_cuda_matrix_free(dw);
    bonsai_cuda_matrix_free(dp);
    free_matrix(&w);
    free_matrix(&plain);
    free(x);
    free(yq);
    free(got);
    free(y64);
}

static void test_fused(bonsai_cuda *cu)
{
    static const size_t ms[] = {1, 2, 3, 4, 5, 9, 17, 33, 100, 300};
    for (int ti = 0; ti < 2; ti++)
        for (int pi = 0; pi < GEMM_PATHS; pi++)
            for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
                run_case(cu, types[ti], 131, 512, ms[i], gemm_paths[pi], OP_ADD);
                run_case(cu, types[ti], 131, 512, ms[i], gemm_paths[pi], OP_SWIGLU);
            }
    for (int ti = 0; ti < 2; ti++)
        for (int path = 6; path < 8; path++) { // one token
            run_case(cu, types[ti], 131, 512, 1, path, OP_ADD);
            run_case(cu, types[ti], 9000, 640, 1, path, OP_ADD);
        }
    static const size_t small_ms[] = {2, 3, 5, 8, 9, 16, 17, 33, 64, 100, 127};
    for (int ti = 0; ti < 2; ti++)
        for (int path = 8; path <= 10; path++)
            for (size_t i = 0; i < sizeof small_ms / sizeof small_ms[0]; i++) {
                run_case(cu, types[ti], 131, 640, small_ms[i], path, OP_ADD);
                run_case(cu, types[ti], 131, 640, small_ms[i], path, OP_SWIGLU);
            }
    run_case(cu, types[0], 12288, 1024, 16, 8, OP_SWIGLU); // the 8B's FFN rows
    run_case(cu, types[1], 3000, 2560, 9, 8, OP_ADD);
}

/* ---- error paths ---------------------------------------------------------- */

static void test_errors(bonsai_cuda *cu)
{
    host_matrix w = make_matrix(BONSAI_TYPE_Q1_0_G128, 16, 256);
    bonsai_cuda_matrix *dw = NULL, *bad = NULL;
    CHECK(bonsai_cuda_matrix_upload(cu, &w.m, &dw) == BONSAI_OK, "upload");
    bonsai_matrix m = w.m;
    m.type = BONSAI_TYPE_PQ2_0;
    CHECK(bonsai_cuda_matrix_upload(cu, &m, &bad) == BONSAI_ERR_UNSUPPORTED && !bad,
          "pq2_0 -> UNSUPPORTED");
    m = w.m;
    m.k = 200;
    CHECK(bonsai_cuda_matrix_upload(cu, &m, &bad) == BONSAI_ERR_SHAPE &&
              strstr(bonsai_last_error(), "200"),
          "k = 200 -> SHAPE: %s", bonsai_last_error());
    m = w.m;
    m.data_bytes -= 1;
    CHECK(bonsai_cuda_matrix_upload(cu, &m, &bad) == BONSAI_ERR_BUFFER_TOO_SMALL,
          "short data -> BUFFER_TOO_SMALL");
    m = w.m;
    m.rows = 0;
    CHECK(bonsai_cuda_matrix_upload(cu, &m, &bad) == BONSAI_ERR_SHAPE, "0 rows -> SHAPE");
    m = w.m;
    m.data = NULL;
    CHECK(bonsai_cuda_matrix_upload(cu, &m, &bad) == BONSAI_ERR_NULL_ARG, "NULL data");

    bonsai_cuda_buffer *x = NULL, *y = NULL;
    bonsai_cuda_buffer_alloc(cu, 2 * 256, &x);
    bonsai_cuda_buffer_alloc(cu, 2 * 16, &y);
    CHECK(bonsai_cuda_matmul(cu, dw, x, 0, y) == BONSAI_ERR_INVALID_ARG, "m = 0 -> INVALID_ARG");
    CHECK(bonsai_cuda_matmul(cu, dw, x, 3, y) == BONSAI_ERR_BUFFER_TOO_SMALL,
          "x too small -> BUFFER_TOO_SMALL: %s", bonsai_last_error());
    CHECK(bonsai_cuda_matmul(cu, dw, y, 1, x) == BONSAI_ERR_BUFFER_TOO_SMALL,
          "x of 32 floats for k = 256 -> BUFFER_TOO_SMALL");
    host_matrix w2 = make_matrix(BONSAI_TYPE_Q1_0_G128, 16, 128);
    bonsai_cuda_matrix *dw2 = NULL;
    bonsai_cuda_matrix_upload(cu, &w2.m, &dw2);
    CHECK(bonsai_cuda_matmul_swiglu(cu, dw, dw2, x, 1, y) == BONSAI_ERR_SHAPE,
          "gate/up shapes differ -> SHAPE: %s", bonsai_last_error());
    CHECK(bonsai_cuda_matmul_swiglu(cu, dw, NULL, x, 1, y) == BONSAI_ERR_NULL_ARG, "up NULL");
    float host[8];
    CHECK(bonsai_cuda_buffer_read(y, 30, host, 8) == BONSAI_ERR_BUFFER_TOO_SMALL,
          "read past the end -> BUFFER_TOO_SMALL");
    CHECK(bonsai_cuda_buffer_write(y, 33, host, 1) == BONSAI_ERR_BUFFER_TOO_SMALL,
          "write past the end -> BUFFER_TOO_SMALL");
    bonsai_cuda_buffer *none = NULL;
    CHECK(bonsai_cuda_buffer_alloc(cu, 0, &none) == BONSAI_ERR_INVALID_ARG && !none,
          "0-float buffer -> INVALID_ARG");
    CHECK(bonsai_cuda_matmul(cu, dw, x, 1, y) == BONSAI_OK && bonsai_cuda_sync(cu) == BONSAI_OK,
          "valid call after the refused ones");
    bonsai_cuda_buffer_free(x);
    bonsai_cuda_buffer_free(y);
    bonsai_cuda_matrix_free(dw);
    bonsai_cuda_matrix_free(dw2);
    free_matrix(&w);
    free_matrix(&w2);
}

/* ---- pipeline levels ------------------------------------------------------ */

/* Fixed inputs run on every handle; outputs compared bit for bit. */
typedef struct probe {
    host_matrix w[2];
    float *x;
    size_t m[3];
    size_t rows, k;
} probe;

static float *run_probe(bonsai_cuda *cu, const probe *p, size_t *n_out)
{
    size_t total = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 3; i++)
            total += p->m[i] * p->rows;
    float *out = malloc(total * sizeof *out), *o = out;
    for (int t = 0; t < 2; t++) {
        bonsai_cuda_matrix *dw = NULL;
        bonsai_cuda_matrix_upload(cu, &p->w[t].m, &dw);
        bonsai_cuda_buffer *dx = upload_floats(cu, p->x, p->m[2] * p->k), *dy = NULL;
        bonsai_cuda_buffer_alloc(cu, p->m[2] * p->rows, &dy);
        for (int i = 0; i < 3; i++) {
            poison(dy, p->m[i] * p->rows);
            if (bonsai_cuda_matmul(cu, dw, dx, p->m[i], dy) != BONSAI_OK ||
                bonsai_cuda_buffer_read(dy, 0, o, p->m[i] * p->rows) != BONSAI_OK)
                memset(o, 0xff, p->m[i] * p->rows * sizeof *o);
            o += p->m[i] * p->rows;
        }
        bonsai_cuda_buffer_free(dx);
        bonsai_cuda_buffer_free(dy);
        bonsai_cuda_matrix_free(dw);
    }
    *n_out = total;
    return out;
}

static bonsai_status open_with(bonsai_cuda_pipeline p, const char *dir, bonsai_cuda **cu,
                               bonsai_cuda_info *info)
{
    bonsai_cuda_params params = bonsai_cuda_default_params();
    params.pipeline = p;
    params.cache_dir = dir;
    bonsai_status s = bonsai_cuda_open(&params, cu);
    if (s == BONSAI_OK)
        bonsai_cuda_get_info(*cu, info);
    else
        memset(info, 0, sizeof *info);
    return s;
}

static void damage(const char *path, int how)
{
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n);
    n = fread(buf, 1, n, f);
    fclose(f);
    if (how == 0)
        buf[40 + (n - 40) / 2] ^= 0x40; // corrupt payload
    else if (how == 1)
        n = n / 2; // truncated
    else
        buf[16] ^= 1; // another key (foreign)
    f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    free(buf);
}

static void test_pipeline(const bonsai_cuda_info *default_info)
{
    char dir[] = "/tmp/bonsai-cuda-test-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    probe p = {.m = {1, 5, 100}, .rows = 200, .k = 512};
    p.w[0] = make_matrix(BONSAI_TYPE_Q1_0_G128, p.rows, p.k);
    p.w[1] = make_matrix(BONSAI_TYPE_TQ2_0_G128, p.rows, p.k);
    p.x = random_x(p.m[2] * p.k);

    const int sm = default_info->cc_major * 10 + default_info->cc_minor;
    bonsai_cuda *cu = NULL;
    bonsai_cuda_info info;
    size_t n_ref = 0, n = 0;
    float *ref = NULL, *got;

    bonsai_status s = open_with(BONSAI_CUDA_PIPELINE_EMBEDDED, NULL, &cu, &info);
    CHECK(s == BONSAI_OK, "embedded: %s", bonsai_last_error());
    if (s == BONSAI_OK) {
        CHECK(info.source == BONSAI_CUDA_FROM_EMBEDDED_CUBIN || sm < 80 || sm % 10 != 0 ||
                  (sm != 80 && sm != 90),
              "sm_%d: embedded cubin (got %s)", sm, bonsai_cuda_source_name(info.source));
        ref = run_probe(cu, &p, &n_ref);
        CHECK(count_nonfinite(ref, n_ref) == 0, "embedded results written");
        bonsai_cuda_close(cu);
    }

    s = open_with(BONSAI_CUDA_PIPELINE_CACHE, dir, &cu, &info);
    CHECK(s == BONSAI_ERR_NOT_FOUND, "cache, empty dir -> NOT_FOUND: %s", bonsai_status_name(s));

    struct { bonsai_cuda_pipeline p; bonsai_cuda_source want; const char *name; } levels[] = {
        {BONSAI_CUDA_PIPELINE_NVRTC, BONSAI_CUDA_FROM_NVRTC, "nvrtc"},
        {BONSAI_CUDA_PIPELINE_CACHE, BONSAI_CUDA_FROM_CACHE, "cache"},
        {BONSAI_CUDA_PIPELINE_JIT, BONSAI_CUDA_FROM_CACHE, "jit (cache present)"},
    };
    char cache_file[1024] = "";
    for (size_t i = 0; i < 3; i++) {
        s = open_with(levels[i].p, dir, &cu, &info);
        if (!CHECK(s == BONSAI_OK, "%s: %s", levels[i].name, bonsai_last_error()))
            continue;
        CHECK(info.source == levels[i].want, "%s: loaded from %s", levels[i].name,
              bonsai_cuda_source_name(info.source));
        CHECK(info.load_ms > 0 && info.nvrtc_major > 0, "%s: load %.1f ms, NVRTC %d.%d",
              levels[i].name, info.load_ms, info.nvrtc_major, info.nvrtc_minor);
        snprintf(cache_file, sizeof cache_file, "%s", info.cache_path);
        got = run_probe(cu, &p, &n);
        CHECK(ref && n == n_ref && memcmp(got, ref, n * sizeof *got) == 0,
              "%s: results bit-identical to the embedded cubin", levels[i].name);
        free(got);
        bonsai_cuda_close(cu);
    }
    struct stat st;
    CHECK(cache_file[0] && stat(cache_file, &st) == 0 && st.st_size > 40, "cache file %s exists",
          cache_file);

    static const char *const damages[] = {"corrupt", "truncated", "foreign"};
    for (int how = 0; how < 3; how++) {
        damage(cache_file, how);
        s = open_with(BONSAI_CUDA_PIPELINE_CACHE, dir, &cu, &info);
        CHECK(s == BONSAI_ERR_FORMAT, "%s file, cache only -> FORMAT: %s", damages[how],
              bonsai_status_name(s));
        s = open_with(BONSAI_CUDA_PIPELINE_JIT, dir, &cu, &info);
        if (!CHECK(s == BONSAI_OK, "%s file, jit: %s", damages[how], bonsai_last_error()))
            continue;
        CHECK(info.source == BONSAI_CUDA_FROM_NVRTC && info.cache_note[0],
              "%s file detected and rebuilt (%s; note: %s)", damages[how],
              bonsai_cuda_source_name(info.source), info.cache_note);
        got = run_probe(cu, &p, &n);
        CHECK(ref && n == n_ref && memcmp(got, ref, n * sizeof *got) == 0,
              "%s file: rebuilt kernels bit-identical", damages[how]);
        free(got);
        bonsai_cuda_close(cu);
        s = open_with(BONSAI_CUDA_PIPELINE_CACHE, dir, &cu, &info);
        CHECK(s == BONSAI_OK && info.source == BONSAI_CUDA_FROM_CACHE,
              "%s file: the rebuilt cache loads", damages[how]);
        if (s == BONSAI_OK)
            bonsai_cuda_close(cu);
    }

    // unwritable cache directory (below a regular file): works, with a note
    char blocked[1100];
    snprintf(blocked, sizeof blocked, "%s/file", dir);
    FILE *f = fopen(blocked, "w");
    if (f)
        fclose(f);
    strcat(blocked, "/cache");
    s = open_with(BONSAI_CUDA_PIPELINE_JIT, blocked, &cu, &info);
    if (CHECK(s == BONSAI_OK, "unwritable cache dir: %s", bonsai_last_error())) {
        CHECK(info.source == BONSAI_CUDA_FROM_NVRTC && info.cache_note[0],
              "unwritable cache dir: nvrtc, note: %s", info.cache_note);
        got = run_probe(cu, &p, &n);
        CHECK(ref && n == n_ref && memcmp(got, ref, n * sizeof *got) == 0,
              "unwritable cache dir: results bit-identical");
        free(got);
        bonsai_cuda_close(cu);
    }

    // environment
    setenv("BONSAI_CUDA_PIPELINE", "bogus", 1);
    s = open_with(BONSAI_CUDA_PIPELINE_AUTO, dir, &cu, &info);
    CHECK(s == BONSAI_ERR_INVALID_ARG && strstr(bonsai_last_error(), "bogus"),
          "BONSAI_CUDA_PIPELINE=bogus -> INVALID_ARG: %s", bonsai_last_error());
    setenv("BONSAI_CUDA_PIPELINE", "cache", 1);
    setenv("BONSAI_CACHE_DIR", dir, 1);
    s = open_with(BONSAI_CUDA_PIPELINE_AUTO, NULL, &cu, &info);
    CHECK(s == BONSAI_OK && info.source == BONSAI_CUDA_FROM_CACHE,
          "BONSAI_CUDA_PIPELINE=cache with BONSAI_CACHE_DIR: %s", bonsai_last_error());
    if (s == BONSAI_OK)
        bonsai_cuda_close(cu);
    unsetenv("BONSAI_CUDA_PIPELINE");
    unsetenv("BONSAI_CACHE_DIR");

    free(ref);
    free(p.x);
    free_matrix(&p.w[0]);
    free_matrix(&p.w[1]);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", dir);
}

int main(void)
{
    harness_init();
    test_api_without_device();
    test_nvrtc_compiles();

    bonsai_cuda *cu = NULL;
    bonsai_status s = bonsai_cuda_open(NULL, &cu);
    if (s == BONSAI_ERR_NO_CUDA_DEVICE) {
        CHECK(strstr(bonsai_last_error(), "CUDA") != NULL, "no-device message: %s",
              bonsai_last_error());
        for (size_t i = 0; i < sizeof gpu_groups / sizeof *gpu_groups; i++)
            skip("GPU cases, %s: %s", gpu_groups[i], bonsai_last_error());
        return harness_finish();
    }
    if (!CHECK(s == BONSAI_OK, "bonsai_cuda_open: %s", bonsai_last_error()))
        return harness_finish();
    bonsai_cuda_info info;
    bonsai_cuda_get_info(cu, &info);
    printf("device: %s (sm_%d%d, %d SMs, L2 %zu MiB), kernels from %s in %.1f ms\n", info.name,
           info.cc_major, info.cc_minor, info.sm_count, info.l2_bytes >> 20,
           bonsai_cuda_source_name(info.source), info.load_ms);
    CHECK(info.cc_major >= 8 && info.sm_count > 0 && info.total_mem > 0, "device info");

    const char *quick = getenv("BONSAI_TEST_QUICK"); // e.g. under compute-sanitizer
    test_errors(cu);
    test_token_counts(cu);
    test_shapes(cu);
    test_huge_scales(cu);
    test_fused(cu);
    check_pooled();
    bonsai_cuda_close(cu);
    if (quick && *quick)
        skip("pipeline levels: BONSAI_TEST_QUICK is set");
    else
        test_pipeline(&info);
    return harness_finish();
}

/* The CUDA matmul entry points: argument checks, the quantization of the
 * activations (kernels/quantize.cu; quantize_f16.cu for gemm90h) and the
 * choice of kernel by token count and shape: one token on the binary tensor
 * cores (kernels/gemv_b1.cu) or the GEMV token groups (gemv.cu), small
 * batches on gemm_small.cu, and the tensor-core GEMMs (gemm.cu, gemm90.cu,
 * gemm90h.cu and its tiles).
 * Every launch is checked; kernel faults surface at the next sync with
 * CUDA's error text. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "cuda/backend.h"
#include "cuda/loader.h"

/* Frees the n device buffers *bufs[i] (after the stream is idle: they may
 * still be read) and allocates them again with bytes[i] each; on failure
 * every one not allocated is 0. what names them in the error. */
static bonsai_status replace_buffers(bonsai_cuda *cu, CUdeviceptr *const bufs[],
                                     const size_t bytes[], int n, const char *what)
{
    const bonsai_cuda_api *api = cu->api;
    api->cuStreamSynchronize(cu->stream);
    for (int i = 0; i < n; i++) {
        if (*bufs[i])
            api->cuMemFree(*bufs[i]);
        *bufs[i] = 0;
    }
    for (int i = 0; i < n; i++) {
        CUresult r = api->cuMemAlloc(bufs[i], bytes[i]);
        if (r != CUDA_SUCCESS)
            return bonsai_cuda_fail(api, r, what);
    }
    return BONSAI_OK;
}

/* The q8 activations (layout.cuh) of m_pad tokens of k values. */
static bonsai_status ensure_activations(bonsai_cuda *cu, size_t m_pad, size_t k)
{
    size_t need;
    if (!bonsai_mul_size(m_pad, k, &need))
        return bonsai_fail(BONSAI_ERR_OVERFLOW, "CUDA matmul: %zu tokens x k = %zu overflows",
                           m_pad, k);
    if (need <= cu->act_bytes)
        return BONSAI_OK;
    cu->act_bytes = 0;
    CUdeviceptr *const bufs[] = {&cu->act_qs, &cu->act_d, &cu->act_s};
    const size_t bytes[] = {need, need / BONSAI_QK * sizeof(float), need / BONSAI_QK * sizeof(int)};
    bonsai_status s = replace_buffers(cu, bufs, bytes, 3, "cuMemAlloc (quantized activations)");
    if (s == BONSAI_OK)
        cu->act_bytes = need;
    return s;
}

/* The bit planes of one token's q8 blocks (k/128 x 128 bytes) for
 * kernels/gemv_b1.cu. */
static bonsai_status ensure_planes(bonsai_cuda *cu, size_t k)
{
    if (k <= cu->act_planes_bytes)
        return BONSAI_OK;
    cu->act_planes_bytes = 0;
    CUdeviceptr *const bufs[] = {&cu->act_planes};
    bonsai_status s = replace_buffers(cu, bufs, &k, 1, "cuMemAlloc (activation bit planes)");
    if (s == BONSAI_OK)
        cu->act_planes_bytes = k;
    return s;
}

/* The fp16 activations for gemm90h (kernels/layout_f16.cuh). */
static bonsai_status ensure_activations_f16(bonsai_cuda *cu, size_t m_pad, size_t k)
{
    size_t need;
    if (!bonsai_mul_size(m_pad, k * 2, &need))
        return bonsai_fail(BONSAI_ERR_OVERFLOW, "CUDA matmul: %zu tokens x k = %zu overflows",
                           m_pad, k);
    if (need <= cu->act_h_bytes && m_pad <= cu->act_h_tokens)
        return BONSAI_OK;
    cu->act_h_bytes = cu->act_h_tokens = 0;
    CUdeviceptr *const bufs[] = {&cu->act_h, &cu->act_hinv};
    const size_t bytes[] = {need, m_pad * sizeof(float)};
    bonsai_status s = replace_buffers(cu, bufs, bytes, 2, "cuMemAlloc (fp16 activations)");
    if (s == BONSAI_OK) {
        cu->act_h_bytes = need;
        cu->act_h_tokens = m_pad;
    }
    return s;
}

/* pdl: allow the kernel to start while the previous one in the stream drains
 * (programmatic dependent launch); the GEMV kernels wait for it with
 * griddepcontrol.wait before touching anything it may write. */
static bonsai_status launch_grid(bonsai_cuda *cu, CUfunction f, unsigned gx, unsigned gy,
                                 unsigned gz, unsigned threads, unsigned smem, void **args,
                                 const char *name, int pdl)
{
    CUresult r;
    if (pdl && cu->api->cuLaunchKernelEx && cu->info.cc_major >= 9) {
        CUlaunchAttribute attr;
        memset(&attr, 0, sizeof attr);
        attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmatic_stream_serialization_allowed = 1;
        CUlaunchConfig cfg = {gx, gy, gz, threads, 1, 1, smem, cu->stream, &attr, 1};
        r = cu->api->cuLaunchKernelEx(&cfg, f, args, NULL);
    } else {
        r = cu->api->cuLaunchKernel(f, gx, gy, gz, threads, 1, 1, smem, cu->stream, args, NULL);
    }
    if (r != CUDA_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "cuLaunchKernel(%s, grid %u x %u x %u)", name, gx, gy, gz);
        return bonsai_cuda_fail(cu->api, r, what);
    }
    return BONSAI_OK;
}

static bonsai_status launch(bonsai_cuda *cu, CUfunction f, unsigned gx, unsigned gy,
                            unsigned threads, unsigned smem, void **args, const char *name,
                            int pdl)
{
    return launch_grid(cu, f, gx, gy, 1, threads, smem, args, name, pdl);
}

static bonsai_status check_args(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                const bonsai_cuda_matrix *u, const bonsai_cuda_buffer *x,
                                size_t m, const bonsai_cuda_buffer *y, const char *fn)
{
    if (!cu || !w || !x || !y)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "%s: NULL argument", fn);
    if (w->cu != cu || x->cu != cu || y->cu != cu || (u && u->cu != cu))
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "%s: %s and its buffers belong to another "
                           "CUDA handle", fn, w->name);
    if (u && (u->type != w->type || u->rows != w->rows || u->k != w->k))
        return bonsai_fail(BONSAI_ERR_SHAPE,
                           "%s: gate %s is %zu x %zu %s, up %s is %zu x %zu %s", fn, w->name,
                           w->rows, w->k, bonsai_type_name(w->type), u->name, u->rows, u->k,
                           bonsai_type_name(u->type));
    if (m == 0 || m > (1u << 24))
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "%s: m = %zu tokens (1 .. 2^24)", fn, m);
    size_t need_x, need_y;
    if (!bonsai_mul_size(m, w->k, &need_x) || !bonsai_mul_size(m, w->rows, &need_y))
        return bonsai_fail(BONSAI_ERR_OVERFLOW, "%s: m = %zu overflows", fn, m);
    if (x->n < need_x)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "%s %s: x holds %zu floats, m x k = %zu x %zu = %zu needed", fn,
                           w->name, x->n, m, w->k, need_x);
    if (y->n < need_y)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "%s %s: output holds %zu floats, m x rows = %zu x %zu = %zu needed", fn,
                           w->name, y->n, m, w->rows, need_y);
    return BONSAI_OK;
}

/* Small batches on kernels/gemm_small.cu (2 .. 127 tokens, block order):
 * forced by BONSAI_CUDA_GEMM_SMALL=1|0; by rule wherever no other GEMV /
 * GEMM choice is forced (gemm_min_tokens, BONSAI_CUDA_GEMM_WGMMA=1,
 * BONSAI_CUDA_GEMM_BN) and it measured faster than gemv.cu / gemm.cu on the
 * H100 (bench/NOTES.md, small1; hot, us, gemm_small / before, Q1): 4096x4096
 * n = 2 5.1 / 3.4, 4..8 5.1 / 5.9-15.6, 16 7.5 / 23.6, 32 9.0 / 30.4, 64
 * 14.7 / 30.4, 127 15.8 / 30.5; 24576x4096 n = 2 13.4 / 12.2, 4..8 13.4 /
 * 26.9-52.3, 16 18.2 / 48.4, 32 31.4 / 48.8, 64 52.4 / 49.2, 127 98.7 /
 * 74.9 (TQ2 alike). Three tokens (small2, same call): 24576x4096 Q1 13.4 /
 * 21.4, TQ2 14.2 / 24.8; TQ2 4096x4096 5.2 / 6.9, 4096x12288 12.8 / 15.2;
 * not Q1 4096x4096 (5.2 / 5.0) nor TQ2 1024x4096 (4.4 / 3.7). */
#define SMALL_MIN_TOKENS 4
#define SMALL_MIN_TOKENS_3 3        /* from SMALL_LARGE_ROWS rows; TQ2 from SMALL_MID_ROWS */
#define SMALL_MID_ROWS 4096
#define SMALL_LARGE_ROWS 8192       /* from here, only up to SMALL_LARGE_MAX_TOKENS */
#define SMALL_LARGE_MAX_TOKENS 48
static int use_small(const bonsai_cuda *cu, const bonsai_cuda_matrix *w, size_t m)
{
    if (cu->gemm_small_mode == 0 || !cu->gemm_small[w->fmt][0] || m < 2 ||
        m > BONSAI_CUDA_SMALL_MAX_TOKENS)
        return 0;
    if (cu->gemm_small_mode == 1)
        return 1;
    if (cu->gemm_min_tokens || cu->gemm_wgmma == 1 || cu->gemm_tile_tokens)
        return 0;
    const size_t min = w->rows >= SMALL_LARGE_ROWS ||
                               (w->type == BONSAI_TYPE_TQ2_0_G128 && w->rows >= SMALL_MID_ROWS)
                           ? SMALL_MIN_TOKENS_3
                           : SMALL_MIN_TOKENS;
    return m >= min && (w->rows < SMALL_LARGE_ROWS || m <= SMALL_LARGE_MAX_TOKENS);
}

/* GEMM or GEMV token groups: measured crossover (bench/NOTES.md CUDA): the
 * GEMM's fixed cost per 128-token tile beats the GEMV's per-token work from
 * 16 tokens on large matrices and from 32 on small ones. gemm_small.cu reads
 * the GEMM's order. */
static int use_gemm(const bonsai_cuda *cu, const bonsai_cuda_matrix *w, size_t m)
{
    if (use_small(cu, w, m))
        return 1;
    if (cu->gemm_min_tokens)
        return m >= cu->gemm_min_tokens;
    return m >= 32 || (m >= 16 && w->rows > 8192);
}

/* The sm_90a wgmma GEMM (gemm90.cu) or gemm.cu's mma.sync tiles: wgmma
 * wherever it is loaded (Hopper) and the tile size is not forced, from
 * GEMM90_MIN_TOKENS tokens. Measured on the H100 (bench/NOTES.md, CUDA GEMM
 * on Hopper wgmma), hot, us, wgmma vs mma.sync: n = 64 (64-token tiles win)
 * Q1 4096x4096 31.8 vs 30.5, 24576x4096 61.0 vs 49.6; n = 512 32.7 vs 46.6,
 * 186 vs 277; from 128 tokens the 64-token tiles need a second wave on
 * large matrices (24576 rows: wgmma 63 us). Those wgmma numbers are the
 * earlier v3 kernel; today's (NOTES, cuda-gemm2): n = 128 29.4 / 60.3 us,
 * n = 512 29.7 / 172-175 us. */
#define GEMM90_MIN_TOKENS 128
static int use_wgmma(const bonsai_cuda *cu, const bonsai_cuda_matrix *w, size_t m)
{
    if (!cu->gemm90[w->fmt] || cu->gemm_wgmma == 0)
        return 0;
    return cu->gemm_wgmma == 1 || (cu->gemm_tile_tokens == 0 && m >= GEMM90_MIN_TOKENS);
}

/* The fp16 wgmma GEMM (gemm90h.cu) instead of the int8 one (gemm90.cu):
 * its activations are fp16 with a power-of-two token scale instead of q8
 * (NMSE vs float64 ~4e-8 instead of ~1.4e-4). Measured on the H100
 * (bench/NOTES.md, "gemm90h with 256-token tiles"), TFLOP/s-eq with its
 * tiles (g90h_tile) / gemm90, same call: 512 tokens Q1 4096x4096 626-629 /
 * 604-607 (main's gemm90h), 24576x4096 703-709 / 593-596, TQ2 630-636 /
 * 572-579, 738-740 / 562-572; 1024 tokens Q1 717 / 583, 669 / 599, TQ2 745 /
 * 530, 657 / 541; 2048 tokens Q1 698 / 587, 656 / 611, TQ2 728 / 535, 677 /
 * 550. So gemm90h at every token count; BONSAI_CUDA_GEMM_F16=1|0 forces
 * either. */
static int use_f16(const bonsai_cuda *cu, const bonsai_cuda_matrix *w, size_t m)
{
    return cu->gemm_f16 != 0 && cu->gemm90h[BONSAI_G90H_128X128][w->fmt] && use_wgmma(cu, w, m);
}

/* Whether gemm90h builds w's weights exactly: its TQ2 build is 2 (c' - 1) d
 * in fp16, which overflows where |d| >= 2^15 (backend.h huge_scale). */
static int f16_exact(const bonsai_cuda_matrix *w)
{
    return !w || w->fmt != 1 || !w->huge_scale;
}

/* The one-token GEMV on the binary tensor cores (kernels/gemv_b1.cu): its
 * grid (one block per SM at most, each a contiguous share of the 16-row
 * groups) and shared memory (the warps' rings, B fragments, d and s,
 * partial sums per part; the kernel's layout). 0 where it exceeds half an
 * SM's shared memory (so that two launches' blocks fit an SM). */
typedef struct b1_plan {
    unsigned grid, smem;
} b1_plan;

static int b1_plan_for(const bonsai_cuda *cu, const bonsai_cuda_matrix *w, b1_plan *p)
{
    if (!cu->gemv_b1[w->fmt])
        return 0;
    const int f = w->fmt;
    const size_t groups = w->rows_pad / 16, nb = w->k / BONSAI_QK, np = (nb + 1) / 2;
    const size_t ch = BONSAI_CUDA_B1_CH(f), parts = (np + ch - 1) / ch;
    size_t grid = cu->gemv_b1_blocks > 0 ? (size_t)cu->gemv_b1_blocks : (size_t)cu->info.sm_count;
    if (grid > groups)
        grid = groups;
    const size_t max_groups = (groups + grid - 1) / grid;
    const size_t stage = 16 * BONSAI_CUDA_B1_PITCH(f) + 64 * ch;
    const size_t smem = BONSAI_CUDA_GEMV_B1_THREADS / 32 * BONSAI_CUDA_B1_STAGES(f) * stage +
                        parts * ch * (f == 0 ? 384 : 544) + parts * max_groups * 64;
    const size_t block_bytes = max_groups * 16 * nb * (f == 0 ? 16 : 32);
    if (smem > cu->gemv_b1_smem_max || block_bytes >= ((size_t)1 << 30))
        return 0;
    p->grid = (unsigned)grid;
    p->smem = (unsigned)smem;
    return 1;
}

/* One token, no SwiGLU: gemv_b1 on Hopper (PDL) from 8192 rows, where its
 * plan fits (measured on the H100, bench/NOTES.md gemv4, cold: 8192 to
 * 151936 rows faster than gemv.cu; hot 24576 rows slower), or as forced. */
#define B1_MIN_ROWS 8192
static int use_b1(const bonsai_cuda *cu, const bonsai_cuda_matrix *w, size_t m, b1_plan *p)
{
    if (m != 1 || cu->gemv_b1_mode == 0 || !b1_plan_for(cu, w, p))
        return 0;
    return cu->gemv_b1_mode == 1 || (cu->info.cc_major >= 9 && w->rows >= B1_MIN_ROWS);
}

/* gemm90h's tile (kernels/gemm90h.cu) for m tokens of w (SwiGLU: with u):
 * as forced (BONSAI_CUDA_GEMM90H_TILE), else the one with the least time
 * by a wave model: blocks / SMs rounded up (one block per SM) times a
 * block's time relative to a 128 x 128 block's, per format. Measured on
 * the H100 (bench/NOTES.md, "gemm90h with 256-token tiles"): a 128 x 256
 * block takes 1.7 (Q1) / 1.6 (TQ2) times as long as a 128 x 128 one (the
 * cheaper A build and issue per MAC), a k-half of it (k2, a cluster of 2
 * adding their sums) 1.02 / 0.97. So 128 x 256 on large grids (512 tokens
 * x 24576 rows: 3 waves against 6), k2 or 128 x 128 where one wave holds
 * the whole grid (4096 rows x 512 tokens); 256-token tiles only where one
 * is full. */
static const unsigned g90h_block_cost[BONSAI_G90H_TILES][BONSAI_CUDA_FMTS] = {
    {100, 100}, {170, 160}, {102, 97}};

static int g90h_tile(const bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                     const bonsai_cuda_matrix *u, size_t m)
{
    if (cu->gemm90h_tile >= 0)
        return cu->gemm90h_tile;
    const size_t gx = w->rows_pad / (u ? 64 : 128), sms = (size_t)cu->info.sm_count;
    int best = BONSAI_G90H_128X128;
    size_t best_cost = (size_t)-1;
    for (int t = 0; t < BONSAI_G90H_TILES; t++) {
        const bonsai_cuda_g90h_tile *tile = &bonsai_cuda_g90h_tiles[t];
        // 256-token tiles from 256 tokens (k2 at 4096 x 128: 138 TFLOP/s-eq
        // against 128 x 128's 149-159, the second half of its tile empty)
        if (w->k < (size_t)BONSAI_QK * tile->ksplit || (tile->tokens > 128 && m < tile->tokens))
            continue;
        const size_t blocks = gx * ((m + tile->tokens - 1) / tile->tokens) * tile->ksplit;
        const size_t cost = (blocks + sms - 1) / sms * g90h_block_cost[t][w->fmt];
        if (cost < best_cost) {
            best = t;
            best_cost = cost;
        }
    }
    return best;
}

/* fp16 activations for gemm90h (kernels/quantize_f16.cu). */
static bonsai_status quantize_f16(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                  const bonsai_cuda_buffer *x, size_t m, size_t m_pad)
{
    bonsai_status s = ensure_activations_f16(cu, m_pad, w->k);
    if (s != BONSAI_OK)
        return s;
    int im = (int)m, im_pad = (int)m_pad, ik = (int)w->k, fmt = w->fmt;
    CUdeviceptr xp = x->ptr;
    void *args[] = {&xp, &im, &im_pad, &ik, &fmt, &cu->act_h, &cu->act_hinv};
    return launch(cu, cu->quantize_f16, (unsigned)m_pad, 1, 256, 0, args, "bonsai_quantize_f16",
                  0);
}

bonsai_status bonsai_cuda_quantize_activations(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                               const bonsai_cuda_matrix *u,
                                               const bonsai_cuda_buffer *x, size_t m)
{
    const size_t gt = BONSAI_CUDA_GEMM_TOKENS;
    const size_t m_pad = (m + gt - 1) / gt * gt;
    if (use_gemm(cu, w, m) && !use_small(cu, w, m) && use_f16(cu, w, m) && f16_exact(w) &&
        f16_exact(u)) {
        bonsai_status s = quantize_f16(cu, w, x, m, m_pad);
        if (s == BONSAI_OK) {
            cu->act_m = m;
            cu->act_k = w->k;
            cu->act_fmt = w->fmt;
            cu->act_gemv = 0;
            cu->act_f16 = 1;
            cu->act_planes_ok = 0;
        }
        return s;
    }
    bonsai_status s = ensure_activations(cu, m_pad, w->k);
    if (s != BONSAI_OK)
        return s;
    int im = (int)m, im_pad = (int)m_pad, ik = (int)w->k, fmt = w->fmt;
    int gemv_order = !use_gemm(cu, w, m); // the path that will read them
    // one token: the bit planes too, for gemv_b1 on this or another matrix
    const int planes = m == 1 && gemv_order && cu->gemv_b1_mode != 0 && cu->gemv_b1[w->fmt];
    if (planes)
        s = ensure_planes(cu, w->k);
    if (s != BONSAI_OK)
        return s;
    CUdeviceptr xp = x->ptr, pp = planes ? cu->act_planes : 0;
    void *args[] = {&xp,         &im,         &im_pad,    &ik,       &fmt,
                    &gemv_order, &cu->act_qs, &cu->act_d, &cu->act_s, &pp};
    const size_t units = (w->k / BONSAI_QK) * m_pad;
    s = launch(cu, cu->quantize, (unsigned)((units + 7) / 8), 1, 256, 0, args,
               "bonsai_quantize_q8", 0);
    if (s == BONSAI_OK) {
        cu->act_m = m;
        cu->act_k = w->k;
        cu->act_fmt = w->fmt;
        cu->act_gemv = gemv_order;
        cu->act_f16 = 0;
        cu->act_planes_ok = planes;
    }
    return s;
}

/* kernels/gemm_small.cu for m tokens (2 .. 127) on activations quantized in
 * block order. k-slices per block: the fewest (1, 2, 4) that give at least
 * two blocks per SM with the fewest token groups (of at most 64 tokens), so
 * that small matrices fill the GPU. Token groups: more while the grid stays
 * within two blocks per SM and each block keeps about three n8 tiles or
 * more (small2 measured, same call, us, Q1: 4096x4096 n = 48 10.3 / 13.2 in
 * one group, 64 10.0 / 14.7; bench/NOTES.md); n8 tiles per block NT: the fewest of
 * its instances covering the groups' share (BONSAI_CUDA_GEMM_SMALL_NT forces
 * it), raised where the groups' tokens would pass the padded activations. */
/* the argument list of the int8 GEMM kernels (gemm.cu, gemm90.cu);
 * gemm_small takes it and then its k-slice count */
enum { GEMM_ARGS = 13 };

static bonsai_status launch_small(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                  const bonsai_cuda_matrix *u, size_t m, int m_pad,
                                  void *const args[GEMM_ARGS])
{
    static const int nts[BONSAI_CUDA_SMALL_NTS] = BONSAI_CUDA_SMALL_NT;
    const size_t tiles = (m + 7) / 8, fewest = (tiles + 7) / 8;
    const size_t warp_rows = u ? 16 : 32, sms = (size_t)cu->info.sm_count;
    int ks = cu->gemm_small_ks;
    if (!ks) {
        ks = 1;
        while (ks < 4 && w->rows_pad / (warp_rows * 4 / (size_t)ks) * fewest < 2 * sms)
            ks *= 2;
    }
    const size_t blocks = w->rows_pad / (warp_rows * 4 / (size_t)ks);
    size_t want = 2 * sms / blocks; // token groups within two blocks per SM
    if (want > (tiles - 1) / 2)         // of 3 n8 tiles or more (4096 rows, 32
        want = (tiles - 1) / 2;         // tokens: 2 x NT 2 9.9 us, 1 x NT 4 9.0)
    if (want < fewest)
        want = fewest;
    const size_t per = (tiles + want - 1) / want;
    int i = 0;
    while (i < BONSAI_CUDA_SMALL_NTS - 1 && (size_t)nts[i] < per)
        i++;
    for (int j = 0; j < BONSAI_CUDA_SMALL_NTS; j++) // forced
        if (nts[j] == cu->gemm_small_nt)
            i = j;
    // the kernel reads the tokens of whole groups: they must lie within the
    // padded activations (NT 8 always does: 2 x 64 <= 128)
    size_t groups = (tiles + (size_t)nts[i] - 1) / (size_t)nts[i];
    while (i < BONSAI_CUDA_SMALL_NTS - 1 && groups * 8 * (size_t)nts[i] > (size_t)m_pad) {
        i++;
        groups = (tiles + (size_t)nts[i] - 1) / (size_t)nts[i];
    }
    void *sargs[GEMM_ARGS + 1];
    memcpy(sargs, args, GEMM_ARGS * sizeof *sargs);
    sargs[GEMM_ARGS] = &ks;
    CUfunction f = u ? cu->gemm_small_swiglu[w->fmt][i] : cu->gemm_small[w->fmt][i];
    // PDL on grids of at most two blocks per SM (all resident at once)
    const int pdl = blocks * groups <= 2 * sms;
    bonsai_status s = launch(cu, f, (unsigned)blocks, (unsigned)groups, 128, 0, sargs,
                             u ? "bonsai_gemm_small_swiglu" : "bonsai_gemm_small", pdl);
    cu->gemm_small_calls += s == BONSAI_OK;
    return s;
}

bonsai_status bonsai_cuda_matmul_quantized(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                           const bonsai_cuda_matrix *u, size_t m,
                                           bonsai_cuda_buffer *y, int add)
{
    if (cu->act_m < m || cu->act_k != w->k || cu->act_fmt != w->fmt)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "CUDA matmul of %s: the quantized activations hold m = %zu, k = %zu "
                           "(format %d); the call needs m = %zu, k = %zu (format %d)",
                           w->name, cu->act_m, cu->act_k, cu->act_fmt, m, w->k, w->fmt);
    const size_t gt = BONSAI_CUDA_GEMM_TOKENS;
    int im = (int)m, im_pad = (int)((cu->act_m + gt - 1) / gt * gt), ik = (int)w->k;
    int rows = (int)w->rows, iadd = add, fmt = w->fmt;
    CUdeviceptr yp = y->ptr;
    CUdeviceptr ubits = u ? u->bits : w->bits, uscales = u ? u->scales : w->scales;
    void *args[] = {(void *)&w->bits, (void *)&w->scales, &ubits, &uscales, &rows, &ik,
                    &cu->act_qs, &cu->act_d, &cu->act_s, &im, &im_pad, &yp, &iadd};
    _Static_assert(sizeof args / sizeof *args == GEMM_ARGS, "the int8 GEMM's argument count");
    if (cu->act_f16 && (!f16_exact(w) || !f16_exact(u)))
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "CUDA matmul of %s: the activations are fp16 (quantized for the fp16 "
                           "GEMM), but %s has a block scale of magnitude 2^15 or more, which "
                           "that GEMM cannot hold; quantize them for this matrix",
                           w->name, f16_exact(w) ? u->name : w->name);
    if (cu->act_f16) {
        const int t = g90h_tile(cu, w, u, m);
        const bonsai_cuda_g90h_tile *tile = &bonsai_cuda_g90h_tiles[t];
        CUfunction f = u ? cu->gemm90h_swiglu[t][fmt] : cu->gemm90h[t][fmt];
        const size_t gx = w->rows_pad / (u ? 64 : 128);
        const size_t gy = (m + tile->tokens - 1) / tile->tokens;
        void *h_args[] = {(void *)&w->bits, (void *)&w->scales, &ubits, &uscales, &rows, &ik,
                          &cu->act_h, &cu->act_hinv, &im, &yp, &iadd};
        // PDL on one-wave grids, as for gemm90
        const int pdl = gx * gy * tile->ksplit <= (size_t)cu->info.sm_count;
        return launch_grid(cu, f, (unsigned)gx, (unsigned)gy, tile->ksplit, 256,
                           (unsigned)tile->smem[fmt], h_args,
                           u ? "bonsai_gemm90h_swiglu" : "bonsai_gemm90h", pdl);
    }
    if (!cu->act_gemv && use_small(cu, w, m))
        return launch_small(cu, w, u, m, im_pad, args);
    if (!cu->act_gemv) {
        const unsigned tile_rows = u ? 64 : 128;
        if (use_wgmma(cu, w, m)) {
            CUfunction f = u ? cu->gemm90_swiglu[fmt] : cu->gemm90[fmt];
            const size_t gx = w->rows_pad / tile_rows, gy = (m + 127) / 128;
            // PDL when the grid is one wave (one block per SM): the next
            // kernel's blocks then take the SMs this one leaves and fetch
            // their weights while it drains; on more waves they would hold
            // SMs that this grid's later blocks need (as for the GEMV)
            const int pdl = gx * gy <= (size_t)cu->info.sm_count;
            return launch(cu, f, (unsigned)gx, (unsigned)gy, 256, (unsigned)cu->gemm90_smem[fmt],
                          args, u ? "bonsai_gemm90_swiglu" : "bonsai_gemm90", pdl);
        }
        // 64-token tiles (2 blocks per SM) win below 256 tokens, 128 from there
        // (bench/NOTES.md CUDA: n = 64 30 vs 50 us, n = 512 347 vs 363 TFLOP/s)
        const int bn64 = cu->gemm_tile_tokens ? cu->gemm_tile_tokens == 64 : m < 256;
        const size_t bn = bn64 ? 64 : 128;
        CUfunction f = bn64 ? (u ? cu->gemm64_swiglu[fmt] : cu->gemm64[fmt])
                            : (u ? cu->gemm_swiglu[fmt] : cu->gemm[fmt]);
        return launch(cu, f, (unsigned)(w->rows_pad / tile_rows), (unsigned)((m + bn - 1) / bn),
                      256, (unsigned)(bn64 ? cu->gemm64_smem[fmt] : cu->gemm_smem[fmt]), args,
                      u ? "bonsai_gemm_swiglu" : "bonsai_gemm", 0);
    }
    b1_plan plan;
    if (!u && cu->act_planes_ok && use_b1(cu, w, m, &plan)) {
        CUdeviceptr planes = cu->act_planes;
        // the L2 prefetch only where it stays within half of L2 (measured:
        // 24576 and 32768 rows faster with it, the TQ2 LM head slower)
        const size_t bytes = w->bits_bytes + w->scales_bytes;
        int pf16 = bytes / 16 * (size_t)cu->gemv_b1_pf16 <= cu->info.l2_bytes / 2
                       ? cu->gemv_b1_pf16 : 0;
        // the next launch let in at each block's start (trigger 0), its
        // fill before the wait throttled to a few copies per lane in flight
        // so that it streams while this launch's first loads still find
        // short queues: 2 for matrices within a third of L2, 1 up to L2, 4
        // above (where a shallower fill is not done by the release)
        // (measured on the H100, bench/NOTES.md gemv7: Q1 8192 and 24576
        // rows, TQ2 8192 best at 2; TQ2 24576 and 32768, Q1 32768 at 1; the
        // LM heads at 4 as fast as main, at 1 slower)
        int trigger = cu->gemv_b1_trigger >= 0 ? cu->gemv_b1_trigger : 0;
        int evict_first = cu->gemv_b1_evict_first;
        int depth = cu->gemv_b1_depth >= 0              ? cu->gemv_b1_depth
                    : bytes <= cu->info.l2_bytes / 3 ? 2
                    : bytes <= cu->info.l2_bytes     ? 1
                                                     : 4;
        void *bargs[] = {(void *)&w->bits, (void *)&w->scales, &rows,    &ik,  &planes,
                         &cu->act_d,       &cu->act_s,         &im_pad,  &yp,  &iadd,
                         &pf16,            &evict_first,       &trigger, &depth};
        // PDL: at most one block per SM and half an SM's registers, so the
        // next launch's blocks are resident beside it and prefetch meanwhile
        bonsai_status s = launch(cu, cu->gemv_b1[fmt], plan.grid, 1, BONSAI_CUDA_GEMV_B1_THREADS,
                                 plan.smem, bargs, "bonsai_gemv_b1", 1);
        cu->gemv_b1_calls += s == BONSAI_OK;
        return s;
    }
    // GEMV token groups of nt tokens; rows per warp as in gemv.cu
    const int max_i = u ? BONSAI_CUDA_GEMV_SWIGLU_NT - 1 : BONSAI_CUDA_GEMV_NT - 1;
    int i = 0;
    while (i < max_i && (size_t)(1 << i) < m)
        i++;
    const int nt = 1 << i, nm = u ? 2 : 1;
    int rows_per_warp = nt * nm >= 4 ? 2 : 8 / nt; // GEMV_ROWS in gemv.cu
    CUfunction f = u ? cu->gemv_swiglu[fmt][i] : cu->gemv[fmt][i];
    if (m == 1 && !u && w->rows < cu->gemv_r8_min_rows) { // small: more, shorter warps
        rows_per_warp = 2;
        f = cu->gemv_r2[fmt];
    }
    const size_t rows_per_block = (size_t)rows_per_warp * BONSAI_CUDA_GEMV_WARPS;
    const size_t blocks = (w->rows + rows_per_block - 1) / rows_per_block *
                          ((m + (size_t)nt - 1) / (size_t)nt);
    // PDL only when the grid fits one wave (6 blocks per SM): the next
    // kernel's blocks then fill slots this one frees; on larger grids they
    // would sit waiting in slots this one still needs (measured: LM head
    // 59 -> 65 us with PDL on)
    int pdl = blocks <= 6 * (size_t)cu->info.sm_count;
    void *gemv_args[] = {(void *)&w->bits, (void *)&w->scales, &ubits, &uscales, &rows, &ik,
                         &cu->act_qs, &cu->act_d, &cu->act_s, &im, &im_pad, &yp, &iadd, &pdl};
    return launch(cu, f,
                  (unsigned)((w->rows + rows_per_block - 1) / rows_per_block),
                  (unsigned)((m + (size_t)nt - 1) / (size_t)nt), 32 * BONSAI_CUDA_GEMV_WARPS, 0,
                  gemv_args, u ? "bonsai_gemv_swiglu" : "bonsai_gemv", pdl);
}

static bonsai_status run(bonsai_cuda *cu, const bonsai_cuda_matrix *w, const bonsai_cuda_matrix *u,
                         const bonsai_cuda_buffer *x, size_t m, bonsai_cuda_buffer *y, int add,
                         const char *fn)
{
    bonsai_status s = check_args(cu, w, u, x, m, y, fn);
    if (s == BONSAI_OK)
        s = bonsai_cuda_quantize_activations(cu, w, u, x, m);
    if (s == BONSAI_OK)
        s = bonsai_cuda_matmul_quantized(cu, w, u, m, y, add);
    return s;
}

bonsai_status bonsai_cuda_matmul(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                 const bonsai_cuda_buffer *x, size_t m, bonsai_cuda_buffer *y)
{
    return run(cu, w, NULL, x, m, y, 0, "bonsai_cuda_matmul");
}

bonsai_status bonsai_cuda_matmul_add(bonsai_cuda *cu, const bonsai_cuda_matrix *w,
                                     const bonsai_cuda_buffer *x, size_t m, bonsai_cuda_buffer *y)
{
    return run(cu, w, NULL, x, m, y, 1, "bonsai_cuda_matmul_add");
}

bonsai_status bonsai_cuda_matmul_swiglu(bonsai_cuda *cu, const bonsai_cuda_matrix *gate,
                                        const bonsai_cuda_matrix *up, const bonsai_cuda_buffer *x,
                                        size_t m, bonsai_cuda_buffer *h)
{
    if (!up)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "bonsai_cuda_matmul_swiglu: up is NULL");
    return run(cu, gate, up, x, m, h, 0, "bonsai_cuda_matmul_swiglu");
}

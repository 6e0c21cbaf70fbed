/* gemm_small: Y = W X (or Y += W X, or H = silu(G X) * (U X)) for small
 * batches (2 .. 127 tokens) on int8 tensor cores (mma.sync.m16n8k32.s8,
 * sm_80 and later), streaming the weights like a GEMV.
 *
 * Reads weights and q8 activations in BLOCK order (layout.cuh; the order
 * gemm.cu reads) and writes y [m][rows] fp32 (token-major). Matches
 * bonsai_ref_mm_q8 on the same quantized activations up to fp32 summation
 * order (fixed: deterministic, no atomics).
 *
 * Work: a warp owns 32 weight rows (two m16 tiles; SwiGLU: 16 gate rows and
 * the same 16 up rows) and 8 * NT tokens (NT n8 tiles, tokens from 8 NT
 * blockIdx.y), over a share of k: the block's 4 warps are ROWG = 4 / KS row
 * groups x KS k-slices (KS = 1, 2 or 4, chosen by the host so that small
 * matrices still fill the SMs); k-slice s takes the units s, s + KS, ... of
 * the k/128 blocks, a unit being two consecutive 128-blocks for Q1 (32 bytes
 * of a row: one whole sector) or one for TQ2 (32 bytes as well). The KS
 * partial tiles are summed in shared memory in slice order by slice 0,
 * which writes y.
 * Weights: each warp streams its units through its own ring of STAGES
 * stages in shared memory with cp.async (32 rows x 32 bytes, then the rows'
 * fp16 scales: 4 octets x UB blocks x 16 bytes), issued before the PDL wait
 * (weights are never written by kernels). A fragments are built in
 * registers from those bytes as in gemm.cu: Q1 (word >> t) & 0x01010101,
 * TQ2 (word >> 2t) & 0x03030303 (layout.cuh's permutation).
 * Activations: B fragments straight from global memory (L1-cached: every
 * warp of the SM reads the same few tokens): lane (g, t) loads bytes
 * 32t .. 32t + 31 of token 8 nt + g of the block, the fragments of its 4
 * k-steps, and d_x, s_x of tokens 8 nt + 2t, 2t + 1.
 * Per block, mma tile and n tile: 4 mma into a fresh int32 tile, folded into
 * fp32 at once: acc += d_w d_x (alpha S - s_x), alpha = 2 (Q1) or 1 (TQ2),
 * the int -> float conversion by the 1.5 * 2^23 trick (exact: |alpha S -
 * s_x| <= 3 * 128 * 127 < 2^22).
 * Shapes: rows padded to 128 on upload (rows past `rows` are read, not
 * written), k % 128 == 0, tokens 8 NT gridDim.y <= m_pad (the activations'
 * tokens m .. m_pad - 1 are zeros). Grid: (rows_pad / (32 ROWG) (SwiGLU:
 * 16 ROWG), ceil(m / (8 NT))), 128 threads, static shared memory
 * (gemm_small_smem below). Launched with programmatic dependent launch on
 * one-wave grids. */
#include "layout.cuh"

#define GS_THREADS 128
#define GS_WARPS 4
#define GS_STAGES 4
#define GS_A_BYTES 1024                  /* 32 rows x 32 bytes per stage */
#define GS_STAGE (GS_A_BYTES + 128)      /* + scales: 4 octets x (up to) 2 blocks x 16 B */

__device__ __forceinline__ u32 gs_smem_addr(const void *p)
{
    return (u32)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void gs_cp16(u32 dst, const void *src)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}

__device__ __forceinline__ void gs_mma(int *c, const u32 *a, u32 b0, u32 b1)
{
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Queues unit u (k-blocks UB u .. UB u + UB - 1, those < nb) of the warp's
 * 32 rows into stage st: lane l copies row l's 32 bytes (Q1: 16 per block;
 * TQ2: the block's 32) and lanes 0 .. 4 UB - 1 one scale octet each. */
template <int FMT, bool SWIGLU>
__device__ __forceinline__ void gs_load(u32 st, int u, int nb, int lane, const u8 *wrow,
                                        const u8 *urow, const u8 *wsc, const u8 *usc,
                                        size_t sc_stride)
{
    constexpr int UB = FMT == FMT_Q1 ? 2 : 1;
    const u8 *row = SWIGLU && lane >= 16 ? urow : wrow;
    if (FMT == FMT_Q1) {
        const int b0 = 2 * u;
        gs_cp16(st + 32 * lane, row + 16 * b0);
        if (b0 + 1 < nb)
            gs_cp16(st + 32 * lane + 16, row + 16 * (b0 + 1));
    } else {
        gs_cp16(st + 32 * lane, row + 32 * u);
        gs_cp16(st + 32 * lane + 16, row + 32 * u + 16);
    }
    if (lane < 4 * UB) { // octet o = lane / UB (rows 8o .. 8o + 7), block j = lane % UB
        const int o = lane / UB, j = lane % UB, b = UB * u + j;
        const u8 *sc = SWIGLU && o >= 2 ? usc : wsc;
        if (b < nb)
            gs_cp16(st + GS_A_BYTES + 16 * lane, sc + (size_t)(o & (SWIGLU ? 1 : 3)) * sc_stride +
                                                      (size_t)b * 16);
    }
}

template <int FMT, int NT, bool SWIGLU>
__device__ __forceinline__ void gemm_small_body(
    const u8 *__restrict__ wbits, const u16 *__restrict__ wscales, const u8 *__restrict__ ubits,
    const u16 *__restrict__ uscales, int rows, int k, const s8 *__restrict__ qs,
    const float *__restrict__ xd, const int *__restrict__ xs, int m, int m_pad,
    float *__restrict__ y, int add, int ks_count)
{
    constexpr int UB = FMT == FMT_Q1 ? 2 : 1;
    __shared__ __align__(16) u8 ring[GS_WARPS][GS_STAGES][GS_STAGE];
    __shared__ float red[GS_WARPS - 1][2 * NT * 4][32]; // partial tiles of slices 1 .. KS-1
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int ks_log = __ffs(ks_count) - 1; // ks_count: 1, 2 or 4
    const int ks = warp & (ks_count - 1), rg = warp >> ks_log, rowg = GS_WARPS >> ks_log;
    const int wrows = SWIGLU ? 16 : 32; // output rows per warp
    const int row0 = (blockIdx.x * rowg + rg) * wrows;
    const int tok0 = blockIdx.y * 8 * NT;
    const int nb = k / 128, nu = (nb + UB - 1) / UB;
    const size_t row_bytes = (size_t)k / (FMT == FMT_Q1 ? 8 : 4);
    pdl_launch_dependents();

    // this lane's copy sources: row `lane` of the warp's 32 (SwiGLU: gate
    // rows 0..15, up rows 16..31 = the same output rows) and its scales
    const int crow = SWIGLU ? row0 + (lane & 15) : row0 + lane;
    const u8 *wrow = wbits + (size_t)crow * row_bytes, *urow = ubits + (size_t)crow * row_bytes;
    const size_t sc_stride = (size_t)nb * 16; // bytes per scale octet row
    const u8 *wsc = (const u8 *)wscales + (size_t)(row0 / 8) * sc_stride;
    const u8 *usc = (const u8 *)uscales + (size_t)(row0 / 8) * sc_stride;
    const u32 ring0 = gs_smem_addr(&ring[warp][0][0]);
    const int cnt = ks < nu ? (nu - ks + ks_count - 1) >> ks_log : 0; // units of this warp

#pragma unroll
    for (int s = 0; s < GS_STAGES - 1; s++) {
        if (s < cnt)
            gs_load<FMT, SWIGLU>(ring0 + s * GS_STAGE, ks + s * ks_count, nb, lane, wrow, urow,
                                 wsc, usc, sc_stride);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
    pdl_wait_previous(); // activations and y come from earlier kernels

    float out[2][NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int c = 0; c < 4; c++)
                out[mt][nt][c] = 0.0f;

    for (int i = 0; i < cnt; i++) {
        asm volatile("cp.async.wait_group %0;" ::"n"(GS_STAGES - 2) : "memory");
        __syncwarp();
        if (i + GS_STAGES - 1 < cnt)
            gs_load<FMT, SWIGLU>(ring0 + ((i + GS_STAGES - 1) % GS_STAGES) * GS_STAGE,
                                 ks + (i + GS_STAGES - 1) * ks_count, nb, lane, wrow, urow, wsc,
                                 usc, sc_stride);
        asm volatile("cp.async.commit_group;" ::: "memory");
        const u8 *st = &ring[warp][i % GS_STAGES][0];
        const int u = ks + i * ks_count;
#pragma unroll
        for (int j = 0; j < UB; j++) {
            const int b = UB * u + j;
            if (UB > 1 && b >= nb)
                continue;
            // A fragments of the block's 4 k-steps for both m tiles
            u32 af[2][4][4];
            float dw[2][2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                u32 wa[2][8];
#pragma unroll
                for (int hi = 0; hi < 2; hi++) {
                    const int r = 16 * mt + g + 8 * hi; // row within the warp's 32
                    const uint4 q0 = *(const uint4 *)(st + 32 * r + 16 * j);
                    wa[hi][0] = q0.x; wa[hi][1] = q0.y; wa[hi][2] = q0.z; wa[hi][3] = q0.w;
                    if (FMT == FMT_TQ2) {
                        const uint4 q1 = *(const uint4 *)(st + 32 * r + 16);
                        wa[hi][4] = q1.x; wa[hi][5] = q1.y; wa[hi][6] = q1.z; wa[hi][7] = q1.w;
                    }
                    dw[mt][hi] = half_bits_to_float(
                        *(const u16 *)(st + GS_A_BYTES + 16 * ((r >> 3) * UB + j) + 2 * g));
                }
#pragma unroll
                for (int kk = 0; kk < 4; kk++) {
                    if (FMT == FMT_Q1) {
                        af[mt][kk][0] = (wa[0][kk] >> t) & 0x01010101u;
                        af[mt][kk][1] = (wa[1][kk] >> t) & 0x01010101u;
                        af[mt][kk][2] = (wa[0][kk] >> (t + 4)) & 0x01010101u;
                        af[mt][kk][3] = (wa[1][kk] >> (t + 4)) & 0x01010101u;
                    } else {
                        af[mt][kk][0] = (wa[0][2 * kk] >> (2 * t)) & 0x03030303u;
                        af[mt][kk][1] = (wa[1][2 * kk] >> (2 * t)) & 0x03030303u;
                        af[mt][kk][2] = (wa[0][2 * kk + 1] >> (2 * t)) & 0x03030303u;
                        af[mt][kk][3] = (wa[1][2 * kk + 1] >> (2 * t)) & 0x03030303u;
                    }
                }
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const int tok = tok0 + 8 * nt;
                const uint4 *bp =
                    (const uint4 *)(qs + (size_t)(tok + g) * k + (size_t)b * 128 + 32 * t);
                const uint4 b01 = __ldg(bp), b23 = __ldg(bp + 1);
                const float2 dx = __ldg((const float2 *)(xd + (size_t)b * m_pad + tok + 2 * t));
                const int2 sx = __ldg((const int2 *)(xs + (size_t)b * m_pad + tok + 2 * t));
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    int acc[4] = {0, 0, 0, 0};
                    gs_mma(acc, af[mt][0], b01.x, b01.y);
                    gs_mma(acc, af[mt][1], b01.z, b01.w);
                    gs_mma(acc, af[mt][2], b23.x, b23.y);
                    gs_mma(acc, af[mt][3], b23.z, b23.w);
#pragma unroll
                    for (int c = 0; c < 4; c++) {
                        const int base = 0x4B400000 - (c & 1 ? sx.y : sx.x);
                        const int v = (FMT == FMT_Q1 ? 2 : 1) * acc[c] + base;
                        const float f = __int_as_float(v) - 12582912.0f;
                        out[mt][nt][c] =
                            fmaf(f, dw[mt][c >> 1] * (c & 1 ? dx.y : dx.x), out[mt][nt][c]);
                    }
                }
            }
        }
    }
    asm volatile("cp.async.wait_group 0;" ::: "memory");

    if (ks_count > 1) { // slices 1 .. KS-1 hand their tiles to slice 0 of their row group
        if (ks > 0) {
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int c = 0; c < 4; c++)
                        red[rg * (ks_count - 1) + ks - 1][(mt * NT + nt) * 4 + c][lane] =
                            out[mt][nt][c];
        }
        __syncthreads();
        if (ks > 0)
            return;
        for (int s = 0; s < ks_count - 1; s++)
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int c = 0; c < 4; c++)
                        out[mt][nt][c] += red[rg * (ks_count - 1) + s][(mt * NT + nt) * 4 + c][lane];
    }

#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int tok = tok0 + 8 * nt + 2 * t + (c & 1);
            if (tok >= m)
                continue;
            if (SWIGLU) {
                const int row = row0 + g + 8 * (c >> 1);
                if (row < rows)
                    y[(size_t)tok * rows + row] = silu(out[0][nt][c]) * out[1][nt][c];
            } else {
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int row = row0 + 16 * mt + g + 8 * (c >> 1);
                    if (row < rows) {
                        float *o = y + (size_t)tok * rows + row;
                        *o = add ? *o + out[mt][nt][c] : out[mt][nt][c];
                    }
                }
            }
        }
}

#define GEMM_SMALL_ARGS                                                                          \
    const u8 *__restrict__ wbits, const u16 *__restrict__ wscales, const u8 *__restrict__ ubits, \
        const u16 *__restrict__ uscales, int rows, int k, const s8 *__restrict__ qs,             \
        const float *__restrict__ xd, const int *__restrict__ xs, int m, int m_pad,              \
        float *__restrict__ y, int add, int ks_count
#define GEMM_SMALL(NAME, FMT, NT, SWIGLU)                                                        \
    extern "C" __global__ void __launch_bounds__(GS_THREADS, 2) NAME(GEMM_SMALL_ARGS)               \
    {                                                                                            \
        gemm_small_body<FMT, NT, SWIGLU>(wbits, wscales, ubits, uscales, rows, k, qs, xd, xs, m, \
                                         m_pad, y, add, ks_count);                               \
    }
/* NT = 1, 2, 3, 4, 6, 8 n8 tiles (8 .. 64 tokens per block); the host picks
 * the smallest that covers m in as few token groups as it can
 * (BONSAI_CUDA_SMALL_NT in backend.h). */
#define GEMM_SMALL_ALL(FMTNAME, FMT)                                                             \
    GEMM_SMALL(bonsai_gemm_small_##FMTNAME##_n1, FMT, 1, false)                                  \
    GEMM_SMALL(bonsai_gemm_small_##FMTNAME##_n2, FMT, 2, false)                                  \
    GEMM_SMALL(bonsai_gemm_small_##FMTNAME##_n3, FMT, 3, false)                                  \
    GEMM_SMALL(bonsai_gemm_small_##FMTNAME##_n4, FMT, 4, false)                                  \
    GEMM_SMALL(bonsai_gemm_small_##FMTNAME##_n6, FMT, 6, false)                                  \
    GEMM_SMALL(bonsai_gemm_small_##FMTNAME##_n8, FMT, 8, false)                                  \
    GEMM_SMALL(bonsai_gemm_small_swiglu_##FMTNAME##_n1, FMT, 1, true)                            \
    GEMM_SMALL(bonsai_gemm_small_swiglu_##FMTNAME##_n2, FMT, 2, true)                            \
    GEMM_SMALL(bonsai_gemm_small_swiglu_##FMTNAME##_n3, FMT, 3, true)                            \
    GEMM_SMALL(bonsai_gemm_small_swiglu_##FMTNAME##_n4, FMT, 4, true)                            \
    GEMM_SMALL(bonsai_gemm_small_swiglu_##FMTNAME##_n6, FMT, 6, true)                            \
    GEMM_SMALL(bonsai_gemm_small_swiglu_##FMTNAME##_n8, FMT, 8, true)

GEMM_SMALL_ALL(q1, FMT_Q1)
GEMM_SMALL_ALL(tq2, FMT_TQ2)

/* gemm_small: Y = W X (or Y += W X, or H = silu(G X) * (U X)) for small
 * batches (2 .. 127 tokens) on int8 tensor cores (mma.sync.m16n8k32.s8,
 * sm_80 and later), k split across blocks so that small matrices fill the
 * GPU.
 *
 * Reads weights and q8 activations in BLOCK order (layout.cuh; the order
 * gemm.cu reads) and writes y [m][rows] fp32 (token-major). Matches
 * bonsai_ref_mm_q8 on the same quantized activations up to fp32 summation
 * order (fixed: deterministic, no atomics in the sums).
 *
 * Tiles: a block (4 warps) owns 128 weight rows (SwiGLU: 64 gate rows and
 * the same 64 up rows) x 8 NT tokens (NT n8 tiles, NT = 1, 2, 3, 4, 6, 8;
 * tokens from 8 NT (blockIdx.y / kz)) x a share of k: split z =
 * blockIdx.y % kz takes the units [z nu / kz, (z + 1) nu / kz) of the nu units of
 * k, a unit being two consecutive 128-blocks for Q1 (32 bytes of a row: one
 * sector) or one for TQ2 (32 bytes too). Warp w computes rows 32w .. 32w + 31
 * of the tile (two m16 tiles; SwiGLU: gate rows 16w .. 16w + 15 and the same
 * up rows) x all 8 NT tokens.
 * Staging: the block streams its units through a ring of GS_STAGES stages
 * in dynamic shared memory with cp.async, every stage (gs_cfg) holding
 *   A   128 rows x 32 bytes (the unit's bits / codes of each row),
 *   SC  16 octets x UB blocks x 16 bytes of fp16 scales,
 *   B   UB blocks x 8 NT tokens x 128 bytes of q8 (row stride 144: the
 *       16-byte fragment loads of a quarter warp hit distinct banks),
 *   DX, SX  UB x 8 NT fp32 d and int32 s of those tokens;
 * weights are queued before the PDL wait (never written by kernels),
 * activations after it. A fragments by shift + mask as in gemm.cu (Q1
 * (word >> t) & 0x01010101, TQ2 (word >> 2t) & 0x03030303: layout.cuh's
 * permutation); B fragments: lane (g, t) loads bytes 32t .. 32t + 31 of
 * token 8 nt + g (its 4 k-steps). Two n tiles at a time, the 4 k-steps of
 * their 4 (m, n) tile pairs interleaved (4 independent mma chains), each
 * into a fresh int32 tile folded into fp32 right away: acc += d_w d_x
 * (alpha S - s_x), alpha = 2 (Q1) or 1 (TQ2), the int -> float conversion
 * by the 1.5 * 2^23 trick (exact: |alpha S - s_x| <= 3 * 128 * 127 < 2^22).
 * Split k: with kz > 1 each block stores its partial tile to ws
 * [kz][tiles][8 NT][128 threads] fp32 (fragment order), and the last block
 * of a tile to arrive (counters [tiles], one atomicAdd per block, reset by
 * that last block for the next launch) sums the kz partials in z order
 * (its own from registers: the same values) and writes y; kz = 1 writes y
 * directly.
 * Shapes: rows padded to 128 on upload (rows past `rows` are read, not
 * written), k % 128 == 0, 8 NT x token groups <= m_pad (the activations' tokens
 * m .. m_pad - 1 are zeros), kz <= nu. Grid (rows_pad / 128 (SwiGLU: / 64),
 * ceil(m / (8 NT)) kz), 128 threads, dynamic shared memory GS_STAGES *
 * gs_cfg<FMT, NT>::STAGE (backend.h BONSAI_CUDA_SMALL_SMEM). */
#include "layout.cuh"

#define GS_THREADS 128
#define GS_STAGES 4
#define GS_BST 144 /* bytes per staged token row */

template <int FMT, int NT>
struct gs_cfg {
    static constexpr int UB = FMT == FMT_Q1 ? 2 : 1; // 128-blocks per unit
    static constexpr int NTOK = 8 * NT;
    static constexpr int OFF_SC = 128 * 32;
    static constexpr int OFF_B = OFF_SC + 16 * 16 * UB;
    static constexpr int OFF_DX = OFF_B + UB * NTOK * GS_BST;
    static constexpr int OFF_SX = OFF_DX + UB * NTOK * 4;
    static constexpr int STAGE = OFF_SX + UB * NTOK * 4;
    static constexpr int OUTS = 2 * NT * 4; // fp32 accumulators per thread
};

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

/* Source of tile row rho (0..127): SwiGLU rows 0..63 gate, 64..127 up. */
template <bool SWIGLU>
__device__ __forceinline__ size_t gs_row(int row0, int rho, bool *up)
{
    *up = SWIGLU && rho >= 64;
    return (size_t)row0 + (SWIGLU ? (rho & 63) : rho);
}

/* Queues the weights of unit u (blocks UB u .. UB u + UB - 1 that are < nb)
 * into stage st (shared address). */
template <int FMT, int NT, bool SWIGLU>
__device__ __forceinline__ void gs_load_w(u32 st, int u, int nb, int row0, const u8 *wbits,
                                          const u16 *wscales, const u8 *ubits, const u16 *uscales)
{
    typedef gs_cfg<FMT, NT> C;
    const int tid = threadIdx.x;
    const size_t row_bytes = (size_t)nb * (FMT == FMT_Q1 ? 16 : 32);
#pragma unroll
    for (int r = 0; r < 2; r++) { // 256 chunks: tile row c / 2, part c % 2
        const int c = tid + GS_THREADS * r, rho = c >> 1, part = c & 1;
        bool up;
        const size_t row = gs_row<SWIGLU>(row0, rho, &up);
        const u8 *src = (up ? ubits : wbits) + row * row_bytes;
        if (FMT == FMT_Q1) { // part = block of the pair
            if (2 * u + part < nb)
                gs_cp16(st + 32 * rho + 16 * part, src + 16 * (2 * u + part));
        } else {
            gs_cp16(st + 32 * rho + 16 * part, src + 32 * u + 16 * part);
        }
    }
    if (tid < 16 * C::UB) { // scale octet o (tile rows 8o .. 8o + 7), block j
        const int o = tid / C::UB, j = tid % C::UB, b = C::UB * u + j;
        bool up;
        const size_t row = gs_row<SWIGLU>(row0, 8 * o, &up);
        if (b < nb)
            gs_cp16(st + C::OFF_SC + 16 * tid,
                    (const u8 *)((up ? uscales : wscales) + (row / 8 * nb + b) * 8));
    }
}

/* Queues the activations of unit u: q8 of the tile's tokens, their d and s. */
template <int FMT, int NT>
__device__ __forceinline__ void gs_load_x(u32 st, int u, int nb, int k, int tok0,
                                          const s8 *qs, const float *xd, const int *xs, int m_pad)
{
    typedef gs_cfg<FMT, NT> C;
    const int tid = threadIdx.x;
    constexpr int BCH = C::UB * C::NTOK * 8; // 16-byte chunks of q8
#pragma unroll
    for (int r = 0; r < (BCH + GS_THREADS - 1) / GS_THREADS; r++) {
        const int c = tid + GS_THREADS * r;
        if (BCH % GS_THREADS == 0 || c < BCH) {
            const int j = c / (C::NTOK * 8), n = (c >> 3) % C::NTOK, ch = c & 7;
            const int b = C::UB * u + j;
            if (b < nb)
                gs_cp16(st + C::OFF_B + (j * C::NTOK + n) * GS_BST + 16 * ch,
                        qs + (size_t)(tok0 + n) * k + (size_t)b * 128 + 16 * ch);
        }
    }
    constexpr int DCH = C::UB * C::NTOK / 4; // 16-byte chunks of d (and of s)
    if (tid < 2 * DCH) {
        const int which = tid / DCH, rest = tid % DCH; // 0: d, 1: s
        const int j = rest / (C::NTOK / 4), q = rest % (C::NTOK / 4), b = C::UB * u + j;
        const u8 *src = which ? (const u8 *)xs : (const u8 *)xd;
        if (b < nb)
            gs_cp16(st + (which ? C::OFF_SX : C::OFF_DX) + j * C::NTOK * 4 + 16 * q,
                    src + ((size_t)b * m_pad + tok0 + 4 * q) * 4);
    }
}

template <int FMT, int NT, bool SWIGLU>
__device__ __forceinline__ void gemm_small_body(
    const u8 *__restrict__ wbits, const u16 *__restrict__ wscales, const u8 *__restrict__ ubits,
    const u16 *__restrict__ uscales, int rows, int k, const s8 *__restrict__ qs,
    const float *__restrict__ xd, const int *__restrict__ xs, int m, int m_pad,
    float *__restrict__ y, int add, float *__restrict__ ws, unsigned *__restrict__ counters,
    int kz)
{
    typedef gs_cfg<FMT, NT> C;
    extern __shared__ __align__(16) u8 smem[];
    __shared__ int is_last;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int z = blockIdx.y % kz, group = blockIdx.y / kz; // k-split, token group
    const int row0 = blockIdx.x * (SWIGLU ? 64 : 128), tok0 = group * C::NTOK;
    const int nb = k / 128, nu = (nb + C::UB - 1) / C::UB;
    const int u0 = (int)((long)z * nu / kz), cnt = (int)((long)(z + 1) * nu / kz) - u0;
    const u32 ring = (u32)__cvta_generic_to_shared(smem);
    pdl_launch_dependents();

#pragma unroll
    for (int s = 0; s < GS_STAGES - 1; s++)
        if (s < cnt)
            gs_load_w<FMT, NT, SWIGLU>(ring + s * C::STAGE, u0 + s, nb, row0, wbits, wscales,
                                       ubits, uscales);
    pdl_wait_previous(); // activations, y, ws and counters come from earlier kernels
#pragma unroll
    for (int s = 0; s < GS_STAGES - 1; s++) {
        if (s < cnt)
            gs_load_x<FMT, NT>(ring + s * C::STAGE, u0 + s, nb, k, tok0, qs, xd, xs, m_pad);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }

    float out[2][NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int c = 0; c < 4; c++)
                out[mt][nt][c] = 0.0f;
    // this warp's tile rows of m tile mt, rows g and g + 8 added below
    const int rho_mt[2] = {SWIGLU ? 16 * warp : 32 * warp, SWIGLU ? 64 + 16 * warp : 32 * warp + 16};

    for (int i = 0; i < cnt; i++) {
        asm volatile("cp.async.wait_group %0;" ::"n"(GS_STAGES - 2) : "memory");
        __syncthreads();
        if (i + GS_STAGES - 1 < cnt) {
            const u32 st = ring + ((i + GS_STAGES - 1) % GS_STAGES) * C::STAGE;
            const int u = u0 + i + GS_STAGES - 1;
            gs_load_w<FMT, NT, SWIGLU>(st, u, nb, row0, wbits, wscales, ubits, uscales);
            gs_load_x<FMT, NT>(st, u, nb, k, tok0, qs, xd, xs, m_pad);
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
        const u8 *st = smem + (i % GS_STAGES) * C::STAGE;
        const int u = u0 + i;
#pragma unroll
        for (int j = 0; j < C::UB; j++) {
            if (C::UB > 1 && C::UB * u + j >= nb)
                continue;
            u32 af[2][4][4]; // [m tile][k-step][a0..a3]
            float dw[2][2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                u32 wa[2][8];
#pragma unroll
                for (int hi = 0; hi < 2; hi++) {
                    const int rho = rho_mt[mt] + g + 8 * hi;
                    const uint4 q0 = *(const uint4 *)(st + 32 * rho + 16 * j);
                    wa[hi][0] = q0.x; wa[hi][1] = q0.y; wa[hi][2] = q0.z; wa[hi][3] = q0.w;
                    if (FMT == FMT_TQ2) {
                        const uint4 q1 = *(const uint4 *)(st + 32 * rho + 16);
                        wa[hi][4] = q1.x; wa[hi][5] = q1.y; wa[hi][6] = q1.z; wa[hi][7] = q1.w;
                    }
                    dw[mt][hi] = half_bits_to_float(*(const u16 *)(
                        st + C::OFF_SC + 16 * ((rho >> 3) * C::UB + j) + 2 * g));
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
            for (int p = 0; p < NT; p += 2) { // n tiles p, p + 1
                constexpr int Q = 2;
                uint4 b01[Q], b23[Q];
                float2 dx[Q];
                int2 sx[Q];
#pragma unroll
                for (int q = 0; q < Q; q++) {
                    if (p + q >= NT)
                        continue;
                    const int n = 8 * (p + q);
                    const u8 *bp = st + C::OFF_B + (j * C::NTOK + n + g) * GS_BST + 32 * t;
                    b01[q] = *(const uint4 *)bp;
                    b23[q] = *(const uint4 *)(bp + 16);
                    dx[q] = *(const float2 *)(st + C::OFF_DX + 4 * (j * C::NTOK + n + 2 * t));
                    sx[q] = *(const int2 *)(st + C::OFF_SX + 4 * (j * C::NTOK + n + 2 * t));
                }
                int acc[2][Q][4];
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int q = 0; q < Q; q++)
#pragma unroll
                        for (int c = 0; c < 4; c++)
                            acc[mt][q][c] = 0;
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
#pragma unroll
                    for (int q = 0; q < Q; q++)
#pragma unroll
                        for (int mt = 0; mt < 2; mt++) {
                            if (p + q >= NT)
                                continue;
                            const u32 b0 = kk == 0 ? b01[q].x : kk == 1 ? b01[q].z
                                         : kk == 2 ? b23[q].x : b23[q].z;
                            const u32 b1 = kk == 0 ? b01[q].y : kk == 1 ? b01[q].w
                                         : kk == 2 ? b23[q].y : b23[q].w;
                            gs_mma(acc[mt][q], af[mt][kk], b0, b1);
                        }
#pragma unroll
                for (int q = 0; q < Q; q++)
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        if (p + q >= NT)
                            continue;
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            const int base = 0x4B400000 - (c & 1 ? sx[q].y : sx[q].x);
                            const int v = (FMT == FMT_Q1 ? 2 : 1) * acc[mt][q][c] + base;
                            const float f = __int_as_float(v) - 12582912.0f;
                            out[mt][p + q][c] = fmaf(f, dw[mt][c >> 1] * (c & 1 ? dx[q].y : dx[q].x),
                                                     out[mt][p + q][c]);
                        }
                    }
            }
        }
    }
    asm volatile("cp.async.wait_group 0;" ::: "memory");

    if (kz > 1) { // split k: partials to ws; the tile's last block sums them in z order
        const size_t tile = (size_t)group * gridDim.x + blockIdx.x;
        const size_t tiles = (size_t)gridDim.x * (gridDim.y / kz);
        float *mine = ws + ((size_t)z * tiles + tile) * C::OUTS * GS_THREADS + tid;
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int c = 0; c < 4; c++)
                    mine[((mt * NT + nt) * 4 + c) * GS_THREADS] = out[mt][nt][c];
        __threadfence();
        __syncthreads();
        if (tid == 0)
            is_last = atomicAdd(counters + tile, 1u) == (unsigned)kz - 1;
        __syncthreads();
        if (!is_last)
            return;
        __threadfence();
        if (tid == 0)
            counters[tile] = 0; // every block of the tile has counted: ready for the next launch
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    const int r = (mt * NT + nt) * 4 + c;
                    float sum = 0.0f;
                    for (int zz = 0; zz < kz; zz++)
                        sum += zz == z ? out[mt][nt][c]
                                       : __ldcg(ws + ((size_t)zz * tiles + tile) * C::OUTS *
                                                         GS_THREADS + (size_t)r * GS_THREADS + tid);
                    out[mt][nt][c] = sum;
                }
    }

#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int tok = tok0 + 8 * nt + 2 * t + (c & 1);
            if (tok >= m)
                continue;
            if (SWIGLU) {
                const int row = row0 + 16 * warp + g + 8 * (c >> 1);
                if (row < rows)
                    y[(size_t)tok * rows + row] = silu(out[0][nt][c]) * out[1][nt][c];
            } else {
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int row = row0 + 32 * warp + 16 * mt + g + 8 * (c >> 1);
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
        float *__restrict__ y, int add, float *__restrict__ ws, unsigned *__restrict__ counters, \
        int kz
#define GEMM_SMALL(NAME, FMT, NT, SWIGLU)                                                        \
    extern "C" __global__ void __launch_bounds__(GS_THREADS, 2) NAME(GEMM_SMALL_ARGS)            \
    {                                                                                            \
        gemm_small_body<FMT, NT, SWIGLU>(wbits, wscales, ubits, uscales, rows, k, qs, xd, xs, m, \
                                         m_pad, y, add, ws, counters, kz);                       \
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

/* gemm: Y = W X (or Y += W X, or H = silu(G X) * (U X)) for many tokens,
 * on int8 tensor cores (mma.sync.m16n8k32.s8, sm_80 and later).
 *
 * Reads weights and q8 activations (block order) in the layouts of
 * layout.cuh; writes y [m][rows] fp32 (token-major). A block of 256 threads
 * computes a tile of 128 weight rows x BN tokens, BN = 128 or 64 (SwiGLU: 64
 * gate rows interleaved with the same 64 up rows, so each thread holds gate
 * and up of the same outputs), stepping over k one 128-block at a time
 * through a 3-stage cp.async pipeline in shared memory:
 *   A: 128 rows x 16 B (Q1 bits) or 32 B (TQ2 codes, row stride 48 B),
 *      and the 128 rows' fp16 scales (16 octets of 16 B);
 *   B: BN tokens x 128 B of permuted int8 (row stride 144 B: the 16-byte
 *      fragment loads of a quarter warp hit distinct banks), and the
 *      tokens' d and s.
 * 8 warps = 4 (rows) x 2 (tokens); each warp 32 rows x BN/2 tokens = 2 x
 * BN/16 mma tiles (16 warps of 2 x 4 tiles in one block, 128 registers each,
 * measured 15% slower on the H100). Weight bits become int8 in registers
 * once per block: Q1 (word >> t) & 0x01.., TQ2 (word >> 2t) & 0x03..
 * (layout.cuh). Each mma tile runs its block's 4 k-steps into a fresh int32
 * tile that is folded into fp32 right away (acc += d_w d_x (alpha S - s_x)),
 * so only 4 int32 registers live per tile, with the int -> float conversion
 * done by the 1.5 * 2^23 trick (exact for |v| < 2^22; here |v| <= 3 * 128 *
 * 127).
 * Shapes: rows padded to 128 on upload, k % 128 == 0, m_pad % 128 == 0.
 * Grid: (rows_pad / 128 (SwiGLU: / 64), ceil(m / BN)). Dynamic shared
 * memory: 3 * gemm_cfg<FMT, BN>::STAGE (BN 128: Q1 21760, TQ2 25856;
 * BN 64: 12032, 16128 per stage). */
#include "layout.cuh"

#define GEMM_STAGES 3
#define GEMM_BST 144
#define GEMM_THREADS 256
#define GEMM_WN 2 /* warps along the tokens (x 4 along the rows) */

template <int FMT, int BN>
struct gemm_cfg {
    static constexpr int ABYTES = FMT == FMT_Q1 ? 16 : 32;
    static constexpr int AST = FMT == FMT_Q1 ? 16 : 48;
    static constexpr int OFF_W = 128 * AST;
    static constexpr int OFF_B = OFF_W + 256;
    static constexpr int OFF_DX = OFF_B + BN * GEMM_BST;
    static constexpr int OFF_SX = OFF_DX + 4 * BN;
    static constexpr int STAGE = OFF_SX + 4 * BN;
    static constexpr int NT = BN / (8 * GEMM_WN);  // 8-token mma tiles per warp
    static constexpr int BCOPIES = BN * 8 / GEMM_THREADS; // 16-byte B chunks per thread
};

__device__ __forceinline__ u32 smem_addr(const void *p)
{
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void cp_async16(void *dst, const void *src)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src));
}

__device__ __forceinline__ void mma_s8(int *c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1)
{
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}



/* One thread's share of a stage's copies, resolved once before the k loop:
 * source pointers of block 0 and their advance per block. */
struct gemm_copies {
    const u8 *a;      // A chunk (NULL: none for this thread)
    int a_dst;
    const u8 *misc;   // one scale / d / s chunk (NULL: none)
    int misc_dst;
    size_t misc_step;
    const u8 *b[4]; // B chunks (BN * 8 / GEMM_THREADS of them)
    int b_dst[4];
};

template <int FMT, bool SWIGLU, int BN>
__device__ __forceinline__ gemm_copies gemm_plan(int row_base, int tok_base, const u8 *wbits,
                                                 const u16 *wscales, const u8 *ubits,
                                                 const u16 *uscales, int k, const s8 *qs,
                                                 const float *xd, const int *xs, int m_pad)
{
    typedef gemm_cfg<FMT, BN> C;
    const int tid = threadIdx.x, nb = k / 128;
    const size_t row_bytes = (size_t)k / (FMT == FMT_Q1 ? 8 : 4);
    gemm_copies p;
    p.a = NULL;
    p.a_dst = 0;
    if (tid < C::ABYTES / 16 * 128) { // A: one (Q1) or two (TQ2) 16-byte chunks per tile row
        const int a = tid / (C::ABYTES / 16), part = tid % (C::ABYTES / 16);
        const int mat = SWIGLU ? (a >> 4) & 1 : 0;
        const int row = SWIGLU ? row_base + (a >> 5) * 16 + (a & 15) : row_base + a;
        p.a = (mat ? ubits : wbits) + (size_t)row * row_bytes + part * 16;
        p.a_dst = a * C::AST + part * 16;
    }
    p.misc = NULL;
    p.misc_dst = 0;
    p.misc_step = 0;
    const int j = tid; // threads 0 .. 16 + BN/2 - 1 also copy one scale / d / s chunk
    if (j < 16) { // scales: octet j of tile rows 8j..8j+7
        const int mat = SWIGLU ? (j >> 1) & 1 : 0;
        const int row = SWIGLU ? row_base + (j >> 2) * 16 + (j & 1) * 8 : row_base + 8 * j;
        p.misc = (const u8 *)((mat ? uscales : wscales) + (size_t)(row / 8) * nb * 8);
        p.misc_dst = C::OFF_W + 16 * j;
        p.misc_step = 16;
    } else if (j < 16 + BN / 4) {
        p.misc = (const u8 *)(xd + tok_base + 4 * (j - 16));
        p.misc_dst = C::OFF_DX + 16 * (j - 16);
        p.misc_step = (size_t)m_pad * 4;
    } else if (j < 16 + BN / 2) {
        p.misc = (const u8 *)(xs + tok_base + 4 * (j - 16 - BN / 4));
        p.misc_dst = C::OFF_SX + 16 * (j - 16 - BN / 4);
        p.misc_step = (size_t)m_pad * 4;
    }
#pragma unroll
    for (int i = 0; i < C::BCOPIES; i++) { // B: BN tokens x 8 chunks
        const int c = tid + GEMM_THREADS * i, n = c >> 3, ch = c & 7;
        p.b[i] = (const u8 *)qs + (size_t)(tok_base + n) * k + ch * 16;
        p.b_dst[i] = C::OFF_B + n * GEMM_BST + ch * 16;
    }
    return p;
}

/* Queues the copies of 128-block b into stage buffer st. */
template <int FMT, int BN>
__device__ __forceinline__ void gemm_load(u8 *st, int b, const gemm_copies &p)
{
    if (p.a)
        cp_async16(st + p.a_dst, p.a + (size_t)b * gemm_cfg<FMT, BN>::ABYTES);
    if (p.misc)
        cp_async16(st + p.misc_dst, p.misc + (size_t)b * p.misc_step);
#pragma unroll
    for (int i = 0; i < gemm_cfg<FMT, BN>::BCOPIES; i++)
        cp_async16(st + p.b_dst[i], p.b[i] + (size_t)b * 128);
}

template <int FMT, bool SWIGLU, int BN>
__device__ __forceinline__ void gemm_body(const u8 *__restrict__ wbits,
                                          const u16 *__restrict__ wscales,
                                          const u8 *__restrict__ ubits,
                                          const u16 *__restrict__ uscales, int rows, int k,
                                          const s8 *__restrict__ qs, const float *__restrict__ xd,
                                          const int *__restrict__ xs, int m, int m_pad,
                                          float *__restrict__ y, int add)
{
    typedef gemm_cfg<FMT, BN> C;
    constexpr int GEMM_NT = C::NT;
    extern __shared__ __align__(16) u8 smem[];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int warp_m = warp & 3, warp_n = warp >> 2, g = lane >> 2, t = lane & 3;
    const int tok_warp = warp_n * (8 * GEMM_NT); // first token of this warp in the tile
    const int row_base = blockIdx.x * (SWIGLU ? 64 : 128), tok_base = blockIdx.y * BN;
    const int nb = k / 128;

    float out[2][GEMM_NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < GEMM_NT; nt++)
#pragma unroll
            for (int c = 0; c < 4; c++)
                out[mt][nt][c] = 0.0f;

    const gemm_copies plan = gemm_plan<FMT, SWIGLU, BN>(row_base, tok_base, wbits, wscales, ubits,
                                                     uscales, k, qs, xd, xs, m_pad);
#pragma unroll
    for (int s = 0; s < GEMM_STAGES - 1; s++) {
        if (s < nb)
            gemm_load<FMT, BN>(smem + s * C::STAGE, s, plan);
        asm volatile("cp.async.commit_group;");
    }

    for (int b = 0; b < nb; b++) { // [k/128] blocks
        asm volatile("cp.async.wait_group %0;" ::"n"(GEMM_STAGES - 2));
        __syncthreads();
        if (b + GEMM_STAGES - 1 < nb)
            gemm_load<FMT, BN>(smem + ((b + GEMM_STAGES - 1) % GEMM_STAGES) * C::STAGE,
                           b + GEMM_STAGES - 1, plan);
        asm volatile("cp.async.commit_group;");
        const u8 *st = smem + (b % GEMM_STAGES) * C::STAGE;

        u32 wa[2][2][C::ABYTES / 4]; // [m tile][row g, g + 8][words]
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int hi = 0; hi < 2; hi++)
#pragma unroll
                for (int v = 0; v < C::ABYTES / 16; v++) {
                    const uint4 q = *(const uint4 *)(st + (warp_m * 32 + mt * 16 + g + 8 * hi) *
                                                              C::AST + 16 * v);
                    wa[mt][hi][4 * v] = q.x; wa[mt][hi][4 * v + 1] = q.y;
                    wa[mt][hi][4 * v + 2] = q.z; wa[mt][hi][4 * v + 3] = q.w;
                }
        // A fragments of the 4 k-steps, expanded to int8 once per block
        u32 af[2][4][4]; // [m tile][k-step][a0..a3]
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                if (FMT == FMT_Q1) {
                    af[mt][kk][0] = (wa[mt][0][kk] >> t) & 0x01010101u;
                    af[mt][kk][1] = (wa[mt][1][kk] >> t) & 0x01010101u;
                    af[mt][kk][2] = (wa[mt][0][kk] >> (t + 4)) & 0x01010101u;
                    af[mt][kk][3] = (wa[mt][1][kk] >> (t + 4)) & 0x01010101u;
                } else {
                    af[mt][kk][0] = (wa[mt][0][2 * kk] >> (2 * t)) & 0x03030303u;
                    af[mt][kk][1] = (wa[mt][1][2 * kk] >> (2 * t)) & 0x03030303u;
                    af[mt][kk][2] = (wa[mt][0][2 * kk + 1] >> (2 * t)) & 0x03030303u;
                    af[mt][kk][3] = (wa[mt][1][2 * kk + 1] >> (2 * t)) & 0x03030303u;
                }
            }
        float dw[2][2];
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int hi = 0; hi < 2; hi++)
                dw[mt][hi] = half_bits_to_float(
                    *(const u16 *)(st + C::OFF_W + 2 * (warp_m * 32 + mt * 16 + g + 8 * hi)));
        // per (n tile, m tile): the block's 4 mma into a fresh int32 tile, then
        // fold it into fp32 at once, so the tensor cores work on the next
        // tile while this one is converted
#pragma unroll
        for (int nt = 0; nt < GEMM_NT; nt++) {
            const u8 *bp = st + C::OFF_B + (tok_warp + nt * 8 + g) * GEMM_BST + 32 * t;
            const uint4 b01 = *(const uint4 *)bp, b23 = *(const uint4 *)(bp + 16);
            const int n = tok_warp + nt * 8 + 2 * t;
            const float2 dx = *(const float2 *)(st + C::OFF_DX + 4 * n);
            const int2 sx = *(const int2 *)(st + C::OFF_SX + 4 * n);
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                int acc[4] = {0, 0, 0, 0};
                mma_s8(acc, af[mt][0][0], af[mt][0][1], af[mt][0][2], af[mt][0][3], b01.x, b01.y);
                mma_s8(acc, af[mt][1][0], af[mt][1][1], af[mt][1][2], af[mt][1][3], b01.z, b01.w);
                mma_s8(acc, af[mt][2][0], af[mt][2][1], af[mt][2][2], af[mt][2][3], b23.x, b23.y);
                mma_s8(acc, af[mt][3][0], af[mt][3][1], af[mt][3][2], af[mt][3][3], b23.z, b23.w);
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    const int base = 0x4B400000 - (c & 1 ? sx.y : sx.x);
                    const int v = (FMT == FMT_Q1 ? 2 : 1) * acc[c] + base;
                    const float f = __int_as_float(v) - 12582912.0f;
                    out[mt][nt][c] = fmaf(f, dw[mt][c >> 1] * (c & 1 ? dx.y : dx.x),
                                          out[mt][nt][c]);
                }
            }
        }
    }
    asm volatile("cp.async.wait_group 0;");

#pragma unroll
    for (int nt = 0; nt < GEMM_NT; nt++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int tok = tok_base + tok_warp + nt * 8 + 2 * t + (c & 1);
            if (tok >= m)
                continue;
            if (SWIGLU) {
                const int row = row_base + warp_m * 16 + g + 8 * (c >> 1);
                if (row < rows)
                    y[(size_t)tok * rows + row] = silu(out[0][nt][c]) * out[1][nt][c];
            } else {
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int row = row_base + warp_m * 32 + mt * 16 + g + 8 * (c >> 1);
                    if (row < rows) {
                        float *o = y + (size_t)tok * rows + row;
                        *o = add ? *o + out[mt][nt][c] : out[mt][nt][c];
                    }
                }
            }
        }
}

#define GEMM_ARGS                                                                                \
    const u8 *__restrict__ wbits, const u16 *__restrict__ wscales, const u8 *__restrict__ ubits, \
        const u16 *__restrict__ uscales, int rows, int k, const s8 *__restrict__ qs,             \
        const float *__restrict__ xd, const int *__restrict__ xs, int m, int m_pad,              \
        float *__restrict__ y, int add
#define GEMM_PASS wbits, wscales, ubits, uscales, rows, k, qs, xd, xs, m, m_pad, y, add
/* BN = 128 tokens per tile (1 block per SM, 212-224 registers) and BN = 64
 * (2 blocks per SM at <= 128 registers, so one block's barrier and copies
 * overlap the other's mma). */
#define GEMM(NAME, FMT, SWIGLU, BN, MINB)                                     \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, MINB) NAME(GEMM_ARGS) \
    {                                                                         \
        gemm_body<FMT, SWIGLU, BN>(GEMM_PASS);                                \
    }

GEMM(bonsai_gemm_q1, FMT_Q1, false, 128, 1)
GEMM(bonsai_gemm_tq2, FMT_TQ2, false, 128, 1)
GEMM(bonsai_gemm_swiglu_q1, FMT_Q1, true, 128, 1)
GEMM(bonsai_gemm_swiglu_tq2, FMT_TQ2, true, 128, 1)
GEMM(bonsai_gemm_q1_bn64, FMT_Q1, false, 64, 2)
GEMM(bonsai_gemm_tq2_bn64, FMT_TQ2, false, 64, 2)
GEMM(bonsai_gemm_swiglu_q1_bn64, FMT_Q1, true, 64, 2)
GEMM(bonsai_gemm_swiglu_tq2_bn64, FMT_TQ2, true, 64, 2)

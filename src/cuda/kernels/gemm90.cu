/* gemm90: the GEMM of gemm.cu (Y = W X, Y += W X, or H = silu(G X) * (U X)
 * for many tokens) on Hopper's warpgroup tensor cores: wgmma.mma_async
 * m64n128k32 s8 x s8 -> s32, sm_90a only. Other targets compile none of
 * this file: the host looks the kernels up and falls back to gemm.cu when
 * they are missing (src/cuda/pipeline.c, matmul.c).
 *
 * Reads weights and q8 activations (block order) in the layouts of
 * layout.cuh; writes y [m][rows] fp32 (token-major); same results as gemm.cu
 * (every 128-block's dot product is an exact int32, folded into fp32 as
 * acc += float(sum) * d_w * d_x in block order).
 *
 * A block of 256 threads = 2 warpgroups computes 128 weight rows (SwiGLU: 64
 * gate rows and the same 64 up rows) x 128 tokens, stepping over k one
 * 128-block at a time through a 6-stage cp.async ring in shared memory; a
 * stage holds
 *   B : 128 tokens x 128 bytes of activations in their stored (permuted)
 *       order, each token's 8 16-byte chunks swizzled (chunk c of token n at
 *       c ^ (n & 7)): the 128-byte-swizzle K-major layout the wgmma
 *       descriptor names (8-token atoms of 1024 bytes);
 *   A : 128 rows of weight bits (Q1 16 B, TQ2 32 B at a 48-byte stride);
 *   the 128 rows' fp16 scales (16 octets) and the 128 tokens' d_x.
 * Warpgroup wg owns smem rows 64wg..64wg+63 (m64); its warp w rows 16w..
 * 16w+15. A goes to the tensor cores from registers: each thread expands its
 * rows' bits into the m64nNk32 A fragment (the mma.m16n8k32 one: a0 row g
 * bytes 4t..4t+3, a1 row g+8, a2/a3 bytes 16+4t..) already as signed int8
 * weights (Q1 -1/+1, TQ2 -1/0/+1), so a 128-block's sum needs no activation
 * sum s_x. With the storage permutation of layout.cuh, k-step j (smem bytes
 * 32j..32j+31 of a token) pairs byte i of a0 with the natural weight
 *   Q1 : 32 (t >> 1) + j + 4 (t & 1) + 8i  (bit j + 4(t&1) + 8i of word t>>1;
 *        a2: word 2 + (t >> 1))
 *   TQ2: 16t + 4i + j                      (code j of byte i of word t;
 *        a2: word 4 + t)
 * Each block's 4 wgmma go into a fresh int32 tile (scale-d 0 first); the
 * warpgroup holds two such tiles and folds block b-1's into its fp32 tile
 * (acc += float(sum) d_w d_x; int32 -> float exact: |sum| <= 128 * 127)
 * while the tensor cores run block b (~246 registers; bench/NOTES.md has the
 * variants measured).
 * PDL: the kernel lets the next one be scheduled at its start, and fetches
 * its first stages' weights before waiting for the previous kernel
 * (griddepcontrol); matmul.c launches it so on one-wave grids.
 * SwiGLU: smem row 64wg + 16w + 8h + g holds matrix h (0 gate, 1 up) row
 * 32wg + 8w + g of the tile, so each thread holds gate and up of the same
 * outputs.
 * Shapes: rows padded to 128 on upload, k % 128 == 0, m_pad % 128 == 0.
 * Grid: (rows_pad / 128 (SwiGLU: / 64), ceil(m / 128)); 256 threads;
 * dynamic shared memory gemm90_cfg<FMT>::SMEM (Q1 117760, TQ2 142336). */
#include "wgmma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

#define G90_STAGES 6
#define G90_THREADS 256

template <int FMT>
struct gemm90_cfg {
    static constexpr int ABYTES = FMT == FMT_Q1 ? 16 : 32;
    static constexpr int AST = FMT == FMT_Q1 ? 16 : 48; // 48: the A word loads miss no bank
    static constexpr int OFF_B = 0;                     // 1024-aligned
    static constexpr int OFF_A = 128 * 128;
    static constexpr int OFF_W = OFF_A + 128 * AST;
    static constexpr int OFF_DX = OFF_W + 256;
    static constexpr int STAGE = (OFF_DX + 512 + 1023) / 1024 * 1024;
    static constexpr int SMEM = G90_STAGES * STAGE + 1024; // + alignment slack
};

__device__ __forceinline__ void g90_wgmma(int (&d)[64], const u32 (&a)[4],
                                          unsigned long long desc, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]),
          "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]),
          "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]),
          "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]),
          "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]),
          "+r"(d[31]), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]),
          "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]),
          "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]),
          "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]),
          "+r"(d[55]), "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]),
          "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate));
}

/* Keeps the compiler from moving reads of an accumulator tile above the
 * wgmma.wait that makes it valid (no instruction). */
__device__ __forceinline__ void g90_pin(int (&d)[64])
{
#pragma unroll
    for (int i = 0; i < 64; i++)
        asm volatile("" : "+r"(d[i])::"memory");
}

/* One thread's share of a stage's copies, resolved before the k loop (few
 * registers: the fold needs them). */
struct gemm90_copies {
    const u8 *a; // A chunk (NULL: none)
    u32 a_dst;
    const u8 *misc; // one scale or d_x chunk (NULL: none)
    u32 misc_dst;
    u32 misc_step;
    const u8 *b; // B chunk of token n; chunk i of 4 is token n + 32 i
    u32 b_dst;
};

template <int FMT, bool SWIGLU>
__device__ __forceinline__ gemm90_copies gemm90_plan(int row_base, int tok_base, const u8 *wbits,
                                                     const u16 *wscales, const u8 *ubits,
                                                     const u16 *uscales, int k, const s8 *qs,
                                                     const float *xd, int m_pad)
{
    typedef gemm90_cfg<FMT> C;
    const int tid = threadIdx.x, nb = k / 128;
    const size_t row_bytes = (size_t)k / (FMT == FMT_Q1 ? 8 : 4);
    gemm90_copies p;
    p.a = NULL;
    p.a_dst = 0;
    if (tid < C::ABYTES / 16 * 128) { // one (Q1) or two (TQ2) chunks per smem row
        const int r = tid / (C::ABYTES / 16), part = tid % (C::ABYTES / 16);
        const int mat = SWIGLU ? (r >> 3) & 1 : 0;
        const int row = SWIGLU ? row_base + 32 * (r >> 6) + 8 * ((r >> 4) & 3) + (r & 7)
                               : row_base + r;
        p.a = (mat ? ubits : wbits) + (size_t)row * row_bytes + part * 16;
        p.a_dst = C::OFF_A + r * C::AST + part * 16;
    }
    p.misc = NULL;
    p.misc_dst = 0;
    p.misc_step = 0;
    if (tid < 16) { // scales of smem rows 8 tid .. 8 tid + 7
        const int r = 8 * tid;
        const int mat = SWIGLU ? (r >> 3) & 1 : 0;
        const int row = SWIGLU ? row_base + 32 * (r >> 6) + 8 * ((r >> 4) & 3) : row_base + r;
        p.misc = (const u8 *)((mat ? uscales : wscales) + (size_t)(row / 8) * nb * 8);
        p.misc_dst = C::OFF_W + 16 * tid;
        p.misc_step = 16;
    } else if (tid < 48) { // d_x of tokens 4j .. 4j + 3
        const int j = tid - 16;
        p.misc = (const u8 *)(xd + tok_base + 4 * j);
        p.misc_dst = C::OFF_DX + 16 * j;
        p.misc_step = (u32)m_pad * 4;
    }
    const int n = tid >> 3, c = tid & 7; // + 32 i tokens keeps n & 7
    p.b = (const u8 *)qs + (size_t)(tok_base + n) * k + c * 16;
    p.b_dst = C::OFF_B + n * 128 + ((c ^ (n & 7)) << 4);
    return p;
}

/* The weight part of block b's copies (A and, for threads 0..15, the
 * scales: gemm90_plan): weights are never written by kernels, so these may
 * run before griddepcontrol.wait. */
template <int FMT>
__device__ __forceinline__ void gemm90_load_weights(u32 st, int b, const gemm90_copies &p)
{
    if (p.a)
        g90_cp16(st + p.a_dst, p.a + (size_t)b * gemm90_cfg<FMT>::ABYTES);
    if (p.misc && threadIdx.x < 16)
        g90_cp16(st + p.misc_dst, p.misc + (size_t)b * p.misc_step);
}

/* The activation part of block b's copies (d_x and B). */
__device__ __forceinline__ void gemm90_load_activations(u32 st, int b, int k,
                                                        const gemm90_copies &p)
{
    if (p.misc && threadIdx.x >= 16)
        g90_cp16(st + p.misc_dst, p.misc + (size_t)b * p.misc_step);
    const u8 *src = p.b + (size_t)b * 128;
#pragma unroll
    for (int i = 0; i < 4; i++)
        g90_cp16(st + p.b_dst + 4096 * i, src + (size_t)(32 * i) * k);
}

/* Queues the copies of 128-block b into the stage at shared address st. */
template <int FMT>
__device__ __forceinline__ void gemm90_load(u32 st, int b, int k, const gemm90_copies &p)
{
    if (p.a)
        g90_cp16(st + p.a_dst, p.a + (size_t)b * gemm90_cfg<FMT>::ABYTES);
    if (p.misc)
        g90_cp16(st + p.misc_dst, p.misc + (size_t)b * p.misc_step);
    const u8 *src = p.b + (size_t)b * 128;
#pragma unroll
    for (int i = 0; i < 4; i++)
        g90_cp16(st + p.b_dst + 4096 * i, src + (size_t)(32 * i) * k);
}

/* The signed int8 weights of 4 bytes. Q1: bit `bit` (0 or 1) of each byte
 * -> -1 / +1: with m = v & (1 << bit) per byte, m * -(254 >> bit) - 1 =
 * ~(254 b) per byte, no carries (0 -> 0xFF, 1 -> 0x01). TQ2: code c'
 * (bits 0-1 of each byte, layout.cuh) -> c' - 1; c80 holds 0x80808080 in a
 * register so that the mask and the or are one LOP3. */
template <int FMT>
__device__ __forceinline__ u32 g90_weights(u32 v, int bit, u32 c80)
{
    if (FMT == FMT_Q1)
        return (v & (0x01010101u << bit)) * (bit ? 0xFFFFFF81u : 0xFFFFFF02u) + 0xFFFFFFFFu;
    u32 m; // (v & 0x03030303) | 0x80808080 in one LOP3
    asm("lop3.b32 %0, %1, 0x03030303, %2, 0xEA;" : "=r"(m) : "r"(v), "r"(c80));
    return (m - 0x01010101u) ^ c80;
}

/* acc += float(sum) * d_w * d_x for the thread's 64 outputs of one block
 * (tile element 4c + e: row g + 8 (e >> 1), token 8c + 2t + (e & 1)). */
__device__ __forceinline__ void gemm90_fold(float (&out)[64], int (&acc)[64], const float (&dw)[2],
                                            const u8 *st_dx, int t)
{
#pragma unroll
    for (int c = 0; c < 16; c++) {
        const float2 dx = *(const float2 *)(st_dx + 4 * (8 * c + 2 * t));
#pragma unroll
        for (int e = 0; e < 4; e++) {
            out[4 * c + e] = fmaf(__int2float_rn(acc[4 * c + e]) * (e & 1 ? dx.y : dx.x),
                                  dw[e >> 1], out[4 * c + e]);
        }
    }
}

/* Block b: wait for its stage, queue the copies of block b + STAGES - 2,
 * start its 4 wgmma into acc, then fold block b - 1 (prev, dw_prev). */
template <int FMT>
__device__ __forceinline__ void gemm90_step(u8 *smem, int b, int nb, const gemm90_copies &plan,
                                            int (&acc)[64], float (&dw)[2], int (&prev)[64],
                                            const float (&dw_prev)[2], float (&out)[64], int r0,
                                            int t, u32 c80)
{
    typedef gemm90_cfg<FMT> C;
    asm volatile("cp.async.wait_group %0;" ::"n"(G90_STAGES - 3));
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    if (b + G90_STAGES - 2 < nb)
        gemm90_load<FMT>(g90_smem_addr(smem + ((b + G90_STAGES - 2) % G90_STAGES) * C::STAGE),
                         b + G90_STAGES - 2, nb * 128, plan);
    asm volatile("cp.async.commit_group;");
    // block b - 1's wgmma (and its reads of the A registers) are done
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    g90_pin(prev);

    const u8 *st = smem + (b % G90_STAGES) * C::STAGE;
    u32 w[2][2]; // [row g, g + 8][a0/a1 word, a2/a3 word]
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const u8 *ra = st + C::OFF_A + (r0 + 8 * h) * C::AST;
        if (FMT == FMT_Q1) {
            w[h][0] = *(const u32 *)(ra + 4 * (t >> 1)) >> (4 * (t & 1));
            w[h][1] = *(const u32 *)(ra + 4 * (2 + (t >> 1))) >> (4 * (t & 1));
        } else {
            w[h][0] = *(const u32 *)(ra + 4 * t);
            w[h][1] = *(const u32 *)(ra + 4 * (4 + t));
        }
        dw[h] = half_bits_to_float(*(const u16 *)(st + C::OFF_W + 2 * (r0 + 8 * h)));
    }
    u32 a[4][4];
#pragma unroll
    for (int j = 0; j < 4; j++) { // k-step j: Q1 bit j, TQ2 code j of each byte
        const int s = FMT == FMT_Q1 ? j & 2 : 2 * j, bit = FMT == FMT_Q1 ? j & 1 : 0;
#pragma unroll
        for (int i = 0; i < 4; i++) { // a0 a1 a2 a3: rows g, g + 8 of words 0 / 1
            const u32 v = w[i & 1][i >> 1];
            // v >> s as a multiply-high (the FMA pipe; the ALU is the busier one)
            a[j][i] = g90_weights<FMT>(s ? __umulhi(v, 1u << (32 - s)) : v, bit, c80);
        }
    }
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
    const unsigned long long desc = g90_desc(g90_smem_addr(st + C::OFF_B));
#pragma unroll
    for (int j = 0; j < 4; j++)
        g90_wgmma(acc, a[j], desc + 2 * j, j); // + 32 bytes per k-step
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");

    if (b > 0)
        gemm90_fold(out, prev, dw_prev,
                    smem + ((b - 1) % G90_STAGES) * C::STAGE + C::OFF_DX, t);
}

template <int FMT, bool SWIGLU>
__device__ __forceinline__ void gemm90_body(const u8 *__restrict__ wbits,
                                            const u16 *__restrict__ wscales,
                                            const u8 *__restrict__ ubits,
                                            const u16 *__restrict__ uscales, int rows, int k,
                                            const s8 *__restrict__ qs,
                                            const float *__restrict__ xd, int m, int m_pad,
                                            float *__restrict__ y, int add)
{
    typedef gemm90_cfg<FMT> C;
    extern __shared__ u8 smem_raw[];
    u8 *smem = smem_raw + ((1024 - (g90_smem_addr(smem_raw) & 1023)) & 1023);
    const int tid = threadIdx.x, wg = tid >> 7, w = (tid >> 5) & 3;
    const int g = (tid & 31) >> 2, t = tid & 3;
    const int r0 = 64 * wg + 16 * w + g; // the thread's smem rows r0, r0 + 8
    const int row_base = blockIdx.x * (SWIGLU ? 64 : 128), tok_base = blockIdx.y * 128;
    const int nb = k / 128;
    // 0x80808080 (k >= 0), but a value the compiler cannot fold into
    // immediates: g90_weights needs it in a register
    const u32 c80 = 0x80808080u | ((u32)k >> 31);

    pdl_launch_dependents(); // the next kernel may be scheduled (it waits for this one)
    float out[64];
#pragma unroll
    for (int i = 0; i < 64; i++)
        out[i] = 0.0f;
    int acc0[64], acc1[64];
    float dw0[2], dw1[2];

    const gemm90_copies plan = gemm90_plan<FMT, SWIGLU>(row_base, tok_base, wbits, wscales, ubits,
                                                        uscales, k, qs, xd, m_pad);
    // Launched with PDL (matmul.c, one-wave grids): the first stages' weights
    // are fetched while the previous kernel drains; activations and y only
    // after it has finished (griddepcontrol.wait; a no-op without PDL).
#pragma unroll
    for (int s = 0; s < G90_STAGES - 2; s++)
        if (s < nb)
            gemm90_load_weights<FMT>(g90_smem_addr(smem + s * C::STAGE), s, plan);
    pdl_wait_previous();
#pragma unroll
    for (int s = 0; s < G90_STAGES - 2; s++) {
        if (s < nb)
            gemm90_load_activations(g90_smem_addr(smem + s * C::STAGE), s, k, plan);
        asm volatile("cp.async.commit_group;");
    }
    for (int b = 0; b < nb; b += 2) {
        gemm90_step<FMT>(smem, b, nb, plan, acc0, dw0, acc1, dw1, out, r0, t, c80);
        if (b + 1 < nb)
            gemm90_step<FMT>(smem, b + 1, nb, plan, acc1, dw1, acc0, dw0, out, r0, t, c80);
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    asm volatile("cp.async.wait_group 0;");
    const u8 *last_dx = smem + ((nb - 1) % G90_STAGES) * C::STAGE + C::OFF_DX;
    if ((nb - 1) & 1) {
        g90_pin(acc1);
        gemm90_fold(out, acc1, dw1, last_dx, t);
    } else {
        g90_pin(acc0);
        gemm90_fold(out, acc0, dw0, last_dx, t);
    }

#pragma unroll
    for (int c = 0; c < 16; c++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int tok = tok_base + 8 * c + 2 * t + (e & 1);
            if (tok >= m)
                continue;
            if (SWIGLU) {
                const int row = row_base + 32 * wg + 8 * w + g;
                if (e < 2 && row < rows)
                    y[(size_t)tok * rows + row] = silu(out[4 * c + e]) * out[4 * c + e + 2];
            } else {
                const int row = row_base + r0 + 8 * (e >> 1);
                if (row < rows) {
                    float *o = y + (size_t)tok * rows + row;
                    *o = add ? *o + out[4 * c + e] : out[4 * c + e];
                }
            }
        }
}

#define GEMM90_ARGS                                                                              \
    const u8 *__restrict__ wbits, const u16 *__restrict__ wscales, const u8 *__restrict__ ubits, \
        const u16 *__restrict__ uscales, int rows, int k, const s8 *__restrict__ qs,             \
        const float *__restrict__ xd, const int *__restrict__ xs, int m, int m_pad,              \
        float *__restrict__ y, int add
/* Same arguments as gemm.cu's kernels (xs, the activation sums, unused). */
#define GEMM90(NAME, FMT, SWIGLU)                                                     \
    extern "C" __global__ void __launch_bounds__(G90_THREADS, 1) NAME(GEMM90_ARGS)    \
    {                                                                                 \
        (void)xs;                                                                     \
        gemm90_body<FMT, SWIGLU>(wbits, wscales, ubits, uscales, rows, k, qs, xd, m, m_pad, \
                                 y, add);                                             \
    }

GEMM90(bonsai_gemm90_q1, FMT_Q1, false)
GEMM90(bonsai_gemm90_tq2, FMT_TQ2, false)
GEMM90(bonsai_gemm90_swiglu_q1, FMT_Q1, true)
GEMM90(bonsai_gemm90_swiglu_tq2, FMT_TQ2, true)

#endif

/* gemm90h: the GEMM of gemm90.cu (Y = W X, Y += W X, or H = silu(G X) * (U X)
 * for many tokens) with fp16 operands: wgmma.mma_async m64nNk16 f32.f16.f16
 * (N = 128 or 256 tokens), sm_90a only (other targets compile none of this
 * file). matmul.c runs it instead of gemm90.cu and picks the tile (its
 * rule, from the H100 numbers in bench/NOTES.md: "CUDA GEMM in fp16 on
 * Hopper", "gemm90h with bulk copies", "gemm90h warp-specialized, B
 * multicast", "gemm90h with 256-token tiles"); more accurate than gemm90's
 * q8 activations.
 *
 * Reads weights in layout.cuh's upload layout and fp16 activations in
 * layout_f16.cuh's (quantize_f16.cu); writes y [m][rows] fp32 (token-major).
 * A (weights, from registers) is each weight already times its block scale,
 * built exactly in fp16: Q1 +-d_w (the scale's bits, sign flipped where
 * the bit is 0: shift, LOP3 per pair), TQ2 2 (c' - 1) d_w (c' = 0, 1, 2:
 * the code shifted to bits 14-15 and inverted is the fp16 -2, -0 or +2 of
 * 2 (c' - 1), then times d_w: shift, LOP3, HMUL2 per pair; exact for
 * |d_w| < 32768; the factor 2 leaves with the token scale). B is the
 * token's fp16 activations times 2^p. Products of fp16 are exact and the
 * tensor cores accumulate in fp32, so there is no per-block fold:
 * y = xinv * acc (TQ2: xinv / 2 * acc) once per output. Reference:
 * tests/test_cuda.c fp16_reference (float64 of the same fp16 activations).
 *
 * Tiles (gemm90h_cfg<FMT, N, KSPLIT>): a block of 256 threads = 2
 * warpgroups computes 128 weight rows (SwiGLU: 64 gate rows and the same
 * 64 up rows) x N tokens, N = 128 or 256, over all of k, or over 1 / KSPLIT
 * of it in a cluster of KSPLIT = 2 blocks (the k-halves; gemm90h_reduce
 * adds them). It steps over k in steps of 128 / SPB (SPB = N / 128 steps per
 * 128-block: 8 / SPB k16 slices, each one wgmma m64nNk16 per warpgroup, so
 * a step is the same tensor work at either N) through a 6-stage ring in
 * shared memory; a stage holds
 *   B : 32 KB of fp16 activations: for N = 128 block b's two k-halves of
 *       the token tile, 128 tokens x 128 bytes each, one 32 KB bulk copy of
 *       the tile's image; for N = 256 k-half kh of block b of the two token
 *       tiles 2T, 2T + 1 back to back (tokens 0..127, then 128..255), two
 *       16 KB bulk copies (one where the second tile is past m: its half is
 *       zeroed once); each the 128-byte-swizzle K-major layout of the wgmma
 *       descriptor (chunk c of token n at c ^ (n & 7), 8-token atoms of 1024
 *       bytes, the 32 atoms of N = 256 continuing across the two copies):
 *       quantize_f16.cu stores each (128-token tile, block) as this image;
 *       the copies complete on the stage's mbarrier;
 *   A : 128 rows of the block's weight bits (Q1 16 B, TQ2 32 B), by 16-byte
 *       cp.async (for N = 256 in both of the block's stages);
 *   the 128 rows' fp16 scales (16 octets), likewise.
 * Warpgroup wg owns smem rows 64wg..64wg+63; its warp w rows 16w..16w+15;
 * thread (g = lane / 4, t = lane % 4) builds the A fragments of rows g and
 * g + 8 (layout_f16.cuh: k-step j, pair h from bit / code i = 2j + h of
 * word t) of step s + 2 while steps s - 1 and s's wgmma run; four A
 * buffers (gemm90h_step says why; bench/NOTES.md, "gemm90h warp-specialized"
 * for the versions measured).
 * PDL as in gemm90.cu. SwiGLU: smem row 64wg + 16w + 8h + g holds matrix h
 * (0 gate, 1 up) row 32wg + 8w + g of the tile.
 * Shapes: rows padded to 128 on upload, k % 128 == 0, m_pad % 128 == 0.
 * Grid: (rows_pad / 128 (SwiGLU: / 64), ceil(m / N), KSPLIT); 256 threads;
 * dynamic shared memory gemm90h_cfg::SMEM (pipeline.c's table). */
#include "layout_f16.cuh"
#include "wgmma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

#define G90H_STAGES 6
#define G90H_INFLIGHT 2 // wgmma batches left in flight while the next A is built
#define G90H_BUFS (G90H_INFLIGHT + 2) // A register buffers
#define G90H_AHEAD (G90H_STAGES - 2 - G90H_INFLIGHT) // copy distance past the build

template <int FMT, int N>
struct gemm90h_cfg {
    static constexpr int SPB = N / 128; // steps per 128-block
    static constexpr int KS = 8 / SPB; // k16 slices (wgmma per warpgroup) per step
    static constexpr int ABYTES = FMT == FMT_Q1 ? 16 : 32; // weight bits per row and block
    static constexpr int OFF_B = 0; // 32 KB, 1024-aligned
    static constexpr int OFF_A = 32768;
    static constexpr int OFF_W = OFF_A + 128 * ABYTES;
    static constexpr int STAGE = (OFF_W + 256 + 1023) / 1024 * 1024;
    static constexpr int SMEM = G90H_STAGES * STAGE + 1024; // + alignment slack
};
static_assert(gemm90h_cfg<FMT_Q1, 128>::SMEM == 216064 &&
                  gemm90h_cfg<FMT_TQ2, 128>::SMEM == 228352 &&
                  gemm90h_cfg<FMT_Q1, 256>::SMEM == 216064 &&
                  gemm90h_cfg<FMT_TQ2, 256>::SMEM == 228352,
              "src/cuda/pipeline.c's bonsai_cuda_g90h_tiles");

/* d += A B for one k16 step: A from registers, B (N tokens) from shared
 * memory. */
template <int N>
struct g90h_mma;

template <>
struct g90h_mma<128> {
    static __device__ __forceinline__ void run(float (&d)[64], const u32 (&a)[4],
                                               unsigned long long desc)
    {
        asm volatile(
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
            "{"
            "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
            "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
            "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
            "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
            "{%64, %65, %66, %67}, %68, 1, 1, 1, 0;\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
              "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]),
              "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]),
              "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
              "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),
              "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
              "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),
              "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
              "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),
              "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]),
              "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
    }
};

template <>
struct g90h_mma<256> {
    static __device__ __forceinline__ void run(float (&d)[128], const u32 (&a)[4],
                                               unsigned long long desc)
    {
        asm volatile(
            "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
            "{"
            "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
            "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
            "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
            "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
            "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
            "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
            "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
            "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
            "{%128, %129, %130, %131}, %132, 1, 1, 1, 0;\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
              "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]),
              "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]),
              "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
              "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),
              "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
              "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),
              "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
              "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),
              "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]),
              "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]),
              "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]),
              "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]),
              "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]),
              "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),
              "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]),
              "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]),
              "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]),
              "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]),
              "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]),
              "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]),
              "+f"(d[127])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
    }
};

/* One thread's share of the copies, resolved before the k loop. */
struct gemm90h_copies {
    const u8 *a; // a chunk of the first block's weight bits (NULL: none)
    u32 a_dst;
    const u8 *w; // 8 rows' scales (threads 0..15; NULL: none)
    u32 w_dst;
    const u8 *b; // the first token tile's B image of the first block (layout_f16.cuh)
    size_t b_tile; // bytes from one token tile's images to the next's
    int b_tiles; // token tiles present (N = 256: 1 where the second is past m)
};

/* kb0: the first 128-block of this block's share of k. */
template <int FMT, int N, bool SWIGLU>
__device__ __forceinline__ gemm90h_copies gemm90h_plan(int row_base, int tok_base, int m,
                                                       int kb0, const u8 *wbits,
                                                       const u16 *wscales, const u8 *ubits,
                                                       const u16 *uscales, int k, const u32 *xh)
{
    typedef gemm90h_cfg<FMT, N> C;
    const int tid = threadIdx.x, nb = k / 128;
    const size_t row_bytes = (size_t)k / (FMT == FMT_Q1 ? 8 : 4);
    gemm90h_copies p;
    p.a = NULL;
    p.a_dst = 0;
    if (tid < C::ABYTES / 16 * 128) { // one (Q1) or two (TQ2) chunks per smem row
        const int r = tid / (C::ABYTES / 16), part = tid % (C::ABYTES / 16);
        const int mat = SWIGLU ? (r >> 3) & 1 : 0;
        const int row = SWIGLU ? row_base + 32 * (r >> 6) + 8 * ((r >> 4) & 3) + (r & 7)
                               : row_base + r;
        p.a = (mat ? ubits : wbits) + (size_t)row * row_bytes + (size_t)kb0 * C::ABYTES +
              part * 16;
        p.a_dst = C::OFF_A + r * C::ABYTES + part * 16;
    }
    p.w = NULL;
    p.w_dst = 0;
    if (tid < 16) { // scales of smem rows 8 tid .. 8 tid + 7
        const int r = 8 * tid;
        const int mat = SWIGLU ? (r >> 3) & 1 : 0;
        const int row = SWIGLU ? row_base + 32 * (r >> 6) + 8 * ((r >> 4) & 3) : row_base + r;
        p.w = (const u8 *)((mat ? uscales : wscales) + ((size_t)(row / 8) * nb + kb0) * 8);
        p.w_dst = C::OFF_W + 16 * tid;
    }
    p.b = (const u8 *)xh + ((size_t)(tok_base / 128) * nb + kb0) * 32768;
    p.b_tile = (size_t)nb * 32768;
    p.b_tiles = N == 256 && tok_base + 128 >= m ? 1 : C::SPB;
    return p;
}

/* Step s's copies into stage s % STAGES: its block's weights by cp.async
 * (never written by kernels: may run before griddepcontrol.wait), and its
 * activations by thread 0's bulk copies completing on the stage's mbarrier
 * (N = 128: the block's 32 KB image; N = 256: k-half s % 2 of block s / 2
 * of each token tile present, 16 KB each). */
template <int FMT, int N>
__device__ __forceinline__ void gemm90h_load_weights(u8 *smem, int s, const gemm90h_copies &p)
{
    typedef gemm90h_cfg<FMT, N> C;
    const u32 st = g90_smem_addr(smem + (s % G90H_STAGES) * C::STAGE);
    const int bb = s / C::SPB;
    if (p.a)
        g90_cp16(st + p.a_dst, p.a + (size_t)bb * C::ABYTES);
    if (p.w)
        g90_cp16(st + p.w_dst, p.w + (size_t)bb * 16);
}

template <int FMT, int N>
__device__ __forceinline__ void gemm90h_load_activations(u8 *smem, int s, u32 mbar,
                                                         const gemm90h_copies &p)
{
    typedef gemm90h_cfg<FMT, N> C;
    if (threadIdx.x != 0)
        return;
    const int st = s % G90H_STAGES;
    const u32 dst = g90_smem_addr(smem + st * C::STAGE + C::OFF_B), bar = mbar + 8 * st;
    if (N == 128) {
        g90_bulk_load(dst, p.b + (size_t)s * 32768, 32768, bar);
    } else {
        const u8 *src = p.b + (size_t)(s >> 1) * 32768 + (s & 1) * 16384;
        g90_mbar_expect(bar, 16384 * p.b_tiles);
        g90_bulk_copy(dst, src, 16384, bar);
        if (p.b_tiles > 1)
            g90_bulk_copy(dst + 16384, src + p.b_tile, 16384, bar);
    }
}

/* Step x's data is in its stage for every thread: wait for this thread's
 * cp.async copies (weights) and the stage's mbarrier (activations: the
 * async proxy wrote them, and only the wgmma, also async, read them: no
 * proxy fence), then queue the copies of step x + G90H_AHEAD (x + 2) into
 * the stage that step x - 4 used (its wgmma have finished in both
 * warpgroups: each waits for its own before this barrier; gemm90h_step).
 * mbar: shared address of the STAGES mbarriers (8 bytes each). */
template <int FMT, int N>
__device__ __forceinline__ void gemm90h_sync(u8 *smem, int x, int nsteps,
                                             const gemm90h_copies &plan, u32 mbar)
{
    asm volatile("cp.async.wait_group %0;" ::"n"(G90H_AHEAD - 1));
    g90_mbar_wait(mbar + 8 * (x % G90H_STAGES), (x / G90H_STAGES) & 1);
    __syncthreads();
    if (x + G90H_AHEAD < nsteps) {
        gemm90h_load_weights<FMT, N>(smem, x + G90H_AHEAD, plan);
        gemm90h_load_activations<FMT, N>(smem, x + G90H_AHEAD, mbar, plan);
    }
    asm volatile("cp.async.commit_group;");
}

/* The fp16 pair of weights i (layout_f16.cuh) of one row: Q1 from word w
 * (bits i, i + 16): +-d; TQ2 from word w (codes i & 7, (i & 7) + 8):
 * 2 (c' - 1) d; d2 = the row's fp16 scale in both halves. Exact. */
template <int FMT>
__device__ __forceinline__ u32 g90h_pair(u32 w, u32 d2, int i)
{
    if (FMT == FMT_Q1) // bit set: +d, clear: -d (sign bit flipped)
        return d2 ^ (~(w << (15 - i)) & 0x80008000u);
    // code bits b1 b0 at 15 14 (31 30), inverted: c' = 0 -> 0xC000 (-2),
    // 1 -> 0x8000 (-0), 2 -> 0x4000 (+2)
    const u32 f = ~(w << (14 - 2 * (i & 7))) & 0xC000C000u;
    u32 r;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(f), "r"(d2)); // exact: times 2 or 0
    return r;
}

/* Step s's A fragments (KH = s % SPB: its k-half for N = 256) from its
 * stage (layout_f16.cuh): slice jj is k16 step j = KS KH + jj of the block,
 * pairs i = 2j, 2j + 1. */
template <int FMT, int N, int KH>
__device__ __forceinline__ void gemm90h_build(const u8 *st, u32 (&a)[gemm90h_cfg<FMT, N>::KS][4],
                                              int r0, int t)
{
    typedef gemm90h_cfg<FMT, N> C;
    u32 w[2][2], d2[2]; // [row g, g + 8][word]
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const u8 *ra = st + C::OFF_A + (r0 + 8 * h) * C::ABYTES;
        if (FMT == FMT_Q1) {
            w[h][0] = w[h][1] = *(const u32 *)(ra + 4 * t);
        } else if (C::SPB == 2) { // k-half KH: word 2t + KH only
            w[h][0] = w[h][1] = *(const u32 *)(ra + 8 * t + 4 * KH);
        } else {
            const uint2 v = *(const uint2 *)(ra + 8 * t);
            w[h][0] = v.x;
            w[h][1] = v.y;
        }
        const u32 d = *(const u16 *)(st + C::OFF_W + 2 * (r0 + 8 * h));
        d2[h] = d | d << 16;
    }
#pragma unroll
    for (int jj = 0; jj < C::KS; jj++)
#pragma unroll
        for (int q = 0; q < 4; q++) { // a0 a1 a2 a3: (row g, g + 8) x (h = 0, 1)
            const int i = 2 * (C::KS * KH + jj) + (q >> 1);
            a[jj][q] = g90h_pair<FMT>(w[q & 1][i >> 3], d2[q & 1], i);
        }
}

/* Step s (KH = s % SPB, also (s + 2) % SPB): start its KS wgmma on a
 * (built two steps earlier), wait for step s - 2's (two batches stay in
 * flight: with one, measured up to 2% slower), then sync on step s + 2's
 * stage and build its A fragments into the buffer step s - 2 used. The
 * tensor cores never drain, and no A register is written while a wgmma
 * issued before it could read it is pending: a wgmma whose A registers
 * were written while an older wgmma was in flight would make ptxas
 * serialize every wgmma (C7513). */
template <int FMT, int N, int KH>
__device__ __forceinline__ void gemm90h_step(u8 *smem, int s, int nsteps,
                                             const gemm90h_copies &plan, float (&acc)[N / 2],
                                             u32 (&a)[gemm90h_cfg<FMT, N>::KS][4],
                                             u32 (&next)[gemm90h_cfg<FMT, N>::KS][4], int r0,
                                             int t, u32 mbar)
{
    typedef gemm90h_cfg<FMT, N> C;
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
    const unsigned long long desc =
        g90_desc(g90_smem_addr(smem + (s % G90H_STAGES) * C::STAGE + C::OFF_B));
#pragma unroll
    for (int jj = 0; jj < C::KS; jj++) // + 32 bytes per k16 slice, + 16384 per k-half (N = 128)
        g90h_mma<N>::run(acc, a[jj], desc + (jj >> 2) * 1024 + (jj & 3) * 2);
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(G90H_INFLIGHT) : "memory");
    if (s + 2 < nsteps) {
        gemm90h_sync<FMT, N>(smem, s + 2, nsteps, plan, mbar);
        gemm90h_build<FMT, N, KH>(smem + ((s + 2) % G90H_STAGES) * C::STAGE, next, r0, t);
    }
}

/* The k loop over nsteps steps (0: none, acc stays 0); the first
 * G90H_AHEAD steps' copies are in flight (gemm90h_body). */
template <int FMT, int N>
__device__ __forceinline__ void gemm90h_loop(u8 *smem, int nsteps, const gemm90h_copies &plan,
                                             float (&acc)[N / 2], int r0, int t, u32 mbar)
{
    typedef gemm90h_cfg<FMT, N> C;
    if (nsteps == 0)
        return;
    u32 a[G90H_BUFS][C::KS][4]; // step s's A in a[s % BUFS]
    gemm90h_sync<FMT, N>(smem, 0, nsteps, plan, mbar);
    gemm90h_build<FMT, N, 0>(smem, a[0], r0, t);
    if (nsteps > 1) {
        gemm90h_sync<FMT, N>(smem, 1, nsteps, plan, mbar);
        gemm90h_build<FMT, N, 1 % C::SPB>(smem + C::STAGE, a[1], r0, t);
    }
    static_assert(G90H_BUFS == 4, "four steps per pass: step s + j in buffer j, s % SPB = 0");
#define G90H_STEP(J)                                                                           \
    if (s + J < nsteps)                                                                        \
    gemm90h_step<FMT, N, J % C::SPB>(smem, s + J, nsteps, plan, acc, a[J], a[(J + 2) % 4], r0, \
                                     t, mbar)
    for (int s = 0; s < nsteps; s += G90H_BUFS) {
        G90H_STEP(0);
        G90H_STEP(1);
        G90H_STEP(2);
        G90H_STEP(3);
    }
#undef G90H_STEP
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    asm volatile("cp.async.wait_group 0;");
}

__device__ __forceinline__ void g90h_cluster_sync()
{
    asm volatile("barrier.cluster.arrive.release.aligned;\n"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

/* Split k (KSPLIT = 2): block rank r of the cluster keeps tokens 128r ..
 * 128r + 127 of the tile (acc[64r .. 64r + 63], moved to acc[0..63]) and
 * adds the other block's sums of them, which that block stores into this
 * block's shared memory (free once both have left their k loops: the first
 * cluster barrier), as float4 j of thread tid at 16 (256 j + tid). */
__device__ __forceinline__ void gemm90h_reduce(u8 *smem, float (&acc)[128], u32 rank)
{
#pragma unroll
    for (int i = 0; i < 64; i++) { // acc[0..63]: kept; acc[64..127]: sent
        const float lo = acc[i], hi = acc[64 + i];
        acc[i] = rank ? hi : lo;
        acc[64 + i] = rank ? lo : hi;
    }
    g90h_cluster_sync();
    const u32 mine = g90_smem_addr(smem) + 16 * threadIdx.x;
    u32 peer;
    asm("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(peer) : "r"(mine), "r"(rank ^ 1));
#pragma unroll
    for (int j = 0; j < 16; j++)
        asm volatile("st.shared::cluster.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(peer + 4096 * j),
                     "f"(acc[64 + 4 * j]), "f"(acc[65 + 4 * j]), "f"(acc[66 + 4 * j]),
                     "f"(acc[67 + 4 * j])
                     : "memory");
    g90h_cluster_sync();
#pragma unroll
    for (int j = 0; j < 16; j++) {
        const float4 v = *(const float4 *)(smem + 16 * threadIdx.x + 4096 * j);
        acc[4 * j] += v.x;
        acc[4 * j + 1] += v.y;
        acc[4 * j + 2] += v.z;
        acc[4 * j + 3] += v.w;
    }
}

template <int FMT, int N, int KSPLIT, bool SWIGLU>
__device__ __forceinline__ void gemm90h_body(const u8 *__restrict__ wbits,
                                             const u16 *__restrict__ wscales,
                                             const u8 *__restrict__ ubits,
                                             const u16 *__restrict__ uscales, int rows, int k,
                                             const u32 *__restrict__ xh,
                                             const float *__restrict__ xinv, int m,
                                             float *__restrict__ y, int add)
{
    typedef gemm90h_cfg<FMT, N> C;
    static_assert(KSPLIT == 1 || (KSPLIT == 2 && N == 256), "k split in two for N = 256");
    extern __shared__ u8 smem_raw[];
    u8 *smem = smem_raw + ((1024 - (g90_smem_addr(smem_raw) & 1023)) & 1023);
    const int tid = threadIdx.x, wg = tid >> 7, w = (tid >> 5) & 3;
    const int g = (tid & 31) >> 2, t = tid & 3;
    const int r0 = 64 * wg + 16 * w + g; // the thread's smem rows r0, r0 + 8
    const int row_base = blockIdx.x * (SWIGLU ? 64 : 128);
    int tok_base = blockIdx.y * N;
    u32 rank = 0;
    if (KSPLIT > 1)
        asm("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    const int nb = k / 128, nb0 = (nb + KSPLIT - 1) / KSPLIT; // rank 0's share
    const int kb0 = rank ? nb0 : 0, my_nb = rank ? nb - nb0 : nb0;

    pdl_launch_dependents(); // the next kernel may be scheduled (it waits for this one)
    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; i++)
        acc[i] = 0.0f;
    __shared__ __align__(8) unsigned long long mbars[G90H_STAGES];
    const u32 mbar = g90_smem_addr(mbars);
    const gemm90h_copies plan = gemm90h_plan<FMT, N, SWIGLU>(row_base, tok_base, m, kb0, wbits,
                                                             wscales, ubits, uscales, k, xh);
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < G90H_STAGES; s++)
            g90_mbar_init(mbar + 8 * s, 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    if (plan.b_tiles < C::SPB) { // tokens 128..255 past m: zeros for the wgmma
        for (int q = tid; q < G90H_STAGES * 1024; q += 256)
            *(uint4 *)(smem + (q >> 10) * C::STAGE + C::OFF_B + 16384 + 16 * (q & 1023)) =
                make_uint4(0, 0, 0, 0);
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
    __syncthreads();
    const int nsteps = my_nb * C::SPB;
#pragma unroll
    for (int s = 0; s < G90H_AHEAD; s++)
        if (s < nsteps)
            gemm90h_load_weights<FMT, N>(smem, s, plan);
    pdl_wait_previous();
#pragma unroll
    for (int s = 0; s < G90H_AHEAD; s++) {
        if (s < nsteps)
            gemm90h_load_activations<FMT, N>(smem, s, mbar, plan);
        asm volatile("cp.async.commit_group;");
    }
    // the tile's token scales (TQ2: halved, its A is 2 (c' - 1) d), for the
    // epilogue: one shared-memory load per 8 tokens there instead of a
    // chain of global ones; xinv holds m_pad tokens (a multiple of 128)
    __shared__ float xs[N];
    const int m_pad = (m + 127) & ~127;
    for (int i = tid; i < N; i += 256)
        xs[i] = tok_base + i < m_pad ? xinv[tok_base + i] * (FMT == FMT_Q1 ? 1.0f : 0.5f) : 0.0f;
    gemm90h_loop<FMT, N>(smem, nsteps, plan, acc, r0, t, mbar);
#pragma unroll
    for (int i = 0; i < N / 2; i++)
        asm volatile("" : "+f"(acc[i])::"memory"); // no read above the wait

    constexpr int NC = N / 8 / KSPLIT; // groups of 8 tokens this block writes
    int xs0 = 0; // the first of them in xs
    if (KSPLIT > 1) {
        gemm90h_reduce(smem, *(float(*)[128]) & acc, rank);
        xs0 = 128 * rank;
        tok_base += xs0;
    }
    __syncthreads(); // xs written (nsteps = 0 has no barrier above)
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const float2 s = *(const float2 *)(xs + xs0 + 8 * c + 2 * t);
#pragma unroll
        for (int e = 0; e < (SWIGLU ? 2 : 4); e++) {
            const int tok = tok_base + 8 * c + 2 * t + (e & 1);
            const float sc = e & 1 ? s.y : s.x;
            if (tok >= m)
                continue;
            if (SWIGLU) { // gate in row g (e = 0, 1), up in row g + 8 (e + 2)
                const int row = row_base + 32 * wg + 8 * w + g;
                if (row < rows)
                    y[(size_t)tok * rows + row] = silu(acc[4 * c + e] * sc) * (acc[4 * c + e + 2] * sc);
            } else {
                const int row = row_base + r0 + 8 * (e >> 1);
                if (row < rows) {
                    float *o = y + (size_t)tok * rows + row;
                    *o = add ? *o + acc[4 * c + e] * sc : acc[4 * c + e] * sc;
                }
            }
        }
    }
}

#define GEMM90H_ARGS                                                                             \
    const u8 *__restrict__ wbits, const u16 *__restrict__ wscales, const u8 *__restrict__ ubits, \
        const u16 *__restrict__ uscales, int rows, int k, const u32 *__restrict__ xh,            \
        const float *__restrict__ xinv, int m, float *__restrict__ y, int add
#define GEMM90H(NAME, FMT, N, KSPLIT, SWIGLU, ATTR)                                             \
    extern "C" __global__ void ATTR __launch_bounds__(256, 1) NAME(GEMM90H_ARGS)                \
    {                                                                                           \
        gemm90h_body<FMT, N, KSPLIT, SWIGLU>(wbits, wscales, ubits, uscales, rows, k, xh, xinv, \
                                             m, y, add);                                        \
    }
#define G90H_ONE
#define G90H_PAIR __cluster_dims__(1, 1, 2)

// 128 rows x 128 tokens
GEMM90H(bonsai_gemm90h_q1, FMT_Q1, 128, 1, false, G90H_ONE)
GEMM90H(bonsai_gemm90h_tq2, FMT_TQ2, 128, 1, false, G90H_ONE)
GEMM90H(bonsai_gemm90h_swiglu_q1, FMT_Q1, 128, 1, true, G90H_ONE)
GEMM90H(bonsai_gemm90h_swiglu_tq2, FMT_TQ2, 128, 1, true, G90H_ONE)
// 128 rows x 256 tokens
GEMM90H(bonsai_gemm90h_q1_128x256, FMT_Q1, 256, 1, false, G90H_ONE)
GEMM90H(bonsai_gemm90h_tq2_128x256, FMT_TQ2, 256, 1, false, G90H_ONE)
GEMM90H(bonsai_gemm90h_swiglu_q1_128x256, FMT_Q1, 256, 1, true, G90H_ONE)
GEMM90H(bonsai_gemm90h_swiglu_tq2_128x256, FMT_TQ2, 256, 1, true, G90H_ONE)
// 128 rows x 256 tokens, k in halves over a cluster of 2
GEMM90H(bonsai_gemm90h_q1_128x256k2, FMT_Q1, 256, 2, false, G90H_PAIR)
GEMM90H(bonsai_gemm90h_tq2_128x256k2, FMT_TQ2, 256, 2, false, G90H_PAIR)
GEMM90H(bonsai_gemm90h_swiglu_q1_128x256k2, FMT_Q1, 256, 2, true, G90H_PAIR)
GEMM90H(bonsai_gemm90h_swiglu_tq2_128x256k2, FMT_TQ2, 256, 2, true, G90H_PAIR)

#endif

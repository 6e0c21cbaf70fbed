/* gemm90h: the GEMM of gemm90.cu (Y = W X, Y += W X, or H = silu(G X) * (U X)
 * for many tokens) with fp16 operands: wgmma.mma_async m64n128k16
 * f32.f16.f16, sm_90a only (other targets compile none of this file).
 * matmul.c runs it instead of gemm90.cu below 1024 tokens (its rule, from
 * the H100 numbers in bench/NOTES.md: "CUDA GEMM in fp16 on Hopper",
 * "gemm90h with bulk copies", "gemm90h warp-specialized, B multicast");
 * more accurate than gemm90's q8 activations.
 *
 * Reads weights in layout.cuh's upload layout and fp16 activations in
 * layout_f16.cuh's (quantize_f16.cu); writes y [m][rows] fp32 (token-major).
 * A (weights, from registers) is each weight already times its block scale,
 * built exactly in fp16: Q1 +-d_w (the scale's bits, sign flipped where
 * the bit is 0), TQ2 (c' - 1) d_w (c' = 0, 1, 2). B is the token's fp16
 * activations times 2^p. Products of fp16 are exact and the tensor cores
 * accumulate in fp32, so there is no per-block fold: y = xinv * acc once
 * per output. Reference: tests/test_cuda.c fp16_reference (float64 of the
 * same fp16 activations).
 *
 * A block of 256 threads = 2 warpgroups computes 128 weight rows (SwiGLU: 64
 * gate rows and the same 64 up rows) x 128 tokens, stepping over k one
 * 128-block at a time through a 6-stage ring in shared memory; a stage holds
 *   B : 128 tokens x 256 bytes as two k-halves of 128 tokens x 128 bytes,
 *       each the 128-byte-swizzle K-major layout of the wgmma descriptor
 *       (chunk c of token n at c ^ (n & 7), 8-token atoms of 1024 bytes):
 *       quantize_f16.cu stores each (token tile, block) as this image, so
 *       one 32 KB bulk copy (cp.async.bulk, completing on the stage's
 *       mbarrier) fills it;
 *   A : 128 rows of weight bits (Q1 16 B, TQ2 32 B), by 16-byte cp.async;
 *   the 128 rows' fp16 scales (16 octets), likewise.
 * Warpgroup wg owns smem rows 64wg..64wg+63; its warp w rows 16w..16w+15;
 * thread (g = lane / 4, t = lane % 4) builds the A fragments of rows g and
 * g + 8 (layout_f16.cuh: k-step j, pair h from bit / code i = 2j + h of
 * word t) of block b + 2 while blocks b - 1 and b's wgmma run; four A
 * buffers (gemm90h_step says why; bench/NOTES.md, "gemm90h warp-specialized"
 * for the versions measured).
 * PDL as in gemm90.cu. SwiGLU: smem row 64wg + 16w + 8h + g holds matrix h
 * (0 gate, 1 up) row 32wg + 8w + g of the tile.
 * Shapes: rows padded to 128 on upload, k % 128 == 0, m_pad % 128 == 0.
 * Grid: (rows_pad / 128 (SwiGLU: / 64), ceil(m / 128)); 256 threads;
 * dynamic shared memory gemm90h_cfg<FMT>::SMEM (Q1 216064, TQ2 228352). */
#include "layout_f16.cuh"
#include "wgmma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

#define G90H_STAGES 6
#define G90H_INFLIGHT 2 // wgmma batches left in flight while the next A is built
#define G90H_BUFS (G90H_INFLIGHT + 2) // A register buffers
#define G90H_AHEAD (G90H_STAGES - 2 - G90H_INFLIGHT) // copy distance past the build

template <int FMT>
struct gemm90h_cfg {
    static constexpr int ABYTES = FMT == FMT_Q1 ? 16 : 32;
    static constexpr int OFF_B = 0; // two k-halves, 16384 bytes each, 1024-aligned
    static constexpr int OFF_A = 2 * 128 * 128;
    static constexpr int OFF_W = OFF_A + 128 * ABYTES;
    static constexpr int STAGE = (OFF_W + 256 + 1023) / 1024 * 1024;
    static constexpr int SMEM = G90H_STAGES * STAGE + 1024; // + alignment slack
};
static_assert(gemm90h_cfg<FMT_Q1>::SMEM == 216064 && gemm90h_cfg<FMT_TQ2>::SMEM == 228352,
              "src/cuda/pipeline.c's gemm90h_smem");

/* d += A B for one k16 step: A from registers, B from shared memory. */
__device__ __forceinline__ void g90h_wgmma(float (&d)[64], const u32 (&a)[4],
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
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),
          "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),
          "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]),
          "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
          "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),
          "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]),
          "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
}

/* One thread's share of a stage's copies, resolved before the k loop. */
struct gemm90h_copies {
    const u8 *a; // A chunk (NULL: none)
    u32 a_dst;
    const u8 *w; // 8 rows' scales (threads 0..15; NULL: none)
    u32 w_dst;
    const u8 *b; // the token tile's B images (layout_f16.cuh), block b at 32768 b
};

template <int FMT, bool SWIGLU>
__device__ __forceinline__ gemm90h_copies gemm90h_plan(int row_base, int tok_base,
                                                       const u8 *wbits, const u16 *wscales,
                                                       const u8 *ubits, const u16 *uscales,
                                                       int k, const u32 *xh)
{
    typedef gemm90h_cfg<FMT> C;
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
        p.a = (mat ? ubits : wbits) + (size_t)row * row_bytes + part * 16;
        p.a_dst = C::OFF_A + r * C::ABYTES + part * 16;
    }
    p.w = NULL;
    p.w_dst = 0;
    if (tid < 16) { // scales of smem rows 8 tid .. 8 tid + 7
        const int r = 8 * tid;
        const int mat = SWIGLU ? (r >> 3) & 1 : 0;
        const int row = SWIGLU ? row_base + 32 * (r >> 6) + 8 * ((r >> 4) & 3) : row_base + r;
        p.w = (const u8 *)((mat ? uscales : wscales) + (size_t)(row / 8) * nb * 8);
        p.w_dst = C::OFF_W + 16 * tid;
    }
    p.b = (const u8 *)xh + (size_t)(tok_base / 128) * nb * 32768;
    return p;
}

/* Block b's weight copies (never written by kernels: may run before
 * griddepcontrol.wait). */
template <int FMT>
__device__ __forceinline__ void gemm90h_load_weights(u32 st, int b, const gemm90h_copies &p)
{
    if (p.a)
        g90_cp16(st + p.a_dst, p.a + (size_t)b * gemm90h_cfg<FMT>::ABYTES);
    if (p.w)
        g90_cp16(st + p.w_dst, p.w + (size_t)b * 16);
}

/* Block b's activations: one 32 KB bulk copy of its stage image by thread
 * 0, completing on the stage's mbarrier. */
template <int FMT>
__device__ __forceinline__ void gemm90h_load_activations(u32 st, int b, u32 mbar,
                                                         const gemm90h_copies &p)
{
    if (threadIdx.x == 0)
        g90_bulk_load(st + gemm90h_cfg<FMT>::OFF_B, p.b + (size_t)b * 32768, 32768, mbar);
}

/* The fp16 pair of weights i (layout_f16.cuh) of one row: Q1 from word w
 * (bits i, i + 16), TQ2 from words w, w2 (codes (i&7), (i&7) + 8 of word
 * i >> 3); d2 = the row's fp16 scale in both halves; magic = 0x64006400 in
 * a register (so that TQ2's mask and or are one LOP3). Exact. */
template <int FMT>
__device__ __forceinline__ u32 g90h_pair(u32 w, u32 w2, u32 d2, int i, u32 magic)
{
    if (FMT == FMT_Q1) // bit set: +d, clear: -d (sign bit flipped)
        return d2 ^ (~(w << (15 - i)) & 0x80008000u);
    u32 v; // (codes & 0x00030003) | 0x64006400: fp16 1024 + c'
    asm("lop3.b32 %0, %1, 0x00030003, %2, 0xEA;"
        : "=r"(v) : "r"((i >> 3 ? w2 : w) >> (2 * (i & 7))), "r"(magic));
    u32 r;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(v), "r"(0x64016401u)); // - 1025: c' - 1
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(r), "r"(d2)); // times d_w, exact
    return r;
}

/* Block b's data is in its stage for every thread: wait for this thread's
 * cp.async copies (weights) and the stage's mbarrier (activations: the
 * async proxy wrote them, and only the wgmma, also async, read them: no
 * proxy fence), then queue the copies of block b + G90H_AHEAD (b + 2)
 * into the stage that block b - 4 used (its wgmma have finished in both
 * warpgroups: each waits for its own before this barrier; gemm90h_step).
 * mbar: shared address of the STAGES mbarriers (8 bytes each). */
template <int FMT>
__device__ __forceinline__ void gemm90h_sync(u8 *smem, int b, int nb, const gemm90h_copies &plan,
                                             u32 mbar)
{
    typedef gemm90h_cfg<FMT> C;
    asm volatile("cp.async.wait_group %0;" ::"n"(G90H_AHEAD - 1));
    g90_mbar_wait(mbar + 8 * (b % G90H_STAGES), (b / G90H_STAGES) & 1);
    __syncthreads();
    if (b + G90H_AHEAD < nb) {
        const int s = (b + G90H_AHEAD) % G90H_STAGES;
        const u32 st = g90_smem_addr(smem + s * C::STAGE);
        gemm90h_load_weights<FMT>(st, b + G90H_AHEAD, plan);
        gemm90h_load_activations<FMT>(st, b + G90H_AHEAD, mbar + 8 * s, plan);
    }
    asm volatile("cp.async.commit_group;");
}

/* Block b's A fragments from its stage (layout_f16.cuh). */
template <int FMT>
__device__ __forceinline__ void gemm90h_build(const u8 *st, u32 (&a)[8][4], int r0, int t,
                                              u32 magic)
{
    typedef gemm90h_cfg<FMT> C;
    u32 w[2][2], d2[2]; // [row g, g + 8]
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const u8 *ra = st + C::OFF_A + (r0 + 8 * h) * C::ABYTES;
        if (FMT == FMT_Q1) {
            w[h][0] = *(const u32 *)(ra + 4 * t);
            w[h][1] = 0;
        } else {
            const uint2 v = *(const uint2 *)(ra + 8 * t);
            w[h][0] = v.x;
            w[h][1] = v.y;
        }
        const u32 d = *(const u16 *)(st + C::OFF_W + 2 * (r0 + 8 * h));
        d2[h] = d | d << 16;
    }
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int i = 0; i < 4; i++) // a0 a1 a2 a3: (row g, g + 8) x (h = 0, 1)
            a[j][i] = g90h_pair<FMT>(w[i & 1][0], w[i & 1][1], d2[i & 1], 2 * j + (i >> 1),
                                     magic);
}

/* Block b: start its 8 wgmma on a (built two steps earlier), wait for
 * block b - 2's (two batches stay in flight: with one, measured up to 2%
 * slower), then sync on block b + 2's stage and build its A fragments into
 * the buffer block b - 2 used. The tensor cores never drain, and no A
 * register is written while a wgmma
 * issued before it could read it is pending: a wgmma whose A registers
 * were written while an older wgmma was in flight would make ptxas
 * serialize every wgmma (C7513). */
template <int FMT>
__device__ __forceinline__ void gemm90h_step(u8 *smem, int b, int nb, const gemm90h_copies &plan,
                                             float (&acc)[64], u32 (&a)[8][4],
                                             u32 (&next)[8][4], int r0, int t, u32 magic,
                                             u32 mbar)
{
    typedef gemm90h_cfg<FMT> C;
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
    const unsigned long long desc =
        g90_desc(g90_smem_addr(smem + (b % G90H_STAGES) * C::STAGE + C::OFF_B));
#pragma unroll
    for (int j = 0; j < 8; j++) // + 32 bytes per k-step, + 16384 per k-half
        g90h_wgmma(acc, a[j], desc + (j >> 2) * 1024 + (j & 3) * 2);
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(G90H_INFLIGHT) : "memory");
    if (b + 2 < nb) {
        gemm90h_sync<FMT>(smem, b + 2, nb, plan, mbar);
        gemm90h_build<FMT>(smem + ((b + 2) % G90H_STAGES) * C::STAGE, next, r0, t, magic);
    }
}

template <int FMT, bool SWIGLU>
__device__ __forceinline__ void gemm90h_body(const u8 *__restrict__ wbits,
                                             const u16 *__restrict__ wscales,
                                             const u8 *__restrict__ ubits,
                                             const u16 *__restrict__ uscales, int rows, int k,
                                             const u32 *__restrict__ xh,
                                             const float *__restrict__ xinv, int m,
                                             float *__restrict__ y, int add)
{
    typedef gemm90h_cfg<FMT> C;
    extern __shared__ u8 smem_raw[];
    u8 *smem = smem_raw + ((1024 - (g90_smem_addr(smem_raw) & 1023)) & 1023);
    const int tid = threadIdx.x, wg = tid >> 7, w = (tid >> 5) & 3;
    const int g = (tid & 31) >> 2, t = tid & 3;
    const int r0 = 64 * wg + 16 * w + g; // the thread's smem rows r0, r0 + 8
    const int row_base = blockIdx.x * (SWIGLU ? 64 : 128), tok_base = blockIdx.y * 128;
    const int nb = k / 128;
    // 0x64006400 (k >= 0), but a value the compiler cannot fold into
    // immediates: g90h_pair needs it in a register
    const u32 magic = 0x64006400u | ((u32)k >> 31);

    pdl_launch_dependents(); // the next kernel may be scheduled (it waits for this one)
    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; i++)
        acc[i] = 0.0f;
    __shared__ __align__(8) unsigned long long mbars[G90H_STAGES];
    const u32 mbar = g90_smem_addr(mbars);
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < G90H_STAGES; s++)
            g90_mbar_init(mbar + 8 * s, 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    const gemm90h_copies plan = gemm90h_plan<FMT, SWIGLU>(row_base, tok_base, wbits, wscales,
                                                          ubits, uscales, k, xh);
#pragma unroll
    for (int s = 0; s < G90H_AHEAD; s++)
        if (s < nb)
            gemm90h_load_weights<FMT>(g90_smem_addr(smem + s * C::STAGE), s, plan);
    pdl_wait_previous();
#pragma unroll
    for (int s = 0; s < G90H_AHEAD; s++) {
        if (s < nb)
            gemm90h_load_activations<FMT>(g90_smem_addr(smem + s * C::STAGE), s, mbar + 8 * s,
                                          plan);
        asm volatile("cp.async.commit_group;");
    }
    u32 a[G90H_BUFS][8][4]; // block b's A in a[b % BUFS]
    gemm90h_sync<FMT>(smem, 0, nb, plan, mbar);
    gemm90h_build<FMT>(smem, a[0], r0, t, magic);
    if (nb > 1) {
        gemm90h_sync<FMT>(smem, 1, nb, plan, mbar);
        gemm90h_build<FMT>(smem + C::STAGE, a[1], r0, t, magic);
    }
    for (int b = 0; b < nb; b += G90H_BUFS) {
#pragma unroll
        for (int j = 0; j < G90H_BUFS; j++)
            if (b + j < nb)
                gemm90h_step<FMT>(smem, b + j, nb, plan, acc, a[j], a[(j + 2) % G90H_BUFS], r0,
                                  t, magic, mbar);
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    asm volatile("cp.async.wait_group 0;");
#pragma unroll
    for (int i = 0; i < 64; i++)
        asm volatile("" : "+f"(acc[i])::"memory"); // no read above the wait

#pragma unroll
    for (int c = 0; c < 16; c++) {
        const float2 s = *(const float2 *)(xinv + tok_base + 8 * c + 2 * t);
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
#define GEMM90H(NAME, FMT, SWIGLU)                                                         \
    extern "C" __global__ void __launch_bounds__(256, 1) NAME(GEMM90H_ARGS)                \
    {                                                                                      \
        gemm90h_body<FMT, SWIGLU>(wbits, wscales, ubits, uscales, rows, k, xh, xinv, m, y, \
                                  add);                                                    \
    }

GEMM90H(bonsai_gemm90h_q1, FMT_Q1, false)
GEMM90H(bonsai_gemm90h_tq2, FMT_TQ2, false)
GEMM90H(bonsai_gemm90h_swiglu_q1, FMT_Q1, true)
GEMM90H(bonsai_gemm90h_swiglu_tq2, FMT_TQ2, true)

#endif

/* gemv_b1: y = W x (add = 0) or y += W x (add = 1) for ONE token on the
 * binary tensor cores (mma.m16n8k128 .b1 with AND + POPC, sm_80 and later),
 * with the weights asked into L2 before the PDL wait.
 *
 * Inputs: the weights in the upload layout of layout.cuh (bits
 * [rows_pad][k/8] or recoded 2-bit codes [rows_pad][k/4]; scales
 * [rows_pad/8][k/128][8] fp16), d and s of the token's q8 blocks (layout.cuh,
 * [k/128][m_pad], token 0) and the same q8 blocks as 8 bit planes
 * (quantize.cu): planes [k/128][8][4] u32, bit i of chunk word c of plane p
 * is bit p (two's complement) of q at element e(c, i) = 32c + i (Q1: the
 * order of the weight bits of word c) or 32c + 16 (i & 1) + i / 2 (TQ2: the
 * order of the low-bit and high-bit words below).
 * Output: y [rows] fp32.
 *
 * Q1 fragments: for the block pair j of a unit, one ldmatrix.x4 gives lane
 * (g, t) (g = lane / 4, t = lane % 4) word t of rows g and g + 8 of blocks
 * 2j and 2j + 1 (the A fragments of two mma, k = one whole block), and B
 * column n is plane n of that block (lane l holds word l of the block's
 * planes, as quantize.cu stores them), so each mma leaves D[r][n] =
 * popc(w_r AND plane n) with lane (g, t) holding planes 2t, 2t + 1 of rows
 * g, g + 8. These counts (<= 128) are packed as bytes into the A fragment of
 * a u8 x s8 mma (m16n8k32) whose B holds c_p = 2^p (c_7 = -128) in the rows
 * of block b and column b: two of them (pairs 2m, 2m + 1) sum the planes
 * across the quad exactly, S = sum_p c_p D_p = the sum of q over the set
 * bits, leaving S of rows g, g + 8 and blocks 2t, 2t + 1 of the unit in
 * lane (g, t), which adds d_w d_x (2 S - s_x) for each to its fp32 sums.
 * TQ2 fragments: a quad holds two consecutive 128-blocks of the rows g and
 * g + 8 of a 16-row group: thread t loads 16 bytes = code words 4 (t%2) ..
 * 4 (t%2) + 3 (chunks 2 (t%2), 2 (t%2) + 1) of block 2j + t / 2. One mma
 * takes the low-bit or high-bit word of chunk 2 (t%2) + s (slot s) per
 * thread and row, and B is block diagonal: column n belongs to block
 * 2j + n / 4 and is nonzero only in the k-range of the threads holding that
 * block, where it holds plane 4 ph + n % 4 of the matching chunk (ph = 0, 1:
 * two accumulator sets). Over the slots each D[r][n] becomes popc(w_r AND
 * plane) over the whole block (low bits once and high bits twice into the
 * same accumulators), thread (g, t) ends with planes 2 (t%2) + {0, 1} +
 * {0, 4} of its own block t / 2 for rows g and g + 8 and folds them with
 * 4 IMAD into its half of S' = sum c' q; partner threads (t ^ 1) swap the
 * halves as integers, so thread t holds S' - s_x of row g + 8 (t%2) whole
 * (s_x from the threads with t % 2 == 0) and adds d_w d_x (S' - s_x) to its
 * fp32 partial sum. Sums within a block are exact integers (Q1 and TQ2), so
 * the result matches bonsai_ref_mm_q8 on the same activations up to fp32
 * summation order (fixed: deterministic).
 *
 * Grid: block i owns the 16-row groups [i G / n, (i + 1) G / n) of the G =
 * rows_pad / 16 (n = gridDim.x); rows past rows are the upload's zero
 * padding, read and not written. A unit is (group, 128 bytes of each of its
 * 16 rows: 4 block pairs of Q1 or 2 of TQ2); the 16 warps take units
 * round-robin. Each warp streams its units through a ring of S stages in
 * shared memory with cp.async (16-byte pieces, swizzled against bank
 * conflicts; blocks past k zero-filled), so S units per warp are in flight
 * beyond what registers could hold. Launched with programmatic dependent
 * launch, a grid of at most one block per SM with at most half an SM's
 * registers, warps and shared memory: the next launch's blocks are resident
 * while this one runs. Weights are never written by kernels, so before
 * griddepcontrol.wait a block fills its rings (S units per warp; at most
 * `depth` copies per lane in flight where depth > 0) and may ask
 * L2 for the bits and scales of the groups past that first fill
 * (cp.async.bulk.prefetch.L2, sm_90; pf16 sixteenths of them, 8 by default:
 * bench/NOTES.md gemv4); the copies carry an L2 evict_first
 * policy (evict_first = 1) so that lines already used leave L2 first. A
 * block lets the next launch start (griddepcontrol.launch_dependents) at
 * its start (trigger 0), right after the wait (3), after its B fragments
 * (1) or after its units (2); matmul.c picks 0 with a throttled fill,
 * depth 1, 2 or 4 by the matrix's size against L2 (bench/NOTES.md
 * gemv5-gemv7). After the wait: the B
 * fragments of every block pair, d and s to shared memory, the units, the
 * partial sums per (part, row) to shared memory, summed in part order.
 * Shared memory (bytes; b1_plan_for in matmul.c computes the same):
 * 16 warps x S x (16 x 128 + 64 CH) rings (CH = 4 block pairs per unit for
 * Q1, 2 for TQ2), then B fragments and d, s: parts CH 384 (Q1) or 544
 * (TQ2), then parts max_groups 64 (nb = k/128, parts = ceil(nb / 2 / CH),
 * max_groups = ceil(G / n)). */
#include "layout.cuh"

#define B1_WARPS 16
#define B1_MAGIC 0x4B400000 /* float bits of 1.5 * 2^23: int v -> float via bits */
#define B1_MAGIC_F 12582912.0f
#define B1_PF_CHUNK 16384 /* bytes per bulk prefetch */

/* d += A B over one 128-bit k-slice: popc(a AND b) sums. */
__device__ __forceinline__ void b1_mma(int (&d)[4], u32 a0, u32 a1, u32 b)
{
    asm("mma.sync.aligned.m16n8k128.row.col.s32.b1.b1.s32.and.popc "
        "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(b));
}

/* d += A B, A 16 x 32 u8 (a0, a2: row g; a1, a3: row g + 8), B 32 x 8 s8. */
__device__ __forceinline__ void b1_imma(int (&d)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0,
                                        u32 b1)
{
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Four 8 x 16-byte matrices from shared memory (lane l gives row l % 8 of
 * matrix l / 8): r[m] = word lane % 4 of row lane / 4 of matrix m. */
__device__ __forceinline__ uint4 b1_ldsm4(u32 addr)
{
    uint4 r;
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "r"(addr));
    return r;
}

/* Bytes (a, b, c, d) of four values < 256. */
__device__ __forceinline__ u32 b1_pack(int a, int b, int c, int d)
{
    return __byte_perm(__byte_perm(a, b, 0x0040), __byte_perm(c, d, 0x0040), 0x5410);
}

/* The exact float of v for |v| < 2^22, given MAGIC + v (an add, no I2F). */
__device__ __forceinline__ float b1_to_float(int biased)
{
    return __int_as_float(biased) - B1_MAGIC_F;
}

/* 16 bytes global -> shared, zero-filled where !valid (src then unread), with
 * the L2 policy of the call. */
__device__ __forceinline__ void b1_cp16(u32 dst, const void *src, bool valid,
                                        unsigned long long pol)
{
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;"
                 ::"r"(dst), "l"(src), "r"(valid ? 16 : 0), "l"(pol) : "memory");
}

__device__ __forceinline__ void b1_prefetch_l2(const u8 *p, u32 bytes)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#endif
}

/* Ask L2 for bytes [0, n) at p (n, p multiples of 16); one thread. */
__device__ __forceinline__ void b1_prefetch_range(const u8 *p, size_t n)
{
    for (size_t o = 0; o < n; o += B1_PF_CHUNK)
        b1_prefetch_l2(p + o, (u32)min((size_t)B1_PF_CHUNK, n - o));
}

/* Before the wait: the copies issued so far become a group, and the thread
 * waits until at most depth - 1 of its groups are in flight (depth 1 to 4
 * copies of 16 bytes per lane, 512 bytes per warp each; above 4: 8), so
 * that a launch's fill keeps the memory system's queues short. */
__device__ __forceinline__ void b1_throttle(int depth)
{
    asm volatile("cp.async.commit_group;" ::: "memory");
    if (depth == 1)
        asm volatile("cp.async.wait_group 0;" ::: "memory");
    else if (depth == 2)
        asm volatile("cp.async.wait_group 1;" ::: "memory");
    else if (depth == 3)
        asm volatile("cp.async.wait_group 2;" ::: "memory");
    else if (depth == 4)
        asm volatile("cp.async.wait_group 3;" ::: "memory");
    else
        asm volatile("cp.async.wait_group 7;" ::: "memory");
}

/* TQ2: code words w0 (elements 32c .. 32c+15, code i at bits 2i, 2i+1) and
 * w1 (elements 32c+16 ..) -> low-bit and high-bit words, bit 2i from w0's
 * code i, bit 2i+1 from w1's code i. */
__device__ __forceinline__ void b1_split(u32 w0, u32 w1, u32 &lo, u32 &hi)
{
    lo = (w0 & 0x55555555u) | ((w1 & 0x55555555u) << 1);
    hi = ((w0 >> 1) & 0x55555555u) | (w1 & 0xAAAAAAAAu);
}

/* A unit is 16 rows x 128 bytes of each row (Q1: 8 blocks = 4 pairs; TQ2:
 * 4 blocks = 2 pairs) plus their scale octets. In a stage, row r's 16-byte
 * piece c sits at piece c ^ swizzle(r), so that the fragment loads are free
 * of bank conflicts: Q1 (ldmatrix: each 8-lane phase reads one piece of 8
 * rows) swizzle r % 8; TQ2 (16 bytes; a quarter-warp reads pieces 4j ..
 * 4j + 3 of 2 rows) swizzle 4 (r % 2). Lane l copies piece l % 8 of the
 * rows 4 (l / 8) + i, i = 0..3: each copy instruction writes 4 whole rows
 * (each row's 8 pieces fill the 8 bank groups once: no conflicts) and reads
 * 4 whole 128-byte lines. */
#define B1_ROW 128
template <int FMT>
__device__ __forceinline__ int b1_swizzle(int r)
{
    return FMT == FMT_Q1 ? r & 7 : (r & 1) << 2;
}

#ifdef B1_TRACE /* scripts/gemv-b1-trace.cu: %globaltimer stamps per block */
__device__ unsigned b1_seq[1024];
__device__ unsigned long long b1_trace[64][1024][5];
__device__ __forceinline__ unsigned long long b1_now()
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
#define B1_STAMP(seq, i)                                                                       \
    do {                                                                                       \
        if (threadIdx.x == 0 && (seq) < 64)                                                    \
            b1_trace[seq][blockIdx.x][i] = b1_now();                                           \
    } while (0)
#else
#define B1_STAMP(seq, i) ((void)0)
#endif

template <int FMT, int S>
__device__ __forceinline__ void gemv_b1_body(const u8 *__restrict__ bits,
                                             const u16 *__restrict__ scales, int rows, int k,
                                             const u32 *__restrict__ planes,
                                             const float *__restrict__ xd,
                                             const int *__restrict__ xs, int m_pad,
                                             float *__restrict__ y, int add, int pf16,
                                             int evict_first, int trigger, int depth)
{
    extern __shared__ __align__(128) uint4 b1_smem[];
    constexpr int BB = FMT == FMT_Q1 ? 16 : 32;
    constexpr int CH = FMT == FMT_Q1 ? 4 : 2; // block pairs per unit
    constexpr int BPU = 2 * CH;               // 128-blocks per unit
    constexpr int STAGE = 16 * B1_ROW + 64 * CH; // a multiple of 128
    constexpr int ALPHA = FMT == FMT_Q1 ? 2 : 1; // Q1: 2 S - s_x; TQ2: S' - s_x
    const int nb = k / 128, np = (nb + 1) / 2, parts = (np + CH - 1) / CH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3, g = lane >> 2;
    const int row_bytes = nb * BB;
    const int groups = (rows + 127) / 128 * 8;
    const int grp0 = (int)((long)blockIdx.x * groups / gridDim.x);
    const int ngrp = (int)((long)(blockIdx.x + 1) * groups / gridDim.x) - grp0;
    const int max_groups = (groups + gridDim.x - 1) / gridDim.x;
#ifdef B1_TRACE
    const unsigned seq = threadIdx.x == 0 ? atomicAdd(&b1_seq[blockIdx.x], 1u) : 0;
    B1_STAMP(seq, 0);
#endif
    if (trigger == 0)
        pdl_launch_dependents();
    if (ngrp <= 0)
        return;
    unsigned long long pol;
    if (evict_first)
        asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    else
        asm("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(pol));

    // shared memory (offsets from b1_smem): the warps' rings; B fragments
    // per (pair, lane) (Q1: word lane of the planes of blocks 2jp, 2jp + 1;
    // TQ2: ph 0 s 0, ph 0 s 1, ph 1 s 0, ph 1 s 1); d_x and MAGIC - s_x (Q1:
    // per (part, lane), blocks 8 part + 2t + {0, 1}; TQ2: per (pair, t),
    // block 2jp + t / 2, MAGIC alone for t odd); partial sums
    // [parts][max_groups * 16]
    u8 *const sm = (u8 *)b1_smem;
    const u32 sm_abs = (u32)__cvta_generic_to_shared(b1_smem);
    const int npp = parts * CH; // pairs with room in shared memory: zero past np
    const int ring = warp * S * STAGE;
    const int sb_off = B1_WARPS * S * STAGE, sx_off = sb_off + npp * (FMT == FMT_Q1 ? 256 : 512);
    float *red = (float *)(sm + sx_off + npp * (FMT == FMT_Q1 ? 128 : 32));

    // units u = warp + 16 i: (group u / parts, part u % parts), stepped
    // without division; a unit's rows start at byte gl 16 row_bytes + 128 part
    const int dq = B1_WARPS / parts, dr = B1_WARPS % parts;
    const int rb16 = 16 * row_bytes; // a block's rows span < 2^30 bytes (host check)
    const int cpc = lane & 7, cpr = 4 * (lane >> 3);
    const int cblk = FMT == FMT_Q1 ? cpc : cpc >> 1; // the block of piece cpc
    const u8 *const wsrc = bits + ((size_t)grp0 * 16 + cpr) * row_bytes + cpc * 16;
    // scales: lanes < 2 BPU copy octet lane / BPU, block lane % BPU
    const int so = lane / BPU, sbk = lane % BPU;
    const u16 *const ssrc = scales + ((size_t)grp0 * 2 + so) * nb * 8 + sbk * 8;
    // the lane's first copy destination (absolute: ptxas 13.0 mis-encodes
    // the cache policy of a copy whose shared address adds a uniform register)
    const u32 cdst = sm_abs + ring + cpr * B1_ROW + ((cpc ^ b1_swizzle<FMT>(cpr)) << 4);
    int igl = warp / parts, ipart = warp % parts; // next unit to issue
    // issue the unit (igl, ipart) into stage st (thr > 0: throttled to thr)
    auto issue = [&](int st, int thr) {
        if (igl < ngrp) {
            const int c0 = ipart * BPU;
            const bool ok = c0 + cblk < nb;
            const u8 *src = wsrc + (ok ? igl * rb16 + ipart * B1_ROW : 0);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                b1_cp16((cdst ^ (b1_swizzle<FMT>(i) << 4)) + st * STAGE + i * B1_ROW,
                        src + i * row_bytes, ok, pol);
                if (thr > 0)
                    b1_throttle(thr);
            }
            if (lane < 2 * BPU) {
                const bool sok = c0 + sbk < nb;
                b1_cp16(sm_abs + ring + st * STAGE + 16 * B1_ROW + lane * 16,
                        ssrc + (sok ? igl * 2 * nb * 8 + c0 * 8 : 0), sok, pol);
            }
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
        igl += dq;
        ipart += dr;
        if (ipart >= parts) {
            ipart -= parts;
            igl++;
        }
    };
#pragma unroll
    for (int i = 0; i < S; i++) // before the wait: the ring's first S units
        issue(i, depth);
    // the groups past the rings' first fill ((S 16) / parts of them) to L2:
    // pf16 sixteenths of their bits (one thread) and scales (another warp's)
    const int g_rest = min(ngrp, S * B1_WARPS / parts);
    if (threadIdx.x == 0) {
        const size_t n = (size_t)(ngrp - g_rest) * 16 * row_bytes;
        b1_prefetch_range(bits + ((size_t)grp0 + g_rest) * 16 * row_bytes,
                          n * pf16 / 16 / 16 * 16);
    } else if (threadIdx.x == 32) {
        const size_t n = (size_t)(ngrp - g_rest) * 2 * nb * 16;
        b1_prefetch_range((const u8 *)(scales + ((size_t)grp0 * 2 + 2 * g_rest) * nb * 8),
                          n * pf16 / 16 / 16 * 16);
    }
    pdl_wait_previous(); // the previous kernel wrote the activations
    B1_STAMP(seq, 1);
    if (trigger == 3)
        pdl_launch_dependents();

    for (int i = threadIdx.x; i < npp * 32; i += blockDim.x) {
        const int l = i & 31, gg = l >> 2, tt = l & 3, kb = 2 * (i >> 5) + (tt >> 1);
        if (FMT == FMT_Q1) { // lane l: word l (plane l / 4, chunk l % 4) of blocks 2jp, 2jp + 1
            const int b = 2 * (i >> 5);
            ((uint2 *)(sm + sb_off))[i] =
                make_uint2(b < nb ? planes[(size_t)b * 32 + l] : 0u,
                           b + 1 < nb ? planes[(size_t)(b + 1) * 32 + l] : 0u);
        } else {
            uint4 v = make_uint4(0, 0, 0, 0);
            if ((gg >> 2) == (tt >> 1) && kb < nb) {
                const u32 *pp = planes + (size_t)kb * 32 + (gg & 3) * 4 + 2 * (tt & 1);
                const uint2 p0 = *(const uint2 *)pp, p1 = *(const uint2 *)(pp + 16);
                v = make_uint4(p0.x, p0.y, p1.x, p1.y);
            }
            ((uint4 *)(sm + sb_off))[i] = v;
        }
        if (FMT == FMT_Q1) { // per (part, lane): d_x, MAGIC - s_x of blocks 8 part + 2 tt + {0, 1}
            if (i < parts * 32) {
                const int b = 8 * (i >> 5) + 2 * tt;
                const bool ok0 = b < nb, ok1 = b + 1 < nb;
                ((uint4 *)(sm + sx_off))[i] =
                    make_uint4(__float_as_uint(ok0 ? xd[(size_t)b * m_pad] : 0.0f),
                               __float_as_uint(ok1 ? xd[(size_t)(b + 1) * m_pad] : 0.0f),
                               (u32)(B1_MAGIC - (ok0 ? xs[(size_t)b * m_pad] : 0)),
                               (u32)(B1_MAGIC - (ok1 ? xs[(size_t)(b + 1) * m_pad] : 0)));
            }
        } else if (l < 4) { // per (pair, tt): d_x, MAGIC - s_x (half 0) or MAGIC of block kb
            const float dx = kb < nb ? xd[(size_t)kb * m_pad] : 0.0f;
            const int sx = kb < nb && !(tt & 1) ? xs[(size_t)kb * m_pad] : 0;
            ((uint2 *)(sm + sx_off))[(i >> 5) * 4 + tt] =
                make_uint2(__float_as_uint(dx), (u32)(B1_MAGIC - sx));
        }
    }
    __syncthreads();
    B1_STAMP(seq, 2);
    if (trigger == 1)
        pdl_launch_dependents();

    // this thread's planes: 2 (t%2) + {0, 1} (ph 0) and 4 + 2 (t%2) + {0, 1}
    const int hf = t & 1, kb0 = t >> 1;
    const int cA = ALPHA << (2 * hf), cB = ALPHA << (2 * hf + 1), cC = ALPHA << (4 + 2 * hf);
    const int cD = hf ? -128 * ALPHA : ALPHA << 5;
    // fragment of pair j in a stage: row g at g * 128, piece (Q1) 2j + kb0,
    // half hf, or (TQ2) 4j + t, swizzled (the stage is 128-aligned, so the
    // swizzle of pair j is an XOR of the address with j << 5 or j << 6);
    // scales of rows g, g + 8, block 2j + kb0
    constexpr int JS = FMT == FMT_Q1 ? 5 : 6;
    const int xr = FMT == FMT_Q1 ? g & 3 : g & 1;
    const int frag = ring + g * B1_ROW + (FMT == FMT_Q1 ? kb0 * 16 + hf * 8 : t * 16) + (xr << JS);
    const int sc_off = ring + 16 * B1_ROW + kb0 * 16 + g * 2 + hf * 32 * CH; // TQ2: row g + 8 hf
    const int bq_off = sb_off + lane * (FMT == FMT_Q1 ? 8 : 16);
    const int bx_off = sx_off + (FMT == FMT_Q1 ? lane * 16 : t * 8);
    // Q1: the ldmatrix row of lane l: row l % 8 + 8 (l / 8 % 2) of block
    // 2j + l / 16 (piece 2j + l / 16, swizzled: an XOR with j << 5); scales
    // of rows g, g + 8, blocks 2t, 2t + 1; the s8 B fragments of the plane
    // fold (reg jj of mma m): column g holds c_2t, c_2t+1 in bytes 0, 1 if g
    // is block 4m + 2jj, in bytes 2, 3 if g is block 4m + 2jj + 1
    const int lr = (lane & 7) + 8 * ((lane >> 3) & 1);
    const int lds_off = ring + lr * B1_ROW + (((lane >> 4) ^ (lane & 7)) << 4);
    const int scq_off = ring + 16 * B1_ROW + t * 32 + g * 2;
    const u32 cpk = (1u << (2 * t)) | (1u << (2 * t + 9)); // bytes c_2t, c_2t+1 (c_7 = -128)
    u32 cm[2][2];
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int jj = 0; jj < 2; jj++)
            cm[m][jj] = g == 4 * m + 2 * jj ? cpk : g == 4 * m + 2 * jj + 1 ? cpk << 16 : 0u;
    int gl = warp / parts, part = warp % parts;
    while (true) {
#pragma unroll
        for (int st = 0; st < S; st++) {
            if (gl >= ngrp)
                goto done;
            asm volatile("cp.async.wait_group %0;" ::"n"(S - 1) : "memory");
            __syncwarp();
            float acc0, acc1 = 0.0f; // Q1: rows g, g + 8 of blocks 2t, 2t + 1; TQ2: acc0
            if (FMT == FMT_Q1) {
                // pair j: ldmatrix gives lane (g, t) word t of rows g, g + 8
                // of blocks 2j, 2j + 1 (A of one mma each, k = the block), B
                // column n = plane n, so each mma leaves planes 2t, 2t + 1
                // of its block for rows g, g + 8 (each popc <= 128). Packed
                // as bytes they are the A fragment of a u8 x s8 mma whose B
                // holds c_p in the rows of block b and column b: mma m
                // (pairs 2m, 2m + 1) adds S of rows g, g + 8, blocks 2t,
                // 2t + 1 of the unit to d2 (blocks 4m .. 4m + 3 in columns
                // 4m .. 4m + 3; zero elsewhere)
                int d2[4] = {0, 0, 0, 0};
#pragma unroll
                for (int m = 0; m < 2; m++) {
                    u32 pk[4];
#pragma unroll
                    for (int jj = 0; jj < 2; jj++) {
                        const int j = 2 * m + jj, jp = part * CH + j;
                        const uint2 bq = *(const uint2 *)(sm + bq_off + jp * 256);
                        const uint4 a = b1_ldsm4(sm_abs + ((lds_off + st * STAGE) ^ (j << 5)));
                        int d0[4] = {0, 0, 0, 0}, d1[4] = {0, 0, 0, 0};
                        b1_mma(d0, a.x, a.y, bq.x);
                        b1_mma(d1, a.z, a.w, bq.y);
                        pk[2 * jj] = b1_pack(d0[0], d0[1], d1[0], d1[1]);
                        pk[2 * jj + 1] = b1_pack(d0[2], d0[3], d1[2], d1[3]);
                    }
                    b1_imma(d2, pk[0], pk[1], pk[2], pk[3], cm[m][0], cm[m][1]);
                }
                const uint4 bx = *(const uint4 *)(sm + bx_off + part * 512);
                const u8 *sc = sm + scq_off + st * STAGE;
                const float w00 = half_bits_to_float(*(const u16 *)sc) * __uint_as_float(bx.x);
                const float w01 = half_bits_to_float(*(const u16 *)(sc + 16)) * __uint_as_float(bx.y);
                const float w10 = half_bits_to_float(*(const u16 *)(sc + 128)) * __uint_as_float(bx.x);
                const float w11 = half_bits_to_float(*(const u16 *)(sc + 144)) * __uint_as_float(bx.y);
                acc0 = w00 * b1_to_float(d2[0] * 2 + (int)bx.z);
                acc0 += w01 * b1_to_float(d2[1] * 2 + (int)bx.w);
                acc1 = w10 * b1_to_float(d2[2] * 2 + (int)bx.z);
                acc1 += w11 * b1_to_float(d2[3] * 2 + (int)bx.w);
            } else {
                acc0 = 0.0f;
#pragma unroll
                for (int j = 0; j < CH; j++) {
                    const int jp = part * CH + j; // past np: zero fragments and d
                    const uint4 bq = *(const uint4 *)(sm + bq_off + jp * 512);
                    const uint2 bx = *(const uint2 *)(sm + bx_off + jp * 32);
                    const u32 sw = *(const u16 *)(sm + sc_off + st * STAGE + j * 32);
                    const int fo = (frag + st * STAGE) ^ (j << JS);
                    int d0[4] = {0, 0, 0, 0}, d1[4] = {0, 0, 0, 0};
                    const uint4 wa = *(const uint4 *)(sm + fo);
                    const uint4 wb = *(const uint4 *)(sm + fo + 8 * B1_ROW);
#pragma unroll
                    for (int s = 0; s < 2; s++) {
                        u32 lo0, hi0, lo1, hi1;
                        b1_split(s ? wa.z : wa.x, s ? wa.w : wa.y, lo0, hi0);
                        b1_split(s ? wb.z : wb.x, s ? wb.w : wb.y, lo1, hi1);
                        const u32 b0 = s ? bq.y : bq.x, b1 = s ? bq.w : bq.z;
                        b1_mma(d0, lo0, lo1, b0);
                        b1_mma(d1, lo0, lo1, b1);
                        b1_mma(d0, hi0, hi1, b0);
                        b1_mma(d1, hi0, hi1, b1);
                        b1_mma(d0, hi0, hi1, b0);
                        b1_mma(d1, hi0, hi1, b1);
                    }
                    // the two halves of the block's planes (this lane and
                    // its partner hf ^ 1) as one exact integer: lane hf
                    // keeps row g + 8 hf, MAGIC - s_x + S' (bases MAGIC -
                    // s_x for hf 0 and MAGIC for hf 1, one MAGIC taken off)
                    const u32 va = d0[0] * cA + d0[1] * cB + d1[0] * cC + d1[1] * cD + bx.y;
                    const u32 vb = d0[2] * cA + d0[3] * cB + d1[2] * cC + d1[3] * cD + bx.y;
                    const u32 v = (hf ? vb : va) - B1_MAGIC +
                                  __shfl_xor_sync(0xffffffffu, hf ? va : vb, 1);
                    acc0 += (half_bits_to_float((u16)sw) * __uint_as_float(bx.x)) *
                            b1_to_float((int)v);
                }
            }
            __syncwarp(); // every lane is done with the stage: refill it
            issue(st, 0);
            // Q1: partner lanes (hf 0, 1) hold rows g and g + 8 of blocks
            // 2t, 2t + 1: lane hf keeps row g + 8 hf; TQ2: lane hf holds row
            // g + 8 hf of block t / 2 in acc0; then the sum over t / 2
            const float mine = FMT == FMT_Q1 ? (hf ? acc1 : acc0) +
                                                   __shfl_xor_sync(0xffffffffu, hf ? acc0 : acc1, 1)
                                             : acc0;
            const float sum = mine + __shfl_xor_sync(0xffffffffu, mine, 2);
            if (t < 2)
                red[(part * max_groups + gl) * 16 + g + 8 * hf] = sum;
            gl += dq;
            part += dr;
            if (part >= parts) {
                part -= parts;
                gl++;
            }
        }
    }
done:
    if (trigger == 2)
        pdl_launch_dependents();
    asm volatile("cp.async.wait_all;" ::: "memory");
    __syncthreads();
    B1_STAMP(seq, 3);
    for (int r = threadIdx.x; r < ngrp * 16; r += blockDim.x) {
        float v = 0.0f;
        for (int p = 0; p < parts; p++)
            v += red[(size_t)p * max_groups * 16 + r];
        const int row = grp0 * 16 + r;
        if (row < rows)
            y[row] = add ? y[row] + v : v;
    }
    B1_STAMP(seq, 4);
}

#define GEMV_B1_ARGS                                                                           \
    const u8 *__restrict__ bits, const u16 *__restrict__ scales, int rows, int k,              \
        const u32 *__restrict__ planes, const float *__restrict__ xd,                          \
        const int *__restrict__ xs, int m_pad, float *__restrict__ y, int add, int pf16,       \
        int evict_first, int trigger, int depth
#define GEMV_B1_PASS bits, scales, rows, k, planes, xd, xs, m_pad, y, add, pf16, evict_first,  \
        trigger, depth
/* 16 warps at <= 64 registers: two blocks (two launches) fit an SM. Rings
 * of S = 2 stages of 2304 (Q1) or 2176 (TQ2) bytes per warp (matmul.c:
 * BONSAI_CUDA_B1_* in backend.h hold the same numbers). */
#define GEMV_B1(NAME, FMT, S)                                                                  \
    extern "C" __global__ void __launch_bounds__(32 * B1_WARPS, 2) NAME(GEMV_B1_ARGS)          \
    {                                                                                          \
        gemv_b1_body<FMT, S>(GEMV_B1_PASS);                                                    \
    }
GEMV_B1(bonsai_gemv_b1_q1, FMT_Q1, 2)
GEMV_B1(bonsai_gemv_b1_tq2, FMT_TQ2, 2)

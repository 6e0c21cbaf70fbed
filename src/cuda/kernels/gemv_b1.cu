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
 * Fragments: a quad (4 threads, t = 0..3) of a warp holds two consecutive
 * 128-blocks of the rows g and g + 8 of a 16-row group (g = lane / 4):
 * thread t loads half t % 2 of block 2j + t / 2 (Q1 8 bytes = words 2 (t%2),
 * 2 (t%2) + 1; TQ2 16 bytes = code words 4 (t%2) .. 4 (t%2) + 3, i.e. chunks
 * 2 (t%2) and 2 (t%2) + 1), so each quad reads whole 32-byte sectors. One
 * mma takes a 32-bit word per thread and row (slot s: Q1 word 2 (t%2) + s;
 * TQ2 the low-bit or high-bit word of chunk 2 (t%2) + s), and B is block
 * diagonal: column n belongs to block 2j + n / 4 and is nonzero only in the
 * k-range of the threads holding that block, where it holds plane
 * 4 ph + n % 4 of the matching chunk (ph = 0, 1: two accumulator sets). Over
 * the slots s = 0, 1 each D[r][n] becomes popc(w_r AND plane) over the whole
 * block, and thread (g, t) ends with planes 2 (t%2) + {0, 1} + {0, 4} of its
 * own block t / 2 for rows g and g + 8: S = sum_p c_p D_p, c_p = 2^p
 * (c_7 = -128), is the sum of q over the set bits (TQ2: low bits once and
 * high bits twice into the same accumulators, S' = sum c' q), and the block
 * adds d_w d_x (2 S - s_x) (Q1) or d_w d_x (S' - s_x) (TQ2) to the thread's
 * fp32 partial sum (s_x by the threads with t % 2 == 0). Sums within a block
 * are exact integers, so the result matches bonsai_ref_mm_q8 on the same
 * activations up to fp32 summation order (fixed: deterministic).
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
 * griddepcontrol.wait a block fills its rings (S units per warp) and may ask
 * L2 for the bits and scales of the groups past that first fill
 * (cp.async.bulk.prefetch.L2, sm_90; pf16 sixteenths of them, 8 by default:
 * bench/NOTES.md gemv4); the copies carry an L2 evict_first
 * policy (evict_first = 1) so that lines already used leave L2 first. After
 * the wait: the B fragments of every block pair, d and s to shared memory,
 * the units, the partial sums per (part, row) to shared memory, summed in
 * part order.
 * Shared memory (bytes; b1_plan_for in matmul.c computes the same):
 * 16 warps x S x (16 x 128 + 64 CH) rings (CH = 4 block pairs per unit for
 * Q1, 2 for TQ2), then parts CH 512 + parts CH 16 + parts max_groups 64
 * (nb = k/128, parts = ceil(nb / 2 / CH), max_groups = ceil(G / n)). */
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
 * of bank conflicts: Q1 (8 bytes per thread; a half-warp reads pieces 2j,
 * 2j + 1 of 4 rows) swizzle 2 (r % 4); TQ2 (16 bytes; a quarter-warp reads
 * pieces 4j .. 4j + 3 of 2 rows) swizzle 4 (r % 2). */
#define B1_ROW 128
template <int FMT>
__device__ __forceinline__ int b1_swizzle(int r)
{
    return FMT == FMT_Q1 ? (r & 3) << 1 : (r & 1) << 2;
}

/* Copies the unit at bytes off of the block's rows (block kbu its first
 * 128-block) into a stage: rows [16][128 bytes], then scales [2 octets][8 or
 * 4 blocks][8] fp16. Lane l copies pieces l % 8 of rows l / 8 + 4 i. */
template <int FMT>
__device__ __forceinline__ void b1_issue_unit(u32 stage, const u8 *__restrict__ wrow,
                                              const u16 *__restrict__ scales, int off,
                                              size_t row_bytes, int nb, int sc_off, int kbu,
                                              unsigned long long pol)
{
    constexpr int BPU = FMT == FMT_Q1 ? 8 : 4; // 128-blocks per unit
    const int lane = threadIdx.x & 31, col = lane & 7, r0 = lane >> 3;
    const bool valid = kbu + col * BPU / 8 < nb;
    const u8 *src = wrow + off;
    const u32 dst = stage + r0 * B1_ROW + ((col ^ b1_swizzle<FMT>(r0)) << 4);
#pragma unroll
    for (int i = 0; i < 4; i++)
        b1_cp16(dst + i * 4 * B1_ROW, valid ? src + (size_t)(4 * i) * row_bytes : wrow, valid, pol);
    if (lane < 2 * BPU) { // octet lane / BPU, block lane % BPU
        const int o = lane / BPU, b = lane % BPU;
        const bool ok = kbu + b < nb;
        b1_cp16(stage + 16 * B1_ROW + lane * 16, scales + sc_off + (size_t)o * nb * 8 + b * 8,
                ok, pol);
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
}

template <int FMT, int S>
__device__ __forceinline__ void gemv_b1_body(const u8 *__restrict__ bits,
                                             const u16 *__restrict__ scales, int rows, int k,
                                             const u32 *__restrict__ planes,
                                             const float *__restrict__ xd,
                                             const int *__restrict__ xs, int m_pad,
                                             float *__restrict__ y, int add, int pf16,
                                             int evict_first)
{
    extern __shared__ uint4 b1_smem[];
    constexpr int BB = FMT == FMT_Q1 ? 16 : 32;
    constexpr int CH = FMT == FMT_Q1 ? 4 : 2; // block pairs per unit
    constexpr int STAGE = 16 * B1_ROW + 64 * CH;
    constexpr int ALPHA = FMT == FMT_Q1 ? 2 : 1; // Q1: 2 S - s_x; TQ2: S' - s_x
    const int nb = k / 128, np = (nb + 1) / 2, parts = (np + CH - 1) / CH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3, g = lane >> 2;
    const size_t row_bytes = (size_t)nb * BB;
    const int groups = (rows + 127) / 128 * 8;
    const int grp0 = (int)((long)blockIdx.x * groups / gridDim.x);
    const int ngrp = (int)((long)(blockIdx.x + 1) * groups / gridDim.x) - grp0;
    const int max_groups = (groups + gridDim.x - 1) / gridDim.x;
    pdl_launch_dependents();
    if (ngrp <= 0)
        return;
    unsigned long long pol;
    if (evict_first)
        asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    else
        asm("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(pol));

    // shared memory: the warps' rings, then B fragments [parts CH][32 lanes]
    // (ph 0 s 0, ph 0 s 1, ph 1 s 0, ph 1 s 1), d and s [2 parts CH] (0 past
    // nb), partial sums [parts][max_groups * 16]
    const u32 ring = (u32)__cvta_generic_to_shared(b1_smem) + warp * S * STAGE;
    const u8 *ring_p = (const u8 *)b1_smem + warp * S * STAGE;
    uint4 *sb = (uint4 *)((u8 *)b1_smem + B1_WARPS * S * STAGE);
    float *sdx = (float *)(sb + (size_t)parts * CH * 32);
    int *ssx = (int *)(sdx + 2 * parts * CH);
    float *red = (float *)(ssx + 2 * parts * CH);

    // units u = warp + 16 i: (group u / parts, part u % parts), stepped
    // without division; a unit's rows start at byte gl * 16 row_bytes + 128 part
    const int dq = B1_WARPS / parts, dr = B1_WARPS % parts;
    const u8 *wrow = bits + ((size_t)grp0 * 16 + (lane >> 3)) * row_bytes + (lane & 7) * 16;
    const u16 *sc0 = scales + (size_t)grp0 * 2 * nb * 8;
    const int rb16 = (int)(16 * row_bytes); // a block's rows span < 2^30 bytes (host check)
    int igl = warp / parts, ipart = warp % parts; // next unit to issue
#pragma unroll
    for (int i = 0; i < S; i++) { // before the wait: the ring's first S units
        if (igl < ngrp)
            b1_issue_unit<FMT>(ring + i * STAGE, wrow, sc0, igl * rb16 + ipart * B1_ROW,
                               row_bytes, nb, (igl * 2 * nb + ipart * 2 * CH) * 8,
                               ipart * 2 * CH, pol);
        else
            asm volatile("cp.async.commit_group;" ::: "memory");
        igl += dq;
        ipart += dr;
        if (ipart >= parts) {
            ipart -= parts;
            igl++;
        }
    }
    // the groups past the rings' first fill ((S 16) / parts of them) to L2:
    // pf16 sixteenths of their bits (one thread) and scales (another warp's)
    const int g_rest = min(ngrp, S * B1_WARPS / parts);
    if (threadIdx.x == 0) {
        const size_t n = (size_t)(ngrp - g_rest) * 16 * row_bytes;
        b1_prefetch_range(bits + (size_t)(grp0 + g_rest) * 16 * row_bytes,
                          n * pf16 / 16 / 16 * 16);
    } else if (threadIdx.x == 32) {
        const size_t n = (size_t)(ngrp - g_rest) * 2 * nb * 16;
        b1_prefetch_range((const u8 *)(sc0 + (size_t)g_rest * 2 * nb * 8), n * pf16 / 16 / 16 * 16);
    }
    pdl_wait_previous(); // the previous kernel wrote the activations

    const int npp = parts * CH; // pairs with room in shared memory: zero past np
    for (int i = threadIdx.x; i < npp * 32; i += blockDim.x) {
        const int l = i & 31, gg = l >> 2, tt = l & 3, kb = 2 * (i >> 5) + (tt >> 1);
        uint4 v = make_uint4(0, 0, 0, 0);
        if ((gg >> 2) == (tt >> 1) && kb < nb) {
            const u32 *pp = planes + (size_t)kb * 32 + (gg & 3) * 4 + 2 * (tt & 1);
            const uint2 p0 = *(const uint2 *)pp, p1 = *(const uint2 *)(pp + 16);
            v = make_uint4(p0.x, p0.y, p1.x, p1.y);
        }
        sb[i] = v;
    }
    for (int b = threadIdx.x; b < 2 * npp; b += blockDim.x) {
        sdx[b] = b < nb ? xd[(size_t)b * m_pad] : 0.0f;
        ssx[b] = b < nb ? xs[(size_t)b * m_pad] : 0;
    }
    __syncthreads();

    // this thread's planes: 2 (t%2) + {0, 1} (ph 0) and 4 + 2 (t%2) + {0, 1}
    const int hf = t & 1, kb0 = t >> 1;
    const int cA = ALPHA << (2 * hf), cB = ALPHA << (2 * hf + 1), cC = ALPHA << (4 + 2 * hf);
    const int cD = hf ? -128 * ALPHA : ALPHA << 5;
    // fragment of pair j in a stage: row g at g * 128, piece (Q1) 2j + kb0,
    // half hf, or (TQ2) 4j + t, swizzled; scales of rows g, g + 8, block 2j + kb0
    const int xr = FMT == FMT_Q1 ? g & 3 : g & 1;
    const int frag = g * B1_ROW + (FMT == FMT_Q1 ? kb0 * 16 + hf * 8 : t * 16);
    const int sc_off = 16 * B1_ROW + kb0 * 16 + g * 2;
    int gl = warp / parts, part = warp % parts;
    for (int i = 0; gl < ngrp; i++) {
        const int st = i % S;
        asm volatile("cp.async.wait_group %0;" ::"n"(S - 1) : "memory");
        __syncwarp();
        const u8 *sp = ring_p + st * STAGE;
        float acc0 = 0.0f, acc1 = 0.0f;
#pragma unroll
        for (int j = 0; j < CH; j++) {
            const int jp = part * CH + j; // past np: zero fragments and d
            const uint4 bq = sb[jp * 32 + lane];
            const int kb = 2 * jp + kb0;
            const float dx = sdx[kb];
            const int base = B1_MAGIC - (hf ? 0 : ssx[kb]);
            const u32 s0 = *(const u16 *)(sp + sc_off + j * 32);
            const u32 s1 = *(const u16 *)(sp + sc_off + 32 * CH + j * 32);
            const int fo = frag + (FMT == FMT_Q1 ? 32 : 64) * (j ^ xr);
            int d0[4] = {0, 0, 0, 0}, d1[4] = {0, 0, 0, 0};
            if (FMT == FMT_Q1) {
                const uint2 wa = *(const uint2 *)(sp + fo);
                const uint2 wb = *(const uint2 *)(sp + fo + 8 * B1_ROW);
                b1_mma(d0, wa.x, wb.x, bq.x);
                b1_mma(d1, wa.x, wb.x, bq.z);
                b1_mma(d0, wa.y, wb.y, bq.y);
                b1_mma(d1, wa.y, wb.y, bq.w);
            } else {
                const uint4 wa = *(const uint4 *)(sp + fo);
                const uint4 wb = *(const uint4 *)(sp + fo + 8 * B1_ROW);
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
            }
            const int va = d0[0] * cA + d0[1] * cB + d1[0] * cC + d1[1] * cD + base;
            const int vb = d0[2] * cA + d0[3] * cB + d1[2] * cC + d1[3] * cD + base;
            acc0 += (half_bits_to_float((u16)s0) * dx) * b1_to_float(va);
            acc1 += (half_bits_to_float((u16)s1) * dx) * b1_to_float(vb);
        }
        __syncwarp(); // every lane is done with the stage: refill it
        if (igl < ngrp)
            b1_issue_unit<FMT>(ring + st * STAGE, wrow, sc0, igl * rb16 + ipart * B1_ROW,
                               row_bytes, nb, (igl * 2 * nb + ipart * 2 * CH) * 8,
                               ipart * 2 * CH, pol);
        else
            asm volatile("cp.async.commit_group;" ::: "memory");
        igl += dq;
        ipart += dr;
        if (ipart >= parts) {
            ipart -= parts;
            igl++;
        }
        acc0 += __shfl_xor_sync(0xffffffffu, acc0, 1);
        acc0 += __shfl_xor_sync(0xffffffffu, acc0, 2);
        acc1 += __shfl_xor_sync(0xffffffffu, acc1, 1);
        acc1 += __shfl_xor_sync(0xffffffffu, acc1, 2);
        if (t == 0) {
            float *r = red + ((size_t)part * max_groups + gl) * 16 + g;
            r[0] = acc0;
            r[8] = acc1;
        }
        gl += dq;
        part += dr;
        if (part >= parts) {
            part -= parts;
            gl++;
        }
    }
    asm volatile("cp.async.wait_all;" ::: "memory");
    __syncthreads();
    for (int r = threadIdx.x; r < ngrp * 16; r += blockDim.x) {
        float v = 0.0f;
        for (int p = 0; p < parts; p++)
            v += red[(size_t)p * max_groups * 16 + r];
        const int row = grp0 * 16 + r;
        if (row < rows)
            y[row] = add ? y[row] + v : v;
    }
}

#define GEMV_B1_ARGS                                                                           \
    const u8 *__restrict__ bits, const u16 *__restrict__ scales, int rows, int k,              \
        const u32 *__restrict__ planes, const float *__restrict__ xd,                          \
        const int *__restrict__ xs, int m_pad, float *__restrict__ y, int add, int pf16,       \
        int evict_first
#define GEMV_B1_PASS bits, scales, rows, k, planes, xd, xs, m_pad, y, add, pf16, evict_first
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

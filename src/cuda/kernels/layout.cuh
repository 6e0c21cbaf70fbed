/* Device data layouts shared by every bonsai CUDA kernel, and small helpers.
 * Compiled by nvcc (build time) and by NVRTC (run time): no host headers.
 *
 * Weights (uploaded once by src/cuda/matrix.c; rows padded to rows_pad, a
 * multiple of 128, with zero rows):
 *   bits   [rows_pad][k/8] bytes (Q1_0_G128: the block's 128 sign bits, in
 *          the file's order) or [rows_pad][k/4] bytes (TQ2_0_G128: 2-bit codes
 *          in the file's order, recoded to c' = value + 1: 00 -> 0, 01 -> 1,
 *          10 -> 2, 11 -> 1, so that the code is linear in the value);
 *   scales [rows_pad/8][k/128][8] fp16: the scales of 8 consecutive rows for
 *          one 128-block are 16 contiguous bytes (one 16-byte load for a
 *          GEMV lane handling 8 rows, one cp.async chunk for a GEMM tile).
 *
 * Activations, quantized on the device by quantize.cu (the CPU q8 rule:
 * d = max|x|/127, q = round-half-even(x/d), clamped to +-127):
 *   qs  [m_pad][k] int8, each 128-block stored permuted (below), in one of
 *       two orders: block order (GEMM: block b at bytes 128b..128b+127 of
 *       the token) or piece order (GEMV: 16-byte piece v of block b at
 *       bytes 16 (v * k/128 + b), so that the 32 lanes of a warp, one block
 *       each, load piece v of 32 consecutive blocks in one coalesced 512-byte
 *       access instead of touching 32 cache lines);
 *   d   [k/128][m_pad] fp32 scale, s [k/128][m_pad] int32 sum of the block's q;
 *   tokens m..m_pad-1 are zero (q = 0, d = 0, s = 0).
 *
 * The permutation: storage byte p = 32*t + 8*kk + 4*h + i (t, kk in 0..3,
 * h in 0..1, i in 0..3) holds the natural element
 *   Q1 : 32*kk + t + 8*i + 4*h
 *   TQ2: 32*kk + t + 4*i + 16*h
 * With it, one AND of a 32-bit weight word with a byte-lane mask lines the
 * weights up with an activation word: for Q1 word kk of a block (weights
 * 32kk..32kk+31 = bits 0..31), (word >> s) & 0x01010101 holds the weights
 * 32kk + 8i + s, i = 0..3, exactly the storage word (t = s&3, kk, h = s>>2);
 * for TQ2 the half-word h of chunk kk shifted by 2t gives codes 4i + t.
 * These are also the mma.m16n8k32 fragment orders: thread t of a quad reads
 * its B fragment (b0, b1) for k-steps kk and kk+1 as one 16-byte load at
 * storage offset 32t + 8kk, and builds its A fragment with shifts by t and
 * t+4 (Q1) or 2t (TQ2).
 *
 * The dot products use: Q1 value = 2*bit - 1, so sum w*x = d_w d_x (2 S - s_x)
 * with S = sum over set bits of q; TQ2 value = c' - 1, so
 * sum w*x = d_w d_x (S' - s_x) with S' = sum c' q. */
#ifndef BONSAI_CUDA_LAYOUT_CUH
#define BONSAI_CUDA_LAYOUT_CUH

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef signed char s8;

#define FMT_Q1 0
#define FMT_TQ2 1

/* fp16 bits -> fp32 (exact). */
__device__ __forceinline__ float half_bits_to_float(u16 h)
{
    float f;
    asm("{ .reg .f16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}

/* acc + sum of 4 (unsigned byte of a) * (signed byte of b). */
__device__ __forceinline__ int dp4a_us(u32 a, u32 b, int acc)
{
    int r;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* Natural element index of storage byte p (0..127) of a 128-block. */
__device__ __forceinline__ int natural_index(int fmt, int p)
{
    int t = p >> 5, kk = (p >> 3) & 3, h = (p >> 2) & 1, i = p & 3;
    return fmt == FMT_Q1 ? 32 * kk + t + 8 * i + 4 * h : 32 * kk + t + 4 * i + 16 * h;
}

/* Dot product of one 128-block of weights with one permuted activation
 * block; returns S (Q1: sum of q over set bits) or S' (TQ2: sum c' q).
 * w: Q1 4 words, TQ2 8 words (word 2*kk + h); a: 32 words of q. */
template <int FMT>
__device__ __forceinline__ int block_dot(const u32 *w, const u32 *a)
{
    if (FMT == FMT_Q1) {
        int acc[8];
#pragma unroll
        for (int s = 0; s < 8; s++)
            acc[s] = 0;
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int s = 0; s < 8; s++) // byte lane mask: weights 32kk + 8i + s
                acc[s] = dp4a_us(w[kk] & (0x01010101u << s), a[8 * (s & 3) + 2 * kk + (s >> 2)],
                                 acc[s]);
        int sum = 0;
#pragma unroll
        for (int s = 0; s < 8; s++)
            sum += acc[s] >> s; // acc[s] is an exact multiple of 2^s
        return sum;
    } else {
        int acc[4];
#pragma unroll
        for (int t = 0; t < 4; t++)
            acc[t] = 0;
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int t = 0; t < 4; t++) // codes 32kk + 16h + 4i + t, times 4^t
                    acc[t] = dp4a_us(w[2 * kk + h] & (0x03030303u << (2 * t)),
                                     a[8 * t + 2 * kk + h], acc[t]);
        return acc[0] + (acc[1] >> 2) + (acc[2] >> 4) + (acc[3] >> 6);
    }
}

/* Programmatic dependent launch (sm_90): let the next kernel in the stream
 * be scheduled now, and wait until the previous one has finished and its
 * writes are visible. Both are no-ops without PDL and before sm_90. */
__device__ __forceinline__ void pdl_launch_dependents()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

__device__ __forceinline__ void pdl_wait_previous()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void prefetch_l2(const void *p)
{
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

__device__ __forceinline__ float silu(float g)
{
    return g / (1.0f + expf(-g));
}

#endif

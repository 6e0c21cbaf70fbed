/* The fp16 activation layout read by the fp16 wgmma GEMM (gemm90h.cu) and
 * written by quantize_f16.cu; weights stay in layout.cuh's upload layout.
 *
 *   xh   m_pad * k fp16: token t's activations times 2^p_t, rounded to
 *        nearest even, each 128-block permuted (below), stored as the
 *        shared-memory image of gemm90h.cu's B stage: per (tile of 128
 *        tokens T, block b) 32768 bytes at 32768 (T * k/128 + b), in it
 *        k-half kh (positions 64kh..64kh+63) at 16384 kh, token n of the
 *        tile at 128 n, its 16-byte chunk c (positions 64kh + 8c..+7) at
 *        16 (c ^ (n & 7)) (the wgmma's 128-byte swizzle); tokens
 *        m..m_pad-1 are zero;
 *   xinv [m_pad] fp32: 2^-p_t (0 for the padding tokens).
 *
 * The token scale 2^p_t (exact: a power of two) maps the token's largest
 * |x| into [2^14, 2^15): fp16 then neither overflows (activations above
 * 65504 occur in real models) nor loses small values to its subnormals
 * any earlier than needed. With E the biased fp32 exponent of max |x|,
 * p = clamp(141 - E, -126, 126). The GEMM's result, a sum of exact
 * fp16 x fp16 products accumulated in fp32 by the tensor cores, is
 * multiplied by xinv once per output.
 *
 * The permutation: storage position p = 16j + 8h + 2t + e of a 128-block
 * (j 0..7, h 0..1, t 0..3, e 0..1) holds, with i = 2j + h, the natural
 * element
 *   Q1 : 32t + 16e + i             (bit i + 16e of the row's word t)
 *   TQ2: 32t + 16(i>>3) + (i&7) + 8e (code (i&7) + 8e of word 2t + (i>>3))
 * Position p is k index 16j + 8h + 2t + e of k-step j of an m64nNk16 wgmma,
 * whose A fragment gives thread t of a quad exactly k 2t, 2t+1 (h = 0) and
 * 2t+8, 2t+9 (h = 1): so the thread builds all its weights of a row and
 * block from one 32-bit word (Q1) or two (TQ2), the fp16 pair of (j, h)
 * from bits i and i + 16 (Q1) or codes (i&7), (i&7) + 8 (TQ2), each pair
 * landing at bits 15 / 31 (Q1) or 0-1 / 16-17 (TQ2) after one shift. */
#ifndef BONSAI_CUDA_LAYOUT_F16_CUH
#define BONSAI_CUDA_LAYOUT_F16_CUH

#include "layout.cuh"

/* Natural element of a 128-block at storage position (t, e) of pair i. */
__device__ __forceinline__ int f16_natural_index(int fmt, int t, int i, int e)
{
    return fmt == FMT_Q1 ? 32 * t + 16 * e + i : 32 * t + 16 * (i >> 3) + (i & 7) + 8 * e;
}

/* Byte offset in xh of the 16-byte chunk holding positions 8i..8i+7 of
 * block b of token tok (nb = k / 128). */
__device__ __forceinline__ size_t f16_chunk_offset(int tok, int b, int i, int nb)
{
    const int n = tok & 127, c = i & 7;
    return ((size_t)(tok >> 7) * nb + b) * 32768 + (i >> 3) * 16384 + n * 128 +
           ((c ^ (n & 7)) << 4);
}

/* The token scale exponent p for max |x| = amax (see above). */
__device__ __forceinline__ int f16_token_exponent(float amax)
{
    const int e = (int)((__float_as_uint(amax) >> 23) & 0xFF);
    const int p = 141 - e;
    return p < -126 ? -126 : p > 126 ? 126 : p;
}

#endif

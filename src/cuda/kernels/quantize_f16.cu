/* quantize_f16: fp32 activations -> the fp16 layout of layout_f16.cuh, for
 * the fp16 wgmma GEMM (gemm90h.cu).
 *
 * x [m][k] fp32 (token-major, k % 128 == 0) -> xh, m_pad * k fp16 (each
 * token times its power-of-two scale 2^p, rounded to nearest even, blocks
 * permuted for format fmt, stored as gemm90h's shared-memory images) and
 * xinv [m_pad] = 2^-p; tokens m..m_pad-1 are zeros. Matches, bit for bit, the CPU rule in tests/test_cuda.c
 * (fp16_reference): p from max |x| of the token, then
 * bonsai_fp32_to_fp16(x * 2^p) (the product is exact).
 * Grid: m_pad blocks (one token each) of 256 threads. */
#include "layout_f16.cuh"

extern "C" __global__ void __launch_bounds__(256)
bonsai_quantize_f16(const float *__restrict__ x, int m, int m_pad, int k, int fmt,
                    u32 *__restrict__ xh, float *__restrict__ xinv)
{
    __shared__ float part[8];
    pdl_launch_dependents(); // the matmul after this may start prefetching its weights
    const int tok = blockIdx.x, tid = threadIdx.x, nb = k / 128;
    u8 *dst = (u8 *)xh;
    if (tok >= m) {
        for (int q = tid; q < k / 8; q += 256)
            *(uint4 *)(dst + f16_chunk_offset(tok, q >> 4, q & 15, nb)) = make_uint4(0, 0, 0, 0);
        if (tid == 0)
            xinv[tok] = 0.0f;
        return;
    }
    const float *src = x + (size_t)tok * k;
    float amax = 0.0f;
    for (int q = tid; q < k / 4; q += 256) {
        const float4 f = ((const float4 *)src)[q];
        amax = fmaxf(amax, fmaxf(fmaxf(fabsf(f.x), fabsf(f.y)), fmaxf(fabsf(f.z), fabsf(f.w))));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if ((tid & 31) == 0)
        part[tid >> 5] = amax;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < 8; w++)
        amax = fmaxf(amax, part[w]);
    const int p = f16_token_exponent(amax);
    const float scale = __uint_as_float((u32)(p + 127) << 23);
    // 16-byte group q: block q / 16, positions 16j + 8h + 2t + e with
    // j = (q % 16) / 2, h = q % 2, t = 0..3 (word t), e = 0..1 (half)
    for (int q = tid; q < k / 8; q += 256) {
        const float *xb = src + (q >> 4) * 128;
        const int i = q & 15;
        u32 word[4];
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const float lo = xb[f16_natural_index(fmt, t, i, 0)] * scale;
            const float hi = xb[f16_natural_index(fmt, t, i, 1)] * scale;
            asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(word[t]) : "f"(hi), "f"(lo));
        }
        *(uint4 *)(dst + f16_chunk_offset(tok, q >> 4, i, nb)) =
            make_uint4(word[0], word[1], word[2], word[3]);
    }
    if (tid == 0)
        xinv[tok] = __uint_as_float((u32)(127 - p) << 23);
}

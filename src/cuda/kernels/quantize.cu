/* quantize_q8: fp32 activations -> the device q8 layout of layout.cuh.
 *
 * x [m][k] fp32 (token-major, k % 128 == 0) -> qs [m_pad][k] int8 in the
 * permuted storage order of format fmt, in block order (GEMM) or piece
 * order (gemv_order, for the GEMV: see layout.cuh), d and s [k/128][m_pad].
 * One warp per (token, 128-block); tokens m..m_pad-1 are written as zeros.
 * Matches bonsai_ref_quantize_q8 exactly: d = max|x| / 127 (IEEE division),
 * q = round-half-even(x * (1/d)) clamped to +-127, s = sum q.
 * planes != NULL (one token, for gemv_b1.cu): also the 8 bit planes of each
 * block of token 0, planes [k/128][8][4] u32: bit i of word c of plane p =
 * bit p of q (two's complement) at element 32c + i (Q1) or 32c + 16 (i & 1)
 * + i / 2 (TQ2, the order gemv_b1.cu gives the low and high code bits).
 * Grid: x = ceil(k/128 * m_pad / 8) blocks of 256 threads. */
#include "layout.cuh"

extern "C" __global__ void __launch_bounds__(256)
bonsai_quantize_q8(const float *__restrict__ x, int m, int m_pad, int k, int fmt,
                   int gemv_order, s8 *__restrict__ qs, float *__restrict__ d_out, int *__restrict__ s_out,
                   u32 *__restrict__ planes)
{
    __shared__ u8 natural[8][128];
    pdl_launch_dependents(); // the matmul after this may start prefetching its weights
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nb = k / 128;
    const long unit = (long)blockIdx.x * 8 + warp; // (token, block) pair
    if (unit >= (long)nb * m_pad)
        return;
    const int tok = (int)(unit / nb), b = (int)(unit % nb);

    float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (tok < m) {
        float4 f = *(const float4 *)(x + (size_t)tok * k + (size_t)b * 128 + 4 * lane);
        v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
    }
    float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = __fdiv_rn(amax, 127.0f);
    const float inv = d > 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    int sum = 0;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        int q = __float2int_rn(__fmul_rn(v[j], inv));
        q = q > 127 ? 127 : q < -127 ? -127 : q;
        natural[warp][4 * lane + j] = (u8)q;
        sum += q;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
    __syncwarp();
    u32 word = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) // storage bytes 4*lane + i
        word |= (u32)natural[warp][natural_index(fmt, 4 * lane + i)] << (8 * i);
    if (gemv_order) // 16-byte piece v = lane / 4 of block b at [tok][v][b]
        ((u32 *)(qs + (size_t)tok * k + ((size_t)(lane >> 2) * nb + b) * 16))[lane & 3] = word;
    else
        ((u32 *)(qs + (size_t)tok * k + (size_t)b * 128))[lane] = word;
    if (planes && tok == 0) { // lane 4p + c keeps word c of plane p
        u32 plane_word = 0;
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int e = fmt == FMT_Q1 ? 32 * c + lane : 32 * c + 16 * (lane & 1) + (lane >> 1);
            const u32 q = natural[warp][e];
#pragma unroll
            for (int p = 0; p < 8; p++) {
                const u32 bitset = __ballot_sync(0xffffffffu, (q >> p) & 1);
                if (lane == 4 * p + c)
                    plane_word = bitset;
            }
        }
        planes[(size_t)b * 32 + lane] = plane_word;
    }
    if (lane == 0) {
        d_out[(size_t)b * m_pad + tok] = d;
        s_out[(size_t)b * m_pad + tok] = sum;
    }
}

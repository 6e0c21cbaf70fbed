/* gemv: Y = W X (or Y += W X, or H = silu(G X) * (U X)) for a few tokens.
 *
 * Reads weights and q8 activations (piece order) in the layouts of
 * layout.cuh; writes
 * y [m][rows] fp32 (token-major, leading dimension rows). Each warp owns R
 * consecutive rows (8 for one token, fewer for more, keeping registers); lane l takes the 128-blocks l, l+32, ... of those rows
 * (one 16-byte load per row per block for Q1, two for TQ2, plus one 16-byte
 * load holding 8 rows' scales), and the token group of NT tokens
 * (blockIdx.y) reuses every weight load. Per block and row: integer dot
 * products with dp4a (block_dot), then
 *     acc += d_w d_x (alpha S - s_x),   alpha = 2 (Q1) or 1 (TQ2),
 * and a warp reduction at the end. Matches bonsai_ref_mm_q8 on the same
 * quantized activations up to fp32 summation order.
 * Shapes: any rows >= 1 (padded to 128 on upload), k % 128 == 0, any m
 * (grid.y = ceil(m / NT)). Launched with programmatic dependent launch: the
 * weight prefetch overlaps the previous kernel's tail. Grid.x = ceil(rows / (8 * warps per block)). */
#include "layout.cuh"

template <int FMT, int NT, bool SWIGLU, int ROWS>
__device__ __forceinline__ void gemv_body(const u8 *__restrict__ wbits,
                                          const u16 *__restrict__ wscales,
                                          const u8 *__restrict__ ubits,
                                          const u16 *__restrict__ uscales, int rows, int k,
                                          const s8 *__restrict__ qs, const float *__restrict__ xd,
                                          const int *__restrict__ xs, int m, int m_pad,
                                          float *__restrict__ y, int add, int pdl)
{
    constexpr int R = ROWS; // rows per warp, a divisor of 8
    constexpr int WW = FMT == FMT_Q1 ? 4 : 8;  // weight words per row per block
    constexpr int NM = SWIGLU ? 2 : 1;         // matrices
    const int lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * R;
    pdl_launch_dependents();
    if (row0 >= rows)
        return;
    const int tok0 = blockIdx.y * NT;
    const int nb = k / 128;
    const size_t row_words = (size_t)k / (FMT == FMT_Q1 ? 32 : 16);
    // Launched with PDL (pdl = 1): weights are never written by kernels, so
    // pull this warp's first blocks into L2 while the previous kernel
    // finishes, then wait for it before reading activations or writing y.
    if (pdl && lane < nb) {
#pragma unroll
        for (int mat = 0; mat < (SWIGLU ? 2 : 1); mat++)
#pragma unroll
            for (int r = 0; r < R; r++)
                prefetch_l2((const u32 *)(mat ? ubits : wbits) + (size_t)(row0 + r) * row_words +
                            (size_t)lane * WW);
    }
    pdl_wait_previous();

    float acc[NM][R][NT];
#pragma unroll
    for (int mat = 0; mat < NM; mat++)
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int n = 0; n < NT; n++)
                acc[mat][r][n] = 0.0f;

    for (int b = lane; b < nb; b += 32) { // [k/128] blocks of this lane
#pragma unroll
        for (int mat = 0; mat < NM; mat++) {
            const u32 *bits = (const u32 *)(mat ? ubits : wbits);
            const u16 *scales = mat ? uscales : wscales;
            u32 w[R][WW];
#pragma unroll
            for (int r = 0; r < R; r++) // [8 rows][WW words]
#pragma unroll
                for (int v = 0; v < WW / 4; v++) {
                    uint4 q = __ldg((const uint4 *)(bits + (size_t)(row0 + r) * row_words +
                                                    (size_t)b * WW) + v);
                    w[r][4 * v] = q.x; w[r][4 * v + 1] = q.y;
                    w[r][4 * v + 2] = q.z; w[r][4 * v + 3] = q.w;
                }
            // the scales of the octet holding rows row0 .. row0 + R - 1
            const uint4 sc = __ldg((const uint4 *)(scales + ((size_t)(row0 / 8) * nb + b) * 8));
            const int r8 = row0 % 8;
#pragma unroll
            for (int n = 0; n < NT; n++) {
                if (tok0 + n >= m)
                    break;
                const float dx = xd[(size_t)b * m_pad + tok0 + n];
                const int sx = xs[(size_t)b * m_pad + tok0 + n];
                u32 a[32];
                // piece order (layout.cuh): piece v of block b at 16 (v nb + b)
                const uint4 *ap = (const uint4 *)(qs + (size_t)(tok0 + n) * k) + b;
#pragma unroll
                for (int v = 0; v < 8; v++) {
                    uint4 q = __ldg(ap + (size_t)v * nb);
                    a[4 * v] = q.x; a[4 * v + 1] = q.y; a[4 * v + 2] = q.z; a[4 * v + 3] = q.w;
                }
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const int o = r8 + r; // row within the octet
                    const u32 pair = o < 4 ? (o < 2 ? sc.x : sc.y) : (o < 6 ? sc.z : sc.w);
                    const float dw = half_bits_to_float((u16)(pair >> (16 * (o & 1))));
                    const int s = block_dot<FMT>(w[r], a);
                    const int v = (FMT == FMT_Q1 ? 2 * s : s) - sx;
                    acc[mat][r][n] += (dw * dx) * (float)v;
                }
            }
        }
    }

#pragma unroll
    for (int mat = 0; mat < NM; mat++)
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int o = 16; o > 0; o >>= 1)
                    acc[mat][r][n] += __shfl_xor_sync(0xffffffffu, acc[mat][r][n], o);
    // lane r * NT + n writes (row0 + r, tok0 + n) when that lane exists
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int n = 0; n < NT; n++) {
            const int row = row0 + r, tok = tok0 + n;
            if (lane == (r * NT + n) % 32 && row < rows && tok < m) {
                float *out = y + (size_t)tok * rows + row;
                float v = SWIGLU ? silu(acc[0][r][n]) * acc[NM - 1][r][n] : acc[0][r][n];
                *out = add ? *out + v : v;
            }
        }
}

#define GEMV_ARGS                                                                                \
    const u8 *__restrict__ wbits, const u16 *__restrict__ wscales, const u8 *__restrict__ ubits, \
        const u16 *__restrict__ uscales, int rows, int k, const s8 *__restrict__ qs,             \
        const float *__restrict__ xd, const int *__restrict__ xs, int m, int m_pad,              \
        float *__restrict__ y, int add, int pdl
#define GEMV_PASS wbits, wscales, ubits, uscales, rows, k, qs, xd, xs, m, m_pad, y, add, pdl
/* Rows per warp: 8 for one token (8 loads in flight per lane), fewer for
 * more tokens (registers); the _r2 variants give small matrices more warps. */
#define GEMV_ROWS(NT, SWIGLU) ((NT) * ((SWIGLU) ? 2 : 1) >= 4 ? 2 : 8 / (NT))
#define GEMV_R(NAME, FMT, NT, SWIGLU, ROWS)                                   \
    extern "C" __global__ void __launch_bounds__(128) NAME(GEMV_ARGS)         \
    {                                                                         \
        gemv_body<FMT, NT, SWIGLU, ROWS>(GEMV_PASS);                          \
    }
#define GEMV(NAME, FMT, NT, SWIGLU) GEMV_R(NAME, FMT, NT, SWIGLU, GEMV_ROWS(NT, SWIGLU))
/* One token, 8 rows: at most 80 registers, so 6 blocks fit an SM and the
 * 768 blocks of a 24576-row matrix run in one wave on 132 SMs. */
#define GEMV_T1(NAME, FMT)                                                    \
    extern "C" __global__ void __launch_bounds__(128, 6) NAME(GEMV_ARGS)      \
    {                                                                         \
        gemv_body<FMT, 1, false, 8>(GEMV_PASS);                               \
    }

GEMV_T1(bonsai_gemv_q1_t1, FMT_Q1)
GEMV(bonsai_gemv_q1_t2, FMT_Q1, 2, false)
GEMV(bonsai_gemv_q1_t4, FMT_Q1, 4, false)
GEMV(bonsai_gemv_q1_t8, FMT_Q1, 8, false)
GEMV_T1(bonsai_gemv_tq2_t1, FMT_TQ2)
GEMV_R(bonsai_gemv_q1_t1_r2, FMT_Q1, 1, false, 2)
GEMV_R(bonsai_gemv_tq2_t1_r2, FMT_TQ2, 1, false, 2)
GEMV(bonsai_gemv_tq2_t2, FMT_TQ2, 2, false)
GEMV(bonsai_gemv_tq2_t4, FMT_TQ2, 4, false)
GEMV(bonsai_gemv_tq2_t8, FMT_TQ2, 8, false)
GEMV(bonsai_gemv_swiglu_q1_t1, FMT_Q1, 1, true)
GEMV(bonsai_gemv_swiglu_q1_t2, FMT_Q1, 2, true)
GEMV(bonsai_gemv_swiglu_q1_t4, FMT_Q1, 4, true)
GEMV(bonsai_gemv_swiglu_tq2_t1, FMT_TQ2, 1, true)
GEMV(bonsai_gemv_swiglu_tq2_t2, FMT_TQ2, 2, true)
GEMV(bonsai_gemv_swiglu_tq2_t4, FMT_TQ2, 4, true)

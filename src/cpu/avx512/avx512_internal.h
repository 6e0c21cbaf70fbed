/* Internal to the AVX-512 tier: the kernels each file of src/cpu/avx512
 * exports to fill.c, and the small inline helpers they share. Included only
 * by files compiled with the tier's flags (-mavx512f/bw/vl/dq/vnni).
 *
 * Every kernel has a VNNI variant (vpdpbusd) and a BW variant
 * (vpmaddubsw + vpmaddwd) of the same code: the helpers below take a
 * compile-time constant `vnni` and the kernels are instantiated twice. */
#ifndef BONSAI_CPU_AVX512_INTERNAL_H
#define BONSAI_CPU_AVX512_INTERNAL_H
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "cpu/kernel_table.h"

#define AVX512_INLINE static inline __attribute__((always_inline))
/* Fully unrolls a loop of constant trip count (register-blocked kernels
 * keep their accumulators in registers only when unrolled). */
#define UNROLL _Pragma("GCC unroll 16")

/* Bytes per block of the two formats this tier runs. */
#define Q1_BLOCK_BYTES 18  /* fp16 d, qs[16] */
#define TQ2_BLOCK_BYTES 34 /* qs[32], fp16 d */

/* acc + sum of u[i] * s[i] over each group of 4 bytes (u unsigned, s signed).
 * The BW form sums pairs in int16: exact while |u*s| pair sums stay within
 * int16, true for the u <= 2, |s| <= 127 this tier feeds it. */
AVX512_INLINE __m512i dot_u8s8(__m512i acc, __m512i u, __m512i s, const int vnni)
{
    if (vnni)
        return _mm512_dpbusd_epi32(acc, u, s);
    __m512i pairs = _mm512_maddubs_epi16(u, s);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
}

/* acc + dot(u0, s0) + dot(u1, s1); the BW form adds the int16 pair sums
 * before widening (|sum| <= 2 * 2 * 2 * 127 fits int16). */
AVX512_INLINE __m512i dot2_u8s8(__m512i acc, __m512i u0, __m512i s0, __m512i u1, __m512i s1,
                                const int vnni)
{
    if (vnni)
        return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc, u0, s0), u1, s1);
    __m512i pairs = _mm512_add_epi16(_mm512_maddubs_epi16(u0, s0), _mm512_maddubs_epi16(u1, s1));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
}

/* e^x, 16 lanes: x = n ln2 + r, |r| <= ln2 / 2 (ln2 in two parts), e^r by
 * its degree-7 Taylor polynomial (relative error < 1e-8 on that range, so
 * ~1 ulp from the rounding of the steps), times 2^n by vscalefps. x is
 * first clamped to [-104, 89], past which e^x is 0 or inf in fp32 either
 * way (NaN stays NaN). */
AVX512_INLINE __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

AVX512_INLINE uint16_t load_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

AVX512_INLINE __mmask64 load_mask64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return _cvtu64_mask64(v);
}

/* Four vectors whose 128-bit lane L holds partial sums of row L (one vector
 * per token t): lane 4L + t of the result = sum of that 128-bit lane of
 * a[t]. Exact (int32); 9 shuffles and adds. */
AVX512_INLINE __m512i reduce4_lanes_epi32(const __m512i a[4])
{
    __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
    __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

/* Blocks per k chunk of the q8 kernels. GEMV and GEMM both sum a row's
 * blocks as: per chunk, p = 0, p = fma((float)isum_b, d_w * d_x, p) in block
 * order; y = p of chunk 0, then y += p of each next chunk. So one token and
 * many give bitwise the same outputs. */
#define Q8_CHUNK_BLOCKS 32

/* ---- kernels, by file ------------------------------------------------ */

/* gemv_q1_tables.c: Q1_0_G128, one token, through per-call activation
 * tables (kernel_table.h: bonsai_gemv_tables_kernels), 8 bytes per k. */
void bonsai_avx512_gemv_q8_prep_q1_vnni(const bonsai_block_q8 *x, size_t k, void *tables);
void bonsai_avx512_gemv_q8_prep_q1_bw(const bonsai_block_q8 *x, size_t k, void *tables);
void bonsai_avx512_gemv_q8_q1(const void *w, size_t k, size_t r0, size_t r1,
                              const bonsai_block_q8 *x, const void *tables, float *y);

/* gemv_q1_panels.c: the same GEMV on 32-row panels (layout id
 * BONSAI_PACKED_Q1_PANELS32), their size and the packing from the file. */
#define BONSAI_PACKED_Q1_PANELS32 1
size_t bonsai_avx512_q1_panels_bytes(size_t rows, size_t k);
void bonsai_avx512_pack_q1_panels(const void *w, size_t rows, size_t k, size_t p0, size_t p1,
                                  void *out);
void bonsai_avx512_gemv_q8_q1_panels(const void *panels, size_t k, size_t r0, size_t r1,
                                     const bonsai_block_q8 *x, const void *tables, float *y);

/* gemv_q8_tq2.c: TQ2_0_G128, one token, y[r - r0]. */
void bonsai_avx512_gemv_q8_tq2_vnni(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                    const bonsai_block_q8 *x, float *y);
void bonsai_avx512_gemv_q8_tq2_bw(const uint8_t *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, float *y);

/* gemm_q8.c: m tokens, shapes as bonsai_mm_q8_fn. */
void bonsai_avx512_gemm_q8_q1_vnni(const void *w, size_t k, size_t r0, size_t r1,
                                   const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
void bonsai_avx512_gemm_q8_q1_bw(const void *w, size_t k, size_t r0, size_t r1,
                                 const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
void bonsai_avx512_gemm_q8_tq2_vnni(const void *w, size_t k, size_t r0, size_t r1,
                                    const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);
void bonsai_avx512_gemm_q8_tq2_bw(const void *w, size_t k, size_t r0, size_t r1,
                                  const bonsai_block_q8 *x, size_t m, float *y, size_t ldy);

/* mm_f32.c: shapes as bonsai_mm_f32_fn. */
void bonsai_avx512_mm_f32_q1(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                             size_t m, float *y, size_t ldy);
void bonsai_avx512_mm_f32_tq2(const void *w, size_t k, size_t r0, size_t r1, const float *x,
                              size_t m, float *y, size_t ldy);

/* attention.c: group kernels per cache type, D % 16 == 0 */
extern const bonsai_attn_group_fn bonsai_avx512_attn_group[BONSAI_CACHE_TYPES];

#endif

/* AVX-512 tier: fills the kernel table (Q1_0_G128 and TQ2_0_G128 matmul in
 * both activation modes, q8 quantizer, fp16 <-> fp32 bulk conversion) and
 * holds the small kernels that need no file of their own.
 *
 * quantize_q8 matches bonsai_ref_quantize_q8 (src/ref/ref_kernels.c): per
 * 128 floats d = max|x| / 127, q = x * (1/d) rounded to nearest even (the
 * default MXCSR mode, as lrintf), clamped to [-127, 127], sum = sum q.
 * fp16 conversions use vcvtph2ps / vcvtps2ph (round to nearest even), equal
 * to src/core/fp16.c for every non-NaN value. */
#include "cpu/avx512/avx512_internal.h"

/* TQ2: m = 1 runs the GEMV kernel (codes never become bytes in memory);
 * m > 1 expands a tile of weights to bytes once and reuses it over the
 * tokens. Both give bitwise the same sums, so prefill and decode agree. */
static void mm_q8_tq2_vnni(const void *w, size_t k, size_t r0, size_t r1,
                           const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)
{
    if (m == 1)
        bonsai_avx512_gemv_q8_tq2_vnni(w, k, r0, r1, x, y);
    else
        bonsai_avx512_gemm_q8_tq2_vnni(w, k, r0, r1, x, m, y, ldy);
}

static void mm_q8_tq2_bw(const void *w, size_t k, size_t r0, size_t r1, const bonsai_block_q8 *x,
                         size_t m, float *y, size_t ldy)
{
    if (m == 1)
        bonsai_avx512_gemv_q8_tq2_bw(w, k, r0, r1, x, y);
    else
        bonsai_avx512_gemm_q8_tq2_bw(w, k, r0, r1, x, m, y, ldy);
}

static void quantize_q8(const float *x, size_t k, bonsai_block_q8 *out)
{
    const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (size_t b = 0; b < k / 128; b++, x += 128) { // [k / 128]
        __m512 xv[8];
        __m512 amax = _mm512_setzero_ps();
        UNROLL for (int c = 0; c < 8; c++) {
            xv[c] = _mm512_loadu_ps(x + 16 * c);
            /* a NaN x leaves amax as it was, as fmaxf does */
            amax = _mm512_max_ps(_mm512_and_ps(xv[c], abs_mask), amax);
        }
        const float d = _mm512_reduce_max_ps(amax) / 127.0f;
        const __m512 inv = _mm512_set1_ps(d > 0 ? 1.0f / d : 0.0f);
        __m512i sum = _mm512_setzero_si512();
        UNROLL for (int c = 0; c < 8; c++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(xv[c], inv));
            q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)),
                                 _mm512_set1_epi32(127));
            sum = _mm512_add_epi32(sum, q);
            _mm_storeu_si128((__m128i *)(out[b].qs + 16 * c), _mm512_cvtepi32_epi8(q));
        }
        out[b].d = d;
        out[b].sum = _mm512_reduce_add_epi32(sum);
    }
}

/* e^x, 16 lanes: x = n ln2 + r, |r| <= ln2 / 2 (ln2 in two parts), e^r by
 * its degree-7 Taylor polynomial (relative error < 1e-8 on that range, so
 * ~1 ulp from the rounding of the steps), times 2^n by vscalefps. x is
 * first clamped to [-104, 89], past which e^x is 0 or inf in fp32 either
 * way (NaN stays NaN). */
static inline __m512 exp16(__m512 x)
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

/* h = g / (1 + e^-g) * u, as bonsai_ref_silu_mul with exp16 for expf. */
static void silu_mul(const float *g, const float *u, float *h, size_t n)
{
    for (size_t i = 0; i < n; i += 16) { // [n / 16]
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_mask_storeu_ps(h + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void fp16_to_fp32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) // [n / 16]
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, tail,
                              _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail, src + i)));
    }
}

/* the rounding mode must be a literal constant for clang and for gcc -O0 */
#define FP16_ROUND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static void fp32_to_fp16(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) // [n / 16]
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), FP16_ROUND));
    if (i < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(dst + i, tail,
                                 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(tail, src + i), FP16_ROUND));
    }
}

void bonsai_cpu_fill_avx512(bonsai_cpu_kernels *t, int has_vnni)
{
    t->name = has_vnni ? "avx512-vnni" : "avx512";
    /* Q1, one token: the table GEMV (gemv_q1_tables.c); the GEMM kernel,
     * which gives bitwise the same sums, serves m = 1 only for a caller's
     * last tile of tokens */
    t->mm_q8[BONSAI_TYPE_Q1_0_G128] =
        has_vnni ? bonsai_avx512_gemm_q8_q1_vnni : bonsai_avx512_gemm_q8_q1_bw;
    t->gemv_tables[BONSAI_TYPE_Q1_0_G128] = (bonsai_gemv_tables_kernels){
        8, has_vnni ? bonsai_avx512_gemv_q8_prep_q1_vnni : bonsai_avx512_gemv_q8_prep_q1_bw,
        bonsai_avx512_gemv_q8_q1, BONSAI_PACKED_Q1_PANELS32, 32, bonsai_avx512_q1_panels_bytes,
        bonsai_avx512_pack_q1_panels, bonsai_avx512_gemv_q8_q1_panels};
    t->mm_q8[BONSAI_TYPE_TQ2_0_G128] = has_vnni ? mm_q8_tq2_vnni : mm_q8_tq2_bw;
    t->mm_f32[BONSAI_TYPE_Q1_0_G128] = bonsai_avx512_mm_f32_q1;
    t->mm_f32[BONSAI_TYPE_TQ2_0_G128] = bonsai_avx512_mm_f32_tq2;
    t->quantize_q8 = quantize_q8;
    t->fp16_to_fp32 = fp16_to_fp32;
    t->fp32_to_fp16 = fp32_to_fp16;
    t->silu_mul = silu_mul;
    t->row_multiple = 8;
    t->tile_tokens = 64;
}

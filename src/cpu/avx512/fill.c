/* AVX-512 tier: fills the kernel table (Q1_0_G128 and TQ2_0_G128 matmul in
 * both activation modes, q8 quantizer, fp16 <-> fp32 bulk conversion,
 * SwiGLU, RMSNorm, attention) and holds the small kernels that need no file
 * of their own.
 *
 * quantize_q8 matches bonsai_ref_quantize_q8 (src/ref/ref_kernels.c): per
 * 128 floats d = max|x| / 127, q = x * (1/d) rounded to nearest even (the
 * default MXCSR mode, as lrintf), clamped to [-127, 127], sum = sum q.
 * fp16 conversions use vcvtph2ps / vcvtps2ph (round to nearest even), equal
 * to src/core/fp16.c for every non-NaN value. */
#include <math.h>

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

/* RMSNorm: the reference's 8 partial sums of squares are the 8 lanes of one
 * vector of doubles, combined in its order, so the result is bitwise
 * bonsai_ref_rms_norm's. */
static void rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y)
{
    for (size_t t = 0; t < m; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        __m512d acc = _mm512_setzero_pd();
        size_t i = 0;
        for (; i + 8 <= n; i += 8) { // [n / 8]
            const __m512d a = _mm512_cvtps_pd(_mm256_loadu_ps(xr + i));
            acc = _mm512_fmadd_pd(a, a, acc);
        }
        double u[4];
        _mm256_storeu_pd(u, _mm256_add_pd(_mm512_castpd512_pd256(acc),
                                          _mm512_extractf64x4_pd(acc, 1)));
        double ss = (u[0] + u[1]) + (u[2] + u[3]);
        for (; i < n; i++)
            ss += (double)xr[i] * xr[i];
        const float sc = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        const __m512 scale = _mm512_set1_ps(sc);
        for (i = 0; i < n; i += 16) { // [n / 16]
            const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
            const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, xr + i), scale);
            _mm512_mask_storeu_ps(yr + i, k, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i)));
        }
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
    t->rms_norm = rms_norm;
    for (int c = 0; c < BONSAI_CACHE_TYPES; c++)
        t->attn_group[c] = bonsai_avx512_attn_group[c];
    t->attn_dim_multiple = 16;
    t->row_multiple = 8;
    t->tile_tokens = 64;
}

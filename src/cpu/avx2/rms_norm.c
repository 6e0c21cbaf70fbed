/* AVX2 RMSNorm (contract in src/cpu/kernel_table.h): the 8 partial sums of
 * squares are two vectors of 4 doubles, combined in the reference's order,
 * so the result is bitwise bonsai_ref_rms_norm's. */
#include "cpu/avx2/avx2_kernels.h"

void bonsai_avx2_rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y)
{
    for (size_t t = 0; t < m; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        __m256d lo = _mm256_setzero_pd(), hi = lo; /* sums of lanes 0-3, 4-7 */
        size_t i = 0;
        for (; i + 8 <= n; i += 8) { // [n / 8]
            const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(xr + i));
            const __m256d b = _mm256_cvtps_pd(_mm_loadu_ps(xr + i + 4));
            lo = _mm256_fmadd_pd(a, a, lo);
            hi = _mm256_fmadd_pd(b, b, hi);
        }
        double u[4];
        _mm256_storeu_pd(u, _mm256_add_pd(lo, hi));
        double ss = (u[0] + u[1]) + (u[2] + u[3]);
        for (; i < n; i++)
            ss += (double)xr[i] * xr[i];
        const __m256 scale = _mm256_set1_ps((float)(1.0 / sqrt(ss / (double)n + (double)eps)));
        i = 0;
        for (; i + 8 <= n; i += 8) // [n / 8]
            _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), scale),
                                                   _mm256_loadu_ps(w + i)));
        for (; i < n; i++)
            yr[i] = xr[i] * _mm256_cvtss_f32(scale) * w[i];
    }
}

/* NEON RMSNorm (contract in src/cpu/kernel_table.h): the reference's 8
 * partial sums of squares are four vectors of 2 doubles (lanes 0-1, 2-3,
 * 4-5, 6-7), combined in its order, so the result is bitwise
 * bonsai_ref_rms_norm's (a float's square is exact in double). */
#include <math.h>

#include "cpu/neon/neon_kernels.h"

void bonsai_neon_rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y)
{
    for (size_t t = 0; t < m; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        float64x2_t a01 = vdupq_n_f64(0), a23 = a01, a45 = a01, a67 = a01;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) { // [n / 8]
            const float32x4_t lo = vld1q_f32(xr + i), hi = vld1q_f32(xr + i + 4);
            const float64x2_t x01 = vcvt_f64_f32(vget_low_f32(lo)), x23 = vcvt_high_f64_f32(lo);
            const float64x2_t x45 = vcvt_f64_f32(vget_low_f32(hi)), x67 = vcvt_high_f64_f32(hi);
            a01 = vfmaq_f64(a01, x01, x01);
            a23 = vfmaq_f64(a23, x23, x23);
            a45 = vfmaq_f64(a45, x45, x45);
            a67 = vfmaq_f64(a67, x67, x67);
        }
        /* u = (s0 + s4, s1 + s5), (s2 + s6, s3 + s7) */
        const float64x2_t u01 = vaddq_f64(a01, a45), u23 = vaddq_f64(a23, a67);
        double ss = (vgetq_lane_f64(u01, 0) + vgetq_lane_f64(u01, 1)) +
                    (vgetq_lane_f64(u23, 0) + vgetq_lane_f64(u23, 1));
        for (; i < n; i++)
            ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        i = 0;
        for (; i + 4 <= n; i += 4) // [n / 4]
            vst1q_f32(yr + i, vmulq_f32(vmulq_n_f32(vld1q_f32(xr + i), scale), vld1q_f32(w + i)));
        for (; i < n; i++)
            yr[i] = xr[i] * scale * w[i];
    }
}

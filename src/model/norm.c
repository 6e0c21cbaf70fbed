/* RMSNorm, as Qwen3 uses it: for each of m rows of n floats,
 *     y = x / sqrt(mean(x^2) + eps) * w
 * x, y [m][n] (may alias), w [n]. The sum of squares is accumulated in
 * double, so the result matches a float64 reference to fp32 rounding. */
#include <math.h>

#include "model/model_internal.h"

void bonsai_rms_norm(const float *x, const float *w, size_t m, size_t n, float eps, float *y)
{
    for (size_t t = 0; t < m; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        for (size_t i = 0; i < n; i++)
            yr[i] = xr[i] * scale * w[i];
    }
}

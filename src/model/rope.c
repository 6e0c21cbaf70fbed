/* Rotary position embedding, NeoX half-split (Qwen3): in each head vector
 * of D elements, the pair (i, i + D/2) for i < D/2 is rotated by
 *     angle = pos * theta^(-2i / D)
 *     v[i] = v[i] cos - v[i + D/2] sin,   v[i + D/2] = v[i] sin + v[i + D/2] cos.
 * The cos/sin table is computed in double once per forward pass (shared by
 * every layer and head): table [m][D/2][2]. */
#include <math.h>

#include "model/model_internal.h"

void bonsai_rope_table(uint32_t pos0, size_t m, uint32_t head_dim, float theta, float *table)
{
    const uint32_t half = head_dim / 2;
    for (size_t t = 0; t < m; t++) {
        const double pos = (double)pos0 + (double)t;
        float *row = table + t * half * 2;
        for (uint32_t i = 0; i < half; i++) {
            const double angle = pos * pow((double)theta, -2.0 * (double)i / (double)head_dim);
            row[2 * i] = (float)cos(angle);
            row[2 * i + 1] = (float)sin(angle);
        }
    }
}

void bonsai_rope_apply(float *v, size_t n_heads, uint32_t head_dim, const float *table_row)
{
    const uint32_t half = head_dim / 2;
    for (size_t h = 0; h < n_heads; h++) {
        float *a = v + h * head_dim, *b = a + half;
        for (uint32_t i = 0; i < half; i++) {
            const float c = table_row[2 * i], s = table_row[2 * i + 1];
            const float x0 = a[i], x1 = b[i];
            a[i] = x0 * c - x1 * s;
            b[i] = x0 * s + x1 * c;
        }
    }
}

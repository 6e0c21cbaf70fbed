/* Rotary position embedding, NeoX half-split (Qwen3): in each head vector
 * of D elements, the pair (i, i + D/2) for i < D/2 is rotated by
 *     angle = pos * theta^(-2i / D)
 *     v[i] = v[i] cos - v[i + D/2] sin,   v[i + D/2] = v[i] sin + v[i + D/2] cos.
 * The cos/sin table is computed in double once per forward pass (shared by
 * every layer and head): table [m][2][D/2], a position's D/2 cosines then
 * its D/2 sines, so the rotation runs four pairs per vector step. */
#include <math.h>
#include <string.h>

#include "model/model_internal.h"

/* four floats as one vector (GCC/clang vector extension: SSE, NEON) */
typedef float f32x4 __attribute__((vector_size(16)));

static inline f32x4 load4(const float *p)
{
    f32x4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store4(float *p, f32x4 v)
{
    memcpy(p, &v, sizeof v);
}

void bonsai_rope_table(uint32_t pos0, size_t m, uint32_t head_dim, float theta, float *table)
{
    const uint32_t half = head_dim / 2;
    for (size_t t = 0; t < m; t++) {
        const double pos = (double)pos0 + (double)t;
        float *cos_row = table + t * half * 2, *sin_row = cos_row + half;
        for (uint32_t i = 0; i < half; i++) {
            const double angle = pos * pow((double)theta, -2.0 * (double)i / (double)head_dim);
            cos_row[i] = (float)cos(angle);
            sin_row[i] = (float)sin(angle);
        }
    }
}

void bonsai_rope_apply(float *v, size_t n_heads, uint32_t head_dim, const float *table_row)
{
    const uint32_t half = head_dim / 2;
    const float *cos_row = table_row, *sin_row = table_row + half;
    for (size_t h = 0; h < n_heads; h++) {
        float *a = v + h * head_dim, *b = a + half;
        uint32_t i = 0;
        for (; i + 4 <= half; i += 4) { // [D / 8]
            const f32x4 x0 = load4(a + i), x1 = load4(b + i);
            const f32x4 c = load4(cos_row + i), sn = load4(sin_row + i);
            store4(a + i, x0 * c - x1 * sn);
            store4(b + i, x0 * sn + x1 * c);
        }
        for (; i < half; i++) {
            const float x0 = a[i], x1 = b[i];
            a[i] = x0 * cos_row[i] - x1 * sin_row[i];
            b[i] = x0 * sin_row[i] + x1 * cos_row[i];
        }
    }
}

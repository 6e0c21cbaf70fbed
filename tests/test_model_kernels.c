/* The CPU kernels the model uses besides matmul, on every tier this host
 * runs, against float64 references written here and against the scalar
 * reference kernels (src/ref), on fresh random data:
 *   rms_norm: bitwise equal to bonsai_ref_rms_norm (the summation order is
 *     part of the contract), and within 1e-6 relative of float64; lengths
 *     around the 8- and 16-lane steps, several rows, in place (y == x).
 *   attn_group (fp32, fp16 and q8 caches): every output within 1e-5 of its
 *     float64 value's scale (sum_j p_j |V_j|), for 1..4 rows with equal or
 *     different key counts (a prefill group), 1 to 300 keys, head sizes
 *     16..256 (80 = 64 + 16: a partial value chunk), flat and peaked
 *     softmax; outputs poisoned first and fully written; rows past n_rows
 *     and scores past each row's keys never read as data (poisoned).
 * A tier whose attention needs D % attn_dim_multiple == 0 is not run for
 * other D (the model uses the scalar kernel there). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bonsai/bonsai.h"
#include "cpu/kernel_table.h"
#include "harness.h"
#include "tier_kernels.h"
#include "ref/ref_kernels.h"

static void check_rms_norm(const bonsai_cpu_kernels *kt)
{
    static const size_t lengths[] = {1, 7, 8, 9, 15, 16, 17, 128, 2048, 2050};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const size_t n = lengths[li], m = 3;
        float *x = malloc(m * n * sizeof *x), *w = malloc(n * sizeof *w);
        float *y = malloc(m * n * sizeof *y), *ref = malloc(m * n * sizeof *ref);
        for (size_t i = 0; i < m * n; i++)
            x[i] = rng_normal() * (i < n ? 1e-3f : 10.0f); /* rows of very different scale */
        for (size_t i = 0; i < n; i++)
            w[i] = rng_uniform(0.5f, 1.5f);
        const float eps = 1e-6f;
        for (size_t i = 0; i < m * n; i++)
            y[i] = NAN;
        kt->rms_norm(x, w, m, n, eps, y);
        bonsai_ref_rms_norm(x, w, m, n, eps, ref);
        CHECK(memcmp(y, ref, m * n * sizeof *y) == 0, "%s rms_norm n=%zu: not bitwise the reference",
              kt->name, n);
        double worst = 0;
        for (size_t t = 0; t < m; t++) {
            double ss = 0;
            for (size_t i = 0; i < n; i++)
                ss += (double)x[t * n + i] * x[t * n + i];
            const double scale = 1.0 / sqrt(ss / (double)n + eps);
            for (size_t i = 0; i < n; i++) {
                const double want = x[t * n + i] * scale * w[i];
                const double err = fabs(y[t * n + i] - want) / (fabs(want) + 1e-30);
                worst = err > worst ? err : worst;
            }
        }
        CHECK(worst <= 1e-6, "%s rms_norm n=%zu: relative error %.3g vs float64 > 1e-6", kt->name,
              n, worst);
        memcpy(y, x, m * n * sizeof *y);
        kt->rms_norm(y, w, m, n, eps, y);
        CHECK(memcmp(y, ref, m * n * sizeof *y) == 0, "%s rms_norm n=%zu in place: differs",
              kt->name, n);
        free(x), free(w), free(y), free(ref);
    }
}

typedef struct attn_case {
    uint32_t D;
    int n_rows;
    size_t n_keys[BONSAI_ATTN_ROWS];
    float scale;
} attn_case;

static const attn_case attn_cases[] = {
    {128, 2, {64, 64}, 0.088f},   {128, 1, {1}, 0.088f},         {128, 4, {17, 18, 19, 20}, 0.088f},
    {128, 3, {300, 300, 300}, 0.3f}, {64, 2, {33, 34}, 0.125f}, {16, 4, {5, 5, 6, 6}, 1.0f},
    {80, 2, {15, 16}, 0.11f},     {256, 1, {129}, 0.0625f},      {128, 2, {16, 1}, 2.0f},
    {24, 2, {7, 9}, 0.2f},
};

/* Element i of a row-major [n][D] cache as the kernels must read it. */
static double kv_value(const void *cache, const float *scales, uint32_t D, size_t i,
                       bonsai_cache_type type)
{
    switch (type) {
    case BONSAI_CACHE_F16: return bonsai_fp16_to_fp32(((const uint16_t *)cache)[i]);
    case BONSAI_CACHE_Q8: return (double)scales[i / D] * ((const int8_t *)cache)[i];
    default: return ((const float *)cache)[i];
    }
}

/* n rows of D random values in [-amp, amp) in the cache type; q8 rows get
 * random int8 values and a scale each. */
static void *random_cache(size_t n, uint32_t D, float amp, bonsai_cache_type type, float **scales)
{
    void *c = malloc(n * D * bonsai_cache_elem_bytes(type));
    *scales = malloc(n * sizeof **scales);
    for (size_t j = 0; j < n; j++)
        (*scales)[j] = type == BONSAI_CACHE_Q8 ? rng_uniform(0.5f, 1.5f) * amp / 127 : NAN;
    for (size_t i = 0; i < n * D; i++) {
        const float x = rng_uniform(-amp, amp);
        if (type == BONSAI_CACHE_F16)
            ((uint16_t *)c)[i] = bonsai_fp32_to_fp16(x);
        else if (type == BONSAI_CACHE_Q8)
            ((int8_t *)c)[i] = (int8_t)(rng_u64() % 255 - 127);
        else
            ((float *)c)[i] = x;
    }
    return c;
}

static const char *const cache_names[BONSAI_CACHE_TYPES] = {"f32", "f16", "q8"};

static void check_attn_case(const bonsai_cpu_kernels *kt, const attn_case *c,
                            bonsai_cache_type type)
{
    const uint32_t D = c->D;
    size_t n_max = 0;
    for (int r = 0; r < c->n_rows; r++)
        n_max = c->n_keys[r] > n_max ? c->n_keys[r] : n_max;
    float *ks, *vs;
    void *K = random_cache(n_max, D, 2, type, &ks), *V = random_cache(n_max, D, 1, type, &vs);
    const bonsai_attn_kv kv = {K, V, type == BONSAI_CACHE_Q8 ? ks : NULL,
                               type == BONSAI_CACHE_Q8 ? vs : NULL};
    float *q = malloc(BONSAI_ATTN_ROWS * D * sizeof *q);
    float *out = malloc((BONSAI_ATTN_ROWS + 1) * D * sizeof *out);
    const size_t stride = n_max + 3;
    float *scores = malloc(BONSAI_ATTN_ROWS * stride * sizeof *scores);
    for (size_t i = 0; i < BONSAI_ATTN_ROWS * D; i++)
        q[i] = rng_uniform(-1, 1);
    for (size_t i = 0; i < (BONSAI_ATTN_ROWS + 1) * D; i++)
        out[i] = NAN;
    for (size_t i = 0; i < BONSAI_ATTN_ROWS * stride; i++)
        scores[i] = NAN;
    bonsai_attn_group g = {.n_rows = c->n_rows};
    for (int r = 0; r < BONSAI_ATTN_ROWS; r++) {
        /* absent rows: a poisoned query and an output slot that must stay NaN */
        g.q[r] = q + (size_t)r * D;
        g.out[r] = out + (size_t)(r < c->n_rows ? r : BONSAI_ATTN_ROWS) * D;
        g.n_keys[r] = r < c->n_rows ? c->n_keys[r] : 1000000;
    }
    for (int r = c->n_rows; r < BONSAI_ATTN_ROWS; r++)
        for (uint32_t i = 0; i < D; i++)
            q[(size_t)r * D + i] = NAN;
    kt->attn_group[type](&g, &kv, D, c->scale, scores, stride);

    double worst = 0;
    int written = 1;
    double *p = malloc(n_max * sizeof *p);
    for (int r = 0; r < c->n_rows; r++) {
        const size_t n = c->n_keys[r];
        double mx = -INFINITY, sum = 0;
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (uint32_t i = 0; i < D; i++)
                s += (double)q[(size_t)r * D + i] * kv_value(K, ks, D, j * D + i, type);
            p[j] = s * c->scale;
            mx = p[j] > mx ? p[j] : mx;
        }
        for (size_t j = 0; j < n; j++)
            sum += p[j] = exp(p[j] - mx);
        for (uint32_t i = 0; i < D; i++) {
            double want = 0, mag = 0;
            for (size_t j = 0; j < n; j++) {
                const double v = kv_value(V, vs, D, j * D + i, type);
                want += p[j] / sum * v;
                mag += p[j] / sum * fabs(v);
            }
            const float got = out[(size_t)r * D + i];
            written &= !isnan(got);
            const double err = fabs(got - want) / (mag + 1e-30);
            worst = isnan(got) ? INFINITY : err > worst ? err : worst;
        }
    }
    int untouched = 1;
    for (uint32_t i = 0; i < D; i++)
        untouched &= isnan(out[(size_t)BONSAI_ATTN_ROWS * D + i]);
    CHECK(written && worst <= 1e-5,
          "%s attn %s D=%u rows=%d keys %zu..: error %.3g of the output scale > 1e-5%s", kt->name,
          cache_names[type], D, c->n_rows, c->n_keys[0], worst, written ? "" : " (NaN left)");
    CHECK(untouched || c->n_rows == BONSAI_ATTN_ROWS, "%s attn D=%u rows=%d: wrote an absent row",
          kt->name, D, c->n_rows);
    free(p), free(K), free(V), free(ks), free(vs), free(q), free(out), free(scores);
}

int main(void)
{
    harness_init();
    for (int tier = BONSAI_TIER_SCALAR; tier < BONSAI_TIER_COUNT; tier++) {
        const bonsai_cpu_kernels *kt = tier_kernels_or_skip(tier);
        if (!kt)
            continue;
        check_rms_norm(kt);
        for (size_t ci = 0; ci < sizeof attn_cases / sizeof attn_cases[0]; ci++)
            for (int type = 0; type < BONSAI_CACHE_TYPES; type++)
                if (attn_cases[ci].D % kt->attn_dim_multiple == 0)
                    check_attn_case(kt, &attn_cases[ci], (bonsai_cache_type)type);
    }
    return harness_finish();
}

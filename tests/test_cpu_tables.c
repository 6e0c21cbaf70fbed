/* CPU tier tables, slot by slot: every tier this host runs converts fp16
 * <-> fp32 exactly as the scalar bonsai_fp16_to_fp32 / bonsai_fp32_to_fp16
 * (every half, every tie between neighbouring halves, overflow and
 * underflow edges, random floats; any length, tails included; NaN stays
 * NaN), compute the SwiGLU epilogue as the reference does, and, on aarch64, the NEON tier's kernels with DOTPROD off and (when
 * the CPU has it) on each match the scalar reference kernels of src/ref.
 * Under qemu the aarch64 test run executes this twice, with and without
 * DOTPROD in the emulated CPU (cmake/test-aarch64.sh). */
#include <string.h>

#include "bonsai/bonsai.h"
#include "core/cpu_features.h"
#include "cpu/kernel_table.h"
#include "harness.h"
#include "tier_kernels.h"
#include "ref/ref_kernels.h"

static int same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    uint32_t ua, ub;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    return ua == ub;
}

static int same_half(uint16_t a, uint16_t b)
{
    int nan_a = (a & 0x7c00) == 0x7c00 && (a & 0x3ff), nan_b = (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
    if (nan_a || nan_b)
        return nan_a && nan_b && (a & 0x8000) == (b & 0x8000);
    return a == b;
}

static void check_fp16_to_fp32(const bonsai_cpu_kernels *kt)
{
    enum { N = 65536 + 13 }; /* every half, then a tail of 13 */
    uint16_t *h = malloc(N * sizeof *h);
    float *f = malloc(N * sizeof *f);
    for (size_t i = 0; i < N; i++) {
        h[i] = (uint16_t)(i < 65536 ? i : rng_u64());
        f[i] = -12345.0f; /* poison, itself a half value */
    }
    int bad = 0;
    for (size_t off = 0; off < 8; off += 3) { /* lengths that leave tails */
        kt->fp16_to_fp32(h + off, f + off, N - off);
        for (size_t i = off; i < N; i++)
            bad += !same_float(f[i], bonsai_fp16_to_fp32(h[i]));
    }
    CHECK(bad == 0, "%s fp16_to_fp32: %d of 3 x ~65536 values differ from the scalar conversion",
          kt->name, bad);
    free(h);
    free(f);
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void check_fp32_to_fp16(const bonsai_cpu_kernels *kt)
{
    enum { N = 4 * 65536 + 7 };
    float *f = malloc(N * sizeof *f);
    uint16_t *h = malloc(N * sizeof *h);
    size_t n = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        float v = bonsai_fp16_to_fp32((uint16_t)i);
        float next = bonsai_fp16_to_fp32((uint16_t)(i + 1));
        f[n++] = v;
        /* the tie halfway to the next half, and just either side of it */
        if ((i & 0x7c00) != 0x7c00 && ((i + 1) & 0x7c00) != 0x7c00 && isfinite(next)) {
            float mid = (float)(((double)v + (double)next) / 2);
            uint32_t u;
            memcpy(&u, &mid, 4);
            f[n++] = mid;
            f[n++] = bits_float(u + 1);
            f[n++] = bits_float(u - 1);
        } else {
            f[n++] = bits_float((uint32_t)rng_u64());
            f[n++] = 65520.0f;     /* rounds to inf */
            f[n++] = 65519.996f;   /* rounds to 65504 */
        }
    }
    while (n < N)
        f[n++] = bits_float((uint32_t)rng_u64());
    int bad = 0;
    for (size_t off = 0; off < 8; off += 5) {
        for (size_t i = 0; i < N; i++)
            h[i] = 0x5a5a;
        kt->fp32_to_fp16(f + off, h + off, N - off);
        for (size_t i = off; i < N; i++)
            bad += !same_half(h[i], bonsai_fp32_to_fp16(f[i]));
    }
    CHECK(bad == 0, "%s fp32_to_fp16: %d of 2 x %d values differ from the scalar conversion",
          kt->name, bad, N);
    free(f);
    free(h);
}

#if defined(__aarch64__)
/* Random weights of type t with sane scales (fp16 d in [0.01, 0.1)). */
static uint8_t *random_blocks(bonsai_type t, size_t rows, size_t k, size_t *bytes)
{
    bonsai_type_matrix_bytes(t, rows, k, bytes);
    uint8_t *w = malloc(*bytes);
    for (size_t i = 0; i < *bytes; i++)
        w[i] = (uint8_t)rng_u64();
    size_t bb = bonsai_type_block_bytes(t), at = t == BONSAI_TYPE_TQ2_0_G128 ? 32 : 0;
    for (size_t b = 0; b < *bytes / bb; b++) {
        uint16_t d = bonsai_fp32_to_fp16(rng_uniform(0.01f, 0.1f));
        w[b * bb + at] = (uint8_t)d;
        w[b * bb + at + 1] = (uint8_t)(d >> 8);
    }
    return w;
}

/* Sum over j of (w_j x_j)^2 per output [m][rows]: the scale of fp32
 * rounding in a dot product, whatever cancellation leaves in its value. */
static double *squared_terms(bonsai_type t, const uint8_t *w, size_t bytes, size_t rows, size_t k,
                             const float *x, size_t m)
{
    float *wf = malloc(rows * k * sizeof *wf);
    double *out = malloc(m * rows * sizeof *out);
    bonsai_dequantize(t, w, bytes, wf, rows * k);
    for (size_t tk = 0; tk < m; tk++)
        for (size_t r = 0; r < rows; r++) {
            double sq = 0;
            for (size_t j = 0; j < k; j++) {
                double term = (double)wf[r * k + j] * x[tk * k + j];
                sq += term * term;
            }
            out[tk * rows + r] = sq;
        }
    free(wf);
    return out;
}

/* The NEON table for one DOTPROD setting against src/ref on a few shapes. */
static void check_neon_path(int dotprod)
{
    bonsai_cpu_kernels kt;
    bonsai_cpu_fill_scalar(&kt);
    bonsai_cpu_fill_neon(&kt, dotprod);
    const char *path = dotprod ? "neon+dotprod" : "neon without dotprod";
    static const struct { size_t rows, k, m; } shapes[] = {{1, 128, 1}, {7, 384, 3}, {19, 1024, 9}};
    static const bonsai_type types[] = {BONSAI_TYPE_Q1_0_G128, BONSAI_TYPE_TQ2_0_G128};
    for (size_t si = 0; si < 3; si++)
        for (size_t ti = 0; ti < 2; ti++) {
            const size_t rows = shapes[si].rows, k = shapes[si].k, m = shapes[si].m;
            const bonsai_type t = types[ti];
            size_t bytes;
            uint8_t *w = random_blocks(t, rows, k, &bytes);
            float *x = malloc(m * k * sizeof *x);
            for (size_t i = 0; i < m * k; i++)
                x[i] = rng_normal();
            bonsai_block_q8 *xq = malloc(m * k / 128 * sizeof *xq), *xq_ref = malloc(m * k / 128 * sizeof *xq);
            kt.quantize_q8(x, m * k, xq);
            bonsai_ref_quantize_q8(x, m * k, xq_ref);
            int q_bad = 0;
            for (size_t b = 0; b < m * k / 128; b++)
                q_bad += xq[b].d != xq_ref[b].d || xq[b].sum != xq_ref[b].sum ||
                         memcmp(xq[b].qs, xq_ref[b].qs, 128) != 0;
            CHECK(q_bad == 0, "%s quantize_q8: %d blocks differ from the reference", path, q_bad);
            float *y = malloc(m * rows * sizeof *y), *ref = malloc(m * rows * sizeof *ref);
            float *xr = malloc(m * k * sizeof *xr); /* what the q8 kernels multiply */
            for (size_t i = 0; i < m * k; i++)
                xr[i] = xq_ref[i / 128].d * xq_ref[i / 128].qs[i % 128];
            for (int q8 = 0; q8 <= 1; q8++) {
                double *floor2 = squared_terms(t, w, bytes, rows, k, q8 ? xr : x, m);
                for (size_t i = 0; i < m * rows; i++)
                    y[i] = NAN;
                if (q8) {
                    kt.mm_q8[t](w, k, 0, rows, xq_ref, m, y, rows);
                    bonsai_ref_mm_q8(t, w, k, 0, rows, xq_ref, m, ref, rows);
                } else {
                    kt.mm_f32[t](w, k, 0, rows, x, m, y, rows);
                    bonsai_ref_mm_f32(t, w, k, 0, rows, x, m, ref, rows);
                }
                double *ref64 = malloc(m * rows * sizeof *ref64);
                for (size_t i = 0; i < m * rows; i++)
                    ref64[i] = ref[i];
                double e = nmse_floored(y, ref64, floor2, m * rows);
                free(ref64);
                free(floor2);
                CHECK(e <= 1e-10, "%s %s %s %zux%zu m=%zu: NMSE %.3g vs the reference kernel", path,
                      bonsai_type_name(t), q8 ? "q8" : "f32", rows, k, m, e);
            }
            free(w);
            free(x);
            free(xq);
            free(xq_ref);
            free(xr);
            free(y);
            free(ref);
        }
}
#endif

/* silu_mul: within 4 ulp (4 x 2^-23 = 4.8e-7 relative, plus an absolute
 * floor for results near zero) of the reference for random and extreme
 * gates, every length up to 40 and a long one; nothing written past n; NaN
 * stays NaN. (Each side is ~1-2 ulp from the true value, on either side:
 * 2e-7 failed about one run in 30.) */
static void check_silu_mul(const bonsai_cpu_kernels *kt)
{
    enum { N = 6200 };
    float *g = malloc(N * sizeof *g), *u = malloc(N * sizeof *u);
    float *h = malloc((N + 1) * sizeof *h), *ref = malloc(N * sizeof *ref);
    for (size_t i = 0; i < N; i++) {
        g[i] = rng_normal() * (i % 7 == 0 ? 40.0f : 3.0f);
        u[i] = rng_normal();
    }
    const float edges[] = {0.0f, -0.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e-30f, -1e30f, 1e30f, NAN};
    memcpy(g, edges, sizeof edges);
    bonsai_ref_silu_mul(g, u, ref, N);
    size_t bad = 0, stray = 0;
    for (size_t n = 0; n <= N; n = n < 40 ? n + 1 : N + 1) {
        h[n] = -7.0f;
        kt->silu_mul(g, u, h, n);
        stray += h[n] != -7.0f;
        for (size_t i = 0; i < n; i++) {
            if (isnan(ref[i]) || isnan(h[i])) {
                bad += isnan(ref[i]) != isnan(h[i]);
                continue;
            }
            bad += !(fabsf(h[i] - ref[i]) <= 4.8e-7f * fabsf(ref[i]) + 1e-37f);
        }
    }
    CHECK(bad == 0 && stray == 0, "%s silu_mul: %zu values off the reference, %zu writes past n",
          kt->name, bad, stray);
    free(g);
    free(u);
    free(h);
    free(ref);
}

int main(void)
{
    harness_init();
    for (int tier = BONSAI_TIER_SCALAR; tier < BONSAI_TIER_COUNT; tier++) {
        const bonsai_cpu_kernels *kt = tier_kernels_or_skip(tier);
        if (!kt)
            continue;
        check_fp16_to_fp32(kt);
        check_fp32_to_fp16(kt);
        check_silu_mul(kt);
    }
#if defined(__aarch64__)
    const int has_dotprod = bonsai_cpu_caps_get()->neon_dotprod;
    printf("NEON: this CPU %s DOTPROD; testing the path without it%s\n",
           has_dotprod ? "has" : "lacks", has_dotprod ? " and the DOTPROD path" : "");
    check_neon_path(0);
    if (has_dotprod)
        check_neon_path(1);
    else
        skip("NEON DOTPROD path: this CPU lacks DOTPROD");
#else
    skip("NEON paths with and without DOTPROD: not an aarch64 build");
#endif
    return harness_finish();
}

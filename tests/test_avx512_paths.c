/* AVX-512 tier, both of its paths: the table filled with VNNI (vpdpbusd)
 * and without (AVX-512BW vpmaddubsw/vpmaddwd), called directly, against the
 * scalar reference kernels of src/ref on fresh random data.
 *   mm_q8 / mm_f32 (Q1_0_G128, TQ2_0_G128): every output of the task window
 *     within 1e-5 * sum_j |w_j x_j| (float64) of the reference, nothing
 *     outside the window written; shapes cover 1-9 rows, row offsets, one
 *     token (GEMV) and 2..65 tokens (GEMM), k past one expanded tile (4224)
 *     and past one permuted activation chunk (8320), and activations at
 *     +-127 under all-equal weights (int16 headroom of the BW path).
 *   Q1 one-token GEMV through activation tables (gemv_tables: prep + gemv),
 *     on the same cases plus rows past one and two 32-row passes, checked
 *     like mm_q8.
 *   q8 one token per call (GEMV; Q1 through its tables) == all tokens in
 *     one call (GEMM) == the other path, bitwise.
 *   Q1 packed into 32-row panels (pack, in two calls over panel ranges):
 *     the GEMV on the panels == the table GEMV on the file layout, bitwise,
 *     for row ranges starting at 0 and at a panel edge, with partial last
 *     panels and multi-chunk k; every byte of the panel buffer written, the
 *     rows past the matrix's last zero.
 *   quantize_q8: bit-identical to bonsai_ref_quantize_q8.
 *   fp16 <-> fp32: equal to src/core/fp16.c for every half and for random
 *     and edge floats (NaN only checked to stay NaN), every tail length.
 * Skipped where the tier is not built or the CPU lacks it (VNNI apart). */
#include <math.h>
#include <string.h>

#include "bonsai/bonsai.h"
#include "core/alloc.h"
#include "cpu/kernel_table.h"
#include "harness.h"
#include "ref/ref_kernels.h"

#ifdef BONSAI_HAVE_AVX512

typedef struct mm_case {
    size_t rows, k, m, r0, r1;
} mm_case;

static const mm_case mm_cases[] = {
    {1, 128, 1, 0, 1},     {3, 256, 1, 0, 3},     {9, 384, 1, 1, 8},    {13, 1024, 1, 0, 13},
    {6, 8320, 1, 2, 6},    {16, 4224, 1, 0, 16},  {5, 128, 2, 0, 5},    {9, 256, 3, 0, 9},
    {17, 384, 4, 3, 17},   {8, 4224, 5, 0, 8},    {12, 640, 7, 2, 11},  {33, 512, 9, 0, 33},
    {10, 128, 17, 1, 10},  {7, 256, 33, 0, 7},    {20, 8320, 6, 4, 20}, {3, 128, 65, 0, 3},
    {70, 640, 1, 0, 70},   {100, 4224, 1, 3, 99}, {64, 256, 1, 0, 64},  {45, 8320, 1, 5, 45},
};

/* One q8 call: the tier's one-token table GEMV where it has one and
 * tables = 1, else mm_q8. */
static void run_q8(const bonsai_cpu_kernels *kt, bonsai_type type, const uint8_t *w, size_t k,
                   size_t r0, size_t r1, const bonsai_block_q8 *xq, size_t m, float *y,
                   size_t ldy, int tables)
{
    const bonsai_gemv_tables_kernels *gt = &kt->gemv_tables[type];
    if (!tables || m != 1 || !gt->gemv) {
        kt->mm_q8[type](w, k, r0, r1, xq, m, y, ldy);
        return;
    }
    void *t = bonsai_alloc_array(1, gt->bytes_per_k * k);
    gt->prep(xq, k, t);
    gt->gemv(w, k, r0, r1, xq, t, y);
    bonsai_free(t);
}

static const bonsai_type types[] = {BONSAI_TYPE_Q1_0_G128, BONSAI_TYPE_TQ2_0_G128};

/* Random weights: every code pattern, scales in [0.01, 0.1). saturate = 1
 * makes every weight +d (Q1 bits all 1, TQ2 codes all 10). */
static uint8_t *random_weights(bonsai_type t, size_t rows, size_t k, int saturate, size_t *bytes)
{
    bonsai_type_matrix_bytes(t, rows, k, bytes);
    uint8_t *w = malloc(*bytes);
    for (size_t i = 0; i < *bytes; i++)
        w[i] = saturate ? (t == BONSAI_TYPE_Q1_0_G128 ? 0xff : 0xaa) : (uint8_t)rng_u64();
    const size_t bb = bonsai_type_block_bytes(t), off = t == BONSAI_TYPE_TQ2_0_G128 ? 32 : 0;
    for (size_t b = 0; b < *bytes / bb; b++) {
        uint16_t d = bonsai_fp32_to_fp16(rng_uniform(0.01f, 0.1f));
        memcpy(w + b * bb + off, &d, 2);
    }
    return w;
}

/* bound[t * rows + r] = sum_j |W[r][j] x_t[j]| in float64. */
static double *abs_dots(bonsai_type t, const uint8_t *w, size_t bytes, size_t rows, size_t k,
                        const float *x, size_t m)
{
    float *wf = malloc(rows * k * sizeof *wf);
    double *out = malloc(m * rows * sizeof *out);
    CHECK(bonsai_dequantize(t, w, bytes, wf, rows * k) == BONSAI_OK, "dequantize");
    for (size_t i = 0; i < m; i++)
        for (size_t r = 0; r < rows; r++) {
            double a = 0;
            for (size_t j = 0; j < k; j++)
                a += fabs((double)wf[r * k + j] * x[i * k + j]);
            out[i * rows + r] = a;
        }
    free(wf);
    return out;
}

/* Runs one mode of one case; y is [m][ldy] with ldy = window + 3, poisoned
 * with a sentinel so writes outside the window show. */
static void check_mm(const bonsai_cpu_kernels *kt, const char *path, bonsai_type type,
                     const mm_case *c, int q8, int tables, int saturate)
{
    size_t bytes;
    uint8_t *w = random_weights(type, c->rows, c->k, saturate, &bytes);
    const size_t nb = c->k / 128, n = c->r1 - c->r0, ldy = n + 3;
    float *x = malloc(c->m * c->k * sizeof *x);
    for (size_t i = 0; i < c->m * c->k; i++)
        x[i] = saturate ? 1.0f : rng_normal() * (float)(1 + (i / 128) % 5);
    bonsai_block_q8 *xq = malloc(c->m * nb * sizeof *xq);
    bonsai_ref_quantize_q8(x, c->m * c->k, xq);
    if (q8) /* the bound and the reference see what the kernel multiplies */
        for (size_t b = 0; b < c->m * nb; b++)
            for (int j = 0; j < 128; j++)
                x[b * 128 + j] = xq[b].d * xq[b].qs[j];
    float *ref = malloc(c->m * ldy * sizeof *ref), *y = malloc(c->m * ldy * sizeof *y);
    const float sentinel = -12345.0f;
    for (size_t i = 0; i < c->m * ldy; i++)
        y[i] = ref[i] = sentinel;
    if (q8) {
        bonsai_ref_mm_q8(type, w, c->k, c->r0, c->r1, xq, c->m, ref, ldy);
        run_q8(kt, type, w, c->k, c->r0, c->r1, xq, c->m, y, ldy, tables);
    } else {
        bonsai_ref_mm_f32(type, w, c->k, c->r0, c->r1, x, c->m, ref, ldy);
        kt->mm_f32[type](w, c->k, c->r0, c->r1, x, c->m, y, ldy);
    }
    double *bound = abs_dots(type, w, bytes, c->rows, c->k, x, c->m);
    size_t bad = 0, stray = 0;
    double worst = 0;
    for (size_t t = 0; t < c->m; t++)
        for (size_t i = 0; i < ldy; i++) {
            const float got = y[t * ldy + i];
            if (i >= n) {
                stray += got != sentinel;
                continue;
            }
            const double err = fabs((double)got - ref[t * ldy + i]);
            const double lim = 1e-5 * bound[t * c->rows + c->r0 + i] + 1e-30;
            if (!(err <= lim))
                bad++;
            if (err / lim > worst)
                worst = err / lim;
        }
    CHECK(bad == 0 && stray == 0,
          "%s %s %s%s%s rows %zu k %zu m %zu window [%zu, %zu): %zu outputs off the reference "
          "(worst %.3g x the limit), %zu written outside the window",
          path, bonsai_type_name(type), q8 ? "q8" : "f32", tables ? " tables" : "",
          saturate ? " saturated" : "", c->rows,
          c->k, c->m, c->r0, c->r1, bad, worst, stray);
    free(w);
    free(x);
    free(xq);
    free(ref);
    free(y);
    free(bound);
}

/* q8: one token at a time (GEMV) gives bitwise the outputs of all tokens in
 * one call (GEMM), so a model's decode and prefill agree; and the BW path
 * gives bitwise the VNNI path's (both sums are exact). */
static void check_q8_consistent(const bonsai_cpu_kernels *kt, const bonsai_cpu_kernels *other,
                                const char *path, bonsai_type type, size_t rows, size_t k,
                                size_t m)
{
    size_t bytes;
    uint8_t *w = random_weights(type, rows, k, 0, &bytes);
    const size_t nb = k / 128;
    float *x = malloc(m * k * sizeof *x);
    for (size_t i = 0; i < m * k; i++)
        x[i] = rng_normal();
    bonsai_block_q8 *xq = malloc(m * nb * sizeof *xq);
    bonsai_ref_quantize_q8(x, m * k, xq);
    float *all = malloc(m * rows * sizeof *all), *one = malloc(m * rows * sizeof *one);
    float *alt = malloc(m * rows * sizeof *alt);
    kt->mm_q8[type](w, k, 0, rows, xq, m, all, rows);
    if (other) /* the VNNI path only where the CPU has VNNI */
        other->mm_q8[type](w, k, 0, rows, xq, m, alt, rows);
    else
        memcpy(alt, all, m * rows * sizeof *all);
    for (size_t t = 0; t < m; t++)
        run_q8(kt, type, w, k, 0, rows, xq + t * nb, 1, one + t * rows, rows, 1);
    CHECK(memcmp(all, one, m * rows * sizeof *all) == 0 &&
              memcmp(all, alt, m * rows * sizeof *all) == 0,
          "%s %s q8 %zux%zu m=%zu: per-token calls %s the %zu-token call, other path %s", path,
          bonsai_type_name(type), rows, k, m,
          memcmp(all, one, m * rows * sizeof *all) ? "differ from" : "equal",
          m, memcmp(all, alt, m * rows * sizeof *all) ? "differs" : "equal");
    free(w);
    free(x);
    free(xq);
    free(all);
    free(one);
    free(alt);
}

/* The panel GEMV (gemv_packed) against the file-layout table GEMV. */
static void check_packed(const bonsai_cpu_kernels *kt, const char *path, size_t rows, size_t k)
{
    const bonsai_gemv_tables_kernels *gt = &kt->gemv_tables[BONSAI_TYPE_Q1_0_G128];
    size_t bytes;
    uint8_t *w = random_weights(BONSAI_TYPE_Q1_0_G128, rows, k, 0, &bytes);
    const size_t nb = k / 128, panels = (rows + 31) / 32, pbytes = gt->packed_bytes(rows, k);
    CHECK(gt->pack_rows == 32 && pbytes == panels * nb * 576, "%s packed bytes %zux%zu: %zu",
          path, rows, k, pbytes);
    uint8_t *packed = bonsai_alloc_array(1, pbytes);
    memset(packed, 0xA5, pbytes);
    gt->pack(w, rows, k, 0, panels / 2, packed);
    gt->pack(w, rows, k, panels / 2, panels, packed);
    /* the last panel's missing rows: zero bits (16-bit lanes >= R of each
     * of the 8 vectors) and zero scales */
    const size_t R = rows - (panels - 1) * 32;
    int pad_zero = 1;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *blk = packed + ((panels - 1) * nb + b) * 576;
        for (size_t v = 0; v < 9; v++)
            for (size_t i = R; i < 32; i++)
                pad_zero &= blk[64 * v + 2 * i] == 0 && blk[64 * v + 2 * i + 1] == 0;
    }
    CHECK(pad_zero, "%s packed %zux%zu: rows past the last are not zero", path, rows, k);
    float *x = malloc(k * sizeof *x);
    for (size_t i = 0; i < k; i++)
        x[i] = rng_normal();
    bonsai_block_q8 *xq = malloc(nb * sizeof *xq);
    bonsai_ref_quantize_q8(x, k, xq);
    void *t = bonsai_alloc_array(1, gt->bytes_per_k * k);
    gt->prep(xq, k, t);
    float *want = malloc(rows * sizeof *want), *got = malloc(rows * sizeof *got);
    const size_t ranges[][2] = {{0, rows}, {rows > 32 ? 32 : 0, rows}, {0, rows < 40 ? rows : 40}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        const size_t r0 = ranges[i][0], r1 = ranges[i][1];
        gt->gemv(w, k, r0, r1, xq, t, want);
        for (size_t r = 0; r < rows; r++)
            got[r] = NAN;
        gt->gemv_packed(packed, k, r0, r1, xq, t, got);
        CHECK(memcmp(want, got, (r1 - r0) * sizeof *got) == 0 && isnan(got[r1 - r0 < rows ? r1 - r0 : 0]) == (r1 - r0 < rows),
              "%s packed GEMV %zux%zu rows [%zu, %zu): differs from the file-layout GEMV or "
              "writes past its rows", path, rows, k, r0, r1);
    }
    free(w);
    bonsai_free(packed);
    free(x);
    free(xq);
    bonsai_free(t);
    free(want);
    free(got);
}

static void check_quantize(const bonsai_cpu_kernels *kt, const char *path)
{
    const size_t nb = 6, k = nb * 128;
    float x[6 * 128];
    for (size_t i = 0; i < k; i++)
        x[i] = rng_normal() * (float)(1 + i / 128);
    for (size_t i = 128; i < 256; i++)
        x[i] = 0.0f; /* all-zero block */
    for (size_t i = 256; i < 384; i++)
        x[i] = (float)((int)(i % 9) - 4) * 0.5f; /* exact ties of x / d */
    for (size_t i = 384; i < 512; i++)
        x[i] *= 1e-30f; /* tiny */
    bonsai_block_q8 a[6], b[6];
    memset(a, 0x5a, sizeof a);
    bonsai_ref_quantize_q8(x, k, b);
    kt->quantize_q8(x, k, a);
    int bad = 0;
    for (size_t i = 0; i < nb; i++)
        bad += a[i].d != b[i].d || a[i].sum != b[i].sum || memcmp(a[i].qs, b[i].qs, 128) != 0;
    CHECK(bad == 0, "%s quantize_q8: %d of %zu blocks differ from the reference", path, bad, nb);
}

static int same_float(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static void check_fp16(const bonsai_cpu_kernels *kt, const char *path)
{
    enum { N = 65536 };
    uint16_t *h = malloc(N * sizeof *h), *h2 = malloc(N * sizeof *h2);
    float *f = malloc(N * sizeof *f);
    for (size_t i = 0; i < N; i++)
        h[i] = (uint16_t)i;
    kt->fp16_to_fp32(h, f, N);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++)
        bad += !same_float(f[i], bonsai_fp16_to_fp32(h[i]));
    CHECK(bad == 0, "%s fp16_to_fp32: %zu of 65536 halves differ from the scalar conversion",
          path, bad);

    static const float edge[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e10f, 0x1p-14f,
                                 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 1.0f + 0x1p-11f,
                                 1.0f + 3 * 0x1p-11f, INFINITY, -INFINITY, NAN};
    const size_t n_edge = sizeof edge / sizeof edge[0];
    for (size_t i = 0; i < N; i++) {
        if (i < n_edge)
            f[i] = edge[i];
        else {
            uint32_t u = (uint32_t)rng_u64();
            memcpy(&f[i], &u, 4);
            if (i % 2)
                f[i] = rng_normal() * ldexpf(1.0f, (int)(rng_u64() % 40) - 28);
        }
    }
    kt->fp32_to_fp16(f, h2, N);
    bad = 0;
    for (size_t i = 0; i < N; i++) {
        uint16_t want = bonsai_fp32_to_fp16(f[i]);
        if (isnan(f[i]))
            bad += (h2[i] & 0x7c00) != 0x7c00 || (h2[i] & 0x3ff) == 0;
        else
            bad += h2[i] != want;
    }
    CHECK(bad == 0, "%s fp32_to_fp16: %zu of 65536 floats differ from the scalar conversion",
          path, bad);

    /* every tail length; nothing past n written */
    size_t tail_bad = 0;
    for (size_t n = 0; n <= 40; n++) {
        float out[48];
        uint16_t hout[48];
        for (int i = 0; i < 48; i++) {
            out[i] = -7.0f;
            hout[i] = 0xdead;
        }
        kt->fp16_to_fp32(h + 15360, out, n); /* 0x3c00.. : 1.0 and up */
        kt->fp32_to_fp16(f + 100, hout, n);
        for (size_t i = 0; i < 48; i++) {
            if (i < n)
                tail_bad += !same_float(out[i], bonsai_fp16_to_fp32(h[15360 + i])) ||
                            (!isnan(f[100 + i]) && hout[i] != bonsai_fp32_to_fp16(f[100 + i]));
            else
                tail_bad += out[i] != -7.0f || hout[i] != 0xdead;
        }
    }
    CHECK(tail_bad == 0, "%s fp16 conversions: %zu errors over tail lengths 0..40", path,
          tail_bad);
    free(h);
    free(h2);
    free(f);
}

static void check_path(int vnni)
{
    bonsai_cpu_kernels kt, other;
    memset(&kt, 0, sizeof kt);
    bonsai_cpu_fill_scalar(&kt);
    bonsai_cpu_fill_avx512(&kt, vnni);
    memset(&other, 0, sizeof other);
    bonsai_cpu_fill_scalar(&other);
    bonsai_cpu_fill_avx512(&other, !vnni);
    const char *path = vnni ? "avx512 vnni" : "avx512 bw";
    CHECK(kt.row_multiple >= 1 && kt.tile_tokens >= 1 && kt.tile_tokens <= BONSAI_MAX_TILE_TOKENS,
          "%s: row_multiple %zu, tile_tokens %zu", path, kt.row_multiple, kt.tile_tokens);
    check_quantize(&kt, path);
    check_fp16(&kt, path);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const bonsai_cpu_kernels *o = strstr(bonsai_cpu_features(), "vnni") ? &other : NULL;
        check_q8_consistent(&kt, o, path, types[ti], 37, 4224, 11);
        check_q8_consistent(&kt, o, path, types[ti], 16, 128, 3);
        check_q8_consistent(&kt, o, path, types[ti], 100, 4224, 5);
    }
    static const size_t packed_shapes[][2] = {{1, 128},   {31, 256},  {33, 4224}, {64, 128},
                                              {100, 8320}, {70, 4096}, {32, 384}};
    for (size_t i = 0; i < sizeof packed_shapes / sizeof packed_shapes[0]; i++)
        check_packed(&kt, path, packed_shapes[i][0], packed_shapes[i][1]);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ci = 0; ci < sizeof mm_cases / sizeof mm_cases[0]; ci++)
            for (int q8 = 0; q8 <= 1; q8++)
                for (int tables = 0; tables <= (q8 && mm_cases[ci].m == 1); tables++) {
                    check_mm(&kt, path, types[ti], &mm_cases[ci], q8, tables, 0);
                    if (mm_cases[ci].k <= 1024)
                        check_mm(&kt, path, types[ti], &mm_cases[ci], q8, tables, 1);
                }
}

int main(void)
{
    harness_init();
    if (!bonsai_cpu_tier_supported(BONSAI_TIER_AVX512)) {
        skip("avx512 tier: this CPU (or OS) lacks AVX-512 F/BW/VL");
        return harness_finish();
    }
    check_path(0);
    if (strstr(bonsai_cpu_features(), "vnni"))
        check_path(1);
    else
        skip("avx512 vnni path: this CPU lacks AVX512-VNNI");
    return harness_finish();
}

#else

int main(void)
{
    harness_init();
    skip("avx512 tier: not built into this library (built: %s)", bonsai_cpu_tiers_built());
    return harness_finish();
}

#endif

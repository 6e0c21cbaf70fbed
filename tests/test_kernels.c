/* Kernels: every op (matmul, matmul+add, matmul+SwiGLU) x both activation
 * modes x every quantized type x every CPU tier this host runs, on fresh
 * random weights and awkward shapes, against a float64 reference computed
 * here from the dequantized weights. Outputs are poisoned before each call
 * and checked fully written.
 * f32 mode: NMSE <= 1e-10 against float64 on the same inputs, per case.
 * q8 mode: per case, NMSE <= 1e-8 against float64 on the q8-rounded
 * activations (the integer sums must be exact); over all shapes of a
 * tier/type/op, NMSE <= 5e-4 against float64 on the original activations.
 * Per case, each output's squared reference is floored by the sum of its
 * squared terms (w_j x_j)^2, the scale of fp32 rounding: an output that
 * cancels to near zero (one-output shapes) must not make NMSE explode. */
#include <string.h>

#include "bonsai/bonsai.h"
#include "harness.h"
#include "tier_kernels.h"

typedef enum { OP_STORE, OP_ADD, OP_SWIGLU } op_kind;
static const char *const op_names[] = {"matmul", "matmul_add", "matmul_swiglu"};

typedef struct shape {
    size_t rows, k, m;
} shape;

static const shape shapes[] = {
    {1, 128, 1},  {3, 256, 1},   {17, 384, 2},  {64, 1024, 7},  {33, 512, 8},   {40, 256, 9},
    {5, 128, 33}, {130, 640, 17}, {16, 4096, 1}, {129, 128, 65}, {24, 256, 512}, {600, 256, 3},
    {1000, 2048, 1}, /* one token: a row range per thread, 32-row passes plus a tail */
    {100000, 128, 1}, /* one token, rows past 3 threads x one scratch tile: two rounds */
};

static const bonsai_type types[] = {BONSAI_TYPE_Q1_0_G128, BONSAI_TYPE_TQ2_0_G128,
                                    BONSAI_TYPE_PQ2_0, BONSAI_TYPE_Q2_0_G64};

/* Offset of the fp16 scale inside a block of each type. */
static size_t scale_offset(bonsai_type t)
{
    return t == BONSAI_TYPE_TQ2_0_G128 ? 32 : 0;
}

/* Random blocks: every code pattern possible, scales in [0.01, 0.1). */
static uint8_t *random_weights(bonsai_type t, size_t rows, size_t k, size_t *bytes)
{
    bonsai_type_matrix_bytes(t, rows, k, bytes);
    uint8_t *w = malloc(*bytes);
    for (size_t i = 0; i < *bytes; i++)
        w[i] = (uint8_t)rng_u64();
    size_t bb = bonsai_type_block_bytes(t);
    for (size_t b = 0; b < *bytes / bb; b++) {
        uint16_t d = bonsai_fp32_to_fp16(rng_uniform(0.01f, 0.1f));
        w[b * bb + scale_offset(t)] = (uint8_t)d;
        w[b * bb + scale_offset(t) + 1] = (uint8_t)(d >> 8);
    }
    return w;
}

static double *dequantized(bonsai_type t, const uint8_t *w, size_t bytes, size_t n)
{
    float *f = malloc(n * sizeof *f);
    double *d = malloc(n * sizeof *d);
    CHECK(bonsai_dequantize(t, w, bytes, f, n) == BONSAI_OK, "dequantize weights");
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
    free(f);
    return d;
}

/* ref[t][r] = sum_j W[r][j] x[t][j] in float64; terms2[t][r] = sum_j of the
 * squared terms */
static void reference_matmul(const double *w, const float *x, size_t rows, size_t k, size_t m,
                             double *out, double *terms2)
{
    for (size_t t = 0; t < m; t++)
        for (size_t r = 0; r < rows; r++) {
            double acc = 0, sq = 0;
            for (size_t j = 0; j < k; j++) {
                double term = w[r * k + j] * x[t * k + j];
                acc += term;
                sq += term * term;
            }
            out[t * rows + r] = acc;
            terms2[t * rows + r] = sq;
        }
}

typedef struct problem {
    bonsai_type type;
    shape s;
    uint8_t *w, *w2;
    size_t bytes;
    float *x;
    float *y0; /* initial y for the add op */
    double *ref[2][3]; /* [q8][op]: q8 = 1 uses the q8-rounded activations */
    double *floor2[2][3]; /* [q8][op]: scale of each output's rounding, squared */
} problem;

/* x rounded through the scalar q8 quantizer: what q8 kernels multiply. */
static float *q8_rounded(bonsai_ctx *scalar, const float *x, size_t m, size_t k)
{
    size_t nb = m * k / 128;
    bonsai_block_q8 *xq = malloc(nb * sizeof *xq);
    float *out = malloc(m * k * sizeof(float));
    CHECK(bonsai_quantize_q8(scalar, x, m * k, m, k, xq, nb) == BONSAI_OK, "quantize_q8");
    for (size_t b = 0; b < nb; b++)
        for (int j = 0; j < 128; j++)
            out[b * 128 + j] = xq[b].d * xq[b].qs[j];
    free(xq);
    return out;
}

static void problem_make(problem *p, bonsai_ctx *scalar, bonsai_type type, shape s)
{
    p->type = type;
    p->s = s;
    p->w = random_weights(type, s.rows, s.k, &p->bytes);
    p->w2 = random_weights(type, s.rows, s.k, &p->bytes);
    size_t nx = s.m * s.k, ny = s.m * s.rows;
    p->x = malloc(nx * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        p->x[i] = rng_normal() * (float)(1 + (i / 128) % 7); /* blocks of uneven scale */
    p->y0 = malloc(ny * sizeof(float));
    for (size_t i = 0; i < ny; i++)
        p->y0[i] = rng_normal();
    double *w = dequantized(type, p->w, p->bytes, s.rows * s.k);
    double *w2 = dequantized(type, p->w2, p->bytes, s.rows * s.k);
    double *gate = malloc(ny * sizeof(double)), *up = malloc(ny * sizeof(double));
    double *gate2 = malloc(ny * sizeof(double)), *up2 = malloc(ny * sizeof(double));
    float *xr = q8_rounded(scalar, p->x, s.m, s.k);
    for (int q8 = 0; q8 <= 1; q8++) {
        const float *x = q8 ? xr : p->x;
        reference_matmul(w, x, s.rows, s.k, s.m, gate, gate2);
        reference_matmul(w2, x, s.rows, s.k, s.m, up, up2);
        for (int op = OP_STORE; op <= OP_SWIGLU; op++) {
            p->ref[q8][op] = malloc(ny * sizeof(double));
            p->floor2[q8][op] = malloc(ny * sizeof(double));
        }
        for (size_t i = 0; i < ny; i++) {
            double g = gate[i];
            p->ref[q8][OP_STORE][i] = g;
            p->ref[q8][OP_ADD][i] = p->y0[i] + g;
            p->ref[q8][OP_SWIGLU][i] = g / (1.0 + exp(-g)) * up[i];
            p->floor2[q8][OP_STORE][i] = p->floor2[q8][OP_ADD][i] = gate2[i];
            p->floor2[q8][OP_SWIGLU][i] = gate2[i] * up[i] * up[i] + g * g * up2[i];
        }
    }
    free(xr);
    free(w);
    free(w2);
    free(gate);
    free(up);
    free(gate2);
    free(up2);
}

static void problem_free(problem *p)
{
    free(p->w);
    free(p->w2);
    free(p->x);
    free(p->y0);
    for (int q8 = 0; q8 <= 1; q8++)
        for (int op = OP_STORE; op <= OP_SWIGLU; op++) {
            free(p->ref[q8][op]);
            free(p->floor2[q8][op]);
        }
}

/* Runs one op in one mode on ctx; y must hold m * rows floats. */
static bonsai_status run_op(bonsai_ctx *ctx, const problem *p, op_kind op, int q8, float *y)
{
    const shape s = p->s;
    bonsai_matrix w = {.type = p->type, .rows = s.rows, .k = s.k, .data = p->w, .data_bytes = p->bytes,
                       .name = "test.w"};
    bonsai_matrix w2 = {.type = p->type, .rows = s.rows, .k = s.k, .data = p->w2, .data_bytes = p->bytes,
                        .name = "test.up"};
    size_t ny = s.m * s.rows, nb = s.m * s.k / 128;
    if (op == OP_ADD)
        memcpy(y, p->y0, ny * sizeof(float));
    else
        for (size_t i = 0; i < ny; i++)
            y[i] = NAN;
    if (!q8) {
        if (op == OP_STORE)
            return bonsai_matmul_f32(ctx, &w, p->x, s.m * s.k, s.m, y, ny);
        if (op == OP_ADD)
            return bonsai_matmul_add_f32(ctx, &w, p->x, s.m * s.k, s.m, y, ny);
        return bonsai_matmul_swiglu_f32(ctx, &w, &w2, p->x, s.m * s.k, s.m, y, ny);
    }
    bonsai_block_q8 *xq = malloc(nb * sizeof *xq);
    bonsai_status st = bonsai_quantize_q8(ctx, p->x, s.m * s.k, s.m, s.k, xq, nb);
    if (st == BONSAI_OK) {
        if (op == OP_STORE)
            st = bonsai_matmul_q8(ctx, &w, xq, nb, s.m, y, ny);
        else if (op == OP_ADD)
            st = bonsai_matmul_add_q8(ctx, &w, xq, nb, s.m, y, ny);
        else
            st = bonsai_matmul_swiglu_q8(ctx, &w, &w2, xq, nb, s.m, y, ny);
    }
    free(xq);
    return st;
}

/* Squared error and squared norm summed over the shapes of one q8 group. */
typedef struct q8_total {
    double err, norm;
} q8_total;

static void check_case(bonsai_ctx *ctx, const problem *p, op_kind op, int q8, q8_total *total)
{
    const shape s = p->s;
    size_t ny = s.m * s.rows;
    float *y = malloc(ny * sizeof(float));
    const char *tier = bonsai_cpu_tier_name(bonsai_ctx_tier(ctx));
    const char *what = bonsai_type_name(p->type);
    bonsai_status st = run_op(ctx, p, op, q8, y);
    if (CHECK(st == BONSAI_OK, "%s %s %s %s %zux%zu m=%zu: %s", tier, what, op_names[op],
              q8 ? "q8" : "f32", s.rows, s.k, s.m, bonsai_last_error())) {
        size_t unwritten = 0;
        for (size_t i = 0; i < ny; i++)
            unwritten += !isfinite(y[i]);
        CHECK(unwritten == 0, "%s %s %s %s %zux%zu m=%zu: %zu outputs not written", tier, what,
              op_names[op], q8 ? "q8" : "f32", s.rows, s.k, s.m, unwritten);
        double e = nmse_floored(y, p->ref[q8][op], p->floor2[q8][op], ny), limit = q8 ? 1e-8 : 1e-10;
        CHECK(e <= limit, "%s %s %s %s %zux%zu m=%zu: NMSE %.3g vs float64 > %.0e", tier, what,
              op_names[op], q8 ? "q8" : "f32", s.rows, s.k, s.m, e, limit);
        if (q8)
            for (size_t i = 0; i < ny; i++) {
                double ref = p->ref[0][op][i], d = y[i] - ref;
                total->err += d * d;
                total->norm += ref * ref;
            }
    }
    free(y);
}

/* The tier's q8 quantizer gives the scalar quantizer's blocks (codes may
 * differ by one where x/d sits on a rounding tie). */
static void check_quantize_q8(bonsai_ctx *ctx, bonsai_ctx *scalar)
{
    const size_t m = 3, k = 640, nb = m * k / 128;
    float x[3 * 640];
    for (size_t i = 0; i < m * k; i++)
        x[i] = rng_normal() * (float)(1 + i % 5);
    for (size_t i = 0; i < 128; i++)
        x[128 + i] = 0.0f; /* an all-zero block */
    bonsai_block_q8 a[15], b[15];
    memset(a, 0x5a, sizeof a);
    CHECK(bonsai_quantize_q8(ctx, x, m * k, m, k, a, nb) == BONSAI_OK, "quantize_q8");
    CHECK(bonsai_quantize_q8(scalar, x, m * k, m, k, b, nb) == BONSAI_OK, "quantize_q8 scalar");
    int bad = 0;
    for (size_t i = 0; i < nb; i++) {
        int32_t sum = 0;
        bad += a[i].d != b[i].d;
        for (int j = 0; j < 128; j++) {
            bad += abs(a[i].qs[j] - b[i].qs[j]) > 1;
            sum += a[i].qs[j];
        }
        bad += sum != a[i].sum;
    }
    CHECK(bad == 0, "%s quantize_q8: %d mismatches with the scalar quantizer",
          bonsai_cpu_tier_name(bonsai_ctx_tier(ctx)), bad);
}

int main(void)
{
    harness_init();
    bonsai_ctx *scalar = NULL;
    bonsai_ctx_params sp = {.n_threads = 1, .tier = BONSAI_TIER_SCALAR};
    if (bonsai_ctx_create(&sp, &scalar) != BONSAI_OK) {
        fprintf(stderr, "scalar context: %s\n", bonsai_last_error());
        return 1;
    }
    for (int tier = BONSAI_TIER_SCALAR; tier < BONSAI_TIER_COUNT; tier++) {
        bonsai_ctx *ctx = tier_context_or_skip(tier, 3);
        if (!ctx)
            continue;
        check_quantize_q8(ctx, scalar);
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            q8_total totals[3] = {{0, 0}, {0, 0}, {0, 0}};
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                problem pr;
                problem_make(&pr, scalar, types[ti], shapes[si]);
                for (int op = OP_STORE; op <= OP_SWIGLU; op++)
                    for (int q8 = 0; q8 <= 1; q8++)
                        check_case(ctx, &pr, (op_kind)op, q8, &totals[op]);
                problem_free(&pr);
            }
            for (int op = OP_STORE; op <= OP_SWIGLU; op++) {
                double e = totals[op].err / totals[op].norm;
                CHECK(e <= 5e-4, "%s %s %s q8: NMSE %.3g over all shapes vs float64 > 5e-4",
                      bonsai_cpu_tier_name((bonsai_cpu_tier)tier), bonsai_type_name(types[ti]),
                      op_names[op], e);
            }
        }
        bonsai_ctx_free(ctx);
    }
    bonsai_ctx_free(scalar);
    return harness_finish();
}

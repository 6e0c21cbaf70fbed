/* Error paths of the kernel API: each bad input returns its own status and
 * a message naming the object; nothing crashes, nothing is written. */
#include <string.h>

#include "bonsai/bonsai.h"
#include "harness.h"

typedef struct fixture {
    bonsai_ctx *ctx;
    uint8_t w[4 * 2 * 18];      /* 4 x 256 q1_0_g128 */
    float x[2 * 256];
    float y[2 * 4];
    bonsai_block_q8 xq[2 * 2];
} fixture;

static void expect(bonsai_status got, bonsai_status want, const char *needle, const char *what)
{
    CHECK(got == want, "%s: got %s, want %s (%s)", what, bonsai_status_name(got),
          bonsai_status_name(want), bonsai_last_error());
    if (needle)
        CHECK(strstr(bonsai_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what,
              bonsai_last_error(), needle);
}

static void test_matmul_errors(fixture *f)
{
    const bonsai_matrix good = {.type = BONSAI_TYPE_Q1_0_G128, .rows = 4, .k = 256, .data = f->w,
                               .data_bytes = sizeof f->w, .name = "blk.3.ffn_up.weight"};
    bonsai_matrix w = good;
    expect(bonsai_matmul_f32(f->ctx, &good, f->x, 512, 2, f->y, 8), BONSAI_OK, NULL, "valid call");

    expect(bonsai_matmul_f32(NULL, &good, f->x, 512, 2, f->y, 8), BONSAI_ERR_NULL_ARG, "context",
           "NULL context");
    expect(bonsai_matmul_f32(f->ctx, NULL, f->x, 512, 2, f->y, 8), BONSAI_ERR_NULL_ARG, "matrix",
           "NULL matrix");
    expect(bonsai_matmul_f32(f->ctx, &good, NULL, 512, 2, f->y, 8), BONSAI_ERR_NULL_ARG, "input",
           "NULL input");
    expect(bonsai_matmul_q8(f->ctx, &good, f->xq, 4, 2, NULL, 8), BONSAI_ERR_NULL_ARG, "output",
           "NULL output");
    w.data = NULL;
    expect(bonsai_matmul_f32(f->ctx, &w, f->x, 512, 2, f->y, 8), BONSAI_ERR_NULL_ARG,
           "blk.3.ffn_up.weight", "NULL weight data");

    w = good;
    w.k = 200;
    expect(bonsai_matmul_f32(f->ctx, &w, f->x, 512, 2, f->y, 8), BONSAI_ERR_SHAPE,
           "k = 200 is not a multiple of 128 (tensor blk.3.ffn_up.weight)", "k = 200");
    w = good;
    w.rows = 0;
    expect(bonsai_matmul_f32(f->ctx, &w, f->x, 512, 2, f->y, 8), BONSAI_ERR_SHAPE, "0 x 256",
           "zero rows");
    expect(bonsai_matmul_f32(f->ctx, &good, f->x, 512, 0, f->y, 8), BONSAI_ERR_SHAPE, "m = 0",
           "zero tokens");

    w = good;
    w.data_bytes = sizeof f->w - 1;
    expect(bonsai_matmul_f32(f->ctx, &w, f->x, 512, 2, f->y, 8), BONSAI_ERR_BUFFER_TOO_SMALL,
           "needs 144 bytes, buffer has 143", "weights one byte short");
    expect(bonsai_matmul_f32(f->ctx, &good, f->x, 511, 2, f->y, 8), BONSAI_ERR_BUFFER_TOO_SMALL,
           "input holds 511", "input too small");
    expect(bonsai_matmul_f32(f->ctx, &good, f->x, 512, 2, f->y, 7), BONSAI_ERR_BUFFER_TOO_SMALL,
           "output holds 7", "output too small");
    expect(bonsai_matmul_q8(f->ctx, &good, f->xq, 3, 2, f->y, 8), BONSAI_ERR_BUFFER_TOO_SMALL,
           "input holds 3", "q8 input too small");

    w = good;
    w.rows = SIZE_MAX / 4;
    expect(bonsai_matmul_f32(f->ctx, &w, f->x, 512, 2, f->y, 8), BONSAI_ERR_OVERFLOW,
           "overflows", "rows overflowing size_t bytes");
    expect(bonsai_matmul_f32(f->ctx, &good, f->x, 512, SIZE_MAX / 8, f->y, 8),
           BONSAI_ERR_OVERFLOW, "overflows", "m * k overflowing size_t");

    w = good;
    w.type = BONSAI_TYPE_F32;
    expect(bonsai_matmul_f32(f->ctx, &w, f->x, 512, 2, f->y, 8), BONSAI_ERR_UNSUPPORTED, "f32",
           "float weights");
    w.type = (bonsai_type)77;
    expect(bonsai_matmul_f32(f->ctx, &w, f->x, 512, 2, f->y, 8), BONSAI_ERR_INVALID_ARG, "77",
           "type out of range");

    bonsai_matrix up = good;
    up.rows = 3;
    up.name = "blk.3.ffn_gate.weight";
    expect(bonsai_matmul_swiglu_f32(f->ctx, &good, &up, f->x, 512, 2, f->y, 8), BONSAI_ERR_SHAPE,
           "differs", "gate/up shapes differ");
    expect(bonsai_matmul_swiglu_q8(f->ctx, &good, NULL, f->xq, 4, 2, f->y, 8),
           BONSAI_ERR_NULL_ARG, "up", "NULL up matrix");
}

static void test_quantize_q8_errors(fixture *f)
{
    expect(bonsai_quantize_q8(f->ctx, f->x, 512, 2, 256, f->xq, 4), BONSAI_OK, NULL, "valid quantize");
    expect(bonsai_quantize_q8(f->ctx, f->x, 512, 2, 200, f->xq, 4), BONSAI_ERR_SHAPE, "k = 200",
           "quantize k = 200");
    expect(bonsai_quantize_q8(f->ctx, f->x, 500, 2, 256, f->xq, 4), BONSAI_ERR_BUFFER_TOO_SMALL,
           "input holds 500", "quantize input short");
    expect(bonsai_quantize_q8(f->ctx, f->x, 512, 2, 256, f->xq, 3), BONSAI_ERR_BUFFER_TOO_SMALL,
           "output holds 3", "quantize output short");
    expect(bonsai_quantize_q8(f->ctx, NULL, 512, 2, 256, f->xq, 4), BONSAI_ERR_NULL_ARG, "input",
           "quantize NULL input");
    expect(bonsai_quantize_q8(f->ctx, f->x, SIZE_MAX, SIZE_MAX / 128, 256, f->xq, 4),
           BONSAI_ERR_OVERFLOW, "overflows", "quantize m * k overflow");
}

static void test_context_errors(void)
{
    bonsai_ctx *ctx = (bonsai_ctx *)1;
    expect(bonsai_ctx_create(NULL, NULL), BONSAI_ERR_NULL_ARG, "out", "ctx out NULL");
    bonsai_ctx_params p = bonsai_ctx_default_params();
    p.n_threads = 100000;
    expect(bonsai_ctx_create(&p, &ctx), BONSAI_ERR_INVALID_ARG, "100000", "absurd thread count");
    CHECK(ctx == NULL, "failed create leaves out NULL");
    p = bonsai_ctx_default_params();
    p.tier = (bonsai_cpu_tier)42;
    expect(bonsai_ctx_create(&p, &ctx), BONSAI_ERR_INVALID_ARG, "42", "tier out of range");
    for (int t = BONSAI_TIER_SCALAR; t < BONSAI_TIER_COUNT; t++) {
        if (bonsai_cpu_tier_supported((bonsai_cpu_tier)t))
            continue;
        p.tier = (bonsai_cpu_tier)t;
        expect(bonsai_ctx_create(&p, &ctx), BONSAI_ERR_UNSUPPORTED,
               bonsai_cpu_tier_name((bonsai_cpu_tier)t), "unsupported tier refused");
    }
    bonsai_ctx_free(NULL); /* no-op */
    CHECK(strcmp(bonsai_status_name((bonsai_status)999), "BONSAI_ERR_UNKNOWN") == 0,
          "unknown status name");
}

/* BONSAI_CPU_TIER: a bad name and an unsupported tier are refused by name. */
static void test_env_tier(void)
{
    bonsai_cpu_tier t;
    setenv("BONSAI_CPU_TIER", "sse9", 1);
    expect(bonsai_cpu_tier_select(&t), BONSAI_ERR_INVALID_ARG, "BONSAI_CPU_TIER=sse9",
           "unknown tier name");
    setenv("BONSAI_CPU_TIER", "scalar", 1);
    expect(bonsai_cpu_tier_select(&t), BONSAI_OK, NULL, "scalar forced");
    CHECK(t == BONSAI_TIER_SCALAR, "scalar forced -> scalar");
    for (int i = BONSAI_TIER_AVX2; i < BONSAI_TIER_COUNT; i++) {
        if (bonsai_cpu_tier_supported((bonsai_cpu_tier)i))
            continue;
        setenv("BONSAI_CPU_TIER", bonsai_cpu_tier_name((bonsai_cpu_tier)i), 1);
        expect(bonsai_cpu_tier_select(&t), BONSAI_ERR_UNSUPPORTED,
               bonsai_cpu_tier_name((bonsai_cpu_tier)i), "unsupported tier forced");
    }
    unsetenv("BONSAI_CPU_TIER");
}

int main(void)
{
    harness_init();
    fixture f;
    bonsai_ctx_params p = bonsai_ctx_default_params();
    p.n_threads = 2;
    if (bonsai_ctx_create(&p, &f.ctx) != BONSAI_OK) {
        fprintf(stderr, "context: %s\n", bonsai_last_error());
        return 1;
    }
    for (size_t i = 0; i < sizeof f.x / sizeof f.x[0]; i++)
        f.x[i] = rng_normal();
    CHECK(bonsai_quantize(BONSAI_TYPE_Q1_0_G128, f.x, 256 * 4 / 2 * 2, f.w, sizeof f.w) == BONSAI_OK,
          "make weights");
    test_matmul_errors(&f);
    test_quantize_q8_errors(&f);
    test_context_errors();
    test_env_tier();
    bonsai_ctx_free(f.ctx);
    return harness_finish();
}

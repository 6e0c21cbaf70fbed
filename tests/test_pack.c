/* bonsai_matrix_pack / bonsai_matrix_unpack through the public API, on
 * every CPU tier this host runs:
 *   - one-token q8 matmuls (store, residual add, SwiGLU) on packed matrices
 *     give bitwise the outputs of the same calls on the unpacked ones, for
 *     row counts that leave partial 32-row panels and k past one chunk;
 *     many-token calls and contexts of other tiers ignore the copy;
 *   - a tier without a packed layout (and TQ2_0_G128) leaves the matrix as
 *     it was; packing twice keeps the first copy; unpack clears the fields
 *     and tolerates NULL and unpacked matrices;
 *   - NULL context or matrix, and a malformed matrix, are refused with
 *     their status. */
#include <stdlib.h>
#include <string.h>

#include "bonsai/bonsai.h"
#include "harness.h"
#include "tier_kernels.h"

static uint8_t *random_weights(bonsai_type t, size_t rows, size_t k, size_t *bytes)
{
    bonsai_type_matrix_bytes(t, rows, k, bytes);
    uint8_t *w = malloc(*bytes);
    for (size_t i = 0; i < *bytes; i++)
        w[i] = (uint8_t)rng_u64();
    const size_t bb = bonsai_type_block_bytes(t), at = t == BONSAI_TYPE_TQ2_0_G128 ? 32 : 0;
    for (size_t b = 0; b < *bytes / bb; b++) {
        const uint16_t d = bonsai_fp32_to_fp16(rng_uniform(0.01f, 0.1f));
        w[b * bb + at] = (uint8_t)d;
        w[b * bb + at + 1] = (uint8_t)(d >> 8);
    }
    return w;
}

typedef enum { OP_STORE, OP_ADD, OP_SWIGLU } op;

static bonsai_status call(bonsai_ctx *ctx, op o, const bonsai_matrix *w, const bonsai_matrix *w2,
                          const bonsai_block_q8 *xq, size_t blocks, size_t m, float *y)
{
    const size_t n = m * w->rows;
    if (o == OP_STORE)
        return bonsai_matmul_q8(ctx, w, xq, blocks, m, y, n);
    if (o == OP_ADD)
        return bonsai_matmul_add_q8(ctx, w, xq, blocks, m, y, n);
    return bonsai_matmul_swiglu_q8(ctx, w, w2, xq, blocks, m, y, n);
}

/* Outputs of op on (w, w2) for m tokens, the add starting from ones. */
static float *outputs(bonsai_ctx *ctx, op o, const bonsai_matrix *w, const bonsai_matrix *w2,
                      const bonsai_block_q8 *xq, size_t m)
{
    float *y = malloc(m * w->rows * sizeof *y);
    for (size_t i = 0; i < m * w->rows; i++)
        y[i] = 1.0f;
    bonsai_status st = call(ctx, o, w, w2, xq, m * (w->k / 128), m, y);
    CHECK(st == BONSAI_OK, "matmul op %d %zux%zu: %s", (int)o, w->rows, w->k, bonsai_last_error());
    return y;
}

static void check_case(bonsai_ctx *ctx, bonsai_ctx *other, bonsai_type type, size_t rows,
                       size_t k)
{
    const char *tier = bonsai_cpu_tier_name(bonsai_ctx_tier(ctx));
    size_t bytes;
    uint8_t *d1 = random_weights(type, rows, k, &bytes), *d2 = random_weights(type, rows, k, &bytes);
    bonsai_matrix w = {.type = type, .rows = rows, .k = k, .data = d1, .data_bytes = bytes,
                       .name = "test.gate"};
    bonsai_matrix u = w;
    u.data = d2;
    u.name = "test.up";
    const size_t m_max = 3, nb = k / 128;
    float *x = malloc(m_max * k * sizeof *x);
    for (size_t i = 0; i < m_max * k; i++)
        x[i] = rng_normal();
    bonsai_block_q8 *xq = malloc(m_max * nb * sizeof *xq);
    CHECK(bonsai_quantize_q8(ctx, x, m_max * k, m_max, k, xq, m_max * nb) == BONSAI_OK,
          "quantize: %s", bonsai_last_error());

    bonsai_ctx *cs[2] = {ctx, other};
    float *want[2][3][2] = {{{0}}};
    for (int c = 0; c < 2; c++)
        for (int o = 0; o < 3 && cs[c]; o++)
            for (size_t m = 1; m <= m_max; m += 2)
                want[c][o][m / 2] = outputs(cs[c], (op)o, &w, &u, xq, m);

    bonsai_status st = bonsai_matrix_pack(ctx, &w);
    if (st == BONSAI_OK)
        st = bonsai_matrix_pack(ctx, &u);
    CHECK(st == BONSAI_OK, "%s pack %s %zux%zu: %s", tier, bonsai_type_name(type), rows, k,
          bonsai_last_error());
    const int packs = w.packed != NULL;
    CHECK(packs == (u.packed != NULL) && (!packs || (w.packed_bytes >= bytes && w.packed_layout)),
          "%s pack %s %zux%zu: packed %p (%zu bytes, layout %d)", tier, bonsai_type_name(type),
          rows, k, w.packed, w.packed_bytes, w.packed_layout);
    if (type == BONSAI_TYPE_TQ2_0_G128 || bonsai_ctx_tier(ctx) != BONSAI_TIER_AVX512)
        CHECK(!packs, "%s pack %s: packed, but this tier has no packed layout for it", tier,
              bonsai_type_name(type));
    else
        CHECK(packs, "%s pack %s: the AVX-512 tier did not pack Q1", tier, bonsai_type_name(type));
    void *first = w.packed;
    CHECK(bonsai_matrix_pack(ctx, &w) == BONSAI_OK && w.packed == first,
          "%s pack twice: the copy changed (%p -> %p)", tier, first, w.packed);

    for (int c = 0; c < 2; c++)
        for (int o = 0; o < 3 && cs[c]; o++)
            for (size_t m = 1; m <= m_max; m += 2) {
                float *got = outputs(cs[c], (op)o, &w, &u, xq, m);
                CHECK(memcmp(got, want[c][o][m / 2], m * rows * sizeof *got) == 0,
                      "%s packed %s %zux%zu op %d m=%zu (run by %s): differs from unpacked", tier,
                      bonsai_type_name(type), rows, k, o, m,
                      bonsai_cpu_tier_name(bonsai_ctx_tier(cs[c])));
                free(got);
                free(want[c][o][m / 2]);
            }
    bonsai_matrix_unpack(&w);
    bonsai_matrix_unpack(&u);
    bonsai_matrix_unpack(&u);
    CHECK(!w.packed && !w.packed_bytes && !w.packed_layout, "unpack left packed fields set");
    free(d1);
    free(d2);
    free(x);
    free(xq);
}

static void check_errors(bonsai_ctx *ctx)
{
    uint8_t block[18] = {0};
    bonsai_matrix w = {.type = BONSAI_TYPE_Q1_0_G128, .rows = 1, .k = 128, .data = block,
                       .data_bytes = sizeof block, .name = "blk.0.ffn_up.weight"};
    CHECK(bonsai_matrix_pack(NULL, &w) == BONSAI_ERR_NULL_ARG, "pack with NULL context");
    CHECK(bonsai_matrix_pack(ctx, NULL) == BONSAI_ERR_NULL_ARG, "pack of NULL matrix");
    w.k = 100;
    CHECK(bonsai_matrix_pack(ctx, &w) == BONSAI_ERR_SHAPE &&
              strstr(bonsai_last_error(), "blk.0.ffn_up.weight"),
          "pack with k = 100: %s", bonsai_last_error());
    w.k = 256;
    CHECK(bonsai_matrix_pack(ctx, &w) == BONSAI_ERR_BUFFER_TOO_SMALL && !w.packed,
          "pack of a too-small buffer: %s", bonsai_last_error());
    bonsai_matrix_unpack(NULL);
}

int main(void)
{
    harness_init();
    bonsai_ctx *scalar = NULL;
    bonsai_ctx_params sp = {.n_threads = 1, .tier = BONSAI_TIER_SCALAR};
    if (!CHECK(bonsai_ctx_create(&sp, &scalar) == BONSAI_OK, "scalar context: %s",
               bonsai_last_error()))
        return harness_finish();
    check_errors(scalar);
    /* 4200 x 2176: long ranges per thread, k past one 16-block table group */
    static const size_t shapes[][2] = {{1, 128}, {77, 2048}, {100, 4224}, {64, 256}, {4200, 2176}};
    for (int tier = BONSAI_TIER_SCALAR; tier < BONSAI_TIER_COUNT; tier++) {
        bonsai_ctx *ctx = tier_context_or_skip(tier, 2);
        if (!ctx)
            continue;
        check_errors(ctx);
        for (int ti = 0; ti < 2; ti++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_case(ctx, tier == BONSAI_TIER_SCALAR ? NULL : scalar,
                           ti ? BONSAI_TYPE_TQ2_0_G128 : BONSAI_TYPE_Q1_0_G128, shapes[s][0],
                           shapes[s][1]);
        bonsai_ctx_free(ctx);
    }
    bonsai_ctx_free(scalar);
    return harness_finish();
}

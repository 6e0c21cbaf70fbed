/* Formats: fp16/bf16 conversions, every bit position and code of each block
 * layout pinned with hand-built blocks, the quantizer rules, and the size
 * and error checks of the public conversion calls. */
#include <string.h>

#include "bonsai/bonsai.h"
#include "harness.h"

static void test_fp16_known_values(void)
{
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {0.0f, 0x0000},      {-0.0f, 0x8000},      {1.0f, 0x3c00},       {-2.0f, 0xc000},
        {0.5f, 0x3800},      {65504.0f, 0x7bff},   {5.9604645e-8f, 0x0001}, /* 2^-24 */
        {6.1035156e-5f, 0x0400}, /* 2^-14, smallest normal */
        {0.333251953125f, 0x3555},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(bonsai_fp32_to_fp16(cases[i].f) == cases[i].h, "fp32->fp16(%g) = 0x%04x, want 0x%04x",
              cases[i].f, bonsai_fp32_to_fp16(cases[i].f), cases[i].h);
        CHECK(bonsai_fp16_to_fp32(cases[i].h) == cases[i].f, "fp16->fp32(0x%04x) = %g, want %g",
              cases[i].h, bonsai_fp16_to_fp32(cases[i].h), cases[i].f);
    }
    /* ties to even: 1 + 2^-11 is halfway between 0x3c00 and 0x3c01 */
    CHECK(bonsai_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00, "tie rounds to even (down)");
    CHECK(bonsai_fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02, "tie rounds to even (up)");
    CHECK(bonsai_fp32_to_fp16(65520.0f) == 0x7c00, "65520 overflows to inf");
    CHECK(bonsai_fp32_to_fp16(1e-9f) == 0x0000, "tiny rounds to zero");
    CHECK(bonsai_fp32_to_fp16(INFINITY) == 0x7c00, "inf");
    CHECK((bonsai_fp32_to_fp16(NAN) & 0x7fff) > 0x7c00, "NaN stays NaN");
    CHECK(bonsai_bf16_to_fp32(0x3f80) == 1.0f, "bf16 1.0");
    CHECK(bonsai_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "bf16 tie to even");
    CHECK(bonsai_fp32_to_bf16(-3.0f) == 0xc040, "bf16 -3");
}

/* Every finite half converts to a float that converts back to itself, and
 * the float equals sign * mantissa * 2^exponent computed here. */
static void test_fp16_all_values(void)
{
    int bad_value = 0, bad_round = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint32_t e = (h >> 10) & 0x1f, man = h & 0x3ff;
        if (e == 0x1f)
            continue;
        double v = e == 0 ? ldexp((double)man, -24) : ldexp((double)(man | 0x400), (int)e - 25);
        if (h & 0x8000)
            v = -v;
        float f = bonsai_fp16_to_fp32((uint16_t)h);
        bad_value += (double)f != v;
        bad_round += bonsai_fp32_to_fp16(f) != h;
    }
    CHECK(bad_value == 0, "%d halves decode to a wrong value", bad_value);
    CHECK(bad_round == 0, "%d halves do not round-trip", bad_round);
}

static void test_q1_every_bit(void)
{
    int bad = 0;
    for (int p = 0; p < 128; p++) {
        uint8_t blk[18] = {0x00, 0x40}; /* d = 2.0 */
        blk[2 + p / 8] = (uint8_t)(1u << (p % 8));
        float out[128];
        CHECK(bonsai_dequantize(BONSAI_TYPE_Q1_0_G128, blk, sizeof blk, out, 128) == BONSAI_OK,
              "dequantize q1");
        for (int j = 0; j < 128; j++)
            bad += out[j] != (j == p ? 2.0f : -2.0f);
    }
    CHECK(bad == 0, "q1_0_g128: %d weights decoded wrongly over 128 single-bit blocks", bad);
}

/* The 2-bit layouts: code c at position p, all other codes 01 (zero). */
static void check_two_bit(bonsai_type type, size_t group, size_t bytes, size_t d_offset,
                          size_t qs_offset, const float value[4])
{
    int bad = 0;
    for (size_t p = 0; p < group; p++) {
        for (int c = 0; c < 4; c++) {
            uint8_t blk[34];
            memset(blk, 0, sizeof blk);
            memset(blk + qs_offset, 0x55, group / 4);
            blk[d_offset] = 0x00;
            blk[d_offset + 1] = 0x42; /* d = 3.0 */
            blk[qs_offset + p / 4] = (uint8_t)((blk[qs_offset + p / 4] & ~(3u << (2 * (p % 4)))) |
                                               ((unsigned)c << (2 * (p % 4))));
            float out[128];
            CHECK(bonsai_dequantize(type, blk, bytes, out, group) == BONSAI_OK, "dequantize");
            for (size_t j = 0; j < group; j++)
                bad += out[j] != (j == p ? 3.0f * value[c] : 0.0f);
        }
    }
    CHECK(bad == 0, "%s: %d weights decoded wrongly over every code at every position",
          bonsai_type_name(type), bad);
}

static void test_two_bit_layouts(void)
{
    static const float tq2[4] = {-1, 0, 1, 0}, pq2[4] = {-1, 0, 1, 2};
    check_two_bit(BONSAI_TYPE_TQ2_0_G128, 128, 34, 32, 0, tq2);
    check_two_bit(BONSAI_TYPE_PQ2_0, 128, 34, 0, 2, pq2);
    check_two_bit(BONSAI_TYPE_Q2_0_G64, 64, 18, 0, 2, pq2);
}

static void test_q1_quantizer(void)
{
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = rng_normal();
    x[5] = 0.0f; /* zero encodes as + */
    uint8_t blk[36];
    CHECK(bonsai_quantize(BONSAI_TYPE_Q1_0_G128, x, 256, blk, sizeof blk) == BONSAI_OK, "q1 quantize");
    for (int b = 0; b < 2; b++) {
        double mean = 0;
        for (int j = 0; j < 128; j++)
            mean += fabs(x[128 * b + j]);
        mean /= 128;
        uint16_t d = (uint16_t)(blk[18 * b] | blk[18 * b + 1] << 8);
        CHECK(d == bonsai_fp32_to_fp16((float)mean), "q1 block %d: d = mean|x|", b);
        int bad = 0;
        for (int j = 0; j < 128; j++) {
            int bit = (blk[18 * b + 2 + j / 8] >> (j % 8)) & 1;
            bad += bit != (x[128 * b + j] >= 0);
        }
        CHECK(bad == 0, "q1 block %d: %d sign bits wrong", b, bad);
    }
}

static void test_tq2_quantizer(void)
{
    float x[128];
    for (int i = 0; i < 128; i++)
        x[i] = rng_uniform(-1.0f, 1.0f);
    x[7] = -4.0f; /* max |x| */
    x[8] = 2.0f;  /* exactly d/2: nonzero */
    x[9] = -1.99f; /* under d/2: zero */
    uint8_t blk[34];
    CHECK(bonsai_quantize(BONSAI_TYPE_TQ2_0_G128, x, 128, blk, sizeof blk) == BONSAI_OK, "tq2 quantize");
    CHECK((blk[32] | blk[33] << 8) == bonsai_fp32_to_fp16(4.0f), "tq2 d = max|x|");
    int bad = 0;
    for (int j = 0; j < 128; j++) {
        int code = (blk[j / 4] >> (2 * (j % 4))) & 3;
        int want = fabsf(x[j]) >= 2.0f ? (x[j] > 0 ? 2 : 0) : 1;
        bad += code != want;
    }
    CHECK(bad == 0, "tq2: %d codes differ from the threshold rule", bad);
}

static void test_round_trips(void)
{
    /* quantize -> dequantize stays close for the 2-bit family and exact for
     * inputs that already are on the grid */
    static const bonsai_type types[] = {BONSAI_TYPE_PQ2_0, BONSAI_TYPE_Q2_0_G64};
    for (size_t i = 0; i < 2; i++) {
        float x[128], y[128];
        for (int j = 0; j < 128; j++)
            x[j] = 0.5f * (float)((int)(rng_u64() % 4) - 1);
        x[0] = 1.0f; /* +2d with d = 0.5 in every group */
        x[64] = 1.0f;
        uint8_t buf[68];
        CHECK(bonsai_quantize(types[i], x, 128, buf, sizeof buf) == BONSAI_OK, "quantize");
        CHECK(bonsai_dequantize(types[i], buf, sizeof buf, y, 128) == BONSAI_OK, "dequantize");
        CHECK(memcmp(x, y, sizeof x) == 0, "%s: grid values round-trip exactly",
              bonsai_type_name(types[i]));
    }
    float f[3] = {1.5f, -2.25f, 1e-3f}, g[3];
    uint8_t h[6];
    CHECK(bonsai_quantize(BONSAI_TYPE_F16, f, 3, h, 6) == BONSAI_OK &&
              bonsai_dequantize(BONSAI_TYPE_F16, h, 6, g, 3) == BONSAI_OK && g[0] == 1.5f &&
              g[1] == -2.25f && fabsf(g[2] - 1e-3f) < 1e-6f,
          "f16 round trip");
}

static void test_conversion_errors(void)
{
    float x[256] = {0};
    uint8_t buf[64];
    CHECK(bonsai_quantize(BONSAI_TYPE_Q1_0_G128, x, 100, buf, sizeof buf) == BONSAI_ERR_SHAPE,
          "n not a multiple of 128 -> SHAPE");
    CHECK(bonsai_quantize(BONSAI_TYPE_Q1_0_G128, x, 256, buf, 35) == BONSAI_ERR_BUFFER_TOO_SMALL,
          "35 bytes for 2 blocks -> BUFFER_TOO_SMALL");
    CHECK(bonsai_dequantize(BONSAI_TYPE_TQ2_0_G128, NULL, 34, x, 128) == BONSAI_ERR_NULL_ARG,
          "NULL -> NULL_ARG");
    CHECK(bonsai_quantize((bonsai_type)99, x, 128, buf, 64) == BONSAI_ERR_INVALID_ARG,
          "bad type -> INVALID_ARG");
    size_t bytes;
    CHECK(bonsai_type_matrix_bytes(BONSAI_TYPE_Q1_0_G128, SIZE_MAX / 2, 1280, &bytes) ==
              BONSAI_ERR_OVERFLOW,
          "overflowing matrix -> OVERFLOW");
    CHECK(strstr(bonsai_last_error(), "overflows") != NULL, "overflow message: %s",
          bonsai_last_error());
    CHECK(bonsai_type_matrix_bytes(BONSAI_TYPE_TQ2_0_G128, 3, 256, &bytes) == BONSAI_OK &&
              bytes == 3 * 2 * 34,
          "3 x 256 tq2 = 204 bytes");
    bonsai_type t;
    CHECK(bonsai_type_from_name("tq2_0_g128", &t) == BONSAI_OK && t == BONSAI_TYPE_TQ2_0_G128,
          "type by name");
    CHECK(bonsai_type_from_name("q4_0", &t) == BONSAI_ERR_INVALID_ARG, "unknown name refused");
}

int main(void)
{
    harness_init();
    test_fp16_known_values();
    test_fp16_all_values();
    test_q1_every_bit();
    test_two_bit_layouts();
    test_q1_quantizer();
    test_tq2_quantizer();
    test_round_trips();
    test_conversion_errors();
    return harness_finish();
}

/* ggml tensor type ids: names for messages and the bonsai mapping. */
#include <stddef.h>

#include "gguf/gguf_types.h"

const char *gguf_ggml_type_name(uint32_t id)
{
    static const struct {
        uint32_t id;
        const char *name;
    } names[] = {
        {0, "f32"},      {1, "f16"},      {2, "q4_0"},     {3, "q4_1"},     {6, "q5_0"},
        {7, "q5_1"},     {8, "q8_0"},     {9, "q8_1"},     {10, "q2_K"},    {11, "q3_K"},
        {12, "q4_K"},    {13, "q5_K"},    {14, "q6_K"},    {15, "q8_K"},    {16, "iq2_xxs"},
        {17, "iq2_xs"},  {18, "iq3_xxs"}, {19, "iq1_s"},   {20, "iq4_nl"},  {21, "iq3_s"},
        {22, "iq2_s"},   {23, "iq4_xs"},  {24, "i8"},      {25, "i16"},     {26, "i32"},
        {27, "i64"},     {28, "f64"},     {29, "iq1_m"},   {30, "bf16"},    {34, "tq1_0"},
        {35, "tq2_0"},   {39, "mxfp4"},   {41, "q1_0"},    {42, "q2_0"},    {142, "pq2_0"},
        {143, "ptq1_0"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == id)
            return names[i].name;
    return "unknown";
}

int gguf_ggml_to_bonsai(uint32_t id, bonsai_type *out)
{
    switch (id) {
    case GGML_TYPE_F32: *out = BONSAI_TYPE_F32; return 1;
    case GGML_TYPE_F16: *out = BONSAI_TYPE_F16; return 1;
    case GGML_TYPE_BF16: *out = BONSAI_TYPE_BF16; return 1;
    case GGML_TYPE_Q1_0: *out = BONSAI_TYPE_Q1_0_G128; return 1;
    case GGML_TYPE_PQ2_0: *out = BONSAI_TYPE_PQ2_0; return 1;
    default: return 0;
    }
}

int gguf_bonsai_to_ggml(bonsai_type t, uint32_t *out)
{
    switch (t) {
    case BONSAI_TYPE_F32: *out = GGML_TYPE_F32; return 1;
    case BONSAI_TYPE_F16: *out = GGML_TYPE_F16; return 1;
    case BONSAI_TYPE_BF16: *out = GGML_TYPE_BF16; return 1;
    case BONSAI_TYPE_Q1_0_G128: *out = GGML_TYPE_Q1_0; return 1;
    case BONSAI_TYPE_TQ2_0_G128: *out = GGML_TYPE_Q2_42; return 1;
    case BONSAI_TYPE_PQ2_0: *out = GGML_TYPE_PQ2_0; return 1;
    case BONSAI_TYPE_Q2_0_G64: *out = GGML_TYPE_Q2_42; return 1;
    default: return 0;
    }
}

/* Scalar tier: every slot bound to the reference kernels of src/ref. */
#include "formats/formats_internal.h"
#include "ref/ref_kernels.h"

#define REF_MM(TYPE, name)                                                                  \
    static void mm_f32_##name(const void *w, size_t k, size_t r0, size_t r1, const float *x, \
                              size_t m, float *y, size_t ldy)                               \
    {                                                                                       \
        bonsai_ref_mm_f32(TYPE, w, k, r0, r1, x, m, y, ldy);                                \
    }                                                                                       \
    static void mm_q8_##name(const void *w, size_t k, size_t r0, size_t r1,                 \
                             const bonsai_block_q8 *x, size_t m, float *y, size_t ldy)      \
    {                                                                                       \
        bonsai_ref_mm_q8(TYPE, w, k, r0, r1, x, m, y, ldy);                                 \
    }

REF_MM(BONSAI_TYPE_Q1_0_G128, q1)
REF_MM(BONSAI_TYPE_TQ2_0_G128, tq2)
REF_MM(BONSAI_TYPE_PQ2_0, pq2)
REF_MM(BONSAI_TYPE_Q2_0_G64, q2g64)

static void fp16_to_fp32(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bonsai_fp16_to_fp32(src[i]);
}

static void fp32_to_fp16(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bonsai_fp32_to_fp16(src[i]);
}

void bonsai_cpu_fill_scalar(bonsai_cpu_kernels *t)
{
    t->name = "scalar";
    t->silu_mul = bonsai_ref_silu_mul;
    t->mm_f32[BONSAI_TYPE_Q1_0_G128] = mm_f32_q1;
    t->mm_q8[BONSAI_TYPE_Q1_0_G128] = mm_q8_q1;
    t->mm_f32[BONSAI_TYPE_TQ2_0_G128] = mm_f32_tq2;
    t->mm_q8[BONSAI_TYPE_TQ2_0_G128] = mm_q8_tq2;
    t->mm_f32[BONSAI_TYPE_PQ2_0] = mm_f32_pq2;
    t->mm_q8[BONSAI_TYPE_PQ2_0] = mm_q8_pq2;
    t->mm_f32[BONSAI_TYPE_Q2_0_G64] = mm_f32_q2g64;
    t->mm_q8[BONSAI_TYPE_Q2_0_G64] = mm_q8_q2g64;
    t->quantize_q8 = bonsai_ref_quantize_q8;
    t->fp16_to_fp32 = fp16_to_fp32;
    t->fp32_to_fp16 = fp32_to_fp16;
    t->rms_norm = bonsai_ref_rms_norm;
    for (int c = 0; c < BONSAI_CACHE_TYPES; c++)
        t->attn_group[c] = bonsai_ref_attn_group[c];
    t->attn_dim_multiple = 1;
    t->row_multiple = 1;
    t->tile_tokens = 16;
}

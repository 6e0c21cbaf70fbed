/* NEON tier: the table slots it implements. Q1_0_g128 and TQ2_0_g128 in
 * both activation modes (q8 mode with SDOT when the CPU has DOTPROD, else
 * with vpadal), q8 quantization, fp16 conversions, RMSNorm and attention;
 * other formats keep the scalar kernels. Compiled for base ARMv8-A: nothing here executes a
 * DOTPROD instruction. */
#include "cpu/neon/neon_kernels.h"

void bonsai_cpu_fill_neon(bonsai_cpu_kernels *t, int has_dotprod)
{
    t->name = has_dotprod ? "neon+dotprod" : "neon";
    if (has_dotprod) {
        t->mm_q8[BONSAI_TYPE_Q1_0_G128] = bonsai_neon_mm_q8_q1_0_g128_dotprod;
        t->mm_q8[BONSAI_TYPE_TQ2_0_G128] = bonsai_neon_mm_q8_tq2_0_g128_dotprod;
    } else {
        t->mm_q8[BONSAI_TYPE_Q1_0_G128] = bonsai_neon_mm_q8_q1_0_g128;
        t->mm_q8[BONSAI_TYPE_TQ2_0_G128] = bonsai_neon_mm_q8_tq2_0_g128;
    }
    t->mm_f32[BONSAI_TYPE_Q1_0_G128] = bonsai_neon_mm_f32_q1_0_g128;
    t->mm_f32[BONSAI_TYPE_TQ2_0_G128] = bonsai_neon_mm_f32_tq2_0_g128;
    t->quantize_q8 = bonsai_neon_quantize_q8;
    t->fp16_to_fp32 = bonsai_neon_fp16_to_fp32;
    t->fp32_to_fp16 = bonsai_neon_fp32_to_fp16;
    t->rms_norm = bonsai_neon_rms_norm;
    for (int c = 0; c < BONSAI_CACHE_TYPES; c++)
        t->attn_group[c] = bonsai_neon_attn_group[c];
    t->attn_dim_multiple = 16;
    t->row_multiple = 1;
    t->tile_tokens = 16;
}

/* AVX-512 q8 GEMV (one token) for Q1_0_G128 weights re-laid out in 32-row
 * panels, and the packing that makes them. Same method, same sums in the
 * same order as the table GEMV on the file's layout (gemv_q1_tables.c), so
 * the outputs are bitwise those of bonsai_avx512_gemv_q8_q1.
 *
 * Panel layout (PANEL_BLOCK_BYTES = 576 bytes per 32 rows x 128-block, the
 * same bytes as the 32 rows' file blocks): panel p holds rows 32p..32p+31;
 * its block b sits at byte (p * k/128 + b) * 576:
 *   bytes   0..511: 8 vectors of 64 bytes; 16-bit lane i of vector w holds
 *                   sign bits 16w..16w+15 of row 32p + i's block b (the
 *                   file's qs bytes 2w, 2w+1);
 *   bytes 512..575: the 32 rows' fp16 scales, lane i = row 32p + i.
 * Rows past the matrix's last in the final panel are zero (bits and scale).
 * So a thread's row range is one sequential stream, and each block needs 9
 * aligned vector loads where the file layout needs 32 16-byte loads, 24
 * inserts and unpacks (the transpose) and 32 scalar scale loads. */
#include "cpu/avx512/q1_lookup.h"

#define PANEL_BITS_BYTES 512
#define PANEL_BLOCK_BYTES (PANEL_BITS_BYTES + 2 * PASS_ROWS)
/* how far ahead of the block being read a pass prefetches: ~9 KB, a few
 * hundred ns of one thread's stream (4 blocks ahead read 47-51 GB/s cold,
 * 8-32 blocks 53-59, bench/NOTES.md) */
#define PANEL_PREFETCH_BYTES (16 * PANEL_BLOCK_BYTES)

size_t bonsai_avx512_q1_panels_bytes(size_t rows, size_t k)
{
    return (rows + PASS_ROWS - 1) / PASS_ROWS * (k / 128) * PANEL_BLOCK_BYTES;
}

/* Packs panels [p0, p1) of a [rows][k] file-layout matrix w into out (the
 * whole panel buffer, 64-byte aligned). */
void bonsai_avx512_pack_q1_panels(const void *w, size_t rows, size_t k, size_t p0, size_t p1,
                                  void *out)
{
    const size_t nb = k / 128, rb = nb * Q1_BLOCK_BYTES;
    for (size_t p = p0; p < p1; p++) { // [panels]
        const size_t r = p * PASS_ROWS;
        const int R = rows - r < PASS_ROWS ? (int)(rows - r) : PASS_ROWS;
        const __mmask32 valid = R == PASS_ROWS ? ~(__mmask32)0 : (__mmask32)((1u << R) - 1);
        const uint8_t *base = (const uint8_t *)w + r * rb;
        for (size_t b = 0; b < nb; b++) { // [k / 128]
            uint8_t *dst = (uint8_t *)out + (p * nb + b) * PANEL_BLOCK_BYTES;
            const size_t off = b * Q1_BLOCK_BYTES;
            __m512i z[8];
            load_transposed(base, rb, R, off + 2, z, 0);
            UNROLL for (int j = 0; j < 8; j++)
                _mm512_store_si512(dst + 64 * j, _mm512_maskz_mov_epi16(valid, z[j]));
            uint16_t d[PASS_ROWS];
            for (int i = 0; i < PASS_ROWS; i++)
                d[i] = i < R ? load_u16(base + (size_t)i * rb + off) : 0;
            memcpy(dst + PANEL_BITS_BYTES, d, sizeof d);
        }
    }
}

/* Rows of one panel (R <= 32 of them stored), blocks [0, nb) of a chunk
 * (blk, x and tables at the chunk's first block); the stream is prefetched
 * up to stream_end. y[i] = partial sum (first chunk) or y[i] + partial sum. */
AVX512_INLINE void panel_pass(const uint8_t *blk, const uint8_t *stream_end, int R,
                              const bonsai_block_q8 *x, const uint8_t *tables, size_t nb,
                              float *y, int first)
{
    __m512 p[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t b = 0; b < nb; b++, blk += PANEL_BLOCK_BYTES) { // [chunk blocks]
        if (blk + PANEL_PREFETCH_BYTES < stream_end)
            UNROLL for (int l = 0; l < PANEL_BLOCK_BYTES / 64; l++)
                _mm_prefetch((const char *)(blk + PANEL_PREFETCH_BYTES + 64 * l), _MM_HINT_T0);
        const uint8_t *t = tables + b * TABLES_PER_BLOCK * TABLE_BYTES;
        __m512i s16 = _mm512_setzero_si512();
        UNROLL for (int j = 0; j < 8; j++)
            s16 = lookup_word(s16, _mm512_load_si512(blk + 64 * j), t + (size_t)(4 * j) * TABLE_BYTES);
        finish_block(s16, _mm512_load_si512(blk + PANEL_BITS_BYTES), x + b, p);
    }
    store_pass(p, R, y, first);
}

/* y[r - r0] for rows [r0, r1) of the panel-layout matrix (r0 % 32 == 0);
 * panels outer, k chunks inner, as the file-layout kernel. */
void bonsai_avx512_gemv_q8_q1_panels(const void *panels, size_t k, size_t r0, size_t r1,
                                     const bonsai_block_q8 *x, const void *tables, float *y)
{
    const size_t nb = k / 128, panel_bytes = nb * PANEL_BLOCK_BYTES;
    const uint8_t *end = (const uint8_t *)panels + (r1 + PASS_ROWS - 1) / PASS_ROWS * panel_bytes;
    for (size_t r = r0; r < r1; r += PASS_ROWS) { // [rows / 32]
        const int R = r1 - r < PASS_ROWS ? (int)(r1 - r) : PASS_ROWS;
        const uint8_t *panel = (const uint8_t *)panels + r / PASS_ROWS * panel_bytes;
        for (size_t c0 = 0; c0 < nb; c0 += Q8_CHUNK_BLOCKS) { // [k / (128 * chunk)]
            const size_t cn = nb - c0 < Q8_CHUNK_BLOCKS ? nb - c0 : Q8_CHUNK_BLOCKS;
            panel_pass(panel + c0 * PANEL_BLOCK_BYTES, end, R, x + c0,
                       (const uint8_t *)tables + c0 * TABLES_PER_BLOCK * TABLE_BYTES, cn,
                       y + (r - r0), c0 == 0);
        }
    }
}

/* Public matmul entry points: argument checks, the split of work over the
 * context's pool (row chunks x token tiles), and the fused epilogues
 * (residual add, SwiGLU) applied to each task's tile. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "cpu/context.h"

typedef enum { EPI_STORE, EPI_ADD, EPI_SWIGLU } epilogue;

#define MAX_GEMV_TASKS 64
#define GEMV_TASK_ROWS 32 /* granularity of one-token row ranges */

typedef struct job {
    bonsai_ctx *ctx;
    epilogue epi;
    const bonsai_matrix *w, *w2; /* w2: up matrix for SwiGLU */
    int q8;
    const float *x;
    const bonsai_block_q8 *xq;
    const void *tables; /* one token: the tier's GEMV tables of xq, or NULL */
    size_t m;
    float *y;
    size_t rows_per_task, tokens_per_task, row_tasks;
    /* one token (split_rows): task t covers rows [row_bounds[t], row_bounds[t + 1]) */
    int split_rows;
    size_t row_bounds[MAX_GEMV_TASKS + 1];
} job;

static const char *matrix_name(const bonsai_matrix *w)
{
    return w->name ? w->name : "matrix";
}

bonsai_status bonsai_check_matrix(const bonsai_matrix *w, const char *role)
{
    if (!w)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matmul: %s matrix is NULL", role);
    const char *name = matrix_name(w);
    const char *type_name = bonsai_type_name(w->type);
    if (!type_name)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "matmul: type id %d of %s is not a type",
                           (int)w->type, name);
    if (bonsai_type_block_elems(w->type) == 1)
        return bonsai_fail(BONSAI_ERR_UNSUPPORTED,
                           "matmul: %s has type %s; matmul takes quantized weights", name,
                           type_name);
    if (!w->data)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matmul: data of %s is NULL", name);
    if (w->rows == 0 || w->k == 0)
        return bonsai_fail(BONSAI_ERR_SHAPE, "matmul: %s has shape %zu x %zu", name, w->rows,
                           w->k);
    if (w->k % BONSAI_QK != 0)
        return bonsai_fail(BONSAI_ERR_SHAPE, "k = %zu is not a multiple of 128 (tensor %s)", w->k,
                           name);
    size_t need;
    bonsai_status s = bonsai_type_matrix_bytes(w->type, w->rows, w->k, &need);
    if (s != BONSAI_OK)
        return bonsai_fail(s, "matmul: %s: %s", name, bonsai_last_error());
    if (w->data_bytes < need)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "matmul: %s (%zu x %zu %s) needs %zu bytes, buffer has %zu", name,
                           w->rows, w->k, type_name, need, w->data_bytes);
    return BONSAI_OK;
}

/* Checks that a caller buffer of have elements holds count x per_item. */
static bonsai_status check_len(const char *what, const char *name, size_t count, size_t per_item,
                               size_t have)
{
    size_t need;
    if (!bonsai_mul_size(count, per_item, &need))
        return bonsai_fail(BONSAI_ERR_OVERFLOW, "matmul %s: %s of %zu x %zu overflows size_t",
                           name, what, count, per_item);
    if (have < need)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "matmul %s: %s holds %zu elements, %zu x %zu = %zu needed", name, what,
                           have, count, per_item, need);
    return BONSAI_OK;
}

static bonsai_status check_call(bonsai_ctx *ctx, const bonsai_matrix *w, const bonsai_matrix *w2,
                                const void *x, size_t x_len, int q8, size_t m, const float *y,
                                size_t y_len)
{
    if (!ctx)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matmul: context is NULL");
    bonsai_status s = bonsai_check_matrix(w, w2 ? "gate" : "weight");
    if (s == BONSAI_OK && w2) {
        s = bonsai_check_matrix(w2, "up");
        if (s == BONSAI_OK && (w2->type != w->type || w2->rows != w->rows || w2->k != w->k))
            s = bonsai_fail(BONSAI_ERR_SHAPE,
                            "matmul swiglu: up %s (%zu x %zu %s) differs from gate %s (%zu x %zu %s)",
                            matrix_name(w2), w2->rows, w2->k, bonsai_type_name(w2->type),
                            matrix_name(w), w->rows, w->k, bonsai_type_name(w->type));
    }
    if (s != BONSAI_OK)
        return s;
    const char *name = matrix_name(w);
    if (!x || !y)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matmul %s: %s is NULL", name,
                           x ? "output" : "input");
    if (m == 0)
        return bonsai_fail(BONSAI_ERR_SHAPE, "matmul %s: token count m = 0", name);
    s = check_len("input", name, m, q8 ? w->k / BONSAI_QK : w->k, x_len);
    if (s == BONSAI_OK)
        s = check_len("output", name, m, w->rows, y_len);
    return s;
}

static void run_tile(const job *jb, const bonsai_matrix *w, size_t r0, size_t r1, size_t t0,
                     size_t nt, float *out, size_t ldo)
{
    const bonsai_cpu_kernels *kt = jb->ctx->kernels;
    const bonsai_gemv_tables_kernels *gt = &kt->gemv_tables[w->type];
    if (jb->tables && w->packed && w->packed_layout == gt->packed_layout && r0 % gt->pack_rows == 0)
        gt->gemv_packed(w->packed, w->k, r0, r1, jb->xq, jb->tables, out);
    else if (jb->tables)
        gt->gemv(w->data, w->k, r0, r1, jb->xq, jb->tables, out);
    else if (jb->q8)
        kt->mm_q8[w->type](w->data, w->k, r0, r1, jb->xq + t0 * (w->k / BONSAI_QK), nt, out,
                           ldo);
    else
        kt->mm_f32[w->type](w->data, w->k, r0, r1, jb->x + t0 * w->k, nt, out, ldo);
}

static void matmul_task(void *arg, size_t task, int worker)
{
    const job *jb = arg;
    const size_t rows = jb->w->rows;
    size_t r0, r1;
    if (jb->split_rows) {
        r0 = jb->row_bounds[task];
        r1 = jb->row_bounds[task + 1];
    } else {
        r0 = (task % jb->row_tasks) * jb->rows_per_task;
        r1 = r0 + jb->rows_per_task < rows ? r0 + jb->rows_per_task : rows;
    }
    const size_t t0 = (task / jb->row_tasks) * jb->tokens_per_task;
    const size_t nt = t0 + jb->tokens_per_task < jb->m ? jb->tokens_per_task : jb->m - t0;
    const size_t nr = r1 - r0;
    float *y = jb->y + t0 * rows + r0; /* [nt][rows] window */
    if (jb->epi == EPI_STORE) {
        run_tile(jb, jb->w, r0, r1, t0, nt, y, rows);
        return;
    }
    float *a = bonsai_ctx_scratch(jb->ctx, worker); /* [nt][nr] */
    float *b = a + BONSAI_MAX_TILE_ROWS * BONSAI_MAX_TILE_TOKENS;
    run_tile(jb, jb->w, r0, r1, t0, nt, a, nr);
    if (jb->epi == EPI_ADD) {
        for (size_t t = 0; t < nt; t++)
            for (size_t r = 0; r < nr; r++)
                y[t * rows + r] += a[t * nr + r];
        return;
    }
    run_tile(jb, jb->w2, r0, r1, t0, nt, b, nr);
    for (size_t t = 0; t < nt; t++)
        jb->ctx->kernels->silu_mul(a + t * nr, b + t * nr, y + t * rows, nr);
}

static size_t round_up(size_t v, size_t mult)
{
    return (v + mult - 1) / mult * mult;
}

/* One token: each thread one contiguous range of rows (a multiple of 32),
 * or as many such rounds as a scratch tile needs for the fused epilogues.
 * A range streams its weights with the kernel's prefetch running ahead the
 * whole way; every extra range costs a start from cold memory, which
 * measured more than the balance that many small ranges buy (bench/NOTES.md,
 * "Decode: where the time went, and one range per thread"). A thread that
 * is late for its range only delays the call: another thread claims the
 * range when done. */
static int split_gemv_rows(job *jb, size_t n_threads)
{
    const size_t rows = jb->w->rows;
    const size_t cap = jb->epi == EPI_STORE ? rows : BONSAI_MAX_TILE_ROWS * BONSAI_MAX_TILE_TOKENS;
    const size_t rounds = (rows + n_threads * cap - 1) / (n_threads * cap);
    if (rounds > MAX_GEMV_TASKS / n_threads)
        return 0; /* too many rows for one scratch tile per task: the general split */
    const size_t tasks = rounds * n_threads;
    const size_t per = round_up((rows + tasks - 1) / tasks, GEMV_TASK_ROWS);
    if (per > cap)
        return 0;
    size_t t = 0;
    jb->row_bounds[0] = 0;
    for (size_t r = 0; r < rows; r += per)
        jb->row_bounds[++t] = r + per < rows ? r + per : rows;
    jb->row_tasks = t;
    return 1;
}

static bonsai_status run_matmul(job *jb)
{
    const bonsai_cpu_kernels *kt = jb->ctx->kernels;
    const size_t rows = jb->w->rows;
    const size_t n_threads = (size_t)bonsai_ctx_n_threads(jb->ctx);
    const size_t mult = kt->row_multiple ? kt->row_multiple : 1;
    size_t tile_tokens = kt->tile_tokens ? kt->tile_tokens : 16;
    if (tile_tokens > BONSAI_MAX_TILE_TOKENS)
        tile_tokens = BONSAI_MAX_TILE_TOKENS;
    jb->tokens_per_task = jb->m < tile_tokens ? jb->m : tile_tokens;
    jb->split_rows = jb->m == 1 && n_threads <= MAX_GEMV_TASKS && split_gemv_rows(jb, n_threads);
    if (jb->split_rows) {
        bonsai_pool_run(jb->ctx->pool, jb->row_tasks, matmul_task, jb);
        return BONSAI_OK;
    }
    const size_t token_tasks = (jb->m + jb->tokens_per_task - 1) / jb->tokens_per_task;
    /* enough row chunks that every thread gets several tasks */
    size_t want_tasks = 4 * n_threads;
    size_t row_tasks_wanted = want_tasks > token_tasks ? (want_tasks + token_tasks - 1) / token_tasks : 1;
    size_t per = round_up((rows + row_tasks_wanted - 1) / row_tasks_wanted, mult);
    if (per > BONSAI_MAX_TILE_ROWS)
        per = BONSAI_MAX_TILE_ROWS / mult * mult;
    if (per == 0)
        per = mult;
    jb->rows_per_task = per;
    jb->row_tasks = (rows + per - 1) / per;
    bonsai_pool_run(jb->ctx->pool, jb->row_tasks * token_tasks, matmul_task, jb);
    return BONSAI_OK;
}

static bonsai_status matmul(bonsai_ctx *ctx, epilogue epi, int q8, const bonsai_matrix *w,
                            const bonsai_matrix *w2, const float *x, const bonsai_block_q8 *xq,
                            size_t x_len, size_t m, float *y, size_t y_len)
{
    bonsai_status s = check_call(ctx, w, w2, q8 ? (const void *)xq : (const void *)x, x_len, q8,
                                 m, y, y_len);
    if (s != BONSAI_OK)
        return s;
    job jb = {.ctx = ctx, .epi = epi, .w = w, .w2 = w2, .q8 = q8, .x = x, .xq = xq, .m = m,
              .y = y};
    const bonsai_gemv_tables_kernels *gt = &ctx->kernels->gemv_tables[w->type];
    if (q8 && m == 1 && gt->gemv) { /* gate and up share one set of tables */
        size_t bytes;
        void *tables = bonsai_mul_size(gt->bytes_per_k, w->k, &bytes)
                           ? bonsai_ctx_tables(ctx, bytes) : NULL;
        if (!tables)
            return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                               "matmul %s: no memory for the activation tables (k = %zu)",
                               matrix_name(w), w->k);
        gt->prep(xq, w->k, tables);
        jb.tables = tables;
    }
    return run_matmul(&jb);
}

bonsai_status bonsai_matmul_f32(bonsai_ctx *ctx, const bonsai_matrix *w, const float *x,
                                size_t x_len, size_t m, float *y, size_t y_len)
{
    return matmul(ctx, EPI_STORE, 0, w, NULL, x, NULL, x_len, m, y, y_len);
}

bonsai_status bonsai_matmul_q8(bonsai_ctx *ctx, const bonsai_matrix *w,
                               const bonsai_block_q8 *x, size_t x_blocks, size_t m, float *y,
                               size_t y_len)
{
    return matmul(ctx, EPI_STORE, 1, w, NULL, NULL, x, x_blocks, m, y, y_len);
}

bonsai_status bonsai_matmul_add_f32(bonsai_ctx *ctx, const bonsai_matrix *w, const float *x,
                                    size_t x_len, size_t m, float *y, size_t y_len)
{
    return matmul(ctx, EPI_ADD, 0, w, NULL, x, NULL, x_len, m, y, y_len);
}

bonsai_status bonsai_matmul_add_q8(bonsai_ctx *ctx, const bonsai_matrix *w,
                                   const bonsai_block_q8 *x, size_t x_blocks, size_t m,
                                   float *y, size_t y_len)
{
    return matmul(ctx, EPI_ADD, 1, w, NULL, NULL, x, x_blocks, m, y, y_len);
}

bonsai_status bonsai_matmul_swiglu_f32(bonsai_ctx *ctx, const bonsai_matrix *gate,
                                       const bonsai_matrix *up, const float *x, size_t x_len,
                                       size_t m, float *h, size_t h_len)
{
    if (!up)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matmul swiglu: up matrix is NULL");
    return matmul(ctx, EPI_SWIGLU, 0, gate, up, x, NULL, x_len, m, h, h_len);
}

bonsai_status bonsai_matmul_swiglu_q8(bonsai_ctx *ctx, const bonsai_matrix *gate,
                                      const bonsai_matrix *up, const bonsai_block_q8 *x,
                                      size_t x_blocks, size_t m, float *h, size_t h_len)
{
    if (!up)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matmul swiglu: up matrix is NULL");
    return matmul(ctx, EPI_SWIGLU, 1, gate, up, NULL, x, x_blocks, m, h, h_len);
}

typedef struct quant_job {
    const bonsai_cpu_kernels *kt;
    const float *x;
    size_t k;
    bonsai_block_q8 *out;
} quant_job;

static void quantize_task(void *arg, size_t t, int worker)
{
    const quant_job *qj = arg;
    (void)worker;
    qj->kt->quantize_q8(qj->x + t * qj->k, qj->k, qj->out + t * (qj->k / BONSAI_QK));
}

bonsai_status bonsai_quantize_q8(bonsai_ctx *ctx, const float *x, size_t x_len, size_t m,
                                 size_t k, bonsai_block_q8 *out, size_t out_blocks)
{
    if (!ctx || !x || !out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "quantize_q8: %s is NULL",
                           !ctx ? "context" : !x ? "input" : "output");
    if (m == 0 || k == 0 || k % BONSAI_QK != 0)
        return bonsai_fail(BONSAI_ERR_SHAPE,
                           "quantize_q8: k = %zu is not a positive multiple of 128 (m = %zu)", k, m);
    size_t need;
    if (!bonsai_mul_size(m, k, &need))
        return bonsai_fail(BONSAI_ERR_OVERFLOW, "quantize_q8: %zu x %zu overflows size_t", m, k);
    if (x_len < need)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "quantize_q8: input holds %zu floats, %zu needed", x_len, need);
    if (out_blocks < need / BONSAI_QK)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "quantize_q8: output holds %zu blocks, %zu needed", out_blocks,
                           need / BONSAI_QK);
    quant_job qj = {ctx->kernels, x, k, out};
    if (m == 1)
        quantize_task(&qj, 0, 0);
    else
        bonsai_pool_run(ctx->pool, m, quantize_task, &qj);
    return BONSAI_OK;
}

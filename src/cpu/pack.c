/* bonsai_matrix_pack: a copy of a matrix's weights in the layout of the
 * context tier's one-token kernel (kernel_table.h, packed_layout), made
 * with the context's threads, in memory of its own (2 MiB pages where the
 * kernel allows them: the packed kernel streams a thread's rows as one
 * sequence). */
#include <sys/mman.h>

#include "core/error.h"
#include "cpu/context.h"

#define PACK_HUGE_PAGE ((size_t)2 << 20)

typedef struct pack_job {
    const bonsai_gemv_tables_kernels *gt;
    const bonsai_matrix *w;
    void *out;
    size_t panels, per_task;
} pack_job;

static void pack_task(void *arg, size_t task, int worker)
{
    const pack_job *pj = arg;
    (void)worker;
    const size_t p0 = task * pj->per_task;
    const size_t p1 = p0 + pj->per_task < pj->panels ? p0 + pj->per_task : pj->panels;
    pj->gt->pack(pj->w->data, pj->w->rows, pj->w->k, p0, p1, pj->out);
}

static size_t mapped_size(size_t bytes)
{
    return (bytes + PACK_HUGE_PAGE - 1) / PACK_HUGE_PAGE * PACK_HUGE_PAGE;
}

bonsai_status bonsai_matrix_pack(bonsai_ctx *ctx, bonsai_matrix *w)
{
    if (!ctx || !w)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "matrix pack: %s is NULL",
                           ctx ? "matrix" : "context");
    bonsai_status s = bonsai_check_matrix(w, "weight");
    if (s != BONSAI_OK)
        return s;
    const bonsai_gemv_tables_kernels *gt = &ctx->kernels->gemv_tables[w->type];
    if (!gt->packed_layout || w->packed_layout == gt->packed_layout)
        return BONSAI_OK; /* nothing to pack for this tier, or packed already */
    bonsai_matrix_unpack(w);
    const size_t bytes = gt->packed_bytes(w->rows, w->k);
    void *out = mmap(NULL, mapped_size(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (out == MAP_FAILED)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                           "matrix pack: no memory for %zu bytes of packed %s", bytes,
                           w->name ? w->name : "matrix");
#ifdef MADV_HUGEPAGE
    (void)madvise(out, mapped_size(bytes), MADV_HUGEPAGE); /* a hint: fine if refused */
#endif
    pack_job pj = {gt, w, out, (w->rows + gt->pack_rows - 1) / gt->pack_rows, 0};
    const size_t tasks_wanted = 8 * (size_t)bonsai_ctx_n_threads(ctx);
    pj.per_task = (pj.panels + tasks_wanted - 1) / tasks_wanted;
    bonsai_pool_run(ctx->pool, (pj.panels + pj.per_task - 1) / pj.per_task, pack_task, &pj);
    w->packed = out;
    w->packed_bytes = bytes;
    w->packed_layout = gt->packed_layout;
    return BONSAI_OK;
}

void bonsai_matrix_unpack(bonsai_matrix *w)
{
    if (!w || !w->packed)
        return;
    munmap(w->packed, mapped_size(w->packed_bytes));
    w->packed = NULL;
    w->packed_bytes = 0;
    w->packed_layout = 0;
}

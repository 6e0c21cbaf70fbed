/* Thread pool: every task runs exactly once per job, under many threads and
 * tiny work, over many back-to-back jobs; worker indices stay in range. */
#include <stdatomic.h>
#include <string.h>

#include "core/threadpool.h"
#include "harness.h"

typedef struct counts {
    atomic_int *runs;
    int n_threads;
    atomic_int bad_worker;
} counts;

static void count_task(void *arg, size_t task, int worker)
{
    counts *c = arg;
    atomic_fetch_add(&c->runs[task], 1);
    if (worker < 0 || worker >= c->n_threads)
        atomic_fetch_add(&c->bad_worker, 1);
}

static void run_jobs(int n_threads, size_t n_tasks, int n_jobs)
{
    bonsai_pool *pool = NULL;
    if (!CHECK(bonsai_pool_create(n_threads, &pool) == BONSAI_OK, "pool of %d", n_threads))
        return;
    CHECK(bonsai_pool_size(pool) == n_threads, "pool size %d", n_threads);
    counts c = {calloc(n_tasks ? n_tasks : 1, sizeof(atomic_int)), n_threads, 0};
    int wrong = 0;
    for (int j = 0; j < n_jobs; j++) {
        for (size_t t = 0; t < n_tasks; t++)
            atomic_store(&c.runs[t], 0);
        bonsai_pool_run(pool, n_tasks, count_task, &c);
        for (size_t t = 0; t < n_tasks; t++)
            wrong += atomic_load(&c.runs[t]) != 1;
    }
    CHECK(wrong == 0, "%d threads, %zu tasks, %d jobs: %d tasks not run exactly once", n_threads,
          n_tasks, n_jobs, wrong);
    CHECK(atomic_load(&c.bad_worker) == 0, "worker index out of range");
    free(c.runs);
    bonsai_pool_free(pool);
}

int main(void)
{
    harness_init();
    run_jobs(1, 10, 10);
    run_jobs(2, 0, 10);
    run_jobs(2, 1, 1000);
    run_jobs(3, 2, 1000);
    run_jobs(16, 3, 2000);  /* more threads than tasks */
    run_jobs(64, 1000, 50); /* many threads, tiny work */
    run_jobs(8, 100000, 3);
    bonsai_pool *pool = (bonsai_pool *)1;
    CHECK(bonsai_pool_create(0, &pool) == BONSAI_ERR_INVALID_ARG && pool == NULL, "0 threads refused");
    CHECK(bonsai_pool_create(2, NULL) == BONSAI_ERR_NULL_ARG, "NULL out refused");
    bonsai_pool_free(NULL);
    return harness_finish();
}

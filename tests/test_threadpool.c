/* Thread pool: every task runs exactly once per job, under many threads and
 * tiny work, over many back-to-back jobs; worker indices stay in range; no
 * task of a job runs after the call that ran the job has returned. */
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

/* A job whose argument lives only for the duration of its call, as the
 * model's do (on the caller's stack). */
typedef struct scoped_job {
    atomic_int open;
    atomic_int *runs;
    size_t n_tasks;
    atomic_int *late; /* tasks run on a closed job or past its task count */
} scoped_job;

static void scoped_task(void *arg, size_t task, int worker)
{
    (void)worker;
    scoped_job *j = arg;
    if (!atomic_load(&j->open) || task >= j->n_tasks) {
        atomic_fetch_add(j->late, 1);
        return;
    }
    atomic_fetch_add(&j->runs[task], 1);
}

/* Jobs alternating between few and more tasks: a worker that finished the
 * last task of a small job must not claim a task of the next, larger one
 * before that job's claim is set up (it crashed `bonsai bench model` on a
 * 16-core host; on 2 cores the window is rarely hit). */
static void run_scoped_jobs(int n_threads, int n_jobs)
{
    bonsai_pool *pool = NULL;
    if (!CHECK(bonsai_pool_create(n_threads, &pool) == BONSAI_OK, "pool of %d", n_threads))
        return;
    enum { MAX_TASKS = 64 };
    atomic_int runs[MAX_TASKS], late = 0;
    int wrong = 0;
    for (int i = 0; i < n_jobs; i++) {
        const size_t n = i & 1 ? 2 + (size_t)(i % 7) : 40 + (size_t)(i % 23);
        scoped_job j = {1, runs, n, &late};
        for (size_t t = 0; t < n; t++)
            atomic_store(&runs[t], 0);
        bonsai_pool_run(pool, n, scoped_task, &j);
        atomic_store(&j.open, 0);
        for (size_t t = 0; t < n; t++)
            wrong += atomic_load(&runs[t]) != 1;
    }
    CHECK(wrong == 0 && atomic_load(&late) == 0,
          "%d threads, %d jobs of 2..62 tasks: %d tasks not run exactly once, %d run late",
          n_threads, n_jobs, wrong, atomic_load(&late));
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
    run_scoped_jobs(4, 20000);
    run_scoped_jobs(16, 20000);
    bonsai_pool *pool = (bonsai_pool *)1;
    CHECK(bonsai_pool_create(0, &pool) == BONSAI_ERR_INVALID_ARG && pool == NULL, "0 threads refused");
    CHECK(bonsai_pool_create(2, NULL) == BONSAI_ERR_NULL_ARG, "NULL out refused");
    bonsai_pool_free(NULL);
    return harness_finish();
}

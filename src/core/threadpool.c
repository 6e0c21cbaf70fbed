/* Persistent thread pool: tasks are claimed with an atomic counter.
 *
 * The counter word holds the job's generation (high 32 bits) and the next
 * task index (low 32 bits), so a worker can only claim tasks of the job it
 * read the function of; the caller waits for the tasks to be done, not for
 * every worker to show up. A worker that was asleep or descheduled while a
 * job ran (other processes on the cores) costs that job nothing: the
 * threads that are running take all of its tasks. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"
#include "core/threadpool.h"

#define SPIN_NS 200000 /* how long an idle worker spins before sleeping */

typedef struct worker {
    struct bonsai_pool *pool;
    int index;
    pthread_t thread;
} worker;

struct bonsai_pool {
    int n_threads;
    worker *workers;          /* n_threads - 1 started threads */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint generation;   /* bumped once per job */
    atomic_int stop;
    /* the current job, stored before claim is reset for it; atomics because
     * a worker late for an old job may read them while a new job is set up
     * (its claim then fails and the values are never used) */
    _Atomic(bonsai_task_fn) fn;
    _Atomic(void *) arg;
    atomic_size_t n_tasks;
    _Atomic uint64_t claim;   /* generation << 32 | next task index */
    atomic_size_t done_tasks; /* tasks of the current job finished */
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Claims and runs tasks of job generation gen until none is left (or the
 * pool has moved on to another job). */
static void run_tasks(bonsai_pool *pool, uint32_t gen, int index)
{
    uint64_t c = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(c >> 32) != gen)
            return;
        const size_t t = (size_t)(uint32_t)c;
        /* acquire: if this is the next job's n_tasks, the closed claim that
         * bonsai_pool_run stored first is seen too, and the exchange fails */
        if (t >= atomic_load_explicit(&pool->n_tasks, memory_order_acquire))
            return;
        bonsai_task_fn fn = atomic_load_explicit(&pool->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&pool->arg, memory_order_relaxed);
        /* on failure c is reloaded; on success task t of job gen is ours, and
         * the job cannot end (nor fn, arg change) before we finish it */
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &c, c + 1,
                                                   memory_order_acquire, memory_order_acquire))
            continue;
        fn(arg, t, index);
        atomic_fetch_add_explicit(&pool->done_tasks, 1, memory_order_release);
        c = atomic_load_explicit(&pool->claim, memory_order_acquire);
    }
}

/* Waits until generation differs from seen (or stop); returns the new one. */
static unsigned wait_for_job(bonsai_pool *pool, unsigned seen)
{
    long long start = now_ns();
    for (unsigned spins = 0;; spins++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load(&pool->stop))
            return g;
        cpu_relax();
        if ((spins & 255) == 255 && now_ns() - start > SPIN_NS)
            break;
    }
    pthread_mutex_lock(&pool->lock);
    unsigned g;
    while ((g = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    return g;
}

static void *worker_main(void *p)
{
    worker *w = p;
    bonsai_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load(&pool->stop))
            break;
        run_tasks(pool, (uint32_t)seen, w->index);
    }
    return NULL;
}

bonsai_status bonsai_pool_create(int n_threads, bonsai_pool **out)
{
    if (!out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "thread pool: out is NULL");
    *out = NULL;
    if (n_threads < 1 || n_threads > 4096)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "thread pool: n_threads = %d is outside [1, 4096]", n_threads);
    bonsai_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    if (n_threads > 1) {
        pool->workers = calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            bonsai_pool_free(pool);
            return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
        }
    }
    for (int i = 0; i < n_threads - 1; i++) {
        worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i + 1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pool->n_threads = i + 1; /* only join the ones that started */
            bonsai_pool_free(pool);
            return bonsai_fail(BONSAI_ERR_THREAD,
                               "thread pool: could not start thread %d of %d", i + 2, n_threads);
        }
    }
    *out = pool;
    return BONSAI_OK;
}

void bonsai_pool_free(bonsai_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->n_threads - 1; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

int bonsai_pool_size(const bonsai_pool *pool)
{
    return pool->n_threads;
}

void bonsai_pool_run(bonsai_pool *pool, size_t n_tasks, bonsai_task_fn fn, void *arg)
{
    if (n_tasks == 0)
        return;
    if (pool->n_threads == 1 || n_tasks == 1 || n_tasks > UINT32_MAX) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    const uint32_t gen = (uint32_t)atomic_load_explicit(&pool->generation,
                                                        memory_order_relaxed) + 1;
    /* Retire the last job's claim first: a worker that finished that job's
     * last task may still hold its claim word (gen - 1, n_old) and, once
     * n_tasks below is larger, would otherwise claim task n_old of THIS job
     * (with the new fn and arg) before the claim is reset, running it twice
     * and counting it once too often, so that this call could return while
     * a task still runs. With the claim closed under the new generation, its
     * compare-exchange fails and it sees a job that is not its own. */
    atomic_store_explicit(&pool->claim, (uint64_t)gen << 32 | UINT32_MAX, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* pairs with run_tasks' n_tasks load */
    atomic_store_explicit(&pool->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&pool->n_tasks, n_tasks, memory_order_relaxed);
    atomic_store_explicit(&pool->done_tasks, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->claim, (uint64_t)gen << 32, memory_order_release);
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->generation, gen, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    run_tasks(pool, gen, 0);
    for (unsigned spins = 0;
         atomic_load_explicit(&pool->done_tasks, memory_order_acquire) < n_tasks; spins++) {
        cpu_relax();
        if ((spins & 1023) == 1023)
            sched_yield();
    }
}

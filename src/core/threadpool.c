/* Persistent thread pool: tasks are claimed with an atomic counter. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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
    /* the current job, written before generation is bumped */
    bonsai_task_fn fn;
    void *arg;
    size_t n_tasks;
    atomic_size_t next_task;
    atomic_int busy_workers;  /* started threads still inside the job */
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

static void run_tasks(bonsai_pool *pool, int index)
{
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (t >= pool->n_tasks)
            break;
        pool->fn(pool->arg, t, index);
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
        run_tasks(pool, w->index);
        atomic_fetch_sub_explicit(&pool->busy_workers, 1, memory_order_release);
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
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->busy_workers, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    run_tasks(pool, 0);
    for (unsigned spins = 0; atomic_load_explicit(&pool->busy_workers, memory_order_acquire) > 0;
         spins++) {
        cpu_relax();
        if ((spins & 1023) == 1023)
            sched_yield();
    }
}

/* Internal: a persistent pthread pool. The calling thread takes part as
 * worker 0, so a pool of n threads starts n - 1. Workers spin briefly after
 * a job (decode calls come back to back) and then sleep on a condition
 * variable. One job at a time: a pool is not shared between threads. */
#ifndef BONSAI_CORE_THREADPOOL_H
#define BONSAI_CORE_THREADPOOL_H
#include <stddef.h>

#include "bonsai/status.h"

typedef struct bonsai_pool bonsai_pool;
/* Runs task indices [0, n_tasks) of one job; worker is in [0, pool size). */
typedef void (*bonsai_task_fn)(void *arg, size_t task, int worker);

bonsai_status bonsai_pool_create(int n_threads, bonsai_pool **out);
void bonsai_pool_free(bonsai_pool *pool);
int bonsai_pool_size(const bonsai_pool *pool);
/* Runs fn over every task index, spread over the pool; returns when all ran. */
void bonsai_pool_run(bonsai_pool *pool, size_t n_tasks, bonsai_task_fn fn, void *arg);

#endif

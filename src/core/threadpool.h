#ifndef RF_CORE_THREADPOOL_H
#define RF_CORE_THREADPOOL_H
/* A fixed pool of worker threads. rf_pool_run calls fn(arg, ith, nth) for
 * ith = 0..nth-1 (ith 0 on the calling thread) and returns when all are done.
 * Workers spin briefly before sleeping, since forward-pass ops are short. */
#include "rocmforge.h"

struct rf_pool;
typedef void (*rf_pool_fn)(void *arg, int ith, int nth);

rf_status rf_pool_create(int n_threads, struct rf_pool **out);
void rf_pool_free(struct rf_pool *p);
int rf_pool_size(const struct rf_pool *p);
void rf_pool_run(struct rf_pool *p, rf_pool_fn fn, void *arg);
/* As rf_pool_run, but waits only for the workers that picked the job up before the
 * caller's own fn(arg, 0, nth) returned; the others skip it. fn must therefore
 * share its work through its own atomic counter, so that the caller alone can
 * finish it. A descheduled worker (a busy or oversubscribed machine) then costs
 * nothing instead of stalling the op. Each ith still runs at most once per call. */
void rf_pool_run_any(struct rf_pool *p, rf_pool_fn fn, void *arg);
/* Number of online CPUs. */
int rf_cpu_count(void);

#endif

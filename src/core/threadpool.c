#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"

/* How long a thread spins on an atomic before blocking on a condition variable.
 * Forward-pass ops arrive back to back a few microseconds apart, so a worker that
 * stays awake this long catches the next op without a futex round trip (~50 us). */
#define POOL_SPIN_NS 200000
#define POOL_SPIN_CHECK 64 /* pauses between clock reads */

struct rf_pool {
    int n;              /* threads including the caller */
    pthread_t *workers; /* n - 1 */
    /* The job. Written by the caller before gen is bumped, read by workers after they
     * see the new gen, left alone until pending reaches 0 again. */
    rf_pool_fn fn;
    void *arg;
    _Atomic uint32_t gen;      /* bumped once per job and once at shutdown */
    _Atomic int pending;       /* workers that have not finished the current job */
    _Atomic int sleepers;      /* workers blocked (or about to block) on wake */
    _Atomic bool caller_waits; /* caller blocked (or about to block) on done */
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* gen changed */
    pthread_cond_t done; /* pending reached 0 */
};

struct worker_arg {
    struct rf_pool *pool;
    int ith;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until pred(p, v) holds or the spin budget is spent; returns whether it held. */
static bool spin_until(bool (*pred)(struct rf_pool *, uint32_t), struct rf_pool *p, uint32_t v)
{
    int64_t deadline = 0;
    for (int i = 1;; i++) {
        if (pred(p, v)) return true;
        cpu_relax();
        if (i % POOL_SPIN_CHECK) continue;
        int64_t t = now_ns();
        if (!deadline) deadline = t + POOL_SPIN_NS;
        else if (t > deadline) return false;
    }
}

static bool gen_changed(struct rf_pool *p, uint32_t seen)
{
    return atomic_load_explicit(&p->gen, memory_order_acquire) != seen;
}

static bool all_done(struct rf_pool *p, uint32_t unused)
{
    (void)unused;
    return atomic_load_explicit(&p->pending, memory_order_acquire) == 0;
}

/* Returns once gen differs from seen. The sleeper count and gen are both seq_cst:
 * either the caller sees our count and broadcasts under the mutex we hold until
 * cond_wait, or we see its new gen. */
static void wait_new_gen(struct rf_pool *p, uint32_t seen)
{
    if (spin_until(gen_changed, p, seen)) return;
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(&p->gen) == seen) pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
}

static void wait_all_done(struct rf_pool *p)
{
    if (spin_until(all_done, p, 0)) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_waits, true);
    while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done, &p->mu);
    atomic_store(&p->caller_waits, false);
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *varg)
{
    struct worker_arg *wa = varg;
    struct rf_pool *p = wa->pool;
    const int ith = wa->ith;
    free(wa);
    /* gen is 0 until rf_pool_create has returned, so no job can be missed. */
    uint32_t seen = 0;
    for (;;) {
        wait_new_gen(p, seen);
        /* One bump per job: the caller waits for us before the next. */
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        p->fn(p->arg, ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_waits)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Publishes a new generation and wakes sleeping workers. */
static void bump_gen(struct rf_pool *p)
{
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_workers(struct rf_pool *p, int started)
{
    atomic_store(&p->stop, true);
    bump_gen(p);
    for (int i = 0; i < started; i++) pthread_join(p->workers[i], NULL);
}

static void destroy(struct rf_pool *p)
{
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

rf_status rf_pool_create(int n_threads, struct rf_pool **out)
{
    *out = NULL;
    if (n_threads <= 0) n_threads = rf_cpu_count();
    if (n_threads > 1024)
        return rf_fail(RF_STATUS_INVALID_ARG, "threadpool: %d threads requested (max 1024)",
                       n_threads);
    struct rf_pool *p = calloc(1, sizeof *p);
    if (!p) return rf_fail(RF_STATUS_NOMEM, "threadpool: out of memory");
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_waits, false);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    int started = 0;
    if (n_threads > 1 && !(p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers)))
        goto fail;
    for (; started < n_threads - 1; started++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto fail;
        wa->pool = p;
        wa->ith = started + 1;
        if (pthread_create(&p->workers[started], NULL, worker_main, wa) != 0) {
            free(wa);
            goto fail;
        }
    }
    *out = p;
    return RF_OK;
fail:
    stop_workers(p, started);
    destroy(p);
    return rf_fail(RF_STATUS_NOMEM, "threadpool: cannot start thread %d of %d", started + 1,
                   n_threads);
}

void rf_pool_free(struct rf_pool *p)
{
    if (!p) return;
    stop_workers(p, p->n - 1);
    destroy(p);
}

int rf_pool_size(const struct rf_pool *p) { return p->n; }

void rf_pool_run(struct rf_pool *p, rf_pool_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    p->fn = fn;
    p->arg = arg;
    bump_gen(p);
    fn(arg, 0, p->n);
    wait_all_done(p);
}

int rf_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

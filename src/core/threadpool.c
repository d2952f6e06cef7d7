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
/* After this long, spinning yields the core at every clock read: when there are
 * more runnable threads than cores, the thread we wait for may need it. */
#define POOL_YIELD_AFTER_NS 20000

/* The job word: generation in the high 32 bits, JOB_OPEN while workers may still
 * join, and in the low bits the number of workers that joined. One word, so that
 * joining (compare-exchange) and closing (fetch-and) cannot cross. */
#define JOB_OPEN (UINT64_C(1) << 31)
#define JOB_JOINED (JOB_OPEN - 1)

struct rf_pool {
    int n;              /* threads including the caller */
    pthread_t *workers; /* n - 1 */
    uint32_t gen;       /* caller's copy of the generation */
    /* The job. Written by the caller before the job word is published, read by
     * workers after they join, left alone until every joined worker is done. */
    rf_pool_fn fn;
    void *arg;
    _Atomic uint64_t job;
    _Atomic int done;          /* joined workers that have finished the job */
    _Atomic int sleepers;      /* workers blocked (or about to block) on wake */
    _Atomic bool caller_waits; /* caller blocked (or about to block) on finished */
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* a new generation was published */
    pthread_cond_t finished; /* done was incremented */
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

static uint32_t job_gen(uint64_t job) { return (uint32_t)(job >> 32); }

static bool gen_changed(struct rf_pool *p, int seen)
{
    return job_gen(atomic_load_explicit(&p->job, memory_order_acquire)) != (uint32_t)seen;
}

static bool done_reached(struct rf_pool *p, int target)
{
    return atomic_load_explicit(&p->done, memory_order_acquire) >= target;
}

/* Spins until pred(p, v) holds or the spin budget is spent; returns whether it held. */
static bool spin_until(bool (*pred)(struct rf_pool *, int), struct rf_pool *p, int v)
{
    int64_t start = 0;
    for (int i = 1;; i++) {
        if (pred(p, v)) return true;
        cpu_relax();
        if (i % POOL_SPIN_CHECK) continue;
        const int64_t t = now_ns();
        if (!start) start = t;
        else if (t - start > POOL_SPIN_NS) return false;
        else if (t - start > POOL_YIELD_AFTER_NS) sched_yield();
    }
}

/* Returns once the generation differs from seen. The sleeper count and the job
 * word are both seq_cst: either the caller sees our count and broadcasts under the
 * mutex we hold until cond_wait, or we see its new generation. */
static void wait_new_gen(struct rf_pool *p, uint32_t seen)
{
    if (spin_until(gen_changed, p, (int)seen)) return;
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (job_gen(atomic_load(&p->job)) == seen) pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
}

/* The same handshake in the other direction, on caller_waits and done. */
static void wait_done(struct rf_pool *p, int target)
{
    if (spin_until(done_reached, p, target)) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_waits, true);
    while (atomic_load(&p->done) < target) pthread_cond_wait(&p->finished, &p->mu);
    atomic_store(&p->caller_waits, false);
    pthread_mutex_unlock(&p->mu);
}

/* Joins the open job, if any: returns whether we did; *seen gets the generation. */
static bool try_join(struct rf_pool *p, uint32_t *seen)
{
    uint64_t job = atomic_load(&p->job);
    while (job & JOB_OPEN)
        if (atomic_compare_exchange_weak(&p->job, &job, job + 1)) {
            *seen = job_gen(job);
            return true;
        }
    *seen = job_gen(job);
    return false;
}

static void *worker_main(void *varg)
{
    struct worker_arg *wa = varg;
    struct rf_pool *p = wa->pool;
    const int ith = wa->ith;
    free(wa);
    /* The generation is 0 until rf_pool_create has returned: no job is missed. */
    uint32_t seen = 0;
    for (;;) {
        wait_new_gen(p, seen);
        if (atomic_load(&p->stop)) return NULL;
        if (!try_join(p, &seen)) continue; /* closed before we woke: skip it */
        p->fn(p->arg, ith, p->n);
        atomic_fetch_add(&p->done, 1);
        if (atomic_load(&p->caller_waits)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->finished);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Publishes a job word of a new generation and wakes sleeping workers. */
static void publish(struct rf_pool *p, bool open)
{
    p->gen++;
    atomic_store(&p->job, (uint64_t)p->gen << 32 | (open ? JOB_OPEN : 0));
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_workers(struct rf_pool *p, int started)
{
    atomic_store(&p->stop, true);
    publish(p, false);
    for (int i = 0; i < started; i++) pthread_join(p->workers[i], NULL);
}

static void destroy(struct rf_pool *p)
{
    pthread_cond_destroy(&p->finished);
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
    atomic_init(&p->job, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_waits, false);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->finished, NULL);
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

static void run(struct rf_pool *p, rf_pool_fn fn, void *arg, bool all)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    publish(p, true);
    fn(arg, 0, p->n);
    if (all) {
        wait_done(p, p->n - 1); /* every worker joins: the job stays open for them */
    } else {
        const uint64_t job = atomic_fetch_and(&p->job, ~JOB_OPEN);
        wait_done(p, (int)(job & JOB_JOINED));
    }
}

void rf_pool_run(struct rf_pool *p, rf_pool_fn fn, void *arg) { run(p, fn, arg, true); }

void rf_pool_run_any(struct rf_pool *p, rf_pool_fn fn, void *arg) { run(p, fn, arg, false); }

int rf_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* rocmforge bench -b: N sequences decoding together through the continuous-batching
 * scheduler that `rocmforge serve` runs, without HTTP; the figures of
 * llama-batched-bench (T_PP, S_PP, T_TG, S_TG) per N. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/scheduler.h"

/* One run of N requests, filled by their events (under mu). */
struct batch_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_seq;          /* requests of the run */
    int32_t n_submitted;    /* requests the scheduler took; -1 while submitting */
    int32_t n_first;        /* sequences that have their first token */
    int32_t n_done;         /* final events */
    int64_t n_tokens;       /* generated tokens, first ones included */
    int64_t n_tg;           /* tokens generated after every sequence had its first */
    double t0, t_pp, t_end; /* cli_now(): before the first submission, at the last first
                               token, at the last final event */
    bool failed;
    char msg[512];
};

static void run_fail(struct batch_run *r, const char *msg)
{
    if (r->failed) return;
    r->failed = true;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

/* Scheduler thread. Once the run has failed, every request still going is cancelled
 * at its next token. */
static bool on_event(void *user, const struct rf_sched_event *ev)
{
    struct batch_run *r = user;
    pthread_mutex_lock(&r->mu);
    const double now = cli_now();
    if (ev->token >= 0) {
        r->n_tokens++;
        if (ev->n_generated == 1) {
            if (++r->n_first == r->n_seq) r->t_pp = now;
        } else if (r->n_first == r->n_seq) {
            r->n_tg++;
        }
    }
    if (ev->finish != RF_FINISH_NONE) {
        r->n_done++;
        r->t_end = now;
        if (ev->finish == RF_FINISH_ERROR)
            run_fail(r, ev->message ? ev->message : "a request failed");
        else if (ev->finish == RF_FINISH_CANCELLED) run_fail(r, "a request was cancelled");
        pthread_cond_broadcast(&r->cv);
    }
    const bool go_on = !r->failed;
    pthread_mutex_unlock(&r->mu);
    return go_on;
}

/* Submits n_seq requests at once (prompt i: prompts[i * n_prompt ..]) and waits for
 * their final events: the scheduler sends exactly one for each request it took. */
static bool run_batch(struct rf_sched *s, struct batch_run *r, const rf_token *prompts,
                      int32_t n_seq, int32_t n_prompt, int32_t n_gen)
{
    pthread_mutex_lock(&r->mu);
    r->n_seq = n_seq;
    r->n_submitted = -1;
    r->n_first = r->n_done = 0;
    r->n_tokens = r->n_tg = 0;
    r->t_pp = r->t_end = 0;
    r->failed = false;
    r->msg[0] = '\0';
    pthread_mutex_unlock(&r->mu);
    struct rf_sched_request q = {
        .n_prompt = n_prompt,
        .max_tokens = n_gen,
        .sampling = rf_sampler_default_params(),
        .ignore_eos = true,
        .cb = on_event,
        .user = r,
    };
    q.sampling.temperature = 0; /* greedy */
    r->t0 = cli_now();
    int32_t i = 0;
    for (; i < n_seq; i++) {
        q.prompt = prompts + (size_t)i * (size_t)n_prompt;
        if (rf_sched_submit(s, &q, NULL) != RF_OK) break;
    }
    char why[512] = "";
    if (i < n_seq)
        snprintf(why, sizeof why, "request %d of %d refused: %s", i + 1, n_seq, rf_last_error());
    pthread_mutex_lock(&r->mu);
    if (i < n_seq) run_fail(r, why);
    r->n_submitted = i;
    while (r->n_done < r->n_submitted) pthread_cond_wait(&r->cv, &r->mu);
    const bool ok = !r->failed;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

struct batch_row {
    struct cli_stat t_pp, t_tg, s_pp, s_tg, total; /* seconds; tokens per second */
};

/* The figures of one timed run; false (with r->msg) when it did not generate every
 * token it should have. */
static bool add_run(struct batch_run *r, const struct cli_bench_batch *b, struct batch_row *row)
{
    const int64_t want = (int64_t)r->n_seq * b->n_gen;
    if (r->n_tokens != want || r->n_first != r->n_seq || !(r->t_end > r->t_pp)) {
        snprintf(r->msg, sizeof r->msg, "%lld tokens generated, %lld expected",
                 (long long)r->n_tokens, (long long)want);
        return false;
    }
    const double t_pp = r->t_pp - r->t0, t_tg = r->t_end - r->t_pp;
    cli_stat_add(&row->t_pp, t_pp);
    cli_stat_add(&row->t_tg, t_tg);
    cli_stat_add(&row->s_pp, t_pp > 0 ? (double)r->n_seq * b->n_prompt / t_pp : 0);
    cli_stat_add(&row->s_tg, (double)r->n_tg / t_tg);
    cli_stat_add(&row->total, (double)r->n_tokens / (t_pp + t_tg));
    return true;
}

static void print_row(const struct rf_model *m, const struct cli_bench_batch *b, int32_t n_seq,
                      const struct batch_row *row)
{
    printf(
        "| %s %s | %s | %d | %d | %d | %.4f | %.2f ± %.2f | %.4f | %.2f ± %.2f | %.2f ± %.2f |\n",
        rf_model_arch(m), b->model_name, b->backend, n_seq, b->n_prompt, b->n_gen,
        cli_stat_mean(&row->t_pp), cli_stat_mean(&row->s_pp), cli_stat_sd(&row->s_pp),
        cli_stat_mean(&row->t_tg), cli_stat_mean(&row->s_tg), cli_stat_sd(&row->s_tg),
        cli_stat_mean(&row->total), cli_stat_sd(&row->total));
    fflush(stdout);
}

/* One N: a scheduler of n_parallel N, one warm-up run, b->reps timed runs. */
static int bench_n(struct rf_model *m, const struct cli_bench_batch *b, int32_t n_seq,
                   const rf_token *prompts)
{
    struct rf_sched_params sp = rf_sched_default_params();
    sp.n_parallel = n_seq;
    sp.n_ctx = b->n_prompt + b->n_gen;
    sp.queue_size = n_seq;
    sp.prefix_cache = false;
    struct rf_sched *s = NULL;
    if (rf_sched_new(m, &sp, &s) != RF_OK)
        return cli_fail("bench", "cannot start the scheduler for %d sequences: %s", n_seq,
                        rf_last_error());
    struct batch_run r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct batch_row row = {0};
    bool ok = run_batch(s, &r, prompts, n_seq, b->n_prompt, 2);
    for (int32_t rep = 0; ok && rep < b->reps; rep++)
        ok = run_batch(s, &r, prompts, n_seq, b->n_prompt, b->n_gen) && add_run(&r, b, &row);
    rf_sched_free(s, false); /* no callback runs after this */
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    if (!ok) return cli_fail("bench", "%d sequences: %s", n_seq, r.msg);
    print_row(m, b, n_seq, &row);
    return 0;
}

int cli_bench_batch(struct rf_model *m, const struct cli_bench_batch *b)
{
    int32_t n_max = 0;
    for (int32_t i = 0; i < b->n_list; i++)
        if (b->n_seq[i] > n_max) n_max = b->n_seq[i];
    const size_t n_tok = (size_t)n_max * (size_t)b->n_prompt;
    rf_token *prompts = malloc(n_tok * sizeof *prompts);
    if (!prompts) return cli_fail("bench", "out of memory for %zu prompt tokens", n_tok);
    /* Every sequence a different prompt, the same ones on every run: one stream cut in
     * pieces (the generator steps its state by a constant per token). */
    for (int32_t i = 0; i < n_max; i++)
        cli_random_tokens(prompts + (size_t)i * (size_t)b->n_prompt, b->n_prompt,
                          rf_model_n_vocab(m),
                          1234 + (uint64_t)i * (uint64_t)b->n_prompt * 0x9e3779b97f4a7c15ull);
    const int32_t n_batch = rf_sched_default_params().n_batch;
    printf("device: %s, %d threads\n", b->backend, b->n_threads);
    printf("scheduler as `rocmforge serve` runs it: n_parallel N, steps of at most %d tokens "
           "(N + 2 when more), no prefix cache; each sequence a different random prompt of "
           "PP tokens, then TG tokens greedily, end-of-generation ignored; %d timed run%s of "
           "each N after one warm-up (2 tokens generated)\n\n",
           n_batch, b->reps, b->reps == 1 ? "" : "s");
    printf(
        "| model | backend | N | PP | TG | T_PP s | S_PP t/s | T_TG s | S_TG t/s | total t/s |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    int rc = 0;
    for (int32_t i = 0; i < b->n_list && rc == 0; i++) rc = bench_n(m, b, b->n_seq[i], prompts);
    if (rc == 0)
        printf("\nT_PP: from the submission until every sequence has its first token (sequences "
               "admitted early decode meanwhile); T_TG: from then until the last one finishes. "
               "S_PP = N*PP / T_PP; S_TG = tokens generated during T_TG / T_TG, the figure to "
               "set beside llama-batched-bench's S_TG; total = N*TG / (T_PP + T_TG).\n");
    free(prompts);
    return rc;
}

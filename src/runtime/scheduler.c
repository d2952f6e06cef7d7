/* The continuous-batching scheduler: one thread, one forward step at a time over
 * every running sequence. Locking: s->mu guards the waiting queue, the running
 * table's membership, every seq's cancel flag, and the published stats. Everything
 * else (the block allocator, the KV cache, token arrays, samplers) belongs to the
 * scheduler thread alone. Callbacks run on the thread without the lock held. The
 * tokens of a step are sampled on a pool of helper threads (one sequence each at a
 * time), then reported in order on the scheduler thread. */
#include "runtime/scheduler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/status.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "runtime/batch.h"
#include "runtime/kv_blocks.h"

struct seq {
    uint64_t id;
    rf_sched_cb cb;
    void *user;
    struct rf_sampler_params sampling;
    int32_t max_tokens;   /* <= 0: until the context is full */
    int32_t top_logprobs; /* entries wanted in each event */
    bool logprobs;
    bool ignore_eos;
    rf_token *tokens; /* (n_ctx + 1) the prompt, then the generated tokens */
    int32_t n_tok;
    int32_t n_prompt;
    int32_t n_generated;
    int32_t n_cached;           /* prompt tokens from the prefix cache when first admitted */
    int32_t slot;               /* row of the block tables while running, else -1 */
    uint64_t admitted;          /* admission number: the highest runs the newest */
    struct rf_sampler *sampler; /* made at the first admission */
    bool started;
    bool cancel;             /* under mu */
    struct seq *prev, *next; /* waiting queue, under mu */
};

/* What one step feeds for one sequence. */
struct plan {
    struct seq *q;
    int32_t start, n; /* tokens[start, start + n) at positions start.. */
    bool logits;      /* the chunk ends the known tokens: sample the next one */
};

/* One sequence's next token, sampled from its row of the step's logits. */
struct pick {
    struct seq *q;
    const float *row; /* (n_vocab) */
    rf_token token;
    float logprob; /* when the request asked for logprobs */
    int32_t n_top;
    rf_token top_ids[RF_SCHED_MAX_TOP_LOGPROBS];
    float top_logprobs[RF_SCHED_MAX_TOP_LOGPROBS];
};

struct pick_job {
    struct rf_sched *s;
    int32_t n;
    atomic_int next; /* the next pick to take */
};

struct rf_sched {
    struct rf_model *m;
    struct rf_sched_params p;
    int32_t max_blocks; /* blocks of one full context */
    int32_t n_vocab;

    struct rf_kv_cache kv;
    struct rf_kv_blocks *kb;
    struct rf_scratch *scratch;
    rf_token *b_tokens;        /* (n_batch) */
    int32_t *b_pos, *b_seq;    /* (n_batch) */
    bool *b_want;              /* (n_batch) */
    float *logits;             /* (n_parallel, n_vocab) */
    const struct rf_backend *logits_be; /* gave logits (host_alloc); NULL: malloc */
    struct plan *plans;        /* (n_parallel) */
    struct pick *picks;        /* (n_parallel) */
    struct rf_pool *pool;      /* samples the picks in parallel; NULL: on the thread */
    struct seq **order;        /* (n_parallel) running sequences, oldest first */
    struct rf_kv_copy *copies; /* (max_blocks) */
    uint64_t n_admitted;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stop, drain;
    struct seq *wait_head, *wait_tail;
    int32_t n_waiting;
    struct seq **running; /* (n_parallel) by slot, NULL where free; membership under mu */
    int32_t n_running;
    uint64_t next_id;
    struct rf_sched_stats stats; /* counters and block counts, under mu */
    struct step_profile *prof;   /* RF_SCHED_PROFILE set: where a step's time goes */
};

/* Seconds spent in each part of the steps since the last report, printed to stderr
 * every PROFILE_STEPS steps: what bounds the server's rate (the forward pass with
 * the logits' copy, the sampling, the reports to the clients). */
#define PROFILE_STEPS 256
enum { PROF_PLAN, PROF_FORWARD, PROF_SAMPLE, PROF_REPORT, PROF_PARTS };
struct step_profile {
    int32_t steps, decode_steps;
    int64_t tokens, picks;
    double part[PROF_PARTS], last;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Adds the time since the last mark to the part. */
static void profile_mark(struct step_profile *p, int part)
{
    if (!p) return;
    const double t = now_s();
    p->part[part] += t - p->last;
    p->last = t;
}

static void profile_step(struct step_profile *p, int32_t n_tok, int32_t n_picks)
{
    if (!p) return;
    p->steps++;
    p->decode_steps += n_tok == n_picks;
    p->tokens += n_tok;
    p->picks += n_picks;
    if (p->steps < PROFILE_STEPS) return;
    const double k = 1e3 / p->steps;
    fprintf(stderr,
            "scheduler profile: %d steps (%d decode only), %.1f tokens and %.1f picks a step; "
            "ms a step: plan %.3f, forward %.3f, sample %.3f, report %.3f\n",
            p->steps, p->decode_steps, (double)p->tokens / p->steps, (double)p->picks / p->steps,
            p->part[PROF_PLAN] * k, p->part[PROF_FORWARD] * k, p->part[PROF_SAMPLE] * k,
            p->part[PROF_REPORT] * k);
    *p = (struct step_profile){.last = p->last};
}

struct rf_sched_params rf_sched_default_params(void)
{
    return (struct rf_sched_params){.n_parallel = 8,
                                    .n_ctx = 0,
                                    .n_batch = 512,
                                    .n_blocks = 0,
                                    .block_size = 0,
                                    .queue_size = 64,
                                    .prefix_cache = true};
}

int32_t rf_sched_n_ctx(const struct rf_sched *s) { return s->p.n_ctx; }

/* ---- sequences ---- */

static void seq_free(struct seq *q)
{
    if (!q) return;
    rf_sampler_free(q->sampler);
    free(q->tokens);
    free(q);
}

static void wait_push(struct rf_sched *s, struct seq *q, bool front)
{
    q->prev = front ? NULL : s->wait_tail;
    q->next = front ? s->wait_head : NULL;
    if (q->prev) q->prev->next = q;
    else s->wait_head = q;
    if (q->next) q->next->prev = q;
    else s->wait_tail = q;
    s->n_waiting++;
}

static void wait_remove(struct rf_sched *s, struct seq *q)
{
    if (q->prev) q->prev->next = q->next;
    else s->wait_head = q->next;
    if (q->next) q->next->prev = q->prev;
    else s->wait_tail = q->prev;
    q->prev = q->next = NULL;
    s->n_waiting--;
}

/* Under mu: the block counts of the allocator into the published stats. */
static void publish_blocks(struct rf_sched *s)
{
    struct rf_kv_blocks_counts c;
    rf_kv_blocks_get_counts(s->kb, &c);
    s->stats.blocks_total = c.total;
    s->stats.blocks_used = c.used;
    s->stats.blocks_cached = c.cached;
}

static void count_finish(struct rf_sched *s, enum rf_finish f)
{
    if (f == RF_FINISH_CANCELLED) s->stats.requests_cancelled++;
    else if (f == RF_FINISH_ERROR) s->stats.requests_failed++;
    else s->stats.requests_finished++;
}

static struct rf_sched_event event_of(const struct seq *q)
{
    return (struct rf_sched_event){.id = q->id,
                                   .token = -1,
                                   .n_prompt = q->n_prompt,
                                   .n_generated = q->n_generated,
                                   .n_cached = q->n_cached};
}

/* Ends q: frees its blocks, leaves the running table or the queue, sends the final
 * event (ev, or an event without a token when NULL) and frees q. */
static void finish(struct rf_sched *s, struct seq *q, enum rf_finish f, const char *msg,
                   struct rf_sched_event *ev)
{
    if (q->slot >= 0) rf_kv_blocks_release(s->kb, q->slot);
    pthread_mutex_lock(&s->mu);
    if (q->slot >= 0) {
        s->running[q->slot] = NULL;
        s->n_running--;
    } else {
        wait_remove(s, q);
    }
    count_finish(s, f);
    publish_blocks(s);
    pthread_mutex_unlock(&s->mu);
    struct rf_sched_event last = ev ? *ev : event_of(q);
    last.finish = f;
    last.message = f == RF_FINISH_ERROR ? msg : NULL;
    q->cb(q->user, &last);
    seq_free(q);
}

/* Frees q's blocks and puts it at the front of the queue, to be recomputed from its
 * tokens (prompt and generated) when admitted again. */
static void preempt(struct rf_sched *s, struct seq *q)
{
    rf_kv_blocks_release(s->kb, q->slot);
    pthread_mutex_lock(&s->mu);
    s->running[q->slot] = NULL;
    s->n_running--;
    q->slot = -1;
    wait_push(s, q, true);
    s->stats.preemptions++;
    publish_blocks(s);
    pthread_mutex_unlock(&s->mu);
}

/* The running sequence admitted last, or NULL. */
static struct seq *newest_running(const struct rf_sched *s)
{
    struct seq *best = NULL;
    for (int32_t i = 0; i < s->p.n_parallel; i++) {
        struct seq *q = s->running[i];
        if (q && (!best || q->admitted > best->admitted)) best = q;
    }
    return best;
}

/* ---- cancellation and admission ---- */

/* Ends every cancelled sequence, waiting or running (all of them when all). */
static void reap_cancelled(struct rf_sched *s, bool all)
{
    for (;;) {
        struct seq *found = NULL;
        pthread_mutex_lock(&s->mu);
        for (struct seq *q = s->wait_head; q && !found; q = q->next)
            if (q->cancel || all) found = q;
        for (int32_t i = 0; i < s->p.n_parallel && !found; i++)
            if (s->running[i] && (s->running[i]->cancel || all)) found = s->running[i];
        pthread_mutex_unlock(&s->mu);
        if (!found) return;
        finish(s, found, RF_FINISH_CANCELLED, NULL, NULL);
    }
}

/* The sampler of a sequence, with its history so far (penalties read it). */
static rf_status make_sampler(struct rf_sched *s, struct seq *q)
{
    if (q->sampler) return RF_OK;
    q->sampler = rf_sampler_new(&q->sampling, s->n_vocab);
    if (!q->sampler) return RF_STATUS_NOMEM; /* the sampler set the message */
    for (int32_t i = 0; i < q->n_tok; i++) rf_sampler_accept(q->sampler, q->tokens[i]);
    return RF_OK;
}

static int32_t free_slot(const struct rf_sched *s)
{
    for (int32_t i = 0; i < s->p.n_parallel; i++)
        if (!s->running[i]) return i;
    return -1;
}

/* Blocks the running sequences still need to finish their prompts, plus one each to
 * grow while decoding: what a newcomer must leave them. */
static int32_t blocks_reserved(const struct rf_sched *s)
{
    int32_t n = 0;
    for (int32_t i = 0; i < s->p.n_parallel; i++) {
        const struct seq *q = s->running[i];
        if (!q) continue;
        const int32_t need = rf_kv_blocks_needed(s->kb, i, q->n_tok);
        n += (need > 0 ? need : 0) + 1;
    }
    return n;
}

/* Tries to start the first waiting sequence in slot: matches its prefix, and keeps
 * it when the pool can take its tokens besides what the others need. */
static bool admit_one(struct rf_sched *s, struct seq *q, int32_t slot)
{
    const int32_t reserved = s->n_running > 0 ? blocks_reserved(s) : 0;
    /* The last two prompt tokens are always computed: a chunk of two, as alone. */
    const int32_t len = rf_kv_blocks_match(s->kb, slot, q->tokens, q->n_tok, q->n_prompt - 2);
    const int32_t need = rf_kv_blocks_needed(s->kb, slot, q->n_tok);
    if (s->n_running > 0 && need > rf_kv_blocks_available(s->kb) - reserved) {
        rf_kv_blocks_release(s->kb, slot);
        return false;
    }
    pthread_mutex_lock(&s->mu);
    wait_remove(s, q);
    q->slot = slot;
    q->admitted = ++s->n_admitted;
    s->running[slot] = q;
    s->n_running++;
    if (!q->started) {
        q->started = true;
        q->n_cached = len;
        s->stats.requests_started++;
        s->stats.tokens_prompt += (uint64_t)q->n_prompt;
        s->stats.tokens_prompt_cached += (uint64_t)len;
    }
    publish_blocks(s);
    pthread_mutex_unlock(&s->mu);
    return true;
}

static void admit(struct rf_sched *s)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct seq *q = s->wait_head;
        const int32_t slot = free_slot(s);
        pthread_mutex_unlock(&s->mu);
        if (!q || slot < 0) return;
        if (make_sampler(s, q) != RF_OK) {
            finish(s, q, RF_FINISH_ERROR, rf_last_error(), NULL);
            continue;
        }
        if (!admit_one(s, q, slot)) return;
    }
}

/* ---- planning a step ---- */

/* Makes positions [len, end) of q writable, copying shared blocks' memory. */
static rf_status grow(struct rf_sched *s, struct seq *q, int32_t end)
{
    int32_t n = 0;
    RF_TRY(rf_kv_blocks_grow(s->kb, q->slot, end, s->copies, s->max_blocks, &n));
    for (int32_t i = 0; i < n; i++)
        RF_TRY(rf_kv_cache_copy_block(&s->kv, s->copies[i].dst, s->copies[i].src));
    return RF_OK;
}

/* Running sequences, oldest first. */
static int32_t by_age(const struct rf_sched *s, struct seq **out)
{
    int32_t n = 0;
    for (int32_t i = 0; i < s->p.n_parallel; i++)
        if (s->running[i]) out[n++] = s->running[i];
    for (int32_t i = 1; i < n; i++)
        for (int32_t j = i; j > 0 && out[j - 1]->admitted > out[j]->admitted; j--) {
            struct seq *t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

/* Room for the next token of a decoding sequence, preempting the newest running
 * sequences (q itself, last) until it fits. False when q was preempted. */
static bool make_room(struct rf_sched *s, struct seq *q, int32_t end)
{
    while (rf_kv_blocks_needed(s->kb, q->slot, end) > rf_kv_blocks_available(s->kb)) {
        struct seq *victim = newest_running(s);
        preempt(s, victim);
        if (victim == q) return false;
    }
    return true;
}

/* The end of the longest chunk from q's length up to end that free blocks allow. */
static int32_t fit_chunk(const struct rf_sched *s, const struct seq *q, int32_t end)
{
    const int32_t len = rf_kv_blocks_seq_len(s->kb, q->slot), bs = s->kv.block_size;
    const int32_t avail = rf_kv_blocks_available(s->kb);
    while (end > len && rf_kv_blocks_needed(s->kb, q->slot, end) > avail) end = (end - 1) / bs * bs;
    return end > len ? end : len;
}

static void add_plan(struct rf_sched *s, int32_t *n_plan, int32_t *n_tok, struct seq *q,
                     int32_t start, int32_t end)
{
    for (int32_t t = start; t < end; t++) {
        const int32_t k = (*n_tok)++;
        s->b_tokens[k] = q->tokens[t];
        s->b_pos[k] = t;
        s->b_seq[k] = q->slot;
        s->b_want[k] = t == q->n_tok - 1;
    }
    s->plans[(*n_plan)++] =
        (struct plan){.q = q, .start = start, .n = end - start, .logits = end == q->n_tok};
}

/* The end of q's next prompt chunk: up to the prompt's end within `room` tokens and
 * the free blocks, never leaving a single prompt token for a later chunk; len when
 * no chunk of two tokens or more fits (one only for a prompt of one token). */
static int32_t prompt_chunk_end(const struct rf_sched *s, const struct seq *q, int32_t len,
                                int32_t room)
{
    int32_t end = fit_chunk(s, q, q->n_prompt - len < room ? q->n_prompt : len + room);
    if (q->n_prompt - end == 1) end--;
    return end - len >= 2 || (q->n_prompt == 1 && end == 1) ? end : len;
}

/* Fills the batch. Numerics follow a sequence alone (rf_decode): its prompt goes in
 * chunks of two tokens or more, every later token alone of its sequence in a step
 * (the backend sums a token alone of its sequence as a single-token step), also when
 * a preempted sequence recomputes its generated tokens. Single tokens go first, oldest
 * sequence first, preempting the newest when blocks run out; then prompt chunks,
 * oldest first, within n_batch tokens and the free blocks. Returns the number of
 * plans (-1 on failure); *n_tok the batch's tokens. */
static int32_t plan_step(struct rf_sched *s, int32_t *n_tok)
{
    struct seq **order = s->order;
    const int32_t n = by_age(s, order);
    int32_t n_plan = 0;
    *n_tok = 0;
    for (int32_t i = 0; i < n; i++) {
        struct seq *q = order[i];
        if (q->slot < 0) continue;
        const int32_t len = rf_kv_blocks_seq_len(s->kb, q->slot);
        if (len < q->n_prompt || !make_room(s, q, len + 1)) continue;
        if (grow(s, q, len + 1) != RF_OK) return -1;
        add_plan(s, &n_plan, n_tok, q, len, len + 1);
    }
    for (int32_t i = 0; i < n && *n_tok < s->p.n_batch; i++) {
        struct seq *q = order[i];
        if (q->slot < 0) continue;
        const int32_t len = rf_kv_blocks_seq_len(s->kb, q->slot);
        if (len >= q->n_prompt) continue;
        const int32_t end = prompt_chunk_end(s, q, len, s->p.n_batch - *n_tok);
        if (end == len) continue;
        if (grow(s, q, end) != RF_OK) return -1;
        add_plan(s, &n_plan, n_tok, q, len, end);
    }
    return n_plan;
}

/* ---- sampling and events ---- */

/* log(sum(exp(x))) over a row of logits; NaN counts as -inf. */
static double log_sum_exp(const float *x, int32_t n)
{
    float max = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (x[i] > max) max = x[i];
    if (!isfinite(max)) return max;
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        if (x[i] > -INFINITY) sum += exp((double)x[i] - max);
    return max + log(sum);
}

/* The k most likely ids of x, descending, lower id first on ties. */
static void top_ids(const float *x, int32_t n, int32_t k, rf_token *ids)
{
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!(x[i] == x[i])) continue;
        if (m == k && !(x[i] > x[ids[m - 1]])) continue;
        int32_t j = m < k ? m++ : k - 1;
        for (; j > 0 && x[i] > x[ids[j - 1]]; j--) ids[j] = ids[j - 1];
        ids[j] = i;
    }
    for (int32_t j = m; j < k; j++) ids[j] = -1;
}

static void fill_logprobs(const struct rf_sched *s, const struct seq *q, const float *row,
                          rf_token t, struct pick *ev)
{
    const double lse = log_sum_exp(row, s->n_vocab);
    ev->logprob = (float)((double)row[t] - lse);
    if (q->top_logprobs <= 0) return;
    rf_token ids[RF_SCHED_MAX_TOP_LOGPROBS];
    top_ids(row, s->n_vocab, q->top_logprobs, ids);
    for (int32_t j = 0; j < q->top_logprobs && ids[j] >= 0; j++) {
        ev->top_ids[j] = ids[j];
        ev->top_logprobs[j] = (float)((double)row[ids[j]] - lse);
        ev->n_top = j + 1;
    }
}

/* Samples each pick's token (and its logprobs) from its row of logits; the
 * sequences' samplers are independent, so picks run on any thread. */
static void pick_all(struct pick_job *j)
{
    for (;;) {
        const int32_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) return;
        struct pick *pk = &j->s->picks[i];
        const struct seq *q = pk->q;
        pk->token = rf_sampler_sample(q->sampler, pk->row);
        if (pk->token >= 0 && pk->token < j->s->n_vocab && (q->logprobs || q->top_logprobs > 0))
            fill_logprobs(j->s, q, pk->row, pk->token, pk);
    }
}

static void pick_worker(void *arg, int ith, int nth)
{
    (void)ith;
    (void)nth;
    pick_all(arg);
}

static void sample_picks(struct rf_sched *s, int32_t n)
{
    struct pick_job j = {.s = s, .n = n};
    atomic_init(&j.next, 0);
    if (s->pool && n > 1) rf_pool_run_any(s->pool, pick_worker, &j);
    else pick_all(&j);
}

/* Reports pk's token to its sequence, ending it when it is done. */
static void take_token(struct rf_sched *s, struct pick *pk)
{
    struct seq *q = pk->q;
    const rf_token t = pk->token;
    if (t < 0 || t >= s->n_vocab) {
        finish(s, q, RF_FINISH_ERROR, "scheduler: sampling failed", NULL);
        return;
    }
    if (!q->ignore_eos && rf_model_is_eog(s->m, t)) {
        finish(s, q, RF_FINISH_STOP, NULL, NULL);
        return;
    }
    q->tokens[q->n_tok++] = t;
    q->n_generated++;
    rf_sampler_accept(q->sampler, t);
    struct rf_sched_event ev = event_of(q);
    ev.token = t;
    ev.logprob = pk->logprob;
    ev.n_top = pk->n_top;
    memcpy(ev.top_ids, pk->top_ids, (size_t)pk->n_top * sizeof *ev.top_ids);
    memcpy(ev.top_logprobs, pk->top_logprobs, (size_t)pk->n_top * sizeof *ev.top_logprobs);
    pthread_mutex_lock(&s->mu);
    s->stats.tokens_generated++;
    pthread_mutex_unlock(&s->mu);
    /* n_tok - 1 positions are in the cache once t is fed: past n_ctx, stop. */
    if ((q->max_tokens > 0 && q->n_generated >= q->max_tokens) || q->n_tok > s->p.n_ctx) {
        finish(s, q, RF_FINISH_LENGTH, NULL, &ev);
        return;
    }
    if (!q->cb(q->user, &ev)) finish(s, q, RF_FINISH_CANCELLED, NULL, NULL);
}

/* ---- steps ---- */

static void fail_running(struct rf_sched *s, const char *why)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", why);
    for (int32_t i = 0; i < s->p.n_parallel; i++)
        if (s->running[i]) finish(s, s->running[i], RF_FINISH_ERROR, msg, NULL);
}

/* No running sequence could get a block: the newest gives its blocks back. */
static void unstall(struct rf_sched *s)
{
    if (s->n_running > 1) {
        preempt(s, newest_running(s));
        return;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "scheduler: %d KV blocks of %d rows cannot hold the sequence",
             s->kv.n_blocks, s->kv.block_size);
    fail_running(s, msg);
}

static void run_step(struct rf_sched *s)
{
    struct step_profile *prof = s->prof;
    if (prof) prof->last = now_s();
    int32_t n_tok = 0;
    const int32_t n_plan = plan_step(s, &n_tok);
    profile_mark(prof, PROF_PLAN);
    if (n_plan < 0) {
        fail_running(s, rf_last_error());
        return;
    }
    if (n_plan == 0) {
        unstall(s);
        return;
    }
    const struct rf_batch b = {.n_tok = n_tok,
                               .tokens = s->b_tokens,
                               .pos = s->b_pos,
                               .seq = s->b_seq,
                               .want_logits = s->b_want,
                               .n_seq = s->p.n_parallel,
                               .max_blocks = s->max_blocks,
                               .block_tables = rf_kv_blocks_tables(s->kb)};
    if (rf_forward_batch(s->m, s->scratch, &s->kv, &b, s->logits) != RF_OK) {
        fail_running(s, rf_last_error());
        return;
    }
    profile_mark(prof, PROF_FORWARD);
    for (int32_t i = 0; i < n_plan; i++) {
        const struct plan *pl = &s->plans[i];
        rf_kv_blocks_commit(s->kb, pl->q->slot, pl->q->tokens, pl->start + pl->n, pl->q->n_prompt);
    }
    int32_t n_picks = 0;
    for (int32_t i = 0; i < n_plan; i++) {
        if (!s->plans[i].logits) continue;
        s->picks[n_picks] = (struct pick){.q = s->plans[i].q,
                                          .row = s->logits + (size_t)n_picks * (size_t)s->n_vocab};
        n_picks++;
    }
    sample_picks(s, n_picks);
    profile_mark(prof, PROF_SAMPLE);
    for (int32_t i = 0; i < n_picks; i++) take_token(s, &s->picks[i]);
    pthread_mutex_lock(&s->mu);
    publish_blocks(s);
    pthread_mutex_unlock(&s->mu);
    profile_mark(prof, PROF_REPORT);
    profile_step(prof, n_tok, n_picks);
}

static void *sched_main(void *arg)
{
    struct rf_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && s->n_waiting == 0 && s->n_running == 0)
            pthread_cond_wait(&s->cv, &s->mu);
        const bool cancel_all = s->stop && !s->drain;
        const bool idle = s->n_waiting == 0 && s->n_running == 0;
        pthread_mutex_unlock(&s->mu);
        reap_cancelled(s, cancel_all);
        if (cancel_all || (s->stop && idle)) break;
        admit(s);
        if (s->n_running > 0) run_step(s);
    }
    return NULL;
}

/* ---- the public side ---- */

static rf_status resolve_params(const struct rf_model *m, struct rf_sched_params *p)
{
    const struct rf_sched_params d = rf_sched_default_params();
    if (p->n_parallel < 0 || p->n_ctx < 0 || p->n_batch < 0 || p->n_blocks < 0 ||
        p->block_size < 0 || p->queue_size < 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "scheduler: negative parameter");
    if (p->n_parallel == 0) p->n_parallel = d.n_parallel;
    if (p->n_batch == 0) p->n_batch = d.n_batch;
    if (p->queue_size == 0) p->queue_size = d.queue_size;
    if (p->block_size == 0) p->block_size = RF_KV_BLOCK_SIZE;
    if (p->n_ctx == 0)
        p->n_ctx = m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    if (p->n_parallel > 65536 || p->n_ctx > (1 << 24) || p->block_size > 4096)
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "scheduler: n_parallel %d, n_ctx %d or block size %d too big", p->n_parallel,
                       p->n_ctx, p->block_size);
    /* Room for a token of every sequence but one, and a prompt chunk of two. */
    if (p->n_batch < p->n_parallel + 2) p->n_batch = p->n_parallel + 2;
    const int64_t max_blocks = (p->n_ctx + p->block_size - 1) / p->block_size;
    if (p->n_blocks == 0)
        p->n_blocks =
            (int32_t)(p->n_parallel * max_blocks + 1 < (1 << 28) ? p->n_parallel * max_blocks + 1
                                                                 : (1 << 28));
    if (p->n_blocks < max_blocks + 1)
        return rf_fail(
            RF_STATUS_INVALID_ARG,
            "scheduler: %d KV blocks cannot hold one context of %d tokens (%lld blocks of "
            "%d) and a copy",
            p->n_blocks, p->n_ctx, (long long)max_blocks, p->block_size);
    return RF_OK;
}

/* Every step's logits are copied here from the output head's backend: in memory that
 * backend copies to fastest where it has such (a GPU: page-locked, which its copy
 * engine writes directly instead of through a staging buffer). */
static void alloc_logits(struct rf_sched *s, size_t bytes)
{
    const struct rf_backend *be = rf_model_layer_backend(s->m, s->m->hp.n_layer);
    if (be->iface->host_alloc && be->iface->host_free) {
        s->logits = be->iface->host_alloc(be->ctx, bytes);
        if (s->logits) {
            s->logits_be = be;
            return;
        }
    }
    s->logits = malloc(bytes);
}

static rf_status alloc_state(struct rf_sched *s)
{
    const struct rf_sched_params *p = &s->p;
    RF_TRY(rf_kv_blocks_new(p->n_blocks, p->block_size, p->n_parallel, s->max_blocks,
                            p->prefix_cache, &s->kb));
    RF_TRY(rf_kv_cache_init(&s->kv, s->m, p->n_blocks, p->block_size));
    RF_TRY(rf_scratch_new(s->m, p->n_batch, p->n_parallel, s->max_blocks, &s->scratch));
    const size_t nb = (size_t)p->n_batch, np = (size_t)p->n_parallel;
    s->b_tokens = malloc(nb * sizeof *s->b_tokens);
    s->b_pos = malloc(nb * sizeof *s->b_pos);
    s->b_seq = malloc(nb * sizeof *s->b_seq);
    s->b_want = malloc(nb * sizeof *s->b_want);
    alloc_logits(s, np * (size_t)s->n_vocab * sizeof *s->logits);
    s->plans = malloc(np * sizeof *s->plans);
    s->picks = malloc(np * sizeof *s->picks);
    s->order = malloc(np * sizeof *s->order);
    s->running = calloc(np, sizeof *s->running);
    s->copies = malloc((size_t)s->max_blocks * sizeof *s->copies);
    if (!s->b_tokens || !s->b_pos || !s->b_seq || !s->b_want || !s->logits || !s->plans ||
        !s->picks || !s->order || !s->running || !s->copies)
        return rf_fail(RF_STATUS_NOMEM, "scheduler: out of memory for %d sequences", p->n_parallel);
    /* Sampling a row reads the whole vocabulary: with many sequences, it is worth
     * the model's threads (idle between steps). */
    const int n_threads = s->m->n_threads < 16 ? s->m->n_threads : 16;
    if (p->n_parallel > 1 && n_threads > 1) RF_TRY(rf_pool_create(n_threads, &s->pool));
    publish_blocks(s);
    return RF_OK;
}

static void destroy(struct rf_sched *s)
{
    while (s->wait_head) {
        struct seq *q = s->wait_head;
        wait_remove(s, q);
        seq_free(q);
    }
    for (int32_t i = 0; s->running && i < s->p.n_parallel; i++) seq_free(s->running[i]);
    rf_kv_blocks_free(s->kb);
    rf_kv_cache_free(&s->kv);
    rf_scratch_free(s->scratch);
    free(s->b_tokens);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    if (s->logits_be) s->logits_be->iface->host_free(s->logits_be->ctx, s->logits);
    else free(s->logits);
    free(s->plans);
    free(s->picks);
    rf_pool_free(s->pool);
    free(s->order);
    free(s->running);
    free(s->copies);
    free(s->prof);
    free(s);
}

rf_status rf_sched_new(struct rf_model *m, const struct rf_sched_params *params,
                       struct rf_sched **out)
{
    *out = NULL;
    if (!m) return rf_fail(RF_STATUS_INVALID_ARG, "scheduler: model is NULL");
    struct rf_sched_params p = params ? *params : rf_sched_default_params();
    RF_TRY(resolve_params(m, &p));
    struct rf_sched *s = calloc(1, sizeof *s);
    if (!s) return rf_fail(RF_STATUS_NOMEM, "scheduler: out of memory");
    s->m = m;
    s->p = p;
    s->n_vocab = m->hp.n_vocab;
    s->max_blocks = (p.n_ctx + p.block_size - 1) / p.block_size;
    const char *prof = getenv("RF_SCHED_PROFILE");
    if (prof && *prof && *prof != '0') s->prof = calloc(1, sizeof *s->prof);
    rf_status st = alloc_state(s);
    if (st != RF_OK) {
        destroy(s);
        return st;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        destroy(s);
        return rf_fail(RF_STATUS_NOMEM, "scheduler: cannot start its thread");
    }
    *out = s;
    return RF_OK;
}

void rf_sched_free(struct rf_sched *s, bool drain)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    s->drain = drain;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    destroy(s);
}

static rf_status check_request(const struct rf_sched *s, const struct rf_sched_request *r)
{
    if (!r || !r->cb || !r->prompt || r->n_prompt <= 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "scheduler: a request needs a prompt and a callback");
    if (r->n_prompt >= s->p.n_ctx)
        return rf_fail(RF_STATUS_CONTEXT_FULL,
                       "scheduler: the prompt is %d tokens, the context %d: it must be shorter",
                       r->n_prompt, s->p.n_ctx);
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= s->n_vocab)
            return rf_fail(RF_STATUS_INVALID_ARG,
                           "scheduler: prompt token %d at index %d is outside [0, %d)",
                           r->prompt[i], i, s->n_vocab);
    if (r->top_logprobs < 0 || r->top_logprobs > RF_SCHED_MAX_TOP_LOGPROBS)
        return rf_fail(RF_STATUS_INVALID_ARG, "scheduler: top_logprobs %d outside [0, %d]",
                       r->top_logprobs, RF_SCHED_MAX_TOP_LOGPROBS);
    return RF_OK;
}

/* A new sequence for r; the sampler's parameters are checked here, the sampler
 * itself is made at admission. */
static rf_status new_seq(const struct rf_sched *s, const struct rf_sched_request *r,
                         struct seq **out)
{
    struct rf_sampler_params sp = r->sampling;
    if (sp.penalty_last_n > s->p.n_ctx + 1)
        sp.penalty_last_n = s->p.n_ctx + 1; /* no longer history */
    struct rf_sampler *check = rf_sampler_new(&sp, s->n_vocab);
    if (!check) return RF_STATUS_INVALID_ARG; /* the sampler set the message */
    rf_sampler_free(check);
    struct seq *q = calloc(1, sizeof *q);
    if (q) q->tokens = malloc(((size_t)s->p.n_ctx + 1) * sizeof *q->tokens);
    if (!q || !q->tokens) {
        seq_free(q);
        return rf_fail(RF_STATUS_NOMEM, "scheduler: out of memory for a request");
    }
    memcpy(q->tokens, r->prompt, (size_t)r->n_prompt * sizeof *q->tokens);
    q->n_tok = q->n_prompt = r->n_prompt;
    q->cb = r->cb;
    q->user = r->user;
    q->sampling = sp;
    q->max_tokens = r->max_tokens;
    q->top_logprobs = r->top_logprobs;
    q->logprobs = r->logprobs;
    q->ignore_eos = r->ignore_eos;
    q->slot = -1;
    *out = q;
    return RF_OK;
}

rf_status rf_sched_submit(struct rf_sched *s, const struct rf_sched_request *r, uint64_t *id)
{
    if (id) *id = 0;
    if (!s) return rf_fail(RF_STATUS_INVALID_ARG, "scheduler: NULL");
    RF_TRY(check_request(s, r));
    struct seq *q = NULL;
    RF_TRY(new_seq(s, r, &q));
    rf_status st = RF_OK;
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        st = rf_fail(RF_STATUS_BUSY, "scheduler: shutting down");
    } else if (s->n_waiting >= s->p.queue_size) {
        st = rf_fail(RF_STATUS_BUSY, "scheduler: %d requests wait already (queue size %d)",
                     s->n_waiting, s->p.queue_size);
    } else {
        q->id = ++s->next_id;
        if (id) *id = q->id;
        wait_push(s, q, false);
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (st != RF_OK) seq_free(q);
    return st;
}

bool rf_sched_cancel(struct rf_sched *s, uint64_t id)
{
    if (!s) return false;
    struct seq *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (struct seq *q = s->wait_head; q && !found; q = q->next)
        if (q->id == id) found = q;
    for (int32_t i = 0; i < s->p.n_parallel && !found; i++)
        if (s->running[i] && s->running[i]->id == id) found = s->running[i];
    if (found) {
        found->cancel = true;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return found != NULL;
}

void rf_sched_get_stats(struct rf_sched *s, struct rf_sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->waiting = s->n_waiting;
    out->active = s->n_running;
    pthread_mutex_unlock(&s->mu);
}

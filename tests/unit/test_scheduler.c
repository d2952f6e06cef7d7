/* The continuous-batching scheduler with SmolLM2 on the CPU: several prompts at once
 * give exactly the greedy tokens each gives alone through rf_decode; so do a tiny
 * block pool (preemption) and the prefix cache; cancellation frees every block;
 * a full queue and a too-long prompt are refused. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include "rocmforge.h"
#include "runtime/scheduler.h"

#define N_PROMPTS 4
#define N_GEN 16
#define MAX_PROMPT 128

/* Three prompts share a long prefix (the prefix cache's case); the last one ends
 * with an end-of-generation token after a few. */
static const char *const prompt_text[N_PROMPTS] = {
    "Once upon a time, in a small village at the foot of the mountains, there lived an old "
    "clockmaker named Elias. He was known in the whole valley for his patience. Every "
    "morning he opened his shop and",
    "Once upon a time, in a small village at the foot of the mountains, there lived an old "
    "clockmaker named Elias. He was known in the whole valley for his patience. One winter "
    "night, a stranger knocked on his door and",
    "Once upon a time, in a small village at the foot of the mountains, there lived an old "
    "clockmaker named Elias. He was known in the whole valley for his patience. His "
    "daughter Mira wanted to become a sailor, so",
    "Answer in one short sentence. Question: what is the capital of France?",
};

/* Cases: a prompt and sampling parameters. 0..3: greedy on each prompt; 4: greedy
 * with penalties (which read the prompt too); 5: seeded sampling. */
#define N_CASES 6

static int32_t case_prompt(int32_t c) { return c < N_PROMPTS ? c : c == 4 ? 0 : 1; }

static struct rf_sampler_params case_params(int32_t c)
{
    struct rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0;
    if (c == 4) {
        sp.repeat_penalty = 1.3f;
        sp.frequency_penalty = 0.4f;
        sp.presence_penalty = 0.2f;
        sp.penalty_last_n = 64;
    } else if (c == 5) {
        sp.temperature = 0.9f;
        sp.seed = 1234;
    }
    return sp;
}

struct fixture {
    struct rf_model *m;
    rf_token prompt[N_PROMPTS][MAX_PROMPT];
    int32_t n_prompt[N_PROMPTS];
    rf_token ref[N_CASES][N_GEN]; /* tokens of each case alone */
    float ref_lp[N_CASES][N_GEN]; /* their log-softmax under the raw logits */
    int32_t n_ref[N_CASES];       /* fewer than N_GEN when an end token came */
};

static struct fixture fx;

/* ---- requests and their events ---- */

struct req {
    rf_token toks[256];
    float lps[256];     /* logprob of each token */
    int32_t n_top[256]; /* top logprobs of each token */
    rf_token top0[256]; /* the most likely id at each token, -1 without top logprobs */
    int32_t n;
    enum rf_finish finish;
    bool done;
    int32_t n_cached, n_generated;
    int32_t cancel_after; /* the callback returns false at this many tokens (0: never) */
    int32_t block_at;     /* the callback waits for release at this many tokens (0: never) */
    bool blocked, release;
    int32_t errors; /* events that broke a rule */
    char message[256];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* What every token event must hold: the top logprobs descend from one at least as
 * likely as the token, over distinct ids, and give the token's own when listed. */
static bool event_ok(const struct rf_sched_event *ev, int32_t n_before)
{
    if (ev->token < 0 || ev->n_generated != n_before + 1 || ev->logprob > 0) return false;
    if (ev->n_top < 0 || ev->n_top > RF_SCHED_MAX_TOP_LOGPROBS) return false;
    if (ev->n_top > 0 && ev->top_logprobs[0] < ev->logprob) return false;
    for (int32_t j = 0; j < ev->n_top; j++) {
        if (j > 0 && ev->top_logprobs[j] > ev->top_logprobs[j - 1]) return false;
        for (int32_t i = 0; i < j; i++)
            if (ev->top_ids[i] == ev->top_ids[j]) return false;
        if (ev->top_ids[j] == ev->token && ev->top_logprobs[j] != ev->logprob) return false;
    }
    return true;
}

static bool on_event(void *user, const struct rf_sched_event *ev)
{
    struct req *r = user;
    pthread_mutex_lock(&mu);
    bool go_on = true;
    if (r->done) r->errors++;
    if (ev->token >= 0) {
        if (!event_ok(ev, r->n)) r->errors++;
        if (r->n < 256) {
            r->lps[r->n] = ev->logprob;
            r->n_top[r->n] = ev->n_top;
            r->top0[r->n] = ev->n_top > 0 ? ev->top_ids[0] : -1;
            r->toks[r->n++] = ev->token;
        }
    }
    r->n_cached = ev->n_cached;
    r->n_generated = ev->n_generated;
    if (ev->finish != RF_FINISH_NONE) {
        r->finish = ev->finish;
        r->done = true;
        if (ev->message) snprintf(r->message, sizeof r->message, "%s", ev->message);
    } else {
        if (r->block_at == r->n) {
            r->blocked = true;
            pthread_cond_broadcast(&cv);
            while (!r->release) pthread_cond_wait(&cv, &mu);
        }
        go_on = r->cancel_after != r->n;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return go_on;
}

/* Waits under mu until *flag, at most two minutes. */
static void wait_flag(const bool *flag)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 120;
    pthread_mutex_lock(&mu);
    int rc = 0;
    while (!*flag && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&cv, &mu, &t);
    pthread_mutex_unlock(&mu);
    if (!*flag) fail_msg("timed out waiting for the scheduler");
}

static void release(struct req *r)
{
    pthread_mutex_lock(&mu);
    r->release = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static struct rf_sched_request case_request(int32_t c, int32_t max_tokens, struct req *r)
{
    const int32_t i = case_prompt(c);
    return (struct rf_sched_request){.prompt = fx.prompt[i],
                                     .n_prompt = fx.n_prompt[i],
                                     .max_tokens = max_tokens,
                                     .sampling = case_params(c),
                                     .cb = on_event,
                                     .user = r};
}

static struct rf_sched_request greedy_request(int32_t i, int32_t max_tokens, struct req *r)
{
    return case_request(i, max_tokens, r);
}

static uint64_t submit(struct rf_sched *s, const struct rf_sched_request *q)
{
    uint64_t id = 0;
    if (rf_sched_submit(s, q, &id) != RF_OK) fail_msg("submit: %s", rf_last_error());
    assert_true(id > 0);
    return id;
}

/* r finished as case c alone does: the same tokens, then STOP or LENGTH; with
 * logprobs, the same ones. */
static void expect_alone(const struct req *r, int32_t c, bool logprobs)
{
    wait_flag(&r->done);
    assert_int_equal(r->errors, 0);
    assert_int_equal(r->n, fx.n_ref[c]);
    for (int32_t k = 0; k < r->n; k++) {
        assert_int_equal(r->toks[k], fx.ref[c][k]);
        if (logprobs) assert_float_equal(r->lps[k], fx.ref_lp[c][k], 1e-5);
        else assert_true(r->lps[k] == 0.0f);
    }
    assert_int_equal(r->finish, fx.n_ref[c] == N_GEN ? RF_FINISH_LENGTH : RF_FINISH_STOP);
    assert_int_equal(r->n_generated, fx.n_ref[c]);
}

static struct rf_sched *make_sched(int32_t n_parallel, int32_t n_ctx, int32_t n_batch,
                                   int32_t n_blocks, int32_t block_size, bool prefix_cache)
{
    struct rf_sched_params p = rf_sched_default_params();
    p.n_parallel = n_parallel;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_blocks = n_blocks;
    p.block_size = block_size;
    p.prefix_cache = prefix_cache;
    struct rf_sched *s = NULL;
    if (rf_sched_new(fx.m, &p, &s) != RF_OK) fail_msg("sched: %s", rf_last_error());
    assert_int_equal(rf_sched_n_ctx(s), n_ctx);
    return s;
}

static void expect_all_free(struct rf_sched *s)
{
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    assert_int_equal(st.blocks_used, 0);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.waiting, 0);
}

/* ---- setup: the model and each prompt's tokens alone ---- */

static float log_softmax_at(const float *x, int32_t n, rf_token t)
{
    double max = x[0], sum = 0;
    for (int32_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    for (int32_t i = 0; i < n; i++) sum += exp(x[i] - max);
    return (float)(x[t] - max - log(sum));
}

/* Case c alone, as rocmforge run generates: the prompt through the sampler's
 * history, one rf_decode of it, then a token at a time. */
static int reference(struct rf_context *ctx, int32_t c)
{
    const int32_t i = case_prompt(c), n_vocab = rf_model_n_vocab(fx.m);
    const struct rf_sampler_params sp = case_params(c);
    struct rf_sampler *smp = rf_sampler_new(&sp, n_vocab);
    if (!smp) return -1;
    for (int32_t k = 0; k < fx.n_prompt[i]; k++) rf_sampler_accept(smp, fx.prompt[i][k]);
    rf_context_reset(ctx);
    int rc = rf_decode(ctx, fx.prompt[i], fx.n_prompt[i], false) == RF_OK ? 0 : -1;
    fx.n_ref[c] = 0;
    while (rc == 0 && fx.n_ref[c] < N_GEN) {
        const float *logits = rf_get_logits(ctx, -1);
        const rf_token t = rf_sampler_sample(smp, logits);
        if (rf_model_is_eog(fx.m, t)) break;
        rf_sampler_accept(smp, t);
        fx.ref_lp[c][fx.n_ref[c]] = log_softmax_at(logits, n_vocab, t);
        fx.ref[c][fx.n_ref[c]++] = t;
        rc = rf_decode(ctx, &t, 1, false) == RF_OK ? 0 : -1;
    }
    rf_sampler_free(smp);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    const char *models = getenv("RF_MODELS");
    if (!models) return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    struct rf_model_params mp = rf_model_default_params();
    mp.n_threads = 2;
    mp.n_gpu_layers = 0;
    if (rf_model_load(path, &mp, &fx.m) != RF_OK) return -1;
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 256;
    struct rf_context *ctx = NULL;
    if (rf_context_init(fx.m, &cp, &ctx) != RF_OK) return -1;
    for (int32_t i = 0; i < N_PROMPTS; i++) {
        const char *t = prompt_text[i];
        fx.n_prompt[i] = rf_tokenize(fx.m, t, strlen(t), fx.prompt[i], MAX_PROMPT, true, false);
        if (fx.n_prompt[i] <= 0 || fx.n_prompt[i] > MAX_PROMPT) return -1;
    }
    for (int32_t c = 0; c < N_CASES; c++)
        if (reference(ctx, c) != 0) return -1;
    /* Penalties and sampling change the tokens, or their cases would test nothing. */
    if (!memcmp(fx.ref[4], fx.ref[0], sizeof fx.ref[0]) ||
        !memcmp(fx.ref[5], fx.ref[1], sizeof fx.ref[1]))
        return -1;
    rf_context_free(ctx);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rf_model_free(fx.m);
    return 0;
}

/* ---- tests ---- */

/* Every case at once, four at a time (the others wait for a slot), prompts
 * prefilled in chunks of a few tokens next to the others' decoding: each gets its
 * tokens alone, with their logprobs. */
static void test_concurrent_equals_alone(void **state)
{
    (void)state;
    struct rf_sched *s = make_sched(4, 256, 8, 0, 0, false);
    static struct req r[N_CASES];
    memset(r, 0, sizeof r);
    uint64_t ids[N_CASES];
    const bool lp[N_CASES] = {true, true, false, false, true, true};
    const int32_t top[N_CASES] = {0, 1, 0, 5, RF_SCHED_MAX_TOP_LOGPROBS, 2};
    for (int32_t c = 0; c < N_CASES; c++) {
        struct rf_sched_request q = case_request(c, N_GEN, &r[c]);
        q.logprobs = lp[c];
        q.top_logprobs = top[c];
        ids[c] = submit(s, &q);
    }
    int64_t total = 0, prompt = 0;
    for (int32_t c = 0; c < N_CASES; c++) {
        expect_alone(&r[c], c, lp[c] || top[c] > 0);
        for (int32_t k = 0; k < r[c].n; k++) {
            assert_int_equal(r[c].n_top[k], top[c]);
            /* Greedy without penalties takes the most likely token. */
            if (top[c] > 0 && c < N_PROMPTS) assert_int_equal(r[c].top0[k], r[c].toks[k]);
        }
        total += r[c].n;
        prompt += fx.n_prompt[case_prompt(c)];
        assert_int_equal(r[c].n_cached, 0);
        assert_false(rf_sched_cancel(s, ids[c])); /* finished */
    }
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    assert_int_equal(st.requests_started, N_CASES);
    assert_int_equal(st.requests_finished, N_CASES);
    assert_int_equal(st.requests_cancelled + st.requests_failed + st.preemptions, 0);
    assert_int_equal(st.tokens_generated, total);
    assert_int_equal(st.tokens_prompt, prompt);
    assert_int_equal(st.tokens_prompt_cached, 0);
    assert_int_equal(st.blocks_cached, 0);
    assert_true(st.blocks_total > 0);
    expect_all_free(s);
    rf_sched_free(s, true);
}

/* A pool of one context plus a block for all four: sequences are preempted and
 * recomputed, and still give their tokens alone. */
static void test_preemption_same_tokens(void **state)
{
    (void)state;
    const int32_t n_ctx = 64, bs = 4;
    struct rf_sched *s = make_sched(N_PROMPTS, n_ctx, 64, 20, bs, true);
    static struct req r[N_PROMPTS];
    memset(r, 0, sizeof r);
    for (int32_t i = 0; i < N_PROMPTS; i++) {
        struct rf_sched_request q = greedy_request(i, N_GEN, &r[i]);
        submit(s, &q);
    }
    for (int32_t i = 0; i < N_PROMPTS; i++) expect_alone(&r[i], i, false);
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    assert_true(st.preemptions > 0);
    assert_int_equal(st.requests_finished, N_PROMPTS);
    expect_all_free(s);
    rf_sched_free(s, true);
}

static int32_t common_prefix(int32_t a, int32_t b)
{
    int32_t n = 0;
    while (n < fx.n_prompt[a] && n < fx.n_prompt[b] && fx.prompt[a][n] == fx.prompt[b][n]) n++;
    return n;
}

/* Prompt 0 alone fills the cache; then prompt 0 again (its whole prompt cached: the
 * last token is recomputed into a copy) and prompts 1 and 2 (the shared prefix)
 * run at once from the cached blocks, with their tokens alone. */
static void test_prefix_cache_same_tokens(void **state)
{
    (void)state;
    const int32_t bs = 16;
    struct rf_sched *s = make_sched(N_PROMPTS, 256, 512, 0, bs, true);
    static struct req first, r[3];
    memset(&first, 0, sizeof first);
    memset(r, 0, sizeof r);
    struct rf_sched_request q = greedy_request(0, N_GEN, &first);
    submit(s, &q);
    expect_alone(&first, 0, false);
    assert_int_equal(first.n_cached, 0);
    for (int32_t i = 0; i < 3; i++) {
        q = greedy_request(i, N_GEN, &r[i]);
        submit(s, &q);
    }
    int64_t cached = 0;
    for (int32_t i = 0; i < 3; i++) {
        expect_alone(&r[i], i, false);
        int32_t want = common_prefix(0, i) / bs * bs;
        if (want > fx.n_prompt[i] - 2) want = fx.n_prompt[i] - 2;
        assert_true(want >= 32);
        assert_int_equal(r[i].n_cached, want);
        cached += want;
    }
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    assert_int_equal(st.tokens_prompt_cached, cached);
    assert_true(st.blocks_cached > 0); /* the prompts' blocks stay for later */
    expect_all_free(s);
    rf_sched_free(s, true);
}

/* Cancelled by rf_sched_cancel while running, by its callback, and while waiting:
 * each gets a CANCELLED final event within a step, and every block is free again. */
static void test_cancel_frees_blocks(void **state)
{
    (void)state;
    assert_true(fx.n_ref[0] >= 4 && fx.n_ref[1] >= 4);
    struct rf_sched *s = make_sched(2, 256, 64, 0, 0, true);
    static struct req a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    a.block_at = 2;
    b.cancel_after = 3;
    struct rf_sched_request q = greedy_request(0, 200, &a);
    const uint64_t ida = submit(s, &q);
    q = greedy_request(1, 200, &b);
    submit(s, &q);
    wait_flag(&a.blocked);
    q = greedy_request(3, 200, &c);
    const uint64_t idc = submit(s, &q); /* waits: both slots are taken */
    assert_true(rf_sched_cancel(s, ida));
    assert_true(rf_sched_cancel(s, idc));
    release(&a);
    wait_flag(&a.done);
    wait_flag(&b.done);
    wait_flag(&c.done);
    assert_int_equal(a.finish, RF_FINISH_CANCELLED);
    assert_int_equal(a.n, 2);
    assert_int_equal(b.finish, RF_FINISH_CANCELLED);
    assert_int_equal(b.n, 3);
    assert_int_equal(c.finish, RF_FINISH_CANCELLED);
    assert_int_equal(c.n, 0);
    for (int32_t k = 0; k < 2; k++) assert_int_equal(a.toks[k], fx.ref[0][k]);
    assert_int_equal(a.errors + b.errors + c.errors, 0);
    assert_false(rf_sched_cancel(s, ida));
    assert_false(rf_sched_cancel(s, 12345));
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    assert_int_equal(st.requests_cancelled, 3);
    assert_int_equal(st.requests_finished, 0);
    expect_all_free(s);
    rf_sched_free(s, false);
}

/* One slot, a queue of two: the third waiting request is refused with BUSY;
 * freeing without draining ends the rest. */
static void test_queue_full_busy(void **state)
{
    (void)state;
    struct rf_sched_params p = rf_sched_default_params();
    p.n_parallel = 1;
    p.n_ctx = 128;
    p.queue_size = 2;
    struct rf_sched *s = NULL;
    assert_int_equal(rf_sched_new(fx.m, &p, &s), RF_OK);
    static struct req r[4];
    memset(r, 0, sizeof r);
    r[0].block_at = 1;
    struct rf_sched_request q = greedy_request(3, 8, &r[0]);
    submit(s, &q);
    wait_flag(&r[0].blocked); /* running, so not waiting */
    for (int32_t i = 1; i < 3; i++) {
        q = greedy_request(3, 8, &r[i]);
        submit(s, &q);
    }
    q = greedy_request(3, 8, &r[3]);
    uint64_t id = 99;
    assert_int_equal(rf_sched_submit(s, &q, &id), RF_STATUS_BUSY);
    assert_int_equal(id, 0);
    assert_non_null(strstr(rf_last_error(), "queue size 2"));
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.active, 1);
    release(&r[0]);
    rf_sched_free(s, false);
    /* Each one either finished or was cancelled, its tokens those of the prompt alone. */
    for (int32_t i = 0; i < 3; i++) {
        assert_true(r[i].done);
        assert_int_equal(r[i].errors, 0);
        assert_true(r[i].finish != RF_FINISH_ERROR && r[i].finish != RF_FINISH_NONE);
        for (int32_t k = 0; k < r[i].n && k < fx.n_ref[3]; k++)
            assert_int_equal(r[i].toks[k], fx.ref[3][k]);
    }
    assert_false(r[3].done);
}

/* A prompt as long as the context is refused naming both lengths; one token
 * shorter runs until the context is full, as rocmforge run does. */
static void test_prompt_too_long(void **state)
{
    (void)state;
    const int32_t n_ctx = fx.n_prompt[0] - 1;
    struct rf_sched *s = make_sched(2, n_ctx, 64, 0, 0, true);
    static struct req r;
    memset(&r, 0, sizeof r);
    struct rf_sched_request q = greedy_request(0, 0, &r);
    uint64_t id = 7;
    assert_int_equal(rf_sched_submit(s, &q, &id), RF_STATUS_CONTEXT_FULL);
    char want[128];
    snprintf(want, sizeof want, "prompt is %d tokens, the context %d", fx.n_prompt[0], n_ctx);
    assert_non_null(strstr(rf_last_error(), want));
    assert_int_equal(id, 0);
    q.n_prompt = n_ctx - 1;
    submit(s, &q);
    wait_flag(&r.done);
    assert_int_equal(r.finish, RF_FINISH_LENGTH);
    assert_int_equal(r.n, 2);
    rf_sched_free(s, true);
}

static void test_bad_requests(void **state)
{
    (void)state;
    struct rf_sched *s = make_sched(1, 64, 64, 0, 0, true);
    static struct req r;
    struct rf_sched_request q = greedy_request(3, 4, &r);
    q.top_logprobs = RF_SCHED_MAX_TOP_LOGPROBS + 1;
    assert_int_equal(rf_sched_submit(s, &q, NULL), RF_STATUS_INVALID_ARG);
    q = greedy_request(3, 4, &r);
    q.cb = NULL;
    assert_int_equal(rf_sched_submit(s, &q, NULL), RF_STATUS_INVALID_ARG);
    const rf_token bad[2] = {1, rf_model_n_vocab(fx.m)};
    q = greedy_request(3, 4, &r);
    q.prompt = bad;
    q.n_prompt = 2;
    assert_int_equal(rf_sched_submit(s, &q, NULL), RF_STATUS_INVALID_ARG);
    q = greedy_request(3, 4, &r);
    q.sampling.repeat_penalty = 0;
    assert_int_equal(rf_sched_submit(s, &q, NULL), RF_STATUS_INVALID_ARG);
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    assert_int_equal(st.requests_started, 0);
    rf_sched_free(s, true);
    /* A pool smaller than one context and a copy is refused. */
    struct rf_sched_params p = rf_sched_default_params();
    p.n_ctx = 64;
    p.n_blocks = 4;
    assert_int_equal(rf_sched_new(fx.m, &p, &s), RF_STATUS_INVALID_ARG);
    p.n_blocks = 0;
    p.n_batch = -1;
    assert_int_equal(rf_sched_new(fx.m, &p, &s), RF_STATUS_INVALID_ARG);
}

/* Requests of every case with random lengths through two slots and a pool that
 * forces preemption, some cancelled by their callback, some by rf_sched_cancel at
 * random moments: each ends once, its tokens a prefix of its case alone, its finish
 * consistent with them, and every block is free at the end. */
static void test_random_mix(void **state)
{
    (void)state;
    enum {
        N = 10
    };
    struct rf_sched *s = make_sched(2, 64, 16, 17, 4, true);
    static struct req r[N];
    memset(r, 0, sizeof r);
    uint64_t ids[N];
    int32_t max_tokens[N];
    uint32_t x = 2024;
    for (int32_t i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        max_tokens[i] = 1 + (int32_t)((x >> 16) % 10);
        if (i % 4 == 1) r[i].cancel_after = 1 + (int32_t)((x >> 8) % 4);
        struct rf_sched_request q = case_request(i % N_CASES, max_tokens[i], &r[i]);
        ids[i] = submit(s, &q);
    }
    for (int32_t i = 3; i < N; i += 4) {
        struct timespec t = {.tv_sec = 0, .tv_nsec = 20000000};
        nanosleep(&t, NULL);
        rf_sched_cancel(s, ids[i]);
    }
    int64_t total = 0;
    for (int32_t i = 0; i < N; i++) {
        const int32_t c = i % N_CASES;
        wait_flag(&r[i].done);
        assert_int_equal(r[i].errors, 0);
        total += r[i].n;
        assert_true(r[i].n <= max_tokens[i] && r[i].n <= fx.n_ref[c]);
        for (int32_t k = 0; k < r[i].n; k++) assert_int_equal(r[i].toks[k], fx.ref[c][k]);
        const int32_t full = max_tokens[i] < fx.n_ref[c] ? max_tokens[i] : fx.n_ref[c];
        if (r[i].finish == RF_FINISH_LENGTH) assert_int_equal(r[i].n, max_tokens[i]);
        else if (r[i].finish == RF_FINISH_STOP) assert_int_equal(r[i].n, fx.n_ref[c]);
        else assert_int_equal(r[i].finish, RF_FINISH_CANCELLED);
        if (r[i].cancel_after > 0 && r[i].cancel_after < full)
            assert_int_equal(r[i].n, r[i].cancel_after);
    }
    struct rf_sched_stats st;
    rf_sched_get_stats(s, &st);
    /* Each request ends once; those cancelled while waiting never started. */
    assert_int_equal(st.requests_finished + st.requests_cancelled, N);
    assert_true(st.requests_started <= N && st.requests_started >= st.requests_finished);
    assert_int_equal(st.requests_failed, 0);
    assert_int_equal(st.tokens_generated, total);
    expect_all_free(s);
    rf_sched_free(s, true);
}

/* Freeing with drain finishes what is in flight. */
static void test_drain(void **state)
{
    (void)state;
    struct rf_sched *s = make_sched(1, 128, 64, 0, 0, true);
    static struct req r[2];
    memset(r, 0, sizeof r);
    for (int32_t i = 0; i < 2; i++) {
        struct rf_sched_request q = greedy_request(3 - i, 4, &r[i]);
        submit(s, &q);
    }
    rf_sched_free(s, true);
    for (int32_t i = 0; i < 2; i++) {
        assert_true(r[i].done);
        const int32_t want = fx.n_ref[3 - i] < 4 ? fx.n_ref[3 - i] : 4;
        assert_int_equal(r[i].n, want);
        for (int32_t k = 0; k < want; k++) assert_int_equal(r[i].toks[k], fx.ref[3 - i][k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_equals_alone),
        cmocka_unit_test(test_preemption_same_tokens),
        cmocka_unit_test(test_prefix_cache_same_tokens),
        cmocka_unit_test(test_cancel_frees_blocks),
        cmocka_unit_test(test_queue_full_busy),
        cmocka_unit_test(test_prompt_too_long),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_random_mix),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

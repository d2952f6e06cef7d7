#ifndef RF_RUNTIME_SCHEDULER_H
#define RF_RUNTIME_SCHEDULER_H
/* Continuous batching. One scheduler thread owns the model's forward passes: each
 * step runs every active sequence's next token plus chunks of waiting prompts (at
 * most n_batch tokens in all), over a paged KV cache whose blocks are shared between
 * sequences with a common prompt prefix (copy on write). When blocks run out the
 * newest sequence is preempted (its blocks freed) and requeued to be recomputed.
 * Requests talk to the thread only through submit/cancel and their callback.
 *
 * Numerics: a sequence's tokens are those it gets alone through rf_decode, on a
 * backend that computes a token as it would in a step of its sequence alone (the CPU
 * backend does; its attention sums a token alone of its sequence in the batch as a
 * single-token step, others as a prompt chunk). So the prompt goes in chunks of
 * two tokens or more, every later token alone of its sequence in a step (also when a
 * preempted sequence recomputes its generated tokens), and the last two prompt
 * tokens are always computed (never taken from the prefix cache).
 *
 * The scheduler's thread runs the model's forward passes: while it lives, nothing
 * else may run forward passes (rf_decode) on the same model. */
#include <stdbool.h>
#include <stdint.h>

#include "rocmforge.h"

struct rf_model;
struct rf_sched;

struct rf_sched_params {
    int32_t n_parallel;  /* most sequences decoding at once (default 8) */
    int32_t n_ctx;       /* most positions of one sequence, prompt + generated (0: the
                            model's training context, at most 4096) */
    int32_t n_batch;     /* most tokens in one step, decode tokens first (default 512;
                            raised to n_parallel + 2 when smaller, so that a prompt
                            chunk always fits beside the others' decode tokens) */
    int32_t n_blocks;    /* KV blocks in the pool; 0: enough for n_parallel full contexts;
                            at least one full context's blocks plus one (for a copy) */
    int32_t block_size;  /* 0: RF_KV_BLOCK_SIZE */
    int32_t queue_size;  /* most requests waiting; more are refused (default 64) */
    bool prefix_cache;   /* share blocks of equal prompt prefixes (default true) */
};
struct rf_sched_params rf_sched_default_params(void);

enum rf_finish {
    RF_FINISH_NONE = 0,  /* more tokens follow */
    RF_FINISH_STOP,      /* end-of-generation token (not reported as a token) */
    RF_FINISH_LENGTH,    /* max_tokens or the context reached */
    RF_FINISH_CANCELLED, /* rf_sched_cancel, or the callback returned false */
    RF_FINISH_ERROR,     /* see message */
};

#define RF_SCHED_MAX_TOP_LOGPROBS 20

struct rf_sched_event {
    uint64_t id;
    rf_token token;      /* -1 when no token comes with this event */
    float logprob;       /* log-softmax of token under the unmodified logits; 0 unless
                            the request asked for logprobs or top_logprobs */
    int32_t n_top;       /* top_logprobs entries filled, most likely first */
    rf_token top_ids[RF_SCHED_MAX_TOP_LOGPROBS];
    float top_logprobs[RF_SCHED_MAX_TOP_LOGPROBS];
    enum rf_finish finish;
    int32_t n_prompt;    /* prompt tokens */
    int32_t n_generated; /* tokens generated so far, this one included */
    int32_t n_cached;    /* prompt tokens whose KV came from the prefix cache */
    const char *message; /* finish == RF_FINISH_ERROR; valid during the call only */
};

/* Called on the scheduler thread, once per generated token and once with finish set
 * (the last call for the request; it may carry the last token too). Must not block
 * for long. Returning false cancels the request (its final event still comes). No
 * lock is held during the call: it may call rf_sched_submit, rf_sched_cancel and
 * rf_sched_get_stats, but not rf_sched_free. The first call may come before
 * rf_sched_submit returns. */
typedef bool (*rf_sched_cb)(void *user, const struct rf_sched_event *ev);

struct rf_sched_request {
    const rf_token *prompt; /* copied at submit */
    int32_t n_prompt;
    int32_t max_tokens;     /* <= 0: until the context is full */
    struct rf_sampler_params sampling;
    int32_t top_logprobs;   /* 0: none; at most RF_SCHED_MAX_TOP_LOGPROBS */
    bool logprobs;
    bool ignore_eos;        /* an end-of-generation token is reported and fed like any other */
    rf_sched_cb cb;
    void *user;
};

struct rf_sched_stats {
    int32_t waiting, active;
    int32_t blocks_total, blocks_used, blocks_cached; /* cached: held only by the prefix cache */
    /* started: admitted the first time; finished: ended with STOP or LENGTH; failed:
     * ERROR; cancelled: CANCELLED (also while waiting, never started). Every submitted
     * request ends as exactly one of the last three. A request's blocks are counted
     * free before its final event is sent. */
    uint64_t requests_started, requests_finished, requests_failed, requests_cancelled;
    /* tokens_prompt(_cached): prompt tokens of started requests (from the prefix
     * cache at their first admission) */
    uint64_t tokens_generated, tokens_prompt, tokens_prompt_cached, preemptions;
};

rf_status rf_sched_new(struct rf_model *m, const struct rf_sched_params *p, struct rf_sched **out);
/* Stops taking requests, finishes (drain) or cancels the ones in flight, joins the
 * thread and frees everything. Not from a callback. */
void rf_sched_free(struct rf_sched *s, bool drain);
/* RF_STATUS_BUSY when the queue is full (or rf_sched_free has begun);
 * RF_STATUS_CONTEXT_FULL when the prompt does not fit n_ctx, n_prompt >= n_ctx
 * (message names both lengths); RF_STATUS_INVALID_ARG for a bad request (no prompt
 * or callback, a token outside the vocabulary, top_logprobs out of range, bad
 * sampling parameters). *id (may be NULL) identifies the request, 0 when refused.
 * A sequence ends with LENGTH when its tokens, prompt and generated, reach
 * n_ctx + 1 (the last one is never fed), as rocmforge run does. */
rf_status rf_sched_submit(struct rf_sched *s, const struct rf_sched_request *r, uint64_t *id);
/* Cancels a waiting or running request; its blocks are freed within one step. False
 * when the id is unknown or already finished. */
bool rf_sched_cancel(struct rf_sched *s, uint64_t id);
void rf_sched_get_stats(struct rf_sched *s, struct rf_sched_stats *out);
int32_t rf_sched_n_ctx(const struct rf_sched *s);

#endif

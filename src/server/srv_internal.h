#ifndef RF_SERVER_SRV_INTERNAL_H
#define RF_SERVER_SRV_INTERNAL_H
/* Pieces of the server, each testable without HTTP: request parsing (api_parse.c),
 * stop strings and UTF-8 (text.c), response JSON (api_format.c), metrics
 * (metrics.c), and the request object between the scheduler thread and an HTTP
 * thread (gen.c). */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rocmforge.h"
#include "runtime/scheduler.h"

#include "core/strbuf.h"

struct cJSON;


/* Copies s to out with every maximal invalid UTF-8 subpart replaced by U+FFFD. */
void srv_utf8_sanitize(const char *s, size_t n, struct rf_strbuf *out);
bool srv_utf8_valid(const char *s, size_t n);
/* Compares in time independent of where the strings differ. */
bool srv_secret_equal(const char *a, size_t na, const char *b, size_t nb);

/* ---- stop strings (text.c) ----
 * Generated text goes through srv_stop_feed; what may still become a stop string is
 * held back, and a stop string and everything after it is never emitted. */
struct srv_stop {
    char **stops;
    size_t *lens;
    int32_t n;
    struct rf_strbuf pending; /* text not yet emitted */
    bool hit;
};
/* Appends text; appends to out what can be emitted now. Returns true when a stop
 * string matched (then out holds the text before it, and later feeds do nothing). */
bool srv_stop_feed(struct srv_stop *st, const char *text, size_t n, struct rf_strbuf *out);
/* End of generation: what is still held back is emitted. */
void srv_stop_flush(struct srv_stop *st, struct rf_strbuf *out);
void srv_stop_free(struct srv_stop *st); /* frees pending only */

/* ---- requests (api_parse.c) ---- */
enum srv_api {
    SRV_API_CHAT,       /* /v1/chat/completions */
    SRV_API_COMPLETION, /* /v1/completions */
    SRV_API_GENERATE,   /* /generate, /generate/stream */
};

#define SRV_MAX_STOPS 16
#define SRV_MAX_STOP_LEN 256

struct srv_error {
    int status; /* HTTP status */
    const char *type;
    const char *code; /* NULL: JSON null */
    char param[64];   /* "" : JSON null */
    char message[512];
    int retry_after; /* seconds; > 0 adds Retry-After */
};
/* Fills err and returns false, for `return srv_err(...)` in validators. */
bool srv_err(struct srv_error *err, int status, const char *type, const char *code,
             const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

struct srv_req {
    enum srv_api api;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    int32_t max_tokens; /* 0: until end of generation or a full context */
    struct rf_sampler_params sp;
    bool seed_given;
    int32_t n_stop;
    char *stops[SRV_MAX_STOPS];
    bool logprobs;
    int32_t top_logprobs; /* 0..RF_SCHED_MAX_TOP_LOGPROBS */
    char *model;          /* as asked, NULL when absent */
    /* prompt: chat messages, or text, or token ids */
    struct rf_chat_message *msgs;
    size_t n_msgs;
    char *prompt;
    rf_token *prompt_ids;
    int32_t n_prompt_ids;
};
/* Parses and validates a request body. False with err filled (400, naming the field). */
bool srv_req_parse(enum srv_api api, const char *body, size_t len, int32_t n_vocab,
                   struct srv_req *out, struct srv_error *err);
void srv_req_free(struct srv_req *r);

/* ---- responses (api_format.c); every function returns malloc'd JSON text or NULL ---- */
char *srv_error_json(const struct srv_error *e);

/* One token as the client sees it: text and logprobs. */
struct srv_lp_top {
    char *text;
    size_t len;
    float logprob;
};
struct srv_lp {
    char *text; /* raw bytes of the token (may be part of a character) */
    size_t len;
    float logprob;
    int32_t n_top;
    struct srv_lp_top top[RF_SCHED_MAX_TOP_LOGPROBS];
    size_t text_offset; /* bytes of completion text before this token */
};
void srv_lp_clear(struct srv_lp *lp, size_t n);

/* What the formatters need about a finished or running request. */
struct srv_result {
    const char *id; /* "chatcmpl-7" */
    uint64_t num_id;
    const char *model;
    int64_t created;  /* unix seconds */
    const char *text; /* the text of this chunk, or all of it */
    size_t text_len;
    const struct srv_lp *lps; /* logprobs of this chunk's tokens (NULL: none asked) */
    size_t n_lps;
    const char *finish; /* "stop", "length", NULL: not finished */
    int32_t n_prompt, n_completion, n_cached;
    double ttft_ms, total_ms;
};
char *srv_chat_json(const struct srv_result *r);
char *srv_chat_chunk_json(const struct srv_result *r, bool role, bool usage_only);
char *srv_completion_json(const struct srv_result *r);
char *srv_completion_chunk_json(const struct srv_result *r, bool usage_only);
char *srv_generate_json(const struct srv_result *r);
char *srv_generate_chunk_json(const struct srv_result *r);

/* ---- metrics (metrics.c) ---- */
#define SRV_HIST_BUCKETS 14
struct srv_hist {
    uint64_t counts[SRV_HIST_BUCKETS + 1]; /* last: +Inf */
    double sum;                            /* seconds */
    uint64_t count;
};
struct srv_metrics {
    pthread_mutex_t mu;
    struct srv_hist ttft; /* submit to first token */
    struct srv_hist itl;  /* between consecutive tokens of one request */
    uint64_t http[6];     /* responses by status class: 1xx..5xx, other */
    uint64_t disconnects; /* clients gone before their request finished */
    uint64_t rejected;    /* 503 because the queue was full */
};
void srv_metrics_init(struct srv_metrics *m);
void srv_metrics_destroy(struct srv_metrics *m);
void srv_metrics_observe(struct srv_metrics *m, bool first, double seconds);
void srv_metrics_http(struct srv_metrics *m, int status);
/* Prometheus text exposition: the server's histograms and counters with the
 * scheduler's statistics. */
void srv_metrics_render(struct srv_metrics *m, const struct rf_sched_stats *st,
                        struct rf_strbuf *out);

/* ---- one request between the scheduler thread and its HTTP thread (gen.c) ---- */
struct srv_tok {
    rf_token token;
    float logprob;
    int32_t n_top;
    rf_token top_ids[RF_SCHED_MAX_TOP_LOGPROBS];
    float top_logprobs[RF_SCHED_MAX_TOP_LOGPROBS];
};

struct srv_gen {
    pthread_mutex_t mu;
    int efd;  /* eventfd: the scheduler callback signals the HTTP thread */
    int refs; /* the HTTP side, the scheduler (until the final event), the registry */
    struct srv_metrics *metrics;
    uint64_t num_id;
    /* under mu */
    struct srv_tok *q; /* events not yet taken by the HTTP thread */
    size_t n_q, cap_q;
    bool keep_logprobs;
    bool cancel; /* the HTTP side is done: the callback answers false */
    bool submitted;
    uint64_t sched_id;
    bool finished;
    bool oom;
    enum rf_finish finish;
    char *error;
    int32_t n_prompt, n_generated, n_cached;
    double t_submit, t_first, t_last; /* monotonic seconds; t_first 0 until a token */
    /* what /status reports once the HTTP side has finished */
    const char *state;
};

struct srv_gen *srv_gen_new(struct srv_metrics *m, uint64_t num_id, bool keep_logprobs);
void srv_gen_ref(struct srv_gen *g);
void srv_gen_unref(struct srv_gen *g);
/* Submits r's prompt and sampling; the scheduler holds a reference until its final
 * event. Returns the scheduler's status (BUSY, CONTEXT_FULL, ...). */
rf_status srv_gen_submit(struct srv_gen *g, struct rf_sched *s, struct rf_sched_request *r);
/* Asks the scheduler to stop the request (idempotent). */
void srv_gen_cancel(struct srv_gen *g, struct rf_sched *s);

enum srv_wait {
    SRV_WAIT_READY, /* events to take */
    SRV_WAIT_GONE,  /* the client closed its connection */
    SRV_WAIT_TIMEOUT,
};
/* Waits for events or for the client (fd, -1: none) to disconnect. */
enum srv_wait srv_gen_wait(struct srv_gen *g, int client_fd, int timeout_ms);

/* The HTTP thread's view: turns events into text, stop strings and logprobs. */
struct srv_out {
    const struct rf_model *model;
    struct rf_detok *dt;
    struct srv_stop stop;
    struct srv_tok *taken; /* swapped with the generation's queue */
    size_t cap_taken;
    struct rf_strbuf text; /* emitted text not yet sent */
    size_t text_total;   /* bytes emitted in all */
    size_t raw_total;    /* bytes of raw token pieces so far (text_offset) */
    struct srv_lp *lps;  /* logprobs not yet sent */
    size_t n_lps, cap_lps;
    bool want_lps;
    int32_t top_n;
    int32_t n_tokens; /* tokens consumed (up to the stop string) */
    bool done;
    const char *finish; /* "stop", "length", "cancelled", "error" */
    char *error;
    bool oom;
};
bool srv_out_init(struct srv_out *o, const struct rf_model *m, const struct srv_req *r);
void srv_out_free(struct srv_out *o);
/* Takes the pending events of g and processes them; sets o->done at the end of the
 * request (then g's counts are final). When a stop string matches, cancels g. */
void srv_out_pump(struct srv_out *o, struct srv_gen *g, struct rf_sched *s);
/* Forgets the text and logprobs already sent. */
void srv_out_consumed(struct srv_out *o);

double srv_now(void); /* monotonic seconds */

#endif

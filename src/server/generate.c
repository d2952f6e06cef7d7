/* The generation endpoints: /v1/chat/completions, /v1/completions, /generate and
 * /generate/stream. The prompt is tokenized the way `rocmforge run` does it (BOS when
 * the model asks, special-token text parsed), so that greedy outputs agree. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "server/srv_http.h"

#define WAIT_MS 15000 /* a stream with nothing to say sends an SSE comment this often */

/* ---- the prompt ---- */

static char *chat_text(struct srv_conn *c, struct srv_error *err)
{
    const struct rf_server *s = c->srv;
    const struct srv_req *r = &c->req;
    const int32_t len =
        rf_chat_apply(s->model, s->chat_template, r->msgs, r->n_msgs, true, NULL, 0);
    char *out = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (out &&
        rf_chat_apply(s->model, s->chat_template, r->msgs, r->n_msgs, true, out, len + 1) == len)
        return out;
    free(out);
    srv_err(err, 500, "server_error", NULL, "messages", "cannot apply the chat template: %s",
            rf_last_error());
    return NULL;
}

static rf_token *tokenize(const struct rf_model *m, const char *text, int32_t *n,
                          struct srv_error *err)
{
    const size_t len = strlen(text);
    int32_t cap = (int32_t)(len < INT32_MAX / 2 ? len + 8 : INT32_MAX / 2);
    for (int attempt = 0; attempt < 2; attempt++) {
        rf_token *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) break;
        const int32_t k = rf_tokenize(m, text, len, ids, cap, true, true);
        if (k >= 0 && k <= cap) {
            *n = k;
            return ids;
        }
        free(ids);
        if (k < 0) {
            srv_err(err, 400, "invalid_request_error", NULL, "prompt", "cannot tokenize: %s",
                    rf_last_error());
            return NULL;
        }
        cap = k;
    }
    srv_err(err, 500, "server_error", NULL, NULL, "out of memory");
    return NULL;
}

/* The prompt's tokens (malloc'd) from messages, text or ids. */
static rf_token *prompt_tokens(struct srv_conn *c, int32_t *n, struct srv_error *err)
{
    const struct srv_req *r = &c->req;
    if (r->prompt_ids) {
        rf_token *ids = malloc((size_t)r->n_prompt_ids * sizeof *ids);
        if (!ids) {
            srv_err(err, 500, "server_error", NULL, NULL, "out of memory");
            return NULL;
        }
        memcpy(ids, r->prompt_ids, (size_t)r->n_prompt_ids * sizeof *ids);
        *n = r->n_prompt_ids;
        return ids;
    }
    if (r->api != SRV_API_CHAT) return tokenize(c->srv->model, r->prompt, n, err);
    char *text = chat_text(c, err);
    rf_token *ids = text ? tokenize(c->srv->model, text, n, err) : NULL;
    free(text);
    return ids;
}

static bool check_length(struct srv_conn *c, int32_t n, struct srv_error *err)
{
    const char *param = c->api == SRV_API_CHAT ? "messages" : "prompt";
    if (n == 0)
        return srv_err(err, 400, "invalid_request_error", NULL, param, "the prompt is empty");
    if (n < c->srv->n_ctx) return true;
    return srv_err(err, 400, "invalid_request_error", "context_length_exceeded", param,
                   "the prompt is %d tokens, too long for the context of %d tokens (at least "
                   "one position must be left to generate)",
                   n, c->srv->n_ctx);
}

static uint64_t random_seed(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v) return v;
    return (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
}

/* ---- results ---- */

static const char *id_prefix(enum srv_api api)
{
    return api == SRV_API_CHAT ? "chatcmpl-" : api == SRV_API_COMPLETION ? "cmpl-" : "gen-";
}

static struct srv_result result_of(struct srv_conn *c)
{
    struct srv_gen *g = c->gen;
    struct srv_result r = {
        .id = c->id,
        .num_id = g->num_id,
        .model = c->srv->model_id,
        .created = c->srv->created,
        .text = c->out.text.p ? c->out.text.p : "",
        .text_len = c->out.text.len,
        .lps = c->req.logprobs ? c->out.lps : NULL,
        .n_lps = c->out.n_lps,
        .n_completion = c->out.n_tokens,
    };
    const bool done = c->out.done;
    pthread_mutex_lock(&g->mu);
    r.n_prompt = g->n_prompt;
    r.n_cached = g->n_cached;
    r.ttft_ms = g->t_first > 0 ? (g->t_first - g->t_submit) * 1e3 : 0;
    r.total_ms = (srv_now() - g->t_submit) * 1e3;
    pthread_mutex_unlock(&g->mu);
    if (done) r.finish = c->out.finish;
    return r;
}

/* The state /status reports once this side is done with the request. */
static void set_final_state(struct srv_conn *c, const char *state)
{
    pthread_mutex_lock(&c->gen->mu);
    c->gen->state = state;
    pthread_mutex_unlock(&c->gen->mu);
}

static const char *state_of(const char *finish)
{
    if (!strcmp(finish, "stop") || !strcmp(finish, "length")) return "finished";
    if (!strcmp(finish, "cancelled")) return "cancelled";
    return "failed";
}

static void error_of(struct srv_conn *c, struct srv_error *e)
{
    srv_err(e, 500, "server_error", NULL, NULL, "generation failed: %s",
            c->out.error ? c->out.error : "unknown error");
}

/* ---- waiting for the whole answer ---- */

static enum MHD_Result answer(struct srv_conn *c)
{
    struct rf_server *s = c->srv;
    while (!c->out.done) {
        if (srv_gen_wait(c->gen, c->fd, WAIT_MS) == SRV_WAIT_GONE) {
            srv_gen_cancel(c->gen, s->sched);
            set_final_state(c, "cancelled");
            pthread_mutex_lock(&s->metrics.mu);
            s->metrics.disconnects++;
            pthread_mutex_unlock(&s->metrics.mu);
            return MHD_NO; /* closes the connection */
        }
        srv_out_pump(&c->out, c->gen, s->sched);
    }
    set_final_state(c, state_of(c->out.finish));
    if (!strcmp(c->out.finish, "error")) {
        struct srv_error e;
        error_of(c, &e);
        return srv_reply_error(c, &e);
    }
    const struct srv_result r = result_of(c);
    char *json = c->api == SRV_API_CHAT         ? srv_chat_json(&r)
                 : c->api == SRV_API_COMPLETION ? srv_completion_json(&r)
                                                : srv_generate_json(&r);
    return srv_reply_json(c, 200, json);
}

/* ---- streaming ---- */

static void sse_event(struct srv_conn *c, char *json)
{
    if (!json) {
        c->sse.oom = true;
        return;
    }
    rf_strbuf_str(&c->sse, "data: ");
    rf_strbuf_str(&c->sse, json);
    rf_strbuf_str(&c->sse, "\n\n");
    free(json);
}

static char *chunk_json(struct srv_conn *c, const struct srv_result *r, bool usage_only)
{
    switch (c->api) {
    case SRV_API_CHAT: return srv_chat_chunk_json(r, false, usage_only);
    case SRV_API_COMPLETION: return srv_completion_chunk_json(r, usage_only);
    case SRV_API_GENERATE: return srv_generate_chunk_json(r);
    }
    return NULL;
}

/* Appends the events for what the last pump produced, and the end of the stream. */
static void sse_progress(struct srv_conn *c)
{
    struct srv_result r = result_of(c);
    const bool have = r.text_len > 0 || (r.lps && r.n_lps > 0);
    if (c->out.done && !strcmp(c->out.finish, "error")) {
        struct srv_error e;
        error_of(c, &e);
        sse_event(c, srv_error_json(&e));
    } else if (c->out.done && c->api != SRV_API_GENERATE && have) {
        r.finish = NULL; /* the text first, then an empty chunk with the reason */
        sse_event(c, chunk_json(c, &r, false));
        r = result_of(c);
        r.text_len = 0;
        r.n_lps = 0;
        sse_event(c, chunk_json(c, &r, false));
    } else if (have || c->out.done) {
        sse_event(c, chunk_json(c, &r, false));
    }
    srv_out_consumed(&c->out);
    if (!c->out.done) return;
    if (c->req.include_usage && c->api != SRV_API_GENERATE && strcmp(c->out.finish, "error"))
        sse_event(c, chunk_json(c, &r, true));
    rf_strbuf_str(&c->sse, "data: [DONE]\n\n");
    c->sse_done = true;
    set_final_state(c, state_of(c->out.finish));
}

static ssize_t sse_copy(struct srv_conn *c, char *buf, size_t max)
{
    size_t n = c->sse.len - c->sse_pos;
    if (n > max) n = max;
    memcpy(buf, c->sse.p + c->sse_pos, n);
    c->sse_pos += n;
    if (c->sse_pos == c->sse.len) c->sse.len = c->sse_pos = 0;
    return (ssize_t)n;
}

static void client_gone(struct srv_conn *c)
{
    struct rf_server *s = c->srv;
    srv_gen_cancel(c->gen, s->sched);
    set_final_state(c, "cancelled");
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.disconnects++;
    pthread_mutex_unlock(&s->metrics.mu);
}

/* MHD's content reader: blocks (this connection's own thread) until there is
 * something to send. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct srv_conn *c = cls;
    for (;;) {
        if (c->sse.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (c->sse_pos < c->sse.len) return sse_copy(c, buf, max);
        if (c->sse_done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!c->sent_role) {
            c->sent_role = true;
            if (c->api == SRV_API_CHAT) {
                struct srv_result r = result_of(c);
                r.text_len = 0;
                r.n_lps = 0;
                sse_event(c, srv_chat_chunk_json(&r, true, false));
            }
            continue;
        }
        const enum srv_wait w = srv_gen_wait(c->gen, c->fd, WAIT_MS);
        if (w == SRV_WAIT_GONE) {
            client_gone(c);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        srv_out_pump(&c->out, c->gen, c->srv->sched);
        const size_t before = c->sse.len;
        sse_progress(c);
        if (w == SRV_WAIT_TIMEOUT && c->sse.len == before) rf_strbuf_str(&c->sse, ": keep-alive\n\n");
    }
}

static void sse_free(void *cls) { srv_conn_unref(cls); }

static enum MHD_Result stream(struct srv_conn *c)
{
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, c, sse_free);
    if (!r) return MHD_NO;
    pthread_mutex_lock(&c->srv->mu);
    c->refs++;
    pthread_mutex_unlock(&c->srv->mu);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    c->status = 200;
    srv_metrics_http(&c->srv->metrics, 200);
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64, c->gen->num_id);
    MHD_add_response_header(r, "X-Request-Id", id);
    const enum MHD_Result ret = MHD_queue_response(c->mhd, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- submission ---- */

static struct rf_sched_request sched_request(struct srv_conn *c, const rf_token *ids, int32_t n)
{
    struct srv_req *q = &c->req;
    if (!q->seed_given) q->sp.seed = random_seed();
    return (struct rf_sched_request){
        .prompt = ids,
        .n_prompt = n,
        .max_tokens = q->max_tokens,
        .sampling = q->sp,
        .top_logprobs = q->top_logprobs,
        .logprobs = q->logprobs,
    };
}

static bool submit_error(struct srv_conn *c, rf_status st, struct srv_error *err)
{
    if (st == RF_STATUS_BUSY) {
        pthread_mutex_lock(&c->srv->metrics.mu);
        c->srv->metrics.rejected++;
        pthread_mutex_unlock(&c->srv->metrics.mu);
        srv_err(err, 503, "server_error", "queue_full", NULL,
                "too many requests are waiting; try again later");
        err->retry_after = 1;
        return false;
    }
    if (st == RF_STATUS_CONTEXT_FULL)
        return srv_err(err, 400, "invalid_request_error", "context_length_exceeded",
                       c->api == SRV_API_CHAT ? "messages" : "prompt", "%s", rf_last_error());
    if (st == RF_STATUS_INVALID_ARG)
        return srv_err(err, 400, "invalid_request_error", NULL, NULL, "%s", rf_last_error());
    return srv_err(err, 500, "server_error", NULL, NULL, "cannot start the request: %s",
                   rf_last_error());
}

/* Tokenizes, checks, creates the request object and submits it. */
static bool start(struct srv_conn *c, struct srv_error *err)
{
    struct rf_server *s = c->srv;
    int32_t n = 0;
    rf_token *ids = prompt_tokens(c, &n, err);
    if (!ids || !check_length(c, n, err)) {
        free(ids);
        return false;
    }
    const uint64_t num = atomic_fetch_add(&s->next_id, 1);
    snprintf(c->id, sizeof c->id, "%s%" PRIu64, id_prefix(c->api), num);
    if (!srv_out_init(&c->out, s->model, &c->req) ||
        !(c->gen = srv_gen_new(&s->metrics, num, c->req.logprobs))) {
        free(ids);
        return srv_err(err, 500, "server_error", NULL, NULL, "out of memory");
    }
    struct rf_sched_request sr = sched_request(c, ids, n);
    const rf_status st = srv_gen_submit(c->gen, s->sched, &sr);
    free(ids);
    if (st != RF_OK) return submit_error(c, st, err);
    srv_registry_put(s, c->gen);
    pthread_mutex_lock(&s->mu);
    s->generating++;
    c->generating = true;
    pthread_mutex_unlock(&s->mu);
    return true;
}

enum MHD_Result srv_handle_generate(struct srv_conn *c, enum srv_api api, bool stream_path)
{
    struct rf_server *s = c->srv;
    struct srv_error err;
    c->api = api;
    if (!srv_req_parse(api, c->body.p ? c->body.p : "", c->body.len, s->n_vocab, &c->req, &err))
        return srv_reply_error(c, &err);
    if (stream_path) c->req.stream = true;
    if (api == SRV_API_CHAT && s->chat_error[0]) {
        srv_err(&err, 500, "server_error", "chat_template_unavailable", NULL,
                "this server has no usable chat template (%s); start it with --chat-template "
                "NAME, or use /v1/completions",
                s->chat_error);
        return srv_reply_error(c, &err);
    }
    if (!start(c, &err)) return srv_reply_error(c, &err);
    return c->req.stream ? stream(c) : answer(c);
}

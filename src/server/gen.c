/* One request between the scheduler thread and the HTTP thread that serves it.
 * The scheduler's callback only copies its event into the request's queue and
 * signals an eventfd; the HTTP thread waits on that eventfd and on its client's
 * socket (so a disconnect is seen at once), then detokenizes, matches stop strings
 * and collects logprobs itself. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/srv_internal.h"

struct srv_gen *srv_gen_new(struct srv_metrics *m, uint64_t num_id, bool keep_logprobs)
{
    struct srv_gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g->efd < 0) {
        free(g);
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    g->refs = 1;
    g->metrics = m;
    g->num_id = num_id;
    g->keep_logprobs = keep_logprobs;
    g->state = "queued";
    return g;
}

void srv_gen_ref(struct srv_gen *g)
{
    pthread_mutex_lock(&g->mu);
    g->refs++;
    pthread_mutex_unlock(&g->mu);
}

void srv_gen_unref(struct srv_gen *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    const int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left > 0) return;
    close(g->efd);
    pthread_mutex_destroy(&g->mu);
    free(g->q);
    free(g->error);
    free(g);
}

static bool queue_push(struct srv_gen *g, const struct rf_sched_event *ev)
{
    if (g->n_q == g->cap_q) {
        const size_t cap = g->cap_q ? 2 * g->cap_q : 16;
        struct srv_tok *q = realloc(g->q, cap * sizeof *q);
        if (!q) return false;
        g->q = q;
        g->cap_q = cap;
    }
    struct srv_tok *t = &g->q[g->n_q++];
    t->token = ev->token;
    t->logprob = ev->logprob;
    t->n_top = 0;
    if (g->keep_logprobs) {
        const int32_t n = ev->n_top < 0                           ? 0
                          : ev->n_top > RF_SCHED_MAX_TOP_LOGPROBS ? RF_SCHED_MAX_TOP_LOGPROBS
                                                                  : ev->n_top;
        t->n_top = n;
        memcpy(t->top_ids, ev->top_ids, (size_t)n * sizeof *t->top_ids);
        memcpy(t->top_logprobs, ev->top_logprobs, (size_t)n * sizeof *t->top_logprobs);
    }
    return true;
}

/* Scheduler thread. Short and non-blocking: a copy, a timestamp, an eventfd write. */
static bool on_event(void *user, const struct rf_sched_event *ev)
{
    struct srv_gen *g = user;
    const double now = srv_now();
    double lat = -1;
    bool first = false;
    const bool last = ev->finish != RF_FINISH_NONE;
    pthread_mutex_lock(&g->mu);
    if (ev->token >= 0) {
        if (!queue_push(g, ev)) g->oom = true;
        first = g->t_first == 0;
        lat = now - (first ? g->t_submit : g->t_last);
        if (first) g->t_first = now;
        g->t_last = now;
        if (!strcmp(g->state, "queued")) g->state = "running";
    }
    g->n_prompt = ev->n_prompt;
    g->n_generated = ev->n_generated;
    g->n_cached = ev->n_cached;
    if (last) {
        g->finished = true;
        g->finish = ev->finish;
        if (ev->finish == RF_FINISH_ERROR && !g->error)
            g->error = strdup(ev->message ? ev->message : "generation failed");
    }
    const bool keep = !g->cancel && !g->oom;
    pthread_mutex_unlock(&g->mu);
    if (lat >= 0 && g->metrics) srv_metrics_observe(g->metrics, first, lat);
    const uint64_t one = 1;
    if (write(g->efd, &one, sizeof one) < 0) { /* only EAGAIN: the counter is already set */
    }
    if (last) srv_gen_unref(g);
    return keep;
}

rf_status srv_gen_submit(struct srv_gen *g, struct rf_sched *s, struct rf_sched_request *r)
{
    r->cb = on_event;
    r->user = g;
    pthread_mutex_lock(&g->mu);
    g->refs++; /* the scheduler's, dropped at its final event */
    g->t_submit = srv_now();
    pthread_mutex_unlock(&g->mu);
    uint64_t id = 0;
    const rf_status st = rf_sched_submit(s, r, &id);
    if (st != RF_OK) {
        srv_gen_unref(g);
        return st;
    }
    pthread_mutex_lock(&g->mu);
    g->submitted = true;
    g->sched_id = id;
    const bool cancel = g->cancel && !g->finished;
    pthread_mutex_unlock(&g->mu);
    if (cancel) rf_sched_cancel(s, id);
    return RF_OK;
}

void srv_gen_cancel(struct srv_gen *g, struct rf_sched *s)
{
    pthread_mutex_lock(&g->mu);
    const bool was = g->cancel;
    g->cancel = true;
    const bool live = g->submitted && !g->finished && !was;
    const uint64_t id = g->sched_id;
    pthread_mutex_unlock(&g->mu);
    if (live) rf_sched_cancel(s, id);
}

enum srv_wait srv_gen_wait(struct srv_gen *g, int client_fd, int timeout_ms)
{
    struct pollfd p[2] = {
        {.fd = g->efd, .events = POLLIN},
        {.fd = client_fd, .events = POLLRDHUP},
    };
    const int n = poll(p, client_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) return SRV_WAIT_GONE;
    if (n > 0 && client_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
        return SRV_WAIT_GONE;
    if (n > 0 && (p[0].revents & POLLIN)) {
        uint64_t v;
        if (read(g->efd, &v, sizeof v) < 0) { /* EAGAIN: already drained */
        }
        return SRV_WAIT_READY;
    }
    return SRV_WAIT_TIMEOUT;
}

/* ---- the HTTP side ---- */

bool srv_out_init(struct srv_out *o, const struct rf_model *m, const struct srv_req *r)
{
    *o = (struct srv_out){.model = m, .want_lps = r->logprobs, .top_n = r->top_logprobs};
    o->stop.stops = (char **)r->stops;
    o->stop.n = r->n_stop;
    o->stop.lens = r->n_stop ? calloc((size_t)r->n_stop, sizeof *o->stop.lens) : NULL;
    for (int32_t i = 0; i < r->n_stop && o->stop.lens; i++) o->stop.lens[i] = strlen(r->stops[i]);
    o->dt = rf_detok_new(m, false);
    return o->dt && (r->n_stop == 0 || o->stop.lens);
}

void srv_lp_clear(struct srv_lp *lp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(lp[i].text);
        for (int32_t k = 0; k < lp[i].n_top; k++) free(lp[i].top[k].text);
        lp[i].n_top = 0;
    }
}

void srv_out_free(struct srv_out *o)
{
    rf_detok_free(o->dt);
    srv_stop_free(&o->stop);
    free(o->stop.lens);
    free(o->taken);
    rf_strbuf_free(&o->text);
    srv_lp_clear(o->lps, o->n_lps);
    free(o->lps);
    free(o->error);
    *o = (struct srv_out){0};
}

void srv_out_consumed(struct srv_out *o)
{
    o->text.len = 0;
    srv_lp_clear(o->lps, o->n_lps);
    o->n_lps = 0;
}

/* The raw bytes of token t (special tokens rendered), malloc'd. */
static char *piece(const struct rf_model *m, rf_token t, size_t *len)
{
    char small[128];
    int32_t n = rf_token_to_piece(m, t, small, (int32_t)sizeof small, true);
    if (n < 0) n = 0;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    if (n <= (int32_t)sizeof small) memcpy(s, small, (size_t)n);
    else if (rf_token_to_piece(m, t, s, n, true) != n) n = 0;
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

static void add_logprob(struct srv_out *o, const struct srv_tok *t)
{
    if (o->n_lps == o->cap_lps) {
        const size_t cap = o->cap_lps ? 2 * o->cap_lps : 16;
        struct srv_lp *p = realloc(o->lps, cap * sizeof *p);
        if (!p) {
            o->oom = true;
            return;
        }
        o->lps = p;
        o->cap_lps = cap;
    }
    struct srv_lp *lp = &o->lps[o->n_lps++];
    *lp = (struct srv_lp){.logprob = t->logprob, .text_offset = o->raw_total};
    lp->text = piece(o->model, t->token, &lp->len);
    const int32_t n = t->n_top < o->top_n ? t->n_top : o->top_n;
    for (int32_t k = 0; k < n; k++) {
        lp->top[k].logprob = t->top_logprobs[k];
        lp->top[k].text = piece(o->model, t->top_ids[k], &lp->top[k].len);
        lp->n_top = k + 1;
        if (!lp->top[k].text) o->oom = true;
    }
    if (!lp->text) o->oom = true;
    else o->raw_total += lp->len;
}

static void emit(struct srv_out *o, struct rf_strbuf *tmp)
{
    rf_strbuf_add(&o->text, tmp->p, tmp->len);
    o->text_total += tmp->len;
    tmp->len = 0;
}

/* One generated token: its text through the stop strings. True when a stop matched. */
static bool take_token(struct srv_out *o, const struct srv_tok *t, struct rf_strbuf *tmp)
{
    o->n_tokens++;
    if (o->want_lps) add_logprob(o, t);
    const char *s;
    const size_t n = rf_detok_push(o->dt, t->token, &s);
    const bool hit = srv_stop_feed(&o->stop, s, n, tmp);
    emit(o, tmp);
    return hit;
}

static const char *finish_name(enum rf_finish f)
{
    switch (f) {
    case RF_FINISH_STOP: return "stop";
    case RF_FINISH_LENGTH: return "length";
    case RF_FINISH_CANCELLED: return "cancelled";
    default: return "error";
    }
}

/* The scheduler finished first: the held-back text goes out. */
static void finish_from(struct srv_out *o, struct srv_gen *g, struct rf_strbuf *tmp)
{
    const char *s;
    const size_t n = rf_detok_flush(o->dt, &s);
    if (!srv_stop_feed(&o->stop, s, n, tmp)) srv_stop_flush(&o->stop, tmp);
    emit(o, tmp);
    pthread_mutex_lock(&g->mu);
    o->finish = o->stop.hit ? "stop" : finish_name(g->finish);
    if (g->error) o->error = strdup(g->error);
    pthread_mutex_unlock(&g->mu);
    o->done = true;
}

void srv_out_pump(struct srv_out *o, struct srv_gen *g, struct rf_sched *s)
{
    if (o->done) return;
    pthread_mutex_lock(&g->mu);
    struct srv_tok *q = g->q;
    const size_t n = g->n_q, cap = g->cap_q;
    g->q = o->taken;
    g->cap_q = o->cap_taken;
    g->n_q = 0;
    const bool finished = g->finished;
    const bool oom = g->oom;
    pthread_mutex_unlock(&g->mu);
    o->taken = q;
    o->cap_taken = cap;
    struct rf_strbuf tmp = {0};
    for (size_t i = 0; i < n && !o->done; i++) {
        if (take_token(o, &q[i], &tmp)) {
            o->finish = "stop";
            o->done = true;
            srv_gen_cancel(g, s);
        }
    }
    if (!o->done && finished) finish_from(o, g, &tmp);
    if (oom || o->oom || o->text.oom || tmp.oom) {
        o->finish = "error";
        if (!o->error) o->error = strdup("out of memory");
        o->done = true;
        srv_gen_cancel(g, s);
    }
    rf_strbuf_free(&tmp);
}

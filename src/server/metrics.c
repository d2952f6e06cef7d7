/* Prometheus text exposition (format 0.0.4): latency histograms kept here, request,
 * token, queue and KV-block figures from the scheduler. */
#include <string.h>

#include "server/srv_internal.h"

/* Upper bounds in seconds, shared by both histograms (a token takes ms on a GPU,
 * tens of ms on a CPU; a first token waits for the queue and the prefill). */
static const double bounds[SRV_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                1,     2.5,  5,     10,   30,  60,   120};

void srv_metrics_init(struct srv_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(struct srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

static void hist_add(struct srv_hist *h, double s)
{
    int b = 0;
    while (b < SRV_HIST_BUCKETS && s > bounds[b]) b++;
    h->counts[b]++;
    h->sum += s;
    h->count++;
}

void srv_metrics_observe(struct srv_metrics *m, bool first, double seconds)
{
    pthread_mutex_lock(&m->mu);
    hist_add(first ? &m->ttft : &m->itl, seconds);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_http(struct srv_metrics *m, int status)
{
    const int cls = status >= 100 && status < 600 ? status / 100 - 1 : 5;
    pthread_mutex_lock(&m->mu);
    m->http[cls]++;
    pthread_mutex_unlock(&m->mu);
}

static void hist_render(const struct srv_hist *h, const char *name, const char *help,
                        struct rf_strbuf *out)
{
    rf_strbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < SRV_HIST_BUCKETS; b++) {
        cum += h->counts[b];
        rf_strbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[b],
                       (unsigned long long)cum);
    }
    cum += h->counts[SRV_HIST_BUCKETS];
    rf_strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    rf_strbuf_printf(out, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                   (unsigned long long)h->count);
}

static void metric(struct rf_strbuf *out, const char *name, const char *type, const char *help,
                   double v)
{
    rf_strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void sched_render(const struct rf_sched_stats *st, struct rf_strbuf *out)
{
    metric(out, "rocmforge_requests_started_total", "counter", "Requests the scheduler started.",
           (double)st->requests_started);
    metric(out, "rocmforge_requests_finished_total", "counter",
           "Requests that ended by end of generation or length.", (double)st->requests_finished);
    metric(out, "rocmforge_requests_failed_total", "counter", "Requests that ended with an error.",
           (double)st->requests_failed);
    metric(out, "rocmforge_requests_cancelled_total", "counter",
           "Requests cancelled (client gone, stop string, /cancel).",
           (double)st->requests_cancelled);
    metric(out, "rocmforge_tokens_generated_total", "counter", "Tokens generated.",
           (double)st->tokens_generated);
    metric(out, "rocmforge_tokens_prompt_total", "counter", "Prompt tokens submitted.",
           (double)st->tokens_prompt);
    metric(out, "rocmforge_tokens_prompt_cached_total", "counter",
           "Prompt tokens whose KV came from the prefix cache.", (double)st->tokens_prompt_cached);
    metric(out, "rocmforge_preemptions_total", "counter",
           "Sequences preempted for lack of KV blocks.", (double)st->preemptions);
    metric(out, "rocmforge_queue_length", "gauge", "Requests waiting to start.", st->waiting);
    metric(out, "rocmforge_active_sequences", "gauge", "Sequences decoding.", st->active);
    metric(out, "rocmforge_kv_blocks_total", "gauge", "KV cache blocks in the pool.",
           st->blocks_total);
    metric(out, "rocmforge_kv_blocks_used", "gauge", "KV cache blocks held by sequences.",
           st->blocks_used);
    metric(out, "rocmforge_kv_blocks_cached", "gauge",
           "KV cache blocks held only by the prefix cache (reusable, evictable).",
           st->blocks_cached);
    metric(out, "rocmforge_kv_blocks_free", "gauge", "KV cache blocks free.",
           st->blocks_total - st->blocks_used - st->blocks_cached);
}

void srv_metrics_render(struct srv_metrics *m, const struct rf_sched_stats *st, struct rf_strbuf *out)
{
    sched_render(st, out);
    struct {
        struct srv_hist ttft, itl;
        uint64_t http[6], disconnects, rejected;
    } c;
    pthread_mutex_lock(&m->mu);
    c.ttft = m->ttft;
    c.itl = m->itl;
    memcpy(c.http, m->http, sizeof c.http);
    c.disconnects = m->disconnects;
    c.rejected = m->rejected;
    pthread_mutex_unlock(&m->mu);
    hist_render(&c.ttft, "rocmforge_time_to_first_token_seconds",
                "From submission to the first generated token.", out);
    hist_render(&c.itl, "rocmforge_time_per_output_token_seconds",
                "Between consecutive tokens of one request.", out);
    rf_strbuf_str(out, "# HELP rocmforge_http_responses_total HTTP responses by status class.\n"
                     "# TYPE rocmforge_http_responses_total counter\n");
    static const char *const cls[6] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
    for (int i = 0; i < 6; i++)
        rf_strbuf_printf(out, "rocmforge_http_responses_total{class=\"%s\"} %llu\n", cls[i],
                       (unsigned long long)c.http[i]);
    metric(out, "rocmforge_client_disconnects_total", "counter",
           "Clients gone before their request finished.", (double)c.disconnects);
    metric(out, "rocmforge_requests_rejected_total", "counter",
           "Requests refused with 503 because the queue was full.", (double)c.rejected);
}

/* The HTTP layer: libmicrohttpd with a thread per connection (a thread may block
 * waiting for its request's tokens), request bodies up to max_body, bearer-key
 * authentication, routing, one log line per request, and the endpoints that do not
 * generate. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"
#include "server/srv_http.h"

struct rf_server_params rf_server_default_params(void)
{
    return (struct rf_server_params){
        .host = "127.0.0.1",
        .port = 8080,
        .model_id = "model",
        .max_body = 1 << 20,
        .max_connections = 512,
        .idle_timeout_s = 600,
        .log_format = RF_SERVER_LOG_TEXT,
    };
}

/* ---- connections ---- */

static struct srv_conn *conn_new(struct rf_server *s, struct MHD_Connection *mc, const char *url,
                                 const char *method)
{
    struct srv_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->refs = 1;
    c->srv = s;
    c->mhd = mc;
    c->t0 = srv_now();
    c->fd = -1;
    snprintf(c->method, sizeof c->method, "%s", method);
    snprintf(c->path, sizeof c->path, "%s", url);
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fd) c->fd = fd->connect_fd;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->remote,
                  sizeof c->remote);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->remote,
                  sizeof c->remote);
    else snprintf(c->remote, sizeof c->remote, "-");
    return c;
}

void srv_conn_unref(struct srv_conn *c)
{
    struct rf_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    const int left = --c->refs;
    if (left == 0 && c->generating) {
        s->generating--;
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->mu);
    if (left > 0) return;
    if (c->gen) {
        srv_gen_cancel(c->gen, s->sched); /* no-op when it finished */
        srv_gen_unref(c->gen);
    }
    srv_out_free(&c->out);
    srv_req_free(&c->req);
    rf_strbuf_free(&c->body);
    rf_strbuf_free(&c->sse);
    free(c);
}

/* ---- responses ---- */

static enum MHD_Result queue(struct srv_conn *c, int status, struct MHD_Response *r)
{
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Server", "rocmforge");
    if (c->gen) {
        char id[32];
        snprintf(id, sizeof id, "%" PRIu64, c->gen->num_id);
        MHD_add_response_header(r, "X-Request-Id", id);
    }
    c->status = status;
    srv_metrics_http(&c->srv->metrics, status);
    const enum MHD_Result ret = MHD_queue_response(c->mhd, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result srv_reply_text(struct srv_conn *c, int status, const char *type, const char *text,
                               size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r) MHD_add_response_header(r, "Content-Type", type);
    return queue(c, status, r);
}

enum MHD_Result srv_reply_json(struct srv_conn *c, int status, char *json)
{
    static const char oom[] =
        "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
        "\"code\":null}}";
    if (!json) return srv_reply_text(c, 500, "application/json", oom, sizeof oom - 1);
    const enum MHD_Result ret = srv_reply_text(c, status, "application/json", json, strlen(json));
    free(json);
    return ret;
}

enum MHD_Result srv_reply_error(struct srv_conn *c, const struct srv_error *e)
{
    char *json = srv_error_json(e);
    struct MHD_Response *r =
        json ? MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(json);
        return srv_reply_json(c, 500, NULL);
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (e->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", e->retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    if (e->status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    return queue(c, e->status, r);
}

static enum MHD_Result reply_err(struct srv_conn *c, int status, const char *type, const char *code,
                                 const char *msg)
{
    struct srv_error e;
    srv_err(&e, status, type, code, NULL, "%s", msg);
    return srv_reply_error(c, &e);
}

/* ---- the registry of recent requests ---- */

void srv_registry_put(struct rf_server *s, struct srv_gen *g)
{
    srv_gen_ref(g);
    pthread_mutex_lock(&s->mu);
    struct srv_gen **slot = &s->registry[g->num_id % SRV_REGISTRY];
    struct srv_gen *old = *slot;
    *slot = g;
    pthread_mutex_unlock(&s->mu);
    srv_gen_unref(old);
}

struct srv_gen *srv_registry_get(struct rf_server *s, uint64_t id)
{
    pthread_mutex_lock(&s->mu);
    struct srv_gen *g = s->registry[id % SRV_REGISTRY];
    if (g && g->num_id == id) srv_gen_ref(g);
    else g = NULL;
    pthread_mutex_unlock(&s->mu);
    return g;
}

/* ---- small endpoints ---- */

static enum MHD_Result get_health(struct srv_conn *c)
{
    if (atomic_load(&c->srv->draining))
        return srv_reply_json(c, 503, strdup("{\"status\":\"draining\"}"));
    return srv_reply_json(c, 200, strdup("{\"status\":\"ok\"}"));
}

static enum MHD_Result get_ready(struct srv_conn *c)
{
    if (atomic_load(&c->srv->draining))
        return srv_reply_json(c, 503, strdup("{\"ready\":false,\"reason\":\"draining\"}"));
    return srv_reply_json(c, 200, strdup("{\"ready\":true}"));
}

static enum MHD_Result get_v1_models(struct srv_conn *c)
{
    const struct rf_server *s = c->srv;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "rocmforge");
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return srv_reply_json(c, 200, json);
}

static enum MHD_Result get_models(struct srv_conn *c)
{
    const struct rf_server *s = c->srv;
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "models");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, m);
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "arch", rf_model_arch(s->model));
    cJSON_AddNumberToObject(m, "n_ctx", s->n_ctx);
    cJSON_AddNumberToObject(m, "n_ctx_train", rf_model_n_ctx_train(s->model));
    cJSON_AddNumberToObject(m, "n_vocab", s->n_vocab);
    cJSON_AddNumberToObject(m, "weight_bytes", (double)rf_model_weight_bytes(s->model));
    cJSON_AddBoolToObject(m, "chat", s->chat_error[0] == '\0');
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return srv_reply_json(c, 200, json);
}

static enum MHD_Result get_metrics(struct srv_conn *c)
{
    struct rf_sched_stats st;
    rf_sched_get_stats(c->srv->sched, &st);
    struct rf_strbuf b = {0};
    srv_metrics_render(&c->srv->metrics, &st, &b);
    if (b.oom) {
        rf_strbuf_free(&b);
        return srv_reply_json(c, 500, NULL);
    }
    const enum MHD_Result r =
        srv_reply_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "", b.len);
    rf_strbuf_free(&b);
    return r;
}

/* The id after a route prefix: decimal digits only. */
static bool path_id(const char *path, const char *prefix, uint64_t *id)
{
    const char *p = path + strlen(prefix);
    if (!*p || strlen(p) > 19) return false;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *id = v;
    return true;
}

static cJSON *status_json(struct srv_gen *g)
{
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&g->mu);
    cJSON_AddNumberToObject(o, "id", (double)g->num_id);
    cJSON_AddStringToObject(o, "state", g->state);
    cJSON_AddNumberToObject(o, "tokens_prompt", g->n_prompt);
    cJSON_AddNumberToObject(o, "tokens_generated", g->n_generated);
    cJSON_AddNumberToObject(o, "tokens_cached", g->n_cached);
    pthread_mutex_unlock(&g->mu);
    return o;
}

static enum MHD_Result id_endpoint(struct srv_conn *c, const char *prefix, bool cancel)
{
    uint64_t id;
    struct srv_gen *g = path_id(c->path, prefix, &id) ? srv_registry_get(c->srv, id) : NULL;
    if (!g)
        return reply_err(c, 404, "not_found_error", "request_not_found", "no request with this id");
    int status = 200;
    if (cancel) {
        pthread_mutex_lock(&g->mu);
        const bool live = !g->finished && !g->cancel;
        pthread_mutex_unlock(&g->mu);
        if (live) srv_gen_cancel(g, c->srv->sched);
        else status = 409;
    }
    cJSON *o = status_json(g);
    if (cancel) cJSON_AddBoolToObject(o, "cancelled", status == 200);
    srv_gen_unref(g);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return srv_reply_json(c, status, json);
}

/* ---- routing ---- */

enum route {
    R_NONE,
    R_CHAT,
    R_COMPLETIONS,
    R_V1_MODELS,
    R_GENERATE,
    R_GENERATE_STREAM,
    R_STATUS,
    R_CANCEL,
    R_MODELS,
    R_HEALTH,
    R_READY,
    R_METRICS,
};

static const struct {
    const char *path;
    bool prefix;
    const char *method;
    enum route r;
} routes[] = {
    {"/v1/chat/completions", false, "POST", R_CHAT},
    {"/v1/completions", false, "POST", R_COMPLETIONS},
    {"/v1/models", false, "GET", R_V1_MODELS},
    {"/generate", false, "POST", R_GENERATE},
    {"/generate/stream", false, "POST", R_GENERATE_STREAM},
    {"/status/", true, "GET", R_STATUS},
    {"/cancel/", true, "POST", R_CANCEL},
    {"/models", false, "GET", R_MODELS},
    {"/health", false, "GET", R_HEALTH},
    {"/ready", false, "GET", R_READY},
    {"/metrics", false, "GET", R_METRICS},
};

static int find_route(const char *path)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const size_t n = strlen(routes[i].path);
        if (routes[i].prefix ? strncmp(path, routes[i].path, n) == 0
                             : strcmp(path, routes[i].path) == 0)
            return (int)i;
    }
    return -1;
}

static bool authorized(struct srv_conn *c)
{
    const char *key = c->srv->api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    return srv_secret_equal(h, strlen(h), key, strlen(key));
}

static enum MHD_Result dispatch(struct srv_conn *c, enum route r)
{
    switch (r) {
    case R_CHAT: return srv_handle_generate(c, SRV_API_CHAT, false);
    case R_COMPLETIONS: return srv_handle_generate(c, SRV_API_COMPLETION, false);
    case R_GENERATE: return srv_handle_generate(c, SRV_API_GENERATE, false);
    case R_GENERATE_STREAM: return srv_handle_generate(c, SRV_API_GENERATE, true);
    case R_V1_MODELS: return get_v1_models(c);
    case R_MODELS: return get_models(c);
    case R_STATUS: return id_endpoint(c, "/status/", false);
    case R_CANCEL: return id_endpoint(c, "/cancel/", true);
    case R_HEALTH: return get_health(c);
    case R_READY: return get_ready(c);
    case R_METRICS: return get_metrics(c);
    case R_NONE: break;
    }
    return reply_err(c, 404, "not_found_error", "not_found", "no such endpoint");
}

static enum MHD_Result route(struct srv_conn *c)
{
    const int i = find_route(c->path);
    if (i < 0) return reply_err(c, 404, "not_found_error", "not_found", "no such endpoint");
    const enum route r = routes[i].r;
    if (r != R_HEALTH && r != R_READY && !authorized(c))
        return reply_err(c, 401, "authentication_error", "invalid_api_key",
                         "a valid API key is required: Authorization: Bearer KEY");
    if (strcmp(c->method, routes[i].method) != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "method %s is not allowed here; use %s", c->method,
                 routes[i].method);
        struct srv_error e;
        srv_err(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "%s", msg);
        return srv_reply_error(c, &e);
    }
    if (c->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", c->srv->p.max_body);
        return reply_err(c, 413, "invalid_request_error", "request_too_large", msg);
    }
    if (atomic_load(&c->srv->draining) && r != R_HEALTH && r != R_READY && r != R_METRICS) {
        struct srv_error e;
        srv_err(&e, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        e.retry_after = 5;
        return srv_reply_error(c, &e);
    }
    return dispatch(c, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct rf_server *s = cls;
    struct srv_conn *c = *con_cls;
    if (!c) {
        if (!(c = conn_new(s, mc, url, method))) return MHD_NO;
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        /* a body over the limit is read and dropped, so that the client gets its 413 */
        if (c->too_large || c->body.len + *upload_size > s->p.max_body) {
            c->too_large = true;
            rf_strbuf_free(&c->body);
        } else {
            rf_strbuf_add(&c->body, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->status) return MHD_YES; /* already answered */
    if (c->body.oom) return reply_err(c, 500, "server_error", NULL, "out of memory");
    return route(c);
}

/* ---- the log line ---- */

static void log_line(struct srv_conn *c, enum MHD_RequestTerminationCode toe)
{
    struct rf_server *s = c->srv;
    if (s->p.log_format == RF_SERVER_LOG_NONE) return;
    char when[48], sec[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof when, "%s.%03dZ", sec, (int)(ts.tv_nsec / 1000000));
    const double ms = (srv_now() - c->t0) * 1e3;
    const bool aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK;
    int32_t n_prompt = 0;
    if (c->gen) {
        pthread_mutex_lock(&c->gen->mu);
        n_prompt = c->gen->n_prompt;
        pthread_mutex_unlock(&c->gen->mu);
    }
    const char *finish = c->out.finish ? c->out.finish : aborted && c->gen ? "disconnected" : "";
    cJSON *path = cJSON_CreateString(c->path); /* escapes whatever the client sent */
    char *qpath = path ? cJSON_PrintUnformatted(path) : NULL;
    cJSON_Delete(path);
    pthread_mutex_lock(&s->log_mu);
    if (s->p.log_format == RF_SERVER_LOG_JSON)
        fprintf(stderr,
                "{\"time\":\"%s\",\"remote\":\"%s\",\"method\":\"%s\",\"path\":%s,\"status\":%d,"
                "\"duration_ms\":%.1f,\"id\":%" PRIu64 ",\"prompt_tokens\":%d,"
                "\"completion_tokens\":%d,\"finish_reason\":\"%s\",\"aborted\":%s}\n",
                when, c->remote, c->method, qpath ? qpath : "\"\"", c->status, ms,
                c->gen ? c->gen->num_id : 0, n_prompt, c->out.n_tokens, finish,
                aborted ? "true" : "false");
    else
        fprintf(stderr, "%s %s %s %s %d %.1fms id=%" PRIu64 " prompt=%d completion=%d%s%s%s\n",
                when, c->remote, c->method, qpath ? qpath : "\"\"", c->status, ms,
                c->gen ? c->gen->num_id : 0, n_prompt, c->out.n_tokens, finish[0] ? " finish=" : "",
                finish, aborted ? " aborted" : "");
    fflush(stderr);
    pthread_mutex_unlock(&s->log_mu);
    free(qpath);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct srv_conn *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    if (c->gen && !c->out.done) {
        srv_gen_cancel(c->gen, c->srv->sched);
        pthread_mutex_lock(&c->gen->mu);
        c->gen->state = "cancelled";
        pthread_mutex_unlock(&c->gen->mu);
    }
    log_line(c, toe);
    srv_conn_unref(c);
}

/* ---- the daemon ---- */

static rf_status resolve(const char *host, int32_t port, struct sockaddr_storage *ss, bool *v6)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res)
        return rf_fail(RF_STATUS_INVALID_ARG, "server: cannot resolve host '%s': %s", host,
                       gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return RF_OK;
}

/* Resolves the chat template once, so that a bad one is reported at start. */
static void check_chat_template(struct rf_server *s)
{
    const struct rf_chat_message msg = {"user", "hi"};
    if (rf_chat_apply(s->model, s->chat_template, &msg, 1, true, NULL, 0) >= 0) return;
    snprintf(s->chat_error, sizeof s->chat_error, "%s", rf_last_error());
    fprintf(stderr, "rocmforge serve: warning: chat endpoints are off: %s\n", s->chat_error);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static rf_status server_init(struct rf_server *s, struct rf_model *m, struct rf_sched *sched,
                             const struct rf_server_params *p)
{
    s->model = m;
    s->sched = sched;
    s->p = *p;
    s->model_id = strdup(p->model_id ? p->model_id : "model");
    s->api_key = dup_or_null(p->api_key && p->api_key[0] ? p->api_key : NULL);
    s->chat_template = dup_or_null(p->chat_template);
    s->host = strdup(p->host ? p->host : "127.0.0.1");
    s->n_ctx = rf_sched_n_ctx(sched);
    s->n_vocab = rf_model_n_vocab(m);
    s->created = (int64_t)time(NULL);
    atomic_init(&s->next_id, 1);
    atomic_init(&s->draining, false);
    srv_metrics_init(&s->metrics);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->log_mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (!s->model_id || !s->host || (p->api_key && p->api_key[0] && !s->api_key) ||
        (p->chat_template && !s->chat_template))
        return rf_fail(RF_STATUS_NOMEM, "server: out of memory");
    check_chat_template(s);
    return RF_OK;
}

rf_status rf_server_start(struct rf_model *m, struct rf_sched *sched,
                          const struct rf_server_params *p, struct rf_server **out)
{
    *out = NULL;
    struct rf_server *s = calloc(1, sizeof *s);
    if (!s) return rf_fail(RF_STATUS_NOMEM, "server: out of memory");
    rf_status st = server_init(s, m, sched, p);
    struct sockaddr_storage ss;
    bool v6 = false;
    if (st == RF_OK) st = resolve(s->host, p->port, &ss, &v6);
    if (st != RF_OK) {
        rf_server_free(s);
        return st;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)p->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(p->max_connections > 0 ? p->max_connections : 512),
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(p->idle_timeout_s > 0 ? p->idle_timeout_s : 0), MHD_OPTION_END);
    if (!s->daemon) {
        const int e = errno;
        rf_server_free(s);
        return rf_fail(RF_STATUS_IO, "server: cannot listen on %s port %d: %s", p->host, p->port,
                       strerror(e));
    }
    *out = s;
    return RF_OK;
}

int32_t rf_server_port(const struct rf_server *srv)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return i ? (int32_t)i->port : -1;
}

void rf_server_quiesce(struct rf_server *srv)
{
    atomic_store(&srv->draining, true);
    const MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void rf_server_wait_idle(struct rf_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    while (srv->generating > 0) pthread_cond_wait(&srv->idle, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
}

void rf_server_free(struct rf_server *srv)
{
    if (!srv) return;
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    for (size_t i = 0; i < SRV_REGISTRY; i++) srv_gen_unref(srv->registry[i]);
    srv_metrics_destroy(&srv->metrics);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->log_mu);
    pthread_cond_destroy(&srv->idle);
    free(srv->model_id);
    free(srv->api_key);
    free(srv->chat_template);
    free(srv->host);
    free(srv);
}

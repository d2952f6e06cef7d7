#ifndef RF_SERVER_SERVER_H
#define RF_SERVER_SERVER_H
/* The HTTP server: OpenAI-compatible endpoints and the engine's own (see
 * docs/server.md) over one continuous-batching scheduler. HTTP threads (one per
 * connection) parse and validate, submit to the scheduler and turn its token events
 * into text; they never run the model. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rocmforge.h"

struct rf_model;
struct rf_sched;
struct rf_server;

enum rf_server_log {
    RF_SERVER_LOG_TEXT,
    RF_SERVER_LOG_JSON, /* one JSON object per line */
    RF_SERVER_LOG_NONE,
};

struct rf_server_params {
    const char *host;          /* numeric IPv4 or IPv6 address, or "localhost" */
    int32_t port;              /* 0: any free port (see rf_server_port) */
    const char *api_key;       /* NULL: no authentication */
    const char *chat_template; /* NULL: detect from the model */
    const char *model_id;      /* the name /v1/models reports */
    size_t max_body;           /* bytes; larger request bodies get 413 */
    int32_t max_connections;
    int32_t idle_timeout_s; /* a connection silent this long is closed; 0: never */
    enum rf_server_log log_format;
};
struct rf_server_params rf_server_default_params(void);

/* Starts listening. The model and the scheduler must outlive the server. A chat
 * template that does not resolve is a warning on stderr here, and a 500 on the chat
 * endpoints. */
rf_status rf_server_start(struct rf_model *m, struct rf_sched *s, const struct rf_server_params *p,
                          struct rf_server **out);
int32_t rf_server_port(const struct rf_server *srv);
/* Stops accepting connections; requests on open connections get 503 from now on. */
void rf_server_quiesce(struct rf_server *srv);
/* Blocks until no request is generating (the drain after quiesce). */
void rf_server_wait_idle(struct rf_server *srv);
/* Closes every connection and frees the server (not the model or scheduler). */
void rf_server_free(struct rf_server *srv);

#endif

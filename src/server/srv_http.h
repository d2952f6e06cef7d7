#ifndef RF_SERVER_SRV_HTTP_H
#define RF_SERVER_SRV_HTTP_H
/* What http.c (daemon, routing, small endpoints) and generate.c (the generation
 * endpoints) share. */
#include <microhttpd.h>
#include <stdatomic.h>

#include "server/server.h"
#include "server/srv_internal.h"

#define SRV_REGISTRY 1024 /* requests /status remembers (the newest ones) */

struct rf_server {
    struct MHD_Daemon *daemon;
    struct rf_model *model;
    struct rf_sched *sched;
    struct rf_server_params p;
    char *model_id, *api_key, *chat_template, *host;
    char chat_error[512]; /* "" when the chat template resolves */
    int32_t n_ctx, n_vocab;
    int64_t created; /* unix seconds at start */
    struct srv_metrics metrics;
    atomic_uint_fast64_t next_id;
    atomic_bool draining;
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t idle;
    int32_t generating; /* requests between submit and the end of their response */
    struct srv_gen *registry[SRV_REGISTRY];
    pthread_mutex_t log_mu;
};

/* One HTTP request (MHD's con_cls); shared with its streaming response. */
struct srv_conn {
    int refs; /* the connection, the streaming response */
    struct rf_server *srv;
    struct MHD_Connection *mhd;
    int fd;
    double t0;
    char method[16];
    char path[256];
    char remote[64];
    struct rf_strbuf body;
    bool too_large;
    int status;
    /* generation */
    enum srv_api api;
    bool generating; /* counted in srv->generating */
    struct srv_req req;
    struct srv_gen *gen;
    struct srv_out out;
    char id[48];
    bool sent_role;
    bool sse_done;
    struct rf_strbuf sse; /* bytes of the stream not yet handed to MHD */
    size_t sse_pos;
};

void srv_conn_unref(struct srv_conn *c);

/* Queues a JSON response (takes json; NULL means out of memory: a 500). */
enum MHD_Result srv_reply_json(struct srv_conn *c, int status, char *json);
enum MHD_Result srv_reply_error(struct srv_conn *c, const struct srv_error *e);
enum MHD_Result srv_reply_text(struct srv_conn *c, int status, const char *type, const char *text,
                               size_t len);

/* generate.c: the body is complete; validates, submits, answers or streams. */
enum MHD_Result srv_handle_generate(struct srv_conn *c, enum srv_api api, bool stream_path);

/* The registry: the newest SRV_REGISTRY requests by id, for /status and /cancel. */
void srv_registry_put(struct rf_server *s, struct srv_gen *g);
struct srv_gen *srv_registry_get(struct rf_server *s, uint64_t id); /* a reference, or NULL */

#endif

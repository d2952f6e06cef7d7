/* rocmforge serve: the HTTP server (src/server/) over one continuous-batching
 * scheduler. SIGTERM or SIGINT stops accepting connections, lets the requests in
 * flight finish, and exits 0. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "runtime/scheduler.h"
#include "server/server.h"

static const char serve_usage[] =
    "usage: rocmforge serve [options]\n"
    "\n"
    "Serves the model over HTTP: OpenAI's /v1/chat/completions, /v1/completions and\n"
    "/v1/models, and /generate, /generate/stream, /status/ID, /cancel/ID, /models,\n"
    "/health, /ready, /metrics (see docs/server.md).\n"
    "\n"
    "  -m, --model FILE         GGUF model (default: as for `rocmforge run`)\n"
    "      --host ADDR          address to listen on (default 127.0.0.1)\n"
    "      --port N             TCP port (default 8080; 0: any free port)\n"
    "  -np, --parallel N        sequences decoding at once (default 8)\n"
    "  -c, --ctx-size N         context of each sequence in tokens (default: the model's,\n"
    "                           at most 4096)\n"
    "  -b, --batch-size N       most tokens in one forward step (default 512)\n"
    "      --kv-blocks N        KV cache blocks (default: enough for every sequence's\n"
    "                           full context)\n"
    "      --no-prefix-cache    do not share the KV of equal prompt prefixes\n"
    "      --queue-size N       requests that may wait; more get 503 (default 64)\n"
    "  -t, --threads N          CPU threads (default: all online CPUs)\n"
    "  -ngl, --n-gpu-layers N   layers on the GPU (default -1: all when a GPU is usable;\n"
    "                           0: CPU only)\n"
    "      --api-key KEY        require `Authorization: Bearer KEY` (also $ROCMFORGE_API_KEY)\n"
    "      --chat-template NAME force a chat template: chatml, llama2, llama3, mistral,\n"
    "                           gemma, phi3, zephyr, qwen2, qwen2.5 (default: detect)\n"
    "      --alias NAME         the model name the API reports (default: the file name)\n"
    "      --max-body BYTES     largest request body; larger ones get 413 (default 1048576)\n"
    "      --log-format FMT     text, json (one JSON object per line) or none (default text)\n"
    "      --timeout S          close connections idle for S seconds (default 600; 0: never)\n"
    "  -h, --help               show this help\n";

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_KV_BLOCKS,
    OPT_NO_PREFIX,
    OPT_QUEUE,
    OPT_API_KEY,
    OPT_TEMPLATE,
    OPT_ALIAS,
    OPT_MAX_BODY,
    OPT_LOG_FORMAT,
    OPT_PARALLEL,
    OPT_TIMEOUT,
    OPT_NGL,
};

static const struct option serve_longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"parallel", required_argument, NULL, OPT_PARALLEL},
    {"np", required_argument, NULL, OPT_PARALLEL},
    {"ctx-size", required_argument, NULL, 'c'},
    {"batch-size", required_argument, NULL, 'b'},
    {"kv-blocks", required_argument, NULL, OPT_KV_BLOCKS},
    {"no-prefix-cache", no_argument, NULL, OPT_NO_PREFIX},
    {"queue-size", required_argument, NULL, OPT_QUEUE},
    {"threads", required_argument, NULL, 't'},
    {"api-key", required_argument, NULL, OPT_API_KEY},
    {"chat-template", required_argument, NULL, OPT_TEMPLATE},
    {"alias", required_argument, NULL, OPT_ALIAS},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"n-gpu-layers", required_argument, NULL, OPT_NGL},
    {"ngl", required_argument, NULL, OPT_NGL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct serve_opts {
    const char *model;
    int32_t n_threads;
    struct rf_sched_params sp;
    struct rf_server_params hp;
};

static int bad_value(const char *opt, const char *v)
{
    return cli_usage_error("serve", "bad value '%s' for %s", v, opt);
}

static bool parse_log_format(const char *v, enum rf_server_log *out)
{
    if (!strcmp(v, "text")) *out = RF_SERVER_LOG_TEXT;
    else if (!strcmp(v, "json")) *out = RF_SERVER_LOG_JSON;
    else if (!strcmp(v, "none")) *out = RF_SERVER_LOG_NONE;
    else return false;
    return true;
}

/* Options with a number; -1 when parsing goes on, else the exit code. */
static int number_option(int c, const char *v, const char *opt, struct serve_opts *o)
{
    uint64_t body = 0;
    bool ok = false;
    switch (c) {
    case 't': ok = cli_parse_i32(v, 1, 4096, &o->n_threads); break;
    case 'c': ok = cli_parse_i32(v, 1, INT32_MAX, &o->sp.n_ctx); break;
    case 'b': ok = cli_parse_i32(v, 1, INT32_MAX, &o->sp.n_batch); break;
    case OPT_PORT: ok = cli_parse_i32(v, 0, 65535, &o->hp.port); break;
    case OPT_PARALLEL: ok = cli_parse_i32(v, 1, 4096, &o->sp.n_parallel); break;
    case OPT_KV_BLOCKS: ok = cli_parse_i32(v, 1, INT32_MAX, &o->sp.n_blocks); break;
    case OPT_QUEUE: ok = cli_parse_i32(v, 0, 1 << 20, &o->sp.queue_size); break;
    case OPT_TIMEOUT: ok = cli_parse_i32(v, 0, 1 << 20, &o->hp.idle_timeout_s); break;
    case OPT_NGL: ok = cli_parse_i32(v, -1, 1 << 20, &cli_n_gpu_layers); break;
    case OPT_MAX_BODY:
        ok = cli_parse_u64(v, &body) && body >= 64 && body <= (1ull << 32);
        o->hp.max_body = (size_t)body;
        break;
    default: break;
    }
    return ok ? -1 : bad_value(opt, v);
}

static int serve_option(int c, char **argv, struct serve_opts *o)
{
    const char *v = optarg;
    switch (c) {
    case 'h': fputs(serve_usage, stdout); return 0;
    case 'm': o->model = v; return -1;
    case OPT_HOST: o->hp.host = v; return -1;
    case OPT_NO_PREFIX: o->sp.prefix_cache = false; return -1;
    case OPT_API_KEY: o->hp.api_key = v; return -1;
    case OPT_TEMPLATE: o->hp.chat_template = v; return -1;
    case OPT_ALIAS: o->hp.model_id = v; return -1;
    case OPT_LOG_FORMAT:
        return parse_log_format(v, &o->hp.log_format) ? -1 : bad_value("--log-format", v);
    case '?':
    case ':': return cli_bad_option("serve", c, argv);
    default: return number_option(c, v, cli_opt_name(c, serve_longopts), o);
    }
}

static int parse_serve(int argc, char **argv, struct serve_opts *o)
{
    *o = (struct serve_opts){.sp = rf_sched_default_params(), .hp = rf_server_default_params()};
    o->hp.model_id = NULL;
    o->hp.api_key = getenv("ROCMFORGE_API_KEY");
    opterr = 0;
    optind = 1;
    int c;
    /* "-np N" is spelled as llama.cpp's servers spell it: a long option with one dash */
    while ((c = getopt_long_only(argc, argv, ":m:c:b:t:h", serve_longopts, NULL)) != -1) {
        const int rc = serve_option(c, argv, o);
        if (rc >= 0) return rc;
    }
    if (optind < argc) return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* The model id the API reports: the file name without ".gguf". */
static void default_alias(const char *path, char *buf, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, cap, "%s", base);
    const size_t n = strlen(buf);
    if (n > 5 && !strcmp(buf + n - 5, ".gguf")) buf[n - 5] = '\0';
}

/* SIGINT/SIGTERM end up here whichever thread they hit (a driver's thread may not
 * block them); the handler only writes the signal number to a pipe. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    const unsigned char b = (unsigned char)sig;
    if (write(sig_pipe[1], &b, 1) < 0) { /* the pipe is full: a signal is already there */
    }
}

static bool install_handlers(void)
{
    if (pipe(sig_pipe) != 0) return false;
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0;
}

/* Unblocks the signals on this thread (the others keep them blocked) and waits. */
static int wait_for_signal(const sigset_t *set)
{
    pthread_sigmask(SIG_UNBLOCK, set, NULL);
    unsigned char b = 0;
    while (read(sig_pipe[0], &b, 1) != 1) {
    }
    return b;
}

/* Model loaded, scheduler running: serves until a signal, then drains. */
static int serve_loaded(struct serve_opts *o, struct rf_model *m, struct rf_sched *s,
                        const sigset_t *set)
{
    struct rf_server *srv = NULL;
    if (rf_server_start(m, s, &o->hp, &srv) != RF_OK)
        return cli_fail("serve", "%s", rf_last_error());
    fprintf(stderr, "rocmforge serve: %s on http://%s%s%s:%d (context %d, %d parallel)\n",
            o->hp.model_id, strchr(o->hp.host, ':') ? "[" : "", o->hp.host,
            strchr(o->hp.host, ':') ? "]" : "", rf_server_port(srv), rf_sched_n_ctx(s),
            o->sp.n_parallel);
    fflush(stderr);
    const int sig = wait_for_signal(set);
    fprintf(stderr, "rocmforge serve: %s: draining the requests in flight\n", strsignal(sig));
    rf_server_quiesce(srv);
    rf_server_wait_idle(srv);
    rf_server_free(srv);
    fprintf(stderr, "rocmforge serve: stopped\n");
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    int rc = parse_serve(argc, argv, &o);
    if (rc >= 0) return rc;
    char path[4096], alias[4096];
    if (!cli_model_path("serve", o.model, path, sizeof path)) return CLI_EXIT_FAIL;
    default_alias(path, alias, sizeof alias);
    if (!o.hp.model_id) o.hp.model_id = alias;
    /* Threads started from here on inherit the mask: the signals come to this one. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (!install_handlers()) return cli_fail("serve", "cannot install the signal handlers");
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rf_model *m = cli_load_model("serve", path, o.n_threads);
    if (!m) return CLI_EXIT_FAIL;
    struct rf_sched *s = NULL;
    if (o.sp.n_ctx <= 0) {
        const int32_t train = rf_model_n_ctx_train(m);
        o.sp.n_ctx = train > 0 && train < 4096 ? train : 4096;
    }
    if (rf_sched_new(m, &o.sp, &s) != RF_OK) {
        rc = cli_fail("serve", "cannot start the scheduler: %s", rf_last_error());
    } else {
        rc = serve_loaded(&o, m, s, &set);
        rf_sched_free(s, true);
    }
    rf_model_free(m);
    return rc;
}

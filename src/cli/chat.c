/* rocmforge chat: an interactive conversation in the terminal.
 *
 * The KV cache carries the conversation from turn to turn. Each turn renders the whole
 * conversation with the chat template and decodes only the text past what the cache
 * already holds (cached_text). When that text is not a prefix of the rendering (the
 * template renders earlier turns differently than before, as those that drop the
 * reasoning of earlier answers do) or is not known (Ctrl-C cut a prompt short), the
 * rendering is tokenized whole and compared token by token with the cache, which is
 * truncated at the first difference and continued from there.
 *
 * Ctrl-C stops an answer (or a long prompt) and returns to the prompt; at the prompt it
 * quits, as EOF and /exit do. The answer goes to stdout, everything else to stderr. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define FEED_CHUNK 64 /* prompt tokens per rf_decode call: how soon Ctrl-C is seen */

static const char chat_usage[] =
    "usage: rocmforge chat [options]\n"
    "\n"
    "Talks with the model in the terminal, in the model's chat template. The\n"
    "conversation stays in the KV cache, so each turn only processes its new text.\n"
    "Commands: /reset starts a new conversation, /exit quits (so do EOF and Ctrl-C at\n"
    "the prompt); Ctrl-C during an answer stops it. A line ending in '\\' continues\n"
    "on the next line.\n"
    "\n"
    "  -m, --model FILE         GGUF model, or a name from `rocmforge models` (default:\n"
    "                           " CLI_DEFAULT_MODEL " in the models cache)\n"
    "  -n, --n-predict N        most tokens per answer (default -1: until the model ends\n"
    "                           its turn or the context is full)\n"
    "  -t, --threads N          CPU threads (default: all online CPUs)\n"
    "  -c, --ctx-size N         context size in tokens (default: the model's, at most 4096)\n"
    CLI_SAMPLING_USAGE
    "      --chat-template NAME force a template: chatml, llama2, llama3, mistral, gemma,\n"
    "                           phi3, zephyr (default: detected from the model)\n"
    "      --system TEXT        system message, kept across /reset\n"
    "  -v, --verbose            on stderr: the seed, the new tokens of each prompt, and\n"
    "                           after each answer \"[kv USED/SIZE: reused R, prompt +P,\n"
    "                           answer +A]\": the KV cache's length and its parts\n"
    "  -h, --help               show this help\n";

struct chat_opts {
    const char *model;
    int32_t n_predict;
    int32_t n_threads;
    int32_t n_ctx;
    struct cli_sampling smp;
    bool verbose;
    const char *chat_template;
    const char *system;
};

enum {
    OPT_TEMPLATE = 256,
    OPT_SYSTEM,
};

static const struct option chat_longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"n-predict", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"ctx-size", required_argument, NULL, 'c'},
    CLI_SAMPLING_LONGOPTS,
    {"chat-template", required_argument, NULL, OPT_TEMPLATE},
    {"system", required_argument, NULL, OPT_SYSTEM},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int bad_value(const char *opt, const char *v)
{
    return cli_usage_error("chat", "bad value '%s' for %s", v, opt);
}

/* One option; returns -1 when parsing goes on, else the exit code. */
static int chat_option(int c, char **argv, struct chat_opts *o)
{
    const char *v = optarg;
    const char *opt = cli_opt_name(c, chat_longopts);
    switch (c) {
    case 'h': fputs(chat_usage, stdout); return 0;
    case 'm': o->model = v; return -1;
    case 'v': o->verbose = true; return -1;
    case 'n': return cli_parse_i32(v, -1, INT32_MAX, &o->n_predict) ? -1 : bad_value(opt, v);
    case 't': return cli_parse_i32(v, 1, 4096, &o->n_threads) ? -1 : bad_value(opt, v);
    case 'c': return cli_parse_i32(v, 1, INT32_MAX, &o->n_ctx) ? -1 : bad_value(opt, v);
    case OPT_TEMPLATE: o->chat_template = v; return -1;
    case OPT_SYSTEM: o->system = v; return -1;
    case '?':
    case ':': return cli_bad_option("chat", c, argv);
    default: return cli_sampling_option(c, v, &o->smp) > 0 ? -1 : bad_value(opt, v);
    }
}

static int parse_chat(int argc, char **argv, struct chat_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = -1;
    cli_sampling_init(&o->smp);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":m:n:t:c:vh", chat_longopts, NULL)) != -1) {
        const int rc = chat_option(c, argv, o);
        if (rc >= 0) return rc;
    }
    if (optind < argc) return cli_usage_error("chat", "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* ---- growable text ---- */

struct sbuf {
    char *p; /* NUL-terminated when n > 0 */
    size_t n, cap;
};

static bool sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

/* ---- the conversation ---- */

struct chat {
    const struct chat_opts *o;
    struct rf_model *m;
    struct rf_context *ctx;
    struct rf_sampler *smp;
    struct rf_chat_message *msgs; /* roles are literals; contents are owned */
    size_t n_msgs, cap_msgs;
    size_t n_fixed;    /* leading messages /reset keeps (the system message) */
    char *cached_text; /* text the cache holds; NULL: not known, compare tokens */
    rf_token *hist;    /* (n_hist) the tokens in the cache: n_hist == n_past */
    int32_t n_hist, cap_hist;
};

/* How a turn (or a part of it) ended; TURN_MORE: it goes on. */
enum turn_end {
    TURN_MORE,
    TURN_EOG,
    TURN_LIMIT,
    TURN_FULL,
    TURN_INTERRUPTED,
    TURN_FAILED
};

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static bool push_msg(struct chat *c, const char *role, const char *text, size_t len)
{
    if (c->n_msgs == c->cap_msgs) {
        const size_t cap = c->cap_msgs ? 2 * c->cap_msgs : 8;
        struct rf_chat_message *p = realloc(c->msgs, cap * sizeof *p);
        if (!p) return false;
        c->msgs = p;
        c->cap_msgs = cap;
    }
    char *s = malloc(len + 1);
    if (!s) return false;
    if (len) memcpy(s, text, len);
    s[len] = '\0';
    c->msgs[c->n_msgs++] = (struct rf_chat_message){role, s};
    return true;
}

static void pop_msg(struct chat *c) { free((char *)c->msgs[--c->n_msgs].content); }

static bool set_cached_text(struct chat *c, const char *s, size_t n, const char *tail, size_t k)
{
    free(c->cached_text);
    c->cached_text = malloc(n + k + 1);
    if (!c->cached_text) return false;
    memcpy(c->cached_text, s, n);
    if (k) memcpy(c->cached_text + n, tail, k);
    c->cached_text[n + k] = '\0';
    return true;
}

/* Empties the cache and the history, keeping the system message. */
static void chat_reset(struct chat *c)
{
    while (c->n_msgs > c->n_fixed) pop_msg(c);
    rf_context_reset(c->ctx);
    rf_sampler_reset(c->smp);
    c->n_hist = 0;
    set_cached_text(c, "", 0, NULL, 0); /* on failure NULL: the next turn compares tokens */
}

/* The conversation in the template, with the assistant's header at the end (malloc'd);
 * NULL with the error printed. */
static char *render(const struct chat *c)
{
    const char *name = c->o->chat_template;
    const int32_t len = rf_chat_apply(c->m, name, c->msgs, c->n_msgs, true, NULL, 0);
    if (len < 0) {
        cli_fail("chat", "%s", rf_last_error());
        return NULL;
    }
    char *out = malloc((size_t)len + 1);
    if (out && rf_chat_apply(c->m, name, c->msgs, c->n_msgs, true, out, len + 1) != len) {
        free(out);
        out = NULL;
    }
    if (!out) cli_fail("chat", "cannot apply the chat template: %s", rf_last_error());
    return out;
}

/* Drops the cache past keep tokens, and the sampler's history with it; returns how
 * many tokens the cache still holds. */
static int32_t kv_keep(struct chat *c, int32_t keep)
{
    if (keep >= c->n_hist) return c->n_hist;
    rf_context_truncate(c->ctx, keep);
    rf_sampler_reset(c->smp);
    for (int32_t i = 0; i < keep; i++) rf_sampler_accept(c->smp, c->hist[i]);
    c->n_hist = keep;
    return keep;
}

/* A turn's tokens: toks[i] belongs at cache position base + i; the first match
 * positions (match >= base) equal what the cache holds there. */
struct plan {
    rf_token *toks; /* malloc'd */
    int32_t n, base, match;
};

/* Plans a turn without changing anything: the rendering past the cached text when
 * that is a prefix of it, else the whole rendering and its agreement with the cache.
 * Returns false with the error printed. */
static bool plan_turn(const struct chat *c, const char *full, struct plan *p)
{
    const size_t n_cached = c->cached_text ? strlen(c->cached_text) : 0;
    const bool prefix = c->cached_text && !strncmp(full, c->cached_text, n_cached);
    const char *text = prefix ? full + n_cached : full;
    p->toks = NULL;
    p->n =
        cli_tokenize("chat", c->m, text, strlen(text), !prefix || c->n_hist == 0, true, &p->toks);
    if (p->n < 0) return false;
    p->base = prefix ? c->n_hist : 0;
    p->match = p->base;
    while (p->match < c->n_hist && p->match - p->base < p->n &&
           p->toks[p->match - p->base] == c->hist[p->match])
        p->match++;
    return true;
}

static bool hist_add(struct chat *c, const rf_token *t, int32_t n)
{
    if (c->n_hist + n > c->cap_hist) {
        int32_t cap = c->cap_hist ? c->cap_hist : 1024;
        while (cap < c->n_hist + n) cap *= 2;
        rf_token *p = realloc(c->hist, (size_t)cap * sizeof *p);
        if (!p) return false;
        c->hist = p;
        c->cap_hist = cap;
    }
    memcpy(c->hist + c->n_hist, t, (size_t)n * sizeof *t);
    c->n_hist += n;
    for (int32_t i = 0; i < n; i++) rf_sampler_accept(c->smp, t[i]);
    return true;
}

/* Decodes tokens into the cache in chunks, watching for Ctrl-C after each (so a cut
 * prompt has at least one chunk in the cache); *done counts the tokens decoded. */
static enum turn_end feed(struct chat *c, const rf_token *t, int32_t n, int32_t *done)
{
    for (int32_t i = 0; i < n; i += FEED_CHUNK) {
        const int32_t k = n - i < FEED_CHUNK ? n - i : FEED_CHUNK;
        if (rf_decode(c->ctx, t + i, k, false) != RF_OK) {
            cli_fail("chat", "decoding the prompt failed: %s", rf_last_error());
            return TURN_FAILED;
        }
        if (!hist_add(c, t + i, k)) {
            cli_fail("chat", "out of memory");
            return TURN_FAILED;
        }
        *done += k;
        if (g_interrupted && i + k < n) return TURN_INTERRUPTED;
    }
    return TURN_MORE;
}

static bool emit(const char *s, size_t n)
{
    if (n && fwrite(s, 1, n, stdout) != n) return false;
    return fflush(stdout) == 0;
}

/* Prints text and keeps it as the answer. */
static bool say(struct sbuf *ans, const char *s, size_t n)
{
    return emit(s, n) && sbuf_add(ans, s, n);
}

/* One sampled token: printed and decoded, or the reason to stop. Printing only what
 * is decoded keeps the cache and the answer text the same. */
static enum turn_end step(struct chat *c, struct rf_detok *dt, struct sbuf *ans)
{
    const float *logits = rf_get_logits(c->ctx, -1);
    const rf_token t = logits ? rf_sampler_sample(c->smp, logits) : -1;
    if (t < 0) {
        cli_fail("chat", "sampling failed: %s", rf_last_error());
        return TURN_FAILED;
    }
    if (rf_model_is_eog(c->m, t)) return TURN_EOG;
    if (rf_context_n_past(c->ctx) >= rf_context_n_ctx(c->ctx)) return TURN_FULL;
    const char *piece;
    const size_t k = rf_detok_push(dt, t, &piece);
    if (!say(ans, piece, k)) {
        cli_fail("chat", "cannot write the answer");
        return TURN_FAILED;
    }
    if (rf_decode(c->ctx, &t, 1, false) != RF_OK) {
        cli_fail("chat", "decoding failed: %s", rf_last_error());
        return TURN_FAILED;
    }
    if (!hist_add(c, &t, 1)) {
        cli_fail("chat", "out of memory");
        return TURN_FAILED;
    }
    return g_interrupted ? TURN_INTERRUPTED : TURN_MORE;
}

/* Streams the answer to stdout (and into ans) until the model ends its turn. */
static enum turn_end answer(struct chat *c, struct sbuf *ans, int32_t *n_gen)
{
    struct rf_detok *dt = rf_detok_new(c->m, false);
    if (!dt) {
        cli_fail("chat", "cannot start detokenizing: %s", rf_last_error());
        return TURN_FAILED;
    }
    enum turn_end end = TURN_MORE;
    while (end == TURN_MORE) {
        if (c->o->n_predict >= 0 && *n_gen >= c->o->n_predict) {
            end = TURN_LIMIT;
            break;
        }
        end = step(c, dt, ans);
        if (end == TURN_MORE || end == TURN_INTERRUPTED) (*n_gen)++;
    }
    const char *piece;
    const size_t k = rf_detok_flush(dt, &piece);
    if (end != TURN_FAILED && !say(ans, piece, k)) end = TURN_FAILED;
    rf_detok_free(dt);
    return end;
}

static void say_end(const struct chat *c, enum turn_end end)
{
    const int32_t n_ctx = rf_context_n_ctx(c->ctx);
    if (end == TURN_INTERRUPTED) fprintf(stderr, "[interrupted]\n");
    else if (end == TURN_FULL)
        fprintf(stderr,
                "[the context is full (%d tokens): the answer was cut; /reset starts a new "
                "conversation]\n",
                n_ctx);
    else if (end == TURN_LIMIT)
        fprintf(stderr, "[stopped after %d tokens (-n)]\n", c->o->n_predict);
}

/* A user message too long for what is left of the context: nothing changes. */
static void say_overflow(const struct chat *c, int32_t n_total)
{
    fprintf(stderr,
            "[the conversation does not fit the context: it would take %d tokens and the "
            "context holds %d, leaving no room for an answer. /reset starts a new conversation "
            "(or restart with a larger -c)]\n",
            n_total, rf_context_n_ctx(c->ctx));
}

/* The prompt part of a turn: decodes the rendering's new tokens. *reused: cached
 * tokens kept; *n_prompt: tokens decoded. */
static enum turn_end prompt_part(struct chat *c, const char *full, int32_t *reused,
                                 int32_t *n_prompt)
{
    struct plan p;
    if (!plan_turn(c, full, &p)) return TURN_FAILED;
    enum turn_end end = TURN_FAILED;
    if ((int64_t)p.base + p.n >= rf_context_n_ctx(c->ctx)) {
        say_overflow(c, p.base + p.n);
        end = TURN_FULL;
    } else if (p.n == 0) {
        cli_fail("chat", "the template added no tokens for this turn");
    } else {
        if (p.match == p.base + p.n) p.match--; /* the last token is decoded for its logits */
        if (c->o->verbose && p.match < c->n_hist)
            fprintf(stderr, "[the cache differs from the conversation from token %d on]\n",
                    p.match);
        *reused = kv_keep(c, p.match);
        const int32_t skip = *reused - p.base, n_new = p.n - skip;
        if (c->o->verbose) fprintf(stderr, "[prompt: %d new tokens]\n", n_new);
        end = feed(c, p.toks + skip, n_new, n_prompt);
    }
    free(p.toks);
    return end;
}

/* One exchange. Returns false only on a failure that ends the chat. */
static bool turn(struct chat *c, const char *line, size_t len)
{
    if (!push_msg(c, "user", line, len)) {
        cli_fail("chat", "out of memory");
        return false;
    }
    char *full = render(c);
    if (!full) {
        pop_msg(c);
        return true; /* a template that cannot render this is reported, not fatal */
    }
    int32_t reused = 0, n_prompt = 0, n_gen = 0;
    struct sbuf ans = {0};
    enum turn_end end = prompt_part(c, full, &reused, &n_prompt);
    if (end == TURN_MORE) {
        end = answer(c, &ans, &n_gen);
        if (emit("\n", 1)) say_end(c, end);
    } else if (end != TURN_FAILED) {
        /* the user message is not in the cache (overflow), or only partly (Ctrl-C) */
        pop_msg(c);
        if (end == TURN_INTERRUPTED) {
            free(c->cached_text);
            c->cached_text = NULL;
            say_end(c, end);
        }
        goto done;
    }
    if (end == TURN_FAILED) goto done;
    if (!push_msg(c, "assistant", ans.p ? ans.p : "", ans.n) ||
        !set_cached_text(c, full, strlen(full), ans.p, ans.n)) {
        cli_fail("chat", "out of memory");
        end = TURN_FAILED;
    }
done:
    if (c->o->verbose && end != TURN_FAILED)
        fprintf(stderr, "[kv %d/%d: reused %d, prompt +%d, answer +%d]\n",
                rf_context_n_past(c->ctx), rf_context_n_ctx(c->ctx), reused, n_prompt, n_gen);
    free(ans.p);
    free(full);
    return end != TURN_FAILED;
}

/* ---- the loop ---- */

/* stdin, read with read(2) rather than stdio so that what is buffered is known: a
 * Ctrl-C at the prompt must end the wait even when it comes just before it starts. */
struct line_in {
    char buf[4096];
    size_t pos, len;
};

/* Waits until stdin is readable. SIGINT is blocked from the flag check until ppoll
 * unblocks it atomically, so none is lost in between. False on Ctrl-C. */
static bool wait_input(void)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    int r = 0;
    while (!g_interrupted) {
        r = ppoll(&pfd, 1, NULL, &old);
        if (r >= 0 || errno != EINTR) break;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return !g_interrupted && r >= 0;
}

/* Appends one line without its '\n' to line. 1: a line, 0: EOF, -1: Ctrl-C or error. */
static int read_line(struct line_in *in, struct sbuf *line)
{
    for (;;) {
        const char *p = in->buf + in->pos;
        const char *nl = memchr(p, '\n', in->len - in->pos);
        const size_t k = nl ? (size_t)(nl - p) : in->len - in->pos;
        if (!sbuf_add(line, p, k)) return -1;
        in->pos += k + (nl != NULL);
        if (nl) return 1;
        if (!wait_input()) return -1;
        const ssize_t n = read(STDIN_FILENO, in->buf, sizeof in->buf);
        in->pos = 0;
        in->len = n > 0 ? (size_t)n : 0;
        if (n == 0) return line->n > 0; /* a last line without '\n' still counts */
        if (n < 0 && (errno != EINTR || g_interrupted)) return -1;
    }
}

/* Reads one message: lines ending in '\' continue. False on EOF or Ctrl-C. */
static bool read_message(struct line_in *in, struct sbuf *msg, bool tty)
{
    msg->n = 0;
    if (!sbuf_add(msg, "", 0)) return false;
    for (const char *prompt = "> ";; prompt = ". ") {
        if (tty && !emit(prompt, strlen(prompt))) return false;
        const size_t start = msg->n;
        if (read_line(in, msg) <= 0) return false;
        if (msg->n == start || msg->p[msg->n - 1] != '\\') return true;
        msg->p[msg->n - 1] = '\n';
    }
}

enum command {
    CMD_NONE,
    CMD_EXIT,
    CMD_DONE
};

static enum command command(struct chat *c, const char *s)
{
    if (s[0] != '/') return CMD_NONE;
    if (!strcmp(s, "/exit") || !strcmp(s, "/quit")) return CMD_EXIT;
    if (!strcmp(s, "/reset")) {
        chat_reset(c);
        fprintf(stderr, "[new conversation]\n");
        if (c->o->verbose)
            fprintf(stderr, "[kv %d/%d]\n", rf_context_n_past(c->ctx), rf_context_n_ctx(c->ctx));
    } else if (!strcmp(s, "/help")) {
        fprintf(stderr, "/reset  start a new conversation\n/exit   quit\n"
                        "Ctrl-C stops an answer; at the prompt it quits.\n");
    } else {
        fprintf(stderr, "[unknown command %s: /help lists them]\n", s);
    }
    return CMD_DONE;
}

static int chat_loop(struct chat *c)
{
    const bool tty = isatty(STDIN_FILENO);
    struct sbuf msg = {0};
    struct line_in *in = calloc(1, sizeof *in);
    int rc = 0;
    if (!in) return cli_fail("chat", "out of memory");
    if (tty)
        fprintf(stderr,
                "[chat with %s, context %d tokens. /reset starts over, /exit quits, "
                "Ctrl-C stops an answer]\n",
                rf_model_arch(c->m), rf_context_n_ctx(c->ctx));
    for (;;) {
        g_interrupted = 0;
        if (!read_message(in, &msg, tty)) {
            if (tty) fputc('\n', stdout);
            break;
        }
        if (msg.n == 0) continue;
        const enum command cmd = command(c, msg.p);
        if (cmd == CMD_EXIT) break;
        if (cmd == CMD_NONE && !turn(c, msg.p, msg.n)) {
            rc = CLI_EXIT_FAIL;
            break;
        }
    }
    free(msg.p);
    free(in);
    return rc;
}

static uint64_t random_seed(void)
{
    uint64_t s;
    if (getrandom(&s, sizeof s, 0) == (ssize_t)sizeof s) return s;
    return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

/* Context, sampler, system message, SIGINT handler; then the loop. */
static int chat_run(struct chat *c, struct chat_opts *o)
{
    if (o->system && !push_msg(c, "system", o->system, strlen(o->system)))
        return cli_fail("chat", "out of memory");
    c->n_fixed = c->n_msgs;
    if (!push_msg(c, "user", "", 0)) return cli_fail("chat", "out of memory");
    char *probe = render(c); /* a model without a usable template fails here, once */
    pop_msg(c);
    if (!probe) return CLI_EXIT_FAIL;
    free(probe);
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = o->n_ctx;
    if (rf_context_init(c->m, &cp, &c->ctx) != RF_OK)
        return cli_fail("chat", "cannot create a context: %s", rf_last_error());
    const int32_t last_n = o->smp.repeat_last_n;
    o->smp.sp.penalty_last_n = last_n < 0 ? rf_context_n_ctx(c->ctx) : last_n;
    if (!o->smp.seed_given) o->smp.sp.seed = random_seed();
    c->smp = rf_sampler_new(&o->smp.sp, rf_model_n_vocab(c->m));
    if (!c->smp) return cli_fail("chat", "bad sampling options: %s", rf_last_error());
    if (o->verbose) fprintf(stderr, "[seed %llu]\n", (unsigned long long)o->smp.sp.seed);
    chat_reset(c);
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask); /* no SA_RESTART: Ctrl-C must end a blocking read */
    sigaction(SIGINT, &sa, &old);
    const int rc = chat_loop(c);
    sigaction(SIGINT, &old, NULL);
    return rc;
}

int cmd_chat(int argc, char **argv)
{
    struct chat_opts o;
    int rc = parse_chat(argc, argv, &o);
    if (rc >= 0) return rc;
    char path[4096];
    if (!cli_model_path("chat", o.model, path, sizeof path)) return CLI_EXIT_FAIL;
    struct chat c = {.o = &o};
    c.m = cli_load_model("chat", path, o.n_threads);
    rc = c.m ? chat_run(&c, &o) : CLI_EXIT_FAIL;
    while (c.n_msgs) pop_msg(&c);
    free(c.msgs);
    free(c.cached_text);
    free(c.hist);
    rf_sampler_free(c.smp);
    rf_context_free(c.ctx);
    rf_model_free(c.m);
    return rc;
}

/* rocmforge run: prompt in, generated text streamed to stdout, statistics to stderr. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static const char run_usage[] =
    "usage: rocmforge run [options] -p TEXT\n"
    "\n"
    "Generates text from a prompt. Only the generated text goes to stdout; timings,\n"
    "the seed and a hash of the last logits go to stderr.\n"
    "\n"
    "  -m, --model FILE         GGUF model (default: $ROCMFORGE_MODELS or\n"
    "                           ~/.cache/rocmforge/models, file " CLI_DEFAULT_MODEL ")\n"
    "  -p, --prompt TEXT        prompt; special-token text in it becomes special tokens\n"
    "  -f, --file FILE          read the prompt from FILE instead\n"
    "  -n, --n-predict N        tokens to generate (default 128; -1: until the context is full)\n"
    "  -t, --threads N          CPU threads (default: all online CPUs)\n"
    "  -c, --ctx-size N         context size in tokens (default: the model's, at most 4096)\n"
    CLI_SAMPLING_USAGE
    "      --ignore-eos         keep generating past end-of-generation tokens\n"
    "      --echo               print the prompt before the generated text\n"
    "      --chat               wrap the prompt as a user message in the model's chat template\n"
    "      --chat-template NAME force a template: chatml, llama2, llama3, mistral, gemma,\n"
    "                           phi3, zephyr (implies --chat)\n"
    "      --system TEXT        system message (implies --chat)\n"
    "  -h, --help               show this help\n";

struct run_opts {
    const char *model;
    const char *prompt;
    const char *prompt_file;
    int32_t n_predict;
    int32_t n_threads;
    int32_t n_ctx;
    struct cli_sampling smp;
    bool ignore_eos;
    bool echo;
    bool chat;
    const char *chat_template;
    const char *system;
};

enum {
    OPT_IGNORE_EOS = 256,
    OPT_ECHO,
    OPT_CHAT,
    OPT_TEMPLATE,
    OPT_SYSTEM,
};

static const struct option run_longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"prompt", required_argument, NULL, 'p'},
    {"file", required_argument, NULL, 'f'},
    {"n-predict", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"ctx-size", required_argument, NULL, 'c'},
    CLI_SAMPLING_LONGOPTS,
    {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
    {"echo", no_argument, NULL, OPT_ECHO},
    {"chat", no_argument, NULL, OPT_CHAT},
    {"chat-template", required_argument, NULL, OPT_TEMPLATE},
    {"system", required_argument, NULL, OPT_SYSTEM},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int bad_value(const char *opt, const char *v)
{
    return cli_usage_error("run", "bad value '%s' for %s", v, opt);
}

/* One option; returns -1 when parsing goes on, else the exit code. */
static int run_option(int c, char **argv, struct run_opts *o)
{
    const char *v = optarg;
    const char *opt = cli_opt_name(c, run_longopts);
    switch (c) {
    case 'h': fputs(run_usage, stdout); return 0;
    case 'm': o->model = v; return -1;
    case 'p': o->prompt = v; return -1;
    case 'f': o->prompt_file = v; return -1;
    case 'n': return cli_parse_i32(v, -1, INT32_MAX, &o->n_predict) ? -1 : bad_value(opt, v);
    case 't': return cli_parse_i32(v, 1, 4096, &o->n_threads) ? -1 : bad_value(opt, v);
    case 'c': return cli_parse_i32(v, 1, INT32_MAX, &o->n_ctx) ? -1 : bad_value(opt, v);
    case OPT_IGNORE_EOS: o->ignore_eos = true; return -1;
    case OPT_ECHO: o->echo = true; return -1;
    case OPT_CHAT: o->chat = true; return -1;
    case OPT_TEMPLATE:
        o->chat_template = v;
        o->chat = true;
        return -1;
    case OPT_SYSTEM:
        o->system = v;
        o->chat = true;
        return -1;
    case '?':
    case ':': return cli_bad_option("run", c, argv);
    default: return cli_sampling_option(c, v, &o->smp) > 0 ? -1 : bad_value(opt, v);
    }
}

static int parse_run(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    cli_sampling_init(&o->smp);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":m:p:f:n:t:c:h", run_longopts, NULL)) != -1) {
        const int rc = run_option(c, argv, o);
        if (rc >= 0) return rc;
    }
    if (optind < argc) return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
    if (!o->prompt && !o->prompt_file)
        return cli_usage_error("run", "no prompt: give -p TEXT or -f FILE");
    if (o->prompt && o->prompt_file) return cli_usage_error("run", "give -p or -f, not both");
    return -1;
}

static uint64_t random_seed(void)
{
    uint64_t s;
    if (getrandom(&s, sizeof s, 0) == (ssize_t)sizeof s) return s;
    return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

/* The text to tokenize: the prompt itself, or the chat template around it. */
static char *build_prompt(const struct run_opts *o, const struct rf_model *m, const char *text)
{
    if (!o->chat) return strdup(text);
    struct rf_chat_message msgs[2];
    size_t n = 0;
    if (o->system) msgs[n++] = (struct rf_chat_message){"system", o->system};
    msgs[n++] = (struct rf_chat_message){"user", text};
    const int32_t len = rf_chat_apply(m, o->chat_template, msgs, n, true, NULL, 0);
    if (len < 0) {
        cli_fail("run", "%s", rf_last_error());
        return NULL;
    }
    char *out = malloc((size_t)len + 1);
    if (out && rf_chat_apply(m, o->chat_template, msgs, n, true, out, len + 1) != len) {
        free(out);
        out = NULL;
    }
    if (!out) cli_fail("run", "cannot apply the chat template: %s", rf_last_error());
    return out;
}

struct gen_stats {
    int32_t n_prompt;
    int32_t n_gen;
    double t_prompt; /* seconds */
    double t_gen;
    uint64_t logits_hash;
    bool has_hash;
    bool ctx_full;
};

static bool emit(const char *s, size_t n)
{
    if (n && fwrite(s, 1, n, stdout) != n) return false;
    return fflush(stdout) == 0;
}

/* Decodes the prompt, then samples, prints and decodes one token at a time. */
static int generate(const struct run_opts *o, struct rf_model *m, struct rf_context *ctx,
                    struct rf_sampler *smp, const rf_token *toks, struct gen_stats *st)
{
    struct rf_detok *dt = rf_detok_new(m, false);
    if (!dt) return cli_fail("run", "cannot start detokenizing: %s", rf_last_error());
    int rc = CLI_EXIT_FAIL;
    const char *piece = NULL;
    double t0 = cli_now();
    rf_token t = -1;
    if (rf_decode_sample(ctx, toks, st->n_prompt, smp, &t) != RF_OK) {
        cli_fail("run", "decoding the prompt failed: %s", rf_last_error());
        goto done;
    }
    st->t_prompt = cli_now() - t0;
    t0 = cli_now();
    while (o->n_predict < 0 || st->n_gen < o->n_predict) {
        if (!o->ignore_eos && rf_model_is_eog(m, t)) break;
        rf_sampler_accept(smp, t);
        st->n_gen++;
        const size_t k = rf_detok_push(dt, t, &piece);
        if (!emit(piece, k)) goto write_fail;
        if (st->n_gen == o->n_predict) break;
        if (rf_context_n_past(ctx) >= rf_context_n_ctx(ctx)) {
            st->ctx_full = true;
            break;
        }
        if (rf_decode_sample(ctx, &t, 1, smp, &t) != RF_OK) {
            cli_fail("run", "decoding failed after %d tokens: %s", st->n_gen, rf_last_error());
            goto done;
        }
    }
    const size_t k = rf_detok_flush(dt, &piece);
    if (!emit(piece, k)) goto write_fail;
    st->t_gen = cli_now() - t0;
    /* No logits reach the host when the GPU samples. */
    const float *logits = rf_get_logits(ctx, -1);
    st->has_hash = logits != NULL;
    if (logits) st->logits_hash = cli_fnv1a64(logits, (size_t)rf_model_n_vocab(m) * sizeof(float));
    rc = 0;
    goto done;
write_fail:
    cli_fail("run", "cannot write to stdout");
done:
    rf_detok_free(dt);
    return rc;
}

static void print_stats(const struct run_opts *o, const struct gen_stats *st)
{
    const double pp = st->t_prompt > 0 ? st->n_prompt / st->t_prompt : 0;
    const double tg = st->t_gen > 0 ? st->n_gen / st->t_gen : 0;
    fprintf(stderr, "\n");
    if (st->ctx_full) fprintf(stderr, "stopped: the context is full\n");
    fprintf(stderr, "prompt: %d tokens, %.3f s, %.2f t/s\n", st->n_prompt, st->t_prompt, pp);
    fprintf(stderr, "generated: %d tokens, %.3f s, %.2f t/s\n", st->n_gen, st->t_gen, tg);
    if (st->has_hash)
        fprintf(stderr, "logits hash: %016llx\n", (unsigned long long)st->logits_hash);
    else
        fprintf(stderr, "logits hash: n/a (sampled on the device)\n");
    if (o->smp.sp.temperature <= 0) fprintf(stderr, "sampling: greedy\n");
    else fprintf(stderr, "seed: %llu\n", (unsigned long long)o->smp.sp.seed);
}

/* Model and context are loaded; tokenizes, checks the length, generates. */
static int run_loaded(struct run_opts *o, struct rf_model *m, struct rf_context *ctx,
                      const char *text)
{
    rf_token *toks = NULL;
    struct rf_sampler *smp = NULL;
    int rc = CLI_EXIT_FAIL;
    char *prompt = build_prompt(o, m, text);
    if (!prompt) return CLI_EXIT_FAIL;
    struct gen_stats st = {0};
    st.n_prompt = cli_tokenize("run", m, prompt, strlen(prompt), true, true, &toks);
    const int32_t n_ctx = rf_context_n_ctx(ctx);
    if (st.n_prompt < 0) goto done;
    if (st.n_prompt == 0) {
        cli_fail("run", "the prompt is empty (no tokens)");
        goto done;
    }
    if (st.n_prompt > n_ctx) {
        cli_fail("run",
                 "the prompt is %d tokens, longer than the context of %d tokens (raise it "
                 "with -c)",
                 st.n_prompt, n_ctx);
        goto done;
    }
    o->smp.sp.penalty_last_n = o->smp.repeat_last_n < 0 ? n_ctx : o->smp.repeat_last_n;
    if (!o->smp.seed_given) o->smp.sp.seed = random_seed();
    smp = rf_sampler_new(&o->smp.sp, rf_model_n_vocab(m));
    if (!smp) {
        cli_fail("run", "bad sampling options: %s", rf_last_error());
        goto done;
    }
    for (int32_t i = 0; i < st.n_prompt; i++) rf_sampler_accept(smp, toks[i]);
    if (o->echo && !emit(prompt, strlen(prompt))) {
        cli_fail("run", "cannot write to stdout");
        goto done;
    }
    rc = generate(o, m, ctx, smp, toks, &st);
    if (rc == 0) print_stats(o, &st);
done:
    rf_sampler_free(smp);
    free(toks);
    free(prompt);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o;
    int rc = parse_run(argc, argv, &o);
    if (rc >= 0) return rc;
    char path[4096];
    if (!cli_model_path("run", o.model, path, sizeof path)) return CLI_EXIT_FAIL;
    size_t len = 0;
    char *text = o.prompt ? strdup(o.prompt) : cli_read_file(o.prompt_file, &len);
    if (!text) return cli_fail("run", "cannot read the prompt file %s", o.prompt_file);
    struct rf_model *m = cli_load_model("run", path, o.n_threads);
    struct rf_context *ctx = NULL;
    rc = CLI_EXIT_FAIL;
    if (m) {
        struct rf_context_params cp = rf_context_default_params();
        cp.n_ctx = o.n_ctx;
        if (rf_context_init(m, &cp, &ctx) != RF_OK)
            cli_fail("run", "cannot create a context: %s", rf_last_error());
        else rc = run_loaded(&o, m, ctx, text);
    }
    rf_context_free(ctx);
    rf_model_free(m);
    free(text);
    return rc;
}

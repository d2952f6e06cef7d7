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
    "      --temp T             temperature (default 0.8; 0: greedy)\n"
    "      --top-k K            keep the K most likely tokens (default 40; 0: off)\n"
    "      --top-p P            nucleus sampling (default 0.95; 1: off)\n"
    "      --min-p P            drop tokens below P times the top probability (default 0.05)\n"
    "      --repeat-penalty X   penalize repeated tokens (default 1.0: off)\n"
    "      --repeat-last-n N    window of the penalties (default 64; 0: off; -1: context)\n"
    "      --frequency-penalty X  (default 0)\n"
    "      --presence-penalty X   (default 0)\n"
    "      --seed N             sampling seed (default: random, printed at the end)\n"
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
    int32_t repeat_last_n;
    struct rf_sampler_params sp;
    bool seed_given;
    bool ignore_eos;
    bool echo;
    bool chat;
    const char *chat_template;
    const char *system;
};

enum {
    OPT_TEMP = 256,
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_MIN_P,
    OPT_REPEAT_PENALTY,
    OPT_REPEAT_LAST_N,
    OPT_FREQ,
    OPT_PRESENCE,
    OPT_SEED,
    OPT_IGNORE_EOS,
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
    {"temp", required_argument, NULL, OPT_TEMP},
    {"top-k", required_argument, NULL, OPT_TOP_K},
    {"top-p", required_argument, NULL, OPT_TOP_P},
    {"min-p", required_argument, NULL, OPT_MIN_P},
    {"repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY},
    {"repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N},
    {"frequency-penalty", required_argument, NULL, OPT_FREQ},
    {"presence-penalty", required_argument, NULL, OPT_PRESENCE},
    {"seed", required_argument, NULL, OPT_SEED},
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

/* Float options: returns 0, or the usage error's exit code. */
static int float_opt(int c, const char *v, struct run_opts *o)
{
    float x;
    if (!cli_parse_float(v, &x)) return -1;
    switch (c) {
    case OPT_TEMP: o->sp.temperature = x; break;
    case OPT_TOP_P: o->sp.top_p = x; break;
    case OPT_MIN_P: o->sp.min_p = x; break;
    case OPT_REPEAT_PENALTY:
        if (x <= 0) return -1;
        o->sp.repeat_penalty = x;
        break;
    case OPT_FREQ: o->sp.frequency_penalty = x; break;
    case OPT_PRESENCE: o->sp.presence_penalty = x; break;
    default: return -1;
    }
    return 0;
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
    case OPT_TOP_K: return cli_parse_i32(v, 0, INT32_MAX, &o->sp.top_k) ? -1 : bad_value(opt, v);
    case OPT_REPEAT_LAST_N:
        return cli_parse_i32(v, -1, INT32_MAX, &o->repeat_last_n) ? -1 : bad_value(opt, v);
    case OPT_SEED:
        o->seed_given = true;
        return cli_parse_u64(v, &o->sp.seed) ? -1 : bad_value(opt, v);
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
    default: return float_opt(c, v, o) == 0 ? -1 : bad_value(opt, v);
    }
}

static int parse_run(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    o->repeat_last_n = 64;
    o->sp = rf_sampler_default_params();
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
    if (o->sp.temperature <= 0) fprintf(stderr, "sampling: greedy\n");
    else fprintf(stderr, "seed: %llu\n", (unsigned long long)o->sp.seed);
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
    o->sp.penalty_last_n = o->repeat_last_n < 0 ? n_ctx : o->repeat_last_n;
    if (!o->seed_given) o->sp.seed = random_seed();
    smp = rf_sampler_new(&o->sp, rf_model_n_vocab(m));
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

/* rocmforge perplexity: perplexity of a model over a text, and KL divergence of its
 * next-token distributions against another model's saved ones.
 *
 * Windows: the text is tokenized once (BOS/EOS as the model asks, special-token text
 * left as text) and cut into floor(n_tokens / ctx) non-overlapping windows of ctx
 * tokens (the first --chunks of them when given); the partial window at the end is
 * dropped. When the model adds BOS, the first
 * token of every window is replaced by BOS. In each window the first half is context
 * only: the logits at positions first = ctx/2 .. ctx-2 are scored against the tokens at
 * first+1 .. ctx-1, so ctx - 1 - ctx/2 tokens per window (llama.cpp's perplexity tool
 * scores the same positions).
 *
 * PPL = exp(mean NLL) over all scored tokens; its standard error comes from the sample
 * standard deviation s of the per-token NLL by the delta method: se = PPL * s / sqrt(N).
 *
 * Log-prob file (--kl-out writes it, --kl-base reads it), little-endian:
 *   offset 0   char[8]  magic "RFKLLOGP"
 *          8   u32      version (1)
 *         12   u32      n_vocab
 *         16   u32      ctx (window length in tokens)
 *         20   u32      n_windows
 *         24   u32      first (first scored position of a window, ctx/2)
 *         28   u32      n_scored per window (ctx - 1 - first)
 *         32   u64      n_positions (n_windows * n_scored)
 *         40   i32      tokens[n_windows][ctx], as decoded (BOS substitution applied)
 *          .   f32      logp[n_positions][n_vocab]: row w*n_scored + j is the log-softmax
 *                       of the logits at position first + j of window w
 * The rows are full f32 log-probabilities, so a model against its own file gives a KL of
 * exactly 0. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define CMD "perplexity"
#define KL_MAGIC "RFKLLOGP"
#define KL_VERSION 1u
#define KL_HEADER_BYTES 40

static const char ppl_usage[] =
    "usage: rocmforge perplexity [options] -f TEXT\n"
    "\n"
    "Perplexity of a model over a text file. The tokens are cut into non-overlapping\n"
    "windows of --ctx tokens (a partial last window is dropped; BOS starts every window\n"
    "when the model uses one); in each window the first half is context and the tokens\n"
    "of the second half are scored. Prints a running estimate per window, then\n"
    "`PPL = x +/- se` (se: standard error, from the spread of the per-token NLL).\n"
    "\n"
    "  -m, --model FILE     GGUF model (default: as for `rocmforge run`)\n"
    "  -f, --file FILE      the text (UTF-8); at least 2 windows of tokens\n"
    "  -c, --ctx N          window length in tokens (default 512; with --kl-base: the\n"
    "                       base file's)\n"
    "  -b, --batch N        tokens per forward call (default 512)\n"
    "      --chunks N       score at most the first N windows (default: all)\n"
    "      --kl-out FILE    save this model's log-probabilities at the scored positions\n"
    "                       (f32, every vocab entry; ctx x vocab x 2 bytes per window)\n"
    "      --kl-base FILE   compare with a file saved by --kl-out from another model over\n"
    "                       the same text: KL divergence (base || this), top-1 agreement\n"
    "                       and the perplexity of both\n"
    "  -t, --threads N      CPU threads (default: all online CPUs)\n"
    "  -h, --help           show this help\n";

enum {
    OPT_KL_OUT = 256,
    OPT_KL_BASE,
    OPT_CHUNKS,
};

static const struct option ppl_longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"file", required_argument, NULL, 'f'},
    {"ctx", required_argument, NULL, 'c'},
    {"ctx-size", required_argument, NULL, 'c'},
    {"batch", required_argument, NULL, 'b'},
    {"threads", required_argument, NULL, 't'},
    {"kl-out", required_argument, NULL, OPT_KL_OUT},
    {"kl-base", required_argument, NULL, OPT_KL_BASE},
    {"chunks", required_argument, NULL, OPT_CHUNKS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct ppl_opts {
    const char *model, *text_file, *kl_out, *kl_base;
    int32_t n_ctx; /* 0: not given */
    int32_t n_batch;
    int32_t n_threads;
    int32_t max_windows; /* 0: all */
};

/* The windows and where they are scored. */
struct ppl_plan {
    int32_t n_ctx, n_windows, first, n_scored, n_vocab;
    int32_t n_text_tokens;
    rf_token bos;     /* put at the start of every window; -1: none */
    rf_token *tokens; /* (n_windows, n_ctx), BOS substituted */
};

/* Running mean and variance (Welford). */
struct moments {
    int64_t n;
    double mean, m2;
};

struct kl_header {
    uint32_t version, n_vocab, n_ctx, n_windows, first, n_scored;
    uint64_t n_positions;
};

/* What the comparison with a base file accumulates. */
struct kl_stats {
    FILE *base;
    const char *path;
    float *row; /* (n_vocab) base log-probs of the current position */
    double *kl; /* (n_positions) KL per scored position */
    int64_t n, n_agree;
    struct moments base_nll;
};

static void moments_add(struct moments *m, double x)
{
    m->n++;
    const double d = x - m->mean;
    m->mean += d / (double)m->n;
    m->m2 += d * (x - m->mean);
}

/* Standard error of the mean. */
static double moments_se(const struct moments *m)
{
    if (m->n < 2) return 0.0;
    return sqrt(m->m2 / (double)(m->n - 1) / (double)m->n);
}

static void print_ppl(const char *label, const struct moments *m)
{
    const double ppl = exp(m->mean);
    printf("%s = %.4f +/- %.4f\n", label, ppl, ppl * moments_se(m));
}

/* ---------------------------------------------------------------- options */

static int bad_value(const char *opt, const char *v)
{
    return cli_usage_error(CMD, "bad value '%s' for %s", v, opt);
}

static int ppl_option(int c, char **argv, struct ppl_opts *o)
{
    const char *v = optarg;
    const char *opt = cli_opt_name(c, ppl_longopts);
    switch (c) {
    case 'h': fputs(ppl_usage, stdout); return 0;
    case 'm': o->model = v; return -1;
    case 'f': o->text_file = v; return -1;
    case 'c': return cli_parse_i32(v, 4, 1 << 20, &o->n_ctx) ? -1 : bad_value(opt, v);
    case 'b': return cli_parse_i32(v, 1, 1 << 20, &o->n_batch) ? -1 : bad_value(opt, v);
    case 't': return cli_parse_i32(v, 1, 4096, &o->n_threads) ? -1 : bad_value(opt, v);
    case OPT_CHUNKS:
        return cli_parse_i32(v, 1, INT32_MAX, &o->max_windows) ? -1 : bad_value(opt, v);
    case OPT_KL_OUT: o->kl_out = v; return -1;
    case OPT_KL_BASE: o->kl_base = v; return -1;
    default: return cli_bad_option(CMD, c, argv);
    }
}

static int parse_ppl(int argc, char **argv, struct ppl_opts *o)
{
    *o = (struct ppl_opts){.n_batch = 512};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":m:f:c:b:t:h", ppl_longopts, NULL)) != -1) {
        const int rc = ppl_option(c, argv, o);
        if (rc >= 0) return rc;
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->text_file) return cli_usage_error(CMD, "no text: give -f FILE");
    if (o->kl_out && o->kl_base && !strcmp(o->kl_out, o->kl_base))
        return cli_usage_error(CMD, "--kl-out and --kl-base name the same file");
    return -1;
}

/* ---------------------------------------------------------------- log-prob files */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool kl_write_header(FILE *f, const struct ppl_plan *pl)
{
    unsigned char h[KL_HEADER_BYTES];
    const uint64_t n_pos = (uint64_t)pl->n_windows * (uint64_t)pl->n_scored;
    memcpy(h, KL_MAGIC, 8);
    put_u32(h + 8, KL_VERSION);
    put_u32(h + 12, (uint32_t)pl->n_vocab);
    put_u32(h + 16, (uint32_t)pl->n_ctx);
    put_u32(h + 20, (uint32_t)pl->n_windows);
    put_u32(h + 24, (uint32_t)pl->first);
    put_u32(h + 28, (uint32_t)pl->n_scored);
    put_u32(h + 32, (uint32_t)n_pos);
    put_u32(h + 36, (uint32_t)(n_pos >> 32));
    const size_t n_tok = (size_t)pl->n_windows * (size_t)pl->n_ctx;
    return fwrite(h, 1, sizeof h, f) == sizeof h &&
           fwrite(pl->tokens, sizeof(rf_token), n_tok, f) == n_tok;
}

/* Reads and checks the header against the file's size; the plan's checks come later. */
static bool kl_read_header(FILE *f, const char *path, struct kl_header *kh)
{
    unsigned char h[KL_HEADER_BYTES];
    struct stat st;
    if (fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, KL_MAGIC, 8) != 0) {
        cli_fail(CMD, "--kl-base %s: not a log-prob file written by --kl-out (bad magic)", path);
        return false;
    }
    *kh = (struct kl_header){.version = get_u32(h + 8),
                             .n_vocab = get_u32(h + 12),
                             .n_ctx = get_u32(h + 16),
                             .n_windows = get_u32(h + 20),
                             .first = get_u32(h + 24),
                             .n_scored = get_u32(h + 28),
                             .n_positions = get_u32(h + 32) | (uint64_t)get_u32(h + 36) << 32};
    if (kh->version != KL_VERSION) {
        cli_fail(CMD, "--kl-base %s: version %u, this build reads version %u", path, kh->version,
                 KL_VERSION);
        return false;
    }
    const bool shape_ok = kh->n_ctx >= 4 && kh->n_ctx <= (1u << 20) && kh->n_windows >= 1 &&
                          kh->n_windows <= (1u << 24) && kh->n_vocab >= 1 &&
                          kh->n_vocab <= (1u << 24) && kh->first == kh->n_ctx / 2 &&
                          kh->n_scored == kh->n_ctx - 1 - kh->first &&
                          kh->n_positions == (uint64_t)kh->n_windows * kh->n_scored;
    /* all factors are below 2^24, so the size cannot overflow 64 bits */
    const uint64_t want =
        KL_HEADER_BYTES + 4ull * kh->n_windows * kh->n_ctx + 4ull * kh->n_positions * kh->n_vocab;
    if (!shape_ok || fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size != want) {
        cli_fail(CMD, "--kl-base %s: inconsistent header or truncated file", path);
        return false;
    }
    return true;
}

/* The base must describe exactly these windows. */
static bool kl_check_base(FILE *f, const char *path, const struct kl_header *kh,
                          const struct ppl_plan *pl)
{
    if ((int32_t)kh->n_vocab != pl->n_vocab)
        return cli_fail(CMD, "--kl-base %s: vocabulary of %u tokens, this model has %d", path,
                        kh->n_vocab, pl->n_vocab),
               false;
    if ((int32_t)kh->n_windows != pl->n_windows)
        return cli_fail(CMD,
                        "--kl-base %s: %u windows, this text gives %d: the texts or the "
                        "tokenizers differ",
                        path, kh->n_windows, pl->n_windows),
               false;
    const size_t n = (size_t)pl->n_windows * (size_t)pl->n_ctx;
    rf_token *base = malloc(n * sizeof *base);
    if (!base) return cli_fail(CMD, "out of memory reading %s", path), false;
    bool ok = fread(base, sizeof *base, n, f) == n;
    size_t i = 0;
    while (ok && i < n && base[i] == pl->tokens[i]) i++;
    if (!ok) cli_fail(CMD, "--kl-base %s: cannot read the tokens", path);
    else if (i < n)
        cli_fail(CMD,
                 "--kl-base %s: token %zu of window %zu is %d there and %d here: the texts or "
                 "the tokenizers differ",
                 path, i % (size_t)pl->n_ctx, i / (size_t)pl->n_ctx + 1, base[i], pl->tokens[i]);
    free(base);
    return ok && i == n;
}

/* Opens the base file and checks it against the plan; n_ctx == 0 takes the file's. */
static FILE *kl_open_base(const char *path, int32_t *n_ctx, struct kl_header *kh)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_fail(CMD, "cannot open --kl-base %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!kl_read_header(f, path, kh)) {
        fclose(f);
        return NULL;
    }
    if (*n_ctx == 0) *n_ctx = (int32_t)kh->n_ctx;
    if ((uint32_t)*n_ctx != kh->n_ctx) {
        cli_fail(CMD, "--kl-base %s was made with --ctx %u, not %d", path, kh->n_ctx, *n_ctx);
        fclose(f);
        return NULL;
    }
    return f;
}

/* Refuses to write over the base file under another name. */
static FILE *kl_open_out(const char *path, const char *base_path)
{
    struct stat a, b;
    if (base_path && stat(path, &a) == 0 && stat(base_path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        cli_fail(CMD, "--kl-out %s is the --kl-base file", path);
        return NULL;
    }
    FILE *f = fopen(path, "wb");
    if (!f) cli_fail(CMD, "cannot write --kl-out %s: %s", path, strerror(errno));
    return f;
}

/* ---------------------------------------------------------------- scoring */

/* lp = log_softmax(logits) in f32 (computed in double); returns -lp[target] in double. */
static double log_softmax(const float *logits, int32_t n, rf_token target, float *lp)
{
    float mx = logits[0];
    for (int32_t i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    const double lse = (double)mx + log(sum);
    for (int32_t i = 0; i < n; i++) lp[i] = (float)((double)logits[i] - lse);
    return lse - (double)logits[target];
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Compares this model's log-probs at one position with the next row of the base. */
static bool kl_position(struct kl_stats *k, const float *lp, int32_t n_vocab, rf_token target)
{
    if (fread(k->row, sizeof(float), (size_t)n_vocab, k->base) != (size_t)n_vocab) {
        cli_fail(CMD, "--kl-base %s: read failed", k->path);
        return false;
    }
    double kl = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) {
        const double p = exp((double)k->row[i]);
        kl += p * ((double)k->row[i] - (double)lp[i]);
    }
    k->kl[k->n++] = kl;
    k->n_agree += argmax(k->row, n_vocab) == argmax(lp, n_vocab);
    moments_add(&k->base_nll, -(double)k->row[target]);
    return true;
}

struct scorer {
    struct rf_context *ctx;
    const struct ppl_plan *pl;
    int32_t n_batch;
    float *lp;           /* (n_vocab) */
    FILE *out;           /* --kl-out, or NULL */
    struct kl_stats *kl; /* --kl-base, or NULL */
    struct moments nll;
};

/* Scores the logits of one decoded chunk: positions pos0 .. pos0+n-1 of window win. */
static bool score_chunk(struct scorer *s, const rf_token *win, int32_t pos0, int32_t n)
{
    const int32_t n_vocab = s->pl->n_vocab;
    for (int32_t i = 0; i < n; i++) {
        const float *logits = rf_get_logits(s->ctx, i);
        if (!logits) return cli_fail(CMD, "no logits: %s", rf_last_error()), false;
        const rf_token target = win[pos0 + i + 1];
        moments_add(&s->nll, log_softmax(logits, n_vocab, target, s->lp));
        if (s->out && fwrite(s->lp, sizeof(float), (size_t)n_vocab, s->out) != (size_t)n_vocab)
            return cli_fail(CMD, "writing --kl-out failed: %s", strerror(errno)), false;
        if (s->kl && !kl_position(s->kl, s->lp, n_vocab, target)) return false;
    }
    return true;
}

/* Decodes one window: the context half without logits, the scored half in batches. */
static bool score_window(struct scorer *s, int32_t w)
{
    const struct ppl_plan *pl = s->pl;
    const rf_token *win = pl->tokens + (size_t)w * (size_t)pl->n_ctx;
    rf_context_reset(s->ctx);
    if (rf_decode(s->ctx, win, pl->first, false) != RF_OK)
        return cli_fail(CMD, "decoding window %d failed: %s", w + 1, rf_last_error()), false;
    const int32_t end = pl->first + pl->n_scored; /* the last token is only a target */
    for (int32_t pos = pl->first; pos < end; pos += s->n_batch) {
        const int32_t n = end - pos < s->n_batch ? end - pos : s->n_batch;
        if (rf_decode(s->ctx, win + pos, n, true) != RF_OK)
            return cli_fail(CMD, "decoding window %d failed: %s", w + 1, rf_last_error()), false;
        if (!score_chunk(s, win, pos, n)) return false;
    }
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts k->kl in place. */
static void print_kl(struct kl_stats *k, const struct moments *nll)
{
    struct moments m = {0};
    double mx = -INFINITY;
    for (int64_t i = 0; i < k->n; i++) {
        moments_add(&m, k->kl[i]);
        mx = k->kl[i] > mx ? k->kl[i] : mx;
    }
    double *sorted = k->kl;
    qsort(sorted, (size_t)k->n, sizeof *sorted, cmp_double);
    /* 99th percentile: linear interpolation between the closest ranks */
    const double r = 0.99 * (double)(k->n - 1);
    const int64_t lo = (int64_t)r;
    const double p99 =
        lo + 1 < k->n ? sorted[lo] + (r - (double)lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
    printf("KL divergence (base || this): mean %.6g +/- %.2g, max %.6g, 99th percentile %.6g\n",
           m.mean, moments_se(&m), mx, p99);
    printf("top-1 agreement: %.3f%% (%lld of %lld positions)\n",
           100.0 * (double)k->n_agree / (double)k->n, (long long)k->n_agree, (long long)k->n);
    print_ppl("PPL base", &k->base_nll);
    print_ppl("PPL this", nll);
}

/* ---------------------------------------------------------------- setup and run */

struct ppl_run {
    struct ppl_opts o;
    struct rf_model *model;
    struct rf_context *ctx;
    struct ppl_plan plan;
    struct scorer sc;
    struct kl_stats kl;
    struct kl_header kh;
};

/* BOS when the model starts every text with it (the tokens of an empty text), else -1. */
static rf_token bos_if_added(const struct rf_model *m)
{
    rf_token ids[4];
    const rf_token bos = rf_model_bos(m);
    const int32_t n = rf_tokenize(m, "", 0, ids, 4, true, false);
    return bos >= 0 && n >= 1 && ids[0] == bos ? bos : -1;
}

/* Tokenizes the text and cuts it into windows. */
static bool make_plan(struct ppl_run *r, const char *text, size_t len)
{
    struct ppl_plan *pl = &r->plan;
    const int32_t n_ctx = r->o.n_ctx;
    const int32_t n = cli_tokenize(CMD, r->model, text, len, true, false, &pl->tokens);
    if (n < 0) return false;
    if (n / n_ctx < 2)
        return cli_fail(CMD,
                        "the text is %d tokens, fewer than 2 windows of --ctx %d (%d tokens): "
                        "give a longer text or a smaller --ctx",
                        n, n_ctx, 2 * n_ctx),
               false;
    pl->n_ctx = n_ctx;
    pl->n_windows = n / n_ctx;
    if (r->o.max_windows && pl->n_windows > r->o.max_windows) pl->n_windows = r->o.max_windows;
    pl->first = n_ctx / 2;
    pl->n_scored = n_ctx - 1 - pl->first;
    pl->n_vocab = rf_model_n_vocab(r->model);
    pl->n_text_tokens = n;
    pl->bos = bos_if_added(r->model);
    if (pl->bos >= 0)
        for (int32_t w = 0; w < pl->n_windows; w++) pl->tokens[(size_t)w * (size_t)n_ctx] = pl->bos;
    return true;
}

/* The comparison state once the base file has passed its checks. */
static bool kl_setup(struct ppl_run *r)
{
    struct kl_stats *k = &r->kl;
    if (!kl_check_base(k->base, k->path, &r->kh, &r->plan)) return false;
    k->row = malloc((size_t)r->plan.n_vocab * sizeof *k->row);
    k->kl = malloc((size_t)r->kh.n_positions * sizeof *k->kl);
    if (!k->row || !k->kl) return cli_fail(CMD, "out of memory for the KL statistics"), false;
    r->sc.kl = k;
    return true;
}

/* Model, windows, base and output files, context: everything before the first decode. */
static bool setup(struct ppl_run *r, const char *text, size_t len, const char *model_path)
{
    if (r->o.kl_base) {
        r->kl.path = r->o.kl_base;
        r->kl.base = kl_open_base(r->o.kl_base, &r->o.n_ctx, &r->kh);
        if (!r->kl.base) return false;
    }
    if (r->o.n_ctx == 0) r->o.n_ctx = 512;
    r->model = cli_load_model(CMD, model_path, r->o.n_threads);
    if (!r->model || !make_plan(r, text, len)) return false;
    if (r->kl.base && !kl_setup(r)) return false;
    r->sc.pl = &r->plan;
    r->sc.n_batch = r->o.n_batch;
    r->sc.lp = malloc((size_t)r->plan.n_vocab * sizeof *r->sc.lp);
    if (!r->sc.lp) return cli_fail(CMD, "out of memory"), false;
    if (r->o.kl_out) {
        r->sc.out = kl_open_out(r->o.kl_out, r->o.kl_base);
        if (!r->sc.out) return false;
        if (!kl_write_header(r->sc.out, &r->plan))
            return cli_fail(CMD, "writing --kl-out %s failed", r->o.kl_out), false;
    }
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = r->o.n_ctx;
    cp.n_batch = r->o.n_batch;
    if (rf_context_init(r->model, &cp, &r->ctx) != RF_OK)
        return cli_fail(CMD, "cannot create a context: %s", rf_last_error()), false;
    r->sc.ctx = r->ctx;
    return true;
}

static bool run_windows(struct ppl_run *r)
{
    const struct ppl_plan *pl = &r->plan;
    fprintf(stderr,
            "%s: %d tokens, %d windows of %d, scoring %d tokens per window (positions %d..%d "
            "predict the next), BOS at each window start: %s\n",
            CMD, pl->n_text_tokens, pl->n_windows, pl->n_ctx, pl->n_scored, pl->first,
            pl->n_ctx - 2, pl->bos >= 0 ? "yes" : "no");
    const double t0 = cli_now();
    for (int32_t w = 0; w < r->plan.n_windows; w++) {
        const struct moments before = r->sc.nll;
        if (!score_window(&r->sc, w)) return false;
        const double sum = r->sc.nll.mean * (double)r->sc.nll.n - before.mean * (double)before.n;
        printf("[%d/%d] running PPL = %.4f, this window %.4f\n", w + 1, r->plan.n_windows,
               exp(r->sc.nll.mean), exp(sum / (double)r->plan.n_scored));
        fflush(stdout);
    }
    const double dt = cli_now() - t0;
    const double n_dec = (double)r->plan.n_windows * (r->plan.n_ctx - 1);
    fprintf(stderr, "%s: %.0f tokens decoded in %.2f s (%.1f tokens/s)\n", CMD, n_dec, dt,
            dt > 0 ? n_dec / dt : 0.0);
    print_ppl("PPL", &r->sc.nll);
    if (r->sc.kl) print_kl(&r->kl, &r->sc.nll);
    return true;
}

/* Frees everything; returns false when closing the output failed. */
static bool teardown(struct ppl_run *r)
{
    bool ok = true;
    if (r->sc.out && fclose(r->sc.out) != 0) {
        cli_fail(CMD, "writing --kl-out %s failed", r->o.kl_out);
        ok = false;
    }
    if (r->kl.base) fclose(r->kl.base);
    free(r->kl.row);
    free(r->kl.kl);
    free(r->sc.lp);
    free(r->plan.tokens);
    rf_context_free(r->ctx);
    rf_model_free(r->model);
    return ok;
}

int cmd_perplexity(int argc, char **argv)
{
    struct ppl_run r = {0};
    int rc = parse_ppl(argc, argv, &r.o);
    if (rc >= 0) return rc;
    char path[4096];
    if (!cli_model_path(CMD, r.o.model, path, sizeof path)) return CLI_EXIT_FAIL;
    size_t len = 0;
    char *text = cli_read_file(r.o.text_file, &len);
    if (!text) return cli_fail(CMD, "cannot read %s: %s", r.o.text_file, strerror(errno));
    if (len == 0) {
        free(text);
        return cli_fail(CMD, "the text file %s is empty", r.o.text_file);
    }
    bool ok = setup(&r, text, len, path) && run_windows(&r);
    free(text);
    ok = teardown(&r) && ok;
    if (!ok && r.o.kl_out && r.sc.out) unlink(r.o.kl_out); /* no half-written file */
    return ok ? 0 : CLI_EXIT_FAIL;
}

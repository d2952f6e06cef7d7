/* rocmforge bench: prompt processing (ppN: N random tokens in one call, chunked by
 * the context's batch size) and generation (tgN: N single-token calls), each from an
 * empty cache, after one untimed warm-up run; a markdown table like llama-bench's.
 * With -b, sequences decoding together through the scheduler (bench_batch.c). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#ifdef RF_HAVE_GPU
#include "backend/gpu/gpu.h"
#endif

static const char bench_usage[] =
    "usage: rocmforge bench [options]\n"
    "\n"
    "Measures prompt processing (ppN) and generation (tgN) speed, each from an empty\n"
    "cache after one warm-up run, and prints a markdown table: t/s as mean +- standard\n"
    "deviation over the repetitions; for generation, the bytes read per token and the\n"
    "bandwidth that implies.\n"
    "\n"
    "  -m, --model FILE      GGUF model (default: as for `rocmforge run`)\n"
    "  -p, --n-prompt N      prompt tokens (default 512; 0: skip)\n"
    "  -n, --n-gen N         generated tokens (default 128; 0: skip)\n"
    "  -r, --repetitions N   timed runs of each test (default 5)\n"
    "  -t, --threads N       CPU threads (default: all online CPUs)\n"
    "  -ngl, --n-gpu-layers N  layers on the GPU (default -1: all; 0: CPU only); with a\n"
    "                        GPU, generation's GB/s is also given as a share of the\n"
    "                        device's measured device-to-device copy bandwidth\n"
    "  -b, --batch LIST      batched decoding instead, as llama-batched-bench: for each\n"
    "                        N of LIST (comma-separated, 1..4096), N requests of a\n"
    "                        different random prompt of -p tokens (default 128 here) are\n"
    "                        submitted at once to the scheduler `serve` runs (n_parallel\n"
    "                        N, default batch size, no prefix cache), each generating -n\n"
    "                        tokens (at least 2) greedily, end-of-generation ignored.\n"
    "                        T_PP: from the submission until every sequence has its first\n"
    "                        token; T_TG: from then until the last one finishes. S_PP =\n"
    "                        N*PP / T_PP; S_TG = tokens generated in T_TG / T_TG (the\n"
    "                        figure beside llama-batched-bench's S_TG); total = N*TG /\n"
    "                        (T_PP + T_TG). Before the timed runs of each N, one untimed\n"
    "                        warm-up of the same N sequences generating 2 tokens each.\n"
    "  -h, --help            show this help\n";

static const struct option bench_longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"n-prompt", required_argument, NULL, 'p'},
    {"n-gen", required_argument, NULL, 'n'},
    {"repetitions", required_argument, NULL, 'r'},
    {"threads", required_argument, NULL, 't'},
    {"n-gpu-layers", required_argument, NULL, 'g'},
    {"ngl", required_argument, NULL, 'g'},
    {"batch", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define BENCH_MAX_BATCHES 64

struct bench_opts {
    const char *model;
    int32_t n_prompt, n_gen, reps, n_threads;
    bool n_prompt_given;
    int32_t n_seq[BENCH_MAX_BATCHES]; /* -b: sequence counts */
    int32_t n_batches;                /* 0: no -b */
};

/* "1,8,32": whole numbers in [1, 4096], at most BENCH_MAX_BATCHES of them. */
static bool parse_batch_list(const char *v, struct bench_opts *o)
{
    char buf[1024];
    if (strlen(v) >= sizeof buf) return false;
    strcpy(buf, v);
    o->n_batches = 0;
    for (char *item = buf, *end; item; item = end) {
        end = strchr(item, ',');
        if (end) *end++ = '\0';
        if (o->n_batches == BENCH_MAX_BATCHES ||
            !cli_parse_i32(item, 1, 4096, &o->n_seq[o->n_batches++]))
            return false;
    }
    return true;
}

static int parse_bench(int argc, char **argv, struct bench_opts *o)
{
    *o = (struct bench_opts){.n_prompt = 512, .n_gen = 128, .reps = 5};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long_only(argc, argv, ":m:p:n:r:t:b:h", bench_longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'h': fputs(bench_usage, stdout); return 0;
        case 'm': o->model = optarg; break;
        case 'p':
            ok = cli_parse_i32(optarg, 0, 1 << 20, &o->n_prompt);
            o->n_prompt_given = true;
            break;
        case 'n': ok = cli_parse_i32(optarg, 0, 1 << 20, &o->n_gen); break;
        case 'r': ok = cli_parse_i32(optarg, 1, 10000, &o->reps); break;
        case 't': ok = cli_parse_i32(optarg, 1, 4096, &o->n_threads); break;
        case 'g': ok = cli_parse_i32(optarg, -1, 1 << 20, &cli_n_gpu_layers); break;
        case 'b': ok = parse_batch_list(optarg, o); break;
        default: return cli_bad_option("bench", c, argv);
        }
        if (!ok)
            return cli_usage_error("bench", "bad value '%s' for %s", optarg,
                                   cli_opt_name(c, bench_longopts));
    }
    if (optind < argc) return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if (o->n_batches > 0) {
        if (!o->n_prompt_given) o->n_prompt = 128;
        if (o->n_prompt < 1) return cli_usage_error("bench", "-b needs -p of at least 1");
        if (o->n_gen < 2) return cli_usage_error("bench", "-b needs -n of at least 2");
        return -1;
    }
    if (o->n_prompt == 0 && o->n_gen == 0)
        return cli_usage_error("bench", "nothing to run: -p 0 and -n 0");
    return -1;
}

void cli_random_tokens(rf_token *t, int32_t n, int32_t n_vocab, uint64_t seed)
{
    uint64_t x = seed;
    for (int32_t i = 0; i < n; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        t[i] = (rf_token)((z ^ (z >> 31)) % (uint64_t)n_vocab);
    }
}

/* One run from an empty cache: the n tokens in one call (pp) or one per call (tg). */
static bool run_once(struct rf_context *ctx, const rf_token *t, int32_t n, bool one_by_one,
                     double *secs)
{
    rf_context_reset(ctx);
    const double t0 = cli_now();
    if (!one_by_one) {
        if (rf_decode(ctx, t, n, false) != RF_OK) return false;
    } else {
        for (int32_t i = 0; i < n; i++)
            if (rf_decode(ctx, t + i, 1, false) != RF_OK) return false;
    }
    *secs = cli_now() - t0;
    return true;
}

void cli_stat_add(struct cli_stat *s, double v)
{
    s->sum += v;
    s->sq += v * v;
    s->n++;
}

double cli_stat_mean(const struct cli_stat *s) { return s->n > 0 ? s->sum / s->n : 0; }

double cli_stat_sd(const struct cli_stat *s)
{
    const double var = s->n > 1 ? (s->sq - s->sum * s->sum / s->n) / (s->n - 1) : 0;
    return var > 0 ? sqrt(var) : 0;
}

struct bench_row {
    double mean, sd; /* tokens per second */
};

static bool run_test(struct rf_context *ctx, const rf_token *t, int32_t n, bool tg, int32_t reps,
                     struct bench_row *row)
{
    double secs;
    struct cli_stat tps = {0};
    if (!run_once(ctx, t, n, tg, &secs)) return false; /* warm-up */
    for (int32_t r = 0; r < reps; r++) {
        if (!run_once(ctx, t, n, tg, &secs)) return false;
        cli_stat_add(&tps, secs > 0 ? n / secs : 0);
    }
    row->mean = cli_stat_mean(&tps);
    row->sd = cli_stat_sd(&tps);
    return true;
}

struct bench_env {
    const char *model_name; /* file name */
    const struct rf_model *m;
    int32_t n_threads;
    uint64_t kv_bytes_per_pos;
    const char *backend; /* "CPU", or the GPU's name */
    double copy_bw;      /* GPU device-to-device copy, B/s read + written; 0: no GPU */
};

static void print_header(void)
{
    printf("| model | size | backend | threads | test | t/s | B/token | GB/s | of copy |\n");
    printf("| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
}

/* Generation reads every weight once per token plus the KV cache so far: from an empty
 * cache, token i reads i + 1 positions, (n + 1) / 2 on average. */
static void print_row(const struct bench_env *e, const char *test, const struct bench_row *r,
                      int32_t n_gen)
{
    const double wb = (double)rf_model_weight_bytes(e->m);
    const double bpt = wb + (double)e->kv_bytes_per_pos * (n_gen + 1) / 2.0;
    printf("| %s %s | %.2f MiB | %s | %d | %s | %.2f ± %.2f |", rf_model_arch(e->m), e->model_name,
           wb / (1024.0 * 1024.0), e->backend, e->n_threads, test, r->mean, r->sd);
    if (n_gen > 0 && e->copy_bw > 0)
        printf(" %.1f MB | %.2f | %.2f |\n", bpt / 1e6, bpt * r->mean / 1e9, bpt * r->mean / e->copy_bw);
    else if (n_gen > 0) printf(" %.1f MB | %.2f | |\n", bpt / 1e6, bpt * r->mean / 1e9);
    else printf(" | | |\n");
}

/* The GPU's name and copy bandwidth when the model runs there. */
static void bench_gpu_info(const struct rf_model *m, struct bench_env *e)
{
#ifdef RF_HAVE_GPU
    static char name[160];
    if (rf_model_n_gpu_layers(m) <= 0) return;
    struct rf_backend b;
    if (rf_backend_gpu_init(0, &b) != RF_OK) return;
    snprintf(name, sizeof name, "GPU (%d layers), %s", rf_model_n_gpu_layers(m),
             rf_backend_gpu_device_name(&b));
    b.iface->free(b.ctx);
    e->backend = name;
    if (rf_gpu_copy_bandwidth(0, 0, &e->copy_bw) != RF_OK) e->copy_bw = 0;
#else
    (void)m;
    (void)e;
#endif
}

static int bench_loaded(const struct bench_opts *o, const struct bench_env *e,
                        struct rf_context *ctx)
{
    const int32_t n = o->n_prompt > o->n_gen ? o->n_prompt : o->n_gen;
    rf_token *t = malloc((size_t)n * sizeof *t);
    if (!t) return cli_fail("bench", "out of memory");
    cli_random_tokens(t, n, rf_model_n_vocab(e->m), 1234);
    print_header();
    struct bench_row row;
    char test[32];
    int rc = 0;
    if (o->n_prompt > 0) {
        if (!run_test(ctx, t, o->n_prompt, false, o->reps, &row)) goto fail;
        snprintf(test, sizeof test, "pp%d", o->n_prompt);
        print_row(e, test, &row, 0);
    }
    if (o->n_gen > 0) {
        if (!run_test(ctx, t, o->n_gen, true, o->reps, &row)) goto fail;
        snprintf(test, sizeof test, "tg%d", o->n_gen);
        print_row(e, test, &row, o->n_gen);
    }
    printf("\nB/token: bytes read per generated token: all weights plus the KV cache rows "
           "attention reads (%.1f KB per position, on average (n+1)/2 positions).\n",
           e->kv_bytes_per_pos / 1e3);
    if (e->copy_bw > 0)
        printf("of copy: GB/s over the device-to-device copy bandwidth measured now (%.1f GB/s, "
               "1 GiB, read + written).\n",
               e->copy_bw / 1e9);
    goto done;
fail:
    rc = cli_fail("bench", "decode failed: %s", rf_last_error());
done:
    free(t);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o;
    int rc = parse_bench(argc, argv, &o);
    if (rc >= 0) return rc;
    char path[4096];
    if (!cli_model_path("bench", o.model, path, sizeof path)) return CLI_EXIT_FAIL;
    struct rf_model *m = cli_load_model("bench", path, o.n_threads);
    if (!m) return CLI_EXIT_FAIL;
    const char *slash = strrchr(path, '/');
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct bench_env e = {
        .model_name = slash ? slash + 1 : path,
        .m = m,
        .n_threads = o.n_threads > 0 ? o.n_threads : (int32_t)(cpus > 0 ? cpus : 1),
        .backend = "CPU",
    };
    if (o.n_batches > 0) {
        bench_gpu_info(m, &e);
        const struct cli_bench_batch b = {.model_name = e.model_name,
                                          .backend = e.backend,
                                          .n_threads = e.n_threads,
                                          .n_seq = o.n_seq,
                                          .n_list = o.n_batches,
                                          .n_prompt = o.n_prompt,
                                          .n_gen = o.n_gen,
                                          .reps = o.reps};
        rc = cli_bench_batch(m, &b);
        rf_model_free(m);
        return rc;
    }
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen;
    struct rf_context *ctx = NULL;
    if (rf_context_init(m, &cp, &ctx) != RF_OK) {
        rc = cli_fail("bench", "cannot create a context: %s", rf_last_error());
    } else {
        e.kv_bytes_per_pos = rf_context_kv_bytes_per_pos(ctx);
        bench_gpu_info(m, &e);
        rc = bench_loaded(&o, &e, ctx);
    }
    rf_context_free(ctx);
    rf_model_free(m);
    return rc;
}

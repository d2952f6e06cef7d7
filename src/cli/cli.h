#ifndef RF_CLI_H
#define RF_CLI_H
/* Shared pieces of the rocmforge subcommands. Exit codes: 0 success, 1 failure at
 * run time (missing model, load error), 2 bad command line. Every error is one
 * line on stderr. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct option;

#include "rocmforge.h"

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
#define CLI_DEFAULT_MODEL "SmolLM2-135M-Instruct.Q4_1.gguf"

int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat_template(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);

/* "rocmforge CMD: MSG (see rocmforge CMD --help)"; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "rocmforge CMD: MSG"; returns CLI_EXIT_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The error for a getopt_long result of '?' or ':' (opterr must be 0). */
int cli_bad_option(const char *cmd, int c, char **argv);

/* The option getopt_long returned as the user would write it: "-n" for a short one,
 * "--temp" for a long-only one (val >= 256). Returns a static buffer. */
const char *cli_opt_name(int c, const struct option *longopts);

/* Whole-string numbers in [lo, hi]; false on anything else. */
bool cli_parse_i32(const char *s, int32_t lo, int32_t hi, int32_t *out);
bool cli_parse_u64(const char *s, uint64_t *out);
bool cli_parse_float(const char *s, float *out);

/* Model path: the -m value, else $ROCMFORGE_MODELS or ~/.cache/rocmforge/models plus
 * the default file name. A -m value that is not a file and has no '/' is a model name
 * in that directory: a file name with or without .gguf, else a unique prefix of one
 * (case-insensitive). Prints the one-line error and returns false when no file is
 * found. buf holds the result. */
bool cli_model_path(const char *cmd, const char *given, char *buf, size_t cap);
/* The models directory: $ROCMFORGE_MODELS, else ~/.cache/rocmforge/models. */
void cli_models_dir(char *buf, size_t cap);
/* The *.gguf entries of dir (not dot files), sorted, as a malloc'd array of malloc'd
 * names (models.c); returns the count, or -1 with errno set. */
int cli_gguf_names(const char *dir, char ***out);
void cli_free_names(char **names, int n);
/* Loads the model; prints the error and returns NULL on failure. */
struct rf_model *cli_load_model(const char *cmd, const char *path, int32_t n_threads);
/* Layers cli_load_model puts on the GPU (-ngl): -1 all (default), 0 none. */
extern int32_t cli_n_gpu_layers;

/* Reads a whole file, NUL-terminated (malloc'd); NULL with *len unset on failure. */
char *cli_read_file(const char *path, size_t *len);
/* Tokenizes text into a malloc'd array; returns the count or -1 (error printed). */
int32_t cli_tokenize(const char *cmd, const struct rf_model *m, const char *text, size_t len,
                     bool add_bos, bool parse_special, rf_token **out);

/* ---- bench ---- */
/* Fixed-seed token ids in [0, n_vocab): the same workload on every run (bench.c). */
void cli_random_tokens(rf_token *t, int32_t n, int32_t n_vocab, uint64_t seed);
/* Mean and sample standard deviation of repeated measurements (bench.c). */
struct cli_stat {
    double sum, sq;
    int32_t n;
};
void cli_stat_add(struct cli_stat *s, double v);
double cli_stat_mean(const struct cli_stat *s);
double cli_stat_sd(const struct cli_stat *s);
/* bench -b (bench_batch.c): sequences decoding together through the scheduler. */
struct cli_bench_batch {
    const char *model_name; /* file name */
    const char *backend;    /* "CPU", or the GPU's name */
    int32_t n_threads;
    const int32_t *n_seq; /* (n_list) sequence counts, each in [1, 4096] */
    int32_t n_list;
    int32_t n_prompt; /* tokens of each prompt, >= 1 */
    int32_t n_gen;    /* tokens each sequence generates, >= 2 */
    int32_t reps;
};
/* Prints the table; returns 0, or CLI_EXIT_FAIL with the error printed. */
int cli_bench_batch(struct rf_model *m, const struct cli_bench_batch *b);

double cli_now(void); /* monotonic seconds */
uint64_t cli_fnv1a64(const void *data, size_t n);


/* ---- sampling options (sampling_opts.c), shared by run and chat ---- */
enum {
    CLI_OPT_TEMP = 0x1000,
    CLI_OPT_TOP_K,
    CLI_OPT_TOP_P,
    CLI_OPT_MIN_P,
    CLI_OPT_REPEAT_PENALTY,
    CLI_OPT_REPEAT_LAST_N,
    CLI_OPT_FREQ,
    CLI_OPT_PRESENCE,
    CLI_OPT_SEED,
    CLI_OPT_SAMPLING_END,
};
#define CLI_SAMPLING_LONGOPTS                                                                      \
    {"temp", required_argument, NULL, CLI_OPT_TEMP},                                               \
        {"top-k", required_argument, NULL, CLI_OPT_TOP_K},                                         \
        {"top-p", required_argument, NULL, CLI_OPT_TOP_P},                                         \
        {"min-p", required_argument, NULL, CLI_OPT_MIN_P},                                         \
        {"repeat-penalty", required_argument, NULL, CLI_OPT_REPEAT_PENALTY},                       \
        {"repeat-last-n", required_argument, NULL, CLI_OPT_REPEAT_LAST_N},                         \
        {"frequency-penalty", required_argument, NULL, CLI_OPT_FREQ},                              \
        {"presence-penalty", required_argument, NULL, CLI_OPT_PRESENCE},                           \
        {"seed", required_argument, NULL, CLI_OPT_SEED}
#define CLI_SAMPLING_USAGE                                                                         \
    "      --temp T             temperature (default 0.8; 0: greedy)\n"                           \
    "      --top-k K            keep the K most likely tokens (default 40; 0: off)\n"             \
    "      --top-p P            nucleus sampling (default 0.95; 1: off)\n"                        \
    "      --min-p P            drop tokens below P times the top probability (default 0.05)\n"   \
    "      --repeat-penalty X   penalize repeated tokens (default 1.0: off)\n"                    \
    "      --repeat-last-n N    window of the penalties (default 64; 0: off; -1: context)\n"      \
    "      --frequency-penalty X  (default 0)\n"                                                  \
    "      --presence-penalty X   (default 0)\n"                                                  \
    "      --seed N             sampling seed (default: random)\n"
struct cli_sampling {
    struct rf_sampler_params sp;
    int32_t repeat_last_n; /* -1: the context size */
    bool seed_given;
};
void cli_sampling_init(struct cli_sampling *s);
/* 1: option c was a sampling option and its value v was taken; -1: it was one, with a
 * bad value; 0: c is not a sampling option. */
int cli_sampling_option(int c, const char *v, struct cli_sampling *s);

#endif

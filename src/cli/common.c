#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"

static void prefix(const char *cmd)
{
    fprintf(stderr, "rocmforge%s%s: ", cmd ? " " : "", cmd ? cmd : "");
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    prefix(cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see rocmforge %s%s--help)\n", cmd ? cmd : "", cmd ? " " : "");
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    prefix(cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_FAIL;
}

int cli_bad_option(const char *cmd, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (c == ':') return cli_usage_error(cmd, "option '%s' needs a value", arg);
    if (optopt && !(arg[0] == '-' && arg[1] == '-'))
        return cli_usage_error(cmd, "unknown option '-%c'", optopt);
    return cli_usage_error(cmd, "unknown option '%s'", arg);
}

const char *cli_opt_name(int c, const struct option *longopts)
{
    static char buf[64];
    if (c > 0 && c < 256) {
        snprintf(buf, sizeof buf, "-%c", c);
        return buf;
    }
    for (const struct option *o = longopts; o->name; o++) {
        if (o->val == c) {
            snprintf(buf, sizeof buf, "--%s", o->name);
            return buf;
        }
    }
    return "an option";
}

bool cli_parse_i32(const char *s, int32_t lo, int32_t hi, int32_t *out)
{
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (int32_t)v;
    return true;
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] == '-' || s[0] == '\0') return false;
    const unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return false;
    *out = (uint64_t)v;
    return true;
}

bool cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    const float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Prints the candidates of an ambiguous name: "a.gguf, b.gguf, ..." (at most 4). */
static void ambiguous(const char *cmd, const char *name, const char *dir, char **names, int n)
{
    char list[512] = "";
    size_t len = strlen(name);
    int shown = 0, total = 0;
    for (int i = 0; i < n; i++) {
        if (strncasecmp(names[i], name, len)) continue;
        if (total++ < 4) {
            const size_t k = strlen(list);
            snprintf(list + k, sizeof list - k, "%s%s", shown++ ? ", " : "", names[i]);
        }
    }
    cli_fail(cmd, "model name '%s' matches %d files in %s: %s%s; give more of the name", name,
             total, dir, list, total > shown ? ", ..." : "");
}

/* A model name in dir: the file name, the name plus ".gguf", else a unique
 * case-insensitive prefix. Returns 1 (path in buf), 0 (no such model) or -1 (ambiguous,
 * error printed). */
static int find_named_model(const char *cmd, const char *dir, const char *name, char *buf,
                            size_t cap)
{
    char **names = NULL;
    const int n = cli_gguf_names(dir, &names);
    if (n <= 0) return 0;
    const size_t n_name = strlen(name);
    int hit = -1, n_prefix = 0;
    for (int i = 0; i < n && hit < 0; i++)
        if (!strcmp(names[i], name) ||
            (!strncmp(names[i], name, n_name) && !strcasecmp(names[i] + n_name, ".gguf")))
            hit = i;
    for (int i = 0; i < n && hit < 0; i++)
        if (!strncasecmp(names[i], name, n_name) && n_prefix++ == 0) hit = i;
    for (int i = hit + 1; i < n && n_prefix == 1; i++)
        if (!strncasecmp(names[i], name, n_name)) n_prefix++;
    int found = 0;
    if (n_prefix > 1) {
        ambiguous(cmd, name, dir, names, n);
        found = -1;
    } else if (hit >= 0) {
        const int len = snprintf(buf, cap, "%s/%s", dir, names[hit]);
        found = len >= 0 && (size_t)len < cap && is_file(buf);
    }
    cli_free_names(names, n);
    return found;
}

bool cli_model_path(const char *cmd, const char *given, char *buf, size_t cap)
{
    char dir[4096];
    cli_models_dir(dir, sizeof dir);
    if (given) {
        snprintf(buf, cap, "%s", given);
        if (is_file(buf)) return true;
        if (given[0] && !strchr(given, '/')) {
            const int found = find_named_model(cmd, dir, given, buf, cap);
            if (found) return found > 0;
            cli_fail(cmd,
                     "model not found: %s is neither a file nor a model name in %s (see "
                     "`rocmforge models`; `make models` or scripts/setup.sh downloads the "
                     "default model)",
                     given, dir);
            return false;
        }
        cli_fail(cmd,
                 "model file not found: %s (run `make models` or scripts/setup.sh to "
                 "download the default model)",
                 given);
        return false;
    }
    const char *env = getenv("ROCMFORGE_MODELS");
    snprintf(buf, cap, "%s/%s", dir, CLI_DEFAULT_MODEL);
    if (is_file(buf)) return true;
    cli_fail(cmd,
             "no model at %s (%s); pass -m FILE, or run `make models` or scripts/setup.sh "
             "to download it",
             buf,
             env && env[0] ? "from $ROCMFORGE_MODELS" : "$ROCMFORGE_MODELS unset, default cache");
    return false;
}

int32_t cli_n_gpu_layers = -1;

struct rf_model *cli_load_model(const char *cmd, const char *path, int32_t n_threads)
{
    struct rf_model_params mp = rf_model_default_params();
    mp.n_threads = n_threads;
    mp.n_gpu_layers = cli_n_gpu_layers;
    struct rf_model *m = NULL;
    if (rf_model_load(path, &mp, &m) != RF_OK) {
        cli_fail(cmd, "cannot load %s: %s", path, rf_last_error());
        return NULL;
    }
    return m;
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *p = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    const bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int32_t cli_tokenize(const char *cmd, const struct rf_model *m, const char *text, size_t len,
                     bool add_bos, bool parse_special, rf_token **out)
{
    int32_t cap = (int32_t)(len < 1000 ? len + 16 : 1016);
    rf_token *ids = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        rf_token *p = realloc(ids, (size_t)cap * sizeof *ids);
        if (!p) break;
        ids = p;
        const int32_t n = rf_tokenize(m, text, len, ids, cap, add_bos, parse_special);
        if (n < 0) {
            free(ids);
            cli_fail(cmd, "cannot tokenize: %s", rf_last_error());
            return -1;
        }
        if (n <= cap) {
            *out = ids;
            return n;
        }
        cap = n;
    }
    free(ids);
    cli_fail(cmd, "out of memory while tokenizing %zu bytes", len);
    return -1;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t cli_fnv1a64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* rocmforge models: the GGUF files of a models directory, one line each, and the scan
 * of that directory that `-m NAME` uses (common.c). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/status.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

static const char models_usage[] =
    "usage: rocmforge models [--dir DIR]\n"
    "\n"
    "Lists the GGUF files (*.gguf) of DIR with architecture, parameter count,\n"
    "quantization, context length and file size; a file that cannot be read is\n"
    "listed with the reason. Any -m option takes a name from this list (with or\n"
    "without .gguf, or a unique prefix of it) as well as a path.\n"
    "\n"
    "  -d, --dir DIR   directory to list (default: $ROCMFORGE_MODELS, else\n"
    "                  ~/.cache/rocmforge/models)\n"
    "  -h, --help      show this help\n";

static const struct option models_longopts[] = {
    {"dir", required_argument, NULL, 'd'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define GGUF_EXT ".gguf"

void cli_models_dir(char *buf, size_t cap)
{
    const char *env = getenv("ROCMFORGE_MODELS");
    const char *home = getenv("HOME");
    if (env && env[0]) snprintf(buf, cap, "%s", env);
    else snprintf(buf, cap, "%s/.cache/rocmforge/models", home ? home : "");
}

static bool has_gguf_ext(const char *name)
{
    const size_t n = strlen(name), k = strlen(GGUF_EXT);
    return n > k && !strcasecmp(name + n - k, GGUF_EXT);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void cli_free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int cli_gguf_names(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    const struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !has_gguf_ext(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) break;
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    const bool complete = e == NULL;
    closedir(d);
    if (!complete) {
        cli_free_names(names, n);
        errno = ENOMEM;
        return -1;
    }
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_names);
    *out = names;
    return n;
}

/* ---- one line per file ---- */

/* Quantization names by general.file_type (llama.cpp's llama_ftype ids). */
static const char *file_type_name(int64_t ft)
{
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",      [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L",  [14] = "Q4_K_S",  [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL", [26] = "IQ3_S",  [27] = "IQ3_M",
        [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS", [31] = "IQ1_M",  [32] = "BF16",
        [36] = "TQ1_0",   [37] = "TQ2_0",   [38] = "MXFP4",
    };
    const int64_t n = (int64_t)(sizeof names / sizeof names[0]);
    return ft >= 0 && ft < n ? names[ft] : NULL;
}

struct model_row {
    char name[256];
    char arch[32];
    char params[16];
    char quant[24];
    char ctx[16];
    char size[16];
    char error[512]; /* non-empty: the file could not be read */
};

static void human_count(char *buf, size_t cap, uint64_t n)
{
    if (n >= 1000000000) snprintf(buf, cap, "%.2fB", (double)n / 1e9);
    else if (n >= 1000000) snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else snprintf(buf, cap, "%.1fK", (double)n / 1e3);
}

static void human_bytes(char *buf, size_t cap, uint64_t n)
{
    if (n >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)n / (1ull << 30));
    else if (n >= (1ull << 20)) snprintf(buf, cap, "%.1f MiB", (double)n / (1ull << 20));
    else snprintf(buf, cap, "%.1f KiB", (double)n / 1024.0);
}

/* Printable copy of a file string: control and non-ASCII bytes become '?'. */
static void copy_str(char *buf, size_t cap, struct rf_gguf_str s)
{
    size_t i = 0;
    for (; i < s.len && i + 1 < cap; i++) {
        const unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[i] = '\0';
}

/* general.file_type's name, else the type holding the most tensor bytes. */
static void quant_of(const struct rf_gguf *g, char *buf, size_t cap)
{
    int64_t ft;
    rf_clear_error();
    if (rf_gguf_get_int(g, "general.file_type", &ft) && file_type_name(ft)) {
        snprintf(buf, cap, "%s", file_type_name(ft));
        return;
    }
    uint64_t bytes[RF_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].type < RF_TYPE_COUNT) bytes[g->tensors[i].type] += g->tensors[i].nbytes;
    int best = -1;
    for (int t = 0; t < RF_TYPE_COUNT; t++)
        if (bytes[t] && (best < 0 || bytes[t] > bytes[best])) best = t;
    snprintf(buf, cap, "%s", best < 0 ? "-" : rf_type_name((uint32_t)best));
}

/* "<arch>.context_length", or "-". */
static void ctx_of(const struct rf_gguf *g, char *buf, size_t cap)
{
    struct rf_gguf_str arch;
    int64_t n = 0;
    char key[96];
    snprintf(buf, cap, "-");
    rf_clear_error();
    if (!rf_gguf_get_str(g, "general.architecture", &arch) || arch.len > 64) return;
    snprintf(key, sizeof key, "%.*s.context_length", (int)arch.len, arch.ptr);
    if (rf_gguf_get_int(g, key, &n)) snprintf(buf, cap, "%" PRId64, n);
}

static void describe(const char *dir, const char *name, struct model_row *r)
{
    char path[4096];
    struct stat st;
    struct rf_gguf *g = NULL;
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%.*s", (int)(strlen(name) - strlen(GGUF_EXT)), name);
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        snprintf(r->error, sizeof r->error, "path too long");
        return;
    }
    if (stat(path, &st) != 0) {
        snprintf(r->error, sizeof r->error, "%s", strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(r->error, sizeof r->error, "not a regular file");
        return;
    }
    human_bytes(r->size, sizeof r->size, (uint64_t)st.st_size);
    if (rf_gguf_open(path, &g) != RF_OK) {
        snprintf(r->error, sizeof r->error, "%s", rf_last_error());
        return;
    }
    struct rf_gguf_str arch = {"-", 1};
    rf_clear_error();
    rf_gguf_get_str(g, "general.architecture", &arch);
    copy_str(r->arch, sizeof r->arch, arch);
    uint64_t params = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        params += (uint64_t)rf_gguf_tensor_nelements(&g->tensors[i]);
    human_count(r->params, sizeof r->params, params);
    quant_of(g, r->quant, sizeof r->quant);
    ctx_of(g, r->ctx, sizeof r->ctx);
    rf_gguf_close(g);
}

static int width_of(const struct model_row *rows, int n, size_t off, int min)
{
    int w = min;
    for (int i = 0; i < n; i++) {
        const int k = (int)strlen((const char *)&rows[i] + off);
        if (!rows[i].error[0] && k > w) w = k;
    }
    return w;
}

static void print_rows(const struct model_row *rows, int n)
{
    int wn = (int)strlen("NAME");
    for (int i = 0; i < n; i++)
        if ((int)strlen(rows[i].name) > wn) wn = (int)strlen(rows[i].name);
    const int wa = width_of(rows, n, offsetof(struct model_row, arch), 4);
    const int wq = width_of(rows, n, offsetof(struct model_row, quant), 5);
    const int wp = width_of(rows, n, offsetof(struct model_row, params), 6);
    const int wc = width_of(rows, n, offsetof(struct model_row, ctx), 7);
    printf("%-*s  %-*s  %*s  %-*s  %*s  %s\n", wn, "NAME", wa, "ARCH", wp, "PARAMS", wq, "QUANT",
           wc, "CONTEXT", "SIZE");
    for (int i = 0; i < n; i++) {
        const struct model_row *r = &rows[i];
        if (r->error[0]) printf("%-*s  error: %s\n", wn, r->name, r->error);
        else
            printf("%-*s  %-*s  %*s  %-*s  %*s  %s\n", wn, r->name, wa, r->arch, wp, r->params, wq,
                   r->quant, wc, r->ctx, r->size);
    }
}

static int list_models(const char *dir)
{
    char **names = NULL;
    const int n = cli_gguf_names(dir, &names);
    if (n < 0) return cli_fail("models", "cannot read the directory %s: %s", dir, strerror(errno));
    if (n == 0) {
        printf("no GGUF files in %s (`make models` or scripts/setup.sh downloads the default "
               "model)\n",
               dir);
        free(names);
        return 0;
    }
    struct model_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) {
        cli_free_names(names, n);
        return cli_fail("models", "out of memory");
    }
    int n_bad = 0;
    for (int i = 0; i < n; i++) {
        describe(dir, names[i], &rows[i]);
        n_bad += rows[i].error[0] != '\0';
    }
    print_rows(rows, n);
    printf("%d model%s in %s", n - n_bad, n - n_bad == 1 ? "" : "s", dir);
    if (n_bad) printf(", %d unreadable", n_bad);
    printf("\n");
    free(rows);
    cli_free_names(names, n);
    return 0;
}

int cmd_models(int argc, char **argv)
{
    const char *dir = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":d:h", models_longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(models_usage, stdout);
            return 0;
        }
        if (c != 'd') return cli_bad_option("models", c, argv);
        dir = optarg;
    }
    if (optind < argc) return cli_usage_error("models", "unexpected argument '%s'", argv[optind]);
    char buf[4096];
    if (!dir) {
        cli_models_dir(buf, sizeof buf);
        dir = buf;
    }
    return list_models(dir);
}

/* rocmforge tokenize: the ids of a text as one JSON array. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char tokenize_usage[] =
    "usage: rocmforge tokenize [options] -p TEXT\n"
    "\n"
    "Prints the token ids of TEXT as one JSON array on one line.\n"
    "\n"
    "  -m, --model FILE     GGUF model (default: as for `rocmforge run`)\n"
    "  -p, --prompt TEXT    text to tokenize\n"
    "  -f, --file FILE      read the text from FILE instead\n"
    "      --no-bos         never add BOS (by default it is added when the model asks)\n"
    "      --parse-special  special-token text becomes special tokens\n"
    "  -h, --help           show this help\n";

enum {
    OPT_NO_BOS = 256,
    OPT_PARSE_SPECIAL
};

static const struct option tokenize_longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"prompt", required_argument, NULL, 'p'},
    {"file", required_argument, NULL, 'f'},
    {"no-bos", no_argument, NULL, OPT_NO_BOS},
    {"parse-special", no_argument, NULL, OPT_PARSE_SPECIAL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct tokenize_opts {
    const char *model, *prompt, *file;
    bool add_bos, parse_special;
};

static int parse_tokenize(int argc, char **argv, struct tokenize_opts *o)
{
    *o = (struct tokenize_opts){.add_bos = true};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":m:p:f:h", tokenize_longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(tokenize_usage, stdout); return 0;
        case 'm': o->model = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'f': o->file = optarg; break;
        case OPT_NO_BOS: o->add_bos = false; break;
        case OPT_PARSE_SPECIAL: o->parse_special = true; break;
        default: return cli_bad_option("tokenize", c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
    if (!o->prompt == !o->file)
        return cli_usage_error("tokenize", "give one of -p TEXT or -f FILE");
    return -1;
}

static void print_ids(const rf_token *ids, int32_t n)
{
    putchar('[');
    for (int32_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    puts("]");
}

int cmd_tokenize(int argc, char **argv)
{
    struct tokenize_opts o;
    int rc = parse_tokenize(argc, argv, &o);
    if (rc >= 0) return rc;
    char path[4096];
    if (!cli_model_path("tokenize", o.model, path, sizeof path)) return CLI_EXIT_FAIL;
    size_t len = o.prompt ? strlen(o.prompt) : 0;
    char *text = o.prompt ? strdup(o.prompt) : cli_read_file(o.file, &len);
    if (!text) return cli_fail("tokenize", "cannot read %s", o.file ? o.file : "the text");
    struct rf_model *m = cli_load_model("tokenize", path, 1);
    rf_token *ids = NULL;
    const int32_t n =
        m ? cli_tokenize("tokenize", m, text, len, o.add_bos, o.parse_special, &ids) : -1;
    if (n >= 0) print_ids(ids, n);
    free(ids);
    rf_model_free(m);
    free(text);
    return n >= 0 ? 0 : CLI_EXIT_FAIL;
}

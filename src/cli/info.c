/* rocmforge info: a summary of a GGUF file, from the gguf module. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "gguf/info.h"

static const char info_usage[] =
    "usage: rocmforge info FILE\n"
    "\n"
    "Describes a GGUF file: version, architecture, hyper-parameters, tokenizer, chat\n"
    "template, tensor types (count and bytes) and parameter count.\n"
    "\n"
    "  -h, --help  show this help\n";

static const struct option info_longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_info(int argc, char **argv)
{
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", info_longopts, NULL)) != -1) {
        if (c != 'h') return cli_bad_option("info", c, argv);
        fputs(info_usage, stdout);
        return 0;
    }
    if (argc - optind != 1) return cli_usage_error("info", "expected one FILE");
    if (rf_gguf_print_info(argv[optind], stdout) != RF_OK)
        return cli_fail("info", "%s", rf_last_error());
    return 0;
}

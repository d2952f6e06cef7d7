/* rocmforge: one binary, one subcommand per task. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int rf_cmd_logits(int argc, char **argv); /* cmd_logits.c */

struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary; /* NULL: not listed in the help */
};

static const struct subcommand commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"info", cmd_info, "describe a GGUF file"},
    {"bench", cmd_bench, "measure prompt and generation speed"},
    {"serve", cmd_serve, "serve the model over HTTP (OpenAI-compatible)"},
    {"chat", cmd_chat, "talk with the model in the terminal"},
    {"models", cmd_models, "list the GGUF models in the models cache"},
    {"perplexity", cmd_perplexity, "perplexity of a text; KL divergence against another model"},
    {"chat-template", cmd_chat_template, NULL}, /* for the chat template tests */
    {"logits", rf_cmd_logits, NULL},            /* for reference comparisons */
};

static void usage(FILE *out)
{
    fprintf(out, "usage: rocmforge <subcommand> [options]\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].summary)
            fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`rocmforge <subcommand> --help` describes its options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("rocmforge 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    if (name[0] == '-')
        return cli_usage_error(NULL, "unknown option '%s' before the subcommand", name);
    return cli_usage_error(NULL, "unknown subcommand '%s'", name);
}

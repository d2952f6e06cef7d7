/* rocmforge chat-template (not listed in the help): renders a conversation with the
 * model's chat template, for tests/py/test_chat_template.py.
 *
 * Messages file: one message per line, "ROLE<TAB>CONTENT", where CONTENT writes a
 * newline as \n, a tab as \t, a carriage return as \r and a backslash as \\. An
 * empty line separates conversations; their renderings are separated by a NUL byte. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char chat_template_usage[] =
    "usage: rocmforge chat-template [options] --messages FILE\n"
    "\n"
    "Prints the conversation in FILE rendered by the chat template, without a newline.\n"
    "FILE has one message per line: ROLE, a tab, CONTENT (escapes: \\n \\t \\r \\\\).\n"
    "An empty line separates conversations; their renderings are separated by a NUL byte.\n"
    "\n"
    "  -m, --model FILE          GGUF model (default: as for `rocmforge run`)\n"
    "      --chat-template NAME  force a template: chatml, llama2, llama3, mistral, gemma,\n"
    "                            phi3, zephyr (default: detect from the model)\n"
    "      --messages FILE       the conversation\n"
    "      --no-generation-prompt  do not open an assistant turn at the end\n"
    "  -h, --help                show this help\n";

enum {
    OPT_TEMPLATE = 256,
    OPT_MESSAGES,
    OPT_NO_GEN
};

static const struct option ct_longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"chat-template", required_argument, NULL, OPT_TEMPLATE},
    {"messages", required_argument, NULL, OPT_MESSAGES},
    {"no-generation-prompt", no_argument, NULL, OPT_NO_GEN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct ct_opts {
    const char *model, *name, *messages;
    bool add_assistant;
};

/* Resolves the escapes of s in place. */
static bool unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\') {
            *w++ = *r;
            continue;
        }
        r++;
        switch (*r) {
        case 'n': *w++ = '\n'; break;
        case 't': *w++ = '\t'; break;
        case 'r': *w++ = '\r'; break;
        case '\\': *w++ = '\\'; break;
        default: return false;
        }
    }
    *w = '\0';
    return true;
}

/* Splits one conversation off *text in place (at most one message per line), up to
 * an empty line or the end; *text moves past it. */
static int parse_messages(char **text, int *line, struct rf_chat_message *msgs, size_t *n)
{
    size_t k = 0;
    char *p = *text;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        ++*line;
        if (*p == '\0') { /* empty line: end of this conversation */
            p = nl + 1;
            break;
        }
        char *tab = strchr(p, '\t');
        if (!tab || tab == p || !unescape(tab + 1))
            return cli_fail("chat-template",
                            "messages line %d: expected ROLE<TAB>CONTENT with "
                            "escapes \\n \\t \\r \\\\",
                            *line);
        *tab = '\0';
        msgs[k++] = (struct rf_chat_message){p, tab + 1};
        p = nl ? nl + 1 : p + strlen(p);
    }
    *n = k;
    *text = p;
    return 0;
}

static int parse_ct(int argc, char **argv, struct ct_opts *o)
{
    *o = (struct ct_opts){.add_assistant = true};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":m:h", ct_longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(chat_template_usage, stdout); return 0;
        case 'm': o->model = optarg; break;
        case OPT_TEMPLATE: o->name = optarg; break;
        case OPT_MESSAGES: o->messages = optarg; break;
        case OPT_NO_GEN: o->add_assistant = false; break;
        default: return cli_bad_option("chat-template", c, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("chat-template", "unexpected argument '%s'", argv[optind]);
    if (!o->messages) return cli_usage_error("chat-template", "--messages FILE is required");
    return -1;
}

static int render(const struct ct_opts *o, const struct rf_model *m,
                  const struct rf_chat_message *msgs, size_t n)
{
    const int32_t len = rf_chat_apply(m, o->name, msgs, n, o->add_assistant, NULL, 0);
    if (len < 0) return cli_fail("chat-template", "%s", rf_last_error());
    char *out = malloc((size_t)len + 1);
    if (!out) return cli_fail("chat-template", "out of memory");
    rf_chat_apply(m, o->name, msgs, n, o->add_assistant, out, len + 1);
    const bool ok = fwrite(out, 1, (size_t)len, stdout) == (size_t)len && fflush(stdout) == 0;
    free(out);
    return ok ? 0 : cli_fail("chat-template", "cannot write to stdout");
}

int cmd_chat_template(int argc, char **argv)
{
    struct ct_opts o;
    int rc = parse_ct(argc, argv, &o);
    if (rc >= 0) return rc;
    char path[4096];
    if (!cli_model_path("chat-template", o.model, path, sizeof path)) return CLI_EXIT_FAIL;
    size_t len;
    char *text = cli_read_file(o.messages, &len);
    if (!text) return cli_fail("chat-template", "cannot read %s", o.messages);
    struct rf_chat_message *msgs = calloc(len + 1, sizeof *msgs);
    struct rf_model *m = msgs ? cli_load_model("chat-template", path, 1) : NULL;
    rc = msgs ? CLI_EXIT_FAIL : cli_fail("chat-template", "out of memory");
    int line = 0;
    bool first = true;
    for (char *p = text; m && (first || *p); first = false) {
        size_t n = 0;
        if (!first) putchar('\0');
        rc = parse_messages(&p, &line, msgs, &n);
        if (rc == 0) rc = render(&o, m, msgs, n);
        if (rc) break;
    }
    rf_model_free(m);
    free(msgs);
    free(text);
    return rc;
}

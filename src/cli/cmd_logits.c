/* `rocmforge logits`: teacher-forced logits of every position of a token list, written
 * as raw little-endian float32 (n_tokens x n_vocab). Used by the tests to compare the
 * engine with independent references. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rocmforge.h"

int rf_cmd_logits(int argc, char **argv);

static void logits_usage(FILE *f)
{
    fprintf(f, "usage: rocmforge logits -m FILE --tokens ID,ID,... --out FILE [-t THREADS] "
               "[-b BATCH]\n"
               "Writes the logits of every position as float32 (n_tokens x n_vocab).\n");
}

static int parse_token_list(const char *s, rf_token **out)
{
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    rf_token *ids = malloc(sizeof *ids * (size_t)n);
    if (!ids) return -1;
    int k = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',')) {
            free(ids);
            return -1;
        }
        ids[k++] = (rf_token)v;
        p = *end ? end + 1 : end;
    }
    *out = ids;
    return k;
}

static int write_logits(struct rf_context *ctx, int n, int n_vocab, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "error: cannot write %s\n", path);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        if (fwrite(rf_get_logits(ctx, i), sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab)
            rc = 1;
    if (fclose(f) != 0) rc = 1;
    if (rc) fprintf(stderr, "error: writing %s failed\n", path);
    return rc;
}

int rf_cmd_logits(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokens", required_argument, 0, 'k'},
                                         {"out", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 't'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model_path = NULL, *tokens = NULL, *out = NULL;
    int threads = 0, batch = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:k:o:t:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'k': tokens = optarg; break;
        case 'o': out = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'h': logits_usage(stdout); return 0;
        default: logits_usage(stderr); return 2;
        }
    }
    if (!model_path || !tokens || !out) {
        logits_usage(stderr);
        return 2;
    }
    rf_token *ids = NULL;
    const int n = parse_token_list(tokens, &ids);
    if (n <= 0) {
        fprintf(stderr, "error: --tokens must be a comma-separated list of integers\n");
        return 2;
    }
    struct rf_model_params mp = rf_model_default_params();
    mp.n_threads = threads;
    struct rf_model *m = NULL;
    struct rf_context *ctx = NULL;
    int rc = 1;
    if (rf_model_load(model_path, &mp, &m) != RF_OK) goto fail;
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = n;
    cp.n_batch = batch;
    if (rf_context_init(m, &cp, &ctx) != RF_OK) goto fail;
    if (rf_decode(ctx, ids, n, true) != RF_OK) goto fail;
    rc = write_logits(ctx, n, rf_model_n_vocab(m), out);
    goto done;
fail:
    fprintf(stderr, "error: %s\n", rf_last_error());
done:
    rf_context_free(ctx);
    rf_model_free(m);
    free(ids);
    return rc;
}

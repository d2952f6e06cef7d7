/* Minimal generation through the public API: greedy decoding of N tokens.
 *   simple MODEL.gguf "PROMPT" N
 * Prints the generated text (not the prompt) to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rocmforge.h"

static int fail(const char *what)
{
    fprintf(stderr, "simple: %s: %s\n", what, rf_last_error());
    return 1;
}

/* Greedy loop: sample, stop at end of generation, print, feed the token back. */
static int generate(struct rf_model *model, struct rf_context *ctx, const rf_token *prompt,
                    int32_t n_prompt, int n_predict)
{
    struct rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f; /* greedy */
    struct rf_sampler *smp = rf_sampler_new(&sp, rf_model_n_vocab(model));
    struct rf_detok *dt = rf_detok_new(model, false);
    int rc = 1;
    if (!smp || !dt) goto done;
    if (rf_decode(ctx, prompt, n_prompt, false) != RF_OK) {
        rc = fail("decode");
        goto done;
    }
    const char *text = NULL;
    size_t k;
    for (int i = 0; i < n_predict; i++) {
        const rf_token t = rf_sampler_sample(smp, rf_get_logits(ctx, -1));
        if (t < 0 || rf_model_is_eog(model, t)) break;
        k = rf_detok_push(dt, t, &text);
        fwrite(text, 1, k, stdout);
        fflush(stdout);
        if (i + 1 == n_predict || rf_context_n_past(ctx) >= rf_context_n_ctx(ctx)) break;
        if (rf_decode(ctx, &t, 1, false) != RF_OK) {
            rc = fail("decode");
            goto done;
        }
    }
    k = rf_detok_flush(dt, &text);
    fwrite(text, 1, k, stdout);
    rc = 0;
done:
    rf_detok_free(dt);
    rf_sampler_free(smp);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT N_TOKENS\n", argv[0]);
        return 2;
    }
    const int n_predict = atoi(argv[3]);
    struct rf_model *model = NULL;
    struct rf_context *ctx = NULL;
    if (rf_model_load(argv[1], NULL, &model) != RF_OK) return fail("load");
    if (rf_context_init(model, NULL, &ctx) != RF_OK) {
        rf_model_free(model);
        return fail("context");
    }
    /* Every token covers at least one byte: len + 8 ids hold the text, BOS and EOS.
     * Special-token text is parsed; BOS is added when the model asks for it. */
    const size_t len = strlen(argv[2]);
    rf_token *prompt = malloc((len + 8) * sizeof *prompt);
    const int32_t n =
        prompt ? rf_tokenize(model, argv[2], len, prompt, (int32_t)len + 8, true, true) : -1;
    int rc = 1;
    if (n > 0 && n <= (int32_t)len + 8 && n <= rf_context_n_ctx(ctx))
        rc = generate(model, ctx, prompt, n, n_predict);
    else
        fprintf(stderr, "simple: cannot tokenize the prompt, or it does not fit: %s\n",
                rf_last_error());
    free(prompt);
    rf_context_free(ctx);
    rf_model_free(model);
    return rc;
}

/* Public tokenizer entry points: the model's vocabulary behind include/rocmforge.h. */
#include <stdlib.h>

#include "core/status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

int32_t rf_tokenize(const struct rf_model *m, const char *text, size_t len, rf_token *ids,
                    int32_t cap, bool add_bos, bool parse_special)
{
    if (!m || (!text && len) || cap < 0 || (!ids && cap)) {
        rf_fail(RF_STATUS_INVALID_ARG, "tokenize: invalid arguments");
        return -1;
    }
    return rf_vocab_tokenize(m->vocab, text ? text : "", len, ids, cap, add_bos, parse_special);
}

int32_t rf_token_to_piece(const struct rf_model *m, rf_token t, char *buf, int32_t cap,
                          bool render_special)
{
    return rf_vocab_token_to_piece(m->vocab, t, buf, cap, render_special);
}

rf_token rf_model_bos(const struct rf_model *m) { return rf_vocab_bos(m->vocab); }
rf_token rf_model_eos(const struct rf_model *m) { return rf_vocab_eos(m->vocab); }
bool rf_model_is_eog(const struct rf_model *m, rf_token t) { return rf_vocab_is_eog(m->vocab, t); }

/* The public streaming detokenizer is the vocabulary's, under the public name. */
struct rf_detok {
    struct rf_vocab_detok *impl;
};

struct rf_detok *rf_detok_new(const struct rf_model *m, bool render_special)
{
    struct rf_detok *d = malloc(sizeof *d);
    if (!d) return NULL;
    d->impl = rf_vocab_detok_new(m->vocab, render_special);
    if (!d->impl) {
        free(d);
        return NULL;
    }
    return d;
}

size_t rf_detok_push(struct rf_detok *d, rf_token t, const char **out)
{
    return rf_vocab_detok_push(d->impl, t, out);
}

size_t rf_detok_flush(struct rf_detok *d, const char **out)
{
    return rf_vocab_detok_flush(d->impl, out);
}

void rf_detok_free(struct rf_detok *d)
{
    if (!d) return;
    rf_vocab_detok_free(d->impl);
    free(d);
}

/* Text to tokens: special tokens first, then the vocab's tokenizer on the raw text
 * between them; plus the vocab's accessors. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/vocab_impl.h"

/* SPM adds the space prefix to the first raw fragment and to each one that follows a
 * special token (llama.cpp's rule). */
static rf_status run_fragments(const struct rf_vocab *v, const char *text, const struct rf_fragments *f,
                               struct rf_ids *out)
{
    bool prev_special = true;
    for (size_t i = 0; i < f->n; i++) {
        const struct rf_fragment *fr = &f->v[i];
        if (fr->token >= 0) {
            RF_TRY(rf_ids_push(out, fr->token));
            prev_special = true;
            continue;
        }
        if (v->kind == RF_VOCAB_SPM)
            RF_TRY(rf_spm_tokenize(v, text + fr->off, fr->len, v->add_space_prefix && prev_special, out));
        else
            RF_TRY(rf_bpe_tokenize(v, text + fr->off, fr->len, out));
        prev_special = false;
    }
    return RF_OK;
}

static rf_status tokenize(const struct rf_vocab *v, const char *text, size_t len, bool add_special,
                          bool parse_special, struct rf_ids *out)
{
    struct rf_fragments f = {0};
    rf_status st = rf_special_partition(v, text, len, parse_special, &f);
    if (st == RF_OK && add_special && v->add_bos) st = rf_ids_push(out, v->bos);
    if (st == RF_OK) st = run_fragments(v, text, &f, out);
    if (st == RF_OK && add_special && v->add_eos) st = rf_ids_push(out, v->eos);
    free(f.v);
    return st;
}

int32_t rf_vocab_tokenize(const struct rf_vocab *v, const char *text, size_t len, rf_token *ids,
                          int32_t cap, bool add_bos, bool parse_special)
{
    if (!v || (!text && len > 0) || cap < 0 || (!ids && cap > 0)) {
        rf_fail(RF_STATUS_INVALID_ARG, "tokenize: invalid argument (vocab %p, text %p, len %zu, ids %p, cap %d)",
                (const void *)v, (const void *)text, len, (void *)ids, cap);
        return -1;
    }
    struct rf_ids out = {0};
    const rf_status st = tokenize(v, text, len, add_bos, parse_special, &out);
    if (st == RF_OK && out.n > INT32_MAX)
        rf_fail(RF_STATUS_INVALID_ARG, "tokenize: %zu tokens do not fit an int32 count", out.n);
    if (st != RF_OK || out.n > INT32_MAX) {
        free(out.v);
        return -1;
    }
    const size_t n = out.n < (size_t)cap ? out.n : (size_t)cap;
    if (n) memcpy(ids, out.v, n * sizeof *ids);
    free(out.v);
    return (int32_t)out.n;
}

/* ---- accessors ---- */

static bool valid(const struct rf_vocab *v, rf_token t) { return v && t >= 0 && t < v->n_tokens; }

enum rf_vocab_kind rf_vocab_kind(const struct rf_vocab *v) { return v->kind; }
int32_t rf_vocab_n_tokens(const struct rf_vocab *v) { return v->n_tokens; }
rf_token rf_vocab_bos(const struct rf_vocab *v) { return v->bos; }
rf_token rf_vocab_eos(const struct rf_vocab *v) { return v->eos; }
rf_token rf_vocab_eot(const struct rf_vocab *v) { return v->eot; }
rf_token rf_vocab_unk(const struct rf_vocab *v) { return v->unk; }
rf_token rf_vocab_pad(const struct rf_vocab *v) { return v->pad; }
bool rf_vocab_add_bos(const struct rf_vocab *v) { return v->add_bos; }
bool rf_vocab_add_eos(const struct rf_vocab *v) { return v->add_eos; }
bool rf_vocab_add_space_prefix(const struct rf_vocab *v) { return v->add_space_prefix; }
const char *rf_vocab_pre(const struct rf_vocab *v) { return v->pre; }

bool rf_vocab_is_eog(const struct rf_vocab *v, rf_token t) { return valid(v, t) && v->eog[t]; }

bool rf_vocab_is_control(const struct rf_vocab *v, rf_token t)
{
    return valid(v, t) && (v->toks[t].attr & RF_TOKEN_ATTR_CONTROL);
}

uint32_t rf_vocab_attr(const struct rf_vocab *v, rf_token t) { return valid(v, t) ? v->toks[t].attr : 0; }

const char *rf_vocab_token_text(const struct rf_vocab *v, rf_token t, size_t *len)
{
    if (!valid(v, t)) return NULL;
    if (len) *len = v->toks[t].len;
    return v->text + v->toks[t].off;
}

rf_token rf_vocab_find(const struct rf_vocab *v, const char *text, size_t len)
{
    return rf_strmap_get(&v->by_text, text, len);
}

/* Byte-level BPE: decode the text as llama.cpp does (bad bytes become U+FFFD), split it
 * into words with the pre-tokenizer, map each word's bytes to the GPT-2 alphabet, then
 * merge adjacent symbols by merge rank, lowest first. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/merge.h"
#include "tokenizer/vocab_impl.h"

/* Work buffers of one call. */
struct bpe_ctx {
    const struct rf_vocab *v;
    struct rf_bytes text;  /* the text re-encoded from its code points */
    struct rf_bytes match; /* the same, with stand-ins PCRE2 accepts (same byte length) */
    struct rf_bytes word;  /* one word in the byte-level alphabet */
    struct rf_bytes key;   /* "left right" merge key */
    struct rf_sym *syms;
    size_t syms_cap;
    struct rf_heap heap;
    struct rf_ids *out;
};

/* llama.cpp turns each bad byte into U+FFFD and re-encodes the code points, overlong
 * forms and surrogates included. Code points above U+10FFFF (where llama.cpp stops
 * with an exception) are treated as bad bytes here. Surrogates get a private-use
 * stand-in in the matching text: both are "other" to every pre-tokenizer regex. */
static rf_status normalize(struct bpe_ctx *c, const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    c->text.n = c->match.n = 0;
    for (size_t i = 0; i < n;) {
        const size_t at = i;
        uint32_t cp = rf_utf8_decode_lenient(u, n, &i);
        if (cp > 0x10FFFF) {
            cp = 0xFFFD;
            i = at + 1;
        }
        char enc[4];
        const size_t len = rf_utf8_encode(cp, enc);
        RF_TRY(rf_bytes_append(&c->text, enc, len));
        if (cp >= 0xD800 && cp <= 0xDFFF) rf_utf8_encode(0xE000, enc);
        RF_TRY(rf_bytes_append(&c->match, enc, len));
    }
    return RF_OK;
}

static rf_status to_bytelevel(struct bpe_ctx *c, const char *s, size_t n)
{
    c->word.n = 0;
    for (size_t i = 0; i < n; i++) {
        char enc[4];
        const size_t len = rf_utf8_encode(rf_bytelevel_cp((uint8_t)s[i]), enc);
        RF_TRY(rf_bytes_append(&c->word, enc, len));
    }
    return RF_OK;
}

/* Rank of merging symbols a and b, -1 when the pair is no merge. Merges split at the
 * first space after their first byte, so a left part with a later space never matches. */
static rf_status rank_of(struct bpe_ctx *c, const struct rf_sym *a, const struct rf_sym *b, int32_t *rank)
{
    const char *w = c->word.p;
    *rank = -1;
    if (a->n > 1 && memchr(w + a->off + 1, ' ', a->n - 1)) return RF_OK;
    c->key.n = 0;
    RF_TRY(rf_bytes_append(&c->key, w + a->off, a->n));
    RF_TRY(rf_bytes_append(&c->key, " ", 1));
    RF_TRY(rf_bytes_append(&c->key, w + b->off, b->n));
    *rank = rf_strmap_get(&c->v->merge_rank, c->key.p, c->key.n);
    return RF_OK;
}

static rf_status try_bigram(void *ctx, int32_t left, int32_t right)
{
    struct bpe_ctx *c = ctx;
    if (left < 0 || right < 0) return RF_OK;
    int32_t rank;
    RF_TRY(rank_of(c, &c->syms[left], &c->syms[right], &rank));
    if (rank < 0) return RF_OK;
    const struct rf_bigram b = {.key = rank, .left = left, .right = right,
                                .size = c->syms[left].n + c->syms[right].n};
    return rf_heap_push(&c->heap, b);
}

/* A symbol that is no token falls back to the single bytes of its text that are
 * tokens (llama.cpp's rule; the others are dropped). */
static rf_status emit_symbol(struct bpe_ctx *c, const char *s, size_t n)
{
    const rf_token t = rf_strmap_get(&c->v->by_text, s, n);
    if (t >= 0) return rf_ids_push(c->out, t);
    for (size_t i = 0; i < n; i++) {
        const rf_token b = rf_strmap_get(&c->v->by_text, s + i, 1);
        if (b >= 0) RF_TRY(rf_ids_push(c->out, b));
    }
    return RF_OK;
}

static rf_status tokenize_word(struct bpe_ctx *c, const char *s, size_t n)
{
    RF_TRY(to_bytelevel(c, s, n));
    const char *w = c->word.p;
    if (c->v->ignore_merges) {
        const rf_token t = rf_strmap_get(&c->v->by_text, w, c->word.n);
        if (t >= 0) return rf_ids_push(c->out, t);
    }
    const int32_t n_syms = rf_syms_init(w, c->word.n, &c->syms, &c->syms_cap);
    if (n_syms < 0) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    RF_TRY(rf_merge_symbols(c->syms, n_syms, &c->heap, try_bigram, c));
    for (int32_t i = 0; i < n_syms; i++)
        if (c->syms[i].n > 0) RF_TRY(emit_symbol(c, w + c->syms[i].off, c->syms[i].n));
    return RF_OK;
}

static rf_status run(struct bpe_ctx *c, const char *text, size_t len, struct rf_offsets *ends)
{
    RF_TRY(normalize(c, text, len));
    if (c->text.n == 0) return RF_OK;
    RF_TRY(rf_pretok_split(c->v->pretok, c->match.p, c->match.n, ends));
    size_t start = 0;
    for (size_t w = 0; w < ends->n; w++) {
        RF_TRY(tokenize_word(c, c->text.p + start, ends->v[w] - start));
        start = ends->v[w];
    }
    return RF_OK;
}

rf_status rf_bpe_tokenize(const struct rf_vocab *v, const char *text, size_t len, struct rf_ids *out)
{
    struct bpe_ctx c = {.v = v, .out = out};
    struct rf_offsets ends = {0};
    const rf_status st = run(&c, text, len, &ends);
    free(c.text.p);
    free(c.match.p);
    free(c.word.p);
    free(c.key.p);
    free(c.syms);
    free(c.heap.v);
    free(ends.v);
    return st;
}

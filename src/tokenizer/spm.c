/* SentencePiece-style tokenizing (llama.cpp's "llama" vocab): spaces become U+2581,
 * adjacent symbols merge while their concatenation is a token, highest score first;
 * what no token covers falls back to <0xNN> byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/merge.h"
#include "tokenizer/vocab_impl.h"

struct spm_ctx {
    const struct rf_vocab *v;
    const char *s; /* the escaped text */
    struct rf_sym *syms;
    size_t syms_cap;
    struct rf_heap heap;
};

static rf_status try_bigram(void *ctx, int32_t left, int32_t right)
{
    struct spm_ctx *c = ctx;
    if (left < 0 || right < 0) return RF_OK;
    const struct rf_sym *l = &c->syms[left], *r = &c->syms[right];
    const rf_token t = rf_strmap_get(&c->v->by_text, c->s + l->off, l->n + r->n);
    if (t < 0) return RF_OK;
    const struct rf_bigram b = {.key = -(double)c->v->toks[t].score, .left = left, .right = right,
                                .size = l->n + r->n};
    return rf_heap_push(&c->heap, b);
}

/* <0xNN>, else the byte as a one-byte token, else the unknown token. */
static rf_status push_byte(const struct rf_vocab *v, uint8_t b, struct rf_ids *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
    rf_token t = rf_strmap_get(&v->by_text, name, sizeof name);
    if (t < 0) t = rf_strmap_get(&v->by_text, (const char *)&b, 1);
    if (t < 0) t = v->unk;
    if (t < 0) return rf_fail(RF_STATUS_UNSUPPORTED, "tokenize: byte 0x%02X has no token and the vocab has no unknown token", b);
    return rf_ids_push(out, t);
}

static rf_status emit(const struct spm_ctx *c, const struct rf_sym *sym, struct rf_ids *out)
{
    const rf_token t = rf_strmap_get(&c->v->by_text, c->s + sym->off, sym->n);
    if (t >= 0) return rf_ids_push(out, t);
    for (uint32_t i = 0; i < sym->n; i++) RF_TRY(push_byte(c->v, (uint8_t)c->s[sym->off + i], out));
    return RF_OK;
}

/* Escapes the fragment: optional leading space, then every space as U+2581. */
static rf_status escape(const char *text, size_t len, bool prefix, struct rf_bytes *b)
{
    static const char bar[3] = {'\xe2', '\x96', '\x81'};
    if (prefix) RF_TRY(rf_bytes_append(b, bar, 3));
    size_t i = 0;
    while (i < len) {
        const char *sp = memchr(text + i, ' ', len - i);
        const size_t run = sp ? (size_t)(sp - (text + i)) : len - i;
        RF_TRY(rf_bytes_append(b, text + i, run));
        i += run;
        if (i < len) {
            RF_TRY(rf_bytes_append(b, bar, 3));
            i++;
        }
    }
    return RF_OK;
}

static rf_status run(struct spm_ctx *c, struct rf_bytes *esc, struct rf_ids *out)
{
    c->s = esc->p;
    const int32_t n_syms = rf_syms_init(esc->p, esc->n, &c->syms, &c->syms_cap);
    if (n_syms < 0) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    RF_TRY(rf_merge_symbols(c->syms, n_syms, &c->heap, try_bigram, c));
    for (int32_t i = 0; i < n_syms; i++)
        if (c->syms[i].n > 0) RF_TRY(emit(c, &c->syms[i], out));
    return RF_OK;
}

rf_status rf_spm_tokenize(const struct rf_vocab *v, const char *text, size_t len, bool prefix,
                          struct rf_ids *out)
{
    struct spm_ctx c = {.v = v};
    struct rf_bytes esc = {0};
    rf_status st = escape(text, len, prefix, &esc);
    if (st == RF_OK && esc.n > 0) st = run(&c, &esc, out);
    free(esc.p);
    free(c.syms);
    free(c.heap.v);
    return st;
}

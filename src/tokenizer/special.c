/* Special tokens in the input text. llama.cpp takes the special tokens one at a time,
 * longest text first, and splits every remaining raw fragment at each non-overlapping
 * occurrence, left to right. That is reproduced here in one pass: all occurrences are
 * found with a sorted table, then claimed in (priority, position) order while their
 * bytes are still free. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/vocab_impl.h"

static bool is_special_attr(uint32_t a)
{
    return a & (RF_TOKEN_ATTR_CONTROL | RF_TOKEN_ATTR_USER_DEFINED | RF_TOKEN_ATTR_UNKNOWN);
}

static const uint8_t *tok_text(const struct rf_vocab *v, rf_token t) { return (const uint8_t *)v->text + v->toks[t].off; }

/* Sort entries carry their text so that the comparators need no context. */
struct entry {
    const uint8_t *text;
    uint32_t len;
    rf_token id;
    int32_t rank; /* position in matching order */
};

static int cmp_text(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    const int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* llama.cpp's order: longer text first; equal lengths by id. */
static int cmp_prio(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static rf_status alloc_tables(struct rf_special *s, int32_t n)
{
    const size_t m = (size_t)(n ? n : 1);
    s->ids = malloc(m * sizeof *s->ids);
    s->prio = malloc(m * sizeof *s->prio);
    s->by_prio = malloc(m * sizeof *s->by_prio);
    if (!s->ids || !s->prio || !s->by_prio)
        return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory for special tokens");
    s->n = n;
    return RF_OK;
}

rf_status rf_special_build(struct rf_vocab *v)
{
    struct rf_special *s = &v->special;
    int32_t n = 0;
    for (rf_token t = 0; t < v->n_tokens; t++) n += is_special_attr(v->toks[t].attr);
    struct entry *e = malloc((size_t)(n ? n : 1) * sizeof *e);
    if (!e) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory for special tokens");
    int32_t k = 0;
    for (rf_token t = 0; t < v->n_tokens; t++)
        if (is_special_attr(v->toks[t].attr)) e[k++] = (struct entry){tok_text(v, t), v->toks[t].len, t, 0};
    const rf_status st = alloc_tables(s, n);
    if (st != RF_OK) {
        free(e);
        return st;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_prio);
    for (int32_t i = 0; i < n; i++) {
        e[i].rank = i;
        s->by_prio[i] = e[i].id;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_text);
    for (int32_t i = 0; i < n; i++) {
        s->ids[i] = e[i].id;
        s->prio[i] = e[i].rank;
    }
    free(e);
    k = 0;
    for (int c = 0; c <= 256; c++) {
        while (k < n && tok_text(v, s->ids[k])[0] < c) k++;
        s->first[c] = k;
    }
    return RF_OK;
}

void rf_special_free(struct rf_special *s)
{
    free(s->ids);
    free(s->prio);
    free(s->by_prio);
    memset(s, 0, sizeof *s);
}

/* ---- matching ---- */

/* Byte d of token t's text, -1 past its end (shorter texts sort first). */
static int byte_at(const struct rf_vocab *v, rf_token t, uint32_t d)
{
    return d < v->toks[t].len ? tok_text(v, t)[d] : -1;
}

/* Within [*lo, *hi), all sharing the first d bytes, keeps those whose byte d is c. */
static void narrow(const struct rf_vocab *v, const rf_token *ids, int32_t *lo, int32_t *hi,
                   uint32_t d, int c)
{
    int32_t a = *lo, b = *hi;
    while (a < b) { /* first with byte >= c */
        const int32_t m = a + (b - a) / 2;
        if (byte_at(v, ids[m], d) < c) a = m + 1;
        else b = m;
    }
    int32_t e = a;
    b = *hi;
    while (e < b) { /* first with byte > c */
        const int32_t m = e + (b - e) / 2;
        if (byte_at(v, ids[m], d) <= c) e = m + 1;
        else b = m;
    }
    *lo = a;
    *hi = e;
}

struct occ_list {
    uint64_t *v; /* prio << 32 | position */
    size_t n, cap;
};

static rf_status occ_push(struct occ_list *o, uint64_t x)
{
    if (o->n == o->cap) {
        const size_t c = o->cap ? o->cap * 2 : 64;
        uint64_t *p = realloc(o->v, c * sizeof *p);
        if (!p) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
        o->v = p;
        o->cap = c;
    }
    o->v[o->n++] = x;
    return RF_OK;
}

static bool eligible(const struct rf_vocab *v, rf_token t, bool parse_special)
{
    return parse_special || !(v->toks[t].attr & (RF_TOKEN_ATTR_CONTROL | RF_TOKEN_ATTR_UNKNOWN));
}

/* Every special text that starts at position i. */
static rf_status find_at(const struct rf_vocab *v, const uint8_t *s, size_t len, size_t i,
                         bool parse_special, struct occ_list *o)
{
    const struct rf_special *sp = &v->special;
    int32_t lo = sp->first[s[i]], hi = sp->first[s[i] + 1];
    for (uint32_t d = 1; lo < hi; d++) {
        const rf_token t = sp->ids[lo];
        if (v->toks[t].len == d) {
            if (eligible(v, t, parse_special)) RF_TRY(occ_push(o, (uint64_t)sp->prio[lo] << 32 | i));
            lo++;
        }
        if (i + d >= len) break;
        narrow(v, sp->ids, &lo, &hi, d, s[i + d]);
    }
    return RF_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static bool is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

enum { FREE = 0, CLAIMED = 1, DROPPED = 2 };

/* Claims occurrences in priority order; a claimed token's start holds its id. */
static void claim(const struct rf_vocab *v, const uint8_t *s, size_t len, const struct occ_list *o,
                  const rf_token *by_prio, uint8_t *state, rf_token *tok_at)
{
    for (size_t k = 0; k < o->n; k++) {
        const rf_token t = by_prio[o->v[k] >> 32];
        const size_t pos = (size_t)(o->v[k] & 0xFFFFFFFFu), n = v->toks[t].len;
        bool free_span = true;
        for (size_t j = pos; j < pos + n && free_span; j++) free_span = state[j] == FREE;
        if (!free_span) continue;
        memset(state + pos, CLAIMED, n);
        tok_at[pos] = t;
        if (v->toks[t].attr & RF_TOKEN_ATTR_LSTRIP)
            for (size_t j = pos; j > 0 && state[j - 1] == FREE && is_space(s[j - 1]); j--) state[j - 1] = DROPPED;
        if (v->toks[t].attr & RF_TOKEN_ATTR_RSTRIP)
            for (size_t j = pos + n; j < len && state[j] == FREE && is_space(s[j]); j++) state[j] = DROPPED;
    }
}

static rf_status frag_push(struct rf_fragments *f, size_t off, size_t len, rf_token t)
{
    if (f->n == f->cap) {
        const size_t c = f->cap ? f->cap * 2 : 16;
        struct rf_fragment *p = realloc(f->v, c * sizeof *p);
        if (!p) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
        f->v = p;
        f->cap = c;
    }
    f->v[f->n++] = (struct rf_fragment){.off = off, .len = len, .token = t};
    return RF_OK;
}

static rf_status emit(const struct rf_vocab *v, size_t len, const uint8_t *state, const rf_token *tok_at,
                      struct rf_fragments *out)
{
    size_t i = 0;
    while (i < len) {
        if (state[i] == DROPPED) {
            i++;
        } else if (state[i] == CLAIMED) {
            RF_TRY(frag_push(out, i, v->toks[tok_at[i]].len, tok_at[i]));
            i += v->toks[tok_at[i]].len;
        } else {
            size_t j = i;
            while (j < len && state[j] == FREE) j++;
            RF_TRY(frag_push(out, i, j - i, -1));
            i = j;
        }
    }
    return RF_OK;
}

rf_status rf_special_partition(const struct rf_vocab *v, const char *text, size_t len,
                               bool parse_special, struct rf_fragments *out)
{
    out->n = 0;
    if (len == 0) return RF_OK;
    if (len >= UINT32_MAX) return rf_fail(RF_STATUS_INVALID_ARG, "tokenize: input of %zu bytes is too long", len);
    const uint8_t *s = (const uint8_t *)text;
    struct occ_list o = {0};
    uint8_t *state = NULL;
    rf_token *tok_at = NULL;
    rf_status st = RF_OK;
    for (size_t i = 0; i < len && st == RF_OK; i++)
        if (v->special.first[s[i]] < v->special.first[s[i] + 1]) st = find_at(v, s, len, i, parse_special, &o);
    if (st != RF_OK || o.n == 0) {
        free(o.v);
        return st != RF_OK ? st : frag_push(out, 0, len, -1);
    }
    qsort(o.v, o.n, sizeof *o.v, cmp_u64);
    state = calloc(len, 1);
    tok_at = malloc(len * sizeof *tok_at);
    if (!state || !tok_at) {
        st = rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    claim(v, s, len, &o, v->special.by_prio, state, tok_at);
    st = emit(v, len, state, tok_at, out);
done:
    free(o.v);
    free(state);
    free(tok_at);
    return st;
}

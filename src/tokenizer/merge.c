/* Binary min-heap of bigrams and the initial symbol chain. */
#include <stdlib.h>

#include "core/status.h"
#include "tokenizer/merge.h"
#include "tokenizer/vocab_impl.h"

static int before(const struct rf_bigram *a, const struct rf_bigram *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

rf_status rf_heap_push(struct rf_heap *h, struct rf_bigram b)
{
    if (h->n == h->cap) {
        const size_t c = h->cap ? h->cap * 2 : 64;
        struct rf_bigram *p = realloc(h->v, c * sizeof *p);
        if (!p) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
        h->v = p;
        h->cap = c;
    }
    size_t i = h->n++;
    while (i > 0) {
        const size_t parent = (i - 1) / 2;
        if (!before(&b, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = b;
    return RF_OK;
}

struct rf_bigram rf_heap_pop(struct rf_heap *h)
{
    const struct rf_bigram top = h->v[0];
    const struct rf_bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c])) c++;
        if (!before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

int32_t rf_syms_init(const char *word, size_t n, struct rf_sym **syms, size_t *cap)
{
    if (n >= INT32_MAX) return -1;
    if (*cap < n) {
        struct rf_sym *p = realloc(*syms, n * sizeof *p);
        if (!p) return -1;
        *syms = p;
        *cap = n;
    }
    int32_t k = 0;
    for (size_t off = 0; off < n; k++) {
        size_t len = rf_utf8_lead_len((uint8_t)word[off]);
        if (len > n - off) len = n - off;
        (*syms)[k] = (struct rf_sym){.prev = k - 1, .next = off + len == n ? -1 : k + 1,
                                     .off = (uint32_t)off, .n = (uint32_t)len};
        off += len;
    }
    return k;
}

rf_status rf_merge_symbols(struct rf_sym *syms, int32_t n, struct rf_heap *heap,
                           rf_bigram_fn try_bigram, void *ctx)
{
    heap->n = 0;
    for (int32_t i = 1; i < n; i++) RF_TRY(try_bigram(ctx, i - 1, i));
    while (heap->n > 0) {
        const struct rf_bigram b = rf_heap_pop(heap);
        struct rf_sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = b.left;
        RF_TRY(try_bigram(ctx, l->prev, b.left));
        RF_TRY(try_bigram(ctx, b.left, l->next));
    }
    return RF_OK;
}

/* Small open-addressing hash map from byte strings to int32, and growable arrays. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/vocab_impl.h"

static rf_status grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return RF_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return rf_fail(RF_STATUS_NOMEM, "tokenizer: array too large");
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory (%zu bytes)", c * elem);
    *p = q;
    *cap = c;
    return RF_OK;
}

rf_status rf_ids_push(struct rf_ids *a, rf_token t)
{
    if (a->n == a->cap) RF_TRY(grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v));
    a->v[a->n++] = t;
    return RF_OK;
}

rf_status rf_bytes_append(struct rf_bytes *b, const void *src, size_t n)
{
    if (n == 0) return RF_OK;
    if (n > SIZE_MAX - b->n - 1) return rf_fail(RF_STATUS_NOMEM, "tokenizer: buffer too large");
    RF_TRY(grow((void **)&b->p, &b->cap, b->n + n + 1, 1));
    memcpy(b->p + b->n, src, n);
    b->n += n;
    b->p[b->n] = '\0';
    return RF_OK;
}

/* FNV-1a, 32 bits: keys are short token texts. */
static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

rf_status rf_strmap_init(struct rf_strmap *m, const char *blob, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2) {
        if (cap > SIZE_MAX / 4 / sizeof *m->slots)
            return rf_fail(RF_STATUS_NOMEM, "tokenizer: hash map too large");
        cap *= 2;
    }
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory for hash map");
    for (size_t i = 0; i < cap; i++) m->slots[i].val = -1;
    m->blob = blob;
    m->mask = cap - 1;
    m->n = 0;
    return RF_OK;
}

void rf_strmap_free(struct rf_strmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Capacity is fixed at init (at least twice the expected count), so puts never fail. */
int32_t rf_strmap_put(struct rf_strmap *m, uint64_t off, uint32_t len, int32_t val)
{
    const char *key = m->blob + off;
    const uint32_t h = hash_bytes(key, len);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        struct rf_strmap_slot *s = &m->slots[i];
        if (s->val < 0) {
            *s = (struct rf_strmap_slot){.hash = h, .len = len, .off = off, .val = val};
            m->n++;
            return val;
        }
        if (s->hash == h && s->len == len && memcmp(m->blob + s->off, key, len) == 0) return s->val;
    }
}

int32_t rf_strmap_get(const struct rf_strmap *m, const char *key, size_t len)
{
    if (!m->slots) return -1;
    const uint32_t h = hash_bytes(key, len);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const struct rf_strmap_slot *s = &m->slots[i];
        if (s->val < 0) return -1;
        if (s->hash == h && s->len == len && memcmp(m->blob + s->off, key, len) == 0) return s->val;
    }
}

/* Byte buffers, UTF-8 checks, constant-time comparison and stop strings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv_internal.h"

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Lead byte c: the character's length and the range of its second byte (RFC 3629:
 * no overlongs, no surrogates, at most U+10FFFF); 0 for a byte that cannot lead. */
static size_t utf8_lead(unsigned c, unsigned *lo, unsigned *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0) *lo = 0xa0;
        if (c == 0xed) *hi = 0x9f;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0) *lo = 0x90;
        if (c == 0xf4) *hi = 0x8f;
        return 4;
    }
    return 0;
}

/* Bytes of the well-formed prefix of the character at s: its length when complete
 * (*whole set), else how far it stays well formed (at least 1 byte consumed). */
static size_t utf8_scan(const unsigned char *s, size_t n, bool *whole)
{
    unsigned lo, hi;
    const size_t len = utf8_lead(s[0], &lo, &hi);
    *whole = len == 1;
    if (len <= 1) return 1;
    size_t k = 1;
    while (k < len && k < n) {
        const unsigned b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) break;
        k++;
    }
    *whole = k == len;
    return k;
}

void srv_utf8_sanitize(const char *s, size_t n, struct rf_strbuf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, start = 0;
    while (i < n) {
        bool whole;
        const size_t k = utf8_scan(u + i, n - i, &whole);
        if (!whole) {
            rf_strbuf_add(out, s + start, i - start);
            rf_strbuf_add(out, "\xef\xbf\xbd", 3);
            start = i + k;
        }
        i += k;
    }
    rf_strbuf_add(out, s + start, n - start);
}

bool srv_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        bool whole;
        i += utf8_scan(u + i, n - i, &whole);
        if (!whole) return false;
    }
    return true;
}

bool srv_secret_equal(const char *a, size_t na, const char *b, size_t nb)
{
    /* Every byte of b is visited whatever a holds; only b's length shows in timing. */
    volatile unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < nb; i++) {
        const unsigned char x = na ? (unsigned char)a[i % na] : 0;
        diff |= (unsigned char)(x ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

/* ---- stop strings ---- */

/* Longest k < len(stop) such that the last k bytes of p equal stop's first k, over
 * all stops; k starts a character (p is valid UTF-8 up to its end). */
static size_t partial_tail(const struct srv_stop *st, const char *p, size_t n)
{
    size_t best = 0;
    for (int32_t i = 0; i < st->n; i++) {
        const size_t sl = st->lens[i];
        for (size_t k = (sl - 1 < n ? sl - 1 : n); k > best; k--) {
            if ((p[n - k] & 0xc0) == 0x80) continue;
            if (memcmp(p + n - k, st->stops[i], k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

/* Earliest match of any stop string in p, or -1. */
static long first_match(const struct srv_stop *st, const char *p, size_t n)
{
    long best = -1;
    for (int32_t i = 0; i < st->n; i++) {
        const char *m = memmem(p, n, st->stops[i], st->lens[i]);
        if (m && (best < 0 || m - p < best)) best = m - p;
    }
    return best;
}

bool srv_stop_feed(struct srv_stop *st, const char *text, size_t n, struct rf_strbuf *out)
{
    if (st->hit) return true;
    if (st->n == 0) {
        rf_strbuf_add(out, text, n);
        return false;
    }
    struct rf_strbuf *pb = &st->pending;
    rf_strbuf_add(pb, text, n);
    if (pb->oom) {
        out->oom = true;
        return false;
    }
    const long m = first_match(st, pb->p ? pb->p : "", pb->len);
    if (m >= 0) {
        rf_strbuf_add(out, pb->p, (size_t)m);
        pb->len = 0;
        st->hit = true;
        return true;
    }
    const size_t keep = partial_tail(st, pb->p ? pb->p : "", pb->len);
    const size_t emit = pb->len - keep;
    rf_strbuf_add(out, pb->p, emit);
    if (emit) memmove(pb->p, pb->p + emit, keep);
    pb->len = keep;
    return false;
}

void srv_stop_flush(struct srv_stop *st, struct rf_strbuf *out)
{
    if (!st->hit && st->pending.len) rf_strbuf_add(out, st->pending.p, st->pending.len);
    st->pending.len = 0;
}

void srv_stop_free(struct srv_stop *st) { rf_strbuf_free(&st->pending); }

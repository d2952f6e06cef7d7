#ifndef RF_CORE_STRBUF_H
#define RF_CORE_STRBUF_H
/* A growing byte string. A failed allocation latches oom: later appends do nothing and
 * the owner checks oom once at the end. Zero-initialized is empty. */
#include <stdbool.h>
#include <stddef.h>

struct rf_strbuf {
    char *p; /* NUL-terminated when len > 0 */
    size_t len, cap;
    bool oom;
};

void rf_strbuf_add(struct rf_strbuf *b, const char *s, size_t n);
void rf_strbuf_str(struct rf_strbuf *b, const char *s);
void rf_strbuf_printf(struct rf_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rf_strbuf_free(struct rf_strbuf *b);

#endif

/* Tokens to text: each token's piece is computed once at load; the streaming
 * detokenizer holds incomplete UTF-8 until the next token completes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/vocab_impl.h"

static const char k_bar[3] = {'\xe2', '\x96', '\x81'}; /* U+2581, SPM's space */

static rf_status piece_unescape(const char *t, size_t n, struct rf_bytes *out)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !(j + 3 <= n && memcmp(t + j, k_bar, 3) == 0)) j++;
        RF_TRY(rf_bytes_append(out, t + i, j - i));
        if (j < n) RF_TRY(rf_bytes_append(out, " ", 1));
        i = j < n ? j + 3 : n;
    }
    return RF_OK;
}

/* Byte-level text back to bytes. A character outside the alphabet gives llama.cpp's
 * marker "[UNK_BYTE_0x<hex of the character>" + the whole token text + "]". */
static rf_status piece_bytelevel(const char *t, size_t n, struct rf_bytes *out)
{
    for (size_t i = 0; i < n;) {
        const uint32_t cp = rf_utf8_decode_lenient((const uint8_t *)t, n, &i);
        const int b = cp <= 0x10FFFF ? rf_bytelevel_byte(cp) : -1;
        if (b >= 0) {
            const char c = (char)b;
            RF_TRY(rf_bytes_append(out, &c, 1));
            continue;
        }
        char enc[4], hex[12];
        const size_t len = rf_utf8_encode(cp, enc);
        RF_TRY(rf_bytes_append(out, "[UNK_BYTE_0x", 12));
        for (size_t k = 0; k < len; k++) {
            snprintf(hex, sizeof hex, "%02x", (uint8_t)enc[k]);
            RF_TRY(rf_bytes_append(out, hex, 2));
        }
        RF_TRY(rf_bytes_append(out, t, n));
        RF_TRY(rf_bytes_append(out, "]", 1));
    }
    return RF_OK;
}

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

/* The piece with special tokens rendered (llama.cpp's token_to_piece, special = true). */
static rf_status piece_of(const struct rf_vocab *v, rf_token id, struct rf_bytes *out)
{
    const struct rf_token_data *d = &v->toks[id];
    const char *t = v->text + d->off;
    if (d->attr & (RF_TOKEN_ATTR_UNKNOWN | RF_TOKEN_ATTR_CONTROL | RF_TOKEN_ATTR_USER_DEFINED))
        return rf_bytes_append(out, t, d->len);
    if (d->attr & RF_TOKEN_ATTR_NORMAL)
        return v->kind == RF_VOCAB_SPM ? piece_unescape(t, d->len, out) : piece_bytelevel(t, d->len, out);
    if (d->attr & RF_TOKEN_ATTR_BYTE) {
        const char b = (char)(hexval(t[3]) * 16 + hexval(t[4]));
        return rf_bytes_append(out, &b, 1);
    }
    return RF_OK; /* unused and undefined tokens render as nothing */
}

rf_status rf_vocab_build_pieces(struct rf_vocab *v)
{
    struct rf_bytes all = {0};
    v->piece_off = malloc(((size_t)v->n_tokens + 1) * sizeof *v->piece_off);
    if (!v->piece_off) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    for (rf_token t = 0; t < v->n_tokens; t++) {
        v->piece_off[t] = all.n;
        const rf_status st = piece_of(v, t, &all);
        if (st != RF_OK) {
            free(all.p);
            return st;
        }
    }
    v->piece_off[v->n_tokens] = all.n;
    v->pieces = all.p ? all.p : calloc(1, 1);
    if (!v->pieces) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    return RF_OK;
}

/* Piece bytes of t; "" for control and unknown tokens unless render_special. */
static const char *piece(const struct rf_vocab *v, rf_token t, bool render_special, size_t *n)
{
    if (!render_special && (v->toks[t].attr & (RF_TOKEN_ATTR_UNKNOWN | RF_TOKEN_ATTR_CONTROL))) {
        *n = 0;
        return "";
    }
    *n = v->piece_off[t + 1] - v->piece_off[t];
    return v->pieces + v->piece_off[t];
}

int32_t rf_vocab_token_to_piece(const struct rf_vocab *v, rf_token t, char *buf, int32_t cap,
                                bool render_special)
{
    if (!v || t < 0 || t >= v->n_tokens || cap < 0 || (!buf && cap > 0)) {
        rf_fail(RF_STATUS_INVALID_ARG, "token_to_piece: invalid token %d or buffer", t);
        return -1;
    }
    size_t n;
    const char *p = piece(v, t, render_special, &n);
    if (n > INT32_MAX) {
        rf_fail(RF_STATUS_INVALID_ARG, "token_to_piece: piece of token %d is too long", t);
        return -1;
    }
    if (n <= (size_t)cap && n) memcpy(buf, p, n);
    return (int32_t)n;
}

int32_t rf_vocab_detokenize(const struct rf_vocab *v, const rf_token *ids, int32_t n, char *buf,
                            int32_t cap, bool render_special, bool strip_space_prefix)
{
    if (!v || n < 0 || (!ids && n > 0) || cap < 0 || (!buf && cap > 0)) {
        rf_fail(RF_STATUS_INVALID_ARG, "detokenize: invalid argument");
        return -1;
    }
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->n_tokens) {
            rf_fail(RF_STATUS_INVALID_ARG, "detokenize: token %d at %d is out of range", ids[i], i);
            return -1;
        }
        size_t len;
        const char *p = piece(v, ids[i], render_special, &len);
        if (i == 0 && strip_space_prefix && v->add_space_prefix && len > 0 && p[0] == ' ') p++, len--;
        if (total + len <= (size_t)cap && len) memcpy(buf + total, p, len);
        total += len;
        if (total > INT32_MAX) {
            rf_fail(RF_STATUS_INVALID_ARG, "detokenize: text too long");
            return -1;
        }
    }
    return (int32_t)total;
}

/* ---- streaming ---- */

struct rf_vocab_detok {
    const struct rf_vocab *v;
    bool render_special;
    struct rf_bytes pending; /* bytes not yet emitted: an incomplete character */
    struct rf_bytes out;
};

struct rf_vocab_detok *rf_vocab_detok_new(const struct rf_vocab *v, bool render_special)
{
    if (!v) return NULL;
    struct rf_vocab_detok *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->v = v;
    d->render_special = render_special;
    return d;
}

static const char k_fffd[3] = {'\xef', '\xbf', '\xbd'};

/* Moves every decided byte of pending to out; at_end: an incomplete tail is decided
 * too (one U+FFFD). On allocation failure the output is cut short. */
static void drain(struct rf_vocab_detok *d, bool at_end)
{
    const uint8_t *p = (const uint8_t *)d->pending.p;
    const size_t n = d->pending.n;
    size_t i = 0;
    d->out.n = 0;
    while (i < n) {
        const int r = rf_utf8_check(p + i, n - i);
        if (r == 0 && !at_end) break;
        const rf_status st = r > 0 ? rf_bytes_append(&d->out, p + i, (size_t)r) : rf_bytes_append(&d->out, k_fffd, 3);
        if (st != RF_OK) break;
        i += r > 0 ? (size_t)r : r < 0 ? (size_t)-r : n - i;
    }
    memmove(d->pending.p, d->pending.p + i, n - i);
    d->pending.n = n - i;
}

size_t rf_vocab_detok_push(struct rf_vocab_detok *d, rf_token t, const char **out)
{
    *out = "";
    if (!d || t < 0 || t >= d->v->n_tokens) return 0;
    size_t n;
    const char *p = piece(d->v, t, d->render_special, &n);
    if (rf_bytes_append(&d->pending, p, n) != RF_OK) return 0;
    if (d->pending.n == 0) return 0;
    drain(d, false);
    *out = d->out.n ? d->out.p : "";
    return d->out.n;
}

size_t rf_vocab_detok_flush(struct rf_vocab_detok *d, const char **out)
{
    *out = "";
    if (!d || d->pending.n == 0) return 0;
    drain(d, true);
    *out = d->out.n ? d->out.p : "";
    return d->out.n;
}

void rf_vocab_detok_free(struct rf_vocab_detok *d)
{
    if (!d) return;
    free(d->pending.p);
    free(d->out.p);
    free(d);
}

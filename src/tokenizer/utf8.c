/* UTF-8 helpers: llama.cpp-compatible lenient decoding (for tokenizing), strict
 * checking (for streaming output), and the GPT-2 byte-level alphabet. */
#include "tokenizer/vocab_impl.h"

static bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

uint32_t rf_utf8_decode_lenient(const uint8_t *s, size_t n, size_t *i)
{
    const size_t o = *i;
    const uint8_t b = s[o];
    if (b < 0x80) {
        *i = o + 1;
        return b;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((b & 0xE0) == 0xC0) len = 2, cp = b & 0x1F;
    else if ((b & 0xF0) == 0xE0) len = 3, cp = b & 0x0F;
    else if ((b & 0xF8) == 0xF0) len = 4, cp = b & 0x07;
    if (len == 0 || o + len > n) goto bad;
    for (size_t k = 1; k < len; k++) {
        if (!is_cont(s[o + k])) goto bad;
        cp = (cp << 6) | (s[o + k] & 0x3F);
    }
    *i = o + len;
    return cp;
bad:
    *i = o + 1;
    return 0xFFFD;
}

size_t rf_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t rf_utf8_lead_len(uint8_t b)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[b >> 4];
}

/* Unicode Table 3-7: the allowed range of the second byte for each lead byte. */
static bool second_ok(uint8_t lead, uint8_t b)
{
    if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
    return is_cont(b);
}

int rf_utf8_check(const uint8_t *s, size_t n)
{
    const uint8_t b = s[0];
    if (b < 0x80) return 1;
    int len;
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) len = 3;
    else if (b >= 0xF0 && b <= 0xF4) len = 4;
    else return -1;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return 0;
        const bool ok = k == 1 ? second_ok(b, s[1]) : is_cont(s[k]);
        if (!ok) return -k;
    }
    return len;
}

/* Printable Latin-1 bytes map to themselves; the 68 others, in byte order, to U+0100
 * and up: 0x00-0x20 (33 bytes), 0x7F-0xA0 (34), 0xAD (1). */
static bool printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

uint32_t rf_bytelevel_cp(uint8_t b)
{
    if (printable(b)) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    return 0x100 + 67; /* 0xAD */
}

int rf_bytelevel_byte(uint32_t cp)
{
    if (cp < 0x100) return printable(cp) ? (int)cp : -1;
    const uint32_t k = cp - 0x100;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + k - 33);
    if (k == 67) return 0xAD;
    return -1;
}

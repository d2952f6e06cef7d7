#ifndef RF_TOKENIZER_VOCAB_IMPL_H
#define RF_TOKENIZER_VOCAB_IMPL_H
/* Internals shared by the tokenizer's files. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* ---- growable arrays (status-returning push) ---- */
struct rf_ids {
    rf_token *v;
    size_t n, cap;
};
rf_status rf_ids_push(struct rf_ids *a, rf_token t);

struct rf_bytes {
    char *p;
    size_t n, cap;
};
rf_status rf_bytes_append(struct rf_bytes *b, const void *src, size_t n);

/* ---- string -> int32 hash map; keys live in a caller-owned blob ---- */
struct rf_strmap_slot {
    uint32_t hash;
    uint32_t len;
    uint64_t off; /* into the blob */
    int32_t val;  /* -1: empty slot */
};
struct rf_strmap {
    const char *blob;
    struct rf_strmap_slot *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t n;
};
rf_status rf_strmap_init(struct rf_strmap *m, const char *blob, size_t expected);
void rf_strmap_free(struct rf_strmap *m);
/* Inserts key blob[off, off+len) -> val unless the key is present; returns the value
 * now stored for the key (the old one when present). */
int32_t rf_strmap_put(struct rf_strmap *m, uint64_t off, uint32_t len, int32_t val);
int32_t rf_strmap_get(const struct rf_strmap *m, const char *key, size_t len);

/* ---- UTF-8 ---- */
/* Decodes one code point the way llama.cpp does: structure only (overlong forms and
 * surrogates pass); a bad sequence gives U+FFFD and advances one byte. May return code
 * points above U+10FFFF (F5..F7 lead bytes). */
uint32_t rf_utf8_decode_lenient(const uint8_t *s, size_t n, size_t *i);
/* Encodes cp (<= 0x1FFFFF as 4 bytes, surrogates included); returns the length. */
size_t rf_utf8_encode(uint32_t cp, char out[4]);
/* Length of the sequence a lead byte announces (1 for continuation bytes), as llama.cpp. */
size_t rf_utf8_lead_len(uint8_t b);
/* Strict check at s[0]: > 0: length of a valid character; 0: s is a valid but
 * incomplete prefix; < 0: -(bytes of the maximal invalid subpart to replace). */
int rf_utf8_check(const uint8_t *s, size_t n);
/* GPT-2 byte-level alphabet: byte -> code point, and back (-1 when cp is no byte). */
uint32_t rf_bytelevel_cp(uint8_t b);
int rf_bytelevel_byte(uint32_t cp);

/* ---- special-token matcher ---- */
struct rf_special {
    rf_token *ids;  /* sorted by text bytes */
    int32_t *prio;  /* rank of ids[i] in matching order: longer text first, then lower id */
    rf_token *by_prio; /* ids in matching order */
    int32_t n;
    int32_t first[257]; /* ids[first[c] .. first[c+1]) start with byte c */
};

/* ---- pre-tokenizer ---- */
struct rf_pretok;
rf_status rf_pretok_new(const char *pre, struct rf_pretok **out, bool *ignore_merges,
                        int *add_bos_default);
void rf_pretok_free(struct rf_pretok *p);
/* Splits s[0, n) (valid UTF-8) into words; appends end offsets to *ends. */
struct rf_offsets {
    size_t *v;
    size_t n, cap;
};
rf_status rf_pretok_split(const struct rf_pretok *p, const char *s, size_t n,
                          struct rf_offsets *ends);

/* ---- the vocab ---- */
struct rf_token_data {
    uint64_t off;  /* text: v->text + off, NUL-terminated */
    uint32_t len;
    float score;
    uint32_t attr; /* enum rf_token_attr */
};

struct rf_vocab {
    enum rf_vocab_kind kind;
    int32_t n_tokens;
    struct rf_token_data *toks;
    char *text;         /* all token texts, each NUL-terminated */
    struct rf_strmap by_text;
    char *merges;       /* "left right" strings, each NUL-terminated */
    struct rf_strmap merge_rank;
    char *pieces;       /* decoded piece of each token (render_special) */
    uint64_t *piece_off; /* n_tokens + 1 offsets into pieces */
    uint8_t *eog;       /* n_tokens flags */
    struct rf_special special;
    struct rf_pretok *pretok;
    char pre[64];
    rf_token bos, eos, eot, eom, unk, sep, pad;
    rf_token fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
};

rf_status rf_special_build(struct rf_vocab *v);
void rf_special_free(struct rf_special *s);

/* A piece of input after special-token matching: raw text, or one token. */
struct rf_fragment {
    size_t off, len; /* raw text [off, off+len) of the input */
    rf_token token;  /* -1: raw text */
};
struct rf_fragments {
    struct rf_fragment *v;
    size_t n, cap;
};
rf_status rf_special_partition(const struct rf_vocab *v, const char *text, size_t len,
                               bool parse_special, struct rf_fragments *out);

/* One raw fragment; prefix: add the leading space (U+2581) first. */
rf_status rf_spm_tokenize(const struct rf_vocab *v, const char *text, size_t len, bool prefix,
                          struct rf_ids *out);
rf_status rf_bpe_tokenize(const struct rf_vocab *v, const char *text, size_t len,
                          struct rf_ids *out);
rf_status rf_vocab_build_pieces(struct rf_vocab *v);
rf_status rf_vocab_finish_attrs(struct rf_vocab *v, const struct rf_gguf *g);

#endif

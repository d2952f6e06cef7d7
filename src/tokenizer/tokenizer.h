#ifndef RF_TOKENIZER_H
#define RF_TOKENIZER_H
/* Vocabulary and tokenizers read from GGUF metadata (tokenizer.ggml.*):
 *   "llama": SentencePiece-style (U+2581 for spaces, merges by score, <0xNN> byte fallback)
 *   "gpt2":  byte-level BPE (pre-tokenizer regexes chosen by tokenizer.ggml.pre, merges by rank)
 * The behaviour follows llama.cpp's, token for token. A loaded vocab is immutable: every
 * function here may be called from several threads at once. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rocmforge.h"

struct rf_gguf;
struct rf_vocab;

enum rf_vocab_kind {
    RF_VOCAB_SPM, /* tokenizer.ggml.model = "llama" */
    RF_VOCAB_BPE, /* tokenizer.ggml.model = "gpt2" */
};

/* Token attributes (bit flags; tokenizer.ggml.token_type maps onto one of them and
 * the loader may add CONTROL or UNUSED as llama.cpp does). */
enum rf_token_attr {
    RF_TOKEN_ATTR_UNDEFINED = 0,
    RF_TOKEN_ATTR_UNKNOWN = 1 << 0,
    RF_TOKEN_ATTR_UNUSED = 1 << 1,
    RF_TOKEN_ATTR_NORMAL = 1 << 2,
    RF_TOKEN_ATTR_CONTROL = 1 << 3,
    RF_TOKEN_ATTR_USER_DEFINED = 1 << 4,
    RF_TOKEN_ATTR_BYTE = 1 << 5,
    RF_TOKEN_ATTR_LSTRIP = 1 << 7, /* drop whitespace before it when matched as special */
    RF_TOKEN_ATTR_RSTRIP = 1 << 8, /* drop whitespace after it when matched as special */
};

/* Reads and validates the tokenizer metadata of an opened GGUF. Copies what it keeps:
 * g may be closed afterwards. */
rf_status rf_vocab_load(const struct rf_gguf *g, struct rf_vocab **out);
void rf_vocab_free(struct rf_vocab *v);

/* Same contract as rf_tokenize: writes at most cap ids and returns the number of tokens
 * (may exceed cap: call again with a bigger buffer), or -1 with rf_last_error set.
 * add_bos: add the BOS (and EOS) tokens the model asks for (tokenizer.ggml.add_bos_token,
 * add_eos_token). parse_special: control/user-defined token texts in the input become
 * those tokens; without it only user-defined tokens are matched (as llama.cpp does). */
int32_t rf_vocab_tokenize(const struct rf_vocab *v, const char *text, size_t len, rf_token *ids,
                          int32_t cap, bool add_bos, bool parse_special);

/* Same contract as rf_token_to_piece: the raw bytes of one token. Returns the piece length
 * and copies it only when it fits in cap (nothing is written otherwise), or -1 for an id
 * out of range. Control and unknown tokens give "" unless render_special. SPM pieces
 * keep the leading space of "▁word" tokens. */
int32_t rf_vocab_token_to_piece(const struct rf_vocab *v, rf_token t, char *buf, int32_t cap,
                                bool render_special);

/* Concatenated pieces of ids (not streaming; invalid UTF-8 is passed through as is).
 * strip_space_prefix: drop one leading space of the first piece when the vocab adds a
 * space prefix (SPM with add_space_prefix), so that tokenize + detokenize round-trips.
 * Returns the length (may exceed cap; copies only when it fits) or -1. */
int32_t rf_vocab_detokenize(const struct rf_vocab *v, const rf_token *ids, int32_t n, char *buf,
                            int32_t cap, bool render_special, bool strip_space_prefix);

/* Streaming detokenizer. Output is always valid UTF-8: the bytes of a character split
 * across tokens are held until it is complete; bytes that can never form a valid
 * character (stray continuation bytes, overlong forms, surrogates, > U+10FFFF) are
 * replaced by U+FFFD, one per maximal invalid subpart; flush replaces a still
 * incomplete tail the same way. */
struct rf_vocab_detok;
struct rf_vocab_detok *rf_vocab_detok_new(const struct rf_vocab *v, bool render_special);
/* Appends token t; *out points at the bytes now ready (owned by d, valid until the next
 * call). Returns their count; 0 also for an id out of range (nothing is appended). */
size_t rf_vocab_detok_push(struct rf_vocab_detok *d, rf_token t, const char **out);
size_t rf_vocab_detok_flush(struct rf_vocab_detok *d, const char **out);
void rf_vocab_detok_free(struct rf_vocab_detok *d);

enum rf_vocab_kind rf_vocab_kind(const struct rf_vocab *v);
int32_t rf_vocab_n_tokens(const struct rf_vocab *v);
rf_token rf_vocab_bos(const struct rf_vocab *v); /* -1 when none */
rf_token rf_vocab_eos(const struct rf_vocab *v);
rf_token rf_vocab_eot(const struct rf_vocab *v);
rf_token rf_vocab_unk(const struct rf_vocab *v);
rf_token rf_vocab_pad(const struct rf_vocab *v);
/* End of generation: eos, eot, eom and the tokens llama.cpp recognises by their text
 * (<|im_end|>, <end_of_turn>, <|eot_id|>, <|endoftext|>, ...). */
bool rf_vocab_is_eog(const struct rf_vocab *v, rf_token t);
bool rf_vocab_is_control(const struct rf_vocab *v, rf_token t);
uint32_t rf_vocab_attr(const struct rf_vocab *v, rf_token t); /* enum rf_token_attr bits */
bool rf_vocab_add_bos(const struct rf_vocab *v);
bool rf_vocab_add_eos(const struct rf_vocab *v);
bool rf_vocab_add_space_prefix(const struct rf_vocab *v);
/* The token's text as stored in the vocab (NUL-terminated; *len gets its length when
 * len is not NULL); NULL for an id out of range. */
const char *rf_vocab_token_text(const struct rf_vocab *v, rf_token t, size_t *len);
/* Id of a token by its exact text, -1 when none. */
rf_token rf_vocab_find(const struct rf_vocab *v, const char *text, size_t len);
/* tokenizer.ggml.pre as read ("" when absent). */
const char *rf_vocab_pre(const struct rf_vocab *v);

#endif

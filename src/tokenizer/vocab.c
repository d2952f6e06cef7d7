/* Loading and validating the vocabulary from GGUF metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab_impl.h"

#define KEY(name) "tokenizer.ggml." name

/* tokenizer.ggml.token_type values. */
enum { TT_UNDEFINED, TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };

static uint32_t attr_of_type(int64_t t)
{
    switch (t) {
    case TT_NORMAL: return RF_TOKEN_ATTR_NORMAL;
    case TT_UNKNOWN: return RF_TOKEN_ATTR_UNKNOWN;
    case TT_CONTROL: return RF_TOKEN_ATTR_CONTROL;
    case TT_USER_DEFINED: return RF_TOKEN_ATTR_USER_DEFINED;
    case TT_UNUSED: return RF_TOKEN_ATTR_UNUSED;
    case TT_BYTE: return RF_TOKEN_ATTR_BYTE;
    default: return RF_TOKEN_ATTR_UNDEFINED;
    }
}

/* An optional array of n scalars of one of the allowed element types. */
static rf_status get_scalar_arr(const struct rf_gguf *g, const char *key, uint64_t n,
                                enum rf_gguf_vtype t1, enum rf_gguf_vtype t2,
                                const struct rf_gguf_value **out)
{
    *out = NULL;
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return RF_OK;
    const struct rf_gguf_value *a = &kv->val;
    if (a->type != RF_GGUF_ARRAY || (a->v.arr.elem_type != t1 && a->v.arr.elem_type != t2))
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: %s must be an array of %s", key,
                       rf_gguf_vtype_name(t1));
    if (a->v.arr.n != n)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: %s has %llu entries but there are %llu tokens",
                       key, (unsigned long long)a->v.arr.n, (unsigned long long)n);
    *out = a;
    return RF_OK;
}

static rf_status get_str_arr(const struct rf_gguf *g, const char *key, bool required,
                             const struct rf_gguf_value **out)
{
    *out = NULL;
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) {
        if (required) return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: missing %s", key);
        return RF_OK;
    }
    if (kv->val.type != RF_GGUF_ARRAY || kv->val.v.arr.elem_type != RF_GGUF_STRING)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: %s must be an array of strings", key);
    *out = &kv->val;
    return RF_OK;
}

/* Reads a bool key into *b when present; a present key of another type is an error. */
static rf_status opt_bool(const struct rf_gguf *g, const char *key, bool *b)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return RF_OK;
    if (kv->val.type != RF_GGUF_BOOL)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: %s must be a bool, not %s", key,
                       rf_gguf_vtype_name(kv->val.type));
    *b = kv->val.v.u64 != 0;
    return RF_OK;
}

static rf_status read_kind(const struct rf_gguf *g, struct rf_vocab *v)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, KEY("model"));
    if (!kv) return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: missing " KEY("model"));
    if (kv->val.type != RF_GGUF_STRING)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: " KEY("model") " must be a string");
    const struct rf_gguf_str s = kv->val.v.str;
    if (rf_gguf_str_eq(s, "llama")) v->kind = RF_VOCAB_SPM;
    else if (rf_gguf_str_eq(s, "gpt2")) v->kind = RF_VOCAB_BPE;
    else
        return rf_fail(RF_STATUS_UNSUPPORTED,
                       "tokenizer: " KEY("model") " '%.*s' is not supported (supported: llama, gpt2)",
                       (int)(s.len > 64 ? 64 : s.len), s.ptr);
    kv = rf_gguf_find(g, KEY("pre"));
    if (kv) {
        if (kv->val.type != RF_GGUF_STRING)
            return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: " KEY("pre") " must be a string");
        const struct rf_gguf_str p = kv->val.v.str;
        if (p.len >= sizeof v->pre || memchr(p.ptr, '\0', p.len))
            return rf_fail(RF_STATUS_UNSUPPORTED, "tokenizer: " KEY("pre") " '%.*s' is not supported",
                           (int)(p.len > 64 ? 64 : p.len), p.ptr);
        memcpy(v->pre, p.ptr, p.len);
        v->pre[p.len] = '\0';
    }
    return RF_OK;
}

/* Copies the token texts into one blob (llama.cpp names empty ones "[EMPTY_<id>]") and
 * indexes them; two tokens with one text make the file unusable. */
static rf_status read_texts(const struct rf_gguf_value *arr, struct rf_vocab *v)
{
    const uint64_t n = arr->v.arr.n;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) total += arr->v.arr.strs[i].len + 24;
    v->text = malloc(total);
    v->toks = calloc(n, sizeof *v->toks);
    if (!v->text || !v->toks) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory for %llu tokens", (unsigned long long)n);
    RF_TRY(rf_strmap_init(&v->by_text, v->text, n));
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        const struct rf_gguf_str s = arr->v.arr.strs[i];
        if (s.len > UINT32_MAX / 2)
            return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: token %llu is too long", (unsigned long long)i);
        uint32_t len = (uint32_t)s.len;
        if (len) memcpy(v->text + off, s.ptr, len);
        else len = (uint32_t)snprintf(v->text + off, 24, "[EMPTY_%llu]", (unsigned long long)i);
        v->text[off + len] = '\0';
        v->toks[i] = (struct rf_token_data){.off = off, .len = len, .attr = RF_TOKEN_ATTR_NORMAL};
        const int32_t prev = rf_strmap_put(&v->by_text, off, len, (int32_t)i);
        if (prev != (int32_t)i)
            return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: tokens %d and %llu have the same text '%.*s'",
                           prev, (unsigned long long)i, (int)(len > 40 ? 40 : len), v->text + off);
        off += len + 1;
    }
    return RF_OK;
}

static rf_status read_tokens(const struct rf_gguf *g, struct rf_vocab *v)
{
    const struct rf_gguf_value *arr, *scores, *types;
    RF_TRY(get_str_arr(g, KEY("tokens"), true, &arr));
    const uint64_t n = arr->v.arr.n;
    if (n == 0 || n >= INT32_MAX)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: " KEY("tokens") " has %llu entries",
                       (unsigned long long)n);
    RF_TRY(get_scalar_arr(g, KEY("scores"), n, RF_GGUF_FLOAT32, RF_GGUF_INT32, &scores));
    RF_TRY(get_scalar_arr(g, KEY("token_type"), n, RF_GGUF_INT32, RF_GGUF_INT32, &types));
    v->n_tokens = (int32_t)n;
    RF_TRY(read_texts(arr, v));
    for (uint64_t i = 0; i < n; i++) {
        if (scores) v->toks[i].score = (float)rf_gguf_arr_float(scores, i);
        if (types) v->toks[i].attr = attr_of_type(rf_gguf_arr_int(types, i));
    }
    return RF_OK;
}

/* Merges are "left right", split at the first space after the first byte. The first
 * of duplicate merges keeps its rank. */
static rf_status read_merges(const struct rf_gguf *g, struct rf_vocab *v)
{
    const struct rf_gguf_value *arr;
    RF_TRY(get_str_arr(g, KEY("merges"), true, &arr));
    const uint64_t n = arr->v.arr.n;
    if (n >= INT32_MAX) return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: too many merges");
    uint64_t total = 1;
    for (uint64_t i = 0; i < n; i++) total += arr->v.arr.strs[i].len + 1;
    v->merges = malloc(total);
    if (!v->merges) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory for merges");
    RF_TRY(rf_strmap_init(&v->merge_rank, v->merges, n));
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        const struct rf_gguf_str s = arr->v.arr.strs[i];
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp || s.len > UINT32_MAX / 2)
            return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: merge %llu '%.*s' is not two words separated by a space",
                           (unsigned long long)i, (int)(s.len > 40 ? 40 : s.len), s.ptr);
        memcpy(v->merges + off, s.ptr, s.len);
        v->merges[off + s.len] = '\0';
        rf_strmap_put(&v->merge_rank, off, (uint32_t)s.len, (int32_t)i);
        off += s.len + 1;
    }
    return RF_OK;
}

/* Ids that the model cannot work without are checked; optional ones out of range are
 * ignored, as llama.cpp does (converters write e.g. padding = n_vocab). */
static rf_status read_id(const struct rf_gguf *g, const struct rf_vocab *v, const char *key,
                         bool strict, rf_token *id)
{
    if (*id >= v->n_tokens) *id = -1; /* default out of range: none */
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return RF_OK;
    const enum rf_gguf_vtype t = kv->val.type;
    if (t == RF_GGUF_ARRAY || t == RF_GGUF_STRING || t == RF_GGUF_BOOL || t == RF_GGUF_FLOAT32 ||
        t == RF_GGUF_FLOAT64)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: %s must be an integer, not %s", key,
                       rf_gguf_vtype_name(t));
    const bool neg = (t == RF_GGUF_INT8 || t == RF_GGUF_INT16 || t == RF_GGUF_INT32 || t == RF_GGUF_INT64) &&
                     kv->val.v.i64 < 0;
    if (neg) {
        *id = -1;
        return RF_OK;
    }
    if (kv->val.v.u64 < (uint64_t)v->n_tokens) {
        *id = (rf_token)kv->val.v.u64;
        return RF_OK;
    }
    if (strict)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: %s = %llu is out of range (%d tokens)", key,
                       (unsigned long long)kv->val.v.u64, v->n_tokens);
    return RF_OK;
}

static rf_status read_ids(const struct rf_gguf *g, struct rf_vocab *v)
{
    RF_TRY(read_id(g, v, KEY("bos_token_id"), true, &v->bos));
    RF_TRY(read_id(g, v, KEY("eos_token_id"), true, &v->eos));
    RF_TRY(read_id(g, v, KEY("eot_token_id"), true, &v->eot));
    RF_TRY(read_id(g, v, KEY("eom_token_id"), true, &v->eom));
    RF_TRY(read_id(g, v, KEY("unknown_token_id"), true, &v->unk));
    RF_TRY(read_id(g, v, KEY("seperator_token_id"), false, &v->sep));
    RF_TRY(read_id(g, v, KEY("padding_token_id"), false, &v->pad));
    RF_TRY(read_id(g, v, KEY("fim_pre_token_id"), false, &v->fim_pre));
    RF_TRY(read_id(g, v, KEY("fim_suf_token_id"), false, &v->fim_suf));
    RF_TRY(read_id(g, v, KEY("fim_mid_token_id"), false, &v->fim_mid));
    RF_TRY(read_id(g, v, KEY("fim_pad_token_id"), false, &v->fim_pad));
    RF_TRY(read_id(g, v, KEY("fim_rep_token_id"), false, &v->fim_rep));
    RF_TRY(read_id(g, v, KEY("fim_sep_token_id"), false, &v->fim_sep));
    RF_TRY(read_id(g, v, KEY("prefix_token_id"), false, &v->fim_pre));
    RF_TRY(read_id(g, v, KEY("suffix_token_id"), false, &v->fim_suf));
    RF_TRY(read_id(g, v, KEY("middle_token_id"), false, &v->fim_mid));
    return RF_OK;
}

/* Byte tokens must read <0xHH>: their piece is that byte. */
static rf_status check_byte_tokens(const struct rf_vocab *v)
{
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (!(v->toks[i].attr & RF_TOKEN_ATTR_BYTE)) continue;
        const char *t = v->text + v->toks[i].off;
        const bool ok = v->toks[i].len == 6 && memcmp(t, "<0x", 3) == 0 && t[5] == '>' &&
                        strchr("0123456789ABCDEFabcdef", t[3]) && strchr("0123456789ABCDEFabcdef", t[4]) &&
                        t[3] && t[4];
        if (!ok)
            return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: byte token %d '%.*s' is not of the form <0xHH>", i,
                           (int)(v->toks[i].len > 40 ? 40 : v->toks[i].len), t);
    }
    return RF_OK;
}

/* Defaults before the file's own keys, per tokenizer kind (llama.cpp's). */
static rf_status set_defaults(struct rf_vocab *v)
{
    v->eot = v->eom = v->sep = v->pad = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (v->kind == RF_VOCAB_SPM) {
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = true, v->add_space_prefix = true;
        return RF_OK;
    }
    v->bos = 11, v->eos = 11, v->unk = -1;
    int add_bos = 0;
    RF_TRY(rf_pretok_new(v->pre, &v->pretok, &v->ignore_merges, &add_bos));
    v->add_bos = add_bos > 0;
    if (add_bos < 0) v->bos = -1; /* chatglm: no BOS */
    return RF_OK;
}

static rf_status load(const struct rf_gguf *g, struct rf_vocab *v)
{
    RF_TRY(read_kind(g, v));
    RF_TRY(read_tokens(g, v));
    RF_TRY(set_defaults(v));
    RF_TRY(opt_bool(g, KEY("add_space_prefix"), &v->add_space_prefix));
    if (v->kind == RF_VOCAB_BPE) RF_TRY(read_merges(g, v));
    RF_TRY(read_ids(g, v));
    RF_TRY(opt_bool(g, KEY("add_bos_token"), &v->add_bos));
    RF_TRY(opt_bool(g, KEY("add_eos_token"), &v->add_eos));
    if (v->add_bos && v->bos < 0)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: add_bos_token is set but there is no BOS token");
    if (v->add_eos && v->eos < 0)
        return rf_fail(RF_STATUS_BAD_FILE, "tokenizer: add_eos_token is set but there is no EOS token");
    RF_TRY(rf_vocab_finish_attrs(v, g));
    RF_TRY(check_byte_tokens(v));
    RF_TRY(rf_special_build(v));
    RF_TRY(rf_vocab_build_pieces(v));
    return RF_OK;
}

rf_status rf_vocab_load(const struct rf_gguf *g, struct rf_vocab **out)
{
    *out = NULL;
    struct rf_vocab *v = calloc(1, sizeof *v);
    if (!v) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    const rf_status s = load(g, v);
    if (s != RF_OK) {
        rf_vocab_free(v);
        return s;
    }
    *out = v;
    return RF_OK;
}

void rf_vocab_free(struct rf_vocab *v)
{
    if (!v) return;
    rf_strmap_free(&v->by_text);
    rf_strmap_free(&v->merge_rank);
    rf_special_free(&v->special);
    rf_pretok_free(v->pretok);
    free(v->toks);
    free(v->text);
    free(v->merges);
    free(v->pieces);
    free(v->piece_off);
    free(v->eog);
    free(v);
}

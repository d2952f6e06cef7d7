/* BPE pre-tokenizers: the regexes llama.cpp applies for each tokenizer.ggml.pre, run
 * with PCRE2 (UTF, UCP). Each regex splits every current word further; the text between
 * matches is kept as words of its own.
 *
 * \s is spelled out as llama.cpp's whitespace set (the Unicode White_Space property,
 * which includes U+0085, unlike PCRE2's \s). \p{L}, \p{N}, \p{P} come from PCRE2's
 * Unicode tables (Unicode 14 in PCRE2 10.42) plus the letters, numbers and punctuation
 * that Unicode 15.0/15.1 added, which llama.cpp's tables know. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/vocab_impl.h"

#define WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
/* Unicode 15.0/15.1 additions (Kawi, Nag Mundari, CJK extensions H and I, ...). */
#define U15_L                                                                                      \
    "\\x{1123F}-\\x{11240}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}\\x{13441}-\\x{13446}" \
    "\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{2B739}"           \
    "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"
#define U15_N "\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}"
#define U15_P "\\x{11B00}-\\x{11B09}\\x{11F43}-\\x{11F4F}"
/* Class bodies, for use inside [...]. */
#define CL_L "\\p{L}" U15_L
#define CL_N "\\p{N}" U15_N
#define CL_P "\\p{P}" U15_P
#define SPACES "[" WS "]+(?![^" WS "])|[" WS "]+"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?[" CL_L "]+| ?[" CL_N "]+| ?[^" WS CL_L CL_N "]+|" SPACES
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3_WITH(digits)                                                                     \
    CONTRACTIONS "|[^\\r\\n" CL_L CL_N "]?[" CL_L "]+|" digits "| ?[^" WS CL_L CL_N "]+[\\r\\n]*|[" WS "]*[\\r\\n]+|" SPACES

enum family { FAM_DEFAULT, FAM_GPT2, FAM_LLAMA3, FAM_QWEN2, FAM_STARCODER, FAM_COUNT };

#define MAX_REGEX 4
static const char *const k_regexes[FAM_COUNT][MAX_REGEX] = {
    [FAM_DEFAULT] = {"[" CL_P "$+<=>^~|]+", RE_GPT2, "[" CL_N "]+", "[0-9][0-9][0-9]"},
    [FAM_GPT2] = {RE_GPT2},
    [FAM_LLAMA3] = {RE_LLAMA3_WITH("[" CL_N "]{1,3}")},
    [FAM_QWEN2] = {RE_LLAMA3_WITH("[" CL_N "]")},
    [FAM_STARCODER] = {"[" CL_N "]", RE_GPT2},
};

enum { BOS_DEFAULT = 0, BOS_ADD = 1, BOS_NONE = -1 };

struct pre_name {
    const char *name;
    enum family fam;
    bool ignore_merges;
    int bos;
};

/* tokenizer.ggml.pre values and how llama.cpp treats them. */
static const struct pre_name k_names[] = {
    {"", FAM_DEFAULT, false, BOS_DEFAULT},
    {"default", FAM_DEFAULT, false, BOS_DEFAULT},
    {"llama3", FAM_LLAMA3, true, BOS_ADD},
    {"llama-v3", FAM_LLAMA3, true, BOS_ADD},
    {"llama-bpe", FAM_LLAMA3, true, BOS_ADD},
    {"falcon3", FAM_LLAMA3, true, BOS_ADD},
    {"falcon-h1", FAM_LLAMA3, true, BOS_ADD},
    {"pixtral", FAM_LLAMA3, true, BOS_ADD},
    {"midm-2.0", FAM_LLAMA3, true, BOS_ADD},
    {"lfm2", FAM_LLAMA3, true, BOS_ADD},
    {"jina-v5-nano", FAM_LLAMA3, true, BOS_ADD},
    {"dbrx", FAM_LLAMA3, false, BOS_DEFAULT},
    {"smaug-bpe", FAM_LLAMA3, false, BOS_DEFAULT},
    {"chatglm-bpe", FAM_LLAMA3, false, BOS_NONE},
    {"glm4", FAM_LLAMA3, true, BOS_NONE},
    {"glm5", FAM_LLAMA3, true, BOS_NONE},
    {"gpt-2", FAM_GPT2, false, BOS_DEFAULT},
    {"phi-2", FAM_GPT2, false, BOS_DEFAULT},
    {"mpt", FAM_GPT2, false, BOS_DEFAULT},
    {"olmo", FAM_GPT2, false, BOS_DEFAULT},
    {"jais", FAM_GPT2, false, BOS_DEFAULT},
    {"exaone4", FAM_GPT2, false, BOS_DEFAULT},
    {"gigachat", FAM_GPT2, false, BOS_DEFAULT},
    {"trillion", FAM_GPT2, false, BOS_DEFAULT},
    {"granite-docling", FAM_GPT2, false, BOS_DEFAULT},
    {"mellum", FAM_GPT2, false, BOS_DEFAULT},
    {"modern-bert", FAM_GPT2, false, BOS_DEFAULT},
    {"a.x-4.0", FAM_GPT2, false, BOS_DEFAULT},
    {"jina-es", FAM_GPT2, false, BOS_DEFAULT},
    {"jina-de", FAM_GPT2, false, BOS_DEFAULT},
    {"jina-v2-es", FAM_GPT2, false, BOS_DEFAULT},
    {"jina-v2-de", FAM_GPT2, false, BOS_DEFAULT},
    {"starcoder", FAM_STARCODER, false, BOS_DEFAULT},
    {"refact", FAM_STARCODER, false, BOS_DEFAULT},
    {"command-r", FAM_STARCODER, false, BOS_DEFAULT},
    {"smollm", FAM_STARCODER, false, BOS_DEFAULT},
    {"codeshell", FAM_STARCODER, false, BOS_DEFAULT},
    {"exaone", FAM_STARCODER, false, BOS_DEFAULT},
    {"minerva-7b", FAM_STARCODER, false, BOS_DEFAULT},
    {"mellum2", FAM_STARCODER, false, BOS_DEFAULT},
    {"qwen2", FAM_QWEN2, false, BOS_DEFAULT},
    {"deepseek-r1-qwen", FAM_QWEN2, false, BOS_DEFAULT},
    {"megrez", FAM_QWEN2, false, BOS_DEFAULT},
    {"stablelm2", FAM_QWEN2, false, BOS_DEFAULT},
    {"hunyuan", FAM_QWEN2, false, BOS_DEFAULT},
    {"kormo", FAM_QWEN2, false, BOS_DEFAULT},
    {"f2llmv2", FAM_QWEN2, false, BOS_DEFAULT},
    {"solar-open", FAM_QWEN2, false, BOS_DEFAULT},
};

struct rf_pretok {
    pcre2_code *re[MAX_REGEX];
    int n;
};

static void supported_list(char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 1; i < sizeof k_names / sizeof k_names[0] && o + 1 < cap; i++) {
        const int w = snprintf(buf + o, cap - o, "%s%s", i > 1 ? ", " : "", k_names[i].name);
        if (w < 0) break;
        o += (size_t)w;
    }
}

static rf_status compile(const char *pattern, pcre2_code **out)
{
    int err = 0;
    PCRE2_SIZE at = 0;
    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return rf_fail(RF_STATUS_UNSUPPORTED, "tokenizer: pre-tokenizer regex does not compile at %zu: %s",
                       (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return RF_OK;
}

rf_status rf_pretok_new(const char *pre, struct rf_pretok **out, bool *ignore_merges, int *add_bos_default)
{
    *out = NULL;
    const struct pre_name *p = NULL;
    for (size_t i = 0; i < sizeof k_names / sizeof k_names[0] && !p; i++)
        if (strcmp(k_names[i].name, pre) == 0) p = &k_names[i];
    if (!p) {
        char list[1024];
        supported_list(list, sizeof list);
        return rf_fail(RF_STATUS_UNSUPPORTED, "tokenizer: pre-tokenizer '%s' is not supported (supported: %s)", pre,
                       list);
    }
    struct rf_pretok *t = calloc(1, sizeof *t);
    if (!t) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < MAX_REGEX && k_regexes[p->fam][i]; i++) {
        const rf_status s = compile(k_regexes[p->fam][i], &t->re[i]);
        if (s != RF_OK) {
            rf_pretok_free(t);
            return s;
        }
        t->n = i + 1;
    }
    *ignore_merges = p->ignore_merges;
    *add_bos_default = p->bos;
    *out = t;
    return RF_OK;
}

void rf_pretok_free(struct rf_pretok *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->re[i]);
    free(p);
}

static rf_status push_end(struct rf_offsets *o, size_t end)
{
    if (o->n == o->cap) {
        const size_t c = o->cap ? o->cap * 2 : 64;
        size_t *q = realloc(o->v, c * sizeof *q);
        if (!q) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
        o->v = q;
        o->cap = c;
    }
    o->v[o->n++] = end;
    return RF_OK;
}

/* Splits the word s[start, end) by one regex: matches and the gaps between them. */
static rf_status split_word(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t start,
                            size_t end, struct rf_offsets *out)
{
    const PCRE2_SPTR subj = (PCRE2_SPTR)(s + start);
    const size_t n = end - start;
    size_t pos = 0;
    while (pos < n) {
        const int rc = pcre2_match(re, subj, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return rf_fail(RF_STATUS_INVALID_ARG, "tokenizer: pre-tokenizer regex failed (PCRE2 error %d)", rc);
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t m0 = ov[0], m1 = ov[1];
        if (m1 <= m0) { /* no pattern matches empty text; step over a character if one did */
            m1 = m0 + rf_utf8_lead_len((uint8_t)s[start + m0]);
            if (m1 > n) m1 = n;
        }
        if (m0 > pos) RF_TRY(push_end(out, start + m0));
        RF_TRY(push_end(out, start + m1));
        pos = m1;
    }
    if (pos < n) RF_TRY(push_end(out, end));
    return RF_OK;
}

rf_status rf_pretok_split(const struct rf_pretok *p, const char *s, size_t n, struct rf_offsets *ends)
{
    struct rf_offsets cur = {0}, next = {0};
    rf_status st = RF_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    st = push_end(&cur, n);
    for (int r = 0; r < p->n && st == RF_OK; r++) {
        next.n = 0;
        size_t start = 0;
        for (size_t w = 0; w < cur.n && st == RF_OK; w++) {
            st = split_word(p->re[r], md, s, start, cur.v[w], &next);
            start = cur.v[w];
        }
        const struct rf_offsets t = cur;
        cur = next;
        next = t;
    }
    for (size_t w = 0; w < cur.n && st == RF_OK; w++) st = push_end(ends, cur.v[w]);
    pcre2_match_data_free(md);
    free(cur.v);
    free(next.v);
    return st;
}

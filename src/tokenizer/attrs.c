/* Token attributes and end-of-generation tokens that llama.cpp derives from token texts
 * and model names, since the GGUF does not carry them. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab_impl.h"

static const char *const k_eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL};
static const char *const k_eom_texts[] = {"<|eom_id|>", NULL};
static const char *const k_fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const k_fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const k_fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};
static const char *const k_fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const k_fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                              "<reponame>", NULL};
static const char *const k_fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[", NULL};
/* Rendered as text even though they are special (gpt-oss). */
static const char *const k_user_texts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};

static rf_token find(const struct rf_vocab *v, const char *s) { return rf_vocab_find(v, s, strlen(s)); }

/* The lowest id among tokens with one of the texts. */
static rf_token find_any(const struct rf_vocab *v, const char *const *texts)
{
    rf_token best = -1;
    for (size_t i = 0; texts[i]; i++) {
        const rf_token t = find(v, texts[i]);
        if (t >= 0 && (best < 0 || t < best)) best = t;
    }
    return best;
}

/* A slot not set by the file is found by its text, and that token becomes control. */
static void detect(struct rf_vocab *v, rf_token *slot, const char *const *texts)
{
    if (*slot >= 0) return;
    *slot = find_any(v, texts);
    if (*slot >= 0) v->toks[*slot].attr |= RF_TOKEN_ATTR_CONTROL;
}

static void mark_unused(struct rf_vocab *v)
{
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint32_t *a = &v->toks[i].attr;
        if ((*a & RF_TOKEN_ATTR_CONTROL) && strstr(v->text + v->toks[i].off, "unused"))
            *a |= RF_TOKEN_ATTR_UNUSED;
    }
}

static void set_eog(struct rf_vocab *v, rf_token t)
{
    if (t >= 0 && t < v->n_tokens) v->eog[t] = 1;
}

static bool has_eog_text(const struct rf_vocab *v, rf_token t, const char *s)
{
    return v->eog[t] && strcmp(v->text + v->toks[t].off, s) == 0;
}

/* gpt-oss and solar-open: with <|return|>/<|call|> (or <|calls|>/<|flush|>) present,
 * <|end|> is not the end of generation. gemma4/plamo: </s> is a normal token. */
static void eog_workarounds(struct rf_vocab *v)
{
    bool ret = false, call = false, flush = false, marker = false;
    rf_token end = -1, s = -1;
    for (rf_token t = 0; t < v->n_tokens; t++) {
        if (!v->eog[t]) continue;
        ret |= has_eog_text(v, t, "<|return|>");
        call |= has_eog_text(v, t, "<|call|>") || has_eog_text(v, t, "<|calls|>");
        flush |= has_eog_text(v, t, "<|flush|>");
        marker |= has_eog_text(v, t, "<|tool_response>") || has_eog_text(v, t, "<|plamo:eos|>");
        if (has_eog_text(v, t, "<|end|>")) end = t;
        if (has_eog_text(v, t, "</s>")) s = t;
    }
    if (end >= 0 && ((ret && call) || (call && flush))) {
        v->eog[end] = 0;
        v->toks[end].attr = RF_TOKEN_ATTR_USER_DEFINED;
    }
    if (s >= 0 && marker) {
        v->eog[s] = 0;
        v->toks[s].attr = RF_TOKEN_ATTR_NORMAL;
    }
}

static rf_status build_eog(struct rf_vocab *v)
{
    v->eog = calloc((size_t)v->n_tokens, 1);
    if (!v->eog) return rf_fail(RF_STATUS_NOMEM, "tokenizer: out of memory");
    set_eog(v, v->fim_pad);
    set_eog(v, v->fim_rep);
    set_eog(v, v->fim_sep);
    for (size_t i = 0; k_eog_texts[i]; i++) {
        const rf_token t = find(v, k_eog_texts[i]);
        if (t < 0) continue;
        set_eog(v, t);
        v->toks[t].attr |= RF_TOKEN_ATTR_CONTROL;
    }
    for (size_t i = 0; k_user_texts[i]; i++) {
        const rf_token t = find(v, k_user_texts[i]);
        if (t >= 0) v->toks[t].attr = RF_TOKEN_ATTR_USER_DEFINED;
    }
    set_eog(v, v->eos);
    set_eog(v, v->eot);
    set_eog(v, v->eom);
    eog_workarounds(v);
    return RF_OK;
}

static bool str_has(const struct rf_gguf *g, const char *key, const char *needle, bool lower)
{
    struct rf_gguf_str s;
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv || kv->val.type != RF_GGUF_STRING) return false;
    s = kv->val.v.str;
    const size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++) {
        size_t k = 0;
        for (; k < n; k++) {
            char c = s.ptr[i + k];
            if (lower && c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != needle[k]) break;
        }
        if (k == n) return true;
    }
    return false;
}

static void set_attr(struct rf_vocab *v, const char *text, uint32_t bit, bool on)
{
    const rf_token t = find(v, text);
    if (t < 0) return;
    if (on) v->toks[t].attr |= bit;
    else v->toks[t].attr &= ~bit;
}

static bool is_special(const struct rf_vocab *v, rf_token t)
{
    return v->toks[t].attr & (RF_TOKEN_ATTR_CONTROL | RF_TOKEN_ATTR_USER_DEFINED | RF_TOKEN_ATTR_UNKNOWN);
}

/* Whitespace stripping around special tokens, by model family (llama.cpp's table). */
static void strip_attrs(struct rf_vocab *v, const struct rf_gguf *g)
{
    const char *pre = "tokenizer.ggml.pre", *arch = "general.architecture", *name = "general.name";
    if (str_has(g, pre, "jina-v2-de", false) || str_has(g, pre, "jina-v2-es", false) ||
        str_has(g, pre, "jina-v2-code", false) || str_has(g, arch, "nomic-bert-moe", false) ||
        str_has(g, arch, "jina-bert-v3", false)) {
        set_attr(v, "<mask>", RF_TOKEN_ATTR_LSTRIP, true);
    } else if (str_has(g, name, "phi-3", true) || str_has(g, name, "phi3", true)) {
        for (rf_token t = 0; t < v->n_tokens; t++)
            if (is_special(v, t)) v->toks[t].attr |= RF_TOKEN_ATTR_RSTRIP;
        set_attr(v, "</s>", RF_TOKEN_ATTR_RSTRIP, true);
        set_attr(v, "<unk>", RF_TOKEN_ATTR_RSTRIP, false);
        set_attr(v, "<s>", RF_TOKEN_ATTR_RSTRIP, false);
        set_attr(v, "<|endoftext|>", RF_TOKEN_ATTR_RSTRIP, false);
    } else if (str_has(g, name, "modern-bert", true)) {
        set_attr(v, "[MASK]", RF_TOKEN_ATTR_LSTRIP, true);
    }
}

rf_status rf_vocab_finish_attrs(struct rf_vocab *v, const struct rf_gguf *g)
{
    detect(v, &v->eot, k_eot_texts);
    detect(v, &v->eom, k_eom_texts);
    detect(v, &v->fim_pre, k_fim_pre_texts);
    detect(v, &v->fim_suf, k_fim_suf_texts);
    detect(v, &v->fim_mid, k_fim_mid_texts);
    detect(v, &v->fim_pad, k_fim_pad_texts);
    detect(v, &v->fim_rep, k_fim_rep_texts);
    detect(v, &v->fim_sep, k_fim_sep_texts);
    mark_unused(v);
    RF_TRY(build_eog(v));
    strip_attrs(v, g);
    return RF_OK;
}

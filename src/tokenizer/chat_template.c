/* Chat templates: for each known family, the text its canonical Jinja template
 * renders (as transformers' apply_chat_template does: trim_blocks, lstrip_blocks),
 * written out in C, checked byte for byte against jinja2 on the real templates
 * (tests/fixtures/templates/expected.json, tools/make_chat_template_fixtures.py).
 * The family comes from the model's tokenizer.chat_template text, or from a name
 * that forces it.
 *
 * BOS: a BOS that the template renders at the very start of the text is left out,
 * because the tokenizer adds BOS itself when the model asks for it; BOS text later
 * in the conversation (Llama 2's later turns) is kept and becomes the BOS token when
 * the text is tokenized with parse_special. Other special tokens (eos_token and the
 * family's markers) are rendered as text.
 *
 * Gemma 1 and Mistral templates raise on a system message; Gemma 3's template puts a
 * leading system message and "\n\n" before the first turn's text (and drops it when no
 * turn follows). Both families render that way here, which is exactly Gemma 3's
 * rendering and Gemma 1's wherever Gemma 1 renders at all. Roles that do not
 * alternate are rendered as they come. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/strbuf.h"
#include "model/model.h"
#include "rocmforge.h"

#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

enum chat_family {
    CHAT_CHATML,
    CHAT_LLAMA2,
    CHAT_LLAMA3,
    CHAT_MISTRAL,
    CHAT_GEMMA,
    CHAT_PHI3,
    CHAT_ZEPHYR,
    CHAT_QWEN25,
    CHAT_FAMILY_COUNT
};

/* Names that force a family; Qwen2's template is ChatML with a default system prompt
 * inside the message loop, Qwen2.5's has its own family. */
static const struct {
    const char *name;
    enum chat_family family;
    const char *default_system;
} family_names[] = {
    {"chatml", CHAT_CHATML, NULL},
    {"llama2", CHAT_LLAMA2, NULL},
    {"llama3", CHAT_LLAMA3, NULL},
    {"mistral", CHAT_MISTRAL, NULL},
    {"gemma", CHAT_GEMMA, NULL},
    {"phi3", CHAT_PHI3, NULL},
    {"zephyr", CHAT_ZEPHYR, NULL},
    {"qwen2", CHAT_CHATML, "You are a helpful assistant."},
    {"qwen2.5", CHAT_QWEN25, QWEN25_SYSTEM},
};
#define CHAT_NAME_LIST "chatml, llama2, llama3, mistral, gemma, phi3, zephyr, qwen2, qwen2.5"

/* What a renderer needs beyond the messages. */
struct chat_env {
    enum chat_family family;
    const char *bos; /* token texts; "" when the model has none */
    const char *eos;
    char *default_system; /* ChatML: injected when the first message is not system */
};



/* ---- Python's str.strip(): the code points for which str.isspace() is true ---- */

static bool py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decodes the UTF-8 character at s (n bytes available); returns its length, or 0
 * when the bytes are not a well-formed character. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = (s[0] & 0xe0) == 0xc0   ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n) return 0;
    uint32_t c = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    *cp = c;
    return len;
}

static void py_strip(const char *s, size_t *begin, size_t *end)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t b = *begin, e = *end;
    uint32_t cp;
    size_t k;
    while (b < e && (k = utf8_decode(u + b, e - b, &cp)) > 0 && py_space(cp)) b += k;
    while (e > b) {
        size_t start = e - 1;
        while (start > b && e - start < 4 && (u[start] & 0xc0) == 0x80) start--;
        k = utf8_decode(u + start, e - start, &cp);
        if (k != e - start || !py_space(cp)) break;
        e = start;
    }
    *begin = b;
    *end = e;
}

static void sb_stripped(struct rf_strbuf *b, const char *s)
{
    size_t lo = 0, hi = strlen(s);
    py_strip(s, &lo, &hi);
    rf_strbuf_add(b, s + lo, hi - lo);
}

/* ---- one renderer per family ---- */

static const char *content_of(const struct rf_chat_message *m)
{
    return m->content ? m->content : "";
}

static bool role_is(const struct rf_chat_message *m, const char *role)
{
    return strcmp(m->role, role) == 0;
}

static void render_chatml(struct rf_strbuf *o, const struct chat_env *env,
                          const struct rf_chat_message *msgs, size_t n, bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && env->default_system && !role_is(&msgs[0], "system")) {
            rf_strbuf_str(o, "<|im_start|>system\n");
            rf_strbuf_str(o, env->default_system);
            rf_strbuf_str(o, "<|im_end|>\n");
        }
        rf_strbuf_str(o, "<|im_start|>");
        rf_strbuf_str(o, msgs[i].role);
        rf_strbuf_str(o, "\n");
        rf_strbuf_str(o, content_of(&msgs[i]));
        rf_strbuf_str(o, "<|im_end|>\n");
    }
    if (add_ass) rf_strbuf_str(o, "<|im_start|>assistant\n");
}

/* Llama 2: the system message goes inside the first turn's [INST]; every user turn
 * but the first of the text opens with BOS; the template ignores add_generation_prompt. */
static void render_llama2(struct rf_strbuf *o, const struct chat_env *env,
                          const struct rf_chat_message *msgs, size_t n)
{
    const char *sys = NULL;
    size_t first = 0;
    if (n > 0 && role_is(&msgs[0], "system")) {
        sys = content_of(&msgs[0]);
        first = 1;
    }
    struct rf_strbuf turn = {0};
    for (size_t i = first; i < n; i++) {
        turn.len = 0;
        if (i == first && sys) {
            rf_strbuf_str(&turn, "<<SYS>>\n");
            rf_strbuf_str(&turn, sys);
            rf_strbuf_str(&turn, "\n<</SYS>>\n\n");
        }
        rf_strbuf_str(&turn, content_of(&msgs[i]));
        if (turn.oom) break;
        const char *text = turn.len ? turn.p : "";
        if (role_is(&msgs[i], "user")) {
            if (o->len > 0) rf_strbuf_str(o, env->bos);
            rf_strbuf_str(o, "[INST] ");
            sb_stripped(o, text);
            rf_strbuf_str(o, " [/INST]");
        } else if (role_is(&msgs[i], "assistant")) {
            rf_strbuf_str(o, " ");
            sb_stripped(o, text);
            rf_strbuf_str(o, " ");
            rf_strbuf_str(o, env->eos);
        }
    }
    o->oom |= turn.oom;
    free(turn.p);
}

static void render_llama3(struct rf_strbuf *o, const struct rf_chat_message *msgs, size_t n,
                          bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        rf_strbuf_str(o, "<|start_header_id|>");
        rf_strbuf_str(o, msgs[i].role);
        rf_strbuf_str(o, "<|end_header_id|>\n\n");
        sb_stripped(o, content_of(&msgs[i]));
        rf_strbuf_str(o, "<|eot_id|>");
    }
    if (add_ass) rf_strbuf_str(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Gemma 3's handling of a leading system message: its text is the prefix of the
 * next message. Returns the index of the first message to render. */
static size_t system_prefix(const struct rf_chat_message *msgs, size_t n, const char **prefix)
{
    *prefix = NULL;
    if (n == 0 || !role_is(&msgs[0], "system")) return 0;
    *prefix = content_of(&msgs[0]);
    return 1;
}

static void sb_prefix(struct rf_strbuf *o, const char *prefix)
{
    if (!prefix) return;
    rf_strbuf_str(o, prefix);
    rf_strbuf_str(o, "\n\n");
}

static void render_mistral(struct rf_strbuf *o, const struct chat_env *env,
                           const struct rf_chat_message *msgs, size_t n)
{
    const char *prefix;
    const size_t first = system_prefix(msgs, n, &prefix);
    for (size_t i = first; i < n; i++) {
        const char *p = i == first ? prefix : NULL;
        if (role_is(&msgs[i], "user")) {
            rf_strbuf_str(o, "[INST] ");
            sb_prefix(o, p);
            rf_strbuf_str(o, content_of(&msgs[i]));
            rf_strbuf_str(o, " [/INST]");
        } else if (role_is(&msgs[i], "assistant")) {
            sb_prefix(o, p);
            rf_strbuf_str(o, content_of(&msgs[i]));
            rf_strbuf_str(o, env->eos);
        }
    }
}

static void render_gemma(struct rf_strbuf *o, const struct rf_chat_message *msgs, size_t n, bool add_ass)
{
    const char *prefix;
    const size_t first = system_prefix(msgs, n, &prefix);
    for (size_t i = first; i < n; i++) {
        rf_strbuf_str(o, "<start_of_turn>");
        rf_strbuf_str(o, role_is(&msgs[i], "assistant") ? "model" : msgs[i].role);
        rf_strbuf_str(o, "\n");
        sb_prefix(o, i == first ? prefix : NULL);
        sb_stripped(o, content_of(&msgs[i]));
        rf_strbuf_str(o, "<end_of_turn>\n");
    }
    if (add_ass) rf_strbuf_str(o, "<start_of_turn>model\n");
}

/* Phi-3: an empty system message is dropped; without a generation prompt the text
 * ends with eos_token. */
static void render_phi3(struct rf_strbuf *o, const struct chat_env *env,
                        const struct rf_chat_message *msgs, size_t n, bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        const char *c = content_of(&msgs[i]);
        const bool sys = role_is(&msgs[i], "system");
        if (!(sys && c[0]) && !role_is(&msgs[i], "user") && !role_is(&msgs[i], "assistant"))
            continue;
        rf_strbuf_str(o, "<|");
        rf_strbuf_str(o, msgs[i].role);
        rf_strbuf_str(o, "|>\n");
        rf_strbuf_str(o, c);
        rf_strbuf_str(o, "<|end|>\n");
    }
    rf_strbuf_str(o, add_ass ? "<|assistant|>\n" : env->eos);
}

/* Zephyr: the generation prompt is emitted inside the message loop, so an empty
 * conversation renders nothing. */
static void render_zephyr(struct rf_strbuf *o, const struct chat_env *env,
                          const struct rf_chat_message *msgs, size_t n, bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        if (role_is(&msgs[i], "user") || role_is(&msgs[i], "system") ||
            role_is(&msgs[i], "assistant")) {
            rf_strbuf_str(o, "<|");
            rf_strbuf_str(o, msgs[i].role);
            rf_strbuf_str(o, "|>\n");
            rf_strbuf_str(o, content_of(&msgs[i]));
            rf_strbuf_str(o, env->eos);
            rf_strbuf_str(o, "\n");
        }
        if (i + 1 == n && add_ass) rf_strbuf_str(o, "<|assistant|>\n");
    }
}

static void chatml_turn(struct rf_strbuf *o, const struct rf_chat_message *m)
{
    rf_strbuf_str(o, "<|im_start|>");
    rf_strbuf_str(o, m->role);
    rf_strbuf_str(o, "\n");
    rf_strbuf_str(o, content_of(m));
    rf_strbuf_str(o, "<|im_end|>\n");
}

/* Qwen2.5: the system turn (the first message's, else the default) comes first, even
 * for an empty conversation; tool results are a user turn of <tool_response> blocks,
 * consecutive ones sharing the turn; roles other than system, user, assistant and tool
 * are left out. */
static void render_qwen25(struct rf_strbuf *o, const struct chat_env *env,
                          const struct rf_chat_message *msgs, size_t n, bool add_ass)
{
    const bool sys = n > 0 && role_is(&msgs[0], "system");
    rf_strbuf_str(o, "<|im_start|>system\n");
    rf_strbuf_str(o, sys                   ? content_of(&msgs[0])
              : env->default_system ? env->default_system
                                    : QWEN25_SYSTEM);
    rf_strbuf_str(o, "<|im_end|>\n");
    for (size_t i = 0; i < n; i++) {
        const struct rf_chat_message *m = &msgs[i];
        if (role_is(m, "user") || role_is(m, "assistant") || (role_is(m, "system") && i > 0)) {
            chatml_turn(o, m);
        } else if (role_is(m, "tool")) {
            if (i == 0 || !role_is(&msgs[i - 1], "tool")) rf_strbuf_str(o, "<|im_start|>user");
            rf_strbuf_str(o, "\n<tool_response>\n");
            rf_strbuf_str(o, content_of(m));
            rf_strbuf_str(o, "\n</tool_response>");
            if (i + 1 == n || !role_is(&msgs[i + 1], "tool")) rf_strbuf_str(o, "<|im_end|>\n");
        }
    }
    if (add_ass) rf_strbuf_str(o, "<|im_start|>assistant\n");
}

static void render(struct rf_strbuf *o, const struct chat_env *env, const struct rf_chat_message *msgs,
                   size_t n, bool add_ass)
{
    switch (env->family) {
    case CHAT_CHATML: render_chatml(o, env, msgs, n, add_ass); break;
    case CHAT_LLAMA2: render_llama2(o, env, msgs, n); break;
    case CHAT_LLAMA3: render_llama3(o, msgs, n, add_ass); break;
    case CHAT_MISTRAL: render_mistral(o, env, msgs, n); break;
    case CHAT_GEMMA: render_gemma(o, msgs, n, add_ass); break;
    case CHAT_PHI3: render_phi3(o, env, msgs, n, add_ass); break;
    case CHAT_ZEPHYR: render_zephyr(o, env, msgs, n, add_ass); break;
    case CHAT_QWEN25: render_qwen25(o, env, msgs, n, add_ass); break;
    case CHAT_FAMILY_COUNT: break;
    }
}

/* ---- detection ---- */

static int detect_family(const char *t)
{
    /* Qwen2.5: the system turn is written before the loop over the messages */
    if (strstr(t, "<|im_start|>") && strstr(t, "<tool_response>") &&
        strstr(t, "messages[0]['role'] == 'system'"))
        return CHAT_QWEN25;
    if (strstr(t, "<|im_start|>")) return CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>")) return CHAT_LLAMA3;
    if (strstr(t, "[INST]")) return strstr(t, "<<SYS>>") ? CHAT_LLAMA2 : CHAT_MISTRAL;
    if (strstr(t, "<start_of_turn>")) return CHAT_GEMMA;
    if (strstr(t, "<|user|>")) return strstr(t, "<|end|>") ? CHAT_PHI3 : CHAT_ZEPHYR;
    return -1;
}

/* A ChatML template may carry a default system prompt as one string literal:
 * '<|im_start|>system\n' TEXT '<|im_end|>' with TEXT free of quotes, braces and '+'
 * (so not an expression). The newline is a real one or Jinja's "\n" escape.
 * Returns TEXT with Jinja's escapes resolved (malloc'd), or NULL. */
static char *chatml_default_system(const char *t, bool *oom)
{
    static const char open[] = "<|im_start|>system";
    for (const char *p = strstr(t, open); p; p = strstr(p + 1, open)) {
        const char *s = p + sizeof open - 1;
        if (s[0] == '\n') s += 1;
        else if (s[0] == '\\' && s[1] == 'n') s += 2;
        else continue;
        const char *e = strstr(s, "<|im_end|>");
        if (!e || e == s) continue;
        if (strcspn(s, "'\"{}+") < (size_t)(e - s)) continue;
        char *text = malloc((size_t)(e - s) + 1);
        if (!text) {
            *oom = true;
            return NULL;
        }
        size_t n = 0;
        for (const char *q = s; q < e; q++) {
            if (*q == '\\' && q + 1 < e) {
                q++;
                text[n++] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q == 'r' ? '\r' : *q;
            } else {
                text[n++] = *q;
            }
        }
        text[n] = '\0';
        return text;
    }
    return NULL;
}

/* The text of token t, rendered as special (malloc'd; "" when t < 0). */
static char *token_text(const struct rf_model *model, rf_token t)
{
    char small[256];
    int32_t n = t < 0 ? 0 : rf_token_to_piece(model, t, small, (int32_t)sizeof small, true);
    if (n < 0) n = 0;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    if (n <= (int32_t)sizeof small) memcpy(s, small, (size_t)n);
    else if (rf_token_to_piece(model, t, s, n, true) != n) n = 0;
    s[n] = '\0';
    return s;
}

/* Picks the family from the name, else from the model's template. */
static rf_status choose_family(const char *t, const char *name, struct chat_env *env, bool *oom)
{
    if (name) {
        for (size_t i = 0; i < sizeof family_names / sizeof family_names[0]; i++) {
            if (strcmp(name, family_names[i].name) == 0) {
                env->family = family_names[i].family;
                const char *d = family_names[i].default_system;
                if (d && !(env->default_system = strdup(d))) *oom = true;
                return RF_OK;
            }
        }
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "chat template: unknown name '%s'; known: " CHAT_NAME_LIST, name);
    }
    if (!t)
        return rf_fail(RF_STATUS_UNSUPPORTED,
                       "chat template: the model has no tokenizer.chat_template; name one "
                       "of: " CHAT_NAME_LIST);
    const int f = detect_family(t);
    if (f < 0)
        return rf_fail(RF_STATUS_UNSUPPORTED,
                       "chat template: the model's template is not a known family; name one "
                       "of: " CHAT_NAME_LIST);
    env->family = (enum chat_family)f;
    if (f == CHAT_CHATML || f == CHAT_QWEN25) env->default_system = chatml_default_system(t, oom);
    return RF_OK;
}

static rf_status check_args(const struct rf_chat_message *msgs, size_t n_msgs, const char *out,
                            int32_t cap)
{
    if (n_msgs > 0 && !msgs) return rf_fail(RF_STATUS_INVALID_ARG, "chat template: NULL messages");
    if (cap < 0 || (cap > 0 && !out))
        return rf_fail(RF_STATUS_INVALID_ARG, "chat template: bad output buffer (cap %d)", cap);
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role)
            return rf_fail(RF_STATUS_INVALID_ARG, "chat template: message %zu has no role", i);
    return RF_OK;
}

/* rf_chat_apply on a template's text and the BOS/EOS token texts instead of a model.
 * Not in a header yet: tests declare it. */
int32_t rf_chat_render(const char *tmpl, const char *name, const char *bos, const char *eos,
                       const struct rf_chat_message *msgs, size_t n_msgs, bool add_assistant,
                       char *out, int32_t cap);

int32_t rf_chat_render(const char *tmpl, const char *name, const char *bos, const char *eos,
                       const struct rf_chat_message *msgs, size_t n_msgs, bool add_assistant,
                       char *out, int32_t cap)
{
    struct chat_env env = {.bos = bos ? bos : "", .eos = eos ? eos : ""};
    struct rf_strbuf o = {0};
    bool oom = false;
    int32_t ret = -1;
    if (check_args(msgs, n_msgs, out, cap) != RF_OK) goto done;
    if (choose_family(tmpl, name, &env, &oom) != RF_OK) goto done;
    if (!oom) render(&o, &env, msgs, n_msgs, add_assistant);
    if (oom || o.oom) {
        rf_fail(RF_STATUS_NOMEM, "chat template: out of memory");
        goto done;
    }
    if (o.len > INT32_MAX - 1) {
        rf_fail(RF_STATUS_INVALID_ARG, "chat template: rendered text of %zu bytes is too long",
                o.len);
        goto done;
    }
    if (cap > 0) {
        const size_t k = o.len < (size_t)cap - 1 ? o.len : (size_t)cap - 1;
        if (k) memcpy(out, o.p, k);
        out[k] = '\0';
    }
    ret = (int32_t)o.len;
done:
    free(o.p);
    free(env.default_system);
    return ret;
}

/* Returns the length of the whole text (without the NUL); out gets at most cap - 1
 * bytes of it and a NUL, so a return >= cap means the text was cut. */
int32_t rf_chat_apply(const struct rf_model *model, const char *name,
                      const struct rf_chat_message *msgs, size_t n_msgs, bool add_assistant,
                      char *out, int32_t cap)
{
    if (!model) {
        rf_fail(RF_STATUS_INVALID_ARG, "chat template: NULL model");
        return -1;
    }
    char *bos = token_text(model, rf_model_bos(model));
    char *eos = token_text(model, rf_model_eos(model));
    int32_t ret = -1;
    if (bos && eos)
        ret = rf_chat_render(rf_model_chat_template(model), name, bos, eos, msgs, n_msgs,
                             add_assistant, out, cap);
    else rf_fail(RF_STATUS_NOMEM, "chat template: out of memory");
    free(bos);
    free(eos);
    return ret;
}

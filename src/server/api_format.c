/* Response bodies: OpenAI's chat.completion, text_completion and their stream
 * chunks, errors, and the engine's own /generate objects. Text put in JSON is valid
 * UTF-8 (token pieces that split a character are sanitized; their exact bytes go in
 * "bytes"). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"

/* cJSON string from raw bytes, invalid UTF-8 replaced. */
static cJSON *text_json(const char *s, size_t n)
{
    struct rf_strbuf b = {0};
    srv_utf8_sanitize(s, n, &b);
    cJSON *j = b.oom ? NULL : cJSON_CreateString(b.p ? b.p : "");
    rf_strbuf_free(&b);
    return j;
}

static cJSON *bytes_json(const char *s, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)s[i]));
    return a;
}

static char *print_free(cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

static void add_null_or_str(cJSON *o, const char *name, const char *s)
{
    if (s) cJSON_AddStringToObject(o, name, s);
    else cJSON_AddNullToObject(o, name);
}

char *srv_error_json(const struct srv_error *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    if (!err) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddItemToObject(err, "message", text_json(e->message, strlen(e->message)));
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "server_error");
    add_null_or_str(err, "param", e->param[0] ? e->param : NULL);
    add_null_or_str(err, "code", e->code);
    return print_free(root);
}

static cJSON *usage_json(const struct srv_result *r)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_completion);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt + r->n_completion);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    if (d) cJSON_AddNumberToObject(d, "cached_tokens", r->n_cached);
    return u;
}

/* ---- logprobs ---- */

/* Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]} */
static cJSON *chat_logprobs(const struct srv_result *r)
{
    if (!r->lps) return cJSON_CreateNull();
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(lp, "content");
    for (size_t i = 0; content && i < r->n_lps; i++) {
        const struct srv_lp *t = &r->lps[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(content, e);
        cJSON_AddItemToObject(e, "token", text_json(t->text, t->len));
        cJSON_AddNumberToObject(e, "logprob", t->logprob);
        cJSON_AddItemToObject(e, "bytes", bytes_json(t->text, t->len));
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int32_t k = 0; top && k < t->n_top; k++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(top, x);
            cJSON_AddItemToObject(x, "token", text_json(t->top[k].text, t->top[k].len));
            cJSON_AddNumberToObject(x, "logprob", t->top[k].logprob);
            cJSON_AddItemToObject(x, "bytes", bytes_json(t->top[k].text, t->top[k].len));
        }
    }
    cJSON_AddNullToObject(lp, "refusal");
    return lp;
}

/* Completions: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}],
 * "text_offset"} */
static cJSON *completion_logprobs(const struct srv_result *r)
{
    if (!r->lps) return cJSON_CreateNull();
    cJSON *lp = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *tlp = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *off = cJSON_AddArrayToObject(lp, "text_offset");
    for (size_t i = 0; off && i < r->n_lps; i++) {
        const struct srv_lp *t = &r->lps[i];
        cJSON_AddItemToArray(tokens, text_json(t->text, t->len));
        cJSON_AddItemToArray(tlp, cJSON_CreateNumber(t->logprob));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)t->text_offset));
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(top, d);
        for (int32_t k = 0; d && k < t->n_top; k++) {
            struct rf_strbuf key = {0};
            srv_utf8_sanitize(t->top[k].text, t->top[k].len, &key);
            /* equal texts of different ids: the likelier (earlier) one stays */
            if (!key.oom && !cJSON_GetObjectItemCaseSensitive(d, key.p ? key.p : ""))
                cJSON_AddNumberToObject(d, key.p ? key.p : "", t->top[k].logprob);
            rf_strbuf_free(&key);
        }
    }
    return lp;
}

/* ---- chat ---- */

static cJSON *envelope(const struct srv_result *r, const char *object)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)r->created);
    cJSON_AddStringToObject(root, "model", r->model);
    cJSON_AddStringToObject(root, "system_fingerprint", "rocmforge");
    return root;
}

/* The one choice of a response under root, or NULL for the usage-only last chunk of a
 * stream (stream_options.include_usage), which gets the usage instead. */
static cJSON *one_choice(cJSON *root, const struct srv_result *r, bool usage_only)
{
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    if (usage_only) {
        cJSON_AddItemToObject(root, "usage", usage_json(r));
        return NULL;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    return c;
}

char *srv_chat_json(const struct srv_result *r)
{
    cJSON *root = envelope(r, "chat.completion");
    cJSON *c = one_choice(root, r, false);
    cJSON *msg = cJSON_AddObjectToObject(c, "message");
    if (msg) {
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddItemToObject(msg, "content", text_json(r->text, r->text_len));
        cJSON_AddNullToObject(msg, "refusal");
    }
    cJSON_AddItemToObject(c, "logprobs", chat_logprobs(r));
    add_null_or_str(c, "finish_reason", r->finish);
    cJSON_AddItemToObject(root, "usage", usage_json(r));
    return print_free(root);
}

/* usage_only: the last chunk of stream_options.include_usage (no choices). */
char *srv_chat_chunk_json(const struct srv_result *r, bool role, bool usage_only)
{
    cJSON *root = envelope(r, "chat.completion.chunk");
    cJSON *c = one_choice(root, r, usage_only);
    if (!c) return print_free(root);
    cJSON *delta = cJSON_AddObjectToObject(c, "delta");
    if (delta && role) cJSON_AddStringToObject(delta, "role", "assistant");
    if (delta && (role || r->text_len))
        cJSON_AddItemToObject(delta, "content", text_json(r->text, r->text_len));
    cJSON_AddItemToObject(c, "logprobs", r->n_lps ? chat_logprobs(r) : cJSON_CreateNull());
    add_null_or_str(c, "finish_reason", r->finish);
    return print_free(root);
}

/* ---- completions ---- */

char *srv_completion_json(const struct srv_result *r)
{
    cJSON *root = envelope(r, "text_completion");
    cJSON *c = one_choice(root, r, false);
    cJSON_AddItemToObject(c, "text", text_json(r->text, r->text_len));
    cJSON_AddItemToObject(c, "logprobs", completion_logprobs(r));
    add_null_or_str(c, "finish_reason", r->finish);
    cJSON_AddItemToObject(root, "usage", usage_json(r));
    return print_free(root);
}

char *srv_completion_chunk_json(const struct srv_result *r, bool usage_only)
{
    cJSON *root = envelope(r, "text_completion");
    cJSON *c = one_choice(root, r, usage_only);
    if (!c) return print_free(root);
    cJSON_AddItemToObject(c, "text", text_json(r->text, r->text_len));
    cJSON_AddItemToObject(c, "logprobs", r->n_lps ? completion_logprobs(r) : cJSON_CreateNull());
    add_null_or_str(c, "finish_reason", r->finish);
    return print_free(root);
}

/* ---- /generate ---- */

static void add_counts(cJSON *o, const struct srv_result *r)
{
    cJSON_AddNumberToObject(o, "tokens_prompt", r->n_prompt);
    cJSON_AddNumberToObject(o, "tokens_generated", r->n_completion);
    cJSON_AddNumberToObject(o, "tokens_cached", r->n_cached);
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    if (t) {
        cJSON_AddNumberToObject(t, "ttft_ms", r->ttft_ms);
        cJSON_AddNumberToObject(t, "total_ms", r->total_ms);
    }
}

char *srv_generate_json(const struct srv_result *r)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "id", (double)r->num_id);
    cJSON_AddItemToObject(root, "text", text_json(r->text, r->text_len));
    add_null_or_str(root, "finish_reason", r->finish);
    add_counts(root, r);
    if (r->lps) cJSON_AddItemToObject(root, "logprobs", completion_logprobs(r));
    return print_free(root);
}

/* {"id", "text"} per piece; the last one adds finish_reason and the counts. */
char *srv_generate_chunk_json(const struct srv_result *r)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "id", (double)r->num_id);
    cJSON_AddItemToObject(root, "text", text_json(r->text, r->text_len));
    if (r->lps && r->n_lps) cJSON_AddItemToObject(root, "logprobs", completion_logprobs(r));
    if (r->finish) {
        cJSON_AddStringToObject(root, "finish_reason", r->finish);
        add_counts(root, r);
    }
    return print_free(root);
}

/* Request bodies: JSON to struct srv_req, every field checked for type and range.
 * Unknown fields are ignored; a known field with a bad value is a 400 naming it. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"

bool srv_err(struct srv_error *err, int status, const char *type, const char *code,
             const char *param, const char *fmt, ...)
{
    err->status = status;
    err->type = type;
    err->code = code;
    err->retry_after = 0;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

#define BAD(param, ...) srv_err(err, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

/* ---- typed field readers: absent or null leaves *out as it is ---- */

static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

static bool get_bool(const cJSON *obj, const char *name, bool *out, struct srv_error *err)
{
    const cJSON *f = field(obj, name);
    if (!f) return true;
    if (!cJSON_IsBool(f)) return BAD(name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(f);
    return true;
}

static bool get_num(const cJSON *obj, const char *name, double lo, double hi, float *out,
                    struct srv_error *err)
{
    const cJSON *f = field(obj, name);
    if (!f) return true;
    if (!cJSON_IsNumber(f)) return BAD(name, "'%s' must be a number", name);
    const double v = f->valuedouble;
    if (!(v >= lo && v <= hi)) return BAD(name, "'%s' must be between %g and %g", name, lo, hi);
    *out = (float)v;
    return true;
}

static bool get_int(const cJSON *obj, const char *name, double lo, double hi, double *out,
                    bool *given, struct srv_error *err)
{
    const cJSON *f = field(obj, name);
    if (!f) return true;
    const double v = cJSON_IsNumber(f) ? f->valuedouble : NAN;
    if (!cJSON_IsNumber(f) || v != floor(v)) return BAD(name, "'%s' must be an integer", name);
    if (!(v >= lo && v <= hi)) return BAD(name, "'%s' must be between %.0f and %.0f", name, lo, hi);
    *out = v;
    if (given) *given = true;
    return true;
}

static bool get_i32(const cJSON *obj, const char *name, int32_t lo, int32_t hi, int32_t *out,
                    struct srv_error *err)
{
    double v = *out;
    if (!get_int(obj, name, lo, hi, &v, NULL, err)) return false;
    *out = (int32_t)v;
    return true;
}

static char *dup_str(const char *s, size_t n, struct srv_error *err)
{
    char *d = malloc(n + 1);
    if (!d) {
        srv_err(err, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ---- fields shared by every endpoint ---- */

static bool parse_stop(const cJSON *obj, struct srv_req *r, struct srv_error *err)
{
    const cJSON *f = field(obj, "stop");
    if (!f) return true;
    const cJSON *one = cJSON_IsString(f) ? f : NULL;
    if (!one && !cJSON_IsArray(f))
        return BAD("stop", "'stop' must be a string or an array of strings");
    const int n = one ? 1 : cJSON_GetArraySize(f);
    if (n > SRV_MAX_STOPS)
        return BAD("stop", "'stop' has %d strings; at most %d", n, SRV_MAX_STOPS);
    for (int i = 0; i < n; i++) {
        const cJSON *s = one ? one : cJSON_GetArrayItem(f, i);
        if (!cJSON_IsString(s))
            return BAD("stop", "'stop' must be a string or an array of strings");
        const size_t len = strlen(s->valuestring);
        if (len == 0 || len > SRV_MAX_STOP_LEN || !srv_utf8_valid(s->valuestring, len))
            return BAD("stop", "each 'stop' string must be 1 to %d bytes of UTF-8",
                       SRV_MAX_STOP_LEN);
        if (!(r->stops[r->n_stop] = dup_str(s->valuestring, len, err))) return false;
        r->n_stop++;
    }
    return true;
}

static bool parse_sampling(const cJSON *obj, struct srv_req *r, struct srv_error *err)
{
    struct rf_sampler_params *sp = &r->sp;
    double seed = 0;
    bool ok =
        get_num(obj, "temperature", 0, 2, &sp->temperature, err) &&
        get_num(obj, "top_p", 0, 1, &sp->top_p, err) &&
        get_num(obj, "min_p", 0, 1, &sp->min_p, err) &&
        get_num(obj, "presence_penalty", -2, 2, &sp->presence_penalty, err) &&
        get_num(obj, "frequency_penalty", -2, 2, &sp->frequency_penalty, err) &&
        get_num(obj, "repeat_penalty", 0.01, 100, &sp->repeat_penalty, err) &&
        get_i32(obj, "top_k", 0, INT32_MAX, &sp->top_k, err) &&
        get_i32(obj, "repeat_last_n", 0, 1 << 20, &sp->penalty_last_n, err) &&
        get_int(obj, "seed", -9007199254740992.0, 9007199254740992.0, &seed, &r->seed_given, err);
    /* a negative seed is two's complement, as clients that send -1 expect */
    if (ok && r->seed_given) sp->seed = (uint64_t)(int64_t)seed;
    if (ok && sp->top_p <= 0) sp->top_p = 1e-6f; /* 0 would keep nothing: keep the top token */
    return ok;
}

static bool parse_common(const cJSON *obj, struct srv_req *r, struct srv_error *err)
{
    int32_t n = 1;
    const cJSON *model = field(obj, "model");
    if (model && !cJSON_IsString(model)) return BAD("model", "'model' must be a string");
    if (model && !(r->model = dup_str(model->valuestring, strlen(model->valuestring), err)))
        return false;
    if (!get_i32(obj, "n", 1, 128, &n, err)) return false;
    if (n != 1) return BAD("n", "'n' must be 1: one choice per request");
    if (!get_bool(obj, "stream", &r->stream, err)) return false;
    const cJSON *so = field(obj, "stream_options");
    if (so && !cJSON_IsObject(so))
        return BAD("stream_options", "'stream_options' must be an object");
    if (so && !get_bool(so, "include_usage", &r->include_usage, err)) return false;
    /* max_completion_tokens wins over the older max_tokens; n_predict for /generate */
    if (!get_i32(obj, "max_tokens", 1, INT32_MAX, &r->max_tokens, err) ||
        !get_i32(obj, "max_completion_tokens", 1, INT32_MAX, &r->max_tokens, err) ||
        !get_i32(obj, "n_predict", -1, INT32_MAX, &r->max_tokens, err))
        return false;
    if (r->max_tokens < 0) r->max_tokens = 0;
    return parse_sampling(obj, r, err) && parse_stop(obj, r, err);
}

/* ---- chat messages ---- */

/* content: a string, or an array of parts of which the text ones are joined. */
static bool message_content(const cJSON *c, size_t i, char **out, struct srv_error *err)
{
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c) return (*out = dup_str("", 0, err)) != NULL;
    if (cJSON_IsString(c))
        return (*out = dup_str(c->valuestring, strlen(c->valuestring), err)) != NULL;
    if (!cJSON_IsArray(c)) return BAD(param, "'%s' must be a string or an array of parts", param);
    struct rf_strbuf b = {0};
    const cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) {
            rf_strbuf_free(&b);
            return BAD(param, "'%s' parts must be {\"type\": \"text\", \"text\": string}", param);
        }
        rf_strbuf_str(&b, text->valuestring);
    }
    *out = dup_str(b.p ? b.p : "", b.len, err);
    const bool ok = *out && !b.oom;
    rf_strbuf_free(&b);
    return ok;
}

static bool parse_messages(const cJSON *obj, struct srv_req *r, struct srv_error *err)
{
    const cJSON *m = field(obj, "messages");
    if (!m) return BAD("messages", "'messages' is required");
    if (!cJSON_IsArray(m)) return BAD("messages", "'messages' must be an array");
    const int n = cJSON_GetArraySize(m);
    if (n == 0) return BAD("messages", "'messages' must not be empty");
    if (!(r->msgs = calloc((size_t)n, sizeof *r->msgs)))
        return srv_err(err, 500, "server_error", NULL, NULL, "out of memory");
    for (int i = 0; i < n; i++) {
        const cJSON *msg = cJSON_GetArrayItem(m, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!cJSON_IsObject(msg)) return BAD(param, "'messages[%d]' must be an object", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsString(role) || !role->valuestring[0])
            return BAD(param, "'%s' must be a non-empty string", param);
        char *rs = dup_str(role->valuestring, strlen(role->valuestring), err);
        char *content = NULL;
        r->msgs[i].role = rs;
        r->n_msgs = (size_t)i + 1;
        if (!rs || !message_content(field(msg, "content"), (size_t)i, &content, err)) return false;
        r->msgs[i].content = content;
    }
    return true;
}

/* ---- completion prompts: a string, [string], or token ids ---- */

static bool parse_prompt(const cJSON *obj, int32_t n_vocab, struct srv_req *r,
                         struct srv_error *err)
{
    const cJSON *p = field(obj, "prompt");
    if (!p) return BAD("prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsString(p))
        return (r->prompt = dup_str(p->valuestring, strlen(p->valuestring), err)) != NULL;
    if (!cJSON_IsArray(p))
        return BAD("prompt", "'prompt' must be a string, one string in an array, or token ids");
    const int n = cJSON_GetArraySize(p);
    if (n == 0) return BAD("prompt", "'prompt' must not be empty");
    if (!(r->prompt_ids = malloc((size_t)n * sizeof *r->prompt_ids)))
        return srv_err(err, 500, "server_error", NULL, NULL, "out of memory");
    for (int i = 0; i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(p, i);
        const double v = cJSON_IsNumber(t) ? t->valuedouble : -1;
        if (cJSON_IsString(t))
            return BAD("prompt",
                       "'prompt' must be one string: several prompts (n > 1) are not supported");
        if (!(v >= 0 && v < n_vocab && v == floor(v)))
            return BAD("prompt", "'prompt[%d]' is not a token id in [0, %d)", i, n_vocab);
        r->prompt_ids[i] = (rf_token)v;
    }
    r->n_prompt_ids = n;
    return true;
}

/* logprobs is a boolean with top_logprobs (chat) or the count of alternatives
 * (completions, /generate). */
static bool parse_logprobs(const cJSON *obj, struct srv_req *r, struct srv_error *err)
{
    if (r->api == SRV_API_CHAT) {
        if (!get_bool(obj, "logprobs", &r->logprobs, err) ||
            !get_i32(obj, "top_logprobs", 0, RF_SCHED_MAX_TOP_LOGPROBS, &r->top_logprobs, err))
            return false;
        if (r->top_logprobs > 0 && !r->logprobs)
            return BAD("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        return true;
    }
    int32_t k = -1;
    if (!get_i32(obj, "logprobs", 0, RF_SCHED_MAX_TOP_LOGPROBS, &k, err)) return false;
    r->logprobs = k >= 0;
    r->top_logprobs = k > 0 ? k : 0;
    return true;
}

/* Fields of OpenAI's API that this server cannot honour with the value given. */
static bool unsupported(const cJSON *obj, struct srv_error *err)
{
    const cJSON *f;
    if ((f = field(obj, "echo")) && !cJSON_IsFalse(f))
        return BAD("echo", "'echo' is not supported");
    if ((f = field(obj, "best_of")) && !(cJSON_IsNumber(f) && f->valuedouble == 1))
        return BAD("best_of", "'best_of' must be 1");
    if ((f = field(obj, "suffix")) && !(cJSON_IsString(f) && !f->valuestring[0]))
        return BAD("suffix", "'suffix' is not supported");
    if ((f = field(obj, "tools")) && !(cJSON_IsArray(f) && cJSON_GetArraySize(f) == 0))
        return BAD("tools", "'tools' is not supported");
    return true;
}

static void set_defaults(enum srv_api api, struct srv_req *r)
{
    *r = (struct srv_req){.api = api, .sp = rf_sampler_default_params()};
}

bool srv_req_parse(enum srv_api api, const char *body, size_t len, int32_t n_vocab,
                   struct srv_req *out, struct srv_error *err)
{
    set_defaults(api, out);
    cJSON *root = cJSON_ParseWithLength(body, len);
    bool ok = false;
    if (!root) {
        BAD(NULL, "the request body is not valid JSON");
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        BAD(NULL, "the request body must be a JSON object");
        goto done;
    }
    ok = parse_common(root, out, err) && parse_logprobs(root, out, err) && unsupported(root, err);
    if (ok)
        ok = api == SRV_API_CHAT ? parse_messages(root, out, err)
                                 : parse_prompt(root, n_vocab, out, err);
done:
    cJSON_Delete(root);
    if (!ok) srv_req_free(out);
    return ok;
}

void srv_req_free(struct srv_req *r)
{
    for (int32_t i = 0; i < r->n_stop; i++) free(r->stops[i]);
    for (size_t i = 0; i < r->n_msgs; i++) {
        free((char *)r->msgs[i].role);
        free((char *)r->msgs[i].content);
    }
    free(r->msgs);
    free(r->prompt);
    free(r->prompt_ids);
    free(r->model);
    const enum srv_api api = r->api;
    *r = (struct srv_req){.api = api};
}

/* The server's pieces that need no HTTP and no model: stop strings, UTF-8 repair,
 * key comparison, request validation, response JSON and the metrics text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs the headers above first. */
#include <cjson/cJSON.h>
#include <cmocka.h>

#include "server/srv_internal.h"

/* ---- stop strings ---- */

struct feed {
    struct srv_stop st;
    struct rf_strbuf out;
    size_t lens[4];
};

static void feed_init(struct feed *f, char **stops, int n)
{
    memset(f, 0, sizeof *f);
    f->st.stops = stops;
    f->st.n = n;
    f->st.lens = f->lens;
    for (int i = 0; i < n; i++) f->lens[i] = strlen(stops[i]);
}

static const char *out_of(struct feed *f) { return f->out.p ? f->out.p : ""; }

static void test_stop_held_back_then_released(void **state)
{
    (void)state;
    char *stops[] = {"<END>", "\n\n"};
    struct feed f;
    feed_init(&f, stops, 2);
    assert_false(srv_stop_feed(&f.st, "Hello <", 7, &f.out));
    assert_string_equal(out_of(&f), "Hello "); /* "<" may start "<END>" */
    assert_false(srv_stop_feed(&f.st, "EN", 2, &f.out));
    assert_string_equal(out_of(&f), "Hello ");
    assert_false(srv_stop_feed(&f.st, "D!", 2, &f.out)); /* "<END!" is not a stop */
    assert_string_equal(out_of(&f), "Hello <END!");
    assert_false(srv_stop_feed(&f.st, " a\n", 3, &f.out));
    assert_string_equal(out_of(&f), "Hello <END! a");
    srv_stop_flush(&f.st, &f.out); /* the end: what was held goes out */
    assert_string_equal(out_of(&f), "Hello <END! a\n");
    srv_stop_free(&f.st);
    rf_strbuf_free(&f.out);
}

static void test_stop_spanning_chunks(void **state)
{
    (void)state;
    char *stops[] = {"world", "or"};
    struct feed f;
    feed_init(&f, stops, 2);
    assert_false(srv_stop_feed(&f.st, "hello w", 7, &f.out));
    assert_true(srv_stop_feed(&f.st, "orld and more", 13, &f.out));
    /* the earliest match wins: "world" starts before "or" */
    assert_string_equal(out_of(&f), "hello ");
    assert_true(srv_stop_feed(&f.st, "ignored", 7, &f.out));
    srv_stop_flush(&f.st, &f.out);
    assert_string_equal(out_of(&f), "hello ");
    srv_stop_free(&f.st);
    rf_strbuf_free(&f.out);
}

static void test_stop_utf8_boundary(void **state)
{
    (void)state;
    /* a stop beginning with a multi-byte character: text is held from its start */
    char *stops[] = {"\xc3\xa9t\xc3\xa9"}; /* "été" */
    struct feed f;
    feed_init(&f, stops, 1);
    assert_false(srv_stop_feed(&f.st, "l'\xc3\xa9", 4, &f.out));
    assert_string_equal(out_of(&f), "l'");
    assert_true(srv_stop_feed(&f.st, "t\xc3\xa9!", 4, &f.out));
    assert_string_equal(out_of(&f), "l'");
    srv_stop_free(&f.st);
    rf_strbuf_free(&f.out);
}

static void test_no_stops_pass_through(void **state)
{
    (void)state;
    struct feed f;
    feed_init(&f, NULL, 0);
    assert_false(srv_stop_feed(&f.st, "abc", 3, &f.out));
    assert_string_equal(out_of(&f), "abc");
    rf_strbuf_free(&f.out);
}

/* ---- UTF-8 and keys ---- */

static void sanitized(const char *in, size_t n, const char *want)
{
    struct rf_strbuf b = {0};
    srv_utf8_sanitize(in, n, &b);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p ? b.p : "", want, b.len);
    assert_true(srv_utf8_valid(b.p ? b.p : "", b.len));
    rf_strbuf_free(&b);
}

static void test_utf8_sanitize(void **state)
{
    (void)state;
    sanitized("ok \xe2\x98\x83", 6, "ok \xe2\x98\x83");
    sanitized("a\xe2\x98", 3, "a\xef\xbf\xbd");           /* cut character: one U+FFFD */
    sanitized("\x80\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd"); /* stray continuations */
    sanitized("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */
    sanitized("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    sanitized("\xf4\x90\x80\x80", 4,
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* > U+10FFFF */
    sanitized("x\xf0\x9f\x98y", 5, "x\xef\xbf\xbdy");
    assert_false(srv_utf8_valid("\xff", 1));
    assert_true(srv_utf8_valid("", 0));
}

static void test_secret_equal(void **state)
{
    (void)state;
    assert_true(srv_secret_equal("key", 3, "key", 3));
    assert_false(srv_secret_equal("kez", 3, "key", 3));
    assert_false(srv_secret_equal("ke", 2, "key", 3));
    assert_false(srv_secret_equal("keyy", 4, "key", 3));
    assert_false(srv_secret_equal("", 0, "key", 3));
    assert_false(srv_secret_equal("keykey", 6, "key", 3)); /* not a repetition check */
}

/* ---- requests ---- */

static bool parse(enum srv_api api, const char *body, struct srv_req *r, struct srv_error *e)
{
    return srv_req_parse(api, body, strlen(body), 1000, r, e);
}

static void rejects(enum srv_api api, const char *body, const char *param)
{
    struct srv_req r;
    struct srv_error e;
    assert_false(parse(api, body, &r, &e));
    assert_int_equal(e.status, 400);
    assert_string_equal(e.param, param);
    assert_string_equal(e.type, "invalid_request_error");
}

static void test_parse_chat(void **state)
{
    (void)state;
    struct srv_req r;
    struct srv_error e;
    assert_true(parse(SRV_API_CHAT,
                      "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                      "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                      "{\"type\":\"text\",\"text\":\"b\"}]}],\"max_tokens\":7,\"temperature\":0,"
                      "\"stop\":\"x\",\"seed\":-1,\"logprobs\":true,\"top_logprobs\":3,"
                      "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1}",
                      &r, &e));
    assert_int_equal(r.n_msgs, 2);
    assert_string_equal(r.msgs[1].role, "user");
    assert_string_equal(r.msgs[1].content, "ab");
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.sp.temperature == 0.0f);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stops[0], "x");
    assert_true(r.seed_given && r.sp.seed == UINT64_MAX);
    assert_true(r.logprobs && r.top_logprobs == 3 && r.stream && r.include_usage);
    assert_string_equal(r.model, "m");
    srv_req_free(&r);
}

static void test_parse_completion(void **state)
{
    (void)state;
    struct srv_req r;
    struct srv_error e;
    assert_true(parse(SRV_API_COMPLETION, "{\"prompt\":[\"hi\"],\"logprobs\":2}", &r, &e));
    assert_string_equal(r.prompt, "hi");
    assert_true(r.logprobs && r.top_logprobs == 2);
    assert_int_equal(r.max_tokens, 0);
    srv_req_free(&r);
    assert_true(
        parse(SRV_API_COMPLETION, "{\"prompt\":[1,2,999],\"max_completion_tokens\":3}", &r, &e));
    assert_int_equal(r.n_prompt_ids, 3);
    assert_int_equal(r.prompt_ids[2], 999);
    assert_int_equal(r.max_tokens, 3);
    srv_req_free(&r);
}

static void test_parse_errors_name_the_field(void **state)
{
    (void)state;
    rejects(SRV_API_CHAT, "{\"messages\":", "");
    rejects(SRV_API_CHAT, "[]", "");
    rejects(SRV_API_CHAT, "{}", "messages");
    rejects(SRV_API_CHAT, "{\"messages\":[{\"role\":1}]}", "messages[0].role");
    rejects(SRV_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":{}}]}",
            "messages[0].content");
    rejects(SRV_API_CHAT, "{\"messages\":[],\"temperature\":\"x\"}", "temperature");
    rejects(SRV_API_CHAT, "{\"n\":3}", "n");
    rejects(SRV_API_CHAT, "{\"max_tokens\":1e300}", "max_tokens");
    rejects(SRV_API_CHAT, "{\"stop\":[\"a\",\"\"]}", "stop");
    rejects(SRV_API_CHAT,
            "{\"stop\":[\"\\u00ff\",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\","
            "\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\"]}",
            "stop");
    rejects(SRV_API_CHAT, "{\"top_logprobs\":2}", "top_logprobs");
    rejects(SRV_API_COMPLETION, "{\"prompt\":[1,1000]}", "prompt");
    rejects(SRV_API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt");
    rejects(SRV_API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":true}", "logprobs");
    rejects(SRV_API_COMPLETION, "{\"prompt\":\"a\",\"echo\":true}", "echo");
    rejects(SRV_API_GENERATE, "{\"prompt\":\"a\",\"n_predict\":-2}", "n_predict");
}

/* ---- responses ---- */

static cJSON *parsed(char *json)
{
    assert_non_null(json);
    cJSON *j = cJSON_Parse(json);
    free(json);
    assert_non_null(j);
    return j;
}

static void test_error_json(void **state)
{
    (void)state;
    struct srv_error e;
    srv_err(&e, 400, "invalid_request_error", NULL, "top_p", "bad %s", "value");
    cJSON *j = parsed(srv_error_json(&e));
    const cJSON *err = cJSON_GetObjectItem(j, "error");
    assert_string_equal(cJSON_GetObjectItem(err, "message")->valuestring, "bad value");
    assert_string_equal(cJSON_GetObjectItem(err, "param")->valuestring, "top_p");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    cJSON_Delete(j);
}

static void test_chat_json_logprobs(void **state)
{
    (void)state;
    struct srv_lp lp = {.text = "\xe2\x98", .len = 2, .logprob = -0.5f, .n_top = 1};
    lp.top[0] = (struct srv_lp_top){.text = "\xe2\x98", .len = 2, .logprob = -0.5f};
    struct srv_result r = {.id = "chatcmpl-1",
                           .model = "m",
                           .text = "hi",
                           .text_len = 2,
                           .lps = &lp,
                           .n_lps = 1,
                           .finish = "stop",
                           .n_prompt = 3,
                           .n_completion = 1};
    cJSON *j = parsed(srv_chat_json(&r));
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(c, "message"), "content")->valuestring, "hi");
    const cJSON *t =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "content"), 0);
    /* half a character: replaced in "token", exact in "bytes" */
    assert_string_equal(cJSON_GetObjectItem(t, "token")->valuestring, "\xef\xbf\xbd");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "bytes")), 2);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "bytes"), 0)->valueint, 0xe2);
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    assert_int_equal(cJSON_GetObjectItem(u, "total_tokens")->valueint, 4);
    cJSON_Delete(j);
}

static void test_metrics_text(void **state)
{
    (void)state;
    struct srv_metrics m;
    srv_metrics_init(&m);
    srv_metrics_observe(&m, true, 0.2);
    srv_metrics_observe(&m, false, 0.003);
    srv_metrics_observe(&m, false, 500);
    srv_metrics_http(&m, 503);
    struct rf_sched_stats st = {.blocks_total = 10, .blocks_used = 4, .blocks_cached = 3};
    struct rf_strbuf b = {0};
    srv_metrics_render(&m, &st, &b);
    assert_non_null(strstr(b.p, "\nrocmforge_kv_blocks_used 4\n"));
    assert_non_null(strstr(b.p, "\nrocmforge_kv_blocks_cached 3\n"));
    assert_non_null(strstr(b.p, "\nrocmforge_kv_blocks_free 3\n"));
    assert_non_null(strstr(b.p, "rocmforge_time_to_first_token_seconds_bucket{le=\"0.1\"} 0\n"));
    assert_non_null(strstr(b.p, "rocmforge_time_to_first_token_seconds_bucket{le=\"0.25\"} 1\n"));
    assert_non_null(
        strstr(b.p, "rocmforge_time_per_output_token_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(b.p, "rocmforge_time_per_output_token_seconds_bucket{le=\"120\"} 1\n"));
    assert_non_null(strstr(b.p, "rocmforge_time_per_output_token_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(b.p, "rocmforge_http_responses_total{class=\"5xx\"} 1\n"));
    rf_strbuf_free(&b);
    srv_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_held_back_then_released),
        cmocka_unit_test(test_stop_spanning_chunks),
        cmocka_unit_test(test_stop_utf8_boundary),
        cmocka_unit_test(test_no_stops_pass_through),
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test(test_parse_chat),
        cmocka_unit_test(test_parse_completion),
        cmocka_unit_test(test_parse_errors_name_the_field),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_chat_json_logprobs),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

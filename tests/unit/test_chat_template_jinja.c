/* Chat templates against jinja2: every case of tests/fixtures/templates/expected.json
 * (written by tools/make_chat_template_fixtures.py from the real template strings)
 * rendered by rf_chat_render with the family detected from the template text, byte
 * for byte. Cases the template refuses (it raises) are null there and skipped. */
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

#include "rocmforge.h"

/* Defined in src/tokenizer/chat_template.c. */
int32_t rf_chat_render(const char *tmpl, const char *name, const char *bos, const char *eos,
                       const struct rf_chat_message *msgs, size_t n_msgs, bool add_assistant,
                       char *out, int32_t cap);

static char *read_file(const char *rel)
{
    const char *dir = getenv("RF_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures", rel);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

static void print_escaped(const char *label, const char *s)
{
    fprintf(stderr, "  %s: \"", label);
    for (; *s; s++) {
        if (*s == '\n') fputs("\\n", stderr);
        else if (*s == '"') fputs("\\\"", stderr);
        else fputc(*s, stderr);
    }
    fputs("\"\n", stderr);
}

/* Renders one case; true when it matches (or the template refuses it). */
static bool check_case(const cJSON *c, const char *bos, const char *eos, int index)
{
    const cJSON *expected = cJSON_GetObjectItem(c, "expected");
    if (cJSON_IsNull(expected)) return true;
    const char *tname = cJSON_GetObjectItem(c, "template")->valuestring;
    char *tmpl = read_file(tname);
    assert_non_null(tmpl);
    const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
    const int n = cJSON_GetArraySize(msgs);
    struct rf_chat_message m[32];
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(msgs, i);
        m[i].role = cJSON_GetObjectItem(x, "role")->valuestring;
        m[i].content = cJSON_GetObjectItem(x, "content")->valuestring;
    }
    const bool add = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
    static char out[65536];
    const int32_t len = rf_chat_render(tmpl, NULL, bos, eos, m, (size_t)n, add, out, sizeof out);
    const bool ok = len >= 0 && (size_t)len < sizeof out && strcmp(out, expected->valuestring) == 0;
    if (!ok) {
        fprintf(stderr, "case %d: %s, %d messages, generation prompt %d\n", index, tname, n, add);
        print_escaped("expected", expected->valuestring);
        print_escaped("rendered", len >= 0 ? out : rf_last_error());
    }
    free(tmpl);
    return ok;
}

static void test_every_case(void **state)
{
    (void)state;
    char *text = read_file("templates/expected.json");
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    assert_non_null(doc);
    const char *bos = cJSON_GetObjectItem(doc, "bos")->valuestring;
    const char *eos = cJSON_GetObjectItem(doc, "eos")->valuestring;
    const cJSON *cases = cJSON_GetObjectItem(doc, "cases");
    int index = 0, bad = 0, compared = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        compared += !cJSON_IsNull(cJSON_GetObjectItem(c, "expected"));
        bad += !check_case(c, bos, eos, index++);
    }
    fprintf(stderr, "%d of %d rendered cases differ (%d cases)\n", bad, compared, index);
    assert_true(compared > 300);
    assert_int_equal(bad, 0);
    cJSON_Delete(doc);
    free(text);
}

/* Qwen2.5's default system prompt comes before everything, even without a user turn;
 * named families render the same as detected ones. */
static void test_qwen_names(void **state)
{
    (void)state;
    static char a[1024], b[1024];
    const struct rf_chat_message u = {"user", "Hi"};
    char *tmpl = read_file("templates/qwen2.5.jinja");
    assert_non_null(tmpl);
    assert_true(rf_chat_render(tmpl, NULL, "", "", &u, 1, true, a, sizeof a) > 0);
    assert_true(rf_chat_render(NULL, "qwen2.5", "", "", &u, 1, true, b, sizeof b) > 0);
    assert_string_equal(a, b);
    assert_string_equal(a, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                           "helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\n");
    assert_true(rf_chat_render(NULL, "qwen2", "", "", &u, 1, false, b, sizeof b) > 0);
    assert_string_equal(b, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                           "<|im_start|>user\nHi<|im_end|>\n");
    free(tmpl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_case),
        cmocka_unit_test(test_qwen_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

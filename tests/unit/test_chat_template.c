/* Chat templates without a model: family detection on the committed template
 * fixtures, exact renderings of hand-made conversations, the fallbacks for system
 * messages, errors and output truncation. (tests/py/test_chat_template.py compares
 * every family's rendering with jinja2.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include "rocmforge.h"

/* Defined in src/tokenizer/chat_template.c. */
int32_t rf_chat_render(const char *tmpl, const char *name, const char *bos, const char *eos,
                       const struct rf_chat_message *msgs, size_t n_msgs, bool add_assistant,
                       char *out, int32_t cap);

static char out_a[4096], out_b[4096];

static char *read_fixture(const char *name)
{
    const char *dir = getenv("RF_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/chat_templates/%s.jinja", dir ? dir : "tests/fixtures", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static const struct rf_chat_message conv[] = {
    {"system", "Be brief."},
    {"user", " Hi there "},
    {"assistant", "Hello!\n"},
    {"user", "What is 2+2?"},
};

static const char *render(const char *tmpl, const char *name, const struct rf_chat_message *m,
                          size_t n, bool add_ass, char *out)
{
    const int32_t len = rf_chat_render(tmpl, name, "<s>", "</s>", m, n, add_ass, out, 4096);
    assert_true(len >= 0 && len < 4096);
    assert_int_equal((size_t)len, strlen(out));
    return out;
}

static void test_detection(void **state)
{
    (void)state;
    static const char *const files[] = {"chatml", "llama2", "llama3", "mistral",
                                        "gemma",  "gemma3", "phi3",   "zephyr"};
    static const char *const fams[] = {"chatml", "llama2", "llama3", "mistral",
                                       "gemma",  "gemma",  "phi3",   "zephyr"};
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        const char *t = read_fixture(files[f]);
        for (size_t first = 0; first < 2; first++) {
            render(t, NULL, conv + first, 4 - first, true, out_a);
            render(NULL, fams[f], conv + first, 4 - first, true, out_b);
            assert_string_equal(out_a, out_b);
        }
    }
    /* The other families render differently from each other. */
    render(NULL, "phi3", conv, 4, true, out_a);
    render(NULL, "zephyr", conv, 4, true, out_b);
    assert_string_not_equal(out_a, out_b);
}

static void test_default_system(void **state)
{
    (void)state;
    const char *t = read_fixture("qwen2");
    render(t, NULL, conv + 1, 1, true, out_a);
    assert_string_equal(out_a, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                               "<|im_start|>user\n Hi there <|im_end|>\n<|im_start|>assistant\n");
    render(t, NULL, conv, 2, false, out_a); /* a system message replaces the default */
    assert_string_equal(out_a, "<|im_start|>system\nBe brief.<|im_end|>\n"
                               "<|im_start|>user\n Hi there <|im_end|>\n");
    render(t, NULL, conv, 0, false, out_a);
    assert_string_equal(out_a, "");
    /* With the escape written as backslash-n in the template source. */
    const char *esc = "{{ '<|im_start|>system\\nSay \\\\ hi.<|im_end|>\\n' }}";
    render(esc, NULL, conv + 1, 1, false, out_a);
    assert_string_equal(out_a, "<|im_start|>system\nSay \\ hi.<|im_end|>\n"
                               "<|im_start|>user\n Hi there <|im_end|>\n");
    /* Forcing "chatml" gives the plain template. */
    render(t, "chatml", conv + 1, 1, false, out_a);
    assert_string_equal(out_a, "<|im_start|>user\n Hi there <|im_end|>\n");
}

static void test_llama2(void **state)
{
    (void)state;
    render(NULL, "llama2", conv, 4, true, out_a);
    assert_string_equal(out_a, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi there [/INST] Hello! "
                               "</s><s>[INST] What is 2+2? [/INST]");
    render(NULL, "llama2", conv + 1, 2, true, out_a);
    assert_string_equal(out_a, "[INST] Hi there [/INST] Hello! </s>");
}

static void test_llama3_and_strip(void **state)
{
    (void)state;
    /* Python's strip(): U+3000, U+00A0 and U+2028 are whitespace, U+200B is not. */
    const struct rf_chat_message m[] = {{"user", "\xe3\x80\x80 hi\xc2\xa0\n\xe2\x80\xa8"},
                                        {"assistant", "\xe2\x80\x8bok"}};
    render(NULL, "llama3", m, 2, true, out_a);
    assert_string_equal(out_a, "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                               "<|start_header_id|>assistant<|end_header_id|>\n\n"
                               "\xe2\x80\x8bok<|eot_id|>"
                               "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_system_fallbacks(void **state)
{
    (void)state;
    render(NULL, "mistral", conv, 4, true, out_a);
    assert_string_equal(out_a, "[INST] Be brief.\n\n Hi there  [/INST]Hello!\n</s>"
                               "[INST] What is 2+2? [/INST]");
    /* Gemma 3: the system text is a prefix that the trim of the content leaves alone. */
    const struct rf_chat_message m[] = {{"system", " Sys "}, {"user", " Hi "}};
    render(NULL, "gemma", m, 2, true, out_a);
    assert_string_equal(out_a, "<start_of_turn>user\n Sys \n\nHi<end_of_turn>\n"
                               "<start_of_turn>model\n");
    render(NULL, "gemma", m, 1, false, out_a); /* a lone system message renders nothing */
    assert_string_equal(out_a, "");
}

static void test_phi3_zephyr(void **state)
{
    (void)state;
    const struct rf_chat_message m[] = {{"system", ""}, {"user", "a"}};
    render(NULL, "phi3", m, 2, false, out_a);
    assert_string_equal(out_a, "<|user|>\na<|end|>\n</s>");
    render(NULL, "zephyr", m, 2, true, out_a);
    assert_string_equal(out_a, "<|system|>\n</s>\n<|user|>\na</s>\n<|assistant|>\n");
    render(NULL, "zephyr", m, 0, true, out_a);
    assert_string_equal(out_a, "");
}

static void test_errors(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(rf_chat_render("{{ messages }}", NULL, "", "", conv, 1, true, buf, 8), -1);
    assert_non_null(
        strstr(rf_last_error(), "chatml, llama2, llama3, mistral, gemma, phi3, zephyr"));
    assert_int_equal(rf_chat_render(NULL, NULL, "", "", conv, 1, true, buf, 8), -1);
    assert_non_null(strstr(rf_last_error(), "no tokenizer.chat_template"));
    assert_int_equal(rf_chat_render(NULL, "vicuna", "", "", conv, 1, true, buf, 8), -1);
    assert_non_null(strstr(rf_last_error(), "'vicuna'"));
    const struct rf_chat_message bad[] = {{NULL, "x"}};
    assert_int_equal(rf_chat_render(NULL, "chatml", "", "", bad, 1, true, buf, 8), -1);
    assert_int_equal(rf_chat_render(NULL, "chatml", "", "", conv, 1, true, NULL, 8), -1);
}

static void test_truncation(void **state)
{
    (void)state;
    const struct rf_chat_message m[] = {{"user", "hello"}};
    const char *full = "<|im_start|>user\nhello<|im_end|>\n";
    char buf[8];
    memset(buf, 'x', sizeof buf);
    const int32_t n = rf_chat_render(NULL, "chatml", "", "", m, 1, false, buf, 8);
    assert_int_equal(n, (int32_t)strlen(full));
    assert_memory_equal(buf, full, 7);
    assert_int_equal(buf[7], '\0');
    assert_int_equal(rf_chat_render(NULL, "chatml", "", "", m, 1, false, NULL, 0), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detection),        cmocka_unit_test(test_default_system),
        cmocka_unit_test(test_llama2),           cmocka_unit_test(test_llama3_and_strip),
        cmocka_unit_test(test_system_fallbacks), cmocka_unit_test(test_phi3_zephyr),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tokenizer against llama.cpp's golden cases (tests/fixtures/<model>_tokenize.txt from
 * tools/make_golden.py) on the real vocabs, plus hand-written cases on tiny in-memory
 * vocabs for the rules and the validation errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/status.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#define MAX_IDS 8192

/* ---- helpers ---- */

struct model {
    struct rf_gguf *g;
    struct rf_vocab *v;
};

static char *path_join(const char *dir, const char *name)
{
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Model named by the fixture's "# model:" header, from $RF_MODELS; false when absent. */
static bool open_model(const char *fixture_text, struct model *m)
{
    const char *models = getenv("RF_MODELS");
    const char *h = strstr(fixture_text, "# model: ");
    assert_non_null(h);
    char name[256];
    assert_int_equal(sscanf(h, "# model: %255s", name), 1);
    if (!models) return false;
    char *path = path_join(models, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        free(path);
        return false;
    }
    fclose(f);
    if (rf_gguf_open(path, &m->g) != RF_OK) fail_msg("open %s: %s", path, rf_last_error());
    free(path);
    if (rf_vocab_load(m->g, &m->v) != RF_OK) fail_msg("vocab: %s", rf_last_error());
    return true;
}

static void close_model(struct model *m)
{
    rf_vocab_free(m->v);
    rf_gguf_close(m->g);
}

static int parse_ids(const char *s, rf_token *out, int cap)
{
    int n = 0;
    char *end;
    while (*s) {
        const long x = strtol(s, &end, 10);
        if (end == s) break;
        if (n < cap) out[n] = (rf_token)x;
        n++;
        s = end;
    }
    return n;
}

static size_t unhex(const char *s, char *out)
{
    size_t n = 0;
    for (; s[0] && s[1]; s += 2) {
        unsigned x;
        if (sscanf(s, "%2x", &x) != 1) break;
        out[n++] = (char)x;
    }
    return n;
}

/* Strict UTF-8 validity (no overlongs, surrogates or code points past U+10FFFF). */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        const unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) len = 1;
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            const unsigned b = s[i + k];
            if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return false;
        }
        i += len;
    }
    return true;
}

/* All pieces of ids through the streaming detokenizer. */
static size_t stream(const struct rf_vocab *v, const rf_token *ids, int n, char *out, bool *each_valid)
{
    struct rf_vocab_detok *d = rf_vocab_detok_new(v, false);
    assert_non_null(d);
    size_t total = 0;
    *each_valid = true;
    for (int i = 0; i <= n; i++) {
        const char *p;
        const size_t k = i < n ? rf_vocab_detok_push(d, ids[i], &p) : rf_vocab_detok_flush(d, &p);
        *each_valid = *each_valid && valid_utf8((const unsigned char *)p, k);
        memcpy(out + total, p, k);
        total += k;
    }
    rf_vocab_detok_free(d);
    return total;
}

/* ---- golden cases ---- */

struct counts {
    int cases, ok_plain, ok_special, ok_detok, roundtrip_ref, roundtrip_fail_ref, stream_ok;
};

static bool same_ids(const rf_token *a, int na, const rf_token *b, int nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static void report_ids(const char *what, int line, const rf_token *want, int nw, const rf_token *got, int ng)
{
    fprintf(stderr, "line %d %s: want %d ids, got %d:", line, what, nw, ng);
    for (int i = 0; i < ng && i < 24; i++) fprintf(stderr, " %d%s", got[i], i < nw && got[i] == want[i] ? "" : "*");
    fprintf(stderr, "\n");
}

static rf_token *g_want, *g_got;
static char *g_text, *g_ref, *g_out;

static void check_case(const struct rf_vocab *v, char *line, int lineno, struct counts *c)
{
    char *f[4];
    for (int i = 0; i < 4; i++) f[i] = strsep(&line, "\t");
    assert_non_null(f[3]);
    const size_t len = unhex(f[0], g_text);
    const size_t ref_len = unhex(f[3], g_ref);
    c->cases++;
    for (int mode = 0; mode < 2; mode++) {
        const int nw = parse_ids(f[1 + mode], g_want, MAX_IDS);
        const int ng = rf_vocab_tokenize(v, g_text, len, g_got, MAX_IDS, true, mode == 1);
        assert_true(nw <= MAX_IDS && ng >= 0);
        if (same_ids(g_want, nw, g_got, ng)) *(mode ? &c->ok_special : &c->ok_plain) += 1;
        else report_ids(mode ? "parse_special" : "plain", lineno, g_want, nw, g_got, ng);
    }
    const int n = parse_ids(f[1], g_want, MAX_IDS);
    const int k = rf_vocab_detokenize(v, g_want, n, g_out, 4 * MAX_IDS, false, false);
    if (k == (int)ref_len && memcmp(g_out, g_ref, ref_len) == 0) c->ok_detok++;
    else fprintf(stderr, "line %d: detokenized text differs from llama.cpp's\n", lineno);
    if (ref_len == len && memcmp(g_ref, g_text, len) == 0) c->roundtrip_ref++;
    else c->roundtrip_fail_ref++;
    bool each_valid;
    const size_t sn = stream(v, g_want, n, g_out, &each_valid);
    const bool ref_valid = valid_utf8((const unsigned char *)g_ref, ref_len);
    if (each_valid && (!ref_valid || (sn == ref_len && memcmp(g_out, g_ref, sn) == 0))) c->stream_ok++;
    else fprintf(stderr, "line %d: streaming output wrong (valid %d)\n", lineno, each_valid);
}

/* Header: "# n_vocab: N  bos: B  eos: E  eot: T" and "# eog: ids". */
static void check_header(const struct rf_vocab *v, const char *text)
{
    int n, bos, eos, eot;
    const char *h = strstr(text, "# n_vocab: ");
    assert_non_null(h);
    assert_int_equal(sscanf(h, "# n_vocab: %d bos: %d eos: %d eot: %d", &n, &bos, &eos, &eot), 4);
    assert_int_equal(rf_vocab_n_tokens(v), n);
    assert_int_equal(rf_vocab_bos(v), bos);
    assert_int_equal(rf_vocab_eos(v), eos);
    assert_int_equal(rf_vocab_eot(v), eot);
    h = strstr(text, "# eog:");
    assert_non_null(h);
    rf_token eog[64];
    const int ne = parse_ids(h + 6, eog, 64);
    int count = 0;
    for (rf_token t = 0; t < n; t++) count += rf_vocab_is_eog(v, t);
    assert_int_equal(count, ne);
    for (int i = 0; i < ne; i++) assert_true(rf_vocab_is_eog(v, eog[i]));
}

static void run_golden(const char *fixture)
{
    const char *dir = getenv("RF_FIXTURES");
    if (!dir) skip();
    char *path = path_join(dir, fixture);
    size_t flen = 0;
    char *text = read_file(path, &flen);
    if (!text) fail_msg("missing fixture %s", path);
    struct model m;
    if (!open_model(text, &m)) {
        fprintf(stderr, "skipping %s: model not found in $RF_MODELS\n", fixture);
        free(path);
        free(text);
        skip();
    }
    check_header(m.v, text);
    g_want = malloc(MAX_IDS * sizeof *g_want);
    g_got = malloc(MAX_IDS * sizeof *g_got);
    g_text = malloc(flen), g_ref = malloc(flen), g_out = malloc(4 * MAX_IDS);
    struct counts c = {0};
    int lineno = 0;
    char *save, *line = strtok_r(text, "\n", &save);
    for (; line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] != '#') check_case(m.v, line, lineno, &c);
    }
    fprintf(stderr, "%s: %d cases; plain %d, parse_special %d, detok %d, stream %d identical; "
            "llama.cpp round-trips %d (%d do not: invalid UTF-8 input)\n",
            fixture, c.cases, c.ok_plain, c.ok_special, c.ok_detok, c.stream_ok, c.roundtrip_ref,
            c.roundtrip_fail_ref);
    assert_true(c.cases >= 1000);
    assert_int_equal(c.ok_plain, c.cases);
    assert_int_equal(c.ok_special, c.cases);
    assert_int_equal(c.ok_detok, c.cases);
    assert_int_equal(c.stream_ok, c.cases);
    free(g_want), free(g_got), free(g_text), free(g_ref), free(g_out);
    close_model(&m);
    free(path);
    free(text);
}

static void test_golden_smollm2(void **state)
{
    (void)state;
    run_golden("smollm2_tokenize.txt");
}

static void test_golden_gemma3(void **state)
{
    (void)state;
    run_golden("gemma3_tokenize.txt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_smollm2),
        cmocka_unit_test(test_golden_gemma3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

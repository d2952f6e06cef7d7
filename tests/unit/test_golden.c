/* End to end against llama.cpp (fixtures from tools/make_golden.py): greedy
 * continuations, and the KL divergence / top-1 agreement of our next-token
 * distributions at teacher-forced positions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/fp16.h"
#include "rocmforge.h"

#define MAX_IDS 1024

struct golden_case {
    char text[4096];
    rf_token prompt[MAX_IDS];
    int n_prompt;
    rf_token cont[MAX_IDS];
    int n_cont;
    int pos[16];
    int n_pos;
};

static int parse_ids(const char *s, rf_token *out, int cap)
{
    int n = 0;
    char *end;
    while (*s && n < cap) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[n++] = (rf_token)v;
        s = end;
    }
    return n;
}

static void unhex(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < len && n + 1 < cap; i += 2) {
        unsigned v;
        if (sscanf(s + i, "%2x", &v) != 1) break;
        out[n++] = (char)v;
    }
    out[n] = '\0';
}

/* Splits one fixture line into its four tab-separated fields. */
static int parse_line(char *line, struct golden_case *c)
{
    char *f[4];
    for (int i = 0; i < 4; i++) {
        f[i] = strsep(&line, "\t");
        if (!f[i]) return -1;
    }
    unhex(f[0], strlen(f[0]), c->text, sizeof c->text);
    c->n_prompt = parse_ids(f[1], c->prompt, MAX_IDS);
    c->n_cont = parse_ids(f[2], c->cont, MAX_IDS);
    rf_token pos[16];
    c->n_pos = parse_ids(f[3], pos, 16);
    for (int i = 0; i < c->n_pos; i++) c->pos[i] = pos[i];
    return 0;
}

static double kl_divergence(const float *ref_logp16_as_f32, const float *logits, int n)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < n; i++) sum += exp(logits[i] - mx);
    const double lse = mx + log(sum);
    double kl = 0;
    for (int i = 0; i < n; i++) {
        const double lp = ref_logp16_as_f32[i];
        if (lp < -30) continue; /* below f16's useful range: mass ~1e-13 */
        kl += exp(lp) * (lp - (logits[i] - lse));
    }
    return kl;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_smollm2_golden(void **state)
{
    (void)state;
    const char *models = getenv("RF_MODELS"), *fixtures = getenv("RF_FIXTURES");
    assert_non_null(models);
    assert_non_null(fixtures);
    char path[1024], fx[1024], lp_path[1024];
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    snprintf(fx, sizeof fx, "%s/smollm2_greedy.txt", fixtures);
    snprintf(lp_path, sizeof lp_path, "%s/smollm2_logprobs.f16", fixtures);

    struct rf_model *m = NULL;
    struct rf_model_params mp = rf_model_default_params();
    mp.n_threads = 2;
    if (rf_model_load(path, &mp, &m) != RF_OK) fail_msg("load: %s", rf_last_error());
    struct rf_context *ctx = NULL;
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 512;
    assert_int_equal(rf_context_init(m, &cp, &ctx), RF_OK);
    const int n_vocab = rf_model_n_vocab(m);

    FILE *f = fopen(fx, "r"), *lpf = fopen(lp_path, "rb");
    assert_non_null(f);
    assert_non_null(lpf);
    uint16_t *row16 = malloc(sizeof(uint16_t) * (size_t)n_vocab);
    float *row = malloc(sizeof(float) * (size_t)n_vocab);
    static char line[1 << 16];
    static struct golden_case c;
    rf_token seq[2 * MAX_IDS], ours[MAX_IDS];
    int n_cases = 0, greedy_same = 0, n_positions = 0, top1_same = 0;
    double kl_sum = 0, kl_max = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = '\0';
        assert_int_equal(parse_line(line, &c), 0);
        n_cases++;

        /* Tokenization of the prompt, with special tokens parsed as `run` does. */
        int n = rf_tokenize(m, c.text, strlen(c.text), ours, MAX_IDS, true, true);
        assert_int_equal(n, c.n_prompt);
        assert_memory_equal(ours, c.prompt, sizeof(rf_token) * (size_t)n);

        /* Greedy continuation, token by token. */
        rf_context_reset(ctx);
        assert_int_equal(rf_decode(ctx, c.prompt, c.n_prompt, false), RF_OK);
        int same = 1;
        for (int i = 0; i < c.n_cont; i++) {
            rf_token t = argmax(rf_get_logits(ctx, -1), n_vocab);
            if (t != c.cont[i]) {
                if (same)
                    printf("case %d: greedy diverges at token %d (ours %d, reference %d)\n",
                           n_cases, i, t, c.cont[i]);
                same = 0;
            }
            /* Feed the reference token so later steps stay comparable. */
            assert_int_equal(rf_decode(ctx, &c.cont[i], 1, false), RF_OK);
        }
        greedy_same += same;

        /* Teacher-forced distributions over prompt + reference continuation. */
        memcpy(seq, c.prompt, sizeof(rf_token) * (size_t)c.n_prompt);
        memcpy(seq + c.n_prompt, c.cont, sizeof(rf_token) * (size_t)c.n_cont);
        rf_context_reset(ctx);
        assert_int_equal(rf_decode(ctx, seq, c.n_prompt + c.n_cont, true), RF_OK);
        for (int i = 0; i < c.n_pos; i++) {
            assert_int_equal(fread(row16, sizeof(uint16_t), (size_t)n_vocab, lpf), (size_t)n_vocab);
            for (int j = 0; j < n_vocab; j++) row[j] = rf_fp16_to_fp32(row16[j]);
            const float *lg = rf_get_logits(ctx, c.pos[i]);
            assert_non_null(lg);
            const double kl = kl_divergence(row, lg, n_vocab);
            kl_sum += kl;
            kl_max = kl > kl_max ? kl : kl_max;
            top1_same += argmax(lg, n_vocab) == argmax(row, n_vocab);
            n_positions++;
        }
    }
    fclose(f);
    fclose(lpf);
    free(row16);
    free(row);
    const double kl_mean = kl_sum / n_positions;
    printf("golden: %d prompts, greedy identical %d/%d; %d positions, mean KL %.3g (max %.3g), "
           "top-1 agreement %.1f%%\n",
           n_cases, greedy_same, n_cases, n_positions, kl_mean, kl_max,
           100.0 * top1_same / n_positions);
    assert_int_equal(n_cases, 20);
    assert_true(greedy_same >= 18);
    assert_true(kl_mean <= 1e-3);
    assert_true(top1_same * 100 >= 99 * n_positions);
    rf_context_free(ctx);
    rf_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_smollm2_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The GPU against the CPU on the real model (ctest label gpu; needs a GPU): the
 * next-token distributions of a teacher-forced text with every layer and with half
 * the layers offloaded, greedy draws on the device against the argmax of the
 * logits, several sequences in one batch against each alone, and a context too big
 * for the device failing with a message. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rocmforge.h"
#include "runtime/batch.h"
#include "runtime/context.h"

#define MAX_TOK 512

static const char *TEXT =
    "The history of the lighthouse begins with fires lit on hilltops to guide ships "
    "home. Later, towers of stone carried lanterns, and by the nineteenth century "
    "lenses focused a single flame into a beam seen for miles. Keepers trimmed wicks, "
    "wound clockwork and logged every passing vessel through long winter nights. "
    "Today most lights are automatic, yet the towers still stand along the coast.";

static struct rf_model *load(int32_t ngl)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("RF_MODELS"));
    struct rf_model_params p = rf_model_default_params();
    p.n_threads = 2;
    p.n_gpu_layers = ngl;
    struct rf_model *m = NULL;
    if (rf_model_load(path, &p, &m) != RF_OK) fail_msg("load: %s", rf_last_error());
    return m;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static double log_sum_exp(const float *x, int n)
{
    double m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int i = 0; i < n; i++) s += exp(x[i] - m);
    return m + log(s);
}

/* KL(p || q) of the softmaxes of two logit rows. */
static double kl(const float *p, const float *q, int n)
{
    const double lp = log_sum_exp(p, n), lq = log_sum_exp(q, n);
    double k = 0;
    for (int i = 0; i < n; i++) {
        const double a = p[i] - lp;
        k += exp(a) * (a - (q[i] - lq));
    }
    return k;
}

/* All logits of the text's tokens, (n, n_vocab). */
static float *teacher_forced(struct rf_model *m, const rf_token *ids, int n)
{
    struct rf_context *c = NULL;
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = MAX_TOK;
    cp.n_batch = 64; /* several chunks: prefill and the chunk boundaries */
    assert_int_equal(rf_context_init(m, &cp, &c), RF_OK);
    if (rf_decode(c, ids, n, true) != RF_OK) fail_msg("decode: %s", rf_last_error());
    const int nv = rf_model_n_vocab(m);
    float *out = malloc((size_t)n * (size_t)nv * sizeof *out);
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * nv, rf_get_logits(c, i), (size_t)nv * 4);
    rf_context_free(c);
    return out;
}

static void compare(const char *what, const float *ref, const float *got, int n, int nv)
{
    double sum = 0, max = 0;
    int top1 = 0;
    for (int i = 0; i < n; i++) {
        const double k = kl(ref + (size_t)i * nv, got + (size_t)i * nv, nv);
        sum += k;
        max = k > max ? k : max;
        top1 += argmax(ref + (size_t)i * nv, nv) == argmax(got + (size_t)i * nv, nv);
    }
    printf("%s: %d positions, mean KL %.3g (max %.3g), top-1 %d/%d\n", what, n, sum / n, max, top1,
           n);
    assert_true(sum / n <= 1e-3);
    assert_true(top1 * 100 >= 99 * n);
}

static void test_gpu_matches_cpu(void **state)
{
    (void)state;
    struct rf_model *cpu = load(0), *gpu = load(-1);
    assert_int_equal(rf_model_n_gpu_layers(cpu), 0);
    assert_int_equal(rf_model_n_gpu_layers(gpu), rf_model_n_layer(gpu));
    const int n_layer = rf_model_n_layer(cpu);
    struct rf_model *half = load(n_layer / 2);
    assert_int_equal(rf_model_n_gpu_layers(half), n_layer / 2);

    rf_token ids[MAX_TOK];
    const int n = rf_tokenize(cpu, TEXT, strlen(TEXT), ids, MAX_TOK, true, false);
    assert_true(n > 64 && n < MAX_TOK);
    const int nv = rf_model_n_vocab(cpu);
    float *ref = teacher_forced(cpu, ids, n), *g = teacher_forced(gpu, ids, n);
    float *h = teacher_forced(half, ids, n);
    compare("all layers on the GPU", ref, g, n, nv);
    compare("half the layers on the GPU", ref, h, n, nv);
    free(ref);
    free(g);
    free(h);
    rf_model_free(cpu);
    rf_model_free(gpu);
    rf_model_free(half);
}

/* Greedy draws on the device equal the argmax of the same device's logits. */
static void test_device_greedy(void **state)
{
    (void)state;
    struct rf_model *m = load(-1);
    struct rf_context *a = NULL, *b = NULL;
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 256;
    assert_int_equal(rf_context_init(m, &cp, &a), RF_OK);
    assert_int_equal(rf_context_init(m, &cp, &b), RF_OK);
    struct rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0;
    struct rf_sampler *smp = rf_sampler_new(&sp, rf_model_n_vocab(m));
    rf_token ids[64];
    const int n = rf_tokenize(m, TEXT, 120, ids, 64, true, false);
    rf_token t = -1, u;
    assert_int_equal(rf_decode_sample(a, ids, n, smp, &t), RF_OK);
    assert_null(rf_get_logits(a, -1)); /* drawn on the device: no logits came back */
    assert_int_equal(rf_decode(b, ids, n, false), RF_OK);
    for (int i = 0; i < 24; i++) {
        u = argmax(rf_get_logits(b, -1), rf_model_n_vocab(m));
        assert_int_equal(t, u);
        assert_int_equal(rf_decode_sample(a, &t, 1, smp, &t), RF_OK);
        assert_int_equal(rf_decode(b, &u, 1, false), RF_OK);
    }
    rf_sampler_free(smp);
    rf_context_free(a);
    rf_context_free(b);
    rf_model_free(m);
}

/* Three sequences decoded together, their blocks interleaved in one pool, give each
 * the greedy tokens it gets alone (prompts are prefilled one per step, each under 16
 * tokens like the decode steps). */
#define N_SEQ 3
#define STEPS 12
static void test_batch_matches_alone(void **state)
{
    (void)state;
    struct rf_model *m = load(-1);
    const int nv = rf_model_n_vocab(m), bs = 16, max_blocks = 8;
    const char *prompts[N_SEQ] = {"The capital of France is", "Water boils at a temperature of",
                                  "Once upon a time, in a small village,"};
    rf_token alone[N_SEQ][STEPS], together[N_SEQ][STEPS], p[N_SEQ][64];
    int np[N_SEQ];
    for (int s = 0; s < N_SEQ; s++) {
        np[s] = rf_tokenize(m, prompts[s], strlen(prompts[s]), p[s], 64, true, false);
        struct rf_context *c = NULL;
        struct rf_context_params cp = rf_context_default_params();
        cp.n_ctx = 128;
        assert_int_equal(rf_context_init(m, &cp, &c), RF_OK);
        assert_int_equal(rf_decode(c, p[s], np[s], false), RF_OK);
        for (int i = 0; i < STEPS; i++) {
            alone[s][i] = argmax(rf_get_logits(c, -1), nv);
            assert_int_equal(rf_decode(c, &alone[s][i], 1, false), RF_OK);
        }
        rf_context_free(c);
    }
    struct rf_kv_cache kv;
    struct rf_scratch *sc = NULL;
    assert_int_equal(rf_kv_cache_init(&kv, m, N_SEQ * max_blocks, bs), RF_OK);
    assert_int_equal(rf_scratch_new(m, 256, N_SEQ, max_blocks, &sc), RF_OK);
    int32_t tables[N_SEQ * 8]; /* block i of sequence s: i * N_SEQ + s (interleaved) */
    for (int s = 0; s < N_SEQ; s++)
        for (int i = 0; i < max_blocks; i++) tables[s * max_blocks + i] = i * N_SEQ + s;
    rf_token tok[256];
    int32_t pos[256], seq[256];
    bool want[256];
    float *logits = malloc((size_t)N_SEQ * (size_t)nv * sizeof *logits);
    /* Each prompt in a step of its own, then the three sequences' tokens together in
     * every decode step. Steps stay within the int8 product path (at most 16 tokens):
     * above it the f16 GEMM computes with other rounding, and a sequence's tokens may
     * then differ from its tokens alone. */
    for (int s = 0; s < N_SEQ; s++) {
        for (int i = 0; i < np[s]; i++) {
            tok[i] = p[s][i];
            pos[i] = i;
            seq[i] = s;
            want[i] = i == np[s] - 1;
        }
        const struct rf_batch b = {.n_tok = np[s], .tokens = tok, .pos = pos, .seq = seq,
                                   .want_logits = want, .n_seq = N_SEQ,
                                   .max_blocks = max_blocks, .block_tables = tables};
        if (rf_forward_batch(m, sc, &kv, &b, logits + (size_t)s * nv) != RF_OK)
            fail_msg("%s", rf_last_error());
    }
    for (int step = 0; step < STEPS; step++) {
        for (int s = 0; s < N_SEQ; s++) {
            together[s][step] = argmax(logits + (size_t)s * nv, nv);
            tok[s] = together[s][step];
            pos[s] = np[s] + step;
            seq[s] = s;
            want[s] = true;
        }
        const struct rf_batch b = {.n_tok = N_SEQ, .tokens = tok, .pos = pos, .seq = seq,
                                   .want_logits = want, .n_seq = N_SEQ,
                                   .max_blocks = max_blocks, .block_tables = tables};
        if (rf_forward_batch(m, sc, &kv, &b, logits) != RF_OK) fail_msg("%s", rf_last_error());
    }
    for (int s = 0; s < N_SEQ; s++) assert_memory_equal(alone[s], together[s], sizeof alone[s]);
    free(logits);
    rf_scratch_free(sc);
    rf_kv_cache_free(&kv);
    rf_model_free(m);
}

static void test_device_oom(void **state)
{
    (void)state;
    struct rf_model *m = load(-1);
    struct rf_context *c = NULL;
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 2000000000; /* ~46 TB of KV cache */
    cp.n_batch = 512;
    assert_int_equal(rf_context_init(m, &cp, &c), RF_STATUS_NOMEM);
    printf("%s\n", rf_last_error());
    assert_non_null(strstr(rf_last_error(), "free"));
    rf_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_matches_cpu),
        cmocka_unit_test(test_device_greedy),
        cmocka_unit_test(test_batch_matches_alone),
        cmocka_unit_test(test_device_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Sampler stages on hand-made logits, the public chain, seeds, and the distribution
 * of draws against softmax. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include "rocmforge.h"
#include "sampling/sampler.h"

static struct rf_cands make_cands(const float *logits, int32_t n)
{
    struct rf_cands c;
    assert_true(rf_cands_alloc(&c, n));
    rf_cands_fill(&c, logits, n);
    return c;
}

static void expect_cands(const struct rf_cands *c, const rf_token *ids, const float *logits,
                         int32_t n)
{
    assert_int_equal(c->n, n);
    for (int32_t i = 0; i < n; i++) {
        assert_int_equal(c->ids[i], ids[i]);
        assert_true(c->logits[i] == logits[i]);
    }
}

static struct rf_sampler_params plain_params(void)
{
    struct rf_sampler_params p = rf_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.penalty_last_n = 64;
    p.seed = 1234;
    return p;
}

static void test_rng_known_answers(void **state)
{
    (void)state;
    struct rf_rng r;
    rf_rng_seed(&r, 0);
    assert_true(rf_rng_next(&r) == 0x99ec5f36cb75f2b4ull);
    assert_true(rf_rng_next(&r) == 0xbf6e1f784956452aull);
    assert_true(rf_rng_next(&r) == 0x1a5f849d4933e6e0ull);
    rf_rng_seed(&r, 42);
    assert_true(rf_rng_next(&r) == 0x15780b2e0c2ec716ull);
    for (int i = 0; i < 1000; i++) {
        const double u = rf_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

static void test_penalties(void **state)
{
    (void)state;
    float lg[5] = {2.0f, -1.0f, 0.5f, 3.0f, 1.0f};
    const rf_token win[] = {0, 1, 0, 99, -3}; /* 99 and -3 are outside the vocabulary */
    rf_token scratch[5];
    rf_sample_penalties(lg, 5, win, 5, 2.0f, 0.5f, 0.25f, scratch);
    /* token 0 (twice): 2/2 - 2*0.5 - 0.25; token 1 (once): -1*2 - 0.5 - 0.25 */
    assert_true(lg[0] == -0.25f);
    assert_true(lg[1] == -2.75f);
    assert_true(lg[2] == 0.5f);
    assert_true(lg[3] == 3.0f);
    assert_true(lg[4] == 1.0f);

    float lg2[3] = {4.0f, -4.0f, 0.0f};
    const rf_token win2[] = {2, 1, 0, 1};
    rf_sample_penalties(lg2, 3, win2, 4, 1.25f, 0.0f, 0.0f, scratch);
    assert_true(lg2[0] == 3.2f);  /* positive: divided */
    assert_true(lg2[1] == -5.0f); /* negative: multiplied, once despite two occurrences */
    assert_true(lg2[2] == 0.0f);
}

static void test_top_k(void **state)
{
    (void)state;
    const float lg[6] = {1, 5, 3, 5, 2, 4};
    struct rf_cands c = make_cands(lg, 6);
    rf_sample_top_k(&c, 3);
    expect_cands(&c, (const rf_token[]){1, 3, 5}, (const float[]){5, 5, 4}, 3);
    assert_true(c.sorted);
    rf_sample_top_k(&c, 2); /* already sorted: a cut */
    expect_cands(&c, (const rf_token[]){1, 3}, (const float[]){5, 5}, 2);
    rf_cands_fill(&c, lg, 6);
    rf_sample_top_k(&c, 6); /* k >= n and k <= 0: unchanged */
    rf_sample_top_k(&c, 0);
    expect_cands(&c, (const rf_token[]){0, 1, 2, 3, 4, 5}, lg, 6);
    rf_sample_top_k(&c, 1);
    expect_cands(&c, (const rf_token[]){1}, (const float[]){5}, 1);
    rf_cands_free(&c);
}

static int cmp_desc(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Partial selection over a large vocabulary gives the same list as a full sort. */
static void test_top_k_large(void **state)
{
    (void)state;
    const int32_t n = 262144, k = 40;
    float *lg = malloc((size_t)n * sizeof *lg), *ref = malloc((size_t)n * sizeof *ref);
    struct rf_rng r;
    rf_rng_seed(&r, 7);
    for (int32_t i = 0; i < n; i++) lg[i] = (float)(rf_rng_uniform(&r) * 20.0 - 10.0);
    memcpy(ref, lg, (size_t)n * sizeof *ref);
    qsort(ref, (size_t)n, sizeof *ref, cmp_desc);
    struct rf_cands c = make_cands(lg, n);
    rf_sample_top_k(&c, k);
    assert_int_equal(c.n, k);
    for (int32_t i = 0; i < k; i++) {
        assert_true(c.logits[i] == ref[i]);
        assert_true(lg[c.ids[i]] == c.logits[i]);
    }
    rf_cands_free(&c);
    free(lg);
    free(ref);
}

static void test_top_p(void **state)
{
    (void)state;
    const float lg[4] = {logf(0.5f), logf(0.1f), logf(0.25f), logf(0.15f)};
    struct rf_cands c = make_cands(lg, 4);
    rf_sample_top_p(&c, 0.7f); /* 0.5 + 0.25 reaches 0.7 */
    expect_cands(&c, (const rf_token[]){0, 2}, (const float[]){lg[0], lg[2]}, 2);
    rf_cands_fill(&c, lg, 4);
    rf_sample_top_p(&c, 0.8f); /* needs 0.15 too */
    expect_cands(&c, (const rf_token[]){0, 2, 3}, (const float[]){lg[0], lg[2], lg[3]}, 3);
    rf_cands_fill(&c, lg, 4);
    rf_sample_top_p(&c, 0.0f); /* keeps at least one */
    expect_cands(&c, (const rf_token[]){0}, (const float[]){lg[0]}, 1);
    rf_cands_fill(&c, lg, 4);
    rf_sample_top_p(&c, 1.0f); /* disabled */
    assert_int_equal(c.n, 4);
    assert_false(c.sorted);
    /* After top-k the list is sorted and top-p renormalizes over it: 0.5/0.75 >= 0.6. */
    rf_sample_top_k(&c, 2);
    rf_sample_top_p(&c, 0.6f);
    expect_cands(&c, (const rf_token[]){0}, (const float[]){lg[0]}, 1);
    rf_cands_free(&c);
}

/* A nearly flat distribution forces the growing selection to a full sort. */
static void test_top_p_flat(void **state)
{
    (void)state;
    const int32_t n = 5000;
    float *lg = malloc((size_t)n * sizeof *lg);
    for (int32_t i = 0; i < n; i++) lg[i] = (float)(i % 7) * 1e-3f;
    struct rf_cands c = make_cands(lg, n);
    rf_sample_top_p(&c, 0.9f);
    /* Exact count: weights by class, kept from the highest class down. */
    double w[7], sum = 0;
    for (int k = 0; k < 7; k++) {
        const int32_t cnt = n / 7 + (k < n % 7);
        w[k] = exp((double)((float)k * 1e-3f) - (double)(6 * 1e-3f));
        sum += cnt * w[k];
    }
    int32_t expect = 0;
    double cum = 0;
    for (int k = 6; k >= 0 && cum < 0.9f; k--) {
        const int32_t cnt = n / 7 + (k < n % 7);
        for (int32_t j = 0; j < cnt && cum < 0.9f; j++) {
            cum += w[k] / sum;
            expect++;
        }
    }
    assert_int_equal(c.n, expect);
    assert_true(c.sorted);
    for (int32_t i = 1; i < c.n; i++)
        assert_true(c.logits[i] < c.logits[i - 1] ||
                    (c.logits[i] == c.logits[i - 1] && c.ids[i] > c.ids[i - 1]));
    rf_cands_free(&c);
    free(lg);
}

static void test_min_p(void **state)
{
    (void)state;
    const float lg[5] = {2.0f, 1.0f, 0.0f, -1.0f, 1.5f};
    struct rf_cands c = make_cands(lg, 5);
    rf_sample_min_p(&c, 0.3f); /* keeps logit >= 2 + ln 0.3 = 0.796 */
    expect_cands(&c, (const rf_token[]){0, 1, 4}, (const float[]){2.0f, 1.0f, 1.5f}, 3);
    rf_cands_fill(&c, lg, 5);
    rf_sample_min_p(&c, 0.0f);
    assert_int_equal(c.n, 5);
    rf_sample_min_p(&c, 1.0f); /* only the max */
    expect_cands(&c, (const rf_token[]){0}, (const float[]){2.0f}, 1);
    rf_cands_free(&c);
}

static void test_temperature(void **state)
{
    (void)state;
    const float lg[3] = {1.0f, -2.0f, 4.0f};
    struct rf_cands c = make_cands(lg, 3);
    rf_sample_temp(&c, 0.5f);
    expect_cands(&c, (const rf_token[]){0, 1, 2}, (const float[]){2.0f, -4.0f, 8.0f}, 3);
    rf_sample_temp(&c, 0.0f);
    expect_cands(&c, (const rf_token[]){2}, (const float[]){8.0f}, 1);
    rf_cands_free(&c);
}

static void test_greedy_ties(void **state)
{
    (void)state;
    const float lg[5] = {1.0f, 3.0f, NAN, 3.0f, 2.0f};
    struct rf_sampler_params p = rf_sampler_default_params();
    p.temperature = 0.0f;
    struct rf_sampler *s = rf_sampler_new(&p, 5);
    assert_non_null(s);
    for (int i = 0; i < 5; i++) assert_int_equal(rf_sampler_sample(s, lg), 1);
    rf_sampler_free(s);

    /* Penalties apply before the argmax: token 1 (twice) drops below token 3. */
    p.repeat_penalty = 1.5f;
    s = rf_sampler_new(&p, 5);
    rf_sampler_accept(s, 1);
    assert_int_equal(rf_sampler_sample(s, lg), 3);
    rf_sampler_reset(s); /* forgets the history */
    assert_int_equal(rf_sampler_sample(s, lg), 1);
    rf_sampler_free(s);
}

static void test_penalty_window(void **state)
{
    (void)state;
    const float lg[3] = {1.0f, 0.9f, 0.0f};
    struct rf_sampler_params p = rf_sampler_default_params();
    p.temperature = 0.0f;
    p.presence_penalty = 0.5f;
    p.penalty_last_n = 2;
    struct rf_sampler *s = rf_sampler_new(&p, 3);
    rf_sampler_accept(s, 0);
    assert_int_equal(rf_sampler_sample(s, lg), 1);
    rf_sampler_accept(s, 2);
    rf_sampler_accept(s, 2); /* token 0 leaves the window of 2 */
    assert_int_equal(rf_sampler_sample(s, lg), 0);
    rf_sampler_free(s);
}

static void draw_many(const struct rf_sampler_params *p, const float *lg, int32_t n, rf_token *out,
                      int count)
{
    struct rf_sampler *s = rf_sampler_new(p, n);
    assert_non_null(s);
    for (int i = 0; i < count; i++) out[i] = rf_sampler_sample(s, lg);
    rf_sampler_free(s);
}

static void test_seed_reproducible(void **state)
{
    (void)state;
    enum {
        N = 32,
        DRAWS = 200
    };
    float lg[N];
    for (int i = 0; i < N; i++) lg[i] = (float)((i * 37) % 11) * 0.3f;
    struct rf_sampler_params p = plain_params();
    rf_token a[DRAWS], b[DRAWS], c[DRAWS];
    draw_many(&p, lg, N, a, DRAWS);
    draw_many(&p, lg, N, b, DRAWS);
    assert_memory_equal(a, b, sizeof a);
    p.seed = 1235;
    draw_many(&p, lg, N, c, DRAWS);
    assert_memory_not_equal(a, c, sizeof a);

    /* Reset reseeds: the stream restarts. */
    p.seed = 1234;
    struct rf_sampler *s = rf_sampler_new(&p, N);
    for (int i = 0; i < 17; i++) rf_sampler_sample(s, lg);
    rf_sampler_reset(s);
    for (int i = 0; i < DRAWS; i++) assert_int_equal(rf_sampler_sample(s, lg), a[i]);
    rf_sampler_free(s);
}

/* Pearson chi-square of draws with p against softmax(logits / t) over the ids in keep. */
static double chi_square(const struct rf_sampler_params *p, double t, const float *lg, int32_t n,
                         const bool *keep, int draws)
{
    double w[16] = {0}, sum = 0;
    for (int32_t i = 0; i < n; i++)
        if (keep[i]) sum += (w[i] = exp((double)lg[i] / t));
    int obs[16] = {0};
    rf_token *out = malloc((size_t)draws * sizeof *out);
    draw_many(p, lg, n, out, draws);
    for (int i = 0; i < draws; i++) {
        assert_true(out[i] >= 0 && out[i] < n);
        assert_true(keep[out[i]]);
        obs[out[i]]++;
    }
    free(out);
    double chi = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!keep[i]) continue;
        const double e = draws * w[i] / sum;
        chi += (obs[i] - e) * (obs[i] - e) / e;
    }
    return chi;
}

static void test_distribution(void **state)
{
    (void)state;
    const float lg[6] = {0.1f, 1.2f, -0.5f, 2.0f, 0.7f, 1.5f};
    struct rf_sampler_params p = plain_params();
    const bool all[6] = {true, true, true, true, true, true};
    /* 5 degrees of freedom: 20.5 is the 0.999 quantile. */
    assert_true(chi_square(&p, 1.0, lg, 6, all, 60000) < 20.5);

    /* top-k 4 at temperature 0.7: ids 1, 3, 4, 5 only; 3 degrees of freedom (16.3). */
    p.top_k = 4;
    p.temperature = 0.7f;
    const bool top4[6] = {false, true, false, true, true, true};
    assert_true(chi_square(&p, 0.7, lg, 6, top4, 60000) < 16.3);

    /* The check has power: draws at temperature 1 are far from the 0.7 softmax. */
    p.temperature = 1.0f;
    assert_true(chi_square(&p, 0.7, lg, 6, top4, 60000) > 100.0);
}

static void test_bad_params(void **state)
{
    (void)state;
    struct rf_sampler_params p = rf_sampler_default_params();
    assert_null(rf_sampler_new(&p, 0));
    assert_true(strlen(rf_last_error()) > 0);
    p.repeat_penalty = 0.0f;
    assert_null(rf_sampler_new(&p, 10));
    p = rf_sampler_default_params();
    p.penalty_last_n = -1;
    assert_null(rf_sampler_new(&p, 10));
    p = rf_sampler_default_params();
    p.temperature = NAN;
    assert_null(rf_sampler_new(&p, 10));
    assert_int_equal(rf_sampler_sample(NULL, NULL), -1);
    /* NULL params: defaults. All -inf logits still give a token. */
    struct rf_sampler *s = rf_sampler_new(NULL, 4);
    assert_non_null(s);
    const float inf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const rf_token t = rf_sampler_sample(s, inf);
    assert_true(t >= 0 && t < 4);
    rf_sampler_accept(s, 1000); /* out of range: ignored */
    rf_sampler_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_known_answers),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_k_large),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_top_p_flat),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_greedy_ties),
        cmocka_unit_test(test_penalty_window),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

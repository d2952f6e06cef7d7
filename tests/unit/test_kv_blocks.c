/* The KV block allocator: allocation and release, exhaustion, refcounts, prefix-cache
 * hits of chained full blocks, copy on write, LRU eviction, and random operations
 * under the invariant check. No model needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include "rocmforge.h"
#include "runtime/kv_blocks.h"

static struct rf_kv_blocks *make(int32_t n_blocks, int32_t bs, int32_t n_seq, int32_t max_blocks,
                                 bool cache)
{
    struct rf_kv_blocks *kb = NULL;
    assert_int_equal(rf_kv_blocks_new(n_blocks, bs, n_seq, max_blocks, cache, &kb), RF_OK);
    assert_non_null(kb);
    return kb;
}

static void check(const struct rf_kv_blocks *kb)
{
    if (!rf_kv_blocks_check(kb)) fail_msg("%s", rf_last_error());
}

static void expect_counts(const struct rf_kv_blocks *kb, int32_t used, int32_t cached, int32_t free)
{
    struct rf_kv_blocks_counts c;
    rf_kv_blocks_get_counts(kb, &c);
    assert_int_equal(c.used, used);
    assert_int_equal(c.cached, cached);
    assert_int_equal(c.free, free);
    assert_int_equal(c.total, used + cached + free);
    check(kb);
}

static const int32_t *seq_row(const struct rf_kv_blocks *kb, int32_t seq)
{
    return rf_kv_blocks_tables(kb) + (size_t)seq * (size_t)rf_kv_blocks_max_blocks(kb);
}

static void grow(struct rf_kv_blocks *kb, int32_t seq, int32_t end, int32_t want_copies,
                 struct rf_kv_copy *copies)
{
    struct rf_kv_copy tmp[16];
    int32_t n = -1;
    assert_int_equal(rf_kv_blocks_grow(kb, seq, end, copies ? copies : tmp, 16, &n), RF_OK);
    assert_int_equal(n, want_copies);
}

static void test_alloc_release(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = make(8, 4, 3, 4, false);
    expect_counts(kb, 0, 0, 8);
    assert_int_equal(rf_kv_blocks_needed(kb, 0, 10), 3);
    grow(kb, 0, 10, 0, NULL);
    rf_kv_blocks_commit(kb, 0, NULL, 10, 0);
    assert_int_equal(rf_kv_blocks_seq_len(kb, 0), 10);
    assert_int_equal(rf_kv_blocks_seq_n_blocks(kb, 0), 3);
    const int32_t *t = seq_row(kb, 0);
    assert_true(t[0] >= 0 && t[1] >= 0 && t[2] >= 0 && t[3] == -1);
    assert_true(t[0] != t[1] && t[1] != t[2] && t[0] != t[2]);
    for (int i = 0; i < 3; i++) assert_int_equal(rf_kv_blocks_refcount(kb, t[i]), 1);
    expect_counts(kb, 3, 0, 5);
    /* Growing within the last block takes nothing; past it, one more. */
    assert_int_equal(rf_kv_blocks_needed(kb, 0, 12), 0);
    assert_int_equal(rf_kv_blocks_needed(kb, 0, 13), 1);
    grow(kb, 1, 1, 0, NULL);
    expect_counts(kb, 4, 0, 4);
    rf_kv_blocks_release(kb, 0);
    assert_int_equal(seq_row(kb, 0)[0], -1);
    assert_int_equal(rf_kv_blocks_seq_len(kb, 0), 0);
    expect_counts(kb, 1, 0, 7);
    rf_kv_blocks_release(kb, 1);
    rf_kv_blocks_release(kb, 1); /* twice is harmless */
    expect_counts(kb, 0, 0, 8);
    rf_kv_blocks_free(kb);
}

static void test_exhaustion(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = make(8, 4, 3, 4, false);
    grow(kb, 0, 16, 0, NULL);
    grow(kb, 1, 13, 0, NULL);
    expect_counts(kb, 8, 0, 0);
    assert_int_equal(rf_kv_blocks_available(kb), 0);
    struct rf_kv_copy c[4];
    int32_t n = -1;
    assert_int_equal(rf_kv_blocks_grow(kb, 2, 1, c, 4, &n), RF_STATUS_NOMEM);
    assert_non_null(strstr(rf_last_error(), "1 blocks needed, 0 available"));
    assert_int_equal(n, 0);
    assert_int_equal(seq_row(kb, 2)[0], -1);
    /* Past max_blocks * block_size positions. */
    assert_int_equal(rf_kv_blocks_needed(kb, 0, 17), -1);
    assert_int_equal(rf_kv_blocks_grow(kb, 0, 17, c, 4, &n), RF_STATUS_CONTEXT_FULL);
    expect_counts(kb, 8, 0, 0);
    rf_kv_blocks_release(kb, 1);
    grow(kb, 2, 1, 0, NULL);
    expect_counts(kb, 5, 0, 3);
    rf_kv_blocks_free(kb);
}

static void test_bad_args(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = NULL;
    assert_int_equal(rf_kv_blocks_new(0, 4, 1, 1, true, &kb), RF_STATUS_INVALID_ARG);
    assert_null(kb);
    assert_int_equal(rf_kv_blocks_new(4, 0, 1, 1, true, &kb), RF_STATUS_INVALID_ARG);
    assert_int_equal(rf_kv_blocks_new(4, 4, -1, 1, true, &kb), RF_STATUS_INVALID_ARG);
    kb = make(4, 4, 2, 2, true);
    grow(kb, 0, 2, 0, NULL);
    grow(kb, 1, 2, 0, NULL);
    assert_int_equal(rf_kv_blocks_fork(kb, 1, 0), RF_STATUS_INVALID_ARG);
    rf_kv_blocks_release(kb, 1);
    assert_int_equal(rf_kv_blocks_fork(kb, 1, 0), RF_OK);
    /* The shared block needs a copy: no room for it changes nothing. */
    int32_t n = -1;
    assert_int_equal(rf_kv_blocks_grow(kb, 1, 3, NULL, 0, &n), RF_STATUS_INVALID_ARG);
    assert_int_equal(seq_row(kb, 1)[0], seq_row(kb, 0)[0]);
    expect_counts(kb, 1, 0, 3);
    rf_kv_blocks_free(kb);
}

/* seq holds tokens[0..n), written and committed (n_cacheable of them cacheable). */
static void fill(struct rf_kv_blocks *kb, int32_t seq, const rf_token *tokens, int32_t n,
                 int32_t n_cacheable)
{
    grow(kb, seq, n, 0, NULL);
    rf_kv_blocks_commit(kb, seq, tokens, n, n_cacheable);
    assert_int_equal(rf_kv_blocks_seq_len(kb, seq), n);
}

static void test_prefix_hits(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = make(16, 4, 4, 4, true);
    const rf_token a[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    fill(kb, 0, a, 10, 10);
    /* Two full blocks are cached but still held by seq 0. */
    expect_counts(kb, 3, 0, 13);
    assert_int_equal(rf_kv_blocks_match(kb, 1, a, 10, 9), 8);
    assert_int_equal(seq_row(kb, 1)[0], seq_row(kb, 0)[0]);
    assert_int_equal(seq_row(kb, 1)[1], seq_row(kb, 0)[1]);
    assert_int_equal(seq_row(kb, 1)[2], -1);
    assert_int_equal(rf_kv_blocks_refcount(kb, seq_row(kb, 0)[0]), 2);
    expect_counts(kb, 3, 0, 13);
    /* A difference in the second block stops the match after the first. */
    rf_token b[10];
    memcpy(b, a, sizeof a);
    b[5] = 99;
    assert_int_equal(rf_kv_blocks_match(kb, 2, b, 10, 10), 4);
    assert_int_equal(seq_row(kb, 2)[0], seq_row(kb, 0)[0]);
    /* Equal second block after a different first one: the chain does not match. */
    rf_token c[10];
    memcpy(c, a, sizeof a);
    c[0] = 42;
    assert_int_equal(rf_kv_blocks_match(kb, 3, c, 10, 10), 0);
    assert_int_equal(rf_kv_blocks_seq_n_blocks(kb, 3), 0);
    /* Only the cacheable prefix enters the cache. */
    rf_kv_blocks_release(kb, 3);
    const rf_token d[8] = {20, 21, 22, 23, 24, 25, 26, 27};
    fill(kb, 3, d, 8, 5);
    rf_kv_blocks_release(kb, 3);
    assert_int_equal(rf_kv_blocks_match(kb, 3, d, 8, 8), 4);
    /* Everything released: the cached blocks stay, unheld. */
    for (int32_t s = 0; s < 4; s++) rf_kv_blocks_release(kb, s);
    expect_counts(kb, 0, 3, 13);
    assert_int_equal(rf_kv_blocks_match(kb, 0, a, 10, 10), 8);
    expect_counts(kb, 2, 1, 13);
    rf_kv_blocks_free(kb);
}

static void test_no_prefix_cache(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = make(8, 4, 2, 4, false);
    const rf_token a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    fill(kb, 0, a, 8, 8);
    assert_int_equal(rf_kv_blocks_match(kb, 1, a, 8, 8), 0);
    rf_kv_blocks_release(kb, 0);
    expect_counts(kb, 0, 0, 8);
    rf_kv_blocks_free(kb);
}

static void test_copy_on_write_fork(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = make(8, 4, 2, 4, false);
    const rf_token a[6] = {1, 2, 3, 4, 5, 6};
    fill(kb, 0, a, 6, 0);
    const int32_t b0 = seq_row(kb, 0)[0], b1 = seq_row(kb, 0)[1];
    assert_int_equal(rf_kv_blocks_fork(kb, 1, 0), RF_OK);
    assert_int_equal(rf_kv_blocks_seq_len(kb, 1), 6);
    assert_int_equal(rf_kv_blocks_refcount(kb, b0), 2);
    assert_int_equal(rf_kv_blocks_refcount(kb, b1), 2);
    /* Nothing written, nothing copied: the shared blocks stay shared. */
    assert_int_equal(rf_kv_blocks_needed(kb, 1, 6), 0);
    assert_int_equal(rf_kv_blocks_needed(kb, 1, 3), 0);
    grow(kb, 1, 6, 0, NULL);
    assert_int_equal(rf_kv_blocks_refcount(kb, b1), 2);
    /* Writing position 6 of seq 1 lands in the shared partial block: it is copied. */
    assert_int_equal(rf_kv_blocks_needed(kb, 1, 7), 1);
    struct rf_kv_copy c[4];
    grow(kb, 1, 7, 1, c);
    assert_int_equal(c[0].src, b1);
    assert_int_equal(c[0].dst, seq_row(kb, 1)[1]);
    assert_true(c[0].dst != b1);
    assert_int_equal(seq_row(kb, 1)[0], b0);
    assert_int_equal(seq_row(kb, 0)[1], b1);
    assert_int_equal(rf_kv_blocks_refcount(kb, b1), 1);
    assert_int_equal(rf_kv_blocks_refcount(kb, b0), 2);
    /* seq 0 holds its last block alone now: no copy. */
    assert_int_equal(rf_kv_blocks_needed(kb, 0, 7), 0);
    grow(kb, 0, 7, 0, NULL);
    /* A new block past the shared full one needs no copy of it. */
    rf_kv_blocks_commit(kb, 1, NULL, 7, 0);
    assert_int_equal(rf_kv_blocks_needed(kb, 1, 9), 1);
    grow(kb, 1, 9, 0, NULL);
    expect_counts(kb, 4, 0, 4);
    rf_kv_blocks_release(kb, 0);
    expect_counts(kb, 3, 0, 5);
    assert_int_equal(rf_kv_blocks_refcount(kb, b0), 1);
    rf_kv_blocks_release(kb, 1);
    expect_counts(kb, 0, 0, 8);
    rf_kv_blocks_free(kb);
}

/* The whole prompt is cached: its last token is recomputed into a copy of the cached
 * last block, which stays cached for others. */
static void test_copy_on_write_cached(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = make(8, 4, 2, 4, true);
    const rf_token a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    fill(kb, 0, a, 8, 8);
    const int32_t b1 = seq_row(kb, 0)[1];
    rf_kv_blocks_release(kb, 0);
    expect_counts(kb, 0, 2, 6);
    assert_int_equal(rf_kv_blocks_match(kb, 1, a, 8, 7), 7);
    assert_int_equal(rf_kv_blocks_needed(kb, 1, 8), 1);
    struct rf_kv_copy c[4];
    grow(kb, 1, 8, 1, c);
    assert_int_equal(c[0].src, b1);
    assert_int_equal(rf_kv_blocks_refcount(kb, b1), 0);
    expect_counts(kb, 2, 1, 5);
    /* The copy holds an equal prefix: the cache keeps the original only. */
    rf_kv_blocks_commit(kb, 1, a, 8, 8);
    rf_kv_blocks_release(kb, 1);
    expect_counts(kb, 0, 2, 6);
    assert_int_equal(rf_kv_blocks_match(kb, 0, a, 8, 8), 8);
    assert_int_equal(seq_row(kb, 0)[1], b1);
    rf_kv_blocks_free(kb);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    struct rf_kv_blocks *kb = make(4, 2, 2, 4, true);
    const rf_token a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    fill(kb, 0, a, 4, 4);
    const int32_t a0 = seq_row(kb, 0)[0];
    rf_kv_blocks_release(kb, 0);
    fill(kb, 0, b, 4, 4);
    rf_kv_blocks_release(kb, 0);
    expect_counts(kb, 0, 4, 0);
    assert_int_equal(rf_kv_blocks_available(kb), 4);
    /* One block evicts the least recently used: the end of prefix a, not its start. */
    grow(kb, 1, 1, 0, NULL);
    expect_counts(kb, 1, 3, 0);
    rf_kv_blocks_release(kb, 1);
    expect_counts(kb, 0, 3, 1);
    /* The hit makes a's first block more recently used than both blocks of b. */
    assert_int_equal(rf_kv_blocks_match(kb, 0, a, 4, 4), 2);
    assert_int_equal(seq_row(kb, 0)[0], a0);
    rf_kv_blocks_release(kb, 0);
    grow(kb, 1, 6, 0, NULL);
    expect_counts(kb, 3, 1, 0);
    assert_int_equal(rf_kv_blocks_match(kb, 0, b, 4, 4), 0);
    assert_int_equal(rf_kv_blocks_match(kb, 0, a, 4, 4), 2);
    /* Held cached blocks are never evicted: nothing is left to take. */
    assert_int_equal(rf_kv_blocks_available(kb), 0);
    rf_kv_blocks_release(kb, 1);
    rf_kv_blocks_release(kb, 0);
    expect_counts(kb, 0, 1, 3);
    rf_kv_blocks_free(kb);
}

/* Random grows, commits, matches, forks and releases over a small alphabet (so that
 * prefixes repeat), with the invariants checked after each. */
static void test_random_ops(void **state)
{
    (void)state;
    enum {
        N_SEQ = 5,
        MAXB = 6,
        BS = 3,
        LEN = MAXB * BS
    };
    struct rf_kv_blocks *kb = make(14, BS, N_SEQ, MAXB, true);
    rf_token tok[N_SEQ][LEN];
    int32_t len[N_SEQ] = {0};
    uint32_t r = 12345;
    int32_t n_hits = 0, n_copies = 0, n_full = 0;
    for (int step = 0; step < 4000; step++) {
        r = r * 1103515245u + 12345u;
        const int32_t s = (int32_t)((r >> 8) % N_SEQ), op = (int32_t)((r >> 16) % 8);
        const bool empty = rf_kv_blocks_seq_n_blocks(kb, s) == 0;
        if (op <= 1) {
            rf_kv_blocks_release(kb, s);
            len[s] = 0;
        } else if (op >= 2 && op <= 4 && empty) {
            for (int i = 0; i < LEN; i++) tok[s][i] = i % 4 ? 7 : (rf_token)((r >> i) & 1);
            len[s] = rf_kv_blocks_match(kb, s, tok[s], LEN, (int32_t)((r >> 3) % LEN));
            n_hits += len[s] > 0;
        } else if (op == 5 && empty) {
            const int32_t src = (s + 1) % N_SEQ;
            assert_int_equal(rf_kv_blocks_fork(kb, s, src), RF_OK);
            memcpy(tok[s], tok[src], sizeof tok[s]);
            len[s] = len[src];
        } else {
            const int32_t end = len[s] + 1 + (int32_t)((r >> 20) % 4);
            const int32_t need = rf_kv_blocks_needed(kb, s, end);
            if (end > LEN) assert_int_equal(need, -1);
            struct rf_kv_copy c[MAXB];
            int32_t n;
            const rf_status st = rf_kv_blocks_grow(kb, s, end, c, MAXB, &n);
            if (need >= 0 && need <= rf_kv_blocks_available(kb)) assert_int_equal(st, RF_OK);
            n_full += st == RF_STATUS_NOMEM;
            if (st == RF_OK) {
                n_copies += n;
                for (int32_t i = 0; i < n; i++)
                    assert_int_equal(rf_kv_blocks_refcount(kb, c[i].dst), 1);
                rf_kv_blocks_commit(kb, s, tok[s], end, LEN / 2);
                len[s] = end;
            }
        }
        assert_int_equal(rf_kv_blocks_seq_len(kb, s), len[s]);
        check(kb);
    }
    /* The run went through every path. */
    assert_true(n_hits > 100 && n_copies > 50 && n_full > 100);
    for (int32_t s = 0; s < N_SEQ; s++) rf_kv_blocks_release(kb, s);
    struct rf_kv_blocks_counts c;
    rf_kv_blocks_get_counts(kb, &c);
    assert_int_equal(c.used, 0);
    rf_kv_blocks_free(kb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_release),
        cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_prefix_hits),
        cmocka_unit_test(test_no_prefix_cache),
        cmocka_unit_test(test_copy_on_write_fork),
        cmocka_unit_test(test_copy_on_write_cached),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_random_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

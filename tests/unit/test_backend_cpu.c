/* CPU backend ops against naive double-precision references, on random inputs of
 * awkward sizes, for every kernel set (scalar, AVX2 where present) and 1-3 threads.
 * Outputs are poisoned with NaN before each run so unwritten elements show. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "core/fp16.h"
#include "core/threadpool.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "test_rng.h"

/* ---- helpers ---- */

static float *rand_floats(int64_t n, float sigma)
{
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = sigma * rng_normal();
    return x;
}

static float *poisoned(int64_t n)
{
    float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    assert_non_null(y);
    for (int64_t i = 0; i < n; i++) y[i] = NAN;
    return y;
}

/* sum (y - ref)^2 / sum ref^2; fails the test on a non-finite output. */
static double nmse(const char *what, const float *y, const double *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            fail_msg("%s: element %lld is %f (unwritten?)", what, (long long)i, y[i]);
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

static void check_nmse(const char *what, const float *y, const double *ref, int64_t n, double thr)
{
    const double e = nmse(what, y, ref, n);
    if (getenv("RF_TEST_VERBOSE")) printf("%-100s nmse %.3g (max %.3g)\n", what, e, thr);
    if (!(e <= thr)) fail_msg("%s: nmse %.3g above %.3g", what, e, thr);
}

static struct rf_tensor f32_tensor(const char *name, const float *data, int64_t n)
{
    return (struct rf_tensor){.name = name,
                              .type = RF_TYPE_F32,
                              .ne = {n, 1, 1, 1},
                              .data = data,
                              .nbytes = (size_t)n * sizeof(float)};
}

/* Every kernel set with 1, 2 and 3 threads. */
#define MAX_BACKENDS 6
struct bk {
    struct rf_backend b;
    int nth;
    const char *kern;
};

static int open_backends(struct bk *out)
{
    static const char *const kernels[] = {"scalar", "avx2"};
    int n = 0;
    for (int ki = 0; ki < 2; ki++)
        for (int nth = 1; nth <= 3; nth++) {
            struct bk *b = &out[n];
            assert_int_equal(rf_backend_cpu_init(nth, &b->b), RF_OK);
            if (!rf_backend_cpu_set_kernels(&b->b, kernels[ki])) {
                b->b.iface->free(b->b.ctx);
                continue;
            }
            b->nth = nth;
            b->kern = kernels[ki];
            n++;
        }
    return n;
}

static void close_backends(struct bk *b, int n)
{
    for (int i = 0; i < n; i++) b[i].b.iface->free(b[i].b.ctx);
}

/* ---- thread pool ---- */

struct pool_probe {
    int hits[8];
    int nth_seen;
};

static void probe_fn(void *arg, int ith, int nth)
{
    struct pool_probe *p = arg;
    p->hits[ith]++; /* each ith is one thread: no race */
    if (ith == 0) p->nth_seen = nth;
}

/* rf_pool_run_any: tasks from a shared counter, each done exactly once whichever
 * threads join. */
struct any_probe {
    _Atomic int next;
    int n_tasks;
    unsigned char *done;
    int calls[8];
};

static void any_fn(void *arg, int ith, int nth)
{
    struct any_probe *p = arg;
    (void)nth;
    p->calls[ith]++;
    for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->n_tasks;) p->done[i]++;
}

static void test_pool_any(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        struct rf_pool *pool;
        assert_int_equal(rf_pool_create(n, &pool), RF_OK);
        for (int it = 0; it < 3000; it++) {
            struct any_probe p = {.n_tasks = it % 50, .done = calloc(50, 1)};
            atomic_init(&p.next, 0);
            if (it % 1000 == 999) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
            rf_pool_run_any(pool, any_fn, &p);
            for (int i = 0; i < p.n_tasks; i++) assert_int_equal(p.done[i], 1);
            assert_int_equal(p.calls[0], 1); /* the caller always runs */
            for (int i = 0; i < 8; i++) assert_true(p.calls[i] <= (i < n));
            free(p.done);
        }
        /* Interleaved with the all-threads form. */
        struct pool_probe pp = {0};
        rf_pool_run(pool, probe_fn, &pp);
        for (int i = 0; i < n; i++) assert_int_equal(pp.hits[i], 1);
        rf_pool_free(pool);
    }
}

static void test_pool(void **state)
{
    (void)state;
    assert_true(rf_cpu_count() >= 1);
    for (int n = 1; n <= 5; n++) {
        struct rf_pool *pool;
        assert_int_equal(rf_pool_create(n, &pool), RF_OK);
        assert_int_equal(rf_pool_size(pool), n);
        struct pool_probe p = {0};
        for (int it = 0; it < 300; it++) rf_pool_run(pool, probe_fn, &p);
        /* Long gaps: workers fall asleep between jobs and must be woken. */
        for (int it = 0; it < 5; it++) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
            rf_pool_run(pool, probe_fn, &p);
        }
        assert_int_equal(p.nth_seen, n);
        for (int i = 0; i < n; i++) assert_int_equal(p.hits[i], 305);
        for (int i = n; i < 8; i++) assert_int_equal(p.hits[i], 0);
        rf_pool_free(pool);
    }
    struct rf_pool *pool;
    assert_int_equal(rf_pool_create(3, &pool), RF_OK);
    rf_pool_free(pool); /* freed without ever running a job */
    rf_pool_free(NULL);
}

/* ---- memory ---- */

static void test_alloc(void **state)
{
    (void)state;
    struct rf_backend b;
    assert_int_equal(rf_backend_cpu_init(1, &b), RF_OK);
    assert_string_equal(b.iface->name, "cpu");
    const size_t sizes[] = {0, 1, 63, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = b.iface->alloc(b.ctx, sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        for (size_t j = 0; j < sizes[i]; j++)
            if (p[j]) fail_msg("alloc(%zu): byte %zu is not zero", sizes[i], j);
        b.iface->release(b.ctx, p);
    }
    b.iface->release(b.ctx, NULL);
    b.iface->free(b.ctx);
}

/* ---- weights of any type ---- */

/* Offsets of the f16 scale fields of types that have no quantizer. */
struct scale_fields {
    enum rf_type type;
    int d, dmin; /* -1: none */
};

static const struct scale_fields scale_table[] = {
    {RF_TYPE_Q2_K, offsetof(struct rf_block_q2_K, d), offsetof(struct rf_block_q2_K, dmin)},
    {RF_TYPE_Q3_K, offsetof(struct rf_block_q3_K, d), -1},
    {RF_TYPE_Q4_K, offsetof(struct rf_block_q4_K, d), offsetof(struct rf_block_q4_K, dmin)},
    {RF_TYPE_Q5_K, offsetof(struct rf_block_q5_K, d), offsetof(struct rf_block_q5_K, dmin)},
    {RF_TYPE_Q6_K, offsetof(struct rf_block_q6_K, d), -1},
    {RF_TYPE_IQ4_NL, offsetof(struct rf_block_iq4_nl, d), -1},
    {RF_TYPE_Q4_0, offsetof(struct rf_block_q4_0, d), -1},
    {RF_TYPE_Q8_0, offsetof(struct rf_block_q8_0, d), -1},
};

static void put_f16(unsigned char *p, float v)
{
    const uint16_t h = rf_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Random bytes with sane scales where the layout is known. */
static void random_block(enum rf_type type, unsigned char *blk, size_t size)
{
    for (size_t i = 0; i < size; i++) blk[i] = (unsigned char)rng_u64();
    for (size_t i = 0; i < sizeof scale_table / sizeof *scale_table; i++) {
        if (scale_table[i].type != type) continue;
        put_f16(blk + scale_table[i].d, (float)(0.01 + 0.02 * rng_unit()));
        if (scale_table[i].dmin >= 0)
            put_f16(blk + scale_table[i].dmin, (float)(0.01 * rng_unit()));
    }
    if (type == RF_TYPE_MXFP4) blk[0] = (unsigned char)rng_int(118, 126); /* E8M0 exponent */
}

/* A (rows, k) matrix of type: quantized from random floats when the type has a
 * quantizer, else random blocks (redrawn until they dequantize to finite, moderate
 * values). deq gets the dequantized weights. */
static void *make_weights(enum rf_type type, int64_t rows, int64_t k, float *deq)
{
    const struct rf_type_traits *tt = rf_type_traits(type);
    const size_t rs = rf_row_size(type, k);
    unsigned char *w = malloc(rs * (size_t)rows);
    assert_non_null(w);
    for (int64_t r = 0; r < rows; r++) {
        unsigned char *wr = w + (size_t)r * rs;
        float *dr = deq + r * k;
        if (tt->from_float) {
            float *x = rand_floats(k, 1.0f);
            tt->from_float(x, wr, k);
            free(x);
        } else {
            for (int64_t b = 0; b < k / tt->block_size; b++) {
                unsigned char *blk = wr + (size_t)b * tt->type_size;
                float *db = dr + b * tt->block_size;
                for (int tries = 0;; tries++) {
                    assert_true(tries < 1000);
                    random_block(type, blk, tt->type_size);
                    tt->to_float(blk, db, tt->block_size);
                    bool ok = true;
                    for (int64_t i = 0; i < tt->block_size; i++) ok = ok && fabsf(db[i]) < 1e4f;
                    if (ok) break;
                }
            }
        }
        tt->to_float(wr, dr, k);
    }
    return w;
}

/* ---- matmul ---- */

/* The error of a product comes from converting the activations to vec_dot_type. */
static double matmul_threshold(const struct rf_type_traits *tt, bool dequant_path)
{
    if (dequant_path || !tt->vec_dot || tt->vec_dot_type == RF_TYPE_F32) return 1e-9;
    if (tt->vec_dot_type == RF_TYPE_F16) return 1e-6;
    if (tt->vec_dot_type == RF_TYPE_BF16) return 5e-5;
    return 1e-3; /* 8-bit activations: ~3e-5 for Gaussian inputs */
}

static void matmul_case(struct bk *bks, int nb, enum rf_type type, int64_t rows, int64_t k,
                        int64_t n_tok)
{
    const struct rf_type_traits *tt = rf_type_traits(type);
    float *deq = malloc((size_t)(rows * k) * sizeof *deq);
    assert_non_null(deq);
    void *wdata = make_weights(type, rows, k, deq);
    const struct rf_tensor w = {.name = "w",
                                .type = type,
                                .ne = {k, rows, 1, 1},
                                .data = wdata,
                                .nbytes = rf_row_size(type, k) * (size_t)rows};
    float *x = rand_floats(n_tok * k, 1.0f);
    double *ref = malloc((size_t)(n_tok * rows) * sizeof *ref);
    assert_non_null(ref);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t i = 0; i < k; i++) s += (double)deq[r * k + i] * x[t * k + i];
            ref[t * rows + r] = s;
        }
    float *first = NULL;
    char what[128];
    for (int dq = 0; dq < 2; dq++)
        for (int i = 0; i < nb; i++) {
            float *y = poisoned(n_tok * rows);
            rf_backend_cpu_force_dequant(&bks[i].b, dq);
            assert_int_equal(bks[i].b.iface->matmul(bks[i].b.ctx, &w, x, k, y, n_tok), RF_OK);
            rf_backend_cpu_force_dequant(&bks[i].b, false);
            snprintf(what, sizeof what, "matmul %s (%lld x %lld) n_tok %lld %s %s nth %d", tt->name,
                     (long long)k, (long long)rows, (long long)n_tok, dq ? "dequant" : "vec_dot",
                     bks[i].kern, bks[i].nth);
            check_nmse(what, y, ref, n_tok * rows, matmul_threshold(tt, dq));
            /* Same kernels, other thread count: the same bits. */
            if (bks[i].nth == 1) {
                free(first);
                first = y;
            } else {
                if (memcmp(first, y, (size_t)(n_tok * rows) * sizeof *y))
                    fail_msg("%s: differs from 1 thread", what);
                free(y);
            }
        }
    free(first);
    /* Batch invariance: each token's row as if it had been alone (prefill tiling
     * and vec_dot_multi change nothing). */
    struct rf_backend *b = &bks[nb - 1].b;
    float *yb = poisoned(n_tok * rows), *y1 = poisoned(rows);
    for (int dq = 0; dq < 2; dq++) {
        rf_backend_cpu_force_dequant(b, dq);
        assert_int_equal(b->iface->matmul(b->ctx, &w, x, k, yb, n_tok), RF_OK);
        for (int64_t t = 0; t < n_tok; t++) {
            assert_int_equal(b->iface->matmul(b->ctx, &w, x + t * k, k, y1, 1), RF_OK);
            if (memcmp(y1, yb + t * rows, (size_t)rows * sizeof *y1))
                fail_msg("matmul %s (%lld x %lld) %s: token %lld of %lld differs from its own run",
                         tt->name, (long long)k, (long long)rows, dq ? "dequant" : "vec_dot",
                         (long long)t, (long long)n_tok);
        }
    }
    rf_backend_cpu_force_dequant(b, false);
    free(yb);
    free(y1);
    free(ref);
    free(x);
    free(wdata);
    free(deq);
}

static void test_matmul_all_types(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    int tested = 0;
    for (uint32_t type = 0; type < RF_TYPE_COUNT; type++) {
        const struct rf_type_traits *tt = rf_type_traits(type);
        if (!tt || !tt->to_float) continue;
        /* Rows of 2-9 blocks (a few hundred columns), never a multiple of 32 rows. */
        const int64_t bs = tt->block_size;
        const int64_t k = bs == 1 ? 300 : bs * (bs >= 256 ? 2 : 9);
        matmul_case(bks, nb, type, 37, k, 1);
        matmul_case(bks, nb, type, 19, k, 37);
        matmul_case(bks, nb, type, 1, k, 5);
        tested++;
    }
    assert_true(tested >= 3); /* at least F32, F16 and one block type */
    close_backends(bks, nb);
}

/* Sizes of the real model with the weight types it uses, both paths, more rows
 * than threads * chunks so that the work is split. */
static void test_matmul_model_shapes(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    matmul_case(bks, nb, RF_TYPE_Q4_1, 1536, 576, 1);
    matmul_case(bks, nb, RF_TYPE_Q8_0, 577, 1536, 3);
    matmul_case(bks, nb, RF_TYPE_Q4_1, 200, 576, 33);
    close_backends(bks, nb);
}

static void test_matmul_errors(void **state)
{
    (void)state;
    struct rf_backend b;
    assert_int_equal(rf_backend_cpu_init(2, &b), RF_OK);
    const int64_t k = 576, rows = 1536;
    const size_t rs = rf_row_size(RF_TYPE_Q8_0, k);
    void *data = calloc(rows, rs);
    float *x = calloc(k * 2, sizeof *x), *y = calloc(rows * 2, sizeof *y);
    struct rf_tensor w = {.name = "blk.3.ffn_up.weight",
                          .type = RF_TYPE_Q8_0,
                          .ne = {k, rows, 1, 1},
                          .data = data,
                          .nbytes = rs * rows};

    assert_int_equal(b.iface->matmul(b.ctx, &w, x, 512, y, 2), RF_STATUS_SHAPE);
    const char *e = rf_last_error();
    assert_non_null(strstr(e, "blk.3.ffn_up.weight"));
    assert_non_null(strstr(e, "576 x 1536"));
    assert_non_null(strstr(e, "512"));

    w.nbytes = rs * rows - 1; /* one byte short */
    assert_int_equal(b.iface->matmul(b.ctx, &w, x, k, y, 1), RF_STATUS_SHAPE);
    assert_non_null(strstr(rf_last_error(), "blk.3.ffn_up.weight"));
    w.nbytes = rs * rows;

    w.ne[0] = 40; /* not a multiple of the Q8_0 block */
    assert_int_equal(b.iface->matmul(b.ctx, &w, x, 40, y, 1), RF_STATUS_SHAPE);
    assert_non_null(strstr(rf_last_error(), "Q8_0"));
    w.ne[0] = k;

    w.type = RF_TYPE_IQ2_XXS; /* sized, not computed */
    if (!rf_type_traits(w.type)->to_float) {
        assert_int_equal(b.iface->matmul(b.ctx, &w, x, k, y, 1), RF_STATUS_UNSUPPORTED);
        assert_non_null(strstr(rf_last_error(), "IQ2_XXS"));
    }
    w.type = RF_TYPE_Q8_0;
    assert_int_equal(b.iface->matmul(b.ctx, &w, x, k, y, 2), RF_OK);
    free(data);
    free(x);
    free(y);
    b.iface->free(b.ctx);
}

/* ---- get_rows ---- */

static void test_get_rows(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    const int64_t n_ids = 37, rows = 50;
    for (uint32_t type = 0; type < RF_TYPE_COUNT; type++) {
        const struct rf_type_traits *tt = rf_type_traits(type);
        if (!tt || !tt->to_float) continue;
        const int64_t k = tt->block_size == 1 ? 77 : tt->block_size * 3;
        float *deq = malloc((size_t)(rows * k) * sizeof *deq);
        void *data = make_weights(type, rows, k, deq);
        const struct rf_tensor w = {.name = "token_embd.weight",
                                    .type = type,
                                    .ne = {k, rows, 1, 1},
                                    .data = data,
                                    .nbytes = rf_row_size(type, k) * rows};
        int32_t ids[37];
        for (int i = 0; i < n_ids; i++) ids[i] = rng_int(0, (int)rows - 1);
        ids[0] = 0;
        ids[1] = (int32_t)rows - 1;
        for (int i = 0; i < nb; i++) {
            float *out = poisoned(n_ids * k);
            assert_int_equal(bks[i].b.iface->get_rows(bks[i].b.ctx, &w, ids, n_ids, out), RF_OK);
            for (int64_t t = 0; t < n_ids; t++)
                if (memcmp(out + t * k, deq + ids[t] * k, (size_t)k * sizeof *out))
                    fail_msg("get_rows %s: row %lld (id %d) differs", tt->name, (long long)t,
                             ids[t]);
            free(out);
        }
        free(data);
        free(deq);
    }
    /* Out-of-range ids fail before anything is written, with a message naming them. */
    float table[4 * 8] = {0};
    const struct rf_tensor w = {.name = "token_embd.weight",
                                .type = RF_TYPE_F32,
                                .ne = {8, 4, 1, 1},
                                .data = table,
                                .nbytes = sizeof table};
    const int32_t bad[][3] = {{0, 4, 1}, {-1, 0, 0}, {3, 2, 2147483647}};
    for (int i = 0; i < 3; i++) {
        float out[3 * 8];
        assert_int_equal(bks[0].b.iface->get_rows(bks[0].b.ctx, &w, bad[i], 3, out),
                         RF_STATUS_INVALID_ARG);
        assert_non_null(strstr(rf_last_error(), "token_embd.weight"));
        assert_non_null(strstr(rf_last_error(), "4 rows"));
    }
    assert_non_null(strstr(rf_last_error(), "2147483647"));
    close_backends(bks, nb);
}

/* ---- rms_norm ---- */

static void test_rms_norm(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    const int64_t ns[] = {1, 7, 64, 576, 1001};
    const int64_t rows_list[] = {1, 3, 37, 100};
    const float eps = 1e-5f;
    for (size_t a = 0; a < 5; a++)
        for (size_t r = 0; r < 4; r++)
            for (int with_w = 0; with_w < 2; with_w++) {
                const int64_t n = ns[a], rows = rows_list[r];
                float *x = rand_floats(n * rows, 2.0f), *wv = rand_floats(n, 1.0f);
                const struct rf_tensor w = f32_tensor("blk.0.attn_norm.weight", wv, n);
                double *ref = malloc((size_t)(n * rows) * sizeof *ref);
                for (int64_t i = 0; i < rows; i++) {
                    double ss = 0;
                    for (int64_t j = 0; j < n; j++) ss += (double)x[i * n + j] * x[i * n + j];
                    const double s = 1.0 / sqrt(ss / n + eps);
                    for (int64_t j = 0; j < n; j++)
                        ref[i * n + j] = x[i * n + j] * s * (with_w ? wv[j] : 1.0);
                }
                for (int i = 0; i < nb; i++) {
                    float *y = poisoned(n * rows);
                    assert_int_equal(bks[i].b.iface->rms_norm(bks[i].b.ctx, x, with_w ? &w : NULL,
                                                              y, n, rows, eps),
                                     RF_OK);
                    check_nmse("rms_norm", y, ref, n * rows, 1e-12);
                    /* In place, as the forward pass does for QK norm. */
                    float *xc = malloc((size_t)(n * rows) * sizeof *xc);
                    memcpy(xc, x, (size_t)(n * rows) * sizeof *xc);
                    assert_int_equal(bks[i].b.iface->rms_norm(bks[i].b.ctx, xc, with_w ? &w : NULL,
                                                              xc, n, rows, eps),
                                     RF_OK);
                    assert_memory_equal(xc, y, (size_t)(n * rows) * sizeof *y);
                    free(xc);
                    free(y);
                }
                free(ref);
                free(x);
                free(wv);
            }
    /* A weight of the wrong length names itself and both sizes. */
    float wv[512] = {0}, x[576] = {0}, y[576];
    const struct rf_tensor w = f32_tensor("blk.0.attn_norm.weight", wv, 512);
    assert_int_equal(bks[0].b.iface->rms_norm(bks[0].b.ctx, x, &w, y, 576, 1, eps),
                     RF_STATUS_SHAPE);
    assert_non_null(strstr(rf_last_error(), "blk.0.attn_norm.weight"));
    assert_non_null(strstr(rf_last_error(), "512"));
    assert_non_null(strstr(rf_last_error(), "576"));
    struct rf_tensor wf16 = f32_tensor("output_norm.weight", wv, 256);
    wf16.type = RF_TYPE_F16;
    assert_int_equal(bks[0].b.iface->rms_norm(bks[0].b.ctx, x, &wf16, y, 512, 1, eps),
                     RF_STATUS_SHAPE);
    assert_non_null(strstr(rf_last_error(), "F16"));
    close_backends(bks, nb);
}

/* ---- rope ---- */

struct rope_case {
    int head_dim, n_rot, n_head;
    int64_t n_tok;
    float base, fscale;
};

static void rope_ref(const float *x, double *ref, const struct rope_case *c, const int32_t *pos,
                     bool neox)
{
    const int hd = c->head_dim, half = c->n_rot / 2;
    for (int64_t t = 0; t < c->n_tok; t++)
        for (int h = 0; h < c->n_head; h++) {
            const float *xr = x + (t * c->n_head + h) * hd;
            double *rr = ref + (t * c->n_head + h) * hd;
            for (int d = 0; d < hd; d++) rr[d] = xr[d];
            for (int i = 0; i < half; i++) {
                const double th = pos[t] * (double)c->fscale * pow(c->base, -2.0 * i / c->n_rot);
                const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
                rr[a] = xr[a] * cos(th) - xr[b] * sin(th);
                rr[b] = xr[a] * sin(th) + xr[b] * cos(th);
            }
        }
}

static void test_rope(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    const struct rope_case cases[] = {
        {64, 64, 9, 1, 10000.0f, 1.0f},  {64, 64, 3, 37, 100000.0f, 1.0f},
        {80, 40, 5, 7, 10000.0f, 0.25f}, {6, 6, 16, 5, 10000.0f, 1.0f},
        {128, 96, 2, 33, 1e6f, 1.0f},    {512, 512, 1, 3, 10000.0f, 1.0f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (int neox = 0; neox < 2; neox++) {
            const struct rope_case *c = &cases[ci];
            const int64_t n = c->n_tok * c->n_head * c->head_dim;
            int32_t pos[64];
            for (int64_t t = 0, p = 0; t < c->n_tok; t++) pos[t] = (int32_t)(p += rng_int(0, 200));
            pos[c->n_tok - 1] = 4095;
            float *x = rand_floats(n, 1.0f);
            double *ref = malloc((size_t)n * sizeof *ref);
            rope_ref(x, ref, c, pos, neox);
            const struct rf_rope_params rp = {
                .n_rot = c->n_rot, .freq_base = c->base, .freq_scale = c->fscale, .neox = neox};
            for (int i = 0; i < nb; i++) {
                float *y = malloc((size_t)n * sizeof *y);
                memcpy(y, x, (size_t)n * sizeof *y);
                bks[i].b.iface->rope(bks[i].b.ctx, y, c->n_tok, c->n_head, c->head_dim, pos, &rp);
                char what[128];
                snprintf(what, sizeof what, "rope case %zu %s %s nth %d", ci,
                         neox ? "neox" : "normal", bks[i].kern, bks[i].nth);
                /* The angles are a running f32 product, as ggml builds them; their
                 * error grows with position and pair index: at position 4095 nmse is
                 * ~3e-9 for 32 pairs, ~7e-8 for 256. A wrong pairing gives ~1. */
                check_nmse(what, y, ref, n, 2e-7);
                /* Dimensions past n_rot are left exactly as they were. */
                for (int64_t r = 0; r < c->n_tok * c->n_head; r++)
                    for (int d = c->n_rot; d < c->head_dim; d++)
                        assert_memory_equal(&y[r * c->head_dim + d], &x[r * c->head_dim + d], 4);
                free(y);
            }
            free(ref);
            free(x);
        }
    close_backends(bks, nb);
}

/* ---- kv_store ---- */

static void test_kv_store(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    const int64_t widths[] = {1, 13, 192, 520};
    for (size_t wi = 0; wi < 4; wi++) {
        const int64_t width = widths[wi], n_tok = 37, n_rows = 80;
        float *k = rand_floats(n_tok * width, 3.0f), *v = rand_floats(n_tok * width, 0.01f);
        /* Values that exercise rounding: ties, subnormals, overflow to inf, signed zero. */
        const float special[] = {1.0f + 1.0f / 2048,
                                 1.0f + 3.0f / 2048,
                                 6e-8f,
                                 -3e-6f,
                                 70000.0f,
                                 -0.0f,
                                 65520.0f,
                                 65519.0f};
        for (int i = 0; i < 8 && i < n_tok * width; i++) k[i] = special[i];
        int32_t pos[37];
        for (int t = 0; t < n_tok; t++) pos[t] = 2 * t + (t > 10); /* gaps */
        for (int i = 0; i < nb; i++) {
            uint16_t *kc = malloc((size_t)(n_rows * width) * 2),
                     *vc = malloc((size_t)(n_rows * width) * 2);
            for (int64_t j = 0; j < n_rows * width; j++) kc[j] = vc[j] = 0xABCD;
            bks[i].b.iface->kv_store(bks[i].b.ctx, k, v, n_tok, width, pos, kc, vc);
            int64_t written = 0;
            for (int64_t r = 0; r < n_rows; r++) {
                int64_t t = -1;
                for (int64_t s = 0; s < n_tok; s++)
                    if (pos[s] == r) t = s;
                for (int64_t d = 0; d < width; d++) {
                    const uint16_t ek = t < 0 ? 0xABCD : rf_fp32_to_fp16(k[t * width + d]);
                    const uint16_t ev = t < 0 ? 0xABCD : rf_fp32_to_fp16(v[t * width + d]);
                    if (kc[r * width + d] != ek || vc[r * width + d] != ev)
                        fail_msg(
                            "kv_store %s: row %lld col %lld: k %04x v %04x, expected %04x %04x",
                            bks[i].kern, (long long)r, (long long)d, kc[r * width + d],
                            vc[r * width + d], ek, ev);
                }
                written += t >= 0;
            }
            assert_int_equal(written, n_tok);
            free(kc);
            free(vc);
        }
        free(k);
        free(v);
    }
    close_backends(bks, nb);
}

/* ---- attention ---- */

struct attn_case {
    int n_head, n_head_kv, head_dim;
    int64_t n_tok, n_kv;
    int window;
    float softcap;
    int block_size; /* of the paged pool; blocks in a shuffled order when > 0, else the
                       identity table of 16-row blocks */
};

static double f16r(float x) { return rf_fp16_to_fp32(rf_fp32_to_fp16(x)); }

/* kc, vc: the sequence's rows in position order (n_kv rows). */
static void attn_ref(const float *q, const uint16_t *kc, const uint16_t *vc, double *ref,
                     const struct rf_attn_params *p, int64_t n_kv)
{
    const int hd = p->head_dim, rep = p->n_head / p->n_head_kv;
    const int64_t width = (int64_t)p->n_head_kv * hd;
    double *w = malloc((size_t)n_kv * sizeof *w);
    for (int64_t t = 0; t < p->n_tok; t++)
        for (int h = 0; h < p->n_head; h++) {
            const float *qr = q + (t * p->n_head + h) * hd;
            const int kvh = h / rep;
            const int64_t lo =
                p->window && p->pos[t] - p->window + 1 > 0 ? p->pos[t] - p->window + 1 : 0;
            double m = -INFINITY, sum = 0;
            for (int64_t r = lo; r <= p->pos[t]; r++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += f16r(qr[d]) * rf_fp16_to_fp32(kc[r * width + kvh * hd + d]);
                s *= p->scale;
                if (p->softcap) s = p->softcap * tanh(s / p->softcap);
                w[r] = s;
                m = fmax(m, s);
            }
            for (int64_t r = lo; r <= p->pos[t]; r++) sum += (w[r] = exp(w[r] - m));
            /* The normalized weights are rounded to f16, as the op documents. */
            for (int64_t r = lo; r <= p->pos[t]; r++) w[r] = f16r((float)(w[r] / sum));
            double *o = ref + (t * p->n_head + h) * hd;
            for (int d = 0; d < hd; d++) {
                double acc = 0;
                for (int64_t r = lo; r <= p->pos[t]; r++)
                    acc += w[r] * rf_fp16_to_fp32(vc[r * width + kvh * hd + d]);
                o[d] = acc;
            }
        }
    free(w);
}

/* A block table for n_blocks blocks of the sequence (row 1 of the tables) inside a pool
 * of 2 * n_blocks, in shuffled order; row 0 holds another sequence's table. */
static int32_t *attn_tables(int64_t n_blocks, bool shuffle)
{
    int32_t *t = malloc((size_t)(2 * n_blocks) * sizeof *t);
    int32_t *perm = malloc((size_t)(2 * n_blocks) * sizeof *perm);
    for (int64_t i = 0; i < 2 * n_blocks; i++) perm[i] = (int32_t)i;
    for (int64_t i = 2 * n_blocks - 1; shuffle && i > 0; i--) {
        const int64_t j = rng_int(0, (int)i);
        const int32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    for (int64_t i = 0; i < n_blocks; i++) {
        t[i] = perm[n_blocks + i];
        t[n_blocks + i] = shuffle ? perm[i] : (int32_t)i;
    }
    free(perm);
    return t;
}

static void attn_case_run(struct bk *bks, int nb, const struct attn_case *c)
{
    const int64_t qn = c->n_tok * c->n_head * c->head_dim;
    const int64_t width = (int64_t)c->n_head_kv * c->head_dim;
    const int bs = c->block_size > 0 ? c->block_size : 16;
    const int64_t n_blocks = (c->n_kv + bs - 1) / bs;
    float *q = rand_floats(qn, 1.0f);
    uint16_t *kc = malloc((size_t)(c->n_kv * width) * 2),
             *vc = malloc((size_t)(c->n_kv * width) * 2);
    for (int64_t i = 0; i < c->n_kv * width; i++) {
        kc[i] = rf_fp32_to_fp16(rng_normal());
        vc[i] = rf_fp32_to_fp16(rng_normal());
    }
    /* The sequence's rows scattered into the pool by its table. */
    int32_t *tables = attn_tables(n_blocks, c->block_size > 0);
    const int64_t pool_rows = 2 * n_blocks * bs;
    uint16_t *kp = malloc((size_t)(pool_rows * width) * 2), *vp = malloc((size_t)(pool_rows * width) * 2);
    for (int64_t i = 0; i < pool_rows * width; i++) kp[i] = vp[i] = 0x7E00; /* NaN */
    for (int64_t r = 0; r < c->n_kv; r++) {
        const int64_t row = (int64_t)tables[n_blocks + r / bs] * bs + r % bs;
        memcpy(kp + row * width, kc + r * width, (size_t)width * 2);
        memcpy(vp + row * width, vc + r * width, (size_t)width * 2);
    }
    /* Increasing positions with gaps; the last token sees the whole cache. */
    int32_t pos[64], seq[64];
    for (int64_t t = c->n_tok - 1, p = c->n_kv - 1; t >= 0; t--) {
        pos[t] = (int32_t)(p > t ? p : t);
        seq[t] = 1;
        p = pos[t] - 1 - rng_int(0, 2);
    }
    const struct rf_attn_params ap = {.n_tok = c->n_tok,
                                      .n_head = c->n_head,
                                      .n_head_kv = c->n_head_kv,
                                      .head_dim = c->head_dim,
                                      .pos = pos,
                                      .seq = seq,
                                      .block_tables = tables,
                                      .n_seq = 2,
                                      .max_blocks = (int32_t)n_blocks,
                                      .block_size = bs,
                                      .max_pos = pos[c->n_tok - 1],
                                      .scale = 1.0f / sqrtf((float)c->head_dim),
                                      .softcap = c->softcap,
                                      .window = c->window};
    double *ref = malloc((size_t)qn * sizeof *ref);
    attn_ref(q, kc, vc, ref, &ap, c->n_kv);
    float *first = NULL;
    char what[160];
    for (int i = 0; i < nb; i++) {
        float *out = poisoned(qn);
        assert_int_equal(bks[i].b.iface->attention(bks[i].b.ctx, q, kp, vp, out, &ap), RF_OK);
        snprintf(what, sizeof what,
                 "attention heads %d/%d dim %d n_tok %lld n_kv %lld win %d cap %g block %d %s "
                 "nth %d",
                 c->n_head, c->n_head_kv, c->head_dim, (long long)c->n_tok, (long long)c->n_kv,
                 c->window, c->softcap, c->block_size, bks[i].kern, bks[i].nth);
        /* ~1e-13, plus ~3e-10 for each weight that rounds to the other f16
         * neighbour (f32 vs double softmax; rare) in the smallest cases. Weights
         * not rounded to f16 give ~1e-7. */
        check_nmse(what, out, ref, qn, 5e-9);
        if (bks[i].nth == 1) {
            free(first);
            first = out;
        } else {
            if (memcmp(first, out, (size_t)qn * sizeof *out))
                fail_msg("%s: differs from 1 thread", what);
            free(out);
        }
    }
    free(first);
    free(ref);
    free(q);
    free(kc);
    free(vc);
    free(kp);
    free(vp);
    free(tables);
}

static void test_attention(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    const struct attn_case cases[] = {
        {1, 1, 64, 1, 1, 0, 0, 0},       {4, 4, 20, 7, 30, 0, 0, 16},
        {9, 3, 64, 1, 100, 0, 0, 0},     {9, 3, 64, 37, 90, 0, 0, 7},
        {8, 2, 40, 5, 17, 0, 0, 0},      {16, 2, 8, 3, 64, 0, 0, 16},
        {8, 1, 64, 1, 77, 0, 0, 5},      {16, 1, 33, 11, 50, 0, 0, 0},
        {12, 4, 64, 9, 40, 5, 0, 3},     {6, 2, 16, 13, 60, 0, 1.5f, 0},
        {2, 1, 96, 4, 120, 16, 2.0f, 16}, {16, 16, 128, 2, 9, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) attn_case_run(bks, nb, &cases[i]);

    /* A position past the table, a position without a block, and a head count not
     * divisible by the KV heads. */
    float q[64] = {0}, out[64];
    uint16_t kc[64] = {0}, vc[64] = {0};
    int32_t pos[1] = {1}, seq[1] = {0}, table[2] = {0, -1};
    struct rf_attn_params ap = {.n_tok = 1, .n_head = 1, .n_head_kv = 1, .head_dim = 64,
                                .pos = pos, .seq = seq, .block_tables = table, .n_seq = 1,
                                .max_blocks = 1, .block_size = 1, .scale = 1};
    assert_int_equal(bks[0].b.iface->attention(bks[0].b.ctx, q, kc, vc, out, &ap),
                     RF_STATUS_INVALID_ARG);
    assert_non_null(strstr(rf_last_error(), "position 1"));
    ap.max_blocks = 2;
    assert_int_equal(bks[0].b.iface->attention(bks[0].b.ctx, q, kc, vc, out, &ap),
                     RF_STATUS_INVALID_ARG);
    assert_non_null(strstr(rf_last_error(), "no block"));
    table[1] = 0;
    ap.head_dim = 32;
    ap.n_head = 3;
    ap.n_head_kv = 2;
    assert_int_equal(bks[0].b.iface->attention(bks[0].b.ctx, q, kc, vc, out, &ap),
                     RF_STATUS_INVALID_ARG);
    close_backends(bks, nb);
}

/* ---- element-wise ---- */

static double silu_ref(double g) { return g / (1.0 + exp(-g)); }
static double gelu_ref(double g)
{
    return 0.5 * g * (1.0 + tanh(sqrt(2.0 / M_PI) * g * (1.0 + 0.044715 * g * g)));
}

/* Gaussian values plus tails where exp over/underflows. */
static float *ew_input(int64_t n)
{
    float *x = rand_floats(n, 3.0f);
    const float tails[] = {-100.0f, 100.0f, -20.0f, 20.0f, -90.0f, 0.0f, 1e-20f, -1e-20f};
    if (n >= 16)
        for (int i = 0; i < 8; i++) x[i * 7 % n] = tails[i];
    return x;
}

static void test_elementwise(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    const int64_t ns[] = {1, 7, 33, 1000, 100003};
    for (size_t a = 0; a < 5; a++) {
        const int64_t n = ns[a];
        float *g = ew_input(n), *u = rand_floats(n, 1.0f);
        double *rs = malloc((size_t)n * sizeof *rs), *rg = malloc((size_t)n * sizeof *rg);
        double *ra = malloc((size_t)n * sizeof *ra), *rc = malloc((size_t)n * sizeof *rc);
        for (int64_t i = 0; i < n; i++) {
            rs[i] = silu_ref(g[i]) * u[i];
            rg[i] = gelu_ref(g[i]) * u[i];
            ra[i] = (double)g[i] + u[i];
            rc[i] = (double)g[i] * 0.125;
        }
        for (int i = 0; i < nb; i++) {
            const struct rf_backend_i *be = bks[i].b.iface;
            void *ctx = bks[i].b.ctx;
            char what[96];
            float *y = poisoned(n);
            be->swiglu(ctx, g, u, y, n);
            snprintf(what, sizeof what, "swiglu n %lld %s nth %d", (long long)n, bks[i].kern,
                     bks[i].nth);
            check_nmse(what, y, rs, n, 1e-12);
            for (int64_t j = 0; j < n; j++) y[j] = NAN;
            be->geglu(ctx, g, u, y, n);
            snprintf(what, sizeof what, "geglu n %lld %s nth %d", (long long)n, bks[i].kern,
                     bks[i].nth);
            check_nmse(what, y, rg, n, 1e-4); /* g rounded to f16, the f16 GELU table (cpu_kernels.h) */
            memcpy(y, g, (size_t)n * sizeof *y);
            be->add(ctx, y, u, n);
            check_nmse("add", y, ra, n, 1e-14);
            memcpy(y, g, (size_t)n * sizeof *y);
            be->scale(ctx, y, 0.125f, n);
            for (int64_t j = 0; j < n; j++) assert_true(y[j] == (float)rc[j]);
            free(y);
        }
        free(g);
        free(u);
        free(rs);
        free(rg);
        free(ra);
        free(rc);
    }
    close_backends(bks, nb);
}

static void test_swiglu_nan(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    float g[17], u[17], y[17];
    for (int i = 0; i < 17; i++) {
        g[i] = (float)i - 8;
        u[i] = 1;
    }
    g[3] = NAN;
    g[16] = NAN;
    for (int i = 0; i < nb; i++) {
        bks[i].b.iface->swiglu(bks[i].b.ctx, g, u, y, 17);
        assert_true(isnan(y[3]) && isnan(y[16]));
        assert_false(isnan(y[4]));
        bks[i].b.iface->geglu(bks[i].b.ctx, g, u, y, 17);
        assert_true(isnan(y[3]) && isnan(y[16]));
    }
    close_backends(bks, nb);
}

static void test_add_bias(void **state)
{
    (void)state;
    struct bk bks[MAX_BACKENDS];
    const int nb = open_backends(bks);
    const int64_t n = 77, rows = 45;
    float *y0 = rand_floats(n * rows, 1.0f), *bv = rand_floats(n, 1.0f);
    const struct rf_tensor b = f32_tensor("blk.0.attn_q.bias", bv, n);
    double *ref = malloc((size_t)(n * rows) * sizeof *ref);
    for (int64_t i = 0; i < n * rows; i++) ref[i] = (double)y0[i] + bv[i % n];
    for (int i = 0; i < nb; i++) {
        float *y = malloc((size_t)(n * rows) * sizeof *y);
        memcpy(y, y0, (size_t)(n * rows) * sizeof *y);
        assert_int_equal(bks[i].b.iface->add_bias(bks[i].b.ctx, y, &b, n, rows), RF_OK);
        check_nmse("add_bias", y, ref, n * rows, 1e-14);
        free(y);
    }
    assert_int_equal(bks[0].b.iface->add_bias(bks[0].b.ctx, y0, &b, 64, rows), RF_STATUS_SHAPE);
    assert_non_null(strstr(rf_last_error(), "blk.0.attn_q.bias"));
    assert_non_null(strstr(rf_last_error(), "77"));
    assert_non_null(strstr(rf_last_error(), "64"));
    free(ref);
    free(y0);
    free(bv);
    close_backends(bks, nb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_any),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_matmul_all_types),
        cmocka_unit_test(test_matmul_model_shapes),
        cmocka_unit_test(test_matmul_errors),
        cmocka_unit_test(test_get_rows),
        cmocka_unit_test(test_rms_norm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_kv_store),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_swiglu_nan),
        cmocka_unit_test(test_add_bias),
    };
    if (getenv("RF_TEST_FILTER")) cmocka_set_test_filter(getenv("RF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Throughput of the CPU backend's matmul for one token (decode), the op that
 * bounds decode speed: weight bytes streamed per second, against the measured
 * read bandwidth of this machine.
 *
 *   bench_ops [seconds per case]
 *
 * "hot" repeats one matrix (it may sit in cache); "cold" cycles through copies
 * that together exceed the last-level cache, as a forward pass does. The last
 * columns are a prefill-sized product (64 tokens) of the hot matrix. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "core/threadpool.h"
#include "quant/quant.h"

#define COLD_BYTES ((size_t)256 << 20)
#define PREFILL_TOKENS 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float rand_float(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 24) - 0.5f;
}

/* ---- peak read bandwidth: each thread sums its share of a big buffer ---- */

struct read_job {
    const uint64_t *p;
    size_t n;
    uint64_t sums[64];
};

static void read_range_scalar(struct read_job *j, size_t i0, size_t i1, int ith)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = i0; i + 4 <= i1; i += 4) {
        s0 += j->p[i];
        s1 += j->p[i + 1];
        s2 += j->p[i + 2];
        s3 += j->p[i + 3];
    }
    j->sums[ith] = s0 + s1 + s2 + s3;
}

#if defined(__x86_64__)
/* 32-byte loads, four streams of accumulation: the loads the kernels use. */
__attribute__((target("avx2"))) static void read_range_avx2(struct read_job *j, size_t i0,
                                                            size_t i1, int ith)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = i0; i + 16 <= i1; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_loadu_si256((const __m256i *)(j->p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_loadu_si256((const __m256i *)(j->p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_loadu_si256((const __m256i *)(j->p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_loadu_si256((const __m256i *)(j->p + i + 12)));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes,
                        _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)));
    j->sums[ith] = lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

static void read_part(void *arg, int ith, int nth)
{
    struct read_job *j = arg;
    const size_t i0 = j->n * (size_t)ith / (size_t)nth, i1 = j->n * (size_t)(ith + 1) / (size_t)nth;
#if defined(__x86_64__)
    if (rf_cpu_has_avx2()) {
        read_range_avx2(j, i0, i1, ith);
        return;
    }
#endif
    read_range_scalar(j, i0, i1, ith);
}

static double peak_read_gbs(int nth, double seconds)
{
    struct rf_pool *pool;
    if (rf_pool_create(nth, &pool) != RF_OK) return 0;
    const size_t n = COLD_BYTES / 8;
    uint64_t *buf = malloc(COLD_BYTES);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    struct read_job j = {.p = buf, .n = n};
    rf_pool_run(pool, read_part, &j);
    double best = 0;
    for (const double t_end = now_s() + seconds; now_s() < t_end;) {
        const double t0 = now_s();
        rf_pool_run(pool, read_part, &j);
        const double gbs = (double)COLD_BYTES / (now_s() - t0) * 1e-9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    rf_pool_free(pool);
    return best;
}

/* ---- matmul ---- */

struct mm_case {
    enum rf_type type;
    int64_t k, rows;
};

/* Calls per second of y = W x for n_tok tokens, cycling through n_copies matrices. */
static double time_matmul(struct rf_backend *b, struct rf_tensor *w, const char *base, size_t bytes,
                          int n_copies, const float *x, float *y, int64_t n_tok, double seconds)
{
    w->data = base;
    if (b->iface->matmul(b->ctx, w, x, w->ne[0], y, n_tok) != RF_OK) {
        fprintf(stderr, "matmul: %s\n", rf_last_error());
        exit(1);
    }
    long calls = 0;
    const double t0 = now_s();
    double t = t0;
    while (t - t0 < seconds) {
        for (int c = 0; c < n_copies; c++, calls++) {
            w->data = base + (size_t)c * bytes;
            b->iface->matmul(b->ctx, w, x, w->ne[0], y, n_tok);
        }
        t = now_s();
    }
    return (double)calls / (t - t0);
}

static void bench_case(const struct mm_case *mc, double seconds, const double *peak)
{
    const struct rf_type_traits *tt = rf_type_traits(mc->type);
    const size_t row = rf_row_size(mc->type, mc->k), bytes = row * (size_t)mc->rows;
    int n_copies = (int)(COLD_BYTES / bytes) + 1;
    char *w = malloc(bytes * (size_t)n_copies);
    float *tmp = malloc((size_t)mc->k * sizeof *tmp);
    float *x = malloc((size_t)(mc->k * PREFILL_TOKENS) * sizeof *x);
    float *y = malloc((size_t)(mc->rows * PREFILL_TOKENS) * sizeof *y);
    if (!w || !tmp || !x || !y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t r = 0; r < mc->rows; r++) {
        for (int64_t i = 0; i < mc->k; i++) tmp[i] = rand_float();
        tt->from_float(tmp, w + (size_t)r * row, mc->k);
    }
    for (int c = 1; c < n_copies; c++) memcpy(w + (size_t)c * bytes, w, bytes);
    for (int64_t i = 0; i < mc->k * PREFILL_TOKENS; i++) x[i] = rand_float();

    struct rf_tensor t = {
        .name = "w", .type = mc->type, .ne = {mc->k, mc->rows, 1, 1}, .nbytes = bytes};
    for (int nth = 1; nth <= 2; nth++) {
        struct rf_backend b;
        if (rf_backend_cpu_init(nth, &b) != RF_OK) exit(1);
        const double hot = time_matmul(&b, &t, w, bytes, 1, x, y, 1, seconds);
        const double cold = time_matmul(&b, &t, w, bytes, n_copies, x, y, 1, seconds);
        const double pre = time_matmul(&b, &t, w, bytes, 1, x, y, PREFILL_TOKENS, seconds);
        const double flop = 2.0 * (double)mc->k * (double)mc->rows * PREFILL_TOKENS;
        printf("%-5s %5lld x %-6lld %6.2f MB  %d thr  hot %8.1f us %5.1f GB/s  cold %8.1f us "
               "%5.1f GB/s (%3.0f%% of peak)  %d tok %7.1f us/tok %5.1f GFLOP/s\n",
               tt->name, (long long)mc->k, (long long)mc->rows, (double)bytes / 1e6, nth, 1e6 / hot,
               hot * (double)bytes * 1e-9, 1e6 / cold, cold * (double)bytes * 1e-9,
               100.0 * cold * (double)bytes * 1e-9 / peak[nth - 1], PREFILL_TOKENS,
               1e6 / pre / PREFILL_TOKENS, pre * flop * 1e-9);
        b.iface->free(b.ctx);
    }
    free(w);
    free(tmp);
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    const double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    rf_quant_init();
    printf("cpu kernels: %s, online cpus %d\n", rf_cpu_has_avx2() ? "avx2" : "scalar",
           rf_cpu_count());
    double peak[2];
    for (int nth = 1; nth <= 2; nth++) {
        peak[nth - 1] = peak_read_gbs(nth, seconds);
        printf("peak read bandwidth, %d thread%s: %.1f GB/s\n", nth, nth > 1 ? "s" : "",
               peak[nth - 1]);
    }
    const struct mm_case cases[] = {
        {RF_TYPE_Q4_1, 576, 1536}, {RF_TYPE_Q4_1, 1536, 576}, {RF_TYPE_Q4_1, 576, 49152},
        {RF_TYPE_Q8_0, 576, 1536}, {RF_TYPE_Q8_0, 1536, 576}, {RF_TYPE_Q8_0, 576, 49152},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) bench_case(&cases[i], seconds, peak);
    return 0;
}

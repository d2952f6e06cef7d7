/* Micro-benchmark of the quantized dot products (not a test): one matrix-vector
 * product, single thread, weights times one activation row, reported as GB/s of
 * weight bytes next to the measured read bandwidth of L1/L2/L3/DRAM.
 *
 * Build (after building the library in build/):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -mavx2 -Iinclude -Isrc tools/bench_quant.c \
 *      build/librocmforge.a -lpthread -lm -o /tmp/bench_quant
 * Run: /tmp/bench_quant [seconds per measurement, default 0.3]
 * With RF_BENCH_GGML=/path/to/libggml-cpu.so set, the same products also run
 * through that library's CPU type traits (same block layouts, same type ids), for
 * a side-by-side comparison on this machine.
 *
 * "ours" is vec_dot per row; the batched line vec_dot per (row, token) or
 * vec_dot_multi per row (prefill).
 * "hot": the same matrix every call (it sits in L2/L3); "stream": a different
 * copy each call, copies totalling 256 MiB, so weights come from DRAM. Cache-hot
 * figures are the best single call (matrix-vector product, buffer pass, quantizer
 * call) within the measurement time: on a shared machine the minimum is the least
 * disturbed run. DRAM figures (stream, 256M read) are means. CLOCK_MONOTONIC. */
#include <dlfcn.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fp16.h"
#include "quant/quant.h"

static double min_seconds = 0.3;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* ---- optional: the reference engine's CPU kernels, loaded at run time ---- */
typedef void (*ggml_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y, size_t by,
                            int nrc);
struct ggml_traits_cpu {
    void (*from_float)(const float *x, void *y, int64_t n);
    ggml_dot_fn vec_dot;
    int vec_dot_type;
    int64_t nrows;
};
static const struct ggml_traits_cpu *(*ggml_traits)(int type);

static void load_ggml(void)
{
    const char *path = getenv("RF_BENCH_GGML");
    if (!path) return;
    void *h = dlopen(path, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return;
    }
    void (*init)(void) = (void (*)(void))dlsym(h, "ggml_cpu_init");
    ggml_traits = (const struct ggml_traits_cpu *(*)(int))dlsym(h, "ggml_get_type_traits_cpu");
    if (!init || !ggml_traits) {
        ggml_traits = NULL;
        return;
    }
    init();
}

static ggml_dot_fn ggml_dot;
static void ggml_dot_adapter(int64_t n, float *s, const void *x, const void *y)
{
    ggml_dot((int)n, s, 0, x, 0, y, 0, 1);
}

/* ---- roofline: streaming read of n bytes, 4 independent AVX2 chains ---- */
static __m256i read_sum(const uint8_t *p, size_t n)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a = _mm256_add_epi32(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi32(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
        c = _mm256_add_epi32(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
        d = _mm256_add_epi32(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    return _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
}

static double read_bw(size_t n)
{
    uint8_t *p = aligned_alloc(64, n);
    memset(p, 1, n);
    volatile int sink = 0;
    double best = 1e30, total = 0;
    long passes = 0;
    const double t_end = now() + min_seconds;
    read_sum(p, n);
    do {
        const double t0 = now();
        sink += _mm256_extract_epi32(read_sum(p, n), 0);
        const double t = now() - t0;
        best = t < best ? t : best;
        total += t;
        passes++;
    } while (now() < t_end);
    (void)sink;
    free(p);
    /* cache-sized buffers: best pass; DRAM-sized: the mean */
    return (double)n / (n > (64u << 20) ? total / (double)passes : best) / 1e9;
}

/* ---- matrix-vector product ---- */
static void fill_weights(enum rf_type t, uint8_t *w, size_t bytes)
{
    const struct rf_type_traits *tt = rf_type_traits(t);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rnd();
    /* keep f16 scales finite: d (and m) at the block start for the types benched */
    for (size_t b = 0; b + tt->type_size <= bytes; b += tt->type_size) {
        const uint16_t h = rf_fp32_to_fp16(0.01f * (float)(1 + rnd() % 100));
        memcpy(w + b, &h, 2);
        if (t == RF_TYPE_Q4_1 || t == RF_TYPE_Q5_1 || t == RF_TYPE_Q4_K || t == RF_TYPE_Q5_K) memcpy(w + b + 2, &h, 2);
        if (t == RF_TYPE_Q6_K) memcpy(w + b + 208, &h, 2);
    }
}

#define NTOK 8 /* activation rows of the batched (prefill-like) measurement */

struct mv {
    enum rf_type type;
    rf_vec_dot_multi_fn multi; /* batched: NULL = vec_dot per (row, token) */
    int ntok;
    int64_t rows, cols;
    size_t wbytes;   /* one matrix */
    int copies;      /* distinct matrices cycled through */
    uint8_t *w;
    void *act;
    float *out;
};

/* Hot (one copy): the best (shortest) single matrix-vector product over
 * min_seconds, the least disturbed run on a shared machine. Streaming: the mean. */
static double run_mv(const struct mv *m, rf_vec_dot_fn dot)
{
    const size_t row = rf_row_size(m->type, m->cols);
    const size_t as = rf_row_size(rf_type_traits(m->type)->vec_dot_type, m->cols);
    double best = 1e30, total = 0;
    long calls = 0;
    const double t_end = now() + min_seconds;
    do {
        const uint8_t *w = m->w + (size_t)(calls % m->copies) * m->wbytes;
        const double t0 = now();
        for (int64_t r = 0; r < m->rows; r++) {
            const uint8_t *wr = w + (size_t)r * row;
            if (m->multi) m->multi(m->cols, &m->out[r], (size_t)m->rows, wr, m->act, as, m->ntok);
            else
                for (int tk = 0; tk < m->ntok; tk++)
                    dot(m->cols, &m->out[(size_t)tk * m->rows + r], wr, (const uint8_t *)m->act + (size_t)tk * as);
        }
        const double t = now() - t0;
        best = t < best ? t : best;
        total += t;
        calls++;
    } while (now() < t_end || (m->copies > 1 && calls < m->copies));
    /* streaming: the mean over at least one pass through all copies */
    const double per_call = m->copies > 1 ? total / (double)calls : best;
    return (double)m->wbytes * (double)m->ntok / per_call / 1e9;
}

static void bench_mv(enum rf_type t, int64_t rows, int64_t cols)
{
    const struct rf_type_traits *live = rf_type_traits(t), *ref = rf_type_traits_ref(t);
    const struct rf_type_traits *act = rf_type_traits(live->vec_dot_type);
    struct mv m = {.type = t, .rows = rows, .cols = cols, .ntok = 1};
    m.wbytes = rf_row_size(t, cols) * (size_t)rows;
    const int stream_copies = (int)((256u << 20) / m.wbytes) + 1;
    m.w = malloc(m.wbytes * (size_t)stream_copies);
    fill_weights(t, m.w, m.wbytes * (size_t)stream_copies);
    float *x = malloc((size_t)cols * 4);
    const size_t as = rf_row_size(live->vec_dot_type, cols);
    m.act = malloc(as * NTOK);
    for (int tk = 0; tk < NTOK; tk++) {
        for (int64_t i = 0; i < cols; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
        act->from_float(x, (uint8_t *)m.act + (size_t)tk * as, cols);
    }
    m.out = malloc((size_t)rows * NTOK * 4);
    m.copies = 1;
    const double hot_ref = run_mv(&m, ref->vec_dot);
    const double hot = run_mv(&m, live->vec_dot);
    double g_hot = 0, g_stream = 0;
    const struct ggml_traits_cpu *g = ggml_traits ? ggml_traits((int)t) : NULL;
    if (g && g->vec_dot && g->vec_dot_type == (int)live->vec_dot_type) {
        ggml_dot = g->vec_dot;
        g_hot = run_mv(&m, ggml_dot_adapter);
    }
    m.copies = stream_copies;
    const double stream = run_mv(&m, live->vec_dot);
    if (g_hot > 0) g_stream = run_mv(&m, ggml_dot_adapter);
    printf("%-5s x %-5s %5lld x %-5lld (%6.1f KiB)  ref %5.2f | hot: ours %6.2f", live->name, act->name,
           (long long)rows, (long long)cols, (double)m.wbytes / 1024.0, hot_ref, hot);
    if (g_hot > 0) printf(" ggml %6.2f", g_hot);
    printf(" | stream: ours %5.2f", stream);
    if (g_hot > 0) printf(" ggml %5.2f", g_stream);
    printf(" GB/s\n");
    /* batched: NTOK activation rows against the hot matrix, weight bytes x tokens / s */
    m.copies = 1;
    m.ntok = NTOK;
    const double b_dot = run_mv(&m, live->vec_dot);
    double b_multi = 0, b_g = 0;
    if (live->vec_dot_multi) {
        m.multi = live->vec_dot_multi;
        b_multi = run_mv(&m, live->vec_dot);
        m.multi = NULL;
    }
    if (g_hot > 0) b_g = run_mv(&m, ggml_dot_adapter);
    printf("      %d tokens (weight bytes x tokens / s): ours vec_dot %6.2f", NTOK, b_dot);
    if (b_multi > 0) printf(" vec_dot_multi %6.2f", b_multi);
    if (b_g > 0) printf(" ggml %6.2f", b_g);
    printf(" GB/s\n");
    free(m.out);
    free(m.act);
    free(x);
    free(m.w);
}

/* ---- agreement with the reference engine's kernels (when loaded) ---- */
static void agreement(enum rf_type t)
{
    const struct ggml_traits_cpu *g = ggml_traits ? ggml_traits((int)t) : NULL;
    const struct rf_type_traits *live = rf_type_traits(t);
    if (!g || !g->vec_dot || g->vec_dot_type != (int)live->vec_dot_type) return;
    const struct rf_type_traits *act = rf_type_traits(live->vec_dot_type);
    const struct ggml_traits_cpu *ga = ggml_traits((int)live->vec_dot_type);
    const int64_t n = 1536, rows = 64;
    const size_t wb = rf_row_size(t, n), ab = rf_row_size(live->vec_dot_type, n);
    uint8_t *w = malloc(wb * rows), *ya = malloc(ab), *yb = malloc(ab);
    float *x = malloc((size_t)n * 4), *wf = malloc((size_t)n * 4);
    fill_weights(t, w, wb * rows);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f * (float)(1 + i % 5);
    act->from_float(x, ya, n);
    size_t diff = 0;
    if (ga && ga->from_float) {
        ga->from_float(x, yb, n);
        for (size_t i = 0; i < ab; i++) diff += ya[i] != yb[i];
    }
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        float s_ours, s_g;
        live->vec_dot(n, &s_ours, w + (size_t)r * wb, ya);
        g->vec_dot((int)n, &s_g, 0, w + (size_t)r * wb, 0, ya, 0, 1);
        live->to_float(w + (size_t)r * wb, wf, n);
        double mag = 0;
        for (int64_t i = 0; i < n; i++) mag += fabs((double)wf[i] * x[i]);
        const double rel = fabs((double)s_ours - s_g) / (mag > 0 ? mag : 1);
        worst = rel > worst ? rel : worst;
    }
    printf("agreement %-5s: vec_dot max |ours - ggml| / sum|w*x| = %.2g; %s from_float: %zu of %zu bytes differ\n",
           live->name, worst, act->name, diff, ab);
    free(wf);
    free(x);
    free(yb);
    free(ya);
    free(w);
}

/* ---- activation quantizers ---- */
static void bench_from_float(enum rf_type t, int64_t n)
{
    const struct rf_type_traits *live = rf_type_traits(t), *ref = rf_type_traits_ref(t);
    float *x = malloc((size_t)n * 4);
    void *y = malloc(rf_row_size(t, n));
    for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    double res[3] = {0, 0, 0};
    const struct ggml_traits_cpu *g = ggml_traits ? ggml_traits((int)t) : NULL;
    const struct rf_type_traits *impl[2] = {ref, live};
    for (int k = 0; k < 3; k++) {
        void (*fn)(const float *, void *, int64_t) = k < 2 ? impl[k]->from_float : g ? g->from_float : NULL;
        if (!fn) continue;
        double best = 1e30;
        const double t_end = now() + min_seconds;
        do {
            const double t0 = now();
            fn(x, y, n);
            const double dt = now() - t0;
            best = dt < best ? dt : best;
        } while (now() < t_end);
        res[k] = best * 1e9;
    }
    printf("from_float %-5s n=%-5lld  ref %8.1f ns  ours %7.1f ns (%5.2f GB/s of f32 in)", live->name,
           (long long)n, res[0], res[1], (double)n * 4 / res[1]);
    if (res[2] > 0) printf("  ggml %7.1f ns", res[2]);
    printf("\n");
    free(y);
    free(x);
}

int main(int argc, char **argv)
{
    if (argc > 1) min_seconds = atof(argv[1]);
    rf_quant_init();
    load_ggml();
    printf("AVX2 kernels: %s\n", rf_cpu_has_avx2() ? "yes" : "no");
    printf("read bandwidth, one thread:");
    const size_t sizes[] = {16u << 10, 256u << 10, 768u << 10, 8u << 20, 256u << 20};
    const char *names[] = {"16K(L1)", "256K(L2)", "768K(L2)", "8M(L3)", "256M(DRAM)"};
    for (int i = 0; i < 5; i++) printf("  %s %.1f", names[i], read_bw(sizes[i]));
    printf(" GB/s\n");
    const enum rf_type types[] = {RF_TYPE_Q4_1, RF_TYPE_Q8_0, RF_TYPE_Q4_0, RF_TYPE_Q5_0, RF_TYPE_Q5_1,
                                  RF_TYPE_Q4_K, RF_TYPE_Q6_K, RF_TYPE_F16, RF_TYPE_F32};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        const int k = rf_type_traits(types[i])->block_size == 256;
        bench_mv(types[i], 1536, k ? 768 : 576);
        bench_mv(types[i], 576, 1536);
    }
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) agreement(types[i]);
    bench_from_float(RF_TYPE_Q8_0, 576);
    bench_from_float(RF_TYPE_Q8_1, 576);
    bench_from_float(RF_TYPE_Q8_0, 1536);
    bench_from_float(RF_TYPE_Q8_1, 1536);
    bench_from_float(RF_TYPE_Q8_K, 1536);
    bench_from_float(RF_TYPE_F16, 1536);
    return 0;
}

/* The GPU backend's own machinery: device sampling against a double-precision model
 * of the host sampler's chain, step capture and replay, out-of-memory messages, and
 * the device memory that weights take. Exit 0 pass, 1 fail, 77 no usable GPU.
 * (Products and row gathers are checked op by op in test_backend_ops.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/gpu/gpu.h"
#include "quant/quant.h"

static int failures, checks;

static void check(bool ok, const char *what)
{
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s (%s)\n", what, rf_last_error());
    }
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static double unit(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}
static float normal(void)
{
    return (float)(sqrt(-2.0 * log(unit() + 1e-300)) * cos(6.283185307179586 * unit()));
}

/* ---- sampling ---- */

struct cand {
    float l;
    int32_t id;
};

static int by_order(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    const float lx = isnan(x->l) ? -INFINITY : x->l, ly = isnan(y->l) ? -INFINITY : y->l;
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The chain of backend.h in doubles; *margin: distance of u * total from the nearest
 * cumulative boundary, relative to the total (a draw that close may round either way). */
static int32_t ref_sample(const float *lg, int32_t n, const struct rf_sample_params *sp, double *margin)
{
    struct cand *c = malloc((size_t)n * sizeof *c);
    for (int32_t i = 0; i < n; i++) c[i] = (struct cand){isnan(lg[i]) ? -INFINITY : lg[i], i};
    qsort(c, (size_t)n, sizeof *c, by_order);
    *margin = 1;
    if (!(sp->temperature > 0)) {
        const int32_t id = c[0].id;
        free(c);
        return id;
    }
    int32_t m = sp->top_k > 0 && sp->top_k < n ? sp->top_k : n;
    const double mx = c[0].l;
    if (sp->top_p < 1.0f) {
        double sum = 0, cum = 0;
        for (int32_t i = 0; i < m; i++) sum += exp(c[i].l - mx);
        for (int32_t i = 0; i < m; i++) {
            cum += exp(c[i].l - mx) / sum;
            if (fabs(cum - sp->top_p) < *margin) *margin = fabs(cum - sp->top_p);
            if (cum >= sp->top_p) {
                m = i + 1;
                break;
            }
        }
    }
    double sum = 0, cum = 0;
    for (int32_t i = 0; i < m; i++) sum += exp((c[i].l - mx) / sp->temperature);
    const double u = sp->u * sum;
    int32_t pick = c[m - 1].id;
    for (int32_t i = 0; i < m; i++) {
        cum += exp((c[i].l - mx) / sp->temperature);
        if (fabs(cum - u) / sum < *margin) *margin = fabs(cum - u) / sum;
        if (cum > u) {
            pick = c[i].id;
            break;
        }
    }
    free(c);
    return pick;
}

static void test_sample(struct rf_backend *g)
{
    const struct rf_backend_i *be = g->iface;
    const int32_t sizes[] = {1, 7, 1000, 32001, 128256};
    /* RF_GPU_TEST_QUICK: the small sizes only (for the slow sanitizer tools) */
    const size_t n_sizes = getenv("RF_GPU_TEST_QUICK") ? 3 : sizeof sizes / sizeof *sizes;
    int agree = 0, close = 0, draws = 0;
    for (size_t si = 0; si < n_sizes; si++) {
        const int32_t n = sizes[si];
        float *lg = malloc((size_t)n * sizeof *lg);
        float *d = be->alloc(g->ctx, (size_t)n * sizeof *lg);
        for (int rep = 0; rep < 12; rep++) {
            for (int32_t i = 0; i < n; i++) lg[i] = 3.0f * normal();
            if (rep % 3 == 1 && n > 4) { /* ties and a NaN */
                lg[n / 2] = lg[n / 3] = 50.0f;
                lg[1] = NAN;
            }
            check(be->copy_in(g->ctx, d, lg, (size_t)n * sizeof *lg) == RF_OK, "copy_in logits");
            const struct rf_sample_params ps[] = {
                {0.0f, 0, 1.0f, 0.0f},
                {0.8f, 40, 0.95f, (float)unit()},
                {1.0f, 0, 1.0f, (float)unit()},
                {1.3f, 0, 0.5f, (float)unit()},
                {0.5f, 5, 1.0f, (float)unit()},
                {1.0f, 1, 1.0f, (float)unit()},
            };
            for (size_t p = 0; p < sizeof ps / sizeof *ps; p++) {
                int32_t tok = -1;
                double margin;
                const rf_status s = be->sample(g->ctx, d, n, &ps[p], 0, &tok);
                const int32_t want = ref_sample(lg, n, &ps[p], &margin);
                check(s == RF_OK && tok >= 0 && tok < n, "sample runs and gives an id");
                if (ps[p].temperature <= 0) {
                    char what[96];
                    snprintf(what, sizeof what, "greedy n=%d: got %d want %d", n, tok, want);
                    check(tok == want, what);
                    continue;
                }
                draws++;
                if (tok == want) agree++;
                else if (margin < 1e-4) close++;
                else printf("  draw n=%d T=%.2f k=%d p=%.2f u=%.4f: got %d want %d (margin %.2g)\n",
                            n, ps[p].temperature, ps[p].top_k, ps[p].top_p, ps[p].u, tok, want, margin);
            }
        }
        be->release(g->ctx, d);
        free(lg);
    }
    printf("sample: %d of %d draws as the reference, %d more within rounding of a boundary\n",
           agree, draws, close);
    check(agree + close == draws, "every draw matches the reference chain");
}

/* ---- step capture ---- */

static void test_steps(struct rf_backend *g)
{
    const struct rf_backend_i *be = g->iface;
    const int64_t k = 512, rows = 300;
    float *w = malloc((size_t)(k * rows) * sizeof *w), *x = malloc((size_t)k * sizeof *x);
    float *y = malloc((size_t)rows * sizeof *y);
    for (int64_t i = 0; i < k * rows; i++) w[i] = normal();
    struct rf_tensor t = {.name = "w", .type = RF_TYPE_F32, .ne = {k, rows, 1, 1}, .data = w,
                          .nbytes = (size_t)(k * rows) * sizeof *w};
    check(be->load_tensor(g->ctx, &t) == RF_OK, "load_tensor");
    float *dx = be->alloc(g->ctx, (size_t)k * 4), *dy = be->alloc(g->ctx, (size_t)rows * 4);
    const uint64_t key = ((uint64_t)7 << 32) | 1;
    for (int run = 0; run < 4; run++) {
        for (int64_t i = 0; i < k; i++) x[i] = normal();
        check(be->copy_in(g->ctx, dx, x, (size_t)k * 4) == RF_OK, "copy_in x");
        bool replayed = true;
        check(be->step_begin(g->ctx, key, &replayed) == RF_OK, "step_begin");
        check(replayed == (run == 1 || run == 3), "replayed exactly when recorded and not forgotten");
        if (!replayed) {
            check(be->matmul(g->ctx, &t, dx, k, dy, 1) == RF_OK, "matmul in a step");
            be->scale(g->ctx, dy, 0.5f, rows);
            check(be->step_end(g->ctx) == RF_OK, "step_end");
        }
        check(be->copy_out(g->ctx, y, dy, (size_t)rows * 4) == RF_OK, "copy_out y");
        double err = 0, ref2 = 0;
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t i = 0; i < k; i++) s += (double)w[r * k + i] * x[i];
            s *= 0.5;
            err += (y[r] - s) * (y[r] - s);
            ref2 += s * s;
        }
        char what[64];
        snprintf(what, sizeof what, "step run %d output (nmse %.2g)", run, err / ref2);
        check(err / ref2 < 1e-10, what);
        if (run == 1) be->step_forget(g->ctx, 7);
    }
    be->release(g->ctx, dx);
    be->release(g->ctx, dy);
    be->free_tensor(g->ctx, &t);
    free(w), free(x), free(y);
}

/* ---- memory ---- */

static void test_memory(struct rf_backend *g)
{
    const struct rf_backend_i *be = g->iface;
    void *p = be->alloc(g->ctx, (size_t)1 << 50);
    check(p == NULL, "an impossible allocation fails");
    check(strstr(rf_last_error(), "free") && strstr(rf_last_error(), "asked"),
          "the out-of-memory message says what was asked and what is free");
    if (p) be->release(g->ctx, p);

    /* tensors of 7B-like odd sizes: device memory within 1.02x of their bytes */
    enum { N = 40 };
    struct rf_tensor t[N];
    const size_t row = rf_row_size(RF_TYPE_Q4_0, 4096);
    uint8_t *host = calloc(11008, row);
    const size_t before = rf_backend_gpu_weight_bytes(g);
    size_t sum = 0;
    for (int i = 0; i < N; i++) {
        const int64_t rows = i % 3 == 0 ? 11008 : i % 3 == 1 ? 4096 : 1;
        t[i] = (struct rf_tensor){.name = "t", .type = RF_TYPE_Q4_0, .ne = {4096, rows, 1, 1},
                                  .data = host, .nbytes = row * (size_t)rows};
        check(be->load_tensor(g->ctx, &t[i]) == RF_OK, "load_tensor");
        sum += t[i].nbytes;
    }
    const size_t used = rf_backend_gpu_weight_bytes(g) - before;
    printf("weights: %zu bytes take %zu bytes of device memory (%.4fx)\n", sum, used,
           (double)used / (double)sum);
    check((double)used <= 1.02 * (double)sum, "weight memory within 1.02x of the bytes");
    for (int i = 0; i < N; i++) be->free_tensor(g->ctx, &t[i]);
    free(host);

    double bw = 0;
    check(rf_gpu_copy_bandwidth(0, (size_t)256 << 20, &bw) == RF_OK && bw > 1e10,
          "copy bandwidth measured");
    printf("device-to-device copy: %.3g B/s (read + written)\n", bw);
}

/* ---- perf: products by batch size (GB/s of weights against the copy bandwidth for
 * the matrix-vector sizes, TFLOP/s for the GEMM sizes) ---- */

#define COPIES 6 /* weight copies rotated past the 50 MB L2 */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void perf_type(struct rf_backend *g, enum rf_type type, int64_t rows, int64_t k, double bw,
                      int64_t max_n)
{
    const struct rf_backend_i *be = g->iface;
    const size_t bytes = rf_row_size(type, k) * (size_t)rows;
    uint8_t *host = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) host[i] = (uint8_t)(unit() * 256);
    /* random bytes: the kernels' speed does not depend on the values */
    struct rf_tensor w[COPIES];
    for (int c = 0; c < COPIES; c++) {
        w[c] = (struct rf_tensor){.name = "w", .type = type, .ne = {k, rows, 1, 1}, .data = host,
                                  .nbytes = bytes};
        if (be->load_tensor(g->ctx, &w[c]) != RF_OK) {
            printf("perf: %s\n", rf_last_error());
            return;
        }
    }
    const int64_t toks[] = {1, 2, 4, 8, 16, 32, 64, 128, 512};
    const int64_t max_tok = 512;
    float *x = be->alloc(g->ctx, (size_t)(max_tok * k) * 4), *y = be->alloc(g->ctx, (size_t)(max_tok * rows) * 4);
    float *hx = malloc((size_t)(max_tok * k) * 4);
    for (int64_t i = 0; i < max_tok * k; i++) hx[i] = normal();
    be->copy_in(g->ctx, x, hx, (size_t)(max_tok * k) * 4);
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        const int64_t n = toks[ti];
        if (n > max_n) break;
        const int reps = n <= 16 ? 60 : 12;
        for (int i = 0; i < 6; i++) be->matmul(g->ctx, &w[i % COPIES], x, k, y, n);
        be->copy_out(g->ctx, hx, y, 4);
        const double t0 = now_s();
        for (int i = 0; i < reps; i++) be->matmul(g->ctx, &w[i % COPIES], x, k, y, n);
        rf_status s = be->copy_out(g->ctx, hx, y, 4);
        const double dt = (now_s() - t0) / reps;
        if (s != RF_OK) printf("perf: %s\n", rf_last_error());
        printf("| %s | %lld x %lld | %3lld | %8.1f us | %7.1f GB/s | %.2f of copy | %7.1f TFLOP/s |\n",
               rf_type_name(type), (long long)rows, (long long)k, (long long)n, dt * 1e6,
               (double)bytes / dt / 1e9, (double)bytes / dt / bw, 2.0 * rows * k * n / dt / 1e12);
    }
    for (int c = 0; c < COPIES; c++) be->free_tensor(g->ctx, &w[c]);
    be->release(g->ctx, x);
    be->release(g->ctx, y);
    free(host), free(hx);
}

/* mmq.cu, for tests and benchmarks: -1 lets rf_gpu_mmq choose its tile, 0.. forces one;
 * returns the number of tiles. */
int rf_gpu_mmq_force_tile(int tile);

/* Seconds per product of n tokens through the path now set (weights rotated over w[]). */
static double time_matmul(struct rf_backend *g, struct rf_tensor *w, const float *x, int64_t k,
                          float *y, int64_t n, float *host)
{
    const struct rf_backend_i *be = g->iface;
    const int reps = n <= 32 ? 40 : 12;
    rf_status s = RF_OK;
    for (int i = 0; i < 6 && s == RF_OK; i++) s = be->matmul(g->ctx, &w[i % COPIES], x, k, y, n);
    if (s == RF_OK) s = be->copy_out(g->ctx, host, y, 4);
    const double t0 = now_s();
    for (int i = 0; i < reps && s == RF_OK; i++) s = be->matmul(g->ctx, &w[i % COPIES], x, k, y, n);
    if (s == RF_OK) s = be->copy_out(g->ctx, host, y, 4);
    if (s != RF_OK) {
        printf("perf: %s\n", rf_last_error());
        return NAN;
    }
    return (now_s() - t0) / reps;
}

/* The batched products by path: int8 tensor cores (the tile rf_gpu_mmq picks, then each
 * tile forced), dequantize + GEMM, matrix-vector passes of 8 tokens; microseconds per
 * product, host-timed (the activation quantizer's launch included). */
static void perf_paths(struct rf_backend *g, enum rf_type type, int64_t rows, int64_t k)
{
    const struct rf_backend_i *be = g->iface;
    const size_t bytes = rf_row_size(type, k) * (size_t)rows;
    uint8_t *host = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) host[i] = (uint8_t)(unit() * 256);
    struct rf_tensor w[COPIES];
    int loaded = 0;
    for (; loaded < COPIES; loaded++) {
        w[loaded] = (struct rf_tensor){.name = "w", .type = type, .ne = {k, rows, 1, 1},
                                       .data = host, .nbytes = bytes};
        if (be->load_tensor(g->ctx, &w[loaded]) != RF_OK) break;
    }
    const int64_t toks[] = {9, 16, 32, 64, 128, 256, 512}, max_tok = 512;
    float *x = be->alloc(g->ctx, (size_t)(max_tok * k) * 4);
    float *y = be->alloc(g->ctx, (size_t)(max_tok * rows) * 4);
    float *hx = malloc((size_t)(max_tok * k) * 4);
    for (int64_t i = 0; i < max_tok * k; i++) hx[i] = normal();
    if (loaded < COPIES || !x || !y || be->copy_in(g->ctx, x, hx, (size_t)(max_tok * k) * 4) != RF_OK) {
        printf("perf: %s\n", rf_last_error());
        goto done;
    }
    const int n_tiles = rf_gpu_mmq_force_tile(-1);
    printf("| type | rows x k | tok | mmq us | tiles 0..%d us | gemm us | mmv us | best |\n"
           "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |\n",
           n_tiles - 1);
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        const int64_t n = toks[ti];
        rf_backend_gpu_set_matmul_path(g, RF_GPU_MATMUL_MMQ);
        const double mmq = time_matmul(g, w, x, k, y, n, hx);
        char tiles[128] = "";
        for (int t = 0; t < n_tiles; t++) {
            rf_gpu_mmq_force_tile(t);
            const double tt = time_matmul(g, w, x, k, y, n, hx);
            snprintf(tiles + strlen(tiles), sizeof tiles - strlen(tiles), "%s%.1f", t ? " / " : "",
                     tt * 1e6);
        }
        rf_gpu_mmq_force_tile(-1);
        rf_backend_gpu_set_matmul_path(g, RF_GPU_MATMUL_GEMM);
        const double gemm = time_matmul(g, w, x, k, y, n, hx);
        rf_backend_gpu_set_matmul_path(g, RF_GPU_MATMUL_MMV);
        const double mmv = time_matmul(g, w, x, k, y, n, hx);
        const char *best = mmq <= gemm && mmq <= mmv ? "mmq" : gemm <= mmv ? "gemm" : "mmv";
        printf("| %s | %lld x %lld | %3lld | %8.1f | %s | %8.1f | %8.1f | %s |\n",
               rf_type_name(type), (long long)rows, (long long)k, (long long)n, mmq * 1e6, tiles,
               gemm * 1e6, mmv * 1e6, best);
    }
done:
    rf_backend_gpu_set_matmul_path(g, RF_GPU_MATMUL_AUTO);
    for (int c = 0; c < loaded; c++) be->free_tensor(g->ctx, &w[c]);
    if (x) be->release(g->ctx, x);
    if (y) be->release(g->ctx, y);
    free(host), free(hx);
}

static void run_perf(struct rf_backend *g, const char *only)
{
    if (only && strcmp(only, "mmv") == 0) { /* the decode products of a 7B layer, 1..8 tokens */
        double bw = 0;
        rf_gpu_copy_bandwidth(0, 0, &bw);
        printf("device-to-device copy: %.4g B/s (1 GiB, read + written)\n", bw);
        const int64_t shapes[][2] = {{4096, 4096}, {12288, 4096}, {11008, 4096}, {22016, 4096}, {4096, 11008}};
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
            perf_type(g, RF_TYPE_Q4_0, shapes[i][0], shapes[i][1], bw, 8);
        perf_type(g, RF_TYPE_Q8_0, 11008, 4096, bw, 8);
        perf_type(g, RF_TYPE_Q4_K, 11008, 4096, bw, 8);
        return;
    }
    if (only) { /* one type: 11008 x 4096 by batch, then the paths of both FFN shapes */
        for (int t = 0; t < RF_TYPE_COUNT; t++)
            if (rf_type_traits(t) && strcasecmp(rf_type_name(t), only) == 0) {
                perf_type(g, (enum rf_type)t, 11008, 4096, 1e12, 512);
                perf_paths(g, (enum rf_type)t, 11008, 4096);
                perf_paths(g, (enum rf_type)t, 4096, 11008);
            }
        return;
    }
    double bw = 0;
    rf_gpu_copy_bandwidth(0, 0, &bw);
    printf("device-to-device copy: %.4g B/s (1 GiB, read + written)\n", bw);
    printf("| type | rows x k | tok | time | weights GB/s | share | TFLOP/s |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    const enum rf_type types[] = {RF_TYPE_Q4_0, RF_TYPE_Q4_1, RF_TYPE_Q5_0, RF_TYPE_Q8_0,
                                  RF_TYPE_Q4_K, RF_TYPE_Q6_K, RF_TYPE_F16};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) perf_type(g, types[i], 11008, 4096, bw, 512);
    perf_type(g, RF_TYPE_Q4_0, 4096, 11008, bw, 512);
    perf_type(g, RF_TYPE_Q4_0, 4096, 4096, bw, 512);
    const enum rf_type batched[] = {RF_TYPE_Q4_0, RF_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof batched / sizeof *batched; i++) {
        perf_paths(g, batched[i], 11008, 4096);
        perf_paths(g, batched[i], 4096, 11008);
    }
}

int main(int argc, char **argv)
{
    struct rf_backend g;
    if (rf_backend_gpu_init(0, &g) != RF_OK) {
        printf("skip: %s\n", rf_last_error());
        return 77;
    }
    printf("device: %s\n", rf_backend_gpu_device_name(&g));
    if (argc > 1 && strcmp(argv[1], "perf") == 0) {
        run_perf(&g, argc > 2 ? argv[2] : NULL);
        g.iface->free(g.ctx);
        return 0;
    }
    test_sample(&g);
    test_steps(&g);
    if (!getenv("RF_GPU_TEST_QUICK")) test_memory(&g);
    g.iface->free(g.ctx);
    printf("%s: %d checks, %d failed\n", failures ? "FAIL" : "ok", checks, failures);
    return failures ? 1 : 0;
}

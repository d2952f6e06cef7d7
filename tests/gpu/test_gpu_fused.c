/* The GPU backend's fused ops against the unfused ops they replace, on the same GPU:
 * several products in one launch (matmul_multi, with and without adding into y),
 * rms_norm and the GLUs writing the next product's int8 input, rope_store. The
 * unfused ops are checked against the CPU in test_backend_ops; here the fused ones
 * must give the same bits (products adding on more than 4 tokens, where other kernels
 * than the matrix-vector ones take them: within 1e-6).
 * Exit 0 pass, 1 fail, 77 no usable GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/gpu/gpu.h"
#include "quant/quant.h"
#include "test_rng.h"

static int failures, checks;
static struct rf_backend g;

#define MUST(call)                                                                                 \
    do {                                                                                           \
        rf_status must_s_ = (call);                                                                \
        if (must_s_ != RF_OK) {                                                                    \
            printf("FAIL %s: %s\n", #call, rf_last_error());                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) exit(1);
    return p;
}

static float *rand_host(int64_t n, float s)
{
    float *h = xmalloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = s * rng_normal();
    return h;
}

static void *dev_dup(const void *h, size_t bytes)
{
    void *d = g.iface->alloc(g.ctx, bytes);
    if (!d) exit(1);
    MUST(g.iface->copy_in(g.ctx, d, h, bytes));
    return d;
}

static float *dev_rand(int64_t n, float s)
{
    float *h = rand_host(n, s);
    float *d = dev_dup(h, (size_t)n * sizeof *h);
    free(h);
    return d;
}

static void *host_of(const void *d, size_t bytes)
{
    void *h = xmalloc(bytes);
    MUST(g.iface->copy_out(g.ctx, h, d, bytes));
    return h;
}

/* Device buffers a and b: equal bits (tol 0) or within tol of max |a|. */
static void expect_same(const char *what, const void *a, const void *b, size_t n_floats,
                        double tol)
{
    float *x = host_of(a, n_floats * sizeof(float)), *y = host_of(b, n_floats * sizeof(float));
    double worst = 0, scale = 0;
    size_t differ = 0;
    for (size_t i = 0; i < n_floats; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) differ++;
        if (memcmp(&x[i], &y[i], sizeof x[i]) != 0) differ++;
        const double d = fabs((double)x[i] - y[i]);
        worst = d > worst ? d : worst;
        scale = fabs(x[i]) > scale ? fabs(x[i]) : scale;
    }
    const bool ok = tol == 0 ? differ == 0 : worst <= tol * scale;
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s: %zu of %zu differ, worst %.3g (max |x| %.3g)\n", what, differ, n_floats,
               worst, scale);
    }
    free(x);
    free(y);
}

/* An op that touches nothing a product reads, so xbuf's activations count as stale. */
static void bump(float *scratch) { g.iface->scale(g.ctx, scratch, 1.0f, 4); }

static struct rf_tensor weights(enum rf_type t, int64_t rows, int64_t k)
{
    const struct rf_type_traits *tr = rf_type_traits_ref(t);
    const size_t rb = rf_row_size(t, k), bytes = rb * (size_t)rows;
    uint8_t *w = xmalloc(bytes);
    float *x = rand_host(k, 1.0f);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < k; i++) x[i] = rng_normal();
        tr->from_float(x, w + (size_t)r * rb, k);
    }
    free(x);
    struct rf_tensor tw = {.name = "w", .type = t, .ne = {k, rows, 1, 1}, .data = w, .nbytes = bytes};
    MUST(g.iface->load_tensor(g.ctx, &tw));
    free(w);
    return tw;
}

/* ---- several products of one input ---- */

static void multi_case(const enum rf_type *types, const int64_t *rows, const bool *add, int n,
                       int64_t k, int64_t n_tok, float *scratch)
{
    struct rf_tensor w[4];
    struct rf_matmul_out outs[4];
    float *ref[4], *init[4];
    float *x = dev_rand(n_tok * k, 1.0f);
    for (int i = 0; i < n; i++) {
        w[i] = weights(types[i], rows[i], k);
        init[i] = dev_rand(n_tok * rows[i], 1.0f);
        outs[i] = (struct rf_matmul_out){&w[i], dev_rand(n_tok * rows[i], 1.0f), add[i]};
        MUST(g.iface->copy(g.ctx, outs[i].y, init[i], (size_t)(n_tok * rows[i]) * sizeof(float)));
        ref[i] = g.iface->alloc(g.ctx, (size_t)(n_tok * rows[i]) * sizeof(float));
        MUST(g.iface->matmul(g.ctx, &w[i], x, k, ref[i], n_tok));
        if (add[i]) {
            g.iface->add(g.ctx, init[i], ref[i], n_tok * rows[i]);
            MUST(g.iface->copy(g.ctx, ref[i], init[i], (size_t)(n_tok * rows[i]) * sizeof(float)));
        }
    }
    bump(scratch);
    MUST(g.iface->matmul_multi(g.ctx, outs, n, x, k, n_tok));
    for (int i = 0; i < n; i++) {
        char what[96];
        snprintf(what, sizeof what, "matmul_multi %s %lld x %lld, %lld tokens, out %d%s",
                 rf_type_name(types[i]), (long long)rows[i], (long long)k, (long long)n_tok, i,
                 add[i] ? " (add)" : "");
        /* Past 4 tokens y += may be the kernel's own (cuBLAS's beta), not a separate add. */
        expect_same(what, outs[i].y, ref[i], (size_t)(n_tok * rows[i]), n_tok > 4 ? 1e-6 : 0);
        g.iface->release(g.ctx, outs[i].y);
        g.iface->release(g.ctx, ref[i]);
        g.iface->release(g.ctx, init[i]);
        g.iface->free_tensor(g.ctx, &w[i]);
    }
    g.iface->release(g.ctx, x);
}

static void test_multi(float *scratch)
{
    const enum rf_type qkv[3] = {RF_TYPE_Q4_0, RF_TYPE_Q4_0, RF_TYPE_Q4_0};
    const int64_t qkv_rows[3] = {256, 64, 66};
    const bool none[3] = {false, false, false};
    const enum rf_type mixed[3] = {RF_TYPE_Q8_0, RF_TYPE_Q8_0, RF_TYPE_Q4_1};
    const int64_t mixed_rows[3] = {130, 31, 96};
    const bool some[3] = {false, true, true};
    const enum rf_type one[1] = {RF_TYPE_Q5_0};
    const int64_t one_rows[1] = {512};
    const bool add[1] = {true};
    const enum rf_type fl[2] = {RF_TYPE_F16, RF_TYPE_F16};
    const int64_t fl_rows[2] = {48, 17};
    const int64_t toks[] = {1, 2, 5, 8, 12, 40};
    for (size_t i = 0; i < sizeof toks / sizeof *toks; i++) {
        multi_case(qkv, qkv_rows, none, 3, 512, toks[i], scratch);
        multi_case(mixed, mixed_rows, some, 3, 256, toks[i], scratch);
        multi_case(one, one_rows, add, 1, 1024, toks[i], scratch);
        multi_case(fl, fl_rows, some, 2, 264, toks[i], scratch);
    }
}

/* ---- ops writing the next product's input ---- */

/* y = op(...) then the product of y, against the same with xbuf made stale between. */
static void quantized_input_case(const char *op, int64_t rows, int64_t n, enum rf_type t,
                                 float *scratch)
{
    struct rf_tensor w = weights(t, 96, n);
    float *a = dev_rand(rows * n, 2.0f), *b = dev_rand(rows * n, 1.0f);
    float *y = g.iface->alloc(g.ctx, (size_t)(rows * n) * sizeof(float));
    float *p1 = g.iface->alloc(g.ctx, (size_t)(rows * 96) * sizeof(float));
    float *p2 = g.iface->alloc(g.ctx, (size_t)(rows * 96) * sizeof(float));
    float *norm_w = dev_rand(n, 1.0f);
    struct rf_tensor nw = {.name = "norm", .type = RF_TYPE_F32, .ne = {n, 1, 1, 1}, .data = norm_w,
                           .nbytes = (size_t)n * sizeof(float)};
    for (int pass = 0; pass < 2; pass++) {
        if (strcmp(op, "rms_norm") == 0) MUST(g.iface->rms_norm(g.ctx, a, &nw, y, n, rows, 1e-5f));
        else if (strcmp(op, "swiglu") == 0) g.iface->swiglu(g.ctx, a, b, y, rows * n);
        else g.iface->geglu(g.ctx, a, b, y, rows * n);
        if (pass == 1) bump(scratch);
        MUST(g.iface->matmul(g.ctx, &w, y, n, pass ? p2 : p1, rows));
    }
    char what[96];
    snprintf(what, sizeof what, "%s -> %s product, %lld rows of %lld", op, rf_type_name(t),
             (long long)rows, (long long)n);
    expect_same(what, p1, p2, (size_t)(rows * 96), 0);
    void *bufs[] = {a, b, y, p1, p2, norm_w};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g.iface->release(g.ctx, bufs[i]);
    g.iface->free_tensor(g.ctx, &w);
}

static void test_quantized_inputs(float *scratch)
{
    const char *ops[] = {"rms_norm", "swiglu", "geglu"};
    const int64_t rows[] = {1, 3, 8, 13, 40};
    for (size_t o = 0; o < 3; o++)
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
            quantized_input_case(ops[o], rows[r], 576, RF_TYPE_Q4_1, scratch);
            quantized_input_case(ops[o], rows[r], 1024, RF_TYPE_Q8_0, scratch);
        }
}

/* ---- rope_store ---- */

static void rope_store_case(int n_tok, int n_head, int n_kv, int hd, int n_rot, bool neox)
{
    const int64_t qn = (int64_t)n_tok * n_head * hd, kn = (int64_t)n_tok * n_kv * hd;
    const int64_t width = (int64_t)n_kv * hd, pool_rows = 64;
    int32_t pos[64], slot[64];
    for (int t = 0; t < n_tok; t++) {
        pos[t] = rng_int(0, 5000);
        slot[t] = t % 7 == 3 ? -1 : (int32_t)((t * 5 + 1) % pool_rows);
    }
    float *q0 = rand_host(qn, 1.0f), *k0 = rand_host(kn, 1.0f), *v = rand_host(kn, 1.0f);
    float *q1 = dev_dup(q0, (size_t)qn * 4), *k1 = dev_dup(k0, (size_t)kn * 4);
    float *q2 = dev_dup(q0, (size_t)qn * 4), *k2 = dev_dup(k0, (size_t)kn * 4);
    float *vd = dev_dup(v, (size_t)kn * 4);
    int32_t *posd = dev_dup(pos, sizeof pos), *slotd = dev_dup(slot, sizeof slot);
    const size_t pool_bytes = (size_t)(pool_rows * width) * 2;
    uint16_t *zero = calloc(1, pool_bytes);
    uint16_t *kp1 = dev_dup(zero, pool_bytes), *vp1 = dev_dup(zero, pool_bytes);
    uint16_t *kp2 = dev_dup(zero, pool_bytes), *vp2 = dev_dup(zero, pool_bytes);
    const struct rf_rope_params rp = {.n_rot = n_rot, .freq_base = 10000.0f, .freq_scale = 0.5f,
                                      .neox = neox};
    g.iface->rope(g.ctx, q1, n_tok, n_head, hd, posd, &rp);
    g.iface->rope(g.ctx, k1, n_tok, n_kv, hd, posd, &rp);
    g.iface->kv_store(g.ctx, k1, vd, n_tok, width, slotd, kp1, vp1);
    g.iface->rope_store(g.ctx, q2, k2, vd, n_tok, n_head, n_kv, hd, posd, &rp, slotd, kp2, vp2);
    char what[96];
    snprintf(what, sizeof what, "rope_store %d tokens, %d/%d heads of %d, rot %d%s", n_tok,
             n_head, n_kv, hd, n_rot, neox ? " neox" : "");
    expect_same(what, q1, q2, (size_t)qn, 0);
    expect_same(what, k1, k2, (size_t)kn, 0);
    expect_same(what, kp1, kp2, pool_bytes / 4, 0);
    expect_same(what, vp1, vp2, pool_bytes / 4, 0);
    void *bufs[] = {q1, k1, q2, k2, vd, posd, slotd, kp1, vp1, kp2, vp2};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g.iface->release(g.ctx, bufs[i]);
    free(q0), free(k0), free(v), free(zero);
}

static void test_rope_store(void)
{
    rope_store_case(1, 32, 32, 128, 128, false);
    rope_store_case(5, 32, 8, 128, 128, true);
    rope_store_case(17, 9, 3, 64, 32, false);
    rope_store_case(64, 4, 1, 256, 256, true);
    rope_store_case(3, 6, 2, 80, 0, false);
}

int main(void)
{
    const rf_status s = rf_backend_gpu_init(0, &g);
    if (s != RF_OK) {
        printf("skip: %s\n", rf_last_error());
        return 77;
    }
    float *scratch = dev_rand(16, 1.0f);
    test_multi(scratch);
    test_quantized_inputs(scratch);
    test_rope_store();
    g.iface->release(g.ctx, scratch);
    g.iface->free(g.ctx);
    printf("test_gpu_fused: %d of %d checks failed\n", failures, checks);
    return failures ? 1 : 0;
}

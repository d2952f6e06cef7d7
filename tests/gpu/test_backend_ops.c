/* Every GPU backend op against the CPU backend on fresh random inputs of awkward
 * sizes, with a normalized-MSE threshold per op (sum (gpu - cpu)^2 / sum cpu^2).
 * GPU outputs are poisoned with NaN before each run and must come back fully
 * written. Attention runs through the vtable and through each of its two kernels
 * (split-sequence decode, tiled prefill) on scattered block tables.
 *
 *   test_backend_ops                 the checks; exit 0 pass, 1 fail, 77 no usable GPU
 *   test_backend_ops mmq             the int8 tensor-core product checks only
 *   test_backend_ops perf [group]    GB/s per kernel against the device-to-device copy
 *                                    (group: ew, attn, attn-dec, matmul, decode; default
 *                                    all; attn-dec: the decode shapes on the decode kernel)
 *
 * RF_TEST_SEED=n replays a run (the seed is printed); RF_TEST_QUICK=1 keeps the
 * attention and product cases small (for compute-sanitizer). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/gpu/gpu.h"
#include "backend/gpu/gpu_internal.h"
#include "backend/gpu/kernels_attn.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "test_rng.h"

/* ---- random numbers ---- */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static float *rand_floats(int64_t n, float sigma)
{
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = sigma * rng_normal();
    return x;
}

static void shuffle_i32(int32_t *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        const int j = rng_int(0, i);
        const int32_t t = a[i];
        a[i] = a[j], a[j] = t;
    }
}

/* ---- the two backends ---- */

struct env {
    struct rf_backend cpu, gpu;
    struct rf_gpu_ctx *gc;
    int failures, checks;
};

static void die_status(rf_status s, const char *what)
{
    fprintf(stderr, "FAIL %s: %s: %s\n", what, rf_status_name(s), rf_last_error());
    exit(1);
}

#define MUST(call)                                                                                 \
    do {                                                                                           \
        rf_status must_s_ = (call);                                                                \
        if (must_s_ != RF_OK) die_status(must_s_, #call);                                          \
    } while (0)

static void *gpu_alloc(struct env *e, size_t bytes)
{
    void *p = e->gpu.iface->alloc(e->gpu.ctx, bytes);
    if (!p) die_status(RF_STATUS_NOMEM, "gpu alloc");
    return p;
}

static void gpu_free(struct env *e, void *p) { e->gpu.iface->release(e->gpu.ctx, p); }

static void *gpu_dup(struct env *e, const void *host, size_t bytes)
{
    void *p = gpu_alloc(e, bytes);
    MUST(e->gpu.iface->copy_in(e->gpu.ctx, p, host, bytes));
    return p;
}

static void gpu_read(struct env *e, void *host, const void *dev, size_t bytes)
{
    MUST(e->gpu.iface->copy_out(e->gpu.ctx, host, dev, bytes));
    MUST(rf_gpu_take_error(e->gc)); /* a void op's failure */
}

/* n floats of NaN on the device. */
static float *gpu_poisoned(struct env *e, int64_t n)
{
    float *h = xmalloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = NAN;
    float *d = gpu_dup(e, h, (size_t)n * sizeof *h);
    free(h);
    return d;
}

/* ---- comparison ---- */

/* Reads n floats of dev back and compares them with ref: NaN or Inf in the result
 * (an unwritten or broken element) fails whatever the error. */
static void check_floats(struct env *e, const char *op, const char *shape, const float *ref,
                         const float *dev, int64_t n, double thr)
{
    float *got = xmalloc((size_t)n * sizeof *got);
    gpu_read(e, got, dev, (size_t)n * sizeof *got);
    double num = 0, den = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            bad++;
            continue;
        }
        const double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    const double nmse = den > 0 ? num / den : num;
    const bool ok = bad == 0 && nmse <= thr;
    e->checks++;
    if (!ok) e->failures++;
    printf("%s %-10s %-58s nmse %.2e (max %.0e)%s\n", ok ? "ok  " : "FAIL", op, shape, nmse, thr,
           bad ? "  NOT WRITTEN / NaN" : "");
    if (bad) printf("     %lld of %lld elements not finite\n", (long long)bad, (long long)n);
    free(got);
}

/* A GPU op's status: a failure is a failed check (with the message), not the end. */
static bool status_ok(struct env *e, const char *op, const char *shape, rf_status s)
{
    if (s == RF_OK) return true;
    e->checks++, e->failures++;
    printf("FAIL %-10s %-58s %s: %s\n", op, shape, rf_status_name(s), rf_last_error());
    return false;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char buf[4][160];
    static int k;
    char *b = buf[k++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof buf[0], f, ap);
    va_end(ap);
    return b;
}

/* ---- per-op thresholds (normalized MSE) ---- */

#define THR_EW 1e-10 /* element-wise: only the last bit of expf/tanh may differ */
/* geglu: the reference looks GELU up in a table on the f16-rounded gate (as ggml's
 * CPU path); the GPU computes it in f32, so the table's rounding is the difference. */
#define THR_GEGLU 5e-5
#define THR_NORM 1e-10 /* rms_norm: f32 tree sum against a double sum */
#define THR_ROPE 1e-10 /* rope: same angles, sincosf against glibc's to an ulp */
#define THR_ATTN 2e-6  /* attention: the reference rounds softmax weights to f16 */
#define THR_GET_ROWS 1e-12
#define THR_MM_FLOAT 1e-5 /* F32/F16: activations may go through f16 on the GPU */
#define THR_MM_BF16 1e-4  /* BF16: the reference rounds activations to bf16 */
#define THR_MM_QUANT 5e-4 /* quantized: activations quantized differently (q8 vs f16) */

/* ---- element-wise ops ---- */

static void test_ew(struct env *e, int64_t n)
{
    float *a = rand_floats(n, 2.0f), *b = rand_floats(n, 1.0f), *ref = xmalloc((size_t)n * 4);
    const size_t bytes = (size_t)n * sizeof(float);
    float *da = gpu_dup(e, a, bytes), *db = gpu_dup(e, b, bytes);
    const char *shape = fmt("n %lld", (long long)n);
    for (int op = 0; op < 2; op++) {
        float *dout = gpu_poisoned(e, n);
        if (op == 0) {
            e->cpu.iface->swiglu(e->cpu.ctx, a, b, ref, n);
            e->gpu.iface->swiglu(e->gpu.ctx, da, db, dout, n);
        } else {
            e->cpu.iface->geglu(e->cpu.ctx, a, b, ref, n);
            e->gpu.iface->geglu(e->gpu.ctx, da, db, dout, n);
        }
        check_floats(e, op ? "geglu" : "swiglu", shape, ref, dout, n, op ? THR_GEGLU : THR_EW);
        gpu_free(e, dout);
    }
    /* add and scale work in place: the target starts as a copy of b */
    memcpy(ref, b, bytes);
    e->cpu.iface->add(e->cpu.ctx, ref, a, n);
    e->gpu.iface->add(e->gpu.ctx, db, da, n);
    check_floats(e, "add", shape, ref, db, n, THR_EW);
    const float s = (float)(rng_unit() * 4 - 2);
    e->cpu.iface->scale(e->cpu.ctx, ref, s, n);
    e->gpu.iface->scale(e->gpu.ctx, db, s, n);
    check_floats(e, "scale", shape, ref, db, n, THR_EW);
    gpu_free(e, da), gpu_free(e, db);
    free(a), free(b), free(ref);
}

static struct rf_tensor vec_tensor(const char *name, const void *data, int64_t n)
{
    struct rf_tensor t = {.name = name,
                          .type = RF_TYPE_F32,
                          .ne = {n, 1, 1, 1},
                          .data = data,
                          .nbytes = (size_t)n * sizeof(float)};
    return t;
}

static void test_add_bias(struct env *e, int64_t n, int64_t rows)
{
    float *y = rand_floats(n * rows, 1.0f), *b = rand_floats(n, 1.0f);
    float *dy = gpu_dup(e, y, (size_t)(n * rows) * 4), *db = gpu_dup(e, b, (size_t)n * 4);
    struct rf_tensor tc = vec_tensor("bias", b, n), tg = vec_tensor("bias", db, n);
    MUST(e->cpu.iface->add_bias(e->cpu.ctx, y, &tc, n, rows));
    MUST(e->gpu.iface->add_bias(e->gpu.ctx, dy, &tg, n, rows));
    check_floats(e, "add_bias", fmt("%lld x %lld", (long long)rows, (long long)n), y, dy, n * rows,
                 THR_EW);
    gpu_free(e, dy), gpu_free(e, db);
    free(y), free(b);
}

static void test_rms_norm(struct env *e, int64_t n, int64_t rows, bool weighted)
{
    float *x = rand_floats(n * rows, 3.0f), *w = rand_floats(n, 1.0f);
    float *ref = xmalloc((size_t)(n * rows) * 4);
    float *dx = gpu_dup(e, x, (size_t)(n * rows) * 4), *dw = gpu_dup(e, w, (size_t)n * 4);
    float *dy = gpu_poisoned(e, n * rows);
    struct rf_tensor tc = vec_tensor("norm", w, n), tg = vec_tensor("norm", dw, n);
    const float eps = 1e-5f;
    MUST(e->cpu.iface->rms_norm(e->cpu.ctx, x, weighted ? &tc : NULL, ref, n, rows, eps));
    MUST(e->gpu.iface->rms_norm(e->gpu.ctx, dx, weighted ? &tg : NULL, dy, n, rows, eps));
    check_floats(e, "rms_norm",
                 fmt("%lld x %lld %s", (long long)rows, (long long)n, weighted ? "w" : "no w"), ref,
                 dy, n * rows, THR_NORM);
    gpu_free(e, dx), gpu_free(e, dw), gpu_free(e, dy);
    free(x), free(w), free(ref);
}

static void test_rope(struct env *e, int64_t n_tok, int n_head, int head_dim, int n_rot, bool neox,
                      float freq_scale, float base)
{
    const int64_t n = n_tok * n_head * head_dim;
    float *x = rand_floats(n, 1.0f);
    int32_t *pos = xmalloc((size_t)n_tok * 4);
    for (int64_t t = 0; t < n_tok; t++) pos[t] = rng_int(0, 4200);
    float *dx = gpu_dup(e, x, (size_t)n * 4);
    int32_t *dpos = gpu_dup(e, pos, (size_t)n_tok * 4);
    const struct rf_rope_params p = {
        .n_rot = n_rot, .freq_base = base, .freq_scale = freq_scale, .neox = neox};
    e->cpu.iface->rope(e->cpu.ctx, x, n_tok, n_head, head_dim, pos, &p);
    e->gpu.iface->rope(e->gpu.ctx, dx, n_tok, n_head, head_dim, dpos, &p);
    check_floats(e, "rope",
                 fmt("%lld tok %d heads hd %d rot %d %s fs %.2f", (long long)n_tok, n_head,
                     head_dim, n_rot, neox ? "neox" : "norm", freq_scale),
                 x, dx, n, THR_ROPE);
    gpu_free(e, dx), gpu_free(e, dpos);
    free(x), free(pos);
}

/* Rows slot[t] of the pools (some skipped with -1) must match the reference bit for
 * bit, every other row must keep its poison. */
static void test_kv_store(struct env *e, int64_t n_tok, int64_t width, int64_t pool_rows)
{
    float *k = rand_floats(n_tok * width, 1.0f), *v = rand_floats(n_tok * width, 1.0f);
    int32_t *perm = xmalloc((size_t)pool_rows * 4), *slot = xmalloc((size_t)n_tok * 4);
    for (int64_t i = 0; i < pool_rows; i++) perm[i] = (int32_t)i;
    shuffle_i32(perm, (int)pool_rows);
    for (int64_t t = 0; t < n_tok; t++) slot[t] = rng_int(0, 9) == 0 ? -1 : perm[t];
    const size_t pool_bytes = (size_t)(pool_rows * width) * 2;
    uint16_t *kc = xmalloc(pool_bytes), *vc = xmalloc(pool_bytes);
    for (size_t i = 0; i < pool_bytes / 2; i++) kc[i] = vc[i] = 0x7e00; /* f16 NaN */
    uint16_t *dk = gpu_dup(e, kc, pool_bytes), *dv = gpu_dup(e, vc, pool_bytes);
    float *dks = gpu_dup(e, k, (size_t)(n_tok * width) * 4);
    float *dvs = gpu_dup(e, v, (size_t)(n_tok * width) * 4);
    int32_t *dslot = gpu_dup(e, slot, (size_t)n_tok * 4);
    e->cpu.iface->kv_store(e->cpu.ctx, k, v, n_tok, width, slot, kc, vc);
    e->gpu.iface->kv_store(e->gpu.ctx, dks, dvs, n_tok, width, dslot, dk, dv);
    uint16_t *gk = xmalloc(pool_bytes), *gv = xmalloc(pool_bytes);
    gpu_read(e, gk, dk, pool_bytes);
    gpu_read(e, gv, dv, pool_bytes);
    size_t diff = 0;
    for (size_t i = 0; i < pool_bytes / 2; i++) diff += (gk[i] != kc[i]) + (gv[i] != vc[i]);
    e->checks++;
    if (diff) e->failures++;
    printf("%s %-10s %-58s %zu halves differ (exact)\n", diff ? "FAIL" : "ok  ", "kv_store",
           fmt("%lld tok width %lld pool %lld rows", (long long)n_tok, (long long)width,
               (long long)pool_rows),
           diff);
    gpu_free(e, dk), gpu_free(e, dv), gpu_free(e, dks), gpu_free(e, dvs), gpu_free(e, dslot);
    free(k), free(v), free(perm), free(slot), free(kc), free(vc), free(gk), free(gv);
}

/* ---- attention ---- */

#define MAX_SEQ 64

struct attn_case {
    int n_seq, n_head, n_kv, hd, bs, window;
    int cap; /* positions the block tables address at least (a captured step's width) */
    float softcap;
    int ctx[MAX_SEQ];   /* each sequence's length after this step */
    int n_new[MAX_SEQ]; /* its query tokens: the last n_new positions */
    bool shuffle;       /* tokens of the sequences interleaved in random order */
};

/* A batch on host and device: block tables drawn from a random permutation of the
 * pool's blocks (so sequences are scattered), the pools filled with random halves. */
struct attn_batch {
    struct rf_attn_params hp, dp; /* host and device pointers */
    int32_t *pos, *seq, *tables;
    uint16_t *kc, *vc;
    float *q;
    int64_t pool_halves;
    void *dpos, *dseq, *dtables, *dk, *dv, *dq;
};

static void attn_tables(const struct attn_case *c, struct attn_batch *b, int *n_blocks)
{
    int need = 0, max_blocks = 1;
    for (int s = 0; s < c->n_seq; s++) {
        const int nb = (c->ctx[s] + c->bs - 1) / c->bs;
        need += nb;
        max_blocks = nb > max_blocks ? nb : max_blocks;
    }
    max_blocks += rng_int(0, 2);
    if (max_blocks < (c->cap + c->bs - 1) / c->bs) max_blocks = (c->cap + c->bs - 1) / c->bs;
    *n_blocks = need + rng_int(0, 3);
    int32_t *perm = xmalloc((size_t)*n_blocks * 4);
    for (int i = 0; i < *n_blocks; i++) perm[i] = i;
    shuffle_i32(perm, *n_blocks);
    b->tables = xmalloc((size_t)c->n_seq * max_blocks * 4);
    int next = 0;
    for (int s = 0; s < c->n_seq; s++)
        for (int j = 0; j < max_blocks; j++)
            b->tables[s * max_blocks + j] = j < (c->ctx[s] + c->bs - 1) / c->bs ? perm[next++] : -1;
    free(perm);
    b->hp.max_blocks = max_blocks;
}

static void attn_tokens(const struct attn_case *c, struct attn_batch *b)
{
    int64_t n = 0;
    for (int s = 0; s < c->n_seq; s++) n += c->n_new[s];
    b->pos = xmalloc((size_t)n * 4), b->seq = xmalloc((size_t)n * 4);
    int64_t t = 0;
    for (int s = 0; s < c->n_seq; s++)
        for (int i = 0; i < c->n_new[s]; i++, t++)
            b->seq[t] = s, b->pos[t] = c->ctx[s] - c->n_new[s] + i;
    if (c->shuffle)
        for (int64_t i = n - 1; i > 0; i--) {
            const int64_t j = rng_int(0, (int)i);
            int32_t tp = b->pos[i], ts = b->seq[i];
            b->pos[i] = b->pos[j], b->seq[i] = b->seq[j];
            b->pos[j] = tp, b->seq[j] = ts;
        }
    b->hp.n_tok = n;
}

static void attn_build(struct env *e, const struct attn_case *c, struct attn_batch *b)
{
    memset(b, 0, sizeof *b);
    int n_blocks;
    attn_tables(c, b, &n_blocks);
    attn_tokens(c, b);
    const int64_t width = (int64_t)c->n_kv * c->hd, n_q = b->hp.n_tok * c->n_head * c->hd;
    b->pool_halves = (int64_t)n_blocks * c->bs * width;
    b->kc = xmalloc((size_t)b->pool_halves * 2), b->vc = xmalloc((size_t)b->pool_halves * 2);
    for (int64_t i = 0; i < b->pool_halves; i++) {
        b->kc[i] = rf_fp32_to_fp16(rng_normal());
        b->vc[i] = rf_fp32_to_fp16(rng_normal());
    }
    b->q = rand_floats(n_q, 1.0f);
    b->hp.n_head = c->n_head, b->hp.n_head_kv = c->n_kv, b->hp.head_dim = c->hd;
    b->hp.n_seq = c->n_seq, b->hp.block_size = c->bs, b->hp.window = c->window;
    b->hp.softcap = c->softcap, b->hp.scale = 1.0f / sqrtf((float)c->hd);
    b->hp.max_pos = 0;
    for (int64_t t = 0; t < b->hp.n_tok; t++)
        b->hp.max_pos = b->pos[t] > b->hp.max_pos ? b->pos[t] : b->hp.max_pos;
    b->hp.pos = b->pos, b->hp.seq = b->seq, b->hp.block_tables = b->tables;
    b->dp = b->hp;
    b->dpos = gpu_dup(e, b->pos, (size_t)b->hp.n_tok * 4);
    b->dseq = gpu_dup(e, b->seq, (size_t)b->hp.n_tok * 4);
    b->dtables = gpu_dup(e, b->tables, (size_t)c->n_seq * b->hp.max_blocks * 4);
    b->dk = gpu_dup(e, b->kc, (size_t)b->pool_halves * 2);
    b->dv = gpu_dup(e, b->vc, (size_t)b->pool_halves * 2);
    b->dq = gpu_dup(e, b->q, (size_t)n_q * 4);
    b->dp.pos = b->dpos, b->dp.seq = b->dseq, b->dp.block_tables = b->dtables;
}

static void attn_free(struct env *e, struct attn_batch *b)
{
    gpu_free(e, b->dpos), gpu_free(e, b->dseq), gpu_free(e, b->dtables);
    gpu_free(e, b->dk), gpu_free(e, b->dv), gpu_free(e, b->dq);
    free(b->pos), free(b->seq), free(b->tables), free(b->kc), free(b->vc), free(b->q);
}

static const char *case_name(const struct attn_case *c, int64_t n_tok)
{
    int max_ctx = 0;
    for (int s = 0; s < c->n_seq; s++) max_ctx = c->ctx[s] > max_ctx ? c->ctx[s] : max_ctx;
    return fmt("%lldt %ds h%d/%d hd%d bs%d ctx<=%d w%d cap%g%s", (long long)n_tok, c->n_seq,
               c->n_head, c->n_kv, c->hd, c->bs, max_ctx, c->window, c->softcap,
               c->shuffle ? " mix" : "");
}

static void test_attention(struct env *e, const struct attn_case *c)
{
    struct attn_batch b;
    attn_build(e, c, &b);
    const int64_t n_out = b.hp.n_tok * c->n_head * c->hd;
    float *ref = xmalloc((size_t)n_out * 4);
    MUST(e->cpu.iface->attention(e->cpu.ctx, b.q, b.kc, b.vc, ref, &b.hp));
    const size_t ws_bytes = rf_gpu_attention_work_bytes(c->n_head, c->n_kv, c->hd);
    void *ws = gpu_alloc(e, ws_bytes);
    static const char *names[] = {"attn", "attn_dec", "attn_pre", "attn_mma"};
    /* the tensor-core kernel: CUDA builds, head_dim % 16 == 0 up to 128 */
#if defined(RF_HIP)
    const bool mma_fits = false;
#else
    const bool mma_fits = c->hd % 16 == 0 && c->hd <= 128;
#endif
    static const enum rf_gpu_attn_path paths[] = {RF_GPU_ATTN_AUTO, RF_GPU_ATTN_DECODE,
                                                  RF_GPU_ATTN_PREFILL, RF_GPU_ATTN_TENSOR};
    for (int path = 0; path < 4; path++) {
        float *dout = gpu_poisoned(e, n_out);
        if (path == 0) {
            MUST(e->gpu.iface->attention(e->gpu.ctx, b.dq, b.dk, b.dv, dout, &b.dp));
        } else if (paths[path] == RF_GPU_ATTN_TENSOR && !mma_fits) {
            const rf_status s = rf_gpu_attention(e->gc->stream, b.dq, b.dk, b.dv, dout, &b.dp, ws,
                                                 ws_bytes, paths[path]);
            e->checks++;
            e->failures += s != RF_STATUS_UNSUPPORTED;
            printf("%s %-10s %-58s head_dim %d: %s (expected UNSUPPORTED)\n",
                   s == RF_STATUS_UNSUPPORTED ? "ok  " : "FAIL", names[path],
                   case_name(c, b.hp.n_tok), c->hd, rf_status_name(s));
            gpu_free(e, dout);
            continue;
        } else {
            MUST(rf_gpu_attention(e->gc->stream, b.dq, b.dk, b.dv, dout, &b.dp, ws, ws_bytes,
                                  paths[path]));
        }
        check_floats(e, names[path], case_name(c, b.hp.n_tok), ref, dout, n_out, THR_ATTN);
        gpu_free(e, dout);
    }
    gpu_free(e, ws);
    free(ref);
    attn_free(e, &b);
}

/* Tokens whose sequence id is outside 0..n_seq-1 see nothing: their rows come back
 * zero, and the other tokens of the batch are unaffected (the CPU reference refuses
 * such ids, so the others are checked against a run with valid ids). */
static void test_attention_unseen(struct env *e)
{
    const struct attn_case c = {.n_seq = 3,
                                .n_head = 8,
                                .n_kv = 2,
                                .hd = 128,
                                .bs = 16,
                                .cap = 2048,
                                .ctx = {700, 33, 2},
                                .n_new = {1, 1, 1}};
    struct attn_batch b;
    attn_build(e, &c, &b);
    const int64_t n_out = b.hp.n_tok * c.n_head * c.hd, row = (int64_t)c.n_head * c.hd;
    float *ref = xmalloc((size_t)n_out * 4), *got = xmalloc((size_t)n_out * 4);
    MUST(e->cpu.iface->attention(e->cpu.ctx, b.q, b.kc, b.vc, ref, &b.hp));
    const int32_t bad[3] = {-1, b.seq[1], c.n_seq};
    MUST(e->gpu.iface->copy_in(e->gpu.ctx, b.dseq, bad, sizeof bad));
    const size_t ws_bytes = rf_gpu_attention_work_bytes(c.n_head, c.n_kv, c.hd);
    void *ws = gpu_alloc(e, ws_bytes);
    static const enum rf_gpu_attn_path paths[] = {RF_GPU_ATTN_AUTO, RF_GPU_ATTN_DECODE};
    for (int p = 0; p < 2; p++) {
        float *dout = gpu_poisoned(e, n_out);
        MUST(
            rf_gpu_attention(e->gc->stream, b.dq, b.dk, b.dv, dout, &b.dp, ws, ws_bytes, paths[p]));
        MUST(e->gpu.iface->copy_out(e->gpu.ctx, got, dout, (size_t)n_out * 4));
        int nonzero = 0;
        for (int64_t i = 0; i < row; i++) nonzero += got[i] != 0.0f || got[2 * row + i] != 0.0f;
        e->checks++;
        e->failures += nonzero != 0;
        printf("%s attn_unseen path %d: %d of %lld outputs of tokens without a sequence are "
               "not zero\n",
               nonzero ? "FAIL" : "ok  ", (int)paths[p], nonzero, (long long)(2 * row));
        check_floats(e, "attn_unseen", "the token with a sequence", ref + row, dout + row, row,
                     THR_ATTN);
        gpu_free(e, dout);
    }
    gpu_free(e, ws);
    free(ref), free(got);
    attn_free(e, &b);
}

/* A random case of bounded reference cost. */
static struct attn_case random_case(void)
{
    static const int hds[] = {64, 128, 80, 96, 34, 256, 40};
    static const int ratios[] = {1, 4, 8};
    struct attn_case c = {0};
    c.hd = hds[rng_int(0, 6)];
    const int r = ratios[rng_int(0, 2)];
    c.n_kv = rng_int(1, 64 / r > 8 ? 8 : 64 / r);
    c.n_head = c.n_kv * r;
    c.bs = rng_int(0, 2) ? 16 : rng_int(1, 40);
    c.window = rng_int(0, 3) == 0 ? rng_int(1, 600) : 0;
    c.softcap = rng_int(0, 3) == 0 ? 30.0f : 0.0f;
    c.n_seq = rng_int(1, 6);
    c.shuffle = rng_int(0, 1);
    const bool decode = rng_int(0, 1);
    for (int s = 0; s < c.n_seq; s++) {
        c.ctx[s] = rng_int(0, 3) == 0 ? rng_int(1, 4097) : rng_int(1, 300);
        c.n_new[s] = decode ? rng_int(1, 2 < c.ctx[s] ? 2 : c.ctx[s])
                            : rng_int(1, c.ctx[s] < 150 ? c.ctx[s] : 150);
    }
    return c;
}

/* RF_TEST_QUICK=1 (runs under compute-sanitizer): small attention cases only. */
static bool quick;

static bool small_case(const struct attn_case *c)
{
    for (int s = 0; s < c->n_seq; s++)
        if (c->ctx[s] > 2100 || c->n_new[s] > 200) return false;
    return true;
}

static void test_attention_all(struct env *e)
{
    static const struct attn_case fixed[] = {
        /* single token, single head */
        {.n_seq = 1, .n_head = 1, .n_kv = 1, .hd = 64, .bs = 16, .ctx = {1}, .n_new = {1}},
        /* decode, GQA 4, long and short sequences */
        {.n_seq = 4,
         .n_head = 32,
         .n_kv = 8,
         .hd = 128,
         .bs = 16,
         .ctx = {4097, 1, 17, 2048},
         .n_new = {1, 1, 1, 1}},
        /* decode, MHA, two tokens of one sequence (speculative step) */
        {.n_seq = 2,
         .n_head = 12,
         .n_kv = 12,
         .hd = 64,
         .bs = 16,
         .ctx = {3000, 33},
         .n_new = {2, 1}},
        /* decode, MQA 64:1 (query heads in several blocks per KV head) */
        {.n_seq = 2,
         .n_head = 64,
         .n_kv = 1,
         .hd = 64,
         .bs = 32,
         .ctx = {1500, 70},
         .n_new = {1, 1}},
        /* sliding window + softcap, GQA 8, head_dim 256 */
        {.n_seq = 3,
         .n_head = 16,
         .n_kv = 2,
         .hd = 256,
         .bs = 16,
         .window = 512,
         .softcap = 50.0f,
         .ctx = {2000, 600, 5},
         .n_new = {1, 1, 1}},
        /* prefill from empty, GQA 8, odd block size, head_dim 80 */
        {.n_seq = 1, .n_head = 16, .n_kv = 2, .hd = 80, .bs = 7, .ctx = {333}, .n_new = {333}},
        /* chunked prefill after long prefixes, sequences interleaved */
        {.n_seq = 3,
         .n_head = 8,
         .n_kv = 2,
         .hd = 128,
         .bs = 16,
         .ctx = {4097, 300, 37},
         .n_new = {64, 100, 37},
         .shuffle = true},
        /* mixed batch: one prefill chunk and decodes, window */
        {.n_seq = 5,
         .n_head = 32,
         .n_kv = 4,
         .hd = 128,
         .bs = 16,
         .window = 100,
         .ctx = {1000, 4000, 2, 77, 260},
         .n_new = {50, 1, 1, 1, 1},
         .shuffle = true},
        /* head_dim not a multiple of 8 (4-byte loads), MHA */
        {.n_seq = 2, .n_head = 3, .n_kv = 3, .hd = 34, .bs = 5, .ctx = {90, 41}, .n_new = {20, 1}},
        /* head_dim 256 prefill with softcap */
        {.n_seq = 1,
         .n_head = 8,
         .n_kv = 1,
         .hd = 256,
         .bs = 16,
         .softcap = 30.0f,
         .ctx = {700},
         .n_new = {130}},
        /* long prefill, MHA */
        {.n_seq = 1, .n_head = 2, .n_kv = 2, .hd = 64, .bs = 16, .ctx = {4097}, .n_new = {1100}},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!quick || small_case(&fixed[i])) test_attention(e, &fixed[i]);
    /* decode in tables of 4096 positions (a recorded step's width), short contexts */
    static const int short_ctx[] = {1, 65, 257, 641};
    for (int i = 0; i < 4; i++)
        for (int n_kv = 32; n_kv >= 8; n_kv /= 4) /* MHA and GQA 32/8 */
            test_attention(e, &(struct attn_case){.n_seq = 1, .n_head = 32, .n_kv = n_kv,
                                                  .hd = 128, .bs = 16, .cap = 4096,
                                                  .ctx = {short_ctx[i]}, .n_new = {1}});
    /* one head, long context: the most splits of one token */
    test_attention(
        e,
        &(struct attn_case){
            .n_seq = 1, .n_head = 1, .n_kv = 1, .hd = 64, .bs = 16, .ctx = {4097}, .n_new = {1}});
    /* the server's batched decode; then head ratios 2, 3 and 16 with head_dim not a
     * power of two, odd block sizes, windows, two tokens per sequence */
    struct attn_case b = {.n_seq = quick ? 8 : MAX_SEQ,
                          .n_head = 32,
                          .n_kv = 8,
                          .hd = 128,
                          .bs = 16,
                          .cap = 4096,
                          .shuffle = true};
    for (int s = 0; s < b.n_seq; s++) b.ctx[s] = rng_int(128, 400), b.n_new[s] = 1;
    test_attention(e, &b);
    b.n_kv = 32;
    for (int s = 0; s < b.n_seq; s++) b.ctx[s] = rng_int(1, 400);
    test_attention(e, &b);
    struct attn_case g = {.n_seq = 5, .n_head = 12, .n_kv = 4, .hd = 96, .bs = 7, .window = 100};
    for (int s = 0; s < g.n_seq; s++) g.ctx[s] = rng_int(2, 700), g.n_new[s] = rng_int(1, 2);
    test_attention(e, &g);
    g.n_head = 6, g.n_kv = 3, g.hd = 40, g.bs = 16, g.window = 0, g.softcap = 20.0f;
    test_attention(e, &g);
    g.n_head = 32, g.n_kv = 2, g.hd = 72, g.bs = 5;
    test_attention(e, &g);
    test_attention_unseen(e);
    for (int i = 0; i < (quick ? 3 : 8); i++) {
        const struct attn_case c = random_case();
        if (!quick || small_case(&c)) test_attention(e, &c);
    }
}

/* ---- matmul and get_rows ---- */

static const enum rf_type mm_types[] = {
    RF_TYPE_F32,  RF_TYPE_F16,  RF_TYPE_BF16, RF_TYPE_Q4_0, RF_TYPE_Q4_1,
    RF_TYPE_Q5_0, RF_TYPE_Q5_1, RF_TYPE_Q8_0, RF_TYPE_Q2_K, RF_TYPE_Q3_K,
    RF_TYPE_Q4_K, RF_TYPE_Q5_K, RF_TYPE_Q6_K,
};

/* Offsets of a K-quant block's f16 scales (d, dmin; -1: none). */
static void kquant_scales(enum rf_type t, int *d, int *dmin)
{
    *dmin = -1;
    switch (t) {
    case RF_TYPE_Q2_K:
        *d = offsetof(struct rf_block_q2_K, d), *dmin = offsetof(struct rf_block_q2_K, dmin);
        break;
    case RF_TYPE_Q3_K: *d = offsetof(struct rf_block_q3_K, d); break;
    case RF_TYPE_Q4_K:
        *d = offsetof(struct rf_block_q4_K, d), *dmin = offsetof(struct rf_block_q4_K, dmin);
        break;
    case RF_TYPE_Q5_K:
        *d = offsetof(struct rf_block_q5_K, d), *dmin = offsetof(struct rf_block_q5_K, dmin);
        break;
    default: *d = offsetof(struct rf_block_q6_K, d); break;
    }
}

/* rows x k weights of type t: the quantizer applied to random floats, or (K-quants,
 * which have none) random blocks with small finite scales. */
static void *make_weights(enum rf_type t, int64_t rows, int64_t k, size_t *bytes)
{
    const struct rf_type_traits *tr = rf_type_traits_ref(t);
    *bytes = rf_row_size(t, k) * (size_t)rows;
    uint8_t *w = xmalloc(*bytes);
    if (tr->from_float) {
        float *x = rand_floats(k, 1.0f);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t i = 0; i < k; i++) x[i] = rng_normal();
            tr->from_float(x, w + (size_t)r * rf_row_size(t, k), k);
        }
        free(x);
        return w;
    }
    for (size_t i = 0; i < *bytes; i++) w[i] = (uint8_t)rng_u64();
    int od, om;
    kquant_scales(t, &od, &om);
    for (size_t b = 0; b < *bytes / tr->type_size; b++) {
        uint8_t *blk = w + b * tr->type_size;
        const uint16_t d = rf_fp32_to_fp16((float)(0.001 + 0.02 * rng_unit()));
        const uint16_t m = rf_fp32_to_fp16((float)(0.001 + 0.02 * rng_unit()));
        memcpy(blk + od, &d, 2);
        if (om >= 0) memcpy(blk + om, &m, 2);
    }
    return w;
}

static void test_matmul_type(struct env *e, enum rf_type t, int64_t rows, int64_t k,
                             const int64_t *toks, int n_toks)
{
    size_t bytes;
    void *w = make_weights(t, rows, k, &bytes);
    struct rf_tensor tc = {
        .name = "w", .type = t, .ne = {k, rows, 1, 1}, .data = w, .nbytes = bytes};
    struct rf_tensor tg = tc;
    if (!status_ok(e, "load_tensor", rf_type_name(t), e->gpu.iface->load_tensor(e->gpu.ctx, &tg))) {
        free(w);
        return;
    }
    const double thr = t == RF_TYPE_F32 || t == RF_TYPE_F16 ? THR_MM_FLOAT
                       : t == RF_TYPE_BF16                  ? THR_MM_BF16
                                                            : THR_MM_QUANT;
    for (int i = 0; i < n_toks; i++) {
        const int64_t n = toks[i];
        float *x = rand_floats(n * k, 1.0f), *ref = xmalloc((size_t)(n * rows) * 4);
        float *dx = gpu_dup(e, x, (size_t)(n * k) * 4);
        MUST(e->cpu.iface->matmul(e->cpu.ctx, &tc, x, k, ref, n));
        static const char *names[] = {"matmul", "matmul_mv", "matmul_mm"};
        for (int path = 0; path < 3; path++) {
            rf_backend_gpu_set_matmul_path(&e->gpu, (enum rf_gpu_matmul_path)path);
            float *dy = gpu_poisoned(e, n * rows);
            const char *shape = fmt("%s %lld x %lld, %lld tok", rf_type_name(t), (long long)rows,
                                    (long long)k, (long long)n);
            if (status_ok(e, names[path], shape,
                          e->gpu.iface->matmul(e->gpu.ctx, &tg, dx, k, dy, n)))
                check_floats(e, names[path], shape, ref, dy, n * rows, thr);
            gpu_free(e, dy);
        }
        rf_backend_gpu_set_matmul_path(&e->gpu, RF_GPU_MATMUL_AUTO);
        gpu_free(e, dx);
        free(x), free(ref);
    }
    /* get_rows: ids with repeats, exact dequantization */
    const int64_t n_ids = 7;
    int32_t ids[7];
    for (int i = 0; i < n_ids; i++) ids[i] = rng_int(0, (int)rows - 1);
    ids[n_ids - 1] = ids[0];
    float *ref = xmalloc((size_t)(n_ids * k) * 4);
    int32_t *dids = gpu_dup(e, ids, sizeof ids);
    float *dout = gpu_poisoned(e, n_ids * k);
    MUST(e->cpu.iface->get_rows(e->cpu.ctx, &tc, ids, n_ids, ref));
    const char *shape =
        fmt("%s %lld x %lld, 7 ids", rf_type_name(t), (long long)rows, (long long)k);
    if (status_ok(e, "get_rows", shape, e->gpu.iface->get_rows(e->gpu.ctx, &tg, dids, n_ids, dout)))
        check_floats(e, "get_rows", shape, ref, dout, n_ids * k, THR_GET_ROWS);
    gpu_free(e, dids), gpu_free(e, dout);
    e->gpu.iface->free_tensor(e->gpu.ctx, &tg);
    free(w), free(ref);
}

static void test_matmul_all(struct env *e)
{
    if (!e->gpu.iface->matmul || !e->gpu.iface->get_rows) {
        printf("FAIL matmul/get_rows: not in the GPU vtable\n");
        e->failures++;
        return;
    }
    static const int64_t toks[] = {1, 2, 5, 8, 9, 17, 67};
    for (size_t i = 0; i < sizeof mm_types / sizeof mm_types[0]; i++) {
        const enum rf_type t = mm_types[i];
        const int64_t bs = rf_type_traits(t)->block_size;
        const int64_t k = bs >= 256 ? 256 * 3 : 32 * 13; /* legacy: not a multiple of 256 */
        test_matmul_type(e, t, 333, k, toks, quick ? 3 : 7);
        if (!quick) test_matmul_type(e, t, 1000 + 7, bs >= 256 ? 256 * 11 : 32 * 43, toks, 2);
    }
}

/* ---- int8 tensor-core products (MMQ) ---- */

/* mmq.cu, for tests and benchmarks: -1 lets rf_gpu_mmq choose its tile, 0.. forces one;
 * returns the number of tiles. */
int rf_gpu_mmq_force_tile(int tile);
/* 0 lets rf_gpu_mmq choose how many blocks split k per tile, 1.. forces that many. */
void rf_gpu_mmq_force_split(int n);

/* Against the CPU backend. Legacy types: the activations are rounded as the CPU path's
 * Q8_0/Q8_1 and the block dots are exact integers on both, so only the f32 sums' order
 * differs (Q4_1/Q5_1: and the CPU's block sums, rounded to f16). K-quants: the CPU takes
 * Q8_K activations (one f32 scale per 256), another rounding: the generic product
 * threshold. Under 64 outputs one output that nearly cancels decides the ratio (seen:
 * Q5_1 1 x 4096, 1 token, 7.4e-5; Q5_K 1 x 11264, 1 token, 1.9e-2; Q6_K 1 x 4096, 1
 * token, 0.96): legacy types get a looser threshold, K-quants (another activation
 * rounding altogether) no comparison with the CPU (mmq_thr < 0) and only the exact
 * check below, which holds every case to 1e-8 and fails unwritten outputs. */
#define THR_MMQ_EXACT 1e-9
#define THR_MMQ_F16_SUMS 5e-5
#define THR_MMQ_F16_SUMS_FEW 1e-3
#define THR_MMQ_FEW 5e-2
#define THR_MMQ_KQUANT 1e-3 /* seen: Q5_K 4096 x 256 (one Q8_K scale per row), 5.3e-4 */

static double mmq_thr(enum rf_type t, int64_t n_out)
{
    if (t == RF_TYPE_Q4_1 || t == RF_TYPE_Q5_1)
        return n_out < 64 ? THR_MMQ_F16_SUMS_FEW : THR_MMQ_F16_SUMS;
    if (rf_type_traits(t)->block_size == 32) return THR_MMQ_EXACT;
    return n_out < 64 ? -1.0 : THR_MMQ_KQUANT;
}

/* The product as the tensor-core kernels define it, in double, on a sample of outputs
 * (up to 32 rows x 16 tokens, the first and last of each included). Int8 tiles:
 * activations quantized by the CPU's Q8_0 quantizer (the GPU quantizer's rounding),
 * weights dequantized by the reference; only f32 rounding separates the GPU from it.
 * F16 tiles: activations and dequantized weights rounded to f16; the types with one
 * scale and no min give the same f16 weights, the others round their scale and min to
 * f16 first (a relative 2^-11 of each weight at most, ~1e-7 on the sum). */
#define THR_MMQ_SAME_ROUNDING 1e-8
#define THR_MMQ_F16_ROUNDING 1e-6
#define THR_MMQ_F16_ROUNDING_FEW 1e-4 /* seen on one output: Q6_K 1 x 256, 2.8e-6 */

static float round_f16(float v) { return rf_fp16_to_fp32(rf_fp32_to_fp16(v)); }

static void check_mmq_exact(struct env *e, const char *shape, enum rf_type t, const void *w,
                            int64_t rows, int64_t k, const float *x, int64_t n, const float *dy,
                            bool f16)
{
    const int64_t nr = rows < 32 ? rows : 32, nt = n < 16 ? n : 16;
    float *got = xmalloc((size_t)(n * rows) * 4), *wr = xmalloc((size_t)k * 4);
    double *xr = xmalloc((size_t)(nt * k) * sizeof(double));
    struct rf_block_q8_0 *qb = xmalloc((size_t)(k / 32) * sizeof *qb);
    gpu_read(e, got, dy, (size_t)(n * rows) * 4);
    for (int64_t j = 0; j < nt; j++) {
        const int64_t tk = nt > 1 ? j * (n - 1) / (nt - 1) : 0;
        if (f16) {
            for (int64_t i = 0; i < k; i++) xr[j * k + i] = round_f16(x[tk * k + i]);
            continue;
        }
        rf_type_traits(RF_TYPE_Q8_0)->from_float(x + tk * k, qb, k);
        for (int64_t i = 0; i < k; i++)
            xr[j * k + i] = (double)rf_fp16_to_fp32(qb[i / 32].d) * qb[i / 32].qs[i % 32];
    }
    double num = 0, den = 0;
    for (int64_t i = 0; i < nr; i++) {
        const int64_t r = nr > 1 ? i * (rows - 1) / (nr - 1) : 0;
        rf_type_traits_ref(t)->to_float((const uint8_t *)w + (size_t)r * rf_row_size(t, k), wr, k);
        if (f16)
            for (int64_t c = 0; c < k; c++) wr[c] = round_f16(wr[c]);
        for (int64_t j = 0; j < nt; j++) {
            const int64_t tk = nt > 1 ? j * (n - 1) / (nt - 1) : 0;
            double ref = 0;
            for (int64_t c = 0; c < k; c++) ref += (double)wr[c] * xr[j * k + c];
            const double d = (double)got[tk * rows + r] - ref;
            num += isfinite(d) ? d * d : INFINITY;
            den += ref * ref;
        }
    }
    const double nmse = den > 0 ? num / den : num;
    const bool same_f16 = t == RF_TYPE_Q4_0 || t == RF_TYPE_Q5_0 || t == RF_TYPE_Q8_0;
    const double thr = !f16 || same_f16 ? THR_MMQ_SAME_ROUNDING
                       : nr * nt < 64     ? THR_MMQ_F16_ROUNDING_FEW
                                          : THR_MMQ_F16_ROUNDING;
    const bool ok = nmse <= thr;
    e->checks++;
    e->failures += !ok;
    printf("%s %-10s %-58s nmse %.2e (max %.0e)\n", ok ? "ok  " : "FAIL",
           f16 ? "mmq_f16" : "mmq_exact", shape, nmse, thr);
    free(got), free(wr), free(xr), free(qb);
}

/* rows x k weights of type t on n tokens for each of toks, through the MMQ path (tile:
 * forced, or -1 for the automatic choice; split: k split over that many blocks, or 0
 * for the automatic choice), against the CPU backend. */
static void test_mmq_shape(struct env *e, enum rf_type t, int64_t rows, int64_t k,
                           const int64_t *toks, int n_toks, int tile, int split)
{
    size_t bytes;
    void *w = make_weights(t, rows, k, &bytes);
    struct rf_tensor tc = {
        .name = "w", .type = t, .ne = {k, rows, 1, 1}, .data = w, .nbytes = bytes};
    struct rf_tensor tg = tc;
    if (!status_ok(e, "load_tensor", rf_type_name(t), e->gpu.iface->load_tensor(e->gpu.ctx, &tg))) {
        free(w);
        return;
    }
    rf_backend_gpu_set_matmul_path(&e->gpu, RF_GPU_MATMUL_MMQ);
    rf_gpu_mmq_force_tile(tile);
    rf_gpu_mmq_force_split(split);
    for (int i = 0; i < n_toks; i++) {
        const int64_t n = toks[i];
        float *x = rand_floats(n * k, 1.0f), *ref = xmalloc((size_t)(n * rows) * 4);
        float *dx = gpu_dup(e, x, (size_t)(n * k) * 4), *dy = gpu_poisoned(e, n * rows);
        MUST(e->cpu.iface->matmul(e->cpu.ctx, &tc, x, k, ref, n));
        const char *shape =
            fmt("%s %lld x %lld, %lld tok%s%s", rf_type_name(t), (long long)rows, (long long)k,
                (long long)n, tile >= 0 ? fmt(", tile %d", tile) : "",
                split > 0 ? fmt(", split %d", split) : "");
        if (status_ok(e, "mmq", shape, e->gpu.iface->matmul(e->gpu.ctx, &tg, dx, k, dy, n))) {
            const bool f16 = rf_gpu_mmq_tile_f16(rf_gpu_mmq_tile(t, rows, n));
            const double thr = f16 ? (n * rows < 64 ? -1.0 : THR_MM_QUANT) : mmq_thr(t, n * rows);
            if (thr >= 0) check_floats(e, "mmq", shape, ref, dy, n * rows, thr);
            check_mmq_exact(e, shape, t, w, rows, k, x, n, dy, f16);
        }
        gpu_free(e, dx), gpu_free(e, dy);
        free(x), free(ref);
    }
    rf_gpu_mmq_force_tile(-1);
    rf_gpu_mmq_force_split(0);
    rf_backend_gpu_set_matmul_path(&e->gpu, RF_GPU_MATMUL_AUTO);
    e->gpu.iface->free_tensor(e->gpu.ctx, &tg);
    free(w);
}

/* rf_gpu_mmq with add by a tile: y starts as random values and must come back as them
 * plus the product. */
static void test_mmq_add(struct env *e, enum rf_type t, int64_t rows, int64_t k, int64_t n,
                         int tile, int split)
{
    size_t bytes;
    void *w = make_weights(t, rows, k, &bytes);
    struct rf_tensor tc = {
        .name = "w", .type = t, .ne = {k, rows, 1, 1}, .data = w, .nbytes = bytes};
    struct rf_tensor tg = tc;
    MUST(e->gpu.iface->load_tensor(e->gpu.ctx, &tg));
    float *x = rand_floats(n * k, 1.0f), *y0 = rand_floats(n * rows, 3.0f);
    float *ref = xmalloc((size_t)(n * rows) * 4);
    MUST(e->cpu.iface->matmul(e->cpu.ctx, &tc, x, k, ref, n));
    for (int64_t i = 0; i < n * rows; i++) ref[i] += y0[i];
    float *dx = gpu_dup(e, x, (size_t)(n * k) * 4), *dy = gpu_dup(e, y0, (size_t)(n * rows) * 4);
    void *xbuf = gpu_alloc(e, (size_t)(n * k) * 2 > rf_gpu_xq_bytes(n, k) ? (size_t)(n * k) * 2
                                                                          : rf_gpu_xq_bytes(n, k));
    const char *shape = fmt("%s %lld x %lld, %lld tok, add, tile %d, split %d", rf_type_name(t),
                            (long long)rows, (long long)k, (long long)n, tile, split);
    const struct rf_gpu_mmq_scratch sc = {e->gc->wbuf, RF_GPU_WBUF_BYTES, e->gc->mmq_cnt,
                                          RF_GPU_MMQ_COUNTERS};
    rf_gpu_mmq_force_split(split);
    rf_status s = rf_gpu_mmq_tile_f16(tile) ? rf_gpu_f32_to_f16(e->gc->stream, dx, xbuf, n * k)
                                            : rf_gpu_quantize_x(e->gc->stream, dx, n, k, xbuf);
    if (s == RF_OK)
        s = rf_gpu_mmq(e->gc->stream, t, tg.data, rows, k, rf_row_size(t, k), xbuf, n, dy, true,
                       tile, &sc);
    if (status_ok(e, "mmq_add", shape, s))
        check_floats(e, "mmq_add", shape, ref, dy, n * rows,
                     rf_gpu_mmq_tile_f16(tile)   ? THR_MM_QUANT
                     : mmq_thr(t, n * rows) >= 0 ? mmq_thr(t, n * rows)
                                                 : THR_MMQ_FEW);
    rf_gpu_mmq_force_split(0);
    gpu_free(e, dx), gpu_free(e, dy), gpu_free(e, xbuf);
    e->gpu.iface->free_tensor(e->gpu.ctx, &tg);
    free(w), free(x), free(y0), free(ref);
}

static void test_mmq_all(struct env *e)
{
    static const int64_t toks[] = {1, 9, 17, 33, 64, 67, 130, 300};
    static const int64_t few[] = {9, 64, 130}; /* the largest shape: bounded CPU time */
    static const int64_t rows[] = {1, 77, 1000, 4096};
    int n_types = 0;
    for (size_t i = 0; i < sizeof mm_types / sizeof mm_types[0]; i++) {
        const enum rf_type t = mm_types[i];
        if (!rf_gpu_mmq_supports(t)) continue;
        n_types++;
        const bool kq = rf_type_traits(t)->block_size >= 256;
        /* 11008 (Llama's FFN width) is not a multiple of 256: a partial last stage */
        const int64_t ks[] = {256, 4096, kq ? 2816 * 4 : 11008};
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 3; j++) {
                if (quick && (rows[r] > 1000 || ks[j] > 4096)) continue;
                const bool big = rows[r] * ks[j] > 4096 * 4096;
                test_mmq_shape(e, t, rows[r], ks[j], big ? few : toks, big ? 3 : (quick ? 4 : 8),
                               -1, 0);
            }
        /* every tile on a ragged shape (rows and tokens not multiples of any tile) */
        static const int64_t tile_toks[] = {5, 67, 130};
        for (int tile = 0; tile < rf_gpu_mmq_force_tile(-1); tile++)
            test_mmq_shape(e, t, 333, kq ? 512 : 32 * 13, tile_toks, 3, tile, 0);
        /* k split over blocks (16 stages: uneven splits too), both flavours */
        static const int64_t split_toks[] = {5, 67};
        static const int splits[] = {2, 3, 7};
        for (int sp = 0; sp < 3; sp++) {
            test_mmq_shape(e, t, 333, 4096, split_toks, 2, 0, splits[sp]);
            test_mmq_shape(e, t, 333, 4096, split_toks, 2, 9, splits[sp]);
        }
        for (int tile = 0; tile < rf_gpu_mmq_force_tile(-1); tile++)
            if (tile == 0 || rf_gpu_mmq_tile_f16(tile))
                test_mmq_add(e, t, 77, kq ? 512 : 32 * 13, 33, tile, 0);
        test_mmq_add(e, t, 77, 4096, 33, 0, 3);
        test_mmq_add(e, t, 77, 4096, 33, 9, 3);
    }
    e->checks++;
    if (n_types < 7) e->failures++;
    printf("%s mmq takes %d of the weight types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K and Q6_K "
           "at least)\n",
           n_types < 7 ? "FAIL" : "ok  ", n_types);
}

/* ---- the checks ---- */

static void run_checks(struct env *e)
{
    static const int64_t ew_sizes[] = {1, 3, 4096, 11008 * 3 + 1, 100003};
    for (size_t i = 0; i < 5; i++) test_ew(e, ew_sizes[i]);
    test_add_bias(e, 4096, 5);
    test_add_bias(e, 13, 3);
    test_add_bias(e, 1000, 64);
    static const int64_t norm_shapes[][2] = {{1, 1},    {7, 3},    {4096, 5},  {4097, 2},
                                             {257, 33}, {5120, 1}, {2048, 300}};
    for (size_t i = 0; i < 7; i++) {
        test_rms_norm(e, norm_shapes[i][0], norm_shapes[i][1], true);
        test_rms_norm(e, norm_shapes[i][0], norm_shapes[i][1], false);
    }
    test_rope(e, 1, 32, 128, 128, false, 1.0f, 10000.0f);
    test_rope(e, 7, 8, 128, 128, true, 1.0f, 500000.0f);
    test_rope(e, 33, 64, 64, 32, false, 0.25f, 10000.0f);
    test_rope(e, 5, 1, 80, 80, true, 1.0f, 1000000.0f);
    test_rope(e, 130, 7, 34, 24, true, 0.5f, 10000.0f);
    test_rope(e, 3, 4, 256, 256, true, 1.0f, 10000.0f);
    test_kv_store(e, 1, 1024, 64);
    test_kv_store(e, 37, 5, 100);
    test_kv_store(e, 300, 34 * 3, 512);
    test_kv_store(e, 64, 128 * 8, 4096);
    test_attention_all(e);
    test_matmul_all(e);
    test_mmq_all(e);
}

/* ---- perf ---- */

/* Milliseconds per call of fn: reps calls captured into one graph and replayed, so
 * the number is device time without the host's launch cost (small kernels are far
 * faster than their launches); plain launches when the capture fails. */
static bool timed_in_graph;

static double time_ms_mode(struct env *e, void (*fn)(struct env *, void *, int), void *arg,
                           int reps, bool use_graph)
{
    cudaStream_t st = e->gc->stream;
    cudaEvent_t a, b;
    if (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess)
        die_status(RF_STATUS_DEVICE, "cudaEventCreate");
    for (int i = 0; i < 3; i++) fn(e, arg, i); /* warm-up, outside the capture */
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    bool graph =
        use_graph && cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    if (graph) {
        for (int i = 0; i < reps; i++) fn(e, arg, i);
        graph = cudaStreamEndCapture(st, &g) == cudaSuccess && g &&
                rf_graph_instantiate(&x, g) == cudaSuccess;
        if (!graph) (void)cudaGetLastError();
        if (graph) cudaGraphLaunch(x, st); /* warm-up of the graph */
    }
    timed_in_graph = graph;
    cudaEventRecord(a, st);
    if (graph) cudaGraphLaunch(x, st);
    else
        for (int i = 0; i < reps; i++) fn(e, arg, i);
    cudaEventRecord(b, st);
    if (cudaEventSynchronize(b) != cudaSuccess) die_status(RF_STATUS_DEVICE, "timed kernels");
    MUST(rf_gpu_take_error(e->gc));
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    if (x) cudaGraphExecDestroy(x);
    if (g) cudaGraphDestroy(g);
    cudaEventDestroy(a), cudaEventDestroy(b);
    return ms / reps;
}

static double time_ms(struct env *e, void (*fn)(struct env *, void *, int), void *arg, int reps)
{
    return time_ms_mode(e, fn, arg, reps, true);
}

struct copy_arg {
    void *dst, *src;
    size_t bytes;
};

static void run_copy(struct env *e, void *varg, int i)
{
    (void)i;
    struct copy_arg *c = varg;
    cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, e->gc->stream);
}

static double peak_bw;

static void perf_line(const char *name, const char *shape, double ms, double bytes)
{
    const double bw = bytes / (ms * 1e-3);
    printf("%-12s %-44s %9.2f us %8.1f GB/s %5.1f%% of copy%s\n", name, shape, ms * 1e3, bw / 1e9,
           100 * bw / peak_bw, timed_in_graph ? "" : " (launches, no graph)");
}

static void perf_copy(struct env *e)
{
    struct copy_arg c = {.bytes = (size_t)1 << 30};
    c.src = gpu_alloc(e, c.bytes), c.dst = gpu_alloc(e, c.bytes);
    /* plain launches: copies replayed from a graph ran at two thirds of this speed
     * (H200, 2026-11-27), and a 1 GiB copy has no launch cost to hide */
    const double ms = time_ms_mode(e, run_copy, &c, 10, false);
    peak_bw = 2.0 * (double)c.bytes / (ms * 1e-3);
    printf("device-to-device copy of 1 GiB: %.3f ms, %.1f GB/s (read + written)\n", ms,
           peak_bw / 1e9);
    gpu_free(e, c.src), gpu_free(e, c.dst);
}

/* Element-wise and row ops on buffers rotated so that L2 (50 MB) holds none of them. */
#define ROT 4

struct ew_arg {
    float *a[ROT], *b[ROT], *o[ROT], *w;
    int64_t n, rows;
    int op;
    int32_t *pos, *slot;
    uint16_t *kp, *vp;
};

static void run_ew(struct env *e, void *varg, int i)
{
    struct ew_arg *g = varg;
    const struct rf_backend_i *f = e->gpu.iface;
    void *c = e->gpu.ctx;
    const int r = i % ROT;
    const struct rf_rope_params rp = {.n_rot = 128, .freq_base = 10000.0f, .freq_scale = 1.0f};
    struct rf_tensor w = vec_tensor("w", g->w, g->n);
    switch (g->op) {
    case 0: f->swiglu(c, g->a[r], g->b[r], g->o[r], g->n * g->rows); break;
    case 1: f->geglu(c, g->a[r], g->b[r], g->o[r], g->n * g->rows); break;
    case 2: f->add(c, g->o[r], g->a[r], g->n * g->rows); break;
    case 3: f->scale(c, g->o[r], 1.0001f, g->n * g->rows); break;
    case 4: MUST(f->rms_norm(c, g->a[r], &w, g->o[r], g->n, g->rows, 1e-5f)); break;
    case 5: f->rope(c, g->o[r], g->rows, (int)(g->n / 128), 128, g->pos, &rp); break;
    case 6: f->kv_store(c, g->a[r], g->b[r], g->rows, g->n, g->slot, g->kp, g->vp); break;
    default: MUST(f->add_bias(c, g->o[r], &w, g->n, g->rows)); break;
    }
}

static void perf_ew(struct env *e, int64_t n, int64_t rows)
{
    static const char *names[] = {"swiglu",   "geglu", "add",      "scale",
                                  "rms_norm", "rope",  "kv_store", "add_bias"};
    /* bytes moved per element: reads + writes */
    static const double per_el[] = {12, 12, 12, 8, 8, 8, 12, 8};
    struct ew_arg g = {.n = n, .rows = rows};
    const int64_t total = n * rows;
    float *h = rand_floats(total, 1.0f);
    for (int r = 0; r < ROT; r++) {
        g.a[r] = gpu_dup(e, h, (size_t)total * 4);
        g.b[r] = gpu_dup(e, h, (size_t)total * 4);
        g.o[r] = gpu_dup(e, h, (size_t)total * 4);
    }
    g.w = gpu_dup(e, h, (size_t)n * 4);
    int32_t *p = xmalloc((size_t)rows * 4);
    for (int64_t t = 0; t < rows; t++) p[t] = (int32_t)t;
    g.pos = gpu_dup(e, p, (size_t)rows * 4), g.slot = g.pos;
    g.kp = gpu_alloc(e, (size_t)total * 2), g.vp = gpu_alloc(e, (size_t)total * 2);
    for (g.op = 0; g.op < 8; g.op++) {
        const double ms = time_ms(e, run_ew, &g, 20);
        perf_line(names[g.op], fmt("%lld x %lld", (long long)rows, (long long)n), ms,
                  per_el[g.op] * (double)total);
    }
    for (int r = 0; r < ROT; r++) gpu_free(e, g.a[r]), gpu_free(e, g.b[r]), gpu_free(e, g.o[r]);
    gpu_free(e, g.w), gpu_free(e, g.pos), gpu_free(e, g.kp), gpu_free(e, g.vp);
    free(h), free(p);
}

/* Attention: n_seq sequences of ctx positions, n_new query tokens each, with block
 * tables addressing cap positions (a captured step's width: the decode grid is sized
 * from it, not from ctx). The pool holds n_rot copies of the blocks, enough to exceed
 * L2 (50 MB); launch i reads the i % n_rot-th copy of the tables. */
#define AT_ROT_MAX 16

struct at_arg {
    struct rf_attn_params p[AT_ROT_MAX];
    float *q, *out;
    uint16_t *k, *v;
    void *ws;
    size_t ws_bytes;
    int path, n_rot;
};

static void run_attn(struct env *e, void *varg, int i)
{
    struct at_arg *g = varg;
    MUST(rf_gpu_attention(e->gc->stream, g->q, g->k, g->v, g->out, &g->p[i % g->n_rot], g->ws,
                          g->ws_bytes, (enum rf_gpu_attn_path)g->path));
}

static void perf_attn_cap(struct env *e, int n_seq, int ctx, int n_new, int n_head, int n_kv,
                          int hd, int path, int cap)
{
    const int bs = 16, nb = (ctx + bs - 1) / bs, n_tok = n_seq * n_new;
    const int mb = cap > ctx ? (cap + bs - 1) / bs : nb;
    const int64_t width = (int64_t)n_kv * hd, copy_rows = (int64_t)n_seq * nb * bs;
    const double copy_bytes = 4.0 * (double)(copy_rows * width);
    int n_rot = (int)(256e6 / copy_bytes) + 1;
    n_rot = n_rot < 4 ? 4 : n_rot > AT_ROT_MAX ? AT_ROT_MAX : n_rot;
    const int64_t rows = n_rot * copy_rows;
    struct at_arg g = {.path = path, .n_rot = n_rot};
    g.k = gpu_alloc(e, (size_t)(rows * width) * 2), g.v = gpu_alloc(e, (size_t)(rows * width) * 2);
    float *hq = rand_floats((int64_t)n_tok * n_head * hd, 1.0f);
    uint16_t *hk = xmalloc((size_t)(rows * width) * 2);
    /* random halves, a block of them repeated: speed does not depend on the values */
    const int64_t n_rand = rows * width < ((int64_t)1 << 20) ? rows * width : (int64_t)1 << 20;
    for (int64_t i = 0; i < n_rand; i++) hk[i] = rf_fp32_to_fp16(rng_normal());
    for (int64_t i = n_rand; i < rows * width; i += n_rand)
        memcpy(hk + i, hk, (size_t)(rows * width - i < n_rand ? rows * width - i : n_rand) * 2);
    MUST(e->gpu.iface->copy_in(e->gpu.ctx, g.k, hk, (size_t)(rows * width) * 2));
    MUST(e->gpu.iface->copy_in(e->gpu.ctx, g.v, hk, (size_t)(rows * width) * 2));
    g.q = gpu_dup(e, hq, (size_t)n_tok * n_head * hd * 4);
    g.out = gpu_alloc(e, (size_t)n_tok * n_head * hd * 4);
    g.ws_bytes = rf_gpu_attention_work_bytes(n_head, n_kv, hd);
    g.ws = gpu_alloc(e, g.ws_bytes);
    int32_t *pos = xmalloc((size_t)n_tok * 4), *seq = xmalloc((size_t)n_tok * 4);
    int32_t *tab = xmalloc((size_t)n_seq * mb * 4);
    for (int t = 0; t < n_tok; t++) seq[t] = t / n_new, pos[t] = ctx - n_new + t % n_new;
    void *dpos = gpu_dup(e, pos, (size_t)n_tok * 4), *dseq = gpu_dup(e, seq, (size_t)n_tok * 4);
    void *dtab[AT_ROT_MAX];
    for (int r = 0; r < n_rot; r++) {
        for (int s = 0; s < n_seq; s++)
            for (int j = 0; j < mb; j++) tab[s * mb + j] = j < nb ? (r * n_seq + s) * nb + j : -1;
        dtab[r] = gpu_dup(e, tab, (size_t)n_seq * mb * 4);
        g.p[r] = (struct rf_attn_params){.n_tok = n_tok,
                                         .n_head = n_head,
                                         .n_head_kv = n_kv,
                                         .head_dim = hd,
                                         .pos = dpos,
                                         .seq = dseq,
                                         .block_tables = dtab[r],
                                         .n_seq = n_seq,
                                         .max_blocks = mb,
                                         .block_size = bs,
                                         .max_pos = mb * bs - 1,
                                         .scale = 1.0f / sqrtf((float)hd)};
    }
    const double ms = time_ms(e, run_attn, &g, 20);
    /* bytes: each sequence's K and V rows once, q and out */
    const double bytes = 2.0 * n_seq * ctx * width * 2 + 2.0 * n_tok * n_head * hd * 4;
    const double flops = 4.0 * n_head * hd * (double)n_seq * n_new * (ctx - (n_new - 1) / 2.0);
    static const char *pn[] = {"attn_auto", "attn_decode", "attn_prefill", "attn_mma"};
    const char *cs = cap > ctx ? fmt("%d/%d", ctx, mb * bs) : fmt("%d", ctx);
    perf_line(pn[path], fmt("%ds x %dt ctx %s h%d/%d hd%d", n_seq, n_new, cs, n_head, n_kv, hd), ms,
              bytes);
    if (n_new > 1)
        printf("%-12s %-44s %9s    %8.2f TFLOP/s\n", "", "", "", flops / (ms * 1e-3) / 1e12);
    for (int r = 0; r < n_rot; r++) gpu_free(e, dtab[r]);
    gpu_free(e, g.k), gpu_free(e, g.v), gpu_free(e, g.q), gpu_free(e, g.out), gpu_free(e, g.ws);
    gpu_free(e, dpos), gpu_free(e, dseq);
    free(hq), free(hk), free(pos), free(seq), free(tab);
}

static void perf_attn(struct env *e, int n_seq, int ctx, int n_new, int n_head, int n_kv, int hd,
                      int path)
{
    perf_attn_cap(e, n_seq, ctx, n_new, n_head, n_kv, hd, path, ctx);
}

/* Matmul at 7B shapes, batch 1: weight copies rotated past L2; one block of random
 * rows tiled over the matrix (speed does not depend on the values). */
#define MM_COPIES 6

struct mm_arg {
    struct rf_tensor w[MM_COPIES];
    float *x, *y;
    int64_t k, n_tok;
};

static void run_mm(struct env *e, void *varg, int i)
{
    struct mm_arg *g = varg;
    MUST(e->gpu.iface->matmul(e->gpu.ctx, &g->w[i % MM_COPIES], g->x, g->k, g->y, g->n_tok));
}

static void perf_matmul(struct env *e, enum rf_type t, int64_t rows, int64_t k, int64_t n_tok)
{
    size_t blk_bytes;
    void *blk = make_weights(t, 16, k, &blk_bytes);
    const size_t bytes = blk_bytes / 16 * (size_t)rows;
    uint8_t *w = xmalloc(bytes);
    for (size_t off = 0; off < bytes; off += blk_bytes)
        memcpy(w + off, blk, bytes - off < blk_bytes ? bytes - off : blk_bytes);
    struct mm_arg g = {.k = k, .n_tok = n_tok};
    int loaded = 0;
    rf_status st = RF_OK;
    for (; loaded < MM_COPIES && st == RF_OK; loaded += st == RF_OK) {
        g.w[loaded] = (struct rf_tensor){
            .name = "w", .type = t, .ne = {k, rows, 1, 1}, .data = w, .nbytes = bytes};
        st = e->gpu.iface->load_tensor(e->gpu.ctx, &g.w[loaded]);
    }
    float *hx = rand_floats(k * n_tok, 1.0f);
    g.x = gpu_dup(e, hx, (size_t)(k * n_tok) * 4);
    g.y = gpu_alloc(e, (size_t)(rows * n_tok) * 4);
    if (st == RF_OK) st = e->gpu.iface->matmul(e->gpu.ctx, &g.w[0], g.x, k, g.y, n_tok);
    const char *shape = fmt("%s %lld x %lld, %lld tok", rf_type_name(t), (long long)rows,
                            (long long)k, (long long)n_tok);
    if (st != RF_OK) {
        printf("%-12s %-44s %s: %s\n", "matmul", shape, rf_status_name(st), rf_last_error());
    } else {
        const double ms = time_ms(e, run_mm, &g, 30);
        perf_line("matmul", shape, ms, (double)bytes + 4.0 * (double)(k + rows) * n_tok);
    }
    for (int c = 0; c < loaded; c++) e->gpu.iface->free_tensor(e->gpu.ctx, &g.w[c]);
    gpu_free(e, g.x), gpu_free(e, g.y);
    free(blk), free(w), free(hx);
}

static void perf_attn_all(struct env *e, bool decode_only);
static void perf_matmul_all(struct env *e);

static void perf_attn(struct env *e, int n_seq, int ctx, int n_new, int n_head, int n_kv, int hd,
                      int path);

/* only: "attn", "ew" or "matmul" for one group; "" for all */
static void run_perf(struct env *e, const char *only)
{
    printf("device: %s\n", rf_backend_gpu_device_name(&e->gpu));
    perf_copy(e);
    if (!*only || strcmp(only, "ew") == 0) {
        perf_ew(e, 4096, 4096);
        perf_ew(e, 4096, 1);
    }
    if (!*only || strcmp(only, "attn") == 0) perf_attn_all(e, false);
    if (strcmp(only, "attn-dec") == 0) perf_attn_all(e, true); /* the decode kernel alone */
    if (strcmp(only, "decode") == 0) { /* for a profiler: two decode shapes */
        perf_attn(e, 1, 512, 1, 32, 8, 128, RF_GPU_ATTN_TENSOR);
        perf_attn(e, 16, 4096, 1, 32, 8, 128, RF_GPU_ATTN_TENSOR);
    }
    if (!*only || strcmp(only, "matmul") == 0) perf_matmul_all(e);
}

static void perf_attn_all(struct env *e, bool decode_only)
{
    /* decode, one token per sequence: {sequences, context, KV heads, addressable
     * positions}; 32 query heads of 128. Positions 0 (the launch's floor) / 64 / 256 /
     * 640 in a table of 4096 (a recorded step replays one grid for every position),
     * long contexts, and the server's batched decode. Paths: AUTO (what the forward pass runs),
     * DECODE, TENSOR. */
    static const int dec[][4] = {
        {1, 1, 32, 4096},     {1, 65, 32, 4096},   {1, 257, 32, 4096},  {1, 641, 32, 4096},
        {1, 1, 8, 4096},      {1, 65, 8, 4096},    {1, 257, 8, 4096},   {1, 641, 8, 4096},
        {1, 512, 8, 512},     {1, 4096, 32, 4096}, {1, 4096, 8, 4096},  {1, 16384, 32, 16384},
        {1, 16384, 8, 16384}, {16, 4096, 8, 4096}, {64, 1024, 8, 1024}, {64, 257, 32, 4096},
        {64, 257, 8, 4096},
    };
    static const int dec_paths[] = {RF_GPU_ATTN_AUTO, RF_GPU_ATTN_DECODE, RF_GPU_ATTN_TENSOR};
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++)
        for (int p = decode_only; p < (decode_only ? 2 : 3); p++)
            perf_attn_cap(e, dec[i][0], dec[i][1], 1, 32, dec[i][2], 128, dec_paths[p], dec[i][3]);
    if (decode_only) return;
    for (int path = RF_GPU_ATTN_PREFILL; path <= RF_GPU_ATTN_TENSOR; path++) {
        perf_attn(e, 1, 512, 512, 32, 8, 128, path);
        perf_attn(e, 1, 4096, 512, 32, 8, 128, path);
        perf_attn(e, 4, 2048, 512, 32, 32, 128, path);
    }
}

static void perf_matmul_all(struct env *e)
{
    static const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {14336, 4096}};
    if (!e->gpu.iface->matmul) return;
    for (size_t i = 0; i < sizeof mm_types / sizeof mm_types[0]; i++)
        for (int s = 0; s < 4; s++) perf_matmul(e, mm_types[i], shapes[s][0], shapes[s][1], 1);
}

int main(int argc, char **argv)
{
    const bool perf = argc > 1 && strcmp(argv[1], "perf") == 0;
    const char *seed = getenv("RF_TEST_SEED"), *q = getenv("RF_TEST_QUICK");
    quick = q && *q && strcmp(q, "0") != 0;
    rng_state = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
    if (!rng_state) rng_state = 1;
    printf("seed %llu\n", (unsigned long long)rng_state);
    struct env e = {0};
    rf_status s = rf_backend_gpu_init(0, &e.gpu);
    if (s != RF_OK) {
        printf("skipped: %s\n", rf_last_error());
        return 77;
    }
    MUST(rf_backend_cpu_init(0, &e.cpu));
    e.gc = e.gpu.ctx;
    if (perf) run_perf(&e, argc > 2 ? argv[2] : "");
    else if (argc > 1 && strcmp(argv[1], "mmq") == 0) test_mmq_all(&e);
    else run_checks(&e);
    e.gpu.iface->free(e.gpu.ctx);
    e.cpu.iface->free(e.cpu.ctx);
    if (!perf) printf("%d of %d checks failed\n", e.failures, e.checks);
    return e.failures ? 1 : 0;
}

/* The CPU backend: context, memory, the vtable and the element-wise ops. Products
 * live in matmul.c, attention and RoPE in attention.c. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

#define ALIGN 64
static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

rf_status rf_cpu_buf_reserve(struct rf_cpu_buf *b, size_t bytes, const char *what)
{
    if (bytes <= b->cap) return RF_OK;
    void *p = bytes > SIZE_MAX - ALIGN ? NULL : aligned_alloc(ALIGN, align_up(bytes));
    if (!p)
        return rf_fail(RF_STATUS_NOMEM, "%s: cannot allocate %zu bytes of scratch", what, bytes);
    free(b->p);
    b->p = p;
    b->cap = align_up(bytes);
    return RF_OK;
}

rf_status rf_cpu_work_reserve(struct rf_cpu_ctx *c, size_t bytes, const char *what)
{
    if (bytes > (SIZE_MAX - ALIGN) / (size_t)c->nth)
        return rf_fail(RF_STATUS_NOMEM, "%s: scratch of %zu bytes per thread is too big", what,
                       bytes);
    const size_t stride = align_up(bytes);
    RF_TRY(rf_cpu_buf_reserve(&c->work, stride * (size_t)c->nth, what));
    c->work_stride = stride;
    return RF_OK;
}

/* Tasks are claimed from an atomic counter by whichever threads show up (see
 * rf_pool_run_any): a worker the OS has not scheduled yet just finds no work. */
struct task_job {
    rf_cpu_task_fn fn;
    void *arg;
    int64_t n;
    _Atomic int64_t next;
};

static void task_loop(void *varg, int ith, int nth)
{
    struct task_job *j = varg;
    (void)nth;
    for (int64_t i; (i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->n;)
        j->fn(j->arg, i, ith);
}

void rf_cpu_parallel_tasks(struct rf_cpu_ctx *c, int64_t n, bool serial, rf_cpu_task_fn fn,
                           void *arg)
{
    if (c->nth == 1 || n <= 1 || serial) {
        for (int64_t i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
    struct task_job j = {.fn = fn, .arg = arg, .n = n};
    atomic_init(&j.next, 0);
    rf_pool_run_any(c->pool, task_loop, &j);
}

/* rf_cpu_parallel_for as tasks: a few ranges per thread so that they balance. */
#define RANGES_PER_THREAD 4

struct range_job {
    rf_cpu_range_fn fn;
    void *arg;
    int64_t n, n_ranges;
};

static void range_task(void *varg, int64_t i, int ith)
{
    const struct range_job *j = varg;
    j->fn(j->arg, j->n * i / j->n_ranges, j->n * (i + 1) / j->n_ranges, ith);
}

void rf_cpu_parallel_for(struct rf_cpu_ctx *c, int64_t n, int64_t cost_per_item, rf_cpu_range_fn fn,
                         void *arg)
{
    if (n <= 0) return;
    if (c->nth == 1 || n == 1 || n * cost_per_item < RF_CPU_PAR_MIN_WORK) {
        fn(arg, 0, n, 0);
        return;
    }
    struct range_job j = {
        .fn = fn, .arg = arg, .n = n, .n_ranges = (int64_t)c->nth * RANGES_PER_THREAD};
    if (j.n_ranges > n) j.n_ranges = n;
    rf_cpu_parallel_tasks(c, j.n_ranges, false, range_task, &j);
}

/* ---- memory ---- */

/* Buffers are anonymous mappings: their zero pages cost no memory until touched, so a
 * context sized for long prompts stays small while it holds short ones. A header of
 * ALIGN bytes keeps the mapping's length for release. */
static void *cpu_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    if (bytes > SIZE_MAX / 2) return NULL;
    const size_t n = align_up(bytes ? bytes : 1) + ALIGN;
    uint8_t *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    memcpy(p, &n, sizeof n);
    return p + ALIGN;
}

static void cpu_release(void *ctx, void *buf)
{
    (void)ctx;
    if (!buf) return;
    uint8_t *p = (uint8_t *)buf - ALIGN;
    size_t n;
    memcpy(&n, p, sizeof n);
    munmap(p, n);
}

/* ---- element-wise ops ---- */

/* One job type for the binary/unary element-wise ops: a kernel slot and its operands. */
struct ew_job {
    const struct rf_cpu_kernels *k;
    int op;
    float *y;
    const float *a, *b;
    float s;
};

enum {
    EW_SWIGLU,
    EW_GEGLU,
    EW_ADD,
    EW_SCALE
};

static void ew_range(void *varg, int64_t i0, int64_t i1, int ith)
{
    (void)ith;
    const struct ew_job *j = varg;
    const int64_t n = i1 - i0;
    switch (j->op) {
    case EW_SWIGLU: j->k->swiglu(j->a + i0, j->b + i0, j->y + i0, n); break;
    case EW_GEGLU: j->k->geglu(j->a + i0, j->b + i0, j->y + i0, n); break;
    case EW_ADD: j->k->add(j->y + i0, j->a + i0, n); break;
    case EW_SCALE: j->k->scale(j->y + i0, j->s, n); break;
    }
}

/* Work units per element: the GLUs pay an exp and a divide. */
static void ew_run(struct rf_cpu_ctx *c, struct ew_job *j, int64_t n)
{
    j->k = c->k;
    const int64_t cost = (j->op == EW_SWIGLU || j->op == EW_GEGLU) ? 8 : 1;
    rf_cpu_parallel_for(c, n, cost, ew_range, j);
}

static void cpu_swiglu(void *ctx, const float *gate, const float *up, float *out, int64_t n)
{
    struct ew_job j = {.op = EW_SWIGLU, .y = out, .a = gate, .b = up};
    ew_run(ctx, &j, n);
}

static void cpu_geglu(void *ctx, const float *gate, const float *up, float *out, int64_t n)
{
    struct ew_job j = {.op = EW_GEGLU, .y = out, .a = gate, .b = up};
    ew_run(ctx, &j, n);
}

static void cpu_add(void *ctx, float *y, const float *x, int64_t n)
{
    struct ew_job j = {.op = EW_ADD, .y = y, .a = x};
    ew_run(ctx, &j, n);
}

static void cpu_scale(void *ctx, float *y, float s, int64_t n)
{
    struct ew_job j = {.op = EW_SCALE, .y = y, .s = s};
    ew_run(ctx, &j, n);
}

/* ---- row ops: rms_norm, add_bias ---- */

/* A vector operand of n floats: an F32 tensor of exactly n elements. */
static rf_status check_vec(const char *op, const struct rf_tensor *t, int64_t n)
{
    if (t->type != RF_TYPE_F32)
        return rf_fail(RF_STATUS_SHAPE, "%s: %s is %s, expected F32", op, t->name,
                       rf_type_name(t->type));
    const int64_t ne = t->ne[0] * (t->ne[1] > 0 ? t->ne[1] : 1);
    if (ne != n || !t->data || t->nbytes < (size_t)n * sizeof(float))
        return rf_fail(RF_STATUS_SHAPE, "%s: %s is (%lld) but rows have %lld columns", op, t->name,
                       (long long)ne, (long long)n);
    return RF_OK;
}

struct rows_job {
    const struct rf_cpu_kernels *k;
    const float *x;
    const float *w;
    float *y;
    int64_t n;
    float eps;
};

static void rms_norm_range(void *varg, int64_t r0, int64_t r1, int ith)
{
    (void)ith;
    const struct rows_job *j = varg;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->n;
        /* As ggml: sum of f32 squares in double, mean and scale in f32. */
        const float mean = (float)(j->k->sum_sq(x, j->n) / (double)j->n);
        const float s = 1.0f / sqrtf(mean + j->eps);
        j->k->scale_mul(x, s, j->w, j->y + r * j->n, j->n);
    }
}

static rf_status cpu_rms_norm(void *ctx, const float *x, const struct rf_tensor *w, float *y,
                              int64_t n, int64_t rows, float eps)
{
    struct rf_cpu_ctx *c = ctx;
    if (n <= 0 || rows < 0)
        return rf_fail(RF_STATUS_SHAPE, "rms_norm: bad shape (%lld x %lld)", (long long)rows,
                       (long long)n);
    if (w) RF_TRY(check_vec("rms_norm", w, n));
    struct rows_job j = {.k = c->k, .x = x, .w = w ? w->data : NULL, .y = y, .n = n, .eps = eps};
    rf_cpu_parallel_for(c, rows, 2 * n, rms_norm_range, &j);
    return RF_OK;
}

static void add_bias_range(void *varg, int64_t r0, int64_t r1, int ith)
{
    (void)ith;
    const struct rows_job *j = varg;
    for (int64_t r = r0; r < r1; r++) j->k->add(j->y + r * j->n, j->w, j->n);
}

static rf_status cpu_add_bias(void *ctx, float *y, const struct rf_tensor *b, int64_t n,
                              int64_t rows)
{
    struct rf_cpu_ctx *c = ctx;
    if (n <= 0 || rows < 0)
        return rf_fail(RF_STATUS_SHAPE, "add_bias: bad shape (%lld x %lld)", (long long)rows,
                       (long long)n);
    RF_TRY(check_vec("add_bias", b, n));
    struct rows_job j = {.k = c->k, .w = b->data, .y = y, .n = n};
    rf_cpu_parallel_for(c, rows, n, add_bias_range, &j);
    return RF_OK;
}

/* ---- memory: the CPU's buffers are host memory ---- */

static rf_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes) memmove(dst, src, bytes);
    return RF_OK;
}

/* ---- context ---- */

static void cpu_free(void *ctx)
{
    struct rf_cpu_ctx *c = ctx;
    if (!c) return;
    rf_pool_free(c->pool);
    free(c->xq.p);
    free(c->work.p);
    free(c);
}

static const struct rf_backend_i cpu_iface = {
    .name = "cpu",
    .free = cpu_free,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .matmul = rf_cpu_matmul,
    .get_rows = rf_cpu_get_rows,
    .rms_norm = cpu_rms_norm,
    .rope = rf_cpu_rope,
    .kv_store = rf_cpu_kv_store,
    .attention = rf_cpu_attention,
    .swiglu = cpu_swiglu,
    .geglu = cpu_geglu,
    .add = cpu_add,
    .add_bias = cpu_add_bias,
    .scale = cpu_scale,
    .copy_in = cpu_copy,
    .copy_out = cpu_copy,
    .copy = cpu_copy,
};

rf_status rf_backend_cpu_init(int n_threads, struct rf_backend *out)
{
    out->iface = NULL;
    out->ctx = NULL;
    rf_quant_init();
    struct rf_cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return rf_fail(RF_STATUS_NOMEM, "cpu backend: out of memory");
    rf_status s = rf_pool_create(n_threads, &c->pool);
    if (s != RF_OK) {
        free(c);
        return s;
    }
    c->nth = rf_pool_size(c->pool);
    c->k = rf_cpu_has_avx2() ? &rf_cpu_kernels_avx2 : &rf_cpu_kernels_scalar;
    out->iface = &cpu_iface;
    out->ctx = c;
    out->host_memory = true;
    return RF_OK;
}

/* ---- knobs for tests and benchmarks ---- */

bool rf_backend_cpu_set_kernels(struct rf_backend *b, const char *name)
{
    struct rf_cpu_ctx *c = b->ctx;
    if (strcmp(name, "scalar") == 0) c->k = &rf_cpu_kernels_scalar;
    else if (strcmp(name, "avx2") == 0 && rf_cpu_has_avx2()) c->k = &rf_cpu_kernels_avx2;
    else return false;
    return true;
}

const char *rf_backend_cpu_kernels(const struct rf_backend *b)
{
    return ((const struct rf_cpu_ctx *)b->ctx)->k->name;
}

void rf_backend_cpu_force_dequant(struct rf_backend *b, bool on)
{
    ((struct rf_cpu_ctx *)b->ctx)->force_dequant = on;
}

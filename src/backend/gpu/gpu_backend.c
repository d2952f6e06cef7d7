/* The GPU backend: context, the vtable, and the row, element-wise and attention ops
 * (their kernels are in elementwise.cu and attention.cu). One stream carries every
 * op, so ops need no synchronisation between them; copy_out and sample wait. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/gpu/gpu_internal.h"

void rf_gpu_note(struct rf_gpu_ctx *c, rf_status s)
{
    if (s == RF_OK || c->err != RF_OK) return;
    c->err = s;
    snprintf(c->err_msg, sizeof c->err_msg, "%s", rf_last_error());
}

rf_status rf_gpu_take_error(struct rf_gpu_ctx *c)
{
    if (c->err == RF_OK) return RF_OK;
    const rf_status s = c->err;
    c->err = RF_OK;
    return rf_fail(s, "%s", c->err_msg);
}

/* An F32 vector operand of exactly n elements (norm weights, biases). */
static rf_status check_vec(const char *op, const struct rf_tensor *t, int64_t n)
{
    const int64_t ne = t->ne[0] * (t->ne[1] > 0 ? t->ne[1] : 1);
    if (t->type != RF_TYPE_F32 || ne != n || !t->data)
        return rf_fail(RF_STATUS_SHAPE, "%s: %s is %s (%lld), expected F32 (%lld)", op,
                       t->name ? t->name : "?", rf_type_name(t->type), (long long)ne,
                       (long long)n);
    return RF_OK;
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Whether an op writing `total` elements in rows of row_len also writes them quantized
 * for the product that reads them next (saving that product a quantizer launch).
 * Rows wider than any attention head: the per-head norms feed no product. */
static bool quantize_along(int64_t row_len, int64_t total, const void *a, const void *b,
                           const void *out)
{
    return row_len > RF_GPU_ATTN_HEAD_DIM_MAX && row_len % 32 == 0 && aligned16(a) &&
           aligned16(b) && aligned16(out) && rf_gpu_xq_bytes(1, total) <= RF_GPU_XBUF_BYTES;
}

static rf_status op_rms_norm(void *ctx, const float *x, const struct rf_tensor *w, float *y,
                             int64_t n, int64_t rows, float eps)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    RF_TRY(rf_gpu_take_error(c));
    if (w) RF_TRY(check_vec("rms_norm", w, n));
    const float *wd = w ? w->data : NULL;
    const bool q = rows > 0 && quantize_along(n, n * rows, x, wd, y);
    RF_TRY(rf_gpu_rms_norm(c->stream, x, wd, y, n, rows, eps, q ? c->xbuf : NULL));
    if (q) rf_gpu_xq_hold(c, y, n * rows);
    return RF_OK;
}

static void op_rope(void *ctx, float *x, int64_t n_tok, int n_head, int head_dim,
                    const int32_t *pos, const struct rf_rope_params *p)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    rf_gpu_note(c, rf_gpu_rope(c->stream, x, n_tok, n_head, head_dim, pos, p));
}

static void op_kv_store(void *ctx, const float *k, const float *v, int64_t n_tok, int64_t width,
                        const int32_t *slot, uint16_t *k_pool, uint16_t *v_pool)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    rf_gpu_note(c, rf_gpu_kv_store(c->stream, k, v, n_tok, width, slot, k_pool, v_pool));
}

static void op_rope_store(void *ctx, float *q, float *k, const float *v, int64_t n_tok,
                          int n_head, int n_head_kv, int head_dim, const int32_t *pos,
                          const struct rf_rope_params *p, const int32_t *slot, uint16_t *k_pool,
                          uint16_t *v_pool)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    rf_gpu_note(c, rf_gpu_rope_store(c->stream, q, k, v, n_tok, n_head, n_head_kv, head_dim, pos,
                                     p, slot, k_pool, v_pool));
}

/* The workspace is sized for the head shapes once; a step captured with it keeps
 * its address, so it only grows outside captures. */
static rf_status attn_work(struct rf_gpu_ctx *c, const struct rf_attn_params *p)
{
    const size_t need = rf_gpu_attention_work_bytes(p->n_head, p->n_head_kv, p->head_dim);
    if (need <= c->attn_work_bytes) return RF_OK;
    if (c->capturing && c->attn_work)
        return rf_fail(RF_STATUS_DEVICE, "gpu attention: workspace must grow inside a captured step");
    if (c->attn_work) {
        RF_GPU_TRY(cudaStreamSynchronize(c->stream));
        cudaFree(c->attn_work);
        c->attn_work = NULL;
        c->attn_work_bytes = 0;
    }
    RF_TRY(rf_gpu_malloc(&c->attn_work, need, "attention workspace"));
    c->attn_work_bytes = need;
    return RF_OK;
}

static rf_status op_attention(void *ctx, const float *q, const uint16_t *k_pool,
                              const uint16_t *v_pool, float *out, const struct rf_attn_params *p)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    RF_TRY(rf_gpu_take_error(c));
    RF_TRY(attn_work(c, p));
    return rf_gpu_attention(c->stream, q, k_pool, v_pool, out, p, c->attn_work,
                            c->attn_work_bytes, RF_GPU_ATTN_AUTO);
}

/* The GLU's output is the down product's input: written quantized too (its rows are
 * n_ff long, a multiple of 32 whenever the down weights are quantized, so blocks of 32
 * of the flat output are blocks of its rows). */
static void glu(struct rf_gpu_ctx *c, bool gelu, const float *gate, const float *up, float *out,
                int64_t n)
{
    rf_gpu_note_launch(); /* any op may write a product's input */
    const bool q = n > 0 && quantize_along(n, n, gate, up, out);
    const rf_status s = rf_gpu_glu(c->stream, gelu, gate, up, out, n, q ? c->xbuf : NULL);
    rf_gpu_note(c, s);
    if (q && s == RF_OK) rf_gpu_xq_hold(c, out, n);
}

static void op_swiglu(void *ctx, const float *gate, const float *up, float *out, int64_t n)
{
    glu(ctx, false, gate, up, out, n);
}

static void op_geglu(void *ctx, const float *gate, const float *up, float *out, int64_t n)
{
    glu(ctx, true, gate, up, out, n);
}

static void op_add(void *ctx, float *y, const float *x, int64_t n)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    rf_gpu_note(c, rf_gpu_add(c->stream, y, x, n));
}

static rf_status op_add_bias(void *ctx, float *y, const struct rf_tensor *b, int64_t n,
                             int64_t rows)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    RF_TRY(rf_gpu_take_error(c));
    RF_TRY(check_vec("add_bias", b, n));
    return rf_gpu_add_bias(c->stream, y, b->data, n, rows);
}

static void op_scale(void *ctx, float *y, float s, int64_t n)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch(); /* any op may write a product's input */
    rf_gpu_note(c, rf_gpu_scale(c->stream, y, s, n));
}

/* ---- context ---- */

static void gpu_free(void *ctx)
{
    struct rf_gpu_ctx *c = ctx;
    if (!c) return;
    cudaSetDevice(c->device);
    rf_gpu_capture_abort(c);
    if (c->stream) cudaStreamSynchronize(c->stream);
    rf_gpu_graphs_free(c);
    rf_gpu_blas_free(c);
    rf_gpu_stage_free(c);
    rf_gpu_arena_free(c);
    void *bufs[] = {c->xbuf, c->wbuf, c->mmq_cnt, c->sample_ws, c->attn_work};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) cudaFree(bufs[i]);
    if (c->sample_host) cudaFreeHost(c->sample_host);
    if (c->stream) cudaStreamDestroy(c->stream);
    if (c->upload) cudaStreamDestroy(c->upload);
    free(c);
}

static bool op_supports_type(void *ctx, enum rf_type t)
{
    (void)ctx;
    return rf_gpu_type_supported(t);
}

static const struct rf_backend_i gpu_iface = {
    .name = "gpu",
    .free = gpu_free,
    .alloc = rf_gpu_alloc,
    .release = rf_gpu_release,
    .matmul = rf_gpu_matmul,
    .matmul_multi = rf_gpu_matmul_multi,
    .rope_store = op_rope_store,
    .get_rows = rf_gpu_get_rows_op,
    .rms_norm = op_rms_norm,
    .rope = op_rope,
    .kv_store = op_kv_store,
    .attention = op_attention,
    .swiglu = op_swiglu,
    .geglu = op_geglu,
    .add = op_add,
    .add_bias = op_add_bias,
    .scale = op_scale,
    .copy_in = rf_gpu_copy_in,
    .copy_out = rf_gpu_copy_out,
    .copy = rf_gpu_copy,
    .host_alloc = rf_gpu_host_alloc,
    .host_free = rf_gpu_host_free,
    .load_tensor = rf_gpu_load_tensor,
    .free_tensor = rf_gpu_free_tensor,
    .step_begin = rf_gpu_step_begin,
    .step_end = rf_gpu_step_end,
    .step_forget = rf_gpu_step_forget,
    .sample = rf_gpu_sample_op,
    .supports_type = op_supports_type,
};

int rf_gpu_pdl;

/* Kernels may overlap their start with the end of the kernel before (compat.h,
 * RF_LAUNCH_PDL) from sm_90 on: the classes in RF_PDL_DEFAULT, or those of the bits
 * of RF_GPU_PDL (for comparisons; 0: none). */
#define RF_PDL_DEFAULT (RF_PDL_MMV | RF_PDL_ATTN | RF_PDL_EW)
static rf_status pdl_init(int device)
{
#ifdef RF_HIP
    (void)device;
    rf_gpu_pdl = 0;
#else
    int major = 0;
    RF_GPU_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    const char *env = getenv("RF_GPU_PDL");
    rf_gpu_pdl = major < 9 ? 0 : env && *env ? atoi(env) : RF_PDL_DEFAULT;
#endif
    return RF_OK;
}

static rf_status ctx_open(struct rf_gpu_ctx *c)
{
    RF_GPU_TRY(cudaSetDevice(c->device));
    RF_GPU_TRY(cudaDeviceGetAttribute(&c->n_sm, cudaDevAttrMultiProcessorCount, c->device));
    RF_TRY(pdl_init(c->device));
    RF_GPU_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    RF_GPU_TRY(cudaStreamCreateWithFlags(&c->upload, cudaStreamNonBlocking));
    RF_TRY(rf_gpu_malloc(&c->xbuf, RF_GPU_XBUF_BYTES, "activation scratch"));
    RF_TRY(rf_gpu_malloc(&c->wbuf, RF_GPU_WBUF_BYTES, "weight scratch"));
    RF_TRY(rf_gpu_malloc((void **)&c->mmq_cnt, RF_GPU_MMQ_COUNTERS * sizeof(unsigned),
                         "product counters"));
    RF_GPU_TRY(cudaMemset(c->mmq_cnt, 0, RF_GPU_MMQ_COUNTERS * sizeof(unsigned)));
    RF_TRY(rf_gpu_malloc(&c->sample_ws, RF_GPU_SAMPLE_WS * 8 + 16, "sampling scratch"));
    RF_GPU_TRY(cudaMallocHost((void **)&c->sample_host, sizeof *c->sample_host));
    RF_TRY(rf_gpu_blas_init(c));
    rf_gpu_arena_init(c);
    return RF_OK;
}

rf_status rf_backend_gpu_init(int device, struct rf_backend *out)
{
    out->iface = NULL;
    out->ctx = NULL;
    out->host_memory = false;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu: no usable GPU (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    if (device < 0 || device >= n)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu: device %d asked for, %d present", device, n);
    struct rf_gpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return rf_fail(RF_STATUS_NOMEM, "gpu backend: out of memory");
    c->device = device;
    rf_status s = ctx_open(c);
    if (s != RF_OK) {
        gpu_free(c);
        return s;
    }
    out->iface = &gpu_iface;
    out->ctx = c;
    return RF_OK;
}

/* ---- knobs ---- */

void rf_backend_gpu_set_matmul_path(struct rf_backend *b, enum rf_gpu_matmul_path p)
{
    ((struct rf_gpu_ctx *)b->ctx)->force_path = (int)p;
}

rf_status rf_backend_gpu_mem_info(const struct rf_backend *b, size_t *free_bytes,
                                  size_t *total_bytes)
{
    RF_GPU_TRY(cudaSetDevice(((const struct rf_gpu_ctx *)b->ctx)->device));
    RF_GPU_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return RF_OK;
}

size_t rf_backend_gpu_weight_bytes(const struct rf_backend *b)
{
    return rf_gpu_weight_bytes(b->ctx);
}

const char *rf_backend_gpu_device_name(const struct rf_backend *b)
{
    static _Thread_local char name[256];
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, ((const struct rf_gpu_ctx *)b->ctx)->device) != cudaSuccess)
        return "unknown GPU";
    snprintf(name, sizeof name, "%s", p.name);
    return name;
}

/* Products on the GPU, host side: shape checks and the choice between the
 * matrix-vector kernels (a few tokens: one pass over the weights per 8 tokens) and
 * dequantize-to-f16 + GEMM (prompts: tensor cores through cuBLAS; HIP builds, and CUDA
 * machines without cuBLAS, use the tiled kernel of matmul.cu). */
#include "backend/gpu/gpu_internal.h"

#if !defined(RF_HIP)
#include <cublas_v2.h>
#include <dlfcn.h>

/* cuBLAS is opened when a GPU backend starts, not linked: binaries of a GPU build then
 * start (and run on the CPU) where cuBLAS is absent, and do not map its ~600 MB for
 * CPU-only runs. Without it the tiled kernel of matmul.cu does the prompt products. */
/* Pointer types from the header's declarations (no link dependency). */
struct blas_api {
    void *lib;
    __typeof__(&cublasCreate_v2) create;
    __typeof__(&cublasDestroy_v2) destroy;
    __typeof__(&cublasSetStream_v2) set_stream;
    __typeof__(&cublasSetWorkspace_v2) set_workspace;
    __typeof__(&cublasGemmEx) gemm_ex;
};
static struct blas_api blas;

static bool blas_open(void)
{
    if (blas.lib) return true;
    static const char *const names[] = {"libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.13",
                                        "libcublas.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) return false;
    struct {
        const char *name;
        void **fn;
    } syms[] = {
        {"cublasCreate_v2", (void **)&blas.create},
        {"cublasDestroy_v2", (void **)&blas.destroy},
        {"cublasSetStream_v2", (void **)&blas.set_stream},
        {"cublasSetWorkspace_v2", (void **)&blas.set_workspace},
        {"cublasGemmEx", (void **)&blas.gemm_ex},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        *syms[i].fn = dlsym(lib, syms[i].name);
        if (!*syms[i].fn) {
            dlclose(lib);
            return false;
        }
    }
    blas.lib = lib;
    return true;
}

rf_status rf_gpu_blas_init(struct rf_gpu_ctx *c)
{
    if (!blas_open()) return RF_OK; /* products use the tiled kernel */
    cublasHandle_t h;
    if (blas.create(&h) != CUBLAS_STATUS_SUCCESS)
        return rf_fail(RF_STATUS_DEVICE, "gpu: cublasCreate failed");
    c->blas = h;
    RF_TRY(rf_gpu_malloc(&c->blas_ws, RF_GPU_BLAS_WS_BYTES, "cuBLAS workspace"));
    if (blas.set_stream(h, c->stream) != CUBLAS_STATUS_SUCCESS ||
        blas.set_workspace(h, c->blas_ws, RF_GPU_BLAS_WS_BYTES) != CUBLAS_STATUS_SUCCESS)
        return rf_fail(RF_STATUS_DEVICE, "gpu: cuBLAS stream/workspace setup failed");
    return RF_OK;
}

void rf_gpu_blas_free(struct rf_gpu_ctx *c)
{
    if (c->blas) blas.destroy((cublasHandle_t)c->blas);
    if (c->blas_ws) cudaFree(c->blas_ws);
    c->blas = NULL;
    c->blas_ws = NULL;
}

/* y (n, m) row stride ldy, f32 = a (m, k) f16 . b (n, k)^T f16, f32 accumulation. */
static rf_status gemm(struct rf_gpu_ctx *c, const void *a, const void *b, float *y, int64_t m,
                      int64_t n, int64_t k, int64_t ldy, bool add)
{
    if (!c->blas) return rf_gpu_gemm_f16(c->stream, a, b, y, m, n, k, ldy, add);
    const float one = 1.0f, zero = 0.0f;
    const cublasStatus_t s = blas.gemm_ex(
        (cublasHandle_t)c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &one, a,
        CUDA_R_16F, (int)k, b, CUDA_R_16F, (int)k, add ? &one : &zero, y, CUDA_R_32F, (int)ldy,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        return rf_fail(RF_STATUS_DEVICE, "gpu: cublasGemmEx (%lld x %lld x %lld) failed: %d",
                       (long long)m, (long long)n, (long long)k, (int)s);
    return RF_OK;
}
#else
rf_status rf_gpu_blas_init(struct rf_gpu_ctx *c)
{
    (void)c;
    return RF_OK;
}

void rf_gpu_blas_free(struct rf_gpu_ctx *c) { (void)c; }

static rf_status gemm(struct rf_gpu_ctx *c, const void *a, const void *b, float *y, int64_t m,
                      int64_t n, int64_t k, int64_t ldy, bool add)
{
    return rf_gpu_gemm_f16(c->stream, a, b, y, m, n, k, ldy, add);
}
#endif

/* Above this many tokens the weights are dequantized for a GEMM (f16 activations). Up
 * to it the products take int8 activations with the CPU path's rounding. Measured on
 * an H200 (bench/NOTES.md, GPU): taking the int8 kernels up to 128 tokens left the real
 * model's distance to llama.cpp where it was (KL 3.2e-3 against 2.9e-3) and cost the
 * server at 32 and 64 streams 30-45% of its throughput, so the GEMM starts at 17. */
#define MMV_MAX_BATCH 16

static rf_status check_matmul(const struct rf_tensor *w, int64_t x_cols, int64_t n_tok)
{
    if (x_cols != w->ne[0] || n_tok < 0 || w->ne[1] < 1)
        return rf_fail(RF_STATUS_SHAPE, "matmul: %s is (%lld x %lld) but x has %lld columns",
                       w->name ? w->name : "?", (long long)w->ne[1], (long long)w->ne[0],
                       (long long)x_cols);
    if (!rf_gpu_type_supported(w->type))
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu matmul: %s has type %s",
                       w->name ? w->name : "?", rf_type_name(w->type));
    return RF_OK;
}

/* Several products of one input (q, k, v; gate, up) quantize it once: a product of a
 * quantized type reuses xbuf when it holds the same activations and nothing has been
 * launched or copied since (the stamps match). Recording a step makes the same
 * decisions its replays repeat. */
static bool xq_ready(const struct rf_gpu_ctx *c, const float *x, int64_t n, bool f16)
{
    return c->xq_src == x && c->xq_n == n && c->xq_f16 == f16 &&
           c->xq_stamp == rf_gpu_launch_stamp();
}

void rf_gpu_xq_hold(struct rf_gpu_ctx *c, const float *x, int64_t n)
{
    c->xq_src = x;
    c->xq_n = n;
    c->xq_f16 = false;
    c->xq_stamp = rf_gpu_launch_stamp();
}

static bool is_quantized(enum rf_type t)
{
    return t != RF_TYPE_F32 && t != RF_TYPE_F16 && t != RF_TYPE_BF16;
}

/* One launch for up to RF_GPU_MMV_MAX_OUTS products of one quantized type and row size
 * (n_tok <= RF_GPU_MMV_MAX_TOK). */
static rf_status mmv_launch(struct rf_gpu_ctx *c, const struct rf_matmul_out *outs, int n,
                            const float *x, int64_t n_tok)
{
    const struct rf_tensor *w = outs[0].w;
    const int64_t k = w->ne[0];
    struct rf_gpu_mmv_out o[RF_GPU_MMV_MAX_OUTS];
    for (int i = 0; i < n; i++)
        o[i] = (struct rf_gpu_mmv_out){outs[i].w->data, outs[i].w->ne[1], outs[i].y, outs[i].add};
    RF_TRY(rf_gpu_mmv_multi(c->stream, w->type, o, n, k, rf_row_size(w->type, k), x, n_tok,
                            c->xbuf, xq_ready(c, x, n_tok * k, false)));
    rf_gpu_xq_hold(c, x, n_tok * k);
    return RF_OK;
}

static rf_status matmul_mmv(struct rf_gpu_ctx *c, const struct rf_tensor *w, size_t row_bytes,
                            const float *x, float *y, int64_t n_tok, bool add)
{
    const int64_t k = w->ne[0], rows = w->ne[1];
    if (is_quantized(w->type) && n_tok <= RF_GPU_MMV_MAX_TOK) {
        const struct rf_matmul_out o = {w, y, add};
        return mmv_launch(c, &o, 1, x, n_tok);
    }
    c->xq_src = NULL;
    for (int64_t t0 = 0; t0 < n_tok; t0 += RF_GPU_MMV_MAX_TOK) {
        const int64_t nt = n_tok - t0 < RF_GPU_MMV_MAX_TOK ? n_tok - t0 : RF_GPU_MMV_MAX_TOK;
        RF_TRY(rf_gpu_mmv_any(c->stream, w->type, w->data, rows, k, row_bytes, x + t0 * k, nt,
                              y + t0 * rows, c->xbuf, add));
    }
    return RF_OK;
}

/* Int8 or f16 tensor cores (the tile decides): the activations converted in chunks
 * that fit xbuf in either form (one chunk, and then shared with the next product of
 * the same input, for any batch a step takes). */
static rf_status matmul_mmq(struct rf_gpu_ctx *c, const struct rf_tensor *w, size_t row_bytes,
                            const float *x, float *y, int64_t n_tok, bool add)
{
    const int64_t k = w->ne[0], rows = w->ne[1];
    int64_t chunk = n_tok; /* f16 takes 2 bytes an element, int8 with its scales 1.125 */
    while (chunk > 1 && (size_t)(chunk * k) * 2 > RF_GPU_XBUF_BYTES) chunk = (chunk + 1) / 2;
    if ((size_t)(chunk * k) * 2 > RF_GPU_XBUF_BYTES)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu matmul: rows of %lld are too long",
                       (long long)k);
    const struct rf_gpu_mmq_scratch sc = {c->wbuf, RF_GPU_WBUF_BYTES, c->mmq_cnt,
                                          RF_GPU_MMQ_COUNTERS};
    for (int64_t t0 = 0; t0 < n_tok; t0 += chunk) {
        const int64_t nt = n_tok - t0 < chunk ? n_tok - t0 : chunk;
        const float *xc = x + t0 * k;
        const int tile = rf_gpu_mmq_tile(w->type, rows, nt);
        const bool th = rf_gpu_mmq_tile_f16(tile);
        if (!xq_ready(c, xc, nt * k, th))
            RF_TRY(th ? rf_gpu_f32_to_f16(c->stream, xc, c->xbuf, nt * k)
                      : rf_gpu_quantize_x(c->stream, xc, nt, k, c->xbuf));
        RF_TRY(rf_gpu_mmq(c->stream, w->type, w->data, rows, k, row_bytes, c->xbuf, nt,
                          y + t0 * rows, add, tile, &sc));
        if (nt == n_tok) {
            rf_gpu_xq_hold(c, xc, nt * k);
            c->xq_f16 = th;
        } else {
            c->xq_src = NULL;
        }
    }
    return RF_OK;
}

static rf_status matmul_gemm(struct rf_gpu_ctx *c, const struct rf_tensor *w, size_t row_bytes,
                             const float *x, float *y, int64_t n_tok, bool add)
{
    const int64_t k = w->ne[0], rows = w->ne[1];
    const int64_t tok_chunk = (int64_t)(RF_GPU_XBUF_BYTES / (2 * (size_t)k));
    const bool direct = w->type == RF_TYPE_F16;
    c->xq_src = NULL; /* xbuf gets the f16 activations */
    const int64_t slab = direct ? rows : (int64_t)(RF_GPU_WBUF_BYTES / (2 * (size_t)k));
    if (tok_chunk < 1 || slab < 1)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu matmul: rows of %lld are too long",
                       (long long)k);
    for (int64_t t0 = 0; t0 < n_tok; t0 += tok_chunk) {
        const int64_t nt = n_tok - t0 < tok_chunk ? n_tok - t0 : tok_chunk;
        RF_TRY(rf_gpu_f32_to_f16(c->stream, x + t0 * k, c->xbuf, nt * k));
        for (int64_t r0 = 0; r0 < rows; r0 += slab) {
            const int64_t rs = rows - r0 < slab ? rows - r0 : slab;
            const uint8_t *wr = (const uint8_t *)w->data + (size_t)r0 * row_bytes;
            const void *a = wr;
            if (!direct) {
                RF_TRY(rf_gpu_dequant_f16(c->stream, w->type, wr, rs, k, row_bytes, c->wbuf));
                a = c->wbuf;
            }
            RF_TRY(gemm(c, a, c->xbuf, y + t0 * rows + r0, rs, nt, k, rows, add));
        }
    }
    return RF_OK;
}

static rf_status product(struct rf_gpu_ctx *c, const struct rf_tensor *w, const float *x,
                         float *y, int64_t n_tok, bool add)
{
    const size_t row_bytes = rf_row_size(w->type, w->ne[0]);
    switch (c->force_path) {
    case RF_GPU_MATMUL_MMV: return matmul_mmv(c, w, row_bytes, x, y, n_tok, add);
    case RF_GPU_MATMUL_GEMM: return matmul_gemm(c, w, row_bytes, x, y, n_tok, add);
    case RF_GPU_MATMUL_MMQ:
        if (rf_gpu_mmq_supports(w->type)) return matmul_mmq(c, w, row_bytes, x, y, n_tok, add);
        break;
    default: break;
    }
    if (rf_gpu_mmq_wanted(w->type, n_tok)) return matmul_mmq(c, w, row_bytes, x, y, n_tok, add);
    if (n_tok <= MMV_MAX_BATCH) return matmul_mmv(c, w, row_bytes, x, y, n_tok, add);
    return matmul_gemm(c, w, row_bytes, x, y, n_tok, add);
}

static rf_status check_product(const struct rf_tensor *w, int64_t x_cols, int64_t n_tok)
{
    RF_TRY(check_matmul(w, x_cols, n_tok));
    const size_t row_bytes = rf_row_size(w->type, w->ne[0]);
    if (row_bytes == 0 || row_bytes == SIZE_MAX)
        return rf_fail(RF_STATUS_SHAPE, "matmul: %s: %lld columns are not whole %s blocks",
                       w->name ? w->name : "?", (long long)w->ne[0], rf_type_name(w->type));
    return RF_OK;
}

rf_status rf_gpu_matmul(void *ctx, const struct rf_tensor *w, const float *x, int64_t x_cols,
                        float *y, int64_t n_tok)
{
    struct rf_gpu_ctx *c = ctx;
    RF_TRY(rf_gpu_take_error(c));
    RF_TRY(check_product(w, x_cols, n_tok));
    if (n_tok == 0) return RF_OK;
    return product(c, w, x, y, n_tok, false);
}

/* How many of outs[i..] share one matrix-vector launch: a run of one quantized type,
 * when the automatic choice would take the matrix-vector kernels for each. */
static int mmv_run(const struct rf_gpu_ctx *c, const struct rf_matmul_out *outs, int i, int n,
                   int64_t n_tok)
{
    const enum rf_type t = outs[i].w->type;
    const bool mmv = c->force_path == RF_GPU_MATMUL_MMV ||
                     (c->force_path == RF_GPU_MATMUL_AUTO && !rf_gpu_mmq_wanted(t, n_tok));
    if (!is_quantized(t) || n_tok > RF_GPU_MMV_MAX_TOK || !mmv) return 1;
    int j = i + 1;
    while (j < n && j - i < RF_GPU_MMV_MAX_OUTS && outs[j].w->type == t) j++;
    return j - i;
}

rf_status rf_gpu_matmul_multi(void *ctx, const struct rf_matmul_out *outs, int n, const float *x,
                              int64_t x_cols, int64_t n_tok)
{
    struct rf_gpu_ctx *c = ctx;
    RF_TRY(rf_gpu_take_error(c));
    for (int i = 0; i < n; i++) RF_TRY(check_product(outs[i].w, x_cols, n_tok));
    if (n_tok == 0) return RF_OK;
    for (int i = 0; i < n;) {
        const int run = mmv_run(c, outs, i, n, n_tok);
        if (run > 1) RF_TRY(mmv_launch(c, outs + i, run, x, n_tok));
        else RF_TRY(product(c, outs[i].w, x, outs[i].y, n_tok, outs[i].add));
        i += run;
    }
    return RF_OK;
}

rf_status rf_gpu_get_rows_op(void *ctx, const struct rf_tensor *w, const int32_t *ids, int64_t n,
                             float *out)
{
    struct rf_gpu_ctx *c = ctx;
    rf_gpu_note_launch();
    RF_TRY(rf_gpu_take_error(c));
    if (!rf_gpu_type_supported(w->type))
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu get_rows: %s has type %s",
                       w->name ? w->name : "?", rf_type_name(w->type));
    const size_t row_bytes = rf_row_size(w->type, w->ne[0]);
    if (row_bytes == 0 || row_bytes == SIZE_MAX)
        return rf_fail(RF_STATUS_SHAPE, "get_rows: %s: bad row length %lld",
                       w->name ? w->name : "?", (long long)w->ne[0]);
    return rf_gpu_get_rows(c->stream, w->type, w->data, w->ne[1], w->ne[0], row_bytes, ids, n,
                           out);
}

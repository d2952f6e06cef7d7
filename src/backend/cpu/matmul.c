/* Products with weights in their stored block format, and embedding lookups.
 *
 * matmul: y (n_tok, rows) = x (n_tok, k) . W^T. Activation rows are converted once
 * per call into the weight type's vec_dot_type, then threads take chunks of weight
 * rows from an atomic counter. Within a chunk, tokens go in tiles so that each
 * weight row is read from memory once and reused from L1 by the tile's tokens
 * (vec_dot_multi unpacks it once for all of them; vec_dot_tile also prepares the
 * tile's per-token scales once for all the chunk's rows), while the chunk's rows
 * stay in L2 for the next tile. Each output element is the same vec_dot arithmetic on the
 * same inputs whatever the split, so results depend neither on the thread count
 * nor on the other tokens of the batch. */
#include <stdint.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"
#include "quant/quant_avx2.h"

#define TOK_TILE 8
#define CHUNKS_PER_THREAD 8
#define CHUNK_L2_BYTES (128 * 1024) /* weight bytes of one chunk when tokens reuse it */
#define DEQ_ROWS 8                  /* rows dequantized at a time on the f32 path */

struct mm_job {
    struct rf_cpu_ctx *c;
    const struct rf_type_traits *tt;
    const char *w;
    size_t w_stride; /* bytes per weight row */
    const char *xq;  /* vec_dot path: activations in vec_dot_type */
    size_t xq_stride;
    const float *x; /* f32 path */
    float *y;
    int64_t k, rows, n_tok;
    int64_t chunk;
    /* llama.cpp's repacked orders (see repack_dots): tokens below n_gemm use
     * multi_gemm, the rest dot_gemv; NULL: the type's vec_dot. */
    rf_vec_dot_multi_fn multi_gemm;
    rf_vec_dot_fn dot_gemv;
    int64_t n_gemm;
};

/* The AVX2 CPU path of llama.cpp repacks Q4_K and Q6_K matrices with a multiple of 8
 * rows and sums their products in other orders (quant_kquants_avx2.c): tokens in
 * groups of 4, then the last n % 4 one by one; a single token's Q6_K product is its
 * plain vec_dot (measured). The same orders here keep the results bit-identical to
 * it; only when the live kernels are the AVX2 ones. */
static void repack_dots(struct mm_job *j, const struct rf_tensor *w)
{
    if (j->rows % 8) return;
    if (w->type == RF_TYPE_Q4_K && j->tt->vec_dot == rf_vec_dot_q4_K_avx2) {
        j->multi_gemm = rf_vec_dot_multi_q4_K_r8_gemm_avx2;
        j->dot_gemv = rf_vec_dot_q4_K_r8_gemv_avx2;
        j->n_gemm = j->n_tok - j->n_tok % 4;
    } else if (w->type == RF_TYPE_Q6_K && j->tt->vec_dot == rf_vec_dot_q6_K_avx2 && j->n_tok > 1) {
        j->multi_gemm = rf_vec_dot_multi_q6_K_r8_avx2; /* one order for every token */
        j->n_gemm = j->n_tok;
    }
}

/* Tiles of TOK_TILE tokens as mm_chunk_vec_dot; within a tile the kernels take 4
 * tokens per pass over a weight row. */
static void mm_chunk_repacked(const struct mm_job *j, int64_t r0, int64_t r1)
{
    for (int64_t t0 = 0; t0 < j->n_gemm; t0 += TOK_TILE) {
        const int64_t t1 = t0 + TOK_TILE < j->n_gemm ? t0 + TOK_TILE : j->n_gemm;
        const char *x0 = j->xq + (size_t)t0 * j->xq_stride;
        for (int64_t r = r0; r < r1; r++)
            j->multi_gemm(j->k, &j->y[t0 * j->rows + r], (size_t)j->rows,
                          j->w + (size_t)r * j->w_stride, x0, j->xq_stride, t1 - t0);
    }
    for (int64_t t = j->n_gemm; t < j->n_tok; t++)
        for (int64_t r = r0; r < r1; r++)
            j->dot_gemv(j->k, &j->y[t * j->rows + r], j->w + (size_t)r * j->w_stride,
                        j->xq + (size_t)t * j->xq_stride);
}

static void mm_chunk_vec_dot(const struct mm_job *j, int64_t r0, int64_t r1)
{
    const rf_vec_dot_fn dot = j->tt->vec_dot;
    const rf_vec_dot_multi_fn multi = j->tt->vec_dot_multi;
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += TOK_TILE) {
        const int64_t t1 = t0 + TOK_TILE < j->n_tok ? t0 + TOK_TILE : j->n_tok;
        const char *x0 = j->xq + (size_t)t0 * j->xq_stride;
        if (j->tt->vec_dot_tile && t1 - t0 > 1) {
            j->tt->vec_dot_tile(j->k, j->y + t0 * j->rows + r0, (size_t)j->rows, j->w + (size_t)r0 * j->w_stride,
                                j->w_stride, r1 - r0, x0, j->xq_stride, t1 - t0);
            continue;
        }
        for (int64_t r = r0; r < r1; r++) {
            const char *wr = j->w + (size_t)r * j->w_stride;
            float *y0 = j->y + t0 * j->rows + r;
            if (multi && t1 - t0 > 1) {
                multi(j->k, y0, (size_t)j->rows, wr, x0, j->xq_stride, t1 - t0);
                continue;
            }
            for (int64_t t = t0; t < t1; t++)
                dot(j->k, y0 + (t - t0) * j->rows, wr, x0 + (size_t)(t - t0) * j->xq_stride);
        }
    }
}

/* Types without vec_dot: DEQ_ROWS rows to f32 in this thread's scratch, then the F32
 * type's own dot. */
static void mm_chunk_dequant(const struct mm_job *j, int64_t r0, int64_t r1, float *wf)
{
    const int64_t k = j->k;
    const rf_vec_dot_fn dot_f32 = rf_type_traits(RF_TYPE_F32)->vec_dot;
    for (int64_t rb = r0; rb < r1; rb += DEQ_ROWS) {
        const int64_t re = rb + DEQ_ROWS < r1 ? rb + DEQ_ROWS : r1;
        for (int64_t r = rb; r < re; r++)
            j->tt->to_float(j->w + (size_t)r * j->w_stride, wf + (r - rb) * k, k);
        for (int64_t t = 0; t < j->n_tok; t++)
            for (int64_t r = rb; r < re; r++)
                dot_f32(k, &j->y[t * j->rows + r], wf + (r - rb) * k, j->x + t * k);
    }
}

static void mm_chunk(void *varg, int64_t ci, int ith)
{
    struct mm_job *j = varg;
    const int64_t r0 = ci * j->chunk;
    const int64_t r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
    if (j->xq && j->multi_gemm) mm_chunk_repacked(j, r0, r1);
    else if (j->xq) mm_chunk_vec_dot(j, r0, r1);
    else mm_chunk_dequant(j, r0, r1, rf_cpu_work_slice(j->c, ith));
}

struct quantize_job {
    const struct rf_type_traits *vt;
    const float *x;
    char *xq;
    int64_t k;
    size_t stride;
};

static void quantize_rows(void *varg, int64_t t0, int64_t t1, int ith)
{
    (void)ith;
    const struct quantize_job *q = varg;
    for (int64_t t = t0; t < t1; t++)
        q->vt->from_float(q->x + t * q->k, q->xq + (size_t)t * q->stride, q->k);
}

/* Product of dims 2 and 3 (unused dims may be stored as 0 or 1). */
static int64_t outer_dims(const struct rf_tensor *t)
{
    return (t->ne[2] > 1 ? t->ne[2] : 1) * (t->ne[3] > 1 ? t->ne[3] : 1);
}

/* Checks a weight matrix (ne[0] columns of type blocks, ne[1] rows) against its bytes. */
static rf_status check_matrix(const char *op, const struct rf_tensor *w,
                              const struct rf_type_traits **tt)
{
    *tt = rf_type_traits(w->type);
    if (!*tt || !(*tt)->to_float)
        return rf_fail(RF_STATUS_UNSUPPORTED, "%s: %s has type %s, which has no CPU kernels", op,
                       w->name, rf_type_name(w->type));
    const int64_t k = w->ne[0], rows = w->ne[1];
    if (k <= 0 || rows < 0 || outer_dims(w) != 1 || k % (*tt)->block_size)
        return rf_fail(RF_STATUS_SHAPE,
                       "%s: %s is (%lld x %lld x %lld x %lld), not a matrix with rows of whole "
                       "%s blocks (%lld)",
                       op, w->name, (long long)w->ne[0], (long long)w->ne[1], (long long)w->ne[2],
                       (long long)w->ne[3], (*tt)->name, (long long)(*tt)->block_size);
    const size_t row = rf_row_size(w->type, k);
    if (!w->data || (rows && (size_t)rows > w->nbytes / row))
        return rf_fail(RF_STATUS_SHAPE, "%s: %s is (%lld x %lld) of %s but holds %zu bytes", op,
                       w->name, (long long)k, (long long)rows, (*tt)->name, w->nbytes);
    return RF_OK;
}

/* The vec_dot_type traits when the vec_dot path applies, else NULL. */
static const struct rf_type_traits *vec_dot_traits(const struct rf_cpu_ctx *c,
                                                   const struct rf_type_traits *tt, int64_t k)
{
    if (c->force_dequant || !tt->vec_dot) return NULL;
    const struct rf_type_traits *vt = rf_type_traits(tt->vec_dot_type);
    if (!vt || k % vt->block_size) return NULL;
    if (tt->vec_dot_type != RF_TYPE_F32 && !vt->from_float) return NULL;
    return vt;
}

static int64_t chunk_rows(const struct rf_cpu_ctx *c, int64_t rows, int64_t n_tok, size_t w_stride)
{
    int64_t chunk = (rows + c->nth * CHUNKS_PER_THREAD - 1) / (c->nth * CHUNKS_PER_THREAD);
    if (n_tok > 1) {
        const int64_t fit = (int64_t)(CHUNK_L2_BYTES / w_stride);
        if (chunk > fit) chunk = fit;
    }
    return chunk < 4 ? 4 : chunk;
}

/* Converts the activations into c->xq (or points at x when vec_dot wants F32). */
static rf_status convert_activations(struct rf_cpu_ctx *c, struct mm_job *j,
                                     const struct rf_type_traits *tt,
                                     const struct rf_type_traits *vt)
{
    if (tt->vec_dot_type == RF_TYPE_F32) {
        j->xq = (const char *)j->x;
        j->xq_stride = (size_t)j->k * sizeof(float);
        return RF_OK;
    }
    j->xq_stride = rf_row_size(tt->vec_dot_type, j->k);
    if ((size_t)j->n_tok > SIZE_MAX / j->xq_stride)
        return rf_fail(RF_STATUS_NOMEM, "matmul: %lld activation rows are too many",
                       (long long)j->n_tok);
    RF_TRY(rf_cpu_buf_reserve(&c->xq, (size_t)j->n_tok * j->xq_stride, "matmul"));
    struct quantize_job q = {.vt = vt, .x = j->x, .xq = c->xq.p, .k = j->k, .stride = j->xq_stride};
    rf_cpu_parallel_for(c, j->n_tok, 4 * j->k, quantize_rows, &q);
    j->xq = c->xq.p;
    return RF_OK;
}

rf_status rf_cpu_matmul(void *ctx, const struct rf_tensor *w, const float *x, int64_t x_cols,
                        float *y, int64_t n_tok)
{
    struct rf_cpu_ctx *c = ctx;
    const struct rf_type_traits *tt;
    RF_TRY(check_matrix("matmul", w, &tt));
    if (x_cols != w->ne[0])
        return rf_fail(RF_STATUS_SHAPE,
                       "matmul: %s is (%lld x %lld) but input rows have %lld columns", w->name,
                       (long long)w->ne[0], (long long)w->ne[1], (long long)x_cols);
    if (n_tok < 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "matmul: %s: %lld tokens", w->name, (long long)n_tok);
    if (n_tok == 0 || w->ne[1] == 0) return RF_OK;

    struct mm_job j = {.c = c,
                       .tt = tt,
                       .w = w->data,
                       .x = x,
                       .y = y,
                       .k = w->ne[0],
                       .rows = w->ne[1],
                       .n_tok = n_tok};
    j.w_stride = rf_row_size(w->type, j.k);
    const struct rf_type_traits *vt = vec_dot_traits(c, tt, j.k);
    if (vt) {
        RF_TRY(convert_activations(c, &j, tt, vt));
        repack_dots(&j, w);
    } else {
        RF_TRY(rf_cpu_work_reserve(c, (size_t)DEQ_ROWS * (size_t)j.k * sizeof(float), "matmul"));
    }
    j.chunk = chunk_rows(c, j.rows, n_tok, j.w_stride);
    const bool serial = j.rows * j.k * n_tok < RF_CPU_PAR_MIN_WORK;
    rf_cpu_parallel_tasks(c, (j.rows + j.chunk - 1) / j.chunk, serial, mm_chunk, &j);
    return RF_OK;
}

struct rows_job {
    const struct rf_type_traits *tt;
    const char *w;
    size_t stride;
    const int32_t *ids;
    float *out;
    int64_t k;
};

static void get_rows_range(void *varg, int64_t i0, int64_t i1, int ith)
{
    (void)ith;
    const struct rows_job *j = varg;
    for (int64_t i = i0; i < i1; i++)
        j->tt->to_float(j->w + (size_t)j->ids[i] * j->stride, j->out + i * j->k, j->k);
}

rf_status rf_cpu_get_rows(void *ctx, const struct rf_tensor *w, const int32_t *ids, int64_t n,
                          float *out)
{
    const struct rf_type_traits *tt;
    RF_TRY(check_matrix("get_rows", w, &tt));
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= w->ne[1])
            return rf_fail(
                RF_STATUS_INVALID_ARG,
                "get_rows: id %d (entry %lld) is out of range for %s, which has %lld rows", ids[i],
                (long long)i, w->name, (long long)w->ne[1]);
    struct rows_job j = {.tt = tt,
                         .w = w->data,
                         .stride = rf_row_size(w->type, w->ne[0]),
                         .ids = ids,
                         .out = out,
                         .k = w->ne[0]};
    rf_cpu_parallel_for(ctx, n, 2 * j.k, get_rows_range, &j);
    return RF_OK;
}

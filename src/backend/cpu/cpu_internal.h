#ifndef RF_BACKEND_CPU_INTERNAL_H
#define RF_BACKEND_CPU_INTERNAL_H
/* State shared by the CPU backend's files. One context serves one caller at a
 * time: ops run one after another, so they share the scratch buffers. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/threadpool.h"

/* Below this many work units (roughly: element operations) an op runs on the
 * calling thread: waking the pool costs about a microsecond per op. */
#define RF_CPU_PAR_MIN_WORK 32768

/* A grow-only 64-byte aligned buffer. */
struct rf_cpu_buf {
    void *p;
    size_t cap;
};

struct rf_cpu_ctx {
    struct rf_pool *pool;
    int nth;
    const struct rf_cpu_kernels *k;
    struct rf_cpu_buf xq;   /* matmul: activation rows converted to vec_dot_type */
    struct rf_cpu_buf work; /* nth slices of per-thread scratch */
    size_t work_stride;     /* bytes per slice, multiple of 64 */
    bool force_dequant;     /* matmul takes the dequantize-row path (tests) */
};

/* Makes b at least bytes long; contents are not kept. */
rf_status rf_cpu_buf_reserve(struct rf_cpu_buf *b, size_t bytes, const char *what);
/* Makes ctx->work hold nth slices of at least bytes each. */
rf_status rf_cpu_work_reserve(struct rf_cpu_ctx *c, size_t bytes, const char *what);
static inline void *rf_cpu_work_slice(struct rf_cpu_ctx *c, int ith)
{
    return (char *)c->work.p + (size_t)ith * c->work_stride;
}

/* Runs fn over [0, n) split into a few contiguous ranges per thread, or on the
 * caller alone when n * cost_per_item is too small to be worth waking the pool. */
typedef void (*rf_cpu_range_fn)(void *arg, int64_t i0, int64_t i1, int ith);
void rf_cpu_parallel_for(struct rf_cpu_ctx *c, int64_t n, int64_t cost_per_item, rf_cpu_range_fn fn,
                         void *arg);

/* Runs fn(arg, i, ith) for every task i in [0, n); threads take tasks from an
 * atomic counter, so uneven tasks balance. serial: run all on the caller. */
typedef void (*rf_cpu_task_fn)(void *arg, int64_t i, int ith);
void rf_cpu_parallel_tasks(struct rf_cpu_ctx *c, int64_t n, bool serial, rf_cpu_task_fn fn,
                           void *arg);

rf_status rf_cpu_matmul(void *ctx, const struct rf_tensor *w, const float *x, int64_t x_cols,
                        float *y, int64_t n_tok);
rf_status rf_cpu_get_rows(void *ctx, const struct rf_tensor *w, const int32_t *ids, int64_t n,
                          float *out);
void rf_cpu_rope(void *ctx, float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos,
                 const struct rf_rope_params *p);
void rf_cpu_kv_store(void *ctx, const float *k, const float *v, int64_t n_tok, int64_t width,
                     const int32_t *slot, uint16_t *k_pool, uint16_t *v_pool);
rf_status rf_cpu_attention(void *ctx, const float *q, const uint16_t *k_pool,
                           const uint16_t *v_pool, float *out, const struct rf_attn_params *p);

#endif

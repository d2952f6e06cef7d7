#ifndef RF_BACKEND_H
#define RF_BACKEND_H
/* The op interface the forward pass calls. Activations are float buffers owned by
 * the backend (host memory on the CPU); weights are rf_tensor views of the GGUF
 * blocks as stored. Products check shapes and return RF_STATUS_SHAPE naming the
 * tensor and both shapes. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/quant.h"
#include "rocmforge.h"

struct rf_tensor {
    const char *name;
    enum rf_type type;
    int64_t ne[4];     /* ne[0] is contiguous: a matrix of ne[1] rows of ne[0] */
    const void *data;  /* backend memory */
    size_t nbytes;
};

struct rf_rope_params {
    int n_rot;         /* rotated dimensions, <= head_dim, even */
    float freq_base;
    float freq_scale;  /* 1: no linear scaling */
    bool neox;         /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
};

struct rf_attn_params {
    int64_t n_tok;      /* query tokens */
    int n_head;
    int n_head_kv;      /* n_head % n_head_kv == 0 */
    int head_dim;
    const int32_t *pos; /* position of each query token; it sees cache rows 0..pos */
    int64_t n_kv;       /* valid cache rows */
    float scale;        /* applied to q.k */
    float softcap;      /* 0: none; else logits = softcap * tanh(logits / softcap) */
    int32_t window;     /* 0: none; else sees rows pos-window+1..pos */
};

struct rf_backend_i {
    const char *name;
    void (*free)(void *ctx);
    void *(*alloc)(void *ctx, size_t bytes); /* zeroed */
    void (*release)(void *ctx, void *buf);

    /* y (n_tok, w->ne[1]) = x (n_tok, x_cols) . w^T, requires x_cols == w->ne[0]. */
    rf_status (*matmul)(void *ctx, const struct rf_tensor *w, const float *x, int64_t x_cols,
                        float *y, int64_t n_tok);
    /* out (n, w->ne[0]) = rows ids[0..n) of w, dequantized. */
    rf_status (*get_rows)(void *ctx, const struct rf_tensor *w, const int32_t *ids, int64_t n,
                          float *out);
    /* y (rows, n) = x / sqrt(mean(x^2) + eps) * w; w is F32 of n, or NULL for none. */
    rf_status (*rms_norm)(void *ctx, const float *x, const struct rf_tensor *w, float *y,
                          int64_t n, int64_t rows, float eps);
    /* In place on x (n_tok, n_head, head_dim). */
    void (*rope)(void *ctx, float *x, int64_t n_tok, int n_head, int head_dim,
                 const int32_t *pos, const struct rf_rope_params *p);
    /* Writes k and v (n_tok, width) as f16 into cache rows pos[t] of k_cache/v_cache
     * (rows of width halves). */
    void (*kv_store)(void *ctx, const float *k, const float *v, int64_t n_tok, int64_t width,
                     const int32_t *pos, uint16_t *k_cache, uint16_t *v_cache);
    /* out (n_tok, n_head, head_dim) = softmax(q k^T * scale + causal mask) v, with each
     * group of n_head/n_head_kv query heads reading one cache head. */
    rf_status (*attention)(void *ctx, const float *q, const uint16_t *k_cache,
                           const uint16_t *v_cache, float *out, const struct rf_attn_params *p);
    /* out = silu(gate) * up, n elements. */
    void (*swiglu)(void *ctx, const float *gate, const float *up, float *out, int64_t n);
    /* out = gelu_tanh(gate) * up. */
    void (*geglu)(void *ctx, const float *gate, const float *up, float *out, int64_t n);
    /* y += x, n elements. */
    void (*add)(void *ctx, float *y, const float *x, int64_t n);
    /* y (rows, n) += b (F32, n) on every row. */
    rf_status (*add_bias)(void *ctx, float *y, const struct rf_tensor *b, int64_t n,
                          int64_t rows);
    /* y *= s, n elements. */
    void (*scale)(void *ctx, float *y, float s, int64_t n);
};

struct rf_backend {
    const struct rf_backend_i *iface;
    void *ctx;
};

rf_status rf_backend_cpu_init(int n_threads, struct rf_backend *out);

#endif

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

/* The KV cache is paged. Each layer has a pool of rows, each width = n_head_kv *
 * head_dim halves, grouped into blocks of block_size rows. Position r of a sequence
 * lives in physical row table[r / block_size] * block_size + r % block_size, where
 * table is the sequence's row of block_tables. A batch may mix sequences. */
struct rf_attn_params {
    int64_t n_tok;      /* query tokens */
    int n_head;
    int n_head_kv;      /* n_head % n_head_kv == 0 */
    int head_dim;
    const int32_t *pos; /* backend memory: position of each query token; it sees its
                           sequence's positions 0..pos (the causal mask) */
    const int32_t *seq; /* backend memory: each token's row of block_tables */
    const int32_t *block_tables; /* backend memory: (n_seq, max_blocks) block ids */
    int32_t n_seq;
    int32_t max_blocks;
    int32_t block_size;
    int32_t max_pos;    /* host value: no pos exceeds it (bounds work; graph-captured
                           kernels may ignore it and use max_blocks * block_size) */
    float scale;        /* applied to q.k */
    float softcap;      /* 0: none; else logits = softcap * tanh(logits / softcap) */
    int32_t window;     /* 0: none; else sees positions pos-window+1..pos */
};

struct rf_sample_params;

/* One of several products of the same input (matmul_multi). */
struct rf_matmul_out {
    const struct rf_tensor *w;
    float *y;  /* (n_tok, w->ne[1]) */
    bool add;  /* y += x . w^T instead of y = */
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
    /* Writes k and v (n_tok, width) as f16 into the pool rows slot[t] (backend memory;
     * slot < 0: token skipped) of k_pool / v_pool (rows of width halves). */
    void (*kv_store)(void *ctx, const float *k, const float *v, int64_t n_tok, int64_t width,
                     const int32_t *slot, uint16_t *k_pool, uint16_t *v_pool);
    /* out (n_tok, n_head, head_dim) = softmax(q k^T * scale + causal mask) v, with each
     * group of n_head/n_head_kv query heads reading one cache head. */
    rf_status (*attention)(void *ctx, const float *q, const uint16_t *k_pool,
                           const uint16_t *v_pool, float *out, const struct rf_attn_params *p);
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

    /* ---- memory and execution (every backend) ---- */
    /* Host to backend and backend to host copies; copy_out returns when the data is
     * on the host and reports any failure of the work queued before it. */
    rf_status (*copy_in)(void *ctx, void *dst, const void *src, size_t bytes);
    rf_status (*copy_out)(void *ctx, void *dst, const void *src, size_t bytes);
    /* Backend to backend memory, queued like the ops. */
    rf_status (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    /* Moves a weight tensor's data (t->data: host memory, the mmap) to where the
     * backend's kernels read it, and points t->data there; NULL for backends that
     * read host memory directly. Uploaded tensors are freed by free_tensor. */
    rf_status (*load_tensor)(void *ctx, struct rf_tensor *t);
    void (*free_tensor)(void *ctx, struct rf_tensor *t);

    /* ---- optional (NULL: not supported) ---- */
    /* The products outs[0..n) of one x (n_tok, x_cols), each as matmul gives it (add:
     * summed into y): q/k/v and gate/up read x once and launch once, and a product
     * can add into the residual stream instead of a separate add. */
    rf_status (*matmul_multi)(void *ctx, const struct rf_matmul_out *outs, int n,
                              const float *x, int64_t x_cols, int64_t n_tok);
    /* rope of q (n_tok, n_head, head_dim) and of k (n_tok, n_head_kv, head_dim) in
     * place, then kv_store of k and v (rows of n_head_kv * head_dim): the three ops in
     * one pass. */
    void (*rope_store)(void *ctx, float *q, float *k, const float *v, int64_t n_tok, int n_head,
                       int n_head_kv, int head_dim, const int32_t *pos,
                       const struct rf_rope_params *p, const int32_t *slot, uint16_t *k_pool,
                       uint16_t *v_pool);
    /* Host memory that copy_out fills fastest (page-locked), or NULL when there is
     * none to give (the caller then uses malloc); freed by host_free. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *p);
    /* Whether the products and row gathers take weights of type t (NULL: all types). */
    bool (*supports_type)(void *ctx, enum rf_type t);
    /* Step capture: the forward pass calls step_begin with a key naming the step's
     * shapes and buffers. *replayed == true: the ops recorded under that key were
     * queued again and the caller issues none; false: the caller issues the ops,
     * then calls step_end, which records and queues them. Ops issued between the two
     * must not synchronise with the host. */
    rf_status (*step_begin)(void *ctx, uint64_t key, bool *replayed);
    rf_status (*step_end)(void *ctx);
    /* Forgets every recorded step whose key has this context tag (key >> 32): its
     * buffers are being freed. */
    void (*step_forget)(void *ctx, uint32_t tag);
    /* Greedy / top-k / top-p / temperature sampling of one row of logits (backend
     * memory) to a token id on the host; see sampling/sampler.h for the meaning. */
    rf_status (*sample)(void *ctx, const float *logits, int32_t n_vocab,
                        const struct rf_sample_params *sp, uint64_t rng_state, int32_t *token);
};

/* Parameters of backend sampling, in the order of the host sampler's chain: temperature
 * <= 0 is greedy (highest logit, lowest id on ties); else the top_k highest logits (0:
 * all), then the smallest prefix of those, by descending probability under
 * softmax(logits), whose mass reaches top_p (1: all), then softmax(kept / temperature),
 * drawn by inverting its cumulative sum (in that order) at u * total. */
struct rf_sample_params {
    float temperature;
    int32_t top_k;
    float top_p;
    float u; /* in [0, 1) */
};

struct rf_backend {
    const struct rf_backend_i *iface;
    void *ctx;
    bool host_memory; /* buffers are host memory: ops' outputs can be read directly */
};

rf_status rf_backend_cpu_init(int n_threads, struct rf_backend *out);

/* The GPU backend on device `device` (a build without GPU support, or a machine
 * without a usable GPU, returns RF_STATUS_UNSUPPORTED with the reason). */
rf_status rf_backend_gpu_init(int device, struct rf_backend *out);

#endif

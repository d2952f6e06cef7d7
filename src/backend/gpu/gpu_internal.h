#ifndef RF_BACKEND_GPU_INTERNAL_H
#define RF_BACKEND_GPU_INTERNAL_H
/* The GPU backend's context, its error-check macros and the launchers of the product,
 * row-gather and sampling kernels (matmul.cu, sample.cu). Plain C: the host files
 * include it; the .cu files include it for the prototypes they define. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/gpu/compat.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "backend/backend.h"
#include "backend/gpu/gpu.h"
#include "backend/gpu/kernels_attn.h"

/* A failed runtime call: RF_STATUS_DEVICE naming the call and the runtime's reason. */
#define RF_GPU_TRY(call)                                                                           \
    do {                                                                                           \
        cudaError_t rf_gpu_e_ = (call);                                                            \
        if (rf_gpu_e_ != cudaSuccess)                                                              \
            return rf_fail(RF_STATUS_DEVICE, "gpu: %s: %s", #call, cudaGetErrorString(rf_gpu_e_)); \
    } while (0)

/* Every op but the products, every device copy and every replay counts
 * (rf_gpu_note_launch, at their entry points); a product compares stamps to know that
 * nothing ran since the last product quantized the same activations. */
void rf_gpu_note_launch(void);
unsigned long long rf_gpu_launch_stamp(void);

/* After a kernel launch: a failed launch becomes RF_STATUS_DEVICE naming the kernel. */
#define RF_GPU_LAUNCHED(name)                                                                      \
    do {                                                                                           \
        cudaError_t rf_gpu_e_ = cudaGetLastError();                                                \
        if (rf_gpu_e_ != cudaSuccess)                                                              \
            return rf_fail(RF_STATUS_DEVICE, "gpu kernel %s: %s", (name),                          \
                           cudaGetErrorString(rf_gpu_e_));                                         \
    } while (0)

#define RF_GPU_MAX_GRAPHS 64
#define RF_GPU_STAGE_BUFS 4
#define RF_GPU_STAGE_BYTES ((size_t)16 << 20)  /* pinned upload buffer, each */
#define RF_GPU_XBUF_BYTES ((size_t)32 << 20)   /* activations converted for a product */
#define RF_GPU_WBUF_BYTES ((size_t)64 << 20)   /* weight rows dequantized to f16 */
#define RF_GPU_BLAS_WS_BYTES ((size_t)32 << 20)
#define RF_GPU_SAMPLE_WS 4096                  /* partial results of the argmax, pairs */

struct rf_gpu_graph {
    uint64_t key;
    cudaGraphExec_t exec;
    uint64_t last_use;
};

/* Weights live in one reserved virtual range, mapped in granules as it fills, so the
 * memory they take is their bytes rounded up once (not once per tensor). */
struct rf_gpu_arena {
    uint64_t base;      /* CUdeviceptr; 0 when the driver has no virtual memory API */
    size_t reserved, mapped, used, granule;
    void **handles;     /* one physical allocation per mapped stretch */
    size_t *handle_bytes;
    int n_handles, cap_handles;
    int live;           /* tensors still placed in it */
};

struct rf_gpu_ctx {
    int device;
    int n_sm;
    cudaStream_t stream;     /* every op, copy and replay */
    cudaStream_t upload;     /* weight uploads */
    void *blas;              /* cublasHandle_t (CUDA builds) */
    void *blas_ws;

    /* Sticky failure of an op that cannot return a status (rope, add, ...):
     * reported by the next op that can. */
    rf_status err;
    char err_msg[256];

    /* Scratch, sized once so that captured steps never see it move. */
    void *xbuf;              /* RF_GPU_XBUF_BYTES */
    const float *xq_src;     /* activations xbuf holds quantized (NULL: none) */
    bool xq_f16;             /* ... as f16 (else int8 with their scales) */
    int64_t xq_n;            /* their element count */
    unsigned long long xq_stamp; /* rf_gpu_launch_stamp() right after they were used */
    void *wbuf;              /* RF_GPU_WBUF_BYTES; also the split products' partial tiles */
    unsigned *mmq_cnt;       /* RF_GPU_MMQ_COUNTERS, zero between products */
    void *sample_ws;         /* RF_GPU_SAMPLE_WS (value, index) pairs + the result */
    int32_t *sample_host;    /* pinned: the sampled id */

    void *stage[RF_GPU_STAGE_BUFS]; /* pinned */
    cudaEvent_t stage_done[RF_GPU_STAGE_BUFS];
    int stage_next;

    struct rf_gpu_arena arena;
    size_t loose_bytes;      /* tensors outside the arena (no virtual memory API) */
    void *attn_work;         /* the attention kernels' workspace */
    size_t attn_work_bytes;

    struct rf_gpu_graph graphs[RF_GPU_MAX_GRAPHS];
    int n_graphs;
    uint64_t use_clock;
    bool capturing;
    uint64_t capture_key;

    int force_path;          /* tests: 0 auto, 1 matrix-vector, 2 dequantize + GEMM */
};

/* Whether kernels launch with RF_LAUNCH_PDL's overlap (compat.h; set at init). */
extern int rf_gpu_pdl;

/* Records a failure of a void op; the first one is kept. */
void rf_gpu_note(struct rf_gpu_ctx *c, rf_status s);
/* Returns and clears the sticky failure, RF_OK when none. */
rf_status rf_gpu_take_error(struct rf_gpu_ctx *c);

/* ---- memory (gpu_memory.c) ---- */
/* cudaMalloc with the tail padding the kernels rely on; OOM names what, the bytes
 * asked and the bytes free. */
rf_status rf_gpu_malloc(void **p, size_t bytes, const char *what);
void *rf_gpu_alloc(void *ctx, size_t bytes);
void rf_gpu_release(void *ctx, void *buf);
rf_status rf_gpu_copy_in(void *ctx, void *dst, const void *src, size_t bytes);
rf_status rf_gpu_copy_out(void *ctx, void *dst, const void *src, size_t bytes);
rf_status rf_gpu_copy(void *ctx, void *dst, const void *src, size_t bytes);
void *rf_gpu_host_alloc(void *ctx, size_t bytes);
void rf_gpu_host_free(void *ctx, void *p);
rf_status rf_gpu_load_tensor(void *ctx, struct rf_tensor *t);
void rf_gpu_free_tensor(void *ctx, struct rf_tensor *t);
void rf_gpu_arena_init(struct rf_gpu_ctx *c);
void rf_gpu_arena_free(struct rf_gpu_ctx *c);
void rf_gpu_stage_free(struct rf_gpu_ctx *c);
size_t rf_gpu_weight_bytes(const struct rf_gpu_ctx *c);

/* ---- steps and sampling (gpu_step.c) ---- */
rf_status rf_gpu_step_begin(void *ctx, uint64_t key, bool *replayed);
rf_status rf_gpu_step_end(void *ctx);
void rf_gpu_step_forget(void *ctx, uint32_t tag);
void rf_gpu_graphs_free(struct rf_gpu_ctx *c);
/* Ends a capture left open by a failed step, dropping what it recorded. */
void rf_gpu_capture_abort(struct rf_gpu_ctx *c);
rf_status rf_gpu_sample_op(void *ctx, const float *logits, int32_t n_vocab,
                           const struct rf_sample_params *sp, uint64_t rng_state, int32_t *token);

/* ---- products, host side (gpu_matmul.c) ---- */
rf_status rf_gpu_matmul(void *ctx, const struct rf_tensor *w, const float *x, int64_t x_cols,
                        float *y, int64_t n_tok);
/* xbuf now holds x (n elements) quantized, written by the op just launched. */
void rf_gpu_xq_hold(struct rf_gpu_ctx *c, const float *x, int64_t n);
rf_status rf_gpu_matmul_multi(void *ctx, const struct rf_matmul_out *outs, int n, const float *x,
                              int64_t x_cols, int64_t n_tok);
rf_status rf_gpu_get_rows_op(void *ctx, const struct rf_tensor *w, const int32_t *ids, int64_t n,
                             float *out);
rf_status rf_gpu_blas_init(struct rf_gpu_ctx *c);
void rf_gpu_blas_free(struct rf_gpu_ctx *c);

/* ---- products (matmul.cu) ---- */

/* Largest token count of the matrix-vector kernels (one weight pass per this many). */
#define RF_GPU_MMV_MAX_TOK 8

/* Whether the matrix-vector kernels take this weight type; the same types dequantize. */
bool rf_gpu_type_supported(enum rf_type t);
/* Bytes of xbuf the activation quantizer needs for n_tok rows of k. */
size_t rf_gpu_xq_bytes(int64_t n_tok, int64_t k);

/* One output of a launch of several products of the same x: y (n_tok, rows) = x . w^T
 * (add: y +=), w rows of the launch's type and row length. */
struct rf_gpu_mmv_out {
    const void *w;
    int64_t rows;
    float *y;
    bool add;
};
#define RF_GPU_MMV_MAX_OUTS 4
/* outs[i].y (n_tok, rows) (+)= x (n_tok, k) . w^T for up to RF_GPU_MMV_MAX_OUTS
 * weights of type t and row length k (q, k, v; gate, up) in one launch, n_tok <=
 * RF_GPU_MMV_MAX_TOK, reading each weight once; w rows are row_bytes apart. Quantized
 * types take x from xbuf (rf_gpu_xq_bytes), quantized here unless x_ready says that
 * xbuf already holds it. */
rf_status rf_gpu_mmv_multi(void *stream, enum rf_type t, const struct rf_gpu_mmv_out *outs,
                           int n_out, int64_t k, size_t row_bytes, const float *x, int64_t n_tok,
                           void *xbuf, bool x_ready);
/* out (rows, k) f16 = w rows dequantized. */
rf_status rf_gpu_dequant_f16(void *stream, enum rf_type t, const void *w, int64_t rows,
                             int64_t k, size_t row_bytes, uint16_t *out);
/* out (n) f16 = x (n) f32. */
rf_status rf_gpu_f32_to_f16(void *stream, const float *x, uint16_t *out, int64_t n);
/* y (n, m) f32 with row stride ldy, y[j*ldy + i] (+)= a_i . b_j, a (m, k) and b (n, k)
 * f16: the products without cuBLAS. */
rf_status rf_gpu_gemm_f16(void *stream, const uint16_t *a, const uint16_t *b, float *y,
                          int64_t m, int64_t n, int64_t k, int64_t ldy, bool add);
/* out (n, k) f32 = rows ids[0..n) (device memory) of w, dequantized. */
rf_status rf_gpu_get_rows(void *stream, enum rf_type t, const void *w, int64_t rows, int64_t k,
                          size_t row_bytes, const int32_t *ids, int64_t n, float *out);

/* ---- sampling (sample.cu) ---- */

/* Writes the sampled id of logits (n) to *out_dev (device memory). ws: RF_GPU_SAMPLE_WS
 * pairs of scratch. */
rf_status rf_gpu_sample(void *stream, const float *logits, int32_t n,
                        const struct rf_sample_params *sp, void *ws, int32_t *out_dev);

/* xbuf = x (n_tok, k) as int8 per element, then one f32 scale per 32 elements
 * (rf_gpu_xq_bytes), rounded as the CPU path rounds; k a multiple of 32. */
rf_status rf_gpu_quantize_x(void *stream, const float *x, int64_t n_tok, int64_t k, void *xbuf);

/* ---- kernels that also write the next product's input quantized (elementwise.cu) ---- */

/* rf_gpu_rms_norm and rf_gpu_glu (kernels_attn.h) take an xbuf: when not NULL it gets
 * their output quantized (n % 32 == 0, 16-byte aligned rows). */

/* rf_gpu_rope of q (n_head heads) and of k (n_kv heads), then rf_gpu_kv_store of k and
 * v (rows of n_kv * head_dim), in one launch. */
rf_status rf_gpu_rope_store(void *stream, float *q, float *k, const float *v, int64_t n_tok,
                            int n_head, int n_kv, int head_dim, const int32_t *pos,
                            const struct rf_rope_params *p, const int32_t *slot,
                            uint16_t *k_pool, uint16_t *v_pool);

/* ---- batched products on tensor cores, int8 or f16 activations (mmq.cu) ---- */

/* Whether rf_gpu_mmq takes weights of type t. */
bool rf_gpu_mmq_supports(enum rf_type t);
/* Fewest tokens the automatic choice gives to rf_gpu_mmq: the matrix-vector kernel for
 * 5..8 tokens is compute bound (11008 x 4096 Q4_0 on an H200: 4 tokens 24 us, 8 tokens
 * 51 us) where the int8 tensor cores' 16-token tile takes 28 us. */
#define RF_GPU_MMQ_MIN_TOK 5
/* Whether the automatic choice gives n_tok tokens of type t to rf_gpu_mmq: false below
 * RF_GPU_MMQ_MIN_TOK, for types it does not take and where another path measures
 * faster. */
bool rf_gpu_mmq_wanted(enum rf_type t, int64_t n_tok);
/* The tile rf_gpu_mmq takes for n_tok tokens of a rows-row weight of type t (forced by
 * rf_gpu_mmq_force_tile or RF_GPU_MMQ_TILE, else chosen by shape), and whether a tile
 * takes f16 activations (else rf_gpu_quantize_x's int8 ones). */
int rf_gpu_mmq_tile(enum rf_type t, int64_t rows, int64_t n_tok);
bool rf_gpu_mmq_tile_f16(int tile);
/* Scratch for products whose k is split over several blocks per tile: the partial
 * tiles (ws) and one counter per tile, zero between launches (cnt, n_cnt of them). */
struct rf_gpu_mmq_scratch {
    float *ws;
    size_t ws_bytes;
    unsigned *cnt;
    int64_t n_cnt;
};
#define RF_GPU_MMQ_COUNTERS 8192
/* y (n_tok, rows) = x . w^T (add: y += x . w^T) by the given tile, x given in xbuf for
 * n_tok rows of k: as rf_gpu_quantize_x writes it, or as f16 for an f16 tile. With sc
 * (may be NULL), k may be split where the tiles alone leave the device idle. */
rf_status rf_gpu_mmq(void *stream, enum rf_type t, const void *w, int64_t rows, int64_t k,
                     size_t row_bytes, const void *xbuf, int64_t n_tok, float *y, bool add,
                     int tile, const struct rf_gpu_mmq_scratch *sc);

/* As rf_gpu_mmv (add: y +=), and float rows of any length (a slower kernel when
 * k % 8 != 0). */
rf_status rf_gpu_mmv_any(void *stream, enum rf_type t, const void *w, int64_t rows, int64_t k,
                         size_t row_bytes, const float *x, int64_t n_tok, float *y, void *xbuf,
                         bool add);

#ifdef __cplusplus
}
#endif

#endif

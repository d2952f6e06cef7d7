#ifndef RF_BACKEND_GPU_KERNELS_ATTN_H
#define RF_BACKEND_GPU_KERNELS_ATTN_H
/* Launchers of the GPU backend's row, element-wise and attention kernels
 * (elementwise.cu, attention.cu). Plain C: the backend's host code calls them.
 *
 * Every pointer is device memory; `stream` is the cudaStream_t (hipStream_t) the
 * kernel is queued on. None synchronises, allocates or reads device memory on the
 * host, so all of them can be captured into a graph. A launch failure returns
 * RF_STATUS_DEVICE with the kernel's name; parameters the kernels cannot take
 * return RF_STATUS_INVALID_ARG or RF_STATUS_UNSUPPORTED before anything is queued. */
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest head_dim the attention kernels take. */
#define RF_GPU_ATTN_HEAD_DIM_MAX 256

/* y (rows, n) = x / sqrt(mean(x^2) + eps) * w; w (n floats) or NULL. y may be x.
 * xbuf: NULL, or where y goes quantized for the next product (n % 32 == 0). */
rf_status rf_gpu_rms_norm(void *stream, const float *x, const float *w, float *y, int64_t n,
                          int64_t rows, float eps, void *xbuf);

/* In place on x (n_tok, n_head, head_dim), pos (n_tok); semantics as the vtable's rope. */
rf_status rf_gpu_rope(void *stream, float *x, int64_t n_tok, int n_head, int head_dim,
                      const int32_t *pos, const struct rf_rope_params *p);

/* k, v (n_tok, width) to f16 pool rows slot[t] (slot < 0: skipped). */
rf_status rf_gpu_kv_store(void *stream, const float *k, const float *v, int64_t n_tok,
                          int64_t width, const int32_t *slot, uint16_t *k_pool, uint16_t *v_pool);

/* out = silu(gate) * up (gelu: gelu_tanh(gate) * up), and into xbuf quantized unless it
 * is NULL (n % 32 == 0); y += x; y *= s (n elements). */
rf_status rf_gpu_glu(void *stream, bool gelu, const float *gate, const float *up, float *out,
                     int64_t n, void *xbuf);
rf_status rf_gpu_add(void *stream, float *y, const float *x, int64_t n);
rf_status rf_gpu_scale(void *stream, float *y, float s, int64_t n);
/* y (rows, n) += b (n) on every row. */
rf_status rf_gpu_add_bias(void *stream, float *y, const float *b, int64_t n, int64_t rows);

/* Which attention kernel runs. TENSOR: tensor-core kernel (CUDA builds, head_dim a
 * multiple of 16 up to 128), splitting the sequence when there are few query rows;
 * DECODE: one launch on the CUDA cores whose work follows the tokens' positions (splits
 * cut on the device, combined by the last block of each token to finish); PREFILL:
 * tiled kernel on the CUDA cores. AUTO: DECODE when the batch has at most 2 query
 * tokens per sequence, else TENSOR where it applies, else PREFILL. A path that cannot
 * take the shapes returns RF_STATUS_UNSUPPORTED. */
enum rf_gpu_attn_path {
    RF_GPU_ATTN_AUTO = 0,
    RF_GPU_ATTN_DECODE,
    RF_GPU_ATTN_PREFILL,
    RF_GPU_ATTN_TENSOR,
};

/* Workspace bytes the split-sequence partials (DECODE and TENSOR paths) need for any
 * batch and any context length with these head shapes (it depends on neither): 64 KiB
 * of DECODE's split counters, then at most 16384 (token, head, split) partials of
 * head_dim + 2 floats. Size it once. The counters need no clearing by the caller: a
 * DECODE launch outside a capture zeroes them first, a captured one at the first
 * launch of each capture, and every launch leaves them zero. */
size_t rf_gpu_attention_work_bytes(int n_head, int n_head_kv, int head_dim);

/* out (n_tok, n_head, head_dim) = attention of q (same shape) over the paged f16
 * pools, exactly as struct rf_attn_params says; every pointer of p is device memory
 * (p->seq may be NULL: every token uses row 0 of the block tables). work: device
 * memory of work_bytes, at least rf_gpu_attention_work_bytes(); may be NULL when the
 * path is PREFILL. The grid depends only on n_tok, the head shapes, the device and
 * max_blocks * block_size (never on positions), so a captured launch stays valid
 * as sequences grow. Cache rows whose block id is negative count as masked. q and
 * out need 8-byte alignment, the pools 16-byte. */
rf_status rf_gpu_attention(void *stream, const float *q, const uint16_t *k_pool,
                           const uint16_t *v_pool, float *out, const struct rf_attn_params *p,
                           void *work, size_t work_bytes, enum rf_gpu_attn_path path);

#ifdef __cplusplus
}
#endif

#endif

#ifndef RF_BACKEND_GPU_H
#define RF_BACKEND_GPU_H
/* Knobs and measurements of the GPU backend for tests, benchmarks and the loader;
 * the forward pass never needs them. b must come from rf_backend_gpu_init. Only in
 * builds with RF_HAVE_GPU. */
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which product kernel matmul uses: AUTO picks matrix-vector for a few tokens (in
 * passes of RF_GPU_MMV_MAX_TOK), tensor cores (mmq.cu) where rf_gpu_mmq_wanted says so,
 * dequantize + GEMM otherwise. MMQ falls back to AUTO for types it does not take. */
enum rf_gpu_matmul_path {
    RF_GPU_MATMUL_AUTO = 0,
    RF_GPU_MATMUL_MMV,
    RF_GPU_MATMUL_GEMM,
    RF_GPU_MATMUL_MMQ,
};
void rf_backend_gpu_set_matmul_path(struct rf_backend *b, enum rf_gpu_matmul_path p);

/* Device memory free and total (bytes), as the runtime reports it. */
rf_status rf_backend_gpu_mem_info(const struct rf_backend *b, size_t *free_bytes,
                                  size_t *total_bytes);
/* Device memory taken by the tensors placed with load_tensor (bytes mapped). */
size_t rf_backend_gpu_weight_bytes(const struct rf_backend *b);
/* Device name, e.g. "NVIDIA H100 80GB HBM3". */
const char *rf_backend_gpu_device_name(const struct rf_backend *b);

/* Device-to-device copy bandwidth of device `device`, bytes read plus written per
 * second: the median of several copies of `bytes` (0: 1 GiB). */
rf_status rf_gpu_copy_bandwidth(int device, size_t bytes, double *bytes_per_s);

#ifdef __cplusplus
}
#endif

#endif

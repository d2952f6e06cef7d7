#ifndef RF_BACKEND_CPU_H
#define RF_BACKEND_CPU_H
/* Knobs of the CPU backend for tests and benchmarks; the forward pass never needs
 * them. b must come from rf_backend_cpu_init. */
#include <stdbool.h>

#include "backend/backend.h"

/* Kernel set: "avx2" or "scalar" (false when unknown or not supported here). */
bool rf_backend_cpu_set_kernels(struct rf_backend *b, const char *name);
const char *rf_backend_cpu_kernels(const struct rf_backend *b);
/* Matmul dequantizes weight rows to f32 even where the type has a vec_dot. */
void rf_backend_cpu_force_dequant(struct rf_backend *b, bool on);

#endif

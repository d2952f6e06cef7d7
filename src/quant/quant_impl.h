#ifndef RF_QUANT_IMPL_H
#define RF_QUANT_IMPL_H
/* Kernels behind the traits table. *_ref are portable C and define the numerics;
 * *_avx2 live in *_avx2.c (built with -mavx2 -mfma -mf16c) and are only called
 * after rf_cpu_has_avx2(). Every n is a multiple of the type's block size (for the
 * dots: of both operands' block sizes).
 *
 * Dequantizers and quantizers are bit-exact with gguf-py: each float result is the
 * same sequence of single-precision IEEE operations (d*q, then + m, no fused
 * multiply-add), so no file including this header may contract a*b+c. */
#include <stdint.h>

#include "quant/blocks.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* f32 value of every f16 bit pattern, filled by rf_quant_init before any SIMD kernel
 * is installed (one load per scale instead of a conversion in the hot loops). */
extern float rf_f16_table[1 << 16];

/* MXFP4: e2m1 magnitudes doubled, sign in bit 3. IQ4_NL: the non-linear grid. */
extern const int8_t rf_mxfp4_values[16];
extern const int8_t rf_iq4nl_values[16];

/* 2^(e-127) / 2 as an f32, exact for every e (subnormal for e < 2). */
static inline float rf_e8m0_to_fp32_half(uint8_t e)
{
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

/* Q4_K/Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes. */
static inline void rf_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q3_K: the 16 signed 6-bit scales (-32..31) from the 12 packed bytes. */
void rf_q3k_unpack_scales(const uint8_t *packed, int8_t *out);

#define RF_DECL_TO_FLOAT(t) void rf_to_float_##t##_ref(const void *x, float *y, int64_t n)
#define RF_DECL_FROM_FLOAT(t, isa) void rf_from_float_##t##_##isa(const float *x, void *y, int64_t n)
#define RF_DECL_VEC_DOT(t, isa) void rf_vec_dot_##t##_##isa(int64_t n, float *s, const void *x, const void *y)

RF_DECL_TO_FLOAT(f32);
RF_DECL_TO_FLOAT(f16);
RF_DECL_TO_FLOAT(bf16);
RF_DECL_TO_FLOAT(q4_0);
RF_DECL_TO_FLOAT(q4_1);
RF_DECL_TO_FLOAT(q5_0);
RF_DECL_TO_FLOAT(q5_1);
RF_DECL_TO_FLOAT(q8_0);
RF_DECL_TO_FLOAT(q8_1);
RF_DECL_TO_FLOAT(q2_K);
RF_DECL_TO_FLOAT(q3_K);
RF_DECL_TO_FLOAT(q4_K);
RF_DECL_TO_FLOAT(q5_K);
RF_DECL_TO_FLOAT(q6_K);
RF_DECL_TO_FLOAT(q8_K);
RF_DECL_TO_FLOAT(iq4_nl);
RF_DECL_TO_FLOAT(mxfp4);

RF_DECL_FROM_FLOAT(f32, ref);
RF_DECL_FROM_FLOAT(f16, ref);
RF_DECL_FROM_FLOAT(bf16, ref);
RF_DECL_FROM_FLOAT(q4_0, ref);
RF_DECL_FROM_FLOAT(q4_1, ref);
RF_DECL_FROM_FLOAT(q5_0, ref);
RF_DECL_FROM_FLOAT(q5_1, ref);
RF_DECL_FROM_FLOAT(q8_0, ref);
RF_DECL_FROM_FLOAT(q8_1, ref);
RF_DECL_FROM_FLOAT(q8_K, ref);

RF_DECL_VEC_DOT(f32, ref);
RF_DECL_VEC_DOT(f16, ref);
RF_DECL_VEC_DOT(bf16, ref);
RF_DECL_VEC_DOT(q4_0, ref);
RF_DECL_VEC_DOT(q4_1, ref);
RF_DECL_VEC_DOT(q5_0, ref);
RF_DECL_VEC_DOT(q5_1, ref);
RF_DECL_VEC_DOT(q8_0, ref);
RF_DECL_VEC_DOT(iq4_nl, ref);
RF_DECL_VEC_DOT(mxfp4, ref);
RF_DECL_VEC_DOT(q2_K, ref);
RF_DECL_VEC_DOT(q3_K, ref);
RF_DECL_VEC_DOT(q4_K, ref);
RF_DECL_VEC_DOT(q5_K, ref);
RF_DECL_VEC_DOT(q6_K, ref);

#endif

#ifndef RF_BACKEND_CPU_KERNELS_H
#define RF_BACKEND_CPU_KERNELS_H
/* Inner loops of the CPU backend, one table per ISA; the backend picks one at
 * init. Every slot works on any n (no alignment or multiple-of-8 requirement). */
#include <stddef.h>
#include <stdint.h>

/* The tanh approximation of GELU: 0.5 g (1 + tanh(sqrt(2/pi) g (1 + a g^2))). */
#define GELU_SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_COEF_A 0.044715f

/* GELU as ggml's CPU path computes it, which llama.cpp's results depend on: for
 * -10 < g < 10, g is rounded to f16 and looked up in this table of
 * f16(0.5 h (1 + tanh((sqrt(2/pi) h) fma(a h, h, 1)))) over every half h; g <= -10
 * gives 0 (+0, not g * 0), g >= 10 gives g. Built once, on first use (thread-safe). */
const uint16_t *rf_cpu_gelu_table(void);
#define RF_GELU_LO (-10.0f)
#define RF_GELU_HI 10.0f

/* Summation orders of the f16 attention products (see dot_f16_rows). */
#define RF_LANES_GEMM 8
#define RF_LANES_VEC 32

struct rf_cpu_kernels {
    const char *name;
    /* sum x[i]*x[i]: products in f32, sum in double. */
    double (*sum_sq)(const float *x, int64_t n);
    /* y[i] = x[i] * s * w[i]; w NULL: y[i] = x[i] * s. */
    void (*scale_mul)(const float *x, float s, const float *w, float *y, int64_t n);
    void (*swiglu)(const float *gate, const float *up, float *out, int64_t n);
    /* out = gelu(gate) * up with the table GELU above. */
    void (*geglu)(const float *gate, const float *up, float *out, int64_t n);
    void (*add)(float *y, const float *x, int64_t n);
    void (*scale)(float *y, float s, int64_t n);
    /* f32 -> f16, round to nearest even. */
    void (*to_f16)(const float *x, uint16_t *y, int64_t n);
    /* y[i] = x[i] * s rounded to f16 (round to nearest even), kept as f32. */
    void (*scale_round_f16)(const float *x, float s, float *y, int64_t n);
    /* out[r] = sum_i q[i] * k[r * k_stride + i] for r < n_rows, f32 sums; q holds
     * values representable in f16, so the products are exact. lanes names the
     * summation order (the SIMD kernels follow it, the scalar ones need not):
     * RF_LANES_GEMM: lane i % 8 sums its products in order, then the 8 lanes are
     * added as ggml's tinyBLAS does; RF_LANES_VEC: lane i % 32, ggml's f16 vec_dot
     * (four registers reduced pairwise, remainders past n & ~31 added in double). */
    void (*dot_f16_rows)(const float *q, const uint16_t *k, size_t k_stride, int64_t n_rows,
                         int64_t n, float *out, int lanes);
    /* out[i] = sum_r w[r] * v[r * v_stride + i] for r < n_rows, i < n: the same two
     * orders over r (partial sums by r % lanes, combined as dot_f16_rows). */
    void (*wsum_f16_rows)(float *out, const float *w, const uint16_t *v, size_t v_stride,
                          int64_t n_rows, int64_t n, int lanes);
    /* s[i] = exp(s[i] - max); returns the sum in double. The AVX2 kernel uses
     * ggml's vectorized expf and adds each group of 8 in f32 before the double sum,
     * as ggml's soft_max. */
    double (*softmax_exp)(float *s, float max, int64_t n);
};

extern const struct rf_cpu_kernels rf_cpu_kernels_scalar;
extern const struct rf_cpu_kernels rf_cpu_kernels_avx2;

#endif

#ifndef RF_BACKEND_CPU_KERNELS_H
#define RF_BACKEND_CPU_KERNELS_H
/* Inner loops of the CPU backend, one table per ISA; the backend picks one at
 * init. Every slot works on any n (no alignment or multiple-of-8 requirement). */
#include <stdint.h>

struct rf_cpu_kernels {
    const char *name;
    /* sum a[i]*b[i] in f32. */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    /* sum x[i]*x[i]: products in f32, sum in double. */
    double (*sum_sq)(const float *x, int64_t n);
    /* y[i] = x[i] * s * w[i]; w NULL: y[i] = x[i] * s. */
    void (*scale_mul)(const float *x, float s, const float *w, float *y, int64_t n);
    void (*swiglu)(const float *gate, const float *up, float *out, int64_t n);
    void (*geglu)(const float *gate, const float *up, float *out, int64_t n);
    void (*add)(float *y, const float *x, int64_t n);
    void (*scale)(float *y, float s, int64_t n);
    /* f32 -> f16, round to nearest even. */
    void (*to_f16)(const float *x, uint16_t *y, int64_t n);
    /* q holds f32 values representable in f16: sum q[i]*k[i], exact products, f32 sum. */
    float (*dot_f16)(const float *q, const uint16_t *k, int64_t n);
    /* acc[i] += a * v[i]. */
    void (*axpy_f16)(float *acc, float a, const uint16_t *v, int64_t n);
    /* s[i] = exp(s[i] - max); returns the sum. */
    float (*softmax_exp)(float *s, float max, int64_t n);
};

extern const struct rf_cpu_kernels rf_cpu_kernels_scalar;
extern const struct rf_cpu_kernels rf_cpu_kernels_avx2;

#endif

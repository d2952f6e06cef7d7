/* Portable inner loops: the fallback on CPUs without AVX2, and the arithmetic the
 * SIMD versions are checked against. */
#include <math.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/fp16.h"


static double sum_sq(const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)(x[i] * x[i]);
    return s;
}

static void scale_mul(const float *x, float s, const float *w, float *y, int64_t n)
{
    if (w)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * s * w[i];
    else
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
}

static void swiglu(const float *gate, const float *up, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* 0.5 g (1 + tanh(y)) written as g / (1 + e^(-2y)), y = sqrt(2/pi) g (1 + a g^2):
 * the same function without the cancellation in 1 + tanh(y) for negative g. */
static void geglu(const float *gate, const float *up, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        const float y = GELU_SQRT_2_OVER_PI * g * (1.0f + GELU_COEF_A * g * g);
        out[i] = g / (1.0f + expf(-2.0f * y)) * up[i];
    }
}

static void add(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void scale(float *y, float s, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] *= s;
}

static void to_f16(const float *x, uint16_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = rf_fp32_to_fp16(x[i]);
}

static void scale_round_f16(const float *x, float s, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = rf_fp16_to_fp32(rf_fp32_to_fp16(x[i] * s));
}

/* The scalar kernels sum in index order whatever the lanes argument. */
static void dot_f16_rows(const float *q, const uint16_t *k, size_t k_stride, int64_t n_rows,
                         int64_t n, float *out, int lanes)
{
    (void)lanes;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint16_t *kr = k + (size_t)r * k_stride;
        float s = 0;
        for (int64_t i = 0; i < n; i++) s += q[i] * rf_fp16_to_fp32(kr[i]);
        out[r] = s;
    }
}

static void wsum_f16_rows(float *out, const float *w, const uint16_t *v, size_t v_stride,
                          int64_t n_rows, int64_t n, int lanes)
{
    (void)lanes;
    for (int64_t i = 0; i < n; i++) out[i] = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint16_t *vr = v + (size_t)r * v_stride;
        for (int64_t i = 0; i < n; i++) out[i] += w[r] * rf_fp16_to_fp32(vr[i]);
    }
}

static double softmax_exp(float *s, float max, int64_t n)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        s[i] = expf(s[i] - max);
        sum += s[i];
    }
    return sum;
}

const struct rf_cpu_kernels rf_cpu_kernels_scalar = {
    .name = "scalar",
    .sum_sq = sum_sq,
    .scale_mul = scale_mul,
    .swiglu = swiglu,
    .geglu = geglu,
    .add = add,
    .scale = scale,
    .to_f16 = to_f16,
    .scale_round_f16 = scale_round_f16,
    .dot_f16_rows = dot_f16_rows,
    .wsum_f16_rows = wsum_f16_rows,
    .softmax_exp = softmax_exp,
};

/* Portable inner loops: the fallback on CPUs without AVX2, and the arithmetic the
 * SIMD versions are checked against. */
#include <math.h>
#include <pthread.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/fp16.h"

static uint16_t gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

/* The products and the one fused multiply-add are those of ggml's build (checked
 * against llama.cpp's ffn_geglu tensors); tanhf is the C library's. */
static void gelu_table_init(void)
{
    for (uint32_t h = 0; h < (1u << 16); h++) {
        const float x = rf_fp16_to_fp32((uint16_t)h);
        const float inner = fmaf(GELU_COEF_A * x, x, 1.0f);
        const float t = tanhf(GELU_SQRT_2_OVER_PI * x * inner);
        gelu_table[h] = rf_fp32_to_fp16(0.5f * x * (1.0f + t));
    }
}

const uint16_t *rf_cpu_gelu_table(void)
{
    pthread_once(&gelu_once, gelu_table_init);
    return gelu_table;
}

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

static void geglu(const float *gate, const float *up, float *out, int64_t n)
{
    const uint16_t *tab = rf_cpu_gelu_table();
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        if (g <= RF_GELU_LO) out[i] = 0.0f;
        else if (g >= RF_GELU_HI) out[i] = g * up[i];
        else out[i] = rf_fp16_to_fp32(tab[rf_fp32_to_fp16(g)]) * up[i];
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

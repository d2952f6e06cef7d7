/* AVX2 + FMA + F16C inner loops (this file is compiled with -mavx2 -mfma -mf16c and
 * only called when the CPU has them). Tails fall back to scalar code. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/fp16.h"

#define F16C_RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* e^x to ~2 ulp for x in [-87, 88]; inputs outside are clamped (so e^-1000 gives
 * 1.6e-38, not 0), NaN stays NaN. x = n ln2 + r with |r| <= ln2/2, e^r by its
 * degree-6 Taylor polynomial (truncation ~1e-7 relative). */
static inline __m256 exp256(__m256 x)
{
    /* min/max return the second operand on NaN: constants first keeps NaN. */
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_min_ps(_mm256_set1_ps(88.0f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* x / (1 + e^-x), the same formula both for silu and (with 2y) for tanh-GELU. */
static inline __m256 x_sigmoid(__m256 x, __m256 arg)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), arg));
    return _mm256_div_ps(x, _mm256_add_ps(one, e));
}

static float dot_f32(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static double sum_sq(const float *x, int64_t n)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 sq = _mm256_mul_ps(v, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; i++) s += (double)(x[i] * x[i]);
    return s;
}

static void scale_mul(const float *x, float s, const float *w, float *y, int64_t n)
{
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    if (w) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                                  _mm256_loadu_ps(w + i)));
        for (; i < n; i++) y[i] = x[i] * s * w[i];
    } else {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
        for (; i < n; i++) y[i] = x[i] * s;
    }
}

static void swiglu(const float *gate, const float *up, float *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(x_sigmoid(g, g), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* 0.5 g (1 + tanh(y)) = g / (1 + e^(-2y)), y = sqrt(2/pi) g (1 + a g^2), as the
 * scalar version. */
static void geglu(const float *gate, const float *up, float *out, int64_t n)
{
    const __m256 c2 = _mm256_set1_ps(2.0f * GELU_SQRT_2_OVER_PI);
    const __m256 a = _mm256_set1_ps(GELU_COEF_A), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 y2 =
            _mm256_mul_ps(_mm256_mul_ps(c2, g), _mm256_fmadd_ps(_mm256_mul_ps(a, g), g, one));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(x_sigmoid(g, y2), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        const float g = gate[i];
        const float y = GELU_SQRT_2_OVER_PI * g * (1.0f + GELU_COEF_A * g * g);
        out[i] = g / (1.0f + expf(-2.0f * y)) * up[i];
    }
}

static void add(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

static void scale(float *y, float s, int64_t n)
{
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vs));
    for (; i < n; i++) y[i] *= s;
}

static void to_f16(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), F16C_RNE));
    for (; i < n; i++) y[i] = rf_fp32_to_fp16(x[i]);
}

static inline __m256 load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static void scale_round_f16(const float *x, float s, float *y, int64_t n)
{
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(
                                    _mm256_mul_ps(_mm256_loadu_ps(x + i), vs), F16C_RNE)));
    for (; i < n; i++) y[i] = rf_fp16_to_fp32(rf_fp32_to_fp16(x[i] * s));
}

/* Four rows at a time: one accumulator each, reduced together at the end. */
static void dot_f16_rows(const float *q, const uint16_t *k, size_t k_stride, int64_t n_rows,
                         int64_t n, float *out)
{
    const int64_t n8 = n & ~(int64_t)7;
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const uint16_t *k0 = k + (size_t)r * k_stride, *k1 = k0 + k_stride;
        const uint16_t *k2 = k1 + k_stride, *k3 = k2 + k_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t i = 0; i < n8; i += 8) {
            const __m256 qv = _mm256_loadu_ps(q + i);
            a0 = _mm256_fmadd_ps(qv, load_f16(k0 + i), a0);
            a1 = _mm256_fmadd_ps(qv, load_f16(k1 + i), a1);
            a2 = _mm256_fmadd_ps(qv, load_f16(k2 + i), a2);
            a3 = _mm256_fmadd_ps(qv, load_f16(k3 + i), a3);
        }
        /* Lane sums of a0..a3 as four floats: hadd pairs, then the two 128-bit halves. */
        const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        float s[4];
        _mm_storeu_ps(s, s4);
        for (int64_t i = n8; i < n; i++) {
            s[0] += q[i] * rf_fp16_to_fp32(k0[i]);
            s[1] += q[i] * rf_fp16_to_fp32(k1[i]);
            s[2] += q[i] * rf_fp16_to_fp32(k2[i]);
            s[3] += q[i] * rf_fp16_to_fp32(k3[i]);
        }
        memcpy(out + r, s, sizeof s);
    }
    for (; r < n_rows; r++) {
        const uint16_t *kr = k + (size_t)r * k_stride;
        __m256 a = _mm256_setzero_ps();
        for (int64_t i = 0; i < n8; i += 8)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16(kr + i), a);
        float s = hsum(a);
        for (int64_t i = n8; i < n; i++) s += q[i] * rf_fp16_to_fp32(kr[i]);
        out[r] = s;
    }
}

/* 32 accumulators (four registers) stay in registers across all rows. */
static void axpy_f16_rows(float *acc, const float *w, const uint16_t *v, size_t v_stride,
                          int64_t n_rows, int64_t n)
{
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 a0 = _mm256_loadu_ps(acc + i), a1 = _mm256_loadu_ps(acc + i + 8);
        __m256 a2 = _mm256_loadu_ps(acc + i + 16), a3 = _mm256_loadu_ps(acc + i + 24);
        for (int64_t r = 0; r < n_rows; r++) {
            const uint16_t *vr = v + (size_t)r * v_stride + i;
            const __m256 wr = _mm256_set1_ps(w[r]);
            a0 = _mm256_fmadd_ps(wr, load_f16(vr), a0);
            a1 = _mm256_fmadd_ps(wr, load_f16(vr + 8), a1);
            a2 = _mm256_fmadd_ps(wr, load_f16(vr + 16), a2);
            a3 = _mm256_fmadd_ps(wr, load_f16(vr + 24), a3);
        }
        _mm256_storeu_ps(acc + i, a0);
        _mm256_storeu_ps(acc + i + 8, a1);
        _mm256_storeu_ps(acc + i + 16, a2);
        _mm256_storeu_ps(acc + i + 24, a3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(acc + i);
        for (int64_t r = 0; r < n_rows; r++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(w[r]), load_f16(v + (size_t)r * v_stride + i), a);
        _mm256_storeu_ps(acc + i, a);
    }
    for (; i < n; i++)
        for (int64_t r = 0; r < n_rows; r++)
            acc[i] += w[r] * rf_fp16_to_fp32(v[(size_t)r * v_stride + i]);
}

static float softmax_exp(float *s, float max, int64_t n)
{
    const __m256 vm = _mm256_set1_ps(max);
    __m256 sum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + i), vm));
        _mm256_storeu_ps(s + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = hsum(sum);
    for (; i < n; i++) {
        s[i] = expf(s[i] - max);
        total += s[i];
    }
    return total;
}

const struct rf_cpu_kernels rf_cpu_kernels_avx2 = {
    .name = "avx2",
    .dot_f32 = dot_f32,
    .sum_sq = sum_sq,
    .scale_mul = scale_mul,
    .swiglu = swiglu,
    .geglu = geglu,
    .add = add,
    .scale = scale,
    .to_f16 = to_f16,
    .scale_round_f16 = scale_round_f16,
    .dot_f16_rows = dot_f16_rows,
    .axpy_f16_rows = axpy_f16_rows,
    .softmax_exp = softmax_exp,
};

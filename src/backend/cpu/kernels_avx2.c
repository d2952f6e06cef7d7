/* AVX2 + FMA + F16C inner loops (this file is compiled with -mavx2 -mfma -mf16c and
 * only called when the CPU has them). Tails fall back to scalar code. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/fp16.h"
#include "quant/avx2_common.h"

#define F16C_RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* e^x as ggml's AVX2 expf computes it (to ~1.5 ulp), so that softmax and SiLU
 * match llama.cpp bit for bit: x = n ln2 + b with n = round(x / ln2) (by adding
 * 1.5 * 2^23), ln2 split in two parts for b, e^b - 1 by a degree-5 polynomial
 * in b (even and odd halves in b^2), and 2^n added into the exponent bits. For
 * |n| > 126 the scale 2^n is split in two factors so that results near the ends
 * of the range come out right (|n| > 192: +inf or 0). -inf gives 0. */
static inline __m256 exp256(__m256 x)
{
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f800000)));
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 hi = _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f));
    const __m256 lo = _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f));
    const __m256 j = _mm256_fmadd_ps(_mm256_fmadd_ps(hi, u, lo), u,
                                     _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    if (!_mm256_movemask_ps(big)) return _mm256_fmadd_ps(j, k, k);
    /* 2^n = s1 * s2 with s1 = 2^(+-127) (sign of n) folded out of the exponent. */
    const __m256i g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
        _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 huge = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    const __m256 mid = _mm256_blendv_ps(_mm256_fmadd_ps(k, j, k), scaled, big);
    return _mm256_blendv_ps(mid, _mm256_mul_ps(s1, s1), huge);
}

/* x / (1 + e^-arg): silu with arg = x. */
static inline __m256 x_sigmoid(__m256 x, __m256 arg)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), arg));
    return _mm256_div_ps(x, _mm256_add_ps(one, e));
}

/* Squares rounded to f32, summed in double strictly in order: ggml's rms_norm sums
 * this way, and the norm's scale must match it bit for bit. The chain of dependent
 * double adds costs ~4 cycles an element (2.3k cycles a 576 row). */
static double sum_sq(const float *x, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)(x[i] * x[i]);
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

/* The table GELU of cpu_kernels.h: 8 values rounded to f16 at a time, looked up,
 * widened back; the clamped ends blended in. */
static void geglu(const float *gate, const float *up, float *out, int64_t n)
{
    const uint16_t *tab = rf_cpu_gelu_table();
    const __m256 lo = _mm256_set1_ps(RF_GELU_LO), hi = _mm256_set1_ps(RF_GELU_HI);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i), u = _mm256_loadu_ps(up + i);
        uint16_t h[8];
        _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(g, F16C_RNE));
        for (int j = 0; j < 8; j++) h[j] = tab[h[j]];
        __m256 y = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)), u);
        y = _mm256_blendv_ps(y, _mm256_mul_ps(g, u), _mm256_cmp_ps(g, hi, _CMP_GE_OQ));
        y = _mm256_andnot_ps(_mm256_cmp_ps(g, lo, _CMP_LE_OQ), y);
        _mm256_storeu_ps(out + i, y);
    }
    for (; i < n; i++) {
        const float g = gate[i];
        if (g <= RF_GELU_LO) out[i] = 0.0f;
        else if (g >= RF_GELU_HI) out[i] = g * up[i];
        else out[i] = rf_fp16_to_fp32(tab[rf_fp32_to_fp16(g)]) * up[i];
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

/* The reduction of ggml's f16 vec_dot: registers 0+2 and 1+3, then those two,
 * then the halves, then two horizontal adds. */
static inline float reduce_vec4(const __m256 a[4])
{
    const __m256 x = _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
    const __m128 t = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    const __m128 h = _mm_hadd_ps(t, t);
    return _mm_cvtss_f32(_mm_hadd_ps(h, h));
}

/* One row: the lanes' partial sums (see RF_LANES_*), reduced in that order. */
static float dot_f16_row(const float *q, const uint16_t *k, int64_t n, int lanes)
{
    if (lanes == RF_LANES_GEMM) {
        __m256 a = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16(k + i), a);
        float s = rf_hsum_ps(a);
        for (; i < n; i++) s += q[i] * rf_fp16_to_fp32(k[i]);
        return s;
    }
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 4; j++)
            a[j] = _mm256_fmadd_ps(load_f16(k + i + 8 * j), _mm256_loadu_ps(q + i + 8 * j), a[j]);
    double s = reduce_vec4(a);
    for (; i < n; i++) s += (double)(q[i] * rf_fp16_to_fp32(k[i]));
    return (float)s;
}

static void dot_f16_rows(const float *q, const uint16_t *k, size_t k_stride, int64_t n_rows,
                         int64_t n, float *out, int lanes)
{
    for (int64_t r = 0; r < n_rows; r++) out[r] = dot_f16_row(q, k + (size_t)r * k_stride, n, lanes);
}

/* Combines the partial sums p[0..lanes) of 8 columns (see RF_LANES_*). */
static inline __m256 reduce_partials(const __m256 *p, int lanes)
{
    if (lanes == RF_LANES_GEMM) {
        /* tinyBLAS's hsum of the 8 lanes: t_l = p_l + p_(l+4), (t0 + t2) + (t1 + t3) */
        const __m256 t0 = _mm256_add_ps(p[4], p[0]), t1 = _mm256_add_ps(p[5], p[1]);
        const __m256 t2 = _mm256_add_ps(p[6], p[2]), t3 = _mm256_add_ps(p[7], p[3]);
        return _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3));
    }
    /* vec_dot's: x_l = (p_l + p_(l+16)) + (p_(l+8) + p_(l+24)), t_l = x_l + x_(l+4),
     * (t0 + t1) + (t2 + t3) */
    __m256 x[8];
    for (int l = 0; l < 8; l++)
        x[l] = _mm256_add_ps(_mm256_add_ps(p[l], p[l + 16]), _mm256_add_ps(p[l + 8], p[l + 24]));
    __m256 t[4];
    for (int l = 0; l < 4; l++) t[l] = _mm256_add_ps(x[l], x[l + 4]);
    return _mm256_add_ps(_mm256_add_ps(t[0], t[1]), _mm256_add_ps(t[2], t[3]));
}

/* 8 columns at a time: partial sums by r % lanes, each lane an FMA chain in r
 * order (rows past the end of a lane group add nothing, as the zero weights of
 * llama.cpp's masked cache rows). Column tails go through the same steps in
 * scalar FMAs. */
static void wsum_f16_rows(float *out, const float *w, const uint16_t *v, size_t v_stride,
                          int64_t n_rows, int64_t n, int lanes)
{
    const int mask = lanes - 1;
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 p[RF_LANES_VEC];
        for (int l = 0; l < lanes; l++) p[l] = _mm256_setzero_ps();
        for (int64_t r = 0; r < n_rows; r++)
            p[r & mask] = _mm256_fmadd_ps(_mm256_set1_ps(w[r]), load_f16(v + (size_t)r * v_stride + c),
                                          p[r & mask]);
        _mm256_storeu_ps(out + c, reduce_partials(p, lanes));
    }
    for (; c < n; c++) {
        float p[RF_LANES_VEC] = {0};
        for (int64_t r = 0; r < n_rows; r++)
            p[r & mask] = fmaf(w[r], rf_fp16_to_fp32(v[(size_t)r * v_stride + c]), p[r & mask]);
        __m256 pv[RF_LANES_VEC];
        for (int l = 0; l < lanes; l++) pv[l] = _mm256_set1_ps(p[l]);
        out[c] = _mm256_cvtss_f32(reduce_partials(pv, lanes));
    }
}

/* Groups of 8 from index 0, each added in f32 (hsum) and then into the double
 * sum, as ggml's soft_max; the tail group is padded with -inf (e^-inf = 0). */
static double softmax_exp(float *s, float max, int64_t n)
{
    const __m256 vm = _mm256_set1_ps(max);
    double sum = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + i), vm));
        _mm256_storeu_ps(s + i, e);
        sum += (double)rf_hsum_ps(e);
    }
    if (i < n) {
        float t[8];
        for (int j = 0; j < 8; j++) t[j] = i + j < n ? s[i + j] : -INFINITY;
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(t), vm));
        _mm256_storeu_ps(t, e);
        for (int j = 0; i + j < n; j++) s[i + j] = t[j];
        sum += (double)rf_hsum_ps(e);
    }
    return sum;
}

const struct rf_cpu_kernels rf_cpu_kernels_avx2 = {
    .name = "avx2",
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

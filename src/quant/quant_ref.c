/* Reference kernels of the float types and the 32-element ("legacy") block types:
 * dequantize, quantize, and dot products on the blocks. These define the numerics
 * that the SIMD kernels must reproduce. */
#include <math.h>
#include <string.h>

#include "core/fp16.h"
#include "quant/quant_impl.h"

const int8_t rf_mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
const int8_t rf_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};

static inline float h2f(uint16_t h) { return rf_fp16_to_fp32(h); }

/* ---- float types ---- */

void rf_to_float_f32_ref(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }

void rf_to_float_f16_ref(const void *vx, float *y, int64_t n)
{
    const uint16_t *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = rf_fp16_to_fp32(x[i]);
}

void rf_to_float_bf16_ref(const void *vx, float *y, int64_t n)
{
    const uint16_t *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = rf_bf16_to_fp32(x[i]);
}

void rf_from_float_f32_ref(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }

void rf_from_float_f16_ref(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = rf_fp32_to_fp16(x[i]);
}

void rf_from_float_bf16_ref(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = rf_fp32_to_bf16(x[i]);
}

/* Float dots keep 8 f32 partial sums (lane i % 8), the same split as the AVX2
 * kernels, then add them pairwise. */
static float sum8(const float *acc)
{
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void rf_vec_dot_f32_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    float acc[8] = {0};
    for (int64_t i = 0; i < n; i++) acc[i & 7] += x[i] * y[i];
    *s = sum8(acc);
}

void rf_vec_dot_f16_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    float acc[8] = {0};
    for (int64_t i = 0; i < n; i++) acc[i & 7] += h2f(x[i]) * h2f(y[i]);
    *s = sum8(acc);
}

void rf_vec_dot_bf16_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    float acc[8] = {0};
    for (int64_t i = 0; i < n; i++) acc[i & 7] += rf_bf16_to_fp32(x[i]) * rf_bf16_to_fp32(y[i]);
    *s = sum8(acc);
}

/* ---- dequantize ---- */

static inline uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v; /* little-endian host, as the file */
}

void rf_to_float_q4_0_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / RF_QK4_0; i++, y += RF_QK4_0) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((x[i].qs[j] & 15) - 8);
            y[j + 16] = d * (float)((x[i].qs[j] >> 4) - 8);
        }
    }
}

void rf_to_float_q4_1_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / RF_QK4_1; i++, y += RF_QK4_1) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(x[i].qs[j] & 15) + m;
            y[j + 16] = d * (float)(x[i].qs[j] >> 4) + m;
        }
    }
}

/* 5-bit codes of a Q5 block: nibbles plus bit j of qh. */
static inline void q5_codes(const uint8_t *qs, const uint8_t *qh4, int *q)
{
    const uint32_t qh = load_u32(qh4);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 15) | (int)(((qh >> j) & 1) << 4);
        q[j + 16] = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
    }
}

void rf_to_float_q5_0_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q5_0 *x = vx;
    int q[32];
    for (int64_t i = 0; i < n / RF_QK5_0; i++, y += RF_QK5_0) {
        const float d = h2f(x[i].d);
        q5_codes(x[i].qs, x[i].qh, q);
        for (int j = 0; j < 32; j++) y[j] = d * (float)(q[j] - 16);
    }
}

void rf_to_float_q5_1_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q5_1 *x = vx;
    int q[32];
    for (int64_t i = 0; i < n / RF_QK5_1; i++, y += RF_QK5_1) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        q5_codes(x[i].qs, x[i].qh, q);
        for (int j = 0; j < 32; j++) y[j] = d * (float)q[j] + m;
    }
}

void rf_to_float_q8_0_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / RF_QK8_0; i++, y += RF_QK8_0) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < 32; j++) y[j] = d * (float)x[i].qs[j];
    }
}

void rf_to_float_q8_1_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / RF_QK8_1; i++, y += RF_QK8_1) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < 32; j++) y[j] = d * (float)x[i].qs[j];
    }
}

/* ---- quantize ----
 * Same operations as gguf-py (and ggml's reference quantizers): the scale from the
 * element of largest magnitude (first one on ties), 1/d as a separate division,
 * codes by truncating x*id + offset. The clamps before each float->int conversion
 * change nothing for finite input and keep NaN/inf from being undefined behaviour. */

static inline float clampf(float v, float lo, float hi)
{
    v = fminf(v, hi); /* NaN -> hi */
    return fmaxf(v, lo);
}

/* x[i] with the largest |x| (first on ties), and that magnitude. */
static inline float absmax_elem(const float *x, int n, float *amax)
{
    int imax = 0;
    float a = fabsf(x[0]);
    for (int j = 1; j < n; j++) {
        if (fabsf(x[j]) > a) {
            a = fabsf(x[j]);
            imax = j;
        }
    }
    *amax = a;
    return x[imax];
}

static inline void minmax(const float *x, int n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *mn = lo;
    *mx = hi;
}

static inline float inv_or_zero(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

void rf_from_float_q4_0_ref(const float *x, void *vy, int64_t n)
{
    struct rf_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / RF_QK4_0; i++, x += RF_QK4_0) {
        float amax;
        const float d = absmax_elem(x, 32, &amax) / -8.0f;
        const float id = inv_or_zero(d);
        y[i].d = rf_fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)clampf(x[j] * id + 8.5f, 0.0f, 15.0f);
            const int q1 = (int)clampf(x[j + 16] * id + 8.5f, 0.0f, 15.0f);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void rf_from_float_q4_1_ref(const float *x, void *vy, int64_t n)
{
    struct rf_block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / RF_QK4_1; i++, x += RF_QK4_1) {
        float mn, mx;
        minmax(x, 32, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = inv_or_zero(d);
        y[i].d = rf_fp32_to_fp16(d);
        y[i].m = rf_fp32_to_fp16(mn);
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)clampf((x[j] - mn) * id + 0.5f, 0.0f, 15.0f);
            const int q1 = (int)clampf((x[j + 16] - mn) * id + 0.5f, 0.0f, 15.0f);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Packs 32 five-bit codes into nibbles + the qh bit mask. */
static inline void q5_pack(const int *q, uint8_t *qs, uint8_t *qh4)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | ((q[j + 16] & 15) << 4));
    for (int j = 0; j < 32; j++) qh |= (uint32_t)(q[j] >> 4) << j;
    memcpy(qh4, &qh, 4);
}

void rf_from_float_q5_0_ref(const float *x, void *vy, int64_t n)
{
    struct rf_block_q5_0 *y = vy;
    int q[32];
    for (int64_t i = 0; i < n / RF_QK5_0; i++, x += RF_QK5_0) {
        float amax;
        const float d = absmax_elem(x, 32, &amax) / -16.0f;
        const float id = inv_or_zero(d);
        y[i].d = rf_fp32_to_fp16(d);
        for (int j = 0; j < 32; j++) q[j] = (int)clampf(x[j] * id + 16.5f, 0.0f, 31.0f);
        q5_pack(q, y[i].qs, y[i].qh);
    }
}

void rf_from_float_q5_1_ref(const float *x, void *vy, int64_t n)
{
    struct rf_block_q5_1 *y = vy;
    int q[32];
    for (int64_t i = 0; i < n / RF_QK5_1; i++, x += RF_QK5_1) {
        float mn, mx;
        minmax(x, 32, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = inv_or_zero(d);
        y[i].d = rf_fp32_to_fp16(d);
        y[i].m = rf_fp32_to_fp16(mn);
        for (int j = 0; j < 32; j++) q[j] = (int)clampf((x[j] - mn) * id + 0.5f, 0.0f, 31.0f);
        q5_pack(q, y[i].qs, y[i].qh);
    }
}

/* Rounds half away from zero (C roundf) after clamping to +-127. */
static inline int8_t round_q8(float v) { return (int8_t)roundf(clampf(v, -127.0f, 127.0f)); }

void rf_from_float_q8_0_ref(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / RF_QK8_0; i++, x += RF_QK8_0) {
        float amax;
        absmax_elem(x, 32, &amax);
        const float d = amax / 127.0f;
        const float id = inv_or_zero(d);
        y[i].d = rf_fp32_to_fp16(d);
        for (int j = 0; j < 32; j++) y[i].qs[j] = round_q8(x[j] * id);
    }
}

void rf_from_float_q8_1_ref(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / RF_QK8_1; i++, x += RF_QK8_1) {
        float amax;
        absmax_elem(x, 32, &amax);
        const float d = amax / 127.0f;
        const float id = inv_or_zero(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[i].qs[j] = round_q8(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = rf_fp32_to_fp16(d);
        y[i].s = rf_fp32_to_fp16((float)sum * d);
    }
}

/* ---- dot products on the blocks ----
 * Integer dot per block (exact), then sumf += isum * (dx * dy) in f32, block by
 * block: the reference engine's order. */

static inline int dot_q4_q8(const uint8_t *qs, int off, const int8_t *y)
{
    int sum = 0;
    for (int j = 0; j < 16; j++)
        sum += ((qs[j] & 15) - off) * y[j] + ((qs[j] >> 4) - off) * y[j + 16];
    return sum;
}

void rf_vec_dot_q4_0_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q4_0 *x = vx;
    const struct rf_block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / RF_QK4_0; i++)
        sumf += (float)dot_q4_q8(x[i].qs, 8, y[i].qs) * (h2f(x[i].d) * h2f(y[i].d));
    *s = sumf;
}

void rf_vec_dot_q4_1_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q4_1 *x = vx;
    const struct rf_block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / RF_QK4_1; i++) {
        const int isum = dot_q4_q8(x[i].qs, 0, y[i].qs);
        sumf += (float)isum * (h2f(x[i].d) * h2f(y[i].d)) + h2f(x[i].m) * h2f(y[i].s);
    }
    *s = sumf;
}

static inline int dot_q5_q8(const uint8_t *qs, const uint8_t *qh, int off, const int8_t *y)
{
    int q[32], sum = 0;
    q5_codes(qs, qh, q);
    for (int j = 0; j < 32; j++) sum += (q[j] - off) * y[j];
    return sum;
}

void rf_vec_dot_q5_0_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q5_0 *x = vx;
    const struct rf_block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / RF_QK5_0; i++) {
        const int isum = dot_q5_q8(x[i].qs, x[i].qh, 16, y[i].qs);
        sumf += (float)isum * (h2f(x[i].d) * h2f(y[i].d));
    }
    *s = sumf;
}

void rf_vec_dot_q5_1_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q5_1 *x = vx;
    const struct rf_block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / RF_QK5_1; i++) {
        const int isum = dot_q5_q8(x[i].qs, x[i].qh, 0, y[i].qs);
        sumf += (float)isum * (h2f(x[i].d) * h2f(y[i].d)) + h2f(x[i].m) * h2f(y[i].s);
    }
    *s = sumf;
}

void rf_vec_dot_q8_0_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q8_0 *x = vx;
    const struct rf_block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / RF_QK8_0; i++) {
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += x[i].qs[j] * y[i].qs[j];
        sumf += (float)isum * (h2f(x[i].d) * h2f(y[i].d));
    }
    *s = sumf;
}

/* Codebook types: each nibble indexes a table of 16 int8 values. */
static inline int dot_lut_q8(const uint8_t *qs, const int8_t *lut, const int8_t *y)
{
    int sum = 0;
    for (int j = 0; j < 16; j++) sum += lut[qs[j] & 15] * y[j] + lut[qs[j] >> 4] * y[j + 16];
    return sum;
}

void rf_vec_dot_iq4_nl_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_iq4_nl *x = vx;
    const struct rf_block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / RF_QK4_NL; i++) {
        const int isum = dot_lut_q8(x[i].qs, rf_iq4nl_values, y[i].qs);
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * (float)isum;
    }
    *s = sumf;
}

void rf_vec_dot_mxfp4_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_mxfp4 *x = vx;
    const struct rf_block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_MXFP4; i++) {
        const int isum = dot_lut_q8(x[i].qs, rf_mxfp4_values, y[i].qs);
        sumf += (rf_e8m0_to_fp32_half(x[i].e) * h2f(y[i].d)) * (float)isum;
    }
    *s = sumf;
}

void rf_to_float_iq4_nl_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_iq4_nl *x = vx;
    for (int64_t i = 0; i < n / RF_QK4_NL; i++, y += RF_QK4_NL) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)rf_iq4nl_values[x[i].qs[j] & 15];
            y[j + 16] = d * (float)rf_iq4nl_values[x[i].qs[j] >> 4];
        }
    }
}

void rf_to_float_mxfp4_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_mxfp4 *x = vx;
    for (int64_t i = 0; i < n / RF_QK_MXFP4; i++, y += RF_QK_MXFP4) {
        const float d = rf_e8m0_to_fp32_half(x[i].e);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)rf_mxfp4_values[x[i].qs[j] & 15];
            y[j + 16] = d * (float)rf_mxfp4_values[x[i].qs[j] >> 4];
        }
    }
}

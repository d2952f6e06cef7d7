/* Reference kernels of the K-quants (256-element super-blocks): dequantize, the
 * Q8_K activation quantizer, and the K-quant x Q8_K dot products. */
#include <string.h>

#include "core/fp16.h"
#include "quant/quant_impl.h"

static inline float h2f(uint16_t h) { return rf_fp16_to_fp32(h); }

/* Bytes 0..7 hold the low 4 bits (k < 8: low nibble of byte k, else high nibble of
 * byte k-8); bytes 8..11 the high 2 bits (scale k = 4s + b: bits 2s.. of byte 8+b). */
void rf_q3k_unpack_scales(const uint8_t *p, int8_t *out)
{
    for (int k = 0; k < 16; k++) {
        const int lo = k < 8 ? p[k] & 15 : p[k - 8] >> 4;
        const int hi = (p[8 + (k & 3)] >> (2 * (k >> 2))) & 3;
        out[k] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* ---- 2-bit codes shared by Q2_K and Q3_K: element h*128 + s*32 + l ---- */
static inline int q2_code(const uint8_t *qs, int i)
{
    return (qs[(i >> 7) * 32 + (i & 31)] >> (2 * ((i >> 5) & 3))) & 3;
}

static inline int q3_code(const struct rf_block_q3_K *b, int i)
{
    const int high = (b->hmask[i & 31] >> (i >> 5)) & 1;
    return q2_code(b->qs, i) - (high ? 0 : 4);
}

static inline int q4k_code(const uint8_t *qs, int i)
{
    return (qs[(i >> 6) * 32 + (i & 31)] >> (4 * ((i >> 5) & 1))) & 15;
}

static inline int q5k_code(const struct rf_block_q5_K *b, int i)
{
    return q4k_code(b->qs, i) | (((b->qh[i & 31] >> (i >> 5)) & 1) << 4);
}

static inline int q6k_code(const struct rf_block_q6_K *b, int i)
{
    const int h = i >> 7, r = i & 127;
    const int lo = (b->ql[h * 64 + (r & 63)] >> (4 * (r >> 6))) & 15;
    const int hi = (b->qh[h * 32 + (r & 31)] >> (2 * (r >> 5))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- dequantize: y = dl * q - ml with dl, ml computed first (gguf-py's order) ---- */

void rf_to_float_q2_K_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q2_K *x = vx;
    for (int64_t i = 0; i < n / RF_QK_K; i++, y += RF_QK_K) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int k = 0; k < 16; k++) {
            const float dl = d * (float)(x[i].scales[k] & 15);
            const float ml = dmin * (float)(x[i].scales[k] >> 4);
            for (int l = 16 * k; l < 16 * k + 16; l++) y[l] = dl * (float)q2_code(x[i].qs, l) - ml;
        }
    }
}

void rf_to_float_q3_K_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q3_K *x = vx;
    int8_t sc[16];
    for (int64_t i = 0; i < n / RF_QK_K; i++, y += RF_QK_K) {
        const float d = h2f(x[i].d);
        rf_q3k_unpack_scales(x[i].scales, sc);
        for (int k = 0; k < 16; k++) {
            const float dl = d * (float)sc[k];
            for (int l = 16 * k; l < 16 * k + 16; l++) y[l] = dl * (float)q3_code(&x[i], l);
        }
    }
}

void rf_to_float_q4_K_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q4_K *x = vx;
    for (int64_t i = 0; i < n / RF_QK_K; i++, y += RF_QK_K) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            rf_k4_scale_min(j, x[i].scales, &sc, &m);
            const float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 32 * j; l < 32 * j + 32; l++) y[l] = dl * (float)q4k_code(x[i].qs, l) - ml;
        }
    }
}

void rf_to_float_q5_K_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q5_K *x = vx;
    for (int64_t i = 0; i < n / RF_QK_K; i++, y += RF_QK_K) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            rf_k4_scale_min(j, x[i].scales, &sc, &m);
            const float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 32 * j; l < 32 * j + 32; l++) y[l] = dl * (float)q5k_code(&x[i], l) - ml;
        }
    }
}

void rf_to_float_q6_K_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q6_K *x = vx;
    for (int64_t i = 0; i < n / RF_QK_K; i++, y += RF_QK_K) {
        const float d = h2f(x[i].d);
        for (int k = 0; k < 16; k++) {
            const float dl = d * (float)x[i].scales[k];
            for (int l = 16 * k; l < 16 * k + 16; l++) y[l] = dl * (float)q6k_code(&x[i], l);
        }
    }
}

void rf_to_float_q8_K_ref(const void *vx, float *y, int64_t n)
{
    const struct rf_block_q8_K *x = vx;
    for (int64_t i = 0; i < n / RF_QK_K; i++, y += RF_QK_K)
        for (int j = 0; j < RF_QK_K; j++) y[j] = x[i].d * (float)x[i].qs[j];
}

/* ---- Q8_K quantizer ----
 * Scale -127/max from the element of largest magnitude (first on ties; negative
 * when that element is positive), codes rounded half to even by the 1.5*2^23 trick,
 * d = 1/iscale. An all-zero block gets d = 0. */
static inline int nearest_int(float v)
{
    const float big = v + 12582912.0f; /* exact for |v| < 2^22 */
    uint32_t bits;
    memcpy(&bits, &big, 4);
    return (int)(bits & 0x007fffffu) - 0x00400000;
}

void rf_from_float_q8_K_ref(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / RF_QK_K; i++, x += RF_QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < RF_QK_K; j++) {
            const float a = x[j] < 0 ? -x[j] : x[j];
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        memset(&y[i], 0, sizeof(y[i]));
        if (amax == 0.0f) continue;
        const float iscale = -127.0f / max;
        for (int j = 0; j < RF_QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            v = v > 127 ? 127 : v < -128 ? -128 : v;
            y[i].qs[j] = (int8_t)v;
        }
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * k + l];
            y[i].bsums[k] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- dot products with Q8_K ----
 * Integer sums per sub-block times its integer scale, then per super-block
 * sumf += d*isum - dmin*summ in f32 (the reference engine's order). The min term
 * uses the activation's bsums. */

static inline int dot16(const int8_t *y, const int *q)
{
    int s = 0;
    for (int l = 0; l < 16; l++) s += q[l] * y[l];
    return s;
}

void rf_vec_dot_q2_K_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q2_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    float sumf = 0.0f;
    int q[16];
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        int isum = 0, summ = 0;
        for (int k = 0; k < 16; k++) {
            for (int l = 0; l < 16; l++) q[l] = q2_code(x[i].qs, 16 * k + l);
            isum += (x[i].scales[k] & 15) * dot16(y[i].qs + 16 * k, q);
            summ += (x[i].scales[k] >> 4) * y[i].bsums[k];
        }
        const float dall = y[i].d * h2f(x[i].d), dmin = y[i].d * h2f(x[i].dmin);
        sumf += dall * (float)isum - dmin * (float)summ;
    }
    *s = sumf;
}

void rf_vec_dot_q3_K_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q3_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    float sumf = 0.0f;
    int q[16];
    int8_t sc[16];
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        int isum = 0;
        rf_q3k_unpack_scales(x[i].scales, sc);
        for (int k = 0; k < 16; k++) {
            for (int l = 0; l < 16; l++) q[l] = q3_code(&x[i], 16 * k + l);
            isum += sc[k] * dot16(y[i].qs + 16 * k, q);
        }
        sumf += (h2f(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sumf;
}

void rf_vec_dot_q4_K_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q4_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    float sumf = 0.0f;
    int q[16];
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        int isum = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            rf_k4_scale_min(j, x[i].scales, &sc, &m);
            int sj = 0;
            for (int h = 0; h < 2; h++) {
                for (int l = 0; l < 16; l++) q[l] = q4k_code(x[i].qs, 32 * j + 16 * h + l);
                sj += dot16(y[i].qs + 32 * j + 16 * h, q);
            }
            isum += sc * sj;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        const float d = y[i].d * h2f(x[i].d), dmin = y[i].d * h2f(x[i].dmin);
        sumf += d * (float)isum - dmin * (float)summ;
    }
    *s = sumf;
}

void rf_vec_dot_q5_K_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q5_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    float sumf = 0.0f;
    int q[16];
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        int isum = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            rf_k4_scale_min(j, x[i].scales, &sc, &m);
            int sj = 0;
            for (int h = 0; h < 2; h++) {
                for (int l = 0; l < 16; l++) q[l] = q5k_code(&x[i], 32 * j + 16 * h + l);
                sj += dot16(y[i].qs + 32 * j + 16 * h, q);
            }
            isum += sc * sj;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        const float d = y[i].d * h2f(x[i].d), dmin = y[i].d * h2f(x[i].dmin);
        sumf += d * (float)isum - dmin * (float)summ;
    }
    *s = sumf;
}

void rf_vec_dot_q6_K_ref(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q6_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    float sumf = 0.0f;
    int q[16];
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        int isum = 0;
        for (int k = 0; k < 16; k++) {
            for (int l = 0; l < 16; l++) q[l] = q6k_code(&x[i], 16 * k + l);
            isum += x[i].scales[k] * dot16(y[i].qs + 16 * k, q);
        }
        sumf += (h2f(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sumf;
}

/* AVX2/FMA/F16C kernels of the float and 32-element block types, and the
 * activation quantizers Q8_0/Q8_1/F16. */
#include "quant/avx2_common.h"
#include "quant/quant_avx2.h"
#include "quant/quant_impl.h"

/* ---- f32 / f16 / bf16 ---- */

void rf_vec_dot_f32_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = rf_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static inline __m256 load_f16x8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

void rf_vec_dot_f16_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), a0);
        a1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), load_f16x8(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), load_f16x8(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), load_f16x8(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), a0);
    float sum = rf_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += _cvtsh_ss(x[i]) * _cvtsh_ss(y[i]);
    *s = sum;
}

static inline __m256 load_bf16x8(const uint16_t *p)
{
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

void rf_vec_dot_bf16_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16x8(x + i + 8), load_bf16x8(y + i + 8), a1);
    }
    float sum = rf_hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++) {
        float xf, yf;
        const uint32_t xb = (uint32_t)x[i] << 16, yb = (uint32_t)y[i] << 16;
        memcpy(&xf, &xb, 4);
        memcpy(&yf, &yb, 4);
        sum += xf * yf;
    }
    *s = sum;
}

void rf_from_float_f16_avx2(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

void rf_to_float_f16_avx2(const void *vx, float *y, int64_t n)
{
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
}

/* ---- activation quantizers, bit-exact with the reference ---- */

/* roundf(v) after clamping to +-127 (NaN -> 127), as int32: trunc(v + copysign(h, v))
 * with h the float just below 0.5 equals roundf for every |v| <= 128 (checked
 * exhaustively), unlike adding 0.5. */
static inline __m256i round_q8(__m256 v)
{
    v = _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(127.0f)), _mm256_set1_ps(-127.0f));
    const __m256 h = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(0.49999997f));
    return _mm256_cvttps_epi32(_mm256_add_ps(v, h));
}

/* Four i32x8 (elements 0..31 in order) -> 32 int8 in order. */
static inline __m256i pack_i32x4_to_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i q = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    return _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One 32-element block: *dout the f32 scale amax/127, codes to qs; returns the
 * code sum. id = 1/d as a separate division, as the reference. */
static inline int quant_block_q8(const float *x, float *dout, int8_t *qs)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                   _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    const float d = rf_hmax_ps(m) / 127.0f;
    const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    const __m256i q0 = round_q8(_mm256_mul_ps(v0, id)), q1 = round_q8(_mm256_mul_ps(v1, id));
    const __m256i q2 = round_q8(_mm256_mul_ps(v2, id)), q3 = round_q8(_mm256_mul_ps(v3, id));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x4_to_i8(q0, q1, q2, q3));
    *dout = d;
    return rf_hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
}

void rf_from_float_q8_0_avx2(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / RF_QK8_0; i++) {
        float d;
        quant_block_q8(x + i * RF_QK8_0, &d, y[i].qs);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

void rf_from_float_q8_1_avx2(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / RF_QK8_1; i++) {
        float d;
        const int sum = quant_block_q8(x + i * RF_QK8_1, &d, y[i].qs);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ---- dots of the 32-element block types ----
 * Two shapes, whichever measured faster on Zen 3 for the type:
 *  - per block: isum as i32x8, converted and multiplied by the broadcast scale
 *    (f16 scales through rf_f16_table) into one of two accumulators;
 *  - four blocks at a time (unsigned codes, Q4_1/Q5_1): the i16 pair sums of the
 *    four blocks reduced together by vphaddw (|sum of 4 pairs| <= 4*2*31*128 fits
 *    i16), one convert and one FMA per four blocks, scales of the four blocks
 *    converted by one vcvtph2ps per operand. */

#define F16(h) rf_f16_table[(h)]
#define LOADY(b) _mm256_loadu_si256((const __m256i *)y[b].qs)

/* acc += dx*dy * float(isum), CODES(b): 32 signed codes of block b. */
#define DOT_Q8_0_STEP(CODES, b, acc)                                                               \
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(x[b].d) * F16(y[b].d)),                               \
                          _mm256_cvtepi32_ps(rf_dot_s8s8(CODES(b), LOADY(b))), acc)

#define DOT_Q8_0_BODY(TX, CODES)                                                                   \
    const TX *x = vx;                                                                              \
    const struct rf_block_q8_0 *y = vy;                                                            \
    const int64_t nb = n / 32;                                                                     \
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                                      \
    int64_t i = 0;                                                                                 \
    for (; i + 2 <= nb; i += 2) {                                                                  \
        DOT_Q8_0_STEP(CODES, i, a0);                                                               \
        DOT_Q8_0_STEP(CODES, i + 1, a1);                                                           \
    }                                                                                              \
    if (i < nb) DOT_Q8_0_STEP(CODES, i, a0);                                                       \
    *s = rf_hsum_ps(_mm256_add_ps(a0, a1))

#define Q8_0_CODES(b) _mm256_loadu_si256((const __m256i *)x[b].qs)
#define Q4_0_CODES(b) _mm256_sub_epi8(rf_nibbles32(x[b].qs), _mm256_set1_epi8(8))
/* nibble | (bit ? 0 : 0xF0) is nibble + 16*bit - 16 as int8 */
#define Q5_0_CODES(b)                                                                              \
    _mm256_or_si256(rf_nibbles32(x[b].qs),                                                         \
                    _mm256_andnot_si256(rf_bits_to_bytes32(x[b].qh), _mm256_set1_epi8((char)0xF0)))

void rf_vec_dot_q8_0_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    DOT_Q8_0_BODY(struct rf_block_q8_0, Q8_0_CODES);
}

void rf_vec_dot_q4_0_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    DOT_Q8_0_BODY(struct rf_block_q4_0, Q4_0_CODES);
}

void rf_vec_dot_q5_0_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    DOT_Q8_0_BODY(struct rf_block_q5_0, Q5_0_CODES);
}

/* (d, m) of four x blocks and (d, s) of four y blocks, as dwords at a stride:
 * their product holds dx*dy in even lanes and mx*sy in odd lanes. */
static inline __m256 scales4(const uint8_t *p, size_t stride)
{
    const __m128i h = _mm_setr_epi32(rf_ld32(p), rf_ld32(p + stride), rf_ld32(p + 2 * stride),
                                     rf_ld32(p + 3 * stride));
    return _mm256_cvtph_ps(h);
}

/* Sum of each of four blocks' i16 pair sums: i32 lanes [b0 b1 b2 b3 | b0 b1 b2 b3]
 * (low and high 128-bit halves hold partial sums). */
static inline __m256i reduce4_i16(__m256i p0, __m256i p1, __m256i p2, __m256i p3)
{
    const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(p0, p1), _mm256_hadd_epi16(p2, p3));
    return _mm256_madd_epi16(h, _mm256_set1_epi16(1));
}

/* Q4_1/Q5_1 x Q8_1: per block isum * dx*dy + mx*sy. CODES(b): unsigned codes. */
#define DOT_Q8_1_BODY(TX, CODES)                                                                   \
    const TX *x = vx;                                                                              \
    const struct rf_block_q8_1 *y = vy;                                                            \
    const int64_t nb = n / 32;                                                                     \
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);                                \
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, am = a0;                                             \
    int64_t i = 0;                                                                                 \
    for (; i + 4 <= nb; i += 4) {                                                                  \
        const __m256 sc = _mm256_mul_ps(scales4((const uint8_t *)&x[i], sizeof(*x)),               \
                                        scales4((const uint8_t *)&y[i], sizeof(*y)));              \
        am = _mm256_add_ps(am, sc);                                                                \
        const __m256i q = reduce4_i16(_mm256_maddubs_epi16(CODES(i), LOADY(i)),                    \
                                      _mm256_maddubs_epi16(CODES(i + 1), LOADY(i + 1)),            \
                                      _mm256_maddubs_epi16(CODES(i + 2), LOADY(i + 2)),            \
                                      _mm256_maddubs_epi16(CODES(i + 3), LOADY(i + 3)));           \
        const __m256 dd = _mm256_permutevar8x32_ps(sc, even);                                      \
        if (i & 4) a1 = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(q), a1);                            \
        else a0 = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(q), a0);                                  \
    }                                                                                              \
    float summ = rf_hsum_ps(_mm256_blend_ps(_mm256_setzero_ps(), am, 0xAA));                       \
    for (; i < nb; i++) {                                                                          \
        const __m256i p = rf_dot_u8s8(CODES(i), LOADY(i));                                         \
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(F16(x[i].d) * F16(y[i].d)), _mm256_cvtepi32_ps(p), a0); \
        summ += F16(x[i].m) * F16(y[i].s);                                                         \
    }                                                                                              \
    *s = rf_hsum_ps(_mm256_add_ps(a0, a1)) + summ

#define Q4_1_CODES(b) rf_nibbles32(x[b].qs)
#define Q5_1_CODES(b)                                                                              \
    _mm256_or_si256(rf_nibbles32(x[b].qs), _mm256_and_si256(rf_bits_to_bytes32(x[b].qh), _mm256_set1_epi8(0x10)))

void rf_vec_dot_q4_1_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    DOT_Q8_1_BODY(struct rf_block_q4_1, Q4_1_CODES);
}

void rf_vec_dot_q5_1_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    DOT_Q8_1_BODY(struct rf_block_q5_1, Q5_1_CODES);
}

/* ---- table ---- */

void rf_quant_use_avx2(struct rf_type_traits *t)
{
    t[RF_TYPE_F32].vec_dot = rf_vec_dot_f32_avx2;
    t[RF_TYPE_F16].vec_dot = rf_vec_dot_f16_avx2;
    t[RF_TYPE_F16].from_float = rf_from_float_f16_avx2;
    t[RF_TYPE_F16].to_float = rf_to_float_f16_avx2;
    t[RF_TYPE_BF16].vec_dot = rf_vec_dot_bf16_avx2;
    t[RF_TYPE_Q4_0].vec_dot = rf_vec_dot_q4_0_avx2;
    t[RF_TYPE_Q4_1].vec_dot = rf_vec_dot_q4_1_avx2;
    t[RF_TYPE_Q5_0].vec_dot = rf_vec_dot_q5_0_avx2;
    t[RF_TYPE_Q5_1].vec_dot = rf_vec_dot_q5_1_avx2;
    t[RF_TYPE_Q8_0].vec_dot = rf_vec_dot_q8_0_avx2;
    t[RF_TYPE_Q8_0].from_float = rf_from_float_q8_0_avx2;
    t[RF_TYPE_Q8_1].from_float = rf_from_float_q8_1_avx2;
    t[RF_TYPE_Q8_K].from_float = rf_from_float_q8_K_avx2;
    t[RF_TYPE_Q4_K].vec_dot = rf_vec_dot_q4_K_avx2;
    t[RF_TYPE_Q6_K].vec_dot = rf_vec_dot_q6_K_avx2;
}

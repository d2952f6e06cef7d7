/* AVX2/FMA/F16C kernels of the float and 32-element block types, and the
 * activation quantizers Q8_0/Q8_1/F16. */
#include <math.h>

#include "core/fp16.h"
#include "quant/avx2_common.h"
#include "quant/quant_avx2.h"
#include "quant/quant_impl.h"

/* ---- f32 / f16 / bf16 ----
 * llama.cpp's summation order, so results are bit-identical to its AVX2 kernels:
 * four 8-lane FMA accumulators over chunks of 32 elements, combined as
 * (a0 + a2) + (a1 + a3), then the 8 lanes by halves; the last n % 32 elements
 * one by one (in f32 for F32, in double for F16 and BF16). */

static inline __m256 add_pairs4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    return _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
}

/* 8 lanes to one: halves added, then two horizontal adds (F32, F16). */
static inline float hsum_hadd(__m256 v)
{
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_hadd_ps(t, t);
    return _mm_cvtss_f32(t);
}

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
    float sum = hsum_hadd(add_pairs4(a0, a1, a2, a3));
    /* the remainder as llama.cpp's build computes it: products of 8, then of 4,
     * added in order, the last 1-3 elements fused */
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) sum += x[i + k] * y[i + k];
    if (i + 4 <= n)
        for (int k = 0; k < 4; k++, i++) sum += x[i] * y[i];
    for (; i < n; i++) sum = fmaf(x[i], y[i], sum);
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
    double sum = hsum_hadd(add_pairs4(a0, a1, a2, a3));
    for (; i < n; i++) sum += (double)(_cvtsh_ss(x[i]) * _cvtsh_ss(y[i]));
    *s = (float)sum;
}

static inline __m256 load_bf16x8(const uint16_t *p)
{
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

void rf_vec_dot_bf16_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16x8(x + i + 8), load_bf16x8(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_bf16x8(x + i + 16), load_bf16x8(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_bf16x8(x + i + 24), load_bf16x8(y + i + 24), a3);
    }
    double sum = rf_hsum_ps(add_pairs4(a0, a1, a2, a3));
    for (; i < n; i++) sum += (double)(rf_bf16_to_fp32(x[i]) * rf_bf16_to_fp32(y[i]));
    *s = (float)sum;
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

/* ---- activation quantizers ----
 * Not the reference rounding: these compute what ggml's AVX2 quantizers compute, so
 * that products match llama.cpp bit for bit (see bench/NOTES.md, "Numerics vs
 * llama.cpp"): d = amax/127, codes = x * (127/amax) (not x/d) rounded half to even
 * (not half away from zero). Codes differ from the reference only where x*id lands
 * within an ulp of a .5 tie.
 * (For NaN or inf input the codes are unspecified, as long as nothing is undefined:
 * these kernels rely on the saturating packs.) */

/* Round half to even as int32 (|v| <= 127.5 after scaling, so no overflow). */
static inline __m256i round_q8(__m256 v)
{
    return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* Four i32x8 (elements 0..31 in order) -> 32 int8 in order (saturating). */
static inline __m256i pack_i32x4_to_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i q = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    return _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline __m256 abs_max32(const float *x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x)), _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8)));
    const __m256 b = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 16)), _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 24)));
    return _mm256_max_ps(a, b);
}

/* Codes of one block with the broadcast 1/d; returns the codes' i32 lane sums. */
static inline __m256i codes_q8(const float *x, __m256 id, int8_t *qs)
{
    const __m256i q0 = round_q8(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    const __m256i q1 = round_q8(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    const __m256i q2 = round_q8(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    const __m256i q3 = round_q8(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x4_to_i8(q0, q1, q2, q3));
    return _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3));
}

/* Lane b of the result = reduction (max or add) of all lanes of v[b]: a transpose
 * in three shuffle levels instead of eight horizontal reductions. */
#define REDUCE8(T, OP, UNLO, UNHI, LO64, HI64, PERM)                                              \
    static inline T reduce8_##OP(const T *v)                                                       \
    {                                                                                              \
        T a[4], b[2];                                                                              \
        for (int k = 0; k < 4; k++) a[k] = OP(UNLO(v[2 * k], v[2 * k + 1]), UNHI(v[2 * k], v[2 * k + 1])); \
        for (int k = 0; k < 2; k++) b[k] = OP(LO64(a[2 * k], a[2 * k + 1]), HI64(a[2 * k], a[2 * k + 1])); \
        return OP(PERM(b[0], b[1], 0x20), PERM(b[0], b[1], 0x31));                                 \
    }
#define LO64_PS(a, b) _mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0))
#define HI64_PS(a, b) _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2))
REDUCE8(__m256, _mm256_max_ps, _mm256_unpacklo_ps, _mm256_unpackhi_ps, LO64_PS, HI64_PS, _mm256_permute2f128_ps)
REDUCE8(__m256i, _mm256_add_epi32, _mm256_unpacklo_epi32, _mm256_unpackhi_epi32, _mm256_unpacklo_epi64,
        _mm256_unpackhi_epi64, _mm256_permute2x128_si256)

/* Eight blocks at p (bs bytes apart; qs at byte 2 or 4): d = amax/127 and
 * id = 127/amax as vectors (one division each for eight blocks, correctly rounded
 * as the scalar ones), codes stored, d and the code sums returned per lane. */
static inline void quant8_q8(const float *x, uint8_t *p, size_t bs, size_t qs_off, __m256 *dv, __m256i *sums)
{
    __m256 m[8];
    for (int b = 0; b < 8; b++) m[b] = abs_max32(x + 32 * b);
    const __m256 amax = reduce8__mm256_max_ps(m);
    const __m256 d = _mm256_div_ps(amax, _mm256_set1_ps(127.0f));
    const __m256 nz = _mm256_cmp_ps(amax, _mm256_setzero_ps(), _CMP_NEQ_OQ);
    const __m256 id = _mm256_and_ps(nz, _mm256_div_ps(_mm256_set1_ps(127.0f), amax));
    __m256i s[8];
    for (int b = 0; b < 8; b++)
        s[b] = codes_q8(x + 32 * b, _mm256_permutevar8x32_ps(id, _mm256_set1_epi32(b)), (int8_t *)(p + b * bs + qs_off));
    *dv = d;
    *sums = reduce8__mm256_add_epi32(s);
}

static inline void store_halves8(__m256 v, uint8_t *p, size_t bs)
{
    uint16_t h[8];
    _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    for (int b = 0; b < 8; b++) memcpy(p + b * bs, &h[b], 2);
}

/* One block: the f32 scale, codes to qs, returns the code sum. */
static inline int quant1_q8(const float *x, float *dout, int8_t *qs)
{
    const float amax = rf_hmax_ps(abs_max32(x));
    *dout = amax / 127.0f;
    return rf_hsum_epi32(codes_q8(x, _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f), qs));
}

void rf_from_float_q8_0_avx2(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_0 *y = vy;
    const int64_t nb = n / RF_QK8_0;
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256 d;
        __m256i sums;
        quant8_q8(x + i * RF_QK8_0, (uint8_t *)&y[i], sizeof(*y), 2, &d, &sums);
        store_halves8(d, (uint8_t *)&y[i], sizeof(*y));
    }
    for (; i < nb; i++) {
        float d;
        quant1_q8(x + i * RF_QK8_0, &d, y[i].qs);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

void rf_from_float_q8_1_avx2(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_1 *y = vy;
    const int64_t nb = n / RF_QK8_1;
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256 d;
        __m256i sums;
        quant8_q8(x + i * RF_QK8_1, (uint8_t *)&y[i], sizeof(*y), 4, &d, &sums);
        store_halves8(d, (uint8_t *)&y[i], sizeof(*y));
        store_halves8(_mm256_mul_ps(_mm256_cvtepi32_ps(sums), d), (uint8_t *)&y[i] + 2, sizeof(*y));
    }
    for (; i < nb; i++) {
        float d;
        const int sum = quant1_q8(x + i * RF_QK8_1, &d, y[i].qs);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ---- dots of the 32-element block types ----
 * Each kernel body handles one weight row against nt activation rows (nt <= 4,
 * a compile-time constant after inlining): the weight codes and scales are
 * unpacked once and used for every activation row. vec_dot is the nt = 1
 * instance and vec_dot_multi runs groups of 4, then 3, 2 or 1, so both give bit-identical
 * results for a (row, activation) pair. Per block: the i32x8 lane sums of the
 * code products (lane j: bytes 4j..4j+3), converted and multiplied by the scale
 * product into a single accumulator per token, blocks in order; this is the
 * rounding order of ggml's AVX2 kernels, which the model numerics rely on (the
 * tokens of a tile give the independent chains that hide the FMA latency). */

#define RF_INLINE static inline __attribute__((always_inline))
#define MAXT 4
#define F16(h) rf_f16_table[(h)]

RF_INLINE uint16_t ld_h(const uint8_t *p) { return (uint16_t)rf_ld16(p); }
RF_INLINE __m256i load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Signed codes of one block at p, for the types dotted with Q8_0. */
enum q8_0_kind { K_Q8_0, K_Q4_0, K_Q5_0 };

RF_INLINE __m256i codes_signed(const uint8_t *p, enum q8_0_kind k)
{
    if (k == K_Q8_0) return load32(p + 2);
    if (k == K_Q4_0) return _mm256_sub_epi8(rf_nibbles32(p + 2), _mm256_set1_epi8(8));
    /* Q5_0: nibble | (bit ? 0 : 0xF0) is nibble + 16*bit - 16 as int8 */
    return _mm256_or_si256(rf_nibbles32(p + 6),
                           _mm256_andnot_si256(rf_bits_to_bytes32(p + 2), _mm256_set1_epi8((char)0xF0)));
}

RF_INLINE size_t block_bytes_signed(enum q8_0_kind k)
{
    return k == K_Q8_0 ? sizeof(struct rf_block_q8_0) : k == K_Q4_0 ? sizeof(struct rf_block_q4_0)
                                                                    : sizeof(struct rf_block_q5_0);
}

/* acc[t] += dx*dy_t * float(isum_t) for block b. */
RF_INLINE void step_q8_0(const uint8_t *xb, const uint8_t *y, size_t ys, int64_t b, enum q8_0_kind k, int nt,
                         __m256 *acc)
{
    const size_t by = sizeof(struct rf_block_q8_0);
    const __m256i c = codes_signed(xb, k);
    const __m256i ac = _mm256_sign_epi8(c, c);
    const float dx = F16(ld_h(xb));
    RF_UNROLL for (int t = 0; t < nt; t++) {
        const uint8_t *yb = y + (size_t)t * ys + (size_t)b * by;
        const __m256i p = rf_dot_u8s8(ac, _mm256_sign_epi8(load32(yb + 2), c));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * F16(ld_h(yb))), _mm256_cvtepi32_ps(p), acc[t]);
    }
}

/* One accumulator per token, blocks in order, then one horizontal sum: ggml's
 * AVX2 q8_0 dot and its tinyBLAS Q8_0 product both round in this order. */
RF_INLINE void dot_q8_0_body(int64_t n, float *s, size_t ss, const uint8_t *x, const uint8_t *y, size_t ys,
                             int nt, enum q8_0_kind k)
{
    const size_t bx = block_bytes_signed(k);
    const int64_t nb = n / 32;
    __m256 acc[MAXT];
    RF_UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) step_q8_0(x + (size_t)i * bx, y, ys, i, k, nt, acc);
    RF_UNROLL for (int t = 0; t < nt; t++) s[(size_t)t * ss] = rf_hsum_ps(acc[t]);
}

/* Unsigned codes of one block at p, for the types dotted with Q8_1. */
RF_INLINE __m256i codes_unsigned(const uint8_t *p, int q5)
{
    if (!q5) return rf_nibbles32(p + 4);
    return _mm256_or_si256(rf_nibbles32(p + 8), _mm256_and_si256(rf_bits_to_bytes32(p + 4), _mm256_set1_epi8(0x10)));
}

/* Q4_1/Q5_1 x Q8_1: per block, acc += (dx*dy) * isum lanes and summ = fma(mx, sy,
 * summ) (one rounding: ggml's build contracts it); the result is hsum(acc) + summ.
 * This is ggml's AVX2 q4_1.q8_1 rounding sequence, so products match llama.cpp. */
RF_INLINE void dot_q8_1_body(int64_t n, float *s, size_t ss, const uint8_t *x, const uint8_t *y, size_t ys,
                             int nt, int q5)
{
    const size_t bx = q5 ? sizeof(struct rf_block_q5_1) : sizeof(struct rf_block_q4_1);
    const size_t by = sizeof(struct rf_block_q8_1);
    const int64_t nb = n / 32;
    __m256 acc[MAXT];
    __m128 summ[MAXT]; /* in lane 0 */
    RF_UNROLL for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        summ[t] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xb = x + (size_t)i * bx;
        const __m256i c = codes_unsigned(xb, q5);
        /* (d, m) and (d, s) pairs by one conversion each: exact, as the table */
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(rf_ld32(xb)));
        const __m128 mx = _mm_movehdup_ps(dm);
        RF_UNROLL for (int t = 0; t < nt; t++) {
            const uint8_t *yb = y + (size_t)t * ys + (size_t)i * by;
            const __m128 ds = _mm_cvtph_ps(_mm_cvtsi32_si128(rf_ld32(yb)));
            const __m256 dd = _mm256_broadcastss_ps(_mm_mul_ss(dm, ds));
            const __m256i p = rf_dot_u8s8(c, load32(yb + 4));
            acc[t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(p), acc[t]);
            summ[t] = _mm_fmadd_ss(mx, _mm_movehdup_ps(ds), summ[t]);
        }
    }
    RF_UNROLL for (int t = 0; t < nt; t++) s[(size_t)t * ss] = rf_hsum_ps(acc[t]) + _mm_cvtss_f32(summ[t]);
}

/* Eight tokens of dot_q8_1_body at once, same rounding per token. dy and sy hold
 * the eight tokens' scales per block (dy[8i + t]: d of token t, block i, as f32),
 * so dx*dy is one vector multiply (lane t: the scalar product of token t) and the
 * m*s chains of the eight tokens are the lanes of one vector FMA. Accumulators
 * in registers: 8 for acc, 1 for summ. */
RF_INLINE void dot_q8_1_x8(int64_t n, float *s, size_t ss, const uint8_t *x, const uint8_t *y, size_t ys,
                           const float *dy, const float *sy, int q5)
{
    const size_t bx = q5 ? sizeof(struct rf_block_q5_1) : sizeof(struct rf_block_q4_1);
    const size_t by = sizeof(struct rf_block_q8_1);
    const int64_t nb = n / 32;
    __m256 acc[8];
    RF_UNROLL for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
    __m256 summ = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xb = x + (size_t)i * bx;
        const uint8_t *yb = y + (size_t)i * by + 4;
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(rf_ld32(xb)));
        summ = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), _mm256_load_ps(sy + 8 * i), summ);
        const __m256 dd = _mm256_mul_ps(_mm256_broadcastss_ps(dm), _mm256_load_ps(dy + 8 * i));
        const __m256 dlo = _mm256_permute2f128_ps(dd, dd, 0x00), dhi = _mm256_permute2f128_ps(dd, dd, 0x11);
        const __m256i c = codes_unsigned(xb, q5);
#define RF_Q81_STEP(t, dh, imm)                                                                     \
    acc[t] = _mm256_fmadd_ps(_mm256_permute_ps(dh, imm),                                           \
                             _mm256_cvtepi32_ps(rf_dot_u8s8(c, load32(yb + (size_t)(t) * ys))), acc[t])
        RF_Q81_STEP(0, dlo, 0x00);
        RF_Q81_STEP(1, dlo, 0x55);
        RF_Q81_STEP(2, dlo, 0xAA);
        RF_Q81_STEP(3, dlo, 0xFF);
        RF_Q81_STEP(4, dhi, 0x00);
        RF_Q81_STEP(5, dhi, 0x55);
        RF_Q81_STEP(6, dhi, 0xAA);
        RF_Q81_STEP(7, dhi, 0xFF);
#undef RF_Q81_STEP
    }
    float sm[8];
    _mm256_storeu_ps(sm, summ);
    RF_UNROLL for (int t = 0; t < 8; t++) s[(size_t)t * ss] = rf_hsum_ps(acc[t]) + sm[t];
}

#define TILE_MAX_BLOCKS 256 /* rows of up to 8192 elements take the 8-token path */

/* The (d, s) scales of 8 Q8_1 rows, block-major: d[8i + t], sc[8i + t]. */
static void q8_1_scales_x8(int64_t nb, const uint8_t *y, size_t ys, float *d, float *sc)
{
    for (int t = 0; t < 8; t++)
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *yb = y + (size_t)t * ys + (size_t)i * sizeof(struct rf_block_q8_1);
            d[8 * i + t] = F16(ld_h(yb));
            sc[8 * i + t] = F16(ld_h(yb + 2));
        }
}

/* Q4_1/Q5_1 tile: rows x (nr, x_stride bytes apart) against nt activation rows;
 * s[t*ss + r]. Per (row, token) the arithmetic of vec_dot. */
RF_INLINE void tile_q8_1(int64_t n, float *s, size_t ss, const uint8_t *x, size_t xs, int64_t nr,
                         const uint8_t *y, size_t ys, int64_t nt, int q5)
{
    const int64_t nb = n / 32;
    _Alignas(32) float d[8 * TILE_MAX_BLOCKS], sc[8 * TILE_MAX_BLOCKS];
    int64_t t = 0;
    if (nb <= TILE_MAX_BLOCKS)
        for (; t + 8 <= nt; t += 8) {
            q8_1_scales_x8(nb, y + (size_t)t * ys, ys, d, sc);
            for (int64_t r = 0; r < nr; r++)
                dot_q8_1_x8(n, s + (size_t)t * ss + r, ss, x + (size_t)r * xs, y + (size_t)t * ys, ys, d, sc, q5);
        }
    if (t == nt) return;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *xr = x + (size_t)r * xs, *yt = y + (size_t)t * ys;
        float *sr = s + (size_t)t * ss + r;
        int64_t u = 0;
        for (; u + 4 <= nt - t; u += 4) dot_q8_1_body(n, sr + (size_t)u * ss, ss, xr, yt + (size_t)u * ys, ys, 4, q5);
        if (nt - t - u == 3) dot_q8_1_body(n, sr + (size_t)u * ss, ss, xr, yt + (size_t)u * ys, ys, 3, q5);
        else if (nt - t - u == 2) dot_q8_1_body(n, sr + (size_t)u * ss, ss, xr, yt + (size_t)u * ys, ys, 2, q5);
        else if (nt - t - u == 1) dot_q8_1_body(n, sr + (size_t)u * ss, ss, xr, yt + (size_t)u * ys, ys, 1, q5);
    }
}

void rf_vec_dot_tile_q4_1_avx2(int64_t n, float *s, size_t ss, const void *x, size_t xs, int64_t nr,
                               const void *y, size_t ys, int64_t nt)
{
    tile_q8_1(n, s, ss, x, xs, nr, y, ys, nt, 0);
}

void rf_vec_dot_tile_q5_1_avx2(int64_t n, float *s, size_t ss, const void *x, size_t xs, int64_t nr,
                               const void *y, size_t ys, int64_t nt)
{
    tile_q8_1(n, s, ss, x, xs, nr, y, ys, nt, 1);
}

/* vec_dot and vec_dot_multi of one type from its body. */
#define DEF_DOTS(name, BODY, arg)                                                                  \
    void rf_vec_dot_##name##_avx2(int64_t n, float *s, const void *vx, const void *vy)             \
    {                                                                                              \
        BODY(n, s, 0, vx, vy, 0, 1, arg);                                                          \
    }                                                                                              \
    void rf_vec_dot_multi_##name##_avx2(int64_t n, float *s, size_t ss, const void *vx, const void *vy, \
                                        size_t ys, int64_t nt)                                     \
    {                                                                                              \
        const uint8_t *y = vy;                                                                     \
        int64_t t = 0;                                                                             \
        for (; t + 4 <= nt; t += 4) BODY(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 4, arg); \
        if (nt - t == 3) BODY(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 3, arg);      \
        else if (nt - t == 2) BODY(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 2, arg);      \
        else if (nt - t == 1) BODY(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 1, arg); \
    }

DEF_DOTS(q8_0, dot_q8_0_body, K_Q8_0)
DEF_DOTS(q4_0, dot_q8_0_body, K_Q4_0)
DEF_DOTS(q5_0, dot_q8_0_body, K_Q5_0)
DEF_DOTS(q4_1, dot_q8_1_body, 0)
DEF_DOTS(q5_1, dot_q8_1_body, 1)

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
    t[RF_TYPE_Q4_0].vec_dot_multi = rf_vec_dot_multi_q4_0_avx2;
    t[RF_TYPE_Q4_1].vec_dot_multi = rf_vec_dot_multi_q4_1_avx2;
    t[RF_TYPE_Q5_0].vec_dot_multi = rf_vec_dot_multi_q5_0_avx2;
    t[RF_TYPE_Q5_1].vec_dot_multi = rf_vec_dot_multi_q5_1_avx2;
    t[RF_TYPE_Q8_0].vec_dot_multi = rf_vec_dot_multi_q8_0_avx2;
    t[RF_TYPE_Q4_1].vec_dot_tile = rf_vec_dot_tile_q4_1_avx2;
    t[RF_TYPE_Q5_1].vec_dot_tile = rf_vec_dot_tile_q5_1_avx2;
    t[RF_TYPE_Q8_0].from_float = rf_from_float_q8_0_avx2;
    t[RF_TYPE_Q8_1].from_float = rf_from_float_q8_1_avx2;
    t[RF_TYPE_Q8_K].from_float = rf_from_float_q8_K_avx2;
    t[RF_TYPE_Q4_K].vec_dot = rf_vec_dot_q4_K_avx2;
    t[RF_TYPE_Q6_K].vec_dot = rf_vec_dot_q6_K_avx2;
    t[RF_TYPE_Q4_K].vec_dot_multi = rf_vec_dot_multi_q4_K_avx2;
    t[RF_TYPE_Q6_K].vec_dot_multi = rf_vec_dot_multi_q6_K_avx2;
}

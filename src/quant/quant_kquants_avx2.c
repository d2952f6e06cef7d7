/* AVX2/FMA kernels of the K-quants: Q4_K and Q6_K dots with Q8_K, and the Q8_K
 * activation quantizer (bit-exact with the reference). */
#include "quant/avx2_common.h"
#include "quant/quant_avx2.h"
#include "quant/quant_impl.h"

/* i16 lane broadcast inside each 128-bit lane: word a in the low lane, word b in
 * the high lane. */
static inline __m256i word_pick(int a, int b)
{
    const short lo = (short)((2 * a + 1) << 8 | (2 * a)), hi = (short)((2 * b + 1) << 8 | (2 * b));
    return _mm256_setr_epi16(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi);
}

/* Q4_K: 8 scales and 8 mins (6 bits) from the 12 packed bytes, as bytes. */
static inline void q4k_scales(const uint8_t *q, uint32_t sc[2], uint32_t m[2])
{
    const uint32_t w0 = (uint32_t)rf_ld32(q), w1 = (uint32_t)rf_ld32(q + 4), w2 = (uint32_t)rf_ld32(q + 8);
    sc[0] = w0 & 0x3f3f3f3fu;
    m[0] = w1 & 0x3f3f3f3fu;
    sc[1] = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    m[1] = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
}

/* Q4_K x Q8_K: per super-block d*sum_j sc_j*(q.y)_j - dmin*sum_j m_j*bsum_j. The
 * scale multiplies the i16 pair sums inside vpmaddwd, so each 64-element chunk
 * costs two maddubs and two maddwd. */
void rf_vec_dot_q4_K_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q4_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i pick[8];
    for (int j = 0; j < 8; j++) pick[j] = word_pick(j, j);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        uint32_t sc[2], mn[2];
        q4k_scales(x[i].scales, sc, mn);
        /* scales as i16 in both lanes: words 0..7 = sc0..sc7 */
        const __m128i sc8 = _mm_setr_epi32((int)sc[0], (int)sc[1], 0, 0);
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc8));
        const __m128i m8 = _mm_setr_epi32((int)mn[0], (int)mn[1], 0, 0);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)); /* m0 m0 m1 m1 .. */
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m256i summ = _mm256_madd_epi16(bs, mins);
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = sumi0;
        for (int g = 0; g < 4; g++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * g));
            const __m256i lo = _mm256_and_si256(q, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * g));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * g + 32));
            const __m256i s0 = _mm256_shuffle_epi8(sc16, pick[2 * g]);
            const __m256i s1 = _mm256_shuffle_epi8(sc16, pick[2 * g + 1]);
            sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1));
        }
        const float d = y[i].d * rf_h2f_f16c(x[i].d), dmin = y[i].d * rf_h2f_f16c(x[i].dmin);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sumi0, sumi1)), acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(summ), accm);
    }
    *s = rf_hsum_ps(acc) - rf_hsum_ps(accm);
}

/* Q6_K x Q8_K: codes q in 0..63 (unsigned, so vpmaddubsw applies), the -32 offset
 * folded into one correction per super-block: 32 * sum_k sc_k * bsums_k. Each
 * 32-element group spans two 16-element sub-blocks: the low lane of the maddubs
 * result belongs to the first, the high lane to the second. */
void rf_vec_dot_q6_K_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q6_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16);
        const __m256i sc_a = _mm256_permute2x128_si256(sc16, sc16, 0x00); /* sc0..7 twice */
        const __m256i sc_b = _mm256_permute2x128_si256(sc16, sc16, 0x11); /* sc8..15 twice */
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = sumi0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const int8_t *yq = y[i].qs + 128 * h;
            const __m256i scv = h ? sc_b : sc_a;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m2));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
            const __m256i p0 = _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)yq));
            const __m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(yq + 32)));
            const __m256i p2 = _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(yq + 64)));
            const __m256i p3 = _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(yq + 96)));
            sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(scv, word_pick(0, 1))));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scv, word_pick(2, 3))));
            sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(p2, _mm256_shuffle_epi8(scv, word_pick(4, 5))));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(p3, _mm256_shuffle_epi8(scv, word_pick(6, 7))));
        }
        const __m256i sumi = _mm256_sub_epi32(_mm256_add_epi32(sumi0, sumi1), _mm256_slli_epi32(corr, 5));
        const float d = rf_h2f_f16c(x[i].d) * y[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = rf_hsum_ps(acc);
}

/* ---- Q8_K quantizer ---- */

/* Index of the first element with |x| == amax (amax > 0 is one of them). */
static inline int first_abs_equal(const float *x, float amax)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), m = _mm256_set1_ps(amax);
    for (int j = 0; j < RF_QK_K; j += 8) {
        const int bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m, _CMP_EQ_OQ));
        if (bits) return j + __builtin_ctz((unsigned)bits);
    }
    return 0;
}

/* Rounds half to even (as the 1.5*2^23 trick of the reference), clamps to
 * -128..127, as int32. */
static inline __m256i round_q8k(__m256 v)
{
    const __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_cvttps_epi32(_mm256_max_ps(_mm256_min_ps(r, _mm256_set1_ps(127.0f)), _mm256_set1_ps(-128.0f)));
}

void rf_from_float_q8_K_avx2(const float *x, void *vy, int64_t n)
{
    struct rf_block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / RF_QK_K; i++, x += RF_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < RF_QK_K; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        const float amax = rf_hmax_ps(m);
        if (!(amax > 0.0f)) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.0f / x[first_abs_equal(x, amax)];
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int j = 0; j < RF_QK_K; j += 32) {
            const __m256i q0 = round_q8k(_mm256_mul_ps(_mm256_loadu_ps(x + j), vs));
            const __m256i q1 = round_q8k(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), vs));
            const __m256i q2 = round_q8k(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), vs));
            const __m256i q3 = round_q8k(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), vs));
            const __m256i ab = _mm256_packs_epi32(q0, q1), cd = _mm256_packs_epi32(q2, q3);
            const __m256i q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd),
                                                          _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), q);
            /* two 16-element sums of this 32-element group */
            const int s0 = rf_hsum_epi32(_mm256_add_epi32(q0, q1)), s1 = rf_hsum_epi32(_mm256_add_epi32(q2, q3));
            y[i].bsums[j / 16] = (int16_t)s0;
            y[i].bsums[j / 16 + 1] = (int16_t)s1;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* AVX2/FMA kernels of the K-quants: Q4_K and Q6_K dots with Q8_K, and the Q8_K
 * activation quantizer (bit-exact with the reference). */
#include "quant/avx2_common.h"
#include "quant/quant_avx2.h"
#include "quant/quant_impl.h"

#include <math.h>

#define RF_INLINE static inline __attribute__((always_inline))
#define MAXT 3 /* activation rows per kernel pass, see quant_avx2.c */

/* Q4_K: 8 scales and 8 mins (6 bits) from the 12 packed bytes, as bytes. */
RF_INLINE void q4k_scales(const uint8_t *q, uint32_t sc[2], uint32_t m[2])
{
    const uint32_t w0 = (uint32_t)rf_ld32(q), w1 = (uint32_t)rf_ld32(q + 4), w2 = (uint32_t)rf_ld32(q + 8);
    sc[0] = w0 & 0x3f3f3f3fu;
    m[0] = w1 & 0x3f3f3f3fu;
    sc[1] = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    m[1] = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
}

RF_INLINE const struct rf_block_q8_K *q8k_row(const void *y, size_t ys, int t)
{
    return (const struct rf_block_q8_K *)((const uint8_t *)y + (size_t)t * ys);
}

/* Q4_K x Q8_K: per super-block d*sum_j sc_j*(q.y)_j - dmin*sum_j m_j*bsum_j. The
 * scale multiplies the i16 pair sums inside vpmaddwd, so each 64-element chunk
 * costs two maddubs and two maddwd per activation row. The float steps are
 * llama.cpp's (bit-identical results): acc += d * lanes (8 lanes), the min term in
 * 4 lanes (pairs of sub-blocks) with -dmin, result hsum8(acc) + hsum4(acc_m). */
RF_INLINE void dot_q4_K_body(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys, int nt)
{
    const struct rf_block_q4_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i pick[8]; /* vpshufb control broadcasting i16 word j */
    for (int j = 0; j < 8; j++) pick[j] = _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j));
    __m256 acc[MAXT];
    __m128 accm[MAXT];
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        accm[t] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        uint32_t sc[2], mn[2];
        q4k_scales(x[i].scales, sc, mn);
        /* scales as i16 in both lanes: words 0..7 = sc0..sc7 */
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_setr_epi32((int)sc[0], (int)sc[1], 0, 0)));
        const __m128i mins = _mm_cvtepu8_epi16(_mm_setr_epi32((int)mn[0], (int)mn[1], 0, 0)); /* m0..m7 */
        __m256i sumi[MAXT];
        for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * g));
            const __m256i lo = _mm256_and_si256(q, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i s0 = _mm256_shuffle_epi8(sc16, pick[2 * g]);
            const __m256i s1 = _mm256_shuffle_epi8(sc16, pick[2 * g + 1]);
            for (int t = 0; t < nt; t++) {
                const int8_t *yq = q8k_row(vy, ys, t)[i].qs + 64 * g;
                const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)yq)), s0);
                const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(yq + 32))), s1);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p0, p1));
            }
        }
        const float xd = rf_f16_table[x[i].d], xmin = rf_f16_table[x[i].dmin];
        for (int t = 0; t < nt; t++) {
            const struct rf_block_q8_K *y = q8k_row(vy, ys, t) + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            /* bsums of sub-block j (16-element pairs summed), times m_j, pairs of j summed */
            const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            const __m128i prod = _mm_madd_epi16(mins, q8s);
            accm[t] = _mm_fmadd_ps(_mm_set1_ps(-y->d * xmin), _mm_cvtepi32_ps(prod), accm[t]);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * xd), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        __m128 m = _mm_add_ps(accm[t], _mm_movehl_ps(accm[t], accm[t]));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        s[(size_t)t * ss] = rf_hsum_ps(acc[t]) + _mm_cvtss_f32(m);
    }
}

/* i16 lane broadcast inside each 128-bit lane: word a in the low lane, word b in
 * the high lane. */
RF_INLINE __m256i word_pick(int a, int b)
{
    const short lo = (short)((2 * a + 1) << 8 | (2 * a)), hi = (short)((2 * b + 1) << 8 | (2 * b));
    return _mm256_setr_epi16(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi);
}

/* Q6_K x Q8_K: codes q in 0..63 (unsigned, so vpmaddubsw applies), the -32 offset
 * folded into one correction per super-block: 32 * sum_k sc_k * bsums_k. Each
 * 32-element group spans two 16-element sub-blocks: the low lane of the maddubs
 * result belongs to the first, the high lane to the second. */
RF_INLINE void dot_q6_K_body(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys, int nt)
{
    const struct rf_block_q6_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    __m256 acc[MAXT];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i sumi[MAXT];
        for (int t = 0; t < nt; t++) /* starts at minus the offset term 32 * sum_k sc_k * bsums_k */
            sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(_mm256_madd_epi16(
                                           _mm256_loadu_si256((const __m256i *)q8k_row(vy, ys, t)[i].bsums), sc16), 5));
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const __m256i scv = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) /* sc 8..15 twice */
                                 : _mm256_permute2x128_si256(sc16, sc16, 0x00); /* sc 0..7 twice */
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m2));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
            const __m256i k0 = _mm256_shuffle_epi8(scv, word_pick(0, 1));
            const __m256i k1 = _mm256_shuffle_epi8(scv, word_pick(2, 3));
            const __m256i k2 = _mm256_shuffle_epi8(scv, word_pick(4, 5));
            const __m256i k3 = _mm256_shuffle_epi8(scv, word_pick(6, 7));
            for (int t = 0; t < nt; t++) {
                const int8_t *yq = q8k_row(vy, ys, t)[i].qs + 128 * h;
                const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)yq)), k0);
                const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(yq + 32))), k1);
                const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(yq + 64))), k2);
                const __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(yq + 96))), k3);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
            }
        }
        const float xd = rf_f16_table[x[i].d];
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(xd * q8k_row(vy, ys, t)[i].d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
    for (int t = 0; t < nt; t++) s[(size_t)t * ss] = rf_hsum_ps(acc[t]);
}

#define DEF_DOTS(name, BODY)                                                                       \
    void rf_vec_dot_##name##_avx2(int64_t n, float *s, const void *vx, const void *vy)             \
    {                                                                                              \
        BODY(n, s, 0, vx, vy, 0, 1);                                                               \
    }                                                                                              \
    void rf_vec_dot_multi_##name##_avx2(int64_t n, float *s, size_t ss, const void *vx, const void *vy, \
                                        size_t ys, int64_t nt)                                     \
    {                                                                                              \
        const uint8_t *y = vy;                                                                     \
        int64_t t = 0;                                                                             \
        for (; t + 3 <= nt; t += 3) BODY(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 3); \
        if (nt - t == 2) BODY(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 2);           \
        else if (nt - t == 1) BODY(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 1);      \
    }

DEF_DOTS(q4_K, dot_q4_K_body)
DEF_DOTS(q6_K, dot_q6_K_body)

/* ---- the summation orders of llama.cpp's repacked Q4_K / Q6_K products ----
 *
 * On AVX2, llama.cpp stores Q4_K and Q6_K matrices whose row count is a multiple of 8
 * interleaved 8 rows at a time and multiplies them with other kernels, whose integer
 * parts are the same but whose float steps differ from its vec_dot (found by testing
 * candidate orders against its outputs, and checked by the Gemma 3 traces):
 *   Q4_K, tokens in groups of 4 (gemm): per super-block and pair of 32-element
 *     sub-blocks p, acc = fma(float(sc_2p q.y_2p + sc_2p+1 q.y_2p+1), d dy, acc) and
 *     accm = fma(float(m_2p bsum_2p + m_2p+1 bsum_2p+1), dmin dy, accm);
 *   Q4_K, a token alone (gemv): the same with one fma of each per super-block;
 *   result acc - accm;
 *   Q6_K, both: per super-block acc = fma(float(sum_k sc_k (q - 32).y_k) * d, dy, acc). */

/* A Q4_K super-block unpacked once for several tokens: nibbles of each 64-element
 * group g (low: sub-block 2g, high: 2g+1), their scales broadcast as i16, the mins. */
struct q4k_unpacked {
    __m256i lo[4], hi[4], s0[4], s1[4];
    __m128i mins; /* m0..m7 as i16 */
};

RF_INLINE void q4k_unpack(const struct rf_block_q4_K *x, struct q4k_unpacked *u)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    uint32_t sc[2], mn[2];
    q4k_scales(x->scales, sc, mn);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_setr_epi32((int)sc[0], (int)sc[1], 0, 0)));
    for (int g = 0; g < 4; g++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * g));
        u->lo[g] = _mm256_and_si256(q, m4);
        u->hi[g] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        u->s0[g] = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)((4 * g + 1) << 8 | 4 * g)));
        u->s1[g] = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)((4 * g + 3) << 8 | (4 * g + 2))));
    }
    u->mins = _mm_cvtepu8_epi16(_mm_setr_epi32((int)mn[0], (int)mn[1], 0, 0));
}

/* One token's integer parts against u: per pair p of sub-blocks (2p, 2p+1), the
 * scaled products (*dot, lanes p = 0..3) and the mins times the 32-element activation
 * sums (*mins). */
RF_INLINE void q4k_pair_sums(const struct q4k_unpacked *u, const struct rf_block_q8_K *y, __m128i *dot,
                             __m128i *mins)
{
    __m256i v[4];
    for (int g = 0; g < 4; g++) {
        const int8_t *yq = y->qs + 64 * g;
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u->lo[g], _mm256_loadu_si256((const __m256i *)yq)), u->s0[g]);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u->hi[g], _mm256_loadu_si256((const __m256i *)(yq + 32))), u->s1[g]);
        v[g] = _mm256_add_epi32(p0, p1);
    }
    /* the four horizontal sums at once: lanes [v0, v1, v2, v3] */
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    *dot = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    *mins = _mm_madd_epi16(u->mins, q8s);
}

/* The gemm order for nt <= 4 tokens against one weight row, the tokens in the lanes
 * of acc (each lane the same fma sequence as one token alone). */
RF_INLINE void q4k_gemm_body(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys, int nt)
{
    const struct rf_block_q4_K *x = vx;
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        struct q4k_unpacked u;
        q4k_unpack(&x[i], &u);
        __m128 dot[4], mins[4];
        float yd[4] = {0, 0, 0, 0};
        for (int t = 0; t < 4; t++) {
            if (t >= nt) {
                dot[t] = mins[t] = _mm_setzero_ps();
                continue;
            }
            const struct rf_block_q8_K *y = q8k_row(vy, ys, t) + i;
            __m128i di, mi;
            q4k_pair_sums(&u, y, &di, &mi);
            dot[t] = _mm_cvtepi32_ps(di);
            mins[t] = _mm_cvtepi32_ps(mi);
            yd[t] = y->d;
        }
        _MM_TRANSPOSE4_PS(dot[0], dot[1], dot[2], dot[3]);     /* dot[p]: pair p of each token */
        _MM_TRANSPOSE4_PS(mins[0], mins[1], mins[2], mins[3]);
        const __m128 ydv = _mm_loadu_ps(yd);
        const __m128 dd = _mm_mul_ps(_mm_set1_ps(rf_f16_table[x[i].d]), ydv);
        const __m128 dm = _mm_mul_ps(_mm_set1_ps(rf_f16_table[x[i].dmin]), ydv);
        for (int p = 0; p < 4; p++) {
            acc = _mm_fmadd_ps(dot[p], dd, acc);
            accm = _mm_fmadd_ps(mins[p], dm, accm);
        }
    }
    float out[4];
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
    for (int t = 0; t < nt; t++) s[(size_t)t * ss] = out[t];
}

/* The gemv order, one token. */
RF_INLINE void q4k_gemv_body(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct rf_block_q4_K *x = vx;
    const struct rf_block_q8_K *y = vy;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        struct q4k_unpacked u;
        q4k_unpack(&x[i], &u);
        __m128i di, mi;
        q4k_pair_sums(&u, &y[i], &di, &mi);
        /* sum of the four lanes (exact) */
        di = _mm_add_epi32(di, _mm_shuffle_epi32(di, 0x4e));
        di = _mm_add_epi32(di, _mm_shuffle_epi32(di, 0xb1));
        mi = _mm_add_epi32(mi, _mm_shuffle_epi32(mi, 0x4e));
        mi = _mm_add_epi32(mi, _mm_shuffle_epi32(mi, 0xb1));
        acc = fmaf((float)_mm_cvtsi128_si32(di), rf_f16_table[x[i].d] * y[i].d, acc);
        accm = fmaf((float)_mm_cvtsi128_si32(mi), rf_f16_table[x[i].dmin] * y[i].d, accm);
    }
    *s = acc - accm;
}

void rf_vec_dot_q4_K_r8_gemm_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    q4k_gemm_body(n, s, 0, vx, vy, 0, 1);
}

void rf_vec_dot_q4_K_r8_gemv_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    q4k_gemv_body(n, s, vx, vy);
}

void rf_vec_dot_multi_q4_K_r8_gemm_avx2(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
                                        int64_t nt)
{
    const uint8_t *y = vy;
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4) q4k_gemm_body(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 4);
    if (t < nt) q4k_gemm_body(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, (int)(nt - t));
}

/* A Q6_K super-block unpacked once for several tokens: the 6-bit codes of each
 * 32-element group (unsigned, offset 32) and the scales of its two 16-element halves. */
struct q6k_unpacked {
    __m256i q[8], k[8];
    __m256i sc16; /* the 16 scales as i16, for the offset term */
};

RF_INLINE void q6k_unpack(const struct rf_block_q6_K *x, struct q6k_unpacked *u)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    u->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        const __m256i scv = h ? _mm256_permute2x128_si256(u->sc16, u->sc16, 0x11) : _mm256_permute2x128_si256(u->sc16, u->sc16, 0x00);
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
        __m256i *q = u->q + 4 * h, *k = u->k + 4 * h;
        q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m2));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
        for (int j = 0; j < 4; j++) k[j] = _mm256_shuffle_epi8(scv, word_pick(2 * j, 2 * j + 1));
    }
}

/* sum_k sc_k (q - 32).y_k of one token against u, exact. */
RF_INLINE int32_t q6k_isum(const struct q6k_unpacked *u, const struct rf_block_q8_K *y)
{
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),
                                    _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), u->sc16), 5));
    for (int j = 0; j < 8; j++) {
        const __m256i p = _mm256_maddubs_epi16(u->q[j], _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, u->k[j]));
    }
    return rf_hsum_epi32(sumi);
}

RF_INLINE void q6k_r8_body(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys, int nt)
{
    const struct rf_block_q6_K *x = vx;
    float acc[4] = {0};
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        struct q6k_unpacked u;
        q6k_unpack(&x[i], &u);
        const float xd = rf_f16_table[x[i].d];
        for (int t = 0; t < nt; t++) {
            const struct rf_block_q8_K *y = q8k_row(vy, ys, t) + i;
            acc[t] = fmaf((float)q6k_isum(&u, y) * xd, y->d, acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) s[(size_t)t * ss] = acc[t];
}

void rf_vec_dot_q6_K_r8_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    q6k_r8_body(n, s, 0, vx, vy, 0, 1);
}

void rf_vec_dot_multi_q6_K_r8_avx2(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
                                   int64_t nt)
{
    const uint8_t *y = vy;
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4) q6k_r8_body(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, 4);
    if (t < nt) q6k_r8_body(n, s + (size_t)t * ss, ss, vx, y + (size_t)t * ys, ys, (int)(nt - t));
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

#ifndef RF_QUANT_AVX2_COMMON_H
#define RF_QUANT_AVX2_COMMON_H
/* Small AVX2 helpers shared by the *_avx2.c kernels. Include only from files
 * built with -mavx2 -mfma -mf16c. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Full unrolling of the per-token loops (trip count a constant after inlining), so
 * that the accumulators stay in registers: -O2 alone keeps them in memory. */
#define RF_UNROLL _Pragma("GCC unroll 8")

static inline float rf_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t rf_hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

static inline float rf_hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float rf_h2f_f16c(uint16_t h) { return _cvtsh_ss(h); }

static inline int32_t rf_ld32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int16_t rf_ld16(const void *p)
{
    int16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* 16 bytes of packed nibbles -> 32 codes 0..15: low nibbles in the low lane
 * (elements 0..15), high nibbles in the high lane (16..31). */
static inline __m256i rf_nibbles32(const uint8_t *qs)
{
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i sh = _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(sh, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where bit i is set (byte i). */
static inline __m256i rf_bits_to_bytes32(const uint8_t *p)
{
    const __m256i v = _mm256_set1_epi32(rf_ld32(p));
    const __m256i spread = _mm256_shuffle_epi8(
        v, _mm256_setr_epi64x(0x0000000000000000ll, 0x0101010101010101ll, 0x0202020202020202ll,
                              0x0303030303030303ll));
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/* Sum of u8 x s8 products in i32 lanes (pairs summed in i16: no saturation for
 * u <= 128 and s in -127..127, |2*128*127| < 32768). */
static inline __m256i rf_dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Sum of s8 x s8 products in i32 lanes; y must avoid -128 (activations are
 * -127..127), x may be any byte. */
static inline __m256i rf_dot_s8s8(__m256i x, __m256i y)
{
    return rf_dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

#endif

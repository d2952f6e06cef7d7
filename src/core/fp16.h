#ifndef RF_CORE_FP16_H
#define RF_CORE_FP16_H
#include <stdint.h>
#include <string.h>

/* IEEE half and bfloat16 conversions, bit-exact with round-to-nearest-even. */
static inline float rf_fp32_from_bits(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }
static inline uint32_t rf_fp32_to_bits(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }

static inline float rf_fp16_to_fp32(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = 0xE0u << 23;
    const float exp_scale = rf_fp32_from_bits(0x7800000u); /* 2^-112 */
    const float normalized = rf_fp32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = 126u << 23;
    const float magic_bias = 0.5f;
    const float denormalized = rf_fp32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denorm_cutoff = 1u << 27;
    const uint32_t result = sign | (two_w < denorm_cutoff ? rf_fp32_to_bits(denormalized)
                                                          : rf_fp32_to_bits(normalized));
    return rf_fp32_from_bits(result);
}

static inline uint16_t rf_fp32_to_fp16(float f)
{
    const float scale_to_inf = rf_fp32_from_bits(0x77800000u);  /* 2^112 */
    const float scale_to_zero = rf_fp32_from_bits(0x08800000u); /* 2^-110 */
    float base = (f < 0 ? -f : f) * scale_to_inf * scale_to_zero;
    const uint32_t w = rf_fp32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = rf_fp32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = rf_fp32_to_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float rf_bf16_to_fp32(uint16_t h) { return rf_fp32_from_bits((uint32_t)h << 16); }

static inline uint16_t rf_fp32_to_bf16(float f)
{
    uint32_t u = rf_fp32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif

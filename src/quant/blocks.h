#ifndef RF_QUANT_BLOCKS_H
#define RF_QUANT_BLOCKS_H
/* Block layouts of the quantized tensor types, byte for byte as GGUF files store
 * them. Plain C with fixed-width fields only, so host C and device code (CUDA/HIP,
 * compiled as C++) share this header. f16 scales are raw IEEE half bits in a
 * uint16_t; convert with rf_fp16_to_fp32 (core/fp16.h) on the host. Every struct has
 * only 1-, 2- or 4-byte fields laid out without padding; the asserts below pin each
 * size to the file format. */
#include <stdint.h>

#if defined(__cplusplus)
#define RF_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define RF_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#else
#define RF_STATIC_ASSERT(cond, msg)
#endif

#define RF_QK4_0 32
#define RF_QK4_1 32
#define RF_QK5_0 32
#define RF_QK5_1 32
#define RF_QK8_0 32
#define RF_QK8_1 32
#define RF_QK4_NL 32
#define RF_QK_MXFP4 32
#define RF_QK_K 256          /* super-block of the K-quants */
#define RF_K_SCALE_SIZE 12   /* packed 6-bit scales + mins of Q4_K/Q5_K */

/* x[i] = d * (q[i] - 8); q[j] = qs[j] & 15, q[j+16] = qs[j] >> 4 (j < 16). */
struct rf_block_q4_0 {
    uint16_t d;
    uint8_t qs[RF_QK4_0 / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* x[i] = d * q[i] + m; nibbles as Q4_0. */
struct rf_block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[RF_QK4_1 / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q4_1) == 20, "Q4_1 block is 20 bytes");

/* x[i] = d * (q[i] - 16); low nibbles as Q4_0, bit 4 of q[i] is bit i of the
 * little-endian uint32 qh. */
struct rf_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[RF_QK5_0 / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q5_0) == 22, "Q5_0 block is 22 bytes");

/* x[i] = d * q[i] + m; bits as Q5_0. */
struct rf_block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[RF_QK5_1 / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q5_1) == 24, "Q5_1 block is 24 bytes");

/* x[i] = d * qs[i]. */
struct rf_block_q8_0 {
    uint16_t d;
    int8_t qs[RF_QK8_0];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q8_0) == 34, "Q8_0 block is 34 bytes");

/* x[i] = d * qs[i]; s = d * sum(qs) (f16), kept for the min term of Q4_1/Q5_1 dots.
 * An activation type: ggml's layout (two halves), 36 bytes. */
struct rf_block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[RF_QK8_1];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q8_1) == 36, "Q8_1 block is 36 bytes");

/* 16 sub-blocks of 16. x = d*(scales[k] & 15)*q - dmin*(scales[k] >> 4), k = i/16,
 * q = (qs[h*32 + l] >> 2s) & 3 for i = h*128 + s*32 + l. */
struct rf_block_q2_K {
    uint8_t scales[RF_QK_K / 16];
    uint8_t qs[RF_QK_K / 4];
    uint16_t d;
    uint16_t dmin;
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q2_K) == 84, "Q2_K block is 84 bytes");

/* 16 sub-blocks of 16, 6-bit signed scales (minus 32) packed in 12 bytes.
 * q = ((qs[h*32 + l] >> 2s) & 3) - (bit (i/32) of hmask[i%32] ? 0 : 4). */
struct rf_block_q3_K {
    uint8_t hmask[RF_QK_K / 8];
    uint8_t qs[RF_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q3_K) == 110, "Q3_K block is 110 bytes");

/* 8 sub-blocks of 32 with 6-bit scale and min. x = d*sc[j]*q - dmin*m[j];
 * sub-block j = 2g + h takes nibble h of qs[g*32 + l]. */
struct rf_block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[RF_K_SCALE_SIZE];
    uint8_t qs[RF_QK_K / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q4_K) == 144, "Q4_K block is 144 bytes");

/* As Q4_K plus bit j of qh[l] as bit 4 of element j*32 + l. */
struct rf_block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[RF_K_SCALE_SIZE];
    uint8_t qh[RF_QK_K / 8];
    uint8_t qs[RF_QK_K / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q5_K) == 176, "Q5_K block is 176 bytes");

/* 16 sub-blocks of 16 with int8 scales. For i = h*128 + r: low 4 bits are nibble
 * (r/64) of ql[h*64 + r%64], high 2 bits are bits 2(r/32).. of qh[h*32 + r%32];
 * x = d * scales[i/16] * (q - 32). */
struct rf_block_q6_K {
    uint8_t ql[RF_QK_K / 2];
    uint8_t qh[RF_QK_K / 4];
    int8_t scales[RF_QK_K / 16];
    uint16_t d;
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q6_K) == 210, "Q6_K block is 210 bytes");

/* Activations for the K-quant dots: f32 scale, bsums[k] = sum of qs[16k..16k+16). */
struct rf_block_q8_K {
    float d;
    int8_t qs[RF_QK_K];
    int16_t bsums[RF_QK_K / 16];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_q8_K) == 292, "Q8_K block is 292 bytes");

/* x[i] = d * rf_iq4nl_values[q[i]]; nibbles as Q4_0. */
struct rf_block_iq4_nl {
    uint16_t d;
    uint8_t qs[RF_QK4_NL / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");

/* x[i] = e8m0_half(e) * rf_mxfp4_values[q[i]] (e2m1 values doubled, so the scale
 * is half the E8M0 power of two); nibbles as Q4_0. */
struct rf_block_mxfp4 {
    uint8_t e;
    uint8_t qs[RF_QK_MXFP4 / 2];
};
RF_STATIC_ASSERT(sizeof(struct rf_block_mxfp4) == 17, "MXFP4 block is 17 bytes");

/* Sizes of types we only size, never compute on (bytes per 256-element block). */
#define RF_IQ2_XXS_SIZE (2 + RF_QK_K / 4)
#define RF_IQ2_XS_SIZE (2 + RF_QK_K / 4 + RF_QK_K / 32)
#define RF_IQ3_XXS_SIZE (2 + RF_QK_K / 4 + RF_QK_K / 8)
#define RF_IQ1_S_SIZE (2 + RF_QK_K / 8 + RF_QK_K / 16)
#define RF_IQ3_S_SIZE (2 + RF_QK_K / 4 + RF_QK_K / 8 + RF_QK_K / 32 + 4)
#define RF_IQ2_S_SIZE (2 + RF_QK_K / 4 + RF_QK_K / 16)
#define RF_IQ4_XS_SIZE (2 + 2 + RF_QK_K / 2 + RF_QK_K / 64)
#define RF_IQ1_M_SIZE (RF_QK_K / 8 + RF_QK_K / 16 + RF_QK_K / 32)
#define RF_TQ1_0_SIZE (2 + 4 * 13)
#define RF_TQ2_0_SIZE (2 + 64)
#define RF_NVFP4_SIZE (4 + 32)   /* per 64 elements */
#define RF_Q1_0_SIZE (2 + 16)    /* per 128 elements */

#endif

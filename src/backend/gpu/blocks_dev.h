#ifndef RF_BACKEND_GPU_BLOCKS_DEV_H
#define RF_BACKEND_GPU_BLOCKS_DEV_H
/* Bit fields of the GGUF blocks that every kernel decoding them needs (the layouts are
 * in quant/blocks.h). Device code only. */
#include <stdint.h>

#include "backend/gpu/compat.h"

/* Bits 0..3 of x to bit 0 of bytes 0..3 (the Q5 high bits of 4 elements). */
static __device__ __forceinline__ uint32_t spread4(uint32_t x)
{
    return ((x & 15u) * 0x00204081u) & 0x01010101u;
}

/* Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes s. */
static __device__ __forceinline__ void k4_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q3_K: the signed 6-bit scale of sub-block k (0..15) from the 12 packed bytes p. */
static __device__ __forceinline__ int k3_scale(const uint8_t *p, int k)
{
    const int lo = k < 8 ? p[k] & 15 : p[k - 8] >> 4;
    const int hi = (p[8 + (k & 3)] >> (2 * (k >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

#endif

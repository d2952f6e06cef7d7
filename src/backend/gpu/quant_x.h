#ifndef RF_BACKEND_GPU_QUANT_X_H
#define RF_BACKEND_GPU_QUANT_X_H
/* The rounding of a product's int8 input, shared by the quantizer and by the kernels
 * that write it next to their own output (rms_norm, the GLUs): per 32 elements,
 * scale amax/127 rounded to f16, q = round-half-even(x * 127/amax), as the CPU path's
 * Q8_0/Q8_1 activations. Layout (rf_gpu_xq_bytes): n int8, then at the next 16-byte
 * boundary one f32 scale per 32. Device code only. */
#include "backend/gpu/compat.h"

static __device__ __forceinline__ float xq_scale(float amax)
{
    return __half2float(__float2half_rn(amax / 127.0f));
}

static __device__ __forceinline__ int xq_round(float v, float amax)
{
    return amax > 0.0f ? __float2int_rn(v * (127.0f / amax)) : 0;
}

static __device__ __forceinline__ uint32_t xq_pack4(float4 v, float amax)
{
    return (uint32_t)(xq_round(v.x, amax) & 255) | (uint32_t)(xq_round(v.y, amax) & 255) << 8 |
           (uint32_t)(xq_round(v.z, amax) & 255) << 16 | (uint32_t)(xq_round(v.w, amax) & 255) << 24;
}

/* Elements e..e+3 (e % 4 == 0) of a block of 32 held by 8 consecutive lanes, lane
 * (e / 4) % 8 of them: writes their int8 and, from the block's first lane, its scale.
 * Every lane of the warp calls it; lanes with active == false hold no elements (the 8
 * lanes of a block are all active or all not). */
static __device__ __forceinline__ void xq_store4(float4 v, bool active, int8_t *xq, float *xd,
                                                 int64_t e)
{
    float a = active ? fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))) : 0.0f;
    a = fmaxf(a, rf_shfl_xor(a, 1));
    a = fmaxf(a, rf_shfl_xor(a, 2));
    a = fmaxf(a, rf_shfl_xor(a, 4));
    if (!active) return;
    *(uint32_t *)(xq + e) = xq_pack4(v, a);
    if ((e & 31) == 0) xd[e >> 5] = xq_scale(a);
}

#endif

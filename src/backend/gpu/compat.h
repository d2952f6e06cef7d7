#ifndef RF_BACKEND_GPU_COMPAT_H
#define RF_BACKEND_GPU_COMPAT_H
/* The runtime names that differ between CUDA and HIP. Every GPU source is written
 * against the CUDA names; with RF_HIP defined they map to HIP's. Included by the
 * .cu files (compiled as CUDA or HIP) and by the host .c files (plain C: only the
 * runtime API, no device code).
 *
 * Warp size is not a constant: RF_WARP_SIZE is the compile-time width of the
 * target (32 on NVIDIA and RDNA in wave32, 64 on CDNA) for device code, and
 * cudaDevAttrWarpSize / hipDeviceAttributeWarpSize answers on the host. */

#if defined(RF_HIP)
#ifndef __HIP_PLATFORM_AMD__
#define __HIP_PLATFORM_AMD__ 1
#endif
#if defined(__HIPCC__)
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#else
#include <hip/hip_runtime_api.h>
#endif

#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaPeekAtLastError hipPeekAtLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaSetDevice hipSetDevice
#define cudaGetDevice hipGetDevice
#define cudaDeviceProp hipDeviceProp_t
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrWarpSize hipDeviceAttributeWarpSize
#define cudaDevAttrMultiProcessorCount hipDeviceAttributeMultiprocessorCount
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaMemGetInfo hipMemGetInfo
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost(p, n) hipHostMalloc((p), (n), 0)
#define cudaFreeHost hipHostFree
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemset hipMemset
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaStream_t hipStream_t
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaStreamWaitEvent hipStreamWaitEvent
#define cudaStreamBeginCapture hipStreamBeginCapture
#define cudaStreamEndCapture hipStreamEndCapture
#define cudaStreamCaptureModeRelaxed hipStreamCaptureModeRelaxed
#define cudaEvent_t hipEvent_t
#define cudaEventCreate hipEventCreate
#define cudaEventCreateWithFlags hipEventCreateWithFlags
#define cudaEventDisableTiming hipEventDisableTiming
#define cudaEventDestroy hipEventDestroy
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventElapsedTime hipEventElapsedTime
#define cudaGraph_t hipGraph_t
#define cudaGraphExec_t hipGraphExec_t
#define cudaGraphDestroy hipGraphDestroy
#define cudaGraphExecDestroy hipGraphExecDestroy
#define cudaGraphLaunch hipGraphLaunch
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaOccupancyMaxActiveBlocksPerMultiprocessor hipOccupancyMaxActiveBlocksPerMultiprocessor
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
/* hipGraphInstantiate takes the (graph exec, graph, error node, log, log size) form. */
#define rf_graph_instantiate(exec, graph) hipGraphInstantiate((exec), (graph), NULL, NULL, 0)

#else /* CUDA */
#if defined(__CUDACC__)
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#else
#include <cuda_runtime_api.h>
#endif
#define rf_graph_instantiate(exec, graph) cudaGraphInstantiate((exec), (graph), 0)
#endif

/* The kernel classes of RF_LAUNCH_PDL, bits of rf_gpu_pdl. */
#define RF_PDL_MMV 1  /* matrix-vector products */
#define RF_PDL_MMQ 2  /* int8 tensor-core products */
#define RF_PDL_ATTN 4 /* decode attention */
#define RF_PDL_EW 8   /* norms, rope + KV store, GLUs, the activation quantizer */

/* ---- device code ---- */
#if defined(__CUDACC__) || defined(__HIPCC__)

#if defined(RF_HIP)
#if defined(__GFX9__)
#define RF_WARP_SIZE 64 /* CDNA: 64-wide waves */
#else
#define RF_WARP_SIZE 32 /* RDNA: built for wave32 */
#endif
#define RF_FULL_MASK 0xffffffffffffffffull
/* HIP's shuffles take no mask: every lane of the wave takes part. */
#define rf_shfl_xor(v, m) __shfl_xor((v), (m))
#define rf_shfl(v, src) __shfl((v), (src))
#define rf_syncwarp() __builtin_amdgcn_wave_barrier()
#define rf_all(p) __all(p)
/* Signed 8-bit dot of four lanes plus c (the AMD builtin where the target has one). */
static __device__ __forceinline__ int rf_dp4a(int a, int b, int c)
{
#if defined(__gfx90a__) || defined(__gfx1030__) || defined(__gfx1100__)
    return __builtin_amdgcn_sdot4(a, b, c, false);
#else
    const signed char *x = (const signed char *)&a, *y = (const signed char *)&b;
    return c + x[0] * y[0] + x[1] * y[1] + x[2] * y[2] + x[3] * y[3];
#endif
}
#else
#define RF_WARP_SIZE 32
#define RF_FULL_MASK 0xffffffffu
#define rf_shfl_xor(v, m) __shfl_xor_sync(RF_FULL_MASK, (v), (m))
#define rf_shfl(v, src) __shfl_sync(RF_FULL_MASK, (v), (src))
#define rf_syncwarp() __syncwarp()
#define rf_all(p) __all_sync(RF_FULL_MASK, (p))
#define rf_dp4a(a, b, c) __dp4a((a), (b), (c))
#endif

/* Programmatic dependent launch (sm_90): a kernel launched by RF_LAUNCH_PDL may start
 * while the kernel before it in the stream finishes, once every block of that one has
 * called rf_pdl_launch_next (or exited). It may read what no kernel writes (weights)
 * at once, and calls rf_pdl_wait, which returns when the kernel before has completed
 * and its writes are visible, before it touches any other memory. Both are no-ops
 * on HIP, before sm_90, and in kernels not launched that way. */
static __device__ __forceinline__ void rf_pdl_wait(void)
{
#if !defined(RF_HIP) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void rf_pdl_launch_next(void)
{
#if !defined(RF_HIP) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

#if defined(RF_HIP)
#define RF_LAUNCH_PDL(kernel, cls, grid, block, smem, stream, ...)                                \
    kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#else
extern "C" int rf_gpu_pdl; /* the RF_PDL_* classes that overlap (0 before sm_90) */
static inline cudaLaunchConfig_t rf_pdl_config(int cls, dim3 grid, dim3 block, size_t smem,
                                               cudaStream_t stream, cudaLaunchAttribute *attr)
{
    cudaLaunchConfig_t c = {};
    c.gridDim = grid;
    c.blockDim = block;
    c.dynamicSmemBytes = smem;
    c.stream = stream;
    attr->id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr->val.programmaticStreamSerializationAllowed = (rf_gpu_pdl & cls) != 0;
    c.attrs = attr;
    c.numAttrs = 1;
    return c;
}
/* A launch error is left for cudaGetLastError, as with <<< >>>. */
#define RF_LAUNCH_PDL(kernel, cls, grid, block, smem, stream, ...)                                \
    do {                                                                                          \
        cudaLaunchAttribute rf_attr_;                                                             \
        const cudaLaunchConfig_t rf_cfg_ =                                                        \
            rf_pdl_config((cls), (grid), (block), (smem), (stream), &rf_attr_);                   \
        (void)cudaLaunchKernelEx(&rf_cfg_, kernel, __VA_ARGS__);                                  \
    } while (0)
#endif

#endif /* device code */

/* The status helpers for .cu files too (C linkage from C++). */
#ifdef __cplusplus
extern "C" {
#endif
#include "core/status.h"
#ifdef __cplusplus
}
#endif

#endif

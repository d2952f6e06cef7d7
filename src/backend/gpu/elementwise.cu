/* Row and element-wise kernels of the GPU backend: rms_norm, rope, kv_store, the
 * GLUs, add, add_bias, scale. All are memory bound: each touches every byte once
 * (rms_norm reads its row twice, the second time from cache), with 16-byte
 * accesses where the length and the pointers allow. */
#include <math.h>
#include <stdint.h>

#include "backend/gpu/compat.h"
#include "backend/gpu/gpu_internal.h"
#include "backend/gpu/quant_x.h"

#define EW_THREADS 256
#define EW_MAX_BLOCKS 4096 /* grid-stride beyond this: enough to fill any GPU */
#define GELU_SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_COEF_A 0.044715f

static rf_status launched(const char *kernel)
{
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return rf_fail(RF_STATUS_DEVICE, "gpu kernel %s: launch failed: %s", kernel,
                       cudaGetErrorString(e));
    return RF_OK;
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

static unsigned ew_blocks(int64_t items)
{
    const int64_t b = (items + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)(b < 1 ? 1 : b > EW_MAX_BLOCKS ? EW_MAX_BLOCKS : b);
}

/* ---- rms_norm: a block per row ---- */

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
static __device__ float block_sum(float v, float *red)
{
    for (int m = 16; m > 0; m /= 2) v += rf_shfl_xor(v, m);
    const int g = threadIdx.x / 32, ng = blockDim.x / 32;
    __syncthreads(); /* red may still be read from a previous call */
    if (threadIdx.x % 32 == 0) red[g] = v;
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < ng; i++) s += red[i];
    return s;
}

/* xq != NULL (n % 32 == 0, vec): also the row quantized for the next product. A block
 * per row, as many threads as the row has float4s (up to RMS_THREADS): one row is the
 * whole of a decode step's norm, so it must not be a serial loop. */
#define RMS_THREADS 1024
__global__ void __launch_bounds__(RMS_THREADS)
    k_rms_norm(const float *x, const float *w, float *y, int64_t n, float eps, int vec,
               int8_t *xq, float *xd)
{
    __shared__ float red[RMS_THREADS / 32];
    rf_pdl_launch_next();
    /* The weights of the first float4 this thread scales (no kernel writes weights):
     * fetched while the kernel before finishes, not after the sum. */
    const float4 *w4 = (const float4 *)w;
    float4 g0 = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    if (vec && w && threadIdx.x < n / 4) g0 = w4[threadIdx.x];
    rf_pdl_wait();
    const float *xr = x + blockIdx.x * n;
    float *yr = y + blockIdx.x * n;
    float ss = 0.0f;
    if (vec) {
        const float4 *x4 = (const float4 *)xr;
        for (int64_t i = threadIdx.x; i < n / 4; i += blockDim.x) {
            const float4 v = x4[i];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    }
    const float s = rsqrtf(block_sum(ss, red) / (float)n + eps);
    if (vec) {
        const float4 *x4 = (const float4 *)xr;
        float4 *y4 = (float4 *)yr;
        /* every lane of a warp takes each round (the quantizer's shuffles) */
        for (int64_t i0 = 0; i0 < n / 4; i0 += blockDim.x) {
            const int64_t i = i0 + threadIdx.x;
            const bool on = i < n / 4;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (on) {
                v = x4[i];
                const float4 g = i0 == 0 ? g0 : w ? w4[i] : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
                v.x = v.x * s * g.x, v.y = v.y * s * g.y, v.z = v.z * s * g.z, v.w = v.w * s * g.w;
                y4[i] = v;
            }
            if (xq) xq_store4(v, on, xq, xd, (int64_t)blockIdx.x * n + 4 * i);
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * s * (w ? w[i] : 1.0f);
    }
}

static int8_t *xq_of(void *xbuf) { return (int8_t *)xbuf; }

static float *xd_of(void *xbuf, int64_t n)
{
    return (float *)((uint8_t *)xbuf + (((size_t)n + 15) & ~(size_t)15));
}

extern "C" rf_status rf_gpu_rms_norm(void *stream, const float *x, const float *w, float *y,
                                     int64_t n, int64_t rows, float eps, void *xbuf)
{
    if (n <= 0 || rows < 0 || rows > INT32_MAX)
        return rf_fail(RF_STATUS_SHAPE, "gpu rms_norm: bad shape (%lld x %lld)", (long long)rows,
                       (long long)n);
    if (rows == 0) return RF_OK;
    const int vec = n % 4 == 0 && aligned16(x) && aligned16(y) && (!w || aligned16(w));
    if (xbuf && (!vec || n % 32 != 0))
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu rms_norm: rows of %lld cannot be quantized",
                       (long long)n);
    const int64_t items = vec ? n / 4 : n;
    const unsigned threads = items >= RMS_THREADS ? RMS_THREADS : (unsigned)((items + 31) / 32 * 32);
    RF_LAUNCH_PDL(k_rms_norm, RF_PDL_EW, (unsigned)rows, threads, 0, (cudaStream_t)stream, x, w,
                  y, n, eps, vec, xbuf ? xq_of(xbuf) : NULL,
                  xbuf ? xd_of(xbuf, n * rows) : NULL);
    return launched("rms_norm");
}

/* ---- rope: a thread per (token, pair, ROPE_HEADS heads) ---- */

#define ROPE_HEADS 8 /* heads sharing one angle's sin and cos */

/* The angle of pair i is pos * freq_scale * theta_scale^i, the power built as a
 * running product in f32 as the CPU reference does, so both round alike. */
static __device__ __forceinline__ void rope_angle(int pos, int i, float theta_scale,
                                                  float freq_scale, float *sn, float *cs)
{
    float theta = (float)pos;
    for (int k = 0; k < i; k++) theta *= theta_scale;
    sincosf(freq_scale * theta, sn, cs);
}

/* Rotates pair i of head h of one token's row xt. */
static __device__ __forceinline__ void rope_pair(float *xt, int h, int i, int head_dim, int half,
                                                 int neox, float sn, float cs)
{
    float *a = neox ? xt + (int64_t)h * head_dim + i : xt + (int64_t)h * head_dim + 2 * i;
    float *b = neox ? a + half : a + 1;
    const float x0 = *a, x1 = *b;
    *a = fmaf(x0, cs, -(x1 * sn));
    *b = fmaf(x0, sn, x1 * cs);
}

__global__ void __launch_bounds__(EW_THREADS)
    k_rope(float *x, const int32_t *pos, int n_head, int head_dim, int n_rot, float theta_scale,
           float freq_scale, int neox)
{
    const int half = n_rot / 2;
    const int idx = blockIdx.y * blockDim.x + threadIdx.x;
    const int n_hg = (n_head + ROPE_HEADS - 1) / ROPE_HEADS;
    if (idx >= n_hg * half) return;
    const int hg = idx / half, i = idx % half;
    float sn, cs;
    rope_angle(pos[blockIdx.x], i, theta_scale, freq_scale, &sn, &cs);
    const int h1 = hg * ROPE_HEADS + ROPE_HEADS < n_head ? hg * ROPE_HEADS + ROPE_HEADS : n_head;
    float *xt = x + (int64_t)blockIdx.x * n_head * head_dim;
    for (int h = hg * ROPE_HEADS; h < h1; h++) rope_pair(xt, h, i, head_dim, half, neox, sn, cs);
}

/* rope of q and k, then k and v into the cache as f16. A thread per item of a token
 * (blockIdx.y): a rotated pair of a q head, a rotated pair of a k head (written to the
 * cache by the same thread), an unrotated element of k, an element of v. Every item
 * is independent: one pass, no serial chains. */
__global__ void __launch_bounds__(EW_THREADS)
    k_rope_store(float *q, float *k, const float *v, const int32_t *pos, int n_head, int n_kv,
                 int head_dim, int n_rot, float theta_scale, float freq_scale, int neox,
                 const int32_t *slot, uint16_t *k_pool, uint16_t *v_pool)
{
    rf_pdl_launch_next();
    const int half = n_rot / 2, tail = head_dim - n_rot;
    const int64_t t = blockIdx.y, width = (int64_t)n_kv * head_dim;
    /* pos and slot are copied in before the step's first kernel, and the angle depends
     * on nothing else: both before waiting for the product that wrote q, k and v. */
    const int32_t s = slot[t];
    const int64_t row = (int64_t)s * width;
    int64_t it = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nq = (int64_t)n_head * half, nk = (int64_t)n_kv * half;
    const int64_t nt = (int64_t)n_kv * tail;
    const bool rotated = it < nq + nk, is_q = it < nq;
    const int64_t j = is_q ? it : it - nq;
    const int h = rotated ? (int)(j / half) : 0, i = rotated ? (int)(j % half) : 0;
    float sn = 0.0f, cs = 1.0f;
    if (rotated) rope_angle(pos[t], i, theta_scale, freq_scale, &sn, &cs);
    rf_pdl_wait();
    float *kt = k + t * width;
    if (rotated) {
        float *xt = is_q ? q + t * n_head * head_dim : kt;
        rope_pair(xt, h, i, head_dim, half, neox, sn, cs);
        if (is_q || s < 0) return;
        const int64_t a = (int64_t)h * head_dim + (neox ? i : 2 * i), b = a + (neox ? half : 1);
        k_pool[row + a] = __half_as_ushort(__float2half_rn(kt[a]));
        k_pool[row + b] = __half_as_ushort(__float2half_rn(kt[b]));
        return;
    }
    if (s < 0) return;
    it -= nq + nk;
    if (it < nt) {
        const int64_t e = it / tail * head_dim + n_rot + it % tail;
        k_pool[row + e] = __half_as_ushort(__float2half_rn(kt[e]));
        return;
    }
    it -= nt;
    if (it < width) v_pool[row + it] = __half_as_ushort(__float2half_rn(v[t * width + it]));
}

/* The rotated part, as the CPU reference: the well-defined even part of n_rot <= head_dim. */
static int rope_dims(const struct rf_rope_params *p, int head_dim)
{
    return (p->n_rot < head_dim ? p->n_rot : head_dim) & ~1;
}

extern "C" rf_status rf_gpu_rope(void *stream, float *x, int64_t n_tok, int n_head, int head_dim,
                                 const int32_t *pos, const struct rf_rope_params *p)
{
    const int n_rot = rope_dims(p, head_dim);
    if (n_rot <= 0 || n_head <= 0 || n_tok <= 0) return RF_OK;
    if (n_tok > INT32_MAX)
        return rf_fail(RF_STATUS_SHAPE, "gpu rope: %lld tokens", (long long)n_tok);
    const int items = (n_head + ROPE_HEADS - 1) / ROPE_HEADS * (n_rot / 2);
    const dim3 grid((unsigned)n_tok, (unsigned)((items + EW_THREADS - 1) / EW_THREADS));
    if (grid.y > 65535) return rf_fail(RF_STATUS_SHAPE, "gpu rope: %d heads", n_head);
    const float theta_scale = powf(p->freq_base, -2.0f / (float)n_rot);
    k_rope<<<grid, EW_THREADS, 0, (cudaStream_t)stream>>>(x, pos, n_head, head_dim, n_rot,
                                                          theta_scale, p->freq_scale, p->neox);
    return launched("rope");
}

extern "C" rf_status rf_gpu_rope_store(void *stream, float *q, float *k, const float *v,
                                       int64_t n_tok, int n_head, int n_kv, int head_dim,
                                       const int32_t *pos, const struct rf_rope_params *p,
                                       const int32_t *slot, uint16_t *k_pool, uint16_t *v_pool)
{
    if (n_tok <= 0) return RF_OK;
    if (n_tok > INT32_MAX || n_head <= 0 || n_kv <= 0 || head_dim <= 0)
        return rf_fail(RF_STATUS_SHAPE, "gpu rope_store: %lld tokens, %d/%d heads of %d",
                       (long long)n_tok, n_head, n_kv, head_dim);
    const int n_rot = rope_dims(p, head_dim);
    const float theta_scale = n_rot > 0 ? powf(p->freq_base, -2.0f / (float)n_rot) : 1.0f;
    const int64_t items = (int64_t)(n_head + n_kv) * (n_rot / 2) +
                          (int64_t)n_kv * (head_dim - n_rot) + (int64_t)n_kv * head_dim;
    if (n_tok > 65535)
        return rf_fail(RF_STATUS_SHAPE, "gpu rope_store: %lld tokens", (long long)n_tok);
    const dim3 grid((unsigned)((items + EW_THREADS - 1) / EW_THREADS), (unsigned)n_tok);
    RF_LAUNCH_PDL(k_rope_store, RF_PDL_EW, grid, EW_THREADS, 0, (cudaStream_t)stream, q, k, v,
                  pos, n_head, n_kv, head_dim, n_rot > 0 ? n_rot : 0, theta_scale, p->freq_scale,
                  p->neox, slot, k_pool, v_pool);
    return launched("rope_store");
}

/* ---- kv_store: block (token, chunk of the row) ---- */

__global__ void __launch_bounds__(EW_THREADS)
    k_kv_store(const float *k, const float *v, int64_t width, const int32_t *slot, uint16_t *k_pool,
               uint16_t *v_pool, int vec)
{
    const int32_t s = slot[blockIdx.x];
    if (s < 0) return;
    const int64_t src = (int64_t)blockIdx.x * width, dst = (int64_t)s * width;
    const int64_t i = ((int64_t)blockIdx.y * blockDim.x + threadIdx.x) * (vec ? 4 : 1);
    if (i >= width) return;
    if (vec) { /* 16 bytes in, 8 bytes out per tensor */
        const float4 a = *(const float4 *)(k + src + i), b = *(const float4 *)(v + src + i);
        uint2 ka, vb;
        ka.x = (uint32_t)__half_as_ushort(__float2half_rn(a.x)) |
               ((uint32_t)__half_as_ushort(__float2half_rn(a.y)) << 16);
        ka.y = (uint32_t)__half_as_ushort(__float2half_rn(a.z)) |
               ((uint32_t)__half_as_ushort(__float2half_rn(a.w)) << 16);
        vb.x = (uint32_t)__half_as_ushort(__float2half_rn(b.x)) |
               ((uint32_t)__half_as_ushort(__float2half_rn(b.y)) << 16);
        vb.y = (uint32_t)__half_as_ushort(__float2half_rn(b.z)) |
               ((uint32_t)__half_as_ushort(__float2half_rn(b.w)) << 16);
        *(uint2 *)(k_pool + dst + i) = ka;
        *(uint2 *)(v_pool + dst + i) = vb;
    } else {
        k_pool[dst + i] = __half_as_ushort(__float2half_rn(k[src + i]));
        v_pool[dst + i] = __half_as_ushort(__float2half_rn(v[src + i]));
    }
}

extern "C" rf_status rf_gpu_kv_store(void *stream, const float *k, const float *v, int64_t n_tok,
                                     int64_t width, const int32_t *slot, uint16_t *k_pool,
                                     uint16_t *v_pool)
{
    if (n_tok <= 0 || width <= 0) return RF_OK;
    if (n_tok > INT32_MAX)
        return rf_fail(RF_STATUS_SHAPE, "gpu kv_store: %lld tokens", (long long)n_tok);
    const int vec = width % 4 == 0 && aligned16(k) && aligned16(v) &&
                    ((uintptr_t)k_pool & 7) == 0 && ((uintptr_t)v_pool & 7) == 0;
    const int64_t per_tok = vec ? width / 4 : width;
    const int64_t chunks = (per_tok + EW_THREADS - 1) / EW_THREADS;
    if (chunks > 65535)
        return rf_fail(RF_STATUS_SHAPE, "gpu kv_store: rows of %lld", (long long)width);
    const dim3 grid((unsigned)n_tok, (unsigned)chunks);
    k_kv_store<<<grid, EW_THREADS, 0, (cudaStream_t)stream>>>(k, v, width, slot, k_pool, v_pool,
                                                              vec);
    return launched("kv_store");
}

/* ---- element-wise: grid-stride, float4 when n and the pointers allow ---- */

enum ew_op {
    EW_SWIGLU,
    EW_GEGLU,
    EW_ADD,
    EW_SCALE,
};

static __device__ __forceinline__ float ew_apply(int op, float y, float a, float b, float s)
{
    switch (op) {
    case EW_SWIGLU: return a / (1.0f + expf(-a)) * b;
    case EW_GEGLU: {
        /* 0.5 a (1 + tanh(u)) as a / (1 + e^(-2u)): no cancellation for negative a. */
        const float u = GELU_SQRT_2_OVER_PI * a * (1.0f + GELU_COEF_A * a * a);
        return a / (1.0f + expf(-2.0f * u)) * b;
    }
    case EW_ADD: return y + a;
    default: return y * s;
    }
}

/* out[i] = f(out[i], a[i], b[i]); a, b unused by the ops that take none. */
__global__ void __launch_bounds__(EW_THREADS)
    k_ew(int op, float *out, const float *a, const float *b, float s, int64_t n, int vec)
{
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const bool ua = op != EW_SCALE, ub = op == EW_SWIGLU || op == EW_GEGLU;
    const bool uy = op == EW_ADD || op == EW_SCALE;
    if (vec) {
        float4 *o4 = (float4 *)out;
        const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (; i < n / 4; i += step) {
            const float4 x = ua ? ((const float4 *)a)[i] : z, y = ub ? ((const float4 *)b)[i] : z;
            const float4 o = uy ? o4[i] : z;
            o4[i] = make_float4(ew_apply(op, o.x, x.x, y.x, s), ew_apply(op, o.y, x.y, y.y, s),
                                ew_apply(op, o.z, x.z, y.z, s), ew_apply(op, o.w, x.w, y.w, s));
        }
    } else {
        for (; i < n; i += step)
            out[i] = ew_apply(op, uy ? out[i] : 0.0f, ua ? a[i] : 0.0f, ub ? b[i] : 0.0f, s);
    }
}

static rf_status ew_run(void *stream, const char *name, int op, float *out, const float *a,
                        const float *b, float s, int64_t n)
{
    if (n <= 0) return RF_OK;
    const int vec = n % 4 == 0 && aligned16(out) && (!a || aligned16(a)) && (!b || aligned16(b));
    k_ew<<<ew_blocks(vec ? n / 4 : n), EW_THREADS, 0, (cudaStream_t)stream>>>(op, out, a, b, s, n,
                                                                              vec);
    return launched(name);
}

/* out = glu(a) * b, and out quantized into xbuf (n % 32 == 0, 16-byte aligned). */
__global__ void __launch_bounds__(EW_THREADS)
    k_glu_q(int op, float *out, const float *a, const float *b, int64_t n, int8_t *xq, float *xd)
{
    rf_pdl_launch_next();
    rf_pdl_wait();
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    /* every lane of a warp takes each round (the quantizer's shuffles) */
    for (int64_t i0 = (int64_t)blockIdx.x * blockDim.x; i0 < n / 4; i0 += step) {
        const int64_t i = i0 + threadIdx.x;
        const bool on = i < n / 4;
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (on) {
            const float4 x = ((const float4 *)a)[i], y = ((const float4 *)b)[i];
            o = make_float4(ew_apply(op, 0.0f, x.x, y.x, 0.0f), ew_apply(op, 0.0f, x.y, y.y, 0.0f),
                            ew_apply(op, 0.0f, x.z, y.z, 0.0f), ew_apply(op, 0.0f, x.w, y.w, 0.0f));
            ((float4 *)out)[i] = o;
        }
        xq_store4(o, on, xq, xd, 4 * i);
    }
}

extern "C" rf_status rf_gpu_glu(void *stream, bool gelu, const float *gate, const float *up,
                                float *out, int64_t n, void *xbuf)
{
    const char *name = gelu ? "geglu" : "swiglu";
    const int op = gelu ? EW_GEGLU : EW_SWIGLU;
    if (!xbuf) return ew_run(stream, name, op, out, gate, up, 0.0f, n);
    if (n <= 0) return RF_OK;
    if (n % 32 != 0 || !aligned16(out) || !aligned16(gate) || !aligned16(up))
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu %s: %lld elements cannot be quantized", name,
                       (long long)n);
    RF_LAUNCH_PDL(k_glu_q, RF_PDL_EW, ew_blocks(n / 4), EW_THREADS, 0, (cudaStream_t)stream, op,
                  out, gate, up, n, xq_of(xbuf), xd_of(xbuf, n));
    return launched(name);
}

extern "C" rf_status rf_gpu_add(void *stream, float *y, const float *x, int64_t n)
{
    return ew_run(stream, "add", EW_ADD, y, x, NULL, 0.0f, n);
}

extern "C" rf_status rf_gpu_scale(void *stream, float *y, float s, int64_t n)
{
    return ew_run(stream, "scale", EW_SCALE, y, NULL, NULL, s, n);
}

/* ---- add_bias: y (rows, n) += b (n) ---- */

__global__ void __launch_bounds__(EW_THREADS)
    k_add_bias(float *y, const float *b, int64_t n, int64_t total, int vec)
{
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        float4 *y4 = (float4 *)y;
        const float4 *b4 = (const float4 *)b;
        for (; i < total / 4; i += step) {
            float4 v = y4[i];
            const float4 c = b4[i % (n / 4)];
            v.x += c.x, v.y += c.y, v.z += c.z, v.w += c.w;
            y4[i] = v;
        }
    } else {
        for (; i < total; i += step) y[i] += b[i % n];
    }
}

extern "C" rf_status rf_gpu_add_bias(void *stream, float *y, const float *b, int64_t n,
                                     int64_t rows)
{
    if (n <= 0 || rows < 0 || (rows > 0 && n > INT64_MAX / rows))
        return rf_fail(RF_STATUS_SHAPE, "gpu add_bias: bad shape (%lld x %lld)", (long long)rows,
                       (long long)n);
    const int64_t total = n * rows;
    if (total == 0) return RF_OK;
    const int vec = n % 4 == 0 && aligned16(y) && aligned16(b);
    k_add_bias<<<ew_blocks(vec ? total / 4 : total), EW_THREADS, 0, (cudaStream_t)stream>>>(
        y, b, n, total, vec);
    return launched("add_bias");
}

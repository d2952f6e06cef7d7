/* Sampling one row of logits on the device; only the chosen id leaves it.
 *
 * Greedy: a two-stage argmax (highest logit, lowest id on ties; NaN counts as -inf).
 *
 * Otherwise one block walks the order the host sampler uses (descending logit, ties
 * by ascending id) without sorting: a cut of that order is found by radix selection
 * on the float's order-preserving bit pattern, 8 bits a pass from the top, each pass
 * a histogram of weight (1 for top-k, probability mass for top-p and the draw) over
 * the candidates still in range; ties on the logit are then split by id the same way.
 * Top-k, top-p and the draw are each one such selection. */
#include "backend/gpu/gpu_internal.h"

#define SAMPLE_THREADS 1024
#define ARGMAX_BLOCKS 256 /* partial results of the first argmax stage (<= RF_GPU_SAMPLE_WS) */

struct best {
    float v;
    int32_t i;
};

static __device__ __forceinline__ float clean(float v) { return v != v ? -INFINITY : v; }

static __device__ __forceinline__ struct best better(struct best a, struct best b)
{
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

static __device__ __forceinline__ struct best warp_best(struct best b)
{
    for (int m = 16; m > 0; m >>= 1) {
        struct best o;
        o.v = rf_shfl_xor(b.v, m);
        o.i = rf_shfl_xor(b.i, m);
        b = better(b, o);
    }
    return b;
}

/* Block-wide best of 32-lane groups; every thread gets the result. */
static __device__ struct best block_best(struct best b)
{
    __shared__ float sv[SAMPLE_THREADS / 32];
    __shared__ int32_t si[SAMPLE_THREADS / 32];
    b = warp_best(b);
    const int g = threadIdx.x / 32, ng = blockDim.x / 32;
    if (threadIdx.x % 32 == 0) {
        sv[g] = b.v;
        si[g] = b.i;
    }
    __syncthreads();
    struct best r = {sv[0], si[0]};
    for (int i = 1; i < ng; i++) {
        struct best o = {sv[i], si[i]};
        r = better(r, o);
    }
    __syncthreads();
    return r;
}

__global__ void k_argmax_part(const float *__restrict__ lg, int32_t n, struct best *__restrict__ part)
{
    struct best b = {-INFINITY, INT32_MAX};
    for (int32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        struct best o = {clean(lg[i]), i};
        b = better(b, o);
    }
    b = block_best(b);
    if (threadIdx.x == 0) part[blockIdx.x] = b;
}

__global__ void k_argmax_final(const struct best *__restrict__ part, int np, int32_t *__restrict__ out)
{
    struct best b = {-INFINITY, INT32_MAX};
    for (int i = threadIdx.x; i < np; i += blockDim.x) b = better(b, part[i]);
    b = block_best(b);
    if (threadIdx.x == 0) out[0] = b.i == INT32_MAX ? 0 : b.i;
}

/* ---- selection ---- */

/* Larger key = larger logit; NaN as -inf. */
static __device__ __forceinline__ uint32_t fkey(float f)
{
    uint32_t u = __float_as_uint(clean(f));
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* A prefix of the order: elements with key > key, or key == key and id <= id. */
struct cut {
    uint32_t key, id;
};

static __device__ __forceinline__ bool in_cut(struct cut c, uint32_t key, uint32_t id)
{
    return key > c.key || (key == c.key && id <= c.id);
}

enum { W_COUNT, W_MASS, W_TEMP };

struct selw {
    int mode;
    float maxl, inv_t;
};

static __device__ __forceinline__ float weight(struct selw w, float l)
{
    if (w.mode == W_COUNT) return 1.0f;
    const float z = clean(l) - w.maxl;
    return __expf(w.mode == W_TEMP ? z * w.inv_t : z);
}

/* Adds v to hist[d] for the lanes that take part; a 32-lane group whose lanes all
 * land in one bin adds once (the top bits of logits are mostly equal). */
static __device__ __forceinline__ void hist_add(float *hist, bool on, int d, float v)
{
    int d0 = on ? d : -1;
    for (int m = 16; m > 0; m >>= 1) d0 = max(d0, rf_shfl_xor(d0, m));
    const bool uniform = rf_all(!on || d == d0);
    if (uniform) {
        float s = on ? v : 0.0f;
        for (int m = 16; m > 0; m >>= 1) s += rf_shfl_xor(s, m);
        if (d0 >= 0 && threadIdx.x % 32 == 0) atomicAdd(&hist[d0], s);
    } else if (on) {
        atomicAdd(&hist[d], v);
    }
}

/* Chooses the bin where the running weight (carry + bins before it in the walk)
 * first reaches target; the last nonempty bin when none does. Thread 0 only. */
static __device__ int walk(const float *hist, bool ascending, float target, float *carry)
{
    int last = -1;
    float c = *carry, c_last = c;
    for (int s = 0; s < 256; s++) {
        const int d = ascending ? s : 255 - s;
        if (!(hist[d] > 0.0f)) continue;
        if (c + hist[d] >= target) {
            *carry = c;
            return d;
        }
        last = d;
        c_last = c;
        c += hist[d];
    }
    *carry = c_last;
    return last < 0 ? (ascending ? 0 : 255) : last;
}

/* The first element of the order, among those of `within`, at which the running
 * weight reaches target. */
static __device__ struct cut select_cut(const float *__restrict__ lg, int32_t n, struct cut within,
                                        struct selw w, float target)
{
    __shared__ float hist[256];
    __shared__ uint32_t s_prefix;
    __shared__ float s_carry;
    if (threadIdx.x == 0) {
        s_prefix = 0;
        s_carry = 0.0f;
    }
    struct cut r = {0, 0};
    /* keys from the top byte down, then ids (ascending) among the equal keys */
    for (int pass = 0; pass < 8; pass++) {
        const bool on_id = pass >= 4;
        const int shift = 24 - 8 * (pass & 3);
        const uint32_t mask = (pass & 3) == 0 ? 0u : ~0u << (shift + 8);
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0.0f;
        __syncthreads();
        const uint32_t prefix = s_prefix;
        const int32_t rounds = (n + (int32_t)blockDim.x - 1) / (int32_t)blockDim.x;
        for (int32_t it = 0; it < rounds; it++) {
            const int32_t i = it * (int32_t)blockDim.x + (int32_t)threadIdx.x;
            bool on = false;
            int d = 0;
            float v = 0.0f;
            if (i < n) {
                const float l = lg[i];
                const uint32_t key = fkey(l);
                on = in_cut(within, key, (uint32_t)i);
                const uint32_t x = on_id ? (uint32_t)i : key;
                if (on_id) on = on && key == r.key;
                on = on && (x & mask) == (prefix & mask);
                d = (int)((x >> shift) & 255u);
                if (on) v = weight(w, l);
            }
            hist_add(hist, on, d, v);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float carry = s_carry;
            const int d = walk(hist, on_id, target, &carry);
            s_carry = carry;
            s_prefix = (prefix & mask) | ((uint32_t)d << shift);
        }
        __syncthreads();
        if (pass == 3) {
            r.key = s_prefix;
            __syncthreads();
            if (threadIdx.x == 0) s_prefix = 0;
            __syncthreads();
        }
    }
    r.id = s_prefix;
    __syncthreads();
    return r;
}

/* Sum of weights over the elements of `within`. */
static __device__ float block_sum(const float *__restrict__ lg, int32_t n, struct cut within, struct selw w)
{
    __shared__ float part[SAMPLE_THREADS / 32];
    float s = 0.0f;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
        if (in_cut(within, fkey(lg[i]), (uint32_t)i)) s += weight(w, lg[i]);
    for (int m = 16; m > 0; m >>= 1) s += rf_shfl_xor(s, m);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = s;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < (int)blockDim.x / 32; i++) t += part[i];
    __syncthreads();
    return t;
}

__global__ void __launch_bounds__(SAMPLE_THREADS) k_sample(const float *__restrict__ lg, int32_t n,
                                                           float temperature, int32_t top_k,
                                                           float top_p, float u, int32_t *__restrict__ out)
{
    struct best b = {-INFINITY, INT32_MAX};
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
        struct best o = {clean(lg[i]), i};
        b = better(b, o);
    }
    b = block_best(b);
    struct selw w = {W_COUNT, b.v == -INFINITY ? 0.0f : b.v, 1.0f / temperature};
    struct cut all = {0u, 0xffffffffu};
    if (top_k > 0 && top_k < n) all = select_cut(lg, n, all, w, (float)top_k);
    if (top_p < 1.0f) {
        w.mode = W_MASS;
        const float total = block_sum(lg, n, all, w);
        all = select_cut(lg, n, all, w, top_p * total);
    }
    w.mode = W_TEMP;
    const float total = block_sum(lg, n, all, w);
    const struct cut pick = select_cut(lg, n, all, w, u * total);
    if (threadIdx.x == 0) out[0] = (int32_t)pick.id < n ? (int32_t)pick.id : b.i;
}

extern "C" rf_status rf_gpu_sample(void *stream, const float *logits, int32_t n,
                                   const struct rf_sample_params *sp, void *ws, int32_t *out_dev)
{
    cudaStream_t s = (cudaStream_t)stream;
    if (n <= 0) return rf_fail(RF_STATUS_INVALID_ARG, "gpu sample: %d logits", (int)n);
    if (!(sp->temperature > 0.0f)) {
        int nb = (n + 1023) / 1024;
        if (nb > ARGMAX_BLOCKS) nb = ARGMAX_BLOCKS;
        struct best *part = (struct best *)ws;
        k_argmax_part<<<nb, 1024, 0, s>>>(logits, n, part);
        RF_GPU_LAUNCHED("argmax_part");
        k_argmax_final<<<1, 256, 0, s>>>(part, nb, out_dev);
        RF_GPU_LAUNCHED("argmax_final");
        return RF_OK;
    }
    k_sample<<<1, SAMPLE_THREADS, 0, s>>>(logits, n, sp->temperature, sp->top_k, sp->top_p, sp->u,
                                          out_dev);
    RF_GPU_LAUNCHED("sample");
    return RF_OK;
}

/* Products of weights in their GGUF block format with f32 activations, and the row
 * gather of the embedding.
 *
 * Decode (a few tokens; gpu_matmul.c picks): one warp per pair of weight rows. The warp
 * streams its rows through a ring of shared-memory windows of whole blocks with 16-byte
 * asynchronous copies (cp.async; the next window's copies in flight while this one
 * decodes), then each lane decodes whole blocks from shared memory and dots them with
 * the activations, which were quantized to int8 per 32 (scale and the two 16-element
 * sums kept, so offsets and mins cost one multiply): each weight byte is read once for
 * all tokens of the batch.
 *
 * Batches of RF_GPU_MMQ_MIN_TOK..128 tokens go to the int8 tensor cores (mmq.cu). Long
 * prompts: weight rows are dequantized to f16 and multiplied by cuBLAS (host side) or,
 * without it, by the tiled kernel at the end of this file. */
#include <string.h>

#include "backend/gpu/blocks_dev.h"
#include "backend/gpu/gpu_internal.h"
#include "backend/gpu/quant_x.h"
#include "quant/blocks.h"

/* ---- type codes of the kernels ---- */
enum {
    TT_F32, TT_F16, TT_BF16, TT_Q4_0, TT_Q4_1, TT_Q5_0, TT_Q5_1, TT_Q8_0,
    TT_Q2_K, TT_Q3_K, TT_Q4_K, TT_Q5_K, TT_Q6_K, TT_COUNT
};

static int type_code(enum rf_type t)
{
    switch (t) {
    case RF_TYPE_F32: return TT_F32;
    case RF_TYPE_F16: return TT_F16;
    case RF_TYPE_BF16: return TT_BF16;
    case RF_TYPE_Q4_0: return TT_Q4_0;
    case RF_TYPE_Q4_1: return TT_Q4_1;
    case RF_TYPE_Q5_0: return TT_Q5_0;
    case RF_TYPE_Q5_1: return TT_Q5_1;
    case RF_TYPE_Q8_0: return TT_Q8_0;
    case RF_TYPE_Q2_K: return TT_Q2_K;
    case RF_TYPE_Q3_K: return TT_Q3_K;
    case RF_TYPE_Q4_K: return TT_Q4_K;
    case RF_TYPE_Q5_K: return TT_Q5_K;
    case RF_TYPE_Q6_K: return TT_Q6_K;
    default: return -1;
    }
}

/* Elements per block (per 8-element unit for the float types) and bytes per block. */
static __host__ __device__ __forceinline__ int tt_qk(int tt)
{
    return tt <= TT_BF16 ? 8 : tt <= TT_Q8_0 ? 32 : RF_QK_K;
}

static __host__ __device__ __forceinline__ int tt_bytes(int tt)
{
    switch (tt) {
    case TT_F32: return 32;
    case TT_F16: return 16;
    case TT_BF16: return 16;
    case TT_Q4_0: return (int)sizeof(struct rf_block_q4_0);
    case TT_Q4_1: return (int)sizeof(struct rf_block_q4_1);
    case TT_Q5_0: return (int)sizeof(struct rf_block_q5_0);
    case TT_Q5_1: return (int)sizeof(struct rf_block_q5_1);
    case TT_Q8_0: return (int)sizeof(struct rf_block_q8_0);
    case TT_Q2_K: return (int)sizeof(struct rf_block_q2_K);
    case TT_Q3_K: return (int)sizeof(struct rf_block_q3_K);
    case TT_Q4_K: return (int)sizeof(struct rf_block_q4_K);
    case TT_Q5_K: return (int)sizeof(struct rf_block_q5_K);
    default: return (int)sizeof(struct rf_block_q6_K);
    }
}

extern "C" bool rf_gpu_type_supported(enum rf_type t) { return type_code(t) >= 0; }

/* ---- reading blocks: every field of every block is at least 2-byte aligned ---- */

static __device__ __forceinline__ uint32_t ld2(const uint8_t *p) { return *(const uint16_t *)p; }
static __device__ __forceinline__ uint32_t ld4(const uint8_t *p) { return ld2(p) | (ld2(p + 2) << 16); }

/* n 32-bit words from a 2-byte aligned p through n + 1 aligned loads (the block
 * layouts put most fields at odd half-word offsets). May read 3 bytes past the run:
 * buffers and tensors carry tail padding. */
static __device__ __forceinline__ void ld_run(const uint8_t *p, uint32_t *out, int n)
{
    const uint32_t *a = (const uint32_t *)((uintptr_t)p & ~(uintptr_t)3);
    const unsigned sh = (unsigned)((uintptr_t)p & 3) * 8;
    uint32_t lo = a[0];
#pragma unroll
    for (int i = 0; i < n; i++) {
        const uint32_t hi = a[i + 1];
        out[i] = (uint32_t)(((((uint64_t)hi) << 32) | lo) >> sh);
        lo = hi;
    }
}

static __device__ __forceinline__ float h2f(uint32_t h)
{
    return __half2float(__ushort_as_half((unsigned short)h));
}

static __device__ __forceinline__ float bf2f(uint32_t h) { return __uint_as_float(h << 16); }

/* 32 elements of a quantized block: value = a * q + b, (a0, b0) for the first 16
 * and (a1, b1) for the last 16; q holds them as signed bytes, in order. */
struct qchunk {
    int q[8];
    float a0, a1, b0, b1;
};

static __device__ __forceinline__ void set_ab(struct qchunk *o, float a, float b)
{
    o->a0 = o->a1 = a;
    o->b0 = o->b1 = b;
}

/* Chunk c (32 elements) of the block at bp. */
static __device__ __forceinline__ void decode_chunk(int tt, const uint8_t *bp, int c, struct qchunk *o)
{
    switch (tt) {
    case TT_Q4_0:
    case TT_Q4_1: {
        const int qs = tt == TT_Q4_0 ? 2 : 4;
        uint32_t r[4];
        ld_run(bp + qs, r, 4);
#pragma unroll
        for (int w = 0; w < 4; w++) {
            const uint32_t v = r[w];
            o->q[w] = (int)(v & 0x0F0F0F0Fu);
            o->q[w + 4] = (int)((v >> 4) & 0x0F0F0F0Fu);
        }
        const float d = h2f(ld2(bp));
        set_ab(o, d, tt == TT_Q4_0 ? -8.0f * d : h2f(ld2(bp + 2)));
        break;
    }
    case TT_Q5_0:
    case TT_Q5_1: {
        const int qh_at = tt == TT_Q5_0 ? 2 : 4;
        uint32_t r[5];
        ld_run(bp + qh_at, r, 5);
        const uint32_t qh = r[0];
#pragma unroll
        for (int w = 0; w < 4; w++) {
            const uint32_t v = r[w + 1];
            o->q[w] = (int)((v & 0x0F0F0F0Fu) | (spread4(qh >> (4 * w)) << 4));
            o->q[w + 4] = (int)(((v >> 4) & 0x0F0F0F0Fu) | (spread4(qh >> (16 + 4 * w)) << 4));
        }
        const float d = h2f(ld2(bp));
        set_ab(o, d, tt == TT_Q5_0 ? -16.0f * d : h2f(ld2(bp + 2)));
        break;
    }
    case TT_Q8_0: {
        uint32_t r[8];
        ld_run(bp + 2, r, 8);
#pragma unroll
        for (int w = 0; w < 8; w++) o->q[w] = (int)r[w];
        set_ab(o, h2f(ld2(bp)), 0.0f);
        break;
    }
    case TT_Q2_K: {
        const int h = c >> 2, s = c & 3;
        uint32_t r[8];
        ld_run(bp + 16 + h * 32, r, 8);
#pragma unroll
        for (int w = 0; w < 8; w++) o->q[w] = (int)((r[w] >> (2 * s)) & 0x03030303u);
        const float d = h2f(ld2(bp + 80)), dmin = h2f(ld2(bp + 82));
        const int s0 = bp[2 * c], s1 = bp[2 * c + 1];
        o->a0 = d * (float)(s0 & 15);
        o->b0 = -dmin * (float)(s0 >> 4);
        o->a1 = d * (float)(s1 & 15);
        o->b1 = -dmin * (float)(s1 >> 4);
        break;
    }
    case TT_Q3_K: {
        const int h = c >> 2, s = c & 3;
        uint32_t r[8], m[8];
        ld_run(bp + 32 + h * 32, r, 8);
        ld_run(bp, m, 8);
#pragma unroll
        for (int w = 0; w < 8; w++) {
            const uint32_t lo = (r[w] >> (2 * s)) & 0x03030303u;
            const uint32_t hm = (m[w] >> c) & 0x01010101u;
            o->q[w] = (int)(lo | (hm << 2));
        }
        const float d = h2f(ld2(bp + 108));
        o->a0 = d * (float)k3_scale(bp + 96, 2 * c);
        o->a1 = d * (float)k3_scale(bp + 96, 2 * c + 1);
        o->b0 = -4.0f * o->a0;
        o->b1 = -4.0f * o->a1;
        break;
    }
    case TT_Q4_K:
    case TT_Q5_K: {
        const int qs_at = tt == TT_Q4_K ? 16 : 48, g = c >> 1, nib = c & 1;
        uint32_t r[8], m[8];
        ld_run(bp + qs_at + g * 32, r, 8);
        if (tt == TT_Q5_K) ld_run(bp + 16, m, 8);
#pragma unroll
        for (int w = 0; w < 8; w++) {
            uint32_t v = (r[w] >> (4 * nib)) & 0x0F0F0F0Fu;
            if (tt == TT_Q5_K) v |= ((m[w] >> c) & 0x01010101u) << 4;
            o->q[w] = (int)v;
        }
        int sc, mn;
        k4_scale_min(bp + 4, c, &sc, &mn);
        set_ab(o, h2f(ld2(bp)) * (float)sc, -h2f(ld2(bp + 2)) * (float)mn);
        break;
    }
    default: { /* TT_Q6_K */
        const int h = c >> 2, s = c & 3;
        uint32_t r[8], m[8];
        ld_run(bp + h * 64 + 32 * (s & 1), r, 8);
        ld_run(bp + 128 + h * 32, m, 8);
#pragma unroll
        for (int w = 0; w < 8; w++) {
            const uint32_t lo = (r[w] >> (4 * (s >> 1))) & 0x0F0F0F0Fu;
            const uint32_t hi = (m[w] >> (2 * s)) & 0x03030303u;
            o->q[w] = (int)(lo | (hi << 4));
        }
        const float d = h2f(ld2(bp + 208));
        o->a0 = d * (float)(int8_t)bp[192 + 2 * c];
        o->a1 = d * (float)(int8_t)bp[192 + 2 * c + 1];
        o->b0 = -32.0f * o->a0;
        o->b1 = -32.0f * o->a1;
        break;
    }
    }
}

/* The 8 elements of a float-type unit as floats. */
static __device__ __forceinline__ void decode_unit(int tt, const uint8_t *bp, float *v)
{
    uint32_t r[8];
    if (tt == TT_F32) {
        ld_run(bp, r, 8);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = __uint_as_float(r[i]);
        return;
    }
    ld_run(bp, r, 4);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint32_t lo = r[i] & 0xffffu, hi = r[i] >> 16;
        v[2 * i] = tt == TT_F16 ? h2f(lo) : bf2f(lo);
        v[2 * i + 1] = tt == TT_F16 ? h2f(hi) : bf2f(hi);
    }
}

/* ---- activations: int8 per 32 with one f32 scale (sums are taken on the fly) ---- */

/* One group of 32 lanes per block of 32 activations. The rounding is that of the CPU
 * path's Q8_0/Q8_1 activations (and llama.cpp's): q = round-half-even(x * 127/amax),
 * scale amax/127 rounded to f16, so that the legacy types' integer dots see the same
 * operands on both backends. */
__global__ void k_quantize_x(const float *__restrict__ x, int8_t *__restrict__ xq,
                             float *__restrict__ xd, int64_t nblocks)
{
    rf_pdl_launch_next();
    rf_pdl_wait();
    const int64_t gid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t b = gid >> 5;
    const int l = threadIdx.x & 31;
    const float v = b < nblocks ? x[gid] : 0.0f;
    float amax = fabsf(v);
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) amax = fmaxf(amax, rf_shfl_xor(amax, m));
    if (b >= nblocks) return;
    xq[gid] = (int8_t)xq_round(v, amax);
    if (l == 0) xd[b] = xq_scale(amax);
}

extern "C" rf_status rf_gpu_quantize_x(void *stream, const float *x, int64_t n_tok, int64_t k,
                                       void *xbuf)
{
    if (n_tok < 1 || k < 32 || k % 32 != 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu quantize_x: bad shape (%lld x %lld)",
                       (long long)n_tok, (long long)k);
    const int64_t n = n_tok * k;
    int8_t *xq = (int8_t *)xbuf;
    float *xsc = (float *)((uint8_t *)xbuf + (((size_t)n + 15) & ~(size_t)15));
    RF_LAUNCH_PDL(k_quantize_x, RF_PDL_EW, (unsigned)((n + 255) / 256), 256, 0,
                  (cudaStream_t)stream, x, xq, xsc, n / 32);
    RF_GPU_LAUNCHED("quantize_x");
    return RF_OK;
}

/* ---- the matrix-vector kernel ---- */

#define MMV_WARPS 4
#ifndef MMV_ROWS
#define MMV_ROWS 2      /* rows a 32-lane group decodes together, sharing activation loads */
#endif
/* bytes of each row per shared-memory window (a 4096-wide Q4_0 row, 2304 bytes, in one;
 * cut to whole multiples of 32 units where the window holds that many, so that every
 * lane decodes as many units), and windows per 32-lane group: the copies go from global
 * straight to shared memory, MMV_STAGES - 1 windows in flight while one decodes. H200,
 * Q4_0, 1 / 2 / 4 tokens: 2304 x 2 and 1536 x 3 within 5% of each other at 1 token,
 * 2304 x 2 ahead at 2 and 4 tokens. */
#ifndef MMV_WINDOW
#define MMV_WINDOW 2304
#endif
#ifndef MMV_STAGES
#define MMV_STAGES 2    /* at least 2 */
#endif
#define MMV_VEC ((MMV_WINDOW + 32) / 16)
#define MMV_VEC_PER_LANE ((MMV_VEC + 31) / 32)

/* Token t's activations for one 32-element chunk: the 8 words of int8, their sums
 * over each half, and the scale. */
struct xchunk {
    int4 x0, x1;
    int s0, s1;
    float d;
};

static __device__ __forceinline__ void load_xchunk(const int8_t *xq, const float *xd, struct xchunk *o)
{
    o->x0 = ((const int4 *)xq)[0];
    o->x1 = ((const int4 *)xq)[1];
    o->d = *xd;
    const int one = 0x01010101;
    o->s0 = rf_dp4a(o->x0.w, one, rf_dp4a(o->x0.z, one, rf_dp4a(o->x0.y, one, rf_dp4a(o->x0.x, one, 0))));
    o->s1 = rf_dp4a(o->x1.w, one, rf_dp4a(o->x1.z, one, rf_dp4a(o->x1.y, one, rf_dp4a(o->x1.x, one, 0))));
}

static __device__ __forceinline__ float dot_chunk(const struct qchunk *qc, const struct xchunk *x)
{
    int s0 = rf_dp4a(qc->q[0], x->x0.x, 0);
    s0 = rf_dp4a(qc->q[1], x->x0.y, s0);
    s0 = rf_dp4a(qc->q[2], x->x0.z, s0);
    s0 = rf_dp4a(qc->q[3], x->x0.w, s0);
    int s1 = rf_dp4a(qc->q[4], x->x1.x, 0);
    s1 = rf_dp4a(qc->q[5], x->x1.y, s1);
    s1 = rf_dp4a(qc->q[6], x->x1.z, s1);
    s1 = rf_dp4a(qc->q[7], x->x1.w, s1);
    return x->d * (qc->a0 * (float)s0 + qc->a1 * (float)s1 + qc->b0 * (float)x->s0 +
                   qc->b1 * (float)x->s1);
}

/* Unit u of a window: 32 elements (chunk u % nc of block u / nc) of a quantized
 * type, 8 elements of a float type, in each of nr rows (windows win[i]). Dots them
 * with every token into acc[i][t] (f16 == 0) or writes them to out_row + i * k as
 * f16 (f16 != 0). */
static __device__ __forceinline__ void mmv_unit(int tt, int NT, int f16, const uint8_t *const *win,
                                                int nr, int u, int64_t b0, int64_t k,
                                                const void *xv, const float *xd, int nt,
                                                float (*acc)[RF_GPU_MMV_MAX_TOK], __half *out_row)
{
    if (tt <= TT_BF16) {
        const int64_t e0 = (b0 + u) * 8;
        float w[MMV_ROWS][8];
#pragma unroll
        for (int i = 0; i < MMV_ROWS; i++)
            if (i < nr) decode_unit(tt, win[i] + u * tt_bytes(tt), w[i]);
        if (f16) {
#pragma unroll
            for (int i = 0; i < MMV_ROWS; i++) {
                uint4 o;
                __half2 *h = (__half2 *)&o;
#pragma unroll
                for (int j = 0; j < 4; j++) h[j] = __floats2half2_rn(w[i][2 * j], w[i][2 * j + 1]);
                if (i < nr) *(uint4 *)(out_row + i * k + e0) = o;
            }
            return;
        }
        const float *x = (const float *)xv;
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t < nt) {
                const float4 a = *(const float4 *)(x + t * k + e0), b = *(const float4 *)(x + t * k + e0 + 4);
#pragma unroll
                for (int i = 0; i < MMV_ROWS; i++)
                    acc[i][t] += w[i][0] * a.x + w[i][1] * a.y + w[i][2] * a.z + w[i][3] * a.w +
                                 w[i][4] * b.x + w[i][5] * b.y + w[i][6] * b.z + w[i][7] * b.w;
            }
        }
        return;
    }
    const int nc = tt_qk(tt) / 32;
    const int j = u / nc, c = u % nc;
    const int64_t e0 = (b0 + j) * tt_qk(tt) + 32 * c;
    struct qchunk qc[MMV_ROWS];
#pragma unroll
    for (int i = 0; i < MMV_ROWS; i++)
        if (i < nr) decode_chunk(tt, win[i] + j * tt_bytes(tt), c, &qc[i]);
    if (f16) {
#pragma unroll
        for (int i = 0; i < MMV_ROWS; i++) {
            uint4 o[4];
            __half2 *h = (__half2 *)o;
#pragma unroll
            for (int e = 0; e < 16; e++) {
                const int q0 = (int)(int8_t)(qc[i].q[e >> 1] >> (16 * (e & 1)));
                const int q1 = (int)(int8_t)(qc[i].q[e >> 1] >> (16 * (e & 1) + 8));
                const float a = e < 8 ? qc[i].a0 : qc[i].a1, b = e < 8 ? qc[i].b0 : qc[i].b1;
                h[e] = __floats2half2_rn(a * (float)q0 + b, a * (float)q1 + b);
            }
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (i < nr) ((uint4 *)(out_row + i * k + e0))[e] = o[e];
        }
        return;
    }
    const int8_t *xq = (const int8_t *)xv;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < nt) {
            struct xchunk xc;
            load_xchunk(xq + t * k + e0, xd + t * (k / 32) + e0 / 32, &xc);
#pragma unroll
            for (int i = 0; i < MMV_ROWS; i++) acc[i][t] += dot_chunk(&qc[i], &xc);
        }
    }
}

/* 16 bytes from global to shared memory: asynchronous on sm_80+ (complete after
 * mmv_wait and a warp barrier), a plain copy elsewhere. */
static __device__ __forceinline__ void mmv_copy16(uint4 *dst, const uint4 *src)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned addr = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(src) : "memory");
#else
    *dst = *src;
#endif
}

static __device__ __forceinline__ void mmv_commit(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/* This lane's copies of all but the MMV_STAGES - 2 latest groups are complete. */
static __device__ __forceinline__ void mmv_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(MMV_STAGES - 2) : "memory");
#endif
}

/* The outputs of one launch: rows of several matrices (one type and row length) as one
 * sequence of row pairs, segment s owning pairs pair0[s] .. pair0[s + 1] - 1. */
struct mmv_segs {
    const uint8_t *w[RF_GPU_MMV_MAX_OUTS];
    float *y[RF_GPU_MMV_MAX_OUTS];
    int64_t rows[RF_GPU_MMV_MAX_OUTS];
    int64_t pair0[RF_GPU_MMV_MAX_OUTS + 1];
    int n;
    int add; /* bit s: segment s adds to y */
};

/* Row pair p: its segment (from s on; pairs only grow) and its first row there. */
static __device__ __forceinline__ int seg_of(const struct mmv_segs *sg, int64_t p, int s, int64_t *r0)
{
    while (s + 1 < sg->n && p >= sg->pair0[s + 1]) s++;
    *r0 = (p - sg->pair0[s]) * MMV_ROWS;
    return s;
}

static __device__ __forceinline__ int seg_nr(const struct mmv_segs *sg, int s, int64_t r0)
{
    return (int)(sg->rows[s] - r0 < MMV_ROWS ? sg->rows[s] - r0 : MMV_ROWS);
}

/* A position in a group's sequence of windows: row pair p (segment s, first row r0,
 * nr rows) and its first block b0. */
struct mmv_pos {
    int64_t p, r0, b0;
    int s, nr;
};

static __device__ __forceinline__ void pos_next(const struct mmv_segs *sg, struct mmv_pos *c,
                                                int64_t groups, int64_t pairs, int64_t nb,
                                                int wblocks)
{
    c->b0 += wblocks;
    if (c->b0 < nb) return;
    c->b0 = 0;
    c->p += groups;
    if (c->p < pairs) {
        c->s = seg_of(sg, c->p, c->s, &c->r0);
        c->nr = seg_nr(sg, c->s, c->r0);
    }
}

/* The first byte of row i's part of window c. */
static __device__ __forceinline__ const uint8_t *win_start(const struct mmv_segs *sg,
                                                           const struct mmv_pos *c, int i,
                                                           size_t row_bytes, int bsz)
{
    return sg->w[c->s] + (c->r0 + i) * row_bytes + c->b0 * bsz;
}

/* Issues the copies of window c (every row of its pair, from 16-byte boundaries) into buf. */
static __device__ __forceinline__ void window_issue(const struct mmv_segs *sg,
                                                    const struct mmv_pos *c, size_t row_bytes,
                                                    int64_t nb, int wblocks, int bsz, int lane,
                                                    uint4 (*buf)[MMV_VEC])
{
    const int nbw = (int)(nb - c->b0 < wblocks ? nb - c->b0 : wblocks);
#pragma unroll
    for (int i = 0; i < MMV_ROWS; i++) {
        if (i >= c->nr) break;
        const uint8_t *start = win_start(sg, c, i, row_bytes, bsz);
        const uint4 *a0 = (const uint4 *)((uintptr_t)start & ~(uintptr_t)15);
        const int nvec = ((int)((uintptr_t)start & 15) + nbw * bsz + 15) / 16;
#pragma unroll
        for (int q = 0; q < MMV_VEC_PER_LANE; q++)
            if (lane + 32 * q < nvec) mmv_copy16(&buf[i][lane + 32 * q], a0 + lane + 32 * q);
    }
}

/* Each 32-lane group takes pairs of rows (p, p + groups, ...) and streams them through
 * a ring of MMV_STAGES shared-memory windows, MMV_STAGES - 1 windows' copies in flight
 * while one decodes. f16 == 0: y[t * rows + r] (+)= dot(row r, token t) in each
 * segment; else (one segment) out rows = the weights as f16. */
static __device__ __forceinline__ void mmv_body(int tt, int NT, int f16, const struct mmv_segs *sg,
                                                int64_t k, size_t row_bytes,
                                                const void *__restrict__ xv, const float *__restrict__ xd,
                                                int nt, __half *__restrict__ out)
{
    __shared__ uint4 stage[MMV_WARPS][MMV_STAGES][MMV_ROWS][MMV_VEC];
    rf_pdl_launch_next();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t groups = (int64_t)gridDim.x * MMV_WARPS;
    const int64_t pairs = sg->pair0[sg->n];
    struct mmv_pos cu;
    cu.p = (int64_t)blockIdx.x * MMV_WARPS + warp;
    if (cu.p >= pairs) return;
    const int qk = tt_qk(tt), bsz = tt_bytes(tt), nc = tt <= TT_BF16 ? 1 : qk / 32;
    const int64_t nb = k / qk;
    int wblocks = MMV_WINDOW / bsz;
    if (wblocks >= 32 / nc) wblocks -= wblocks % (32 / nc);
    float acc[MMV_ROWS][RF_GPU_MMV_MAX_TOK];
#pragma unroll
    for (int i = 0; i < MMV_ROWS; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[i][t] = 0.0f;

    cu.b0 = 0;
    cu.s = seg_of(sg, cu.p, 0, &cu.r0);
    cu.nr = seg_nr(sg, cu.s, cu.r0);
    struct mmv_pos ld = cu;
#pragma unroll
    for (int st = 0; st < MMV_STAGES - 1; st++) {
        if (ld.p < pairs) {
            window_issue(sg, &ld, row_bytes, nb, wblocks, bsz, lane, stage[warp][st]);
            pos_next(sg, &ld, groups, pairs, nb, wblocks);
        }
        mmv_commit();
    }
    /* The first weights are on their way; x and y belong to the kernels before. */
    rf_pdl_wait();
    int buf = 0, lbuf = MMV_STAGES - 1;
    for (;;) {
        mmv_wait();
        rf_syncwarp(); /* window cu is in place; the readers of window lbuf are done */
        if (ld.p < pairs) {
            window_issue(sg, &ld, row_bytes, nb, wblocks, bsz, lane, stage[warp][lbuf]);
            pos_next(sg, &ld, groups, pairs, nb, wblocks);
        }
        mmv_commit();
        lbuf = lbuf + 1 == MMV_STAGES ? 0 : lbuf + 1;
        const int nbw = (int)(nb - cu.b0 < wblocks ? nb - cu.b0 : wblocks);
        const uint8_t *win[MMV_ROWS];
#pragma unroll
        for (int i = 0; i < MMV_ROWS; i++)
            win[i] = (const uint8_t *)stage[warp][buf][i] +
                     ((uintptr_t)win_start(sg, &cu, i, row_bytes, bsz) & 15);
        for (int u = lane; u < nbw * nc; u += 32)
            mmv_unit(tt, NT, f16, win, cu.nr, u, cu.b0, k, xv, xd, nt, acc, out + cu.r0 * k);
        if (!f16 && cu.b0 + wblocks >= nb) { /* the pair is complete */
            float *y = sg->y[cu.s];
            const int64_t rows = sg->rows[cu.s];
            const int add = (sg->add >> cu.s) & 1;
#pragma unroll
            for (int i = 0; i < MMV_ROWS; i++)
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    for (int m = 16; m > 0; m >>= 1) acc[i][t] += rf_shfl_xor(acc[i][t], m);
                    if (lane == 0 && t < nt && i < cu.nr) {
                        float *o = y + t * rows + cu.r0 + i;
                        *o = add ? *o + acc[i][t] : acc[i][t];
                    }
                    acc[i][t] = 0.0f;
                }
        }
        pos_next(sg, &cu, groups, pairs, nb, wblocks);
        buf = buf + 1 == MMV_STAGES ? 0 : buf + 1;
        if (cu.p >= pairs) break;
    }
}

#define MMV_ARGS                                                                                   \
    const struct mmv_segs sg, int64_t k, size_t row_bytes, const void *__restrict__ xv,            \
        const float *__restrict__ xs, int nt
#define MMV_KERNELS(name, tt)                                                                      \
    __global__ void __launch_bounds__(MMV_WARPS * 32) k_mmv_##name##_1(MMV_ARGS)                   \
    {                                                                                              \
        mmv_body(tt, 1, 0, &sg, k, row_bytes, xv, xs, nt, NULL);                                   \
    }                                                                                              \
    __global__ void __launch_bounds__(MMV_WARPS * 32) k_mmv_##name##_2(MMV_ARGS)                   \
    {                                                                                              \
        mmv_body(tt, 2, 0, &sg, k, row_bytes, xv, xs, nt, NULL);                                   \
    }                                                                                              \
    __global__ void __launch_bounds__(MMV_WARPS * 32) k_mmv_##name##_4(MMV_ARGS)                   \
    {                                                                                              \
        mmv_body(tt, 4, 0, &sg, k, row_bytes, xv, xs, nt, NULL);                                   \
    }                                                                                              \
    __global__ void __launch_bounds__(MMV_WARPS * 32) k_mmv_##name##_8(MMV_ARGS)                   \
    {                                                                                              \
        mmv_body(tt, 8, 0, &sg, k, row_bytes, xv, xs, nt, NULL);                                   \
    }                                                                                              \
    __global__ void __launch_bounds__(MMV_WARPS * 32)                                              \
        k_deq_##name(const struct mmv_segs sg, int64_t k, size_t row_bytes, __half *__restrict__ out) \
    {                                                                                              \
        mmv_body(tt, 1, 1, &sg, k, row_bytes, NULL, NULL, 0, out);                                 \
    }

MMV_KERNELS(f32, TT_F32)
MMV_KERNELS(f16, TT_F16)
MMV_KERNELS(bf16, TT_BF16)
MMV_KERNELS(q4_0, TT_Q4_0)
MMV_KERNELS(q4_1, TT_Q4_1)
MMV_KERNELS(q5_0, TT_Q5_0)
MMV_KERNELS(q5_1, TT_Q5_1)
MMV_KERNELS(q8_0, TT_Q8_0)
MMV_KERNELS(q2_K, TT_Q2_K)
MMV_KERNELS(q3_K, TT_Q3_K)
MMV_KERNELS(q4_K, TT_Q4_K)
MMV_KERNELS(q5_K, TT_Q5_K)
MMV_KERNELS(q6_K, TT_Q6_K)

typedef void (*mmv_fn)(MMV_ARGS);
#define MMV_ROW(name) {k_mmv_##name##_1, k_mmv_##name##_2, k_mmv_##name##_4, k_mmv_##name##_8}
static const mmv_fn mmv_table[TT_COUNT][4] = {
    MMV_ROW(f32), MMV_ROW(f16), MMV_ROW(bf16), MMV_ROW(q4_0), MMV_ROW(q4_1),
    MMV_ROW(q5_0), MMV_ROW(q5_1), MMV_ROW(q8_0), MMV_ROW(q2_K), MMV_ROW(q3_K),
    MMV_ROW(q4_K), MMV_ROW(q5_K), MMV_ROW(q6_K)};
typedef void (*deq_fn)(const struct mmv_segs, int64_t, size_t, __half *);
static const deq_fn deq_table[TT_COUNT] = {
    k_deq_f32, k_deq_f16, k_deq_bf16, k_deq_q4_0, k_deq_q4_1, k_deq_q5_0, k_deq_q5_1,
    k_deq_q8_0, k_deq_q2_K, k_deq_q3_K, k_deq_q4_K, k_deq_q5_K, k_deq_q6_K};
static const char *const mmv_names[TT_COUNT] = {
    "mmv_f32", "mmv_f16", "mmv_bf16", "mmv_q4_0", "mmv_q4_1", "mmv_q5_0", "mmv_q5_1",
    "mmv_q8_0", "mmv_q2_K", "mmv_q3_K", "mmv_q4_K", "mmv_q5_K", "mmv_q6_K"};

/* Float rows whose length is not a multiple of 8: one warp per row, element by element. */
__global__ void k_mmv_float_any(int tt, const uint8_t *__restrict__ w, int64_t rows, int64_t k,
                                size_t row_bytes, const float *__restrict__ x, int nt,
                                float *__restrict__ y, int add)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * MMV_WARPS + warp;
    if (r >= rows) return;
    const uint8_t *row = w + r * row_bytes;
    for (int t = 0; t < nt; t++) {
        float acc = 0.0f;
        for (int64_t i = lane; i < k; i += 32) {
            const float v = tt == TT_F32 ? __uint_as_float(ld4(row + 4 * i))
                            : tt == TT_F16 ? h2f(ld2(row + 2 * i)) : bf2f(ld2(row + 2 * i));
            acc += v * x[t * k + i];
        }
        for (int m = 16; m > 0; m >>= 1) acc += rf_shfl_xor(acc, m);
        if (lane == 0) y[t * rows + r] = add ? y[t * rows + r] + acc : acc;
    }
}

/* Blocks of the streaming kernels: one per 4 row pairs, at most as many as are
 * resident at once (the groups then loop over pairs, each next pair's loads
 * overlapping this one's decode). */
static unsigned mmv_grid(const void *kernel, int64_t pairs, size_t smem)
{
    static int n_sm = 0;
    if (n_sm == 0) {
        int dev = 0, n = 0;
        if (cudaGetDevice(&dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && n > 0)
            n_sm = n;
        else
            n_sm = 108;
    }
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, MMV_WARPS * 32, smem) !=
            cudaSuccess || per_sm < 1) {
        (void)cudaGetLastError();
        per_sm = 1;
    }
    int64_t blocks = (pairs + MMV_WARPS - 1) / MMV_WARPS;
    if (blocks > (int64_t)n_sm * per_sm) blocks = (int64_t)n_sm * per_sm;
    return (unsigned)(blocks < 1 ? 1 : blocks);
}

extern "C" size_t rf_gpu_xq_bytes(int64_t n_tok, int64_t k)
{
    const size_t q = ((size_t)(n_tok * k) + 15) & ~(size_t)15;
    return q + (size_t)(n_tok * k / 32) * sizeof(float);
}

unsigned long long rf_gpu_launch_count;

extern "C" unsigned long long rf_gpu_launch_stamp(void)
{
    return __atomic_load_n(&rf_gpu_launch_count, __ATOMIC_RELAXED);
}

extern "C" void rf_gpu_note_launch(void)
{
    __atomic_fetch_add(&rf_gpu_launch_count, 1ull, __ATOMIC_RELAXED);
}

static struct mmv_segs one_seg(const void *w, int64_t rows, float *y)
{
    struct mmv_segs sg;
    memset(&sg, 0, sizeof sg);
    sg.w[0] = (const uint8_t *)w;
    sg.y[0] = y;
    sg.rows[0] = rows;
    sg.pair0[1] = (rows + MMV_ROWS - 1) / MMV_ROWS;
    sg.n = 1;
    return sg;
}

extern "C" rf_status rf_gpu_mmv_multi(void *stream, enum rf_type t, const struct rf_gpu_mmv_out *outs,
                                      int n_out, int64_t k, size_t row_bytes, const float *x,
                                      int64_t n_tok, void *xbuf, bool x_ready)
{
    const int tt = type_code(t);
    if (tt < 0) return rf_fail(RF_STATUS_UNSUPPORTED, "gpu mmv: type %s", rf_type_name(t));
    if (n_tok < 1 || n_tok > RF_GPU_MMV_MAX_TOK || k % tt_qk(tt) != 0 || n_out < 1 ||
        n_out > RF_GPU_MMV_MAX_OUTS)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu mmv: bad shape (%lld tokens, %d outputs, k %lld)",
                       (long long)n_tok, n_out, (long long)k);
    struct mmv_segs sg;
    memset(&sg, 0, sizeof sg);
    for (int i = 0; i < n_out; i++) {
        if (outs[i].rows < 1)
            return rf_fail(RF_STATUS_INVALID_ARG, "gpu mmv: output %d has %lld rows", i,
                           (long long)outs[i].rows);
        sg.w[i] = (const uint8_t *)outs[i].w;
        sg.y[i] = outs[i].y;
        sg.rows[i] = outs[i].rows;
        sg.pair0[i + 1] = sg.pair0[i] + (outs[i].rows + MMV_ROWS - 1) / MMV_ROWS;
        sg.add |= outs[i].add ? 1 << i : 0;
    }
    sg.n = n_out;
    cudaStream_t s = (cudaStream_t)stream;
    const int nt = (int)n_tok;
    const int v = nt == 1 ? 0 : nt == 2 ? 1 : nt <= 4 ? 2 : 3;
    const void *xv = x;
    const float *xs = NULL;
    if (tt > TT_BF16) {
        const int64_t n = n_tok * k;
        if (!x_ready) RF_TRY(rf_gpu_quantize_x(stream, x, n_tok, k, xbuf));
        xv = xbuf;
        xs = (const float *)((const uint8_t *)xbuf + (((size_t)n + 15) & ~(size_t)15));
    }
    const unsigned grid = mmv_grid((const void *)mmv_table[tt][v], sg.pair0[n_out], 0);
    RF_LAUNCH_PDL(mmv_table[tt][v], RF_PDL_MMV, grid, MMV_WARPS * 32, 0, s, sg, k, row_bytes, xv,
                  xs, nt);
    RF_GPU_LAUNCHED(mmv_names[tt]);
    return RF_OK;
}

/* k not a multiple of 8 (float types only; quantized rows are whole blocks). */
static rf_status mmv_float_any(cudaStream_t s, int tt, const void *w, int64_t rows, int64_t k,
                               size_t row_bytes, const float *x, int64_t n_tok, float *y, bool add)
{
    const unsigned grid = (unsigned)((rows + MMV_WARPS - 1) / MMV_WARPS);
    k_mmv_float_any<<<grid, MMV_WARPS * 32, 0, s>>>(tt, (const uint8_t *)w, rows, k, row_bytes, x,
                                                    (int)n_tok, y, add);
    RF_GPU_LAUNCHED("mmv_float_any");
    return RF_OK;
}

extern "C" rf_status rf_gpu_mmv_any(void *stream, enum rf_type t, const void *w, int64_t rows,
                                    int64_t k, size_t row_bytes, const float *x, int64_t n_tok,
                                    float *y, void *xbuf, bool add)
{
    const int tt = type_code(t);
    if (tt >= 0 && tt <= TT_BF16 && k % 8 != 0)
        return mmv_float_any((cudaStream_t)stream, tt, w, rows, k, row_bytes, x, n_tok, y, add);
    const struct rf_gpu_mmv_out o = {w, rows, y, add};
    return rf_gpu_mmv_multi(stream, t, &o, 1, k, row_bytes, x, n_tok, xbuf, false);
}

/* ---- dequantize (f16 for the GEMM, f32 for get_rows): one thread per 32 elements ---- */

static __device__ __forceinline__ void chunk_values(int tt, const uint8_t *row, int64_t ci, float *v)
{
    if (tt <= TT_BF16) {
        /* 32 elements = 4 units of 8 */
#pragma unroll
        for (int u = 0; u < 4; u++) decode_unit(tt, row + (ci * 4 + u) * tt_bytes(tt), v + 8 * u);
        return;
    }
    const int nc = tt_qk(tt) / 32;
    struct qchunk qc;
    decode_chunk(tt, row + (ci / nc) * tt_bytes(tt), (int)(ci % nc), &qc);
#pragma unroll
    for (int i = 0; i < 32; i++) {
        const int q = (int)(int8_t)(qc.q[(i & 31) >> 2] >> (8 * (i & 3)));
        v[i] = i < 16 ? qc.a0 * (float)q + qc.b0 : qc.a1 * (float)q + qc.b1;
    }
}

static __device__ __forceinline__ float elem_value(int tt, const uint8_t *row, int64_t i)
{
    return tt == TT_F32 ? __uint_as_float(ld4(row + 4 * i)) : tt == TT_F16 ? h2f(ld2(row + 2 * i))
                                                                           : bf2f(ld2(row + 2 * i));
}

/* out row r (of `rows` listed by ids, or r itself when ids is NULL), as f16 or f32. */
__global__ void k_dequant(int tt, const uint8_t *__restrict__ w, int64_t k, size_t row_bytes,
                          const int32_t *__restrict__ ids, int64_t wrows, int64_t n, int f16,
                          void *__restrict__ out)
{
    const int64_t gid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const bool whole = tt > TT_BF16 || k % 32 == 0;
    const int64_t per_row = whole ? k / 32 : k;
    if (gid >= n * per_row) return;
    const int64_t r = gid / per_row, ci = gid % per_row;
    int64_t src = ids ? ids[r] : r;
    if (src < 0 || src >= wrows) src = -1; /* out of range ids give zero rows */
    if (!whole) {
        const float v = src < 0 ? 0.0f : elem_value(tt, w + src * row_bytes, ci);
        if (f16) ((__half *)out)[r * k + ci] = __float2half(v);
        else ((float *)out)[r * k + ci] = v;
        return;
    }
    float v[32];
    if (src < 0) {
#pragma unroll
        for (int i = 0; i < 32; i++) v[i] = 0.0f;
    } else {
        chunk_values(tt, w + src * row_bytes, ci, v);
    }
    if (f16) {
        __half2 *o = (__half2 *)((__half *)out + r * k + ci * 32);
#pragma unroll
        for (int i = 0; i < 16; i++) o[i] = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
    } else {
        float4 *o = (float4 *)((float *)out + r * k + ci * 32);
#pragma unroll
        for (int i = 0; i < 8; i++) o[i] = make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
    }
}

static rf_status dequant(cudaStream_t s, enum rf_type t, const void *w, int64_t wrows, int64_t k,
                         size_t row_bytes, const int32_t *ids, int64_t n, int f16, void *out,
                         const char *what)
{
    const int tt = type_code(t);
    if (tt < 0) return rf_fail(RF_STATUS_UNSUPPORTED, "gpu %s: type %s", what, rf_type_name(t));
    const bool whole = tt > TT_BF16 || k % 32 == 0;
    if (tt > TT_BF16 && k % tt_qk(tt) != 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu %s: %lld columns", what, (long long)k);
    const int64_t total = n * (whole ? k / 32 : k);
    if (total == 0) return RF_OK;
    k_dequant<<<(unsigned)((total + 127) / 128), 128, 0, s>>>(tt, (const uint8_t *)w, k, row_bytes,
                                                             ids, wrows, n, f16, out);
    RF_GPU_LAUNCHED(what);
    return RF_OK;
}

extern "C" rf_status rf_gpu_dequant_f16(void *stream, enum rf_type t, const void *w, int64_t rows,
                                        int64_t k, size_t row_bytes, uint16_t *out)
{
    const int tt = type_code(t);
    if (tt >= 0 && k % tt_qk(tt) == 0 && rows > 0) {
        const struct mmv_segs sg = one_seg(w, rows, NULL);
        deq_table[tt]<<<mmv_grid((const void *)deq_table[tt], sg.pair0[1], 0), MMV_WARPS * 32, 0,
                        (cudaStream_t)stream>>>(sg, k, row_bytes, (__half *)out);
        RF_GPU_LAUNCHED("dequant_f16");
        return RF_OK;
    }
    return dequant((cudaStream_t)stream, t, w, rows, k, row_bytes, NULL, rows, 1, out,
                   "dequant_f16");
}

extern "C" rf_status rf_gpu_get_rows(void *stream, enum rf_type t, const void *w, int64_t rows,
                                     int64_t k, size_t row_bytes, const int32_t *ids, int64_t n,
                                     float *out)
{
    return dequant((cudaStream_t)stream, t, w, rows, k, row_bytes, ids, n, 0, out, "get_rows");
}

__global__ void k_f32_to_f16(const float *__restrict__ x, __half *__restrict__ y, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half(x[i]);
}

extern "C" rf_status rf_gpu_f32_to_f16(void *stream, const float *x, uint16_t *out, int64_t n)
{
    if (n <= 0) return RF_OK;
    k_f32_to_f16<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)stream>>>(x, (__half *)out, n);
    RF_GPU_LAUNCHED("f32_to_f16");
    return RF_OK;
}

/* ---- a tiled f16 GEMM for builds without cuBLAS: y[j*ldy + i] = a_i . b_j, a (m, k),
 * b (n, k) ---- */

#define GT 64 /* output tile */
#define GK 16 /* k step */

__global__ void __launch_bounds__(256) k_gemm_f16(const __half *__restrict__ a, const __half *__restrict__ b,
                                                  float *__restrict__ y, int64_t m, int64_t n,
                                                  int64_t k, int64_t ldy, int add)
{
    __shared__ float sa[GK][GT + 1], sb[GK][GT + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t m0 = (int64_t)blockIdx.y * GT, n0 = (int64_t)blockIdx.x * GT;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (int64_t k0 = 0; k0 < k; k0 += GK) {
        for (int e = threadIdx.x; e < GT * GK; e += 256) {
            const int rr = e / GK, kk = e % GK;
            const int64_t ka = k0 + kk;
            sa[kk][rr] = (m0 + rr < m && ka < k) ? __half2float(a[(m0 + rr) * k + ka]) : 0.0f;
            sb[kk][rr] = (n0 + rr < n && ka < k) ? __half2float(b[(n0 + rr) * k + ka]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GK; kk++) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                av[i] = sa[kk][ty * 4 + i];
                bv[i] = sb[kk][tx * 4 + i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t r = m0 + ty * 4 + i, c = n0 + tx * 4 + j;
            if (r < m && c < n) y[c * ldy + r] = add ? y[c * ldy + r] + acc[i][j] : acc[i][j];
        }
}

extern "C" rf_status rf_gpu_gemm_f16(void *stream, const uint16_t *a, const uint16_t *b, float *y,
                                     int64_t m, int64_t n, int64_t k, int64_t ldy, bool add)
{
    if (m <= 0 || n <= 0) return RF_OK;
    const dim3 grid((unsigned)((n + GT - 1) / GT), (unsigned)((m + GT - 1) / GT));
    k_gemm_f16<<<grid, 256, 0, (cudaStream_t)stream>>>((const __half *)a, (const __half *)b, y, m,
                                                        n, k, ldy, add);
    RF_GPU_LAUNCHED("gemm_f16");
    return RF_OK;
}


/* Batched products on tensor cores: y (n_tok, rows) = x . w^T with the weights read in
 * their GGUF blocks (each weight byte once per token tile). Two flavours share the
 * staging and the decoding: int8 (the activations as rf_gpu_quantize_x leaves them, int8
 * per element and one f32 scale per 32; the CPU path's rounding) and f16 (the
 * activations as f16, the decoded weights turned into f16 with their scale and min
 * applied, m16n8k16 products accumulated in f32 over the whole row: no per-block work
 * after each product, so fewer instructions per weight at 16..128 tokens).
 *
 * A block of threads owns a tile of BM weight rows x BN tokens and walks k in stages of
 * 256 elements (8 legacy blocks or one K-quant super-block): the stage's raw weight
 * bytes, int8 activations and their scales are copied to shared memory (cp.async, a
 * ring of 2..12 stages), then each warp decodes its A fragments straight from the raw
 * blocks and multiplies them with the activation fragments by mma.sync m16n8k32
 * (m16n8k16 twice for the types whose scales change every 16 elements). The warps of a
 * block split the 8 chunks of a stage in KS groups whose sums are added at the end in a
 * fixed order. Where the tiles are fewer than the device's block slots (4096 rows at 8
 * tokens: 128 tiles), k is split over blocks too: each stores its partial tile and the
 * last of a tile's blocks to finish adds them in split order (mq_finish). Where
 * mma.sync is missing (HIP, pre-sm_80) the same fragments are multiplied by shuffles
 * and dp4a (f16: float products): a correctness path, not a fast one.
 *
 * Decoding: the weight quants become signed bytes q' = q * 2^s with the offset folded in
 * where the format has one (Q4_0: the nibble n sits in the top half, xor 0x80, giving
 * 16 (n - 8); Q5_0 8 (n - 16); Q6_K 4 (q - 32); Q3_K 32 (q - 4)), and the block scale is
 * divided by 2^s (exact). Types with a min (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) keep q
 * unsigned and add min * (the activation block's scale times its integer sum), the sums
 * taken here from the int8 values.
 *
 * Folding: each 32-element (16) block's int32 dot |S| <= 32 * 128 * 127 < 2^22 comes out
 * of the mma with 0x4B400000 as its accumulator, so its bits are the float 1.5 * 2^23 +
 * S, and S = that - 1.5 * 2^23 exactly (no int -> float conversion); then
 * acc += a_w * (d_x * S) [+ b_w * d_x * sum_x], in the same order every run.
 *
 * The f16 flavour: byte u = q' ^ 0x80 placed under the exponent byte 0x64 - 4s is the
 * half 2^(10 - s) + u / 2^s, so subtracting the half of u = 0x80 leaves q' / 2^s = q
 * exactly; then w = a q + b in one f16 fma (a and b rounded to f16). A lane's four k
 * positions of a k16 step are the elements 4t..4t+3 of the chunk's first (or second)
 * 16, for the weights and the activations alike, so the activation fragments are one
 * 8-byte load each. */
#include <stdlib.h>

#include "backend/gpu/blocks_dev.h"
#include "backend/gpu/gpu_internal.h"
#include "quant/blocks.h"

/* ---- the types ---- */
enum { MQ_Q4_0, MQ_Q4_1, MQ_Q5_0, MQ_Q5_1, MQ_Q8_0, MQ_Q2_K, MQ_Q3_K, MQ_Q4_K, MQ_Q5_K, MQ_Q6_K, MQ_COUNT };

static int mq_code(enum rf_type t)
{
    switch (t) {
    case RF_TYPE_Q4_0: return MQ_Q4_0;
    case RF_TYPE_Q4_1: return MQ_Q4_1;
    case RF_TYPE_Q5_0: return MQ_Q5_0;
    case RF_TYPE_Q5_1: return MQ_Q5_1;
    case RF_TYPE_Q8_0: return MQ_Q8_0;
    case RF_TYPE_Q2_K: return MQ_Q2_K;
    case RF_TYPE_Q3_K: return MQ_Q3_K;
    case RF_TYPE_Q4_K: return MQ_Q4_K;
    case RF_TYPE_Q5_K: return MQ_Q5_K;
    case RF_TYPE_Q6_K: return MQ_Q6_K;
    default: return -1;
    }
}

/* Elements and bytes per block. */
static __host__ __device__ __forceinline__ int mq_qk(int tt) { return tt <= MQ_Q8_0 ? 32 : RF_QK_K; }

static __host__ __device__ __forceinline__ int mq_bytes(int tt)
{
    switch (tt) {
    case MQ_Q4_0: return (int)sizeof(struct rf_block_q4_0);
    case MQ_Q4_1: return (int)sizeof(struct rf_block_q4_1);
    case MQ_Q5_0: return (int)sizeof(struct rf_block_q5_0);
    case MQ_Q5_1: return (int)sizeof(struct rf_block_q5_1);
    case MQ_Q8_0: return (int)sizeof(struct rf_block_q8_0);
    case MQ_Q2_K: return (int)sizeof(struct rf_block_q2_K);
    case MQ_Q3_K: return (int)sizeof(struct rf_block_q3_K);
    case MQ_Q4_K: return (int)sizeof(struct rf_block_q4_K);
    case MQ_Q5_K: return (int)sizeof(struct rf_block_q5_K);
    default: return (int)sizeof(struct rf_block_q6_K);
    }
}

/* Blocks per 256-element stage. */
static __host__ __device__ __forceinline__ int mq_bps(int tt) { return RF_QK_K / mq_qk(tt); }
/* Scales per 16 elements (two k16 products per 32). */
static __host__ __device__ __forceinline__ bool mq_half(int tt)
{
    return tt == MQ_Q2_K || tt == MQ_Q3_K || tt == MQ_Q6_K;
}
/* A min term (needs the activation block sums). */
static __host__ __device__ __forceinline__ bool mq_min(int tt)
{
    return tt == MQ_Q4_1 || tt == MQ_Q5_1 || tt == MQ_Q2_K || tt == MQ_Q4_K || tt == MQ_Q5_K;
}

/* Shared-memory layout of one stage: BM weight slots of mq_slot bytes (the stage's
 * bytes of a row, copied from its 16-byte aligned start; an odd number of 16-byte
 * units, so that the 8 rows of a fragment fall in different banks), BN activation rows
 * of MQ_XSTR bytes, then 8 x BN scales ([chunk][token]). After the stages: the
 * activation sums of the min types, 16 x BN floats (f16: 16 bytes); its first word
 * holds the split products' flag at the end. */
#define MQ_XSTR 272
/* The f16 flavour: BN rows of MQ_HSTR bytes (256 halves and 16 bytes that spread the 8
 * token rows of a fragment load over the banks), no scales, no sums. */
#define MQ_HSTR 528
static __host__ __device__ __forceinline__ int mq_vmax(int tt) { return (mq_bps(tt) * mq_bytes(tt) + 29) / 16; }
static __host__ __device__ __forceinline__ int mq_slot(int tt) { return (mq_vmax(tt) | 1) * 16; }
static __host__ __device__ __forceinline__ int mq_stage_bytes(int tt, int bm, int bn, bool fh)
{
    return bm * mq_slot(tt) + (fh ? bn * MQ_HSTR : bn * MQ_XSTR + 8 * bn * (int)sizeof(float));
}
static __host__ __device__ __forceinline__ int mq_smem(int tt, int bm, int bn, bool fh, int stages)
{
    return stages * mq_stage_bytes(tt, bm, bn, fh) + (fh ? 16 : 16 * bn * (int)sizeof(float));
}

/* ---- tiles: BM rows x BN tokens, WM x WN warps, KS groups of them splitting each
 * stage's chunks; the stages in flight are chosen per launch (mq_stages) ---- */
struct mq_cfg {
    int bm, bn, wm, wn, ks;
    bool fh; /* the f16 flavour */
    int max_stages; /* measured best (H200): deeper rings made the small tiles slower
                       (Q4_0 11008 x 4096, 16 tokens: 32 us with 10 stages, 28 with 4)
                       and the 64 x 64 tile faster (128 tokens: 92 us against 108) */
};
#define MQ_NCFG 11
#define MQ_MAX_STAGES 12
#define MQ_MAX_SPLIT 16
static const struct mq_cfg mq_cfgs[MQ_NCFG] = {
    {32, 16, 2, 1, 4, false, 4},             /* warp tile 16 x 16, 8 warps */
    {64, 32, 4, 1, 2, false, 3},             /* 16 x 32, 8 warps */
    {64, 64, 2, 2, 2, false, MQ_MAX_STAGES}, /* 32 x 32, 8 warps */
    {128, 128, 2, 4, 1, false, 2},           /* 64 x 32, 8 warps */
    {16, 16, 1, 1, 8, false, 4},             /* 16 x 16, 8 warps, one chunk each */
    {32, 32, 2, 1, 4, false, 4},             /* 16 x 32, 8 warps */
    {32, 16, 2, 1, 4, true, 4},              /* f16: 16 x 16, 8 warps */
    {64, 32, 4, 1, 2, true, 4},              /* f16: 16 x 32 */
    {32, 64, 2, 1, 4, true, 3},              /* f16: 16 x 64 */
    {64, 64, 4, 1, 2, true, 3},              /* f16: 16 x 64 */
    {128, 64, 4, 1, 2, true, 3},             /* f16: 32 x 64 */
};

/* ---- copies to shared memory (cp.async on sm_80+, plain loads elsewhere) ---- */

/* 16 bytes from src, or zeros when !valid (src is not read then). */
static __device__ __forceinline__ void cp16(void *dst, const void *src, bool valid)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 16 : 0));
#else
    *(int4 *)dst = valid ? *(const int4 *)src : make_int4(0, 0, 0, 0);
#endif
}

static __device__ __forceinline__ void cp4(void *dst, const void *src, bool valid)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 4 : 0));
#else
    *(float *)dst = valid ? *(const float *)src : 0.0f;
#endif
}

static __device__ __forceinline__ void cp_commit(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

/* Waits until at most n (0..MQ_MAX_STAGES - 2) groups of this thread's copies are in
 * flight (the instruction takes the count as an immediate). */
static __device__ __forceinline__ void cp_wait(int n)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define MQ_WAIT(i)                                                                                 \
    case i: asm volatile("cp.async.wait_group " #i ";\n" ::); break;
    switch (n) {
        MQ_WAIT(1) MQ_WAIT(2) MQ_WAIT(3) MQ_WAIT(4) MQ_WAIT(5) MQ_WAIT(6) MQ_WAIT(7) MQ_WAIT(8)
        MQ_WAIT(9) MQ_WAIT(10)
    default: asm volatile("cp.async.wait_group 0;\n" ::); break;
    }
#undef MQ_WAIT
#else
    (void)n;
#endif
}

/* ---- the int8 products ---- */

#define MQ_MAGIC 0x4B400000 /* the float 1.5 * 2^23 */

#if !(defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
/* Lane l of this thread's 32-lane group (HIP's shuffles index the whole wave). */
static __device__ __forceinline__ int mq_lane(int l)
{
    return (int)((threadIdx.x & (RF_WARP_SIZE - 1)) & ~31u) + l;
}

/* p and q (rows g and g + 8, token n, this lane's k) summed over the lane's group of 4,
 * into the outputs lane 4g + t holds (tokens 2t, 2t + 1). A macro: the int8 products
 * add ints, the f16 ones floats. */
#define MQ_GROUP_ADD(d, n, t, p, q)                                                                \
    do {                                                                                           \
        (p) += rf_shfl_xor((p), 1);                                                                \
        (p) += rf_shfl_xor((p), 2);                                                                \
        (q) += rf_shfl_xor((q), 1);                                                                \
        (q) += rf_shfl_xor((q), 2);                                                                \
        if ((n) == 2 * (t)) (d)[0] += (p), (d)[2] += (q);                                          \
        if ((n) == 2 * (t) + 1) (d)[1] += (p), (d)[3] += (q);                                      \
    } while (0)
#endif

/* ---- f16 pairs held in 32-bit words (low half first) ---- */

static __device__ __forceinline__ uint32_t h_pack(float lo, float hi)
{
    return (uint32_t)__half_as_ushort(__float2half_rn(lo)) |
           (uint32_t)__half_as_ushort(__float2half_rn(hi)) << 16;
}
static __device__ __forceinline__ uint32_t h2_splat(float v) { return h_pack(v, v); }

#if !(defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
static __device__ __forceinline__ float h_lo(uint32_t v)
{
    return __half2float(__ushort_as_half((unsigned short)(v & 0xFFFFu)));
}
static __device__ __forceinline__ float h_hi(uint32_t v)
{
    return __half2float(__ushort_as_half((unsigned short)(v >> 16)));
}

static __device__ __forceinline__ float h2_dot(uint32_t a, uint32_t b)
{
    return h_lo(a) * h_lo(b) + h_hi(a) * h_hi(b);
}
#endif

/* a - b and a * b + c, per half (rounded once on sm_53+; through f32 elsewhere). */
static __device__ __forceinline__ uint32_t h2_sub(uint32_t a, uint32_t b)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 530
    uint32_t d;
    asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
    return d;
#else
    return h_pack(h_lo(a) - h_lo(b), h_hi(a) - h_hi(b));
#endif
}

static __device__ __forceinline__ uint32_t h2_fma(uint32_t a, uint32_t b, uint32_t c)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 530
    uint32_t d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
#else
    return h_pack(fmaf(h_lo(a), h_lo(b), h_lo(c)), fmaf(h_hi(a), h_hi(b), h_hi(c)));
#endif
}

/* d[0..3] = c + A (16 x 32) . B (32 x 8) with the fragment layout of
 * mma.m16n8k32.s8: a = {row g k 4t.., row g+8 k 4t.., row g k 16+4t.., row g+8 k 16+4t..},
 * b = {token g k 4t.., token g k 16+4t..}, d = {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}
 * for lane 4g + t. */
static __device__ __forceinline__ void mma_k32(int *d, const uint32_t *a, const uint32_t *b, int c)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%10,%10,%10};\n"
        : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c));
#else
    const int lane = threadIdx.x & 31, t = lane & 3;
    d[0] = d[1] = d[2] = d[3] = c;
    for (int n = 0; n < 8; n++) {
        const int b0 = rf_shfl((int)b[0], mq_lane(4 * n + t)), b1 = rf_shfl((int)b[1], mq_lane(4 * n + t));
        int p = rf_dp4a((int)a[0], b0, rf_dp4a((int)a[2], b1, 0));
        int q = rf_dp4a((int)a[1], b0, rf_dp4a((int)a[3], b1, 0));
        MQ_GROUP_ADD(d, n, t, p, q);
    }
#endif
}

/* As mma_k32 for k = 16: a = {row g k 4t.., row g+8 k 4t..}, b = token g k 4t... */
static __device__ __forceinline__ void mma_k16(int *d, uint32_t a0, uint32_t a1, uint32_t b, int c)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%7,%7,%7,%7};\n"
        : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
        : "r"(a0), "r"(a1), "r"(b), "r"(c));
#else
    const int lane = threadIdx.x & 31, t = lane & 3;
    d[0] = d[1] = d[2] = d[3] = c;
    for (int n = 0; n < 8; n++) {
        const int bn = rf_shfl((int)b, mq_lane(4 * n + t));
        int p = rf_dp4a((int)a0, bn, 0), q = rf_dp4a((int)a1, bn, 0);
        MQ_GROUP_ADD(d, n, t, p, q);
    }
#endif
}

static __device__ __forceinline__ float unbias(int d) { return __int_as_float(d) - 12582912.0f; }

/* d[0..3] += A (16 x 16) . B (16 x 8), f16 in, f32 accumulation, the fragment layout of
 * mma.m16n8k16.f16: a = {row g k 2t.., row g+8 k 2t.., row g k 8+2t.., row g+8 k 8+2t..}
 * (two halves each), b = {token g k 2t.., token g k 8+2t..}, d as mma_k32's. */
static __device__ __forceinline__ void mma_h16(float *d, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    const int lane = threadIdx.x & 31, t = lane & 3;
#pragma unroll 1 /* rolled: the tiles unroll their 16..32 calls of this per chunk */
    for (int n = 0; n < 8; n++) {
        const uint32_t c0 = (uint32_t)rf_shfl((int)b0, mq_lane(4 * n + t));
        const uint32_t c1 = (uint32_t)rf_shfl((int)b1, mq_lane(4 * n + t));
        float p = h2_dot(a[0], c0) + h2_dot(a[2], c1), q = h2_dot(a[1], c0) + h2_dot(a[3], c1);
        MQ_GROUP_ADD(d, n, t, p, q);
    }
#endif
}

/* ---- weight fragments from the raw blocks in shared memory ---- */

/* Every block field is 2-byte aligned. */
static __device__ __forceinline__ uint32_t lds2(const uint8_t *p) { return *(const uint16_t *)p; }
static __device__ __forceinline__ uint32_t ldsw(const uint8_t *p) { return lds2(p) | (lds2(p + 2) << 16); }
static __device__ __forceinline__ float hf(uint32_t h) { return __half2float(__ushort_as_half((unsigned short)h)); }

/* Elements 4t..4t+3 (lo) and 16+4t..16+4t+3 (hi) of one 32-element chunk of a row as
 * signed bytes, and the chunk's value = a * q + b (a0, b0 for the first 16 elements,
 * a1, b1 for the last 16; equal for the types with one scale per 32). */
struct wfrag {
    uint32_t lo, hi;
    float a0, a1, b0, b1;
};

/* Chunk c (0..7) of the stage whose bytes start at base (legacy types: block c; K-quants:
 * chunk c of the one super-block). t: the lane's index in its group of 4. */
static __device__ __forceinline__ void wdecode(int tt, const uint8_t *base, int c, int t, struct wfrag *o)
{
    const int t4 = 4 * t;
    o->b0 = o->b1 = 0.0f;
    switch (tt) {
    case MQ_Q4_0: {
        const uint8_t *b = base + c * 18;
        const uint32_t v = ldsw(b + 2 + t4);
        o->lo = ((v << 4) & 0xF0F0F0F0u) ^ 0x80808080u; /* 16 (n - 8) */
        o->hi = (v & 0xF0F0F0F0u) ^ 0x80808080u;
        o->a0 = o->a1 = hf(lds2(b)) * 0.0625f;
        break;
    }
    case MQ_Q4_1: {
        const uint8_t *b = base + c * 20;
        const uint32_t v = ldsw(b + 4 + t4);
        o->lo = v & 0x0F0F0F0Fu;
        o->hi = (v >> 4) & 0x0F0F0F0Fu;
        o->a0 = o->a1 = hf(lds2(b));
        o->b0 = o->b1 = hf(lds2(b + 2));
        break;
    }
    case MQ_Q5_0: {
        const uint8_t *b = base + c * 22;
        const uint32_t qh = ldsw(b + 2), v = ldsw(b + 6 + t4);
        /* 8 (n - 16): the nibble to bits 3..6, the inverted fifth bit to bit 7 */
        o->lo = ((v << 3) & 0x78787878u) | ((spread4(qh >> t4) << 7) ^ 0x80808080u);
        o->hi = ((v >> 1) & 0x78787878u) | ((spread4(qh >> (16 + t4)) << 7) ^ 0x80808080u);
        o->a0 = o->a1 = hf(lds2(b)) * 0.125f;
        break;
    }
    case MQ_Q5_1: {
        const uint8_t *b = base + c * 24;
        const uint32_t qh = ldsw(b + 4), v = ldsw(b + 8 + t4);
        o->lo = (v & 0x0F0F0F0Fu) | (spread4(qh >> t4) << 4);
        o->hi = ((v >> 4) & 0x0F0F0F0Fu) | (spread4(qh >> (16 + t4)) << 4);
        o->a0 = o->a1 = hf(lds2(b));
        o->b0 = o->b1 = hf(lds2(b + 2));
        break;
    }
    case MQ_Q8_0: {
        const uint8_t *b = base + c * 34;
        o->lo = ldsw(b + 2 + t4);
        o->hi = ldsw(b + 18 + t4);
        o->a0 = o->a1 = hf(lds2(b));
        break;
    }
    case MQ_Q2_K: {
        const int h = c >> 2, s = c & 3;
        const uint8_t *q = base + 16 + h * 32;
        o->lo = (ldsw(q + t4) >> (2 * s)) & 0x03030303u;
        o->hi = (ldsw(q + 16 + t4) >> (2 * s)) & 0x03030303u;
        const float d = hf(lds2(base + 80)), dmin = hf(lds2(base + 82));
        const int s0 = base[2 * c], s1 = base[2 * c + 1];
        o->a0 = d * (float)(s0 & 15);
        o->b0 = -dmin * (float)(s0 >> 4);
        o->a1 = d * (float)(s1 & 15);
        o->b1 = -dmin * (float)(s1 >> 4);
        break;
    }
    case MQ_Q3_K: {
        const int h = c >> 2, s = c & 3;
        const uint8_t *q = base + 32 + h * 32;
        /* 32 (q - 4): the two low bits to bits 5..6, the inverted high bit to bit 7 */
        const uint32_t l0 = (ldsw(q + t4) >> (2 * s)) & 0x03030303u, l1 = (ldsw(q + 16 + t4) >> (2 * s)) & 0x03030303u;
        const uint32_t m0 = (ldsw(base + t4) >> c) & 0x01010101u, m1 = (ldsw(base + 16 + t4) >> c) & 0x01010101u;
        o->lo = ((l0 << 5) | (m0 << 7)) ^ 0x80808080u;
        o->hi = ((l1 << 5) | (m1 << 7)) ^ 0x80808080u;
        const float d = hf(lds2(base + 108)) * 0.03125f;
        o->a0 = d * (float)k3_scale(base + 96, 2 * c);
        o->a1 = d * (float)k3_scale(base + 96, 2 * c + 1);
        break;
    }
    case MQ_Q4_K:
    case MQ_Q5_K: {
        const int sh = 4 * (c & 1);
        const uint8_t *q = base + (tt == MQ_Q4_K ? 16 : 48) + (c >> 1) * 32;
        o->lo = (ldsw(q + t4) >> sh) & 0x0F0F0F0Fu;
        o->hi = (ldsw(q + 16 + t4) >> sh) & 0x0F0F0F0Fu;
        if (tt == MQ_Q5_K) {
            o->lo |= ((ldsw(base + 16 + t4) >> c) & 0x01010101u) << 4;
            o->hi |= ((ldsw(base + 32 + t4) >> c) & 0x01010101u) << 4;
        }
        int sc, mn;
        k4_scale_min(base + 4, c, &sc, &mn);
        o->a0 = o->a1 = hf(lds2(base)) * (float)sc;
        o->b0 = o->b1 = -hf(lds2(base + 2)) * (float)mn;
        break;
    }
    default: { /* MQ_Q6_K: 4 (q - 32) */
        const int h = c >> 2, s = c & 3;
        const uint8_t *ql = base + h * 64 + 32 * (s & 1), *qh = base + 128 + h * 32;
        const int sl = 4 * (s >> 1), sh = 2 * s;
        const uint32_t l0 = (ldsw(ql + t4) >> sl) & 0x0F0F0F0Fu, l1 = (ldsw(ql + 16 + t4) >> sl) & 0x0F0F0F0Fu;
        const uint32_t h0 = (ldsw(qh + t4) >> sh) & 0x03030303u, h1 = (ldsw(qh + 16 + t4) >> sh) & 0x03030303u;
        o->lo = ((l0 << 2) | (h0 << 6)) ^ 0x80808080u;
        o->hi = ((l1 << 2) | (h1 << 6)) ^ 0x80808080u;
        const float d = hf(lds2(base + 208)) * 0.25f;
        o->a0 = d * (float)(int8_t)base[192 + 2 * c];
        o->a1 = d * (float)(int8_t)base[192 + 2 * c + 1];
        break;
    }
    }
}

/* ---- the kernel ---- */

/* Where stage ks of weight row `row` starts in global memory. */
static __device__ __forceinline__ const uint8_t *w_start(int tt, const uint8_t *w, int64_t row,
                                                         size_t row_bytes, int ks)
{
    return w + row * row_bytes + (size_t)ks * mq_bps(tt) * mq_bytes(tt);
}

/* Issues the copies of stage ks into st. A last stage of fewer blocks (legacy types,
 * k not a multiple of 256) is padded with zero weights, activations and scales, so
 * every stage is 8 whole chunks. fh: x holds f16 activations (xd is not read). */
static __device__ __forceinline__ void mq_load(int tt, int BM, int BN, bool fh, int nth,
                                               uint8_t *st, const uint8_t *w, int64_t rows,
                                               size_t row_bytes, int64_t nblk, const void *x,
                                               const float *xd, int64_t n_tok, int64_t k,
                                               int64_t m0, int64_t n0, int ks)
{
    const int bps = mq_bps(tt), bsz = mq_bytes(tt), qk = mq_qk(tt), vmax = mq_vmax(tt);
    const int slot = mq_slot(tt);
    const int64_t b0 = (int64_t)ks * bps;
    const int nb = nblk - b0 < bps ? (int)(nblk - b0) : bps;
    for (int i = threadIdx.x; i < BM * vmax; i += nth) {
        const int r = i / vmax, v = i % vmax;
        const int64_t row = m0 + r < rows ? m0 + r : rows - 1;
        const uint8_t *s = w_start(tt, w, row, row_bytes, ks);
        const int off = (int)((uintptr_t)s & 15);
        const uint8_t *a = (const uint8_t *)((uintptr_t)s & ~(uintptr_t)15);
        const bool in = v < (off + nb * bsz + 15) / 16;
        cp16(st + r * slot + 16 * v, in ? a + 16 * v : a, in);
    }
    uint8_t *sx = st + BM * slot;
    const int64_t e0 = b0 * qk;
    if (fh) {
        const int nv = nb * qk / 8; /* 16-byte pieces (8 halves) of each token's stage */
        for (int i = threadIdx.x; i < BN * 32; i += nth) {
            const int t = i >> 5, v = i & 31;
            const int64_t tok = n0 + t < n_tok ? n0 + t : n_tok - 1;
            const uint16_t *src = (const uint16_t *)x + tok * k + e0;
            cp16(sx + t * MQ_HSTR + 16 * v, v < nv ? src + 8 * v : src, v < nv);
        }
        return;
    }
    const int nv = nb * qk / 16; /* 16-byte pieces of each token's stage */
    for (int i = threadIdx.x; i < BN * 16; i += nth) {
        const int t = i >> 4, v = i & 15;
        const int64_t tok = n0 + t < n_tok ? n0 + t : n_tok - 1;
        const int8_t *src = (const int8_t *)x + tok * k + e0;
        cp16(sx + t * MQ_XSTR + 16 * v, v < nv ? src + 16 * v : src, v < nv);
    }
    float *ss = (float *)(sx + BN * MQ_XSTR);
    const int nc = nb * qk / 32;
    for (int i = threadIdx.x; i < BN * 8; i += nth) {
        const int t = i % BN, c = i / BN;
        const int64_t tok = n0 + t < n_tok ? n0 + t : n_tok - 1;
        const float *src = xd + tok * (k / 32) + e0 / 32;
        cp4(ss + c * BN + t, c < nc ? src + c : src, c < nc);
    }
}

/* Activation sums of stage st times their scales: per 32 (or per 16 where the weights'
 * scales are) into sums[j * BN + token]. */
static __device__ __forceinline__ void mq_sums(int tt, int BM, int BN, int nth, const uint8_t *st,
                                               float *sums)
{
    const uint8_t *sx = st + BM * mq_slot(tt);
    const float *ss = (const float *)(sx + BN * MQ_XSTR);
    const int per = mq_half(tt) ? 2 : 1, n = 8 * per;
    for (int i = threadIdx.x; i < BN * n; i += nth) {
        const int t = i % BN, j = i / BN;
        const int4 *p = (const int4 *)(sx + t * MQ_XSTR + j * (32 / per));
        int s = 0;
        for (int v = 0; v < 2 / per; v++) {
            const int4 q = p[v];
            s = rf_dp4a(q.x, 0x01010101, s);
            s = rf_dp4a(q.y, 0x01010101, s);
            s = rf_dp4a(q.z, 0x01010101, s);
            s = rf_dp4a(q.w, 0x01010101, s);
        }
        sums[j * BN + t] = ss[(j / per) * BN + t] * (float)s;
    }
}

#define MQ_MT_MAX 4
#define MQ_NT_MAX 8

/* Chunk c of the two rows (g, g + 8) of an m-tile whose stage bytes start at wr[0],
 * wr[1]; nc: the chunks of the row in this stage. */
static __device__ __forceinline__ void mq_wpair(int tt, const uint8_t *const *wr, int c, int nc,
                                                int t, struct wfrag *f0, struct wfrag *f1)
{
    wdecode(tt, wr[0], c, t, f0);
    wdecode(tt, wr[1], c, t, f1);
    if (c >= nc) { /* past the row's last block: its activations are zeros, and so are
                      the scales (the bytes there are the next row's) */
        f0->a0 = f0->a1 = f0->b0 = f0->b1 = 0.0f;
        f1->a0 = f1->a1 = f1->b0 = f1->b1 = 0.0f;
    }
}

/* One chunk (32 elements) of the stage for this warp's MT x NT fragments. */
static __device__ __forceinline__ void mq_chunk(int tt, int BN, int MT, int NT, int c, int nc, int t,
                                                const uint8_t *const (*wr)[2], const uint8_t *xr,
                                                const float *ss, const float *sums, int tok0,
                                                float (*acc)[MQ_NT_MAX][4])
{
    const bool half = mq_half(tt), mins = mq_min(tt);
    const int g = (threadIdx.x & 31) >> 2;
    uint32_t b[MQ_NT_MAX][2];
    float2 dx[MQ_NT_MAX], sm[MQ_NT_MAX][2];
#pragma unroll
    for (int j = 0; j < MQ_NT_MAX; j++) {
        if (j >= NT) continue;
        const uint8_t *x = xr + (j * 8 + g) * MQ_XSTR + 32 * c;
        b[j][0] = *(const uint32_t *)(x + 4 * t);
        b[j][1] = *(const uint32_t *)(x + 16 + 4 * t);
        const int tk = tok0 + j * 8 + 2 * t;
        dx[j] = *(const float2 *)(ss + c * BN + tk);
        if (mins) {
            if (half) {
                sm[j][0] = *(const float2 *)(sums + (2 * c) * BN + tk);
                sm[j][1] = *(const float2 *)(sums + (2 * c + 1) * BN + tk);
            } else {
                sm[j][0] = sm[j][1] = *(const float2 *)(sums + c * BN + tk);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < MQ_MT_MAX; i++) {
        if (i >= MT) continue;
        struct wfrag f0, f1; /* rows g, g + 8 */
        mq_wpair(tt, wr[i], c, nc, t, &f0, &f1);
#pragma unroll
        for (int j = 0; j < MQ_NT_MAX; j++) {
            if (j >= NT) continue;
            float *a = acc[i][j];
            if (!half) {
                const uint32_t af[4] = {f0.lo, f1.lo, f0.hi, f1.hi};
                int d[4];
                mma_k32(d, af, b[j], MQ_MAGIC);
                a[0] += f0.a0 * (dx[j].x * unbias(d[0]));
                a[1] += f0.a0 * (dx[j].y * unbias(d[1]));
                a[2] += f1.a0 * (dx[j].x * unbias(d[2]));
                a[3] += f1.a0 * (dx[j].y * unbias(d[3]));
                if (mins) {
                    a[0] += f0.b0 * sm[j][0].x;
                    a[1] += f0.b0 * sm[j][0].y;
                    a[2] += f1.b0 * sm[j][0].x;
                    a[3] += f1.b0 * sm[j][0].y;
                }
            } else {
                int d0[4], d1[4];
                mma_k16(d0, f0.lo, f1.lo, b[j][0], MQ_MAGIC);
                mma_k16(d1, f0.hi, f1.hi, b[j][1], MQ_MAGIC);
                a[0] += f0.a0 * (dx[j].x * unbias(d0[0]));
                a[1] += f0.a0 * (dx[j].y * unbias(d0[1]));
                a[2] += f1.a0 * (dx[j].x * unbias(d0[2]));
                a[3] += f1.a0 * (dx[j].y * unbias(d0[3]));
                a[0] += f0.a1 * (dx[j].x * unbias(d1[0]));
                a[1] += f0.a1 * (dx[j].y * unbias(d1[1]));
                a[2] += f1.a1 * (dx[j].x * unbias(d1[2]));
                a[3] += f1.a1 * (dx[j].y * unbias(d1[3]));
                if (mins) {
                    a[0] += f0.b0 * sm[j][0].x + f0.b1 * sm[j][1].x;
                    a[1] += f0.b0 * sm[j][0].y + f0.b1 * sm[j][1].y;
                    a[2] += f1.b0 * sm[j][0].x + f1.b1 * sm[j][1].x;
                    a[3] += f1.b0 * sm[j][0].y + f1.b1 * sm[j][1].y;
                }
            }
        }
    }
}

/* The f16 flavour. s: the power of two wdecode's bytes carry (q' = q * 2^s). */
static __device__ __forceinline__ int mq_shift(int tt)
{
    return tt == MQ_Q4_0 ? 4 : tt == MQ_Q5_0 ? 3 : tt == MQ_Q3_K ? 5 : tt == MQ_Q6_K ? 2 : 0;
}

/* Four of wdecode's bytes as the f16 pairs a q + b of bytes (0, 1) and (2, 3); a2, b2: a
 * and b in both halves. */
static __device__ __forceinline__ void mq_halves(uint32_t q, int s, uint32_t a2, uint32_t b2,
                                                 uint32_t *p01, uint32_t *p23)
{
    const uint32_t u = q ^ 0x80808080u, e = (uint32_t)(0x64 - 4 * s) * 0x01010101u;
    const uint32_t z = __byte_perm(0x80u, e, 0x4040); /* the half of u = 0x80: q = 0 */
    *p01 = h2_fma(h2_sub(__byte_perm(u, e, 0x4140), z), a2, b2);
    *p23 = h2_fma(h2_sub(__byte_perm(u, e, 0x4342), z), a2, b2);
}

/* One chunk (32 elements) of the stage for this warp's MT x NT fragments, f16. */
static __device__ __forceinline__ void mq_chunk_h(int tt, int MT, int NT, int c, int nc, int t,
                                                  const uint8_t *const (*wr)[2], const uint8_t *xr,
                                                  float (*acc)[MQ_NT_MAX][4])
{
    const int g = (threadIdx.x & 31) >> 2, s = mq_shift(tt);
    const float up = (float)(1 << s);
    uint2 b[MQ_NT_MAX][2]; /* the two k16 steps */
#pragma unroll
    for (int j = 0; j < MQ_NT_MAX; j++) {
        if (j >= NT) continue;
        const uint8_t *x = xr + (j * 8 + g) * MQ_HSTR + 64 * c + 8 * t;
        b[j][0] = *(const uint2 *)x;
        b[j][1] = *(const uint2 *)(x + 32);
    }
#pragma unroll
    for (int i = 0; i < MQ_MT_MAX; i++) {
        if (i >= MT) continue;
        struct wfrag f0, f1; /* rows g, g + 8 */
        mq_wpair(tt, wr[i], c, nc, t, &f0, &f1);
        uint32_t lo[4], hi[4];
        mq_halves(f0.lo, s, h2_splat(f0.a0 * up), h2_splat(f0.b0), &lo[0], &lo[2]);
        mq_halves(f1.lo, s, h2_splat(f1.a0 * up), h2_splat(f1.b0), &lo[1], &lo[3]);
        mq_halves(f0.hi, s, h2_splat(f0.a1 * up), h2_splat(f0.b1), &hi[0], &hi[2]);
        mq_halves(f1.hi, s, h2_splat(f1.a1 * up), h2_splat(f1.b1), &hi[1], &hi[3]);
#pragma unroll
        for (int j = 0; j < MQ_NT_MAX; j++) {
            if (j >= NT) continue;
            mma_h16(acc[i][j], lo, b[j][0].x, b[j][0].y);
            mma_h16(acc[i][j], hi, b[j][1].x, b[j][1].y);
        }
    }
}

/* The warp's sums to out (ld floats a token; the first nr rows and nt tokens of the
 * tile), adding to what is there when add. */
static __device__ __forceinline__ void mq_store(int BM, int BN, int WM, int WN, int MT, int NT,
                                                bool lead, float (*acc)[MQ_NT_MAX][4], float *out,
                                                int64_t nr, int64_t nt, int64_t ld, int add)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int wm = warp % WM, wn = (warp / WM) % WN;
#pragma unroll
    for (int i = 0; i < MQ_MT_MAX; i++) {
        if (i >= MT || !lead) continue;
#pragma unroll
        for (int j = 0; j < MQ_NT_MAX; j++) {
            if (j >= NT) continue;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = wm * (BM / WM) + i * 16 + g + 8 * (e >> 1);
                const int tk = wn * (BN / WN) + j * 8 + 2 * t + (e & 1);
                if (r < nr && tk < nt) {
                    float *o = out + tk * ld + r;
                    *o = add ? *o + acc[i][j][e] : acc[i][j][e];
                }
            }
        }
    }
}

/* The end of a split product, once every block of this one has stored its partial
 * tile (per_tile floats, token-major with bm a token) at part + z * per_tile: the last
 * of the nsplit blocks of the tile to arrive adds them into y in split order (the same
 * sums whatever the order of arrival), and clears the tile's counter for the next
 * launch. Out of line: the products' registers stay as they are without splits. */
static __device__ __noinline__ void mq_finish(const float *part, int nsplit, int per_tile, int bm,
                                              unsigned *cnt, int *last, float *y, int64_t rows,
                                              int64_t n_tok, int64_t m0, int64_t n0, int add)
{
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) *last = atomicAdd(cnt, 1u) == (unsigned)(nsplit - 1);
    __syncthreads();
    if (!*last) return;
    __threadfence();
    for (int idx = threadIdx.x; idx < per_tile; idx += blockDim.x) {
        const int64_t r = m0 + idx % bm, tk = n0 + idx / bm;
        if (r >= rows || tk >= n_tok) continue;
        const volatile float *p = part + idx;
        float s = p[0];
        for (int z = 1; z < nsplit; z++) s += p[(size_t)z * per_tile];
        float *o = y + tk * rows + r;
        *o = add ? *o + s : s;
    }
    if (threadIdx.x == 0) *cnt = 0;
}

/* WM x WN warps tile BM x BN; KS such groups split each stage's 8 chunks (warp group
 * kw takes chunks kw * 8/KS ..), their sums added in a fixed order at the end. */
static __device__ __forceinline__ void mq_body(int tt, int BM, int BN, int WM, int WN, int KS,
                                               bool fh, int nstage, const uint8_t *__restrict__ w,
                                               int64_t rows, int64_t k, size_t row_bytes,
                                               const void *__restrict__ x,
                                               const float *__restrict__ xd, int64_t n_tok,
                                               float *__restrict__ y, int add, float *ws,
                                               unsigned *cnt)
{
    extern __shared__ __align__(16) uint8_t mq_dyn[];
    uint8_t *const smem = mq_dyn;
    rf_pdl_launch_next();
    rf_pdl_wait();
    const int nth = WM * WN * KS * 32, MT = BM / WM / 16, NT = BN / WN / 8, CPW = 8 / KS;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int wm = warp % WM, wn = (warp / WM) % WN, kw = warp / (WM * WN);
    const int64_t n0 = (int64_t)blockIdx.x * BN, m0 = (int64_t)blockIdx.y * BM;
    const int bps = mq_bps(tt), qk = mq_qk(tt), slot = mq_slot(tt);
    const int64_t nblk = k / qk;
    const int nst_all = (int)((nblk + bps - 1) / bps), nsplit = (int)gridDim.z;
    /* this block's stages: split blockIdx.z of nsplit */
    const int s0 = (int)((int64_t)nst_all * blockIdx.z / nsplit);
    const int nst = (int)((int64_t)nst_all * (blockIdx.z + 1) / nsplit);
    const int stage_bytes = mq_stage_bytes(tt, BM, BN, fh);
    float *sums = (float *)(smem + nstage * stage_bytes);
    int *last = (int *)sums; /* at the end: whether this block finishes its tile */

    float acc[MQ_MT_MAX][MQ_NT_MAX][4];
#pragma unroll
    for (int i = 0; i < MQ_MT_MAX; i++)
#pragma unroll
        for (int j = 0; j < MQ_NT_MAX; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    for (int s = 0; s < nstage - 1; s++) {
        if (s0 + s < nst)
            mq_load(tt, BM, BN, fh, nth, smem + s * stage_bytes, w, rows, row_bytes, nblk, x,
                    xd, n_tok, k, m0, n0, s0 + s);
        cp_commit();
    }
    int cur = 0, nxt = nstage - 1; /* ring slots of stages ks and ks + nstage - 1 */
    for (int ks = s0; ks < nst; ks++) {
        cp_wait(nstage - 2);
        __syncthreads(); /* stage ks is in; every thread is done with stage ks - 1 */
        {
            const int nx = ks + nstage - 1;
            if (nx < nst)
                mq_load(tt, BM, BN, fh, nth, smem + nxt * stage_bytes, w, rows, row_bytes, nblk,
                        x, xd, n_tok, k, m0, n0, nx);
            cp_commit();
        }
        const uint8_t *st = smem + cur * stage_bytes;
        cur = cur + 1 == nstage ? 0 : cur + 1;
        nxt = nxt + 1 == nstage ? 0 : nxt + 1;
        if (!fh && mq_min(tt)) {
            mq_sums(tt, BM, BN, nth, st, sums);
            __syncthreads();
        }
        /* where this warp's rows g and g + 8 of each m-tile start in the stage */
        const uint8_t *wr[MQ_MT_MAX][2];
#pragma unroll
        for (int i = 0; i < MQ_MT_MAX; i++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                if (i >= MT) continue;
                const int r = wm * (BM / WM) + i * 16 + g + 8 * h;
                const int64_t row = m0 + r < rows ? m0 + r : rows - 1;
                const int off = (int)((uintptr_t)w_start(tt, w, row, row_bytes, ks) & 15);
                wr[i][h] = st + r * slot + off;
            }
        const uint8_t *sx = st + BM * slot;
        const float *ss = (const float *)(sx + BN * MQ_XSTR);
        const int tok0 = wn * (BN / WN), xstr = fh ? MQ_HSTR : MQ_XSTR;
        const int64_t left = (nblk - (int64_t)ks * bps) * qk / 32;
        const int nc = left < 8 ? (int)left : 8; /* chunks of the row in this stage */
#pragma unroll
        for (int cc = 0; cc < 8; cc++) {
            if (cc >= CPW) continue;
            if (fh)
                mq_chunk_h(tt, MT, NT, kw * CPW + cc, nc, t, wr, sx + tok0 * xstr, acc);
            else
                mq_chunk(tt, BN, MT, NT, kw * CPW + cc, nc, t, wr, sx + tok0 * xstr, ss, sums,
                         tok0, acc);
        }
    }
    cp_wait(0);
    const bool lead = kw == 0; /* the warps that hold the block's sums at the end */
    if (KS > 1) { /* the other groups' sums, in order, through the stage memory */
        float *red = (float *)smem;
        const int per_warp = MT * NT * 4 * 32, wt = wm + WM * wn;
        __syncthreads();
        if (kw > 0) {
            float *o = red + ((kw - 1) * WM * WN + wt) * per_warp + lane;
#pragma unroll
            for (int i = 0; i < MQ_MT_MAX; i++)
#pragma unroll
                for (int j = 0; j < MQ_NT_MAX; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (i < MT && j < NT) o[((i * NT + j) * 4 + e) * 32] = acc[i][j][e];
        }
        __syncthreads();
        for (int q = 1; q < KS && lead; q++) {
            const float *o = red + ((q - 1) * WM * WN + wt) * per_warp + lane;
#pragma unroll
            for (int i = 0; i < MQ_MT_MAX; i++)
#pragma unroll
                for (int j = 0; j < MQ_NT_MAX; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (i < MT && j < NT) acc[i][j][e] += o[((i * NT + j) * 4 + e) * 32];
        }
    }
    if (nsplit > 1) { /* this block's partial tile (token-major, BM a token) to the scratch */
        const size_t tile = (size_t)blockIdx.y * gridDim.x + blockIdx.x;
        float *const part = ws + tile * nsplit * (size_t)(BM * BN);
        mq_store(BM, BN, WM, WN, MT, NT, lead, acc, part + (size_t)blockIdx.z * (BM * BN), BM,
                 BN, BM, 0);
        mq_finish(part, nsplit, BM * BN, BM, cnt + tile, last, y, rows, n_tok, m0, n0, add);
        return;
    }
    mq_store(BM, BN, WM, WN, MT, NT, lead, acc, y + n0 * rows + m0, rows - m0, n_tok - n0, rows,
             add);
}

#define MQ_ARGS                                                                                    \
    const uint8_t *__restrict__ w, int64_t rows, int64_t k, size_t row_bytes,                      \
        const void *__restrict__ x, const float *__restrict__ xd, int64_t n_tok,                   \
        float *__restrict__ y, int add, int nstage, float *ws, unsigned *cnt
#define MQ_KERNEL(name, tt, ci, BM, BN, WM, WN, KS, FH)                                            \
    __global__ void __launch_bounds__(WM * WN * KS * 32) k_mmq_##name##_##ci(MQ_ARGS)             \
    {                                                                                              \
        mq_body(tt, BM, BN, WM, WN, KS, FH, nstage, w, rows, k, row_bytes, x, xd, n_tok, y, add,  \
                ws, cnt);                                                                          \
    }
/* The same numbers as mq_cfgs. */
#define MQ_KERNELS(name, tt)                                                                       \
    MQ_KERNEL(name, tt, 0, 32, 16, 2, 1, 4, false)                                                 \
    MQ_KERNEL(name, tt, 1, 64, 32, 4, 1, 2, false)                                                 \
    MQ_KERNEL(name, tt, 2, 64, 64, 2, 2, 2, false)                                                 \
    MQ_KERNEL(name, tt, 3, 128, 128, 2, 4, 1, false)                                               \
    MQ_KERNEL(name, tt, 4, 16, 16, 1, 1, 8, false)                                                 \
    MQ_KERNEL(name, tt, 5, 32, 32, 2, 1, 4, false)                                                 \
    MQ_KERNEL(name, tt, 6, 32, 16, 2, 1, 4, true)                                                  \
    MQ_KERNEL(name, tt, 7, 64, 32, 4, 1, 2, true)                                                  \
    MQ_KERNEL(name, tt, 8, 32, 64, 2, 1, 4, true)                                                  \
    MQ_KERNEL(name, tt, 9, 64, 64, 4, 1, 2, true)                                                  \
    MQ_KERNEL(name, tt, 10, 128, 64, 4, 1, 2, true)

MQ_KERNELS(q4_0, MQ_Q4_0)
MQ_KERNELS(q4_1, MQ_Q4_1)
MQ_KERNELS(q5_0, MQ_Q5_0)
MQ_KERNELS(q5_1, MQ_Q5_1)
MQ_KERNELS(q8_0, MQ_Q8_0)
MQ_KERNELS(q2_K, MQ_Q2_K)
MQ_KERNELS(q3_K, MQ_Q3_K)
MQ_KERNELS(q4_K, MQ_Q4_K)
MQ_KERNELS(q5_K, MQ_Q5_K)
MQ_KERNELS(q6_K, MQ_Q6_K)

typedef void (*mq_fn)(MQ_ARGS);
#define MQ_ROW(name)                                                                               \
    {k_mmq_##name##_0, k_mmq_##name##_1, k_mmq_##name##_2, k_mmq_##name##_3, k_mmq_##name##_4,     \
     k_mmq_##name##_5, k_mmq_##name##_6, k_mmq_##name##_7, k_mmq_##name##_8, k_mmq_##name##_9,     \
     k_mmq_##name##_10}
static const mq_fn mq_table[MQ_COUNT][MQ_NCFG] = {
    MQ_ROW(q4_0), MQ_ROW(q4_1), MQ_ROW(q5_0), MQ_ROW(q5_1), MQ_ROW(q8_0),
    MQ_ROW(q2_K), MQ_ROW(q3_K), MQ_ROW(q4_K), MQ_ROW(q5_K), MQ_ROW(q6_K)};

/* ---- host side ---- */

/* Benchmarks and tests: -1 lets rf_gpu_mmq choose the tile, 0..MQ_NCFG-1 forces one. */
static int mq_forced = -1;

extern "C" int rf_gpu_mmq_force_tile(int cfg)
{
    mq_forced = cfg >= 0 && cfg < MQ_NCFG ? cfg : -1;
    return MQ_NCFG;
}

/* The device's multiprocessors and shared memory (per multiprocessor, and the most one
 * block may take). */
static struct {
    int n_sm, smem_sm, smem_block;
    int tile, max_stages; /* measurements: RF_GPU_MMQ_TILE (one tile for every shape; -1:
                             chosen per shape), RF_GPU_MMQ_STAGES (a cap; 0: none) */
    int f16;              /* RF_GPU_MMQ_F16: one flavour for every shape (0 int8, 1 f16;
                             -1: chosen per shape) */
    int split;            /* RF_GPU_MMQ_SPLIT: splits of k per tile (0: chosen per shape) */
} mq_dev;

static int env_int(const char *name, int lo, int hi, int fallback)
{
    const char *e = getenv(name);
    const int v = e && *e ? atoi(e) : fallback;
    return v >= lo && v <= hi ? v : fallback;
}

static void mq_device(void)
{
    if (mq_dev.n_sm) return;
    mq_dev.tile = env_int("RF_GPU_MMQ_TILE", 0, MQ_NCFG - 1, -1);
    mq_dev.max_stages = env_int("RF_GPU_MMQ_STAGES", 2, MQ_MAX_STAGES, 0);
    mq_dev.f16 = env_int("RF_GPU_MMQ_F16", -1, 1, -1);
    mq_dev.split = env_int("RF_GPU_MMQ_SPLIT", 0, MQ_MAX_SPLIT, 0);
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) dev = 0;
    const int n_sm =
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && n > 0 ? n : 108;
#if defined(RF_HIP)
    mq_dev.smem_sm = mq_dev.smem_block = 64 << 10;
#else
    mq_dev.smem_sm = cudaDeviceGetAttribute(&n, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) ==
                                 cudaSuccess && n > 0 ? n : 100 << 10;
    mq_dev.smem_block = cudaDeviceGetAttribute(&n, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) ==
                                    cudaSuccess && n > 0 ? n : 48 << 10;
#endif
    (void)cudaGetLastError();
    mq_dev.n_sm = n_sm;
}

static int64_t mq_blocks(int cfg, int64_t rows, int64_t n_tok)
{
    const struct mq_cfg *c = &mq_cfgs[cfg];
    return ((rows + c->bm - 1) / c->bm) * ((n_tok + c->bn - 1) / c->bn);
}

/* Blocks of a kernel one multiprocessor runs at once by its registers and threads (0:
 * not asked yet), and whether its shared-memory limit was raised. */
static int mq_occ[MQ_COUNT][MQ_NCFG];
static bool mq_raised[MQ_COUNT][MQ_NCFG];

static int mq_occupancy(int tt, int ci)
{
    if (!mq_occ[tt][ci]) {
        const struct mq_cfg *c = &mq_cfgs[ci];
        int n = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, (const void *)mq_table[tt][ci],
                                                          c->wm * c->wn * c->ks * 32, 0) != cudaSuccess ||
            n < 1) {
            (void)cudaGetLastError();
            n = 1;
        }
        mq_occ[tt][ci] = n;
    }
    return mq_occ[tt][ci];
}

/* Stages in the ring of a launch of `blocks` blocks: as deep as the tile's measured best
 * and the shared memory of the blocks that share a multiprocessor allow (no deeper than
 * the row's stages + 1). */
static int mq_stages(int tt, int ci, int64_t blocks, int64_t n_stage)
{
    const struct mq_cfg *c = &mq_cfgs[ci];
    int64_t per_sm = (blocks + mq_dev.n_sm - 1) / mq_dev.n_sm;
    if (per_sm > mq_occupancy(tt, ci)) per_sm = mq_occupancy(tt, ci);
    if (per_sm < 1) per_sm = 1;
    int64_t budget = mq_dev.smem_sm / per_sm - 1024; /* the runtime keeps 1 KB per block */
    if (budget > mq_dev.smem_block) budget = mq_dev.smem_block;
    int64_t n = (budget - mq_smem(tt, c->bm, c->bn, c->fh, 0)) /
                mq_stage_bytes(tt, c->bm, c->bn, c->fh);
    if (n > c->max_stages) n = c->max_stages;
    if (mq_dev.max_stages && n > mq_dev.max_stages) n = mq_dev.max_stages;
    if (n > n_stage + 1) n = n_stage + 1;
    return n < 2 ? 2 : (int)n;
}

/* Splits of k per tile, up to 32 tokens: where the tiles alone leave multiprocessor
 * slots (blocks the registers and threads allow) empty, the most (a power of two) that
 * still fit them in one wave, each split keeping at least two stages, their partial
 * tiles within the scratch. H100, Llama-2-7B Q4_0, `bench -b` S_TG unsplit / split: 8
 * streams 1039 / 1121 t/s, 32 streams 3493 / 3613; but 64 streams 4574 / 4399, so
 * larger batches stay unsplit. */
#define MQ_SPLIT_MAX_TOK 32
static int mq_forced_split = 0;

extern "C" void rf_gpu_mmq_force_split(int n)
{
    mq_forced_split = n > 0 && n <= MQ_MAX_SPLIT ? n : 0;
}

static int mq_split(int tt, int ci, int64_t tiles, int64_t n_tok, int64_t n_stage,
                    const struct rf_gpu_mmq_scratch *sc)
{
    const struct mq_cfg *c = &mq_cfgs[ci];
    if (!sc || !sc->ws || !sc->cnt || tiles > sc->n_cnt) return 1;
    const int64_t slots = (int64_t)mq_dev.n_sm * mq_occupancy(tt, ci);
    int n = mq_forced_split ? mq_forced_split : mq_dev.split;
    if (!n && n_tok > MQ_SPLIT_MAX_TOK) n = 1;
    if (!n)
        for (n = 1; n < MQ_MAX_SPLIT && tiles * n * 2 <= slots;) n *= 2;
    const size_t per = (size_t)c->bm * (size_t)c->bn * sizeof(float) * (size_t)tiles;
    while (n > 1 && (n_stage < 2 * n || per * (size_t)n > sc->ws_bytes)) n--;
    return n;
}

/* The int8 tile for a shape, from the times of every tile on an H200 (Q4_0, Q8_0, Q4_K,
 * Q6_K; 11008 x 4096 and 4096 x 11008): the 16-token tile up to 16 tokens; 32 tokens in
 * one tile where that still gives every multiprocessor a block (else the 32 x 32 tile);
 * the 64 x 32 tile up to 64, the 64 x 64 tile up to 256, above that 128 x 128. */
static int mq_pick_int8(int64_t rows, int64_t n_tok)
{
    if (n_tok <= 16) return 0;
    if (n_tok <= 32) return mq_blocks(1, rows, n_tok) >= mq_dev.n_sm ? 1 : 5;
    if (n_tok <= 64) return 1;
    if (n_tok <= 256) return 2;
    return 3;
}

/* The f16 tile of the same token counts (for measurements: RF_GPU_MMQ_F16=1). */
static int mq_pick_f16(int64_t n_tok)
{
    return n_tok <= 16 ? 6 : n_tok <= 32 ? 7 : 10;
}

/* Both flavours by shape, from ncu times on an H200 (Q4_0, 64 tokens, 4096 x 4096 /
 * 11008 x 4096, k in two or four): the int8 64 x 32 tile 32 / 74 us, the f16 128 x 64
 * tile 33 / 60 us; the f16 tile also at 128 tokens (11008 x 4096: 99 against 103 us;
 * 4096 x 11008: 75 against 89). Up to 32 tokens the two are within a few percent and
 * int8 (the CPU path's rounding) stays. */
static int mq_pick(int64_t rows, int64_t n_tok)
{
    if (mq_forced >= 0) return mq_forced;
    if (mq_dev.tile >= 0) return mq_dev.tile;
    if (mq_dev.f16 >= 0) return mq_dev.f16 ? mq_pick_f16(n_tok) : mq_pick_int8(rows, n_tok);
    if (n_tok <= 32 || n_tok > 128) return mq_pick_int8(rows, n_tok);
    return n_tok > 64 || rows >= 8192 ? 10 : 1;
}

extern "C" bool rf_gpu_mmq_supports(enum rf_type t) { return mq_code(t) >= 0; }

/* Where the int8 tiles were measured faster (H200, host-timed products of 11008 x 4096 and
 * 4096 x 11008, activation quantizer included): from 9 tokens on against two
 * matrix-vector passes (Q4_0, 16 tokens: 28 against 94 us), and against dequantize +
 * cuBLAS up to 128 tokens for Q4_0, Q8_0 and Q6_K (Q4_0 at 128: 92 against 116 us) but
 * only to about 96 for Q4_K (64: 86 against 136 us; 128: 156 against 141). From 256 on
 * cuBLAS's f16 tensor cores are faster (Q4_0 at 512: 273 against 153 us). The other
 * K-quants follow Q4_K. */
extern "C" bool rf_gpu_mmq_wanted(enum rf_type t, int64_t n_tok)
{
#if defined(RF_HIP)
    (void)t, (void)n_tok;
    return false; /* the portable fragments are a correctness path, not a fast one */
#else
    const int tt = mq_code(t);
    if (tt < 0 || n_tok < RF_GPU_MMQ_MIN_TOK) return false;
    const bool legacy = tt <= MQ_Q8_0 || tt == MQ_Q6_K;
    return n_tok <= (legacy ? 128 : 96);
#endif
}

extern "C" int rf_gpu_mmq_tile(enum rf_type t, int64_t rows, int64_t n_tok)
{
    mq_device();
    int ci = mq_pick(rows, n_tok);
    const int tt = mq_code(t);
    const struct mq_cfg *c = &mq_cfgs[ci];
    if (tt >= 0 && mq_smem(tt, c->bm, c->bn, c->fh, 2) > mq_dev.smem_block && mq_forced < 0)
        ci = c->fh ? 6 : 4; /* the smallest tile of the flavour */
    return ci;
}

extern "C" bool rf_gpu_mmq_tile_f16(int tile)
{
    return tile >= 0 && tile < MQ_NCFG && mq_cfgs[tile].fh;
}

extern "C" rf_status rf_gpu_mmq(void *stream, enum rf_type t, const void *w, int64_t rows,
                                int64_t k, size_t row_bytes, const void *xbuf, int64_t n_tok,
                                float *y, bool add, int tile, const struct rf_gpu_mmq_scratch *sc)
{
    const int tt = mq_code(t);
    if (tt < 0) return rf_fail(RF_STATUS_UNSUPPORTED, "gpu mmq: type %s", rf_type_name(t));
    if (rows < 1 || n_tok < 1 || k < mq_qk(tt) || k % mq_qk(tt) != 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu mmq: bad shape (%lld tokens, %lld x %lld %s)",
                       (long long)n_tok, (long long)rows, (long long)k, rf_type_name(t));
    if (tile < 0 || tile >= MQ_NCFG)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu mmq: no tile %d", tile);
    mq_device();
    const int ci = tile;
    const struct mq_cfg *c = &mq_cfgs[ci];
    if (mq_smem(tt, c->bm, c->bn, c->fh, 2) > mq_dev.smem_block)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu mmq: tile %d of %s needs more shared memory "
                       "than a block may take", ci, rf_type_name(t));
    const int64_t gy = (rows + c->bm - 1) / c->bm, gx = (n_tok + c->bn - 1) / c->bn;
    if (gy > 65535 || gx > 0x7fffffff)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu mmq: %lld rows, %lld tokens: too many",
                       (long long)rows, (long long)n_tok);
    if (!mq_raised[tt][ci]) {
        RF_GPU_TRY(cudaFuncSetAttribute((const void *)mq_table[tt][ci],
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        mq_dev.smem_block));
        mq_raised[tt][ci] = true;
    }
    const int64_t n_stage = (k / mq_qk(tt) + mq_bps(tt) - 1) / mq_bps(tt);
    const int split = mq_split(tt, ci, gx * gy, n_tok, n_stage, sc);
    const int nstage = mq_stages(tt, ci, gx * gy * split, (n_stage + split - 1) / split);
    const int smem = mq_smem(tt, c->bm, c->bn, c->fh, nstage);
    const float *xd = c->fh ? NULL
                            : (const float *)((const uint8_t *)xbuf +
                                              (((size_t)(n_tok * k) + 15) & ~(size_t)15));
    const dim3 grid((unsigned)gx, (unsigned)gy, (unsigned)split);
    RF_LAUNCH_PDL(mq_table[tt][ci], RF_PDL_MMQ, grid, c->wm * c->wn * c->ks * 32, smem,
                  (cudaStream_t)stream, (const uint8_t *)w, rows, k, row_bytes, xbuf, xd, n_tok, y,
                  add ? 1 : 0, nstage, split > 1 ? sc->ws : NULL, split > 1 ? sc->cnt : NULL);
    RF_GPU_LAUNCHED("mmq");
    return RF_OK;
}

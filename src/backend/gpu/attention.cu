/* Attention over the paged f16 KV cache (see struct rf_attn_params in backend.h).
 *
 * Three kernels, one semantics:
 * - decode (few query tokens per sequence): a fixed grid of blocks looping over work
 *   items (token, KV head, chunk of its query heads, split of the token's rows); the
 *   splits are cut on the device from each token's position, so a captured launch
 *   serves any position with work in proportion to it. K and V go from memory into
 *   registers in 16-byte loads and every query head of the chunk uses them; the
 *   splits of a token are combined by the last of its blocks to finish (see the
 *   decode section).
 * - prefill (many query tokens): one block per tile of ATT_BQ query rows of one KV
 *   head, a row being (token, query head of the group); it walks the cache rows of
 *   each sequence its rows belong to in tiles of bk rows with an online softmax
 *   and the causal / window mask per row.
 * - tensor cores (CUDA builds, head_dim a multiple of 16 up to 128): as prefill with
 *   the products on mma.sync, splitting the sequence when there are few query rows;
 *   attn_reduce combines its splits.
 *
 * Numerics: q is rounded to f16 (as the CPU reference does) and dotted with the f16
 * keys in f32; softmax weights stay f32. Shared-memory rows of K, V and q are
 * padded by one 4-byte word so that threads reading different rows at the same
 * column hit different banks.
 *
 * Workspace: DEC_CNT_BYTES of split counters (zero between launches), then the
 * split partials: acc (n_tok, n_head, n_splits, hd), then (max, sum) pairs. */
#include <math.h>
#include <stdint.h>

#include "backend/gpu/compat.h"
#include "backend/gpu/kernels_attn.h"

#define ATT_THREADS 128
#define ATT_TARGET_BLOCKS 512 /* tensor cores: enough blocks to keep every SM streaming */
#define ATT_MIN_SPLIT 64      /* tensor cores: rows per split at least */
#define ATT_WS_ROWS 16384     /* split partials (token, head, split) the workspace holds */
#define ATT_BQ 32             /* prefill: query rows per block */
#define ATT_PF_ND 16          /* prefill: head dims per thread at most (HEAD_DIM_MAX / 16) */

struct attn_args {
    const float *q;
    const uint16_t *kp, *vp;
    float *out;
    const int32_t *pos, *seq, *bt;
    float *ws;       /* split partials: acc (n_tok, n_head, n_splits, hd), then (m, l) pairs */
    unsigned *cnt;   /* decode: finished splits per (token, KV head, head chunk) */
    long long width; /* halves per cache row */
    int n_seq;       /* rows of the block tables: a token's seq outside 0..n_seq-1 sees nothing */
    int n_tok, n_head, n_kv, hd, r;
    int max_blocks, bs, ctx; /* ctx = max_blocks * bs: the last addressable position + 1 */
    int bs_shift;            /* log2(bs) when bs is a power of two, else -1 */
    float scale, softcap;
    int window;
    int hg, nhc, n_splits, split_len; /* split plan (split_len: tensor cores only) */
    int lpr, min_split;               /* decode: lanes per cache row, rows per split at least */
    int bk;                           /* prefill: cache rows per tile */
};

/* ---- shared helpers ---- */

static __device__ __forceinline__ float half_lo(uint32_t w)
{
    return __half2float(__ushort_as_half((unsigned short)(w & 0xffffu)));
}

static __device__ __forceinline__ float half_hi(uint32_t w)
{
    return __half2float(__ushort_as_half((unsigned short)(w >> 16)));
}

static __device__ __forceinline__ uint32_t pack_halves(float a, float b)
{
    return (uint32_t)__half_as_ushort(__float2half_rn(a)) |
           ((uint32_t)__half_as_ushort(__float2half_rn(b)) << 16);
}

/* First position token t sees and its last (clamped to the addressable rows). */
static __device__ __forceinline__ int vis_lo(const struct attn_args *a, int pos)
{
    const int lo = a->window > 0 ? pos - a->window + 1 : 0;
    return lo > 0 ? lo : 0;
}

static __device__ __forceinline__ int vis_hi(const struct attn_args *a, int pos)
{
    return pos < a->ctx ? pos : a->ctx - 1;
}

/* Pool row of position kpos of the sequence in block-table row s, or -1. */
static __device__ __forceinline__ long long cache_row(const struct attn_args *a, int s, int kpos)
{
    const int b = a->bs_shift >= 0 ? kpos >> a->bs_shift : kpos / a->bs;
    const int blk = a->bt[(long long)s * a->max_blocks + b];
    return blk < 0 ? -1 : (long long)blk * a->bs + (kpos - b * a->bs);
}

/* Loads positions k0..k0+nrows-1 of KV head kvh of sequence s into sk / sv (rows of
 * hd/2 + 1 words). Rows past kend or without a block are zeros, flagged invalid. */
static __device__ void load_kv_tile(const struct attn_args *a, int s, int kvh, int k0, int kend,
                                    int nrows, uint32_t *sk, uint32_t *sv, int *svalid)
{
    const int hw = a->hd / 2, stride = hw + 1;
    const long long head_off = (long long)kvh * a->hd;
    if (a->hd % 8 == 0) { /* 16-byte loads */
        const int cpr = a->hd / 8;
        for (int c = threadIdx.x; c < nrows * cpr; c += blockDim.x) {
            const int j = c / cpr, cc = c % cpr, kpos = k0 + j;
            const long long row = kpos <= kend ? cache_row(a, s, kpos) : -1;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
            if (row >= 0) {
                const long long off = row * a->width + head_off + cc * 8;
                kv = *(const uint4 *)(a->kp + off);
                vv = *(const uint4 *)(a->vp + off);
            }
            uint32_t *dk = sk + j * stride + cc * 4, *dv = sv + j * stride + cc * 4;
            dk[0] = kv.x, dk[1] = kv.y, dk[2] = kv.z, dk[3] = kv.w;
            dv[0] = vv.x, dv[1] = vv.y, dv[2] = vv.z, dv[3] = vv.w;
            if (cc == 0) svalid[j] = row >= 0;
        }
    } else { /* 4-byte loads: hd and width are even, so words are aligned */
        for (int c = threadIdx.x; c < nrows * hw; c += blockDim.x) {
            const int j = c / hw, w = c % hw, kpos = k0 + j;
            const long long row = kpos <= kend ? cache_row(a, s, kpos) : -1;
            uint32_t kw = 0, vw = 0;
            if (row >= 0) {
                const long long off = row * a->width + head_off + 2 * w;
                kw = *(const uint32_t *)(a->kp + off);
                vw = *(const uint32_t *)(a->vp + off);
            }
            sk[j * stride + w] = kw;
            sv[j * stride + w] = vw;
            if (w == 0) svalid[j] = row >= 0;
        }
    }
}

static __device__ __forceinline__ float logit(const struct attn_args *a, float dot)
{
    const float x = dot * a->scale;
    return a->softcap != 0.0f ? a->softcap * tanhf(x / a->softcap) : x;
}

/* Max and sum over lanes whose index differs in the bits below `width` (a power of
 * two <= 32): a 32- or 16-lane group of any wave size. */
static __device__ __forceinline__ float group_max(float v, int width)
{
    for (int m = width / 2; m > 0; m /= 2) v = fmaxf(v, rf_shfl_xor(v, m));
    return v;
}

static __device__ __forceinline__ float group_sum(float v, int width)
{
    for (int m = width / 2; m > 0; m /= 2) v += rf_shfl_xor(v, m);
    return v;
}

/* Online-softmax step for one score: new max, the factor old sums are scaled by, and
 * the weight of this score (0 for a masked one; no NaN while the row is empty). */
static __device__ __forceinline__ void online_step(float m_old, float m_new, float x, bool ok,
                                                   float *corr, float *p)
{
    if (m_new == -INFINITY) {
        *corr = 1.0f;
        *p = 0.0f;
    } else {
        *corr = expf(m_old - m_new);
        *p = ok ? expf(x - m_new) : 0.0f;
    }
}

/* Splits a token's visible rows lo..hi fall in (the token's first and last). */
static __device__ __forceinline__ void split_range(const struct attn_args *a, int pos, int *first,
                                                   int *last, int *lo, int *hi)
{
    *lo = vis_lo(a, pos);
    *hi = vis_hi(a, pos);
    if (*hi < *lo) { /* nothing visible (bad position): split 0 writes zeros */
        *first = *last = 0;
        return;
    }
    *first = *lo / a->split_len;
    *last = *hi / a->split_len;
}

/* Query rows r0 .. r0 + n_rows - 1 of the block (row = token * group + head in the
 * group of KV head kvh) as f16 pairs into dst (rows of `stride` words; zeros past the
 * last token). A warp's loads of QL_ROWS rows are all issued before any store, so
 * they are in flight together rather than one row at a time. */
#define QL_ROWS 8
#define QL_WORDS (RF_GPU_ATTN_HEAD_DIM_MAX / 64) /* words of a row per lane */

static __device__ __forceinline__ void load_q_rows(const struct attn_args *a, uint32_t *dst,
                                                   int stride, int r0, int n_rows, int kvh)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    const int hw = a->hd / 2;
    for (int base = warp; base < n_rows; base += nw * QL_ROWS) {
        float2 v[QL_ROWS][QL_WORDS];
#pragma unroll
        for (int k = 0; k < QL_ROWS; k++) {
            const int row = base + nw * k, rr = r0 + row, t = rr / a->r;
            const float2 *qr =
                (const float2 *)(a->q +
                                 ((long long)t * a->n_head + kvh * a->r + rr % a->r) * a->hd);
#pragma unroll
            for (int i = 0; i < QL_WORDS; i++) {
                const int w = lane + 32 * i;
                v[k][i] = row < n_rows && t < a->n_tok && w < hw ? qr[w] : make_float2(0.0f, 0.0f);
            }
        }
#pragma unroll
        for (int k = 0; k < QL_ROWS; k++) {
            const int row = base + nw * k;
#pragma unroll
            for (int i = 0; i < QL_WORDS; i++) {
                const int w = lane + 32 * i;
                if (row < n_rows && w < hw)
                    dst[row * stride + w] = pack_halves(v[k][i].x, v[k][i].y);
            }
        }
    }
}

/* ---- decode ----
 *
 * A fixed grid (the blocks the GPU holds at once) loops over work items (token, KV
 * head, chunk of that head's query heads, split). A token's visible rows are cut into
 * splits on the device from its own position: at most n_splits (set on the host from
 * the batch's shape) of at least min_split rows. Thread (slot, lane): the lanes of a
 * slot (lpr of them, a power of two) hold D head dims each of one cache row, so a
 * row's K and V come in 16-byte loads straight into registers, R rows per slot and
 * round all in flight together; the scores are summed over the slot's lanes with
 * shuffles and each slot keeps its own online softmax for the query heads of the chunk
 * (all of them use the same K/V registers). The slots are combined in shared memory;
 * a token in one split writes its output, else each split writes its partial (acc,
 * max, sum) and the last split of the item's (token, chunk) to finish, found by an
 * atomic counter, combines them and sets the counter back to zero. */
#define DEC_HG_MAX 8        /* query heads per item at most */
#define DEC_SPLITS_MAX 256  /* splits of one token at most */
#define DEC_CNT ATT_WS_ROWS /* counters at the start of the workspace */
#define DEC_CNT_BYTES ((size_t)DEC_CNT * sizeof(unsigned))

/* Blocks per SM the decode kernel is built for (registers: K, V and the heads'
 * accumulators); HIP reads the bound's second number differently and gets none. */
#if defined(RF_HIP)
#define DEC_MIN_BLOCKS(hgm) 1
#else
#define DEC_MIN_BLOCKS(hgm) ((hgm) <= 4 ? 3 : 2)
#endif

/* Per kernel variant (at most hgm query heads per item): head dims per lane (a
 * multiple of 8: one 16-byte load each) and cache rows per slot and round. With few
 * heads a lane takes more dims, so fewer lanes repeat the softmax of a row; with many,
 * the heads' q and accumulators take the registers. */
#define DEC_DIMS(hgm) ((hgm) == 1 ? 32 : (hgm) == 2 ? 16 : 8)
#define DEC_R(hgm) ((hgm) == 1 ? 2 : (hgm) <= 4 ? 4 : 2)

/* Floats of the combine's shared memory for at most hgm heads of dims per lane. */
#define DEC_SMEM_FLOATS(hgm, dims)                                                                 \
    ((hgm) * (ATT_THREADS * (dims) + 3 * ATT_THREADS) + 2 * (hgm) + 1)

/* Reads of the partials other blocks wrote in this launch: from L2, never a stale L1
 * line (p aligned to the size read). */
static __device__ __forceinline__ float ld_l2(const float *p)
{
#if defined(RF_HIP)
    return *(const volatile float *)p;
#else
    return __ldcg(p);
#endif
}

static __device__ __forceinline__ float2 ld_l2_f2(const float *p)
{
#if defined(RF_HIP)
    return make_float2(ld_l2(p), ld_l2(p + 1));
#else
    return __ldcg((const float2 *)p);
#endif
}

static __device__ __forceinline__ float4 ld_l2_f4(const float *p)
{
#if defined(RF_HIP)
    return make_float4(ld_l2(p), ld_l2(p + 1), ld_l2(p + 2), ld_l2(p + 3));
#else
    return __ldcg((const float4 *)p);
#endif
}

/* Splits of a token with n visible rows and the rows of each (the last may be shorter). */
static __device__ __forceinline__ void dec_splits(const struct attn_args *a, int n, int *nsp,
                                                  int *len)
{
    if (n <= 0) {
        *nsp = 1, *len = 1;
        return;
    }
    int k = (n + a->min_split - 1) / a->min_split;
    k = k <= 2 ? 1 : k < a->n_splits ? k : a->n_splits; /* two rounds cost less than a combine */
    *len = (n + k - 1) / k;
    *nsp = (n + *len - 1) / *len;
}

static __device__ __forceinline__ void unpack8(uint4 w, float *f)
{
    f[0] = half_lo(w.x), f[1] = half_hi(w.x), f[2] = half_lo(w.y), f[3] = half_hi(w.y);
    f[4] = half_lo(w.z), f[5] = half_hi(w.z), f[6] = half_lo(w.w), f[7] = half_hi(w.w);
}

/* 8 halves of a cache row from dim d0 (a 16-byte load when vec, else 4-byte words);
 * zeros past hd. */
template <bool VEC>
static __device__ __forceinline__ uint4 dec_load(const uint16_t *p, int d0, int hd)
{
    if (VEC) return d0 < hd ? *(const uint4 *)p : make_uint4(0, 0, 0, 0);
    const uint32_t *w = (const uint32_t *)p;
    uint4 r;
    r.x = d0 < hd ? w[0] : 0u;
    r.y = d0 + 2 < hd ? w[1] : 0u;
    r.z = d0 + 4 < hd ? w[2] : 0u;
    r.w = d0 + 6 < hd ? w[3] : 0u;
    return r;
}

/* Block of the block table (or -1) holding position kpos of sequence sq, -1 past kend. */
static __device__ __forceinline__ int dec_block(const struct attn_args *a, int sq, int kpos,
                                                int kend)
{
    const int b = a->bs_shift >= 0 ? kpos >> a->bs_shift : kpos / a->bs;
    return kpos <= kend ? a->bt[(long long)sq * a->max_blocks + b] : -1;
}

/* Where a thread's rows of one round start (row i of the round: k0 + slot + nslot * i). */
struct dec_lane {
    int slot, nslot, d0;
    long long head_off; /* halves from a pool row to the lane's first dim */
};

/* Queues the K and V loads of the round at k0 (block ids in blk; -1: no row). */
template <int R, int D, bool VEC>
static __device__ __forceinline__ void dec_issue(const struct attn_args *a,
                                                 const struct dec_lane *ln, int k0, const int *blk,
                                                 uint4 (*kc)[D / 8], uint4 (*vc)[D / 8], bool *ok)
{
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int kpos = k0 + ln->slot + ln->nslot * i;
        const int b = a->bs_shift >= 0 ? kpos >> a->bs_shift : kpos / a->bs;
        const long long off =
            ((long long)blk[i] * a->bs + (kpos - b * a->bs)) * a->width + ln->head_off;
        ok[i] = blk[i] >= 0;
#pragma unroll
        for (int c = 0; c < D / 8; c++) {
            kc[i][c] = vc[i][c] = make_uint4(0, 0, 0, 0);
            if (ok[i]) {
                kc[i][c] = dec_load<VEC>(a->kp + off + 8 * c, ln->d0 + 8 * c, a->hd);
                vc[i][c] = dec_load<VEC>(a->vp + off + 8 * c, ln->d0 + 8 * c, a->hd);
            }
        }
    }
}

/* Block ids of the round at k0 (loads queued, not waited for). */
template <int R>
static __device__ __forceinline__ void
dec_blocks(const struct attn_args *a, const struct dec_lane *ln, int sq, int k0, int k_hi, int *blk)
{
#pragma unroll
    for (int i = 0; i < R; i++) blk[i] = dec_block(a, sq, k0 + ln->slot + ln->nslot * i, k_hi);
}

/* Scores of a round's rows for the chunk's heads (summed over the slot's lanes), the
 * online softmax step of the slot, and weights . V into acc. */
template <int HGM, int R, int D>
static __device__ __forceinline__ void
dec_compute(const struct attn_args *a, const float (*q)[D], uint4 (*kc)[D / 8], uint4 (*vc)[D / 8],
            const bool *ok, float *m, float *l, float (*acc)[D])
{
    float x[R][HGM];
#pragma unroll
    for (int i = 0; i < R; i++) {
#pragma unroll
        for (int h = 0; h < HGM; h++) x[i][h] = 0.0f;
#pragma unroll
        for (int c = 0; c < D / 8; c++) {
            float kf[8];
            unpack8(kc[i][c], kf);
#pragma unroll
            for (int h = 0; h < HGM; h++) {
                float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
                for (int j = 0; j < 8; j += 2) {
                    s0 = fmaf(q[h][8 * c + j], kf[j], s0);
                    s1 = fmaf(q[h][8 * c + j + 1], kf[j + 1], s1);
                }
                x[i][h] += s0 + s1;
            }
        }
    }
    for (int o = a->lpr / 2; o > 0; o /= 2)
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
            for (int h = 0; h < HGM; h++) x[i][h] += rf_shfl_xor(x[i][h], o);
#pragma unroll
    for (int h = 0; h < HGM; h++) {
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < R; i++) {
            x[i][h] = ok[i] ? logit(a, x[i][h]) : -INFINITY;
            mx = fmaxf(mx, x[i][h]);
        }
        const float m_new = fmaxf(m[h], mx);
        const float corr = m_new == -INFINITY ? 1.0f : __expf(m[h] - m_new);
        m[h] = m_new;
        l[h] *= corr;
#pragma unroll
        for (int j = 0; j < D; j++) acc[h][j] *= corr;
#pragma unroll
        for (int i = 0; i < R; i++) {
            x[i][h] = x[i][h] == -INFINITY ? 0.0f : __expf(x[i][h] - m_new);
            l[h] += x[i][h];
        }
    }
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int c = 0; c < D / 8; c++) {
            float vf[8];
            unpack8(vc[i][c], vf);
#pragma unroll
            for (int h = 0; h < HGM; h++)
#pragma unroll
                for (int j = 0; j < 8; j++)
                    acc[h][8 * c + j] = fmaf(x[i][h], vf[j], acc[h][8 * c + j]);
        }
}

/* One item's rows k_lo..k_hi: the slot's running max m, sum l and acc (its D dims)
 * for each query head of the chunk, in rounds of R rows per slot, the block ids read
 * a round ahead. (Two rounds in flight, R halved, measured slower: H200, 2026-11-27.) */
template <int HGM, int R, int D, bool VEC>
static __device__ __forceinline__ void dec_rows(const struct attn_args *a, int sq, int kvh,
                                                int k_lo, int k_hi, const float (*q)[D], float *m,
                                                float *l, float (*acc)[D])
{
    struct dec_lane ln;
    ln.slot = threadIdx.x / a->lpr, ln.nslot = ATT_THREADS / a->lpr;
    ln.d0 = (threadIdx.x & (a->lpr - 1)) * D;
    ln.head_off = (long long)kvh * a->hd + ln.d0;
    const int step = ln.nslot * R;
    int blk[R];
    uint4 kc[R][D / 8], vc[R][D / 8];
    bool ok[R];
    dec_blocks<R>(a, &ln, sq, k_lo, k_hi, blk);
    for (int k0 = k_lo; k0 <= k_hi; k0 += step) {
        dec_issue<R, D, VEC>(a, &ln, k0, blk, kc, vc, ok);
        dec_blocks<R>(a, &ln, sq, k0 + step, k_hi, blk);
        dec_compute<HGM, R, D>(a, q, kc, vc, ok, m, l, acc);
    }
}

/* Shared memory of the combines: acc (HGM, threads, D), then per (head, slot) the
 * max, sum and weight, then per head the block's max and sum, then the last-split flag. */
struct dec_smem {
    float *acc, *m, *l, *w, *bm, *bl;
    int *last;
};

template <int HGM, int D> static __device__ __forceinline__ struct dec_smem dec_layout(float *smem)
{
    struct dec_smem s;
    s.acc = smem;
    s.m = s.acc + HGM * ATT_THREADS * D;
    s.l = s.m + HGM * ATT_THREADS;
    s.w = s.l + HGM * ATT_THREADS;
    s.bm = s.w + HGM * ATT_THREADS;
    s.bl = s.bm + HGM;
    s.last = (int *)(s.bl + HGM);
    return s;
}

/* The slots' (m, l, acc) of every head into the block's: bm, bl per head and the
 * weight of each slot in w; the caller sums acc over the slots with them. */
template <int HGM, int D>
static __device__ __forceinline__ void dec_slots(const struct attn_args *a,
                                                 const struct dec_smem *s, const float *m,
                                                 const float *l, const float (*acc)[D])
{
    const int lane = threadIdx.x & (a->lpr - 1), slot = threadIdx.x / a->lpr;
    const int nslot = ATT_THREADS / a->lpr;
#pragma unroll
    for (int h = 0; h < HGM; h++) {
        float4 *dst = (float4 *)(s->acc + (h * ATT_THREADS + threadIdx.x) * D);
#pragma unroll
        for (int j = 0; j < D; j += 4)
            dst[j / 4] = make_float4(acc[h][j], acc[h][j + 1], acc[h][j + 2], acc[h][j + 3]);
        if (lane == 0) s->m[h * ATT_THREADS + slot] = m[h], s->l[h * ATT_THREADS + slot] = l[h];
    }
    __syncthreads();
    if (threadIdx.x < HGM) {
        const int h = threadIdx.x;
        float mx = -INFINITY, sum = 0.0f;
        for (int i = 0; i < nslot; i++)
            if (s->l[h * ATT_THREADS + i] > 0.0f) mx = fmaxf(mx, s->m[h * ATT_THREADS + i]);
        for (int i = 0; i < nslot; i++) {
            const float li = s->l[h * ATT_THREADS + i];
            const float wi = li > 0.0f ? __expf(s->m[h * ATT_THREADS + i] - mx) : 0.0f;
            s->w[h * ATT_THREADS + i] = wi;
            sum += wi * li;
        }
        s->bm[h] = mx, s->bl[h] = sum;
    }
    __syncthreads();
}

/* The split combine's view of the partials of (token t, chunk at head h0): columns of
 * W floats (4 when hd allows) of the (ng, hd) output; with fewer columns than threads,
 * g_n threads share a column, thread g of them taking splits g, g + g_n, ... The
 * loads of DEC_J of a thread's splits are issued together. */
#define DEC_J 16

struct dec_cols {
    int w, per, ncol, g_n, tpc, g;
};

static __device__ __forceinline__ void dec_fetch(const struct attn_args *a,
                                                 const struct dec_cols *cl, int t, int h0, int c0,
                                                 int j0, int nsp, float4 *v)
{
    const int c = c0 + (int)threadIdx.x % cl->tpc, h = c / cl->per, d = c % cl->per * cl->w;
    const float *p = a->ws + ((long long)t * a->n_head + h0 + h) * a->n_splits * a->hd + d;
    const bool col = c < cl->ncol && cl->g < cl->g_n;
#pragma unroll
    for (int j = 0; j < DEC_J; j++) {
        const int i = cl->g + cl->g_n * (j0 + j);
        v[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (col && i < nsp) {
            if (cl->w == 4) v[j] = ld_l2_f4(p + (long long)i * a->hd);
            else v[j].x = ld_l2(p + (long long)i * a->hd);
        }
    }
}

/* The last split of (token t, chunk at head h0) to finish: the first DEC_J partials
 * of each thread and the splits' (max, sum) are loaded together; the weights per head
 * by 32-thread groups; then the weighted sums, folded over the threads of a column. */
template <int HGM>
static __device__ void dec_combine(const struct attn_args *a, const struct dec_smem *s, int t,
                                   int h0, int ng, int nsp)
{
    const long long n_part = (long long)a->n_tok * a->n_head * a->n_splits;
    float *sw = s->acc, *sl = s->acc + HGM * DEC_SPLITS_MAX; /* (HGM, DEC_SPLITS_MAX) each */
    float *red = s->acc + 2 * HGM * DEC_SPLITS_MAX;          /* ATT_THREADS * 4 */
    struct dec_cols cl;
    cl.w = a->hd % 4 == 0 ? 4 : 1;
    cl.per = a->hd / cl.w, cl.ncol = ng * cl.per;
    cl.g_n = cl.ncol >= ATT_THREADS ? 1 : ATT_THREADS / cl.ncol;
    cl.tpc = ATT_THREADS / cl.g_n, cl.g = threadIdx.x / cl.tpc;
    float4 v[DEC_J];
    dec_fetch(a, &cl, t, h0, 0, 0, nsp, v);
    for (int k = threadIdx.x; k < ng * nsp; k += ATT_THREADS) {
        const int h = k / nsp, i = k % nsp;
        const long long th = (long long)t * a->n_head + h0 + h;
        const float2 ml = ld_l2_f2(a->ws + n_part * a->hd + (th * a->n_splits + i) * 2);
        sw[h * DEC_SPLITS_MAX + i] = ml.x, sl[h * DEC_SPLITS_MAX + i] = ml.y;
    }
    __syncthreads();
    const int grp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int h = grp; h < ng; h += ATT_THREADS / 32) {
        float mx = -INFINITY, sum = 0.0f;
        for (int i = lane; i < nsp; i += 32)
            if (sl[h * DEC_SPLITS_MAX + i] > 0.0f) mx = fmaxf(mx, sw[h * DEC_SPLITS_MAX + i]);
        mx = group_max(mx, 32);
        for (int i = lane; i < nsp; i += 32) {
            const float li = sl[h * DEC_SPLITS_MAX + i];
            const float wi = li > 0.0f ? __expf(sw[h * DEC_SPLITS_MAX + i] - mx) : 0.0f;
            sw[h * DEC_SPLITS_MAX + i] = wi;
            sum += wi * li;
        }
        sum = group_sum(sum, 32);
        if (lane == 0) s->bl[h] = sum;
    }
    __syncthreads();
    const int per_g = (nsp + cl.g_n - 1) / cl.g_n; /* splits of a thread at most */
    for (int c0 = 0; c0 < cl.ncol; c0 += cl.tpc) {
        const int c = c0 + (int)threadIdx.x % cl.tpc, h = c < cl.ncol ? c / cl.per : 0;
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int j0 = 0; j0 < per_g; j0 += DEC_J) {
            if (c0 > 0 || j0 > 0) dec_fetch(a, &cl, t, h0, c0, j0, nsp, v);
#pragma unroll
            for (int j = 0; j < DEC_J; j++) {
                const int i = cl.g + cl.g_n * (j0 + j);
                const float wi = i < nsp ? sw[h * DEC_SPLITS_MAX + i] : 0.0f;
                o.x = fmaf(wi, v[j].x, o.x), o.y = fmaf(wi, v[j].y, o.y);
                o.z = fmaf(wi, v[j].z, o.z), o.w = fmaf(wi, v[j].w, o.w);
            }
        }
        if (cl.g_n > 1) {
            if (cl.g < cl.g_n) ((float4 *)red)[threadIdx.x] = o;
            __syncthreads();
            if (cl.g == 0)
                for (int gg = 1; gg < cl.g_n; gg++) {
                    const float4 r = ((const float4 *)red)[gg * cl.tpc + threadIdx.x];
                    o.x += r.x, o.y += r.y, o.z += r.z, o.w += r.w;
                }
            __syncthreads();
        }
        if (cl.g == 0 && c < cl.ncol) {
            const float inv = s->bl[h] > 0.0f ? 1.0f / s->bl[h] : 0.0f;
            float *dst = a->out + ((long long)t * a->n_head + h0 + h) * a->hd + c % cl.per * cl.w;
            if (cl.w == 4) { /* out is 8-byte aligned */
                ((float2 *)dst)[0] = make_float2(o.x * inv, o.y * inv);
                ((float2 *)dst)[1] = make_float2(o.z * inv, o.w * inv);
            } else {
                dst[0] = o.x * inv;
            }
        }
    }
}

template <int HGM, int R, int D, bool VEC>
__global__ void __launch_bounds__(ATT_THREADS, DEC_MIN_BLOCKS(HGM)) attn_dec(struct attn_args a)
{
    extern __shared__ __align__(16) float dsm[];
    rf_pdl_launch_next();
    rf_pdl_wait();
    const struct dec_smem s = dec_layout<HGM, D>(dsm);
    const int lane = threadIdx.x & (a.lpr - 1), d0 = lane * D;
    const int units = a.n_kv * a.nhc, nslot = ATT_THREADS / a.lpr;
    const long long n_items = (long long)a.n_tok * units * a.n_splits;
    for (long long it = blockIdx.x; it < n_items; it += gridDim.x) {
        const int u = (int)(it % units), sp = (int)(it / units % a.n_splits);
        const int t = (int)(it / units / a.n_splits);
        const int kvh = u / a.nhc, h0 = kvh * a.r + (u % a.nhc) * a.hg;
        const int ng = a.r - (u % a.nhc) * a.hg < a.hg ? a.r - (u % a.nhc) * a.hg : a.hg;
        /* position, sequence and q loads all in flight together */
        const int sq = a.seq ? a.seq[t] : 0, pt = a.pos[t];
        float q[HGM][D], m[HGM], l[HGM], acc[HGM][D];
#pragma unroll
        for (int h = 0; h < HGM; h++) {
            const float *qr = a.q + ((long long)t * a.n_head + h0 + h) * a.hd + d0;
#pragma unroll
            for (int j = 0; j < D; j += 2) {
                const float2 v =
                    h < ng && d0 + j < a.hd ? *(const float2 *)(qr + j) : make_float2(0.0f, 0.0f);
                q[h][j] = v.x, q[h][j + 1] = v.y;
            }
        }
        const int pos = sq >= 0 && sq < a.n_seq ? pt : -1; /* -1: nothing visible */
        const int lo = vis_lo(&a, pos), hi = vis_hi(&a, pos);
        int nsp, len;
        dec_splits(&a, hi - lo + 1, &nsp, &len);
        if (sp >= nsp) continue;
        const int k_lo = lo + sp * len, k_hi = hi < k_lo + len - 1 ? hi : k_lo + len - 1;
#pragma unroll
        for (int h = 0; h < HGM; h++) {
#pragma unroll
            for (int j = 0; j < D; j++) {
                q[h][j] = __half2float(__float2half_rn(q[h][j])); /* as the reference */
                acc[h][j] = 0.0f;
            }
            m[h] = -INFINITY, l[h] = 0.0f;
        }
        dec_rows<HGM, R, D, VEC>(&a, sq, kvh, k_lo, k_hi, q, m, l, acc);
        dec_slots<HGM, D>(&a, &s, m, l, acc);

        const long long n_part = (long long)a.n_tok * a.n_head * a.n_splits;
        for (int e = threadIdx.x; e < ng * a.hd; e += ATT_THREADS) {
            const int h = e / a.hd, d = e % a.hd;
            const float *sa = s.acc + h * ATT_THREADS * D + d;
            const float *sw = s.w + h * ATT_THREADS;
            float o = 0.0f;
            for (int i = 0; i < nslot; i++) o = fmaf(sw[i], sa[i * a.lpr * D], o);
            const long long th = (long long)t * a.n_head + h0 + h;
            if (nsp == 1) a.out[th * a.hd + d] = s.bl[h] > 0.0f ? o / s.bl[h] : 0.0f;
            else a.ws[(th * a.n_splits + sp) * a.hd + d] = o;
        }
        if (nsp > 1) {
            if ((int)threadIdx.x < ng) {
                const long long th = (long long)t * a.n_head + h0 + threadIdx.x;
                float *ml = a.ws + n_part * a.hd + (th * a.n_splits + sp) * 2;
                ml[0] = s.bm[threadIdx.x], ml[1] = s.bl[threadIdx.x];
            }
            __threadfence(); /* the partial is visible before the count says so */
            __syncthreads();
            if (threadIdx.x == 0) {
                unsigned *cnt = a.cnt + (long long)t * units + u;
                *s.last = atomicAdd(cnt, 1u) == (unsigned)nsp - 1;
                if (*s.last) *cnt = 0u; /* every split of the item has counted */
            }
            __syncthreads();
            if (*s.last) {
                __threadfence();
                dec_combine<HGM>(&a, &s, t, h0, ng, nsp);
            }
        }
        __syncthreads(); /* shared memory is reused by the next item */
    }
}

/* Max / sum over the block (ATT_THREADS threads); every thread gets the result. */
static __device__ float block_reduce(float v, bool is_max, float *red)
{
    for (int m = 16; m > 0; m /= 2) {
        const float o = rf_shfl_xor(v, m);
        v = is_max ? fmaxf(v, o) : v + o;
    }
    __syncthreads(); /* red may still be read from a previous call */
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    v = red[0];
    for (int i = 1; i < ATT_THREADS / 32; i++) v = is_max ? fmaxf(v, red[i]) : v + red[i];
    return v;
}

/* Combines the partials of tokens whose rows span several splits: block (t, h). The
 * splits' weights exp(m_s - max) go to shared memory first, so that the sum over
 * splits per output element has no branch and its loads can all be in flight. */
__global__ void __launch_bounds__(ATT_THREADS) attn_reduce(struct attn_args a)
{
    __shared__ float sw[ATT_TARGET_BLOCKS];
    __shared__ float red[ATT_THREADS / 32];
    const int t = blockIdx.x / a.n_head, h = blockIdx.x % a.n_head;
    const int sq = a.seq ? a.seq[t] : 0;
    int first, last, lo, hi;
    split_range(&a, sq >= 0 && sq < a.n_seq ? a.pos[t] : -1, &first, &last, &lo, &hi);
    if (first == last) return;
    const int n = last - first + 1;
    const long long th = (long long)t * a.n_head + h;
    const long long n_part = (long long)a.n_tok * a.n_head * a.n_splits;
    const float *ml = a.ws + n_part * a.hd + (th * a.n_splits + first) * 2;
    const float *acc = a.ws + (th * a.n_splits + first) * a.hd;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (ml[2 * i + 1] > 0.0f) mx = fmaxf(mx, ml[2 * i]);
    mx = block_reduce(mx, true, red);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float w = ml[2 * i + 1] > 0.0f ? expf(ml[2 * i] - mx) : 0.0f;
        sw[i] = w;
        sum += w * ml[2 * i + 1];
    }
    sum = block_reduce(sum, false, red); /* its barriers also publish sw */
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float o0 = 0.0f, o1 = 0.0f;
        int i = 0;
#pragma unroll 4
        for (; i + 1 < n; i += 2) {
            o0 = fmaf(sw[i], acc[(long long)i * a.hd + d], o0);
            o1 = fmaf(sw[i + 1], acc[(long long)(i + 1) * a.hd + d], o1);
        }
        if (i < n) o0 = fmaf(sw[i], acc[(long long)i * a.hd + d], o0);
        a.out[th * a.hd + d] = (o0 + o1) * inv;
    }
}

/* ---- prefill ---- */

struct pf_smem {
    uint32_t *sq, *sk, *sv;
    float *sp;
    int *spos, *slo, *sseq, *svalid, *sinfo;
};

static __device__ struct pf_smem pf_layout(uint32_t *smem, int bk, int stride)
{
    struct pf_smem s;
    s.sq = smem;                                /* (ATT_BQ, stride) */
    s.sk = s.sq + ATT_BQ * stride;              /* (bk, stride) */
    s.sv = s.sk + bk * stride;                  /* (bk, stride) */
    s.sp = (float *)(s.sv + bk * stride);       /* (ATT_BQ, bk + 1) */
    s.spos = (int *)(s.sp + ATT_BQ * (bk + 1)); /* (ATT_BQ) */
    s.slo = s.spos + ATT_BQ;
    s.sseq = s.slo + ATT_BQ;
    s.svalid = s.sseq + ATT_BQ; /* (bk) */
    s.sinfo = s.svalid + bk;    /* sequence, first row, last row */
    return s;
}

static size_t pf_smem_bytes(int bk, int hd)
{
    const size_t stride = (size_t)hd / 2 + 1;
    return 4 * ((ATT_BQ + 2 * (size_t)bk) * stride + ATT_BQ * ((size_t)bk + 1) + 3 * ATT_BQ +
                (size_t)bk + 3);
}

/* Row i of the block's tile: token, query head; and the row's q as f16. */
static __device__ void pf_load_rows(const struct attn_args *a, const struct pf_smem *s, int kvh)
{
    const int stride = a->hd / 2 + 1;
    const int r0 = blockIdx.x * ATT_BQ;
    if (threadIdx.x < ATT_BQ) {
        const int t = (r0 + (int)threadIdx.x) / a->r;
        if (t < a->n_tok) {
            const int pos = a->pos[t];
            s->spos[threadIdx.x] = vis_hi(a, pos);
            s->slo[threadIdx.x] = vis_lo(a, pos);
            const int sq = a->seq ? a->seq[t] : 0;
            s->sseq[threadIdx.x] = sq >= 0 && sq < a->n_seq ? sq : -1;
        } else {
            s->sseq[threadIdx.x] = -1;
        }
    }
    load_q_rows(a, s->sq, stride, r0, ATT_BQ, kvh);
}

/* Thread 0: the next sequence (smallest id above prev) among the tile's rows and
 * the cache rows its rows see, into sinfo; sequence -1 when none is left. */
static __device__ void pf_next_seq(const struct pf_smem *s, int prev)
{
    if (threadIdx.x != 0) return;
    int sq = -1, lo = 0x7fffffff, hi = -1;
    for (int i = 0; i < ATT_BQ; i++) {
        const int v = s->sseq[i];
        if (v > prev && (sq < 0 || v < sq)) sq = v;
    }
    for (int i = 0; i < ATT_BQ; i++) {
        if (sq < 0 || s->sseq[i] != sq) continue;
        lo = s->slo[i] < lo ? s->slo[i] : lo;
        hi = s->spos[i] > hi ? s->spos[i] : hi;
    }
    s->sinfo[0] = sq, s->sinfo[1] = lo, s->sinfo[2] = hi;
}

struct pf_state {
    float m[4], l[4], acc[4][ATT_PF_ND];
};

/* One tile of bk cache rows (positions k0..) of sequence sq: scores, online softmax,
 * weights . V. Thread (ty, tx) holds rows 4ty..4ty+3, columns tx + 16c, dims tx + 16i. */
static __device__ void pf_tile(const struct attn_args *a, const struct pf_smem *s, int sq, int k0,
                               struct pf_state *st)
{
    const int hw = a->hd / 2, stride = hw + 1, bk = a->bk, ncol = bk / 16;
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    float sc[4][2];
#pragma unroll
    for (int i = 0; i < 4; i++) sc[i][0] = sc[i][1] = 0.0f;
    const uint32_t *qr = s->sq + ty * 4 * stride;
    const uint32_t *kr0 = s->sk + tx * stride, *kr1 = s->sk + (tx + 16) * stride;
    for (int w = 0; w < hw; w++) {
        const uint32_t k0w = kr0[w], k1w = ncol > 1 ? kr1[w] : 0u;
        const float k0a = half_lo(k0w), k0b = half_hi(k0w), k1a = half_lo(k1w), k1b = half_hi(k1w);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t qw = qr[i * stride + w];
            const float qa = half_lo(qw), qb = half_hi(qw);
            sc[i][0] = fmaf(qa, k0a, fmaf(qb, k0b, sc[i][0]));
            sc[i][1] = fmaf(qa, k1a, fmaf(qb, k1b, sc[i][1]));
        }
    }
    float corr[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = ty * 4 + i;
        const bool row_in = s->sseq[row] == sq;
        float x[2];
        bool ok[2];
        float mt = -INFINITY;
#pragma unroll
        for (int c = 0; c < 2; c++) {
            const int col = tx + 16 * c, kpos = k0 + col;
            ok[c] =
                c < ncol && row_in && s->svalid[col] && kpos >= s->slo[row] && kpos <= s->spos[row];
            x[c] = ok[c] ? logit(a, sc[i][c]) : -INFINITY;
            mt = fmaxf(mt, x[c]);
        }
        const float m_new = fmaxf(st->m[i], group_max(mt, 16));
        float p[2], psum = 0.0f;
#pragma unroll
        for (int c = 0; c < 2; c++) {
            online_step(st->m[i], m_new, x[c], ok[c], &corr[i], &p[c]);
            psum += p[c];
            if (c < ncol) s->sp[row * (bk + 1) + tx + 16 * c] = p[c];
        }
        st->l[i] = st->l[i] * corr[i] + group_sum(psum, 16);
        st->m[i] = m_new;
    }
    __syncthreads();
    const int nd = (a->hd + 15) / 16, stride2 = a->hd + 2;
    const unsigned short *sv = (const unsigned short *)s->sv;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int e = 0; e < ATT_PF_ND; e++) st->acc[i][e] *= corr[i];
    for (int j = 0; j < bk; j++) {
        float p[4];
#pragma unroll
        for (int i = 0; i < 4; i++) p[i] = s->sp[(ty * 4 + i) * (bk + 1) + j];
#pragma unroll
        for (int e = 0; e < ATT_PF_ND; e++) {
            const int d = tx + 16 * e;
            if (e < nd && d < a->hd) {
                const float v = __half2float(__ushort_as_half(sv[j * stride2 + d]));
#pragma unroll
                for (int i = 0; i < 4; i++) st->acc[i][e] = fmaf(p[i], v, st->acc[i][e]);
            }
        }
    }
}

static __device__ void pf_store(const struct attn_args *a, int kvh, const struct pf_state *st)
{
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int rr = blockIdx.x * ATT_BQ + ty * 4 + i, t = rr / a->r;
        if (t >= a->n_tok) continue;
        const int h = kvh * a->r + rr % a->r;
        float *o = a->out + ((long long)t * a->n_head + h) * a->hd;
        const float inv = st->l[i] > 0.0f ? 1.0f / st->l[i] : 0.0f;
#pragma unroll
        for (int e = 0; e < ATT_PF_ND; e++) {
            const int d = tx + 16 * e;
            if (d < a->hd) o[d] = st->acc[i][e] * inv;
        }
    }
}

__global__ void __launch_bounds__(ATT_THREADS) attn_prefill(struct attn_args a)
{
    extern __shared__ uint32_t smem[];
    const int kvh = blockIdx.y;
    const struct pf_smem s = pf_layout(smem, a.bk, a.hd / 2 + 1);
    struct pf_state st;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        st.m[i] = -INFINITY, st.l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < ATT_PF_ND; e++) st.acc[i][e] = 0.0f;
    }
    pf_load_rows(&a, &s, kvh);
    for (int prev = -1;;) {
        __syncthreads(); /* rows loaded; the last sequence's sinfo read by all */
        pf_next_seq(&s, prev);
        __syncthreads();
        const int sq = s.sinfo[0], lo = s.sinfo[1], hi = s.sinfo[2];
        if (sq < 0) break;
        prev = sq;
        for (int k0 = lo; k0 <= hi; k0 += a.bk) {
            __syncthreads(); /* the previous tile's readers are done */
            load_kv_tile(&a, sq, kvh, k0, hi, a.bk, s.sk, s.sv, s.svalid);
            __syncthreads();
            pf_tile(&a, &s, sq, k0, &st);
        }
    }
    pf_store(&a, kvh, &st);
}

/* ---- host side ---- */

static int ceil_div(long long a, long long b) { return (int)((a + b - 1) / b); }

/* Query rows (token * group size + head in group) and one tile past them fit int. */
#define MMA_ROWS_PAD 64

size_t rf_gpu_attention_work_bytes(int n_head, int n_head_kv, int head_dim)
{
    if (n_head <= 0 || n_head_kv <= 0 || head_dim <= 0 || n_head % n_head_kv) return 0;
    return DEC_CNT_BYTES + (size_t)ATT_WS_ROWS * ((size_t)head_dim + 2) * sizeof(float);
}

static rf_status attn_check(const struct rf_attn_params *p)
{
    if (p->n_tok < 0 || p->n_head <= 0 || p->n_head_kv <= 0 || p->n_head % p->n_head_kv ||
        p->head_dim <= 0 || p->head_dim % 2 || p->n_seq <= 0 || p->max_blocks <= 0 ||
        p->block_size <= 0 || p->window < 0 ||
        (long long)p->max_blocks * p->block_size > INT32_MAX ||
        (p->n_tok > 0 && (!p->pos || !p->block_tables)))
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "gpu attention: bad parameters (n_tok %lld, n_head %d, n_head_kv %d, "
                       "head_dim %d, n_seq %d, max_blocks %d, block_size %d, window %d)",
                       (long long)p->n_tok, p->n_head, p->n_head_kv, p->head_dim, p->n_seq,
                       p->max_blocks, p->block_size, p->window);
    if (p->head_dim > RF_GPU_ATTN_HEAD_DIM_MAX)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu attention: head_dim %d is over %d", p->head_dim,
                       RF_GPU_ATTN_HEAD_DIM_MAX);
    return RF_OK;
}

static struct attn_args attn_args_of(const float *q, const uint16_t *k_pool, const uint16_t *v_pool,
                                     float *out, const struct rf_attn_params *p)
{
    struct attn_args a;
    a.q = q, a.kp = k_pool, a.vp = v_pool, a.out = out;
    a.pos = p->pos, a.seq = p->seq, a.bt = p->block_tables, a.ws = NULL;
    a.n_seq = p->n_seq;
    a.n_tok = (int)p->n_tok, a.n_head = p->n_head, a.n_kv = p->n_head_kv, a.hd = p->head_dim;
    a.r = p->n_head / p->n_head_kv;
    a.width = (long long)p->n_head_kv * p->head_dim;
    a.max_blocks = p->max_blocks, a.bs = p->block_size, a.ctx = p->max_blocks * p->block_size;
    a.bs_shift = -1;
    for (int k = 0; k < 31; k++)
        if (p->block_size == 1 << k) a.bs_shift = k;
    a.scale = p->scale, a.softcap = p->softcap, a.window = p->window;
    a.hg = a.nhc = a.n_splits = a.split_len = 1;
    a.bk = p->head_dim > 128 ? 16 : 32; /* keeps prefill's shared memory under 48 KiB */
    return a;
}

static rf_status launched(const char *kernel)
{
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return rf_fail(RF_STATUS_DEVICE, "gpu kernel %s: launch failed: %s", kernel,
                       cudaGetErrorString(e));
    return RF_OK;
}

static int dec_hgm(int hg) { return hg <= 1 ? 1 : hg <= 2 ? 2 : hg <= 4 ? 4 : 8; }

static size_t dec_smem_bytes(int hgm)
{
    return sizeof(float) * DEC_SMEM_FLOATS(hgm, DEC_DIMS(hgm));
}

template <int HGM, bool VEC> static int dec_occupancy(void)
{
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &n, attn_dec<HGM, DEC_R(HGM), DEC_DIMS(HGM), VEC>, ATT_THREADS, dec_smem_bytes(HGM)) !=
        cudaSuccess) {
        (void)cudaGetLastError();
        n = 0;
    }
    return n;
}

template <int HGM, bool VEC>
static rf_status dec_launch(cudaStream_t st, const struct attn_args *a, int grid)
{
    void (*kernel)(struct attn_args) = attn_dec<HGM, DEC_R(HGM), DEC_DIMS(HGM), VEC>;
    RF_LAUNCH_PDL(kernel, RF_PDL_ATTN, grid, ATT_THREADS, dec_smem_bytes(HGM), st, *a);
    return launched("attn_dec");
}

/* The decode kernel variants: k = (log2 hgm) * 2 + vec. */
#define DEC_VARIANTS 8
#define DEC_SWITCH(k, CALL)                                                                        \
    switch (k) {                                                                                   \
    case 0: CALL(1, false); break;                                                                 \
    case 1: CALL(1, true); break;                                                                  \
    case 2: CALL(2, false); break;                                                                 \
    case 3: CALL(2, true); break;                                                                  \
    case 4: CALL(4, false); break;                                                                 \
    case 5: CALL(4, true); break;                                                                  \
    case 6: CALL(8, false); break;                                                                 \
    default: CALL(8, true); break;                                                                 \
    }

static int dec_variant(int hgm, bool vec)
{
    return (hgm == 1 ? 0 : hgm == 2 ? 1 : hgm == 4 ? 2 : 3) * 2 + vec;
}

/* Blocks of decode kernel variant k the device holds at once, asked once per device
 * and variant (at least one per SM). */
#define DEC_DEVICES 16
static int dec_resident(int k)
{
    static int cache[DEC_DEVICES][DEC_VARIANTS];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= DEC_DEVICES) {
        (void)cudaGetLastError();
        dev = -1;
    }
    int n = dev >= 0 ? __atomic_load_n(&cache[dev][k], __ATOMIC_RELAXED) : 0;
    if (n > 0) return n;
    int sms = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev < 0 ? 0 : dev) !=
            cudaSuccess ||
        sms <= 0) {
        (void)cudaGetLastError();
        sms = 1;
    }
    int per_sm = 0;
#define DEC_OCC(h, v) per_sm = dec_occupancy<h, v>()
    DEC_SWITCH(k, DEC_OCC)
#undef DEC_OCC
    n = sms * (per_sm > 0 ? per_sm : 1);
    if (dev >= 0) __atomic_store_n(&cache[dev][k], n, __ATOMIC_RELAXED);
    return n;
}

/* Query heads per item (a chunk of the group), lanes per cache row, and the splits per
 * token at most. Fewer items than resident blocks: as many splits as one wave of
 * them takes; more: the fewest splits that fill the waves to DEC_FILL percent
 * (items of one batch are about equal). At most DEC_SPLITS_MAX per token, rows per
 * split at least a round's, and ATT_WS_ROWS partials in all. */
#define DEC_FILL 85

static void dec_plan(struct attn_args *a, int resident)
{
    a->nhc = ceil_div(a->r, DEC_HG_MAX);
    a->hg = ceil_div(a->r, a->nhc);
    a->lpr = 1;
    while (a->lpr * DEC_DIMS(dec_hgm(a->hg)) < a->hd) a->lpr *= 2;
    a->min_split = ATT_THREADS / a->lpr * DEC_R(dec_hgm(a->hg)); /* a round's rows */
    const long long units = (long long)a->n_tok * a->n_kv * a->nhc;
    long long most = ceil_div(a->ctx, a->min_split);
    most = most < DEC_SPLITS_MAX ? most : DEC_SPLITS_MAX;
    const long long ws_most = ATT_WS_ROWS / ((long long)a->n_tok * a->n_head);
    most = most < ws_most ? most : ws_most;
    long long n = 1;
    if (units <= resident) {
        n = resident / units;
    } else {
        for (; n < most; n++) {
            const long long items = units * n, waves = (items + resident - 1) / resident;
            if (100 * items >= DEC_FILL * waves * resident) break;
        }
    }
    n = n < most ? n : most;
    a->n_splits = n > 1 ? (int)n : 1;
}

#if defined(RF_HIP)
#ifndef cudaStreamCaptureStatus
#define cudaStreamCaptureStatus hipStreamCaptureStatus
#define cudaStreamCaptureStatusNone hipStreamCaptureStatusNone
#define cudaStreamGetCaptureInfo hipStreamGetCaptureInfo
#endif
#endif

/* The split counters read zero when a launch starts, and each launch leaves them so:
 * zeroed before every launch outside a capture, and at the first launch of each
 * capture with this workspace (the recorded memset runs at each replay). */
static rf_status dec_counters(cudaStream_t st, void *work)
{
    static unsigned long long last_id;
    static void *last_work;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    unsigned long long id = 0;
    if (cudaStreamGetCaptureInfo(st, &cs, &id) != cudaSuccess)
        return launched("attn_dec (capture state)");
    if (cs != cudaStreamCaptureStatusNone) {
        if (__atomic_load_n(&last_id, __ATOMIC_RELAXED) == id &&
            __atomic_load_n(&last_work, __ATOMIC_RELAXED) == work)
            return RF_OK;
    }
    if (cudaMemsetAsync(work, 0, DEC_CNT_BYTES, st) != cudaSuccess)
        return launched("attn_dec (counter reset)");
    if (cs != cudaStreamCaptureStatusNone) {
        __atomic_store_n(&last_work, (void *)NULL, __ATOMIC_RELAXED);
        __atomic_store_n(&last_id, id, __ATOMIC_RELAXED);
        __atomic_store_n(&last_work, work, __ATOMIC_RELAXED);
    }
    return RF_OK;
}

static rf_status run_decode(cudaStream_t st, struct attn_args *a, void *work, size_t work_bytes)
{
    if (a->ctx > INT32_MAX - 4096) /* positions a round past the last stay in int */
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu attention: %d cache positions", a->ctx);
    a->nhc = ceil_div(a->r, DEC_HG_MAX);
    const int hgm = dec_hgm(ceil_div(a->r, a->nhc));
    const int k = dec_variant(hgm, a->hd % 8 == 0);
    const int resident = dec_resident(k);
    dec_plan(a, resident);
    const size_t need = a->n_splits > 1
                            ? DEC_CNT_BYTES + (size_t)a->n_tok * a->n_head * a->n_splits *
                                                  ((size_t)a->hd + 2) * sizeof(float)
                            : 0;
    if (need > work_bytes || (need && !work))
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "gpu attention: workspace of %zu bytes, the decode kernel needs %zu",
                       work_bytes, need);
    a->cnt = (unsigned *)work;
    a->ws = work ? (float *)((char *)work + DEC_CNT_BYTES) : NULL;
    if (a->n_splits > 1) RF_TRY(dec_counters(st, work));
    const long long items = (long long)a->n_tok * a->n_kv * a->nhc * a->n_splits;
    const int grid = items < resident ? (int)items : resident;
    rf_status s = RF_OK;
#define DEC_GO(h, v) s = dec_launch<h, v>(st, a, grid)
    DEC_SWITCH(k, DEC_GO)
#undef DEC_GO
    return s;
}

static rf_status run_prefill(cudaStream_t st, struct attn_args *a)
{
    const long long tiles = ((long long)a->n_tok * a->r + ATT_BQ - 1) / ATT_BQ;
    if (tiles > INT32_MAX || a->n_kv > 65535)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu attention: prefill grid too large");
    const dim3 grid((unsigned)tiles, a->n_kv, 1);
    attn_prefill<<<grid, ATT_THREADS, pf_smem_bytes(a->bk, a->hd), st>>>(*a);
    return launched("attn_prefill");
}

/* ---- tensor cores (CUDA): one kernel for decode and prefill ----
 *
 * Block (tile of MMA_BQ query rows of one KV head, split of the sequence), a warp per
 * 16 rows, the f16 q fragments held in registers for the whole block. Cache tiles of
 * MMA_BK rows stream through two shared-memory stages with cp.async (the next tile
 * loads while this one is used); S = q k^T and O += P v run as m16n8k16 f16 products
 * with f32 accumulation, P going from the S accumulators to f16 A fragments without
 * touching shared memory, v read with ldmatrix.trans. Splits work as in the decode
 * kernel (partials + attn_reduce), so a step with few query rows still fills the GPU.
 * HIP builds and head_dim not a multiple of 16 or over MMA_HD_MAX use the kernels above. */
#if !defined(RF_HIP)

#define MMA_BQ 64 /* query rows per block: 16 per warp */
#define MMA_BK 32 /* cache rows per tile */
#define MMA_HD_MAX 128
#define MMA_KS (MMA_HD_MAX / 16) /* k-steps of q.k at most */
#define MMA_NT (MMA_HD_MAX / 8)  /* n-tiles of the output at most */

static __device__ __forceinline__ void mma_16816(float *c, const uint32_t *a, uint32_t b0,
                                                 uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ void ldsm_x4_trans(uint32_t *r, const void *p)
{
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* 16 bytes global to shared; src_bytes 0 writes zeros. */
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes)
{
    const unsigned addr = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src),
                 "r"(src_bytes));
}

static __device__ __forceinline__ void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::);
}

static __device__ __forceinline__ void cp_async_wait_all_but_one(void)
{
    asm volatile("cp.async.wait_group 1;\n" ::);
}

static __device__ __forceinline__ void cp_async_wait_all(void)
{
    asm volatile("cp.async.wait_group 0;\n" ::);
}

/* Stage st: K at k + st * stage, V at k + st * stage + MMA_BK * ks, flags at
 * valid + st * MMA_BK (arithmetic, not arrays: a run-time index would put them in
 * local memory). */
struct mma_smem {
    uint32_t *k, *q;       /* rows of ks words (head_dim/2 + 4: no bank conflicts) */
    int stage;             /* words per stage */
    int *valid;            /* (2, MMA_BK) */
    int *shi, *slo, *sseq; /* (MMA_BQ) per query row; shi < slo: sees nothing */
    int *list;             /* count, then (sequence, first, last cache row) each */
};

static __device__ __forceinline__ struct mma_smem mma_layout(uint32_t *smem, int ks)
{
    struct mma_smem s;
    s.k = smem;
    s.stage = 2 * MMA_BK * ks;
    s.q = smem; /* (MMA_BQ, ks): stage 0, only before the first tile */
    s.valid = (int *)(smem + 2 * s.stage);
    s.shi = s.valid + 2 * MMA_BK;
    s.slo = s.shi + MMA_BQ;
    s.sseq = s.slo + MMA_BQ;
    s.list = s.sseq + MMA_BQ;
    return s;
}

static size_t mma_smem_bytes(int hd)
{
    const size_t ks = (size_t)hd / 2 + 4;
    return 4 * (4 * MMA_BK * ks + 2 * MMA_BK + 3 * MMA_BQ + 1 + 3 * MMA_BQ);
}

/* Query rows of the block (token, head) with what they see, and q as f16. */
static __device__ __forceinline__ void mma_load_rows(const struct attn_args *a,
                                                     const struct mma_smem *s, int kvh)
{
    const int ks = a->hd / 2 + 4;
    const int r0 = blockIdx.x * MMA_BQ;
    if (threadIdx.x < MMA_BQ) {
        const int t = (r0 + (int)threadIdx.x) / a->r;
        int sq = -1, lo = 0, hi = -1;
        if (t < a->n_tok) {
            const int v = a->seq ? a->seq[t] : 0;
            if (v >= 0 && v < a->n_seq) {
                sq = v;
                lo = vis_lo(a, a->pos[t]);
                hi = vis_hi(a, a->pos[t]);
            }
        }
        s->sseq[threadIdx.x] = sq, s->slo[threadIdx.x] = lo, s->shi[threadIdx.x] = hi;
    }
    load_q_rows(a, s->q, ks, r0, MMA_BQ, kvh);
}

static __device__ __forceinline__ int warp_min_i(int v)
{
    for (int m = 16; m > 0; m /= 2) v = min(v, __shfl_xor_sync(RF_FULL_MASK, v, m));
    return v;
}

static __device__ __forceinline__ int warp_max_i(int v)
{
    for (int m = 16; m > 0; m /= 2) v = max(v, __shfl_xor_sync(RF_FULL_MASK, v, m));
    return v;
}

/* Warp 0: the sequences of the block's rows in increasing order with the cache rows
 * of this split they see (first, last), those that see any, into the list;
 * list[0] = their count. Lane i speaks for rows i and i + 32. */
static __device__ __forceinline__ void mma_seq_list(const struct attn_args *a,
                                                    const struct mma_smem *s)
{
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x, s0 = blockIdx.z * a->split_len, s1 = s0 + a->split_len - 1;
    int seq[2], lo[2], hi[2], n = 0;
    for (int h = 0; h < 2; h++) {
        const int i = lane + 32 * h;
        seq[h] = s->shi[i] >= s->slo[i] ? s->sseq[i] : -1; /* rows that see nothing: none */
        lo[h] = s->slo[i], hi[h] = s->shi[i];
    }
    for (int prev = -1;;) {
        const int c0 = seq[0] > prev ? seq[0] : INT32_MAX, c1 = seq[1] > prev ? seq[1] : INT32_MAX;
        const int sq = warp_min_i(min(c0, c1));
        if (sq == INT32_MAX) break;
        const int l =
            warp_min_i(min(seq[0] == sq ? lo[0] : INT32_MAX, seq[1] == sq ? lo[1] : INT32_MAX));
        const int u = warp_max_i(max(seq[0] == sq ? hi[0] : -1, seq[1] == sq ? hi[1] : -1));
        const int kb = l > s0 ? l : s0, ke = u < s1 ? u : s1;
        if (kb <= ke && lane == 0) {
            s->list[1 + 3 * n] = sq, s->list[2 + 3 * n] = kb, s->list[3 + 3 * n] = ke;
        }
        n += kb <= ke;
        prev = sq;
    }
    if (lane == 0) s->list[0] = n;
}

/* Queues the copy of cache rows k0..k0+MMA_BK-1 of sequence sq (zeros past kend or
 * without a block) into one stage. */
/* The 16-byte chunks a thread copies: chunk i is row j[i], column cc[i] of a tile
 * (fixed for the whole kernel, so computed once). */
struct mma_chunks {
    int j[MMA_BK * MMA_HD_MAX / 8 / ATT_THREADS], w[MMA_BK * MMA_HD_MAX / 8 / ATT_THREADS];
    int n; /* chunks of this thread */
};

static __device__ __forceinline__ void mma_chunks_of(const struct attn_args *a,
                                                     struct mma_chunks *c)
{
    const int cpr = a->hd / 8;
    c->n = 0;
#pragma unroll
    for (int i = 0; i < MMA_BK * MMA_HD_MAX / 8 / ATT_THREADS; i++) {
        const int k = threadIdx.x + ATT_THREADS * i;
        c->j[i] = k / cpr, c->w[i] = (k % cpr) * 4; /* word offset in the row */
        c->n += k < MMA_BK * cpr;
    }
}

/* Queues the copy of cache rows k0..k0+MMA_BK-1 of sequence sq (zeros past kend or
 * without a block) into one stage; the block-table reads of all chunks are in
 * flight together. */
static __device__ __forceinline__ void mma_issue(const struct attn_args *a,
                                                 const struct mma_chunks *c, int sq, int kvh,
                                                 int k0, int kend, uint32_t *sk, uint32_t *sv,
                                                 int *valid)
{
    const int ks = a->hd / 2 + 4;
    const long long head_off = (long long)kvh * a->hd;
#pragma unroll
    for (int i = 0; i < MMA_BK * MMA_HD_MAX / 8 / ATT_THREADS; i++) {
        if (i >= c->n) break;
        const int j = c->j[i], kpos = k0 + j;
        const long long row = kpos <= kend ? cache_row(a, sq, kpos) : -1;
        const long long off = row >= 0 ? row * a->width + head_off + 2 * c->w[i] : 0;
        cp_async16(sk + j * ks + c->w[i], a->kp + off, row >= 0 ? 16 : 0);
        cp_async16(sv + j * ks + c->w[i], a->vp + off, row >= 0 ? 16 : 0);
        if (c->w[i] == 0) valid[j] = row >= 0;
    }
    cp_async_commit();
}

/* A warp's two rows per thread (g and g + 8 of its 16): what they see, and their
 * running max, partial sum (this thread's columns only) and output fragments. */
struct mma_rows {
    int seq[2], lo[2], hi[2];
    float m[2], l[2];
    float o[MMA_NT][4];
};

static __device__ __forceinline__ void mma_tile(const struct attn_args *a, const uint32_t *sk,
                                                const uint32_t *sv, const int *valid, int sq,
                                                int k0, const uint32_t (*qf)[4], struct mma_rows *r)
{
    const int lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int ks = a->hd / 2 + 4, nks = a->hd / 16, nnt = a->hd / 8;
    float sc[MMA_BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; nt++) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < MMA_KS; kk++) {
        if (kk >= nks) break;
#pragma unroll
        for (int nt = 0; nt < MMA_BK / 8; nt++) {
            const uint32_t *kr = sk + (nt * 8 + g) * ks + kk * 8 + tig;
            mma_16816(sc[nt], qf[kk], kr[0], kr[4]);
        }
    }
    float mx[2] = {-INFINITY, -INFINITY};
    int clo[2], chi[2]; /* the columns each row sees; none for rows of other sequences */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        clo[h] = r->seq[h] == sq ? r->lo[h] - k0 : MMA_BK;
        chi[h] = r->seq[h] == sq ? r->hi[h] - k0 : -1;
    }
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; nt++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int h = c / 2, col = nt * 8 + tig * 2 + (c & 1);
            const bool ok = col >= clo[h] && col <= chi[h] && valid[col];
            sc[nt][c] = ok ? logit(a, sc[nt][c]) : -INFINITY;
            mx[h] = fmaxf(mx[h], sc[nt][c]);
        }
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        mx[h] = group_max(mx[h], 4);
        const float m_new = fmaxf(r->m[h], mx[h]);
        corr[h] = m_new == -INFINITY ? 1.0f : expf(r->m[h] - m_new);
        r->m[h] = m_new;
        r->l[h] *= corr[h];
    }
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; nt++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int h = c / 2;
            const float p = sc[nt][c] == -INFINITY ? 0.0f : expf(sc[nt][c] - r->m[h]);
            sc[nt][c] = p;
            r->l[h] += p;
        }
    uint32_t pf[MMA_BK / 16][4];
#pragma unroll
    for (int j = 0; j < MMA_BK / 16; j++) {
        pf[j][0] = pack_halves(sc[2 * j][0], sc[2 * j][1]);
        pf[j][1] = pack_halves(sc[2 * j][2], sc[2 * j][3]);
        pf[j][2] = pack_halves(sc[2 * j + 1][0], sc[2 * j + 1][1]);
        pf[j][3] = pack_halves(sc[2 * j + 1][2], sc[2 * j + 1][3]);
    }
    const unsigned short *svh = (const unsigned short *)sv;
#pragma unroll
    for (int dn = 0; dn < MMA_NT; dn++) {
        if (dn >= nnt) break;
        r->o[dn][0] *= corr[0], r->o[dn][1] *= corr[0];
        r->o[dn][2] *= corr[1], r->o[dn][3] *= corr[1];
        uint32_t b[4];
        ldsm_x4_trans(b, svh + lane * 2 * ks + dn * 8); /* lane = cache row of the tile */
        mma_16816(r->o[dn], pf[0], b[0], b[1]);
        mma_16816(r->o[dn], pf[1], b[2], b[3]);
    }
}

/* Rows of this warp: normalized output when the row's visible cache rows lie in this
 * split alone, else the split's partial (acc, max, sum) for attn_reduce. */
static __device__ __forceinline__ void mma_store(const struct attn_args *a, int kvh,
                                                 struct mma_rows *r)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int nnt = a->hd / 8;
    const long long n_part = (long long)a->n_tok * a->n_head * a->n_splits;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        r->l[h] = group_sum(r->l[h], 4);
        const int rr = blockIdx.x * MMA_BQ + warp * 16 + g + 8 * h, t = rr / a->r;
        if (t >= a->n_tok) continue;
        int first = 0, last = 0;
        if (r->hi[h] >= r->lo[h]) first = r->lo[h] / a->split_len, last = r->hi[h] / a->split_len;
        const int split = blockIdx.z;
        if (split < first || split > last) continue;
        const long long th = (long long)t * a->n_head + kvh * a->r + rr % a->r;
        const bool alone = first == last;
        const float inv = alone ? (r->l[h] > 0.0f ? 1.0f / r->l[h] : 0.0f) : 1.0f;
        float *dst = alone ? a->out + th * a->hd : a->ws + (th * a->n_splits + split) * a->hd;
#pragma unroll
        for (int dn = 0; dn < MMA_NT; dn++) {
            if (dn >= nnt) break;
            float2 v;
            v.x = r->o[dn][2 * h] * inv, v.y = r->o[dn][2 * h + 1] * inv;
            *(float2 *)(dst + dn * 8 + tig * 2) = v;
        }
        if (!alone && tig == 0) {
            float *ml = a->ws + n_part * a->hd + (th * a->n_splits + split) * 2;
            ml[0] = r->m[h], ml[1] = r->l[h];
        }
    }
}

__global__ void __launch_bounds__(ATT_THREADS) attn_mma(struct attn_args a)
{
    extern __shared__ __align__(16) uint32_t smem[];
    const int kvh = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, tig = lane % 4, ks = a.hd / 2 + 4, nks = a.hd / 16;
    const struct mma_smem s = mma_layout(smem, ks);
    mma_load_rows(&a, &s, kvh);
    __syncthreads();
    uint32_t qf[MMA_KS][4];
#pragma unroll
    for (int kk = 0; kk < MMA_KS; kk++) {
        if (kk >= nks) break;
        const uint32_t *q0 = s.q + (warp * 16 + g) * ks + kk * 8 + tig, *q1 = q0 + 8 * ks;
        qf[kk][0] = q0[0], qf[kk][1] = q1[0], qf[kk][2] = q0[4], qf[kk][3] = q1[4];
    }
    struct mma_rows r;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = warp * 16 + g + 8 * h;
        r.seq[h] = s.sseq[row], r.lo[h] = s.slo[row], r.hi[h] = s.shi[row];
        r.m[h] = -INFINITY, r.l[h] = 0.0f;
    }
#pragma unroll
    for (int dn = 0; dn < MMA_NT; dn++) r.o[dn][0] = r.o[dn][1] = r.o[dn][2] = r.o[dn][3] = 0.0f;
    mma_seq_list(&a, &s);
    __syncthreads(); /* q read from stage 0 by all; the list written */
    /* The tiles of all sequences form one stream, so the copy of the next tile (of
     * this sequence or the next) always overlaps the products of this one. */
    const int n_list = s.list[0], vo = MMA_BK * ks; /* V after K in a stage */
    if (n_list == 0) {
        mma_store(&a, kvh, &r);
        return;
    }
    struct mma_chunks ch;
    mma_chunks_of(&a, &ch);
    int li = 0, k0 = s.list[2];
    mma_issue(&a, &ch, s.list[1], kvh, k0, s.list[3], s.k, s.k + vo, s.valid);
    for (int st = 0; li < n_list; st ^= 1) {
        const int sq = s.list[1 + 3 * li], ke = s.list[3 + 3 * li];
        int nli = li, nk0 = k0 + MMA_BK;
        if (nk0 > ke && ++nli < n_list) nk0 = s.list[2 + 3 * nli];
        if (nli < n_list) {
            uint32_t *nk = s.k + (st ^ 1) * s.stage;
            mma_issue(&a, &ch, s.list[1 + 3 * nli], kvh, nk0, s.list[3 + 3 * nli], nk, nk + vo,
                      s.valid + (st ^ 1) * MMA_BK);
            cp_async_wait_all_but_one();
        } else {
            cp_async_wait_all();
        }
        __syncthreads();
        /* warps with no row of this sequence only help with the copies */
        const uint32_t *ck = s.k + st * s.stage;
        if (__any_sync(RF_FULL_MASK, r.seq[0] == sq || r.seq[1] == sq))
            mma_tile(&a, ck, ck + vo, s.valid + st * MMA_BK, sq, k0, qf, &r);
        __syncthreads(); /* this stage is refilled next */
        li = nli, k0 = nk0;
    }
    mma_store(&a, kvh, &r);
}

static bool mma_fits(const struct attn_args *a) { return a->hd % 16 == 0 && a->hd <= MMA_HD_MAX; }

/* n splits at most max_splits and at most ATT_WS_ROWS partials (the workspace), each
 * a whole number of ATT_MIN_SPLIT rows; sets split_len and n_splits. */
static void split_cap(struct attn_args *a, int *n, int max_splits)
{
    const long long rows = (long long)a->n_tok * a->n_head;
    if (*n > max_splits) *n = max_splits;
    if (*n > 1 && (long long)*n * rows > ATT_WS_ROWS) *n = (int)(ATT_WS_ROWS / rows);
    if (*n < 1) *n = 1;
    a->split_len = ceil_div(ceil_div(a->ctx, *n), ATT_MIN_SPLIT) * ATT_MIN_SPLIT;
    a->n_splits = ceil_div(a->ctx, a->split_len);
}

/* Splits: enough blocks of MMA_BQ query rows for ATT_TARGET_BLOCKS. */
static void mma_plan(struct attn_args *a)
{
    const long long tiles = ((long long)a->n_tok * a->r + MMA_BQ - 1) / MMA_BQ;
    const long long units = tiles * a->n_kv;
    int n = units >= ATT_TARGET_BLOCKS ? 1 : ceil_div(ATT_TARGET_BLOCKS, units);
    split_cap(a, &n, ceil_div(a->ctx, ATT_MIN_SPLIT));
}

static rf_status run_mma(cudaStream_t st, struct attn_args *a, void *work, size_t work_bytes)
{
    mma_plan(a);
    const long long tiles = ((long long)a->n_tok * a->r + MMA_BQ - 1) / MMA_BQ;
    if (tiles > INT32_MAX || a->n_kv > 65535)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu attention: grid too large");
    const size_t need = a->n_splits > 1
                            ? DEC_CNT_BYTES + (size_t)a->n_tok * a->n_head * a->n_splits *
                                                  ((size_t)a->hd + 2) * sizeof(float)
                            : 0;
    if (need > work_bytes || (need && !work))
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "gpu attention: workspace of %zu bytes, the kernel needs %zu", work_bytes,
                       need);
    a->ws = work ? (float *)((char *)work + DEC_CNT_BYTES) : NULL; /* the counters stay zero */
    const dim3 grid((unsigned)tiles, a->n_kv, a->n_splits);
    attn_mma<<<grid, ATT_THREADS, mma_smem_bytes(a->hd), st>>>(*a);
    RF_TRY(launched("attn_mma"));
    if (a->n_splits > 1) {
        attn_reduce<<<a->n_tok * a->n_head, ATT_THREADS, 0, st>>>(*a);
        RF_TRY(launched("attn_reduce"));
    }
    return RF_OK;
}
#endif /* !RF_HIP */

extern "C" rf_status rf_gpu_attention(void *stream, const float *q, const uint16_t *k_pool,
                                      const uint16_t *v_pool, float *out,
                                      const struct rf_attn_params *p, void *work, size_t work_bytes,
                                      enum rf_gpu_attn_path path)
{
    RF_TRY(attn_check(p));
    if (p->n_tok == 0) return RF_OK;
    if (((uintptr_t)q | (uintptr_t)out) & 7 || ((uintptr_t)k_pool | (uintptr_t)v_pool) & 15)
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "gpu attention: q and out need 8-byte, the pools 16-byte alignment");
    if (p->n_tok > (INT32_MAX - 2 * MMA_ROWS_PAD) / p->n_head)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu attention: %lld tokens", (long long)p->n_tok);
    struct attn_args a = attn_args_of(q, k_pool, v_pool, out, p);
    cudaStream_t st = (cudaStream_t)stream;
    /* few query tokens per sequence: the decode kernel (its work follows the positions,
     * whatever the tables address); else the tiled kernels */
    const bool few = p->n_tok <= 2 * (int64_t)p->n_seq;
    if (path == RF_GPU_ATTN_AUTO && few) path = RF_GPU_ATTN_DECODE;
#if !defined(RF_HIP)
    if (path == RF_GPU_ATTN_AUTO && mma_fits(&a)) path = RF_GPU_ATTN_TENSOR;
    if (path == RF_GPU_ATTN_TENSOR) {
        if (!mma_fits(&a))
            return rf_fail(RF_STATUS_UNSUPPORTED,
                           "gpu attention: the tensor-core kernel takes head_dim %% 16 == 0 up "
                           "to %d, not %d",
                           MMA_HD_MAX, a.hd);
        return run_mma(st, &a, work, work_bytes);
    }
#else
    if (path == RF_GPU_ATTN_TENSOR)
        return rf_fail(RF_STATUS_UNSUPPORTED, "gpu attention: no tensor-core kernel in HIP builds");
#endif
    if (path == RF_GPU_ATTN_AUTO) path = RF_GPU_ATTN_PREFILL;
    return path == RF_GPU_ATTN_DECODE ? run_decode(st, &a, work, work_bytes) : run_prefill(st, &a);
}

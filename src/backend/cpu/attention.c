/* RoPE, KV-cache stores and attention over the f16 cache.
 *
 * Cache layout: a pool row holds width = n_head_kv * head_dim halves, KV head h at
 * row * width + h * head_dim; a sequence's positions map to rows through its block
 * table (backend.h). Attention tasks are (KV head, a group of the query heads that
 * share it, token): K and V rows are read in blocks, each block used by every query
 * head of the group while it is in L1. A token whose visible positions are not in
 * consecutive blocks has them gathered first, so the sums run in the same order.
 *
 * Numerics follow ggml's CPU path (no flash attention) bit for bit: q rounded to
 * f16, q.k with exact products summed in f32 (in tinyBLAS's or vec_dot's order),
 * softmax with ggml's expf and a double sum, the normalized weights rounded to f16,
 * then the weighted sum of V in f32 (same orders). Rows start at cache row 0 as
 * llama.cpp's do; with a sliding window, at the window's first row rounded down to
 * a multiple of 32 with the rows before it masked, which puts the partial sums on
 * the rows of llama.cpp's (it masks whole rows from row 0), so that these match too. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/fp16.h"
#include "core/status.h"

/* ---- rope ---- */

#define ROPE_PAIRS 128 /* cos/sin table entries built at a time, on the stack */

struct rope_job {
    float *x;
    const int32_t *pos;
    int n_head, head_dim, n_rot;
    float theta_scale, freq_scale;
    bool neox;
};

static void rope_apply(const struct rope_job *j, float *xt, int i0, int n, const float *cs,
                       const float *sn)
{
    const int half = j->n_rot / 2;
    for (int h = 0; h < j->n_head; h++) {
        float *xr = xt + (int64_t)h * j->head_dim;
        for (int i = 0; i < n; i++) {
            /* Normal: pairs (2i, 2i+1). NeoX: pairs (i, i + n_rot/2). */
            float *a = j->neox ? xr + i0 + i : xr + 2 * (i0 + i);
            float *b = j->neox ? a + half : a + 1;
            const float x0 = *a, x1 = *b;
            /* Which product is fused and which rounded alone is what ggml's build
             * does (measured against llama.cpp); it keeps q and k bit-exact. */
            *a = fmaf(x0, cs[i], -(x1 * sn[i]));
            *b = fmaf(x0, sn[i], x1 * cs[i]);
        }
    }
}

/* The angle of pair i is pos * freq_scale * base^(-2i/n_rot), built as ggml does
 * (a running product in f32), so that the rotations match bit for bit. */
static void rope_range(void *varg, int64_t t0, int64_t t1, int ith)
{
    (void)ith;
    const struct rope_job *j = varg;
    const int half = j->n_rot / 2;
    float cs[ROPE_PAIRS], sn[ROPE_PAIRS];
    for (int64_t t = t0; t < t1; t++) {
        float theta = (float)j->pos[t];
        float *xt = j->x + t * j->n_head * (int64_t)j->head_dim;
        for (int i0 = 0; i0 < half; i0 += ROPE_PAIRS) {
            const int n = half - i0 < ROPE_PAIRS ? half - i0 : ROPE_PAIRS;
            for (int i = 0; i < n; i++) {
                cs[i] = cosf(j->freq_scale * theta);
                sn[i] = sinf(j->freq_scale * theta);
                theta *= j->theta_scale;
            }
            rope_apply(j, xt, i0, n, cs, sn);
        }
    }
}

void rf_cpu_rope(void *ctx, float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos,
                 const struct rf_rope_params *p)
{
    /* n_rot beyond head_dim or odd cannot be meant; rotate what is well defined. */
    const int n_rot = (p->n_rot < head_dim ? p->n_rot : head_dim) & ~1;
    if (n_rot <= 0 || n_head <= 0 || n_tok <= 0) return;
    struct rope_job j = {.x = x,
                         .pos = pos,
                         .n_head = n_head,
                         .head_dim = head_dim,
                         .n_rot = n_rot,
                         .freq_scale = p->freq_scale,
                         .neox = p->neox,
                         .theta_scale = powf(p->freq_base, -2.0f / (float)n_rot)};
    rf_cpu_parallel_for(ctx, n_tok, (int64_t)n_head * n_rot * 2 + n_rot * 20, rope_range, &j);
}

/* ---- kv_store ---- */

struct kv_job {
    const struct rf_cpu_kernels *k;
    const float *ks, *vs;
    int64_t width;
    const int32_t *slot;
    uint16_t *kc, *vc;
};

static void kv_range(void *varg, int64_t t0, int64_t t1, int ith)
{
    (void)ith;
    const struct kv_job *j = varg;
    for (int64_t t = t0; t < t1; t++) {
        if (j->slot[t] < 0) continue;
        const size_t row = (size_t)j->slot[t] * (size_t)j->width;
        j->k->to_f16(j->ks + t * j->width, j->kc + row, j->width);
        j->k->to_f16(j->vs + t * j->width, j->vc + row, j->width);
    }
}

void rf_cpu_kv_store(void *ctx, const float *k, const float *v, int64_t n_tok, int64_t width,
                     const int32_t *slot, uint16_t *k_pool, uint16_t *v_pool)
{
    struct rf_cpu_ctx *c = ctx;
    if (n_tok <= 0 || width <= 0) return;
    struct kv_job j = {
        .k = c->k, .ks = k, .vs = v, .width = width, .slot = slot, .kc = k_pool, .vc = v_pool};
    rf_cpu_parallel_for(c, n_tok, 2 * width, kv_range, &j);
}

/* ---- attention ---- */

/* Cache rows per block: one head's K (or V) rows of a block, 16 KiB at head_dim
 * 64, stay in L1 while every query head of the group uses them. */
#define ATTN_ROWS 128

struct attn_job {
    struct rf_cpu_ctx *c;
    const struct rf_attn_params *p;
    const float *q;
    const uint16_t *kc, *vc;
    float *out;
    int n_rep; /* query heads per KV head */
    int gs;    /* query heads per task */
    int n_sub; /* tasks per KV head and token */
    int64_t max_vis;
};

/* First cache row token t sees; it sees rows lo..pos. */
static int64_t first_row(const struct rf_attn_params *p, int64_t t)
{
    const int64_t lo = p->window > 0 ? (int64_t)p->pos[t] - p->window + 1 : 0;
    return lo > 0 ? lo : 0;
}

/* First row token t reads: first_row rounded down to a multiple of every lane count
 * (RF_LANES_VEC is a multiple of RF_LANES_GEMM and of the softmax's 8); the rows
 * read before first_row are masked. */
static int64_t read_row(const struct rf_attn_params *p, int64_t t)
{
    return first_row(p, t) / RF_LANES_VEC * RF_LANES_VEC;
}

/* Scores s (ng, nvis) of the group's query heads qf against nvis K rows of one head
 * at kr, stride halves apart. */
static void attn_scores(const struct attn_job *j, const float *qf, int ng, const uint16_t *kr,
                        size_t stride, int64_t nvis, float *s, int lanes)
{
    const struct rf_attn_params *p = j->p;
    const struct rf_cpu_kernels *k = j->c->k;
    const int hd = p->head_dim;
    for (int64_t r0 = 0; r0 < nvis; r0 += ATTN_ROWS) {
        const int64_t nr = nvis - r0 < ATTN_ROWS ? nvis - r0 : ATTN_ROWS;
        for (int h = 0; h < ng; h++)
            k->dot_f16_rows(qf + h * hd, kr + (size_t)r0 * stride, stride, nr, hd,
                            s + h * nvis + r0, lanes);
    }
    k->scale(s, p->scale, ng * nvis);
    if (p->softcap != 0.0f)
        for (int64_t i = 0; i < ng * nvis; i++) s[i] = p->softcap * tanhf(s[i] / p->softcap);
}

/* Where head kvh's K and V rows of positions lo..lo+nvis-1 of token t's sequence are:
 * in the pools when their blocks are consecutive, else gathered into kg / vg. */
static size_t attn_rows(const struct attn_job *j, int64_t t, int kvh, int64_t lo, int64_t nvis,
                        uint16_t *kg, uint16_t *vg, const uint16_t **kr, const uint16_t **vr)
{
    const struct rf_attn_params *p = j->p;
    const int hd = p->head_dim, bs = p->block_size;
    const size_t width = (size_t)p->n_head_kv * (size_t)hd;
    const int32_t *table = p->block_tables + (int64_t)p->seq[t] * p->max_blocks;
    const int64_t b0 = lo / bs, b1 = (lo + nvis - 1) / bs;
    bool consecutive = true;
    for (int64_t b = b0 + 1; b <= b1 && consecutive; b++) consecutive = table[b] == table[b0] + (b - b0);
    if (consecutive) {
        const size_t row = (size_t)table[b0] * (size_t)bs + (size_t)(lo % bs);
        *kr = j->kc + row * width + (size_t)kvh * hd;
        *vr = j->vc + row * width + (size_t)kvh * hd;
        return width;
    }
    for (int64_t r = 0; r < nvis; r++) {
        const int64_t q = lo + r;
        const size_t row = (size_t)table[q / bs] * (size_t)bs + (size_t)(q % bs);
        memcpy(kg + r * hd, j->kc + row * width + (size_t)kvh * hd, (size_t)hd * 2);
        memcpy(vg + r * hd, j->vc + row * width + (size_t)kvh * hd, (size_t)hd * 2);
    }
    *kr = kg;
    *vr = vg;
    return (size_t)hd;
}

/* Rows of weights s (ng, nvis) to f16-rounded softmax weights, in place. */
static void attn_softmax(const struct rf_cpu_kernels *k, float *s, int ng, int64_t nvis)
{
    for (int h = 0; h < ng; h++) {
        float *sh = s + h * nvis, m = -INFINITY;
        for (int64_t r = 0; r < nvis; r++) m = sh[r] > m ? sh[r] : m;
        /* 1/sum in double, then f32: ggml's soft_max. */
        const float inv = (float)(1.0 / k->softmax_exp(sh, m, nvis));
        /* Normalized weights go through f16 before meeting V, as in ggml's CPU path
         * (the f16 V product converts its other operand), so the numerics match. */
        k->scale_round_f16(sh, inv, sh, nvis);
    }
}

/* ggml's CPU path takes tinyBLAS for the f16 products of a batch (when the shapes
 * tile: k % 8, m % 4) and vec_dot for a single token; each has its own summation
 * order, followed here so that the results match it bit for bit. The order is chosen
 * per token: the batch one when its neighbours in the batch include a token of its
 * sequence (a prompt chunk), the single-token one when it is alone of its sequence (a
 * decode step), so that a sequence's results do not depend on what else is batched
 * with it. */
static bool in_chunk(const struct rf_attn_params *p, int64_t t)
{
    return (t > 0 && p->seq[t - 1] == p->seq[t]) ||
           (t + 1 < p->n_tok && p->seq[t + 1] == p->seq[t]);
}

static void attn_task(void *varg, int64_t id, int ith)
{
    const struct attn_job *j = varg;
    const struct rf_attn_params *p = j->p;
    const struct rf_cpu_kernels *k = j->c->k;
    const int hd = p->head_dim;
    const int64_t t = id % p->n_tok;
    const int g = (int)(id / p->n_tok), kvh = g / j->n_sub;
    const int h0 = kvh * j->n_rep + (g % j->n_sub) * j->gs;
    const int h_end = (kvh + 1) * j->n_rep, ng = h0 + j->gs < h_end ? j->gs : h_end - h0;
    const int64_t lo = read_row(p, t), nvis = p->pos[t] - lo + 1, masked = first_row(p, t) - lo;

    float *qf = rf_cpu_work_slice(j->c, ith); /* (gs, hd) q rounded to f16 */
    float *s = qf + (size_t)j->gs * hd;       /* (gs, max_vis) scores, then weights */
    uint16_t *kg = (uint16_t *)(s + (size_t)j->gs * j->max_vis); /* (max_vis, hd) gathered */
    uint16_t *vg = kg + (size_t)j->max_vis * hd;
    const uint16_t *kr, *vr;
    const size_t stride = attn_rows(j, t, kvh, lo, nvis, kg, vg, &kr, &vr);
    /* q goes through f16 as in ggml's CPU path, so q.k sees the same operands. */
    k->scale_round_f16(j->q + (t * p->n_head + h0) * hd, 1.0f, qf, ng * hd);
    const bool chunk = in_chunk(p, t);
    attn_scores(j, qf, ng, kr, stride, nvis, s,
                chunk && hd % 8 == 0 ? RF_LANES_GEMM : RF_LANES_VEC);
    for (int h = 0; h < ng; h++)
        for (int64_t r = 0; r < masked; r++) s[h * nvis + r] = -INFINITY;
    attn_softmax(k, s, ng, nvis);
    /* The group's output rows are contiguous: (ng, hd) at ot. */
    float *ot = j->out + (t * p->n_head + h0) * hd;
    for (int h = 0; h < ng; h++)
        k->wsum_f16_rows(ot + h * hd, s + h * nvis, vr, stride, nvis, hd,
                         chunk && hd % 4 == 0 ? RF_LANES_GEMM : RF_LANES_VEC);
}

static rf_status attn_check_token(const struct rf_attn_params *p, int64_t t)
{
    const int32_t pos = p->pos[t], sq = p->seq[t];
    if (pos < 0 || sq < 0 || sq >= p->n_seq || pos / p->block_size >= p->max_blocks)
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "attention: token %lld at position %d of sequence %d is outside %d "
                       "sequences of %d blocks of %d",
                       (long long)t, pos, sq, p->n_seq, p->max_blocks, p->block_size);
    const int32_t *table = p->block_tables + (int64_t)sq * p->max_blocks;
    for (int32_t b = 0; b <= pos / p->block_size; b++)
        if (table[b] < 0)
            return rf_fail(RF_STATUS_INVALID_ARG,
                           "attention: position %d of sequence %d has no block", b * p->block_size,
                           sq);
    return RF_OK;
}

static rf_status attn_check(const struct rf_attn_params *p)
{
    if (p->n_tok < 0 || p->n_head <= 0 || p->n_head_kv <= 0 || p->head_dim <= 0 ||
        p->window < 0 || p->n_head % p->n_head_kv || p->block_size <= 0 || p->max_blocks <= 0 ||
        p->n_seq <= 0 || (p->n_tok > 0 && (!p->pos || !p->seq || !p->block_tables)))
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "attention: bad parameters (n_tok %lld, n_head %d, n_head_kv %d, head_dim "
                       "%d, window %d, %d sequences of %d blocks of %d)",
                       (long long)p->n_tok, p->n_head, p->n_head_kv, p->head_dim, p->window,
                       p->n_seq, p->max_blocks, p->block_size);
    for (int64_t t = 0; t < p->n_tok; t++) RF_TRY(attn_check_token(p, t));
    return RF_OK;
}

/* Splits each KV head's query group into sub-groups only when there are too few
 * (token, KV head) pairs to keep every thread busy (decode with few KV heads). */
static void attn_split(struct attn_job *j, int nth)
{
    const int64_t units = j->p->n_tok * j->p->n_head_kv;
    int n_sub = units >= 2 * nth ? 1 : (int)((2 * nth + units - 1) / units);
    if (n_sub > j->n_rep) n_sub = j->n_rep;
    j->gs = (j->n_rep + n_sub - 1) / n_sub;
    j->n_sub = (j->n_rep + j->gs - 1) / j->gs;
}

rf_status rf_cpu_attention(void *ctx, const float *q, const uint16_t *k_pool,
                           const uint16_t *v_pool, float *out, const struct rf_attn_params *p)
{
    struct rf_cpu_ctx *c = ctx;
    RF_TRY(attn_check(p));
    if (p->n_tok == 0) return RF_OK;
    struct attn_job j = {.c = c,
                         .p = p,
                         .q = q,
                         .kc = k_pool,
                         .vc = v_pool,
                         .out = out,
                         .n_rep = p->n_head / p->n_head_kv};
    attn_split(&j, c->nth);
    for (int64_t t = 0; t < p->n_tok; t++) {
        const int64_t nvis = p->pos[t] - read_row(p, t) + 1;
        if (nvis > j.max_vis) j.max_vis = nvis;
    }
    /* Per thread: q and scores, then K and V rows gathered when blocks are scattered. */
    const size_t floats = (size_t)j.gs * ((size_t)p->head_dim + (size_t)j.max_vis) +
                          (size_t)j.max_vis * (size_t)p->head_dim;
    RF_TRY(rf_cpu_work_reserve(c, floats * sizeof(float), "attention"));
    const int64_t n_tasks = p->n_tok * p->n_head_kv * j.n_sub;
    const bool serial = p->n_tok * p->n_head * j.max_vis * p->head_dim < RF_CPU_PAR_MIN_WORK;
    rf_cpu_parallel_tasks(c, n_tasks, serial, attn_task, &j);
    return RF_OK;
}

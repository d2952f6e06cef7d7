/* The transformer forward pass, written once for every backend and architecture:
 * pre-norm attention and SwiGLU MLP blocks with residuals, variants chosen by hparams
 * (Gemma: scaled embeddings, norms after attention and MLP too, GeGLU, q scaled before
 * attention, per-layer window and RoPE base). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/status.h"
#include "runtime/scratch.h"
#include "sampling/sampler.h"

/* Debugging: with RF_TRACE_DIR set, each op's output is written as raw f32 to
 * $RF_TRACE_DIR/<call>/<name>-<layer>.f32 (call = rf_forward calls so far), names as
 * llama.cpp's graph callbacks use them, for tools/trace_compare.py. Read once; the
 * cost when unset is one branch per op. Only host-memory lanes are traced. */
static const char *trace_dir(void)
{
    static int init;
    static const char *dir;
    if (!init) {
        dir = getenv("RF_TRACE_DIR");
        if (dir && !*dir) dir = NULL;
        init = 1;
    }
    return dir;
}

static int trace_call;

static void trace(const char *name, int il, const float *x, int64_t n)
{
    const char *dir = trace_dir();
    if (!dir) return;
    char path[1024];
    if (il >= 0) snprintf(path, sizeof path, "%s/%d/%s-%d.f32", dir, trace_call, name, il);
    else snprintf(path, sizeof path, "%s/%d/%s.f32", dir, trace_call, name);
    FILE *f = fopen(path, "wb");
    if (!f) return; /* the directory <dir>/<call> must exist: trace_compare.py makes them */
    fwrite(x, sizeof(float), (size_t)n, f);
    fclose(f);
}

/* What every op of one step needs besides the lane's buffers. */
struct step {
    const struct rf_model *m;
    struct rf_scratch *s;
    struct rf_kv_cache *kv;
    int32_t n;        /* tokens */
    int32_t max_pos;  /* bound on the positions, for the backends */
    bool capture;     /* ops are being recorded: no host reads of their outputs */
};

static void trace_lane(const struct rf_lane *L, const char *name, int il, const float *x,
                       int64_t n)
{
    if (L->be->host_memory) trace(name, il, x, n);
}

/* The products of one input in one backend call where the backend takes several. */
static rf_status products(const struct rf_lane *L, const struct rf_matmul_out *outs, int n,
                          const float *x, int64_t x_cols, int32_t n_tok)
{
    const struct rf_backend_i *be = L->be->iface;
    if (be->matmul_multi) return be->matmul_multi(L->be->ctx, outs, n, x, x_cols, n_tok);
    for (int i = 0; i < n; i++)
        RF_TRY(be->matmul(L->be->ctx, outs[i].w, x, x_cols, outs[i].y, n_tok));
    return RF_OK;
}

/* The residual stream L->x += x . w^T (through tmp, and then post_norm when the model
 * has one; in one product where the backend adds into its output). */
static rf_status residual_product(const struct step *st, struct rf_lane *L,
                                  const struct rf_tensor *w, const float *x, int64_t x_cols,
                                  float *tmp, const struct rf_tensor *post_norm, int il,
                                  const char *out_name, const char *norm_name)
{
    const struct rf_backend_i *be = L->be->iface;
    void *bc = L->be->ctx;
    const struct rf_hparams *hp = &st->m->hp;
    const int64_t d = hp->n_embd;
    const int32_t n = st->n;
    if (!hp->post_norms && be->matmul_multi) {
        const struct rf_matmul_out o = {w, L->x, true};
        return be->matmul_multi(bc, &o, 1, x, x_cols, n);
    }
    RF_TRY(be->matmul(bc, w, x, x_cols, tmp, n));
    trace_lane(L, out_name, il, tmp, n * d);
    if (hp->post_norms) {
        RF_TRY(be->rms_norm(bc, tmp, post_norm, tmp, d, n, hp->norm_eps));
        trace_lane(L, norm_name, il, tmp, n * d);
    }
    be->add(bc, L->x, tmp, (int64_t)n * d);
    return RF_OK;
}

static rf_status qkv_block(const struct step *st, struct rf_lane *L, const struct rf_layer *l,
                           int il)
{
    const struct rf_backend_i *be = L->be->iface;
    void *bc = L->be->ctx;
    const struct rf_hparams *hp = &st->m->hp;
    const int64_t d = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kvw = (int64_t)hp->n_head_kv * hp->head_dim;
    const int32_t n = st->n;

    RF_TRY(be->rms_norm(bc, L->x, &l->attn_norm, L->h, d, n, hp->norm_eps));
    trace_lane(L, "attn_norm", il, L->h, n * d);
    const struct rf_matmul_out qkv[3] = {
        {&l->wq, L->q, false}, {&l->wk, L->k, false}, {&l->wv, L->v, false}};
    RF_TRY(products(L, qkv, 3, L->h, d, n));
    if (hp->attn_bias) {
        RF_TRY(be->add_bias(bc, L->q, &l->bq, qw, n));
        RF_TRY(be->add_bias(bc, L->k, &l->bk, kvw, n));
        RF_TRY(be->add_bias(bc, L->v, &l->bv, kvw, n));
    }
    if (hp->qk_norm) {
        RF_TRY(be->rms_norm(bc, L->q, &l->q_norm, L->q, hp->head_dim, (int64_t)n * hp->n_head,
                            hp->norm_eps));
        RF_TRY(be->rms_norm(bc, L->k, &l->k_norm, L->k, hp->head_dim,
                            (int64_t)n * hp->n_head_kv, hp->norm_eps));
    }
    return RF_OK;
}

/* RoPE on q and k, then k and v into the cache (one op where the backend has it). */
static void rope_store(const struct step *st, struct rf_lane *L, const struct rf_layer *l, int il)
{
    const struct rf_backend_i *be = L->be->iface;
    void *bc = L->be->ctx;
    const struct rf_hparams *hp = &st->m->hp;
    const int64_t qw = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kvw = (int64_t)hp->n_head_kv * hp->head_dim;
    const int32_t n = st->n;
    struct rf_kv_cache *kv = st->kv;
    const struct rf_rope_params rope = {
        .n_rot = hp->n_rot, .freq_base = l->rope_base, .freq_scale = l->rope_scale,
        .neox = hp->rope_neox};
    if (be->rope_store && kv->width == kvw) {
        be->rope_store(bc, L->q, L->k, L->v, n, hp->n_head, hp->n_head_kv, hp->head_dim, L->pos,
                       &rope, L->slot, kv->k[il], kv->v[il]);
    } else {
        be->rope(bc, L->q, n, hp->n_head, hp->head_dim, L->pos, &rope);
        be->rope(bc, L->k, n, hp->n_head_kv, hp->head_dim, L->pos, &rope);
        trace_lane(L, "Qcur", il, L->q, n * qw);
        trace_lane(L, "Kcur", il, L->k, n * kvw);
        trace_lane(L, "Vcur", il, L->v, n * kvw);
        be->kv_store(bc, L->k, L->v, n, kv->width, L->slot, kv->k[il], kv->v[il]);
    }
    if (hp->q_prescale) be->scale(bc, L->q, hp->attn_scale, (int64_t)n * qw);
}

static rf_status attention_block(const struct step *st, struct rf_lane *L,
                                 const struct rf_layer *l, int il)
{
    const struct rf_backend_i *be = L->be->iface;
    void *bc = L->be->ctx;
    const struct rf_hparams *hp = &st->m->hp;
    const int64_t d = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim;
    const int32_t n = st->n;
    struct rf_kv_cache *kv = st->kv;

    RF_TRY(qkv_block(st, L, l, il));
    rope_store(st, L, l, il);
    const struct rf_attn_params ap = {
        .n_tok = n, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
        .pos = L->pos, .seq = L->seq, .block_tables = L->tables, .n_seq = st->s->n_seq,
        .max_blocks = st->s->max_blocks, .block_size = kv->block_size, .max_pos = st->max_pos,
        .scale = hp->q_prescale ? 1.0f : hp->attn_scale, .softcap = hp->attn_softcap,
        .window = l->window};
    RF_TRY(be->attention(bc, L->q, kv->k[il], kv->v[il], L->h, &ap));
    trace_lane(L, "kqv_out", il, L->h, n * qw);
    RF_TRY(residual_product(st, L, &l->wo, L->h, qw, L->q, &l->attn_post_norm, il, "attn_out",
                            "attn_post_norm"));
    trace_lane(L, hp->post_norms ? "sa_out" : "ffn_inp", il, L->x, n * d);
    return RF_OK;
}

static rf_status mlp_block(const struct step *st, struct rf_lane *L, const struct rf_layer *l,
                           int il)
{
    const struct rf_backend_i *be = L->be->iface;
    void *bc = L->be->ctx;
    const struct rf_hparams *hp = &st->m->hp;
    const int64_t d = hp->n_embd;
    const int32_t n = st->n;

    RF_TRY(be->rms_norm(bc, L->x, &l->ffn_norm, L->h, d, n, hp->norm_eps));
    trace_lane(L, "ffn_norm", il, L->h, n * d);
    const struct rf_matmul_out gate_up[2] = {{&l->w_gate, L->gate, false}, {&l->w_up, L->up, false}};
    RF_TRY(products(L, gate_up, 2, L->h, d, n));
    trace_lane(L, "ffn_gate", il, L->gate, n * hp->n_ff);
    trace_lane(L, "ffn_up", il, L->up, n * hp->n_ff);
    if (hp->geglu) be->geglu(bc, L->gate, L->up, L->gate, (int64_t)n * hp->n_ff);
    else be->swiglu(bc, L->gate, L->up, L->gate, (int64_t)n * hp->n_ff);
    trace_lane(L, hp->geglu ? "ffn_geglu" : "ffn_swiglu", il, L->gate, n * hp->n_ff);
    RF_TRY(residual_product(st, L, &l->w_down, L->gate, hp->n_ff, L->h, &l->ffn_post_norm, il,
                            "ffn_out", "ffn_post_norm"));
    trace_lane(L, "l_out", il, L->x, n * d);
    return RF_OK;
}

/* ---- batch preparation (host) ---- */

static rf_status check_shape(const struct rf_scratch *s, const struct rf_kv_cache *kv,
                             const struct rf_batch *b)
{
    if (!b->tokens || !b->pos || b->n_tok <= 0 || b->n_tok > s->n_batch)
        return rf_fail(RF_STATUS_INVALID_ARG, "forward: %d tokens for a scratch of %d", b->n_tok,
                       s->n_batch);
    if (b->n_seq <= 0 || b->n_seq > s->n_seq || b->max_blocks <= 0 ||
        b->max_blocks > s->max_blocks || !b->block_tables)
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "forward: %d sequences of %d blocks for a scratch of %d x %d", b->n_seq,
                       b->max_blocks, s->n_seq, s->max_blocks);
    if (kv->model != s->m)
        return rf_fail(RF_STATUS_INVALID_ARG, "forward: the KV cache belongs to another model");
    return RF_OK;
}

/* Validates each token and finds its cache row. */
static rf_status place_token(const struct rf_scratch *s, const struct rf_kv_cache *kv,
                             const struct rf_batch *b, int32_t t)
{
    const int32_t tok = b->tokens[t], pos = b->pos[t], sq = b->seq ? b->seq[t] : 0;
    if (tok < 0 || tok >= s->m->hp.n_vocab)
        return rf_fail(RF_STATUS_INVALID_ARG, "decode: token %d at index %d is outside [0, %d)",
                       tok, t, s->m->hp.n_vocab);
    if (sq < 0 || sq >= b->n_seq)
        return rf_fail(RF_STATUS_INVALID_ARG, "decode: token %d names sequence %d of %d", t, sq,
                       b->n_seq);
    if (pos < 0 || pos / kv->block_size >= b->max_blocks)
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "decode: position %d of sequence %d (token %d) is past its %d blocks", pos,
                       sq, t, b->max_blocks);
    /* Attention reads every block up to the token's: all must be in the pool (the GPU's
     * kernels do not check). */
    const int32_t *table = b->block_tables + (int64_t)sq * b->max_blocks;
    for (int32_t i = 0; i <= pos / kv->block_size; i++)
        if (table[i] < 0 || table[i] >= kv->n_blocks)
            return rf_fail(RF_STATUS_INVALID_ARG,
                           "decode: position %d of sequence %d (token %d) has no KV block",
                           i * kv->block_size, sq, t);
    const int32_t block = table[pos / kv->block_size];
    s->h_ids[t] = tok;
    s->h_pos[t] = pos;
    s->h_seq[t] = sq;
    s->h_slot[t] = block * kv->block_size + pos % kv->block_size;
    return RF_OK;
}

/* Fills the host metadata; returns the number of logit rows in *n_rows. */
static rf_status prepare(struct step *st, const struct rf_batch *b, int32_t *n_rows)
{
    struct rf_scratch *s = st->s;
    RF_TRY(check_shape(s, st->kv, b));
    int32_t max_pos = 0, rows = 0;
    for (int32_t t = 0; t < b->n_tok; t++) {
        RF_TRY(place_token(s, st->kv, b, t));
        if (b->pos[t] > max_pos) max_pos = b->pos[t];
        if (b->want_logits ? b->want_logits[t] : t == b->n_tok - 1) s->h_rows[rows++] = t;
    }
    for (int32_t q = 0; q < b->n_seq; q++)
        for (int32_t i = 0; i < s->max_blocks; i++)
            s->h_tables[(int64_t)q * s->max_blocks + i] =
                i < b->max_blocks ? b->block_tables[(int64_t)q * b->max_blocks + i] : -1;
    st->n = b->n_tok;
    st->max_pos = max_pos;
    *n_rows = rows;
    return RF_OK;
}

static rf_status upload(const struct step *st, struct rf_lane *L)
{
    const struct rf_backend_i *be = L->be->iface;
    void *bc = L->be->ctx;
    struct rf_scratch *s = st->s;
    const size_t n = (size_t)st->n * sizeof(int32_t);
    RF_TRY(be->copy_in(bc, L->pos, s->h_pos, n));
    RF_TRY(be->copy_in(bc, L->seq, s->h_seq, n));
    RF_TRY(be->copy_in(bc, L->slot, s->h_slot, n));
    return be->copy_in(bc, L->tables, s->h_tables,
                       (size_t)s->n_seq * (size_t)s->max_blocks * sizeof(int32_t));
}

/* ---- the step ---- */

/* Moves the residual stream to lane `to` when the next layer runs there. */
static rf_status switch_lane(const struct step *st, struct rf_lane *from, struct rf_lane *to)
{
    if (from == to) return RF_OK;
    const size_t bytes = (size_t)st->n * (size_t)st->m->hp.n_embd * sizeof(float);
    if (to->be->host_memory) return from->be->iface->copy_out(from->be->ctx, to->x, from->x, bytes);
    return to->be->iface->copy_in(to->be->ctx, to->x, from->x, bytes);
}

static struct rf_lane *lane_of(struct rf_scratch *s, int il)
{
    return rf_model_layer_backend(s->m, il) == &s->m->backend ? &s->lane[0] : &s->lane[1];
}

static rf_status run_layers(const struct step *st, struct rf_lane **cur)
{
    const struct rf_model *m = st->m;
    for (int il = 0; il < m->hp.n_layer; il++) {
        struct rf_lane *L = lane_of(st->s, il);
        RF_TRY(switch_lane(st, *cur, L));
        *cur = L;
        RF_TRY(attention_block(st, L, &m->layers[il], il));
        RF_TRY(mlp_block(st, L, &m->layers[il], il));
    }
    return RF_OK;
}

/* Final norm of the wanted rows rows[0..n) into L->h, consecutive rows in one call. */
static rf_status norm_rows(const struct step *st, struct rf_lane *L, const int32_t *rows,
                           int32_t n)
{
    const struct rf_hparams *hp = &st->m->hp;
    const int64_t d = hp->n_embd;
    for (int32_t j = 0; j < n;) {
        int32_t k = j + 1;
        while (k < n && rows[k] == rows[k - 1] + 1) k++;
        RF_TRY(L->be->iface->rms_norm(L->be->ctx, L->x + (int64_t)rows[j] * d,
                                      &st->m->output_norm, L->h + (int64_t)j * d, d, k - j,
                                      hp->norm_eps));
        j = k;
    }
    trace_lane(L, "result_norm", -1, L->h, n * d);
    return RF_OK;
}

/* Output head of normed rows [j0, j0 + n) of L->h into dst (L's memory). */
static rf_status head_rows(const struct step *st, struct rf_lane *L, int32_t j0, int32_t n,
                           float *dst)
{
    const int64_t d = st->m->hp.n_embd;
    return L->be->iface->matmul(L->be->ctx, &st->m->output, L->h + (int64_t)j0 * d, d, dst, n);
}

/* Logits of every wanted row to the host, through the lane's logits buffer when the
 * lane is not host memory. */
static rf_status logits_out(const struct step *st, struct rf_lane *L, int32_t n_rows, float *out)
{
    const int64_t nv = st->m->hp.n_vocab;
    if (L->be->host_memory) {
        RF_TRY(head_rows(st, L, 0, n_rows, out));
        trace_lane(L, "result_output", -1, out, n_rows * nv);
        return RF_OK;
    }
    for (int32_t j = 0; j < n_rows; j += RF_LOGIT_ROWS) {
        const int32_t k = n_rows - j < RF_LOGIT_ROWS ? n_rows - j : RF_LOGIT_ROWS;
        RF_TRY(head_rows(st, L, j, k, L->logits));
        RF_TRY(L->be->iface->copy_out(L->be->ctx, out + (int64_t)j * nv, L->logits,
                                      (size_t)k * (size_t)nv * sizeof(float)));
    }
    return RF_OK;
}

/* A step is recorded and replayed when it runs on one lane that can record, with few
 * tokens and one run of at most RF_LOGIT_ROWS logit rows; the key holds everything
 * that shapes its ops. */
static bool step_key(const struct step *st, int32_t n_rows, uint64_t *key)
{
    const struct rf_scratch *s = st->s;
    const struct rf_lane *L = &s->lane[1];
    if (!L->be || !L->be->iface->step_begin || st->m->n_gpu_layers < st->m->hp.n_layer) return false;
    if (st->n > 255 || n_rows < 1 || n_rows > RF_LOGIT_ROWS) return false;
    if (s->h_rows[n_rows - 1] - s->h_rows[0] != n_rows - 1) return false;
    *key = (uint64_t)s->tag << 32 | (uint64_t)st->n << 16 | (uint64_t)s->h_rows[0] << 8 |
           (uint64_t)n_rows;
    return true;
}

/* Recorded steps hold the KV pools' addresses: a scratch used with another cache than
 * before drops its recordings. */
static rf_status bind_kv(const struct step *st)
{
    struct rf_scratch *s = st->s;
    if (s->kv_bound == st->kv) return RF_OK;
    const struct rf_backend *be = s->lane[1].be;
    if (s->kv_bound && be && be->iface->step_forget) be->iface->step_forget(be->ctx, s->tag);
    s->kv_bound = st->kv;
    return RF_OK;
}

/* Everything from the embeddings to the logits in the output lane's memory (or, on
 * a host lane, in out). */
static rf_status run_step(struct step *st, int32_t n_rows, float *out, struct rf_lane **outl)
{
    struct rf_scratch *s = st->s;
    const struct rf_model *m = st->m;
    struct rf_lane *cur = &s->lane[0];
    RF_TRY(m->backend.iface->get_rows(m->backend.ctx, &m->tok_embd, s->h_ids, st->n, cur->x));
    trace("embd", -1, cur->x, (int64_t)st->n * m->hp.n_embd);
    if (m->hp.embd_scale) {
        m->backend.iface->scale(m->backend.ctx, cur->x, sqrtf((float)m->hp.n_embd),
                                (int64_t)st->n * m->hp.n_embd);
        trace("inp_scaled", -1, cur->x, (int64_t)st->n * m->hp.n_embd);
    }
    for (int i = 0; i < 2; i++)
        if (s->lane[i].full) RF_TRY(upload(st, &s->lane[i]));

    uint64_t key = 0;
    bool replayed = false;
    struct rf_lane *L = lane_of(s, m->hp.n_layer);
    st->capture = step_key(st, n_rows, &key);
    if (st->capture) {
        RF_TRY(bind_kv(st));
        RF_TRY(switch_lane(st, cur, L)); /* the embeddings, before the recorded part */
        cur = L;
        st->max_pos = s->max_blocks * st->kv->block_size - 1; /* fixed in the recording */
        RF_TRY(L->be->iface->step_begin(L->be->ctx, key, &replayed));
    }
    if (!replayed) {
        rf_status rs = run_layers(st, &cur);
        if (rs == RF_OK) rs = switch_lane(st, cur, L);
        if (rs == RF_OK) rs = norm_rows(st, L, s->h_rows, n_rows);
        if (rs == RF_OK && st->capture) rs = head_rows(st, L, 0, n_rows, L->logits);
        if (st->capture) {
            /* Also after a failure: the recording must end before anything else runs. */
            const rf_status es = L->be->iface->step_end(L->be->ctx);
            if (rs == RF_OK) rs = es;
        }
        RF_TRY(rs);
    }
    *outl = L;
    if (st->capture) return RF_OK; /* logits are in L->logits */
    if (out) return logits_out(st, L, n_rows, out);
    return head_rows(st, L, 0, n_rows, L->logits); /* n_rows <= RF_LOGIT_ROWS: the caller's */
}

/* Final logit soft-capping, on the host logits (c tanh(logits / c), as scale, tanh,
 * scale). */
static void softcap_logits(const struct rf_model *m, float *logits, int64_t n)
{
    const float c = m->hp.final_softcap;
    if (c <= 0.0f) return;
    const float inv = 1.0f / c;
    for (int64_t i = 0; i < n; i++) logits[i] = tanhf(logits[i] * inv) * c;
}

rf_status rf_forward_batch(const struct rf_model *m, struct rf_scratch *s, struct rf_kv_cache *kv,
                           const struct rf_batch *b, float *logits)
{
    struct step st = {.m = m, .s = s, .kv = kv};
    int32_t n_rows = 0;
    struct rf_lane *L = NULL;
    RF_TRY(prepare(&st, b, &n_rows));
    RF_TRY(run_step(&st, n_rows, logits, &L));
    if (st.capture)
        RF_TRY(L->be->iface->copy_out(L->be->ctx, logits, L->logits,
                                      (size_t)n_rows * (size_t)m->hp.n_vocab * sizeof(float)));
    if (logits) softcap_logits(m, logits, (int64_t)n_rows * m->hp.n_vocab);
    if (trace_dir()) trace_call++;
    return RF_OK;
}

/* The host version of the backend sampler (backend.h's rf_sample_params). */
static rf_status host_sample(const float *logits, int32_t n_vocab,
                             const struct rf_sample_params *sp, rf_token *token)
{
    struct rf_cands c;
    if (!rf_cands_alloc(&c, n_vocab)) return rf_fail(RF_STATUS_NOMEM, "sample: out of memory");
    rf_cands_fill(&c, logits, n_vocab);
    if (sp->temperature <= 0.0f) {
        *token = rf_sample_greedy(&c);
        rf_cands_free(&c);
        return RF_OK;
    }
    rf_sample_top_k(&c, sp->top_k);
    rf_sample_top_p(&c, sp->top_p);
    double max = -INFINITY, total = 0.0;
    for (int32_t i = 0; i < c.n; i++) max = c.logits[i] > max ? c.logits[i] : max;
    for (int32_t i = 0; i < c.n; i++) total += exp((c.logits[i] - max) / sp->temperature);
    const double target = sp->u * total;
    double acc = 0.0;
    *token = c.n > 0 ? c.ids[c.n - 1] : 0;
    for (int32_t i = 0; i < c.n; i++) {
        acc += exp((c.logits[i] - max) / sp->temperature);
        if (acc > target) {
            *token = c.ids[i];
            break;
        }
    }
    rf_cands_free(&c);
    return RF_OK;
}

bool rf_model_samples_on_device(const struct rf_model *m)
{
    const struct rf_backend *be = rf_model_layer_backend(m, m->hp.n_layer);
    /* Soft-capped logits are capped on the host (softcap_logits). */
    return !be->host_memory && be->iface->sample && m->hp.final_softcap <= 0.0f;
}

rf_status rf_forward_batch_sample(const struct rf_model *m, struct rf_scratch *s,
                                  struct rf_kv_cache *kv, const struct rf_batch *b,
                                  const struct rf_sample_params *sp, uint64_t rng_state,
                                  rf_token *token)
{
    struct rf_batch one = *b;
    one.want_logits = NULL; /* the last token only */
    if (!rf_model_samples_on_device(m)) {
        float *row = malloc((size_t)m->hp.n_vocab * sizeof(float));
        if (!row) return rf_fail(RF_STATUS_NOMEM, "sample: out of memory");
        rf_status st = rf_forward_batch(m, s, kv, &one, row);
        if (st == RF_OK) st = host_sample(row, m->hp.n_vocab, sp, token);
        free(row);
        return st;
    }
    struct step st = {.m = m, .s = s, .kv = kv};
    int32_t n_rows = 0;
    struct rf_lane *out = NULL;
    RF_TRY(prepare(&st, &one, &n_rows));
    RF_TRY(run_step(&st, n_rows, NULL, &out));
    if (trace_dir()) trace_call++;
    return out->be->iface->sample(out->be->ctx, out->logits, m->hp.n_vocab, sp, rng_state, token);
}

/* The transformer forward pass, written once for every backend and architecture:
 * pre-norm attention and SwiGLU MLP blocks with residuals, variants chosen by hparams. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/status.h"
#include "runtime/context.h"

/* Debugging: with RF_TRACE_DIR set, each op's output is written as raw f32 to
 * $RF_TRACE_DIR/<call>/<name>-<layer>.f32 (call = rf_forward calls so far), names as
 * llama.cpp's graph callbacks use them, for tools/trace_compare.py. Read once; the
 * cost when unset is one branch per op. The backend must be host memory (CPU). */
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

static rf_status attention_block(struct rf_context *c, const struct rf_layer *l, int il, int32_t n)
{
    const struct rf_backend_i *be = c->be->iface;
    void *bc = c->be->ctx;
    const struct rf_hparams *hp = &c->model->hp;
    const int64_t d = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim;

    RF_TRY(be->rms_norm(bc, c->x, &l->attn_norm, c->h, d, n, hp->norm_eps));
    trace("attn_norm", il, c->h, n * d);
    RF_TRY(be->matmul(bc, &l->wq, c->h, d, c->q, n));
    RF_TRY(be->matmul(bc, &l->wk, c->h, d, c->k, n));
    RF_TRY(be->matmul(bc, &l->wv, c->h, d, c->v, n));
    if (hp->attn_bias) {
        RF_TRY(be->add_bias(bc, c->q, &l->bq, qw, n));
        RF_TRY(be->add_bias(bc, c->k, &l->bk, c->kv_width, n));
        RF_TRY(be->add_bias(bc, c->v, &l->bv, c->kv_width, n));
    }
    if (hp->qk_norm) {
        RF_TRY(be->rms_norm(bc, c->q, &l->q_norm, c->q, hp->head_dim, (int64_t)n * hp->n_head,
                            hp->norm_eps));
        RF_TRY(be->rms_norm(bc, c->k, &l->k_norm, c->k, hp->head_dim, (int64_t)n * hp->n_head_kv,
                            hp->norm_eps));
    }
    const struct rf_rope_params rope = {
        .n_rot = hp->n_rot, .freq_base = hp->rope_base, .freq_scale = hp->rope_scale,
        .neox = hp->rope_neox};
    be->rope(bc, c->q, n, hp->n_head, hp->head_dim, c->pos, &rope);
    be->rope(bc, c->k, n, hp->n_head_kv, hp->head_dim, c->pos, &rope);
    trace("Qcur", il, c->q, n * qw);
    trace("Kcur", il, c->k, n * c->kv_width);
    trace("Vcur", il, c->v, n * c->kv_width);
    be->kv_store(bc, c->k, c->v, n, c->kv_width, c->pos, c->k_cache[il], c->v_cache[il]);

    const struct rf_attn_params ap = {
        .n_tok = n, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
        .pos = c->pos, .n_kv = c->n_past + n, .scale = 1.0f / sqrtf((float)hp->head_dim)};
    RF_TRY(be->attention(bc, c->q, c->k_cache[il], c->v_cache[il], c->h, &ap));
    trace("kqv_out", il, c->h, n * qw);
    RF_TRY(be->matmul(bc, &l->wo, c->h, qw, c->q, n));
    trace("attn_out", il, c->q, n * d);
    be->add(bc, c->x, c->q, (int64_t)n * d);
    trace("ffn_inp", il, c->x, n * d);
    return RF_OK;
}

static rf_status mlp_block(struct rf_context *c, const struct rf_layer *l, int il, int32_t n)
{
    const struct rf_backend_i *be = c->be->iface;
    void *bc = c->be->ctx;
    const struct rf_hparams *hp = &c->model->hp;
    const int64_t d = hp->n_embd;

    RF_TRY(be->rms_norm(bc, c->x, &l->ffn_norm, c->h, d, n, hp->norm_eps));
    trace("ffn_norm", il, c->h, n * d);
    RF_TRY(be->matmul(bc, &l->w_gate, c->h, d, c->gate, n));
    RF_TRY(be->matmul(bc, &l->w_up, c->h, d, c->up, n));
    trace("ffn_gate", il, c->gate, n * hp->n_ff);
    trace("ffn_up", il, c->up, n * hp->n_ff);
    be->swiglu(bc, c->gate, c->up, c->gate, (int64_t)n * hp->n_ff);
    trace("ffn_swiglu", il, c->gate, n * hp->n_ff);
    RF_TRY(be->matmul(bc, &l->w_down, c->gate, hp->n_ff, c->h, n));
    trace("ffn_out", il, c->h, n * d);
    be->add(bc, c->x, c->h, (int64_t)n * d);
    trace("l_out", il, c->x, n * d);
    return RF_OK;
}

rf_status rf_forward(struct rf_context *c, const rf_token *tokens, int32_t n, bool all, float *out)
{
    const struct rf_backend_i *be = c->be->iface;
    void *bc = c->be->ctx;
    const struct rf_model *m = c->model;
    const struct rf_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd;

    for (int32_t i = 0; i < n; i++) {
        c->ids[i] = tokens[i];
        c->pos[i] = c->n_past + i;
    }
    RF_TRY(be->get_rows(bc, &m->tok_embd, c->ids, n, c->x));
    trace("embd", -1, c->x, n * d);
    for (int il = 0; il < hp->n_layer; il++) {
        RF_TRY(attention_block(c, &m->layers[il], il, n));
        RF_TRY(mlp_block(c, &m->layers[il], il, n));
    }
    /* Only the rows whose logits are wanted go through the output head. */
    const int32_t first = all ? 0 : n - 1, rows = n - first;
    RF_TRY(be->rms_norm(bc, c->x + first * d, &m->output_norm, c->h, d, rows, hp->norm_eps));
    trace("result_norm", -1, c->h, rows * d);
    RF_TRY(be->matmul(bc, &m->output, c->h, d, out, rows));
    trace("result_output", -1, out, rows * m->output.ne[1]);
    c->n_past += n;
    if (trace_dir()) trace_call++;
    return RF_OK;
}

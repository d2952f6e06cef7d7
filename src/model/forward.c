/* The transformer forward pass, written once for every backend and architecture:
 * pre-norm attention and SwiGLU MLP blocks with residuals, variants chosen by hparams. */
#include <math.h>

#include "core/status.h"
#include "runtime/context.h"

static rf_status attention_block(struct rf_context *c, const struct rf_layer *l, int il, int32_t n)
{
    const struct rf_backend_i *be = c->be->iface;
    void *bc = c->be->ctx;
    const struct rf_hparams *hp = &c->model->hp;
    const int64_t d = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim;

    RF_TRY(be->rms_norm(bc, c->x, &l->attn_norm, c->h, d, n, hp->norm_eps));
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
    be->kv_store(bc, c->k, c->v, n, c->kv_width, c->pos, c->k_cache[il], c->v_cache[il]);

    const struct rf_attn_params ap = {
        .n_tok = n, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
        .pos = c->pos, .n_kv = c->n_past + n, .scale = 1.0f / sqrtf((float)hp->head_dim)};
    RF_TRY(be->attention(bc, c->q, c->k_cache[il], c->v_cache[il], c->h, &ap));
    RF_TRY(be->matmul(bc, &l->wo, c->h, qw, c->q, n));
    be->add(bc, c->x, c->q, (int64_t)n * d);
    return RF_OK;
}

static rf_status mlp_block(struct rf_context *c, const struct rf_layer *l, int32_t n)
{
    const struct rf_backend_i *be = c->be->iface;
    void *bc = c->be->ctx;
    const struct rf_hparams *hp = &c->model->hp;
    const int64_t d = hp->n_embd;

    RF_TRY(be->rms_norm(bc, c->x, &l->ffn_norm, c->h, d, n, hp->norm_eps));
    RF_TRY(be->matmul(bc, &l->w_gate, c->h, d, c->gate, n));
    RF_TRY(be->matmul(bc, &l->w_up, c->h, d, c->up, n));
    be->swiglu(bc, c->gate, c->up, c->gate, (int64_t)n * hp->n_ff);
    RF_TRY(be->matmul(bc, &l->w_down, c->gate, hp->n_ff, c->h, n));
    be->add(bc, c->x, c->h, (int64_t)n * d);
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
    for (int il = 0; il < hp->n_layer; il++) {
        RF_TRY(attention_block(c, &m->layers[il], il, n));
        RF_TRY(mlp_block(c, &m->layers[il], n));
    }
    /* Only the rows whose logits are wanted go through the output head. */
    const int32_t first = all ? 0 : n - 1, rows = n - first;
    RF_TRY(be->rms_norm(bc, c->x + first * d, &m->output_norm, c->h, d, rows, hp->norm_eps));
    RF_TRY(be->matmul(bc, &m->output, c->h, d, out, rows));
    c->n_past += n;
    return RF_OK;
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/model.h"

static void format_shape(char *buf, size_t cap, const int64_t *ne, int n)
{
    int len = snprintf(buf, cap, "(");
    for (int i = 0; i < n && len < (int)cap; i++)
        len += snprintf(buf + len, cap - (size_t)len, i ? ", %lld" : "%lld", (long long)ne[i]);
    if (len < (int)cap) snprintf(buf + len, cap - (size_t)len, ")");
}

/* Binds tensor `name` into *t, checking its shape against the expected one (ne1 = 0 for
 * vectors). Absent optional tensors leave *t zeroed. */
static rf_status bind(const struct rf_model *m, const char *name, int64_t ne0, int64_t ne1,
                      bool required, struct rf_tensor *t)
{
    memset(t, 0, sizeof *t);
    const struct rf_gguf_tensor *gt = rf_gguf_find_tensor(m->gguf, name);
    if (!gt) {
        if (!required) return RF_OK;
        return rf_fail(RF_STATUS_BAD_FILE, "model: missing tensor '%s'", name);
    }
    const int64_t want[4] = {ne0, ne1 ? ne1 : 1, 1, 1};
    bool ok = true;
    for (int i = 0; i < 4; i++) ok = ok && gt->ne[i] == want[i];
    if (!ok) {
        char have_s[96], want_s[96];
        format_shape(have_s, sizeof have_s, gt->ne, (int)gt->n_dims);
        format_shape(want_s, sizeof want_s, want, ne1 ? 2 : 1);
        return rf_fail(RF_STATUS_SHAPE, "model: tensor '%s' has shape %s but the metadata implies %s",
                       name, have_s, want_s);
    }
    const struct rf_type_traits *tr = rf_type_traits(gt->type);
    if (!tr || !tr->to_float)
        return rf_fail(RF_STATUS_UNSUPPORTED, "model: tensor '%s' has type %s, which is not supported",
                       name, rf_type_name(gt->type));
    if (ne1 == 0 && gt->type != RF_TYPE_F32)
        return rf_fail(RF_STATUS_UNSUPPORTED, "model: vector tensor '%s' has type %s (F32 expected)",
                       name, rf_type_name(gt->type));
    t->name = gt->name;
    t->type = (enum rf_type)gt->type;
    memcpy(t->ne, gt->ne, sizeof t->ne);
    t->data = gt->data;
    t->nbytes = gt->nbytes;
    return RF_OK;
}

static rf_status bind_layer(const struct rf_model *m, int il, struct rf_layer *l)
{
    const struct rf_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[96];
#define BIND(field, suffix, ne0, ne1, req)                                                         \
    do {                                                                                           \
        snprintf(n, sizeof n, "blk.%d.%s", il, suffix);                                            \
        RF_TRY(bind(m, n, ne0, ne1, req, &l->field));                                              \
    } while (0)
    BIND(attn_norm, "attn_norm.weight", d, 0, true);
    BIND(wq, "attn_q.weight", d, q, true);
    BIND(wk, "attn_k.weight", d, kv, true);
    BIND(wv, "attn_v.weight", d, kv, true);
    BIND(wo, "attn_output.weight", q, d, true);
    BIND(bq, "attn_q.bias", q, 0, hp->attn_bias);
    BIND(bk, "attn_k.bias", kv, 0, hp->attn_bias);
    BIND(bv, "attn_v.bias", kv, 0, hp->attn_bias);
    BIND(q_norm, "attn_q_norm.weight", hp->head_dim, 0, hp->qk_norm);
    BIND(k_norm, "attn_k_norm.weight", hp->head_dim, 0, hp->qk_norm);
    BIND(ffn_norm, "ffn_norm.weight", d, 0, true);
    BIND(w_gate, "ffn_gate.weight", d, hp->n_ff, true);
    BIND(w_up, "ffn_up.weight", d, hp->n_ff, true);
    BIND(w_down, "ffn_down.weight", hp->n_ff, d, true);
    BIND(attn_post_norm, "post_attention_norm.weight", d, 0, hp->post_norms);
    BIND(ffn_post_norm, "post_ffw_norm.weight", d, 0, hp->post_norms);
#undef BIND
    const bool local =
        hp->n_swa > 0 && hp->swa_pattern > 0 && il % hp->swa_pattern < hp->swa_pattern - 1;
    l->window = local ? hp->n_swa : 0;
    l->rope_base = local ? hp->rope_base_swa : hp->rope_base;
    l->rope_scale = local ? 1.0f : hp->rope_scale; /* Gemma 3 scales global layers only */
    return RF_OK;
}

rf_status rf_model_bind_weights(struct rf_model *m)
{
    struct rf_hparams *hp = &m->hp;
    const struct rf_gguf_tensor *emb = rf_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return rf_fail(RF_STATUS_BAD_FILE, "model: missing tensor 'token_embd.weight'");
    if (emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return rf_fail(RF_STATUS_BAD_FILE, "model: token_embd.weight has %lld rows",
                       (long long)emb->ne[1]);
    hp->n_vocab = (int32_t)emb->ne[1];
    RF_TRY(bind(m, "token_embd.weight", hp->n_embd, hp->n_vocab, true, &m->tok_embd));
    RF_TRY(bind(m, "output_norm.weight", hp->n_embd, 0, true, &m->output_norm));
    RF_TRY(bind(m, "output.weight", hp->n_embd, hp->n_vocab, false, &m->output));
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output) m->output = m->tok_embd;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return rf_fail(RF_STATUS_NOMEM, "model: cannot allocate %d layers", hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++) RF_TRY(bind_layer(m, il, &m->layers[il]));

    m->weight_bytes = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) m->weight_bytes += m->gguf->tensors[i].nbytes;
    return RF_OK;
}

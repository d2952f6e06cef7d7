#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "runtime/context.h"

struct rf_context_params rf_context_default_params(void)
{
    return (struct rf_context_params){.n_ctx = 0, .n_batch = 512};
}

static void *be_alloc(struct rf_context *c, size_t bytes)
{
    return c->be->iface->alloc(c->be->ctx, bytes ? bytes : 1);
}

static void be_release(struct rf_context *c, void *p)
{
    if (p) c->be->iface->release(c->be->ctx, p);
}

static rf_status alloc_kv_cache(struct rf_context *c)
{
    const int n_layer = c->model->hp.n_layer;
    c->k_cache = calloc((size_t)n_layer, sizeof *c->k_cache);
    c->v_cache = calloc((size_t)n_layer, sizeof *c->v_cache);
    if (!c->k_cache || !c->v_cache) return rf_fail(RF_STATUS_NOMEM, "context: out of memory");
    const size_t bytes = (size_t)c->n_ctx * (size_t)c->kv_width * sizeof(uint16_t);
    for (int il = 0; il < n_layer; il++) {
        c->k_cache[il] = be_alloc(c, bytes);
        c->v_cache[il] = be_alloc(c, bytes);
        if (!c->k_cache[il] || !c->v_cache[il])
            return rf_fail(RF_STATUS_NOMEM, "context: cannot allocate the KV cache (%zu bytes x %d)",
                           2 * bytes, n_layer);
    }
    return RF_OK;
}

static rf_status alloc_scratch(struct rf_context *c)
{
    const struct rf_hparams *hp = &c->model->hp;
    const size_t nb = (size_t)c->n_batch;
    const size_t qw = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t wide = qw > (size_t)hp->n_embd ? qw : (size_t)hp->n_embd;
    c->x = be_alloc(c, nb * (size_t)hp->n_embd * sizeof(float));
    c->h = be_alloc(c, nb * wide * sizeof(float));
    c->q = be_alloc(c, nb * wide * sizeof(float));
    c->k = be_alloc(c, nb * (size_t)c->kv_width * sizeof(float));
    c->v = be_alloc(c, nb * (size_t)c->kv_width * sizeof(float));
    c->gate = be_alloc(c, nb * (size_t)hp->n_ff * sizeof(float));
    c->up = be_alloc(c, nb * (size_t)hp->n_ff * sizeof(float));
    c->pos = calloc(nb, sizeof *c->pos);
    c->ids = calloc(nb, sizeof *c->ids);
    if (!c->x || !c->h || !c->q || !c->k || !c->v || !c->gate || !c->up || !c->pos || !c->ids)
        return rf_fail(RF_STATUS_NOMEM, "context: cannot allocate scratch for %d tokens", c->n_batch);
    return RF_OK;
}

rf_status rf_context_init(struct rf_model *model, const struct rf_context_params *params,
                          struct rf_context **out)
{
    *out = NULL;
    if (!model) return rf_fail(RF_STATUS_INVALID_ARG, "context: model is NULL");
    struct rf_context_params p = params ? *params : rf_context_default_params();
    if (p.n_ctx < 0 || p.n_batch < 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "context: n_ctx %d and n_batch %d must be >= 0",
                       p.n_ctx, p.n_batch);
    if (p.n_ctx == 0) p.n_ctx = model->hp.n_ctx_train < 4096 ? model->hp.n_ctx_train : 4096;
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;

    struct rf_context *c = calloc(1, sizeof *c);
    if (!c) return rf_fail(RF_STATUS_NOMEM, "context: out of memory");
    c->model = model;
    c->be = &model->backend;
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    c->kv_width = (int64_t)model->hp.n_head_kv * model->hp.head_dim;
    rf_status s = alloc_kv_cache(c);
    if (s == RF_OK) s = alloc_scratch(c);
    if (s != RF_OK) {
        rf_context_free(c);
        return s;
    }
    *out = c;
    return RF_OK;
}

void rf_context_free(struct rf_context *c)
{
    if (!c) return;
    for (int il = 0; c->k_cache && il < c->model->hp.n_layer; il++) be_release(c, c->k_cache[il]);
    for (int il = 0; c->v_cache && il < c->model->hp.n_layer; il++) be_release(c, c->v_cache[il]);
    free(c->k_cache);
    free(c->v_cache);
    be_release(c, c->x);
    be_release(c, c->h);
    be_release(c, c->q);
    be_release(c, c->k);
    be_release(c, c->v);
    be_release(c, c->gate);
    be_release(c, c->up);
    free(c->pos);
    free(c->ids);
    free(c->logits);
    free(c);
}

int32_t rf_context_n_ctx(const struct rf_context *c) { return c->n_ctx; }
int32_t rf_context_n_past(const struct rf_context *c) { return c->n_past; }

uint64_t rf_context_kv_bytes_per_pos(const struct rf_context *c)
{
    return 2ull * (uint64_t)c->model->hp.n_layer * (uint64_t)c->kv_width * sizeof(uint16_t);
}

void rf_context_reset(struct rf_context *c)
{
    c->n_past = 0;
    c->n_logits = 0;
}

static rf_status reserve_logits(struct rf_context *c, int64_t rows)
{
    if (rows <= c->logits_cap) return RF_OK;
    float *p = realloc(c->logits, (size_t)rows * (size_t)c->model->hp.n_vocab * sizeof(float));
    if (!p) return rf_fail(RF_STATUS_NOMEM, "context: cannot allocate logits for %lld tokens",
                           (long long)rows);
    c->logits = p;
    c->logits_cap = rows;
    return RF_OK;
}

static rf_status check_tokens(const struct rf_context *c, const rf_token *tokens, int32_t n)
{
    const int32_t n_vocab = c->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return rf_fail(RF_STATUS_INVALID_ARG, "decode: token %d at index %d is outside [0, %d)",
                           tokens[i], i, n_vocab);
    if ((int64_t)c->n_past + n > c->n_ctx)
        return rf_fail(RF_STATUS_CONTEXT_FULL,
                       "decode: %d tokens after %d in the cache exceed the context size %d", n,
                       c->n_past, c->n_ctx);
    return RF_OK;
}

rf_status rf_decode(struct rf_context *c, const rf_token *tokens, int32_t n, bool all_logits)
{
    if (!c || (!tokens && n > 0) || n <= 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "decode: need at least one token");
    RF_TRY(check_tokens(c, tokens, n));
    RF_TRY(reserve_logits(c, all_logits ? n : 1));
    const int64_t n_vocab = c->model->hp.n_vocab;
    const int32_t start_past = c->n_past;
    for (int32_t i = 0; i < n; i += c->n_batch) {
        const int32_t chunk = n - i < c->n_batch ? n - i : c->n_batch;
        float *out = all_logits ? c->logits + (int64_t)i * n_vocab : c->logits;
        rf_status s = rf_forward(c, tokens + i, chunk, all_logits, out);
        if (s != RF_OK) {
            c->n_past = start_past; /* the cache rows past start_past are garbage now */
            c->n_logits = 0;
            return s;
        }
    }
    c->n_logits = all_logits ? n : 1;
    return RF_OK;
}

const float *rf_get_logits(struct rf_context *c, int32_t i)
{
    if (!c || c->n_logits == 0) {
        rf_fail(RF_STATUS_INVALID_ARG, "logits: no decode has produced logits yet");
        return NULL;
    }
    if (i < 0) i = c->n_logits - 1;
    if (i >= c->n_logits) {
        rf_fail(RF_STATUS_INVALID_ARG, "logits: index %d but only %d rows are kept", i, c->n_logits);
        return NULL;
    }
    return c->logits + (int64_t)i * c->model->hp.n_vocab;
}

#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "runtime/context.h"
#include "sampling/sampler.h"

struct rf_context_params rf_context_default_params(void)
{
    return (struct rf_context_params){.n_ctx = 0, .n_batch = 512};
}

static rf_status alloc_state(struct rf_context *c)
{
    const int32_t bs = RF_KV_BLOCK_SIZE, n_blocks = (c->n_ctx + bs - 1) / bs;
    RF_TRY(rf_kv_cache_init(&c->kv, c->model, n_blocks, bs));
    RF_TRY(rf_scratch_new(c->model, c->n_batch, 1, n_blocks, &c->scratch));
    c->table = malloc((size_t)n_blocks * sizeof *c->table);
    c->pos = malloc((size_t)c->n_batch * sizeof *c->pos);
    c->want_all = malloc((size_t)c->n_batch * sizeof *c->want_all);
    if (!c->table || !c->pos || !c->want_all)
        return rf_fail(RF_STATUS_NOMEM, "context: out of memory");
    for (int32_t i = 0; i < c->n_batch; i++) c->want_all[i] = true;
    for (int32_t i = 0; i < n_blocks; i++) c->table[i] = i;
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
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    rf_status s = alloc_state(c);
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
    rf_scratch_free(c->scratch);
    rf_kv_cache_free(&c->kv);
    free(c->table);
    free(c->pos);
    free(c->want_all);
    free(c->logits);
    free(c);
}

int32_t rf_context_n_ctx(const struct rf_context *c) { return c->n_ctx; }
int32_t rf_context_n_past(const struct rf_context *c) { return c->n_past; }

uint64_t rf_context_kv_bytes_per_pos(const struct rf_context *c)
{
    return rf_kv_cache_block_bytes(c->model, 1);
}

void rf_context_reset(struct rf_context *c)
{
    c->n_past = 0;
    c->n_logits = 0;
}

void rf_context_truncate(struct rf_context *c, int32_t n)
{
    if (n < 0) n = 0;
    if (n >= c->n_past) return;
    c->n_past = n;
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

static rf_status forward_chunk(struct rf_context *c, const rf_token *tokens, int32_t n, bool all,
                               float *out)
{
    for (int32_t i = 0; i < n; i++) c->pos[i] = c->n_past + i;
    const struct rf_batch b = {.n_tok = n,
                               .tokens = tokens,
                               .pos = c->pos,
                               .want_logits = all ? c->want_all : NULL,
                               .n_seq = 1,
                               .max_blocks = c->kv.n_blocks,
                               .block_tables = c->table};
    rf_status s = rf_forward_batch(c->model, c->scratch, &c->kv, &b, out);
    if (s == RF_OK) c->n_past += n;
    return s;
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
        rf_status s = forward_chunk(c, tokens + i, chunk, all_logits, out);
        if (s != RF_OK) {
            c->n_past = start_past; /* the cache rows past start_past are garbage now */
            c->n_logits = 0;
            return s;
        }
    }
    c->n_logits = all_logits ? n : 1;
    return RF_OK;
}

rf_status rf_decode_sample(struct rf_context *c, const rf_token *tokens, int32_t n,
                           struct rf_sampler *smp, rf_token *out)
{
    struct rf_sample_params sp;
    if (!smp || !out) return rf_fail(RF_STATUS_INVALID_ARG, "decode: NULL sampler or output");
    if (!c || !rf_model_samples_on_device(c->model) || !rf_sampler_device_params(smp, &sp)) {
        RF_TRY(rf_decode(c, tokens, n, false));
        *out = rf_sampler_sample(smp, rf_get_logits(c, -1));
        return *out < 0 ? RF_STATUS_INVALID_ARG : RF_OK;
    }
    if ((!tokens && n > 0) || n <= 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "decode: need at least one token");
    RF_TRY(check_tokens(c, tokens, n));
    RF_TRY(reserve_logits(c, 1));
    c->n_logits = 0;
    const int32_t start_past = c->n_past, last = (n - 1) / c->n_batch * c->n_batch;
    rf_status s = RF_OK;
    for (int32_t i = 0; i < last && s == RF_OK; i += c->n_batch)
        s = forward_chunk(c, tokens + i, c->n_batch, false, c->logits);
    if (s == RF_OK) {
        const int32_t k = n - last;
        for (int32_t i = 0; i < k; i++) c->pos[i] = c->n_past + i;
        const struct rf_batch b = {.n_tok = k, .tokens = tokens + last, .pos = c->pos, .n_seq = 1,
                                   .max_blocks = c->kv.n_blocks, .block_tables = c->table};
        s = rf_forward_batch_sample(c->model, c->scratch, &c->kv, &b, &sp, 0, out);
        if (s == RF_OK) c->n_past += k;
    }
    if (s != RF_OK) c->n_past = start_past;
    return s;
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

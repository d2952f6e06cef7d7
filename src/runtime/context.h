#ifndef RF_RUNTIME_CONTEXT_H
#define RF_RUNTIME_CONTEXT_H
/* Run-time state of one sequence: its KV cache, scratch activations and logits. */
#include <stdint.h>

#include "model/model.h"

struct rf_context {
    struct rf_model *model;
    const struct rf_backend *be;
    int32_t n_ctx;
    int32_t n_batch;
    int32_t n_past;          /* rows of the KV cache in use */
    int64_t kv_width;        /* n_head_kv * head_dim halves per cache row */
    uint16_t **k_cache;      /* n_layer caches of (n_ctx, kv_width) f16 */
    uint16_t **v_cache;

    /* Scratch for one chunk of at most n_batch tokens. */
    float *x;                /* (n_batch, n_embd) residual stream */
    float *h;                /* (n_batch, max(n_embd, q_width)) normed input / attention output */
    float *q;                /* (n_batch, n_head*head_dim) */
    float *k, *v;            /* (n_batch, kv_width) */
    float *gate, *up;        /* (n_batch, n_ff) */
    int32_t *pos;            /* (n_batch) */
    int32_t *ids;            /* (n_batch) */

    float *logits;           /* (n_logits, n_vocab) of the last rf_decode */
    int64_t logits_cap;      /* rows allocated */
    int32_t n_logits;
};

/* Runs the forward pass over n <= n_batch tokens at positions n_past.., appending them
 * to the cache. Writes logits for every token (all) or the last (all == false) into out. */
rf_status rf_forward(struct rf_context *ctx, const rf_token *tokens, int32_t n, bool all, float *out);

#endif

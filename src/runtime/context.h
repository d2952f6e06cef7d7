#ifndef RF_RUNTIME_CONTEXT_H
#define RF_RUNTIME_CONTEXT_H
/* Run-time state of one sequence: its KV cache (paged, with the identity block
 * table), the scratch of its forward steps and its logits. */
#include <stdint.h>

#include "runtime/batch.h"

struct rf_context {
    struct rf_model *model;
    int32_t n_ctx;
    int32_t n_batch;
    int32_t n_past;          /* positions of the KV cache in use */
    struct rf_kv_cache kv;
    struct rf_scratch *scratch;
    int32_t *table;          /* (n_blocks) the identity: position p in block p / block_size */
    int32_t *pos;            /* (n_batch) */
    bool *want_all;          /* (n_batch) all true */

    float *logits;           /* (n_logits, n_vocab) of the last rf_decode */
    int64_t logits_cap;      /* rows allocated */
    int32_t n_logits;
};

#endif

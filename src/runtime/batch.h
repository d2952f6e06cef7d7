#ifndef RF_RUNTIME_BATCH_H
#define RF_RUNTIME_BATCH_H
/* One forward step over a batch of tokens from any number of sequences, each with
 * its own block table in a shared paged KV cache. This is what rf_decode (one
 * sequence) and the continuous-batching scheduler (many) both call. */
#include <stdbool.h>
#include <stdint.h>

#include "runtime/kv_cache.h"

struct rf_batch {
    int32_t n_tok;
    const rf_token *tokens;     /* (n_tok) */
    const int32_t *pos;         /* (n_tok) position of each token in its sequence */
    const int32_t *seq;         /* (n_tok) row of block_tables; NULL: all row 0 */
    const bool *want_logits;    /* (n_tok) NULL: the last token only */
    int32_t n_seq;
    int32_t max_blocks;         /* columns of block_tables */
    const int32_t *block_tables; /* (n_seq, max_blocks) host memory; -1: no block */
};

/* Buffers of one forward step for up to n_batch tokens and n_seq sequences, on the
 * model's backends. Owned by one caller; steps on one scratch run one at a time. */
struct rf_scratch;

rf_status rf_scratch_new(const struct rf_model *m, int32_t n_batch, int32_t n_seq,
                         int32_t max_blocks, struct rf_scratch **out);
void rf_scratch_free(struct rf_scratch *s);
int32_t rf_scratch_n_batch(const struct rf_scratch *s);

/* Runs the forward pass over the batch, writing each token's K and V into its
 * sequence's blocks (which must exist in the tables: positions past them are an
 * error) and the logits of the tokens that want them, in batch order, into logits
 * (host memory, n_out x n_vocab). The batch must fit the scratch. */
rf_status rf_forward_batch(const struct rf_model *m, struct rf_scratch *s, struct rf_kv_cache *kv,
                           const struct rf_batch *b, float *logits);
/* Whether the output head's backend draws tokens itself (rf_forward_batch_sample then
 * copies only the id to the host). */
bool rf_model_samples_on_device(const struct rf_model *m);
/* As rf_forward_batch, then samples the last token's logits on the backend when it
 * can (only the id crosses to the host), else on the host; sp as in backend.h. */
rf_status rf_forward_batch_sample(const struct rf_model *m, struct rf_scratch *s,
                                  struct rf_kv_cache *kv, const struct rf_batch *b,
                                  const struct rf_sample_params *sp, uint64_t rng_state,
                                  rf_token *token);

#endif

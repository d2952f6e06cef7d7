#ifndef RF_RUNTIME_SCRATCH_H
#define RF_RUNTIME_SCRATCH_H
/* The buffers behind struct rf_scratch (runtime/batch.h), shared by scratch.c and
 * the forward pass. A lane is the set of buffers on one backend: lane 0 on the CPU,
 * lane 1 on the GPU when the model offloads layers. */
#include "runtime/batch.h"

#define RF_LOGIT_ROWS 32 /* output-head rows per pass when logits go through a copy */

struct rf_lane {
    const struct rf_backend *be;
    float *x;             /* (n_batch, n_embd) residual stream */
    float *h;             /* (n_batch, max(n_embd, q_width)) normed input / attention out */
    float *q;             /* (n_batch, max(n_embd, q_width)) */
    float *k, *v;         /* (n_batch, kv_width) */
    float *gate, *up;     /* (n_batch, n_ff) */
    float *logits;        /* (RF_LOGIT_ROWS, n_vocab); NULL on a host lane */
    int32_t *pos, *seq, *slot; /* (n_batch) */
    int32_t *tables;      /* (n_seq, max_blocks) */
    bool full;            /* every buffer above exists (else only x) */
};

struct rf_scratch {
    const struct rf_model *m;
    int32_t n_batch, n_seq, max_blocks;
    uint32_t tag;          /* names this scratch in step-capture keys */
    const struct rf_kv_cache *kv_bound; /* the cache its recorded steps write */
    struct rf_lane lane[2];
    /* Host copies of the step's metadata, filled before the copies to each lane. */
    int32_t *h_ids, *h_pos, *h_seq, *h_slot, *h_tables;
    int32_t *h_rows;       /* (n_batch) batch indices of the tokens that want logits */
};

#endif

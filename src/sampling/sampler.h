#ifndef RF_SAMPLING_SAMPLER_H
#define RF_SAMPLING_SAMPLER_H
/* The stages behind rf_sampler_sample, exposed for tests. The chain runs in this
 * order: penalties, top-k, top-p, min-p, temperature, then a draw. Each stage works
 * in place on a candidate list and may shrink it. "Sorted" always means descending
 * logit, ties broken by ascending id, so every selection method gives the same list. */
#include <stdbool.h>
#include <stdint.h>

#include "rocmforge.h"

struct rf_cands {
    rf_token *ids;     /* (n) candidate ids */
    float *logits;     /* (n) their logits */
    rf_token *tmp_ids; /* (cap) scratch for partial selection, swapped with ids */
    float *tmp_logits; /* (cap) */
    int32_t n;
    int32_t cap;
    bool sorted;
};

/* xoshiro256** seeded through splitmix64: the same stream on every platform. */
struct rf_rng {
    uint64_t s[4];
};
void rf_rng_seed(struct rf_rng *r, uint64_t seed);
uint64_t rf_rng_next(struct rf_rng *r);
double rf_rng_uniform(struct rf_rng *r); /* [0, 1), 53 random bits */

/* Buffers for cap candidates; false when out of memory. */
bool rf_cands_alloc(struct rf_cands *c, int32_t cap);
void rf_cands_free(struct rf_cands *c);
/* The whole vocabulary in id order; NaN logits become -inf. n <= c->cap. */
void rf_cands_fill(struct rf_cands *c, const float *logits, int32_t n);

/* On logits indexed by id (n_vocab of them): for each distinct token t of the window
 * (count c): logit /= repeat if positive, *= repeat if not; then
 * logit -= c * freq + presence. scratch holds n_window tokens; ids outside the
 * vocabulary are ignored. */
void rf_sample_penalties(float *logits, int32_t n_vocab, const rf_token *window, int32_t n_window,
                         float repeat, float freq, float presence, rf_token *scratch);
void rf_sample_top_k(struct rf_cands *c, int32_t k); /* k <= 0: no-op */
void rf_sample_top_p(struct rf_cands *c, float p);   /* p >= 1: no-op */
void rf_sample_min_p(struct rf_cands *c, float p);   /* p <= 0: no-op */
void rf_sample_temp(struct rf_cands *c, float t);    /* t <= 0: keeps the argmax only */
/* Highest logit, lowest id on ties; -1 for an empty list. */
rf_token rf_sample_greedy(const struct rf_cands *c);
/* Draws from softmax(logits) over the candidates. */
rf_token rf_sample_dist(const struct rf_cands *c, struct rf_rng *rng);

/* When s's chain is one a backend can run (no penalties, no min-p), fills out for
 * backend sampling, drawing u from s's generator, and returns true. */
struct rf_sample_params;
bool rf_sampler_device_params(struct rf_sampler *s, struct rf_sample_params *out);

#endif

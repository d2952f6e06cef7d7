#ifndef RF_TOKENIZER_MERGE_H
#define RF_TOKENIZER_MERGE_H
/* The symbol chain and bigram queue shared by the SPM and BPE merge loops. */
#include <stddef.h>
#include <stdint.h>

#include "rocmforge.h"

/* A run of bytes of the word being merged; merged-away symbols have n = 0. */
struct rf_sym {
    int32_t prev, next; /* -1 at the ends */
    uint32_t off, n;
};

/* A candidate merge of symbols left and right (adjacent when queued). Smaller key
 * first, then smaller left: BPE uses the merge rank, SPM the negated score. */
struct rf_bigram {
    double key;
    int32_t left, right;
    uint32_t size; /* bytes of left + right when queued: stale entries differ */
};

struct rf_heap {
    struct rf_bigram *v;
    size_t n, cap;
};

rf_status rf_heap_push(struct rf_heap *h, struct rf_bigram b);
struct rf_bigram rf_heap_pop(struct rf_heap *h); /* h->n > 0 */

/* Queues the merge of adjacent symbols left and right when the vocab allows it; either
 * index may be -1 (no neighbour), which queues nothing. */
typedef rf_status (*rf_bigram_fn)(void *ctx, int32_t left, int32_t right);

/* The merge loop SPM and BPE share: queue every adjacent pair, then repeatedly merge the
 * best queued pair and queue its new neighbours, until the queue is empty. Only the
 * scoring (try_bigram) differs between the two. Merged-away symbols end with n = 0. */
rf_status rf_merge_symbols(struct rf_sym *syms, int32_t n, struct rf_heap *heap,
                           rf_bigram_fn try_bigram, void *ctx);

/* Splits word[0, n) into symbols of one UTF-8 character each (by lead byte, as
 * llama.cpp). *syms is grown as needed. Returns the count or -1 (out of memory). */
int32_t rf_syms_init(const char *word, size_t n, struct rf_sym **syms, size_t *cap);

#endif

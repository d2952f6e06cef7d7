#ifndef RF_RUNTIME_KV_CACHE_H
#define RF_RUNTIME_KV_CACHE_H
/* The paged KV cache: per layer a pool of n_blocks blocks of block_size rows, each row
 * width halves (f16) of K, and the same of V, in the memory of the layer's backend.
 * Which block holds which positions of which sequence is the owner's business (a
 * block table per sequence); see backend.h for the addressing. */
#include <stdint.h>

#include "model/model.h"

#define RF_KV_BLOCK_SIZE 16 /* rows per block unless the owner asks otherwise */

struct rf_kv_cache {
    const struct rf_model *model;
    int32_t block_size;
    int32_t n_blocks;
    int64_t width;     /* n_head_kv * head_dim */
    uint16_t **k, **v; /* n_layer pools of (n_blocks * block_size, width) */
};

/* Allocates n_blocks blocks in every layer (on the layer's backend). A failure names
 * the bytes asked for. */
rf_status rf_kv_cache_init(struct rf_kv_cache *kv, const struct rf_model *m, int32_t n_blocks,
                           int32_t block_size);
void rf_kv_cache_free(struct rf_kv_cache *kv);
/* Bytes one block takes over all layers, K and V. */
uint64_t rf_kv_cache_block_bytes(const struct rf_model *m, int32_t block_size);
/* Copies block src to block dst in every layer (copy on write of a shared block). */
rf_status rf_kv_cache_copy_block(struct rf_kv_cache *kv, int32_t dst, int32_t src);

#endif

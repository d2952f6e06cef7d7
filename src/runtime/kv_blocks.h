#ifndef RF_RUNTIME_KV_BLOCKS_H
#define RF_RUNTIME_KV_BLOCKS_H
/* Bookkeeping of a paged KV cache's blocks; the memory itself is rf_kv_cache's.
 *
 * Every block is in exactly one state: held (refcount > 0: in the tables of that many
 * sequences), cached (refcount 0 but in the prefix cache, reusable by a later
 * sequence with the same prefix, evicted least recently used first), or free.
 *
 * The prefix cache holds full blocks of prompt tokens under a chained hash:
 * h(i) = H(h(i-1), tokens of block i), so a cached block stands for the whole prefix
 * up to its end, not just its own tokens. A lookup checks the block's tokens and its
 * parent's hash, so a false hit needs a 64-bit collision of two parent hashes.
 *
 * A sequence is a row of the block tables (n_seq rows of max_blocks ids, -1 where no
 * block): position r lives in block table[r / block_size]. Its length is the number
 * of leading positions whose K and V are written. A block that is shared (refcount
 * > 1) or cached is never written: making it writable copies it first (copy on
 * write), and the caller copies the memory as rf_kv_blocks_grow reports. */
#include <stdbool.h>
#include <stdint.h>

#include "rocmforge.h"

struct rf_kv_blocks;

struct rf_kv_copy {
    int32_t src, dst; /* block ids: copy src's rows to dst in every layer */
};

struct rf_kv_blocks_counts {
    int32_t total;
    int32_t used;   /* held by at least one sequence */
    int32_t cached; /* held only by the prefix cache (evictable) */
    int32_t free;
};

/* n_blocks blocks of block_size rows; n_seq sequences of at most max_blocks blocks.
 * prefix_cache false: blocks are never cached, match finds nothing. */
rf_status rf_kv_blocks_new(int32_t n_blocks, int32_t block_size, int32_t n_seq, int32_t max_blocks,
                           bool prefix_cache, struct rf_kv_blocks **out);
void rf_kv_blocks_free(struct rf_kv_blocks *kb);

/* (n_seq, max_blocks) block ids, -1 where none; valid until the next change. */
const int32_t *rf_kv_blocks_tables(const struct rf_kv_blocks *kb);
int32_t rf_kv_blocks_n_seq(const struct rf_kv_blocks *kb);
int32_t rf_kv_blocks_max_blocks(const struct rf_kv_blocks *kb);
int32_t rf_kv_blocks_block_size(const struct rf_kv_blocks *kb);
void rf_kv_blocks_get_counts(const struct rf_kv_blocks *kb, struct rf_kv_blocks_counts *out);
/* Blocks an allocation can take now: free plus cached (evicted on demand). */
int32_t rf_kv_blocks_available(const struct rf_kv_blocks *kb);
int32_t rf_kv_blocks_refcount(const struct rf_kv_blocks *kb, int32_t block);

int32_t rf_kv_blocks_seq_len(const struct rf_kv_blocks *kb, int32_t seq);
int32_t rf_kv_blocks_seq_n_blocks(const struct rf_kv_blocks *kb, int32_t seq);

/* Attaches to seq (which holds no block) the cached blocks of the longest run of
 * full blocks of tokens[0..n) found in the prefix cache, and sets its length to the
 * positions they cover, at most max_len (so that the caller can recompute the last
 * prompt token for its logits). Returns that length. The tokens later committed to
 * seq must begin with these. */
int32_t rf_kv_blocks_match(struct rf_kv_blocks *kb, int32_t seq, const rf_token *tokens, int32_t n,
                           int32_t max_len);
/* Blocks that growing seq to end positions takes from the pool (new blocks plus
 * copies of shared or cached ones); -1 when end exceeds max_blocks * block_size. */
int32_t rf_kv_blocks_needed(const struct rf_kv_blocks *kb, int32_t seq, int32_t end);
/* Makes positions [length, end) of seq writable: appends blocks, and replaces each
 * shared or cached block among them by a copy, reported in copies (at most cap;
 * *n_copies of them) for the caller to copy before writing. Nothing changes on
 * failure: RF_STATUS_CONTEXT_FULL past max_blocks, RF_STATUS_NOMEM when the pool
 * lacks blocks, RF_STATUS_INVALID_ARG when cap is too small. */
rf_status rf_kv_blocks_grow(struct rf_kv_blocks *kb, int32_t seq, int32_t end,
                            struct rf_kv_copy *copies, int32_t cap, int32_t *n_copies);
/* Positions [0, end) of seq now hold the K and V of tokens[0..end) (end within the
 * blocks grown). The full blocks among the first n_cacheable tokens enter the prefix
 * cache, unless an equal prefix is already cached. */
void rf_kv_blocks_commit(struct rf_kv_blocks *kb, int32_t seq, const rf_token *tokens, int32_t end,
                         int32_t n_cacheable);
/* Drops seq's blocks (cached ones stay in the cache); seq is empty afterwards. */
void rf_kv_blocks_release(struct rf_kv_blocks *kb, int32_t seq);
/* dst (empty) shares every block of src, partial last block included, at src's
 * length; the first write to a shared block copies it. */
rf_status rf_kv_blocks_fork(struct rf_kv_blocks *kb, int32_t dst, int32_t src);
/* Checks every invariant (refcounts against the tables, the lists, the hash table);
 * false with rf_last_error set on the first broken one. For tests. */
bool rf_kv_blocks_check(const struct rf_kv_blocks *kb);

#endif

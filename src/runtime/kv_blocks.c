#include "runtime/kv_blocks.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

#define HASH_SEED 0x6a09e667f3bcc909ull /* parent hash of the first block */

struct kv_seq {
    int32_t n_blocks; /* table entries in use */
    int32_t len;      /* leading positions whose K and V are written */
    int32_t n_hashed; /* leading full blocks whose chained hash is `hash` */
    uint64_t hash;
};

struct rf_kv_blocks {
    int32_t n_blocks, block_size, n_seq, max_blocks;
    bool prefix_cache;
    int32_t *tables;     /* (n_seq, max_blocks) */
    struct kv_seq *seqs; /* (n_seq) */

    int32_t *ref;         /* (n_blocks) sequences holding the block */
    bool *cached;         /* (n_blocks) in the prefix cache */
    uint64_t *hash;       /* (n_blocks) chained hash of a cached block */
    uint64_t *parent;     /* (n_blocks) its parent's chained hash */
    rf_token *tokens;     /* (n_blocks, block_size) tokens of a cached block */
    int32_t *hnext;       /* (n_blocks) next block in the same hash bucket */
    int32_t *buckets;     /* (n_buckets) first block of each bucket, -1: none */
    uint64_t bucket_mask; /* n_buckets - 1 (a power of two) */

    int32_t *free_stack; /* (n_blocks) ids of free blocks */
    int32_t n_free;
    int32_t *prev, *next; /* (n_blocks) links of the LRU list of cached, unheld blocks */
    int32_t lru_head;     /* least recently used, evicted first; -1: empty */
    int32_t lru_tail;
    int32_t n_lru;
};

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t block_hash(uint64_t parent, const rf_token *t, int32_t n)
{
    uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull);
    for (int32_t i = 0; i < n; i++)
        h = mix64(h ^ ((uint64_t)(uint32_t)t[i] + 0x9e3779b97f4a7c15ull));
    return h;
}

static int32_t *bucket_of(struct rf_kv_blocks *kb, uint64_t h)
{
    return &kb->buckets[h & kb->bucket_mask];
}

/* The cached block with hash h, parent hash parent and these tokens, or -1. */
static int32_t cache_find(const struct rf_kv_blocks *kb, uint64_t h, uint64_t parent,
                          const rf_token *t)
{
    const size_t bytes = (size_t)kb->block_size * sizeof *t;
    for (int32_t b = kb->buckets[h & kb->bucket_mask]; b >= 0; b = kb->hnext[b])
        if (kb->hash[b] == h && kb->parent[b] == parent &&
            memcmp(kb->tokens + (size_t)b * (size_t)kb->block_size, t, bytes) == 0)
            return b;
    return -1;
}

static void cache_insert(struct rf_kv_blocks *kb, int32_t b, uint64_t h, uint64_t parent,
                         const rf_token *t)
{
    kb->cached[b] = true;
    kb->hash[b] = h;
    kb->parent[b] = parent;
    memcpy(kb->tokens + (size_t)b * (size_t)kb->block_size, t, (size_t)kb->block_size * sizeof *t);
    int32_t *head = bucket_of(kb, h);
    kb->hnext[b] = *head;
    *head = b;
}

static void cache_remove(struct rf_kv_blocks *kb, int32_t b)
{
    int32_t *p = bucket_of(kb, kb->hash[b]);
    while (*p != b) p = &kb->hnext[*p];
    *p = kb->hnext[b];
    kb->hnext[b] = -1;
    kb->cached[b] = false;
}

/* ---- LRU list of cached blocks no sequence holds ---- */

static void lru_push_back(struct rf_kv_blocks *kb, int32_t b)
{
    kb->prev[b] = kb->lru_tail;
    kb->next[b] = -1;
    if (kb->lru_tail >= 0) kb->next[kb->lru_tail] = b;
    else kb->lru_head = b;
    kb->lru_tail = b;
    kb->n_lru++;
}

static void lru_remove(struct rf_kv_blocks *kb, int32_t b)
{
    if (kb->prev[b] >= 0) kb->next[kb->prev[b]] = kb->next[b];
    else kb->lru_head = kb->next[b];
    if (kb->next[b] >= 0) kb->prev[kb->next[b]] = kb->prev[b];
    else kb->lru_tail = kb->prev[b];
    kb->prev[b] = kb->next[b] = -1;
    kb->n_lru--;
}

/* ---- references ---- */

/* A block with refcount 1: a free one, else the least recently used cached one
 * (which leaves the cache). The caller has checked availability. */
static int32_t block_take(struct rf_kv_blocks *kb)
{
    int32_t b;
    if (kb->n_free > 0) {
        b = kb->free_stack[--kb->n_free];
    } else {
        b = kb->lru_head;
        lru_remove(kb, b);
        cache_remove(kb, b);
    }
    kb->ref[b] = 1;
    return b;
}

static void block_hold(struct rf_kv_blocks *kb, int32_t b)
{
    if (kb->ref[b]++ == 0) lru_remove(kb, b); /* only cached blocks are found unheld */
}

static void block_drop(struct rf_kv_blocks *kb, int32_t b)
{
    if (--kb->ref[b] > 0) return;
    if (kb->cached[b]) lru_push_back(kb, b);
    else kb->free_stack[kb->n_free++] = b;
}

/* ---- lifetime ---- */

static bool alloc_arrays(struct rf_kv_blocks *kb, size_t n_buckets)
{
    const size_t nb = (size_t)kb->n_blocks;
    kb->tables = malloc((size_t)kb->n_seq * (size_t)kb->max_blocks * sizeof *kb->tables);
    kb->seqs = calloc((size_t)kb->n_seq, sizeof *kb->seqs);
    kb->ref = calloc(nb, sizeof *kb->ref);
    kb->cached = calloc(nb, sizeof *kb->cached);
    kb->hash = calloc(nb, sizeof *kb->hash);
    kb->parent = calloc(nb, sizeof *kb->parent);
    kb->tokens = calloc(nb * (size_t)kb->block_size, sizeof *kb->tokens);
    kb->hnext = malloc(nb * sizeof *kb->hnext);
    kb->buckets = malloc(n_buckets * sizeof *kb->buckets);
    kb->free_stack = malloc(nb * sizeof *kb->free_stack);
    kb->prev = malloc(nb * sizeof *kb->prev);
    kb->next = malloc(nb * sizeof *kb->next);
    return kb->tables && kb->seqs && kb->ref && kb->cached && kb->hash && kb->parent &&
           kb->tokens && kb->hnext && kb->buckets && kb->free_stack && kb->prev && kb->next;
}

rf_status rf_kv_blocks_new(int32_t n_blocks, int32_t block_size, int32_t n_seq, int32_t max_blocks,
                           bool prefix_cache, struct rf_kv_blocks **out)
{
    *out = NULL;
    if (n_blocks <= 0 || block_size <= 0 || n_seq <= 0 || max_blocks <= 0 || n_blocks > (1 << 28) ||
        block_size > (1 << 16) || (int64_t)n_seq * max_blocks > (1 << 28))
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "kv blocks: bad sizes (%d blocks of %d rows, %d sequences of %d blocks)",
                       n_blocks, block_size, n_seq, max_blocks);
    struct rf_kv_blocks *kb = calloc(1, sizeof *kb);
    if (!kb) return rf_fail(RF_STATUS_NOMEM, "kv blocks: out of memory");
    kb->n_blocks = n_blocks;
    kb->block_size = block_size;
    kb->n_seq = n_seq;
    kb->max_blocks = max_blocks;
    kb->prefix_cache = prefix_cache;
    size_t n_buckets = 1;
    while (n_buckets < (size_t)n_blocks) n_buckets <<= 1;
    if (!alloc_arrays(kb, n_buckets)) {
        rf_kv_blocks_free(kb);
        return rf_fail(RF_STATUS_NOMEM, "kv blocks: out of memory for %d blocks", n_blocks);
    }
    kb->bucket_mask = n_buckets - 1;
    for (size_t i = 0; i < n_buckets; i++) kb->buckets[i] = -1;
    for (int64_t i = 0; i < (int64_t)n_seq * max_blocks; i++) kb->tables[i] = -1;
    for (int32_t q = 0; q < n_seq; q++) kb->seqs[q].hash = HASH_SEED;
    for (int32_t b = 0; b < n_blocks; b++) {
        kb->hnext[b] = kb->prev[b] = kb->next[b] = -1;
        kb->free_stack[b] = n_blocks - 1 - b; /* block 0 is taken first */
    }
    kb->n_free = n_blocks;
    kb->lru_head = kb->lru_tail = -1;
    *out = kb;
    return RF_OK;
}

void rf_kv_blocks_free(struct rf_kv_blocks *kb)
{
    if (!kb) return;
    free(kb->tables);
    free(kb->seqs);
    free(kb->ref);
    free(kb->cached);
    free(kb->hash);
    free(kb->parent);
    free(kb->tokens);
    free(kb->hnext);
    free(kb->buckets);
    free(kb->free_stack);
    free(kb->prev);
    free(kb->next);
    free(kb);
}

/* ---- queries ---- */

const int32_t *rf_kv_blocks_tables(const struct rf_kv_blocks *kb) { return kb->tables; }
int32_t rf_kv_blocks_n_seq(const struct rf_kv_blocks *kb) { return kb->n_seq; }
int32_t rf_kv_blocks_max_blocks(const struct rf_kv_blocks *kb) { return kb->max_blocks; }
int32_t rf_kv_blocks_block_size(const struct rf_kv_blocks *kb) { return kb->block_size; }
int32_t rf_kv_blocks_available(const struct rf_kv_blocks *kb) { return kb->n_free + kb->n_lru; }

void rf_kv_blocks_get_counts(const struct rf_kv_blocks *kb, struct rf_kv_blocks_counts *out)
{
    out->total = kb->n_blocks;
    out->free = kb->n_free;
    out->cached = kb->n_lru;
    out->used = kb->n_blocks - kb->n_free - kb->n_lru;
}

int32_t rf_kv_blocks_refcount(const struct rf_kv_blocks *kb, int32_t block)
{
    return block >= 0 && block < kb->n_blocks ? kb->ref[block] : 0;
}

int32_t rf_kv_blocks_seq_len(const struct rf_kv_blocks *kb, int32_t seq)
{
    return kb->seqs[seq].len;
}

int32_t rf_kv_blocks_seq_n_blocks(const struct rf_kv_blocks *kb, int32_t seq)
{
    return kb->seqs[seq].n_blocks;
}

static int32_t *row(const struct rf_kv_blocks *kb, int32_t seq)
{
    return kb->tables + (size_t)seq * (size_t)kb->max_blocks;
}

/* ---- sequences ---- */

int32_t rf_kv_blocks_match(struct rf_kv_blocks *kb, int32_t seq, const rf_token *tokens, int32_t n,
                           int32_t max_len)
{
    struct kv_seq *s = &kb->seqs[seq];
    if (!kb->prefix_cache || s->n_blocks > 0) return s->len;
    int32_t *t = row(kb, seq);
    const int32_t bs = kb->block_size;
    uint64_t h = HASH_SEED;
    int32_t i = 0;
    for (; i < kb->max_blocks && (int64_t)(i + 1) * bs <= n; i++) {
        const rf_token *bt = tokens + (size_t)i * (size_t)bs;
        const uint64_t hi = block_hash(h, bt, bs);
        const int32_t b = cache_find(kb, hi, h, bt);
        if (b < 0) break;
        block_hold(kb, b);
        t[i] = b;
        h = hi;
    }
    s->n_blocks = s->n_hashed = i;
    s->hash = h;
    s->len = i * bs < max_len ? i * bs : (max_len > 0 ? max_len : 0);
    return s->len;
}

/* Whether block index i of seq must be taken from the pool to write into it. */
static bool needs_block(const struct rf_kv_blocks *kb, int32_t seq, int32_t i)
{
    if (i >= kb->seqs[seq].n_blocks) return true;
    const int32_t b = row(kb, seq)[i];
    return kb->ref[b] > 1 || kb->cached[b];
}

int32_t rf_kv_blocks_needed(const struct rf_kv_blocks *kb, int32_t seq, int32_t end)
{
    if (end > (int64_t)kb->max_blocks * kb->block_size) return -1;
    const struct kv_seq *s = &kb->seqs[seq];
    int32_t n = 0;
    for (int32_t i = s->len / kb->block_size; s->len < end && (int64_t)i * kb->block_size < end;
         i++)
        n += needs_block(kb, seq, i);
    return n;
}

/* Copies of shared or cached blocks among the writable ones. */
static int32_t count_copies(const struct rf_kv_blocks *kb, int32_t seq, int32_t end)
{
    const struct kv_seq *s = &kb->seqs[seq];
    int32_t n = 0;
    for (int32_t i = s->len / kb->block_size; s->len < end && (int64_t)i * kb->block_size < end;
         i++)
        n += i < s->n_blocks && needs_block(kb, seq, i);
    return n;
}

rf_status rf_kv_blocks_grow(struct rf_kv_blocks *kb, int32_t seq, int32_t end,
                            struct rf_kv_copy *copies, int32_t cap, int32_t *n_copies)
{
    *n_copies = 0;
    const int32_t need = rf_kv_blocks_needed(kb, seq, end);
    if (need < 0)
        return rf_fail(RF_STATUS_CONTEXT_FULL, "kv blocks: %d positions exceed %d blocks of %d",
                       end, kb->max_blocks, kb->block_size);
    if (need > rf_kv_blocks_available(kb))
        return rf_fail(RF_STATUS_NOMEM, "kv blocks: %d blocks needed, %d available", need,
                       rf_kv_blocks_available(kb));
    if (count_copies(kb, seq, end) > cap)
        return rf_fail(RF_STATUS_INVALID_ARG, "kv blocks: room for %d copies, %d needed", cap,
                       count_copies(kb, seq, end));
    struct kv_seq *s = &kb->seqs[seq];
    int32_t *t = row(kb, seq);
    for (int32_t i = s->len / kb->block_size; s->len < end && (int64_t)i * kb->block_size < end;
         i++) {
        if (i >= s->n_blocks) {
            t[i] = block_take(kb);
            s->n_blocks = i + 1;
        } else if (needs_block(kb, seq, i)) {
            const int32_t src = t[i];
            t[i] = block_take(kb); /* src is held, so not evicted here */
            copies[(*n_copies)++] = (struct rf_kv_copy){.src = src, .dst = t[i]};
            block_drop(kb, src);
        }
    }
    return RF_OK;
}

void rf_kv_blocks_commit(struct rf_kv_blocks *kb, int32_t seq, const rf_token *tokens, int32_t end,
                         int32_t n_cacheable)
{
    struct kv_seq *s = &kb->seqs[seq];
    const int32_t bs = kb->block_size;
    if (end > s->n_blocks * bs) end = s->n_blocks * bs;
    if (end > s->len) s->len = end;
    if (!kb->prefix_cache) return;
    const int32_t lim = (end < n_cacheable ? end : n_cacheable) / bs;
    const int32_t *t = row(kb, seq);
    for (int32_t i = s->n_hashed; i < lim; i++) {
        const rf_token *bt = tokens + (size_t)i * (size_t)bs;
        const uint64_t hi = block_hash(s->hash, bt, bs);
        const int32_t b = t[i];
        if (!kb->cached[b] && cache_find(kb, hi, s->hash, bt) < 0)
            cache_insert(kb, b, hi, s->hash, bt);
        s->hash = hi;
        s->n_hashed = i + 1;
    }
}

void rf_kv_blocks_release(struct rf_kv_blocks *kb, int32_t seq)
{
    struct kv_seq *s = &kb->seqs[seq];
    int32_t *t = row(kb, seq);
    /* Last block first: the end of a prefix is evicted before its start, which
     * later blocks depend on. */
    for (int32_t i = s->n_blocks - 1; i >= 0; i--) {
        block_drop(kb, t[i]);
        t[i] = -1;
    }
    *s = (struct kv_seq){.hash = HASH_SEED};
}

rf_status rf_kv_blocks_fork(struct rf_kv_blocks *kb, int32_t dst, int32_t src)
{
    if (dst == src || kb->seqs[dst].n_blocks > 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "kv blocks: fork into sequence %d, not empty", dst);
    const struct kv_seq *s = &kb->seqs[src];
    for (int32_t i = 0; i < s->n_blocks; i++) {
        row(kb, dst)[i] = row(kb, src)[i];
        block_hold(kb, row(kb, src)[i]);
    }
    kb->seqs[dst] = *s;
    return RF_OK;
}

/* ---- invariants ---- */

/* A broken invariant: the message for rf_last_error, and false. */
#define BROKEN(...) (rf_fail(RF_STATUS_INVALID_ARG, __VA_ARGS__), false)

static bool check_lists(const struct rf_kv_blocks *kb, int32_t *seen)
{
    for (int32_t i = 0; i < kb->n_free; i++) {
        const int32_t b = kb->free_stack[i];
        if (b < 0 || b >= kb->n_blocks || seen[b]++ || kb->ref[b] || kb->cached[b])
            return BROKEN("kv blocks: free entry %d (block %d) bad", i, b);
    }
    int32_t n = 0;
    for (int32_t b = kb->lru_head, p = -1; b >= 0; p = b, b = kb->next[b], n++)
        if (n >= kb->n_blocks || seen[b]++ || kb->ref[b] || !kb->cached[b] || kb->prev[b] != p)
            return BROKEN("kv blocks: LRU entry %d (block %d) bad", n, b);
    if (n != kb->n_lru) return BROKEN("kv blocks: LRU count");
    for (int32_t b = 0; b < kb->n_blocks; b++)
        if (!seen[b] && kb->ref[b] <= 0) return BROKEN("kv blocks: block %d lost", b);
    return true;
}

static bool check_refs(const struct rf_kv_blocks *kb, int32_t *count)
{
    for (int32_t q = 0; q < kb->n_seq; q++) {
        const struct kv_seq *s = &kb->seqs[q];
        if (s->len > s->n_blocks * kb->block_size || s->n_hashed > s->n_blocks)
            return BROKEN("kv blocks: sequence %d length", q);
        for (int32_t i = 0; i < kb->max_blocks; i++) {
            const int32_t b = row(kb, q)[i];
            if ((i < s->n_blocks) != (b >= 0) || b >= kb->n_blocks)
                return BROKEN("kv blocks: table %d[%d] = %d", q, i, b);
            if (b >= 0) count[b]++;
        }
    }
    for (int32_t b = 0; b < kb->n_blocks; b++)
        if (count[b] != kb->ref[b])
            return BROKEN("kv blocks: block %d held %d times, refcount %d", b, count[b],
                          kb->ref[b]);
    return true;
}

static bool check_hash(const struct rf_kv_blocks *kb)
{
    int32_t n = 0, n_cached = 0;
    for (uint64_t i = 0; i <= kb->bucket_mask; i++)
        for (int32_t b = kb->buckets[i]; b >= 0; b = kb->hnext[b], n++)
            if (n > kb->n_blocks || !kb->cached[b] || (kb->hash[b] & kb->bucket_mask) != i)
                return BROKEN("kv blocks: hash entry %d bad", b);
    for (int32_t b = 0; b < kb->n_blocks; b++) n_cached += kb->cached[b];
    if (n != n_cached) return BROKEN("kv blocks: hash count");
    return true;
}

bool rf_kv_blocks_check(const struct rf_kv_blocks *kb)
{
    int32_t *tmp = calloc((size_t)kb->n_blocks, sizeof *tmp);
    if (!tmp) return BROKEN("kv blocks: out of memory");
    bool ok = check_refs(kb, tmp);
    memset(tmp, 0, (size_t)kb->n_blocks * sizeof *tmp);
    ok = ok && check_lists(kb, tmp) && check_hash(kb);
    free(tmp);
    return ok;
}

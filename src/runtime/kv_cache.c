#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "runtime/kv_cache.h"

uint64_t rf_kv_cache_block_bytes(const struct rf_model *m, int32_t block_size)
{
    const uint64_t width = (uint64_t)m->hp.n_head_kv * (uint64_t)m->hp.head_dim;
    return 2ull * (uint64_t)m->hp.n_layer * (uint64_t)block_size * width * sizeof(uint16_t);
}

rf_status rf_kv_cache_init(struct rf_kv_cache *kv, const struct rf_model *m, int32_t n_blocks,
                           int32_t block_size)
{
    memset(kv, 0, sizeof *kv);
    if (n_blocks <= 0 || block_size <= 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "kv cache: %d blocks of %d rows", n_blocks,
                       block_size);
    const int n_layer = m->hp.n_layer;
    kv->model = m;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->width = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
    kv->k = calloc((size_t)n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)n_layer, sizeof *kv->v);
    if (!kv->k || !kv->v) {
        rf_kv_cache_free(kv);
        return rf_fail(RF_STATUS_NOMEM, "kv cache: out of memory");
    }
    const size_t bytes = (size_t)n_blocks * (size_t)block_size * (size_t)kv->width * 2;
    for (int il = 0; il < n_layer; il++) {
        const struct rf_backend *be = rf_model_layer_backend(m, il);
        kv->k[il] = be->iface->alloc(be->ctx, bytes);
        kv->v[il] = kv->k[il] ? be->iface->alloc(be->ctx, bytes) : NULL;
        if (!kv->v[il]) {
            /* Keep a device backend's own message (it says what is free). */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", rf_last_error());
            rf_kv_cache_free(kv);
            return rf_fail(RF_STATUS_NOMEM,
                           "kv cache: cannot allocate %zu bytes for layer %d of %d (%s blocks: "
                           "%.1f MiB in all)%s%s",
                           2 * bytes, il, n_layer, be->iface->name,
                           (double)rf_kv_cache_block_bytes(m, block_size) * n_blocks / 1048576.0,
                           msg[0] ? ": " : "", msg);
        }
    }
    return RF_OK;
}

void rf_kv_cache_free(struct rf_kv_cache *kv)
{
    if (!kv->model) return;
    for (int il = 0; il < kv->model->hp.n_layer; il++) {
        const struct rf_backend *be = rf_model_layer_backend(kv->model, il);
        if (kv->k && kv->k[il]) be->iface->release(be->ctx, kv->k[il]);
        if (kv->v && kv->v[il]) be->iface->release(be->ctx, kv->v[il]);
    }
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

rf_status rf_kv_cache_copy_block(struct rf_kv_cache *kv, int32_t dst, int32_t src)
{
    if (dst < 0 || src < 0 || dst >= kv->n_blocks || src >= kv->n_blocks)
        return rf_fail(RF_STATUS_INVALID_ARG, "kv cache: copy of block %d to %d outside %d blocks",
                       src, dst, kv->n_blocks);
    if (dst == src) return RF_OK;
    const size_t row = (size_t)kv->block_size * (size_t)kv->width;
    for (int il = 0; il < kv->model->hp.n_layer; il++) {
        const struct rf_backend *be = rf_model_layer_backend(kv->model, il);
        RF_TRY(be->iface->copy(be->ctx, kv->k[il] + (size_t)dst * row,
                                     kv->k[il] + (size_t)src * row, row * 2));
        RF_TRY(be->iface->copy(be->ctx, kv->v[il] + (size_t)dst * row,
                                     kv->v[il] + (size_t)src * row, row * 2));
    }
    return RF_OK;
}

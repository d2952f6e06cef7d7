#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "runtime/scratch.h"

static void *lane_alloc(const struct rf_lane *l, size_t bytes)
{
    return l->be->iface->alloc(l->be->ctx, bytes ? bytes : 1);
}

static void lane_release(const struct rf_lane *l, void *p)
{
    if (p) l->be->iface->release(l->be->ctx, p);
}

static bool lane_uses(const struct rf_model *m, const struct rf_backend *be)
{
    for (int il = 0; il <= m->hp.n_layer; il++)
        if (rf_model_layer_backend(m, il) == be) return true;
    return false;
}

static rf_status lane_init(struct rf_scratch *s, struct rf_lane *l, const struct rf_backend *be)
{
    const struct rf_hparams *hp = &s->m->hp;
    const size_t nb = (size_t)s->n_batch, d = (size_t)hp->n_embd;
    const size_t qw = (size_t)hp->n_head * (size_t)hp->head_dim, wide = qw > d ? qw : d;
    const size_t kvw = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    l->be = be;
    l->x = lane_alloc(l, nb * d * sizeof(float));
    if (!l->x) goto fail;
    if (!lane_uses(s->m, be)) return RF_OK; /* the CPU lane of a fully offloaded model */
    l->full = true;
    l->h = lane_alloc(l, nb * wide * sizeof(float));
    l->q = lane_alloc(l, nb * wide * sizeof(float));
    l->k = lane_alloc(l, nb * kvw * sizeof(float));
    l->v = lane_alloc(l, nb * kvw * sizeof(float));
    l->gate = lane_alloc(l, nb * (size_t)hp->n_ff * sizeof(float));
    l->up = lane_alloc(l, nb * (size_t)hp->n_ff * sizeof(float));
    l->pos = lane_alloc(l, nb * sizeof(int32_t));
    l->seq = lane_alloc(l, nb * sizeof(int32_t));
    l->slot = lane_alloc(l, nb * sizeof(int32_t));
    l->tables = lane_alloc(l, (size_t)s->n_seq * (size_t)s->max_blocks * sizeof(int32_t));
    if (!be->host_memory)
        l->logits = lane_alloc(l, (size_t)RF_LOGIT_ROWS * (size_t)hp->n_vocab * sizeof(float));
    if (!l->h || !l->q || !l->k || !l->v || !l->gate || !l->up || !l->pos || !l->seq ||
        !l->slot || !l->tables || (!be->host_memory && !l->logits))
        goto fail;
    return RF_OK;
fail:;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rf_last_error());
    return rf_fail(RF_STATUS_NOMEM, "scratch: cannot allocate %s buffers for %d tokens%s%s",
                   be->iface->name, s->n_batch, msg[0] ? ": " : "", msg);
}

static void lane_free(struct rf_lane *l)
{
    if (!l->be) return;
    float *f[] = {l->x, l->h, l->q, l->k, l->v, l->gate, l->up, l->logits};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) lane_release(l, f[i]);
    int32_t *n[] = {l->pos, l->seq, l->slot, l->tables};
    for (size_t i = 0; i < sizeof n / sizeof *n; i++) lane_release(l, n[i]);
}

static rf_status host_init(struct rf_scratch *s)
{
    const size_t nb = (size_t)s->n_batch;
    s->h_ids = calloc(nb, sizeof(int32_t));
    s->h_pos = calloc(nb, sizeof(int32_t));
    s->h_seq = calloc(nb, sizeof(int32_t));
    s->h_slot = calloc(nb, sizeof(int32_t));
    s->h_rows = calloc(nb, sizeof(int32_t));
    s->h_tables = calloc((size_t)s->n_seq * (size_t)s->max_blocks, sizeof(int32_t));
    if (!s->h_ids || !s->h_pos || !s->h_seq || !s->h_slot || !s->h_rows || !s->h_tables)
        return rf_fail(RF_STATUS_NOMEM, "scratch: out of memory");
    return RF_OK;
}

rf_status rf_scratch_new(const struct rf_model *m, int32_t n_batch, int32_t n_seq,
                         int32_t max_blocks, struct rf_scratch **out)
{
    static atomic_uint next_tag = 1;
    *out = NULL;
    if (n_batch <= 0 || n_seq <= 0 || max_blocks <= 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "scratch: %d tokens, %d sequences, %d blocks",
                       n_batch, n_seq, max_blocks);
    struct rf_scratch *s = calloc(1, sizeof *s);
    if (!s) return rf_fail(RF_STATUS_NOMEM, "scratch: out of memory");
    s->m = m;
    s->n_batch = n_batch;
    s->n_seq = n_seq;
    s->max_blocks = max_blocks;
    s->tag = atomic_fetch_add(&next_tag, 1);
    rf_status st = host_init(s);
    if (st == RF_OK) st = lane_init(s, &s->lane[0], &m->backend);
    if (st == RF_OK && m->gpu.iface) st = lane_init(s, &s->lane[1], &m->gpu);
    if (st != RF_OK) {
        rf_scratch_free(s);
        return st;
    }
    *out = s;
    return RF_OK;
}

void rf_scratch_free(struct rf_scratch *s)
{
    if (!s) return;
    for (int i = 0; i < 2; i++) {
        const struct rf_backend *be = s->lane[i].be;
        if (be && be->iface->step_forget) be->iface->step_forget(be->ctx, s->tag);
        lane_free(&s->lane[i]);
    }
    free(s->h_ids);
    free(s->h_pos);
    free(s->h_seq);
    free(s->h_slot);
    free(s->h_rows);
    free(s->h_tables);
    free(s);
}

int32_t rf_scratch_n_batch(const struct rf_scratch *s) { return s->n_batch; }

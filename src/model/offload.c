/* Placing layers on the GPU: the backend is opened when the build has one and
 * layers are asked for, and the offloaded layers' weights (the last n_gpu_layers,
 * then the output head) are uploaded in their stored format. */
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include "core/status.h"
#include "model/model.h"

/* struct rf_layer starts with its tensors (model.h), so a layer is walked as an array
 * of them: a tensor added for an architecture is offloaded without a list to update. */
#define LAYER_TENSORS (offsetof(struct rf_layer, RF_LAYER_FIRST_SCALAR) / sizeof(struct rf_tensor))
#define MAX_LAYER_TENSORS 32
_Static_assert(offsetof(struct rf_layer, RF_LAYER_FIRST_SCALAR) % sizeof(struct rf_tensor) == 0 &&
                   LAYER_TENSORS <= MAX_LAYER_TENSORS,
               "struct rf_layer must start with its struct rf_tensor fields");

static int layer_tensors(struct rf_layer *l, struct rf_tensor **out)
{
    struct rf_tensor *all = (struct rf_tensor *)(void *)l;
    int n = 0;
    for (size_t i = 0; i < LAYER_TENSORS; i++)
        if (all[i].data) out[n++] = &all[i];
    return n;
}

/* Every tensor that lives on the GPU: the offloaded layers', then the head's. */
static int gpu_tensors(struct rf_model *m, int il, struct rf_tensor **out)
{
    if (il < m->hp.n_layer) return layer_tensors(&m->layers[il], out);
    out[0] = &m->output_norm;
    out[1] = &m->output;
    return 2;
}

static void progress(uint64_t done, uint64_t total)
{
    if (!isatty(STDERR_FILENO) || total == 0) return;
    const int width = 40, fill = (int)((double)done / (double)total * width);
    fprintf(stderr, "\ruploading weights [%.*s%*s] %3d%% %.2f/%.2f GiB", fill,
            "########################################", width - fill, "",
            (int)(100.0 * (double)done / (double)total), (double)done / 1073741824.0,
            (double)total / 1073741824.0);
    if (done == total) fputc('\n', stderr);
}

static uint64_t offload_bytes(struct rf_model *m)
{
    uint64_t total = 0;
    struct rf_tensor *t[MAX_LAYER_TENSORS];
    for (int il = m->hp.n_layer - m->n_gpu_layers; il <= m->hp.n_layer; il++) {
        const int n = gpu_tensors(m, il, t);
        for (int i = 0; i < n; i++) total += t[i]->nbytes;
    }
    return total;
}

static rf_status upload(struct rf_model *m)
{
    const struct rf_backend_i *be = m->gpu.iface;
    const uint64_t total = offload_bytes(m);
    uint64_t done = 0;
    struct rf_tensor *t[MAX_LAYER_TENSORS];
    for (int il = m->hp.n_layer - m->n_gpu_layers; il <= m->hp.n_layer; il++) {
        const int n = gpu_tensors(m, il, t);
        for (int i = 0; i < n; i++) {
            rf_status s = be->load_tensor(m->gpu.ctx, t[i]);
            if (s != RF_OK) {
                if (isatty(STDERR_FILENO)) fputc('\n', stderr);
                return s;
            }
            done += t[i]->nbytes;
        }
        progress(done, total);
    }
    return RF_OK;
}

/* Layers whose weights the GPU cannot multiply stay on the CPU, and so do the layers
 * before them (offload takes the last layers); the head needs its types too. */
static int32_t offloadable_layers(struct rf_model *m, int32_t want)
{
    const struct rf_backend_i *be = m->gpu.iface;
    if (!be->supports_type) return want;
    struct rf_tensor *t[MAX_LAYER_TENSORS];
    const int n_head = gpu_tensors(m, m->hp.n_layer, t);
    for (int i = 0; i < n_head; i++)
        if (!be->supports_type(m->gpu.ctx, t[i]->type)) return 0;
    int32_t n = 0;
    for (int il = m->hp.n_layer - 1; il >= 0 && n < want; il--, n++) {
        const int k = gpu_tensors(m, il, t);
        for (int i = 0; i < k; i++)
            if (!be->supports_type(m->gpu.ctx, t[i]->type)) return n;
    }
    return n;
}

rf_status rf_model_offload(struct rf_model *m, const struct rf_model_params *p)
{
    m->n_gpu_layers = 0;
    if (p->n_gpu_layers == 0) return RF_OK;
    rf_status s = rf_backend_gpu_init(p->main_gpu, &m->gpu);
    if (s != RF_OK) {
        /* Without a usable GPU (or without GPU support in the build) the model runs on
         * the CPU, and says so to a person (a terminal, -v, or layers asked for by
         * number); scripts reading stderr get no extra line. */
        if (p->n_gpu_layers > 0 || p->verbose || isatty(STDERR_FILENO))
            fprintf(stderr, "rocmforge: %s; running on the CPU\n", rf_last_error());
        m->gpu.iface = NULL;
        return RF_OK;
    }
    const int32_t n = p->n_gpu_layers;
    const int32_t want = n < 0 || n > m->hp.n_layer ? m->hp.n_layer : n;
    m->n_gpu_layers = offloadable_layers(m, want);
    if (m->n_gpu_layers < want && (p->n_gpu_layers > 0 || p->verbose || isatty(STDERR_FILENO)))
        fprintf(stderr, "rocmforge: %d of %d layers on the GPU (it has no kernels for the rest's "
                        "weight types)\n", m->n_gpu_layers, want);
    if (m->n_gpu_layers == 0) {
        m->gpu.iface->free(m->gpu.ctx);
        m->gpu.iface = NULL;
        return RF_OK;
    }
    return upload(m);
}

void rf_model_offload_free(struct rf_model *m)
{
    if (!m->gpu.iface) return;
    const struct rf_backend_i *be = m->gpu.iface;
    struct rf_tensor *t[MAX_LAYER_TENSORS];
    for (int il = m->hp.n_layer - m->n_gpu_layers; m->n_gpu_layers > 0 && il <= m->hp.n_layer; il++) {
        const int n = gpu_tensors(m, il, t);
        for (int i = 0; i < n; i++)
            if (be->free_tensor) be->free_tensor(m->gpu.ctx, t[i]);
    }
    be->free(m->gpu.ctx);
    m->gpu.iface = NULL;
}

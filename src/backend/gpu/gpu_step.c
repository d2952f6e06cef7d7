/* Step capture: the ops of a step are recorded once into a graph under the forward
 * pass's key and replayed when the key comes again; and sampling on the device. */
#include <string.h>

#include "backend/gpu/gpu_internal.h"

static int graph_find(const struct rf_gpu_ctx *c, uint64_t key)
{
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].key == key) return i;
    return -1;
}

static void graph_drop(struct rf_gpu_ctx *c, int i)
{
    cudaGraphExecDestroy(c->graphs[i].exec);
    c->graphs[i] = c->graphs[--c->n_graphs];
}

void rf_gpu_capture_abort(struct rf_gpu_ctx *c)
{
    if (!c->capturing) return;
    cudaGraph_t g = NULL;
    cudaStreamEndCapture(c->stream, &g);
    if (g) cudaGraphDestroy(g);
    (void)cudaGetLastError();
    c->capturing = false;
}

rf_status rf_gpu_step_begin(void *ctx, uint64_t key, bool *replayed)
{
    struct rf_gpu_ctx *c = ctx;
    *replayed = false;
    rf_gpu_capture_abort(c);
    RF_TRY(rf_gpu_take_error(c));
    const int i = graph_find(c, key);
    if (i >= 0) {
        c->graphs[i].last_use = ++c->use_clock;
        rf_gpu_note_launch();
        RF_GPU_TRY(cudaGraphLaunch(c->graphs[i].exec, c->stream));
        *replayed = true;
        return RF_OK;
    }
    /* Relaxed: buffers first used inside the step may still be allocated. */
    RF_GPU_TRY(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeRelaxed));
    c->capturing = true;
    c->capture_key = key;
    return RF_OK;
}

static void evict_lru(struct rf_gpu_ctx *c)
{
    int lru = 0;
    for (int i = 1; i < c->n_graphs; i++)
        if (c->graphs[i].last_use < c->graphs[lru].last_use) lru = i;
    graph_drop(c, lru);
}

rf_status rf_gpu_step_end(void *ctx)
{
    struct rf_gpu_ctx *c = ctx;
    if (!c->capturing) return rf_fail(RF_STATUS_INVALID_ARG, "gpu: step_end without step_begin");
    c->capturing = false;
    cudaGraph_t g = NULL;
    const cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    rf_status s = rf_gpu_take_error(c);
    if (s == RF_OK && e != cudaSuccess)
        s = rf_fail(RF_STATUS_DEVICE, "gpu: capturing a step failed: %s", cudaGetErrorString(e));
    if (s != RF_OK) {
        if (g) cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return s;
    }
    cudaGraphExec_t exec = NULL;
    const cudaError_t ei = rf_graph_instantiate(&exec, g);
    cudaGraphDestroy(g);
    if (ei != cudaSuccess)
        return rf_fail(RF_STATUS_DEVICE, "gpu: instantiating a step graph failed: %s",
                       cudaGetErrorString(ei));
    if (c->n_graphs == RF_GPU_MAX_GRAPHS) evict_lru(c);
    c->graphs[c->n_graphs++] = (struct rf_gpu_graph){
        .key = c->capture_key, .exec = exec, .last_use = ++c->use_clock};
    rf_gpu_note_launch();
    RF_GPU_TRY(cudaGraphLaunch(exec, c->stream));
    return RF_OK;
}

void rf_gpu_step_forget(void *ctx, uint32_t tag)
{
    struct rf_gpu_ctx *c = ctx;
    for (int i = c->n_graphs - 1; i >= 0; i--)
        if ((uint32_t)(c->graphs[i].key >> 32) == tag) graph_drop(c, i);
}

void rf_gpu_graphs_free(struct rf_gpu_ctx *c)
{
    while (c->n_graphs > 0) graph_drop(c, c->n_graphs - 1);
}

rf_status rf_gpu_sample_op(void *ctx, const float *logits, int32_t n_vocab,
                           const struct rf_sample_params *sp, uint64_t rng_state, int32_t *token)
{
    struct rf_gpu_ctx *c = ctx;
    (void)rng_state; /* the draw uses sp->u */
    RF_TRY(rf_gpu_take_error(c));
    if (c->capturing)
        return rf_fail(RF_STATUS_INVALID_ARG, "gpu: sample inside a captured step");
    int32_t *res = (int32_t *)((uint8_t *)c->sample_ws + RF_GPU_SAMPLE_WS * 8);
    RF_TRY(rf_gpu_sample(c->stream, logits, n_vocab, sp, c->sample_ws, res));
    RF_GPU_TRY(cudaMemcpyAsync(c->sample_host, res, sizeof *res, cudaMemcpyDeviceToHost, c->stream));
    RF_GPU_TRY(cudaStreamSynchronize(c->stream));
    *token = *c->sample_host;
    return RF_OK;
}

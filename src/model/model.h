#ifndef RF_MODEL_H
#define RF_MODEL_H
/* A loaded model: immutable after rf_model_load and shared by every context. */
#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "gguf/gguf.h"
#include "rocmforge.h"

struct rf_vocab;

enum rf_arch {
    RF_ARCH_LLAMA,
    RF_ARCH_MISTRAL,
    RF_ARCH_QWEN2,
    RF_ARCH_QWEN3,
    RF_ARCH_GEMMA3,
    RF_ARCH_COUNT
};

/* Hyper-parameters and architecture flags, read once from the GGUF metadata. */
struct rf_hparams {
    enum rf_arch arch;
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;    /* per head, for q, k and v */
    int32_t n_ff;
    int32_t n_rot;       /* rotated dimensions of each head */
    float norm_eps;
    float rope_base;
    float rope_scale;    /* linear position scaling: pos * rope_scale */
    bool rope_neox;
    bool attn_bias;      /* q, k, v projections carry biases */
    bool qk_norm;        /* per-head RMSNorm of q and k before RoPE */
    bool tied_output;    /* output matrix is token_embd */
    /* Gemma-style variants (false / 0 for the others) */
    bool embd_scale;     /* token embeddings are multiplied by sqrt(n_embd) */
    bool post_norms;     /* RMSNorm of the attention and MLP outputs before each residual add */
    bool geglu;          /* MLP activation gelu_tanh(gate) * up instead of silu(gate) * up */
    bool q_prescale;     /* q is multiplied by attn_scale before attention (q.k then unscaled) */
    float attn_scale;    /* multiplies q.k: 1/sqrt(head_dim) unless the architecture says */
    float attn_softcap;  /* 0: none; else scores = c * tanh(scores / c) */
    float final_softcap; /* 0: none; else logits = c * tanh(logits / c) */
    int32_t n_swa;       /* sliding window of the local layers in tokens; 0: every layer global */
    int32_t swa_pattern; /* with n_swa: layer il is global when il % swa_pattern == swa_pattern - 1 */
    float rope_base_swa; /* RoPE base of the sliding-window layers */
};

/* Tensors first, up to RF_LAYER_FIRST_SCALAR: model/offload.c walks them as an array,
 * so a tensor added for an architecture goes with them. */
#define RF_LAYER_FIRST_SCALAR window
struct rf_layer {
    struct rf_tensor attn_norm; /* (n_embd) */
    struct rf_tensor wq;        /* (n_embd -> n_head*head_dim): ne = {n_embd, n_head*head_dim} */
    struct rf_tensor wk;        /* ne = {n_embd, n_head_kv*head_dim} */
    struct rf_tensor wv;        /* ne = {n_embd, n_head_kv*head_dim} */
    struct rf_tensor wo;        /* ne = {n_head*head_dim, n_embd} */
    struct rf_tensor bq, bk, bv; /* (n_head*head_dim), (n_head_kv*head_dim) x2; attn_bias only */
    struct rf_tensor q_norm, k_norm; /* (head_dim); qk_norm only */
    struct rf_tensor ffn_norm;  /* (n_embd) */
    struct rf_tensor w_gate;    /* ne = {n_embd, n_ff} */
    struct rf_tensor w_up;      /* ne = {n_embd, n_ff} */
    struct rf_tensor w_down;    /* ne = {n_ff, n_embd} */
    struct rf_tensor attn_post_norm, ffn_post_norm; /* (n_embd); post_norms only */
    int32_t window;             /* attention sees positions pos-window+1..pos; 0: all */
    float rope_base;            /* RoPE base of this layer (rope_base or rope_base_swa) */
    float rope_scale;           /* its linear position scaling (sliding-window layers: 1) */
};

struct rf_model {
    struct rf_gguf *gguf;
    struct rf_hparams hp;
    struct rf_tensor tok_embd;    /* ne = {n_embd, n_vocab} */
    struct rf_tensor output_norm; /* (n_embd) */
    struct rf_tensor output;      /* ne = {n_embd, n_vocab}; a copy of tok_embd when tied */
    struct rf_layer *layers;      /* n_layer */
    struct rf_vocab *vocab;
    struct rf_backend backend;    /* the CPU: token embeddings and layers not offloaded */
    struct rf_backend gpu;        /* iface NULL when nothing is offloaded */
    int32_t n_gpu_layers;         /* layers n_layer - n_gpu_layers.. run on the GPU */
    int32_t n_threads;
    uint64_t weight_bytes;
    char *chat_template;          /* NUL-terminated copy, or NULL */
};

const char *rf_arch_name(enum rf_arch a);
/* Reads hparams for the file's architecture; unknown architectures are an error
 * naming the architecture and listing the supported ones. */
rf_status rf_hparams_load(const struct rf_gguf *g, struct rf_hparams *hp);
/* Binds every weight tensor, checking each shape against the hparams. */
rf_status rf_model_bind_weights(struct rf_model *m);

const char *rf_model_chat_template(const struct rf_model *m);

/* Opens the GPU backend and uploads the offloaded layers (offload.c); without a GPU,
 * leaves everything on the CPU. */
rf_status rf_model_offload(struct rf_model *m, const struct rf_model_params *p);
void rf_model_offload_free(struct rf_model *m);

/* The backend layer il runs on; il = n_layer: the output head's (the last layer's). */
static inline const struct rf_backend *rf_model_layer_backend(const struct rf_model *m, int il)
{
    if (il >= m->hp.n_layer) il = m->hp.n_layer - 1;
    return il >= m->hp.n_layer - m->n_gpu_layers ? &m->gpu : &m->backend;
}

#endif

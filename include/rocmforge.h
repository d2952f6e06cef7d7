/* rocmforge: public C API. Opaque handles, *_params structs with defaults,
 * rf_status return codes and a thread-local last-error message. */
#ifndef ROCMFORGE_H
#define ROCMFORGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rf_status {
    RF_OK = 0,
    RF_STATUS_INVALID_ARG,  /* caller passed something unusable */
    RF_STATUS_IO,           /* open/read/mmap failed */
    RF_STATUS_BAD_FILE,     /* malformed or hostile GGUF */
    RF_STATUS_UNSUPPORTED,  /* valid but not supported (architecture, type) */
    RF_STATUS_SHAPE,        /* tensor shapes disagree */
    RF_STATUS_NOMEM,        /* allocation failed */
    RF_STATUS_CONTEXT_FULL, /* tokens would exceed the context size */
    RF_STATUS_DEVICE,       /* accelerator failure */
    RF_STATUS_CANCELLED,
    RF_STATUS_BUSY,         /* a queue is full: try again later */
} rf_status;

/* Message of the last failure on this thread ("" when none). */
const char *rf_last_error(void);
const char *rf_status_name(rf_status s);

typedef int32_t rf_token;

struct rf_model;
struct rf_context;
struct rf_sampler;

struct rf_model_params {
    int32_t n_threads;    /* 0: number of online CPUs */
    int32_t n_gpu_layers; /* layers on the GPU: -1 all (default), 0 none (CPU only) */
    int32_t main_gpu;     /* device index */
    bool verbose;         /* progress and device information on stderr */
};

struct rf_context_params {
    int32_t n_ctx;     /* 0: the model's training context, capped at 4096 */
    int32_t n_batch;   /* max tokens per forward call (prefill chunk); threads are the model's */
};

struct rf_sampler_params {
    float temperature;        /* <= 0: greedy */
    int32_t top_k;            /* <= 0: disabled */
    float top_p;              /* >= 1: disabled */
    float min_p;              /* <= 0: disabled */
    float repeat_penalty;     /* 1: disabled */
    float frequency_penalty;  /* 0: disabled */
    float presence_penalty;   /* 0: disabled */
    int32_t penalty_last_n;   /* window for the three penalties */
    uint64_t seed;
};

struct rf_model_params rf_model_default_params(void);
struct rf_context_params rf_context_default_params(void);
struct rf_sampler_params rf_sampler_default_params(void);

/* ---- model ---- */
rf_status rf_model_load(const char *path, const struct rf_model_params *params,
                        struct rf_model **out);
void rf_model_free(struct rf_model *model);

int32_t rf_model_n_vocab(const struct rf_model *model);
int32_t rf_model_n_ctx_train(const struct rf_model *model);
int32_t rf_model_n_layer(const struct rf_model *model);
/* Layers running on the GPU (0 when the model runs on the CPU). */
int32_t rf_model_n_gpu_layers(const struct rf_model *model);
const char *rf_model_arch(const struct rf_model *model);
/* Bytes of weight data (the tensors as stored in the file). */
uint64_t rf_model_weight_bytes(const struct rf_model *model);
rf_token rf_model_bos(const struct rf_model *model); /* -1 when none */
rf_token rf_model_eos(const struct rf_model *model);
bool rf_model_is_eog(const struct rf_model *model, rf_token t); /* end of generation */

/* ---- tokenizer ---- */
/* Writes at most cap ids; returns the number of tokens (may exceed cap: call again
 * with a bigger buffer), or -1 on error (see rf_last_error). add_bos: add BOS when
 * the model asks for it. parse_special: special-token text becomes special tokens. */
int32_t rf_tokenize(const struct rf_model *model, const char *text, size_t len,
                    rf_token *ids, int32_t cap, bool add_bos, bool parse_special);
/* Raw bytes of one token's text (byte-fallback and byte-level tokens decoded).
 * Returns the length; writes at most cap bytes. Control tokens give "" unless
 * render_special. */
int32_t rf_token_to_piece(const struct rf_model *model, rf_token t, char *buf,
                          int32_t cap, bool render_special);

/* Streams valid UTF-8: bytes of an incomplete character are held until complete. */
struct rf_detok;
struct rf_detok *rf_detok_new(const struct rf_model *model, bool render_special);
/* Appends token t; returns the number of bytes now ready in *out (owned by detok,
 * valid until the next call). */
size_t rf_detok_push(struct rf_detok *d, rf_token t, const char **out);
size_t rf_detok_flush(struct rf_detok *d, const char **out);
void rf_detok_free(struct rf_detok *d);

/* Chat templates: fills out (NUL-terminated, at most cap bytes) and returns the
 * needed length, or -1 (unknown template; see rf_last_error). name: NULL to detect
 * from the model's tokenizer.chat_template, else "chatml", ... */
struct rf_chat_message {
    const char *role;
    const char *content;
};
int32_t rf_chat_apply(const struct rf_model *model, const char *name,
                      const struct rf_chat_message *msgs, size_t n_msgs,
                      bool add_assistant, char *out, int32_t cap);

/* ---- context ---- */
/* A model may have several contexts, but they share the model's backend (its threads and
 * scratch): calls on contexts of one model must not run at the same time. */
rf_status rf_context_init(struct rf_model *model, const struct rf_context_params *params,
                          struct rf_context **out);
void rf_context_free(struct rf_context *ctx);
int32_t rf_context_n_ctx(const struct rf_context *ctx);
int32_t rf_context_n_past(const struct rf_context *ctx); /* tokens in the KV cache */
void rf_context_reset(struct rf_context *ctx);           /* forget the KV cache */
/* Keeps the first n positions of the KV cache and forgets the rest (n >= n_past:
 * nothing changes). Kept logits are dropped. */
void rf_context_truncate(struct rf_context *ctx, int32_t n);
/* Bytes of K and V cache one position occupies over all layers (what attention reads
 * per cached token). */
uint64_t rf_context_kv_bytes_per_pos(const struct rf_context *ctx);

/* Appends tokens to the sequence and runs the forward pass. When all_logits, the
 * logits of every token are kept, else only the last one's. */
rf_status rf_decode(struct rf_context *ctx, const rf_token *tokens, int32_t n, bool all_logits);
/* rf_decode, then the next token drawn by s from the last token's logits. With the
 * model's head on a GPU and a chain the GPU runs (greedy, top-k, top-p, temperature;
 * no penalties or min-p) the draw happens there and only the id is copied back; no
 * logits are kept then (rf_get_logits fails until the next rf_decode). */
rf_status rf_decode_sample(struct rf_context *ctx, const rf_token *tokens, int32_t n,
                           struct rf_sampler *s, rf_token *out);
/* Logits (n_vocab floats) of the i-th token of the last rf_decode call; i = -1: last. */
const float *rf_get_logits(struct rf_context *ctx, int32_t i);

/* ---- sampling ---- */
struct rf_sampler *rf_sampler_new(const struct rf_sampler_params *params, int32_t n_vocab);
void rf_sampler_free(struct rf_sampler *s);
rf_token rf_sampler_sample(struct rf_sampler *s, const float *logits);
/* Tells the sampler about a token in the history (prompt or accepted). */
void rf_sampler_accept(struct rf_sampler *s, rf_token t);
void rf_sampler_reset(struct rf_sampler *s);

#ifdef __cplusplus
}
#endif
#endif

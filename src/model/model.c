#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

struct rf_model_params rf_model_default_params(void)
{
    return (struct rf_model_params){.n_threads = 0, .n_gpu_layers = -1, .main_gpu = 0, .verbose = false};
}

static rf_status copy_chat_template(struct rf_model *m)
{
    struct rf_gguf_str s;
    rf_clear_error();
    if (!rf_gguf_get_str(m->gguf, "tokenizer.chat_template", &s))
        return rf_last_error()[0] ? RF_STATUS_BAD_FILE : RF_OK;
    m->chat_template = malloc(s.len + 1);
    if (!m->chat_template) return rf_fail(RF_STATUS_NOMEM, "model: cannot copy the chat template");
    memcpy(m->chat_template, s.ptr, s.len);
    m->chat_template[s.len] = '\0';
    return RF_OK;
}

static rf_status check_vocab(const struct rf_model *m)
{
    const int32_t n_tokens = rf_vocab_n_tokens(m->vocab);
    if (n_tokens > m->hp.n_vocab)
        return rf_fail(RF_STATUS_SHAPE,
                       "model: tokenizer has %d tokens but token_embd.weight has only %d rows",
                       n_tokens, m->hp.n_vocab);
    return RF_OK;
}

static rf_status load_parts(struct rf_model *m, const char *path, const struct rf_model_params *p)
{
    RF_TRY(rf_gguf_open(path, &m->gguf));
    RF_TRY(rf_hparams_load(m->gguf, &m->hp));
    RF_TRY(rf_model_bind_weights(m));
    RF_TRY(rf_vocab_load(m->gguf, &m->vocab));
    RF_TRY(check_vocab(m));
    RF_TRY(copy_chat_template(m));
    m->n_threads = p->n_threads > 0 ? p->n_threads : rf_cpu_count();
    RF_TRY(rf_backend_cpu_init(m->n_threads, &m->backend));
    return rf_model_offload(m, p);
}

rf_status rf_model_load(const char *path, const struct rf_model_params *params,
                        struct rf_model **out)
{
    *out = NULL;
    if (!path) return rf_fail(RF_STATUS_INVALID_ARG, "model: path is NULL");
    const struct rf_model_params p = params ? *params : rf_model_default_params();
    struct rf_model *m = calloc(1, sizeof *m);
    if (!m) return rf_fail(RF_STATUS_NOMEM, "model: out of memory");
    rf_status s = load_parts(m, path, &p);
    if (s != RF_OK) {
        /* Name the file once, in front of the message of whatever failed. */
        char msg[900];
        snprintf(msg, sizeof msg, "%s", rf_last_error());
        if (strncmp(msg, path, strlen(path)) != 0) rf_fail(s, "%s: %s", path, msg);
        rf_model_free(m);
        return s;
    }
    *out = m;
    return RF_OK;
}

void rf_model_free(struct rf_model *m)
{
    if (!m) return;
    rf_model_offload_free(m);
    if (m->backend.iface) m->backend.iface->free(m->backend.ctx);
    rf_vocab_free(m->vocab);
    free(m->layers);
    free(m->chat_template);
    rf_gguf_close(m->gguf);
    free(m);
}

int32_t rf_model_n_vocab(const struct rf_model *m) { return m->hp.n_vocab; }
int32_t rf_model_n_ctx_train(const struct rf_model *m) { return m->hp.n_ctx_train; }
int32_t rf_model_n_layer(const struct rf_model *m) { return m->hp.n_layer; }
int32_t rf_model_n_gpu_layers(const struct rf_model *m) { return m->n_gpu_layers; }
const char *rf_model_arch(const struct rf_model *m) { return rf_arch_name(m->hp.arch); }
uint64_t rf_model_weight_bytes(const struct rf_model *m) { return m->weight_bytes; }
const char *rf_model_chat_template(const struct rf_model *m) { return m->chat_template; }

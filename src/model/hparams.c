#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "model/model.h"

/* Architecture table: GGUF name and the flags that make it differ from llama. */
struct rf_arch_info {
    const char *name;
    bool rope_neox;
    bool attn_bias;
    bool qk_norm;
    bool gemma; /* embedding scale, post norms, GeGLU, q pre-scaled, sliding-window layers */
};

static const struct rf_arch_info arch_table[RF_ARCH_COUNT] = {
    [RF_ARCH_LLAMA] = {.name = "llama"},
    [RF_ARCH_MISTRAL] = {.name = "mistral"},
    [RF_ARCH_QWEN2] = {.name = "qwen2", .rope_neox = true, .attn_bias = true},
    [RF_ARCH_QWEN3] = {.name = "qwen3", .rope_neox = true, .qk_norm = true},
    [RF_ARCH_GEMMA3] = {.name = "gemma3", .rope_neox = true, .qk_norm = true, .gemma = true},
};

const char *rf_arch_name(enum rf_arch a)
{
    return (unsigned)a < RF_ARCH_COUNT ? arch_table[a].name : "unknown";
}

static rf_status find_arch(const struct rf_gguf *g, enum rf_arch *out, char *name, size_t cap)
{
    struct rf_gguf_str s;
    if (!rf_gguf_get_str(g, "general.architecture", &s)) {
        if (rf_last_error()[0]) return RF_STATUS_BAD_FILE;
        return rf_fail(RF_STATUS_BAD_FILE, "model: metadata key 'general.architecture' is missing");
    }
    snprintf(name, cap, "%.*s", (int)(s.len < 64 ? s.len : 64), s.ptr);
    for (int a = 0; a < RF_ARCH_COUNT; a++) {
        if (rf_gguf_str_eq(s, arch_table[a].name)) {
            *out = (enum rf_arch)a;
            return RF_OK;
        }
    }
    char list[256] = "";
    for (int a = 0; a < RF_ARCH_COUNT; a++) {
        strncat(list, a ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, arch_table[a].name, sizeof list - strlen(list) - 1);
    }
    return rf_fail(RF_STATUS_UNSUPPORTED, "model: unsupported architecture '%s' (supported: %s)",
                   name, list);
}

/* Reads "<arch>.<suffix>" as a positive int32 within [lo, hi]. */
static rf_status get_i32(const struct rf_gguf *g, const char *arch, const char *suffix, bool required,
                         int32_t lo, int32_t hi, int32_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    rf_clear_error();
    int64_t v;
    if (!rf_gguf_get_int(g, key, &v)) {
        if (rf_last_error()[0]) return RF_STATUS_BAD_FILE;
        if (!required) return RF_OK;
        return rf_fail(RF_STATUS_BAD_FILE, "model: metadata key '%s' is missing", key);
    }
    if (v < lo || v > hi)
        return rf_fail(RF_STATUS_BAD_FILE, "model: metadata key '%s' = %lld is outside [%d, %d]",
                       key, (long long)v, lo, hi);
    *out = (int32_t)v;
    return RF_OK;
}

static rf_status get_f32(const struct rf_gguf *g, const char *arch, const char *suffix, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    rf_clear_error();
    double v;
    if (!rf_gguf_get_float(g, key, &v)) return rf_last_error()[0] ? RF_STATUS_BAD_FILE : RF_OK;
    if (!isfinite(v) || v <= 0)
        return rf_fail(RF_STATUS_BAD_FILE, "model: metadata key '%s' = %g must be positive", key, v);
    *out = (float)v;
    return RF_OK;
}

static rf_status read_rope_scaling(const struct rf_gguf *g, const char *arch, struct rf_hparams *hp)
{
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    struct rf_gguf_str type;
    rf_clear_error();
    if (!rf_gguf_get_str(g, key, &type)) return rf_last_error()[0] ? RF_STATUS_BAD_FILE : RF_OK;
    if (rf_gguf_str_eq(type, "none")) return RF_OK;
    if (!rf_gguf_str_eq(type, "linear"))
        return rf_fail(RF_STATUS_UNSUPPORTED, "model: rope scaling type '%.*s' is not supported",
                       (int)(type.len < 32 ? type.len : 32), type.ptr);
    float factor = 1.0f;
    RF_TRY(get_f32(g, arch, "rope.scaling.factor", &factor));
    hp->rope_scale = 1.0f / factor;
    return RF_OK;
}

/* Gemma 3: the local/global layer pattern is the architecture's (5 sliding-window
 * layers, then one global), the local RoPE base 10000 unless the file says. The 27B
 * model (62 layers) scales q by 1/sqrt(n_embd / n_head) (its query_pre_attn_scalar),
 * the others by 1/sqrt(head_dim). */
static rf_status read_gemma(const struct rf_gguf *g, const char *arch, struct rf_hparams *hp)
{
    hp->embd_scale = hp->post_norms = hp->geglu = hp->q_prescale = true;
    if (hp->n_layer == 62) hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    RF_TRY(get_i32(g, arch, "attention.sliding_window", false, 0, 1 << 26, &hp->n_swa));
    hp->swa_pattern = 6;
    hp->rope_base_swa = 10000.0f;
    RF_TRY(get_f32(g, arch, "rope.freq_base_swa", &hp->rope_base_swa));
    return RF_OK;
}

rf_status rf_hparams_load(const struct rf_gguf *g, struct rf_hparams *hp)
{
    char arch[72];
    memset(hp, 0, sizeof *hp);
    RF_TRY(find_arch(g, &hp->arch, arch, sizeof arch));
    const struct rf_arch_info *info = &arch_table[hp->arch];
    hp->rope_neox = info->rope_neox;
    hp->attn_bias = info->attn_bias;
    hp->qk_norm = info->qk_norm;

    const int32_t big = 1 << 24;
    RF_TRY(get_i32(g, arch, "context_length", true, 1, 1 << 26, &hp->n_ctx_train));
    RF_TRY(get_i32(g, arch, "embedding_length", true, 1, big, &hp->n_embd));
    RF_TRY(get_i32(g, arch, "block_count", true, 1, 4096, &hp->n_layer));
    RF_TRY(get_i32(g, arch, "feed_forward_length", true, 1, big, &hp->n_ff));
    RF_TRY(get_i32(g, arch, "attention.head_count", true, 1, 4096, &hp->n_head));
    hp->n_head_kv = hp->n_head;
    RF_TRY(get_i32(g, arch, "attention.head_count_kv", false, 1, 4096, &hp->n_head_kv));
    if (hp->n_head % hp->n_head_kv != 0)
        return rf_fail(RF_STATUS_BAD_FILE,
                       "model: head_count %d is not a multiple of head_count_kv %d", hp->n_head,
                       hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    RF_TRY(get_i32(g, arch, "attention.key_length", false, 1, 65536, &hp->head_dim));
    int32_t v_len = hp->head_dim;
    RF_TRY(get_i32(g, arch, "attention.value_length", false, 1, 65536, &v_len));
    if (v_len != hp->head_dim)
        return rf_fail(RF_STATUS_UNSUPPORTED, "model: key_length %d != value_length %d",
                       hp->head_dim, v_len);
    hp->n_rot = hp->head_dim;
    RF_TRY(get_i32(g, arch, "rope.dimension_count", false, 2, hp->head_dim, &hp->n_rot));
    if (hp->n_rot % 2)
        return rf_fail(RF_STATUS_BAD_FILE, "model: rope.dimension_count %d is odd", hp->n_rot);

    hp->norm_eps = 1e-5f;
    RF_TRY(get_f32(g, arch, "attention.layer_norm_rms_epsilon", &hp->norm_eps));
    hp->rope_base = 10000.0f;
    RF_TRY(get_f32(g, arch, "rope.freq_base", &hp->rope_base));
    hp->rope_scale = 1.0f;
    RF_TRY(read_rope_scaling(g, arch, hp));
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    RF_TRY(get_f32(g, arch, "attn_logit_softcapping", &hp->attn_softcap));
    RF_TRY(get_f32(g, arch, "final_logit_softcapping", &hp->final_softcap));
    if (info->gemma) RF_TRY(read_gemma(g, arch, hp));
    return RF_OK;
}

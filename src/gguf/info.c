#include "gguf/info.h"

#include <inttypes.h>
#include <string.h>

#include "quant/quant.h"

#define LABEL_WIDTH 18  /* "  pre-tokenizer:" and the like, then the value */
#define ARRAY_PREVIEW 4 /* elements of a scalar array shown before "..." */

/* File text, printable: control and non-ASCII bytes become '?', at most max bytes. */
static void put_text(FILE *out, const char *s, uint64_t len, uint64_t max)
{
    for (uint64_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(c >= 0x20 && c < 0x7f ? c : '?', out);
    }
    if (len > max) fputs("...", out);
}

static void put_label(FILE *out, const char *label) { fprintf(out, "%-*s", LABEL_WIDTH, label); }

/* "105.36 MiB (110,484,320 bytes)" */
static void put_bytes(FILE *out, uint64_t n)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    char digits[32], grouped[48];
    snprintf(digits, sizeof digits, "%" PRIu64, n);
    const size_t len = strlen(digits);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) grouped[k++] = ',';
        grouped[k++] = digits[i];
    }
    grouped[k] = '\0';
    if (u == 0) fprintf(out, "%s bytes", grouped);
    else fprintf(out, "%.2f %s (%s bytes)", v, units[u], grouped);
}

static void put_scalar(FILE *out, const struct rf_gguf_value *v)
{
    switch (v->type) {
    case RF_GGUF_BOOL: fputs(v->v.u64 ? "true" : "false", out); break;
    case RF_GGUF_INT8:
    case RF_GGUF_INT16:
    case RF_GGUF_INT32:
    case RF_GGUF_INT64: fprintf(out, "%" PRId64, v->v.i64); break;
    case RF_GGUF_FLOAT32:
    case RF_GGUF_FLOAT64: fprintf(out, "%g", v->v.f64); break;
    case RF_GGUF_STRING:
        fputc('"', out);
        put_text(out, v->v.str.ptr, v->v.str.len, 60);
        fputc('"', out);
        break;
    default: fprintf(out, "%" PRIu64, v->v.u64); break;
    }
}

/* "[30 x int32: 1, 2, 3, 4, ...]"; strings and nested arrays by count only. */
static void put_array(FILE *out, const struct rf_gguf_value *v)
{
    const enum rf_gguf_vtype et = v->v.arr.elem_type;
    fprintf(out, "[%" PRIu64 " x %s", v->v.arr.n, rf_gguf_vtype_name(et));
    if (et != RF_GGUF_STRING && et != RF_GGUF_ARRAY && v->v.arr.n) {
        fputs(":", out);
        for (uint64_t i = 0; i < v->v.arr.n && i < ARRAY_PREVIEW; i++) {
            if (et == RF_GGUF_FLOAT32 || et == RF_GGUF_FLOAT64)
                fprintf(out, " %g", rf_gguf_arr_float(v, i));
            else fprintf(out, " %" PRId64, rf_gguf_arr_int(v, i));
            if (i + 1 < v->v.arr.n) fputc(',', out);
        }
        if (v->v.arr.n > ARRAY_PREVIEW) fputs(" ...", out);
    }
    fputs("]", out);
}

static void put_value(FILE *out, const struct rf_gguf_value *v)
{
    if (v->type == RF_GGUF_ARRAY) put_array(out, v);
    else put_scalar(out, v);
}

/* A string key's value, or fallback when absent or not a string. */
static void put_str_key(FILE *out, const struct rf_gguf *g, const char *label, const char *key,
                        const char *fallback)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    put_label(out, label);
    if (kv && kv->val.type == RF_GGUF_STRING)
        put_text(out, kv->val.v.str.ptr, kv->val.v.str.len, 100);
    else fputs(fallback, out);
    fputc('\n', out);
}

static void put_value_key(FILE *out, const struct rf_gguf *g, const char *label, const char *key)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    put_label(out, label);
    if (kv) put_value(out, &kv->val);
    else fputs("none", out);
    fputc('\n', out);
}

static bool has_prefix(struct rf_gguf_str key, struct rf_gguf_str arch)
{
    return key.len > arch.len + 1 && memcmp(key.ptr, arch.ptr, arch.len) == 0 &&
           key.ptr[arch.len] == '.';
}

static void put_hparams(FILE *out, const struct rf_gguf *g)
{
    const struct rf_gguf_kv *a = rf_gguf_find(g, "general.architecture");
    if (!a || a->val.type != RF_GGUF_STRING || a->val.v.str.len == 0) return;
    const struct rf_gguf_str arch = a->val.v.str;
    int width = 0;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (has_prefix(g->kvs[i].key, arch) && g->kvs[i].key.len > (uint64_t)width)
            width = g->kvs[i].key.len < 48 ? (int)g->kvs[i].key.len : 48;
    fputs("\nhyper-parameters:\n", out);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct rf_gguf_kv *kv = &g->kvs[i];
        if (!has_prefix(kv->key, arch)) continue;
        fputs("  ", out);
        put_text(out, kv->key.ptr, kv->key.len, 48);
        fprintf(out, "%*s  ", kv->key.len < (uint64_t)width ? width - (int)kv->key.len : 0, "");
        put_value(out, &kv->val);
        fputc('\n', out);
    }
}

static void put_tokenizer(FILE *out, const struct rf_gguf *g)
{
    fputs("\ntokenizer:\n", out);
    put_str_key(out, g, "  model:", "tokenizer.ggml.model", "none");
    put_str_key(out, g, "  pre-tokenizer:", "tokenizer.ggml.pre", "none");
    const struct rf_gguf_kv *tok = rf_gguf_find(g, "tokenizer.ggml.tokens");
    put_label(out, "  vocab size:");
    if (tok && tok->val.type == RF_GGUF_ARRAY) fprintf(out, "%" PRIu64 "\n", tok->val.v.arr.n);
    else fputs("none\n", out);
    const struct rf_gguf_kv *merges = rf_gguf_find(g, "tokenizer.ggml.merges");
    if (merges && merges->val.type == RF_GGUF_ARRAY) {
        put_label(out, "  merges:");
        fprintf(out, "%" PRIu64 "\n", merges->val.v.arr.n);
    }
    put_value_key(out, g, "  bos id:", "tokenizer.ggml.bos_token_id");
    put_value_key(out, g, "  eos id:", "tokenizer.ggml.eos_token_id");
    const struct rf_gguf_kv *tmpl = rf_gguf_find(g, "tokenizer.chat_template");
    put_label(out, "  chat template:");
    if (tmpl && tmpl->val.type == RF_GGUF_STRING)
        fprintf(out, "present (%" PRIu64 " bytes)\n", tmpl->val.v.str.len);
    else fputs("absent\n", out);
}

/* Histogram by type id (ids were validated against the type table at open). */
static void put_tensors(FILE *out, const struct rf_gguf *g)
{
    uint64_t count[RF_TYPE_COUNT] = {0}, bytes[RF_TYPE_COUNT] = {0};
    uint64_t total = 0, params = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct rf_gguf_tensor *t = &g->tensors[i];
        if (t->type < RF_TYPE_COUNT) {
            count[t->type]++;
            bytes[t->type] += t->nbytes;
        }
        total += t->nbytes;
        params += (uint64_t)rf_gguf_tensor_nelements(t);
    }
    fputc('\n', out);
    put_label(out, "tensors:");
    fprintf(out, "%" PRIu64 "\n", g->n_tensors);
    if (g->n_tensors) fprintf(out, "  %-10s %8s  %s\n", "type", "count", "bytes");
    for (int t = 0; t < RF_TYPE_COUNT; t++) {
        if (!count[t]) continue;
        fprintf(out, "  %-10s %8" PRIu64 "  ", rf_type_name((uint32_t)t), count[t]);
        put_bytes(out, bytes[t]);
        fputc('\n', out);
    }
    put_label(out, "tensor bytes:");
    put_bytes(out, total);
    fputc('\n', out);
    put_label(out, "file size:");
    put_bytes(out, g->size);
    fputc('\n', out);
    put_label(out, "parameters:");
    if (params >= 1000000000) fprintf(out, "%.2f B", (double)params / 1e9);
    else fprintf(out, "%.2f M", (double)params / 1e6);
    fprintf(out, " (%" PRIu64 ")\n", params);
}

void rf_gguf_write_info(const struct rf_gguf *g, const char *path, FILE *out)
{
    put_label(out, "file:");
    fprintf(out, "%s\n", path ? path : "(memory)");
    put_label(out, "gguf version:");
    fprintf(out, "%u\n", g->version);
    put_str_key(out, g, "architecture:", "general.architecture", "none");
    put_str_key(out, g, "name:", "general.name", "none");
    put_label(out, "metadata keys:");
    fprintf(out, "%" PRIu64 "\n", g->n_kv);
    put_label(out, "alignment:");
    fprintf(out, "%" PRIu64 "\n", g->alignment);
    put_hparams(out, g);
    put_tokenizer(out, g);
    put_tensors(out, g);
}

rf_status rf_gguf_print_info(const char *path, FILE *out)
{
    struct rf_gguf *g;
    rf_status s = rf_gguf_open(path, &g);
    if (s != RF_OK) return s;
    rf_gguf_write_info(g, path, out);
    rf_gguf_close(g);
    return RF_OK;
}

/* libFuzzer target: rf_gguf_parse over arbitrary bytes, then every accessor and the
 * info printer over whatever parsed, touching the first and last byte of each tensor
 * so that a range outside the input is caught by ASan. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf/gguf.h"
#include "gguf/info.h"

static volatile uint8_t sink;

static void walk_value(const struct rf_gguf_value *v)
{
    if (v->type != RF_GGUF_ARRAY) return;
    const uint64_t n = v->v.arr.n < 64 ? v->v.arr.n : 64;
    for (uint64_t i = 0; i < n; i++) {
        if (v->v.arr.elem_type == RF_GGUF_STRING && v->v.arr.strs[i].len)
            sink ^= (uint8_t)v->v.arr.strs[i].ptr[v->v.arr.strs[i].len - 1];
        else if (v->v.arr.elem_type == RF_GGUF_ARRAY) walk_value(&v->v.arr.items[i]);
        else sink ^= (uint8_t)rf_gguf_arr_int(v, i) ^ (uint8_t)(rf_gguf_arr_float(v, i) > 0);
    }
    sink ^= (uint8_t)rf_gguf_arr_int(v, v->v.arr.n); /* out of range: 0 */
}

static void walk(const struct rf_gguf *g)
{
    char key[256];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct rf_gguf_kv *kv = &g->kvs[i];
        walk_value(&kv->val);
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255),
                 kv->key.ptr);
        int64_t iv;
        double dv;
        bool bv;
        struct rf_gguf_str sv;
        sink ^= (uint8_t)rf_gguf_get_int(g, key, &iv) ^ (uint8_t)rf_gguf_get_float(g, key, &dv) ^
                (uint8_t)rf_gguf_get_bool(g, key, &bv) ^ (uint8_t)rf_gguf_get_str(g, key, &sv) ^
                (uint8_t)(rf_gguf_get_arr(g, key) != NULL);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct rf_gguf_tensor *t = &g->tensors[i];
        const uint8_t *d = t->data;
        sink ^= d[0] ^ d[t->nbytes - 1];
        sink ^= (uint8_t)(rf_gguf_find_tensor(g, t->name) == t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull) devnull = fopen("/dev/null", "w");
    struct rf_gguf *g = NULL;
    if (rf_gguf_parse(data, size, &g) != RF_OK) return 0;
    walk(g);
    if (devnull) rf_gguf_write_info(g, NULL, devnull);
    rf_gguf_close(g);
    return 0;
}

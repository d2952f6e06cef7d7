/* libFuzzer target: tokenize arbitrary bytes with real vocabs (both parse_special
 * modes), detokenize, stream, and check the invariants:
 *   - tokenize never fails and every id is in range;
 *   - the count returned with a small cap equals the full count;
 *   - valid UTF-8 input round-trips (except bytes the vocab has no token for, which
 *     llama.cpp drops too), with and without special-token parsing;
 *   - the streaming detokenizer only emits valid UTF-8, and equals the plain
 *     detokenization whenever that is valid UTF-8.
 * Models: RF_FUZZ_MODEL (one path, or several separated by ':'), else the default
 * models in ~/.cache/rocmforge/models (SmolLM2: byte-level BPE; Gemma 3: SPM). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "utf8_valid.h"

#define MAX_MODELS 4

struct fz_model {
    struct rf_gguf *g;
    struct rf_vocab *v;
    bool no_token[256]; /* bytes that tokenize to nothing: cannot round-trip */
};

static struct fz_model models[MAX_MODELS];
static int n_models;

/* ASCII: the byte alone round-trips. Others: the token that stands for the byte
 * (byte-level character for BPE, <0xHH> for SPM) exists. */
static bool byte_has_token(const struct rf_vocab *v, uint8_t b)
{
    char s[8];
    if (b < 0x80) {
        rf_token ids[8];
        const char c = (char)b;
        const int n = rf_vocab_tokenize(v, &c, 1, ids, 8, false, false);
        char back[64];
        return rf_vocab_detokenize(v, ids, n, back, sizeof back, false, true) == 1 && back[0] == c;
    }
    if (rf_vocab_kind(v) == RF_VOCAB_SPM) {
        snprintf(s, sizeof s, "<0x%02X>", b);
        return rf_vocab_find(v, s, 6) >= 0;
    }
    /* GPT-2 alphabet: printable Latin-1 maps to itself, the rest to U+0100 and up */
    const unsigned cp = b >= 0xA1 && b != 0xAD ? b : b <= 0xA0 ? 0x100u + 33 + (b - 0x7Fu) : 0x143u;
    s[0] = (char)(0xC0 | (cp >> 6));
    s[1] = (char)(0x80 | (cp & 0x3F));
    return rf_vocab_find(v, s, 2) >= 0;
}

static void load(const char *path)
{
    struct fz_model *m = &models[n_models];
    if (n_models == MAX_MODELS || rf_gguf_open(path, &m->g) != RF_OK) return;
    if (rf_vocab_load(m->g, &m->v) != RF_OK) {
        fprintf(stderr, "fuzz_tokenize: %s: %s\n", path, rf_last_error());
        abort();
    }
    for (int b = 0; b < 256; b++) m->no_token[b] = !byte_has_token(m->v, (uint8_t)b);
    fprintf(stderr, "fuzz_tokenize: loaded %s (%d tokens)\n", path, rf_vocab_n_tokens(m->v));
    n_models++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *env = getenv("RF_FUZZ_MODEL");
    if (env && *env) {
        char *list = strdup(env), *save = NULL;
        for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) load(p);
        free(list);
    } else {
        const char *home = getenv("HOME");
        static const char *const names[] = {"SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/.cache/rocmforge/models/%s", home ? home : "", names[i]);
            load(path);
        }
    }
    if (n_models == 0) {
        fprintf(stderr, "fuzz_tokenize: no model (set RF_FUZZ_MODEL or fetch the default models)\n");
        abort();
    }
    return 0;
}

static void check_stream(const struct rf_vocab *v, const rf_token *ids, int n, const char *plain, int plain_len)
{
    struct rf_vocab_detok *d = rf_vocab_detok_new(v, false);
    if (!d) abort();
    char *out = malloc((size_t)plain_len * 3 + 16);
    size_t total = 0;
    for (int i = 0; i <= n; i++) {
        const char *p;
        const size_t k = i < n ? rf_vocab_detok_push(d, ids[i], &p) : rf_vocab_detok_flush(d, &p);
        if (!valid_utf8((const uint8_t *)p, k)) abort();
        memcpy(out + total, p, k);
        total += k;
    }
    if (valid_utf8((const uint8_t *)plain, (size_t)plain_len) &&
        (total != (size_t)plain_len || memcmp(out, plain, total) != 0))
        abort();
    free(out);
    rf_vocab_detok_free(d);
}

static void check(const struct fz_model *m, const uint8_t *data, size_t size, bool special, bool roundtrip)
{
    const struct rf_vocab *v = m->v;
    rf_token small[4];
    const int n = rf_vocab_tokenize(v, (const char *)data, size, small, 4, true, special);
    if (n < 0) abort();
    rf_token *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (rf_vocab_tokenize(v, (const char *)data, size, ids, n, true, special) != n) abort();
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= rf_vocab_n_tokens(v)) abort();
        if (i < 4 && ids[i] != small[i]) abort();
    }
    /* the text proper: without the BOS/EOS that add_bos put around it */
    const int first = rf_vocab_add_bos(v) ? 1 : 0, last = n - (rf_vocab_add_eos(v) ? 1 : 0);
    if (first > last) abort();
    const int len = rf_vocab_detokenize(v, ids + first, last - first, NULL, 0, special, true);
    if (len < 0) abort();
    char *text = malloc((size_t)len + 1);
    if (rf_vocab_detokenize(v, ids + first, last - first, text, len, special, true) != len) abort();
    if (roundtrip && (special ? !rf_vocab_add_space_prefix(v) : true) &&
        ((size_t)len != size || memcmp(text, data, size) != 0))
        abort();
    if (!special) check_stream(v, ids + first, last - first, text, len);
    free(text);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    const bool valid = valid_utf8(data, size);
    for (int i = 0; i < n_models; i++) {
        bool droppable = false;
        for (size_t k = 0; k < size && !droppable; k++) droppable = models[i].no_token[data[k]];
        check(&models[i], data, size, false, valid && !droppable);
        check(&models[i], data, size, true, valid && !droppable);
    }
    return 0;
}

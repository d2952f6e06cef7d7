/* GGUF reader: valid files give the values tools/make_bad_gguf.py wrote, every bad file
 * of tests/fixtures/bad_gguf fails with the message expected.txt names, truncations and
 * byte flips of valid files never crash, and the real SmolLM2 file parses. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "core/status.h"
#include "gguf/gguf.h"
#include "gguf/info.h"
#include "quant/quant.h"

static const char *fixtures(void)
{
    const char *d = getenv("RF_FIXTURES");
    return d && *d ? d : "tests/fixtures";
}

static void fixture_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/bad_gguf/%s", fixtures(), name);
}

/* Whole file in a buffer of exactly its size, so that ASan sees any over-read. */
static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (set RF_FIXTURES)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static struct rf_gguf *open_fixture(const char *name)
{
    char path[1024];
    fixture_path(path, sizeof path, name);
    struct rf_gguf *g = NULL;
    rf_status s = rf_gguf_open(path, &g);
    if (s != RF_OK) fail_msg("%s: %s", name, rf_last_error());
    return g;
}

static int64_t get_int(const struct rf_gguf *g, const char *key)
{
    int64_t v = 0;
    if (!rf_gguf_get_int(g, key, &v)) fail_msg("get_int %s: %s", key, rf_last_error());
    return v;
}

static double get_float(const struct rf_gguf *g, const char *key)
{
    double v = 0;
    if (!rf_gguf_get_float(g, key, &v)) fail_msg("get_float %s: %s", key, rf_last_error());
    return v;
}

static const struct rf_gguf_value *get_arr(const struct rf_gguf *g, const char *key,
                                           enum rf_gguf_vtype elem, uint64_t n)
{
    const struct rf_gguf_value *a = rf_gguf_get_arr(g, key);
    if (!a) fail_msg("no array %s", key);
    assert_int_equal(a->v.arr.elem_type, elem);
    assert_int_equal(a->v.arr.n, n);
    return a;
}

static void assert_str(struct rf_gguf_str s, const char *want)
{
    if (!rf_gguf_str_eq(s, want)) fail_msg("got '%.*s', want '%s'", (int)s.len, s.ptr, want);
}

/* Invariants any successfully parsed file keeps, whatever its bytes. */
static void check_invariants(const struct rf_gguf *g)
{
    assert_true(g->alignment && (g->alignment & (g->alignment - 1)) == 0);
    assert_int_equal(g->data_offset % g->alignment, 0);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct rf_gguf_kv *kv = &g->kvs[i];
        assert_true((const uint8_t *)kv->key.ptr >= g->base);
        assert_true((const uint8_t *)kv->key.ptr + kv->key.len <= g->base + g->size);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct rf_gguf_tensor *t = &g->tensors[i];
        const struct rf_type_traits *tr = rf_type_traits(t->type);
        assert_non_null(tr);
        assert_true(t->n_dims >= 1 && t->n_dims <= RF_GGUF_MAX_DIMS);
        assert_int_equal(t->ne[0] % tr->block_size, 0);
        assert_int_equal(t->nbytes, rf_gguf_tensor_nelements(t) / tr->block_size * tr->type_size);
        assert_ptr_equal(t->data, g->base + g->data_offset + t->offset);
        assert_true(g->data_offset + t->offset + t->nbytes <= g->size);
        assert_ptr_equal(rf_gguf_find_tensor(g, t->name), t);
    }
}

static void test_valid_scalars(void **state)
{
    (void)state;
    struct rf_gguf *g = open_fixture("valid_v3_all.gguf");
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_kv, 39);
    assert_int_equal(g->alignment, 32);
    struct rf_gguf_str s;
    assert_true(rf_gguf_get_str(g, "general.architecture", &s));
    assert_str(s, "test");
    assert_int_equal(get_int(g, "t.u8"), 200);
    assert_int_equal(get_int(g, "t.i8"), -100);
    assert_int_equal(get_int(g, "t.u16"), 60000);
    assert_int_equal(get_int(g, "t.i16"), -30000);
    assert_int_equal(get_int(g, "t.u32"), 4000000000LL);
    assert_int_equal(get_int(g, "t.i32"), -2000000000LL);
    assert_true(get_float(g, "t.f32") == 1.5);
    bool b = false;
    assert_true(rf_gguf_get_bool(g, "t.bool", &b) && b);
    assert_true(rf_gguf_get_str(g, "t.str", &s));
    assert_str(s, "h\xc3\xa9llo");
    assert_int_equal(rf_gguf_find(g, "t.u64")->val.v.u64, (1ULL << 63) + 5);
    assert_int_equal(get_int(g, "t.i64"), -(1LL << 62) - 7);
    assert_true(get_float(g, "t.f64") == -2.25e300);
    assert_true(get_float(g, "test.block_count") == 2.0); /* ints read as floats */
    assert_int_equal(rf_gguf_find(g, "t.i8")->val.type, RF_GGUF_INT8);
    assert_int_equal(rf_gguf_find(g, "tokenizer.chat_template")->val.v.str.len, 14);
    check_invariants(g);
    rf_gguf_close(g);
}

static void test_valid_arrays(void **state)
{
    (void)state;
    struct rf_gguf *g = open_fixture("valid_v3_all.gguf");
    const struct rf_gguf_value *a = get_arr(g, "t.arr.u8", RF_GGUF_UINT8, 3);
    assert_int_equal(rf_gguf_arr_int(a, 2), 255);
    a = get_arr(g, "t.arr.i8", RF_GGUF_INT8, 3);
    assert_int_equal(rf_gguf_arr_int(a, 0), -1);
    assert_int_equal(rf_gguf_arr_int(a, 2), 127);
    assert_int_equal(rf_gguf_arr_int(get_arr(g, "t.arr.u16", RF_GGUF_UINT16, 1), 0), 65535);
    a = get_arr(g, "t.arr.i16", RF_GGUF_INT16, 2);
    assert_int_equal(rf_gguf_arr_int(a, 0), -32768);
    assert_int_equal(rf_gguf_arr_int(a, 1), 5);
    assert_int_equal(rf_gguf_arr_int(get_arr(g, "t.arr.u32", RF_GGUF_UINT32, 2), 1), 4294967295LL);
    a = get_arr(g, "t.arr.i32", RF_GGUF_INT32, 5);
    assert_int_equal(rf_gguf_arr_int(a, 4), -9);
    assert_int_equal(rf_gguf_arr_int(a, 5), 0); /* out of range */
    a = get_arr(g, "t.arr.f32", RF_GGUF_FLOAT32, 2);
    assert_true(rf_gguf_arr_float(a, 0) == 0.25 && rf_gguf_arr_float(a, 1) == -8.0);
    assert_int_equal(rf_gguf_arr_int(a, 1), -8);
    a = get_arr(g, "t.arr.bool", RF_GGUF_BOOL, 3);
    assert_int_equal(
        rf_gguf_arr_int(a, 0) * 100 + rf_gguf_arr_int(a, 1) * 10 + rf_gguf_arr_int(a, 2), 101);
    assert_int_equal(rf_gguf_arr_int(get_arr(g, "t.arr.u64", RF_GGUF_UINT64, 1), 0), 1LL << 40);
    assert_int_equal(rf_gguf_arr_int(get_arr(g, "t.arr.i64", RF_GGUF_INT64, 1), 0), -(1LL << 40));
    assert_true(rf_gguf_arr_float(get_arr(g, "t.arr.f64", RF_GGUF_FLOAT64, 1), 0) == 3.5e-200);
    a = get_arr(g, "t.arr.str", RF_GGUF_STRING, 3);
    assert_str(a->v.arr.strs[0], "a");
    assert_str(a->v.arr.strs[1], "");
    assert_str(a->v.arr.strs[2], "ccc");
    assert_int_equal(rf_gguf_arr_int(a, 0), 0); /* not a scalar array */
    get_arr(g, "t.arr.empty", RF_GGUF_INT32, 0);
    rf_gguf_close(g);
}

static void test_valid_nested(void **state)
{
    (void)state;
    struct rf_gguf *g = open_fixture("valid_v3_all.gguf");
    const struct rf_gguf_value *a = get_arr(g, "t.nested", RF_GGUF_ARRAY, 3);
    const struct rf_gguf_value *it = a->v.arr.items;
    assert_int_equal(it[0].type, RF_GGUF_ARRAY);
    assert_int_equal(it[0].v.arr.elem_type, RF_GGUF_INT32);
    assert_int_equal(it[0].v.arr.n, 2);
    assert_int_equal(rf_gguf_arr_int(&it[0], 1), 2);
    assert_int_equal(rf_gguf_arr_int(&it[1], 0), 3);
    assert_int_equal(it[2].v.arr.n, 0);
    a = get_arr(g, "t.nested_str", RF_GGUF_ARRAY, 2);
    assert_int_equal(a->v.arr.items[0].v.arr.elem_type, RF_GGUF_STRING);
    assert_str(a->v.arr.items[0].v.arr.strs[1], "yy");
    assert_str(a->v.arr.items[1].v.arr.strs[0], "zzz");
    /* eight levels, the limit: [[[[[[[[7]]]]]]]] */
    const struct rf_gguf_value *v = rf_gguf_get_arr(g, "t.deep");
    for (int depth = 1; depth < RF_GGUF_MAX_ARRAY_DEPTH; depth++) {
        assert_int_equal(v->v.arr.elem_type, RF_GGUF_ARRAY);
        assert_int_equal(v->v.arr.n, 1);
        v = &v->v.arr.items[0];
    }
    assert_int_equal(v->v.arr.elem_type, RF_GGUF_UINT8);
    assert_int_equal(rf_gguf_arr_int(v, 0), 7);
    rf_gguf_close(g);
}

static void assert_tensor(const struct rf_gguf *g, const char *name, uint32_t type, uint32_t n_dims,
                          int64_t ne0, int64_t ne1, uint64_t offset, uint64_t nbytes)
{
    const struct rf_gguf_tensor *t = rf_gguf_find_tensor(g, name);
    if (!t) fail_msg("no tensor %s", name);
    assert_int_equal(t->type, type);
    assert_int_equal(t->n_dims, n_dims);
    assert_int_equal(t->ne[0], ne0);
    assert_int_equal(t->ne[1], ne1);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->ne[3], 1);
    assert_int_equal(t->offset, offset);
    assert_int_equal(t->nbytes, nbytes);
}

static void test_valid_tensors(void **state)
{
    (void)state;
    struct rf_gguf *g = open_fixture("valid_v3_all.gguf");
    assert_int_equal(g->n_tensors, 4);
    assert_string_equal(g->tensors[0].name, "f32.weight");
    assert_tensor(g, "f32.weight", RF_TYPE_F32, 2, 3, 2, 0, 24);
    assert_tensor(g, "f16.weight", RF_TYPE_F16, 1, 4, 1, 32, 8);
    assert_tensor(g, "q8.weight", RF_TYPE_Q8_0, 2, 32, 2, 64, 68);
    assert_tensor(g, "q4.weight", RF_TYPE_Q4_0, 4, 64, 1, 160, 36);
    assert_null(rf_gguf_find_tensor(g, "f32"));
    assert_int_equal(g->data_offset % 32, 0);
    assert_int_equal(g->data_offset + 160 + 36, g->size);
    const float *f = g->tensors[0].data;
    for (int i = 0; i < 6; i++) assert_true(f[i] == (float)i);
    const uint16_t *h = rf_gguf_find_tensor(g, "f16.weight")->data;
    assert_int_equal(h[3], 0x4400); /* 4.0 in binary16 */
    const uint8_t *q = rf_gguf_find_tensor(g, "q8.weight")->data;
    for (int i = 0; i < 68; i++) assert_int_equal(q[i], (i * 7 + 3) & 0xff);
    assert_ptr_equal(g->map.data, g->base); /* mapped, not copied */
    check_invariants(g);
    rf_gguf_close(g);
}

static void test_valid_small(void **state)
{
    (void)state;
    struct rf_gguf *g = open_fixture("valid_v2.gguf");
    assert_int_equal(g->version, 2);
    assert_int_equal(get_int(g, "test.block_count"), 1);
    const float *w = rf_gguf_find_tensor(g, "w")->data;
    assert_true(w[0] == 1 && w[1] == -1 && w[2] == 2 && w[3] == -2);
    rf_gguf_close(g);

    g = open_fixture("valid_align64.gguf");
    assert_int_equal(g->alignment, 64);
    assert_int_equal(g->data_offset % 64, 0);
    const float *a = rf_gguf_find_tensor(g, "a")->data, *b = rf_gguf_find_tensor(g, "b")->data;
    for (int i = 0; i < 8; i++) assert_true(a[i] == (float)i);
    assert_true(b[0] == 9 && b[3] == 6);
    assert_int_equal(rf_gguf_find_tensor(g, "b")->offset, 64);
    check_invariants(g);
    rf_gguf_close(g);

    g = open_fixture("valid_no_tensors.gguf");
    assert_int_equal(g->n_tensors, 0);
    assert_int_equal(get_int(g, "x.y"), 5);
    rf_gguf_close(g);

    g = open_fixture("valid_minimal.gguf");
    assert_int_equal(g->n_kv + g->n_tensors, 0);
    assert_int_equal(g->size, 24);
    rf_gguf_close(g);
}

static void test_getters(void **state)
{
    (void)state;
    struct rf_gguf *g = open_fixture("valid_v3_all.gguf");
    int64_t i = 42;
    double d;
    bool b;
    struct rf_gguf_str s;
    rf_clear_error();
    assert_false(rf_gguf_get_int(g, "no.such.key", &i));
    assert_string_equal(rf_last_error(), ""); /* absent is not an error */
    assert_int_equal(i, 42);
    assert_false(rf_gguf_get_int(g, "t.str", &i));
    assert_non_null(strstr(rf_last_error(), "'t.str' has type string, expected an integer"));
    rf_clear_error();
    assert_false(rf_gguf_get_int(g, "t.u64", &i)); /* 2^63 + 5 does not fit */
    assert_non_null(strstr(rf_last_error(), "does not fit int64"));
    assert_false(rf_gguf_get_float(g, "t.str", &d));
    assert_false(rf_gguf_get_bool(g, "t.u8", &b));
    assert_false(rf_gguf_get_str(g, "t.u8", &s));
    assert_null(rf_gguf_get_arr(g, "t.u8"));
    assert_null(rf_gguf_get_arr(g, "absent"));
    assert_string_equal(rf_gguf_vtype_name(RF_GGUF_FLOAT64), "float64");
    assert_string_equal(rf_gguf_vtype_name((enum rf_gguf_vtype)99), "unknown");
    rf_gguf_close(g);
}

static bool listed(char names[][128], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

/* Opens one bad file both ways (mmap and caller memory) and checks both messages. */
static void check_bad(const char *name, const char *want)
{
    char path[1024];
    fixture_path(path, sizeof path, name);
    struct rf_gguf *g = (struct rf_gguf *)1;
    rf_clear_error();
    rf_status s = rf_gguf_open(path, &g);
    if (s == RF_OK) fail_msg("%s: parsed, expected an error containing '%s'", name, want);
    assert_null(g);
    if (!strstr(rf_last_error(), want))
        fail_msg("%s: message '%s' lacks '%s'", name, rf_last_error(), want);
    assert_null(strchr(rf_last_error(), '\n'));
    size_t size;
    uint8_t *buf = read_file(path, &size);
    rf_clear_error();
    assert_int_not_equal(rf_gguf_parse(buf, size, &g), RF_OK);
    if (!strstr(rf_last_error(), want))
        fail_msg("%s (memory): message '%s' lacks '%s'", name, rf_last_error(), want);
    assert_true(strncmp(rf_last_error(), "gguf: ", 6) == 0);
    free(buf);
}

static void test_bad_files(void **state)
{
    (void)state;
    static char names[256][128];
    char path[1024], line[1024];
    int n = 0;
    fixture_path(path, sizeof path, "expected.txt");
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s (set RF_FIXTURES)", path);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        assert_true(n < 256 && strlen(line) < 128);
        strcpy(names[n++], line);
        check_bad(line, tab + 1);
    }
    fclose(f);
    assert_true(n >= 60);
    /* every file in the folder is either valid_* or has an expected message */
    fixture_path(path, sizeof path, "");
    DIR *dir = opendir(path);
    assert_non_null(dir);
    int valid = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        const size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0) continue;
        if (strncmp(e->d_name, "valid_", 6) == 0) valid++;
        else if (!listed(names, n, e->d_name)) fail_msg("%s is not in expected.txt", e->d_name);
    }
    closedir(dir);
    assert_int_equal(valid, 5);
}

static void test_version_status(void **state)
{
    (void)state;
    static const uint8_t v1[] = {'G', 'G', 'U', 'F', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct rf_gguf *g;
    assert_int_equal(rf_gguf_parse(v1, sizeof v1, &g), RF_STATUS_UNSUPPORTED);
    assert_int_equal(rf_gguf_parse(v1, 3, &g), RF_STATUS_BAD_FILE);
    assert_int_equal(rf_gguf_parse(NULL, 0, &g), RF_STATUS_BAD_FILE);
    assert_int_equal(rf_gguf_parse(NULL, 5, &g), RF_STATUS_INVALID_ARG);
    assert_int_not_equal(rf_gguf_open("/nonexistent/x.gguf", &g), RF_OK);
    assert_null(g);
}

/* Every prefix of a valid file: all but the whole file must fail, none may crash. */
static void truncate_all(const char *name)
{
    char path[1024];
    fixture_path(path, sizeof path, name);
    size_t size;
    uint8_t *full = read_file(path, &size);
    for (size_t len = 0; len <= size; len++) {
        uint8_t *b = malloc(len ? len : 1);
        memcpy(b, full, len);
        struct rf_gguf *g = NULL;
        rf_status s = rf_gguf_parse(b, len, &g);
        if (len < size && s == RF_OK) fail_msg("%s cut to %zu bytes parsed", name, len);
        if (len == size && s != RF_OK) fail_msg("%s: %s", name, rf_last_error());
        if (g) check_invariants(g);
        rf_gguf_close(g);
        free(b);
    }
    free(full);
}

static void test_truncate_every_length(void **state)
{
    (void)state;
    truncate_all("valid_v3_all.gguf");
    truncate_all("valid_align64.gguf");
    truncate_all("valid_no_tensors.gguf");
}

/* Each byte flipped or overwritten five ways; whatever parses must keep the invariants. */
static void test_flip_bytes(void **state)
{
    (void)state;
    static const char *files[] = {"valid_v3_all.gguf", "valid_v2.gguf", "valid_align64.gguf"};
    int parsed = 0, failed = 0;
    for (size_t fi = 0; fi < sizeof files / sizeof *files; fi++) {
        char path[1024];
        fixture_path(path, sizeof path, files[fi]);
        size_t size;
        uint8_t *b = read_file(path, &size);
        for (size_t pos = 0; pos < size; pos++) {
            const uint8_t orig = b[pos];
            const uint8_t muts[5] = {orig ^ 0x01, orig ^ 0x80, orig ^ 0xff, 0x00, 0xff};
            for (int m = 0; m < 5; m++) {
                b[pos] = muts[m];
                struct rf_gguf *g = NULL;
                if (rf_gguf_parse(b, size, &g) == RF_OK) {
                    check_invariants(g);
                    parsed++;
                } else {
                    assert_true(strncmp(rf_last_error(), "gguf: ", 6) == 0);
                    assert_null(strchr(rf_last_error(), '\n'));
                    failed++;
                }
                rf_gguf_close(g);
            }
            b[pos] = orig;
        }
        free(b);
    }
    /* flipped data bytes still parse; flipped header bytes do not */
    assert_true(parsed > 100 && failed > 100);
}

static char *smollm_path(void)
{
    static char path[1024];
    const char *dir = getenv("RF_MODELS");
    if (!dir || !*dir) return NULL;
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    return path;
}

static void test_smollm(void **state)
{
    (void)state;
    const char *path = smollm_path();
    if (!path) {
        printf("note: SmolLM2-135M-Instruct.Q4_1.gguf not under $RF_MODELS; skipped\n");
        skip();
    }
    struct rf_gguf *g;
    if (rf_gguf_open(path, &g) != RF_OK) fail_msg("%s", rf_last_error());
    assert_int_equal(g->n_tensors, 272);
    struct rf_gguf_str arch;
    assert_true(rf_gguf_get_str(g, "general.architecture", &arch));
    assert_str(arch, "llama");
    assert_int_equal(get_int(g, "llama.block_count"), 30);
    assert_int_equal(get_int(g, "llama.embedding_length"), 576);
    assert_int_equal(rf_gguf_get_arr(g, "tokenizer.ggml.tokens")->v.arr.n, 49152);
    const struct rf_gguf_tensor *emb = rf_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->type, RF_TYPE_Q8_0);
    assert_int_equal(emb->ne[0], 576);
    assert_int_equal(emb->ne[1], 49152);
    assert_int_equal(rf_gguf_find_tensor(g, "blk.29.ffn_down.weight")->type, RF_TYPE_Q4_1);
    assert_int_equal(rf_gguf_find_tensor(g, "output_norm.weight")->type, RF_TYPE_F32);
    check_invariants(g);
    rf_gguf_close(g);
}

static char *info_of(const char *path, rf_status *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    *s = rf_gguf_print_info(path, out);
    fclose(out);
    return text;
}

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want)) fail_msg("info lacks '%s':\n%s", want, text);
}

static void test_print_info(void **state)
{
    (void)state;
    char path[1024];
    rf_status s;
    fixture_path(path, sizeof path, "valid_v3_all.gguf");
    char *text = info_of(path, &s);
    assert_int_equal(s, RF_OK);
    assert_has(text, "gguf version:     3\n");
    assert_has(text, "architecture:     test\n");
    assert_has(text, "name:             all value types\n");
    assert_has(text, "alignment:        32\n");
    assert_has(text, "  test.block_count     2\n");
    assert_has(text, "  test.rope.freq_base  10000\n");
    assert_has(text, "  test.use_bias        false\n");
    assert_has(text, "  test.layer_sizes     [6 x int32: 10, 20, 30, 40, ...]\n");
    assert_has(text, "  model:          gpt2\n");
    assert_has(text, "  pre-tokenizer:  none\n");
    assert_has(text, "  vocab size:     3\n");
    assert_has(text, "  bos id:         1\n");
    assert_has(text, "  chat template:  present (14 bytes)\n");
    assert_has(text, "tensors:          4\n");
    assert_has(text, "  Q8_0              1  68 bytes\n");
    assert_has(text, "tensor bytes:     136 bytes\n");
    assert_has(text, "parameters:       0.00 M (138)\n");
    assert_null(strstr(text, "t.u8")); /* only <arch>.* keys are hyper-parameters */
    free(text);

    fixture_path(path, sizeof path, "dup_key.gguf");
    text = info_of(path, &s);
    assert_int_equal(s, RF_STATUS_BAD_FILE);
    assert_string_equal(text, "");
    free(text);

    const char *model = smollm_path();
    if (!model) return;
    text = info_of(model, &s);
    assert_int_equal(s, RF_OK);
    assert_has(text, "architecture:     llama\n");
    assert_has(text, "  llama.block_count                       30\n");
    assert_has(text, "  pre-tokenizer:  smollm\n");
    assert_has(text, "  vocab size:     49152\n");
    assert_has(text, "  eos id:         2\n");
    assert_has(text, "tensors:          272\n");
    assert_has(text, "  Q4_1            210  ");
    assert_has(text, "parameters:       134.52 M (134515008)\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_scalars),
        cmocka_unit_test(test_valid_arrays),
        cmocka_unit_test(test_valid_nested),
        cmocka_unit_test(test_valid_tensors),
        cmocka_unit_test(test_valid_small),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_version_status),
        cmocka_unit_test(test_truncate_every_length),
        cmocka_unit_test(test_flip_bytes),
        cmocka_unit_test(test_smollm),
        cmocka_unit_test(test_print_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

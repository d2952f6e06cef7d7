/* GGUF reader. Layout (little-endian, v2/v3):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv   x { str key, u32 vtype, value }
 *   n_tensors x { str name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to the alignment, then the data section (offsets are relative to it)
 * where str = { u64 len, len bytes } and an array value = { u32 elem_type, u64 n, n elems }.
 * Every read is checked against the bytes that remain before it happens, and every count
 * against what those bytes could hold before anything is allocated for it. */
#include "gguf/gguf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "quant/quant.h"

/* Smallest encodings, used to bound counts by the bytes left: a key-value is an 8-byte
 * length, a 1-byte key, a 4-byte type and a 1-byte value; a tensor info a 1-byte name,
 * one dim, type and offset; an array element of type string/array its header alone. */
#define MIN_KV_BYTES (8 + 1 + 4 + 1)
#define MIN_TENSOR_INFO_BYTES (8 + 1 + 4 + 8 + 4 + 8)
#define MIN_STR_BYTES 8
#define MIN_ARRAY_BYTES (4 + 8)

struct parser {
    const uint8_t *base;
    size_t size;
    size_t pos;
    char where[160]; /* the item being read, prefixed to messages: "tensor #3 'x'" */
};

static rf_status bad(const struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static rf_status bad(const struct parser *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->where[0]) rf_fail(RF_STATUS_BAD_FILE, "gguf: %s: %s", p->where, msg);
    else rf_fail(RF_STATUS_BAD_FILE, "gguf: %s", msg);
    return RF_STATUS_BAD_FILE;
}

/* Printable, bounded copy of file bytes for messages (names may hold anything). */
static void safe_name(char *dst, size_t cap, const char *s, uint64_t len)
{
    size_t n = 0;
    const size_t keep = cap > 4 ? cap - 4 : 0;
    for (uint64_t i = 0; i < len && n < keep; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[n++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (n < len && cap >= 4) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    if (cap) dst[n < cap ? n : cap - 1] = '\0';
}

static size_t remaining(const struct parser *p) { return p->size - p->pos; }

static rf_status need(const struct parser *p, uint64_t n, const char *what)
{
    if (n <= remaining(p)) return RF_OK;
    return bad(p, "truncated: %s at byte %zu needs %llu bytes, %zu remain", what, p->pos,
               (unsigned long long)n, remaining(p));
}

static uint64_t load_le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static rf_status read_u32(struct parser *p, const char *what, uint32_t *out)
{
    RF_TRY(need(p, 4, what));
    *out = (uint32_t)load_le(p->base + p->pos, 4);
    p->pos += 4;
    return RF_OK;
}

static rf_status read_u64(struct parser *p, const char *what, uint64_t *out)
{
    RF_TRY(need(p, 8, what));
    *out = load_le(p->base + p->pos, 8);
    p->pos += 8;
    return RF_OK;
}

/* what: "key", "string", "tensor name". The length limit is checked before the bytes
 * left, so an over-long name is reported as such even in a short file. */
static rf_status read_str(struct parser *p, const char *what, uint64_t max_len,
                          struct rf_gguf_str *out)
{
    const size_t at = p->pos;
    uint64_t len;
    out->ptr = "";
    out->len = 0;
    if (remaining(p) < 8)
        return bad(p, "truncated: %s length at byte %zu needs 8 bytes, %zu remain", what, at,
                   remaining(p));
    RF_TRY(read_u64(p, "length", &len));
    if (len > max_len)
        return bad(p, "%s length %llu at byte %zu exceeds the limit of %llu bytes", what,
                   (unsigned long long)len, at, (unsigned long long)max_len);
    if (len > remaining(p))
        return bad(p, "%s length %llu at byte %zu exceeds remaining %zu bytes", what,
                   (unsigned long long)len, at, remaining(p));
    out->ptr = (const char *)(p->base + p->pos);
    out->len = len;
    p->pos += len;
    return RF_OK;
}

/* Bytes of a scalar value type; 0 for string, array and unknown types. */
static size_t scalar_size(uint32_t t)
{
    switch (t) {
    case RF_GGUF_UINT8:
    case RF_GGUF_INT8:
    case RF_GGUF_BOOL: return 1;
    case RF_GGUF_UINT16:
    case RF_GGUF_INT16: return 2;
    case RF_GGUF_UINT32:
    case RF_GGUF_INT32:
    case RF_GGUF_FLOAT32: return 4;
    case RF_GGUF_UINT64:
    case RF_GGUF_INT64:
    case RF_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static bool is_int_type(enum rf_gguf_vtype t)
{
    return t == RF_GGUF_UINT8 || t == RF_GGUF_INT8 || t == RF_GGUF_UINT16 || t == RF_GGUF_INT16 ||
           t == RF_GGUF_UINT32 || t == RF_GGUF_INT32 || t == RF_GGUF_UINT64 || t == RF_GGUF_INT64;
}

static bool is_signed_type(enum rf_gguf_vtype t)
{
    return t == RF_GGUF_INT8 || t == RF_GGUF_INT16 || t == RF_GGUF_INT32 || t == RF_GGUF_INT64;
}

/* b holds scalar_size(t) bytes. */
static void decode_scalar(enum rf_gguf_vtype t, const uint8_t *b, struct rf_gguf_value *v)
{
    const int n = (int)scalar_size(t);
    const uint64_t raw = load_le(b, n);
    v->type = t;
    if (t == RF_GGUF_FLOAT32) {
        const uint32_t w = (uint32_t)raw;
        float f;
        memcpy(&f, &w, sizeof f);
        v->v.f64 = f;
    } else if (t == RF_GGUF_FLOAT64) {
        memcpy(&v->v.f64, &raw, sizeof raw);
    } else if (is_signed_type(t) && n < 8) {
        const uint64_t sign = 1ull << (8 * n - 1); /* raw < 2 * sign <= 2^56 */
        v->v.i64 = (raw & sign) ? (int64_t)raw - (int64_t)(2 * sign) : (int64_t)raw;
    } else {
        v->v.u64 = raw; /* also INT64: same bits */
    }
}

static rf_status check_bools(const struct parser *p, const uint8_t *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (b[i] > 1)
            return bad(p, "bool value %u at byte %zu is not 0 or 1", b[i],
                       (size_t)(b + i - p->base));
    return RF_OK;
}

static rf_status parse_array(struct parser *p, int depth, struct rf_gguf_value *v);

/* v->type is set; reads the value's bytes. depth: array levels around this value. */
static rf_status parse_value(struct parser *p, int depth, struct rf_gguf_value *v)
{
    const enum rf_gguf_vtype t = v->type;
    if (t == RF_GGUF_STRING) return read_str(p, "string", UINT64_MAX, &v->v.str);
    if (t == RF_GGUF_ARRAY) return parse_array(p, depth + 1, v);
    const size_t n = scalar_size(t);
    RF_TRY(need(p, n, rf_gguf_vtype_name(t)));
    const uint8_t *b = p->base + p->pos;
    if (t == RF_GGUF_BOOL) RF_TRY(check_bools(p, b, 1));
    decode_scalar(t, b, v);
    p->pos += n;
    return RF_OK;
}

static rf_status parse_string_elems(struct parser *p, struct rf_gguf_value *v)
{
    const uint64_t n = v->v.arr.n;
    v->v.arr.strs = calloc(n ? n : 1, sizeof *v->v.arr.strs);
    if (!v->v.arr.strs) return rf_fail(RF_STATUS_NOMEM, "gguf: %s: out of memory", p->where);
    for (uint64_t i = 0; i < n; i++) RF_TRY(read_str(p, "string", UINT64_MAX, &v->v.arr.strs[i]));
    return RF_OK;
}

static rf_status parse_array_elems(struct parser *p, int depth, struct rf_gguf_value *v)
{
    const uint64_t n = v->v.arr.n;
    v->v.arr.items = calloc(n ? n : 1, sizeof *v->v.arr.items);
    if (!v->v.arr.items) return rf_fail(RF_STATUS_NOMEM, "gguf: %s: out of memory", p->where);
    for (uint64_t i = 0; i < n; i++) {
        v->v.arr.items[i].type = RF_GGUF_ARRAY;
        RF_TRY(parse_array(p, depth, &v->v.arr.items[i]));
    }
    return RF_OK;
}

/* depth: this array's nesting level, 1 for a top-level array. */
static rf_status parse_array(struct parser *p, int depth, struct rf_gguf_value *v)
{
    const size_t at = p->pos;
    if (depth > RF_GGUF_MAX_ARRAY_DEPTH)
        return bad(p, "array at byte %zu nested %d deep exceeds the limit of %d", at, depth,
                   RF_GGUF_MAX_ARRAY_DEPTH);
    uint32_t et;
    uint64_t n;
    RF_TRY(read_u32(p, "array element type", &et));
    if (et >= RF_GGUF_VTYPE_COUNT)
        return bad(p, "unknown array element type %u at byte %zu", et, at);
    const size_t len_at = p->pos;
    RF_TRY(read_u64(p, "array length", &n));
    const size_t elem = et == RF_GGUF_STRING  ? MIN_STR_BYTES
                        : et == RF_GGUF_ARRAY ? MIN_ARRAY_BYTES
                                              : scalar_size(et);
    if (n > remaining(p) / elem)
        return bad(p,
                   "array length %llu at byte %zu exceeds remaining %zu bytes (%s elements of "
                   "at least %zu bytes)",
                   (unsigned long long)n, len_at, remaining(p), rf_gguf_vtype_name(et), elem);
    v->v.arr.elem_type = (enum rf_gguf_vtype)et;
    v->v.arr.n = n;
    v->v.arr.raw = p->base + p->pos;
    if (et == RF_GGUF_STRING) return parse_string_elems(p, v);
    if (et == RF_GGUF_ARRAY) return parse_array_elems(p, depth + 1, v);
    if (et == RF_GGUF_BOOL) RF_TRY(check_bools(p, p->base + p->pos, n));
    p->pos += n * elem;
    return RF_OK;
}

static void free_value(struct rf_gguf_value *v)
{
    if (v->type != RF_GGUF_ARRAY) return;
    free(v->v.arr.strs);
    if (v->v.arr.items)
        for (uint64_t i = 0; i < v->v.arr.n; i++) free_value(&v->v.arr.items[i]);
    free(v->v.arr.items);
}

static rf_status check_name(const struct parser *p, const char *what, struct rf_gguf_str s,
                            size_t at)
{
    if (s.len == 0) return bad(p, "empty %s at byte %zu", what, at);
    if (memchr(s.ptr, 0, s.len)) return bad(p, "%s at byte %zu contains a NUL byte", what, at);
    return RF_OK;
}

static rf_status parse_kv(struct parser *p, uint64_t i, struct rf_gguf_kv *kv)
{
    const size_t at = p->pos;
    char name[64];
    snprintf(p->where, sizeof p->where, "metadata key #%llu", (unsigned long long)i);
    RF_TRY(read_str(p, "key", RF_GGUF_MAX_KEY_LEN, &kv->key));
    RF_TRY(check_name(p, "key", kv->key, at));
    safe_name(name, sizeof name, kv->key.ptr, kv->key.len);
    snprintf(p->where, sizeof p->where, "metadata key #%llu '%s'", (unsigned long long)i, name);
    const size_t type_at = p->pos;
    uint32_t t;
    RF_TRY(read_u32(p, "value type", &t));
    if (t >= RF_GGUF_VTYPE_COUNT) return bad(p, "unknown value type %u at byte %zu", t, type_at);
    kv->val.type = (enum rf_gguf_vtype)t;
    return parse_value(p, 0, &kv->val);
}

static rf_status parse_header(struct parser *p, struct rf_gguf *g)
{
    if (p->size == 0) return bad(p, "file is empty (0 bytes)");
    RF_TRY(need(p, 4, "magic"));
    const uint8_t *m = p->base;
    if (memcmp(m, "GGUF", 4) != 0)
        return bad(p, "bad magic at byte 0: %02x %02x %02x %02x (expected 47 47 55 46, \"GGUF\")",
                   m[0], m[1], m[2], m[3]);
    p->pos = 4;
    RF_TRY(read_u32(p, "version", &g->version));
    const uint32_t v = g->version;
    const uint32_t swapped = __builtin_bswap32(v);
    if (v == 1)
        return rf_fail(RF_STATUS_UNSUPPORTED,
                       "gguf: version 1 at byte 4 is not supported (GGUF v1 is obsolete; "
                       "versions 2 and 3 are read)");
    if ((v & 0xffff) == 0 && swapped >= 1 && swapped <= 3)
        return rf_fail(RF_STATUS_UNSUPPORTED,
                       "gguf: big-endian file (version at byte 4 reads %u byte-swapped); only "
                       "little-endian GGUF is supported",
                       swapped);
    if (v != 2 && v != 3)
        return rf_fail(RF_STATUS_UNSUPPORTED,
                       "gguf: version %u at byte 4 is not supported (versions 2 and 3 are read)",
                       v);
    RF_TRY(read_u64(p, "n_tensors", &g->n_tensors));
    RF_TRY(read_u64(p, "n_kv", &g->n_kv));
    if (g->n_kv > RF_GGUF_MAX_KV)
        return bad(p, "n_kv %llu at byte 16 exceeds the limit of %u", (unsigned long long)g->n_kv,
                   RF_GGUF_MAX_KV);
    if (g->n_tensors > RF_GGUF_MAX_TENSORS)
        return bad(p, "n_tensors %llu at byte 8 exceeds the limit of %u",
                   (unsigned long long)g->n_tensors, RF_GGUF_MAX_TENSORS);
    if (g->n_kv > remaining(p) / MIN_KV_BYTES)
        return bad(p, "n_kv %llu at byte 16 exceeds what the remaining %zu bytes can hold",
                   (unsigned long long)g->n_kv, remaining(p));
    if (g->n_tensors > remaining(p) / MIN_TENSOR_INFO_BYTES)
        return bad(p, "n_tensors %llu at byte 8 exceeds what the remaining %zu bytes can hold",
                   (unsigned long long)g->n_tensors, remaining(p));
    return RF_OK;
}

/* Sort tables for the duplicate and overlap checks (qsort has no context argument). */
struct kv_ref {
    const struct rf_gguf_kv *kv;
};
struct tensor_ref {
    const struct rf_gguf_tensor *t;
};

static int cmp_kv_key(const void *a, const void *b)
{
    const struct rf_gguf_kv *x = ((const struct kv_ref *)a)->kv;
    const struct rf_gguf_kv *y = ((const struct kv_ref *)b)->kv;
    if (x->key.len != y->key.len) return x->key.len < y->key.len ? -1 : 1;
    const int c = memcmp(x->key.ptr, y->key.ptr, x->key.len);
    if (c) return c;
    return x < y ? -1 : x > y; /* file order among equals: report the later one */
}

/* Duplicates found by sorting, so that hostile key counts stay O(n log n). */
static rf_status check_duplicate_keys(struct parser *p, const struct rf_gguf *g)
{
    if (g->n_kv < 2) return RF_OK;
    struct kv_ref *order = malloc(g->n_kv * sizeof *order);
    if (!order)
        return rf_fail(RF_STATUS_NOMEM, "gguf: out of memory sorting %llu keys",
                       (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) order[i].kv = &g->kvs[i];
    qsort(order, g->n_kv, sizeof *order, cmp_kv_key);
    rf_status s = RF_OK;
    for (uint64_t i = 1; i < g->n_kv && s == RF_OK; i++) {
        const struct rf_gguf_kv *a = order[i - 1].kv, *b = order[i].kv;
        if (a->key.len != b->key.len || memcmp(a->key.ptr, b->key.ptr, a->key.len) != 0) continue;
        char name[64];
        safe_name(name, sizeof name, b->key.ptr, b->key.len);
        p->where[0] = '\0';
        s = bad(p, "metadata key #%lld '%s' at byte %zu duplicates key #%lld",
                (long long)(b - g->kvs), name, (size_t)((const uint8_t *)b->key.ptr - p->base - 8),
                (long long)(a - g->kvs));
    }
    free(order);
    return s;
}

static rf_status parse_kvs(struct parser *p, struct rf_gguf *g)
{
    if (g->n_kv == 0) return RF_OK;
    g->kvs = calloc(g->n_kv, sizeof *g->kvs);
    if (!g->kvs)
        return rf_fail(RF_STATUS_NOMEM, "gguf: out of memory for %llu metadata keys",
                       (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) RF_TRY(parse_kv(p, i, &g->kvs[i]));
    p->where[0] = '\0';
    return check_duplicate_keys(p, g);
}

static rf_status read_alignment(struct parser *p, struct rf_gguf *g)
{
    g->alignment = RF_GGUF_DEFAULT_ALIGNMENT;
    const struct rf_gguf_kv *kv = rf_gguf_find(g, "general.alignment");
    if (!kv) return RF_OK;
    const size_t at = (size_t)((const uint8_t *)kv->key.ptr - p->base - 8);
    snprintf(p->where, sizeof p->where, "metadata key #%lld 'general.alignment' at byte %zu",
             (long long)(kv - g->kvs), at);
    const enum rf_gguf_vtype t = kv->val.type;
    if (!is_int_type(t))
        return bad(p, "has type %s, expected an unsigned integer", rf_gguf_vtype_name(t));
    if (is_signed_type(t) && kv->val.v.i64 < 0)
        return bad(p, "value %lld must be a non-zero power of two", (long long)kv->val.v.i64);
    const uint64_t a = kv->val.v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return bad(p, "value %llu must be a non-zero power of two", (unsigned long long)a);
    g->alignment = a;
    p->where[0] = '\0';
    return RF_OK;
}

static rf_status read_dims(struct parser *p, struct rf_gguf_tensor *t)
{
    const size_t at = p->pos;
    RF_TRY(read_u32(p, "n_dims", &t->n_dims));
    if (t->n_dims < 1 || t->n_dims > RF_GGUF_MAX_DIMS)
        return bad(p, "n_dims %u at byte %zu is not in 1..%d", t->n_dims, at, RF_GGUF_MAX_DIMS);
    for (int d = 0; d < RF_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        const size_t dat = p->pos;
        uint64_t ne;
        RF_TRY(read_u64(p, "dimension", &ne));
        if (ne == 0 || ne > INT64_MAX)
            return bad(p, "dimension %u = %llu at byte %zu is not in 1..INT64_MAX", d,
                       (unsigned long long)ne, dat);
        t->ne[d] = (int64_t)ne;
    }
    return RF_OK;
}

/* Element count and byte size from the dims and the type table. */
static rf_status size_tensor(struct parser *p, struct rf_gguf_tensor *t, size_t dims_at,
                             size_t type_at)
{
    const struct rf_type_traits *tr = rf_type_traits(t->type);
    if (!tr || tr->block_size <= 0 || tr->type_size == 0)
        return bad(p, "unknown type id %u at byte %zu", t->type, type_at);
    int64_t nel = 1;
    for (int d = 0; d < RF_GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(nel, t->ne[d], &nel))
            return bad(p,
                       "element count of dims [%lld, %lld, %lld, %lld] at byte %zu overflows "
                       "int64",
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], dims_at);
    if (t->ne[0] % tr->block_size != 0)
        return bad(p,
                   "ne[0] = %lld at byte %zu is not a multiple of the block size %lld of type %s",
                   (long long)t->ne[0], dims_at + 4, (long long)tr->block_size, tr->name);
    const uint64_t rows = (uint64_t)(nel / t->ne[0]);
    uint64_t row_bytes;
    if (__builtin_mul_overflow((uint64_t)(t->ne[0] / tr->block_size), (uint64_t)tr->type_size,
                               &row_bytes) ||
        __builtin_mul_overflow(row_bytes, rows, &t->nbytes))
        return bad(p, "byte size of %lld elements of type %s (dims at byte %zu) overflows",
                   (long long)nel, tr->name, dims_at);
    return RF_OK;
}

static rf_status parse_tensor_info(struct parser *p, const struct rf_gguf *g, uint64_t i,
                                   struct rf_gguf_tensor *t)
{
    const size_t at = p->pos;
    struct rf_gguf_str name;
    char safe[80];
    snprintf(p->where, sizeof p->where, "tensor #%llu", (unsigned long long)i);
    t->info_offset = at;
    RF_TRY(read_str(p, "tensor name", RF_GGUF_MAX_NAME_LEN, &name));
    RF_TRY(check_name(p, "tensor name", name, at));
    t->name = malloc(name.len + 1);
    if (!t->name) return rf_fail(RF_STATUS_NOMEM, "gguf: out of memory for tensor names");
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = '\0';
    safe_name(safe, sizeof safe, name.ptr, name.len);
    snprintf(p->where, sizeof p->where, "tensor #%llu '%s'", (unsigned long long)i, safe);
    const size_t dims_at = p->pos;
    RF_TRY(read_dims(p, t));
    const size_t type_at = p->pos;
    RF_TRY(read_u32(p, "type", &t->type));
    const size_t off_at = p->pos;
    RF_TRY(read_u64(p, "offset", &t->offset));
    RF_TRY(size_tensor(p, t, dims_at, type_at));
    if (t->offset % g->alignment != 0)
        return bad(p, "offset %llu at byte %zu is not a multiple of the alignment %llu",
                   (unsigned long long)t->offset, off_at, (unsigned long long)g->alignment);
    return RF_OK;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const struct rf_gguf_tensor *x = ((const struct tensor_ref *)a)->t;
    const struct rf_gguf_tensor *y = ((const struct tensor_ref *)b)->t;
    const int c = strcmp(x->name, y->name);
    if (c) return c;
    return x < y ? -1 : x > y;
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const struct rf_gguf_tensor *x = ((const struct tensor_ref *)a)->t;
    const struct rf_gguf_tensor *y = ((const struct tensor_ref *)b)->t;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x < y ? -1 : x > y;
}

static rf_status check_pair(struct parser *p, const struct rf_gguf *g,
                            const struct rf_gguf_tensor *a, const struct rf_gguf_tensor *b)
{
    char na[80], nb[80];
    safe_name(na, sizeof na, a->name, strlen(a->name));
    safe_name(nb, sizeof nb, b->name, strlen(b->name));
    if (strcmp(a->name, b->name) == 0)
        return bad(p,
                   "duplicate tensor name: tensor #%lld '%s' at byte %llu repeats tensor #%lld "
                   "at byte %llu",
                   (long long)(b - g->tensors), nb, (unsigned long long)b->info_offset,
                   (long long)(a - g->tensors), (unsigned long long)a->info_offset);
    const uint64_t d = g->data_offset;
    return bad(p,
               "tensors #%lld '%s' and #%lld '%s': data ranges [%llu, %llu) and [%llu, %llu) "
               "overlap",
               (long long)(a - g->tensors), na, (long long)(b - g->tensors), nb,
               (unsigned long long)(d + a->offset), (unsigned long long)(d + a->offset + a->nbytes),
               (unsigned long long)(d + b->offset),
               (unsigned long long)(d + b->offset + b->nbytes));
}

/* Duplicate names, then overlapping data, each by sorting a table of references. */
static rf_status check_tensor_set(struct parser *p, const struct rf_gguf *g)
{
    const uint64_t n = g->n_tensors;
    if (n < 2) return RF_OK;
    struct tensor_ref *order = malloc(n * sizeof *order);
    if (!order) return rf_fail(RF_STATUS_NOMEM, "gguf: out of memory sorting tensors");
    rf_status s = RF_OK;
    p->where[0] = '\0';
    for (uint64_t i = 0; i < n; i++) order[i].t = &g->tensors[i];
    qsort(order, n, sizeof *order, cmp_tensor_name);
    for (uint64_t i = 1; i < n && s == RF_OK; i++)
        if (strcmp(order[i - 1].t->name, order[i].t->name) == 0)
            s = check_pair(p, g, order[i - 1].t, order[i].t);
    if (s == RF_OK) qsort(order, n, sizeof *order, cmp_tensor_offset);
    for (uint64_t i = 1; i < n && s == RF_OK; i++)
        if (order[i - 1].t->offset + order[i - 1].t->nbytes > order[i].t->offset)
            s = check_pair(p, g, order[i - 1].t, order[i].t);
    free(order);
    return s;
}

/* Data section start and each tensor's [start, end) inside the file. */
static rf_status place_tensors(struct parser *p, struct rf_gguf *g)
{
    const uint64_t a = g->alignment;
    if (p->pos > UINT64_MAX - (a - 1))
        return bad(p, "data section start overflows aligning byte %zu to %llu", p->pos,
                   (unsigned long long)a);
    g->data_offset = (p->pos + (a - 1)) & ~(a - 1);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct rf_gguf_tensor *t = &g->tensors[i];
        uint64_t start, end;
        char safe[80];
        safe_name(safe, sizeof safe, t->name, strlen(t->name));
        snprintf(p->where, sizeof p->where, "tensor #%llu '%s'", (unsigned long long)i, safe);
        if (__builtin_add_overflow(g->data_offset, t->offset, &start) ||
            __builtin_add_overflow(start, t->nbytes, &end))
            return bad(p,
                       "data range overflows: data section start %llu + offset %llu + %llu "
                       "bytes",
                       (unsigned long long)g->data_offset, (unsigned long long)t->offset,
                       (unsigned long long)t->nbytes);
        if (end > g->size)
            return bad(p, "data range [%llu, %llu) exceeds file size %zu",
                       (unsigned long long)start, (unsigned long long)end, g->size);
        t->data = p->base + start;
    }
    return check_tensor_set(p, g);
}

static rf_status parse_tensors(struct parser *p, struct rf_gguf *g)
{
    if (g->n_tensors > remaining(p) / MIN_TENSOR_INFO_BYTES)
        return bad(p,
                   "n_tensors %llu at byte 8 exceeds what the remaining %zu bytes after the "
                   "metadata can hold",
                   (unsigned long long)g->n_tensors, remaining(p));
    if (g->n_tensors) {
        g->tensors = calloc(g->n_tensors, sizeof *g->tensors);
        if (!g->tensors)
            return rf_fail(RF_STATUS_NOMEM, "gguf: out of memory for %llu tensors",
                           (unsigned long long)g->n_tensors);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) RF_TRY(parse_tensor_info(p, g, i, &g->tensors[i]));
    return place_tensors(p, g);
}

rf_status rf_gguf_parse(const void *data, size_t size, struct rf_gguf **out)
{
    if (!out) return rf_fail(RF_STATUS_INVALID_ARG, "gguf: out is NULL");
    *out = NULL;
    if (!data && size) return rf_fail(RF_STATUS_INVALID_ARG, "gguf: data is NULL");
    struct rf_gguf *g = calloc(1, sizeof *g);
    if (!g) return rf_fail(RF_STATUS_NOMEM, "gguf: out of memory");
    struct parser p = {.base = data, .size = size};
    g->base = data;
    g->size = size;
    g->alignment = RF_GGUF_DEFAULT_ALIGNMENT;
    rf_status s = parse_header(&p, g);
    if (s == RF_OK) s = parse_kvs(&p, g);
    if (s == RF_OK) s = read_alignment(&p, g);
    if (s == RF_OK) s = parse_tensors(&p, g);
    if (s != RF_OK) goto fail;
    *out = g;
    return RF_OK;
fail:
    rf_gguf_close(g);
    return s;
}

rf_status rf_gguf_open(const char *path, struct rf_gguf **out)
{
    if (!path || !out) return rf_fail(RF_STATUS_INVALID_ARG, "gguf: path or out is NULL");
    *out = NULL;
    struct rf_mmap map;
    RF_TRY(rf_mmap_open(path, &map));
    struct rf_gguf *g = NULL;
    rf_status s = rf_gguf_parse(map.data, map.size, &g);
    if (s != RF_OK || !g) {
        rf_mmap_close(&map);
        return s;
    }
    g->map = map;
    *out = g;
    return RF_OK;
}

void rf_gguf_close(struct rf_gguf *g)
{
    if (!g) return;
    if (g->kvs)
        for (uint64_t i = 0; i < g->n_kv; i++) free_value(&g->kvs[i].val);
    free(g->kvs);
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    rf_mmap_close(&g->map);
    free(g);
}

/* ---- access ---- */

int64_t rf_gguf_tensor_nelements(const struct rf_gguf_tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

bool rf_gguf_str_eq(struct rf_gguf_str s, const char *cstr)
{
    const size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}

const struct rf_gguf_kv *rf_gguf_find(const struct rf_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (rf_gguf_str_eq(g->kvs[i].key, key)) return &g->kvs[i];
    return NULL;
}

const struct rf_gguf_tensor *rf_gguf_find_tensor(const struct rf_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static bool wrong_type(const char *key, enum rf_gguf_vtype t, const char *expected)
{
    rf_fail(RF_STATUS_BAD_FILE, "gguf: metadata key '%s' has type %s, expected %s", key,
            rf_gguf_vtype_name(t), expected);
    return false;
}

bool rf_gguf_get_int(const struct rf_gguf *g, const char *key, int64_t *out)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return false;
    const struct rf_gguf_value *v = &kv->val;
    if (!is_int_type(v->type)) return wrong_type(key, v->type, "an integer");
    if (!is_signed_type(v->type) && v->v.u64 > INT64_MAX) {
        rf_fail(RF_STATUS_BAD_FILE, "gguf: metadata key '%s' = %llu does not fit int64", key,
                (unsigned long long)v->v.u64);
        return false;
    }
    *out = v->v.i64;
    return true;
}

static double scalar_to_double(const struct rf_gguf_value *v)
{
    if (v->type == RF_GGUF_FLOAT32 || v->type == RF_GGUF_FLOAT64) return v->v.f64;
    if (is_signed_type(v->type)) return (double)v->v.i64;
    return (double)v->v.u64;
}

bool rf_gguf_get_float(const struct rf_gguf *g, const char *key, double *out)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return false;
    const enum rf_gguf_vtype t = kv->val.type;
    if (t != RF_GGUF_FLOAT32 && t != RF_GGUF_FLOAT64 && !is_int_type(t))
        return wrong_type(key, t, "a number");
    *out = scalar_to_double(&kv->val);
    return true;
}

bool rf_gguf_get_bool(const struct rf_gguf *g, const char *key, bool *out)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return false;
    if (kv->val.type != RF_GGUF_BOOL) return wrong_type(key, kv->val.type, "bool");
    *out = kv->val.v.u64 != 0;
    return true;
}

bool rf_gguf_get_str(const struct rf_gguf *g, const char *key, struct rf_gguf_str *out)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return false;
    if (kv->val.type != RF_GGUF_STRING) return wrong_type(key, kv->val.type, "string");
    *out = kv->val.v.str;
    return true;
}

const struct rf_gguf_value *rf_gguf_get_arr(const struct rf_gguf *g, const char *key)
{
    const struct rf_gguf_kv *kv = rf_gguf_find(g, key);
    if (!kv) return NULL;
    if (kv->val.type != RF_GGUF_ARRAY) {
        wrong_type(key, kv->val.type, "array");
        return NULL;
    }
    return &kv->val;
}

/* Element i decoded into *e; false when there is none. */
static bool arr_elem(const struct rf_gguf_value *arr, uint64_t i, struct rf_gguf_value *e)
{
    if (!arr || arr->type != RF_GGUF_ARRAY || i >= arr->v.arr.n) return false;
    const size_t es = scalar_size(arr->v.arr.elem_type);
    if (es == 0) return false;
    decode_scalar(arr->v.arr.elem_type, (const uint8_t *)arr->v.arr.raw + i * es, e);
    return true;
}

int64_t rf_gguf_arr_int(const struct rf_gguf_value *arr, uint64_t i)
{
    struct rf_gguf_value e;
    if (!arr_elem(arr, i, &e)) return 0;
    if (e.type == RF_GGUF_FLOAT32 || e.type == RF_GGUF_FLOAT64) {
        /* out-of-range float to int conversion is undefined: clamp first */
        if (e.v.f64 != e.v.f64) return 0; /* NaN */
        if (!(e.v.f64 > -9.2e18 && e.v.f64 < 9.2e18)) return e.v.f64 > 0 ? INT64_MAX : INT64_MIN;
        return (int64_t)e.v.f64;
    }
    return e.v.i64;
}

double rf_gguf_arr_float(const struct rf_gguf_value *arr, uint64_t i)
{
    struct rf_gguf_value e;
    if (!arr_elem(arr, i, &e)) return 0.0;
    return scalar_to_double(&e);
}

const char *rf_gguf_vtype_name(enum rf_gguf_vtype t)
{
    static const char *const names[RF_GGUF_VTYPE_COUNT] = {
        [RF_GGUF_UINT8] = "uint8",     [RF_GGUF_INT8] = "int8",     [RF_GGUF_UINT16] = "uint16",
        [RF_GGUF_INT16] = "int16",     [RF_GGUF_UINT32] = "uint32", [RF_GGUF_INT32] = "int32",
        [RF_GGUF_FLOAT32] = "float32", [RF_GGUF_BOOL] = "bool",     [RF_GGUF_STRING] = "string",
        [RF_GGUF_ARRAY] = "array",     [RF_GGUF_UINT64] = "uint64", [RF_GGUF_INT64] = "int64",
        [RF_GGUF_FLOAT64] = "float64",
    };
    return (unsigned)t < RF_GGUF_VTYPE_COUNT ? names[t] : "unknown";
}

#ifndef RF_GGUF_H
#define RF_GGUF_H
/* GGUF v2/v3 reader. The file is mmapped; strings and tensor data point into the
 * mapping. Every offset and size is validated at open, so accessors cannot read
 * outside the file. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mmap.h"
#include "rocmforge.h"

enum rf_gguf_vtype {
    RF_GGUF_UINT8 = 0,
    RF_GGUF_INT8 = 1,
    RF_GGUF_UINT16 = 2,
    RF_GGUF_INT16 = 3,
    RF_GGUF_UINT32 = 4,
    RF_GGUF_INT32 = 5,
    RF_GGUF_FLOAT32 = 6,
    RF_GGUF_BOOL = 7,
    RF_GGUF_STRING = 8,
    RF_GGUF_ARRAY = 9,
    RF_GGUF_UINT64 = 10,
    RF_GGUF_INT64 = 11,
    RF_GGUF_FLOAT64 = 12,
    RF_GGUF_VTYPE_COUNT
};

/* Not NUL-terminated: ptr points into the file. */
struct rf_gguf_str {
    const char *ptr;
    uint64_t len;
};

struct rf_gguf_value {
    enum rf_gguf_vtype type;
    union {
        uint64_t u64; /* UINT8..UINT64, BOOL */
        int64_t i64;  /* INT8..INT64 (sign-extended) */
        double f64;   /* FLOAT32, FLOAT64 */
        struct rf_gguf_str str;
        struct {
            enum rf_gguf_vtype elem_type;
            uint64_t n;
            /* Scalar elements: raw little-endian bytes in the file (maybe unaligned;
             * read them through rf_gguf_arr_*). */
            const void *raw;
            /* STRING elements: n parsed strings. ARRAY elements: n parsed values. */
            struct rf_gguf_str *strs;
            struct rf_gguf_value *items;
        } arr;
    } v;
};

struct rf_gguf_kv {
    struct rf_gguf_str key;
    struct rf_gguf_value val;
};

#define RF_GGUF_MAX_DIMS 4

/* Limits enforced at open (beyond "fits in the file"). The format allows keys of up to
 * 65535 bytes and names tensors in at most 64 bytes; names up to 256 bytes are
 * accepted. Arrays may nest (arrays of arrays) up to RF_GGUF_MAX_ARRAY_DEPTH levels,
 * a top-level array being level 1. */
#define RF_GGUF_MAX_KEY_LEN 65535
#define RF_GGUF_MAX_NAME_LEN 256
#define RF_GGUF_MAX_ARRAY_DEPTH 8
#define RF_GGUF_MAX_KV (1u << 20)
#define RF_GGUF_MAX_TENSORS (1u << 20)
#define RF_GGUF_DEFAULT_ALIGNMENT 32

/* Validation at open, besides bounds: keys are non-empty, unique and free of NUL bytes;
 * tensor names likewise; bools are 0 or 1; every dimension is >= 1 and the element
 * count fits int64; ne[0] is a multiple of the type's block size; each tensor's offset
 * is a multiple of the alignment; tensor data ranges lie inside the file and do not
 * overlap one another (no writer aliases tensors, so an overlap means a corrupt or
 * hostile file). */

struct rf_gguf_tensor {
    char *name; /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[RF_GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension; unused dims are 1 */
    uint32_t type;                /* enum rf_type id */
    uint64_t offset;              /* relative to the data section */
    const void *data;             /* into the mapping */
    uint64_t nbytes;
    uint64_t info_offset; /* byte of its info record in the file, for messages */
};

struct rf_gguf {
    struct rf_mmap map; /* empty when parsed from caller memory */
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    struct rf_gguf_kv *kvs;
    uint64_t n_tensors;
    struct rf_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset; /* start of the tensor data section */
};

/* Opens and validates; on failure rf_last_error() names the field and byte offset. */
rf_status rf_gguf_open(const char *path, struct rf_gguf **out);
/* Same over caller memory (kept alive by the caller); used by the fuzzer. */
rf_status rf_gguf_parse(const void *data, size_t size, struct rf_gguf **out);
void rf_gguf_close(struct rf_gguf *g);

/* Elements of a tensor (product of its dims; validated to fit int64 at open). */
int64_t rf_gguf_tensor_nelements(const struct rf_gguf_tensor *t);

const struct rf_gguf_kv *rf_gguf_find(const struct rf_gguf *g, const char *key);
const struct rf_gguf_tensor *rf_gguf_find_tensor(const struct rf_gguf *g, const char *name);

/* Typed getters: false when the key is absent (rf_last_error untouched). A present key
 * of the wrong type (or an integer that does not fit int64) is an error: they return
 * false and set rf_last_error. Callers tell the two apart with rf_clear_error() before
 * the call and rf_last_error()[0] after it, or with rf_gguf_find. */
bool rf_gguf_get_int(const struct rf_gguf *g, const char *key, int64_t *out);  /* any integer */
bool rf_gguf_get_float(const struct rf_gguf *g, const char *key, double *out); /* f32/f64/int */
bool rf_gguf_get_bool(const struct rf_gguf *g, const char *key, bool *out);
bool rf_gguf_get_str(const struct rf_gguf *g, const char *key, struct rf_gguf_str *out);
const struct rf_gguf_value *rf_gguf_get_arr(const struct rf_gguf *g, const char *key);

/* Element i of a scalar array, converted (integers, bools and floats; float to int
 * truncates). 0 when i is out of range or the elements are not scalars. */
int64_t rf_gguf_arr_int(const struct rf_gguf_value *arr, uint64_t i);
double rf_gguf_arr_float(const struct rf_gguf_value *arr, uint64_t i);

bool rf_gguf_str_eq(struct rf_gguf_str s, const char *cstr);
const char *rf_gguf_vtype_name(enum rf_gguf_vtype t);

#endif

#ifndef RF_QUANT_H
#define RF_QUANT_H
/* Tensor types and their traits: one table row per type. Ids are GGUF's. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rf_type {
    RF_TYPE_F32 = 0,
    RF_TYPE_F16 = 1,
    RF_TYPE_Q4_0 = 2,
    RF_TYPE_Q4_1 = 3,
    RF_TYPE_Q5_0 = 6,
    RF_TYPE_Q5_1 = 7,
    RF_TYPE_Q8_0 = 8,
    RF_TYPE_Q8_1 = 9,
    RF_TYPE_Q2_K = 10,
    RF_TYPE_Q3_K = 11,
    RF_TYPE_Q4_K = 12,
    RF_TYPE_Q5_K = 13,
    RF_TYPE_Q6_K = 14,
    RF_TYPE_Q8_K = 15,
    RF_TYPE_IQ2_XXS = 16,
    RF_TYPE_IQ2_XS = 17,
    RF_TYPE_IQ3_XXS = 18,
    RF_TYPE_IQ1_S = 19,
    RF_TYPE_IQ4_NL = 20,
    RF_TYPE_IQ3_S = 21,
    RF_TYPE_IQ2_S = 22,
    RF_TYPE_IQ4_XS = 23,
    RF_TYPE_I8 = 24,
    RF_TYPE_I16 = 25,
    RF_TYPE_I32 = 26,
    RF_TYPE_I64 = 27,
    RF_TYPE_F64 = 28,
    RF_TYPE_IQ1_M = 29,
    RF_TYPE_BF16 = 30,
    RF_TYPE_TQ1_0 = 34,
    RF_TYPE_TQ2_0 = 35,
    RF_TYPE_MXFP4 = 39,
    RF_TYPE_NVFP4 = 40, /* sized only */
    RF_TYPE_Q1_0 = 41,  /* sized only */
    RF_TYPE_COUNT = 42
};

/* x: one row of n weights of this type; y: n activations already converted to
 * vec_dot_type. n is a multiple of both block sizes. *s = dot(x, y). */
typedef void (*rf_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
/* One weight row x against nt activation rows y + t*y_stride (bytes):
 * s[t*s_stride] = dot(x, y_t) (s_stride in floats), each result bit-identical to
 * vec_dot(n, &s[t*s_stride], x, y_t); faster because x is unpacked once. */
typedef void (*rf_vec_dot_multi_fn)(int64_t n, float *s, size_t s_stride, const void *x, const void *y,
                                    size_t y_stride, int64_t nt);
/* nr weight rows x + r*x_stride (bytes) against nt activation rows y + t*y_stride:
 * s[t*s_stride + r] = dot(x_r, y_t), each bit-identical to vec_dot; faster because
 * per-token data (scales) is prepared once for all rows. */
typedef void (*rf_vec_dot_tile_fn)(int64_t n, float *s, size_t s_stride, const void *x, size_t x_stride,
                                   int64_t nr, const void *y, size_t y_stride, int64_t nt);
struct rf_type_traits {
    const char *name;        /* "Q4_0": gguf-py's GGMLQuantizationType name */
    int64_t block_size;      /* elements per block */
    size_t type_size;        /* bytes per block */
    bool is_quantized;
    /* n: multiple of block_size. NULL when the type cannot be dequantized. */
    void (*to_float)(const void *x, float *y, int64_t n);
    /* Quantizer; NULL when none. See rf_type_traits for how live and reference differ. */
    void (*from_float)(const float *x, void *y, int64_t n);
    /* Fast weight-row dot product, or NULL: then callers dequantize the row and use
     * an f32 dot. */
    enum rf_type vec_dot_type;
    rf_vec_dot_fn vec_dot;
    /* Optional (NULL: call vec_dot per activation row); same numbers as vec_dot. */
    rf_vec_dot_multi_fn vec_dot_multi;
    /* Optional (NULL: vec_dot_multi per weight row); same numbers as vec_dot. */
    rf_vec_dot_tile_fn vec_dot_tile;
};

/* The live row of a type (SIMD kernels where the CPU has them). to_float and
 * from_float give the same bits as the reference row, except the SIMD Q8_0/Q8_1
 * activation quantizers, which round as llama.cpp's AVX2 ones (codes of
 * x * (127/amax), half to even) so that products match llama.cpp; vec_dot may differ
 * from the reference in the last bits (f32 summation order: the SIMD dots follow
 * llama.cpp's). NULL for ids that are not types (gaps, out of range). Known types
 * whose data we cannot use still have a row (block size and bytes) with to_float
 * NULL. */
const struct rf_type_traits *rf_type_traits(uint32_t type);
/* The reference row of a type: portable C kernels that define the numerics (the
 * oracle for SIMD and device kernels); never swapped. NULL as rf_type_traits. */
const struct rf_type_traits *rf_type_traits_ref(uint32_t type);
const char *rf_type_name(uint32_t type); /* "type 99" style text for unknown ids (thread-local buffer) */
/* Bytes of n elements; n must be a multiple of the block size. 0 for an unknown
 * type, n < 0 or n not a multiple; SIZE_MAX when the size overflows size_t. */
size_t rf_row_size(enum rf_type type, int64_t n);

/* Picks SIMD kernels for this CPU; called once (thread-safe, idempotent). With the
 * environment variable RF_QUANT_REF=1 the live table keeps the reference kernels
 * (for debugging numerics). */
void rf_quant_init(void);
bool rf_cpu_has_avx2(void);

#endif

/* The type-traits table: one row per GGUF type id, reference kernels by default,
 * SIMD kernels swapped in once by rf_quant_init for the CPU it runs on. */
#include "quant/quant.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/fp16.h"
#include "quant/quant_avx2.h"
#include "quant/quant_impl.h"

#define SIZED(nm, bs, ts, q) [RF_TYPE_##nm] = {.name = #nm, .block_size = (bs), .type_size = (ts), \
                                             .is_quantized = (q), .vec_dot_type = RF_TYPE_F32}

/* A type we compute on: dequantizer, optional quantizer, optional dot with its
 * activation type. */
#define COMPUTED(nm, t, bs, ts, q, from, dot_type, dot)                                            \
    [RF_TYPE_##nm] = {.name = #nm,                                                                 \
                      .block_size = (bs),                                                          \
                      .type_size = (ts),                                                           \
                      .is_quantized = (q),                                                         \
                      .to_float = rf_to_float_##t##_ref,                                           \
                      .from_float = (from),                                                        \
                      .vec_dot_type = RF_TYPE_##dot_type,                                          \
                      .vec_dot = (dot)}

#define BLK(t) (sizeof(struct rf_block_##t))

static const struct rf_type_traits ref_traits[RF_TYPE_COUNT] = {
    COMPUTED(F32, f32, 1, 4, false, rf_from_float_f32_ref, F32, rf_vec_dot_f32_ref),
    COMPUTED(F16, f16, 1, 2, false, rf_from_float_f16_ref, F16, rf_vec_dot_f16_ref),
    COMPUTED(BF16, bf16, 1, 2, false, rf_from_float_bf16_ref, BF16, rf_vec_dot_bf16_ref),
    COMPUTED(Q4_0, q4_0, RF_QK4_0, BLK(q4_0), true, rf_from_float_q4_0_ref, Q8_0, rf_vec_dot_q4_0_ref),
    COMPUTED(Q4_1, q4_1, RF_QK4_1, BLK(q4_1), true, rf_from_float_q4_1_ref, Q8_1, rf_vec_dot_q4_1_ref),
    COMPUTED(Q5_0, q5_0, RF_QK5_0, BLK(q5_0), true, rf_from_float_q5_0_ref, Q8_0, rf_vec_dot_q5_0_ref),
    COMPUTED(Q5_1, q5_1, RF_QK5_1, BLK(q5_1), true, rf_from_float_q5_1_ref, Q8_1, rf_vec_dot_q5_1_ref),
    COMPUTED(Q8_0, q8_0, RF_QK8_0, BLK(q8_0), true, rf_from_float_q8_0_ref, Q8_0, rf_vec_dot_q8_0_ref),
    COMPUTED(Q8_1, q8_1, RF_QK8_1, BLK(q8_1), true, rf_from_float_q8_1_ref, F32, NULL),
    COMPUTED(Q2_K, q2_K, RF_QK_K, BLK(q2_K), true, NULL, Q8_K, rf_vec_dot_q2_K_ref),
    COMPUTED(Q3_K, q3_K, RF_QK_K, BLK(q3_K), true, NULL, Q8_K, rf_vec_dot_q3_K_ref),
    COMPUTED(Q4_K, q4_K, RF_QK_K, BLK(q4_K), true, NULL, Q8_K, rf_vec_dot_q4_K_ref),
    COMPUTED(Q5_K, q5_K, RF_QK_K, BLK(q5_K), true, NULL, Q8_K, rf_vec_dot_q5_K_ref),
    COMPUTED(Q6_K, q6_K, RF_QK_K, BLK(q6_K), true, NULL, Q8_K, rf_vec_dot_q6_K_ref),
    COMPUTED(Q8_K, q8_K, RF_QK_K, BLK(q8_K), true, rf_from_float_q8_K_ref, F32, NULL),
    COMPUTED(IQ4_NL, iq4_nl, RF_QK4_NL, BLK(iq4_nl), true, NULL, Q8_0, rf_vec_dot_iq4_nl_ref),
    COMPUTED(MXFP4, mxfp4, RF_QK_MXFP4, BLK(mxfp4), true, NULL, Q8_0, rf_vec_dot_mxfp4_ref),
    SIZED(IQ2_XXS, RF_QK_K, RF_IQ2_XXS_SIZE, true),
    SIZED(IQ2_XS, RF_QK_K, RF_IQ2_XS_SIZE, true),
    SIZED(IQ3_XXS, RF_QK_K, RF_IQ3_XXS_SIZE, true),
    SIZED(IQ1_S, RF_QK_K, RF_IQ1_S_SIZE, true),
    SIZED(IQ3_S, RF_QK_K, RF_IQ3_S_SIZE, true),
    SIZED(IQ2_S, RF_QK_K, RF_IQ2_S_SIZE, true),
    SIZED(IQ4_XS, RF_QK_K, RF_IQ4_XS_SIZE, true),
    SIZED(IQ1_M, RF_QK_K, RF_IQ1_M_SIZE, true),
    SIZED(TQ1_0, RF_QK_K, RF_TQ1_0_SIZE, true),
    SIZED(TQ2_0, RF_QK_K, RF_TQ2_0_SIZE, true),
    SIZED(NVFP4, 64, RF_NVFP4_SIZE, true),
    SIZED(Q1_0, 128, RF_Q1_0_SIZE, true),
    SIZED(I8, 1, 1, false),
    SIZED(I16, 1, 2, false),
    SIZED(I32, 1, 4, false),
    SIZED(I64, 1, 8, false),
    SIZED(F64, 1, 8, false),
};

/* The live table: ref_traits with this CPU's kernels; written once under `once`. */
static struct rf_type_traits traits[RF_TYPE_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

bool rf_cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    return (c & bit_F16C) != 0;
}

float rf_f16_table[1 << 16];

static void init_once(void)
{
    for (uint32_t h = 0; h < (1u << 16); h++) rf_f16_table[h] = rf_fp16_to_fp32((uint16_t)h);
    for (int t = 0; t < RF_TYPE_COUNT; t++) traits[t] = ref_traits[t];
    const char *off = getenv("RF_QUANT_REF");
    if (off && *off && *off != '0') return; /* debugging: reference kernels only */
    if (rf_cpu_has_avx2()) rf_quant_use_avx2(traits);
}

void rf_quant_init(void) { pthread_once(&once, init_once); }

const struct rf_type_traits *rf_type_traits(uint32_t type)
{
    if (type >= RF_TYPE_COUNT || !ref_traits[type].name) return NULL;
    rf_quant_init();
    return &traits[type];
}

const struct rf_type_traits *rf_type_traits_ref(uint32_t type)
{
    if (type >= RF_TYPE_COUNT || !ref_traits[type].name) return NULL;
    return &ref_traits[type];
}

const char *rf_type_name(uint32_t type)
{
    static _Thread_local char buf[24];
    const struct rf_type_traits *t = rf_type_traits_ref(type);
    if (t) return t->name;
    snprintf(buf, sizeof(buf), "type %u", type);
    return buf;
}

size_t rf_row_size(enum rf_type type, int64_t n)
{
    const struct rf_type_traits *t = rf_type_traits_ref((uint32_t)type);
    if (!t || n < 0 || n % t->block_size != 0) return 0;
    const uint64_t blocks = (uint64_t)(n / t->block_size);
    if (blocks > SIZE_MAX / t->type_size) return SIZE_MAX;
    return (size_t)blocks * t->type_size;
}

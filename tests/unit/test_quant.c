/* Tensor types: traits table, dequantize/quantize against gguf-py fixtures
 * (tools/make_quant_fixtures.py), dot products against the f32 dot of the
 * dequantized operands, and the SIMD kernels against the reference ones.
 *
 * Bit-exactness: every dequantizer and quantizer is compared byte for byte with
 * gguf-py (Q8_1 and Q8_K, which gguf-py lacks, with the numpy transcription of
 * ggml's reference algorithm in the fixture script). No type needs a tolerance.
 * Exceptions, by design: NaN inputs are outside the contract (F16 NaN payloads may
 * differ; the fixtures hold no NaN halves), and Q8_1's size is 36 bytes where
 * gguf-py 0.19's GGML_QUANT_SIZES still lists the old 40-byte f32 layout. The live
 * (SIMD) Q8_0/Q8_1 quantizers round activations as ggml's AVX2 ones do (codes of
 * x * (127/amax), half to even) so that products match llama.cpp bit for bit; they
 * are held byte for byte to act_q8_model below, the reference ones to gguf-py.
 * The SIMD dots (and activation quantizers) are also held bit for bit to results
 * of llama.cpp's own AVX2 kernels (tools/make_quant_ggml_fixtures.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"

/* ---- helpers ---- */

/* Whether the live table runs SIMD kernels (AVX2 present, RF_QUANT_REF unset). */
static bool simd_active(void)
{
    const char *ref_only = getenv("RF_QUANT_REF");
    return rf_cpu_has_avx2() && !(ref_only && *ref_only && *ref_only != '0');
}

/* The rounding of the live activation quantizers (SIMD only): per 32-block
 * d = amax/127, codes rint(x * (127/amax)) (half to even), Q8_1's s = d * sum. */
static void act_q8_model(enum rf_type type, const float *x, uint8_t *out, int64_t n)
{
    const bool q81 = type == RF_TYPE_Q8_1;
    const size_t bs = q81 ? sizeof(struct rf_block_q8_1) : sizeof(struct rf_block_q8_0);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        uint8_t *o = out + (size_t)b * bs;
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
        const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            const float v = rintf(xb[i] * id);
            const int q = isfinite(v) ? (int)v : 0; /* non-finite input: codes unspecified */
            o[(q81 ? 4 : 2) + i] = (uint8_t)(int8_t)q;
            sum += q;
        }
        const uint16_t dh = rf_fp32_to_fp16(d), sh = rf_fp32_to_fp16(d * (float)sum);
        memcpy(o, &dh, 2);
        if (q81) memcpy(o + 2, &sh, 2);
    }
}

static bool live_act_q8(enum rf_type type)
{
    return simd_active() && (type == RF_TYPE_Q8_0 || type == RF_TYPE_Q8_1);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(void) { return (float)rnd() / 4294967296.0f; } /* [0, 1) */
static float rnd_normal(void)
{
    const float u = rndf() + 1e-7f, v = rndf();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static void *read_file(const char *name, size_t *size)
{
    const char *dir = getenv("RF_FIXTURES");
    char path[1024];
    snprintf(path, sizeof(path), "%s/quant/%s", dir ? dir : "tests/fixtures", name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open fixture %s (set RF_FIXTURES)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Byte offsets of the f16 scales inside a block (-1 terminated). */
static const int *f16_fields(enum rf_type t)
{
    static const int d0[] = {0, -1}, d01[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1}, none[] = {-1};
    switch (t) {
    case RF_TYPE_Q4_0: case RF_TYPE_Q5_0: case RF_TYPE_Q8_0: case RF_TYPE_IQ4_NL: return d0;
    case RF_TYPE_Q4_1: case RF_TYPE_Q5_1: case RF_TYPE_Q8_1: case RF_TYPE_Q4_K: case RF_TYPE_Q5_K:
        return d01;
    case RF_TYPE_Q2_K: return q2k;
    case RF_TYPE_Q3_K: return q3k;
    case RF_TYPE_Q6_K: return q6k;
    default: return none;
    }
}

/* Random valid blocks: random bytes with finite, moderate scales (f16 scales
 * +-[1e-3, 10), MXFP4 exponents 110..140, F16/BF16/F32 values +-[1e-3, 10)). */
static void random_blocks(enum rf_type t, void *buf, int64_t n_elems)
{
    const struct rf_type_traits *tt = rf_type_traits(t);
    const int64_t nb = n_elems / tt->block_size;
    uint8_t *p = buf;
    for (size_t i = 0; i < (size_t)nb * tt->type_size; i++) p[i] = (uint8_t)rnd();
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = p + (size_t)b * tt->type_size;
        const float sign = (rnd() & 1) ? -1.0f : 1.0f;
        const float v = sign * powf(10.0f, -3.0f + 4.0f * rndf());
        for (const int *off = f16_fields(t); *off >= 0; off++) {
            const uint16_t h = rf_fp32_to_fp16(sign * powf(10.0f, -3.0f + 4.0f * rndf()));
            memcpy(blk + *off, &h, 2);
        }
        if (t == RF_TYPE_MXFP4) blk[0] = (uint8_t)(110 + rnd() % 31);
        if (t == RF_TYPE_F32) memcpy(blk, &v, 4);
        if (t == RF_TYPE_F16) {
            const uint16_t h = rf_fp32_to_fp16(v);
            memcpy(blk, &h, 2);
        }
        if (t == RF_TYPE_BF16) {
            const uint16_t h = rf_fp32_to_bf16(v);
            memcpy(blk, &h, 2);
        }
    }
}

static int first_bit_mismatch(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (rf_fp32_to_bits(a[i]) != rf_fp32_to_bits(b[i])) return (int)i;
    return -1;
}

/* ---- traits table ---- */

static void test_sizes_match_gguf_py(void **state)
{
    (void)state;
    size_t size;
    char *txt = read_file("sizes.txt", &size);
    char *copy = malloc(size + 1);
    memcpy(copy, txt, size);
    copy[size] = 0;
    int rows = 0, seen[RF_TYPE_COUNT] = {0};
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned id, bs, ts;
        char name[32];
        if (line[0] == '#') continue;
        assert_int_equal(sscanf(line, "%u %31s %u %u", &id, name, &bs, &ts), 4);
        if (id >= RF_TYPE_COUNT) continue; /* newer than this table: not required */
        const struct rf_type_traits *t = rf_type_traits(id);
        if (!t) fail_msg("gguf-py type %u %s missing from the table", id, name);
        assert_string_equal(t->name, name);
        assert_string_equal(rf_type_name(id), name);
        assert_int_equal(t->block_size, bs);
        /* Q8_1: gguf-py keeps the old two-f32 layout (40); ggml and we use two f16. */
        assert_int_equal(t->type_size, id == RF_TYPE_Q8_1 ? 36u : ts);
        seen[id] = 1;
        rows++;
    }
    for (unsigned id = 0; id < RF_TYPE_COUNT; id++)
        if (rf_type_traits(id)) assert_true(seen[id]); /* no row that gguf-py lacks */
    assert_true(rows >= 34);
    free(copy);
    free(txt);
}

static void test_names_and_unknown_ids(void **state)
{
    (void)state;
    assert_string_equal(rf_type_name(RF_TYPE_Q4_1), "Q4_1");
    assert_string_equal(rf_type_name(RF_TYPE_Q6_K), "Q6_K");
    assert_string_equal(rf_type_name(RF_TYPE_MXFP4), "MXFP4");
    assert_string_equal(rf_type_name(4), "type 4");
    assert_string_equal(rf_type_name(99), "type 99");
    assert_string_equal(rf_type_name(UINT32_MAX), "type 4294967295");
    const uint32_t gaps[] = {4, 5, 31, 32, 33, 36, 37, 38, RF_TYPE_COUNT, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
        assert_null(rf_type_traits(gaps[i]));
        assert_null(rf_type_traits_ref(gaps[i]));
    }
    /* Sized-only types: sizes yes, kernels no. */
    const struct rf_type_traits *t = rf_type_traits(RF_TYPE_IQ2_XXS);
    assert_non_null(t);
    assert_null(t->to_float);
    assert_null(t->vec_dot);
    assert_int_equal(rf_type_traits(RF_TYPE_F64)->type_size, 8);
    assert_int_equal(rf_type_traits(RF_TYPE_I16)->type_size, 2);
    /* Every type with a vec_dot has an activation type with a quantizer, and a
     * dequantizer (the fallback path). */
    for (uint32_t id = 0; id < RF_TYPE_COUNT; id++) {
        t = rf_type_traits(id);
        if (!t || !t->vec_dot) continue;
        assert_non_null(t->to_float);
        const struct rf_type_traits *a = rf_type_traits(t->vec_dot_type);
        assert_non_null(a);
        assert_non_null(a->from_float);
    }
}

static void test_row_size(void **state)
{
    (void)state;
    assert_int_equal(rf_row_size(RF_TYPE_F32, 3), 12);
    assert_int_equal(rf_row_size(RF_TYPE_Q4_0, 64), 36);
    assert_int_equal(rf_row_size(RF_TYPE_Q4_1, 576), 18 * 20);
    assert_int_equal(rf_row_size(RF_TYPE_Q6_K, 512), 420);
    assert_int_equal(rf_row_size(RF_TYPE_MXFP4, 32), 17);
    assert_int_equal(rf_row_size(RF_TYPE_Q8_0, 0), 0);
    assert_int_equal(rf_row_size(RF_TYPE_Q4_0, 33), 0);   /* not a multiple */
    assert_int_equal(rf_row_size(RF_TYPE_Q4_0, -32), 0);  /* negative */
    assert_int_equal(rf_row_size((enum rf_type)4, 32), 0); /* not a type */
    assert_int_equal(rf_row_size((enum rf_type)RF_TYPE_COUNT, 32), 0);
    assert_int_equal(rf_row_size(RF_TYPE_F64, INT64_MAX / 2), SIZE_MAX); /* overflow */
}

/* ---- dequantize: bit-exact with gguf-py ---- */

static void check_dequant(enum rf_type type)
{
    char name[64];
    size_t size;
    snprintf(name, sizeof(name), "deq_%s.bin", rf_type_name(type));
    uint8_t *buf = read_file(name, &size);
    assert_memory_equal(buf, "RFDQ", 4);
    const uint32_t id = rd32(buf + 4), nb = rd32(buf + 8), bs = rd32(buf + 12), ts = rd32(buf + 16);
    assert_int_equal(id, type);
    const struct rf_type_traits *t = rf_type_traits(type), *r = rf_type_traits_ref(type);
    assert_int_equal(bs, t->block_size);
    assert_int_equal(ts, t->type_size);
    assert_int_equal(size, 20 + (size_t)nb * ts + (size_t)nb * bs * 4);
    const int64_t n = (int64_t)nb * bs;
    float *want = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    memcpy(want, buf + 20 + (size_t)nb * ts, (size_t)n * 4);
    /* whole tensor, then row by row of one block (the kernels' tails) */
    const struct rf_type_traits *impl[2] = {r, t};
    for (int k = 0; k < 2; k++) {
        memset(got, 0xAB, (size_t)n * 4);
        impl[k]->to_float(buf + 20, got, n);
        const int bad = first_bit_mismatch(got, want, n);
        if (bad >= 0)
            fail_msg("%s %s: element %d = %.9g (0x%08x), gguf-py %.9g (0x%08x)", rf_type_name(type),
                     k ? "live" : "ref", bad, got[bad], rf_fp32_to_bits(got[bad]), want[bad],
                     rf_fp32_to_bits(want[bad]));
    }
    for (uint32_t b = 0; b < nb && b < 8; b++) {
        t->to_float(buf + 20 + (size_t)b * ts, got, bs);
        assert_int_equal(first_bit_mismatch(got, want + (size_t)b * bs, bs), -1);
    }
    free(got);
    free(want);
    free(buf);
}

#define DEQ_TEST(T) \
    static void test_dequant_##T(void **state) { (void)state; check_dequant(RF_TYPE_##T); }
DEQ_TEST(F32)
DEQ_TEST(F16)
DEQ_TEST(BF16)
DEQ_TEST(Q4_0)
DEQ_TEST(Q4_1)
DEQ_TEST(Q5_0)
DEQ_TEST(Q5_1)
DEQ_TEST(Q8_0)
DEQ_TEST(Q8_1)
DEQ_TEST(Q2_K)
DEQ_TEST(Q3_K)
DEQ_TEST(Q4_K)
DEQ_TEST(Q5_K)
DEQ_TEST(Q6_K)
DEQ_TEST(Q8_K)
DEQ_TEST(IQ4_NL)
DEQ_TEST(MXFP4)

/* ---- quantize: bytes identical to gguf-py ---- */

static void check_quant(enum rf_type type)
{
    char name[64];
    size_t size;
    snprintf(name, sizeof(name), "q_%s.bin", rf_type_name(type));
    uint8_t *buf = read_file(name, &size);
    assert_memory_equal(buf, "RFQZ", 4);
    assert_int_equal(rd32(buf + 4), type);
    const uint32_t n = rd32(buf + 8), nbytes = rd32(buf + 12);
    assert_int_equal(size, 16 + (size_t)n * 4 + nbytes);
    assert_int_equal(rf_row_size(type, n), nbytes);
    float *x = malloc((size_t)n * 4);
    memcpy(x, buf + 16, (size_t)n * 4);
    const uint8_t *want = buf + 16 + (size_t)n * 4;
    uint8_t *got = malloc(nbytes);
    const struct rf_type_traits *impl[2] = {rf_type_traits_ref(type), rf_type_traits(type)};
    uint8_t *model = malloc(nbytes);
    for (int k = 0; k < 2; k++) {
        memset(got, 0xAB, nbytes);
        impl[k]->from_float(x, got, n);
        if (k == 1 && live_act_q8(type)) {
            act_q8_model(type, x, model, n);
            want = model;
        }
        for (uint32_t i = 0; i < nbytes; i++)
            if (got[i] != want[i])
                fail_msg("%s %s: byte %u (block %u) = 0x%02x, gguf-py 0x%02x", rf_type_name(type),
                         k ? "live" : "ref", i, i / (uint32_t)impl[k]->type_size, got[i], want[i]);
    }
    free(model);
    free(got);
    free(x);
    free(buf);
}

#define Q_TEST(T) \
    static void test_quant_##T(void **state) { (void)state; check_quant(RF_TYPE_##T); }
Q_TEST(F16)
Q_TEST(BF16)
Q_TEST(Q4_0)
Q_TEST(Q4_1)
Q_TEST(Q5_0)
Q_TEST(Q5_1)
Q_TEST(Q8_0)
Q_TEST(Q8_1)
Q_TEST(Q8_K)

/* ---- dot products ---- */

/* Reference value of dot(w, a) in double from the dequantized operands, plus for
 * Q8_1 activations the rounding of the stored f16 block sum s, which the
 * Q4_1/Q5_1 dots use for the min term as the reference engine does:
 * sum_b m_b * (s_b - d_b * sum(qs_b)). *mag gets sum |w_i a_i|. */
static double expected_dot(enum rf_type wt, const void *w, const void *a, int64_t n, double *mag)
{
    const struct rf_type_traits *t = rf_type_traits_ref(wt);
    const struct rf_type_traits *at = rf_type_traits_ref(t->vec_dot_type);
    float *wf = malloc((size_t)n * 4), *af = malloc((size_t)n * 4);
    t->to_float(w, wf, n);
    at->to_float(a, af, n);
    double sum = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)wf[i] * af[i];
        m += fabs((double)wf[i] * af[i]);
    }
    if (t->vec_dot_type == RF_TYPE_Q8_1) {
        const struct rf_block_q8_1 *y = a;
        for (int64_t b = 0; b < n / 32; b++) {
            const uint16_t mh = ((const uint16_t *)((const uint8_t *)w + b * t->type_size))[1];
            int qsum = 0;
            for (int j = 0; j < 32; j++) qsum += y[b].qs[j];
            const double corr = (double)rf_fp16_to_fp32(mh) *
                                ((double)rf_fp16_to_fp32(y[b].s) - (double)rf_fp16_to_fp32(y[b].d) * qsum);
            sum += corr;
            m += fabs((double)rf_fp16_to_fp32(mh) * rf_fp16_to_fp32(y[b].s));
        }
    }
    free(wf);
    free(af);
    *mag = m;
    return sum;
}

/* f32 accumulation over n terms in blocks: a bound of a few ulps per block
 * (or per 8-lane step for the float types) of the magnitude sum. */
static double dot_tol(const struct rf_type_traits *t, int64_t n, double mag)
{
    const double steps = t->block_size > 1 ? (double)(n / t->block_size) : (double)n / 8.0;
    return 4.0 * FLT_EPSILON * (steps + 8.0) * mag + 1e-30;
}

static void check_dot_type(enum rf_type wt, const int64_t *lens, int n_lens, int reps)
{
    const struct rf_type_traits *live = rf_type_traits(wt), *ref = rf_type_traits_ref(wt);
    const struct rf_type_traits *act = rf_type_traits_ref(ref->vec_dot_type);
    for (int li = 0; li < n_lens; li++) {
        const int64_t n = lens[li];
        void *w = malloc(rf_row_size(wt, n)), *a = malloc(rf_row_size(ref->vec_dot_type, n));
        float *x = malloc((size_t)n * 4);
        for (int rep = 0; rep < reps; rep++) {
            random_blocks(wt, w, n);
            const float scale = powf(10.0f, -2.0f + 3.0f * rndf());
            for (int64_t i = 0; i < n; i++) x[i] = scale * rnd_normal();
            act->from_float(x, a, n);
            double mag;
            const double want = expected_dot(wt, w, a, n, &mag);
            const double tol = dot_tol(ref, n, mag);
            float s_ref = NAN, s_live = NAN;
            ref->vec_dot(n, &s_ref, w, a);
            live->vec_dot(n, &s_live, w, a);
            if (!(fabs(s_ref - want) <= tol) || !(fabs(s_live - want) <= tol) ||
                !(fabs((double)s_live - s_ref) <= tol))
                fail_msg("%s n=%lld: ref %.9g live %.9g want %.9g (tol %.3g, |.|sum %.3g)",
                         rf_type_name(wt), (long long)n, s_ref, s_live, want, tol, mag);
        }
        free(x);
        free(a);
        free(w);
    }
}

static void test_vec_dot_legacy(void **state)
{
    (void)state;
    const int64_t lens[] = {32, 64, 96, 160, 256, 544, 576, 1536};
    const enum rf_type types[] = {RF_TYPE_Q4_0, RF_TYPE_Q4_1, RF_TYPE_Q5_0, RF_TYPE_Q5_1,
                                  RF_TYPE_Q8_0, RF_TYPE_IQ4_NL, RF_TYPE_MXFP4};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) check_dot_type(types[i], lens, 8, 6);
}

static void test_vec_dot_kquants(void **state)
{
    (void)state;
    const int64_t lens[] = {256, 512, 768, 1280, 2048};
    for (int t = RF_TYPE_Q2_K; t <= RF_TYPE_Q6_K; t++) check_dot_type((enum rf_type)t, lens, 5, 6);
}

static void test_vec_dot_float(void **state)
{
    (void)state;
    const int64_t lens[] = {1, 7, 8, 15, 16, 33, 64, 100, 576, 1537};
    check_dot_type(RF_TYPE_F32, lens, 10, 4);
    check_dot_type(RF_TYPE_F16, lens, 10, 4);
    check_dot_type(RF_TYPE_BF16, lens, 10, 4);
}

/* vec_dot_multi: each result bit-identical to vec_dot on that activation row, for
 * group sizes 1..MULTI_NT (the kernels work in groups of 8 and of up to 4) and padded
 * strides. */
#define MULTI_NT 19
static void test_vec_dot_multi(void **state)
{
    (void)state;
    int checked = 0;
    for (uint32_t id = 0; id < RF_TYPE_COUNT; id++) {
        const struct rf_type_traits *t = rf_type_traits(id);
        if (!t || !t->vec_dot_multi) continue;
        const struct rf_type_traits *act = rf_type_traits(t->vec_dot_type);
        const int64_t lens[] = {t->block_size, 3 * t->block_size, 5 * t->block_size, 576 / t->block_size * t->block_size};
        for (int li = 0; li < 4; li++) {
            const int64_t n = lens[li];
            const size_t ys = rf_row_size(t->vec_dot_type, n) + 8; /* padded rows */
            void *w = malloc(2 * rf_row_size(id, n)); /* two rows for vec_dot_tile */
            uint8_t *a = malloc(ys * MULTI_NT);
            float *x = malloc((size_t)n * 4), got[MULTI_NT * 3], want;
            random_blocks(id, w, 2 * n);
            for (int r = 0; r < MULTI_NT; r++) {
                for (int64_t i = 0; i < n; i++) x[i] = rnd_normal();
                act->from_float(x, a + (size_t)r * ys, n);
            }
            for (int nt = 1; nt <= MULTI_NT; nt++) {
                memset(got, 0, sizeof(got));
                if (t->vec_dot_tile) { /* also two weight rows: row 1 in lanes 1 */
                    const size_t rs = rf_row_size(id, n);
                    float two[MULTI_NT * 3], want1;
                    t->vec_dot_tile(n, got, 3, w, rs, 1, a, ys, nt);
                    t->vec_dot_tile(n, two, 3, w, rs, 2, a, ys, nt);
                    for (int r = 0; r < nt; r++) {
                        t->vec_dot(n, &want1, (const char *)w + rs, a + (size_t)r * ys);
                        assert_true(rf_fp32_to_bits(two[3 * r]) == rf_fp32_to_bits(got[3 * r]));
                        assert_true(rf_fp32_to_bits(two[3 * r + 1]) == rf_fp32_to_bits(want1));
                    }
                } else {
                    t->vec_dot_multi(n, got, 3, w, a, ys, nt);
                }
                for (int r = 0; r < nt; r++) {
                    t->vec_dot(n, &want, w, a + (size_t)r * ys);
                    if (rf_fp32_to_bits(got[3 * r]) != rf_fp32_to_bits(want))
                        fail_msg("%s n=%lld nt=%d row %d: multi %.9g vec_dot %.9g", t->name, (long long)n, nt, r,
                                 got[3 * r], want);
                    assert_true(got[3 * r + 1] == 0.0f && got[3 * r + 2] == 0.0f); /* stride respected */
                }
                checked++;
            }
            free(x);
            free(a);
            free(w);
        }
    }
    if (simd_active()) assert_true(checked > 0);
}

/* The SIMD kernels against llama.cpp's (tools/make_quant_ggml_fixtures.py): the
 * activation bytes of from_float and every vec_dot result, bit for bit. The
 * reference kernels round differently (gguf-py's order), so this holds only the
 * live SIMD table. */
static void check_ggml_dot(enum rf_type type)
{
    if (!simd_active()) {
        print_message("reference kernels only: skipping the llama.cpp bit-identity check\n");
        return;
    }
    char name[64];
    size_t size;
    snprintf(name, sizeof(name), "ggml_dot_%s.bin", rf_type_name(type));
    uint8_t *buf = read_file(name, &size);
    assert_memory_equal(buf, "RFGD", 4);
    const struct rf_type_traits *t = rf_type_traits(type);
    assert_int_equal(rd32(buf + 4), type);
    assert_int_equal(rd32(buf + 8), t->vec_dot_type);
    const uint32_t n = rd32(buf + 12), rows = rd32(buf + 16);
    const size_t rs = rf_row_size(type, n), as = rf_row_size(t->vec_dot_type, n);
    assert_int_equal(size, 20 + rs * rows + (size_t)n * 4 + as + (size_t)rows * 4);
    const uint8_t *w = buf + 20, *xf = w + rs * rows, *xq = xf + (size_t)n * 4, *res = xq + as;
    float *x = malloc((size_t)n * 4);
    uint8_t *q = malloc(as);
    memcpy(x, xf, (size_t)n * 4);
    rf_type_traits(t->vec_dot_type)->from_float(x, q, n);
    for (size_t i = 0; i < as; i++)
        if (q[i] != xq[i]) fail_msg("%s from_float byte %zu: 0x%02x, llama.cpp 0x%02x", rf_type_name(t->vec_dot_type), i, q[i], xq[i]);
    for (uint32_t r = 0; r < rows; r++) {
        float got, want;
        memcpy(&want, res + 4 * r, 4);
        t->vec_dot(n, &got, w + r * rs, xq);
        if (rf_fp32_to_bits(got) != rf_fp32_to_bits(want))
            fail_msg("%s row %u: vec_dot %.9g (0x%08x), llama.cpp %.9g (0x%08x)", t->name, r, got, rf_fp32_to_bits(got),
                     want, rf_fp32_to_bits(want));
    }
    free(q);
    free(x);
    free(buf);
}

static void test_ggml_dots(void **state)
{
    (void)state;
    const enum rf_type types[] = {RF_TYPE_F32,  RF_TYPE_F16,  RF_TYPE_BF16, RF_TYPE_Q4_0, RF_TYPE_Q4_1,
                                  RF_TYPE_Q5_0, RF_TYPE_Q5_1, RF_TYPE_Q8_0, RF_TYPE_Q4_K, RF_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) check_ggml_dot(types[i]);
}

/* Known small case by hand: Q8_0 blocks with d = 1 and codes 1..32 against codes
 * all 2 with d = 0.5: dot = sum(1..32) * 1 = 528. */
static void test_vec_dot_known_value(void **state)
{
    (void)state;
    struct rf_block_q8_0 w, a;
    w.d = rf_fp32_to_fp16(1.0f);
    a.d = rf_fp32_to_fp16(0.5f);
    for (int j = 0; j < 32; j++) {
        w.qs[j] = (int8_t)(j + 1);
        a.qs[j] = 2;
    }
    float s = 0;
    rf_type_traits(RF_TYPE_Q8_0)->vec_dot(32, &s, &w, &a);
    assert_float_equal(s, 528.0f, 0.0f);
    rf_type_traits_ref(RF_TYPE_Q8_0)->vec_dot(32, &s, &w, &a);
    assert_float_equal(s, 528.0f, 0.0f);
}

/* ---- SIMD against reference on random data ---- */

static void test_live_dequant_matches_ref(void **state)
{
    (void)state;
    for (uint32_t id = 0; id < RF_TYPE_COUNT; id++) {
        const struct rf_type_traits *t = rf_type_traits(id), *r = rf_type_traits_ref(id);
        if (!t || !t->to_float) continue;
        const int64_t n = t->block_size * 37;
        void *blk = malloc(rf_row_size(id, n));
        float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
        random_blocks(id, blk, n);
        r->to_float(blk, a, n);
        t->to_float(blk, b, n);
        if (first_bit_mismatch(a, b, n) >= 0) fail_msg("%s: live dequant differs", t->name);
        free(b);
        free(a);
        free(blk);
    }
}

static void test_live_quant_matches_ref(void **state)
{
    (void)state;
    for (uint32_t id = 0; id < RF_TYPE_COUNT; id++) {
        const struct rf_type_traits *t = rf_type_traits(id), *r = rf_type_traits_ref(id);
        if (!t || !t->from_float) continue;
        const int64_t n = RF_QK_K * 9; /* multiple of every block size */
        float *x = malloc((size_t)n * 4);
        uint8_t *a = malloc(rf_row_size(id, n)), *b = malloc(rf_row_size(id, n));
        for (int rep = 0; rep < 20; rep++) {
            const float scale = powf(10.0f, -4.0f + 7.0f * rndf());
            for (int64_t i = 0; i < n; i++) x[i] = scale * rnd_normal();
            if (rep == 1) /* exact .5 ties after scaling by 127/amax */
                for (int64_t i = 0; i < n; i++) x[i] = (i % 32 == 0) ? 127.0f : (float)(rnd() % 255) * 0.5f - 63.5f;
            if (rep == 2) memset(x, 0, (size_t)n * 4);
            if (rep == 3) /* just below the .5 ties: adding 0.5 before truncating would round up */
                for (int64_t i = 0; i < n; i++)
                    x[i] = (i % 32 == 0) ? 127.0f
                                         : (i & 1 ? -1.0f : 1.0f) * nextafterf((float)(rnd() % 127) + 0.5f, 0.0f);
            /* rep 4: NaN and inf in the first 256 elements: their blocks' codes are
             * unspecified (but nothing may trap); every other block must still match */
            const size_t skip = rep == 4 ? rf_row_size(id, RF_QK_K) : 0;
            if (rep == 4) {
                x[3] = NAN;
                x[40] = INFINITY;
                x[77] = -INFINITY;
                x[200] = -NAN;
            }
            if (live_act_q8(id)) act_q8_model(id, x, a, n);
            else r->from_float(x, a, n);
            t->from_float(x, b, n);
            for (size_t i = skip; i < rf_row_size(id, n); i++)
                if (a[i] != b[i]) fail_msg("%s rep %d: byte %zu live 0x%02x ref 0x%02x", t->name, rep, i, b[i], a[i]);
        }
        free(b);
        free(a);
        free(x);
    }
}

/* amax 127 makes the scale 1: .5 ties go to even in the live quantizers (as
 * ggml's AVX2 ones), away from zero in the reference (as ggml's and gguf-py's). */
static void test_act_q8_ties(void **state)
{
    (void)state;
    float x[32] = {127.0f, 2.5f, -3.5f, 0.5f, 1.5f, -0.5f};
    const int8_t even[6] = {127, 2, -4, 0, 2, 0}, away[6] = {127, 3, -4, 1, 2, -1};
    const enum rf_type types[2] = {RF_TYPE_Q8_0, RF_TYPE_Q8_1};
    for (int k = 0; k < 2; k++) {
        const size_t off = types[k] == RF_TYPE_Q8_1 ? 4 : 2;
        uint8_t blk[40];
        rf_type_traits_ref(types[k])->from_float(x, blk, 32);
        assert_memory_equal(blk + off, away, 6);
        if (!simd_active()) continue;
        rf_type_traits(types[k])->from_float(x, blk, 32);
        assert_memory_equal(blk + off, even, 6);
    }
}

static void test_init_idempotent(void **state)
{
    (void)state;
    const struct rf_type_traits *before = rf_type_traits(RF_TYPE_Q4_1);
    const rf_vec_dot_fn fn = before->vec_dot;
    rf_quant_init();
    rf_quant_init();
    assert_ptr_equal(rf_type_traits(RF_TYPE_Q4_1), before);
    assert_ptr_equal(rf_type_traits(RF_TYPE_Q4_1)->vec_dot, fn);
    if (!simd_active()) {
        print_message("reference kernels only (no AVX2 or RF_QUANT_REF): SIMD comparisons are trivial\n");
        return;
    }
    /* the live table really runs other kernels than the reference one */
    assert_ptr_not_equal(rf_type_traits(RF_TYPE_Q4_1)->vec_dot, rf_type_traits_ref(RF_TYPE_Q4_1)->vec_dot);
    assert_ptr_not_equal(rf_type_traits(RF_TYPE_Q8_0)->from_float, rf_type_traits_ref(RF_TYPE_Q8_0)->from_float);
}

int main(void)
{
    rf_quant_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_match_gguf_py),
        cmocka_unit_test(test_names_and_unknown_ids),
        cmocka_unit_test(test_row_size),
        cmocka_unit_test(test_init_idempotent),
        cmocka_unit_test(test_act_q8_ties),
        cmocka_unit_test(test_dequant_F32),
        cmocka_unit_test(test_dequant_F16),
        cmocka_unit_test(test_dequant_BF16),
        cmocka_unit_test(test_dequant_Q4_0),
        cmocka_unit_test(test_dequant_Q4_1),
        cmocka_unit_test(test_dequant_Q5_0),
        cmocka_unit_test(test_dequant_Q5_1),
        cmocka_unit_test(test_dequant_Q8_0),
        cmocka_unit_test(test_dequant_Q8_1),
        cmocka_unit_test(test_dequant_Q2_K),
        cmocka_unit_test(test_dequant_Q3_K),
        cmocka_unit_test(test_dequant_Q4_K),
        cmocka_unit_test(test_dequant_Q5_K),
        cmocka_unit_test(test_dequant_Q6_K),
        cmocka_unit_test(test_dequant_Q8_K),
        cmocka_unit_test(test_dequant_IQ4_NL),
        cmocka_unit_test(test_dequant_MXFP4),
        cmocka_unit_test(test_quant_F16),
        cmocka_unit_test(test_quant_BF16),
        cmocka_unit_test(test_quant_Q4_0),
        cmocka_unit_test(test_quant_Q4_1),
        cmocka_unit_test(test_quant_Q5_0),
        cmocka_unit_test(test_quant_Q5_1),
        cmocka_unit_test(test_quant_Q8_0),
        cmocka_unit_test(test_quant_Q8_1),
        cmocka_unit_test(test_quant_Q8_K),
        cmocka_unit_test(test_vec_dot_known_value),
        cmocka_unit_test(test_vec_dot_legacy),
        cmocka_unit_test(test_vec_dot_kquants),
        cmocka_unit_test(test_vec_dot_float),
        cmocka_unit_test(test_vec_dot_multi),
        cmocka_unit_test(test_ggml_dots),
        cmocka_unit_test(test_live_dequant_matches_ref),
        cmocka_unit_test(test_live_quant_matches_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

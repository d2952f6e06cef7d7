/* Gemma 3 pieces: the hyper-parameters and layer table read from the real file, the
 * table GELU against values llama.cpp computed, and the Q4_K / Q6_K products in the
 * orders of llama.cpp's repacked kernels (restated here in scalar C) with the CPU
 * matmul's choice of order per weight shape and token. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/fp16.h"
#include "model/model.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/quant_avx2.h"

/* ---- hyper-parameters of the real model ---- */

static void test_hparams(void **state)
{
    (void)state;
    const char *dir = getenv("RF_MODELS");
    if (!dir) skip();
    char path[1024];
    snprintf(path, sizeof path, "%s/gemma-3-270m-q4_k_m.gguf", dir);
    struct rf_model *m = NULL;
    struct rf_model_params mp = rf_model_default_params();
    mp.n_threads = 1;
    mp.n_gpu_layers = 0;
    if (rf_model_load(path, &mp, &m) != RF_OK) fail_msg("load: %s", rf_last_error());
    const struct rf_hparams *hp = &m->hp;
    assert_int_equal(hp->arch, RF_ARCH_GEMMA3);
    assert_string_equal(rf_arch_name(hp->arch), "gemma3");
    assert_int_equal(hp->n_layer, 18);
    assert_int_equal(hp->n_embd, 640);
    assert_int_equal(hp->n_head, 4);
    assert_int_equal(hp->n_head_kv, 1);
    assert_int_equal(hp->head_dim, 256);
    assert_int_equal(hp->n_vocab, 262144);
    assert_true(hp->rope_neox && hp->qk_norm && hp->tied_output);
    assert_true(hp->embd_scale && hp->post_norms && hp->geglu && hp->q_prescale);
    assert_true(hp->attn_scale == 0.0625f); /* 1/sqrt(256) */
    assert_true(hp->attn_softcap == 0.0f && hp->final_softcap == 0.0f);
    assert_true(hp->norm_eps == 1e-6f);
    assert_int_equal(hp->n_swa, 512);
    for (int il = 0; il < hp->n_layer; il++) {
        const struct rf_layer *l = &m->layers[il];
        const bool global = il % 6 == 5; /* layers 5, 11, 17 */
        assert_int_equal(l->window, global ? 0 : 512);
        assert_true(l->rope_base == (global ? 1000000.0f : 10000.0f));
        assert_non_null(l->attn_post_norm.data);
        assert_non_null(l->ffn_post_norm.data);
        assert_int_equal(l->attn_post_norm.ne[0], 640);
        assert_int_equal(l->ffn_post_norm.ne[0], 640);
    }
    rf_model_free(m);
}

/* ---- GELU ---- */

/* (gate, up, llama.cpp's ffn_geglu) from its layer-0 trace of the real model. */
static const float gelu_cases[][3] = {
    {-10.436119079589844, -0.2302303910255432, 0.0},
    {-8.87065315246582, -1.6217756271362305, 0.0},
    {-8.825794219970703, -1.4845805168151855, 0.0},
    {-4.163614273071289, -5.007796287536621, 0.00015730313316453248},
    {-2.743361473083496, -0.9477731585502625, 0.007440632674843073},
    {-1.4428552389144897, -0.020672917366027832, 0.0022295559756457806},
    {-0.6919529438018799, -0.04976785182952881, 0.008420195430517197},
    {-0.48752933740615845, -0.4545353353023529, 0.06935659050941467},
    {-0.08320879936218262, -0.20363561809062958, 0.007911015301942825},
    {-1.590338110923767, 1.0939373970031738, -0.09734867513179779},
    {-1.913144826889038, 0.5437771677970886, -0.02897445484995842},
    {-2.6442651748657227, -1.4641904830932617, 0.015147722326219082},
    {-2.4026999473571777, 1.4656050205230713, -0.02808837778866291},
    {1.150953769683838, 0.6372058987617493, 0.6421840786933899},
    {-2.5926764011383057, 0.9973937273025513, -0.011878445744514465},
    {-0.7136977910995483, 1.501590609550476, -0.25478649139404297},
    {-0.8076311349868774, -0.0490075945854187, 0.008303533308207989},
    {1.4910417795181274, -0.9213950634002686, -1.2804151773452759},
    {-0.013305306434631348, 1.0929625034332275, -0.0071920789778232574},
    {-0.8754160404205322, 0.7770642042160034, -0.1297636479139328},
    {-1.290108561515808, -1.3733997344970703, 0.17486034333705902},
    {-1.4651873111724854, -1.3058652877807617, 0.13701064884662628},
    {-1.4848259687423706, -0.5243563055992126, 0.05370299518108368},
    {5.465120315551758, 0.7435215711593628, 4.063229084014893},
    {6.2383623123168945, -2.2762136459350586, -14.199661254882812},
    {8.19239330291748, 17.259075164794922, 141.44351196289062},
};
#define N_GELU (sizeof gelu_cases / sizeof gelu_cases[0])

static const struct rf_cpu_kernels *kernel_sets(int i)
{
    if (i == 0) return &rf_cpu_kernels_scalar;
    return rf_cpu_has_avx2() ? &rf_cpu_kernels_avx2 : NULL;
}

static void test_gelu_matches_llamacpp(void **state)
{
    (void)state;
    /* the cases repeated past 8 so that the AVX2 loop and its tail both see them */
    enum {
        N = 3 * N_GELU
    };
    float g[N], u[N], y[N];
    for (int i = 0; i < N; i++) {
        g[i] = gelu_cases[i % N_GELU][0];
        u[i] = gelu_cases[i % N_GELU][1];
    }
    for (int s = 0; s < 2; s++) {
        const struct rf_cpu_kernels *k = kernel_sets(s);
        if (!k) continue;
        k->geglu(g, u, y, N);
        for (int i = 0; i < N; i++)
            if (rf_fp32_to_bits(y[i]) != rf_fp32_to_bits(gelu_cases[i % N_GELU][2]))
                fail_msg("%s geglu(%a, %a) = %a, llama.cpp %a", k->name, g[i], u[i], y[i],
                         gelu_cases[i % N_GELU][2]);
    }
}

static double gelu_exact(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * x * (1.0 + 0.044715 * x * x)));
}

/* Every half in (-10, 10): the table is GELU of that half to within one f16 rounding
 * and the f32 cancellation in 1 + tanh (~1e-7 absolute, where GELU is tiny); both kernel sets read
 * the same table; the ends are clamped as ggml does (+0 below -10, even for a negative up; g * up
 * from 10). */
static void test_gelu_table_and_ends(void **state)
{
    (void)state;
    const uint16_t *tab = rf_cpu_gelu_table();
    for (uint32_t h = 0; h < (1u << 16); h++) {
        const float x = rf_fp16_to_fp32((uint16_t)h);
        if (!(x > -10.0f && x < 10.0f)) continue;
        const double want = gelu_exact(x), got = rf_fp16_to_fp32(tab[h]);
        const double tol = fabs(want) * 1.5e-3 + 1e-6; /* f16: 2^-11 relative */
        if (fabs(got - want) > tol) fail_msg("gelu table at %a: %a, want %a", x, got, want);
    }
    const float g[9] = {-10.0f, -10.5f, -1e30f, 10.0f, 12.0f, 1e30f, NAN, 0.0f, -0.0f};
    const float u[9] = {-2.0f, -1.0f, 3.0f, -0.5f, 2.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    for (int s = 0; s < 2; s++) {
        const struct rf_cpu_kernels *k = kernel_sets(s);
        if (!k) continue;
        float y[9];
        k->geglu(g, u, y, 9);
        for (int i = 0; i < 3; i++) assert_true(rf_fp32_to_bits(y[i]) == 0); /* +0 */
        assert_true(y[3] == -5.0f && y[4] == 24.0f && y[5] == 1e30f);
        assert_true(isnan(y[6]));
        assert_true(y[7] == 0.0f && y[8] == 0.0f);
    }
}

/* ---- the repacked orders ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rnd_normal(void)
{
    float s = 0;
    for (int i = 0; i < 12; i++) s += (float)(rnd() & 0xffff) / 65536.0f;
    return s - 6.0f;
}

/* Random valid blocks with scales d ~ 2^-10..2^-8 (f16), the rest random bits. */
static void rand_blocks(void *dst, size_t bytes, size_t block, size_t d_off, size_t dmin_off)
{
    uint8_t *p = dst;
    for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)rnd();
    for (size_t b = 0; b < bytes / block; b++) {
        const uint16_t d = rf_fp32_to_fp16((float)(1 + rnd() % 4) / 1024.0f);
        memcpy(p + b * block + d_off, &d, 2);
        if (dmin_off != (size_t)-1) {
            const uint16_t dm = rf_fp32_to_fp16((float)(1 + rnd() % 4) / 2048.0f);
            memcpy(p + b * block + dmin_off, &dm, 2);
        }
    }
}

static void q4k_unpack(const struct rf_block_q4_K *x, int sc[8], int mn[8], int q[256])
{
    const uint8_t *s = x->scales;
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0xF) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            q[64 * g + l] = x->qs[32 * g + l] & 0xF;
            q[64 * g + 32 + l] = x->qs[32 * g + l] >> 4;
        }
}

/* The documented orders (quant_kquants_avx2.c), written out: pairs = 4 (gemm) or 1. */
static float q4k_order(const struct rf_block_q4_K *x, const struct rf_block_q8_K *y, int nb,
                       int pairs)
{
    float acc = 0, accm = 0;
    for (int i = 0; i < nb; i++) {
        int sc[8], mn[8], q[256];
        q4k_unpack(&x[i], sc, mn, q);
        int dot[4] = {0}, mins[4] = {0};
        for (int j = 0; j < 8; j++) {
            int s = 0;
            for (int l = 0; l < 32; l++) s += q[32 * j + l] * y[i].qs[32 * j + l];
            dot[j / 2] += sc[j] * s;
            mins[j / 2] += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        const float dd = rf_fp16_to_fp32(x[i].d) * y[i].d, dm = rf_fp16_to_fp32(x[i].dmin) * y[i].d;
        if (pairs == 4) {
            for (int p = 0; p < 4; p++) {
                acc = fmaf((float)dot[p], dd, acc);
                accm = fmaf((float)mins[p], dm, accm);
            }
        } else {
            acc = fmaf((float)(dot[0] + dot[1] + dot[2] + dot[3]), dd, acc);
            accm = fmaf((float)(mins[0] + mins[1] + mins[2] + mins[3]), dm, accm);
        }
    }
    return acc - accm;
}

static float q6k_order(const struct rf_block_q6_K *x, const struct rf_block_q8_K *y, int nb)
{
    float acc = 0;
    for (int i = 0; i < nb; i++) {
        int q[256];
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *ql = x[i].ql + 64 * h, hb = x[i].qh[32 * h + l];
                q[128 * h + l] = ((ql[l] & 0xF) | ((hb & 3) << 4)) - 32;
                q[128 * h + l + 32] = ((ql[l + 32] & 0xF) | (((hb >> 2) & 3) << 4)) - 32;
                q[128 * h + l + 64] = ((ql[l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
                q[128 * h + l + 96] = ((ql[l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
            }
        int isum = 0;
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q[16 * k + l] * y[i].qs[16 * k + l];
            isum += x[i].scales[k] * s;
        }
        acc = fmaf((float)isum * rf_fp16_to_fp32(x[i].d), y[i].d, acc);
    }
    return acc;
}

enum {
    NB = 3,
    K = NB * 256,
    ROWS = 16,
    TOK = 7
};

struct kq_data {
    struct rf_block_q4_K q4[ROWS * NB];
    struct rf_block_q6_K q6[ROWS * NB];
    float x[TOK * K];
    struct rf_block_q8_K y[TOK * NB];
};

static void kq_fill(struct kq_data *d)
{
    rand_blocks(d->q4, sizeof d->q4, sizeof d->q4[0], offsetof(struct rf_block_q4_K, d),
                offsetof(struct rf_block_q4_K, dmin));
    rand_blocks(d->q6, sizeof d->q6, sizeof d->q6[0], offsetof(struct rf_block_q6_K, d),
                (size_t)-1);
    for (int i = 0; i < TOK * K; i++) d->x[i] = rnd_normal();
    const struct rf_type_traits *q8k = rf_type_traits(RF_TYPE_Q8_K);
    for (int t = 0; t < TOK; t++) q8k->from_float(d->x + t * K, d->y + t * NB, K);
}

static void test_repacked_orders(void **state)
{
    (void)state;
    if (!rf_cpu_has_avx2()) skip();
    static struct kq_data d;
    kq_fill(&d);
    const struct rf_type_traits *r4 = rf_type_traits_ref(RF_TYPE_Q4_K),
                                *r6 = rf_type_traits_ref(RF_TYPE_Q6_K);
    const struct rf_type_traits *l6 = rf_type_traits(RF_TYPE_Q6_K);
    int n_gemm_gemv = 0, n_q6_vec = 0; /* where the orders round differently */
    for (int r = 0; r < ROWS; r++)
        for (int t = 0; t < TOK; t++) {
            const struct rf_block_q8_K *y = d.y + t * NB;
            float s, ref;
            rf_vec_dot_q4_K_r8_gemm_avx2(K, &s, d.q4 + r * NB, y);
            assert_true(s == q4k_order(d.q4 + r * NB, y, NB, 4));
            r4->vec_dot(K, &ref, d.q4 + r * NB, y);
            assert_true(fabsf(s - ref) <= 1e-5f * (fabsf(ref) + 1.0f));
            const float gemm = s;
            rf_vec_dot_q4_K_r8_gemv_avx2(K, &s, d.q4 + r * NB, y);
            assert_true(s == q4k_order(d.q4 + r * NB, y, NB, 1));
            n_gemm_gemv += s != gemm;
            rf_vec_dot_q6_K_r8_avx2(K, &s, d.q6 + r * NB, y);
            assert_true(s == q6k_order(d.q6 + r * NB, y, NB));
            r6->vec_dot(K, &ref, d.q6 + r * NB, y);
            assert_true(fabsf(s - ref) <= 1e-5f * (fabsf(ref) + 1.0f));
            l6->vec_dot(K, &ref, d.q6 + r * NB, y);
            n_q6_vec += s != ref;
        }
    /* the orders are distinguishable on this data, so the matmul test can tell them apart */
    assert_true(n_gemm_gemv > 0 && n_q6_vec > 0);
}

/* The matmul's choice: rows % 8 == 0 takes the repacked orders (Q4_K: tokens below
 * n - n % 4 the gemm one, the rest the gemv one; Q6_K: one order, a single token its
 * plain vec_dot); other row counts the plain vec_dot. */
static void check_matmul(struct rf_backend *b, const struct kq_data *d, enum rf_type type, int rows,
                         int n_tok)
{
    struct rf_tensor w = {.name = "w", .type = type, .ne = {K, rows, 1, 1}};
    w.data = type == RF_TYPE_Q4_K ? (const void *)d->q4 : (const void *)d->q6;
    w.nbytes = rf_row_size(type, K) * (size_t)rows;
    float y[TOK * ROWS];
    assert_int_equal(b->iface->matmul(b->ctx, &w, d->x, K, y, n_tok), RF_OK);
    const struct rf_type_traits *tt = rf_type_traits(type);
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            const struct rf_block_q8_K *yq = d->y + t * NB;
            float want;
            if (rows % 8 == 0 && type == RF_TYPE_Q4_K)
                want = q4k_order(d->q4 + r * NB, yq, NB, t < n_tok - n_tok % 4 ? 4 : 1);
            else if (rows % 8 == 0 && n_tok > 1) want = q6k_order(d->q6 + r * NB, yq, NB);
            else tt->vec_dot(K, &want, (const char *)w.data + (size_t)r * rf_row_size(type, K), yq);
            if (rf_fp32_to_bits(y[t * rows + r]) != rf_fp32_to_bits(want))
                fail_msg("%s rows %d tokens %d: y[%d][%d] = %a, want %a", rf_type_name(type), rows,
                         n_tok, t, r, y[t * rows + r], want);
        }
}

static void test_matmul_orders(void **state)
{
    (void)state;
    if (!rf_cpu_has_avx2()) skip();
    static struct kq_data d;
    kq_fill(&d);
    struct rf_backend b;
    assert_int_equal(rf_backend_cpu_init(2, &b), RF_OK);
    assert_true(rf_backend_cpu_set_kernels(&b, "avx2"));
    const enum rf_type types[2] = {RF_TYPE_Q4_K, RF_TYPE_Q6_K};
    const int rows[2] = {16, 12}, toks[4] = {1, 4, 6, 7};
    for (int a = 0; a < 2; a++)
        for (int r = 0; r < 2; r++)
            for (int t = 0; t < 4; t++) check_matmul(&b, &d, types[a], rows[r], toks[t]);
    b.iface->free(b.ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_gelu_matches_llamacpp),
        cmocka_unit_test(test_gelu_table_and_ends),
        cmocka_unit_test(test_repacked_orders),
        cmocka_unit_test(test_matmul_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

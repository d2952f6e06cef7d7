/* Weights are used in place from the mapping, never expanded: resident memory after a
 * forward pass stays under 1.15x the file size plus the KV cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "rocmforge.h"

#if defined(__SANITIZE_ADDRESS__)
#define RF_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RF_UNDER_ASAN 1
#endif
#endif

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static void test_resident_memory(void **state)
{
    (void)state;
#ifdef RF_UNDER_ASAN
    skip(); /* the sanitizer's shadow memory makes RSS meaningless */
#endif
    char path[1024];
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("RF_MODELS"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);

    struct rf_model *m = NULL;
    struct rf_model_params mp = rf_model_default_params();
    mp.n_threads = 2;
    assert_int_equal(rf_model_load(path, &mp, &m), RF_OK);
    struct rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 1024;
    struct rf_context *ctx = NULL;
    assert_int_equal(rf_context_init(m, &cp, &ctx), RF_OK);

    rf_token ids[64];
    for (int i = 0; i < 64; i++) ids[i] = 100 + 37 * i;
    assert_int_equal(rf_decode(ctx, ids, 64, false), RF_OK);
    for (int i = 0; i < 8; i++) assert_int_equal(rf_decode(ctx, &ids[i], 1, false), RF_OK);

    /* 30 layers x K and V x n_ctx x (3 kv heads x 64) halves */
    const double kv_bytes = 30.0 * 2 * 1024 * 192 * 2;
    const double limit = 1.15 * (double)st.st_size + kv_bytes;
    const long rss = rss_bytes();
    printf("resident %.1f MiB, file %.1f MiB, KV %.1f MiB, limit %.1f MiB\n", rss / 1048576.0,
           st.st_size / 1048576.0, kv_bytes / 1048576.0, limit / 1048576.0);
    assert_true(rss > 0);
    assert_true((double)rss < limit);
    rf_context_free(ctx);
    rf_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_resident_memory)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

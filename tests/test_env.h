#ifndef RF_TESTS_TEST_ENV_H
#define RF_TESTS_TEST_ENV_H
/* Where end-to-end tests run the model: RF_N_GPU_LAYERS (default 0: the CPU) layers
 * on the GPU; with RF_REQUIRE_GPU=1 a model that did not offload them fails the test
 * instead of passing on the CPU. */
#include <stdio.h>
#include <stdlib.h>

#include "rocmforge.h"

static inline struct rf_model_params rf_test_model_params(int32_t n_threads)
{
    struct rf_model_params p = rf_model_default_params();
    const char *ngl = getenv("RF_N_GPU_LAYERS");
    p.n_threads = n_threads;
    p.n_gpu_layers = ngl && *ngl ? (int32_t)strtol(ngl, NULL, 10) : 0;
    return p;
}

/* 0 when the model runs where the environment asked; else prints why and returns -1. */
static inline int rf_test_check_placement(const struct rf_model *m)
{
    const char *req = getenv("RF_REQUIRE_GPU");
    if (!req || *req != '1') return 0;
    if (rf_model_n_gpu_layers(m) > 0) return 0;
    printf("RF_REQUIRE_GPU=1 but the model runs on the CPU\n");
    return -1;
}

/* The model at path, placed as the environment asks; NULL (with the reason printed)
 * when it does not load or does not land where asked. */
static inline struct rf_model *rf_test_load_model(const char *path, int32_t n_threads)
{
    const struct rf_model_params p = rf_test_model_params(n_threads);
    struct rf_model *m = NULL;
    if (rf_model_load(path, &p, &m) != RF_OK) {
        printf("load: %s\n", rf_last_error());
        return NULL;
    }
    if (rf_test_check_placement(m) != 0) {
        rf_model_free(m);
        return NULL;
    }
    return m;
}

#endif

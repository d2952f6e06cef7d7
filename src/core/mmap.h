#ifndef RF_CORE_MMAP_H
#define RF_CORE_MMAP_H
#include <stddef.h>
#include "rocmforge.h"

/* A read-only mapping of a whole file. */
struct rf_mmap {
    void *data;
    size_t size;
};

rf_status rf_mmap_open(const char *path, struct rf_mmap *out);
void rf_mmap_close(struct rf_mmap *m);

#endif

/* The GPU entry points of a build without GPU support. */
#include "backend/backend.h"
#include "core/status.h"

#ifndef RF_HAVE_GPU
rf_status rf_backend_gpu_init(int device, struct rf_backend *out)
{
    (void)device;
    out->iface = NULL;
    out->ctx = NULL;
    return rf_fail(RF_STATUS_UNSUPPORTED, "gpu: this build has no GPU support");
}

#else
typedef int rf_gpu_off_unused; /* ISO C wants a declaration in every file */
#endif

#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

rf_status rf_fail(rf_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

void rf_clear_error(void) { last_error[0] = '\0'; }

const char *rf_last_error(void) { return last_error; }

const char *rf_status_name(rf_status s)
{
    switch (s) {
    case RF_OK: return "ok";
    case RF_STATUS_INVALID_ARG: return "invalid argument";
    case RF_STATUS_IO: return "i/o error";
    case RF_STATUS_BAD_FILE: return "bad file";
    case RF_STATUS_UNSUPPORTED: return "unsupported";
    case RF_STATUS_SHAPE: return "shape mismatch";
    case RF_STATUS_NOMEM: return "out of memory";
    case RF_STATUS_CONTEXT_FULL: return "context full";
    case RF_STATUS_DEVICE: return "device error";
    case RF_STATUS_CANCELLED: return "cancelled";
    case RF_STATUS_BUSY: return "busy";
    }
    return "unknown status";
}

#ifndef RF_CORE_STATUS_H
#define RF_CORE_STATUS_H
#include "rocmforge.h"

/* Records a message for rf_last_error() on this thread and returns code, so that
 * failures read `return rf_fail(RF_STATUS_BAD_FILE, "gguf: ...", ...);`. */
rf_status rf_fail(rf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rf_clear_error(void);

#define RF_TRY(expr)                                                                               \
    do {                                                                                           \
        rf_status rf_try_s_ = (expr);                                                              \
        if (rf_try_s_ != RF_OK) return rf_try_s_;                                                  \
    } while (0)

#endif

#ifndef RF_GGUF_INFO_H
#define RF_GGUF_INFO_H
/* Human-readable summary of a GGUF file, as `rocmforge info FILE` prints it: path,
 * version, architecture and name, every "<arch>.*" hyper-parameter, the tokenizer,
 * the chat template's presence, a histogram of tensor types (count and bytes), total
 * tensor bytes against the file size, and the parameter count. */
#include <stdio.h>

#include "gguf/gguf.h"
#include "rocmforge.h"

/* Opens path, prints the summary to out, closes it. On failure nothing is printed
 * and rf_last_error() says why. */
rf_status rf_gguf_print_info(const char *path, FILE *out);
/* The same for a file already open; path is only printed. */
void rf_gguf_write_info(const struct rf_gguf *g, const char *path, FILE *out);

#endif

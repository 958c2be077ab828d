/*
 * intm_platform_host.c - the platform API (intm_runtime.h) for the host build.
 *
 * The host build runs the same harness (intm_main.c) and model code natively, to check
 * outputs quickly and to debug with ordinary tools. It uses the same file protocol as the
 * QEMU board: all inputs concatenated in `input.bin`, all outputs in `output.bin`, both in
 * the working directory, so the simulator drives both builds the same way. The environment
 * variables INTM_INPUT and INTM_OUTPUT override the two paths for manual runs.
 */
#include <stdio.h>
#include <stdlib.h>

#include "intm_runtime.h"

static FILE* intm_input_file;
static FILE* intm_output_file;

static const char* intm_path(const char* variable, const char* fallback) {
  const char* path = getenv(variable);
  return (path != NULL && path[0] != '\0') ? path : fallback;
}

void intm_platform_init(void) {}

intm_status_t intm_platform_read_input(int index, void* dst, size_t nbytes) {
  (void)index; /* inputs are read in order from one stream */
  if (intm_input_file == NULL) {
    intm_input_file = fopen(intm_path("INTM_INPUT", "input.bin"), "rb");
    if (intm_input_file == NULL) return INTM_ERROR_IO;
  }
  if (fread(dst, 1, nbytes, intm_input_file) != nbytes) return INTM_ERROR_SIZE;
  return INTM_OK;
}

intm_status_t intm_platform_write_output(int index, const void* src, size_t nbytes) {
  (void)index; /* outputs are written in order to one stream */
  if (intm_output_file == NULL) {
    intm_output_file = fopen(intm_path("INTM_OUTPUT", "output.bin"), "wb");
    if (intm_output_file == NULL) return INTM_ERROR_IO;
  }
  if (fwrite(src, 1, nbytes, intm_output_file) != nbytes) return INTM_ERROR_IO;
  return INTM_OK;
}

void intm_platform_log(const char* message) {
  fputs(message, stderr);
  fflush(stderr);
}

void intm_platform_exit(int status) {
  if (intm_input_file != NULL) fclose(intm_input_file);
  /* fclose flushes: a full disk shows up here, not in fwrite. */
  if (intm_output_file != NULL && fclose(intm_output_file) != 0 && status == 0) {
    status = INTM_ERROR_IO;
  }
  exit(status);
}

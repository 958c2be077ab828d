/*
 * intm_platform_qemu.c - the platform API (intm_runtime.h) on QEMU mps2-an386.
 *
 * Inputs and outputs are files in QEMU's working directory, reached through semihosting:
 * every input tensor, in order, concatenated in `input.bin`, and every output tensor, in
 * order, concatenated in `output.bin`. The host side (tvm_intermittent.sim) writes one and
 * reads the other in a fresh directory per run.
 *
 * The file handles live in .data, so each boot starts closed: after a reset the firmware
 * reopens input.bin from its start and truncates output.bin, and only the last boot's
 * outputs count. QEMU keeps its host-side handle table across resets, so a reset leaks one
 * host handle per open file; harmless for the few hundred boots of a run.
 */
#include "intm_runtime.h"
#include "semihost.h"

static const char kInputPath[] = "input.bin";
static const char kOutputPath[] = "output.bin";

static int intm_input_handle = -1;
static int intm_output_handle = -1;

void intm_platform_init(void) {
  /* The reset handler already enabled the FPU and set up memory; files open on first use
   * so that a model without inputs never needs an input.bin. */
}

intm_status_t intm_platform_read_input(int index, void* dst, size_t nbytes) {
  (void)index; /* inputs are read in order from one stream */
  if (intm_input_handle < 0) {
    intm_input_handle = intm_semihost_open(kInputPath, sizeof kInputPath - 1u,
                                           INTM_SEMIHOST_MODE_RB);
    if (intm_input_handle < 0) return INTM_ERROR_IO;
  }
  if (intm_semihost_read(intm_input_handle, dst, nbytes) != nbytes) return INTM_ERROR_SIZE;
  return INTM_OK;
}

intm_status_t intm_platform_write_output(int index, const void* src, size_t nbytes) {
  (void)index; /* outputs are written in order to one stream */
  if (intm_output_handle < 0) {
    intm_output_handle = intm_semihost_open(kOutputPath, sizeof kOutputPath - 1u,
                                            INTM_SEMIHOST_MODE_WB);
    if (intm_output_handle < 0) return INTM_ERROR_IO;
  }
  if (intm_semihost_write(intm_output_handle, src, nbytes) != nbytes) return INTM_ERROR_IO;
  return INTM_OK;
}

void intm_platform_log(const char* message) { intm_semihost_write0(message); }

void intm_platform_exit(int status) {
  if (intm_input_handle >= 0) intm_semihost_close(intm_input_handle);
  if (intm_output_handle >= 0 && intm_semihost_close(intm_output_handle) != 0 && status == 0) {
    status = INTM_ERROR_IO;
  }
  intm_semihost_exit(status);
}

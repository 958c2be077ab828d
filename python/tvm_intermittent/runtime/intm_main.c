/*
 * intm_main.c - the firmware harness: one inference from input.bin to output.bin.
 *
 * One user of the device loop (intm_app.h): it senses by reading every input tensor from
 * the platform (input.bin), acts by writing every output tensor (output.bin), and exits
 * after one inference. It never calls intm_next_inference(): a power failure after the
 * inference is DONE brings the next boot to `act` again, which writes the same outputs,
 * and never to a second inference. (A fresh emulation starts with zeroed NVM.)
 *
 * The same file is the entry point of the QEMU firmware (called by the reset handler) and
 * of the host build (called by the C library), so it knows nothing about either: files,
 * console and exit all go through the platform API of intm_runtime.h.
 *
 * Exit status: 0 when the outputs were written, otherwise the failing intm_status_t value
 * (intm_status.h), with a message on the console. The board support package exits with
 * INTM_FAULT_STATUS_BASE + n after CPU exception n.
 */
#include "intm_app.h"
#include "intm_runtime.h"
#include "model.h"

/* Report a failure about tensor `name`; message pieces avoid printf and its heap. */
static void intm_report(const char* what, const char* name, intm_status_t status) {
  intm_platform_log("intm: ");
  intm_platform_log(what);
  if (name != NULL) {
    intm_platform_log(" '");
    intm_platform_log(name);
    intm_platform_log("'");
  }
  intm_platform_log(": ");
  intm_platform_log(intm_status_text(status));
  intm_platform_log("\n");
}

/*
 * The harness's `sense` and `act`. Out of line and external so that the simulator finds
 * the input load and the output write in the ELF by name, as address ranges.
 */
__attribute__((noinline, used)) intm_status_t intm_read_inputs(void* context) {
  (void)context;
  for (int i = 0; i < INTM_MODEL_NUM_INPUTS; ++i) {
    const intm_tensor_desc_t* desc = &intm_model_inputs[i];
    intm_status_t status = intm_platform_read_input(i, intm_model_input(i), desc->nbytes);
    if (status != INTM_OK) {
      intm_report("cannot read input", desc->name, status);
      return status;
    }
  }
  return INTM_OK;
}

__attribute__((noinline, used)) intm_status_t intm_write_outputs(void* context) {
  (void)context;
  for (int i = 0; i < INTM_MODEL_NUM_OUTPUTS; ++i) {
    const intm_tensor_desc_t* desc = &intm_model_outputs[i];
    intm_status_t status = intm_platform_write_output(i, intm_model_output(i), desc->nbytes);
    if (status != INTM_OK) {
      intm_report("cannot write output", desc->name, status);
      return status;
    }
  }
  return INTM_OK;
}

int main(void) {
  static const intm_app_t harness = {intm_read_inputs, intm_write_outputs, NULL};
  intm_platform_init();
  intm_status_t status = intm_infer(&harness);
  if (status != INTM_OK) intm_report("inference failed", NULL, status);
  intm_platform_exit((int)status);
}

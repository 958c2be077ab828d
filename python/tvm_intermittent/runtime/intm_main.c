/*
 * intm_main.c - the firmware harness: read inputs, run the model once, write outputs.
 *
 * The same file is the entry point of the QEMU firmware (called by the reset handler) and
 * of the host build (called by the C library), so it knows nothing about either: files,
 * console and exit all go through the platform API of intm_runtime.h.
 *
 * Exit status: 0 when the outputs were written, otherwise the failing intm_status_t value
 * (1 I/O error, 2 wrong input size, 3 kernel failure, 4 no progress under power failures),
 * with a message on the console.
 * The board support package reserves 128 and above for CPU faults.
 */
#include "intm_runtime.h"
#include "model.h"

/*
 * The simulator's instruction-counting plugin records the running count whenever the first
 * instruction of this function executes. noinline keeps a body to execute; the empty
 * volatile asm gives the function a side effect, so GCC's IPA cannot prove it pure and
 * delete the calls; `used` keeps it when a build never calls it.
 */
__attribute__((noinline, used)) void intm_mark(void) { __asm__ volatile("" ::: "memory"); }

static const char* intm_status_text(intm_status_t status) {
  switch (status) {
    case INTM_OK:
      return "ok";
    case INTM_ERROR_IO:
      return "I/O error";
    case INTM_ERROR_SIZE:
      return "wrong number of bytes";
    case INTM_ERROR_KERNEL:
      return "kernel error";
    case INTM_ERROR_NO_PROGRESS:
      return "no progress";
  }
  return "unknown error";
}

/* Report `what` about tensor `name` and stop; message pieces avoid printf and its heap. */
__attribute__((noreturn)) static void intm_fail(const char* what, const char* name,
                                                intm_status_t status) {
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
  intm_platform_exit((int)status);
}

#ifdef INTM_MODEL_NUM_TASKS
#include "intm_executor.h"
#include "intm_progress.h"

static void intm_read_inputs(void) {
  for (int i = 0; i < INTM_MODEL_NUM_INPUTS; ++i) {
    const intm_tensor_desc_t* desc = &intm_model_inputs[i];
    intm_status_t status = intm_platform_read_input(i, intm_model_input(i), desc->nbytes);
    if (status != INTM_OK) intm_fail("cannot read input", desc->name, status);
  }
}

static void intm_write_outputs(void) {
  for (int i = 0; i < INTM_MODEL_NUM_OUTPUTS; ++i) {
    const intm_tensor_desc_t* desc = &intm_model_outputs[i];
    intm_status_t status = intm_platform_write_output(i, intm_model_output(i), desc->nbytes);
    if (status != INTM_OK) intm_fail("cannot write output", desc->name, status);
  }
}

/*
 * Intermittent harness: every boot resumes from the committed progress. Inputs are read
 * only by a boot that finds none committed (the arena may reuse their bytes later), and
 * outputs are written by the boot that finds the inference DONE, so a failure while writing
 * them just writes them again.
 */
int main(void) {
  intm_platform_init();
  intm_resume_point_t at = intm_progress_restore(intm_model_hash);
#if INTM_MODE == INTM_MODE_RESTART
  if (at.phase == INTM_PHASE_RUNNING) at.phase = INTM_PHASE_FRESH; /* never resumes */
#endif
  if (at.phase == INTM_PHASE_FRESH) {
    intm_read_inputs();
    at.phase = INTM_PHASE_RUNNING;
    at.task = 0u;
    at.tile = 0u;
#if INTM_MODE != INTM_MODE_RESTART
    intm_progress_commit(&at);
#endif
  }
  if (at.phase == INTM_PHASE_RUNNING) {
    intm_mark();
    intm_executor_resume(intm_model_tasks, INTM_MODEL_NUM_TASKS, &at, 1);
    intm_mark();
  }
  intm_write_outputs();
  /* Ready for the next inference; this also clears the livelock counter. */
  at.phase = INTM_PHASE_FRESH;
  at.task = 0u;
  at.tile = 0u;
  intm_progress_commit(&at);
  intm_platform_exit((int)INTM_OK);
}

#else /* a model without a task table runs once, continuously */

int main(void) {
  intm_platform_init();

  for (int i = 0; i < INTM_MODEL_NUM_INPUTS; ++i) {
    const intm_tensor_desc_t* desc = &intm_model_inputs[i];
    intm_status_t status = intm_platform_read_input(i, intm_model_input(i), desc->nbytes);
    if (status != INTM_OK) intm_fail("cannot read input", desc->name, status);
  }

  /* The two marks bracket exactly the model: instructions_model is their difference. */
  intm_mark();
  intm_status_t status = intm_model_run();
  intm_mark();
  if (status != INTM_OK) intm_fail("model run failed", NULL, status);

  for (int i = 0; i < INTM_MODEL_NUM_OUTPUTS; ++i) {
    const intm_tensor_desc_t* desc = &intm_model_outputs[i];
    status = intm_platform_write_output(i, intm_model_output(i), desc->nbytes);
    if (status != INTM_OK) intm_fail("cannot write output", desc->name, status);
  }
  intm_platform_exit((int)INTM_OK);
}

#endif /* INTM_MODEL_NUM_TASKS */

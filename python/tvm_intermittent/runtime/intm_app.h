/*
 * intm_app.h - the device loop: sense, infer, act, across any number of power failures.
 *
 * A batteryless application's main loop is
 *
 *   for (;;) {
 *     intm_infer(&app);          // resumes whatever is committed; returns after app.act
 *     intm_next_inference();     // the next intm_infer() senses new inputs
 *     ...sleep until the capacitor has charged again...
 *   }
 *
 * and main() runs it at every boot: the progress record in NVM, not the call stack, says
 * where the inference is. An inference goes FRESH -> RUNNING -> DONE -> FRESH:
 *
 *   FRESH    intm_infer() calls `sense`, then commits RUNNING: the inputs are taken once.
 *   RUNNING  the executor resumes at the committed tile; its last commit records DONE.
 *   DONE     intm_infer() calls `act` with the outputs, which are in NVM. It never runs a
 *            task again, whatever fails, until intm_next_inference() commits FRESH.
 *
 * `act` therefore runs at least once per inference and again after a power failure that
 * falls between its start and intm_next_inference()'s commit: make delivering the same
 * result twice harmless (or record in NVM what was delivered).
 */
#ifndef INTM_APP_H_
#define INTM_APP_H_

#include "intm_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An application's side of an inference: where inputs come from and where outputs go. */
typedef struct {
  /**
   * Fill every input buffer, intm_model_input(i), with intm_model_inputs[i].nbytes bytes.
   * Called only while no inference is under way; called again if the power fails before
   * the inputs are committed, so it may take a new sample each time.
   *
   * @param[in] context  the app's `context`
   * @return INTM_OK, or the status intm_infer() returns without committing anything
   */
  intm_status_t (*sense)(void* context);
  /**
   * Deliver the outputs, intm_model_output(i) (intm_model_outputs[i].nbytes bytes each).
   * Called at every start that finds the inference DONE (see the header comment).
   *
   * @param[in] context  the app's `context`
   * @return INTM_OK, or the status intm_infer() returns (the inference stays DONE)
   */
  intm_status_t (*act)(void* context);
  /** Passed to both callbacks. */
  void* context;
} intm_app_t;

/**
 * Run the inference from whatever NVM has committed, and deliver its outputs.
 *
 * Senses new inputs only when the record is FRESH, resumes a RUNNING inference at its last
 * committed tile, and calls `act` once the record is DONE. Needs no heap and keeps nothing
 * in SRAM between calls, so it may be called again at any boot.
 *
 * @param[in] app  the application's callbacks
 * @return INTM_OK after `act` succeeded; otherwise the status of the callback that failed.
 *         Ends the program with INTM_ERROR_NO_PROGRESS (intm_platform_exit) when starts keep
 *         failing before a commit.
 */
intm_status_t intm_infer(const intm_app_t* app);

/**
 * Finish the inference intm_infer() delivered: commit FRESH, so that the next intm_infer()
 * senses new inputs. Until this commit lands, every start delivers the same outputs again.
 *
 * @return INTM_OK
 */
intm_status_t intm_next_inference(void);

#ifdef __cplusplus
}
#endif

#endif /* INTM_APP_H_ */

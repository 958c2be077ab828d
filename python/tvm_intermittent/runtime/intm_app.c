/*
 * intm_app.c - the device loop of intm_app.h over the generated model's task table.
 *
 * Every start reads the progress record and does only what it says is left; the reasoning
 * through a power failure is next to each commit below and in intm_executor.c.
 */
#include "intm_app.h"

#include "model.h"

/*
 * The simulator's instruction-counting plugin records the running count whenever the first
 * instruction of this function executes. noinline keeps a body to execute; the empty
 * volatile asm gives the function a side effect, so GCC's IPA (and LTO) cannot prove it
 * pure and delete the calls; `used` keeps it when a build never calls it.
 */
__attribute__((noinline, used)) void intm_mark(void) { __asm__ volatile("" ::: "memory"); }

#ifdef INTM_MODEL_NUM_TASKS
#include "intm_executor.h"
#include "intm_progress.h"

/* Whether this boot has read the progress record (SRAM: every boot starts at 0). */
static int intm_app_restored;

intm_status_t intm_infer(const intm_app_t* app) {
  intm_resume_point_t at = intm_progress_restore(intm_model_hash);
  intm_app_restored = 1;
#if INTM_MODE == INTM_MODE_RESTART
  at.phase = INTM_PHASE_FRESH; /* the baseline never resumes and commits nothing */
#endif
  if (at.phase == INTM_PHASE_FRESH) {
    intm_status_t status = app->sense(app->context);
    if (status != INTM_OK) return status;
    at.phase = INTM_PHASE_RUNNING;
    at.task = 0u;
    at.tile = 0u;
#if INTM_MODE != INTM_MODE_RESTART
    /*
     * NOTE: commit FRESH -> RUNNING. The inputs are in the NVM arena now; the commit's
     * barriers put them in NVM before its check word.
     *   - a failure during `sense` or before the commit's check word: the record still says
     *     FRESH, the next start senses again and overwrites the same input bytes (no task
     *     has run, so nothing else in the arena matters yet);
     *   - after it: the inputs are committed; every later start resumes the tasks and
     *     never senses again, so the arena may reuse the inputs' bytes for later tensors.
     */
    intm_progress_commit(&at);
#endif
  }
  if (at.phase == INTM_PHASE_RUNNING) {
    /* The two marks bracket the model; the executor's last commit records DONE. */
    intm_mark();
    intm_executor_resume(intm_model_tasks, INTM_MODEL_NUM_TASKS, &at, 1);
    intm_mark();
  }
  /*
   * DONE: the outputs are complete in NVM. A failure in `act` (or after it, before
   * intm_next_inference() commits) brings the next start back here, to deliver them
   * again: the tasks never run twice for one set of inputs.
   */
  return app->act(app->context);
}

intm_status_t intm_next_inference(void) {
#if INTM_MODE != INTM_MODE_RESTART
  const intm_resume_point_t fresh = {INTM_PHASE_FRESH, 0u, 0u};
  /* The commit writes the slot the committed record is not in, which restore finds. After
   * intm_infer() in this boot it is known; as the first call of a boot, read it first
   * (not on every call: restore also counts a start for the livelock guard). */
  if (!intm_app_restored) {
    (void)intm_progress_restore(intm_model_hash);
    intm_app_restored = 1;
  }
  /*
   * NOTE: commit DONE -> FRESH.
   *   - a failure before the check word: the record says DONE; the next start delivers the
   *     same outputs again (act is at-least-once) and this is called again;
   *   - after it: the record says FRESH; the next intm_infer() senses new inputs. The
   *     outputs in the arena are no longer promised to anyone.
   */
  intm_progress_commit(&fresh);
#endif
  return INTM_OK;
}

#else /* a model without a task table runs whole at every start, continuously */

intm_status_t intm_infer(const intm_app_t* app) {
  intm_status_t status = app->sense(app->context);
  if (status != INTM_OK) return status;
  /* The two marks bracket exactly the model: instructions_model is their difference. */
  intm_mark();
  status = intm_model_run();
  intm_mark();
  if (status != INTM_OK) return status;
  return app->act(app->context);
}

intm_status_t intm_next_inference(void) { return INTM_OK; }

#endif /* INTM_MODEL_NUM_TASKS */

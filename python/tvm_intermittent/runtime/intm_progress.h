/*
 * intm_progress.h - the progress record in NVM: where an interrupted inference resumes.
 */
#ifndef INTM_PROGRESS_H_
#define INTM_PROGRESS_H_

#include <stdint.h>

#include "intm_runtime.h"

/** Where the inference is. FRESH: inputs not read yet; RUNNING: at (task, tile);
 *  DONE: outputs are complete in NVM and only need writing out. */
typedef enum {
  INTM_PHASE_FRESH = 0,
  INTM_PHASE_RUNNING = 1,
  INTM_PHASE_DONE = 2,
} intm_phase_t;

typedef struct {
  intm_phase_t phase;
  uint32_t task; /**< next task to run (RUNNING) */
  uint32_t tile; /**< next tile of that task */
} intm_resume_point_t;

/**
 * Read the progress record at boot. A record written by other firmware (another model hash)
 * or never written reads as FRESH. Also counts this boot: after more than
 * INTM_MAX_FUTILE_BOOTS boots without a commit, ends the run with INTM_ERROR_NO_PROGRESS.
 *
 * @param[in] model_hash  hash of the model and its memory layout
 */
intm_resume_point_t intm_progress_restore(uint32_t model_hash);

/** Make `point` the committed progress, tear-safely (see intm_progress.c). */
void intm_progress_commit(const intm_resume_point_t* point);

/** Boots without a commit before the run gives up (livelock guard). */
#ifndef INTM_MAX_FUTILE_BOOTS
#define INTM_MAX_FUTILE_BOOTS 16u
#endif

#endif /* INTM_PROGRESS_H_ */

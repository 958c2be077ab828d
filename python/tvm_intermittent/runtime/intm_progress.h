/*
 * intm_progress.h - the progress record in NVM: where an interrupted inference resumes.
 */
#ifndef INTM_PROGRESS_H_
#define INTM_PROGRESS_H_

#include <stdint.h>

#include "intm_runtime.h"

/** Where the inference is. FRESH: inputs not taken yet; RUNNING: at (task, tile);
 *  DONE: the outputs are complete in NVM and only need delivering. */
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
 * Layout of the record in NVM. The first word of every slot is INTM_RECORD_MAGIC with the
 * layout version in its low byte, the second the model hash; every layout keeps those two
 * words where they are, so that any firmware can tell a record of another layout or another
 * model from an empty or garbled slot. Version 1 (before this word existed) had no magic.
 * Bump INTM_RECORD_LAYOUT whenever intm_record_t or the check changes.
 */
#define INTM_RECORD_MAGIC 0x494E5400u /* "INT" */
#define INTM_RECORD_LAYOUT 2u

/**
 * Read the progress record. When NVM holds no progress of this firmware but a record of
 * other firmware (another model hash or record layout), it reads as FRESH and the console
 * says so:
 *   intm: NVM holds progress of other firmware (hash 0x..., layout N); starting a new inference
 * An empty or garbled NVM reads as FRESH silently (a new device). Also counts this start:
 * after more than INTM_MAX_FUTILE_BOOTS starts without a commit in between, ends the run with
 * INTM_ERROR_NO_PROGRESS.
 *
 * @param[in] model_hash  hash of the model and its memory layout
 * @return the committed resume point
 */
intm_resume_point_t intm_progress_restore(uint32_t model_hash);

/** Make `point` the committed progress, tear-safely (see intm_progress.c). Call only after
 *  intm_progress_restore() in the same boot. */
void intm_progress_commit(const intm_resume_point_t* point);

/** Starts without a commit before the run gives up (livelock guard). */
#ifndef INTM_MAX_FUTILE_BOOTS
#define INTM_MAX_FUTILE_BOOTS 16u
#endif

#endif /* INTM_PROGRESS_H_ */

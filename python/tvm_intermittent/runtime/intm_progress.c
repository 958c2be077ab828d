/*
 * intm_progress.c - tear-safe commits of the progress record in NVM.
 *
 * Two slots hold versions of the record; each carries a sequence number and a check word
 * computed over its other fields and the model hash. The valid slot with the larger
 * sequence number is the committed progress. A commit fills in the slot that does NOT hold
 * the committed progress and finishes by writing its check word.
 *
 * Power failure at each point of intm_progress_commit (32-bit stores are atomic on the
 * Cortex-M, and a failure falls between two instructions):
 *   - before the check word is cleared: the target slot still holds the previous, older
 *     version (or garbage); the other slot holds the committed progress, which wins;
 *   - after the check is cleared, while the fields are written: the target slot is invalid
 *     (check 0 never matches: intm_record_check() never returns 0); the committed progress
 *     in the other slot wins, so nothing half-written is ever exposed;
 *   - after the check word is written: the new version is complete and has the larger
 *     sequence number: it is the committed progress from now on.
 * So a failure never loses committed progress and never exposes a partial one.
 */
#include "intm_progress.h"

#include <stddef.h>

typedef struct {
  uint32_t model_hash;
  uint32_t sequence;
  uint32_t phase;
  uint32_t task;
  uint32_t tile;
  uint32_t check;
} intm_record_t;

typedef struct {
  uint32_t model_hash;
  uint32_t futile_boots; /**< boots since the last commit */
} intm_boot_counter_t;

INTM_NVM static volatile intm_record_t intm_records[2];
INTM_NVM static volatile intm_boot_counter_t intm_boots;

/* SRAM copy of which slot holds the committed progress; rebuilt by restore at every boot. */
static int intm_committed_slot = -1;
static uint32_t intm_committed_sequence;
static uint32_t intm_hash;

/* A mixing function over the fields: any change of one field changes the check. */
static uint32_t intm_record_check(uint32_t hash, uint32_t sequence, uint32_t phase,
                                  uint32_t task, uint32_t tile) {
  uint32_t words[5] = {hash, sequence, phase, task, tile};
  uint32_t h = 2166136261u;
  for (int i = 0; i < 5; ++i) {
    for (int b = 0; b < 4; ++b) {
      h ^= (words[i] >> (8 * b)) & 0xFFu;
      h *= 16777619u;
    }
  }
  return h | 1u; /* never 0: 0 marks a slot being written */
}

static int intm_record_valid(const volatile intm_record_t* r, uint32_t hash) {
  return r->model_hash == hash && r->phase <= INTM_PHASE_DONE &&
         r->check == intm_record_check(r->model_hash, r->sequence, r->phase, r->task, r->tile);
}

__attribute__((noinline)) intm_resume_point_t intm_progress_restore(uint32_t model_hash) {
  intm_resume_point_t point = {INTM_PHASE_FRESH, 0, 0};
  intm_hash = model_hash;
  intm_committed_slot = -1;
  intm_committed_sequence = 0;
  for (int slot = 0; slot < 2; ++slot) {
    const volatile intm_record_t* r = &intm_records[slot];
    if (intm_record_valid(r, model_hash) &&
        (intm_committed_slot < 0 || r->sequence > intm_committed_sequence)) {
      intm_committed_slot = slot;
      intm_committed_sequence = r->sequence;
      point.phase = (intm_phase_t)r->phase;
      point.task = r->task;
      point.tile = r->tile;
    }
  }
  /* Livelock guard: count boots that did not commit. A stale counter from other firmware
   * (another hash) starts from zero. */
  if (intm_boots.model_hash != model_hash) {
    intm_boots.futile_boots = 0;
    intm_boots.model_hash = model_hash;
  }
  intm_boots.futile_boots = intm_boots.futile_boots + 1u;
  if (intm_boots.futile_boots > INTM_MAX_FUTILE_BOOTS) {
    intm_boots.futile_boots = 0; /* the next run, if any, starts counting again */
    intm_platform_log("intm: no progress: boots keep failing before the next commit\n");
    intm_platform_exit((int)INTM_ERROR_NO_PROGRESS);
  }
  return point;
}

__attribute__((noinline)) void intm_progress_commit(const intm_resume_point_t* point) {
  int slot = intm_committed_slot == 0 ? 1 : 0;
  volatile intm_record_t* r = &intm_records[slot];
  uint32_t sequence = intm_committed_sequence + 1u;
  r->check = 0u; /* the slot is invalid from here until its last store */
  r->model_hash = intm_hash;
  r->sequence = sequence;
  r->phase = (uint32_t)point->phase;
  r->task = point->task;
  r->tile = point->tile;
  r->check = intm_record_check(intm_hash, sequence, (uint32_t)point->phase, point->task,
                               point->tile);
  /* Committed. A failure from here on resumes at `point`. */
  intm_committed_slot = slot;
  intm_committed_sequence = sequence;
  intm_boots.futile_boots = 0u;
}

#ifdef INTM_PROGRESS_TESTING
/* Host unit tests only: undo the last commit's final store, as a power failure just before
 * it would have left the slot (check word cleared, fields written). */
void intm_test_tear_last_commit(void) { intm_records[intm_committed_slot].check = 0u; }
#endif

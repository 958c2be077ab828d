/*
 * intm_executor.c - the loop over the task table.
 *
 * Why re-running is safe: a task's tiles read tensors that earlier tasks wrote and
 * committed, and write only their own output elements, never a tensor the task reads (the
 * memory plan keeps a task's inputs and outputs apart). So the tiles after the last commit
 * can run again after a power failure and write the same bytes.
 */
#include "intm_executor.h"

void intm_executor_resume(const intm_task_t* tasks, uint32_t num_tasks, intm_resume_point_t* at,
                          int commit) {
  for (uint32_t t = at->task; t < num_tasks; ++t) {
    const intm_task_t* task = &tasks[t];
    int32_t tile = (t == at->task) ? (int32_t)at->tile : 0;
#if INTM_MODE == INTM_MODE_TILES
    const int32_t batch = task->tiles_per_commit;
#else
    const int32_t batch = task->num_tiles;
#endif
    while (tile < task->num_tiles) {
      int32_t end = task->num_tiles - tile > batch ? tile + batch : task->num_tiles;
      task->run(tile, end);
      tile = end;
#if INTM_MODE != INTM_MODE_RESTART
      if (commit) {
        /*
         * NOTE: commit after tiles [.., tile) of task t, which the barriers inside the
         * commit put in NVM before its check word.
         *   - a failure while the batch runs or before the check word lands: the record
         *     still names the batch's first tile; the next start runs the batch again,
         *     which writes the same bytes (see the top of this file);
         *   - after it: the next start resumes at `next`. The last commit of the last task
         *     records DONE, so a failure from then on only delivers the outputs again
         *     (intm_app.c) and never reruns a task.
         */
        intm_resume_point_t next = {INTM_PHASE_RUNNING, t, (uint32_t)tile};
        if (tile == task->num_tiles) {
          next.task = t + 1u;
          next.tile = 0u;
          if (next.task == num_tasks) next.phase = INTM_PHASE_DONE;
        }
        intm_progress_commit(&next);
      }
#endif
    }
  }
  at->phase = INTM_PHASE_DONE;
  at->task = num_tasks;
  at->tile = 0u;
}

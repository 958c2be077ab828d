/*
 * intm_executor.h - runs a model's task table from a resume point, committing as it goes.
 */
#ifndef INTM_EXECUTOR_H_
#define INTM_EXECUTOR_H_

#include <stdint.h>

#include "intm_progress.h"
#include "intm_runtime.h"

/**
 * Run tasks [at->task, num_tasks), starting at tile at->tile of the first one.
 *
 * In INTM_MODE_TILES, commits after every batch of task->tiles_per_commit tiles; in
 * INTM_MODE_LAYER after every task; in INTM_MODE_RESTART never. The last commit records
 * INTM_PHASE_DONE. With `commit` 0 (a continuous run on the host) nothing is committed.
 *
 * @param[in]     tasks      the model's task table
 * @param[in]     num_tasks  its length
 * @param[in,out] at         the resume point; on return, the DONE point
 * @param[in]     commit     nonzero to commit progress to NVM
 */
void intm_executor_resume(const intm_task_t* tasks, uint32_t num_tasks, intm_resume_point_t* at,
                          int commit);

#endif /* INTM_EXECUTOR_H_ */

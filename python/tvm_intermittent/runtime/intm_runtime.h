/*
 * intm_runtime.h - the small C runtime every generated model links against.
 *
 * No heap, no TVM runtime. A generated model.c defines the tensor descriptors, the task
 * table and intm_model_run(); the device loop (intm_app.h) runs it across power failures,
 * and the firmware harness (intm_main.c), one user of that loop, moves inputs and outputs
 * through the platform functions below, which each board support package implements
 * (semihosting on QEMU, stdio on the host build).
 */
#ifndef INTM_RUNTIME_H_
#define INTM_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* intm_status_t, generated from the one table of statuses in tvm_intermittent/errors.py. */
#include "intm_status.h"

/*
 * Execution modes, chosen at build time with -DINTM_MODE=... (the Makefile's MODE=):
 *   INTM_MODE_TILES   commit after each batch of tiles (the default)
 *   INTM_MODE_LAYER   commit only at operator boundaries (a baseline)
 *   INTM_MODE_RESTART no checkpoints: every boot starts the inference over (a baseline,
 *                     and the uninstrumented build that IMO is measured against)
 */
#define INTM_MODE_RESTART 0
#define INTM_MODE_LAYER 1
#define INTM_MODE_TILES 2
#ifndef INTM_MODE
#define INTM_MODE INTM_MODE_TILES
#endif

/** Place a variable in non-volatile memory: it keeps its value across power failures and
 *  has no initial value (the section is never loaded; the progress record says what in it
 *  is valid). The MSP430 build places it in FRAM. */
#if defined(__arm__) || defined(__MSP430__)
#define INTM_NVM __attribute__((section(".intm_nvm")))
#else
#define INTM_NVM
#endif

/**
 * Order stores to NVM: every store before it reaches memory before any store after it, and
 * the compiler moves no memory access across it. On Arm a DMB (the Cortex-M4 buffers a
 * store; faster cores buffer several and may merge them out of order), elsewhere (the host
 * build, one process on coherent memory) a compiler barrier. The commit protocol in
 * intm_progress.c depends on it; `volatile` alone orders only volatile accesses among
 * themselves, and with -flto the kernels' plain stores can be inlined right beside a commit.
 */
#if defined(__arm__)
#define INTM_NVM_BARRIER() __asm__ volatile("dmb" ::: "memory")
#else
#define INTM_NVM_BARRIER() __asm__ volatile("" ::: "memory")
#endif

/** One operator of the model as the executor sees it: a function running tiles
 *  [begin, end) of `num_tiles`, committed `tiles_per_commit` at a time. */
typedef struct {
  void (*run)(int32_t begin, int32_t end);
  int32_t num_tiles;
  int32_t tiles_per_commit;
  const char* name;
} intm_task_t;

/** Element type of a tensor, as stored in memory. */
typedef enum {
  INTM_FLOAT32 = 0,
  INTM_INT8 = 1,
  INTM_UINT8 = 2,
  INTM_INT16 = 3,
  INTM_INT32 = 4,
  INTM_INT64 = 5,
  INTM_BOOL = 6,
} intm_dtype_t;

#define INTM_MAX_DIMS 6

/** What the host needs to know about one model input or output. */
typedef struct {
  const char* name;
  intm_dtype_t dtype;
  int32_t ndim;
  int32_t shape[INTM_MAX_DIMS];
  size_t nbytes;
  float scale;        /**< quantization scale; 0 when the tensor is not quantized */
  int32_t zero_point; /**< quantization zero point */
} intm_tensor_desc_t;

/* ---- Platform: implemented once per board support package. ---------------------- */

/** Bring the platform up (clocks, FPU); called first by the harness. */
void intm_platform_init(void);
/** Read exactly `nbytes` of input tensor `index` into `dst`. */
intm_status_t intm_platform_read_input(int index, void* dst, size_t nbytes);
/** Write `nbytes` of output tensor `index` from `src`. */
intm_status_t intm_platform_write_output(int index, const void* src, size_t nbytes);
/** Print a NUL-terminated message on the console. */
void intm_platform_log(const char* message);
/** End the program with `status` (never returns). */
void intm_platform_exit(int status) __attribute__((noreturn));

/**
 * Measurement marker. The instruction-counting QEMU plugin records the running
 * instruction count each time this function is entered; the harness calls it right
 * before and right after intm_model_run(). Kept out of line on purpose.
 */
void intm_mark(void);

#ifdef __cplusplus
}
#endif

#endif /* INTM_RUNTIME_H_ */

/*
 * intm_status.h - statuses of the C runtime and the firmware's exit statuses.
 *
 * GENERATED from tvm_intermittent/errors.py (FirmwareStatus) by status_header();
 * do not edit: change errors.py, then run
 *   python -c "import tvm_intermittent.errors as e; e.write_status_header()"
 * The firmware exits with these values, or with 128 + n after CPU exception n.
 */
#ifndef INTM_STATUS_H_
#define INTM_STATUS_H_

/** Status returned by every runtime and model function, and the firmware's exit. */
typedef enum {
  INTM_OK = 0,                /**< the outputs were written */
  INTM_ERROR_IO = 1,          /**< I/O error reading input.bin or writing output.bin */
  INTM_ERROR_SIZE = 2,        /**< input.bin has the wrong number of bytes */
  INTM_ERROR_KERNEL = 3,      /**< a kernel reported failure */
  INTM_ERROR_NO_PROGRESS = 4, /**< no progress: boots kept failing before the next commit */
} intm_status_t;

/** Exit status after CPU exception n: INTM_FAULT_STATUS_BASE + n. */
#define INTM_FAULT_STATUS_BASE 128

/** Console text of `status`. */
static inline const char* intm_status_text(intm_status_t status) {
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

/** Name of ARMv7-M exception `number`, as the fault report prints it. */
static inline const char* intm_exception_name(unsigned number) {
  switch (number) {
    case 2u:
      return "NMI";
    case 3u:
      return "HardFault";
    case 4u:
      return "MemManage";
    case 5u:
      return "BusFault";
    case 6u:
      return "UsageFault";
    case 11u:
      return "SVCall";
    case 12u:
      return "DebugMonitor";
    case 14u:
      return "PendSV";
    case 15u:
      return "SysTick";
    default:
      return number >= 16u ? "unexpected interrupt" : "reserved exception";
  }
}

#endif /* INTM_STATUS_H_ */

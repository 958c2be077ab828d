/*
 * intm_platform_msp430.c - boot and the platform API (intm_runtime.h) on the emulated
 * MSP430 (mspdebug's simulator).
 *
 * The simulator has no files and no semihosting, so inputs, outputs, the console and the
 * exit status all live in memory the host reads and writes between runs (`load_raw`,
 * `save_raw`): the .intm_io section in FRAM (linker.ld.in). Before the first boot the host
 * zeroes it and loads every input tensor, in order, into intm_io_input; the firmware copies
 * outputs, in order, into intm_io_output, and ends by storing its status into
 * intm_io_exit_status and calling intm_exit_trap, where the simulator stops. The sizes come from bsp/msp430_sim/intm_io_config.h, which the exporter writes
 * from model.json.
 *
 * Power failures: the mailbox is FRAM, so it survives them; the read and write offsets are
 * .bss, so every boot reads the inputs from their start again and writes the outputs from
 * their start again, and only the last boot's outputs count (as with QEMU's output.bin).
 * The console accumulates over boots, as a terminal would, up to its size.
 */
#include <stdint.h>
#include <string.h>

#include "intm_io_config.h"
#include "intm_runtime.h"

int main(void);

/* Symbols defined by the linker script. */
extern uint8_t intm_data_load[];
extern uint8_t intm_data_start[];
extern uint8_t intm_data_end[];
extern uint8_t intm_bss_start[];
extern uint8_t intm_bss_end[];

#define INTM_IO __attribute__((section(".intm_io"), used))

/* The mailbox. Volatile: the host reads it behind the compiler's back. */
INTM_IO volatile uint16_t intm_io_exit_status;
INTM_IO volatile uint16_t intm_io_log_length;
/* Bytes of intm_io_output this boot wrote, so the host sees a short write as short. */
INTM_IO volatile uint16_t intm_io_output_length;
INTM_IO volatile char intm_io_log[INTM_IO_LOG_BYTES];
INTM_IO uint8_t intm_io_input[INTM_IO_INPUT_BYTES + 1u];
INTM_IO uint8_t intm_io_output[INTM_IO_OUTPUT_BYTES + 1u];

/* Where this boot's next input is read from and next output written to. */
static size_t intm_input_at;
static size_t intm_output_at;

/* Called by the reset handler with the stack set up; rebuilds SRAM state, runs main. */
__attribute__((noreturn, used)) void intm_boot(void) {
  memcpy(intm_data_start, intm_data_load, (size_t)(intm_data_end - intm_data_start));
  memset(intm_bss_start, 0, (size_t)(intm_bss_end - intm_bss_start));
  intm_platform_exit(main());
}

/*
 * The end of the emulation. Its first word, 0x0000, is no MSP430 instruction: the
 * simulator stops on it whether it was told to `run` or to `step` a power failure's
 * budget (which a breakpoint would not stop), so the instruction count at the stop is the
 * count at the exit, not that of a loop spinning after it. (An MSP430X part
 * would execute 0x0000 as MOVA; there the loop after it keeps the trap a dead end.)
 */
__attribute__((naked, noreturn, used)) void intm_exit_trap(void) {
  __asm__ volatile(".word 0x0000\n1: jmp 1b\n");
}

void intm_platform_init(void) {}

intm_status_t intm_platform_read_input(int index, void* dst, size_t nbytes) {
  if (index == 0) intm_input_at = 0;
  if (nbytes > INTM_IO_INPUT_BYTES - intm_input_at) return INTM_ERROR_SIZE;
  memcpy(dst, &intm_io_input[intm_input_at], nbytes);
  intm_input_at += nbytes;
  return INTM_OK;
}

intm_status_t intm_platform_write_output(int index, const void* src, size_t nbytes) {
  if (index == 0) intm_output_at = intm_io_output_length = 0;
  if (nbytes > INTM_IO_OUTPUT_BYTES - intm_output_at) return INTM_ERROR_SIZE;
  memcpy(&intm_io_output[intm_output_at], src, nbytes);
  intm_output_at += nbytes;
  intm_io_output_length = (uint16_t)intm_output_at;
  return INTM_OK;
}

void intm_platform_log(const char* message) {
  uint16_t at = intm_io_log_length;
  while (*message != '\0' && at < INTM_IO_LOG_BYTES) intm_io_log[at++] = *message++;
  intm_io_log_length = at;
}

void intm_platform_exit(int status) {
  intm_io_exit_status = (uint16_t)status;
  intm_exit_trap();
}

/* A stray interrupt (startup.S): the MSP430 has no fault numbers, so exception 0. */
__attribute__((noreturn, used)) void intm_fault_exit(void) {
  intm_platform_log("intm: fault: unexpected interrupt\n");
  intm_platform_exit(INTM_FAULT_STATUS_BASE);
}

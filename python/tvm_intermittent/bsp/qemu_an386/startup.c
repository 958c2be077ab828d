/*
 * startup.c - vector table, reset handler and fault handlers for QEMU mps2-an386.
 *
 * A power failure is a system reset, so the reset handler runs once per boot and may run
 * any number of times in one emulation. It keeps no state of its own and rebuilds the whole
 * volatile state every time:
 *
 *   1. scrub all of SRAM with a fixed pattern: QEMU keeps RAM across a reset, a real part
 *      loses it, and code that reads SRAM it did not write this boot must see garbage;
 *   2. enable the FPU (a reset clears CPACR);
 *   3. copy .data from flash, zero .bss (word by word: both are whole 8-byte units, see
 *      linker.ld.in), turn on the configurable fault handlers;
 *   4. call main(), then exit with its status.
 *
 * NVM (.intm_nvm, see linker.ld.in) is outside SRAM and is never touched here.
 *
 * Every exception other than reset is a fault for this firmware: the handler prints what
 * happened over semihosting and exits with status 128 + the exception number (131 for a
 * HardFault, 133 for a BusFault, ...; INTM_FAULT_STATUS_BASE and the names come from
 * intm_status.h), so a crash ends the emulation instead of hanging it.
 */
#include <stdint.h>

#include "intm_runtime.h"
#include "semihost.h"

/* Symbols defined by the linker script. */
extern uint8_t intm_sram_start[];
extern uint8_t intm_sram_end[];
extern uint8_t intm_stack_top[];
extern uint8_t intm_data_load[];
extern uint8_t intm_data_start[];
extern uint8_t intm_data_end[];
extern uint8_t intm_bss_start[];
extern uint8_t intm_bss_end[];

int main(void);

/* Value the scrub writes to every SRAM word; a float reads as about -6.3e18. */
#define INTM_SRAM_SCRUB_WORD 0xDEADBEEF
/* Stack the fault handler switches to, so that it works after a stack overflow too. */
#define INTM_FAULT_STACK_BYTES 128

#define INTM_STR_(x) #x
#define INTM_STR(x) INTM_STR_(x)

/* System control block registers (ARMv7-M Architecture Reference Manual, B3.2). */
#define INTM_SCB_CCR (*(volatile uint32_t*)0xE000ED14u)
#define INTM_SCB_SHCSR (*(volatile uint32_t*)0xE000ED24u)
#define INTM_SCB_CFSR (*(volatile uint32_t*)0xE000ED28u)
#define INTM_SCB_HFSR (*(volatile uint32_t*)0xE000ED2Cu)
#define INTM_SCB_MMFAR (*(volatile uint32_t*)0xE000ED34u)
#define INTM_SCB_BFAR (*(volatile uint32_t*)0xE000ED38u)
#define INTM_CCR_DIV_0_TRP (1u << 4)
#define INTM_SHCSR_FAULTS_ENABLE ((1u << 16) | (1u << 17) | (1u << 18))

void intm_reset_handler(void);
void intm_fault_entry(void);

/* In .intm_noinit (linker.ld.in): SRAM the boot does not zero, since nothing reads the
 * fault stack before writing it; the scrub fills it like the rest of SRAM. */
__attribute__((used, aligned(8), section(".intm_noinit")))
uint8_t intm_fault_stack[INTM_FAULT_STACK_BYTES];

/*
 * Fill SRAM, including the stack this code will use, with INTM_SRAM_SCRUB_WORD. It runs
 * before anything is on the stack and touches registers only (r0-r9 and the flags), so it
 * is naked assembly: a C function could spill to the memory it is erasing. The simulator
 * counts its instructions apart from the rest (they model physics, not firmware work),
 * which is why it is a function of its own. The linker script guarantees that SRAM is a
 * multiple of the 32 bytes one iteration stores.
 */
__attribute__((naked, used, noinline)) void intm_scrub_sram(void) {
  __asm__ volatile(
      "ldr r0, =intm_sram_start\n"
      "ldr r1, =intm_sram_end\n"
      "ldr r2, =" INTM_STR(INTM_SRAM_SCRUB_WORD) "\n"
      "mov r3, r2\n"
      "mov r4, r2\n"
      "mov r5, r2\n"
      "mov r6, r2\n"
      "mov r7, r2\n"
      "mov r8, r2\n"
      "mov r9, r2\n"
      "1:\n"
      "stmia r0!, {r2-r9}\n"
      "cmp r0, r1\n"
      "blo 1b\n"
      "bx lr\n"
      ".ltorg\n");
}

/* Initialise memory and the FPU, then call main (see the header). The loops store through
 * volatile pointers so that GCC does not turn them into calls to memcpy and memset: those
 * would link newlib's (470 bytes of flash) into every firmware for tens of bytes of work.
 * `!=` ends them (24 bytes shorter than `<`): linker.ld.in aligns both sections' starts and
 * ends to 8 bytes, so each is whole words. */
__attribute__((noreturn, used)) void intm_boot(void) {
  const uint32_t* from = (const uint32_t*)intm_data_load;
  volatile uint32_t* to = (uint32_t*)intm_data_start;
  while (to != (uint32_t*)intm_data_end) *to++ = *from++;
  to = (uint32_t*)intm_bss_start;
  while (to != (uint32_t*)intm_bss_end) *to++ = 0u;
  /* Report MemManage, BusFault and UsageFault by name instead of as HardFault, and trap
   * integer division by zero, which the core would otherwise answer with 0. */
  INTM_SCB_SHCSR |= INTM_SHCSR_FAULTS_ENABLE;
  INTM_SCB_CCR |= INTM_CCR_DIV_0_TRP;
  intm_platform_exit(main());
}

__attribute__((naked, noreturn)) void intm_reset_handler(void) {
  __asm__ volatile(
      "bl intm_scrub_sram\n"
      /* The core loads SP from the vector table on reset; set it again in case this is
       * entered by a jump. */
      "ldr r0, =intm_stack_top\n"
      "msr msp, r0\n"
      /* CPACR: full access to CP10 and CP11, before any code that may use the FPU. */
      "ldr r0, =0xE000ED88\n"
      "ldr r1, [r0]\n"
      "orr r1, r1, #0x00F00000\n"
      "str r1, [r0]\n"
      "dsb\n"
      "isb\n"
      "b intm_boot\n"
      ".ltorg\n");
}

/* ---- Faults ------------------------------------------------------------------------ */

/* Print `label`=0x`value` as eight hex digits. The fault path is cold (run at most once,
 * when the firmware is already lost), so GCC optimises it for size, not speed. */
__attribute__((cold)) static void intm_put_hex(const char* label, uint32_t value) {
  char text[12] = {'=', '0', 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 8; ++i) {
    uint32_t nibble = (value >> (28 - 4 * i)) & 0xFu;
    text[3 + i] = (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
  }
  intm_semihost_write0(label);
  intm_semihost_write0(text);
}

__attribute__((cold)) static void intm_put_decimal(uint32_t value) {
  char text[11];
  int at = 10;
  text[at] = '\0';
  do {
    text[--at] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0 && at > 0);
  intm_semihost_write0(&text[at]);
}

/*
 * Print the exception, the stacked pc/lr/xpsr when the frame lies in SRAM, and the fault
 * status registers, then exit with 128 + the exception number.
 */
__attribute__((noreturn, used, cold)) void intm_fault_report(const uint32_t* frame, uint32_t ipsr) {
  uint32_t number = ipsr & 0x1FFu;
  intm_semihost_write0("intm: fault: ");
  intm_semihost_write0(intm_exception_name(number));
  intm_semihost_write0(" (exception ");
  intm_put_decimal(number);
  intm_semihost_write0(")");
  uintptr_t at = (uintptr_t)frame;
  if (at >= (uintptr_t)intm_sram_start && at + 32 <= (uintptr_t)intm_sram_end) {
    intm_put_hex(" pc", frame[6]);
    intm_put_hex(" lr", frame[5]);
    intm_put_hex(" xpsr", frame[7]);
  } else {
    intm_put_hex(" frame outside SRAM, sp", (uint32_t)at);
  }
  intm_put_hex(" cfsr", INTM_SCB_CFSR);
  intm_put_hex(" hfsr", INTM_SCB_HFSR);
  intm_put_hex(" mmfar", INTM_SCB_MMFAR);
  intm_put_hex(" bfar", INTM_SCB_BFAR);
  intm_semihost_write0("\n");
  intm_semihost_exit(INTM_FAULT_STATUS_BASE + (int)number);
}

/*
 * Common entry of every fault: find the exception frame (MSP or PSP, by EXC_RETURN bit 2),
 * move to the private fault stack in case the fault was a stack overflow, and report.
 */
__attribute__((naked, noreturn)) void intm_fault_entry(void) {
  __asm__ volatile(
      "tst lr, #4\n"
      "ite eq\n"
      "mrseq r0, msp\n"
      "mrsne r0, psp\n"
      "mrs r1, ipsr\n"
      "ldr r2, =intm_fault_stack + " INTM_STR(INTM_FAULT_STACK_BYTES) "\n"
      "msr msp, r2\n"
      "b intm_fault_report\n"
      ".ltorg\n");
}

/* ---- Vector table ------------------------------------------------------------------ */

typedef void (*intm_vector_t)(void);

/* 16 system exceptions plus the 32 external interrupts of the AN386 image. */
#define INTM_NUM_VECTORS (16 + 32)

__attribute__((used, section(".intm_vectors"))) const intm_vector_t
    intm_vectors[INTM_NUM_VECTORS] = {
        [0] = (intm_vector_t)(uintptr_t)intm_stack_top,
        [1] = intm_reset_handler,
        [2 ... INTM_NUM_VECTORS - 1] = intm_fault_entry,
};

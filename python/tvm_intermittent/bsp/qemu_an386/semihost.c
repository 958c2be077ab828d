/*
 * semihost.c - Arm semihosting calls (see semihost.h).
 */
#include "semihost.h"

/* SYS_EXIT_EXTENDED reason "the application exited"; the second word is the exit status. */
#define INTM_ADP_STOPPED_APPLICATION_EXIT 0x20026u

intptr_t intm_semihost_call(int op, void* arg) {
  /* The debugger (here QEMU) reads the operation from r0 and the argument from r1, and
   * returns the result in r0. The memory clobber matters: the host reads and writes the
   * argument block and the buffers it points to behind the compiler's back. */
  register intptr_t r0 __asm__("r0") = op;
  register void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

int intm_semihost_open(const char* path, size_t length, int mode) {
  uintptr_t block[3] = {(uintptr_t)path, (uintptr_t)mode, length};
  return (int)intm_semihost_call(INTM_SYS_OPEN, block);
}

int intm_semihost_close(int handle) {
  uintptr_t block[1] = {(uintptr_t)handle};
  return (int)intm_semihost_call(INTM_SYS_CLOSE, block);
}

size_t intm_semihost_read(int handle, void* dst, size_t nbytes) {
  uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)dst, nbytes};
  /* SYS_READ returns the number of bytes NOT read (0 when the buffer was filled). */
  intptr_t not_read = intm_semihost_call(INTM_SYS_READ, block);
  if (not_read < 0 || (size_t)not_read > nbytes) return 0;
  return nbytes - (size_t)not_read;
}

size_t intm_semihost_write(int handle, const void* src, size_t nbytes) {
  uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)src, nbytes};
  /* Like SYS_READ, SYS_WRITE returns the number of bytes NOT written. */
  intptr_t not_written = intm_semihost_call(INTM_SYS_WRITE, block);
  if (not_written < 0 || (size_t)not_written > nbytes) return 0;
  return nbytes - (size_t)not_written;
}

void intm_semihost_write0(const char* text) {
  intm_semihost_call(INTM_SYS_WRITE0, (void*)text);
}

void intm_semihost_exit(int status) {
  /* SYS_EXIT (0x18) only distinguishes success from failure on 32-bit Arm; the extended
   * call carries the full status, which QEMU passes to exit(). */
  uintptr_t block[2] = {INTM_ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)status};
  intm_semihost_call(INTM_SYS_EXIT_EXTENDED, block);
  /* Only reached under a debugger that ignores the call; there is nothing left to do. */
  for (;;) {
  }
}

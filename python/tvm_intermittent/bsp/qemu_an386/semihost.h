/*
 * semihost.h - Arm semihosting calls (BKPT 0xAB) used by the QEMU board support package.
 *
 * Semihosting is the only channel between the firmware and the host: QEMU performs these
 * calls on the host's files and console, so the emulated board needs no UART driver, and
 * SYS_EXIT_EXTENDED hands the firmware's exit status to QEMU's own exit status. Relative
 * paths resolve against QEMU's working directory.
 *
 * Every call needs QEMU started with `-semihosting-config enable=on,target=native`; without
 * it BKPT escalates to a HardFault.
 */
#ifndef INTM_SEMIHOST_H_
#define INTM_SEMIHOST_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Operation numbers from the Arm semihosting specification. */
enum {
  INTM_SYS_OPEN = 0x01,
  INTM_SYS_CLOSE = 0x02,
  INTM_SYS_WRITE0 = 0x04,
  INTM_SYS_WRITE = 0x05,
  INTM_SYS_READ = 0x06,
  INTM_SYS_EXIT_EXTENDED = 0x20,
};

/** SYS_OPEN modes: the index of the ISO C fopen() mode string ("rb" is 1, "wb" is 5). */
enum {
  INTM_SEMIHOST_MODE_RB = 1,
  INTM_SEMIHOST_MODE_WB = 5,
};

/** Issue semihosting operation `op` with the argument (block) `arg`; returns r0. */
intptr_t intm_semihost_call(int op, void* arg);

/** Open `path` of `length` characters (without the terminating NUL, which SYS_OPEN also
 *  needs); returns a non-negative handle, or -1 on failure. The caller gives the length,
 *  which it knows at compile time, so that no strlen() (220 bytes of newlib; GCC turns a
 *  counting loop into a call to it) is linked in. */
int intm_semihost_open(const char* path, size_t length, int mode);

/** Close a handle from intm_semihost_open(); returns 0 on success. */
int intm_semihost_close(int handle);

/** Read up to `nbytes` into `dst`; returns the number of bytes actually read. */
size_t intm_semihost_read(int handle, void* dst, size_t nbytes);

/** Write `nbytes` from `src`; returns the number of bytes actually written. */
size_t intm_semihost_write(int handle, const void* src, size_t nbytes);

/** Print a NUL-terminated string on the host console. */
void intm_semihost_write0(const char* text);

/** Stop the emulator; QEMU exits with `status`. */
void intm_semihost_exit(int status) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* INTM_SEMIHOST_H_ */

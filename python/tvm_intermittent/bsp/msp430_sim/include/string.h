/*
 * string.h - the part of the C library's string.h that the runtime and kernels use, for
 * the MSP430 build, which has no C library. Implemented in bsp/msp430_sim/intm_libc.c.
 */
#ifndef INTM_MSP430_STRING_H_
#define INTM_MSP430_STRING_H_

#include <stddef.h>

void* memcpy(void* restrict dst, const void* restrict src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
void* memset(void* dst, int value, size_t n);
int memcmp(const void* a, const void* b, size_t n);

#endif /* INTM_MSP430_STRING_H_ */

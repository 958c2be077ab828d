/*
 * intm_libc.c - the C library and compiler run-time functions the MSP430 build calls.
 *
 * clang --target=msp430 ships neither a C library nor a compiler run-time, so this file
 * provides what the runtime and generated kernels need: memcpy/memmove/memset/memcmp,
 * variable shifts (the MSP430 shifts by one bit per instruction) and integer division.
 * Multiplication is in intm_mspabi.S, on the hardware multiplier, and so are the entry
 * points of the 64-bit division, which clang calls with a calling convention of its own;
 * floating point is in intm_softfloat.c.
 *
 * Compiled with -fno-builtin: otherwise clang may turn the byte loops below back into
 * calls to memcpy and memset, that is, into themselves. For the same reason no function
 * here shifts by a variable amount or divides (each would call itself or a sibling):
 * every loop moves one bit at a time with constant shifts, which compile inline.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void* memcpy(void* restrict dst, const void* restrict src, size_t n) {
  uint8_t* d = dst;
  const uint8_t* s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  uint8_t* d = dst;
  const uint8_t* s = src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    while (n--) d[n] = s[n];
  }
  return dst;
}

void* memset(void* dst, int value, size_t n) {
  uint8_t* d = dst;
  while (n--) *d++ = (uint8_t)value;
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const uint8_t* x = a;
  const uint8_t* y = b;
  for (; n; --n, ++x, ++y) {
    if (*x != *y) return *x < *y ? -1 : 1;
  }
  return 0;
}

/* ---- Variable shifts (MSP430 EABI names; the count is taken modulo the width) ------ */

int16_t __mspabi_slli(int16_t a, int16_t count) {
  uint16_t x = (uint16_t)a;
  for (count &= 15; count; --count) x <<= 1;
  return (int16_t)x;
}

uint16_t __mspabi_srli(uint16_t a, int16_t count) {
  for (count &= 15; count; --count) a >>= 1;
  return a;
}

int16_t __mspabi_srai(int16_t a, int16_t count) {
  for (count &= 15; count; --count) a >>= 1;
  return a;
}

uint32_t __mspabi_slll(uint32_t a, int16_t count) {
  for (count &= 31; count; --count) a <<= 1;
  return a;
}

uint32_t __mspabi_srll(uint32_t a, int16_t count) {
  for (count &= 31; count; --count) a >>= 1;
  return a;
}

int32_t __mspabi_sral(int32_t a, int16_t count) {
  for (count &= 31; count; --count) a >>= 1;
  return a;
}

/* 64-bit shifts, called with the ordinary convention (value in r12-r15, count on the
 * stack). Whole 32-bit words move first, then the rest one bit at a time on the halves. */
typedef union {
  uint64_t u;
  int64_t s;
  struct {
    uint32_t lo;
    uint32_t hi;
  } w;
} intm_u64_t;

int64_t __ashldi3(int64_t a, int16_t count) {
  intm_u64_t x = {.s = a};
  count &= 63;
  if (count >= 32) {
    x.w.hi = x.w.lo;
    x.w.lo = 0;
    count -= 32;
  }
  for (; count; --count) {
    x.w.hi = (x.w.hi << 1) | (x.w.lo >> 31);
    x.w.lo <<= 1;
  }
  return x.s;
}

uint64_t __lshrdi3(uint64_t a, int16_t count) {
  intm_u64_t x = {.u = a};
  count &= 63;
  if (count >= 32) {
    x.w.lo = x.w.hi;
    x.w.hi = 0;
    count -= 32;
  }
  for (; count; --count) {
    x.w.lo = (x.w.lo >> 1) | (x.w.hi << 31);
    x.w.hi >>= 1;
  }
  return x.u;
}

int64_t __ashrdi3(int64_t a, int16_t count) {
  intm_u64_t x = {.s = a};
  uint32_t sign = (x.w.hi & 0x80000000u) ? 0xFFFFFFFFu : 0u;
  count &= 63;
  if (count >= 32) {
    x.w.lo = x.w.hi;
    x.w.hi = sign;
    count -= 32;
  }
  for (; count; --count) {
    x.w.lo = (x.w.lo >> 1) | (x.w.hi << 31);
    x.w.hi = (x.w.hi >> 1) | (sign << 31);
  }
  return x.s;
}

/* ---- Division: restoring long division, one quotient bit per step ------------------- */

/* Quotient of n / d and the remainder in *rem. Division by zero gives all ones and n, as
 * no kernel divides by zero (the Cortex-M4 build traps instead). */
static uint32_t intm_udivmod32(uint32_t n, uint32_t d, uint32_t* rem) {
  uint32_t q = 0, r = 0;
  if (d == 0) {
    *rem = n;
    return 0xFFFFFFFFu;
  }
  for (int i = 0; i < 32; ++i) {
    r = (r << 1) | (n >> 31);
    n <<= 1;
    q <<= 1;
    if (r >= d) {
      r -= d;
      q |= 1u;
    }
  }
  *rem = r;
  return q;
}

uint64_t intm_udivmod64(uint64_t n, uint64_t d, uint64_t* rem) {
  intm_u64_t q = {.u = 0}, r = {.u = 0}, x = {.u = n};
  if (d == 0) {
    *rem = n;
    return ~(uint64_t)0;
  }
  for (int i = 0; i < 64; ++i) {
    r.w.hi = (r.w.hi << 1) | (r.w.lo >> 31);
    r.w.lo = (r.w.lo << 1) | (x.w.hi >> 31);
    x.w.hi = (x.w.hi << 1) | (x.w.lo >> 31);
    x.w.lo <<= 1;
    q.w.hi = (q.w.hi << 1) | (q.w.lo >> 31);
    q.w.lo <<= 1;
    if (r.u >= d) {
      r.u -= d;
      q.w.lo |= 1u;
    }
  }
  *rem = r.u;
  return q.u;
}

uint32_t __mspabi_divul(uint32_t n, uint32_t d) {
  uint32_t r;
  return intm_udivmod32(n, d, &r);
}

uint32_t __mspabi_remul(uint32_t n, uint32_t d) {
  uint32_t r;
  intm_udivmod32(n, d, &r);
  return r;
}

/* C rounds the quotient toward zero; the remainder has the dividend's sign. */
int32_t __mspabi_divli(int32_t n, int32_t d) {
  uint32_t r, q = intm_udivmod32(n < 0 ? 0u - (uint32_t)n : (uint32_t)n,
                                 d < 0 ? 0u - (uint32_t)d : (uint32_t)d, &r);
  return (int32_t)(((n < 0) != (d < 0)) ? 0u - q : q);
}

int32_t __mspabi_remli(int32_t n, int32_t d) {
  uint32_t r;
  intm_udivmod32(n < 0 ? 0u - (uint32_t)n : (uint32_t)n,
                 d < 0 ? 0u - (uint32_t)d : (uint32_t)d, &r);
  return (int32_t)(n < 0 ? 0u - r : r);
}

uint16_t __mspabi_divu(uint16_t n, uint16_t d) { return (uint16_t)__mspabi_divul(n, d); }
uint16_t __mspabi_remu(uint16_t n, uint16_t d) { return (uint16_t)__mspabi_remul(n, d); }
int16_t __mspabi_divi(int16_t n, int16_t d) { return (int16_t)__mspabi_divli(n, d); }
int16_t __mspabi_remi(int16_t n, int16_t d) { return (int16_t)__mspabi_remli(n, d); }

/* 64-bit division, reached through the wrappers in intm_mspabi.S. */
int64_t intm_divlli(int64_t n, int64_t d) {
  uint64_t r, q = intm_udivmod64(n < 0 ? 0u - (uint64_t)n : (uint64_t)n,
                                 d < 0 ? 0u - (uint64_t)d : (uint64_t)d, &r);
  return (int64_t)(((n < 0) != (d < 0)) ? 0u - q : q);
}

int64_t intm_remlli(int64_t n, int64_t d) {
  uint64_t r;
  intm_udivmod64(n < 0 ? 0u - (uint64_t)n : (uint64_t)n,
                 d < 0 ? 0u - (uint64_t)d : (uint64_t)d, &r);
  return (int64_t)(n < 0 ? 0u - r : r);
}

uint64_t intm_divull(uint64_t n, uint64_t d) {
  uint64_t r;
  return intm_udivmod64(n, d, &r);
}

uint64_t intm_remull(uint64_t n, uint64_t d) {
  uint64_t r;
  intm_udivmod64(n, d, &r);
  return r;
}

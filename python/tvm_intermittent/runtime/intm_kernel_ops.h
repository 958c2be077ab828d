/*
 * intm_kernel_ops.h - inline helpers the generated kernels call.
 *
 * TIR's min, max, floordiv and floormod have exact semantics that C operators lack
 * (C's / and % truncate toward zero), so each gets a small typed function here instead of
 * a macro that would evaluate its arguments twice.
 */
#ifndef INTM_KERNEL_OPS_H_
#define INTM_KERNEL_OPS_H_

/* The kernels that include this header are compiled without GCC's scheduling before
 * register allocation: on the Cortex-M4 it hoists the weight loads of a register-blocked
 * SMLAD step above the multiply-accumulates, which then need more registers than the 13
 * there are, and the spilled accumulators cost more than the scheduling saves. Measured
 * on the zoo (bench/README.md, "Convolution and fully connected kernels"). Only GCC for
 * Arm is concerned: the host build and clang ignore it. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__arm__)
#pragma GCC optimize("no-schedule-insns")
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#define INTM_DEFINE_MINMAX(suffix, type)                                             \
  static inline type intm_min_##suffix(type a, type b) { return a < b ? a : b; } \
  static inline type intm_max_##suffix(type a, type b) { return a > b ? a : b; }

INTM_DEFINE_MINMAX(f32, float)
INTM_DEFINE_MINMAX(f64, double)
INTM_DEFINE_MINMAX(i8, int8_t)
INTM_DEFINE_MINMAX(i16, int16_t)
INTM_DEFINE_MINMAX(i32, int32_t)
INTM_DEFINE_MINMAX(i64, int64_t)
INTM_DEFINE_MINMAX(u8, uint8_t)
INTM_DEFINE_MINMAX(u16, uint16_t)
INTM_DEFINE_MINMAX(u32, uint32_t)

/* Floor division and modulo: round toward negative infinity, as TIR defines them. */
#define INTM_DEFINE_FLOOR(suffix, type)                                        \
  static inline type intm_floordiv_##suffix(type a, type b) {                 \
    type q = a / b;                                                            \
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;                   \
  }                                                                            \
  static inline type intm_floormod_##suffix(type a, type b) {                 \
    type r = a % b;                                                            \
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;                       \
  }                                                                            \
  static inline type intm_abs_##suffix(type a) { return a < 0 ? (type)-a : a; }

INTM_DEFINE_FLOOR(i8, int8_t)
INTM_DEFINE_FLOOR(i16, int16_t)
INTM_DEFINE_FLOOR(i32, int32_t)
INTM_DEFINE_FLOOR(i64, int64_t)

static inline float intm_sigmoid_f32(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Cortex-M4 DSP helpers: two 16-bit multiply-accumulates per instruction on int8 data.
 * Kernels for boards with the DSP extension call them; elsewhere the portable versions
 * below compute the same values. */
#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif
/* Four int8 values as one word (any alignment; the Cortex-M4 loads unaligned words). */
static inline int32_t intm_load_s8x4(const int8_t* p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}
#if defined(__ARM_FEATURE_DSP)
/* Bytes 0 and 2, sign-extended into the low and high halves. */
static inline int32_t intm_sxtb16(int32_t x) { return (int32_t)__sxtb16((uint32_t)x); }
/* Bytes 1 and 3, likewise (SXTB16 with its operand rotated right by 8). */
static inline int32_t intm_sxtb16_ror8(int32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
/* acc + a.lo * b.lo + a.hi * b.hi, on signed 16-bit halves. */
static inline int32_t intm_smlad(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)__smlad((uint32_t)a, (uint32_t)b, (uint32_t)acc);
}
#else
static inline int32_t intm_sxtb16(int32_t x) {
  return (int32_t)((uint32_t)(uint16_t)(int8_t)x | ((uint32_t)(uint16_t)(int8_t)(x >> 16) << 16));
}
static inline int32_t intm_sxtb16_ror8(int32_t x) { return intm_sxtb16(x >> 8); }
static inline int32_t intm_smlad(int32_t a, int32_t b, int32_t acc) {
  return acc + (int16_t)a * (int16_t)b + (int16_t)(a >> 16) * (int16_t)(b >> 16);
}
#endif

#endif /* INTM_KERNEL_OPS_H_ */

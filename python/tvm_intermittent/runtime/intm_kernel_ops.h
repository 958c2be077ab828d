/*
 * intm_kernel_ops.h - inline helpers the generated kernels call.
 *
 * TIR's min, max, floordiv and floormod have exact semantics that C operators lack
 * (C's / and % truncate toward zero), so each gets a small typed function here instead of
 * a macro that would evaluate its arguments twice.
 */
#ifndef INTM_KERNEL_OPS_H_
#define INTM_KERNEL_OPS_H_

#include <math.h>
#include <stdint.h>

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

#endif /* INTM_KERNEL_OPS_H_ */

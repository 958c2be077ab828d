/*
 * intm_kernel_ops_dw.h - inline helpers of the depthwise, ADD, average pooling and float
 * QUANTIZE kernels (transform/depthwise_kernels.py, elementwise_kernels.py,
 * pooling_kernels.py, quantize_kernel.py); model/kernels.c includes it after
 * intm_kernel_ops.h (codegen/model_source.py).
 *
 * Each helper has a Cortex-M4 form (one DSP or FPU instruction or a few, under
 * __ARM_FEATURE_DSP, __ARM_FEATURE_SAT or __ARM_FP) and a portable C form computing the same
 * value, so a host build of the same kernels gives the same outputs. None of them reads or
 * writes memory: a kernel that calls them stays as idempotent as its TIR says, and a power
 * failure inside one loses only registers, which the tile's re-execution recomputes.
 */
#ifndef INTM_KERNEL_OPS_DW_H_
#define INTM_KERNEL_OPS_DW_H_

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* acc + a.lo * b.lo and acc + a.hi * b.hi on signed 16-bit halves: one multiply-accumulate
 * of one channel each (SMLABB, SMLATT), for depthwise taps whose channels must not be
 * summed together as SMLAD would. */
#if defined(__ARM_FEATURE_DSP)
static inline int32_t intm_smlabb(int32_t a, int32_t b, int32_t acc) {
  return __smlabb(a, b, acc);
}
static inline int32_t intm_smlatt(int32_t a, int32_t b, int32_t acc) {
  return __smlatt(a, b, acc);
}
#else
static inline int32_t intm_smlabb(int32_t a, int32_t b, int32_t acc) {
  return acc + (int32_t)(int16_t)a * (int32_t)(int16_t)b;
}
static inline int32_t intm_smlatt(int32_t a, int32_t b, int32_t acc) {
  return acc + (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
}
#endif

/* TFLM's SaturatingRoundingDoublingHighMul of x and a positive multiplier m,
 * (x * m + 2**30) >> 31, for |x| < 2**30 (the kernels' accumulators stay far below).
 * SMMULR rounds at bit 32: (2x * m + 2**31) >> 32 is the same integer, in two
 * instructions (a shift and SMMULR) instead of a 64-bit multiply, add and shift. */
static inline int32_t intm_high_mul(int32_t x, int32_t m) {
#if defined(__ARM_FEATURE_DSP)
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(x * 2), "r"(m));
  return r;
#else
  return (int32_t)(((int64_t)x * 2 * (int64_t)m + ((int64_t)1 << 31)) >> 32);
#endif
}

/* The same SaturatingRoundingDoublingHighMul for every int32 x, in one instruction, given
 * twice_m = 2m - 2**32 (an int32) for a multiplier m in [2**30, 2**31), where TFLM's
 * QuantizeMultiplier puts every nonzero one. x * 2m = x * twice_m + x * 2**32, so
 * (x * m + 2**30) >> 31 = (x * 2m + 2**31) >> 32 = x + ((x * twice_m + 2**31) >> 32), and
 * SMMLAR adds x as the high word of exactly that 64-bit sum (|x * 2m| < 2**63: no wrap). */
static inline int32_t intm_high_mul_2m(int32_t x, int32_t twice_m) {
#if defined(__ARM_FEATURE_DSP)
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(twice_m), "r"(x));
  return r;
#else
  return (int32_t)(((int64_t)x * ((int64_t)twice_m + ((int64_t)1 << 32)) + ((int64_t)1 << 31))
                   >> 32);
#endif
}

/* acc + the sign-extended bytes 0 and 2 (intm_sxtab16) or 1 and 3 (..._ror8) of x, in
 * the two 16-bit halves of acc (SXTAB16): four int8 values summed per two instructions.
 * Each half wraps at 16 bits like the instruction; the pooling kernel sums at most 256
 * values per half, within int16. */
#if defined(__ARM_FEATURE_DSP)
static inline int32_t intm_sxtab16(int32_t acc, int32_t x) {
  return (int32_t)__sxtab16((uint32_t)acc, (uint32_t)x);
}
static inline int32_t intm_sxtab16_ror8(int32_t acc, int32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
  return r;
}
#else
static inline int32_t intm_sxtab16(int32_t acc, int32_t x) {
  uint32_t lo = (uint32_t)(acc + (int8_t)x) & 0xFFFFu;
  uint32_t hi = (uint32_t)((acc >> 16) + (int8_t)(x >> 16)) & 0xFFFFu;
  return (int32_t)(lo | (hi << 16));
}
static inline int32_t intm_sxtab16_ror8(int32_t acc, int32_t x) {
  return intm_sxtab16(acc, (int32_t)(((uint32_t)x >> 8) | ((uint32_t)x << 24)));
}
#endif

/* (a * m + 2**31) >> 32, SMMULR: TFLM's SaturatingRoundingDoublingHighMul of a / 2 and m
 * for an even a whose half is below 2**30 in magnitude (the elementwise kernels pass their
 * operands already doubled, folded into a constant left shift). */
static inline int32_t intm_smmulr(int32_t a, int32_t m) {
#if defined(__ARM_FEATURE_DSP)
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(m));
  return r;
#else
  return (int32_t)(((int64_t)a * (int64_t)m + ((int64_t)1 << 31)) >> 32);
#endif
}

/* x saturated to int8 (SSAT #8); with the shift, (x >> 1) saturated: the halving that
 * finishes a rounding right shift (see depthwise_kernels.py) in the same instruction. */
#if defined(__ARM_FEATURE_SAT)
static inline int32_t intm_ssat8(int32_t x) { return __ssat(x, 8); }
static inline int32_t intm_ssat8_asr1(int32_t x) {
  int32_t r;
  __asm__("ssat %0, #8, %1, asr #1" : "=r"(r) : "r"(x));
  return r;
}
#else
static inline int32_t intm_ssat8(int32_t x) { return x > 127 ? 127 : (x < -128 ? -128 : x); }
static inline int32_t intm_ssat8_asr1(int32_t x) { return intm_ssat8(x >> 1); }
#endif

/* TFLM's float QUANTIZE of one element whose quotient q = x / scale is given:
 * round(q) halves away from zero (TfLiteRound, C's roundf), plus the zero point, saturated
 * to int8 (intm_quantize_s8) or uint8 (intm_quantize_u8). NaN gives the zero point.
 *
 * u = trunc(2q) is exact (doubling a float is exact) and is one VCVT to fixed point with
 * one fraction bit, which rounds toward zero and saturates. Rounding q half away from
 * zero is then floor((u + 1) / 2) for u >= 0 and floor(u / 2) for u < 0 (nested floors:
 * floor((floor(2q) + 1) / 2) = floor(q + 1/2)), i.e. (u + (u >> 31) + 1) >> 1, and with the
 * zero point (u + (u >> 31) + 1 + 2 zp) >> 1: the add of a constant saturates (QADD) so a
 * saturated u stays at the bound, and the halving is the shift of SSAT/USAT. One VCVT and
 * three integer instructions, no compare, no libm call. The portable form clamps q to
 * +-2**24 first (beyond that every result saturates anyway) and computes the same bytes. */
#if defined(__ARM_FP) && defined(__ARM_FEATURE_DSP)
static inline int32_t intm_twice_plus(float q, int32_t zero_point) {
  float u_bits;
  int32_t u;
  __asm__("vcvt.s32.f32 %0, %0, #1" : "=t"(u_bits) : "0"(q));
  memcpy(&u, &u_bits, 4);
  return __qadd(u + (u >> 31), 1 + 2 * zero_point);
}
static inline int32_t intm_quantize_s8(float q, int32_t zero_point) {
  return intm_ssat8_asr1(intm_twice_plus(q, zero_point));
}
static inline int32_t intm_quantize_u8(float q, int32_t zero_point) {
  int32_t r;
  __asm__("usat %0, #8, %1, asr #1" : "=r"(r) : "r"(intm_twice_plus(q, zero_point)));
  return r;
}
#else
static inline int32_t intm_twice_plus(float q, int32_t zero_point) {
  if (!(q == q)) q = 0.0f;
  if (q > 16777216.0f) q = 16777216.0f;
  if (q < -16777216.0f) q = -16777216.0f;
  int32_t u = (int32_t)(q * 2.0f);
  return u + (u < 0 ? -1 : 0) + 1 + 2 * zero_point;
}
static inline int32_t intm_quantize_s8(float q, int32_t zero_point) {
  int32_t r = intm_twice_plus(q, zero_point) >> 1;
  return r > 127 ? 127 : (r < -128 ? -128 : r);
}
static inline int32_t intm_quantize_u8(float q, int32_t zero_point) {
  int32_t r = intm_twice_plus(q, zero_point) >> 1;
  return r > 255 ? 255 : (r < 0 ? 0 : r);
}
#endif

#endif /* INTM_KERNEL_OPS_DW_H_ */

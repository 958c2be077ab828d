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

/* The register-blocked micro-kernel of the int8 convolutions: two output pixels by two
 * output channels over a run of `words` input words (four int8 channels each).
 *
 *   a0 += x0 . w0    a1 += x0 . w1    (pixel 0 from input byte x0, channels 0 and 1)
 *   a2 += x1 . w0    a3 += x1 . w1    (pixel 1 from the byte dx after x0)
 *
 * A macro over an inline function: the kernels pass the four accumulators (elements of
 * their local array) and the run's first input byte and weight as lvalues, whose addresses
 * it takes; after inlining GCC keeps the accumulators in registers.
 *
 * The weights are interleaved at compile time (transform/conv_blocks.py,
 * interleave_pairs): word k of channel 0 at w + 8k, of channel 1 at w + 8k + 4, so one
 * pointer walks them with post-increment loads. Why assembly: the two pixels' unpacked
 * inputs, the two unpacked weight halves and the four accumulators are 10 values, plus the
 * input, weight and pixel-offset pointers and the count, 14: all the Cortex-M4 has. GCC,
 * left to itself, hoists the input loads out of the loop over channel blocks and spills
 * them (1.8 instructions per MAC in kws' pointwise layers); here a word costs 2 + 4 input
 * instructions (LDR, SXTB16), 2 x 3 for the weights (LDR, two SXTB16), 8 SMLAD and the
 * SUBS/BNE of the count, every two words: 21 for 16 multiply-accumulates.
 * The portable version below computes the same sums (no DSP, the host build).
 *
 * Power failures: a run stores nothing (it reads the input and weights, its sums live in
 * registers and the caller's local array), so a failure inside it loses only SRAM and
 * registers; the tile that called it starts again from its bias, as any tile does. The asm
 * reads memory the compiler cannot see through its operands, hence the "memory" clobber. */
#define intm_mac_2x2_s8(a0, a1, a2, a3, x0, dx, w0, words) \
  intm_mac_2x2_s8_run(&(a0), &(a1), &(a2), &(a3), &(x0), (dx), &(w0), (words))
#if defined(__ARM_FEATURE_DSP)
/* One word of the run: the operands are named as in intm_mac_2x2_s8_run's asm. */
#define INTM_MAC_2X2_WORD                          \
  "ldr     %[o1], [%[x], %[dx]]\n\t"               \
  "ldr     %[o0], [%[x]], #4\n\t"                  \
  "sxtb16  %[e1], %[o1]\n\t"                       \
  "sxtb16  %[o1], %[o1], ror #8\n\t"               \
  "sxtb16  %[e0], %[o0]\n\t"                       \
  "sxtb16  %[o0], %[o0], ror #8\n\t"               \
  "ldr     %[wv], [%[w]], #4\n\t"                  \
  "sxtb16  %[t], %[wv]\n\t"                        \
  "sxtb16  %[wv], %[wv], ror #8\n\t"               \
  "smlad   %[a0], %[e0], %[t], %[a0]\n\t"          \
  "smlad   %[a0], %[o0], %[wv], %[a0]\n\t"         \
  "smlad   %[a2], %[e1], %[t], %[a2]\n\t"          \
  "smlad   %[a2], %[o1], %[wv], %[a2]\n\t"         \
  "ldr     %[wv], [%[w]], #4\n\t"                  \
  "sxtb16  %[t], %[wv]\n\t"                        \
  "sxtb16  %[wv], %[wv], ror #8\n\t"               \
  "smlad   %[a1], %[e0], %[t], %[a1]\n\t"          \
  "smlad   %[a1], %[o0], %[wv], %[a1]\n\t"         \
  "smlad   %[a3], %[e1], %[t], %[a3]\n\t"          \
  "smlad   %[a3], %[o1], %[wv], %[a3]\n\t"
#define INTM_MAC_2X2_OPERANDS                                                                 \
  : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),    \
    [n] "+r"(pairs), [e0] "=&r"(e0), [o0] "=&r"(o0), [e1] "=&r"(e1), [o1] "=&r"(o1),          \
    [wv] "=&r"(wv), [t] "=&r"(t)                                                              \
  : [dx] "r"(dx)                                                                              \
  : "cc", "memory"
#endif
static inline void intm_mac_2x2_s8_run(int32_t* p0, int32_t* p1, int32_t* p2, int32_t* p3,
                                       const int8_t* x, int32_t dx, const int8_t* w,
                                       int32_t words) {
#if defined(__ARM_FEATURE_DSP)
  int32_t a0 = *p0, a1 = *p1, a2 = *p2, a3 = *p3;
  int32_t e0, o0, e1, o1, wv, t;
  int32_t pairs = words >> 1;
  /* An odd word first, then two words per turn of the count (the kernels pass `words` as a
   * constant, so only the code a run needs is compiled). */
  if (words & 1) __asm__(INTM_MAC_2X2_WORD INTM_MAC_2X2_OPERANDS);
  if (pairs)
    __asm__("1:\n\t" INTM_MAC_2X2_WORD INTM_MAC_2X2_WORD
            "subs    %[n], %[n], #1\n\t"
            "bne     1b\n\t" INTM_MAC_2X2_OPERANDS);
  *p0 = a0;
  *p1 = a1;
  *p2 = a2;
  *p3 = a3;
#else
  for (int32_t k = 0; k < words * 4; ++k) {
    int32_t x0 = x[k], x1 = x[dx + k];
    int32_t w0 = w[(k / 4) * 8 + k % 4], w1 = w[(k / 4) * 8 + 4 + k % 4];
    *p0 += x0 * w0;
    *p1 += x0 * w1;
    *p2 += x1 * w0;
    *p3 += x1 * w1;
  }
#endif
}

#endif /* INTM_KERNEL_OPS_H_ */

/*
 * intm_softfloat.c - IEEE 754 single precision for the MSP430 build, which has no FPU and,
 * here, no compiler run-time: the helpers clang calls for float arithmetic, comparison
 * and conversion (MSP430 EABI names), and expf for softmax.
 *
 * Arithmetic rounds to nearest, ties to even, with subnormals, infinities and NaN, so that
 * + - * / give the bits an IEEE FPU (the Cortex-M4's, numpy's float32) gives; the tests
 * compare them with numpy bit for bit. Internally a value is (sign, exp, sig) with
 * value = sig * 2^(exp - 156), sig's leading one at bit 30 and seven rounding bits below
 * the 23 kept: intm_round_pack rounds and packs that form (the layout of Berkeley
 * SoftFloat's roundPackToF32, written afresh for 16-bit int).
 */
#include <stdint.h>

typedef union {
  float f;
  uint32_t u;
} intm_f32_t;

#define INTM_F32_NAN 0x7FC00000u
#define INTM_F32_INF 0x7F800000u

static float intm_bits(uint32_t u) {
  intm_f32_t v = {.u = u};
  return v.f;
}

static uint32_t intm_u(float f) {
  intm_f32_t v = {.f = f};
  return v.u;
}

/* a >> dist, with every bit shifted out ORed into bit 0 ("sticky"). */
static uint32_t intm_shift_right_jam(uint32_t a, int16_t dist) {
  if (dist <= 0) return a;
  if (dist >= 31) return a != 0;
  return (a >> dist) | ((a << (32 - dist)) != 0);
}

/* Round sig (leading one at bit 30, or lower for a subnormal result) to 24 bits and
 * pack; exp is one less than the biased exponent of a normal result. */
static float intm_round_pack(uint32_t sign, int16_t exp, uint32_t sig) {
  if (exp < 0) {
    sig = intm_shift_right_jam(sig, -exp);
    exp = 0;
  } else if (exp >= 0xFD && (exp > 0xFD || sig + 0x40u >= 0x80000000u)) {
    return intm_bits((sign << 31) | INTM_F32_INF);
  }
  uint32_t round_bits = sig & 0x7Fu;
  sig = (sig + 0x40u) >> 7;
  /* A tie: to even. (A plain ~1u has int's 16 bits here and would clear the high half.) */
  if (round_bits == 0x40u) sig &= ~(uint32_t)1;
  if (sig == 0) exp = 0;
  return intm_bits((sign << 31) + ((uint32_t)exp << 23) + sig);
}

/* Unpack a finite nonzero value: sig with the leading one at bit 23, exp biased. */
static void intm_unpack(uint32_t u, int16_t* exp, uint32_t* sig) {
  *exp = (int16_t)((u >> 23) & 0xFF);
  *sig = u & 0x7FFFFFu;
  if (*exp == 0) { /* subnormal: normalize */
    *exp = 1;
    while (!(*sig & 0x800000u)) {
      *sig <<= 1;
      --*exp;
    }
  } else {
    *sig |= 0x800000u;
  }
}

static int intm_is_nan(uint32_t u) { return (u & 0x7FFFFFFFu) > INTM_F32_INF; }

float __mspabi_addf(float a, float b) {
  uint32_t ua = intm_u(a), ub = intm_u(b);
  if (intm_is_nan(ua) || intm_is_nan(ub)) return intm_bits(INTM_F32_NAN);
  uint32_t ma = ua & 0x7FFFFFFFu, mb = ub & 0x7FFFFFFFu;
  if (ma == INTM_F32_INF || mb == INTM_F32_INF) {
    if (ma == INTM_F32_INF && mb == INTM_F32_INF && (ua ^ ub) >> 31) {
      return intm_bits(INTM_F32_NAN); /* inf - inf */
    }
    return ma == INTM_F32_INF ? a : b;
  }
  if (mb == 0) return ma == 0 ? intm_bits(ua & ub) : a; /* -0 + -0 = -0, else +0 */
  if (ma == 0) return b;
  if (mb > ma) { /* a is the larger magnitude */
    uint32_t t = ua;
    ua = ub;
    ub = t;
  }
  int16_t ea, eb;
  uint32_t sa, sb;
  intm_unpack(ua, &ea, &sa);
  intm_unpack(ub, &eb, &sb);
  /* Leading ones at bit 29: a sum carries at most into bit 30. */
  sa <<= 6;
  sb = intm_shift_right_jam(sb << 6, ea - eb);
  uint32_t sign = ua >> 31, sig;
  if ((ua ^ ub) >> 31) {
    sig = sa - sb;
    if (sig == 0) return 0.0f; /* x - x is +0 when rounding to nearest */
  } else {
    sig = sa + sb;
  }
  /* value = sig * 2^(ea - 156); a carry already put the leading one at bit 30, else
   * shift it there (exactly: the bits shifted in are zeros). */
  int16_t exp = ea;
  while (!(sig & 0x40000000u)) {
    sig <<= 1;
    --exp;
  }
  return intm_round_pack(sign, exp, sig);
}

float __mspabi_subf(float a, float b) {
  return __mspabi_addf(a, intm_bits(intm_u(b) ^ 0x80000000u));
}

float __mspabi_mpyf(float a, float b) {
  uint32_t ua = intm_u(a), ub = intm_u(b);
  uint32_t sign = (ua ^ ub) >> 31;
  if (intm_is_nan(ua) || intm_is_nan(ub)) return intm_bits(INTM_F32_NAN);
  uint32_t ma = ua & 0x7FFFFFFFu, mb = ub & 0x7FFFFFFFu;
  if (ma == INTM_F32_INF || mb == INTM_F32_INF) {
    if (ma == 0 || mb == 0) return intm_bits(INTM_F32_NAN); /* inf * 0 */
    return intm_bits((sign << 31) | INTM_F32_INF);
  }
  if (ma == 0 || mb == 0) return intm_bits(sign << 31);
  int16_t ea, eb;
  uint32_t sa, sb;
  intm_unpack(ua, &ea, &sa);
  intm_unpack(ub, &eb, &sb);
  /* (sa << 7) * (sb << 8) has its leading one at bit 62 or 61; keep the high word. */
  uint64_t product = (uint64_t)(sa << 7) * (uint64_t)(sb << 8);
  uint32_t sig = (uint32_t)(product >> 32) | ((uint32_t)product != 0);
  int16_t exp = (int16_t)(ea + eb - 0x7F);
  if (sig < 0x40000000u) {
    --exp;
    sig <<= 1;
  }
  return intm_round_pack(sign, exp, sig);
}

float __mspabi_divf(float a, float b) {
  uint32_t ua = intm_u(a), ub = intm_u(b);
  uint32_t sign = (ua ^ ub) >> 31;
  if (intm_is_nan(ua) || intm_is_nan(ub)) return intm_bits(INTM_F32_NAN);
  uint32_t ma = ua & 0x7FFFFFFFu, mb = ub & 0x7FFFFFFFu;
  if (ma == INTM_F32_INF) {
    return intm_bits(mb == INTM_F32_INF ? INTM_F32_NAN : (sign << 31) | INTM_F32_INF);
  }
  if (mb == INTM_F32_INF) return intm_bits(sign << 31);
  if (mb == 0) return intm_bits(ma == 0 ? INTM_F32_NAN : (sign << 31) | INTM_F32_INF);
  if (ma == 0) return intm_bits(sign << 31);
  int16_t ea, eb;
  uint32_t sa, sb;
  intm_unpack(ua, &ea, &sa);
  intm_unpack(ub, &eb, &sb);
  int16_t exp = (int16_t)(ea - eb + 0x7E);
  uint64_t dividend;
  if (sa < sb) {
    --exp;
    dividend = (uint64_t)sa << 31;
  } else {
    dividend = (uint64_t)sa << 30;
  }
  uint32_t sig = (uint32_t)(dividend / sb); /* leading one at bit 30 */
  if (!(sig & 0x3Fu)) sig |= ((uint64_t)sb * sig != dividend); /* inexact: sticky */
  return intm_round_pack(sign, exp, sig);
}

/* Negative, zero or positive as a < b, a == b, a > b; 1 when unordered (so <, <= and ==
 * are false for NaN, as they must be; > is wrongly true, which clang's single call for
 * every predicate cannot avoid; the kernels compare no NaN). */
int16_t __mspabi_cmpf(float a, float b) {
  uint32_t ua = intm_u(a), ub = intm_u(b);
  if (intm_is_nan(ua) || intm_is_nan(ub)) return 1;
  if (((ua | ub) & 0x7FFFFFFFu) == 0) return 0; /* +0 == -0 */
  /* Sign-magnitude to an order-preserving signed integer. */
  int32_t ia = (ua >> 31) ? -(int32_t)(ua & 0x7FFFFFFFu) : (int32_t)ua;
  int32_t ib = (ub >> 31) ? -(int32_t)(ub & 0x7FFFFFFFu) : (int32_t)ub;
  return ia < ib ? -1 : (ia > ib ? 1 : 0);
}

int16_t __unordsf2(float a, float b) { return intm_is_nan(intm_u(a)) || intm_is_nan(intm_u(b)); }

float __mspabi_fltulf(uint32_t x) {
  if (x == 0) return 0.0f;
  int16_t exp = 0x9C; /* value = sig * 2^(exp - 156) = x */
  uint32_t sig = x;
  if (sig & 0x80000000u) {
    sig = intm_shift_right_jam(sig, 1);
    ++exp;
  }
  while (!(sig & 0x40000000u)) {
    sig <<= 1;
    --exp;
  }
  return intm_round_pack(0, exp, sig);
}

float __mspabi_fltlif(int32_t x) {
  float f = __mspabi_fltulf(x < 0 ? 0u - (uint32_t)x : (uint32_t)x);
  return x < 0 ? intm_bits(intm_u(f) | 0x80000000u) : f;
}

float __mspabi_fltif(int16_t x) { return __mspabi_fltlif(x); }
float __mspabi_fltuf(uint16_t x) { return __mspabi_fltulf(x); }

/* Toward zero, as C converts; out-of-range values saturate (C leaves them undefined). */
int32_t __mspabi_fixfli(float a) {
  uint32_t u = intm_u(a);
  int16_t exp = (int16_t)((u >> 23) & 0xFF);
  if (intm_is_nan(u)) return 0;
  if (exp < 0x7F) return 0; /* |a| < 1 */
  if (exp >= 0x7F + 31) return (u >> 31) ? INT32_MIN : INT32_MAX;
  uint32_t sig = (u & 0x7FFFFFu) | 0x800000u;
  int16_t shift = (int16_t)(exp - 0x7F - 23);
  uint32_t mag = shift >= 0 ? sig << shift : sig >> -shift;
  return (u >> 31) ? -(int32_t)mag : (int32_t)mag;
}

uint32_t __mspabi_fixful(float a) {
  uint32_t u = intm_u(a);
  int16_t exp = (int16_t)((u >> 23) & 0xFF);
  if (intm_is_nan(u) || (u >> 31) || exp < 0x7F) return 0;
  if (exp >= 0x7F + 32) return UINT32_MAX;
  uint32_t sig = (u & 0x7FFFFFu) | 0x800000u;
  int16_t shift = (int16_t)(exp - 0x7F - 23);
  return shift >= 0 ? sig << shift : sig >> -shift;
}

int16_t __mspabi_fixfi(float a) { return (int16_t)__mspabi_fixfli(a); }
uint16_t __mspabi_fixfu(float a) { return (uint16_t)__mspabi_fixful(a); }

/*
 * e^x for softmax: x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so that k ln2 is
 * exact for the k a float exponent allows), e^r by its Taylor series to r^7 (relative
 * error below 2e-7 on that interval), times 2^k by the exponent field.
 */
float expf(float x) {
  uint32_t u = intm_u(x);
  if (intm_is_nan(u)) return x;
  if (x > 88.72283f) return intm_bits(INTM_F32_INF);
  if (x < -103.97208f) return 0.0f;
  const float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
  float kf = x * 1.4426950408889634f;
  int16_t k = (int16_t)(kf < 0 ? kf - 0.5f : kf + 0.5f);
  float r = (x - (float)k * ln2_hi) - (float)k * ln2_lo;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.6666667e-1f + r * (4.1666668e-2f +
            r * (8.3333338e-3f + r * (1.3888889e-3f + r * 1.9841270e-4f))))));
  /* p * 2^k in two steps, so that 2^k itself stays a normal float for k down to -149. */
  int16_t k1 = k / 2, k2 = k - k / 2;
  p *= intm_bits((uint32_t)(k1 + 127) << 23);
  return p * intm_bits((uint32_t)(k2 + 127) << 23);
}

/*
 * math.h - declarations only, for the MSP430 build, which has no C library and no
 * floating-point helpers. Integer-only models call none of these; a float model that does
 * fails to link, and the toolchain names the missing functions (sim/toolchain.py).
 */
#ifndef INTM_MSP430_MATH_H_
#define INTM_MSP430_MATH_H_

float expf(float x);
float logf(float x);
float sqrtf(float x);
float tanhf(float x);
float floorf(float x);
float ceilf(float x);
float roundf(float x);
float fabsf(float x);
float powf(float x, float y);
float erff(float x);
float nearbyintf(float x);
float truncf(float x);

#endif /* INTM_MSP430_MATH_H_ */

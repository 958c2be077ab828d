/*
 * math.h - for the MSP430 build, which has no C library: expf is in intm_softfloat.c
 * (softmax needs it); the others are declared only. Integer-only models call none; a float
 * model that calls one fails to link, and the toolchain names it (sim/toolchain.py).
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

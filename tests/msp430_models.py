"""Models for the MSP430 tests: a tiny int8 CNN of the size iNAS searches, and one too big
for the MSP430's 64 KiB address space.

iNAS (Mendis et al., 2021) searches CNNs for the MSP430FR5994 under a 2 KB SRAM budget
with a few KB of weights; ``tiny_cnn`` is such a network for 32x32x3 images, written with
the ``tflite`` flatbuffer package (``tflite_models.py``) from seeded data:
conv 3x3/2 (8) -> conv 3x3/2 (16) -> average pool 3x3/2 -> fully connected (10) -> softmax,
all VALID: 2,808 bytes of weights and 106,488 multiply-accumulates. (The generated kernels
unroll their taps, and with SAME padding peel the borders into loops of their own; a
SAME-padded version with a depthwise layer has 44 KB of kernel code alone and outgrows the
MSP430's 48 KiB of FRAM, see docs/msp430.md.)
"""

from __future__ import annotations

import numpy as np

import tflite_models as tm


def _conv(rng, tensors, ops, x, cin, cout, hw, stride, out_q, depthwise=False):
    """Append a convolution reading tensor ``x``; returns the output tensor's index."""
    w_scales = rng.uniform(0.004, 0.02, size=cout).astype(np.float32)
    w_shape = (1, 3, 3, cout) if depthwise else (cout, 3, 3, cin)
    in_scale = np.float32(tensors[x].scale)
    oh, ow = (hw[0] - 3) // stride + 1, (hw[1] - 3) // stride + 1
    tensors += [
        tm.T(w_shape, scale=w_scales, data=tm._int8(rng, w_shape, -127, 127),
             quantized_dimension=3 if depthwise else 0),
        tm.T((cout,), "int32", scale=in_scale * w_scales,
             data=rng.integers(-500, 500, size=cout).astype(np.int32)),
        tm.T((1, oh, ow, cout), scale=out_q[0], zero_point=out_q[1]),
    ]
    w, b, y = len(tensors) - 3, len(tensors) - 2, len(tensors) - 1
    options = dict(Padding=tm.VALID, StrideH=stride, StrideW=stride, DilationHFactor=1,
                   DilationWFactor=1, FusedActivationFunction=tm.RELU)
    if depthwise:
        ops.append(tm.Op("DEPTHWISE_CONV_2D", [x, w, b], [y], "DepthwiseConv2DOptions",
                         {**options, "DepthMultiplier": 1}))
    else:
        ops.append(tm.Op("CONV_2D", [x, w, b], [y], "Conv2DOptions", options))
    return y


def tiny_cnn(seed=21):
    """The iNAS-sized int8 CNN and one seeded input image."""
    rng = np.random.default_rng(seed)
    tensors = [tm.T((1, 32, 32, 3), scale=0.02, zero_point=-5)]
    ops = []
    x = _conv(rng, tensors, ops, 0, 3, 8, (32, 32), 2, (0.25, -128))
    x = _conv(rng, tensors, ops, x, 8, 16, (15, 15), 2, (0.6, -128))
    tensors.append(tm.T((1, 3, 3, 16), scale=0.6, zero_point=-128))
    ops.append(tm.Op("AVERAGE_POOL_2D", [x], [len(tensors) - 1], "Pool2DOptions",
                     dict(Padding=tm.VALID, StrideH=2, StrideW=2, FilterHeight=3,
                          FilterWidth=3, FusedActivationFunction=tm.NONE)))
    x = len(tensors) - 1
    tensors += [tm.T((2,), "int32", data=np.array([1, 144])),
                tm.T((1, 144), scale=0.6, zero_point=-128)]
    ops.append(tm.Op("RESHAPE", [x, len(tensors) - 2], [len(tensors) - 1], "ReshapeOptions",
                     dict(NewShape=[1, 144])))
    x = len(tensors) - 1
    w_scale = 0.003
    tensors += [
        tm.T((10, 144), scale=w_scale, data=tm._int8(rng, (10, 144), -127, 127)),
        tm.T((10,), "int32", scale=np.float32(0.6) * np.float32(w_scale),
             data=rng.integers(-2000, 2000, size=10).astype(np.int32)),
        tm.T((1, 10), scale=0.8, zero_point=0),
        tm.T((1, 10), scale=1.0 / 256, zero_point=-128),
    ]
    n = len(tensors)
    ops.append(tm.Op("FULLY_CONNECTED", [x, n - 4, n - 3], [n - 2], "FullyConnectedOptions",
                     dict(FusedActivationFunction=tm.NONE)))
    ops.append(tm.Op("SOFTMAX", [n - 2], [n - 1], "SoftmaxOptions", dict(Beta=1.0)))
    image = tm._int8(rng, (1, 32, 32, 3))
    return tm.build(tensors, ops, [0], [n - 1]), [image]


def too_big_for_msp430():
    """A fully connected layer with 60,400 bytes of weights: more than the 48 KiB of FRAM
    below the MSP430's vectors, though far less than the Cortex-M4 boards hold."""
    return tm.fully_connected(batch=1, depth=600, units=100)

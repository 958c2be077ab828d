"""Unpadded int8 convolutions (pointwise ones above all) on the Cortex-M4's register-blocked
micro-kernel: two output pixels by two output channels per step.

Counting registers decides the block. Per input word (four channels) a block of ``P``
pixels by ``C`` channels costs ``P`` loads and ``2P`` SXTB16 for the input, ``3C`` for the
weights (a load, two SXTB16) and ``2PC`` SMLAD, for ``4PC`` multiply-accumulates, and holds
``PC`` accumulators, ``2P`` unpacked input halves and two weight halves live. Two pixels by
four channels (the pixel pairs of :mod:`.integer_kernels`) would need 14 values besides the
pointers: GCC spills, and hoists the input loads out of the loop over channel blocks (1.8
instructions per MAC on kws' 1x1 64 -> 64). Two by two holds 10 values plus the input
pointer, the second pixel's offset, the weight pointer and the count: the 14 registers
there are, in ``intm_mac_2x2_s8`` (``runtime/intm_kernel_ops.h``): 20 instructions for 16
multiply-accumulates, and the count's two every two words.

The micro-kernel walks its two channels' weights with one post-incremented pointer, so the
weights are interleaved at compile time (:func:`interleave_pairs`): per pair of output
channels, per filter row, word by word, channel 0's word then channel 1's. Same bytes, same
flash; TFLite's OHWI order is gone from the constant, which only this kernel reads.

A filter row of one pixel is contiguous in NHWC when the convolution is not dilated along x
(or is 1 wide), so a window is ``KH`` runs of ``KW * C_IN / 4`` words. Output pixels are
paired in row-major order as in ``integer_kernels._conv2d_pixel_pairs`` (strides allowed: the
second pixel's offset is computed per pair); an odd count pairs the last pixel with itself
(offset 0) and stores it once.

The loops ``batch``/``pixel_pair``/``channel_block`` are perfectly nested and each iteration
writes its own two pixels' two channels, so the intermittent tiling cuts them as it cuts the
other convolutions.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .depthwise_kernels import OutputStage
from .integer_kernels import (KERNEL_ATTRS, _I32, _arg, _bind, _helper, _i32, _loop, _private,
                              _store_pixel_of_pair)

#: The micro-kernel of ``runtime/intm_kernel_ops.h``.
MICRO_KERNEL = "intm_mac_2x2_s8"
#: The key of the ``AttrStmt`` around a run's TIR whose value is the micro-kernel's call:
#: the C printer prints the call instead of the body, every other reader (the cost model,
#: the idempotence check) sees the body.
MICRO_KERNEL_ATTR = "intermittent.micro_kernel"


def why_not(*, weight, dilation, in_dtype, dsp: bool) -> str | None:
    """Why :func:`build` does not take this unpadded (non-depthwise, OHWI) convolution, or
    None when it does."""
    out_c, _, k_w, in_c = weight.shape
    if not dsp or in_dtype != "int8":
        return "no DSP extension or not int8"
    if in_c % 4:
        return f"{in_c} input channels are not in quads"
    if out_c % 2:
        return f"{out_c} output channels are not in pairs"
    if k_w > 1 and int(dilation[1]) != 1:
        return "dilated along x (filter rows not contiguous)"
    return None


def interleave_pairs(weight: np.ndarray) -> np.ndarray:
    """OHWI int8 weights as ``intm_mac_2x2_s8`` reads them: ``[C_OUT / 2, KH, KW * C_IN / 4,
    2, 4]`` (pair of channels, filter row, word, channel of the pair, byte), flattened to
    ``[C_OUT / 2, KH, KW * C_IN * 2]``."""
    out_c, k_h, k_w, in_c = weight.shape
    words = k_w * in_c // 4
    pairs = weight.reshape(out_c // 2, 2, k_h, words, 4).transpose(0, 2, 3, 1, 4)
    return np.ascontiguousarray(pairs).reshape(out_c // 2, k_h, words * 8)


def mac_run(accs, x_at, dx, w_at, words: int):
    """One run of the micro-kernel: ``accs`` are the four accumulators ``(buffer, index)``
    (pixel 0 channel 0, pixel 0 channel 1, pixel 1 channel 0, pixel 1 channel 1),
    ``x_at(k)`` pixel 0's input byte ``k`` of the run (pixel 1's is ``dx`` further),
    ``w_at(k)`` byte ``k`` of the run's interleaved weights.

    The call sits in an ``AttrStmt`` (:data:`MICRO_KERNEL_ATTR`) over the same sums written
    in TIR with the SMLAD helpers, word by word: what the kernel computes, and what the cost
    model counts (a call that hides a loop would count as one node however long its run),
    while the C has the assembly run."""
    loads = [buffer[index] for buffer, index in accs]
    call = tirx.call_extern(_I32, MICRO_KERNEL, *loads, x_at(0), dx, w_at(0), _i32(words))
    with T.attr(tvm.runtime.convert(MICRO_KERNEL), MICRO_KERNEL_ATTR, call):
        with _loop("in_word", words) as k:
            halves = []
            for p, offset in enumerate((0, dx)):
                word = _bind(f"input4_{p}", _helper(
                    "intm_load_s8x4", tirx.address_of(x_at(offset + k * 4))))
                halves.append((_bind(f"even{p}", _helper("intm_sxtb16", word)),
                               _bind(f"odd{p}", _helper("intm_sxtb16_ror8", word))))
            for j in range(2):
                weights = _bind("weights4", _helper(
                    "intm_load_s8x4", tirx.address_of(w_at(k * 8 + j * 4))))
                even_w = _bind("even_w", _helper("intm_sxtb16", weights))
                odd_w = _bind("odd_w", _helper("intm_sxtb16_ror8", weights))
                for p, (even, odd) in enumerate(halves):
                    buffer, index = accs[p * 2 + j]
                    inner = _helper("intm_smlad", odd, odd_w, buffer[index])
                    T.buffer_store(buffer, _helper("intm_smlad", even, even_w, inner), [index])


def output_stage(*, requant, output_zero_point, clamp, out_dtype) -> OutputStage:
    """The outputs' requantization: the depthwise kernels' (one SMMULR, one SSAT per output
    in the usual case). Its per-channel tables come after the bias (:func:`tables`)."""
    return OutputStage(requant, output_zero_point, clamp, out_dtype)


def _channel_arrays(stage: OutputStage) -> list:
    """The fast form's per-channel values as int32 arrays, in the order
    :meth:`.OutputStage.store` takes them: the multiplier operand, then the shift less one
    (the depthwise kernels pack the latter in bytes; here each is a table of its own)."""
    return stage.columns() + stage.lanes()


def tables(stage: OutputStage) -> list:
    """The per-channel int32 arrays the kernel takes after the bias, for ``stage``."""
    return _channel_arrays(stage) + stage.tables()


def channel_args(stage: OutputStage, out_c: int) -> list:
    """The kernel's arguments for :func:`_channel_arrays`, one ``[out_c]`` int32 each."""
    return [_arg(name, (out_c,), _I32)
            for name in ("multiplier", "shift_less")[:len(_channel_arrays(stage))]]


def build(*, in_shape, weight, out_shape, strides, dilation, stage: OutputStage):
    """The kernel ``(x, weights, bias, [tables], out)``; ``weights`` are
    :func:`interleave_pairs` of TFLite's OHWI array, ``bias`` has the input zero point folded
    in (as for :func:`.integer_kernels.conv2d_nhwc`), the tables are :func:`tables`."""
    batch, in_h, in_w, in_c = (int(d) for d in in_shape)
    out_c, k_h, k_w, _ = (int(d) for d in weight.shape)
    _, out_h, out_w, _ = (int(d) for d in out_shape)
    (s_h, s_w), (d_h, _) = strides, dilation
    pixels = out_h * out_w
    words = k_w * in_c // 4
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", (batch, in_h, in_w * in_c), "int8")
            w = _arg("weights", (out_c // 2, k_h, words * 8), "int8")
            b = _arg("bias", (out_c,), _I32)
            columns = channel_args(stage, out_c)
            requant_tables = stage.args(out_c)
            out = _arg("output", (batch, pixels, out_c), stage.out_dtype)
            acc = T.alloc_buffer((4,), _I32, scope="local")
            IRBuilder.name("acc", acc)
            with _loop("batch", batch) as n, _loop("pixel_pair", (pixels + 1) // 2) as pair, \
                    _loop("channel_block", out_c // 2) as cb:
                pixel = [pair * 2, tirx.min(pair * 2 + 1, _i32(pixels - 1))]
                # Each pixel's first input byte (row f_y = 0), as a flat offset into its row.
                starts = [((p // out_w) * s_h, (p % out_w) * s_w * in_c) for p in pixel]
                channels = [cb * 2, cb * 2 + 1]
                for i in range(4):
                    T.buffer_store(acc, b[channels[i % 2]], [i])
                # The second pixel's input from the first's: the same for every filter row.
                dx = ((starts[1][0] - starts[0][0]) * (in_w * in_c)
                      + starts[1][1] - starts[0][1])

                def run(f_y):
                    row = starts[0][0] + f_y * d_h
                    mac_run([(acc, i) for i in range(4)],
                            lambda k: x[n, row, starts[0][1] + k], dx,
                            lambda k: w[cb, f_y, k], words)

                if k_h == 1:
                    run(0)
                else:
                    with _loop("filter_y", k_h) as f_y:
                        run(f_y)
                for p in range(2):
                    def store(p=p):
                        for j in range(2):
                            stage.store(out, [n, pixel[p], channels[j]], acc[p * 2 + j],
                                        channels[j], requant_tables,
                                        [c[channels[j]] for c in columns])
                    _store_pixel_of_pair(p, pair, pixels, store)
    return _private(builder.get())


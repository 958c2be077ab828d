"""TFLite's int8 ADD of two same-shaped tensors as a hand kernel.

TFLM's ADD rescales each input to a common scale and then the sum to the output, with
three requantizations per element (``integer_ops.add`` has the TE definition):

    a = ((x1 - zp1) << 20) rescaled by (m1, s1), b = likewise for x2,
    out = clamp((a + b) rescaled by (mo, so) + zp_out)

each rescaling TFLM's doubling high multiply and rounding right shift. Every multiplier,
shift and zero point is a compile-time constant, so here each rescaling is folded:

- the input's ``(x - zp) << 20`` and the doubling of the high multiply become one constant
  shift, ``(x - zp) << 21``, and the high multiply is one SMMULR (``intm_smmulr``: the
  rounded high word of the product, which equals the doubling high multiply of half its
  operand); ``(x - zp) << 21`` stays below ``2**29`` in magnitude, so nothing overflows;
- the rounding right shift by ``r`` is ``(v + (v >> 31) + 2**(r-1)) >> r`` with constant
  ``r`` (none when the input's multiplier needs no shift);
- the output's shift, zero point and int8 clamp are :class:`.depthwise_kernels.OutputStage`'s
  (one add and one ``SSAT #8, ASR #1``).

Applies to int8 inputs and output of one shape (no broadcasting) whose output multiplier
shifts right, TFLM's double rounding, on boards with the DSP extension (the helpers have
portable forms, but TVM's own builds of the module, without a board, cannot call them);
anything else keeps the TE definition (:func:`add_applies` says why).
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .depthwise_kernels import OutputStage
from .fixed_point import Requantization
from .integer_kernels import (KERNEL_ATTRS, _arg, _bind, _dsp_available, _helper, _i32, _loop,
                              _private)


def add_applies(*, lhs_shape, rhs_shape, out_shape, dtypes, output_multiplier_shift,
                single_rounding) -> str | None:
    """None when :func:`add_s8` serves the ADD, else why not."""
    if not (list(lhs_shape) == list(rhs_shape) == list(out_shape)):
        return "its inputs are broadcast"
    if any(d != "int8" for d in dtypes):
        return "an input or the output is not int8"
    if single_rounding:
        return "it rounds once (onnxruntime's models)"
    if output_multiplier_shift >= 0:
        return "its output multiplier is at least 1/2 (a left shift)"
    if not _dsp_available():
        return "the board has no DSP extension (SMMULR, SSAT)"
    return None


def _rescaled(value, zero_point: int, multiplier: int, shift: int, left_shift: int):
    """TFLM's ``MultiplyByQuantizedMultiplierSmallerThanOneExp((x - zp) << left_shift,
    m, shift)`` of an int8 ``value``: one SMMULR on ``(x - zp) << (left_shift + 1)`` and the
    rounding right shift by ``-shift``."""
    if (multiplier, shift) == (1 << 30, 0):
        # A real multiplier of exactly 1/2 (the input of the larger scale): the doubling
        # high multiply of an even a by 2**30 is a / 2 exactly, and there is no shift.
        return (value - _i32(zero_point)) * _i32(1 << (left_shift - 1))
    doubled = value * _i32(1 << (left_shift + 1)) - _i32(zero_point * (1 << (left_shift + 1)))
    high = _bind("high", _helper("intm_smmulr", doubled, _i32(multiplier)))
    right = -shift
    if right == 0:
        return high
    return tirx.shift_right(high + tirx.shift_right(high, _i32(31)) + _i32(1 << (right - 1)),
                            _i32(right))


def add_s8(shape, *, lhs_params, rhs_params, left_shift: int, output_zero_point: int,
           output_real: float, clamp):
    """The ADD kernel ``(lhs, rhs, output)`` over ``shape``.

    ``lhs_params`` and ``rhs_params`` are ``(zero_point, multiplier, shift)`` as for
    :func:`.integer_ops.add` (the shifts at most 0); ``output_real`` is the real
    multiplier of the output's rescaling (below 1/2, see :func:`add_applies`), quantized
    by :class:`.fixed_point.Requantization` as the TE definition's caller quantizes it.
    """
    stage = OutputStage(Requantization(np.array([output_real])), output_zero_point, clamp,
                        "int8")
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            lhs = _arg("lhs", shape, "int8")
            rhs = _arg("rhs", shape, "int8")
            out = _arg("output", shape, "int8")
            root = T.sblock("root")
            root.__enter__()
            loops = [_loop(f"i{axis}", int(extent)) for axis, extent in enumerate(shape)]
            index = [loop.__enter__() for loop in loops]
            total = _bind("scaled_lhs", _rescaled(lhs[index].astype("int32"), *lhs_params,
                                                  left_shift))
            total = total + _rescaled(rhs[index].astype("int32"), *rhs_params, left_shift)
            stage.store(out, index, _bind("total", total), 0, [])
            for loop in reversed(loops):
                loop.__exit__(None, None, None)
            root.__exit__(None, None, None)
    return _private(builder.get())

"""The float QUANTIZE at a TFLite model's input, with the FPU's conversions.

TFLite Micro quantizes a float input as ``round(x / scale) + zero_point``, saturated to
the output type, where ``/`` is the float32 division and ``round`` rounds halves away from
zero (``TfLiteRound``, C's ``roundf``). The kernel of :func:`.integer_kernels.quantize`
decides the rounding from the truncated quotient and its remainder with float compares
and selects, about 34 instructions per element on the Cortex-M4. Here that decision is
``intm_quantize_s8`` / ``intm_quantize_u8`` of ``runtime/intm_kernel_ops_dw.h``: one VCVT
to fixed point with one fraction bit gives ``trunc(2q)`` exactly, and a shifted add, a
saturating add of ``1 + 2 zp`` and SSAT/USAT with a right shift of 1 round it half away
from zero, add the zero point and clamp (its comment says why that is exact and how it
saturates). An element costs a load, VDIV, that VCVT, three integer instructions and a
store: vww's RGB input 8.8 instructions per element, TFLM 32. Measured and replaced: the
truncation, its remainder doubled and truncated again (three VCVTs, 13.8 per element).

This is the only kernel of an int8 model that computes in float: its input is float.
It serves the Cortex-M4F boards (``feature.has_dsp``); the helper's portable form, which
the host build of the same C compiles, computes the same values
(``tests/test_dw_kernels.py`` runs both). Without a board (TVM's own builds of the
module, which cannot call the helper) the kernel of :func:`.integer_kernels.quantize`
serves.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .integer_kernels import KERNEL_ATTRS, _arg, _helper, _i32, _loop, _private

#: The longest last axis unrolled into straight-line code.
MAX_UNROLLED = 4


def quantize_round_away(*, shape, scale: float, zero_point: int, out_dtype: str):
    """Float32 to int8/uint8, TFLM's rounding (halves away from zero).

    Returns
    -------
    (tvm.tirx.PrimFunc, list)
        The kernel ``(input, output)``; it has no constants.
    """
    f32 = "float32"
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", shape, f32)
            out = _arg("output", shape, out_dtype)
            # A root block, as TVM's own pipelines expect of a one-input kernel whose output
            # has the input's size (they test such kernels for reshapes).
            root = T.sblock("root")
            root.__enter__()
            # A last axis of a few elements (an image's RGB) is unrolled: its loop would
            # cost more than the element.
            unrolled = len(shape) > 1 and int(shape[-1]) <= MAX_UNROLLED
            looped = shape[:-1] if unrolled else shape
            loops = [_loop(f"i{axis}", int(extent)) for axis, extent in enumerate(looped)]
            frames = [loop.__enter__() for loop in loops]
            helper = "intm_quantize_s8" if out_dtype == "int8" else "intm_quantize_u8"
            for last in (range(int(shape[-1])) if unrolled else [None]):
                index = frames + [_i32(last)] if unrolled else frames
                value = _helper(helper, x[index] / tirx.const(scale, f32), _i32(zero_point))
                T.buffer_store(out, value.astype(out_dtype), index)
            for loop in reversed(loops):
                loop.__exit__(None, None, None)
            root.__exit__(None, None, None)
    return _private(builder.get()), []

"""A fully connected int8 layer with the Cortex-M4's SMLAD, eight output units per pass.

At batch one nothing reuses a weight: each weight byte costs its share of a load, an
``SXTB16`` and an ``SMLAD`` whatever the kernel does. What a kernel can share is the
input: here one input word (four features), unpacked once into its even and odd bytes as
halves, feeds the sixteen SMLADs of eight units, against eight in the four-unit kernel
(the 1x1-convolution kernel of :mod:`.integer_kernels`, which units not in eights keep).

The weights are rearranged at compile time into the order the loop reads them: per block
of eight units, per group of four features, the eight units' four bytes one after the
other (``[units / 8, depth / 4, 8, 4]``: the same bytes as TFLite's ``[units, depth]``, so
flash does not grow). One pointer walks them with small constant offsets, where in
TFLite's order the eighth unit's row lies ``7 * depth`` bytes away (4,480 for the anomaly
detector's 640 features, beyond a Thumb-2 load's immediate offset).

The loops ``row``/``unit_block`` are perfectly nested and each iteration writes its own
eight outputs, so the intermittent tiling cuts them.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .integer_kernels import (KERNEL_ATTRS, _I32, _arg, _bind, _helper, _local, _loop,
                              _private, _requant_args, _store_outputs_looped)

#: Output units per pass.
UNITS = 8


def applies(*, units: int, depth: int, rows: int, in_dtype: str, dsp: bool) -> bool:
    """Int8 features in groups of four on a DSP board, units in blocks of eight, and more
    than one block (one block would be one tile: ``integer_kernels.dense`` keeps that case
    one unit at a time, so that the tiling can split its reduction)."""
    return (dsp and in_dtype == "int8" and depth % 4 == 0 and units % UNITS == 0
            and rows * (units // UNITS) > 1)


def interleave(weight: np.ndarray) -> np.ndarray:
    """``[units, depth]`` -> ``[units / 8, depth / 4, 8, 4]``: the bytes in loop order."""
    units, depth = weight.shape
    return np.ascontiguousarray(
        weight.reshape(units // UNITS, UNITS, depth // 4, 4).transpose(0, 2, 1, 3))


def build(*, in_shape, units, output_zero_point, requant, clamp, out_dtype):
    """The kernel ``(x, weights, bias, [requant tables], out)``, ``weights`` as
    :func:`interleave` gives them and ``bias`` with the input zero point folded in."""
    rows, depth = (int(d) for d in in_shape)
    blocks, quads = units // UNITS, depth // 4
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", (rows, depth), "int8")
            w = _arg("weights", (blocks, quads, UNITS, 4), "int8")
            b = _arg("bias", (units,), _I32)
            tables = _requant_args(requant, units)
            out = _arg("output", (rows, units), out_dtype)
            acc = [_local(f"acc{j}") for j in range(UNITS)]
            with _loop("row", rows) as row, _loop("unit_block", blocks) as ub:
                unit = [ub * UNITS + j for j in range(UNITS)]
                for j in range(UNITS):
                    T.buffer_store(acc[j], b[unit[j]], [0])
                with _loop("in_quad", quads) as q:
                    word = _bind("input4", _helper(
                        "intm_load_s8x4", tirx.address_of(x[row, q * 4])))
                    even = _bind("even", _helper("intm_sxtb16", word))
                    odd = _bind("odd", _helper("intm_sxtb16_ror8", word))
                    for j in range(UNITS):
                        weights4 = _bind("weights4", _helper(
                            "intm_load_s8x4", tirx.address_of(w[ub, q, j, 0])))
                        inner = _helper("intm_smlad", odd,
                                        _helper("intm_sxtb16_ror8", weights4), acc[j][0])
                        T.buffer_store(acc[j], _helper(
                            "intm_smlad", even, _helper("intm_sxtb16", weights4), inner), [0])
                # One requantization in a loop instead of eight inline (flash).
                _store_outputs_looped(out, [a[0] for a in acc], lambda j: [row, ub * UNITS + j],
                                      lambda j: ub * UNITS + j, requant, tables,
                                      output_zero_point, clamp, out_dtype)
    return _private(builder.get())

"""Depthwise int8 convolutions with the Cortex-M4's DSP extension.

A depthwise convolution multiplies each channel by its own weights: no product is summed
with another channel's, so SMLAD (two products into one sum) would need the two taps of
one channel side by side in a register, and packing them costs as much as it saves. Here
the channels go in quads instead:

- one word load of the input gives four channels of one tap; ``SXTB16`` and ``SXTB16``
  rotated by 8 unpack it into two registers holding channels (0, 2) and (1, 3) as signed
  halves; the tap's four int8 weights, one word, give the matching halves with the same
  two unpacks;
- ``SMLABB`` and ``SMLATT`` (one multiply-accumulate of the bottom or top halves each) add
  the four products into four accumulators: ten instructions for four MACs, against three
  per MAC (two byte loads and a multiply-accumulate) without the extension;
- every constant of a quad sits in one int32 row (:func:`pack_params`: biases,
  requantization, weight words; the same bytes as separate arrays), so one pointer reaches
  them and the accumulators stay in registers;
- the border is split from the interior: a window that lies inside the image runs its taps
  without tests; one that crosses the border tests each tap, and for a tap outside adds
  back the tap's share of the input zero point folded into the bias, ``zp * w`` per
  channel, with the same two SMLAs on constant halves of the zero point; windows up to
  7x7 are unrolled (GCC folds most of the border's tests);
- the requantization is :class:`OutputStage`'s: one ``SMMULR``, and one ``SSAT`` that also
  finishes the rounding.

Measured on the zoo (``bench/README.md``): kws's depthwise layers from 6.08 to 4.13
instructions per MAC (CMSIS-NN: 7.80), vww's from 5.7-6.5 to 3.9-4.4. Measured on kws and
left out: separate bias, requantization and weight arrays (7.06 with the border's test
inside the channel loop, 4.87 with it outside and filter rows as loops, 4.84 unrolled: GCC
keeps a pointer per tap and per table live and spills them), the packed row with filter
rows as loops (5.06, or 4.58 with only the interior unrolled), and testing every tap of
every window instead of splitting the border off (4.36); and pairs of output pixels
sharing each unpacked weight word (kws 5.27: its rows are five pixels wide, so most pairs
cross the border and go one pixel at a time; vww's total unchanged, some layers 5% faster
and others slower).

The kernel takes ``(input, params, [requant tables], output)``. Boards without the DSP
extension keep the kernel of :func:`.integer_kernels.conv2d_nhwc` (three instructions per
MAC there beat a portable emulation of SXTB16 and SMLABB); it computes the same values.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .fixed_point import Requantization
from .integer_kernels import (KERNEL_ATTRS, _arg, _bind, _dsp_available, _helper, _i32, _local,
                              _loop, _private, _requant_args, _store_output, _with_macs)

#: Channels one step of the kernel computes: one word of int8 input.
QUAD = 4
#: Windows up to 7x7 are unrolled into straight-line code per quad.
MAX_UNROLLED_TAPS = 49


def dsp_applies(*, in_shape, multiplier, in_dtype) -> str | None:
    """None when :func:`depthwise_conv2d_dsp` serves a depthwise convolution, else why not:
    it needs int8 input, channel multiplier 1, channels in quads (word loads) and a board
    with the DSP extension."""
    if multiplier != 1:
        return f"channel multiplier {multiplier}"
    if in_dtype != "int8":
        return f"{in_dtype} input"
    if int(in_shape[-1]) % QUAD:
        return f"{int(in_shape[-1])} channels, not a multiple of {QUAD}"
    if not _dsp_available():
        return "the board has no DSP extension"
    return None


def _halves(value: int) -> int:
    """``value`` (an int8 zero point) in both signed 16-bit halves of an int32."""
    low = value & 0xFFFF
    word = low | (low << 16)
    return word - (1 << 32) if word >= 1 << 31 else word


def _inside_count(outputs: int, stride: int, before: int, reach: int, size: int) -> int:
    """How many of ``outputs`` windows along one axis lie inside the image."""
    return sum(1 for o in range(outputs) if o * stride - before >= 0
               and o * stride - before + reach < size)


def pack_params(weight, folded_bias, columns):
    """Every constant of one channel quad side by side, so that the kernel reaches them
    through one pointer: GCC keeps too few registers for the accumulators, the input and
    one pointer per table, and spilled them when the bias, requantization tables and
    weights each had their own.

    Row ``q`` of the int32 table holds channels ``4q .. 4q + 3``: their folded biases, then
    per channel its value of each of ``columns`` (per-channel int32 arrays), adjacent so
    that GCC loads a channel's pair with one LDRD, then one word per filter tap holding the
    tap's four int8 weights, little-endian as a word load of the ``[KH, KW, C]`` weights
    would give them. The same bytes as the separate arrays: flash is not larger.

    Returns
    -------
    (numpy.ndarray, (int, list of list of int, int))
        The ``[C / 4, 4 * (1 + len(columns)) + KH * KW]`` table, the column where the
        biases start, per channel of the quad the columns of its ``columns`` values, and
        the column where the weight words start.
    """
    k_h, k_w, channels = weight.shape
    quads = channels // QUAD
    words = np.ascontiguousarray(weight.reshape(k_h * k_w, channels).astype(np.int8))
    words = words.view("<i4").reshape(k_h * k_w, quads).T
    parts = [np.asarray(folded_bias, np.int32).reshape(quads, QUAD)]
    if columns:  # [quads, channel of the quad, column] flattened: a channel's values adjacent
        per_channel = np.stack([np.asarray(c, np.int32).reshape(quads, QUAD) for c in columns],
                               axis=2)
        parts.append(per_channel.reshape(quads, QUAD * len(columns)))
    table = np.concatenate(parts + [words.astype(np.int32)], axis=1)
    columns_at = [[QUAD + j * len(columns) + i for i in range(len(columns))]
                  for j in range(QUAD)]
    return np.ascontiguousarray(table), (0, columns_at, QUAD * (1 + len(columns)))


class OutputStage:
    """TFLM's requantization, zero point and clamp of one int8 kernel's outputs, in fewer
    instructions than :meth:`.Requantization.emit` where the multipliers allow.

    The usual case (every channel shifts right, TFLM's double rounding, int8 output):

    - the high multiply ``v = (x * m + 2**30) >> 31`` as ``intm_high_mul_2m``: one SMMLAR
      of ``x`` by ``2m - 2**32`` that adds ``x`` back (the same integer for every int32
      ``x``, where ``intm_high_mul``, a shift and SMMULR on ``2x``, took two instructions);
      multipliers below ``2**30`` (none of TFLM's) keep ``intm_high_mul``;
    - TFLM's rounding right shift by ``r``, halves away from zero, is
      ``floor((v + s + 2**(r-1)) / 2**r)`` with ``s = v >> 31``; it equals
      ``floor((t + 1) / 2)`` for ``t = (v + s) >> (r - 1)`` (floors nest), so adding the
      zero point gives ``floor((t + 1 + 2 zp) / 2)``: one add of a constant and one
      ``SSAT #8, ASR #1``, which also clamps to int8 (a fused activation's tighter clamp
      adds a min or a max);
    - per channel, ``(2m - 2**32, r - 1)`` (:meth:`columns`), which the kernel packs beside
      its other per-channel constants so that one pointer reaches them all, the two of one
      channel side by side (one LDRD).

    Anything else (left shifts, single rounding, uint8) takes :meth:`.Requantization.emit`
    and its tables (:meth:`tables`).
    """

    def __init__(self, requant: Requantization, output_zero_point: int, clamp, out_dtype: str):
        self.requant, self.zero_point, self.clamp = requant, int(output_zero_point), clamp
        self.out_dtype = out_dtype
        self.fast = (out_dtype == "int8" and not requant.single_rounding
                     and bool(np.all(requant.shifts <= -1)))
        #: Every multiplier in [2**30, 2**31): the one-instruction high multiply applies.
        self.twice = bool(np.all(requant.multipliers.astype(np.int64) >= 1 << 30))

    def _multipliers(self) -> np.ndarray:
        """The int32 multiplier operands: ``2m - 2**32`` for ``intm_high_mul_2m``, else m."""
        m = self.requant.multipliers.astype(np.int64)
        return (2 * m - (1 << 32) if self.twice else m).astype(np.int32)

    def columns(self) -> list:
        """Per-channel int32 arrays of the fast form, ``[2m - 2**32 (or m), r - 1]`` (none
        if uniform)."""
        if not self.fast or self.requant.uniform:
            return []
        return [self._multipliers(), (-self.requant.shifts - 1).astype(np.int32)]

    def tables(self) -> list:
        """The separate int32 tables of the general form (none for the fast one)."""
        return [] if self.fast else self.requant.tables()

    def args(self, channels: int) -> list:
        return [] if self.fast else _requant_args(self.requant, channels)

    def store(self, out, index, acc, channel, tables, columns=None):
        """Store the output of accumulator ``acc`` at ``out[index]``; ``columns`` are the
        expressions of this channel's :meth:`columns` values."""
        if not self.fast:
            _store_output(out, index, self.requant.emit(acc, channel, tables, _bind),
                          self.zero_point, self.clamp, self.out_dtype)
            return
        if self.requant.uniform:
            multiplier = _i32(int(self._multipliers()[0]))
            less = _i32(-int(self.requant.shifts[0]) - 1)
        else:
            multiplier, less = columns
        high = _bind("high", _helper("intm_high_mul_2m" if self.twice else "intm_high_mul",
                                     acc, multiplier))
        halved = tirx.shift_right(high + tirx.shift_right(high, _i32(31)), less)
        value = _helper("intm_ssat8_asr1", halved + _i32(1 + 2 * self.zero_point))
        lo, hi = self.clamp
        if lo > -128:
            value = tirx.max(value, _i32(lo))
        if hi < 127:
            value = tirx.min(value, _i32(hi))
        T.buffer_store(out, value.astype("int8"), index)


def depthwise_conv2d_dsp(*, in_shape, weight, folded_bias, strides, padding, dilation,
                         input_zero_point, output_zero_point, requant: Requantization, clamp,
                         out_dtype, macs):
    """A depthwise convolution (multiplier 1) over channel quads with SMLABB/SMLATT.

    Parameters
    ----------
    in_shape : tuple
        ``[N, H, W, C]``, ``C`` a multiple of 4.
    weight : numpy.ndarray
        int8 ``[KH, KW, C]``.
    folded_bias : numpy.ndarray
        int32 ``[C]``: the bias minus ``input_zero_point * sum(w)`` per channel.
    strides, dilation : (int, int)
    padding : (top, left, bottom, right)
    requant, clamp, out_dtype : as for :func:`.integer_kernels.conv2d_nhwc`.
    macs : int
        Multiply-accumulates per inference, for the profile.

    Returns
    -------
    (tvm.tirx.PrimFunc, list of numpy.ndarray)
        The kernel ``(input, params, [requant tables], output)`` and the constant arrays
        between ``input`` and ``output``: ``params`` (:func:`pack_params`) and the general
        requantization's tables if it needs them (:meth:`OutputStage.tables`).
    """
    batch, in_h, in_w, channels = (int(d) for d in in_shape)
    k_h, k_w, _ = weight.shape
    (s_h, s_w), (d_h, d_w) = strides, dilation
    top, left, bottom, right = padding
    out_h = (in_h + top + bottom - d_h * (k_h - 1) - 1) // s_h + 1
    out_w = (in_w + left + right - d_w * (k_w - 1) - 1) // s_w + 1
    zp_halves = _i32(_halves(int(input_zero_point)))
    interior = (_inside_count(out_h, s_h, top, d_h * (k_h - 1), in_h),
                _inside_count(out_w, s_w, left, d_w * (k_w - 1), in_w))
    stage = OutputStage(requant, output_zero_point, clamp, out_dtype)
    params, (bias_at, columns_at, weights_at) = pack_params(weight, folded_bias,
                                                            stage.columns())
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", in_shape, "int8")
            p = _arg("params", params.shape, "int32")
            tables = stage.args(channels)
            out = _arg("output", (batch, out_h, out_w, channels), out_dtype)
            acc = [_local(f"acc{j}") for j in range(QUAD)]
            with _loop("batch", batch) as n, _loop("out_y", out_h) as out_y, \
                    _loop("out_x", out_w) as out_x:
                y0, x0 = out_y * s_h - top, out_x * s_w - left

                def multiply_accumulate(c0, even, odd, f_y, f_x):
                    """Channels (0, 2) of the quad at ``c0`` in ``even``'s halves, (1, 3) in
                    ``odd``'s, times the tap's weights unpacked alike."""
                    word = _bind("weights4", p[c0 // QUAD, weights_at + f_y * k_w + f_x])
                    w_even = _bind("w_even", _helper("intm_sxtb16", word))
                    w_odd = _bind("w_odd", _helper("intm_sxtb16_ror8", word))
                    for j, (name, a, bw) in enumerate((
                            ("intm_smlabb", even, w_even), ("intm_smlabb", odd, w_odd),
                            ("intm_smlatt", even, w_even), ("intm_smlatt", odd, w_odd))):
                        T.buffer_store(acc[j], _helper(name, a, bw, acc[j][0]), [0])

                def loaded(c0, f_y, f_x):
                    word = _bind("input4", _helper("intm_load_s8x4", tirx.address_of(
                        x[n, y0 + f_y * d_h, x0 + f_x * d_w, c0])))
                    multiply_accumulate(c0, _bind("even", _helper("intm_sxtb16", word)),
                                        _bind("odd", _helper("intm_sxtb16_ror8", word)),
                                        f_y, f_x)

                def outside(c0, f_y, f_x):
                    """A padded tap: add back its share of the zero point folded into the
                    bias (TFLM adds nothing for it)."""
                    if input_zero_point != 0:
                        multiply_accumulate(c0, zp_halves, zp_halves, f_y, f_x)

                def tap(c0, f_y, f_x, checked):
                    if not checked:
                        loaded(c0, f_y, f_x)
                        return
                    in_y, in_x = y0 + f_y * d_h, x0 + f_x * d_w
                    with T.If(tirx.all(in_y >= 0, in_y < in_h, in_x >= 0, in_x < in_w)):
                        with T.Then():
                            loaded(c0, f_y, f_x)
                        if input_zero_point != 0:
                            with T.Else():
                                outside(c0, f_y, f_x)

                def quads(checked):
                    """All channel quads of the pixel; the window's taps tested (border) or
                    not (interior). Small windows are unrolled: GCC then folds most of the
                    border's tests and reaches every weight word from one pointer."""
                    with _loop("channel_quad", channels // QUAD) as q:
                        c0 = q * QUAD
                        for j in range(QUAD):
                            T.buffer_store(acc[j], p[q, bias_at + j], [0])
                        if k_h * k_w <= MAX_UNROLLED_TAPS:
                            for f_y in range(k_h):
                                for f_x in range(k_w):
                                    tap(c0, f_y, f_x, checked)
                        else:
                            with _loop("filter_y", k_h) as f_y, _loop("filter_x", k_w) as f_x:
                                tap(c0, f_y, f_x, checked)
                        # acc[0..3] hold channels 0..3 of the quad (see multiply_accumulate).
                        for j in range(QUAD):
                            columns = [p[q, at] for at in columns_at[j]]
                            stage.store(out, [n, out_y, out_x, c0 + j], acc[j][0], c0 + j,
                                        tables, columns)

                if not any(padding):
                    quads(checked=False)
                elif min(interior) <= 1:
                    # One row or column of windows inside the image (or none): TVM would
                    # fold the interior's test into constant output indices, which the
                    # tiler cannot cut, so every window tests its taps.
                    quads(checked=True)
                else:  # most windows lie inside the image: test the taps only at the border
                    with T.If(tirx.all(y0 >= 0, y0 + (k_h - 1) * d_h < in_h, x0 >= 0,
                                       x0 + (k_w - 1) * d_w < in_w)):
                        with T.Then():
                            quads(checked=False)
                        with T.Else():
                            quads(checked=True)
    constants = [params] + stage.tables()
    return _with_macs(_private(builder.get()), macs), constants

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
- output rows go in vertical pairs (rows ``2t`` and ``2t + 1``, or ``2t - 1`` and ``2t``
  where that puts more pairs inside the image, one tile per pair): the tap's weight
  word, loaded and unpacked once, feeds eight SMLAs, two rows' worth, and with stride 1
  the lower row's input word of one tap is the upper row's of the next, which GCC loads
  once when the taps run down each filter column (across a filter row it kept three such
  words live and spilled the accumulators): 1.9 instructions per MAC for the taps instead
  of 2.5. An odd row count computes its last row twice and stores it once. Horizontal
  pairs, the other way round, were slower: kws's rows are five windows wide, so most pairs
  cross the border;
- every constant of a quad sits in one int32 row (:func:`pack_params`: biases,
  multipliers, the four shift counts as the bytes of one word, weight words), so one
  pointer reaches them and the accumulators stay in registers;
- the border is split from the interior: a pair of windows that lies inside the image runs
  its taps without tests; a pair with a window across the border goes one window at a
  time, testing each tap, and for a tap outside adds back the tap's share of the input
  zero point folded into the bias, ``zp * w`` per channel, with the same two SMLAs on
  constant halves of the zero point; windows up to 7x7 are unrolled (GCC folds most of the
  border's tests);
- the requantization is :class:`OutputStage`'s: one ``SMMLAR`` (the doubling high multiply
  by ``2m - 2**32``, adding the accumulator back), and one ``SSAT`` that also finishes the
  rounding.

Measured on the zoo (``bench/README.md``, "Depthwise convolutions, faster"): kws's
depthwise layers 3.64 instructions per MAC (CMSIS-NN: 7.80), from 3.99 with one row at a
time and SMMULR on the doubled accumulator, vww's 3.31-3.99, from 3.82-4.16 (3x3 layers
have no pair inside the image and keep single rows). The pairs' interior runs at 2.99
per MAC on kws (215 instructions per pair and quad: 135 for the taps, 48 for the eight
requantizations, the rest loads of constants, stores and the loop); its border windows
(59 of 125: the first and last columns, the first pair of rows and the last row) at about
4.4. Measured and left out: the pair path also over border
columns, testing each filter column once for both rows (kws 1.9% faster, 450 B of text
more: the branches spill the accumulators), a tap outside read as a zero-point word by a
conditional load instead of a branch (kws 5% slower), the border's filter rows as loops
(kws 13% slower), and before the pairs: separate bias, requantization and weight arrays
(7.06 with the border's test inside the channel loop, 4.87 with it outside and filter rows
as loops, 4.84 unrolled: GCC keeps a pointer per tap and per table live and spills them),
the packed row with filter rows as loops (5.06, or 4.58 with only the interior unrolled),
and testing every tap of every window instead of splitting the border off (4.36).

The kernel takes ``(input, params, [requant tables], output)``. Boards without the DSP
extension keep the kernel of :func:`.integer_kernels.conv2d_nhwc` (three instructions per
MAC there beat a portable emulation of SXTB16 and SMLABB); it computes the same values.
"""

from __future__ import annotations

import contextlib

import numpy as np
import tvm_ffi
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .fixed_point import Requantization
from .notices import LOGGER
from .integer_kernels import (KERNEL_ATTRS, _arg, _bind, _dsp_available, _helper, _i32, _local,
                              _loop, _private, _requant_args, _store_output, _with_macs)

#: Channels one step of the kernel computes: one word of int8 input.
QUAD = 4
#: Windows up to 7x7 are unrolled into straight-line code per quad.
MAX_UNROLLED_TAPS = 49
#: Attribute of a kernel whose tiles are pairs of output rows, its key (the structural hash
#: of the kernel without it): the builder reads it to find the operators it may rebuild one
#: row at a time (half the smallest tile) when the paired tile does not fit one charge
#: (``builder._unpair_refused``), and names them by it to ``QuantizedToInteger``.
PAIRS_ATTR = "intermittent.vertical_pairs"


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


def _inside_count(outputs: int, stride: int, before: int, reach: int, size: int) -> int:
    """How many of ``outputs`` windows along one axis lie inside the image."""
    return sum(1 for o in range(outputs) if o * stride - before >= 0
               and o * stride - before + reach < size)


def _pair_phase(out_h, stride, before, reach, size):
    """``(phase, pairs inside)``: tile ``t`` pairs rows ``2t - phase`` and ``2t + 1 - phase``,
    the phase (0 or 1, 0 on a tie) that puts more pairs of rows inside the image: a 6-row
    layer padded by one has rows 1 to 4 inside, two pairs with phase 1 and one with 0."""
    def inside(y):
        return 0 <= y < out_h and y * stride - before >= 0 and y * stride - before + reach < size

    counts = [sum(1 for t in range((out_h + phase + 1) // 2)
                  if inside(2 * t - phase) and inside(2 * t + 1 - phase)) for phase in (0, 1)]
    return (1, counts[1]) if counts[1] > counts[0] else (0, counts[0])


def _why_not_pairs(out_h, stride, before, reach, size, inside_w, padded, unrolled,
                   unpaired=None):
    """None when output rows go in vertical pairs, else why not: it needs unrolled windows,
    two rows or more, and with padding at least two pairs and two columns of windows inside
    the image (with one, TVM would fold the test of the inside into constant output
    indices, which the tiler cannot cut); ``unpaired``, when given, is the caller's reason
    to keep one row per tile (the paired tile does not fit one charge)."""
    if unpaired is not None:
        return unpaired
    if not unrolled:
        return f"windows over {MAX_UNROLLED_TAPS} taps are not unrolled"
    if out_h < 2:
        return "one output row"
    _, pairs_inside = _pair_phase(out_h, stride, before, reach, size)
    if padded and (pairs_inside < 2 or inside_w < 2):
        return (f"{pairs_inside} pair(s) of rows and {inside_w} column(s) of windows inside "
                "the image, fewer than two")
    return None


def pack_params(weight, folded_bias, columns, lanes=()):
    """Every constant of one channel quad side by side, so that the kernel reaches them
    through one pointer: GCC keeps too few registers for the accumulators, the input and
    one pointer per table, and spilled them when the bias, requantization tables and
    weights each had their own.

    Row ``q`` of the int32 table holds channels ``4q .. 4q + 3``: their folded biases, each
    of ``columns`` (per-channel int32 arrays) for the four, one word per array of
    ``lanes`` (per-channel values in 0..127, byte ``j`` for channel ``4q + j``: a shift
    count needs no more, and a quarter of the flash), then one word per filter tap holding
    the tap's four int8 weights, little-endian as a word load of the ``[KH, KW, C]``
    weights would give them. The weights take the same bytes as a separate array.

    Returns
    -------
    (numpy.ndarray, (int, list of int, list of int, int))
        The ``[C / 4, 4 * (1 + len(columns)) + len(lanes) + KH * KW]`` table and the
        columns where the biases, each of ``columns``, each of ``lanes`` and the weight
        words start.
    """
    k_h, k_w, channels = weight.shape
    quads = channels // QUAD
    words = np.ascontiguousarray(weight.reshape(k_h * k_w, channels).astype(np.int8))
    words = words.view("<i4").reshape(k_h * k_w, quads).T
    parts = [np.asarray(folded_bias, np.int32).reshape(quads, QUAD)]
    parts += [np.asarray(c, np.int32).reshape(quads, QUAD) for c in columns]
    for lane in lanes:
        lane = np.asarray(lane, np.int64)
        if lane.min() < 0 or lane.max() > 127:
            raise ValueError(f"byte lanes hold 0..127, got {lane.min()}..{lane.max()}")
        parts.append(np.ascontiguousarray(lane.astype(np.int8).reshape(quads, QUAD))
                     .view("<i4").astype(np.int32))
    table = np.concatenate(parts + [words.astype(np.int32)], axis=1)
    columns_at = [QUAD * (1 + i) for i in range(len(columns))]
    lanes_at = [QUAD * (1 + len(columns)) + i for i in range(len(lanes))]
    return np.ascontiguousarray(table), (0, columns_at, lanes_at,
                                         QUAD * (1 + len(columns)) + len(lanes))


def lane(word, j):
    """Byte ``j`` of ``word`` from :func:`pack_params`'s lanes (0..127, so the top byte
    needs no mask): one UBFX or shift, where a word per channel cost one load each."""
    if j == QUAD - 1:
        return tirx.shift_right(word, _i32(8 * j))
    if j == 0:
        return tirx.bitwise_and(word, _i32(255))
    return tirx.bitwise_and(tirx.shift_right(word, _i32(8 * j)), _i32(255))


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
    - per channel, ``2m - 2**32`` (:meth:`columns`) and ``r - 1`` (:meth:`lanes`, one byte),
      which the kernel packs beside its other per-channel constants so that one pointer
      reaches them all.

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
        """Per-channel int32 arrays of the fast form, ``[2m - 2**32 (or m)]`` (none if
        uniform)."""
        if not self.fast or self.requant.uniform:
            return []
        return [self._multipliers()]

    def lanes(self) -> list:
        """Per-channel arrays of the fast form that fit a byte, ``[r - 1]`` (none if
        uniform); :meth:`store` takes them after :meth:`columns`."""
        if not self.fast or self.requant.uniform:
            return []
        return [(-self.requant.shifts - 1).astype(np.int32)]

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
                         out_dtype, macs, unpaired: str | None = None,
                         block_quads: int | None = None):
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
    unpaired : str, optional
        Compute one output row per tile even where pairs would apply, for this reason: a
        paired tile is twice the smallest tile, which may not fit one charge of a small
        capacitor (the builder decides, see ``builder._unpair_refused``).
    block_quads : int, optional
        Cut each output pixel into blocks of this many channel quads (a divisor of the
        quads; one row per tile, not pairs): a fourth loop ``channel_block`` outside the
        border test, perfectly nested under ``out_x``, so that the tiler's smallest tile is
        one block of one pixel instead of every channel of it. Each block stores only its
        own channels, so a tile stays idempotent. The test of the border then runs once
        per block instead of once per pixel, and the window's constants are reached per
        block: the slower kernel, built only where one pixel does not fit a charge (the
        builder decides, see ``builder._shrink_refused``).

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
    zp_halves = _i32(int(np.full(2, input_zero_point, np.int16).view("<i4")[0]))
    reach_h, reach_w = d_h * (k_h - 1), d_w * (k_w - 1)
    interior = (_inside_count(out_h, s_h, top, reach_h, in_h),
                _inside_count(out_w, s_w, left, reach_w, in_w))
    why_not = _why_not_pairs(out_h, s_h, top, reach_h, in_h, interior[1], any(padding),
                             k_h * k_w <= MAX_UNROLLED_TAPS, unpaired)
    quads = channels // QUAD
    if block_quads is not None:
        if quads % block_quads or block_quads < 1:
            raise ValueError(f"channel blocks of {block_quads} quads do not divide {quads}")
        why_not = f"blocks of {block_quads} channel quads"
    pairs = why_not is None
    phase = _pair_phase(out_h, s_h, top, reach_h, in_h)[0] if any(padding) else 0
    pair_tiles = (out_h + phase + 1) // 2
    if not pairs:
        LOGGER.info("depthwise_conv2d %s: output rows one at a time, not in pairs: %s",
                    list(in_shape), why_not)
    stage = OutputStage(requant, output_zero_point, clamp, out_dtype)
    params, (bias_at, columns_at, lanes_at, weights_at) = pack_params(
        weight, folded_bias, stage.columns(), stage.lanes())
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", in_shape, "int8")
            p = _arg("params", params.shape, "int32")
            tables = stage.args(channels)
            out = _arg("output", (batch, out_h, out_w, channels), out_dtype)
            acc = [[_local(f"acc{r}_{j}") for j in range(QUAD)]
                   for r in range(2 if pairs else 1)]
            leading = ("out_pair", pair_tiles) if pairs else ("out_y", out_h)
            with contextlib.ExitStack() as nest:
                n = nest.enter_context(_loop("batch", batch))
                lead = nest.enter_context(_loop(*leading))
                out_x = nest.enter_context(_loop("out_x", out_w))
                # The block's first quad (None: every quad of the pixel, the default).
                first_quad = None
                if block_quads is not None:
                    first_quad = nest.enter_context(
                        _loop("channel_block", quads // block_quads)) * block_quads
                x0 = out_x * s_w - left

                def weights(q, f_y, f_x):
                    """The tap's four weights unpacked: channels (0, 2) and (1, 3) as
                    halves."""
                    word = _bind("weights4", p[q, weights_at + f_y * k_w + f_x])
                    return (_bind("w_even", _helper("intm_sxtb16", word)),
                            _bind("w_odd", _helper("intm_sxtb16_ror8", word)))

                def multiply_accumulate(sums, even, odd, w_even, w_odd):
                    """Channels (0, 2) of the quad in ``even``'s halves, (1, 3) in
                    ``odd``'s, times the tap's weights unpacked alike."""
                    for j, (name, a, bw) in enumerate((
                            ("intm_smlabb", even, w_even), ("intm_smlabb", odd, w_odd),
                            ("intm_smlatt", even, w_even), ("intm_smlatt", odd, w_odd))):
                        T.buffer_store(sums[j], _helper(name, a, bw, sums[j][0]), [0])

                def loaded(sums, q, y0, f_y, f_x, unpacked):
                    word = _bind("input4", _helper("intm_load_s8x4", tirx.address_of(
                        x[n, y0 + f_y * d_h, x0 + f_x * d_w, q * QUAD])))
                    multiply_accumulate(sums, _bind("even", _helper("intm_sxtb16", word)),
                                        _bind("odd", _helper("intm_sxtb16_ror8", word)),
                                        *unpacked)

                def tap(sums, q, y0, f_y, f_x, checked):
                    unpacked = weights(q, f_y, f_x)
                    if not checked:
                        loaded(sums, q, y0, f_y, f_x, unpacked)
                        return
                    in_y, in_x = y0 + f_y * d_h, x0 + f_x * d_w
                    with T.If(tirx.all(in_y >= 0, in_y < in_h, in_x >= 0, in_x < in_w)):
                        with T.Then():
                            loaded(sums, q, y0, f_y, f_x, unpacked)
                        if input_zero_point != 0:
                            with T.Else():
                                # A padded tap: add back its share of the zero point folded
                                # into the bias (TFLM adds nothing for it).
                                multiply_accumulate(sums, zp_halves, zp_halves, *unpacked)

                def start(sums, q):
                    for j in range(QUAD):
                        T.buffer_store(sums[j], p[q, bias_at + j], [0])

                def quad_columns(q):
                    """Per channel of the quad, its values of the output stage's columns
                    and lanes."""
                    words = [_bind("lanes4", p[q, at]) for at in lanes_at]
                    return [[_bind("column", p[q, at + j]) for at in columns_at]
                            + [_bind("lane", lane(w, j)) for w in words] for j in range(QUAD)]

                def store(sums, q, out_y, columns):
                    # sums[0..3] hold channels 0..3 of the quad (see multiply_accumulate).
                    for j in range(QUAD):
                        stage.store(out, [n, out_y, out_x, q * QUAD + j], sums[j][0],
                                    q * QUAD + j, tables, columns[j])

                def window(out_y, checked):
                    """All channel quads of one pixel; the window's taps tested (border) or
                    not (interior). Small windows are unrolled: GCC then folds most of the
                    border's tests and reaches every weight word from one pointer."""
                    y0 = out_y * s_h - top
                    count = quads if first_quad is None else block_quads
                    with _loop("channel_quad", count) as q:
                        if first_quad is not None:
                            q = first_quad + q
                        start(acc[0], q)
                        if k_h * k_w <= MAX_UNROLLED_TAPS:
                            for f_y in range(k_h):
                                for f_x in range(k_w):
                                    tap(acc[0], q, y0, f_y, f_x, checked)
                        else:
                            with _loop("filter_y", k_h) as f_y, _loop("filter_x", k_w) as f_x:
                                tap(acc[0], q, y0, f_y, f_x, checked)
                        store(acc[0], q, out_y, quad_columns(q))

                def window_pair(rows, guard):
                    """Two vertically adjacent interior windows per channel quad: each tap's
                    weight word, loaded and unpacked once, feeds both (eight SMLAs for
                    three unpacks and two input words). ``guard`` stores the second row
                    only when it exists (an odd row count computes the last row twice)."""
                    with _loop("channel_quad", channels // QUAD) as q:
                        for r in range(2):
                            start(acc[r], q)
                        # Down each filter column: with stride 1 the second row's input
                        # word of one tap is the first row's of the next, which GCC loads
                        # once and keeps for two instructions, not for a whole filter row.
                        for f_x in range(k_w):
                            for f_y in range(k_h):
                                unpacked = weights(q, f_y, f_x)
                                for r, out_y in enumerate(rows):
                                    loaded(acc[r], q, out_y * s_h - top, f_y, f_x, unpacked)
                        columns = quad_columns(q)
                        store(acc[0], q, rows[0], columns)
                        if guard is None:
                            store(acc[1], q, rows[1], columns)
                        else:
                            with T.If(guard):
                                with T.Then():
                                    store(acc[1], q, rows[1], columns)

                if pairs and not any(padding):
                    first = lead * 2
                    odd_rows = out_h % 2 == 1
                    second = tirx.min(first + 1, _i32(out_h - 1)) if odd_rows else first + 1
                    window_pair((first, second), first + 1 < out_h if odd_rows else None)
                elif pairs:  # pairs inside the image run untested, the others one row at a time
                    first = lead * 2 - phase
                    inside = [first * s_h - top >= 0, (first + 1) * s_h - top + reach_h < in_h,
                              x0 >= 0, x0 + reach_w < in_w]
                    if pair_tiles * 2 - phase > out_h:  # the last tile has one row
                        inside.append(first + 1 < out_h)
                    with T.If(tirx.all(*inside)):
                        with T.Then():
                            window_pair((first, first + 1), None)
                        with T.Else():
                            with _loop("pair_row", 2) as r:
                                rows = []
                                if phase:
                                    rows.append(first + r >= 0)
                                if pair_tiles * 2 - phase > out_h:
                                    rows.append(first + r < out_h)
                                if rows:
                                    with T.If(tirx.all(*rows)):
                                        with T.Then():
                                            window(first + r, checked=True)
                                else:
                                    window(first + r, checked=True)
                elif not any(padding):
                    window(lead, checked=False)
                elif min(interior) <= 1:
                    # One row or column of windows inside the image (or none): TVM would
                    # fold the interior's test into constant output indices, which the
                    # tiler cannot cut, so every window tests its taps.
                    window(lead, checked=True)
                else:  # most windows lie inside the image: test the taps only at the border
                    y0 = lead * s_h - top
                    with T.If(tirx.all(y0 >= 0, y0 + reach_h < in_h, x0 >= 0,
                                       x0 + reach_w < in_w)):
                        with T.Then():
                            window(lead, checked=False)
                        with T.Else():
                            window(lead, checked=True)
    constants = [params] + stage.tables()
    func = _with_macs(_private(builder.get()), macs)
    if pairs:  # keyed by its structure: equal layers, one kernel after dedup, go together
        func = func.with_attr(PAIRS_ATTR, str(tvm_ffi.structural_hash(func)))
    return func, constants

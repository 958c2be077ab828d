"""TFLite's fixed-point arithmetic, at compile time (Python ints) and at run time (TIR).

TFLite Micro requantizes every int8 result with a 32-bit multiplier and a power-of-two shift
chosen once per tensor or channel, and evaluates ``exp`` and the logistic function in
fixed point. To equal it bit for bit we must reproduce both the compile-time choices (how a
real multiplier becomes ``(multiplier, shift)``) and the run-time rounding. The rounding is
TFLM's default build, which the ``tflite-micro`` pip package uses (its kernels are not built
with ``TFLITE_SINGLE_ROUNDING``): ``MultiplyByQuantizedMultiplier`` rounds twice, first a
"saturating rounding doubling high multiply" that rounds half up, then a rounding right shift
that rounds half away from zero. ``tests/test_integer_ops.py`` pins this down against the
interpreter: with a multiplier of 0.25, an accumulator of 1 gives 1 (single rounding gives 0)
and -2 gives -1 (single rounding gives 0).

Two forms of the same arithmetic live here:

- Python functions on ints (``srdhm``, ``rdbp``, ``exp_on_negative_values``, ...), used at
  compile time to choose multipliers and to tabulate functions of one int8 input (logistic,
  softmax's exponentials), where a 256-entry table is exact by construction.
- TIR builders (``srdhm_expr``, ``rdbp_expr``, ``requantize_expr``) for what must run on
  the device: the requantization of accumulators.

Models that do not come from TFLite (onnxruntime's QDQ models, Relax modules) are checked
against a runtime that computes in float between its Q/DQ pairs and rounds once. For them
the requantization rounds once too (``single_rounding``): ``x * multiplier * 2**(shift-31)``
rounded half up from the exact 64-bit product, which is what TFLM computes when built with
``TFLITE_SINGLE_ROUNDING``. Double rounding departs from a single rounding whenever the
high multiply lands on a tie of the second rounding, which for a right shift of ``r`` bits
is about one value in ``2**(r+1)`` (3 % for ``r = 4``), enough to grow from one step to
several over a deep network (``tests/test_qdq_onnx.py``).

Notation: a Q\\ *m* number is an int32 with *m* integer bits and 31 - *m* fraction bits.
"""

from __future__ import annotations

import math

import numpy as np

from tvm import tirx

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


# ---- compile time: choosing multipliers ---------------------------------------------------


def round_half_away(value: float) -> int:
    """C's ``round()`` (TFLite's ``TfLiteRound``): halves go away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into ``(multiplier, shift)``, TFLite's way.

    ``real ~= multiplier * 2**(shift - 31)`` with ``multiplier`` in ``[2**30, 2**31)``.
    The mantissa is rounded half away from zero; a mantissa that rounds up to ``2**31`` is
    halved and the shift raised; a multiplier below ``2**-31`` becomes zero.

    Parameters
    ----------
    real : float
        The multiplier, computed in double precision from the float32 scales of the model
        (the order of the double operations matters for bit-exactness; callers follow TFLM).

    Returns
    -------
    (int, int)
        The int32 multiplier and the shift (positive: left).
    """
    if real == 0.0:
        return 0, 0
    if real < 0:
        raise ValueError(f"quantized multipliers are positive, got {real}")
    mantissa, shift = math.frexp(real)
    fixed = round_half_away(mantissa * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def input_radius(integer_bits: int, left_shift: int) -> int:
    """Largest input difference whose rescaled value still fits Q``integer_bits``.

    TFLM clamps inputs beyond this radius instead of overflowing when it rescales them.
    """
    rescaled = (((1 << integer_bits) - 1) * float(1 << (31 - integer_bits))
                / float(1 << left_shift))
    return int(math.floor(rescaled))


# ---- compile time: the arithmetic itself, on Python ints ----------------------------------


def srdhm(a: int, b: int) -> int:
    """Saturating rounding doubling high multiply: ``a * b / 2**31``, halves rounded up.

    Rounding up is what gemmlowp's nudge-and-truncate amounts to (its negative nudge and
    truncating division give ``floor((a*b + 2**30) / 2**31)``).
    """
    if a == b == INT32_MIN:
        return INT32_MAX
    return (a * b + (1 << 30)) >> 31


def rdbp(x: int, exponent: int) -> int:
    """Rounding divide by a power of two: ``x / 2**exponent``, halves away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def saturating_shift_left(x: int, exponent: int) -> int:
    """``x * 2**exponent`` saturated to int32 (gemmlowp's rescale to fewer integer bits)."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLM's requantization of an int32 ``x`` (double rounding, see the module docstring)."""
    left = max(shift, 0)
    right = max(-shift, 0)
    return rdbp(srdhm(wrap_int32(x * (1 << left)), multiplier), right)


def multiply_by_quantized_multiplier_single(x: int, multiplier: int, shift: int) -> int:
    """``x * multiplier * 2**(shift - 31)`` rounded once, halves up, from the exact product
    (TFLM's ``TFLITE_SINGLE_ROUNDING`` requantization)."""
    total = 31 - shift
    return (x * multiplier + (1 << (total - 1))) >> total


def wrap_int32(x: int) -> int:
    """``x`` reduced to int32 two's complement."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _exp_constant(x: float) -> int:
    """``exp(x)`` in Q0.31, rounded to nearest: the constants of gemmlowp's exp."""
    return round(math.exp(x) * (1 << 31))


def _exp_on_quarter_interval(a: int) -> int:
    """``exp(a)`` for a Q0.31 ``a`` in [-1/4, 0): a Taylor polynomial around -1/8."""
    exp_minus_eighth = _exp_constant(-0.125)
    one_third = round((1 << 31) / 3)
    x = a + (1 << 28)  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbp(x4, 2)
    poly = rdbp(srdhm(x4_over_4 + x3, one_third) + x2, 1)  # x^4/24 + x^3/6 + x^2/2
    return exp_minus_eighth + srdhm(exp_minus_eighth, x + poly)


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """``exp(a)`` for a Q``integer_bits`` ``a <= 0``, as Q0.31.

    ``a`` is split into its remainder modulo 1/4 (evaluated by the polynomial) and a sum of
    powers of two times 1/4, whose exponentials are multiplied in bit by bit.
    """
    if integer_bits > 5:
        raise ValueError("exp_on_negative_values is defined here for up to 5 integer bits")
    fraction_bits = 31 - integer_bits
    quarter = 1 << (fraction_bits - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = _exp_on_quarter_interval(
        saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits))
    remainder = a_mod_quarter_minus_quarter - a
    for exponent in range(-2, 5):
        if integer_bits > exponent and remainder & (1 << (fraction_bits + exponent)):
            result = srdhm(result, _exp_constant(-math.ldexp(1.0, exponent)))
    return INT32_MAX if a == 0 else result


#: Newton-Raphson start for 1 / (1 + x) on [0, 1]: 48/17 - 32/17 * (1 + x) / 2, in Q2.29.
NEWTON_48_OVER_17 = round(48 / 17 * (1 << 29))
NEWTON_NEG_32_OVER_17 = round(-32 / 17 * (1 << 29))


def rounding_half_sum(a: int, b: int) -> int:
    """``(a + b) / 2`` rounded half away from zero (C's truncating division after a nudge)."""
    total = a + b
    total += 1 if total >= 0 else -1
    return total // 2 if total >= 0 else -((-total) // 2)


def one_over_one_plus_x(a: int) -> int:
    """``1 / (1 + a)`` for a Q0.31 ``a`` in [0, 1), as Q0.31 (three Newton steps in Q2.29)."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = NEWTON_48_OVER_17 + srdhm(half_denominator, NEWTON_NEG_32_OVER_17)
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = x + saturating_shift_left(srdhm(x, one_minus), 2)
    return saturating_shift_left(x, 1)


def logistic(a: int, integer_bits: int) -> int:
    """``1 / (1 + exp(-a))`` for a Q``integer_bits`` ``a``, as Q0.31."""
    if a == 0:
        return 1 << 30
    positive = one_over_one_plus_x(exp_on_negative_values(-abs(a), integer_bits))
    return positive if a > 0 else INT32_MAX - positive


def tflm_logistic_table(values, scale: float, zero_point: int) -> np.ndarray:
    """TFLM's int8 LOGISTIC for every input value (output scale 1/256, zero point -128).

    The input minus its zero point is rescaled to Q4.27 with a multiplier ``scale * 2**27``
    split by frexp; inputs beyond the radius where that rescaling would overflow saturate.
    """
    integer_bits = 4
    mantissa, left_shift = math.frexp(float(scale) * float(1 << (31 - integer_bits)))
    multiplier = round_half_away(mantissa * (1 << 31))
    radius = input_radius(integer_bits, left_shift)
    table = []
    for value in values:
        centered = int(value) - zero_point
        if centered <= -radius:
            table.append(-128)
        elif centered >= radius:
            table.append(127)
        else:
            q4 = multiply_by_quantized_multiplier(centered, multiplier, left_shift)
            q0 = logistic(q4, integer_bits)
            table.append(min(max(rdbp(q0, 31 - 8) - 128, -128), 127))
    return np.array(table, dtype=np.int32)


# ---- run time: TIR expressions ------------------------------------------------------------


def _i64(x):
    return tirx.Cast("int64", x)


def srdhm_expr(a, b):
    """TIR for :func:`srdhm` where ``b`` is never INT32_MIN (multipliers are positive)."""
    product = _i64(a) * _i64(b) + tirx.const(1 << 30, "int64")
    return tirx.Cast("int32", tirx.shift_right(product, tirx.const(31, "int64")))


def rdbp_expr(x, exponent):
    """TIR for :func:`rdbp`; ``exponent`` is an int (folded) or an int32 expression in [0, 31]."""
    if isinstance(exponent, int):
        if exponent == 0:
            return x
        mask = tirx.const((1 << exponent) - 1, "int32")
        half = tirx.const(((1 << exponent) - 1) >> 1, "int32")
        exponent = tirx.const(exponent, "int32")
    else:
        mask = tirx.Cast("int32", tirx.shift_left(tirx.const(1, "int64"), _i64(exponent))
                         - tirx.const(1, "int64"))
        half = tirx.shift_right(mask, tirx.const(1, "int32"))
    threshold = half + tirx.Select(x < 0, tirx.const(1, "int32"), tirx.const(0, "int32"))
    carry = tirx.Select(tirx.bitwise_and(x, mask) > threshold, tirx.const(1, "int32"),
                        tirx.const(0, "int32"))
    return tirx.shift_right(x, exponent) + carry


def single_rounding_expr(x, multiplier, shift):
    """TIR for :func:`multiply_by_quantized_multiplier_single` of an int32 ``x``.

    ``multiplier`` and ``shift`` are ints (folded into constants) or int32 expressions
    (per-channel tables). The 64-bit product holds any int32 ``x`` exactly, so there is no
    input contract beyond the multiplier's range; ``shift`` is at most 30.
    """
    i64 = "int64"
    if isinstance(shift, int):
        total = 31 - shift
        product = _i64(x) * tirx.const(int(multiplier), i64)
        return tirx.Cast("int32", tirx.shift_right(
            product + tirx.const(1 << (total - 1), i64), tirx.const(total, i64)))
    total = tirx.const(31, i64) - _i64(shift)
    product = _i64(x) * _i64(multiplier)
    rounding = tirx.shift_left(tirx.const(1, i64), total - tirx.const(1, i64))
    return tirx.Cast("int32", tirx.shift_right(product + rounding, total))


def requantize_expr(x, multiplier, shift, shift_range=None, single_rounding=False):
    """TIR for :func:`multiply_by_quantized_multiplier` of an int32 ``x``
    (:func:`single_rounding_expr` with ``single_rounding``).

    ``multiplier`` and ``shift`` are ints (per-tensor: folded into constants) or int32
    expressions (per-channel: loaded from tables); ``shift_range``, the (min, max) of a
    per-channel table, lets the unused half of the arithmetic drop out at compile time.

    Both roundings are done at once on the 64-bit product ``p = x * multiplier``, exactly:
    the high multiply gives ``v = floor((p + 2**30) / 2**31)``, and adding the integer
    ``c`` that rounds ``v / 2**e`` half away from zero commutes with that floor, so the
    result is ``floor((p + 2**30 + c * 2**31) / 2**(31 + e))`` with ``c = 2**(e-1) - [v < 0]``
    (and ``v < 0`` exactly when ``p < -2**30``). Written so, ``x`` appears twice in the
    expression instead of six times.

    Input contract, as TFLM's: the multiplier is positive and ``x * 2**max(shift, 0)`` fits
    int32 (a left shift only occurs for multipliers above one, where models keep
    accumulators small; TFLM's own arithmetic overflows there too).
    """
    if single_rounding:
        return single_rounding_expr(x, multiplier, shift)
    i64 = "int64"
    if isinstance(shift, int):
        left, right = max(shift, 0), max(-shift, 0)
        if left:
            x = x * tirx.const(1 << left, "int32")
        product = _i64(x) * tirx.const(multiplier, i64)
        if right == 0:
            return tirx.Cast("int32", tirx.shift_right(
                product + tirx.const(1 << 30, i64), tirx.const(31, i64)))
        negative = tirx.Select(product < tirx.const(-(1 << 30), i64),
                               tirx.const(-(1 << 31), i64), tirx.const(0, i64))
        rounding = tirx.const((1 << 30) + (1 << (30 + right)), i64)
        return tirx.Cast("int32", tirx.shift_right(product + rounding + negative,
                                                   tirx.const(31 + right, i64)))
    low, high = shift_range if shift_range is not None else (-31, 30)
    zero = tirx.const(0, "int32")
    if high > 0:
        x = x * tirx.shift_left(tirx.const(1, "int32"), tirx.max(shift, zero))
    product = _i64(x) * _i64(multiplier)
    if low >= 0:
        return tirx.Cast("int32", tirx.shift_right(
            product + tirx.const(1 << 30, i64), tirx.const(31, i64)))
    right = _i64(tirx.max(zero - shift, zero) if high > -1 else zero - shift)
    total = right + tirx.const(31, i64)
    negative = tirx.Select(product < tirx.const(-(1 << 30), i64),
                           tirx.const(-(1 << 31), i64), tirx.const(0, i64))
    rounding = tirx.shift_left(tirx.const(1, i64), total - tirx.const(1, i64))
    if high > -1:  # some channels do not shift right: no rounding term beyond 2**30 there
        negative = tirx.Select(right > tirx.const(0, i64), negative, tirx.const(0, i64))
        rounding = rounding + tirx.Select(right > tirx.const(0, i64),
                                          tirx.const(1 << 30, i64), tirx.const(0, i64))
    else:
        rounding = rounding + tirx.const(1 << 30, i64)
    return tirx.Cast("int32", tirx.shift_right(product + rounding + negative, total))


class Requantization:
    """The per-channel (or per-tensor) requantization of one operator, for the kernels of
    :mod:`.integer_kernels` (statement-level TIR, so intermediate values can be named).

    Built from the real multipliers of the output channels. A kernel gets ``tables()`` as
    extra int32 arguments and calls ``emit`` in its epilogue, which names the high
    multiply ``v`` and rounds it with ``(v + 2**(r-1) + (v >> 31)) >> r``: the same
    half-away-from-zero rounding as TFLM's, one add per term instead of a mask and a
    compare. Input contract: ``|x| < 2**30`` (so that add cannot overflow; an int32
    accumulator of a real layer stays far below, see :mod:`.integer_kernels`).

    Three forms: every channel has the same multiplier (constants, no table); every channel
    shifts right, the usual case (tables of multipliers, right shifts and their halves);
    anything else (tables of multipliers and shifts, the general :func:`requantize_expr`).
    With ``single_rounding`` (models checked against onnxruntime, see the module docstring)
    the tables are the multipliers and the shifts, and the product is rounded once.
    """

    def __init__(self, reals, single_rounding: bool = False):
        pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals).reshape(-1)]
        self.multipliers = np.array([p[0] for p in pairs], dtype=np.int32)
        self.shifts = np.array([p[1] for p in pairs], dtype=np.int32)
        self.single_rounding = single_rounding

    @property
    def uniform(self) -> bool:
        return len(set(zip(self.multipliers.tolist(), self.shifts.tolist()))) == 1

    @property
    def right_shifts_only(self) -> bool:
        return bool(np.all(self.shifts <= -1))

    def table_names(self) -> list[str]:
        if self.uniform:
            return []
        if self.right_shifts_only and not self.single_rounding:
            return ["multiplier", "right_shift", "half"]
        return ["multiplier", "shift"]

    def tables(self) -> list:
        """The int32 arrays the kernel takes, in the order of :meth:`table_names`."""
        if self.uniform:
            return []
        if self.right_shifts_only and not self.single_rounding:
            right = -self.shifts
            return [self.multipliers, right, np.left_shift(1, right - 1).astype(np.int32)]
        return [self.multipliers, self.shifts]

    def emit(self, x, channel, tables, bind=None):
        """TIR of the requantized int32 ``x`` for output ``channel``; ``tables`` are the
        kernel's buffers for :meth:`tables`, ``bind(name, value)`` names a value (None: an
        expression without statements, repeating the high multiply)."""
        if self.single_rounding:
            if self.uniform:
                return single_rounding_expr(x, int(self.multipliers[0]), int(self.shifts[0]))
            multipliers, shifts = tables
            return single_rounding_expr(x, multipliers[channel], shifts[channel])
        if not (self.uniform or self.right_shifts_only):
            multipliers, shifts = tables
            return requantize_expr(x, multipliers[channel], shifts[channel],
                                   (int(self.shifts.min()), int(self.shifts.max())))
        if self.uniform:
            shift = int(self.shifts[0])
            if shift > 0:
                x = x * tirx.const(1 << shift, "int32")
            multiplier = tirx.const(int(self.multipliers[0]), "int64")
            right = tirx.const(max(-shift, 0), "int32")
            half = tirx.const((1 << -shift) >> 1 if shift < 0 else 0, "int32")
        else:
            multipliers, right_shifts, halves = tables
            multiplier = _i64(multipliers[channel])
            right, half = right_shifts[channel], halves[channel]
        product = _i64(x) * multiplier + tirx.const(1 << 30, "int64")
        high = tirx.Cast("int32", tirx.shift_right(product, tirx.const(31, "int64")))
        if bind is not None:
            high = bind("high", high)
        if self.uniform and int(self.shifts[0]) >= 0:
            return high
        sign = tirx.shift_right(high, tirx.const(31, "int32"))
        return tirx.shift_right(high + half + sign, right)

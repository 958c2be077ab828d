"""Integer softmax over the last axis, as TFLite Micro computes it for int8.

TFLM's int8 softmax works in fixed point throughout. Per row:

1. the row maximum; each input's difference to it is in [-255, 0];
2. ``exp`` of each difference, rescaled by ``beta * input_scale`` into Q5.26 and evaluated
   by gemmlowp's ``exp_on_negative_values`` as Q0.31; differences below ``diff_min`` (whose
   rescaled value would not fit Q5.26) count as zero;
3. the sum of the exponentials in Q12.19, and its reciprocal: the sum is normalized to
   [1, 2) by its leading zeros and ``1 / (1 + x)`` is refined by three Newton steps;
4. each output: exponential times reciprocal, shifted down to the output's 1/256 steps.

Step 2 depends on one int8 difference only, so it is a table computed here at compile time
with the same arithmetic (:mod:`.fixed_point`), which makes it exact by construction; steps
1, 3 and 4 run on the device. The table stops where ``exp`` reaches 0 in Q0.31: every larger
difference reads its first entry, a 0 (micro_speech's softmax needs 64 of the 256 entries,
256 bytes of flash instead of 1,024). Because step 3 reuses intermediate values many times,
this kernel is written as TIR statements with named temporaries rather than as one TE
expression (which would repeat each shared subexpression).
"""

from __future__ import annotations

import numpy as np
from tvm.script import tirx as T

from .fixed_point import (
    NEWTON_48_OVER_17,
    NEWTON_NEG_32_OVER_17,
    exp_on_negative_values,
    input_radius,
    quantize_multiplier,
    rdbp_expr,
    requantize_expr,
    srdhm,
    srdhm_expr,
)

#: Integer bits of the rescaled differences and of the sum of exponentials (TFLM's choice).
DIFF_INTEGER_BITS = 5
SUM_INTEGER_BITS = 12


def exp_table(input_scale: float, beta: float = 1.0) -> np.ndarray:
    """``exp`` in Q0.31 of the input differences ``1 - n .. 0`` (index = difference + n - 1)
    for the table's length ``n``; a difference below ``1 - n`` reads index 0, which is 0.

    The rescaling multiplier is TFLM's: ``beta * input_scale * 2**26`` in double, capped
    below ``2**31``, split by :func:`quantize_multiplier` into a multiplier and a left
    shift; differences below ``-input_radius`` get 0, which makes them drop out of both the
    sum and the output exactly as TFLM's explicit test does. Of the zeros at the table's
    start (those and the ones where ``exp`` underflows) one is kept; a table with no zero
    covers all 256 differences.
    """
    real = min(float(beta) * float(input_scale) * float(1 << (31 - DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError(f"softmax input scale {input_scale} is too small for TFLM's scaling")
    diff_min = -input_radius(DIFF_INTEGER_BITS, left_shift)
    table = np.zeros(256, dtype=np.int32)
    for diff in range(max(diff_min, -255), 1):
        rescaled = srdhm(diff * (1 << left_shift), multiplier)
        table[diff + 255] = exp_on_negative_values(rescaled, DIFF_INTEGER_BITS)
    first = int(np.flatnonzero(table)[0])  # table[255], exp(0), is 2**31 - 1
    return table[max(first - 1, 0):]


def _saturating_shift_left(x, exponent: int):
    threshold = (1 << (31 - exponent)) - 1
    return T.Select(x > threshold, T.int32(2**31 - 1),
                    T.Select(x < -threshold, T.int32(-(2**31)), x * (1 << exponent)))


def _leading_zeros_step(probe, shift: int):
    """One step of a binary search for the leading zeros of the uint32 ``probe``: whether
    its top ``shift`` bits are all zero."""
    return probe < T.uint32(1 << (32 - shift))


def softmax_kernel(rows: int, depth: int, in_dtype: str, out_dtype: str, *,
                   output_scale: float, output_zero_point: int, table_size: int = 256):
    """The softmax PrimFunc for ``rows`` rows of ``depth`` values.

    Parameters
    ----------
    rows, depth : int
        The input flattened to ``[rows, depth]``; softmax runs along ``depth``.
    in_dtype, out_dtype : str
        ``"int8"`` or ``"uint8"``.
    output_scale, output_zero_point : float, int
        TFLM requires 1/256 and -128 for int8; then the output is TFLM's bit for bit. Any
        other power-of-two step ``2**-b`` shifts by ``b`` instead of 8; other scales (such
        as onnxruntime's 1/255) requantize the probability from Q0.31 once more.
    table_size : int
        Entries of the :func:`exp_table` the kernel reads (its length).

    Returns
    -------
    tvm.tirx.PrimFunc
        ``softmax(x, exp_table, out)``, already scheduled.
    """
    if depth > 256:
        # The final shift (up to 23 + log2(depth) bits) must stay below 32.
        raise ValueError(f"integer softmax supports rows of up to 256 values, not {depth}")
    lo, hi = (-128, 127) if out_dtype == "int8" else (0, 255)
    steps = 1.0 / float(output_scale)
    power_of_two = steps.is_integer() and int(steps) & (int(steps) - 1) == 0
    out_bits = int(steps).bit_length() - 1 if power_of_two else 31
    general = None if power_of_two else quantize_multiplier(1.0 / (float(output_scale) * 2**31))

    def exp_of(x_value, row_max_value):
        index = T.Cast("int32", x_value) - row_max_value + (table_size - 1)
        return T.max(index, 0) if table_size < 256 else index

    def probability(scale, exp_value, bits_over_unit):
        value = rdbp_expr(srdhm_expr(scale, exp_value), bits_over_unit + (31 - out_bits))
        if general is not None:
            value = requantize_expr(value, *general)
        return T.max(T.min(value + output_zero_point, hi), lo)

    # pylint: disable=invalid-name,too-many-locals
    @T.prim_func(private=True)
    def softmax(x: T.Buffer((rows, depth), in_dtype), table: T.Buffer((table_size,), "int32"),
                out: T.Buffer((rows, depth), out_dtype)):
        T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True, "op_pattern": 8})
        row_max = T.alloc_buffer((1,), "int32", scope="local")
        total = T.alloc_buffer((1,), "int32", scope="local")
        headroom = T.alloc_buffer((1,), "int32", scope="local")
        probe = T.alloc_buffer((1,), "uint32", scope="local")
        newton = T.alloc_buffer((1,), "int32", scope="local")
        for row in range(rows):
            # Step 1. The row maximum.
            row_max[0] = T.Cast("int32", x[row, 0])
            for c in range(1, depth):
                row_max[0] = T.max(row_max[0], T.Cast("int32", x[row, c]))
            # Step 2. The sum of the exponentials in Q12.19 (at least 1.0: the maximum's).
            total[0] = 0
            for c in range(depth):
                total[0] = total[0] + rdbp_expr(table[exp_of(x[row, c], row_max[0])],
                                                SUM_INTEGER_BITS)
            # Step 3. Normalize the sum to 1 + s with s in [0, 1): count its leading zeros,
            # by halving the range five times (16, 8, 4, 2, 1 bits) rather than testing 32
            # bits. The sum holds the maximum's exp, 1.0 in Q12.19, so it is never 0.
            probe[0] = T.Cast("uint32", total[0])
            headroom[0] = T.Select(_leading_zeros_step(probe[0], 16), 16, 0)
            probe[0] = T.Select(_leading_zeros_step(probe[0], 16), probe[0] << T.uint32(16),
                                probe[0])
            headroom[0] = headroom[0] + T.Select(_leading_zeros_step(probe[0], 8), 8, 0)
            probe[0] = T.Select(_leading_zeros_step(probe[0], 8), probe[0] << T.uint32(8),
                                probe[0])
            headroom[0] = headroom[0] + T.Select(_leading_zeros_step(probe[0], 4), 4, 0)
            probe[0] = T.Select(_leading_zeros_step(probe[0], 4), probe[0] << T.uint32(4),
                                probe[0])
            headroom[0] = headroom[0] + T.Select(_leading_zeros_step(probe[0], 2), 2, 0)
            probe[0] = T.Select(_leading_zeros_step(probe[0], 2), probe[0] << T.uint32(2),
                                probe[0])
            headroom[0] = headroom[0] + T.Select(_leading_zeros_step(probe[0], 1), 1, 0)
            bits_over_unit: T.int32 = SUM_INTEGER_BITS - headroom[0]
            s: T.int32 = T.Cast("int32", T.shift_left(T.Cast("int64", total[0]),
                                                      T.Cast("int64", headroom[0]))
                                - T.int64(1 << 31))
            # 1 / (1 + s) by Newton's method on the half denominator, in Q2.29.
            half_denominator: T.int32 = T.Cast("int32", T.truncdiv(
                T.Cast("int64", s) + T.int64(2**31 - 1) + T.int64(1), T.int64(2)))
            newton[0] = NEWTON_48_OVER_17 + srdhm_expr(half_denominator, NEWTON_NEG_32_OVER_17)
            for _step in range(3):  # x += x * (1 - d * x), in Q2.29
                error: T.int32 = (1 << 29) - srdhm_expr(half_denominator, newton[0])
                correction: T.int32 = srdhm_expr(newton[0], error)
                newton[0] = newton[0] + _saturating_shift_left(correction, 2)
            reciprocal: T.int32 = _saturating_shift_left(newton[0], 1)
            # Step 4. Each output: exp(difference) / sum in the output's steps.
            for c in range(depth):
                exp_value: T.int32 = table[exp_of(x[row, c], row_max[0])]
                out[row, c] = T.Cast(out_dtype, probability(reciprocal, exp_value,
                                                            bits_over_unit))

    return softmax

"""Integer-only int8 operators as TE compute definitions, with TFLite Micro's arithmetic.

Each function takes TE tensors plus compile-time parameters (zero points, multipliers and
shifts from :func:`~.fixed_point.quantize_multiplier`, clamp bounds) and returns the output
tensor. They are called through ``BlockBuilder.call_te`` by :class:`~.QuantizedToInteger`,
so each becomes a block-based PrimFunc that the rest of the pipeline fuses, schedules and
tiles like any legalized operator. The operators that carry most multiply-accumulates in
TFLite's layouts have hand-scheduled kernels instead (:mod:`.integer_kernels`); ``conv2d``
here serves NCHW and grouped convolutions.

Conventions shared by all of them:

- Activations are int8 or uint8 with an int32 zero point; weights are int8 with zero point
  0 (TFLite's and onnxruntime's symmetric weights); biases are int32 in the accumulator's
  scale (input scale times weight scale).
- ``requant`` is ``(multiplier, shift)``, two ints, for a per-tensor multiplier, or
  ``(multipliers, shifts, min_shift, max_shift)`` with two int32 TE tensors indexed by
  output channel.
- ``clamp`` is the ``(lo, hi)`` range of the output after the fused activation, already
  intersected with the output dtype's range.
- ``single_rounding`` selects the requantization that rounds once (models checked against
  onnxruntime) instead of TFLM's two roundings (:mod:`.fixed_point`).
"""

from __future__ import annotations

from tvm import te, tirx

from .fixed_point import requantize_expr

_I32 = "int32"


def _i32(value):
    return tirx.const(int(value), _I32)


def _clamp_cast(value, clamp, dtype):
    lo, hi = clamp
    return tirx.max(tirx.min(value, _i32(hi)), _i32(lo)).astype(dtype)


def _requantize(acc, requant, channel, single_rounding):
    if len(requant) == 4:  # per channel: tables and the range of the shifts
        multiplier, shift, low, high = requant
        return requantize_expr(acc, multiplier[channel], shift[channel], (low, high),
                               single_rounding=single_rounding)
    multiplier, shift = requant
    return requantize_expr(acc, int(multiplier), int(shift), single_rounding=single_rounding)


def _centered(tensor, indices, zero_point):
    """An activation minus its zero point, as int32."""
    value = tensor[indices].astype(_I32)
    return value - _i32(zero_point) if zero_point else value


def conv2d(data, weight, bias, requant, *, layout, strides, padding, dilation, groups,
           input_zero_point, output_zero_point, clamp, out_dtype, single_rounding=False):
    """Grouped 2-D convolution (depthwise when ``groups`` equals the input channels).

    Parameters
    ----------
    data : te.Tensor
        int8/uint8 activations, ``[N, H, W, C]`` (``layout="NHWC"``) or ``[N, C, H, W]``.
    weight : te.Tensor
        int8 weights, ``[KH, KW, C / groups, C_OUT]`` for NHWC, ``[C_OUT, C / groups, KH, KW]``
        for NCHW.
    bias : te.Tensor or None
        int32 ``[C_OUT]``.
    requant, clamp : see the module docstring.
    strides, dilation : (int, int)
    padding : (top, left, bottom, right)
        Padded positions contribute nothing, as if they held the input zero point.

    Notes
    -----
    The int32 accumulator cannot overflow for any real layer: each product is at most
    255 * 128 in magnitude, so up to 65,793 of them fit, and ``KH * KW * C / groups`` stays
    far below that (4,608 for a 3x3 convolution over 512 channels).
    """
    nhwc = layout == "NHWC"
    if nhwc:
        batch, in_h, in_w, _ = data.shape
        k_h, k_w, in_per_group, out_c = weight.shape
    else:
        batch, _, in_h, in_w = data.shape
        out_c, in_per_group, k_h, k_w = weight.shape
    (s_h, s_w), (d_h, d_w) = strides, dilation
    top, left, bottom, right = padding
    out_h = (int(in_h) + top + bottom - d_h * (int(k_h) - 1) - 1) // s_h + 1
    out_w = (int(in_w) + left + right - d_w * (int(k_w) - 1) - 1) // s_w + 1
    out_per_group = int(out_c) // groups
    k_y = te.reduce_axis((0, k_h), name="filter_y")
    k_x = te.reduce_axis((0, k_w), name="filter_x")
    k_c = te.reduce_axis((0, in_per_group), name="in_channel")
    padded = any(padding)

    def accumulate(n, out_y, out_x, out_channel):
        in_y = out_y * s_h + k_y * d_h - top
        in_x = out_x * s_w + k_x * d_w - left
        in_c = k_c if groups == 1 else (out_channel // out_per_group) * in_per_group + k_c
        index = (n, in_y, in_x, in_c) if nhwc else (n, in_c, in_y, in_x)
        w_index = (k_y, k_x, k_c, out_channel) if nhwc else (out_channel, k_c, k_y, k_x)
        product = _centered(data, index, input_zero_point) * weight[w_index].astype(_I32)
        if padded:
            inside = tirx.all(in_y >= 0, in_y < in_h, in_x >= 0, in_x < in_w)
            product = tirx.if_then_else(inside, product, _i32(0))
        return te.sum(product, axis=[k_y, k_x, k_c])

    shape = (batch, out_h, out_w, out_c) if nhwc else (batch, out_c, out_h, out_w)
    if nhwc:
        acc = te.compute(shape, accumulate, name="conv_acc")
    else:
        acc = te.compute(shape, lambda n, c, y, x: accumulate(n, y, x, c), name="conv_acc")

    def output(*index):
        channel = index[3] if nhwc else index[1]
        total = acc[index] + bias[channel] if bias is not None else acc[index]
        value = _requantize(total, requant, channel, single_rounding) + _i32(output_zero_point)
        return _clamp_cast(value, clamp, out_dtype)

    return te.compute(shape, output, name="conv_out")


def avg_pool2d(data, *, pool, strides, padding, layout, clamp, ties_to_even=None,
               rescale=None, out_dtype=None):
    """Average pooling of the raw values in each window (padding excluded).

    TFLM (the default) divides the window's sum by the number of summed values, rounding
    half away from zero: ``(sum +- count / 2) / count``; input and output share their
    quantization. With ``ties_to_even``, the input zero point (onnxruntime's models, whose
    ``QuantizeLinear`` rounds the float average of the centered values half to even), the
    average of the centered values goes to its even neighbour at halves.

    ``rescale``, for an output quantized differently from the input (onnxruntime's models),
    is ``(input_zero_point, output_zero_point, ((count, multiplier, shift), ...))``: the sum
    minus ``count * input_zero_point`` requantized once with the multiplier of
    ``input_scale / (output_scale * count)``, so the average is rounded once, not twice;
    ``out_dtype`` is then the output's (default: the input's).
    """
    nhwc = layout == "NHWC"
    if nhwc:
        batch, in_h, in_w, channels = data.shape
    else:
        batch, channels, in_h, in_w = data.shape
    (p_h, p_w), (s_h, s_w) = pool, strides
    top, left, bottom, right = padding
    out_h = (int(in_h) + top + bottom - p_h) // s_h + 1
    out_w = (int(in_w) + left + right - p_w) // s_w + 1
    k_y = te.reduce_axis((0, p_h), name="pool_y")
    k_x = te.reduce_axis((0, p_w), name="pool_x")

    def window_sum(n, out_y, out_x, c):
        in_y = out_y * s_h + k_y - top
        in_x = out_x * s_w + k_x - left
        value = data[(n, in_y, in_x, c) if nhwc else (n, c, in_y, in_x)].astype(_I32)
        if any(padding):
            inside = tirx.all(in_y >= 0, in_y < in_h, in_x >= 0, in_x < in_w)
            value = tirx.if_then_else(inside, value, _i32(0))
        return te.sum(value, axis=[k_y, k_x])

    def count(out_y, out_x):
        """Values inside the window, padding excluded (a constant without padding)."""
        if not any(padding):
            return _i32(p_h * p_w)
        y0, x0 = out_y * s_h - top, out_x * s_w - left
        rows = tirx.min(y0 + p_h, in_h) - tirx.max(y0, _i32(0))
        cols = tirx.min(x0 + p_w, in_w) - tirx.max(x0, _i32(0))
        return rows * cols

    shape = (batch, out_h, out_w, channels) if nhwc else (batch, channels, out_h, out_w)
    if nhwc:
        acc = te.compute(shape, window_sum, name="pool_sum")
    else:
        acc = te.compute(shape, lambda n, c, y, x: window_sum(n, y, x, c), name="pool_sum")

    def divided(total, n):
        if ties_to_even is not None:  # floor quotient, then up past half, or at half if odd
            centered = total - n * _i32(ties_to_even)
            quotient = tirx.floordiv(centered, n)
            twice_rest = (centered - quotient * n) * _i32(2)
            up = tirx.Select(tirx.any(twice_rest > n, tirx.all(
                twice_rest == n, tirx.floormod(quotient, _i32(2)) == _i32(1))), _i32(1), _i32(0))
            return quotient + up + _i32(ties_to_even)
        half = tirx.truncdiv(n, _i32(2))
        return tirx.Select(total > 0, tirx.truncdiv(total + half, n),
                           tirx.truncdiv(total - half, n))

    def rescaled(total, n):
        input_zero_point, output_zero_point, multipliers = rescale
        value = None
        for size, multiplier, shift in sorted(multipliers, reverse=True):
            centered = total - n * _i32(input_zero_point)
            this = requantize_expr(centered, multiplier, shift, single_rounding=True)
            value = this if value is None else tirx.Select(n == _i32(size), this, value)
        return value + _i32(output_zero_point)

    def output(*index):
        out_y, out_x = (index[1], index[2]) if nhwc else (index[2], index[3])
        total, n = acc[index], count(out_y, out_x)
        value = rescaled(total, n) if rescale is not None else divided(total, n)
        return _clamp_cast(value, clamp, out_dtype or data.dtype)

    return te.compute(shape, output, name="pool_out")


def window_counts(in_hw, pool, strides, padding) -> set:
    """The distinct numbers of values inside the windows of a padding-excluded pool."""
    (in_h, in_w), (p_h, p_w), (s_h, s_w) = in_hw, pool, strides
    top, left, bottom, right = padding
    out_h = (in_h + top + bottom - p_h) // s_h + 1
    out_w = (in_w + left + right - p_w) // s_w + 1

    def extent(start, size, limit):
        return min(start + size, limit) - max(start, 0)

    return {extent(y * s_h - top, p_h, in_h) * extent(x * s_w - left, p_w, in_w)
            for y in range(out_h) for x in range(out_w)}


def mean(data, *, axes, keepdims, input_zero_point, multiplier, shift, output_zero_point,
         clamp, out_dtype, single_rounding=False):
    """Mean over ``axes``, TFLM's way: one requantization of the raw sum.

    TFLM folds the division by the element count ``n`` into the multiplier at compile time
    (the caller passes that multiplier) and subtracts ``input_zero_point * n`` from the sum
    of the raw values, so the run time is one sum and one requantization per output.
    """
    shape = [int(d) for d in data.shape]
    count = 1
    for axis in axes:
        count *= shape[axis]
    reduce = {axis: te.reduce_axis((0, shape[axis]), name=f"reduce_{axis}") for axis in axes}

    def full_index(out_index):
        index, position = [], 0
        for axis in range(len(shape)):
            if axis in reduce:
                index.append(reduce[axis])
                position += 1 if keepdims else 0
            else:
                index.append(out_index[position])
                position += 1
        return tuple(index)

    out_shape = [1 if a in reduce else d for a, d in enumerate(shape)
                 if keepdims or a not in reduce]
    total = te.compute(
        out_shape,
        lambda *index: te.sum(data[full_index(index)].astype(_I32), axis=list(reduce.values())),
        name="mean_sum")

    def output(*index):
        centered = total[index] - _i32(input_zero_point * count)
        value = (requantize_expr(centered, multiplier, shift, single_rounding=single_rounding)
                 + _i32(output_zero_point))
        return _clamp_cast(value, clamp, out_dtype)

    return te.compute(out_shape, output, name="mean_out")


def _broadcast_index(tensor, out_index):
    """Index into ``tensor`` for an output index of a (numpy-style) broadcast."""
    offset = len(out_index) - len(tensor.shape)
    return tuple(_i32(0) if int(dim) == 1 else out_index[offset + i]
                 for i, dim in enumerate(tensor.shape))


def add(lhs, rhs, shape, *, lhs_params, rhs_params, output_params, left_shift, clamp,
        out_dtype, single_rounding=False):
    """Elementwise add of two differently quantized tensors, with broadcasting (TFLM's ADD).

    Each input, minus its zero point, is scaled up by ``2**left_shift`` and rescaled to a
    common scale (twice the larger input scale) with its own multiplier; the sum is rescaled
    to the output. ``*_params`` are ``(zero_point, multiplier, shift)``; for the output the
    zero point is added after rescaling.
    """

    def rescaled(tensor, params, index):
        zero_point, multiplier, shift = params
        value = _centered(tensor, _broadcast_index(tensor, index), zero_point)
        return requantize_expr(value * _i32(1 << left_shift), multiplier, shift,
                               single_rounding=single_rounding)

    def output(*index):
        total = rescaled(lhs, lhs_params, index) + rescaled(rhs, rhs_params, index)
        zero_point, multiplier, shift = output_params
        value = (requantize_expr(total, multiplier, shift, single_rounding=single_rounding)
                 + _i32(zero_point))
        return _clamp_cast(value, clamp, out_dtype)

    return te.compute(shape, output, name="add_out")


def multiply(lhs, rhs, shape, *, lhs_zero_point, rhs_zero_point, multiplier, shift,
             output_zero_point, clamp, out_dtype, single_rounding=False):
    """Elementwise product with broadcasting (TFLM's MUL): the product of the centered
    inputs (at most 255 * 255, no overflow) requantized once."""

    def output(*index):
        product = (_centered(lhs, _broadcast_index(lhs, index), lhs_zero_point)
                   * _centered(rhs, _broadcast_index(rhs, index), rhs_zero_point))
        value = (requantize_expr(product, multiplier, shift, single_rounding=single_rounding)
                 + _i32(output_zero_point))
        return _clamp_cast(value, clamp, out_dtype)

    return te.compute(shape, output, name="multiply_out")


def requantize(data, *, input_zero_point, multiplier, shift, output_zero_point, clamp,
               out_dtype, single_rounding=False):
    """Change an activation's quantization: TFLM's int8 -> int8 QUANTIZE."""

    def output(*index):
        value = _centered(data, index, input_zero_point)
        value = (requantize_expr(value, multiplier, shift, single_rounding=single_rounding)
                 + _i32(output_zero_point))
        return _clamp_cast(value, clamp, out_dtype)

    return te.compute(data.shape, output, name="requantize")


def lookup(data, table, out_dtype):
    """Elementwise function of one int8/uint8 value through a 256-entry table."""
    offset = 128 if str(data.dtype) == "int8" else 0
    return te.compute(
        data.shape,
        lambda *index: table[data[index].astype(_I32) + _i32(offset)].astype(out_dtype),
        name="lookup")

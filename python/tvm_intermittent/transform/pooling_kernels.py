"""TFLite's int8 AVERAGE_POOL_2D without padding, summed four channels at a time.

TFLM sums each window's raw int8 values and divides by the window's size, rounding half
away from zero: ``(sum + n / 2) / n`` for a positive sum, ``(sum - n / 2) / n`` otherwise,
with C's truncating division (``integer_ops.avg_pool2d`` has the TE definition). Without
padding every window holds the same ``n`` values, a compile-time constant, so the division
is GCC's multiply by the reciprocal, not a call.

The sum is what costs: here one word load brings four channels of a window position and
two ``SXTAB16`` add their bytes, sign-extended, into two registers of two 16-bit sums each
(channels 0 and 2, 1 and 3): two instructions and a load for four values, where a byte at a
time takes a load and an add per value. A 16-bit half holds the sum of up to 256 int8
values (``-128 * 256`` and ``127 * 256`` fit), so larger windows keep the TE kernel, as do
padded pools (their window sizes vary), channels not in quads and boards without the DSP
extension.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .integer_kernels import (KERNEL_ATTRS, _arg, _bind, _dsp_available, _helper, _i32, _local,
                              _loop, _private)

#: Values one 16-bit half can sum without overflow.
MAX_WINDOW = 256


def avg_pool_applies(*, in_shape, pool, padding, layout, dtype) -> str | None:
    """None when :func:`avg_pool2d_s8` serves the pool, else why not."""
    if layout != "NHWC" or dtype != "int8":
        return "only int8 NHWC"
    if any(padding):
        return "it is padded (window sizes vary)"
    if int(in_shape[-1]) % 4:
        return "its channels are not in quads"
    if pool[0] * pool[1] > MAX_WINDOW:
        return f"its window sums more than {MAX_WINDOW} values"
    if not _dsp_available():
        return "the board has no DSP extension"
    return None


def avg_pool2d_s8(*, in_shape, pool, strides, clamp):
    """The kernel ``(input, output)`` of an unpadded int8 NHWC average pool."""
    batch, in_h, in_w, channels = (int(d) for d in in_shape)
    (p_h, p_w), (s_h, s_w) = pool, strides
    out_h, out_w = (in_h - p_h) // s_h + 1, (in_w - p_w) // s_w + 1
    count = p_h * p_w
    lo, hi = clamp
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", in_shape, "int8")
            out = _arg("output", (batch, out_h, out_w, channels), "int8")
            sums = [_local("sum_even"), _local("sum_odd")]
            with _loop("batch", batch) as n, _loop("out_y", out_h) as out_y, \
                    _loop("out_x", out_w) as out_x, \
                    _loop("channel_quad", channels // 4) as q:
                c0 = q * 4
                for s in sums:
                    T.buffer_store(s, _i32(0), [0])
                with _loop("pool_y", p_h) as k_y, _loop("pool_x", p_w) as k_x:
                    word = _bind("input4", _helper("intm_load_s8x4", tirx.address_of(
                        x[n, out_y * s_h + k_y, out_x * s_w + k_x, c0])))
                    T.buffer_store(sums[0], _helper("intm_sxtab16", sums[0][0], word), [0])
                    T.buffer_store(sums[1], _helper("intm_sxtab16_ror8", sums[1][0], word),
                                   [0])
                even = _bind("even", sums[0][0])
                odd = _bind("odd", sums[1][0])
                # Channel j of the quad: the low (j even) or high half of its register.
                for j, (word, high) in enumerate(((even, False), (odd, False), (even, True),
                                                  (odd, True))):
                    total = _bind("total", tirx.shift_right(word, _i32(16)) if high
                                  else word.astype("int16").astype("int32"))
                    # One division of the sum nudged by +-count/2 (a sum of 0 divides to 0
                    # either way), the sign taken without a compare: with no branch in
                    # between, GCC merges the quad's four byte stores into one word store.
                    sign = tirx.shift_right(total, _i32(31))
                    half = tirx.bitwise_xor(_i32(count // 2), sign) - sign
                    value = tirx.truncdiv(total + half, _i32(count))
                    # An average of int8 values is an int8 value: only a fused
                    # activation's tighter clamp needs a test.
                    if lo > -128:
                        value = tirx.max(value, _i32(lo))
                    if hi < 127:
                        value = tirx.min(value, _i32(hi))
                    T.buffer_store(out, value.astype("int8"), [n, out_y, out_x, c0 + j])
    return _private(builder.get())

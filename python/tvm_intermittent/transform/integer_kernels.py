"""Hand-scheduled int8 kernels for the operators that carry the MACs: conv2d, depthwise
conv2d and dense, in the layouts TFLite uses (NHWC activations).

The TE definitions in :mod:`.integer_ops` compute the same values, but a TE reduction over
a padded window tests "is this tap inside the image?" for every multiply-accumulate, and
its loops give the C compiler one accumulator and no reuse. These kernels are written as
TIR statements instead, shaped like TFLM's reference kernels plus register blocking:

- loops named ``out_y``/``out_x``/``channel_block`` (``pixel_pair`` for unpadded
  convolutions, which compute two output pixels at once); each block holds four output
  channels (eight for depthwise), so every input byte loaded feeds four multiply-accumulates
  and, with pixel pairs, every weight two;
- the input zero point folded into the bias at compile time
  (``sum((x - zp) * w) = sum(x * w) - zp * sum(w)``), so the inner loop is ``acc += x * w``;
- padding tested once per filter tap, not per multiply, and for looped taps only for windows
  that cross the border: for a tap outside the image TFLM adds nothing, so the kernel adds
  back that tap's share of the folded correction (``zp * w`` over the tap's weights, from a
  per-tap table when the tap has many);
- small windows of few channels (depthwise, first layers) unrolled into straight-line code;
- the requantization of :class:`~.fixed_point.Requantization`;
- on DSP boards, SMLAD over four input channels per step, and for padded convolutions with
  short rows or channels not in quads (first layers) over contiguous filter rows
  (:mod:`.conv_rows`).

What is worth doing was measured on QEMU with the zoo models (``bench/README.md``); some
plausible variants were slower and are not here (unrolling the pixel-pair loop over input
channels spills registers; pixel pairs for depthwise layers cost more in border tests than
they save; skipping the per-tap tests inside the image slows unrolled windows down).

The int32 accumulators cannot overflow: each product is at most 255 * 128, the folded bias
at most 128 * 127 per weight plus TFLM's own bias, and a layer would need some 65,000
weights per output (a 3x3 convolution over 7,000 channels) to come near 2**31.

Each builder returns the PrimFunc (private, marked as scheduled) and the constant arrays it
takes after the input, in order; the output buffer comes last. The leading loops are
perfectly nested and each iteration writes its own outputs, so the intermittent tiling can
cut them.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .fixed_point import Requantization
from .notices import LOGGER

_I32 = "int32"
#: Already scheduled (dlight leaves it alone) and opaque to FuseOps (nothing is fused into
#: a statement-level kernel).
KERNEL_ATTRS = {"tirx.is_scheduled": True, "tirx.noalias": True, "op_pattern": 8}
#: The kernel's multiply-accumulates per inference, counted as TFLite-based libraries count
#: them (outputs times the taps and channels of one output); the per-operator profile reads
#: it. Only the kernels that carry MACs (convolutions, dense) have it.
MACS_ATTR = "intermittent.macs"


def _with_macs(func, macs: int):
    return func.with_attr(MACS_ATTR, tirx.IntImm("int64", int(macs)))


def _i32(value):
    return tirx.const(int(value), _I32)


def channel_block(channels: int) -> int:
    """Output channels computed together: 4, or the largest of 2 and 1 dividing them."""
    return next(b for b in (4, 2, 1) if channels % b == 0)


def _loop(name: str, extent: int, start: int = 0):
    """A serial loop whose variable prints as ``name``."""
    frame = T.serial(start, start + extent)
    return _Named(frame, name)


class _Named:
    """Enter a loop frame and name its variable (the IR builder calls them all ``v``)."""

    def __init__(self, frame, name):
        self.frame, self.name = frame, name

    def __enter__(self):
        var = self.frame.__enter__()
        IRBuilder.name(self.name, var)
        return var

    def __exit__(self, *exc):
        return self.frame.__exit__(*exc)


def _private(func):
    """No global symbol: the Relax builder names the kernel (and keeps names unique)."""
    return func.without_attr("global_symbol") if "global_symbol" in func.attrs else func


def _arg(name, shape, dtype):
    return T.arg(name, T.buffer(tuple(int(d) for d in shape), dtype))


def _local(name):
    buffer = T.alloc_buffer((1,), _I32, scope="local")
    IRBuilder.name(name, buffer)
    return buffer


def _bind(name, value):
    var = T.bind(value)
    IRBuilder.name(name, var)
    return var


def _store_output(out, index, value, output_zero_point, clamp, dtype):
    lo, hi = clamp
    value = tirx.max(tirx.min(value + _i32(output_zero_point), _i32(hi)), _i32(lo))
    T.buffer_store(out, value.astype(dtype), index)


def _store_pixel_of_pair(p, pair, pixels: int, store) -> None:
    """Emit ``store()`` for pixel ``p`` (0 or 1) of pixel pair ``pair``: with an odd pixel
    count the last pair's second pixel is past the end, so its stores run under a test."""
    if p == 1 and pixels % 2:
        with T.If(pair * 2 + 1 < pixels):
            with T.Then():
                store()
    else:
        store()


def _store_outputs_looped(out, values, index_at, channel_at, requant, tables,
                          output_zero_point, clamp, dtype):
    """Requantize and store a block of accumulators through one loop over the block instead
    of one inline requantization each: the values go through a small local array (a store
    and a load each), the requantization's code appears once. ``index_at(j)`` and
    ``channel_at(j)`` give output ``j``'s index and channel for the loop variable ``j``."""
    sums = T.alloc_buffer((len(values),), _I32, scope="local")
    IRBuilder.name("sums", sums)
    for j, value in enumerate(values):
        T.buffer_store(sums, value, [j])
    with _loop("out_channel", len(values)) as j:
        _store_output(out, index_at(j), requant.emit(sums[j], channel_at(j), tables, _bind),
                      output_zero_point, clamp, dtype)


def _requant_args(requant: Requantization, channels: int):
    return [_arg(name, (channels,), _I32) for name in requant.table_names()]


def conv2d_nhwc(*, in_shape, weight, bias, strides, padding, dilation, input_zero_point,
                output_zero_point, requant: Requantization, clamp, in_dtype, out_dtype,
                depthwise_multiplier=None, unpaired: str | None = None,
                block_quads: int | None = None):
    """A convolution over NHWC activations.

    Parameters
    ----------
    in_shape : tuple
        ``[N, H, W, C]``.
    weight : numpy.ndarray
        int8, ``[C_OUT, KH, KW, C]`` (TFLite's OHWI), or for a depthwise convolution
        (``depthwise_multiplier`` set) ``[KH, KW, C * multiplier]``.
    bias : numpy.ndarray or None
        int32 ``[C_OUT]`` in the accumulator's scale.
    strides, dilation : (int, int)
    padding : (top, left, bottom, right)
    requant : Requantization
        Per output channel.
    clamp : (int, int)
        Output range after the fused activation.
    unpaired : str, optional
        For the DSP depthwise kernel: one output row per tile, for this reason
        (:func:`.depthwise_kernels.depthwise_conv2d_dsp`).
    block_quads : int, optional
        For the DSP depthwise kernel: tiles of this many channel quads of one output pixel
        (:func:`.depthwise_kernels.depthwise_conv2d_dsp`).

    Returns
    -------
    (tvm.tirx.PrimFunc, list of numpy.ndarray)
        The kernel ``(x, weights, bias, [tap corrections], [requant tables], out)`` and the
        constant arrays between ``x`` and ``out`` (the bias has the input zero point folded
        in).
    """
    depthwise = depthwise_multiplier is not None
    batch, in_h, in_w, in_c = (int(d) for d in in_shape)
    if depthwise:
        k_h, k_w, out_c = weight.shape
        per_tap = weight.astype(np.int64)  # [KH, KW, C_OUT]: one weight per tap
    else:
        out_c, k_h, k_w, _ = weight.shape
        per_tap = weight.astype(np.int64).sum(axis=3).transpose(1, 2, 0)  # [KH, KW, C_OUT]
    (s_h, s_w), (d_h, d_w) = strides, dilation
    top, left, bottom, right = padding
    out_h = (in_h + top + bottom - d_h * (k_h - 1) - 1) // s_h + 1
    out_w = (in_w + left + right - d_w * (k_w - 1) - 1) // s_w + 1
    bias = np.zeros(out_c, np.int64) if bias is None else bias.astype(np.int64)
    folded = (bias - input_zero_point * per_tap.sum(axis=(0, 1))).astype(np.int32)
    block = channel_block(out_c)
    if depthwise and out_c % 8 == 0:
        block = 8  # a depthwise tap reuses nothing: more channels amortize its checks
    # A padded tap's share of the folded correction, zp * (sum of its weights): recomputed
    # where that is one multiply per channel, tabulated where it would take C_IN of them.
    tap_table = (not depthwise and in_c > 4 and any(padding) and input_zero_point != 0)
    taps = (input_zero_point * per_tap).astype(np.int32)  # [KH, KW, C_OUT]
    constants = [weight, folded] + ([taps] if tap_table else []) + requant.tables()
    macs = batch * out_h * out_w * out_c * k_h * k_w * (1 if depthwise else in_c)
    if depthwise:
        from . import depthwise_kernels  # it builds on this module's helpers

        why_not = depthwise_kernels.dsp_applies(
            in_shape=in_shape, multiplier=depthwise_multiplier, in_dtype=in_dtype)
        if why_not is None:
            return depthwise_kernels.depthwise_conv2d_dsp(
                in_shape=in_shape, weight=weight, folded_bias=folded, strides=strides,
                padding=padding, dilation=dilation, input_zero_point=input_zero_point,
                output_zero_point=output_zero_point, requant=requant, clamp=clamp,
                out_dtype=out_dtype, macs=macs, unpaired=unpaired, block_quads=block_quads)
        LOGGER.info("depthwise_conv2d %s: the portable kernel, not the DSP one: %s",
                    list(in_shape), why_not)
    if not depthwise and not any(padding) and out_h * out_w > 1:
        from . import conv_blocks  # pylint: disable=import-outside-toplevel (it imports us)

        why_not = conv_blocks.why_not(weight=weight, dilation=dilation, in_dtype=in_dtype,
                                      dsp=_dsp_available())
        if why_not is None:
            stage = conv_blocks.output_stage(requant=requant, output_zero_point=output_zero_point,
                                             clamp=clamp, out_dtype=out_dtype)
            func = conv_blocks.build(
                in_shape=in_shape, weight=weight, out_shape=(batch, out_h, out_w, out_c),
                strides=strides, dilation=dilation, stage=stage)
            return _with_macs(func, macs), ([conv_blocks.interleave_pairs(weight), folded]
                                            + conv_blocks.tables(stage))
        if _dsp_available():
            LOGGER.info("conv2d %s -> %d: the pixel pairs, not the 2x2 micro-kernel: %s",
                        list(in_shape), out_c, why_not)
        # Two pixels share each unpacked weight word (measured faster than one pixel per
        # step once the kernels are compiled without pre-RA scheduling, see
        # intm_kernel_ops.h).
        func = _conv2d_pixel_pairs(
            in_shape=in_shape, weight=weight, out_shape=(batch, out_h, out_w, out_c),
            strides=strides, dilation=dilation, output_zero_point=output_zero_point,
            requant=requant, clamp=clamp, in_dtype=in_dtype, out_dtype=out_dtype)
        return _with_macs(func, macs), constants
    if not depthwise and _rows_dsp_applies(weight, dilation, in_dtype):
        from . import conv_rows  # pylint: disable=import-outside-toplevel (it imports us)

        from . import conv_blocks  # pylint: disable=import-outside-toplevel (it imports us)

        stage = conv_blocks.output_stage(requant=requant, output_zero_point=output_zero_point,
                                         clamp=clamp, out_dtype=out_dtype)
        func = conv_rows.build(
            in_shape=in_shape, weight=weight, out_shape=(batch, out_h, out_w, out_c),
            strides=strides, padding=padding, dilation=dilation,
            input_zero_point=input_zero_point, stage=stage)
        return _with_macs(func, macs), ([conv_rows.weights(weight), folded]
                                        + conv_blocks.tables(stage))
    # Unrolled taps need no loop counters; worth it where a tap has little work.
    unroll = k_h * k_w <= 49 and (depthwise or in_c <= 4)
    # A tap over input channels in quads: one SMLAD per two multiply-accumulates.
    dsp = not depthwise and in_c % 4 == 0 and in_dtype == "int8" and _dsp_available()

    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", in_shape, in_dtype)
            w = _arg("weights", weight.shape, "int8")
            b = _arg("bias", (out_c,), _I32)
            corrections = _arg("tap_correction", taps.shape, _I32) if tap_table else None
            tables = _requant_args(requant, out_c)
            out = _arg("output", (batch, out_h, out_w, out_c), out_dtype)
            acc = [_local(f"acc{j}") for j in range(block)]
            with _loop("batch", batch) as n, _loop("out_y", out_h) as out_y, \
                    _loop("out_x", out_w) as out_x, \
                    _loop("channel_block", out_c // block) as cb:
                channels = [cb * block + j for j in range(block)]
                for j in range(block):
                    T.buffer_store(acc[j], b[channels[j]], [0])
                def tap(f_y, f_x, checked):
                    in_y = _bind("in_y", out_y * s_h + f_y * d_h - top)
                    in_x = _bind("in_x", out_x * s_w + f_x * d_w - left)

                    def accumulate(read):
                        """acc += input * weight over the tap; read(c) gives the input."""
                        if depthwise:
                            for j in range(block):
                                value = read(channels[j] // depthwise_multiplier)
                                T.buffer_store(acc[j], acc[j][0] + value
                                               * w[f_y, f_x, channels[j]].astype(_I32), [0])
                            return

                        def mac(ic):
                            value = _bind("value", read(ic))
                            for j in range(block):
                                T.buffer_store(acc[j], acc[j][0]
                                               + value * w[channels[j], f_y, f_x, ic].astype(_I32),
                                               [0])

                        if dsp and read is load:
                            with _loop("in_quad", in_c // 4) as q:
                                _smlad_quad(acc, lambda j, q=q: w[channels[j], f_y, f_x, q * 4],
                                            x[n, in_y, in_x, q * 4])
                        elif unroll:
                            for ic in range(in_c):
                                mac(ic)
                        else:
                            with _loop("in_channel", in_c) as ic:
                                mac(ic)

                    def load(c):
                        return x[n, in_y, in_x, c].astype(_I32)

                    if not checked:
                        accumulate(load)
                        return
                    inside = tirx.all(in_y >= 0, in_y < in_h, in_x >= 0, in_x < in_w)
                    with T.If(inside):
                        with T.Then():
                            accumulate(load)
                        if input_zero_point != 0:  # outside: undo this tap's share of the fold
                            with T.Else():
                                if tap_table:
                                    for j in range(block):
                                        T.buffer_store(acc[j], acc[j][0] + corrections[
                                            f_y, f_x, channels[j]], [0])
                                else:
                                    accumulate(lambda c: _i32(input_zero_point))

                def window(checked):
                    if unroll:  # small windows of few channels: straight-line code per pixel
                        for f_y in range(k_h):
                            for f_x in range(k_w):
                                tap(f_y, f_x, checked)
                    else:
                        with _loop("filter_y", k_h) as f_y, _loop("filter_x", k_w) as f_x:
                            tap(f_y, f_x, checked)

                if not any(padding):
                    window(checked=False)
                elif unroll:  # the compiler folds most unrolled taps' tests (measured faster)
                    window(checked=True)
                else:  # most windows lie inside the image: test the taps only at the border
                    y0, x0 = out_y * s_h - top, out_x * s_w - left
                    with T.If(tirx.all(y0 >= 0, y0 + (k_h - 1) * d_h < in_h, x0 >= 0,
                                       x0 + (k_w - 1) * d_w < in_w)):
                        with T.Then():
                            window(checked=False)
                        with T.Else():
                            window(checked=True)
                for j in range(block):
                    _store_output(out, [n, out_y, out_x, channels[j]],
                                  requant.emit(acc[j][0], channels[j], tables, _bind),
                                  output_zero_point, clamp, out_dtype)
    return _with_macs(_private(builder.get()), macs), constants


def _conv2d_pixel_pairs(*, in_shape, weight, out_shape, strides, dilation, output_zero_point,
                        requant, clamp, in_dtype, out_dtype):
    """An unpadded convolution computing two output pixels by four channels at a time.

    Every weight loaded feeds two multiply-accumulates and every input byte four. Output
    pixels are paired in row-major order (so a 5-wide image wastes nothing per row); an odd
    pixel count computes the last pixel twice and stores it once.
    """
    batch, _, _, in_c = (int(d) for d in in_shape)
    out_c, k_h, k_w, _ = weight.shape
    _, out_h, out_w, _ = out_shape
    (s_h, s_w), (d_h, d_w) = strides, dilation
    pixels = out_h * out_w
    block = channel_block(out_c)
    dsp = in_c % 4 == 0 and in_dtype == "int8" and _dsp_available()
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", in_shape, in_dtype)
            w = _arg("weights", weight.shape, "int8")
            b = _arg("bias", (out_c,), _I32)
            tables = _requant_args(requant, out_c)
            out = _arg("output", out_shape, out_dtype)
            acc = [[_local(f"acc{p}_{j}") for j in range(block)] for p in range(2)]
            with _loop("batch", batch) as n, _loop("pixel_pair", (pixels + 1) // 2) as pair, \
                    _loop("channel_block", out_c // block) as cb:
                channels = [cb * block + j for j in range(block)]
                pixel = [pair * 2, tirx.min(pair * 2 + 1, _i32(pixels - 1))]
                out_yx = [(p // out_w, p % out_w) for p in pixel]
                for p in range(2):
                    for j in range(block):
                        T.buffer_store(acc[p][j], b[channels[j]], [0])
                def mac(f_y, f_x, ic):
                    values = [_bind(f"value{p}", x[n, out_y * s_h + f_y * d_h,
                                                    out_x * s_w + f_x * d_w, ic].astype(_I32))
                              for p, (out_y, out_x) in enumerate(out_yx)]
                    for j in range(block):
                        weight_value = _bind("weight", w[channels[j], f_y, f_x, ic].astype(_I32))
                        for p in range(2):
                            T.buffer_store(acc[p][j], acc[p][j][0] + values[p] * weight_value,
                                           [0])

                def mac_quad(f_y, f_x, q):
                    """Four input channels of both pixels against four weights per channel:
                    each weight word, unpacked once, feeds four SMLADs."""
                    halves = []
                    for p, (out_y, out_x) in enumerate(out_yx):
                        word = _bind(f"input4_{p}", _helper("intm_load_s8x4", tirx.address_of(
                            x[n, out_y * s_h + f_y * d_h, out_x * s_w + f_x * d_w, q * 4])))
                        halves.append((_bind(f"even{p}", _helper("intm_sxtb16", word)),
                                       _bind(f"odd{p}", _helper("intm_sxtb16_ror8", word))))
                    for j in range(block):
                        weights = _bind("weights4", _helper(
                            "intm_load_s8x4", tirx.address_of(w[channels[j], f_y, f_x, q * 4])))
                        even_w = _bind("even_w", _helper("intm_sxtb16", weights))
                        odd_w = _bind("odd_w", _helper("intm_sxtb16_ror8", weights))
                        for p, (even, odd) in enumerate(halves):
                            inner = _helper("intm_smlad", odd, odd_w, acc[p][j][0])
                            T.buffer_store(acc[p][j], _helper("intm_smlad", even, even_w, inner),
                                           [0])

                if dsp:
                    with _loop("filter_y", k_h) as f_y, _loop("filter_x", k_w) as f_x, \
                            _loop("in_quad", in_c // 4) as q:
                        mac_quad(f_y, f_x, q)
                else:
                    with _loop("filter_y", k_h) as f_y, _loop("filter_x", k_w) as f_x, \
                            _loop("in_channel", in_c) as ic:
                        mac(f_y, f_x, ic)
                for p, (out_y, out_x) in enumerate(out_yx):
                    def store():
                        for j in range(block):
                            _store_output(out, [n, out_y, out_x, channels[j]],
                                          requant.emit(acc[p][j][0], channels[j], tables, _bind),
                                          output_zero_point, clamp, out_dtype)
                    _store_pixel_of_pair(p, pair, pixels, store)
    return _private(builder.get())


def dense(*, in_shape, weight, bias, input_zero_point, output_zero_point,
          requant: Requantization, clamp, in_dtype, out_dtype, one_unit: bool = False):
    """Fully connected: ``[M, K]`` activations times int8 weights ``[N, K]``.

    Parameters
    ----------
    one_unit : bool
        Compute one output unit per iteration of the outer loops, each ``acc = bias; for k:
        acc += x[k] * w[k]; out = f(acc)`` over one accumulator, instead of a block of four
        or eight units: the slower kernel (an input word feeds one unit, not eight), but
        its smallest tile is one unit, and its reduction is the form the intermittent
        tiling splits into chunks when even one unit does not fit a charge
        (``codegen.tiling._split_reduction``). The builder asks for it only where the
        blocked kernel's smallest tile does not fit (``builder._shrink_refused``).

    Returns the kernel ``(x, weights, bias, [requant tables], out)`` and its constants.
    """
    rows, depth = (int(d) for d in in_shape)
    units = int(weight.shape[0])
    bias = np.zeros(units, np.int64) if bias is None else bias.astype(np.int64)
    folded = (bias - input_zero_point * weight.astype(np.int64).sum(axis=1)).astype(np.int32)
    form, block = dense_form(rows=rows, depth=depth, units=units, in_dtype=in_dtype,
                             one_unit=one_unit)
    constants = [weight, folded] + requant.tables()
    macs = rows * units * depth
    if form == "dsp8":
        from . import dense_dsp  # pylint: disable=import-outside-toplevel (it imports us)

        func = dense_dsp.build(in_shape=in_shape, units=units,
                               output_zero_point=output_zero_point, requant=requant,
                               clamp=clamp, out_dtype=out_dtype)
        return _with_macs(func, macs), [dense_dsp.interleave(weight), folded] + requant.tables()
    if form == "pointwise":
        # Rows are pixels of a 1x1 convolution whose input channels are the features: the
        # same SMLAD kernel, the same constants (weights [N, K] are its [C_OUT, C_IN]).
        func = _conv2d_pointwise_dsp(
            in_shape=(1, rows, 1, depth), weight=weight, out_shape=(1, rows, 1, units),
            strides=(1, 1), dilation=(1, 1), output_zero_point=output_zero_point,
            requant=requant, clamp=clamp, in_dtype=in_dtype, out_dtype=out_dtype)
        return _with_macs(func, macs), constants

    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", in_shape, in_dtype)
            w = _arg("weights", weight.shape, "int8")
            b = _arg("bias", (units,), _I32)
            tables = _requant_args(requant, units)
            out = _arg("output", (rows, units), out_dtype)
            acc = [_local(f"acc{j}") for j in range(block)]
            with _loop("row", rows) as row, _loop("unit_block", units // block) as ub:
                units_ = [ub * block + j for j in range(block)]
                for j in range(block):
                    T.buffer_store(acc[j], b[units_[j]], [0])
                if _dense_dsp_applies(depth, in_dtype):  # one block: SMLAD, still splittable
                    with _loop("in_quad", depth // 4) as q:
                        _smlad_quad(acc, lambda j, q=q: w[units_[j], q * 4], x[row, q * 4])
                else:
                    with _loop("in_feature", depth) as k:
                        value = _bind("value", x[row, k].astype(_I32))
                        for j in range(block):
                            T.buffer_store(acc[j], acc[j][0]
                                           + value * w[units_[j], k].astype(_I32), [0])
                for j in range(block):
                    _store_output(out, [row, units_[j]],
                                  requant.emit(acc[j][0], units_[j], tables,
                                               _bind if block > 1 else None),
                                  output_zero_point, clamp, out_dtype)
    return _with_macs(_private(builder.get()), macs), constants


def dense_form(*, rows: int, depth: int, units: int, in_dtype: str,
               one_unit: bool = False) -> tuple[str, int]:
    """Which kernel :func:`dense` builds, and the units one iteration of its outer loops
    computes: ``("dsp8", 8)`` (:mod:`.dense_dsp`), ``("pointwise", block)`` (the SMLAD 1x1
    convolution) or ``("plain", block)``. ``("plain", 1)`` is the one-unit kernel whose
    reduction the tiler can split: what ``one_unit`` asks for, and what one block of
    units would be anyway (it would be a single tile)."""
    from . import dense_dsp  # pylint: disable=import-outside-toplevel (it imports us)

    block = channel_block(units)
    if one_unit or rows * (units // block) == 1:
        return "plain", 1
    if dense_dsp.applies(units=units, depth=depth, rows=rows, in_dtype=in_dtype,
                         dsp=_dsp_available()):
        return "dsp8", dense_dsp.UNITS
    if _dense_dsp_applies(depth, in_dtype):
        return "pointwise", block
    return "plain", block


def quantize(*, shape, scale: float, zero_point: int, ties_to_even: bool, out_dtype: str):
    """Float32 to int8/uint8 at a model boundary: ``round(x / scale) + zero_point``.

    TFLite rounds halves away from zero; onnxruntime (and ``relax.quantize``) to even. The
    rounding is decided on the truncated quotient and its remainder, in integer terms, so
    it needs no libm call and no particular FPU rounding mode. The quotient is clamped to
    +-1024 first so that its conversion to int32 is defined (beyond that it saturates
    anyway).

    Returns the kernel ``(x, out)``; it has no constants.
    """
    if not ties_to_even and _dsp_available():
        # TFLite's rounding on a Cortex-M4F: the FPU's conversions (quantize_kernel.py).
        from .quantize_kernel import quantize_round_away

        return quantize_round_away(shape=shape, scale=scale, zero_point=zero_point,
                                   out_dtype=out_dtype)
    lo, hi = (-128, 127) if out_dtype == "int8" else (0, 255)
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
            loops = [_loop(f"i{axis}", int(extent)) for axis, extent in enumerate(shape)]
            frames = [loop.__enter__() for loop in loops]
            quotient = _bind("quotient", tirx.max(tirx.min(
                x[frames] / tirx.const(scale, f32), tirx.const(1024.0, f32)),
                tirx.const(-1024.0, f32)))
            whole = _bind("whole", quotient.astype(_I32))
            fraction = _bind("fraction", quotient - whole.astype(f32))
            half = tirx.const(0.5, f32)
            if ties_to_even:
                odd = tirx.truncmod(whole, _i32(2)) != 0
                up = tirx.any(fraction > half, tirx.all(fraction == half, odd))
                down = tirx.any(fraction < -half, tirx.all(fraction == -half, odd))
            else:
                up, down = fraction >= half, fraction <= -half
            step = tirx.Select(up, _i32(1), tirx.Select(down, _i32(-1), _i32(0)))
            _store_output(out, frames, whole + step, zero_point, (lo, hi), out_dtype)
            for loop in reversed(loops):
                loop.__exit__(None, None, None)
            root.__exit__(None, None, None)
    return _private(builder.get()), []


def _helper(name, *args):
    return tirx.call_pure_extern("int32", name, *args)


def _smlad_quad(acc, weight_at, input_element):
    """``acc[j] += sum(x[k] * w_j[k] for k in 0..3)`` for each accumulator: one input word
    unpacked once by SXTB16 into its even and odd bytes as halves, then per accumulator
    one weight word (``weight_at(j)``, its first byte) unpacked alike and two SMLADs."""
    word = _bind("input4", _helper("intm_load_s8x4", tirx.address_of(input_element)))
    even = _bind("even", _helper("intm_sxtb16", word))
    odd = _bind("odd", _helper("intm_sxtb16_ror8", word))
    for j, accumulator in enumerate(acc):
        weights = _bind("weights4", _helper("intm_load_s8x4", tirx.address_of(weight_at(j))))
        inner = _helper("intm_smlad", odd, _helper("intm_sxtb16_ror8", weights),
                        accumulator[0])
        T.buffer_store(accumulator, _helper(
            "intm_smlad", even, _helper("intm_sxtb16", weights), inner), [0])


def _dsp_available() -> bool:
    """Whether the current target (the pipeline runs under the board's) has the Cortex-M
    DSP extension."""
    target = tvm.target.Target.current(allow_none=True)
    return bool(target is not None and target.attrs.get("feature.has_dsp", False))


def _rows_dsp_applies(weight, dilation, in_dtype) -> bool:
    """Whether a padded (non-depthwise) convolution takes :mod:`.conv_rows`."""
    from . import conv_rows  # pylint: disable=import-outside-toplevel

    return conv_rows.applies(weight=weight, dilation=dilation, in_dtype=in_dtype,
                             dsp=_dsp_available())


def _dense_dsp_applies(depth: int, in_dtype: str) -> bool:
    return depth % 4 == 0 and in_dtype == "int8" and _dsp_available()


def _conv2d_pointwise_dsp(*, in_shape, weight, out_shape, strides, dilation,
                          output_zero_point, requant, clamp, in_dtype, out_dtype):
    """A 1x1 stride-1 int8 convolution with the Cortex-M4's SMLAD: per pixel and block of
    output channels, four input channels per step (one input word unpacked once by SXTB16,
    one weight word per channel, two SMLADs per channel: two multiply-accumulates each).
    Fully connected layers whose units are not in blocks of eight (:mod:`.dense_dsp`) run
    it, rows as pixels; convolutions take the pixel pairs instead."""
    del strides, dilation  # 1x1, stride 1
    batch, _, _, in_c = (int(d) for d in in_shape)
    out_c = weight.shape[0]
    pixels = int(out_shape[1]) * int(out_shape[2])
    block = channel_block(out_c)
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", (batch, pixels, in_c), "int8")
            w = _arg("weights", (out_c, in_c), "int8")
            b = _arg("bias", (out_c,), "int32")
            tables = _requant_args(requant, out_c)
            out = _arg("output", (batch, pixels, out_c), out_dtype)
            acc = [_local(f"acc{j}") for j in range(block)]
            with _loop("batch", batch) as n, _loop("pixel", pixels) as p, \
                    _loop("channel_block", out_c // block) as cb:
                channels = [cb * block + j for j in range(block)]
                for j in range(block):
                    T.buffer_store(acc[j], b[channels[j]], [0])
                with _loop("in_quad", in_c // 4) as q:
                    word = _bind("input4", _helper(
                        "intm_load_s8x4", tirx.address_of(x[n, p, q * 4])))
                    even = _bind("even", _helper("intm_sxtb16", word))
                    odd = _bind("odd", _helper("intm_sxtb16_ror8", word))
                    for j in range(block):
                        weights = _bind("weights4", _helper(
                            "intm_load_s8x4", tirx.address_of(w[channels[j], q * 4])))
                        inner = _helper("intm_smlad", odd,
                                        _helper("intm_sxtb16_ror8", weights), acc[j][0])
                        T.buffer_store(acc[j], _helper(
                            "intm_smlad", even, _helper("intm_sxtb16", weights), inner), [0])
                for j in range(block):
                    _store_output(out, [n, p, channels[j]],
                                  requant.emit(acc[j][0], channels[j], tables, _bind),
                                  output_zero_point, clamp, out_dtype)
    return _private(builder.get())

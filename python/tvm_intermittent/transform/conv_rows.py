"""An int8 convolution with the Cortex-M4's SMLAD over filter rows instead of channels.

In NHWC activations and OHWI weights, one filter row of one output pixel is a contiguous
run of ``KW * C_IN`` bytes on both sides (the window's ``KW`` taps of ``C_IN`` channels
each, when the convolution is not dilated along x). The channel-quad kernels of
:mod:`.integer_kernels` pair multiply-accumulates within one tap's channels, which leaves a
first layer over one or three input channels without SMLAD; pairing along the run instead
serves every channel count: micro_speech's 10 x 8 window over one channel is ten runs of
eight bytes, two words each, ResNet-8's 3 x 3 over three channels three runs of nine.

Per word of a run, the input words of two neighbouring output pixels are loaded and
unpacked by ``SXTB16`` into their even and odd bytes as halves, and per output channel of
the block one weight word (the same bytes of the OHWI row, so already in the order the
loop reads them: no rearranged copy, no growth in flash) is unpacked once for both pixels
and fed to four SMLADs. A run's last ``len % 4`` bytes are plain multiply-accumulates.

The border is split from the interior: a pair of windows inside the image runs the rows
without a test; otherwise each pixel runs alone, again without a test when its window is
inside. A border window tests each filter row once: a row inside the image runs as in the
interior; a row above or below it adds, for TFLM's "nothing" (the zero point folded into
the bias is undone), the run against a constant word of four zero points; a row that
crosses the left or right edge is cut into constant segments at up to
:data:`MAX_EDGE_COLUMNS` border columns, and taken tap by tap elsewhere.

The loops ``batch``/``out_y``/``pixel_pair`` (``out_x`` for rows of odd width)/
``channel_block`` are perfectly nested and each iteration writes its own pixels' block of
output channels, so the intermittent tiling cuts them as it cuts the other convolutions.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .conv_blocks import channel_args, interleave_pairs, mac_run
from .depthwise_kernels import OutputStage
from .integer_kernels import (KERNEL_ATTRS, _I32, _arg, _bind, _helper, _i32, _local, _loop,
                              _private, channel_block)

#: Runs of at most this many words are unrolled; longer ones loop (code size).
UNROLL_WORDS = 2
#: Two output pixels per step inside the image (each unpacked weight word feeds both).
PAIRS = True
#: Multiply-accumulates per output from which a block's requantization runs in a loop:
#: first layers (27 and 40 per output in ResNet-8, VWW and keyword spotting) ran 7-11%
#: slower with it, the others 1-3% (for 2.2 KB less text in ResNet-8).
LOOPED_STORE_MACS = 64
#: Border columns given a branch of their own (constant segments); beyond, tap by tap.
#: Four (micro_speech's) ran its convolution 8% faster for 960 B more flash.
MAX_EDGE_COLUMNS = 2
#: Longest row (bytes) taken when the channels come in quads: ResNet-8's 3 x 3 over 16 and
#: 32 channels (rows of 48 and 96 bytes) ran 3-6% faster than the channel-quad taps, its
#: 3 x 3 over 64 channels at 8 x 8 (192, most windows at the border) 9% slower
#: (``bench/README.md``, "Convolution and fully connected kernels").
MAX_QUAD_ROW = 96


def applies(*, weight, dilation, in_dtype, dsp: bool) -> bool:
    """Whether :func:`build` takes this (non-depthwise, OHWI) convolution: int8 input on a
    DSP board, rows contiguous (not dilated along x), at least one word per row, and
    either channels not in quads (no other SMLAD path) or rows of at most
    :data:`MAX_QUAD_ROW` bytes."""
    _, _, k_w, in_c = weight.shape
    run = k_w * in_c
    return (dsp and in_dtype == "int8" and (int(dilation[1]) == 1 or k_w == 1)
            and run >= 4 and (in_c % 4 != 0 or run <= MAX_QUAD_ROW))


def blocked(weight) -> bool:
    """Whether the pairs inside the image run ``intm_mac_2x2_s8`` (:mod:`.conv_blocks`) over
    each filter row, two channels at a time: rows of whole words and channels in pairs. The
    weights are then interleaved for it (:func:`weights`), and every other path of the kernel
    reads them there."""
    out_c, _, _, in_c = weight.shape
    return in_c % 4 == 0 and out_c % 2 == 0


def weights(weight):
    """The weights as :func:`build`'s kernel takes them: TFLite's OHWI array, or
    :func:`.conv_blocks.interleave_pairs` of it where :func:`blocked`."""
    return interleave_pairs(weight) if blocked(weight) else weight


def _halves(word_value):
    """``(even, odd)``: bytes 0 and 2, and 1 and 3, of a word as sign-extended halves."""
    return (_bind("even", _helper("intm_sxtb16", word_value)),
            _bind("odd", _helper("intm_sxtb16_ror8", word_value)))


def build(*, in_shape, weight, out_shape, strides, padding, dilation, input_zero_point,
          stage: OutputStage):
    """The kernel ``(x, weights, bias, [tables], out)``; ``weights`` are :func:`weights`,
    ``bias`` has the input zero point folded in (as for
    :func:`.integer_kernels.conv2d_nhwc`), the tables are :func:`.conv_blocks.tables` of the
    output stage (:func:`.conv_blocks.output_stage`)."""
    batch, in_h, in_w, in_c = (int(d) for d in in_shape)
    out_c, k_h, k_w, _ = (int(d) for d in weight.shape)
    _, out_h, out_w, _ = (int(d) for d in out_shape)
    (s_h, s_w), (d_h, _) = strides, dilation
    top, left, _, _ = padding
    run = k_w * in_c
    is_blocked = blocked(weight)
    # Output columns whose window crosses the left or right edge.
    edge = [c for c in range(out_w) if not 0 <= c * s_w - left <= in_w - k_w]
    block = channel_block(out_c)
    # Pairs need an even row: an odd one would pair its last pixel with itself, and that
    # pixel's second store, however guarded, counts for the idempotence check as a write
    # into the next row's tile.
    # and more than one input channel: micro_speech's 10 x 8 over one channel ran 6% faster
    # in pairs (576,445 instructions against 616,105) for 768 B more text, the flash its
    # model did not have (bench/README.md, "Convolution and fully connected kernels").
    pairs = PAIRS and out_w % 2 == 0 and in_c > 1
    zp = int(input_zero_point)
    # Four zero points, as SXTB16 would unpack them: (zp, zp) in both halves.
    zp_halves = _i32(np.int32(np.uint32((zp & 0xFFFF) | ((zp & 0xFFFF) << 16)).view(np.int32)))
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_attr(KERNEL_ATTRS)
            x = _arg("input", (batch, in_h, in_w * in_c), "int8")
            if is_blocked:
                w = _arg("weights", (out_c // 2, k_h, run * 2), "int8")
            else:
                w = _arg("weights", (out_c, k_h, run), "int8")
            b = _arg("bias", (out_c,), _I32)
            stage_columns = channel_args(stage, out_c)
            tables = stage.args(out_c)
            out = _arg("output", (batch, out_h, out_w, out_c), stage.out_dtype)
            acc = [[_local(f"acc{p}_{j}") for j in range(block)] for p in range(2)]
            columns = (out_w + 1) // 2 if pairs else out_w
            with _loop("batch", batch) as n, _loop("out_y", out_h) as out_y, \
                    _loop("pixel_pair" if pairs else "out_x", columns) as column_var, \
                    _loop("channel_block", out_c // block) as cb:
                channels = [cb * block + j for j in range(block)]
                y0 = out_y * s_h - top

                def weight_at(j, f_y, k):
                    """Channel ``channels[j]``'s weight ``k`` of filter row ``f_y`` (the
                    first of a word when interleaved: ``k`` is then a multiple of 4)."""
                    if not is_blocked:
                        return w[channels[j], f_y, k]
                    return w[cb * (block // 2) + j // 2, f_y, (k // 4) * 8 + (j % 2) * 4]

                def init(acc):
                    for j in range(block):
                        T.buffer_store(acc[j], b[channels[j]], [0])

                def store_one(out_x, value, channel):
                    stage.store(out, [n, out_y, out_x, channel], value, channel, tables,
                                [c[channel] for c in stage_columns])

                def store(acc, out_x):
                    """The block's outputs: requantized in a loop over the block (flash: the
                    values go through a small local array, the output stage's code appears
                    once) where an output has enough multiply-accumulates to hide the loop,
                    inline otherwise."""
                    if k_h * run >= LOOPED_STORE_MACS:
                        sums = T.alloc_buffer((block,), _I32, scope="local")
                        IRBuilder.name("sums", sums)
                        for j in range(block):
                            T.buffer_store(sums, acc[j][0], [j])
                        with _loop("out_channel", block) as j:
                            store_one(out_x, sums[j], cb * block + j)
                        return
                    for j in range(block):
                        store_one(out_x, acc[j][0], channels[j])

                def one_pixel(out_x, acc):
                    """One output pixel, its border tested row by row."""
                    init(acc)
                    x0 = out_x * s_w - left

                    def mac_words(f_y, halves_at, first, count):
                        """Per word of the row from byte ``first`` on: the input's halves
                        (``halves_at(offset)``), then per channel one weight word and two
                        SMLADs."""
                        def step(offset):
                            even, odd = halves_at(offset)
                            for j in range(block):
                                weights4 = _bind("weights4", _helper(
                                    "intm_load_s8x4", tirx.address_of(weight_at(j, f_y, offset))))
                                inner = _helper("intm_smlad", odd,
                                                _helper("intm_sxtb16_ror8", weights4), acc[j][0])
                                T.buffer_store(acc[j], _helper(
                                    "intm_smlad", even, _helper("intm_sxtb16", weights4), inner),
                                    [0])
                        if count <= UNROLL_WORDS:
                            for i in range(count):
                                step(first + i * 4)
                        else:
                            with _loop("in_word", count) as i:
                                step(first + i * 4)

                    def mac_bytes(f_y, value_at, first, count):
                        for k in (first + i for i in range(count)):
                            value = _bind("value", value_at(k))
                            for j in range(block):
                                T.buffer_store(acc[j], acc[j][0] + value
                                               * weight_at(j, f_y, k).astype(_I32), [0])

                    def segment(f_y, in_y, lo, length, x_start=None):
                        """``length`` bytes from byte ``lo`` (which may be a loop expression) of
                        filter row ``f_y`` against the input row ``in_y`` from pixel ``x_start``,
                        or, with ``in_y`` None, against the zero point (a tap outside the image:
                        TFLM adds nothing, so the fold is undone by ``+ zp * w``)."""
                        words, tail = divmod(length, 4)
                        if in_y is None:
                            if zp != 0:
                                mac_words(f_y, lambda offset: (zp_halves, zp_halves), lo, words)
                                mac_bytes(f_y, lambda k: _i32(zp), lo + words * 4, tail)
                            return
                        base = (x0 if x_start is None else x_start) * in_c

                        def halves_at(offset):
                            return _halves(_bind("input4", _helper(
                                "intm_load_s8x4", tirx.address_of(x[n, in_y, base + offset]))))
                        mac_words(f_y, halves_at, lo, words)
                        mac_bytes(f_y, lambda k: x[n, in_y, base + k].astype(_I32), lo + words * 4,
                                  tail)

                    def row_at_column(f_y, in_y, column):
                        """A row across the left or right edge at a known output column: the
                        taps inside the image and those outside are two or three segments."""
                        start = column * s_w - left
                        k_lo, k_hi = max(0, -start), max(0, min(k_w, in_w - start))
                        if k_hi <= k_lo:
                            segment(f_y, None, 0, run)
                            return
                        segment(f_y, None, 0, k_lo * in_c)
                        segment(f_y, in_y, k_lo * in_c, (k_hi - k_lo) * in_c, x_start=_i32(start))
                        segment(f_y, None, k_hi * in_c, run - k_hi * in_c)

                    def row_crossing(f_y, in_y):
                        """A row across the left or right edge: tap by tap."""
                        def tap(f_x):
                            in_x = x0 + f_x
                            with T.If(tirx.all(in_x >= 0, in_x < in_w)):
                                with T.Then():
                                    segment(f_y, in_y, f_x * in_c, in_c)
                                if zp != 0:
                                    with T.Else():
                                        segment(f_y, None, f_x * in_c, in_c)
                        if k_w <= 8:
                            for f_x in range(k_w):
                                tap(f_x)
                        else:
                            with _loop("filter_x", k_w) as f_x:
                                tap(f_x)

                    def rows(row):
                        """Each filter row tested once: inside the image ``row(f_y, in_y)``,
                        above or below it the zero-point segment."""
                        with _loop("filter_y", k_h) as f_y:
                            in_y = _bind("in_y", y0 + f_y * d_h)
                            with T.If(tirx.all(in_y >= 0, in_y < in_h)):
                                with T.Then():
                                    row(f_y, in_y)
                                if zp != 0:
                                    with T.Else():
                                        segment(f_y, None, 0, run)

                    def border_columns(remaining):
                        """One specialised branch per border column, nested as else-ifs."""
                        if not remaining:
                            rows(row_crossing)
                            return
                        column = remaining[0]
                        with T.If(out_x == column):
                            with T.Then():
                                rows(lambda f_y, in_y, c=column: row_at_column(f_y, in_y, c))
                            with T.Else():
                                border_columns(remaining[1:])

                    x_inside = tirx.all(x0 >= 0, x0 + (k_w - 1) < in_w)
                    def border():
                        with T.If(x_inside):
                            with T.Then():
                                rows(lambda f_y, in_y: segment(f_y, in_y, 0, run))
                            with T.Else():
                                if len(edge) <= MAX_EDGE_COLUMNS:
                                    border_columns(edge)
                                else:
                                    rows(row_crossing)

                    window_inside = tirx.all(y0 >= 0, y0 + (k_h - 1) * d_h < in_h, x_inside)
                    with T.If(window_inside):
                        with T.Then():
                            with _loop("filter_y", k_h) as f_y:
                                segment(f_y, y0 + f_y * d_h, 0, run)
                        with T.Else():
                            border()
                    store(acc, out_x)

                def pair_inside(out_xs):
                    """Two pixels whose windows lie inside the image: each weight word,
                    unpacked once, feeds both pixels' SMLADs."""
                    init(acc[0])
                    init(acc[1])
                    bases = [(o * s_w - left) * in_c for o in out_xs]
                    words, tail = divmod(run, 4)
                    with _loop("filter_y", k_h) as f_y:
                        in_y = y0 + f_y * d_h
                        if is_blocked:
                            for jp in range(block // 2):
                                mac_run([(acc[p][2 * jp + j], 0) for p in range(2)
                                         for j in range(2)],
                                        lambda k: x[n, in_y, bases[0] + k], _i32(s_w * in_c),
                                        lambda k, jp=jp: w[cb * (block // 2) + jp, f_y, k],
                                        words)
                            return

                        def step(offset):
                            halves = [_halves(_bind(f"input4_{p}", _helper(
                                "intm_load_s8x4", tirx.address_of(x[n, in_y, base + offset]))))
                                for p, base in enumerate(bases)]
                            for j in range(block):
                                weights4 = _bind("weights4", _helper(
                                    "intm_load_s8x4", tirx.address_of(w[channels[j], f_y, offset])))
                                even_w = _bind("even_w", _helper("intm_sxtb16", weights4))
                                odd_w = _bind("odd_w", _helper("intm_sxtb16_ror8", weights4))
                                for p, (even, odd) in enumerate(halves):
                                    inner = _helper("intm_smlad", odd, odd_w, acc[p][j][0])
                                    T.buffer_store(acc[p][j], _helper(
                                        "intm_smlad", even, even_w, inner), [0])
                        if words <= UNROLL_WORDS:
                            for i in range(words):
                                step(i * 4)
                        else:
                            with _loop("in_word", words) as i:
                                step(i * 4)
                        for k in range(words * 4, run):
                            values = [_bind(f"value{p}", x[n, in_y, base + k].astype(_I32))
                                      for p, base in enumerate(bases)]
                            for j in range(block):
                                weight_value = _bind("weight", w[channels[j], f_y, k].astype(_I32))
                                for p in range(2):
                                    T.buffer_store(acc[p][j], acc[p][j][0]
                                                   + values[p] * weight_value, [0])

                if not pairs:
                    one_pixel(column_var, acc[0])
                else:
                    first = column_var * 2
                    inside = tirx.all(y0 >= 0, y0 + (k_h - 1) * d_h < in_h,
                                      first * s_w - left >= 0,
                                      (first + 1) * s_w - left + (k_w - 1) < in_w)
                    with T.If(inside):
                        with T.Then():
                            pair_inside([first, first + 1])
                            store(acc[0], first)
                            store(acc[1], first + 1)
                        with T.Else():
                            with _loop("pixel", 2) as p:
                                one_pixel(first + p, acc[0])
    return _private(builder.get())

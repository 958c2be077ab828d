"""Rewrite quantized patterns into integer-only operators, as TFLite Micro computes them.

TVM's frontends import an int8 model as float arithmetic between ``dequantize`` and
``quantize``: a TFLite CONV_2D becomes ``quantize(add(conv2d(dequantize(x),
dequantize(w)), dequantize(b)))``, an onnxruntime QDQ model the same with its own small
variations (bias reshaped, weights transposed after ``dequantize`` instead of before). This
pass finds each ``quantize`` and reads what it quantizes as one integer operator:

- conv2d / depthwise conv2d / dense (+ bias): int8 x int8 -> int32 accumulation, int32
  bias, per-channel fixed-point requantization (:mod:`.fixed_point`);
- add, multiply, average pooling, mean, softmax, logistic: TFLM's integer algorithms;
- max pooling, padding, reshape, transpose, concatenation: the same Relax operator on the
  integer tensor, followed by a requantization where scales differ;
- ``dequantize`` directly: a requantization (TFLite's int8 -> int8 QUANTIZE);
- a float tensor from outside (a model input): a boundary quantize.

Fused activations between the operator and ``quantize`` (``relu``, ``clip``) become the
output clamp. TFLite's own integer forms pass through untouched (``max_pool2d`` and
``reshape`` on int8, ``clip`` after ``quantize``), except its average pooling, imported as an
int32 ``avg_pool2d`` whose rounding is not TFLM's. What matches no pattern keeps its float
lowering, so the pass never makes a model fail to compile; the ``dequantize`` operators left
unused are removed.

Multipliers follow TFLM's Prepare functions: each real multiplier is computed in double from
the model's float32 scales, in TFLM's order, and split by :func:`~.fixed_point.
quantize_multiplier`. Rounding at a float boundary is TFLite's (halves away from zero) for
models our TFLite frontend imported (it marks them, see :data:`ROUNDING_ATTR`), otherwise
that of ``relax.quantize`` and onnxruntime (halves to even). The requantizations follow the
same mark: TFLite models round twice as TFLM does, every other model rounds the exact
product once, as onnxruntime's float arithmetic between Q/DQ pairs does
(:mod:`.fixed_point`).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant
from tvm.relax import PyExprMutator, expr_functor

from ..errors import ModelError
from . import (depthwise_kernels, elementwise_kernels, integer_kernels, integer_ops,
               pooling_kernels)
from .depthwise_kernels import PAIRS_ATTR
from .fixed_point import Requantization, quantize_multiplier, tflm_logistic_table
from .integer_softmax import exp_table, softmax_kernel
from .notices import FLOAT_LOWERING, LOGGER, Notice, report
from .quantized_patterns import RANGES, PatternReader, QuantizedTensor, op_name, scalar
from .shrink import DENSE_ONE_UNIT, DEPTHWISE_BLOCKS, Offer, kernel_key

#: Function attribute naming the rounding of float -> int quantization: "away" or "even".
ROUNDING_ATTR = "intermittent.quantize_rounding"
#: Function attribute choosing the requantization: "double" (TFLM's two roundings) or
#: "single" (one rounding, onnxruntime's); default: "double" for TFLite models (marked by
#: ROUNDING_ATTR = "away"), else "single". ``bench/qdq_layers.py`` compares the two.
REQUANTIZE_ROUNDING_ATTR = "intermittent.requantize_rounding"
#: Function attribute that keeps a function's float lowering (for comparisons and benchmarks).
FLOAT_LOWERING_ATTR = "intermittent.float_lowering"
#: TFLM's headroom for ADD: inputs are scaled up by 2**20 before rescaling.
ADD_LEFT_SHIFT = 20
_WEIGHTS_REASON = ("its weights are not int8 with zero point 0 and one scale per output "
                   "channel (quantize weights symmetrically, per channel or per tensor)")
_BIAS_REASON = "its bias is not int32 with zero point 0 in the scale input scale x weight scale"
_OPERANDS_REASON = ("an operand is neither a dequantized int8/uint8 tensor nor a quantized "
                    "constant (a float scaling such as Gemm's alpha or beta)")
#: Relax operators that compute nothing (the boundary's dequantize, layout changes).
_NOT_ARITHMETIC = {"relax.dequantize", "relax.quantize"}
_LAYOUT_OPS = {"relax.reshape", "relax.permute_dims", "relax.squeeze", "relax.expand_dims",
               "relax.flatten"}


def _multipliers(reals: np.ndarray) -> tuple:
    """``(multiplier, shift)`` when every channel agrees, else per-channel tables and the
    shifts' range: ``(multipliers, shifts, min_shift, max_shift)``."""
    pairs = [quantize_multiplier(float(r)) for r in reals]
    if len(set(pairs)) == 1:
        return pairs[0]
    shifts = [p[1] for p in pairs]
    return (relax.const(np.array([p[0] for p in pairs], dtype=np.int32)),
            relax.const(np.array(shifts, dtype=np.int32)), min(shifts), max(shifts))


@expr_functor.mutator
class _IntegerRewriter(PyExprMutator):
    """Visits one function; each ``quantize`` it can read as an integer operator is replaced.

    Patterns are read on the original function (:class:`~.quantized_patterns.PatternReader`);
    integer inputs are then remapped with ``visit_expr``, since earlier bindings may have
    been rewritten already.
    """

    def __init__(self, mod: tvm.IRModule, func: relax.Function, unpaired=None, shrunk=None,
                 offers=None):
        super().__init__(mod)
        self._read = PatternReader(func)
        #: ``key -> reason`` for depthwise kernels built one output row per tile (the key is
        #: a paired kernel's ``PAIRS_ATTR``).
        self._unpaired = dict(unpaired or {})
        #: ``kernel_key -> Shrink``: kernels to build finer (see :mod:`.shrink`).
        self._shrunk = dict(shrunk or {})
        #: Receives ``kernel_key -> Offer`` for each kernel built the default way that has
        #: a finer form (None: nobody asks).
        self._offers = offers
        #: Why each operator (by its original call) stayed in float.
        self.reasons: dict = {}
        self._why = None
        rounding = func.attrs.get(ROUNDING_ATTR, "even") if func.attrs else "even"
        self._ties_to_even = str(rounding) != "away"
        # TFLite models (marked "away") are TFLM's; the others are onnxruntime's, which
        # rounds once from float: so do we (see fixed_point).
        default = "single" if self._ties_to_even else "double"
        requantize = func.attrs.get(REQUANTIZE_ROUNDING_ATTR, default) if func.attrs else default
        if str(requantize) not in ("single", "double"):
            raise ModelError(f"{REQUANTIZE_ROUNDING_ATTR} must be 'single' or 'double', not "
                             f"{requantize!r}")
        self._single_rounding = str(requantize) == "single"

    def _operand(self, expr):
        """An integer activation or constant: (new relax expr, scale, zero point, dtype)."""
        quantized = self._read.dequantized(expr)
        if quantized is not None:
            return (self.visit_expr(quantized.expr), quantized.scale, quantized.zero_point,
                    quantized.dtype)
        weights = self._read.constant(expr)
        if weights is None or weights.scale is None or weights.values.dtype.name not in RANGES:
            return None
        scale, zero = np.unique(weights.scale), np.unique(weights.zero_point)
        if scale.size != 1 or zero.size != 1:
            return None
        return (relax.const(weights.values), float(scale[0]), int(zero[0]),
                weights.values.dtype.name)

    # ---- the rewrite ---------------------------------------------------------------------

    def visit_call_(self, call):
        name = op_name(call)
        rewritten = None
        if name == "relax.quantize":
            rewritten = self._quantize(call)
        elif name == "relax.clip":
            rewritten = self._clipped_quantize(call)
        elif name == "relax.astype":
            rewritten = self._tflite_average_pool(call)
        return rewritten if rewritten is not None else super().visit_call_(call)

    def _clipped_quantize(self, call):
        """TFLite's fused activation, imported as a clip of the quantized integers."""
        quantize = self._read.call(call.args[0], "relax.quantize")
        if quantize is None or str(call.ty.dtype) not in RANGES:
            return None
        lo, hi = float(call.args[1].value), float(call.args[2].value)
        if not (lo.is_integer() and hi.is_integer()):
            return None
        return self._quantize(quantize, (int(lo), int(hi)))

    def _no(self, reason: str):
        """Refuse the pattern being read, saying why (see :meth:`_quantize`)."""
        self._why = reason
        return None

    def _quantize(self, call, bounds=None):
        scale, zero_point = scalar(call.args[1]), scalar(call.args[2])
        out_dtype = str(call.attrs.out_dtype)
        if scale is None or zero_point is None or out_dtype not in RANGES:
            value = self._read.value(call.args[0])
            if op_name(value) is not None:
                self.reasons[value] = ("its output is quantized per channel or to "
                                       f"{out_dtype}; integer operators produce int8/uint8 "
                                       "with one scale and zero point")
            return None
        out = QuantizedTensor(call, float(np.float32(scale)), int(zero_point), out_dtype)
        core, clamp = self._read.activation(call.args[0], out)
        if bounds is not None:
            clamp = (max(clamp[0], bounds[0]), min(clamp[1], bounds[1]))
        value = self._read.value(core)
        handler = {
            "relax.add": self._add_or_biased,
            "relax.nn.conv2d": lambda c, o, k: self._conv2d(c, None, o, k),
            "relax.matmul": lambda c, o, k: self._dense(c, None, o, k),
            "relax.multiply": self._multiply,
            "relax.nn.softmax": self._softmax,
            "relax.sigmoid": self._logistic,
            "relax.mean": self._mean,
            "relax.nn.avg_pool2d": self._average_pool,
            "relax.nn.max_pool2d": self._max_pool,
            "relax.nn.pad": self._pad,
            "relax.concat": self._concat,
            "relax.dequantize": self._requantize_only,
        }.get(op_name(value))
        if handler is None and op_name(value) in _LAYOUT_OPS:
            handler = self._layout
        if handler is not None:
            self._why = None
            result = handler(value, out, clamp)
            if result is not None:
                return result
            self.reasons[value] = self._why or "its operands are not dequantized int8 tensors"
        elif op_name(value) not in (None, "relax.call_tir"):  # call_tir: its kernel is opaque
            self.reasons[value] = (f"{op_name(value).removeprefix('relax.')} has no integer "
                                   "form (docs/int8.md lists the operators)")
        if handler is None and str(core.ty.dtype) == "float32" and clamp == RANGES[out_dtype]:
            return self._boundary_quantize(call, out)
        return None

    def _emit_requantize(self, operand, out: QuantizedTensor, clamp):
        """An integer tensor moved to ``out``'s quantization (nothing to do if it has it)."""
        expr, scale, zero_point, _ = operand
        if scale == out.scale and zero_point == out.zero_point and clamp == RANGES[out.dtype]:
            return expr
        multiplier, shift = quantize_multiplier(scale / out.scale)
        return self.builder_.call_te(
            integer_ops.requantize, expr, input_zero_point=zero_point, multiplier=multiplier,
            shift=shift, output_zero_point=out.zero_point, clamp=clamp, out_dtype=out.dtype,
            single_rounding=self._single_rounding, primfunc_name_hint="requantize")

    # ---- convolution and dense -----------------------------------------------------------

    def _add_or_biased(self, call, out, clamp):
        for main, bias in ((call.args[0], call.args[1]), (call.args[1], call.args[0])):
            producer = self._read.value(main)
            if op_name(producer) == "relax.nn.conv2d":
                return self._conv2d(producer, bias, out, clamp)
            if op_name(producer) == "relax.matmul":
                return self._dense(producer, bias, out, clamp)
        return self._add(call, out, clamp)

    def _conv2d(self, conv, bias_expr, out, clamp):
        attrs = conv.attrs
        layout = str(attrs.data_layout)
        if layout not in ("NHWC", "NCHW") or str(attrs.out_layout) != layout:
            return self._no(f"layout {layout} -> {attrs.out_layout}: only NHWC and NCHW")
        data = self._read.dequantized(conv.args[0])
        groups = int(attrs.groups)
        in_c = int(conv.args[0].ty.shape.values[3 if layout == "NHWC" else 1])
        # Hand-scheduled kernels for TFLite's cases (NHWC, dense or depthwise), TE otherwise.
        kernel = layout == "NHWC" and groups in (1, in_c)
        canonical = ("OHWI" if groups == 1 else "HWIO") if kernel else (
            "HWIO" if layout == "NHWC" else "OIHW")
        weight, w_scale = self._read.weights(conv.args[1], str(attrs.kernel_layout), canonical)
        if data is None:
            return self._no("its input is not a dequantized int8/uint8 tensor")
        if weight is None:
            return self._no(_WEIGHTS_REASON)
        accumulator_scale = np.float64(data.scale) * w_scale.astype(np.float64)
        bias, ok = self._read.bias(bias_expr, w_scale.size, accumulator_scale)
        if not ok:
            return self._no(_BIAS_REASON)
        reals = accumulator_scale / np.float64(out.scale)
        geometry = dict(strides=[int(s) for s in attrs.strides],
                        padding=[int(p) for p in attrs.padding],
                        dilation=[int(d) for d in attrs.dilation])
        x = self.visit_expr(data.expr)
        if kernel:
            multiplier = None
            if groups != 1:  # depthwise: [KH, KW, 1, C_OUT] -> [KH, KW, C_OUT]
                multiplier = weight.shape[3] // in_c
                weight = weight.reshape(weight.shape[0], weight.shape[1], -1)

            def build(unpaired=None, **finer):
                return integer_kernels.conv2d_nhwc(
                    in_shape=[int(d) for d in conv.args[0].ty.shape.values], weight=weight,
                    bias=bias, input_zero_point=data.zero_point,
                    output_zero_point=out.zero_point,
                    requant=Requantization(reals, self._single_rounding), clamp=clamp,
                    in_dtype=data.dtype, out_dtype=out.dtype, depthwise_multiplier=multiplier,
                    unpaired=unpaired, **geometry, **finer)

            func, constants = build()
            key = func.attrs.get(PAIRS_ATTR) if func.attrs else None
            if key is not None and str(key) in self._unpaired:
                func, constants = build(self._unpaired[str(key)])
            quads = int(weight.shape[-1]) // depthwise_kernels.QUAD
            if (multiplier is not None and quads > 1 and PAIRS_ATTR not in func.attrs
                    and depthwise_kernels.dsp_applies(in_shape=conv.args[0].ty.shape.values,
                                                      multiplier=multiplier,
                                                      in_dtype=data.dtype) is None):
                # The DSP kernel one row per tile: its pixel can be cut in channel blocks.
                unpaired = self._unpaired.get(str(key)) if key is not None else None
                func, constants = self._finer(
                    func, constants, Offer(DEPTHWISE_BLOCKS, quads),
                    lambda shrink: build(unpaired, **shrink.kernel_args()))
            name = "conv2d_s8" if groups == 1 else "depthwise_conv2d_s8"
            return self._call_kernel(func, name, x, constants, conv.ty, out.dtype)
        return self.builder_.call_te(
            integer_ops.conv2d, x, relax.const(weight),
            relax.const(bias) if bias is not None else None, _multipliers(reals),
            layout=layout, groups=groups, input_zero_point=data.zero_point,
            output_zero_point=out.zero_point, clamp=clamp, out_dtype=out.dtype,
            single_rounding=self._single_rounding, primfunc_name_hint="conv2d_s8", **geometry)

    def _dense(self, matmul, bias_expr, out, clamp):
        data = self._read.dequantized(matmul.args[0])
        if data is None:
            return self._no("its input is not a dequantized int8/uint8 tensor")
        if len(matmul.args[0].ty.shape.values) != 2:
            return self._no("only 2-D inputs (batch, features) have an integer form")
        weight, w_scale = self._read.weights(matmul.args[1], "IO", "OI")
        if weight is None:
            return self._no(_WEIGHTS_REASON)
        accumulator_scale = np.float64(data.scale) * w_scale.astype(np.float64)
        bias, ok = self._read.bias(bias_expr, w_scale.size, accumulator_scale)
        if not ok:
            return self._no(_BIAS_REASON)

        def build(**finer):
            return integer_kernels.dense(
                in_shape=[int(d) for d in matmul.args[0].ty.shape.values], weight=weight,
                bias=bias, input_zero_point=data.zero_point, output_zero_point=out.zero_point,
                requant=Requantization(accumulator_scale / np.float64(out.scale),
                                       self._single_rounding), clamp=clamp,
                in_dtype=data.dtype, out_dtype=out.dtype, **finer)

        func, constants = build()
        form = integer_kernels.dense_form(
            rows=int(matmul.args[0].ty.shape.values[0]), depth=int(weight.shape[1]),
            units=int(weight.shape[0]), in_dtype=data.dtype)
        if form != ("plain", 1):  # not the one-unit kernel already: offer it
            func, constants = self._finer(func, constants, Offer(DENSE_ONE_UNIT, form[1]),
                                          lambda shrink: build(**shrink.kernel_args()))
        return self._call_kernel(func, "dense_s8", self.visit_expr(data.expr), constants,
                                 matmul.ty, out.dtype)

    def _finer(self, func, constants, offer, rebuild):
        """``(func, constants)``, or the finer kernel ``rebuild(shrink)`` gives where the
        builder asked for it (``self._shrunk``); offers it otherwise (:mod:`.shrink`)."""
        key = kernel_key(func)
        if key in self._shrunk:
            return rebuild(self._shrunk[key])
        if self._offers is not None:
            self._offers[key] = offer
        return func, constants

    def _call_kernel(self, func, name, data, constants, out_type, out_dtype):
        """Call a hand-scheduled kernel on ``data`` and its constant arrays."""
        gvar = self.builder_.add_func(func, name)
        shape = [int(d) for d in out_type.shape.values]
        args = [data] + [relax.const(np.ascontiguousarray(c), str(c.dtype)) for c in constants]
        return relax.call_tir(gvar, args, relax.TensorType(shape, out_dtype))

    # ---- elementwise and reductions ------------------------------------------------------

    def _add(self, call, out, clamp):
        lhs, rhs = self._operand(call.args[0]), self._operand(call.args[1])
        if lhs is None or rhs is None:
            return self._no(_OPERANDS_REASON)
        twice_max = 2.0 * max(lhs[1], rhs[1])
        params = []
        for _, scale, zero_point, _ in (lhs, rhs):
            params.append((zero_point, *quantize_multiplier(scale / twice_max)))
        output_real = twice_max / ((1 << ADD_LEFT_SHIFT) * out.scale)
        output = (out.zero_point, *quantize_multiplier(output_real))
        shape = [int(d) for d in call.ty.shape.values]
        shapes = [[int(d) for d in c.ty.shape.values] for c in call.args]
        why_not = elementwise_kernels.add_applies(
            lhs_shape=shapes[0], rhs_shape=shapes[1], out_shape=shape,
            dtypes=(lhs[3], rhs[3], out.dtype), output_multiplier_shift=output[2],
            single_rounding=self._single_rounding)
        if why_not is None:  # the folded kernel (elementwise_kernels.py)
            func = elementwise_kernels.add_s8(
                shape, lhs_params=params[0], rhs_params=params[1], left_shift=ADD_LEFT_SHIFT,
                output_zero_point=out.zero_point, output_real=output_real, clamp=clamp)
            gvar = self.builder_.add_func(func, "add_s8")
            return relax.call_tir(gvar, [lhs[0], rhs[0]], relax.TensorType(shape, out.dtype))
        LOGGER.info("add -> %s%s: the TE kernel, not the folded one: %s", out.dtype, shape,
                    why_not)
        return self.builder_.call_te(
            integer_ops.add, lhs[0], rhs[0], shape, lhs_params=params[0], rhs_params=params[1],
            output_params=output, left_shift=ADD_LEFT_SHIFT, clamp=clamp, out_dtype=out.dtype,
            single_rounding=self._single_rounding, primfunc_name_hint="add_s8")

    def _multiply(self, call, out, clamp):
        lhs, rhs = self._operand(call.args[0]), self._operand(call.args[1])
        if lhs is None or rhs is None:
            return self._no(_OPERANDS_REASON)
        multiplier, shift = quantize_multiplier(lhs[1] * rhs[1] / out.scale)
        shape = [int(d) for d in call.ty.shape.values]
        return self.builder_.call_te(
            integer_ops.multiply, lhs[0], rhs[0], shape, lhs_zero_point=lhs[2],
            rhs_zero_point=rhs[2], multiplier=multiplier, shift=shift,
            output_zero_point=out.zero_point, clamp=clamp, out_dtype=out.dtype,
            single_rounding=self._single_rounding, primfunc_name_hint="multiply_s8")

    def _softmax(self, call, out, clamp):
        data = self._read.dequantized(call.args[0])
        shape = [int(d) for d in call.ty.shape.values]
        axis = int(call.attrs.axis)
        if data is None:
            return self._no("its input is not a dequantized int8/uint8 tensor")
        if axis not in (-1, len(shape) - 1) or clamp != RANGES[out.dtype]:
            return self._no("only a softmax along the last axis without activation")
        depth = shape[-1]
        rows = int(np.prod(shape[:-1]))
        try:
            table = exp_table(data.scale)
            kernel = softmax_kernel(rows, depth, data.dtype, out.dtype, output_scale=out.scale,
                                    output_zero_point=out.zero_point, table_size=len(table))
        except ValueError as err:
            return self._no(str(err))
        gvar = self.builder_.add_func(kernel, "softmax_s8")
        x = self.visit_expr(data.expr)
        if len(shape) != 2:
            x = self.builder_.emit(relax.op.reshape(x, [rows, depth]))
        result = relax.call_tir(gvar, [x, relax.const(table)],
                                relax.TensorType([rows, depth], out.dtype))
        if len(shape) != 2:
            result = relax.op.reshape(self.builder_.emit(result), shape)
        return result

    def _logistic(self, call, out, clamp):
        data = self._read.dequantized(call.args[0])
        if data is None:
            return None
        values = np.arange(*((-128, 128) if data.dtype == "int8" else (0, 256)))
        if data.dtype == "int8" and out.dtype == "int8" and (out.scale, out.zero_point) == (
                1.0 / 256, -128):
            table = tflm_logistic_table(values, data.scale, data.zero_point)
        else:
            real = 1.0 / (1.0 + np.exp(-np.float64(data.scale) * (values - data.zero_point)))
            table = np.rint(real / out.scale) + out.zero_point
        table = np.clip(table, *clamp).astype(np.int32)
        return self.builder_.call_te(
            integer_ops.lookup, self.visit_expr(data.expr), relax.const(table), out.dtype,
            primfunc_name_hint="logistic_s8")

    def _mean(self, call, out, clamp):
        data = self._read.dequantized(call.args[0])
        if data is None:
            return None
        rank = len(call.args[0].ty.shape.values)
        shape = [int(d) for d in call.args[0].ty.shape.values]
        axes = (sorted(int(a) % rank for a in call.attrs.axis) if call.attrs.axis is not None
                else list(range(rank)))
        count = int(np.prod([shape[a] for a in axes]))
        if self._single_rounding:  # the exact multiplier of the mean, rounded once
            multiplier, shift = quantize_multiplier(
                np.float64(data.scale) / (np.float64(out.scale) * count))
        else:
            multiplier, shift = quantize_multiplier(data.scale / out.scale)
            # TFLM divides by the count inside the multiplier, keeping as many bits as it can.
            bits = min(count.bit_length() - 1, 32, 31 + shift)
            multiplier, shift = (multiplier << bits) // count, shift - bits
        return self.builder_.call_te(
            integer_ops.mean, self.visit_expr(data.expr), axes=axes,
            keepdims=bool(call.attrs.keepdims), input_zero_point=data.zero_point,
            multiplier=multiplier, shift=shift, output_zero_point=out.zero_point, clamp=clamp,
            out_dtype=out.dtype, single_rounding=self._single_rounding,
            primfunc_name_hint="mean_s8")

    def _average_pool(self, call, out, clamp):
        attrs = call.attrs
        data = self._read.dequantized(call.args[0])
        padding = [int(p) for p in attrs.padding]
        if data is None:
            return self._no("its input is not a dequantized int8/uint8 tensor")
        if bool(attrs.ceil_mode) or any(int(d) != 1 for d in attrs.dilation):
            return self._no("ceil_mode and dilation have no integer form")
        if bool(attrs.count_include_pad) and any(padding):
            return self._no("it counts the padding in the average (count_include_pad=1); "
                            "export with count_include_pad=0 or pad explicitly")
        geometry = dict(pool=[int(p) for p in attrs.pool_size],
                        strides=[int(s) for s in attrs.strides], padding=padding,
                        layout=str(attrs.layout))
        x = self.visit_expr(data.expr)
        same = (data.scale, data.zero_point, data.dtype) == (out.scale, out.zero_point,
                                                             out.dtype)
        if self._single_rounding and not same:
            # onnxruntime rounds the float average once: requantize the sum once, with the
            # multiplier of input_scale / (output_scale * count) for each window size.
            shape = [int(d) for d in call.args[0].ty.shape.values]
            in_hw = shape[1:3] if geometry["layout"] == "NHWC" else shape[2:4]
            counts = integer_ops.window_counts(in_hw, geometry["pool"], geometry["strides"],
                                               padding)
            multipliers = tuple((c, *quantize_multiplier(np.float64(data.scale)
                                                         / (np.float64(out.scale) * c)))
                                for c in sorted(counts))
            return self.builder_.call_te(
                integer_ops.avg_pool2d, x, clamp=clamp, out_dtype=out.dtype,
                rescale=(data.zero_point, out.zero_point, multipliers),
                primfunc_name_hint="avg_pool2d_s8", **geometry)
        pooled = self.builder_.call_te(
            integer_ops.avg_pool2d, x, clamp=RANGES[data.dtype],
            ties_to_even=data.zero_point if self._single_rounding else None,
            primfunc_name_hint="avg_pool2d_s8", **geometry)
        return self._emit_requantize((self.builder_.emit(pooled), data.scale, data.zero_point,
                                      data.dtype), out, clamp)

    def _tflite_average_pool(self, call):
        """TFLite's int8 AVERAGE_POOL_2D, imported as astype(avg_pool2d(astype(x, int32)))."""
        pool = self._read.call(call.args[0], "relax.nn.avg_pool2d")
        widen = self._read.call(pool.args[0], "relax.astype") if pool is not None else None
        if widen is None or str(call.attrs.dtype) not in RANGES:
            return None
        dtype = str(widen.args[0].ty.dtype)
        attrs = pool.attrs
        if dtype != str(call.attrs.dtype) or bool(attrs.ceil_mode):
            return None
        geometry = dict(pool=[int(p) for p in attrs.pool_size],
                        strides=[int(s) for s in attrs.strides])
        in_shape = [int(d) for d in widen.args[0].ty.shape.values]
        why_not = pooling_kernels.avg_pool_applies(
            in_shape=in_shape, padding=[int(p) for p in attrs.padding],
            layout=str(attrs.layout), dtype=dtype, pool=geometry["pool"])
        if why_not is None:  # four channels per word (pooling_kernels.py)
            func = pooling_kernels.avg_pool2d_s8(in_shape=in_shape, clamp=RANGES[dtype],
                                                 **geometry)
            gvar = self.builder_.add_func(func, "avg_pool2d_s8")
            return relax.call_tir(gvar, [self.visit_expr(widen.args[0])],
                                  relax.TensorType([int(d) for d in call.ty.shape.values],
                                                   dtype))
        LOGGER.info("avg_pool2d -> %s: the TE kernel, not the SXTAB16 one: %s", dtype, why_not)
        return self.builder_.call_te(
            integer_ops.avg_pool2d, self.visit_expr(widen.args[0]),
            pool=[int(p) for p in attrs.pool_size], strides=[int(s) for s in attrs.strides],
            padding=[int(p) for p in attrs.padding], layout=str(attrs.layout),
            clamp=RANGES[dtype], primfunc_name_hint="avg_pool2d_s8")

    # ---- data movement -------------------------------------------------------------------

    def _same_op_on_integers(self, call, data: QuantizedTensor, out, clamp):
        """Re-emit ``call`` (an operator indifferent to dtype) on the integer tensor."""
        args = [self.visit_expr(data.expr)] + list(call.args[1:])
        result = self.builder_.emit(relax.Call(call.op, args, call.attrs))
        return self._emit_requantize((result, data.scale, data.zero_point, data.dtype), out,
                                     clamp)

    def _layout(self, call, out, clamp):
        data = self._read.dequantized(call.args[0])
        return None if data is None else self._same_op_on_integers(call, data, out, clamp)

    def _max_pool(self, call, out, clamp):
        data = self._read.dequantized(call.args[0])
        return None if data is None else self._same_op_on_integers(call, data, out, clamp)

    def _pad(self, call, out, clamp):
        data = self._read.dequantized(call.args[0])
        if data is None or str(call.attrs.pad_mode) != "constant":
            return self._no("only constant padding of a dequantized tensor")
        pad_value = data.zero_point + round(float(call.attrs.pad_value) / data.scale)
        x = self.visit_expr(data.expr)
        result = self.builder_.emit(relax.op.nn.pad(
            x, [int(p) for p in call.attrs.pad_width], "constant", float(pad_value)))
        return self._emit_requantize((result, data.scale, data.zero_point, data.dtype), out,
                                     clamp)

    def _concat(self, call, out, clamp):
        fields = self._read.value(call.args[0])
        if not isinstance(fields, relax.Tuple):
            return None
        operands = [self._operand(f) for f in fields.fields]
        if any(o is None for o in operands):
            return None
        parts = [self._emit_requantize(o, out, clamp) for o in operands]
        return relax.op.concat(parts, axis=int(call.attrs.axis))

    def _requantize_only(self, call, out, clamp):
        data = self._read.dequantized(call)
        if data is None:
            return None
        operand = (self.visit_expr(data.expr), data.scale, data.zero_point, data.dtype)
        return self._emit_requantize(operand, out, clamp)

    def _boundary_quantize(self, call, out):
        func, constants = integer_kernels.quantize(
            shape=[int(d) for d in call.ty.shape.values], scale=out.scale,
            zero_point=out.zero_point, ties_to_even=self._ties_to_even, out_dtype=out.dtype)
        return self._call_kernel(func, "quantize", self.visit_expr(call.args[0]), constants,
                                 call.ty, out.dtype)


@tvm.transform.module_pass(opt_level=0, name="intermittent.QuantizedToInteger")
class QuantizedToInteger:
    """Rewrite dequantize -> float operator -> quantize into integer-only operators.

    Run before ``LegalizeOps``. See the module docstring for the patterns and their
    semantics. A function with the attribute ``FLOAT_LOWERING_ATTR`` set keeps TVM's float
    lowering (``bench/int8_bench.py`` compares the two).

    Parameters
    ----------
    notices : list, optional
        Receives a :class:`~.notices.Notice` for every operator of a quantized function
        that still computes in float after the rewrite (each is also logged), so that no
        model silently keeps a float operator; ``tvm_intermittent.build`` passes its list.
    unpaired : dict, optional
        ``key -> reason``: DSP depthwise kernels to build one output row per tile instead of
        in vertical pairs, each named by the key its paired build carries as
        :data:`~.depthwise_kernels.PAIRS_ATTR` (the builder names those whose paired tile
        does not fit one charge, and reports each with a notice).
    shrunk : dict, optional
        ``kernel_key -> Shrink``: int8 kernels to build with a smaller smallest tile
        (:mod:`.shrink`; the builder names those whose default tile does not fit).
    offers : dict, optional
        Receives ``kernel_key -> Offer`` for each kernel built the default way that has a
        finer form, so that the builder can ask for it.

    Examples
    --------
    .. code-block:: python

        notices = []
        mod = QuantizedToInteger(notices)(mod)   # then relax.transform.LegalizeOps(), ...
    """

    def __init__(self, notices: list | None = None, unpaired: dict | None = None,
                 shrunk: dict | None = None, offers: dict | None = None):
        self.notices = notices
        self.unpaired = dict(unpaired or {})
        self.shrunk = dict(shrunk or {})
        self.offers = offers

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        for gvar, func in list(mod.functions_items()):
            if not isinstance(func, relax.Function):
                continue
            if func.attrs and bool(func.attrs.get(FLOAT_LOWERING_ATTR, False)):
                continue
            rewriter = _IntegerRewriter(mod, func, self.unpaired, self.shrunk, self.offers)
            new_func = relax.analysis.remove_all_unused(rewriter.visit_expr(func))
            rewriter.builder_.update_func(gvar, new_func)
            mod = rewriter.builder_.get()
            if is_quantized(func):
                for notice in _float_operators(new_func, rewriter.reasons):
                    report(self.notices, notice)
        return mod


def _calls(func: relax.Function) -> list:
    """The operator calls bound in ``func``, in order."""
    found = []
    relax.analysis.post_order_visit(
        func.body, lambda e: found.append(e) if op_name(e) is not None else None)
    return found


def is_quantized(func: relax.Function) -> bool:
    """Whether ``func`` has any quantize or dequantize (is a quantized model)."""
    return any(op_name(c) in _NOT_ARITHMETIC for c in _calls(func))


def _float_operators(new_func: relax.Function, reasons: dict) -> list[Notice]:
    """A notice for each operator that still computes in float after the rewrite.

    The rewritten function's bindings are scanned in order, so no float operator goes
    unreported, whatever pattern it escaped (``call_tir`` kernels the importer emitted
    included). Left out: computations on constants only (``FoldConstant`` runs them at
    compile time), ``quantize``/``dequantize`` and layout operators. The reason is the
    rewriter's when it tried the operator (matched by operator and type: the rewrite
    rebuilds the calls it keeps), else where the float operands come from.
    """
    why = {}
    for call, reason in reasons.items():
        why.setdefault((op_name(call), _signature(call)), reason)
    compile_time, dequantized, notices = set(), set(), []
    for block in new_func.body.blocks:
        for binding in block.bindings:
            var, value = binding.var, binding.value
            if not isinstance(value, relax.Call):
                continue
            name = op_name(value)
            args = list(value.args)
            label = name.removeprefix("relax.") if name else None
            if name == "relax.call_tir":
                label, args = value.args[0].name_hint, list(value.args[1].fields)
            if all(_known_at_compile_time(a, compile_time) for a in args):
                compile_time.add(var)
                continue
            is_float = isinstance(value.ty, relax.TensorType) and str(
                value.ty.dtype).startswith("float")
            if name == "relax.dequantize" or (is_float and any(a in dequantized for a in args)):
                dequantized.add(var)
            if name in _NOT_ARITHMETIC or name in _LAYOUT_OPS or not is_float or label is None:
                continue
            if any(a in dequantized for a in args):
                default = ("it computes on dequantized values and matches no integer pattern "
                           "(docs/int8.md lists them)")
            else:
                default = ("it computes on the model's float input before the first quantize "
                           "(move the QuantizeLinear before it, or give the model an int8 "
                           "input)")
            notices.append(Notice(f"{label} -> {_signature(value)}", FLOAT_LOWERING,
                                  why.get((name, _signature(value)), default)))
    return notices


def _known_at_compile_time(expr, compile_time: set) -> bool:
    if isinstance(expr, relax.Tuple):
        return all(_known_at_compile_time(f, compile_time) for f in expr.fields)
    return (isinstance(expr, (Constant, relax.ShapeExpr))
            or (isinstance(expr, relax.Var) and expr in compile_time))


def _signature(call) -> str:
    ty = call.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return str(ty)
    return f"{ty.dtype}{[int(d) for d in ty.shape.values]}"

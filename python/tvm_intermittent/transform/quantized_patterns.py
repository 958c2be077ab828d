"""Read what an imported quantized graph means: tensors, constants and activations.

TVM's importers spell the same quantized operator in several ways: weights are transposed
before ``dequantize`` (TFLite) or after it (onnxruntime), biases are reshaped to broadcast,
activations appear as a float ``relu``/``clip`` before ``quantize`` or as an int8 ``clip``
after it, zero points are int32 or int8 constants. :class:`PatternReader` answers the
questions :class:`~.QuantizedToInteger` asks of a variable, whatever the spelling: is it
a dequantized activation, a quantized constant (with per-element scales), a bias in the
accumulator's scale? Everything here only reads the original function.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tvm import relax
from tvm.ir import Op
from tvm.ir.expr import Constant

#: The integer activation types and their ranges.
RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


@dataclasses.dataclass(frozen=True)
class QuantizedTensor:
    """An integer tensor and its per-tensor quantization ``real = scale * (q - zero_point)``."""

    expr: relax.Expr  # the integer tensor, in the original function
    scale: float  # the float32 scale, as a Python float
    zero_point: int
    dtype: str


@dataclasses.dataclass(frozen=True)
class QuantizedConstant:
    """A constant integer tensor with its per-element float32 scale and zero point."""

    values: np.ndarray
    scale: np.ndarray | None  # None: raw integers, not seen through a dequantize
    zero_point: np.ndarray | None

    def map(self, function) -> QuantizedConstant:
        """The same layout change (transpose, reshape) applied to values and parameters."""
        return QuantizedConstant(*(None if a is None else function(a)
                                   for a in (self.values, self.scale, self.zero_point)))


def op_name(expr) -> str | None:
    """``"relax.<op>"`` for a call of a Relax operator, else None."""
    if isinstance(expr, relax.Call) and isinstance(expr.op, Op):
        return str(expr.op.name)
    return None


def scalar(expr):
    """The value of a scalar (or all-equal) constant, else None."""
    if not isinstance(expr, Constant):
        return None
    array = np.asarray(expr.value.numpy())
    if array.size == 0 or not np.all(array == array.flat[0]):
        return None
    return array.flat[0]


def quantize_bound(real: float, scale: float, zero_point: int) -> int:
    """TFLM's activation bound: ``zero_point + round(real / scale)``, divided in float32 and
    rounded half away from zero."""
    quotient = float(np.float32(real) / np.float32(scale))
    return zero_point + int(math.copysign(math.floor(abs(quotient) + 0.5), quotient))


class PatternReader:
    """Answers questions about the variables of one Relax function.

    Parameters
    ----------
    func : relax.Function
        The function as imported; its variable bindings are looked up, never changed.
    """

    def __init__(self, func: relax.Function):
        self._values = relax.analysis.get_var2val(func)

    def value(self, expr):
        """What a variable is bound to (following aliases), or the expression itself."""
        while isinstance(expr, relax.Var) and expr in self._values:
            expr = self._values[expr]
        return expr

    def call(self, expr, *names):
        """The call ``expr`` is bound to, if it calls one of ``names``."""
        value = self.value(expr)
        return value if op_name(value) in names else None

    def dequantized(self, expr) -> QuantizedTensor | None:
        """``dequantize(x)`` of an int8/uint8 tensor with per-tensor scale and zero point."""
        call = self.call(expr, "relax.dequantize")
        if call is None:
            return None
        dtype = str(call.args[0].ty.dtype)
        scale, zero_point = scalar(call.args[1]), scalar(call.args[2])
        if dtype not in RANGES or scale is None or zero_point is None:
            return None
        return QuantizedTensor(call.args[0], float(np.float32(scale)), int(zero_point), dtype)

    def constant(self, expr) -> QuantizedConstant | None:
        """A constant seen through ``dequantize``, ``permute_dims`` and ``reshape``, in any
        order; scales and zero points come out broadcast to the values' shape."""
        value = self.value(expr)
        if isinstance(value, Constant):
            return QuantizedConstant(np.asarray(value.value.numpy()), None, None)
        name = op_name(value)
        inner = self.constant(value.args[0]) if name else None
        if inner is None:
            return None
        if name == "relax.permute_dims":
            axes = value.attrs.axes
            order = [int(a) for a in axes] if axes is not None else None
            return inner.map(lambda a: np.transpose(a, order))
        if name == "relax.reshape":
            shape = [int(d) for d in value.ty.shape.values]
            return inner.map(lambda a: np.reshape(a, shape))
        if name == "relax.dequantize" and inner.scale is None:
            scale = np.asarray(self.value(value.args[1]).value.numpy(), dtype=np.float32)
            zero = np.asarray(self.value(value.args[2]).value.numpy(), dtype=np.int64)
            shape = [1] * inner.values.ndim
            if scale.size > 1 or zero.size > 1:
                shape[int(value.attrs.axis)] = -1
            full = inner.values.shape
            return QuantizedConstant(inner.values, np.broadcast_to(scale.reshape(shape), full),
                                     np.broadcast_to(zero.reshape(shape), full))
        return None

    def activation(self, expr, out: QuantizedTensor):
        """Peel ``relu``/``clip`` off a float result: (core expression, quantized clamp).

        The clamp is the output dtype's range intersected with the quantized bounds, as
        TFLM's CalculateActivationRangeQuantized computes them.
        """
        lo, hi = -math.inf, math.inf
        while True:
            value = self.value(expr)
            name = op_name(value)
            if name == "relax.nn.relu":
                lo = max(lo, 0.0)
            elif name == "relax.clip":
                lo = max(lo, float(value.args[1].value))
                hi = min(hi, float(value.args[2].value))
            else:
                break
            expr = value.args[0]
        q_lo, q_hi = RANGES[out.dtype]
        if lo > -math.inf:
            q_lo = max(q_lo, quantize_bound(lo, out.scale, out.zero_point))
        if hi < math.inf:
            q_hi = min(q_hi, quantize_bound(hi, out.scale, out.zero_point))
        return expr, (q_lo, q_hi)

    def weights(self, expr, kernel_layout: str, canonical: str):
        """int8 weights in the ``canonical`` layout and their scale per output channel.

        Returns ``(None, None)`` unless the weights are int8 with zero point 0 and scales
        that vary only along the output channel (``"O"`` in the layouts), which is what
        TFLite and onnxruntime produce.
        """
        weights = self.constant(expr)
        if weights is None or weights.scale is None or weights.values.dtype != np.int8:
            return None, None
        if np.any(weights.zero_point != 0):
            return None, None
        order = [kernel_layout.index(axis) for axis in canonical]
        weights = weights.map(lambda a: np.transpose(a, order))
        out_axis = canonical.index("O")
        scale = np.moveaxis(weights.scale, out_axis, 0).reshape(weights.scale.shape[out_axis], -1)
        if not np.all(scale == scale[:, :1]):
            return None, None
        return np.ascontiguousarray(weights.values), scale[:, 0]

    def bias(self, expr, channels: int, accumulator_scale: np.ndarray):
        """``(int32 bias vector or None, usable)``: usable when there is no bias, or when
        ``expr`` is an int32 constant with zero point 0 in the accumulator's scale (input
        scale times weight scale, per channel), which TFLM assumes without checking."""
        if expr is None:
            return None, True
        bias = self.constant(expr)
        if bias is None or bias.scale is None or bias.values.size != channels:
            return None, False
        if np.any(bias.zero_point != 0) or bias.values.dtype != np.int32:
            return None, False
        if not np.allclose(bias.scale.reshape(-1), accumulator_scale, rtol=1e-3, atol=0):
            return None, False
        return bias.values.reshape(-1).astype(np.int32), True

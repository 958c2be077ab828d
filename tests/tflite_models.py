"""One-operator (or few-operator) TFLite models written with the ``tflite`` flatbuffer package.

The integer kernels are checked against TFLite Micro running these models, so the models
must be exactly what a converter would write for the case under test: int8 tensors with
per-tensor or per-channel quantization, int32 biases, the operator's builtin options. A
model is a list of :class:`T` tensors and :class:`Op` operators; :func:`build` serializes
it. Nothing here shares code with the compiler under test.
"""

from __future__ import annotations

import dataclasses
import importlib

import flatbuffers
import numpy as np
import tflite

_TYPES = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "int16": 7, "int8": 9}
#: Padding and activation codes of the TFLite schema.
SAME, VALID = 0, 1
NONE, RELU, RELU_N1_TO_1, RELU6 = 0, 1, 2, 3


@dataclasses.dataclass
class T:
    """A tensor: constant when ``data`` is given; quantized when ``scale`` is given."""

    shape: tuple
    dtype: str = "int8"
    scale: object = None  # float, or a sequence for per-channel quantization
    zero_point: object = 0
    data: np.ndarray | None = None
    quantized_dimension: int = 0
    name: str = ""


@dataclasses.dataclass
class Op:
    """An operator: a ``tflite.BuiltinOperator`` name, tensor indices and builtin options.

    ``options`` maps the option table's field names (as in the generated ``Add<Field>``
    functions, e.g. ``{"StrideW": 2}``) to values; ``options_type`` names the table
    (``"Conv2DOptions"``), or None for operators without options.
    """

    opcode: str
    inputs: list
    outputs: list
    options_type: str | None = None
    options: dict = dataclasses.field(default_factory=dict)


def _schema(name):
    """The generated module of a schema table (``tflite.Buffer`` itself is the class)."""
    return importlib.import_module(f"tflite.{name}")


def _vector(builder, start, values, prepend):
    start(builder, len(values))
    for v in reversed(list(values)):
        prepend(v)
    return builder.EndVector()


def _int_vector(builder, start, values):
    return _vector(builder, start, [int(v) for v in values], builder.PrependInt32)


def _options(builder, name, fields):
    module = _schema(name)
    vectors = {}
    for field, value in fields.items():
        if isinstance(value, (list, tuple)):
            starter = getattr(module, f"{name}Start{field}Vector")
            vectors[field] = _int_vector(builder, starter, value)
    getattr(module, f"{name}Start")(builder)
    for field, value in fields.items():
        getattr(module, f"{name}Add{field}")(builder, vectors.get(field, value))
    return getattr(module, f"{name}End")(builder)


def _quantization(builder, t: T):
    scales = np.atleast_1d(np.asarray(t.scale, dtype=np.float32))
    zeros = np.broadcast_to(np.atleast_1d(np.asarray(t.zero_point, dtype=np.int64)),
                            scales.shape)
    q = _schema("QuantizationParameters")
    scale_vec = _vector(builder, q.QuantizationParametersStartScaleVector, scales.tolist(),
                        builder.PrependFloat32)
    zero_vec = _vector(builder, q.QuantizationParametersStartZeroPointVector, zeros.tolist(),
                       builder.PrependInt64)
    q.QuantizationParametersStart(builder)
    q.QuantizationParametersAddScale(builder, scale_vec)
    q.QuantizationParametersAddZeroPoint(builder, zero_vec)
    q.QuantizationParametersAddQuantizedDimension(builder, t.quantized_dimension)
    return q.QuantizationParametersEnd(builder)


def build(tensors: list[T], ops: list[Op], inputs: list[int], outputs: list[int]) -> bytes:
    """Serialize a one-subgraph TFLite model; returns the flatbuffer bytes."""
    builder = flatbuffers.Builder(4096)
    buf, ten, opm = _schema("Buffer"), _schema("Tensor"), _schema("Operator")
    codes = sorted({op.opcode for op in ops})
    # Buffer 0 is the empty sentinel; each constant tensor gets its own buffer after it.
    buffer_of, datas = {}, []
    for i, t in enumerate(tensors):
        if t.data is not None:
            buffer_of[i] = len(datas) + 1
            datas.append(np.ascontiguousarray(np.asarray(t.data, dtype=t.dtype)).tobytes())
    buffers = []
    for blob in [None] + datas:
        data_vec = None
        if blob is not None:
            builder.StartVector(1, len(blob), 16)
            builder.head -= len(blob)
            builder.Bytes[builder.head:builder.head + len(blob)] = blob
            data_vec = builder.EndVector()
        buf.BufferStart(builder)
        if data_vec is not None:
            buf.BufferAddData(builder, data_vec)
        buffers.append(buf.BufferEnd(builder))

    tensor_offsets = []
    for i, t in enumerate(tensors):
        name = builder.CreateString(t.name or f"t{i}")
        shape = _int_vector(builder, ten.TensorStartShapeVector, t.shape)
        quant = _quantization(builder, t) if t.scale is not None else None
        ten.TensorStart(builder)
        ten.TensorAddShape(builder, shape)
        ten.TensorAddType(builder, _TYPES[t.dtype])
        ten.TensorAddBuffer(builder, buffer_of.get(i, 0))
        ten.TensorAddName(builder, name)
        if quant is not None:
            ten.TensorAddQuantization(builder, quant)
        tensor_offsets.append(ten.TensorEnd(builder))

    op_offsets = []
    for op in ops:
        ins = _int_vector(builder, opm.OperatorStartInputsVector, op.inputs)
        outs = _int_vector(builder, opm.OperatorStartOutputsVector, op.outputs)
        opts = _options(builder, op.options_type, op.options) if op.options_type else None
        opm.OperatorStart(builder)
        opm.OperatorAddOpcodeIndex(builder, codes.index(op.opcode))
        opm.OperatorAddInputs(builder, ins)
        opm.OperatorAddOutputs(builder, outs)
        if opts is not None:
            kind = getattr(tflite.BuiltinOptions, op.options_type)
            opm.OperatorAddBuiltinOptionsType(builder, kind)
            opm.OperatorAddBuiltinOptions(builder, opts)
        op_offsets.append(opm.OperatorEnd(builder))

    sg = _schema("SubGraph")
    tensors_vec = _vector(builder, sg.SubGraphStartTensorsVector, tensor_offsets,
                          builder.PrependUOffsetTRelative)
    inputs_vec = _int_vector(builder, sg.SubGraphStartInputsVector, inputs)
    outputs_vec = _int_vector(builder, sg.SubGraphStartOutputsVector, outputs)
    ops_vec = _vector(builder, sg.SubGraphStartOperatorsVector, op_offsets,
                      builder.PrependUOffsetTRelative)
    sg.SubGraphStart(builder)
    sg.SubGraphAddTensors(builder, tensors_vec)
    sg.SubGraphAddInputs(builder, inputs_vec)
    sg.SubGraphAddOutputs(builder, outputs_vec)
    sg.SubGraphAddOperators(builder, ops_vec)
    subgraph = sg.SubGraphEnd(builder)

    code_offsets = []
    for code in codes:
        value = getattr(tflite.BuiltinOperator, code)
        oc = _schema("OperatorCode")
        oc.OperatorCodeStart(builder)
        oc.OperatorCodeAddDeprecatedBuiltinCode(builder, min(value, 127))
        oc.OperatorCodeAddBuiltinCode(builder, value)
        oc.OperatorCodeAddVersion(builder, 1)
        code_offsets.append(oc.OperatorCodeEnd(builder))

    m = _schema("Model")
    codes_vec = _vector(builder, m.ModelStartOperatorCodesVector, code_offsets,
                        builder.PrependUOffsetTRelative)
    subgraphs_vec = _vector(builder, m.ModelStartSubgraphsVector, [subgraph],
                            builder.PrependUOffsetTRelative)
    buffers_vec = _vector(builder, m.ModelStartBuffersVector, buffers,
                          builder.PrependUOffsetTRelative)
    description = builder.CreateString("tvm-intermittent test model")
    m.ModelStart(builder)
    m.ModelAddVersion(builder, 3)
    m.ModelAddOperatorCodes(builder, codes_vec)
    m.ModelAddSubgraphs(builder, subgraphs_vec)
    m.ModelAddDescription(builder, description)
    m.ModelAddBuffers(builder, buffers_vec)
    builder.Finish(m.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ---- one-operator models: each returns (flatbuffer bytes, list of input arrays) ----------


def _rng(seed):
    return np.random.default_rng(seed)


def _int8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(np.int8)


def _out_size(size, kernel, stride, dilation, padding):
    effective = (kernel - 1) * dilation + 1
    if padding == SAME:
        return -(-size // stride)
    return -(-(size - effective + 1) // stride)


def conv2d(*, hw=(9, 7), cin=5, cout=6, kernel=(3, 3), stride=(1, 1), dilation=(1, 1),
           padding=SAME, activation=NONE, in_scale=0.05, in_zp=-3, out_scale=0.2, out_zp=4,
           w_scales=None, depthwise=False, multiplier=1, seed=0, x_range=(-128, 127)):
    """CONV_2D (OHWI weights) or DEPTHWISE_CONV_2D (``[1, KH, KW, C * multiplier]``)."""
    rng = _rng(seed)
    (h, w), (kh, kw) = hw, kernel
    if depthwise:
        cout = cin * multiplier
    if w_scales is None:
        w_scales = rng.uniform(0.002, 0.02, size=cout)
    w_scales = np.asarray(w_scales, dtype=np.float32)
    w_shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    weights = _int8(rng, w_shape, -127, 127)
    bias_scale = np.float32(in_scale) * w_scales
    bias = rng.integers(-2000, 2000, size=cout).astype(np.int32)
    oh = _out_size(h, kh, stride[0], dilation[0], padding)
    ow = _out_size(w, kw, stride[1], dilation[1], padding)
    tensors = [
        T((1, h, w, cin), scale=in_scale, zero_point=in_zp),
        T(w_shape, scale=w_scales, zero_point=0, data=weights,
          quantized_dimension=3 if depthwise else 0),
        T((cout,), "int32", scale=bias_scale, zero_point=0, data=bias),
        T((1, oh, ow, cout), scale=out_scale, zero_point=out_zp),
    ]
    options = dict(Padding=padding, StrideH=stride[0], StrideW=stride[1],
                   DilationHFactor=dilation[0], DilationWFactor=dilation[1],
                   FusedActivationFunction=activation)
    if depthwise:
        options["DepthMultiplier"] = multiplier
        op = Op("DEPTHWISE_CONV_2D", [0, 1, 2], [3], "DepthwiseConv2DOptions", options)
    else:
        op = Op("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", options)
    return build(tensors, [op], [0], [3]), [_int8(rng, (1, h, w, cin), *x_range)]


def fully_connected(*, batch=2, depth=40, units=9, in_scale=0.1, in_zp=7, w_scale=0.01,
                    out_scale=0.3, out_zp=-20, activation=NONE, bias=True, seed=1):
    """FULLY_CONNECTED with per-tensor weights ``[units, depth]``."""
    rng = _rng(seed)
    tensors = [
        T((batch, depth), scale=in_scale, zero_point=in_zp),
        T((units, depth), scale=w_scale, data=_int8(rng, (units, depth), -127, 127)),
        T((units,), "int32", scale=np.float32(in_scale) * np.float32(w_scale),
          data=rng.integers(-3000, 3000, size=units).astype(np.int32)),
        T((batch, units), scale=out_scale, zero_point=out_zp),
    ]
    inputs = [0, 1, 2] if bias else [0, 1, -1]
    op = Op("FULLY_CONNECTED", inputs, [3], "FullyConnectedOptions",
            dict(FusedActivationFunction=activation))
    return build(tensors, [op], [0], [3]), [_int8(rng, (batch, depth))]


def pool(kind, *, hw=(7, 9), channels=4, size=(3, 3), stride=(2, 2), padding=SAME,
         activation=NONE, scale=0.1, zero_point=-10, seed=2):
    """AVERAGE_POOL_2D or MAX_POOL_2D; input and output share their quantization."""
    rng = _rng(seed)
    oh = _out_size(hw[0], size[0], stride[0], 1, padding)
    ow = _out_size(hw[1], size[1], stride[1], 1, padding)
    tensors = [T((1, *hw, channels), scale=scale, zero_point=zero_point),
               T((1, oh, ow, channels), scale=scale, zero_point=zero_point)]
    op = Op(kind, [0], [1], "Pool2DOptions",
            dict(Padding=padding, StrideH=stride[0], StrideW=stride[1], FilterHeight=size[0],
                 FilterWidth=size[1], FusedActivationFunction=activation))
    return build(tensors, [op], [0], [1]), [_int8(rng, (1, *hw, channels))]


def add(*, lhs_shape=(1, 5, 6, 4), rhs_shape=(1, 1, 6, 4), lhs=(0.05, -7), rhs=(0.2, 12),
        out=(0.1, -3), activation=NONE, seed=3):
    """ADD of two differently quantized tensors, with broadcasting."""
    rng = _rng(seed)
    shape = np.broadcast_shapes(lhs_shape, rhs_shape)
    tensors = [T(lhs_shape, scale=lhs[0], zero_point=lhs[1]),
               T(rhs_shape, scale=rhs[0], zero_point=rhs[1]),
               T(shape, scale=out[0], zero_point=out[1])]
    op = Op("ADD", [0, 1], [2], "AddOptions", dict(FusedActivationFunction=activation))
    return build(tensors, [op], [0, 1], [2]), [_int8(rng, lhs_shape), _int8(rng, rhs_shape)]


def mul(*, lhs_shape=(1, 5, 6, 4), rhs_shape=(1, 1, 1, 4), lhs=(0.05, -7), rhs=(0.02, 12),
        out=(0.01, -3), activation=NONE, seed=9):
    """MUL of two differently quantized tensors, with broadcasting."""
    rng = _rng(seed)
    shape = np.broadcast_shapes(lhs_shape, rhs_shape)
    tensors = [T(lhs_shape, scale=lhs[0], zero_point=lhs[1]),
               T(rhs_shape, scale=rhs[0], zero_point=rhs[1]),
               T(shape, scale=out[0], zero_point=out[1])]
    op = Op("MUL", [0, 1], [2], "MulOptions", dict(FusedActivationFunction=activation))
    return build(tensors, [op], [0, 1], [2]), [_int8(rng, lhs_shape), _int8(rng, rhs_shape)]


def mean(*, shape=(1, 5, 7, 6), axes=(1, 2), keep_dims=True, in_q=(0.1, -5), out_q=(0.03, 9),
         seed=4):
    """MEAN over constant axes."""
    rng = _rng(seed)
    out_shape = [1 if i in axes else d for i, d in enumerate(shape) if keep_dims or i not in axes]
    tensors = [T(shape, scale=in_q[0], zero_point=in_q[1]),
               T((len(axes),), "int32", data=np.array(axes)),
               T(out_shape, scale=out_q[0], zero_point=out_q[1])]
    op = Op("MEAN", [0, 1], [2], "ReducerOptions", dict(KeepDims=keep_dims))
    return build(tensors, [op], [0], [2]), [_int8(rng, shape)]


def pad(*, shape=(1, 4, 5, 3), paddings=((0, 0), (1, 2), (2, 0), (0, 1)), q=(0.1, -6), seed=5):
    """PAD with zeros (the zero point, in the quantized domain)."""
    rng = _rng(seed)
    out_shape = [d + a + b for d, (a, b) in zip(shape, paddings)]
    tensors = [T(shape, scale=q[0], zero_point=q[1]),
               T((len(shape), 2), "int32", data=np.array(paddings)),
               T(out_shape, scale=q[0], zero_point=q[1])]
    return build(tensors, [Op("PAD", [0, 1], [2])], [0], [2]), [_int8(rng, shape)]


def reshape(*, shape=(1, 4, 5, 3), new_shape=(1, 60), q=(0.1, -6), seed=6):
    """RESHAPE with a constant shape tensor."""
    rng = _rng(seed)
    tensors = [T(shape, scale=q[0], zero_point=q[1]),
               T((len(new_shape),), "int32", data=np.array(new_shape)),
               T(new_shape, scale=q[0], zero_point=q[1])]
    op = Op("RESHAPE", [0, 1], [2], "ReshapeOptions", dict(NewShape=list(new_shape)))
    return build(tensors, [op], [0], [2]), [_int8(rng, shape)]


def concatenation(*, shapes=((1, 3, 4, 2), (1, 3, 4, 5)), axis=3, q=(0.1, -6), seed=7):
    """CONCATENATION of tensors sharing their quantization (as TFLM requires)."""
    rng = _rng(seed)
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    tensors = [T(s, scale=q[0], zero_point=q[1]) for s in shapes]
    tensors.append(T(out_shape, scale=q[0], zero_point=q[1]))
    n = len(shapes)
    op = Op("CONCATENATION", list(range(n)), [n], "ConcatenationOptions", dict(Axis=axis))
    return build(tensors, [op], list(range(n)), [n]), [_int8(rng, s) for s in shapes]


def softmax(*, shape=(3, 10), in_q=(0.15, 20), beta=1.0, seed=8, x=None):
    """SOFTMAX on int8; the output is TFLM's required 1/256, -128."""
    rng = _rng(seed)
    tensors = [T(shape, scale=in_q[0], zero_point=in_q[1]),
               T(shape, scale=1.0 / 256, zero_point=-128)]
    op = Op("SOFTMAX", [0], [1], "SoftmaxOptions", dict(Beta=beta))
    return build(tensors, [op], [0], [1]), [x if x is not None else _int8(rng, shape)]


def logistic(*, in_q=(0.05, 3)):
    """LOGISTIC on every int8 value; the output is TFLM's required 1/256, -128."""
    tensors = [T((2, 128), scale=in_q[0], zero_point=in_q[1]),
               T((2, 128), scale=1.0 / 256, zero_point=-128)]
    x = np.arange(-128, 128, dtype=np.int8).reshape(2, 128)
    return build(tensors, [Op("LOGISTIC", [0], [1])], [0], [1]), [x]


def quantize(x, *, scale=0.5, zero_point=-3):
    """QUANTIZE float32 -> int8 (a model's float input boundary)."""
    tensors = [T(x.shape, "float32"), T(x.shape, scale=scale, zero_point=zero_point)]
    return build(tensors, [Op("QUANTIZE", [0], [1])], [0], [1]), [x.astype(np.float32)]


def dequantize(*, scale=0.037, zero_point=-5):
    """DEQUANTIZE int8 -> float32 of every int8 value."""
    tensors = [T((256,), scale=scale, zero_point=zero_point), T((256,), "float32")]
    x = np.arange(-128, 128, dtype=np.int8)
    return build(tensors, [Op("DEQUANTIZE", [0], [1])], [0], [1]), [x]


def requantize(*, in_q=(0.05, -4), out_q=(0.11, 7)):
    """QUANTIZE int8 -> int8 of every int8 value (a change of scale and zero point)."""
    tensors = [T((256,), scale=in_q[0], zero_point=in_q[1]),
               T((256,), scale=out_q[0], zero_point=out_q[1])]
    x = np.arange(-128, 128, dtype=np.int8)
    return build(tensors, [Op("QUANTIZE", [0], [1])], [0], [1]), [x]

"""QDQ models quantized by onnxruntime's static quantization, for the int8 tests.

``mcunet_cnn`` is a float CNN shaped like MCUNet's: a 3x3 stride-2 stem, inverted residual
blocks (1x1 expand, 3x3 depthwise as a group Conv, 1x1 linear project), one block with a
residual Add, GlobalAveragePool, Flatten, Gemm and Softmax, with ReLU6 (Clip) activations.
``quantize_static`` turns a float model into onnxruntime's QDQ form with MinMax calibration
on seeded N(0, 1) data; it folds each Clip into the range of the tensor before it.
The reference is onnxruntime itself, never our code.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def mcunet_cnn(seed: int = 0, size: int = 32, classes: int = 10):
    """The float model and its input shape: ``(onnx.ModelProto, (1, 3, size, size))``."""
    rng = np.random.default_rng(seed)
    nodes, initializers = [], []

    def const(name, array):
        initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(x, name, cin, cout, k, stride=1, group=1, relu6=True):
        fan_in = cin // group * k * k
        w = rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)
        b = rng.standard_normal(cout) * 0.1
        nodes.append(helper.make_node(
            "Conv", [x, const(f"{name}_w", w), const(f"{name}_b", b)], [f"{name}_c"],
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group))
        if not relu6:
            return f"{name}_c"
        nodes.append(helper.make_node("Clip", [f"{name}_c", "zero", "six"], [f"{name}_r"]))
        return f"{name}_r"

    def inverted_residual(x, name, cin, cout, expand, stride):
        hidden = cin * expand
        y = conv(x, f"{name}_expand", cin, hidden, 1)
        y = conv(y, f"{name}_dw", hidden, hidden, 3, stride=stride, group=hidden)
        y = conv(y, f"{name}_project", hidden, cout, 1, relu6=False)
        if stride == 1 and cin == cout:
            nodes.append(helper.make_node("Add", [x, y], [f"{name}_add"]))
            return f"{name}_add"
        return y

    const("zero", np.array(0.0))
    const("six", np.array(6.0))
    x = conv("input", "stem", 3, 8, 3, stride=2)
    x = inverted_residual(x, "block1", 8, 16, 3, 2)
    x = inverted_residual(x, "block2", 16, 16, 4, 1)
    x = inverted_residual(x, "block3", 16, 24, 4, 2)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], axis=1))
    w = rng.standard_normal((classes, 24)) * np.sqrt(1.0 / 24)
    weight = const("fc_w", w)
    bias = const("fc_b", rng.standard_normal(classes) * 0.1)
    nodes.append(helper.make_node("Gemm", ["flat", weight, bias], ["logits"], transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["output"], axis=1))
    shape = (1, 3, size, size)
    graph = helper.make_graph(
        nodes, "mcunet_cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, shape


def quantize_qdq(model, shape, directory, *, activations="QUInt8", per_channel=True,
                 calibration_batches=8, seed=0):
    """``model`` quantized by ``onnxruntime.quantization.quantize_static`` in QDQ format.

    MinMax calibration on ``calibration_batches`` seeded N(0, 1) inputs; int8 weights;
    ``activations`` names a ``QuantType`` (onnxruntime's default is ``QUInt8``).
    """
    from onnxruntime import quantization  # pylint: disable=import-outside-toplevel

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(seed)
            name = model.graph.input[0].name
            self.batches = iter([{name: rng.standard_normal(shape).astype(np.float32)}
                                 for _ in range(calibration_batches)])

        def get_next(self):
            return next(self.batches, None)

    float_path, qdq_path = directory / "float.onnx", directory / "qdq.onnx"
    onnx.save(model, float_path)
    quantization.quantize_static(
        str(float_path), str(qdq_path), Calibration(),
        quant_format=quantization.QuantFormat.QDQ,
        activation_type=getattr(quantization.QuantType, activations),
        weight_type=quantization.QuantType.QInt8, per_channel=per_channel,
        calibrate_method=quantization.CalibrationMethod.MinMax)
    return onnx.load(qdq_path)

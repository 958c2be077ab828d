"""Small ONNX models built with onnx.helper, one or two operators each, seeded weights.

Each builder returns ``(model, inputs)``; the reference is onnxruntime, never our code.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def _model(nodes, inputs, outputs, initializers=(), name="m"):
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _rng(seed):
    return np.random.default_rng(seed)


def _x(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def conv(strides=(1, 1), pads=(0, 0, 0, 0), group=1, cin=4, cout=6, k=3, hw=9, seed=0):
    rng = _rng(seed)
    w = (rng.standard_normal((cout, cin // group, k, k)) * 0.3).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    oh = (hw + pads[0] + pads[2] - k) // strides[0] + 1
    ow = (hw + pads[1] + pads[3] - k) // strides[1] + 1
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=list(strides),
                            pads=list(pads), group=group, kernel_shape=[k, k])
    model = _model([node], [("x", [1, cin, hw, hw])], [("y", [1, cout, oh, ow])],
                   [("w", w), ("b", b)])
    return model, [_x(rng, (1, cin, hw, hw))]


def pool(kind, kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), hw=8, c=3, seed=1, **attrs):
    rng = _rng(seed)
    oh = (hw + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (hw + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    node = helper.make_node(kind, ["x"], ["y"], kernel_shape=list(kernel), strides=list(strides),
                            pads=list(pads), **attrs)
    return _model([node], [("x", [1, c, hw, hw])], [("y", [1, c, oh, ow])]), [_x(rng, (1, c, hw, hw))]


def global_average_pool(seed=2):
    rng = _rng(seed)
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    return _model([node], [("x", [1, 5, 6, 7])], [("y", [1, 5, 1, 1])]), [_x(rng, (1, 5, 6, 7))]


def gemm(seed=3):
    rng = _rng(seed)
    w = rng.standard_normal((7, 12)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)
    return _model([node], [("x", [2, 12])], [("y", [2, 7])], [("w", w), ("b", b)]), [_x(rng, (2, 12))]


def matmul(seed=4):
    rng = _rng(seed)
    w = rng.standard_normal((12, 5)).astype(np.float32)
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    return _model([node], [("x", [3, 12])], [("y", [3, 5])], [("w", w)]), [_x(rng, (3, 12))]


def add_mul(seed=5):
    """Two inputs, broadcasting: y = (a + b) * c, with c a per-channel constant."""
    rng = _rng(seed)
    c = rng.standard_normal((1, 4, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "c"], ["y"])]
    model = _model(nodes, [("a", [1, 4, 3, 3]), ("b", [1, 1, 3, 3])], [("y", [1, 4, 3, 3])],
                   [("c", c)])
    return model, [_x(rng, (1, 4, 3, 3)), _x(rng, (1, 1, 3, 3))]


def concat(seed=6):
    rng = _rng(seed)
    nodes = [helper.make_node("Concat", ["a", "b"], ["y"], axis=1)]
    model = _model(nodes, [("a", [1, 2, 4, 4]), ("b", [1, 3, 4, 4])], [("y", [1, 5, 4, 4])])
    return model, [_x(rng, (1, 2, 4, 4)), _x(rng, (1, 3, 4, 4))]


def reshape_flatten(seed=7):
    rng = _rng(seed)
    shape = np.array([1, 6, 8], dtype=np.int64)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Flatten", ["r"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])],
        [numpy_helper.from_array(shape, "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model, [_x(rng, (1, 3, 4, 4))]


def clip_relu(seed=8):
    rng = _rng(seed)
    lo, hi = np.array(-0.5, np.float32), np.array(1.5, np.float32)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
             helper.make_node("Add", ["r", "c"], ["y"])]
    model = _model(nodes, [("x", [2, 10])], [("y", [2, 10])], [("lo", lo), ("hi", hi)])
    return model, [(_x(rng, (2, 10)) * 2).astype(np.float32)]


def softmax(seed=9):
    rng = _rng(seed)
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    return _model([node], [("x", [3, 10])], [("y", [3, 10])]), [(_x(rng, (3, 10)) * 4)]


def small_cnn(seed=10):
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Softmax: the operators chained."""
    rng = _rng(seed)
    w = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    w2 = (rng.standard_normal((10, 128)) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w2"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    model = _model(nodes, [("x", [1, 3, 16, 16])], [("y", [1, 10])],
                   [("w", w), ("b", b), ("w2", w2)])
    return model, [_x(rng, (1, 3, 16, 16))]


CASES = {
    "conv": lambda: conv(),
    "conv_stride2_pad": lambda: conv(strides=(2, 2), pads=(1, 1, 1, 1)),
    "conv_asymmetric_pad": lambda: conv(pads=(0, 1, 2, 1), k=2),
    "conv_groups2": lambda: conv(group=2, cin=4, cout=6),
    "conv_depthwise": lambda: conv(group=4, cin=4, cout=4, pads=(1, 1, 1, 1)),
    "maxpool": lambda: pool("MaxPool"),
    "maxpool_pad_stride1": lambda: pool("MaxPool", kernel=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1)),
    "averagepool": lambda: pool("AveragePool"),
    "averagepool_pad_exclude": lambda: pool("AveragePool", kernel=(3, 3), strides=(2, 2),
                                            pads=(1, 1, 1, 1), hw=7),
    "global_average_pool": global_average_pool,
    "gemm": gemm,
    "matmul": matmul,
    "add_mul_broadcast": add_mul,
    "concat": concat,
    "reshape_flatten": reshape_flatten,
    "clip_relu": clip_relu,
    "softmax": softmax,
    "small_cnn": small_cnn,
}

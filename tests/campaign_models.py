"""Models of the failure campaigns (tests/test_intermittent.py, bench/failure_campaign.py).

Each entry returns ``(model, inputs)``: an ONNX ``ModelProto`` or the bytes of a TFLite
flatbuffer, and one seeded input per model input. Beside the float ONNX models of the
operator tests (``onnx_models.CASES``) they add what a failure campaign needs to reach
every kind of failure point: the smallest inference (one elementwise operator), int8
kernels (``tflite_models``), and reductions too long for one power cycle of a small
capacitor, which the compiler splits into chunks handing a running sum over through NVM.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnx_models
import tflite_models as tm


def _onnx(nodes, inputs, outputs, initializers=(), name="m"):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def relu(n=8, seed=0):
    """The smallest inference: one elementwise operator, one tile batch."""
    model = _onnx([helper.make_node("Relu", ["x"], ["y"])], [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])], [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], name="relu")
    return model, [np.random.default_rng(seed).standard_normal((1, n)).astype(np.float32)]


def wide_gemm(k=2048, units=4, seed=0):
    """A Gemm whose every output element needs more than a 3 uF power cycle: its
    reduction is split into chunks."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((units, k)).astype(np.float32)
    b = rng.standard_normal(units).astype(np.float32)
    model = _onnx([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])], [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, units])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")], name="wide_gemm")
    return model, [rng.standard_normal((1, k)).astype(np.float32)]


#: int8 TFLite models: convolution, depthwise convolution, fully connected.
INT8 = {
    "int8_conv": tm.conv2d,
    "int8_depthwise": lambda: tm.conv2d(depthwise=True, cin=6, hw=(12, 10)),
    "int8_dense": tm.fully_connected,
}
#: Reductions split into chunks at 3 uF (float and int8).
SPLIT = {
    "wide_gemm": wide_gemm,
    "int8_wide_dense": lambda: tm.fully_connected(batch=1, depth=12000, units=4),
}
CASES = {**onnx_models.CASES, "relu": relu, **INT8, **SPLIT}


def load(name, directory):
    """``(model, inputs)`` for :func:`tvm_intermittent.build`: a TFLite model is written
    to ``directory/<name>.tflite`` and given as its path."""
    model, inputs = CASES[name]()
    if isinstance(model, bytes):
        path = directory / f"{name}.tflite"
        path.write_bytes(model)
        model = path
    return model, inputs

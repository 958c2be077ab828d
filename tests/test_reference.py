"""The reference runtimes agree with numpy and with each other on tiny hand-built models."""

import sys

import numpy as np
import pytest

from tvm_intermittent import reference
from tvm_intermittent.errors import InputError, ModelError, ToolchainError

schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _tensor(name, shape, ttype, buffer, quant=None):
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name, list(shape), ttype, buffer
    if quant is not None:
        tensor.quantization = schema.QuantizationParametersT()
        tensor.quantization.scale = [quant[0]]
        tensor.quantization.zeroPoint = [quant[1]]
    return tensor


def _buffer(data=None):
    buf = schema.BufferT()
    if data is not None:
        buf.data = list(np.ascontiguousarray(data).tobytes())
    return buf


def _model(tensors, buffers, opcode, inputs, outputs, op_inputs, op_outputs, options=None):
    """Serialize a one-operator, one-subgraph TFLite model."""
    code = schema.OperatorCodeT()
    code.builtinCode = opcode
    code.deprecatedBuiltinCode = min(opcode, 127)
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, op_inputs, op_outputs
    if options is not None:
        op.builtinOptionsType, op.builtinOptions = options
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, inputs, outputs, [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _fully_connected_tflite(weights, bias):
    """float32 ``y = x @ weights.T + bias`` as a TFLite FULLY_CONNECTED."""
    out_features, in_features = weights.shape
    f32 = schema.TensorType.FLOAT32
    tensors = [
        _tensor("x", (1, in_features), f32, 0),
        _tensor("w", (out_features, in_features), f32, 1),
        _tensor("b", (out_features,), f32, 2),
        _tensor("y", (1, out_features), f32, 0),
    ]
    buffers = [_buffer(), _buffer(weights.astype(np.float32)), _buffer(bias.astype(np.float32))]
    options = (schema.BuiltinOptions.FullyConnectedOptions, schema.FullyConnectedOptionsT())
    return _model(tensors, buffers, schema.BuiltinOperator.FULLY_CONNECTED,
                  [0], [3], [0, 1, 2], [3], options)


def _quantize_tflite(scale, zero_point, shape=(1, 8)):
    """float32 -> int8 QUANTIZE, the boundary op of the zoo's float-input models."""
    tensors = [
        _tensor("x", shape, schema.TensorType.FLOAT32, 0),
        _tensor("q", shape, schema.TensorType.INT8, 0, quant=(scale, zero_point)),
    ]
    return _model(tensors, [_buffer()], schema.BuiltinOperator.QUANTIZE, [0], [1], [0], [1])


def _gemm_onnx(weights, bias):
    from onnx import TensorProto, helper, numpy_helper  # pylint: disable=import-outside-toplevel

    out_features, in_features = weights.shape
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        "fc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_features])],
        [numpy_helper.from_array(weights.astype(np.float32), "w"),
         numpy_helper.from_array(bias.astype(np.float32), "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(name="layer")
def fixture_layer():
    rng = np.random.default_rng(1234)
    weights = rng.standard_normal((5, 16)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    x = rng.standard_normal((1, 16)).astype(np.float32)
    return weights, bias, x


def test_tflite_micro_matches_numpy(layer):
    weights, bias, x = layer
    (y,) = reference.run_tflite_micro(_fully_connected_tflite(weights, bias), [x])
    np.testing.assert_allclose(y, x @ weights.T + bias, rtol=1e-5, atol=1e-5)


def test_onnxruntime_matches_numpy_and_tflite_micro(layer):
    weights, bias, x = layer
    (y_ort,) = reference.run_onnxruntime(_gemm_onnx(weights, bias), [x])
    (y_tflm,) = reference.run_tflite_micro(_fully_connected_tflite(weights, bias), [x])
    np.testing.assert_allclose(y_ort, x @ weights.T + bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_ort, y_tflm, rtol=1e-5, atol=1e-5)


def test_onnxruntime_reads_a_file(layer, tmp_path):
    weights, bias, x = layer
    path = tmp_path / "fc.onnx"
    onnx.save(_gemm_onnx(weights, bias), str(path))
    (y,) = reference.run_onnxruntime(path, [x])
    np.testing.assert_allclose(y, x @ weights.T + bias, rtol=1e-5, atol=1e-5)


def test_tflite_micro_quantize_rounds_like_numpy():
    scale, zero_point = 0.05, -3
    model = _quantize_tflite(scale, zero_point)
    x = np.array([[-9.0, -1.234, -0.025, 0.0, 0.075, 1.0, 2.5, 9.0]], dtype=np.float32)
    (q,) = reference.run_tflite_micro(model, [x])
    # TFLite rounds half away from zero, then adds the zero point and clamps.
    expected = np.clip(np.sign(x / scale) * np.floor(np.abs(x / scale) + 0.5) + zero_point,
                       -128, 127)
    np.testing.assert_array_equal(q, expected.astype(np.int8))


def test_io_details_reads_quantization(tmp_path):
    path = tmp_path / "q.tflite"
    path.write_bytes(_quantize_tflite(0.25, 7, shape=(1, 3, 4)))
    (inp,), (out,) = reference.tflite_io_details(path)
    assert (inp.name, inp.shape, inp.dtype) == ("x", (1, 3, 4), np.dtype(np.float32))
    assert inp.scale is None and inp.inner_quantization == (0.25, 7)
    assert (out.name, out.dtype, out.scale, out.zero_point) == ("q", np.dtype(np.int8), 0.25, 7)


def test_wrong_inputs_are_reported_together(layer):
    weights, bias, _ = layer
    model = _fully_connected_tflite(weights, bias)
    with pytest.raises(InputError, match="dtype float64.*shape"):
        reference.run_tflite_micro(model, [np.zeros((2, 16))])
    with pytest.raises(InputError, match="takes 1 input"):
        reference.run_tflite_micro(model, [])


def test_not_a_tflite_file():
    with pytest.raises(ModelError, match="TFL3"):
        reference.tflite_io_details(b"\x00" * 64)


def test_missing_optional_package_names_the_extra(monkeypatch, layer):
    weights, bias, x = layer
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ToolchainError, match=r"tvm-intermittent\[test\]"):
        reference.run_onnxruntime(_gemm_onnx(weights, bias), [x])

"""Importing models: malformed files, unsupported operators, dynamic shapes, names."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tvm_intermittent.errors import ModelError, UnsupportedOperatorError
from tvm_intermittent.frontend import load_model

import onnx_models


def test_onnx_proto_and_path_give_the_same_tensors(tmp_path):
    model, _ = onnx_models.small_cnn()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    from_proto, from_path = load_model(model), load_model(path)
    assert [i.shape for i in from_proto.inputs] == [(1, 3, 16, 16)]
    assert from_path.name == "cnn"
    assert from_proto.outputs == from_path.outputs


def test_malformed_onnx_file_is_a_model_error(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07this is not protobuf\xff\xff")
    with pytest.raises(ModelError, match="not a valid ONNX file|malformed"):
        load_model(path)


def test_corrupt_tflite_file_is_a_model_error(tmp_path):
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="TFL3"):
        load_model(path)


def test_unknown_extension_says_which_formats_work(tmp_path):
    path = tmp_path / "model.pb"
    path.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"\.onnx or \.tflite"):
        load_model(path)


def test_missing_file():
    with pytest.raises(ModelError, match="does not exist"):
        load_model("/nonexistent/model.onnx")


def test_dynamic_batch_is_refused_with_a_fix():
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelError, match=r"dynamic dimension 'N'.*shape_dict"):
        load_model(model)
    fixed = load_model(model, shape_dict={"x": [2, 4]})
    assert fixed.inputs[0].shape == (2, 4)


def test_every_unsupported_operator_is_listed_at_once():
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("NoSuchOpOne", ["a"], ["b"]),
             helper.make_node("NoSuchOpTwo", ["b"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOperatorError) as info:
        load_model(model)
    assert "NoSuchOpOne" in str(info.value) and "NoSuchOpTwo" in str(info.value)
    assert isinstance(info.value, NotImplementedError)

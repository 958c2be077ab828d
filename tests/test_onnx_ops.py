"""Small ONNX models on QEMU (and the host build) against onnxruntime, 1e-5 relative."""

import onnxruntime as ort
import pytest

import tvm_intermittent as ti
from tvm_intermittent.check import compare_outputs

import onnx_models


def _onnxruntime(model, inputs):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


@pytest.mark.qemu
@pytest.mark.parametrize("case", sorted(onnx_models.CASES))
def test_operator_on_qemu_matches_onnxruntime(case):
    model, inputs = onnx_models.CASES[case]()
    result = ti.build(model, name=case).run(inputs)
    check = compare_outputs(result.outputs, _onnxruntime(model, inputs), rtol=1e-5)
    assert check.ok, check.summary()
    assert 0 < result.instructions_model < result.instructions_total


@pytest.mark.host_cc
@pytest.mark.parametrize("case", ["small_cnn", "conv_depthwise", "add_mul_broadcast"])
def test_host_build_matches_onnxruntime(case):
    model, inputs = onnx_models.CASES[case]()
    result = ti.build(model, name=case).run(inputs, kind="host")
    check = compare_outputs(result.outputs, _onnxruntime(model, inputs), rtol=1e-5)
    assert check.ok, check.summary()


@pytest.mark.qemu
def test_wrong_output_is_detected():
    """The comparison above can fail: perturb one weight and the check must say MISMATCH."""
    import numpy as np
    from onnx import numpy_helper

    model, inputs = onnx_models.CASES["small_cnn"]()
    reference = _onnxruntime(model, inputs)
    w = numpy_helper.to_array(model.graph.initializer[2]).copy()
    w[0, 0] += 0.5
    model.graph.initializer[2].CopyFrom(numpy_helper.from_array(w, model.graph.initializer[2].name))
    result = ti.build(model).run(inputs)
    assert not compare_outputs(result.outputs, reference).ok

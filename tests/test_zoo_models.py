"""The zoo models compiled through TVM and run on QEMU, against TFLite Micro.

Float-lowered kernels do not reproduce TFLite Micro's fixed-point requantization exactly,
so these tests require the same top-1 class on realistic inputs and bound the difference in
int8 steps (LSB); the bounds are what we measured with a margin, so a regression shows.
"""

import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference, sim, zoo
from tvm_intermittent.check import compare_outputs
from tvm_intermittent.errors import UnsupportedOperatorError

pytestmark = [pytest.mark.qemu, pytest.mark.zoo]

#: Largest difference from TFLite Micro measured on the sample inputs, times about two.
MAX_LSB = {"kws": 6, "resnet8": 30, "vww": 6, "micro_speech": 4}


@pytest.fixture(scope="module", params=sorted(MAX_LSB))
def compiled(request, tmp_path_factory):
    entry = zoo.get(request.param)
    artifact = ti.build(entry.path, "intermittent/qemu-an386", name=request.param)
    project = artifact.export(tmp_path_factory.mktemp(request.param) / "project")
    sim.build_project(project)
    return request.param, entry, project


def test_same_top1_as_tflite_micro_on_realistic_inputs(compiled):
    name, entry, project = compiled
    scales = reference.output_lsb_scales(entry.path)
    for array, description in zoo.sample_inputs(name, count=2):
        ours = sim.run(project, [array], timeout=600)
        check = compare_outputs(ours.outputs, reference.run_tflite_micro(entry.path, [array]),
                                lsb_scales=scales)
        out = check.outputs[0]
        assert out.top1_match, f"{name} on {description}: {check.summary()}"
        assert out.max_lsb <= MAX_LSB[name], f"{name} on {description}: {check.summary()}"
        assert ours.instructions_model > 1_000_000


def test_firmware_has_no_tvm_runtime_and_no_heap(compiled):
    name, _, project = compiled
    elf = sim.build_project(project)
    assert sim.forbidden_symbols(elf) == []
    names = sim.symbols(elf)
    assert not any(n.startswith(("TVM", "tvm", "__tvm")) for n in names)
    assert not {"malloc", "free", "_sbrk", "_malloc_r"} & set(names)


def test_anomaly_detection_is_refused_with_the_operator_named():
    with pytest.raises(UnsupportedOperatorError, match="SHAPE"):
        ti.build(zoo.get("ad").path)


def test_firmware_equals_tvms_own_llvm_build_of_the_same_module(compiled):
    """Our C is an exact translation: QEMU's outputs equal TVM's llvm build bit for bit
    (int8 outputs) or to float rounding (float outputs). What remains against TFLite Micro
    is the float lowering of the quantized graph, not our code generator."""
    import numpy as np
    import tvm
    from tvm import relax

    from tvm_intermittent.frontend import load_model

    name, entry, project = compiled
    vm = relax.VirtualMachine(tvm.compile(load_model(entry.path).mod, target="llvm"), tvm.cpu())
    array, _ = zoo.sample_inputs(name, count=1)[0]
    ours = sim.run(project, [array], timeout=600).outputs[0]
    theirs = vm["main"](tvm.runtime.tensor(array)).numpy()
    if np.issubdtype(ours.dtype, np.integer):
        np.testing.assert_array_equal(ours, theirs)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)

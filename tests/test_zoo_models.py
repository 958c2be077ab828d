"""The zoo models compiled to integer-only kernels and run on QEMU: TFLite Micro, bit for bit.

Every zoo model is int8 inside. The compiled firmware must give exactly the bytes TFLite
Micro's interpreter gives on realistic inputs (for the float outputs of kws, vww and ad:
exactly the same floats, since both dequantize the same int8 values), compute nothing in
floating point except at a float model boundary, and contain no TVM runtime and no heap.
"""

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference, sim, zoo

from soft_float import float_calls

pytestmark = [pytest.mark.qemu, pytest.mark.zoo]

MODELS = ["ad", "kws", "micro_speech", "resnet8", "vww"]
#: Models whose inputs and outputs are float32 around an int8 graph (QUANTIZE first,
#: DEQUANTIZE last): only those two boundary kernels may compute in floating point.
FLOAT_BOUNDARY = {"ad", "kws", "vww"}


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """Zoo model name -> (zoo entry, exported project with its firmware built), each model
    compiled once for every test of this file that runs it."""
    cache = {}

    def get(name):
        if name not in cache:
            entry = zoo.get(name)
            artifact = ti.build(entry.path, "intermittent/qemu-an386", name=name)
            project = artifact.export(tmp_path_factory.mktemp(name) / "project")
            sim.build_project(project)
            cache[name] = entry, project
        return cache[name]

    return get


@pytest.fixture(scope="module", params=MODELS)
def compiled(request, projects):
    return (request.param, *projects(request.param))


def test_equals_tflite_micro_bit_for_bit_on_realistic_inputs(compiled):
    name, entry, project = compiled
    for array, description in zoo.sample_inputs(name, count=2):
        ours = sim.run(project, [array], timeout=600)
        theirs = reference.run_tflite_micro(entry.path, [array])
        for got, want in zip(ours.outputs, theirs):
            np.testing.assert_array_equal(got, want, err_msg=f"{name} on {description}")
        assert ours.instructions_model > 100_000


def test_no_floating_point_outside_the_model_boundary(compiled):
    """Built for a Cortex-M0 (no FPU), only the boundary quantize/dequantize kernels of a
    float-interface model call float helpers; an int8-interface model calls none."""
    name, _, project = compiled
    calls = float_calls(project)
    if name not in FLOAT_BOUNDARY:
        assert calls == {}
        return
    assert calls, "the float boundary of the model should be visible here"
    for kernel, helpers in calls.items():
        assert "quantize" in kernel, f"{kernel} computes in floating point: {sorted(helpers)}"
    assert not any("conv" in k or "dense" in k or "softmax" in k for k in calls)


def test_firmware_has_no_tvm_runtime_and_no_heap(compiled):
    name, _, project = compiled
    elf = sim.build_project(project)
    assert sim.forbidden_symbols(elf) == []
    names = sim.symbols(elf)
    assert not any(n.startswith(("TVM", "tvm", "__tvm")) for n in names)
    assert not {"malloc", "free", "_sbrk", "_malloc_r"} & set(names)


def test_firmware_equals_tvms_own_llvm_build_of_the_integer_module(compiled):
    """The generated C is an exact translation: TVM's llvm build of the module after the
    integer rewrite gives the same bytes as the firmware (and so as TFLite Micro)."""
    import tvm
    from tvm import relax

    from tvm_intermittent.frontend import load_model
    from tvm_intermittent.transform import QuantizedToInteger

    name, entry, project = compiled
    integer = QuantizedToInteger()(load_model(entry.path).mod)
    vm = relax.VirtualMachine(tvm.compile(integer, target="llvm"), tvm.cpu())
    array, _ = zoo.sample_inputs(name, count=1)[0]
    ours = sim.run(project, [array], timeout=600).outputs[0]
    np.testing.assert_array_equal(ours, vm["main"](tvm.runtime.tensor(array)).numpy())


def test_dsp_boards_get_smlad_kernels_and_the_host_build_the_portable_ones(projects):
    """Keyword spotting's pointwise convolutions use the Cortex-M4's SMLAD on QEMU; the host
    build compiles the same C through the portable helpers and gives the same outputs."""
    import subprocess

    name = "kws"
    entry, project = projects(name)
    kernels = (project / "model" / "kernels.c").read_text()
    assert "intm_smlad(" in kernels
    elf = sim.build_project(project)
    disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], check=True,
                                 capture_output=True, text=True).stdout
    assert "\tsmlad\t" in disassembly
    array, _ = zoo.sample_inputs(name, count=1)[0]
    host = sim.run(project, [array], kind="host").outputs
    expected = reference.run_tflite_micro(entry.path, [array])
    assert all(np.array_equal(a, b) for a, b in zip(host, expected))

"""Flash and NVM the firmware does without: a reshape is a view of its input's bytes.

The model: CONV_2D -> RESHAPE (flatten) -> FULLY_CONNECTED -> RESHAPE (the model output).
The first reshape's result is read by the fully connected layer, the second is the output
itself, so both ways a view is used are here. The compiled model has no reshape step, each
view sits at its input's arena offset, and the outputs are TFLite Micro's, also under power
failures in the batches that read a view and in the output write that reads one.
"""

import subprocess

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference, sim
from tvm_intermittent.builder import prepare
from tvm_intermittent.sim import campaign
from tvm_intermittent.transform.notices import RESHAPE_COPY

import tflite_models as tm

#: 3 uF: a power cycle of about 24,000 instructions on the msp430fr5994 profile, so the
#: dense layer runs in several batches with commits between them.
TINY_CAPACITOR = 3e-6


def _conv_flatten_dense(seed=11):
    """CONV_2D 8x8x3 -> 8x8x8, flattened to 512, FULLY_CONNECTED to 64, reshaped to 8x8."""
    rng = np.random.default_rng(seed)
    w_scales = rng.uniform(0.002, 0.02, size=8).astype(np.float32)
    tensors = [
        tm.T((1, 8, 8, 3), scale=0.05, zero_point=-3),
        tm.T((8, 3, 3, 3), scale=w_scales, data=rng.integers(-127, 128, (8, 3, 3, 3))),
        tm.T((8,), "int32", scale=np.float32(0.05) * w_scales,
             data=rng.integers(-2000, 2000, 8)),
        tm.T((1, 8, 8, 8), scale=0.2, zero_point=4),
        tm.T((2,), "int32", data=np.array([1, 512])),
        tm.T((1, 512), scale=0.2, zero_point=4),
        tm.T((64, 512), scale=0.01, data=rng.integers(-127, 128, (64, 512))),
        tm.T((64,), "int32", scale=np.float32(0.2) * np.float32(0.01),
             data=rng.integers(-3000, 3000, 64)),
        tm.T((1, 64), scale=0.3, zero_point=-20),
        tm.T((3,), "int32", data=np.array([1, 8, 8])),
        tm.T((1, 8, 8), scale=0.3, zero_point=-20),
    ]
    ops = [
        tm.Op("CONV_2D", [0, 1, 2], [3], "Conv2DOptions",
              dict(Padding=tm.SAME, StrideH=1, StrideW=1, DilationHFactor=1,
                   DilationWFactor=1, FusedActivationFunction=tm.NONE)),
        tm.Op("RESHAPE", [3, 4], [5], "ReshapeOptions", dict(NewShape=[1, 512])),
        tm.Op("FULLY_CONNECTED", [5, 6, 7], [8], "FullyConnectedOptions",
              dict(FusedActivationFunction=tm.NONE)),
        tm.Op("RESHAPE", [8, 9], [10], "ReshapeOptions", dict(NewShape=[1, 8, 8])),
    ]
    x = rng.integers(-128, 128, (1, 8, 8, 3)).astype(np.int8)
    return tm.build(tensors, ops, [0], [10]), [x]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model, inputs = _conv_flatten_dense()
    path = tmp_path_factory.mktemp("flash") / "conv_flatten_dense.tflite"
    path.write_bytes(model)
    return path, inputs


def test_reshapes_are_views_of_their_inputs(model_file):
    path, _ = model_file
    prepared = prepare(path, "intermittent/qemu-an386")
    graph, plan = prepared.graph, prepared.memory
    assert not prepared.notices
    assert [s.kernel for s in graph.steps] == ["conv2d_s8", "dense_s8"]
    conv, dense = graph.steps
    (flat,) = dense.inputs[:1]
    (out,) = graph.outputs
    # The dense layer reads the convolution's output through the flatten's view ...
    assert graph.tensors[flat].view_of == conv.outputs[0]
    assert plan.placements[flat].offset == plan.placements[conv.outputs[0]].offset
    # ... and the model output is a view of the dense layer's result, kept to the end.
    assert graph.tensors[out].view_of == dense.outputs[0]
    assert plan.placements[out].offset == plan.placements[dense.outputs[0]].offset
    assert plan.placements[dense.outputs[0]].last == len(graph.steps)
    assert graph.tensors[out].shape == (1, 8, 8)
    # No view takes arena bytes of its own.
    assert plan.views == {flat, out}
    assert plan.naive_bytes == sum(-(-graph.tensors[n].nbytes // 8) * 8
                                   for n in plan.placements if n not in plan.views)


def test_a_reshape_of_the_input_to_the_output_stays_a_copy(tmp_path):
    """The one case without a view: the output would be the model input's own bytes."""
    model, _ = tm.reshape()
    path = tmp_path / "reshape.tflite"
    path.write_bytes(model)
    prepared = prepare(path, "intermittent/qemu-an386")
    graph = prepared.graph
    assert [s.kernel for s in graph.steps] == ["reshape"]
    assert all(t.view_of is None for t in graph.tensors.values())
    (notice,) = [n for n in prepared.notices if n.path == RESHAPE_COPY]
    assert notice.operator == "reshape -> int8[1, 60]"
    assert "view of a model input" in notice.reason


@pytest.mark.qemu
def test_views_give_tflm_outputs_also_under_failures(model_file, tmp_path):
    path, inputs = model_file
    expected = reference.run_tflite_micro(path, inputs)
    artifact = ti.build(path, "intermittent/msp430fr5994", capacitor_f=TINY_CAPACITOR)
    project = artifact.export(tmp_path / "p")
    continuous = sim.run(project, inputs)
    np.testing.assert_array_equal(continuous.outputs[0], expected[0])
    assert continuous.outputs[0].shape == (1, 8, 8)

    windows = campaign.phase_windows(continuous, campaign.task_table(artifact.manifest()))
    dense_batches = [w for w in windows if w.phase == "batch" and "dense" in w.kernel]
    assert len(dense_batches) >= 2  # the dense layer commits between batches
    chosen = [dense_batches[0], dense_batches[-1], *(w for w in windows if w.phase == "outputs")]
    baseline = campaign.Baseline(continuous, expected, artifact.power_cycle_budget)
    result = campaign.exhaustive_campaign(project, inputs, expected, chosen, baseline=baseline,
                                          points=campaign.Window.key_points)
    assert result.ok, result.to_dict()
    # One failure per run, and runs in each chosen window: the batches that read the
    # flatten's view and the output write that reads the output's view.
    assert result.failures == result.runs
    for window, row in zip(chosen, result.details["by_window"]):
        assert row["failures"] >= 4, (window.label, row)


@pytest.mark.parametrize("scale, length", [(0.01, 256), (0.1, None), (1.0, None)])
def test_softmax_exp_table_stops_where_exp_is_zero(scale, length):
    """The table holds exp(difference * scale) in Q0.31 for the differences up to the last
    one that is not 0, plus one 0 that every larger difference reads: checked against
    numpy's exp in double, which is not how the table is computed (gemmlowp's fixed point),
    so only to within a few parts per million."""
    from tvm_intermittent.transform.integer_softmax import exp_table  # pylint: disable=C0415

    table = exp_table(scale)
    diffs = np.arange(1 - len(table), 1)
    want = np.exp(diffs * np.float64(scale)) * 2.0**31
    if length is not None:  # exp never falls below a half step within 255 differences
        assert len(table) == length and table[0] > 0
    else:
        assert len(table) < 256 and table[0] == 0 and table[1] > 0
        # Below the table's range exp is below one step of Q0.31, or TFLM's diff_min cut.
        assert np.exp((-len(table)) * np.float64(scale)) * 2.0**31 < 2**31 * 2.0**-24
    np.testing.assert_allclose(table[1:], want[1:], rtol=2e-6, atol=64)


@pytest.mark.qemu
def test_runtime_and_bsp_call_no_newlib_string_function(model_file, tmp_path):
    """The boot copies .data and zeroes .bss itself and semihosting gets the path's length
    from its caller: newlib's memcpy, memset and strlen (690 bytes of flash) are linked only
    if a kernel needs one. Checked on the objects: GCC turns plain copy, fill and counting
    loops into such calls, which is what the volatile stores and the length argument avoid."""
    path, _ = model_file
    project = ti.build(path, "intermittent/qemu-an386").export(tmp_path / "p")
    sim.build_project(project)
    objects = sorted((project / "build" / "qemu").glob("**/*.o"))
    runtime = [o for o in objects if o.parts[-2] in ("runtime", "qemu_an386")]
    assert {o.name for o in runtime} >= {"startup.o", "semihost.o", "intm_progress.o",
                                         "intm_executor.o", "intm_main.o"}
    undefined = set()
    for obj in runtime:
        listing = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], check=True,
                                 capture_output=True, text=True).stdout
        undefined |= {line.split()[-1] for line in listing.splitlines() if line.strip()}
    assert not undefined & {"memcpy", "memset", "memmove", "strlen"}, undefined


def test_model_hash_names_the_memory_layout(model_file):
    """The progress record's model hash changes with the arena offsets alone: firmware whose
    plan moved a tensor (a view now shares its input's bytes) must not resume a record
    written under the old plan. The other plan here is as valid and as large: the input
    first, the convolution's output after it, the dense output over the dead input."""
    import dataclasses  # pylint: disable=import-outside-toplevel

    from tvm_intermittent.builder import assemble  # pylint: disable=import-outside-toplevel
    from tvm_intermittent.codegen.graph import view_root  # pylint: disable=C0415
    from tvm_intermittent.codegen.memory_plan import (  # pylint: disable=C0415
        MemoryPlan, Placement)

    path, _ = model_file
    prepared = prepare(path, "intermittent/qemu-an386")
    graph, plan = prepared.graph, prepared.memory
    (x,), (conv, dense) = graph.inputs, graph.steps
    offsets = {x: 0, conv.outputs[0]: graph.tensors[x].nbytes, dense.outputs[0]: 0}
    assert plan.arena_bytes == graph.tensors[x].nbytes + graph.tensors[conv.outputs[0]].nbytes
    assert [plan.placements[n].offset for n in offsets] != list(offsets.values())
    moved = MemoryPlan({n: dataclasses.replace(p, offset=offsets[view_root(graph.tensors, n)])
                        for n, p in plan.placements.items()}, plan.arena_bytes, plan.views)
    same = assemble(prepared)
    other = assemble(dataclasses.replace(prepared, memory=moved))
    for rel in ("model/kernels.c", "model/model.h", "model/weights.c"):
        assert same.sources.files[rel] == other.sources.files[rel]
    assert same.sources.files["model/model.c"] != other.sources.files["model/model.c"]
    assert assemble(prepared).sources.model_hash == same.sources.model_hash
    assert other.sources.model_hash != same.sources.model_hash

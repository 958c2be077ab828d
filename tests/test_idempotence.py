"""Tiles are idempotent: checked at compile time from the TIR, and shown by running them twice.

The first tests build small lowered kernels inline, each breaking one condition of
:mod:`tvm_intermittent.codegen.idempotence` (two tiles writing one element; a
read-modify-write of the output; scratch carried from tile to tile; an index loaded from
memory), and require the compiler to refuse or re-tile them with the reason. Then every
kernel of the small ONNX models and of the zoo must pass the check.

The host-build tests replace the firmware harness with a driver that runs every tile batch of
every task twice in a row, then runs tiles of the task again in a seeded random order (every
tile may run again at any time once it has run: after a power failure the executor reruns a
batch whose tiles may already have run), and require the outputs of a clean run, byte for
byte. A control build whose kernel adds to its output instead of storing must differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tvm.script import tirx as T

import tvm_intermittent as ti
from tvm_intermittent import sim
from tvm_intermittent.codegen.idempotence import IdempotenceError, check_idempotence
from tvm_intermittent.codegen.tiling import TilePlan, plan_tiles

import onnx_models
import tflite_models

# ---- kernels built inline, already in the lowered form the C printer reads ---------------

# pylint: disable=no-self-argument,missing-function-docstring


@T.prim_func
def _read_modify_write(x: T.Buffer((64,), "float32"), y: T.Buffer((64,), "float32")):
    for i in range(64):
        y[i] = y[i] + x[i]


@T.prim_func
def _two_tiles_one_element(x: T.Buffer((64,), "float32"), y: T.Buffer((32,), "float32")):
    for i in range(64):
        y[i // 2] = x[i]


@T.prim_func
def _scratch_carried(x: T.Buffer((64,), "float32"), y: T.Buffer((64,), "float32")):
    acc = T.alloc_buffer((1,), "float32")
    for i in range(64):
        if i == 0:
            acc[0] = T.float32(0)
        acc[0] = acc[0] + x[i]
        y[i] = acc[0]


@T.prim_func
def _gather(x: T.Buffer((64,), "float32"), idx: T.Buffer((64,), "int32"),
            y: T.Buffer((64,), "float32")):
    for i in range(64):
        y[idx[i]] = x[i]


@T.prim_func
def _well_formed(x: T.Buffer((64,), "float32"), y: T.Buffer((64,), "float32")):
    acc = T.alloc_buffer((1,), "float32")
    for i in range(64):
        acc[0] = T.float32(0)
        for k in range(4):
            acc[0] = acc[0] + x[(i + k) % 64]
        y[i] = acc[0]


@T.prim_func
def _accumulates_in_output_after_init(x: T.Buffer((64,), "float32"),
                                      y: T.Buffer((16,), "float32")):
    for i in range(16):
        y[i] = T.float32(0)
        for k in range(4):
            y[i] = y[i] + x[i * 4 + k]


@T.prim_func
def _dot_with_guarded_init(a: T.Buffer((3,), "float32"), b: T.Buffer((3,), "float32"),
                           y: T.Buffer((1,), "float32")):
    for k in range(3):  # as TVM lowers a 1-D MatMul: the init guarded by the reduction index
        if k == 0:
            y[0] = T.float32(0)
        y[0] = y[0] + a[k] * b[k]


@T.prim_func
def _written_on_one_branch(x: T.Buffer((64,), "float32"), y: T.Buffer((64,), "float32")):
    acc = T.alloc_buffer((1,), "float32")
    for i in range(64):
        if x[i] > T.float32(0):  # a condition on data: the check cannot decide it
            acc[0] = x[i]
        y[i] = acc[0]


@T.prim_func
def _written_on_both_branches(x: T.Buffer((64,), "float32"), y: T.Buffer((64,), "float32")):
    acc = T.alloc_buffer((1,), "float32")
    for i in range(64):
        if x[i] > T.float32(0):
            acc[0] = x[i]
        else:
            acc[0] = T.float32(0)
        y[i] = acc[0]


@T.prim_func
def _pairs_own_slot(x: T.Buffer((64,), "float32"), y: T.Buffer((32,), "float32")):
    tmp = T.alloc_buffer((2,), "float32")
    for i in range(32):
        tmp[i % 2] = x[i * 2]
        y[i] = tmp[i % 2] + x[i * 2 + 1]


@T.prim_func
def _pairs_other_slot(x: T.Buffer((64,), "float32"), y: T.Buffer((32,), "float32")):
    tmp = T.alloc_buffer((2,), "float32")
    for i in range(32):
        tmp[i % 2] = x[i * 2]
        y[i] = tmp[T.min(i, 30) % 2] + x[i * 2 + 1]  # the last tile reads tmp[0]


@T.prim_func
def _halve_through_bind(x: T.Buffer((64,), "float32"), y: T.Buffer((32,), "float32")):
    for i in range(64):
        half = T.bind(i // 2)
        y[half] = x[i]


@T.prim_func
def _reverse_through_bind(x: T.Buffer((64,), "float32"), y: T.Buffer((64,), "float32")):
    for i in range(64):
        mirror = T.bind(63 - i)
        y[mirror] = x[i]


@T.prim_func
def _address_to_a_call(x: T.Buffer((8,), "float32"), y: T.Buffer((8,), "float32")):
    tmp = T.alloc_buffer((8,), "float32")
    for i in range(8):
        tmp[0] = x[i]
        y[i] = T.call_extern("float32", "sum_from", T.address_of(tmp[0]))


def _copied(elements):
    @T.prim_func
    def copy_then_read(x: T.Buffer((64,), "float32"), y: T.Buffer((16,), "float32")):
        tmp = T.alloc_buffer((4,), "float32")
        for i in range(16):
            for k in range(elements):  # a loop that only writes scratch, as a staged copy
                tmp[k] = x[i * 4 + k]
            y[i] = T.call_extern("float32", "sum_from", T.address_of(tmp[2])) + \
                T.call_extern("float32", "sum_from", T.address_of(tmp[0]))
    return copy_then_read


# pylint: enable=no-self-argument,missing-function-docstring

_BUDGET = 400_000  # instructions: every kernel above fits one tile per power cycle


def _plan(func, name="kernel", budget=_BUDGET):
    return plan_tiles(func, name, {func.params[-1].name}, budget, "testboard")


def test_a_read_modify_write_of_the_output_is_refused_with_the_reason():
    with pytest.raises(IdempotenceError, match=r"kernel rmw: .*read-modify-write"):
        _plan(_read_modify_write, "rmw")


def test_two_tiles_writing_one_element_are_refused_at_that_depth():
    with pytest.raises(IdempotenceError, match=r"tiles 0 and 1 both write element 0 of y"):
        check_idempotence(_two_tiles_one_element, "halve", TilePlan(1, 64, 10, 8))


def test_two_tiles_writing_one_element_are_retiled_coarser_with_the_reason():
    plan = _plan(_two_tiles_one_element, "halve")
    assert plan.depth == 0 and plan.extent == 1
    assert "0 fused loops instead of 1" in plan.retiled and "both write" in plan.retiled


def test_when_no_coarser_tiling_fits_the_kernel_is_refused():
    # A power cycle that pays for single elements but not for the whole kernel (about 45
    # and 135 instructions predicted; the calibrated boot, restore and commit take ~350).
    with pytest.raises(IdempotenceError, match=r"both write .*no coarser tiling that fits"):
        _plan(_two_tiles_one_element, "halve", budget=500)


def test_scratch_carried_from_tile_to_tile_is_refused():
    with pytest.raises(IdempotenceError, match=r"scratch acc\[0\] is read before this tile"):
        check_idempotence(_scratch_carried, "prefix", TilePlan(1, 64, 10, 8))
    # One tile for the whole kernel keeps the running sum inside the tile: re-tiled so.
    plan = _plan(_scratch_carried, "prefix")
    assert plan.depth == 0 and "kernel prefix: scratch acc[0]" in plan.retiled
    with pytest.raises(IdempotenceError, match=r"kernel prefix: scratch acc.*no coarser"):
        _plan(_scratch_carried, "prefix", budget=600)  # elements fit, the whole not


def test_an_index_the_check_cannot_evaluate_is_refused_not_trusted():
    with pytest.raises(IdempotenceError,
                       match=r"kernel gather: cannot show .*an index loaded from memory"):
        check_idempotence(_gather, "gather", TilePlan(1, 64, 10, 8))


def test_well_formed_tiles_pass_and_every_write_is_checked():
    report = check_idempotence(_well_formed, "window", TilePlan(1, 64, 10, 8))
    assert report.written_parameters == ("y",) and report.scratch_buffers == ("acc",)
    assert report.writes_checked == 64
    # Accumulating in the output is fine once the tile has initialized the element itself.
    check_idempotence(_accumulates_in_output_after_init, "sum4", TilePlan(1, 16, 10, 8))
    # So is an init guarded by the reduction index, in a kernel that is one tile.
    assert _plan(_dot_with_guarded_init, "dot").depth == 0


def test_an_undecided_condition_keeps_only_the_writes_both_branches_make():
    # The condition reads data, so either branch may run: a write on one branch only does
    # not cover the read after it; writes on both branches do.
    with pytest.raises(IdempotenceError, match=r"kernel onebranch: scratch acc\[0\] is read"):
        check_idempotence(_written_on_one_branch, "onebranch", TilePlan(1, 64, 10, 8))
    report = check_idempotence(_written_on_both_branches, "bothbranches", TilePlan(1, 64, 10, 8))
    assert report.scratch_buffers == ("acc",) and report.writes_checked == 64


def test_each_tile_is_walked_with_its_own_index():
    # The scratch slot depends on the tile: the last tile writes tmp[1] and reads tmp[0],
    # which only the even tiles write; the walk must run tile by tile, to the last, to see it.
    check_idempotence(_pairs_own_slot, "ownslot", TilePlan(1, 32, 10, 8))
    with pytest.raises(IdempotenceError, match=r"kernel otherslot: scratch tmp\[0\] is read"):
        check_idempotence(_pairs_other_slot, "otherslot", TilePlan(1, 32, 10, 8))


def test_a_store_index_through_a_bind_is_evaluated_through_its_value():
    with pytest.raises(IdempotenceError, match=r"tiles 0 and 1 both write element 0 of y"):
        check_idempotence(_halve_through_bind, "halve", TilePlan(1, 64, 10, 8))
    report = check_idempotence(_reverse_through_bind, "reverse", TilePlan(1, 64, 10, 8))
    assert report.writes_checked == 64 and report.written_parameters == ("y",)


def test_an_address_handed_to_a_call_reads_on_to_the_end_of_the_buffer():
    from tvm_intermittent.codegen.tir_loads import (  # pylint: disable=import-outside-toplevel
        ADDRESS, ELEMENT, buffer_loads)

    loop = _address_to_a_call.body
    while type(loop).__name__ != "For":
        loop = loop.seq[-1]
    value = loop.body.seq[-1].value
    assert [(load.source.name, reach) for load, reach in buffer_loads(value)] == \
        [("tmp", ADDRESS)]
    assert [reach for _, reach in buffer_loads(loop.body.seq[0].value)] == [ELEMENT]
    # The tile wrote tmp[0] only; the callee may read tmp[1..7].
    with pytest.raises(IdempotenceError, match=r"scratch tmp\[1\] is read before"):
        check_idempotence(_address_to_a_call, "sumfrom", TilePlan(1, 8, 10, 8))
    # A copy of every element covers both reads; a copy of three leaves tmp[3] to the reads.
    report = check_idempotence(_copied(4), "copy4", TilePlan(1, 16, 10, 8))
    assert report.scratch_buffers == ("tmp",)
    with pytest.raises(IdempotenceError, match=r"kernel copy3: scratch tmp\[3\] is read"):
        check_idempotence(_copied(3), "copy3", TilePlan(1, 16, 10, 8))


def _wide_matmul(k=3000, units=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, units)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, units])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, [rng.standard_normal((1, k)).astype(np.float32)]


def _split_artifact():
    model, inputs = _wide_matmul()
    artifact = ti.build(model, "intermittent/msp430fr5994", capacitor_f=2e-6)
    (plan,) = artifact.tiles.values()
    assert plan.chunks > 1, "the matmul must be split for this test"
    return artifact, inputs


def test_split_reductions_pass_and_must_commit_after_every_chunk():
    import tvm  # pylint: disable=import-outside-toplevel

    from tvm_intermittent.codegen.graph import extract_graph  # pylint: disable=C0415
    from tvm_intermittent.frontend import load_model  # pylint: disable=C0415
    from tvm_intermittent.transform import intermittent_pipeline, lower_prim_func  # noqa

    model, _ = _wide_matmul()
    mod = intermittent_pipeline(tvm.target.Target("intermittent/msp430fr5994"))(
        load_model(model).mod)
    (name, func), = extract_graph(mod).kernels.items()
    func = lower_prim_func(func, name)
    artifact, _ = _split_artifact()
    plan = artifact.tiles[name]
    report = check_idempotence(func, name, plan)
    assert report.writes_checked == 4  # one output element per (element, chunk) group
    batched = TilePlan(plan.depth, plan.extent, plan.tile_instructions, 2, plan.chunks,
                       plan.chunk_size)
    with pytest.raises(IdempotenceError, match="must commit after every chunk"):
        check_idempotence(func, name, batched)


def _lowered_kernels(source, board="qemu-an386", capacitor=None):
    """(name, lowered kernel, plan) of every kernel of a model, planned as ``build`` plans
    them (``plan_tiles`` runs the check too; the test runs it again for its report)."""
    import tvm  # pylint: disable=import-outside-toplevel

    from tvm_intermittent.board import load_board  # pylint: disable=C0415
    from tvm_intermittent.codegen.c_printer import written_parameters  # pylint: disable=C0415
    from tvm_intermittent.codegen.graph import extract_graph  # pylint: disable=C0415
    from tvm_intermittent.frontend import load_model  # pylint: disable=C0415
    from tvm_intermittent.transform import intermittent_pipeline, lower_prim_func  # noqa

    budget = load_board(board).power_cycle_budget(capacitor)
    mod = intermittent_pipeline(tvm.target.Target(f"intermittent/{board}"))(
        load_model(source).mod)
    graph = extract_graph(mod)
    for name in sorted({step.kernel for step in graph.steps}):
        func = lower_prim_func(graph.kernels[name], name)
        yield name, func, plan_tiles(func, name, written_parameters(func), budget, board)


@pytest.mark.parametrize("case", sorted(onnx_models.CASES))
def test_every_kernel_of_the_small_onnx_models_passes(case):
    model, _ = onnx_models.CASES[case]()
    for board, capacitor in (("qemu-an386", None), ("msp430fr5994", 3e-6)):
        for name, func, plan in _lowered_kernels(model, board, capacitor):
            report = check_idempotence(func, name, plan)
            assert report.writes_checked > 0 and not plan.retiled, (name, plan)


@pytest.mark.zoo
def test_every_kernel_of_the_zoo_passes():
    from tvm_intermittent import zoo  # pylint: disable=import-outside-toplevel

    checked = 0
    for model_name in zoo.list_models():
        path = zoo.get(model_name).path
        for name, func, plan in _lowered_kernels(path):
            report = check_idempotence(func, name, plan)
            assert report.writes_checked > 0 and not plan.retiled, (model_name, name)
            checked += 1
    assert checked > 40


# ---- every tile twice on the host build -----------------------------------------------------

_DRIVER = r"""/* Test driver: every tile batch twice, then tiles again in a seeded random order. */
#include "intm_runtime.h"
#include "model.h"

/* Split-reduction tasks: a chunk may run again only right after itself (see tiling.py). */
static const int intm_test_split[INTM_MODEL_NUM_TASKS] = {@SPLIT@};
static uint32_t intm_test_state = @SEED@u;

static int32_t intm_test_pick(int32_t n) {
  intm_test_state = intm_test_state * 1664525u + 1013904223u;
  return (int32_t)((intm_test_state >> 8) % (uint32_t)n);
}

int main(void) {
  intm_platform_init();
  for (int i = 0; i < INTM_MODEL_NUM_INPUTS; ++i) {
    if (intm_platform_read_input(i, intm_model_input(i), intm_model_inputs[i].nbytes) != INTM_OK)
      intm_platform_exit(1);
  }
  for (uint32_t t = 0; t < INTM_MODEL_NUM_TASKS; ++t) {
    const intm_task_t* task = &intm_model_tasks[t];
    for (int32_t begin = 0; begin < task->num_tiles; begin += task->tiles_per_commit) {
      int32_t end = begin + task->tiles_per_commit;
      if (end > task->num_tiles) end = task->num_tiles;
      task->run(begin, end);
      task->run(begin, end);
    }
    if (!intm_test_split[t]) {
      for (int32_t k = 0; k < task->num_tiles; ++k) {
        int32_t tile = intm_test_pick(task->num_tiles);
        task->run(tile, tile + 1);
      }
    }
  }
  for (int i = 0; i < INTM_MODEL_NUM_OUTPUTS; ++i) {
    if (intm_platform_write_output(i, intm_model_output(i), intm_model_outputs[i].nbytes) !=
        INTM_OK)
      intm_platform_exit(1);
  }
  intm_platform_exit(0);
}
"""


def _run_twice(artifact, inputs, tmp_path: Path, seed: int = 1, patch=None):
    """Outputs of the clean host build and of the twice-running driver."""
    clean = artifact.run(inputs, kind="host").outputs
    project = artifact.export(tmp_path / "twice")
    split = ", ".join("1" if artifact.tiles[k].chunks > 1 else "0" for k in artifact.tasks)
    (project / "runtime" / "intm_main.c").write_text(
        _DRIVER.replace("@SPLIT@", split).replace("@SEED@", str(seed)))
    if patch is not None:
        kernels = project / "model" / "kernels.c"
        kernels.write_text(patch(kernels.read_text()))
    twice = sim.run(project, inputs, kind="host").outputs
    return clean, twice


def _int8_tflite(tmp_path: Path, maker, **kwargs):
    data, inputs = maker(**kwargs)
    path = tmp_path / f"{maker.__name__}.tflite"
    path.write_bytes(data)
    return path, inputs


def _cases(tmp_path):
    for name in ("small_cnn", "conv_depthwise", "softmax"):
        model, inputs = onnx_models.CASES[name]()
        yield name, ti.build(model, "intermittent/msp430fr5994", capacitor_f=3e-6), inputs
    path, inputs = _int8_tflite(tmp_path, tflite_models.conv2d, hw=(12, 10), cin=8, cout=8)
    yield "int8 conv2d", ti.build(path, "intermittent/msp430fr5994", capacitor_f=3e-6), inputs
    path, inputs = _int8_tflite(tmp_path, tflite_models.conv2d, depthwise=True, cin=8)
    yield "int8 depthwise", ti.build(path, "intermittent/msp430fr5994",
                                     capacitor_f=3e-6), inputs
    path, inputs = _int8_tflite(tmp_path, tflite_models.fully_connected)
    yield "int8 dense", ti.build(path, "intermittent/msp430fr5994", capacitor_f=3e-6), inputs
    artifact, inputs = _split_artifact()
    yield "split reduction", artifact, inputs


@pytest.mark.host_cc
def test_every_tile_run_twice_and_out_of_order_gives_the_clean_outputs(tmp_path):
    ran = []
    for i, (name, artifact, inputs) in enumerate(_cases(tmp_path)):
        tiles = sum(artifact.tiles[k].extent for k in artifact.tasks)
        assert tiles > len(artifact.tasks), f"{name}: no task has more than one tile"
        clean, twice = _run_twice(artifact, inputs, tmp_path / str(i), seed=i + 1)
        for a, b in zip(clean, twice):
            assert a.tobytes() == b.tobytes(), name
        ran.append(name)
    assert "split reduction" in ran and "int8 conv2d" in ran


@pytest.mark.host_cc
def test_the_twice_driver_catches_a_kernel_that_is_not_idempotent(tmp_path):
    model, inputs = onnx_models.CASES["add_mul_broadcast"]()
    artifact = ti.build(model)

    def accumulate(text):
        patched, count = re.subn(r"(\n\s+T_multiply_intermediate\[[^\n]*?\]) = ", r"\1 += ",
                                 text, count=1)
        assert count == 1, "the control patch no longer applies"
        return patched

    clean, twice = _run_twice(artifact, inputs, tmp_path, patch=accumulate)
    assert not np.array_equal(clean[0], twice[0])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))

"""The loop order and unroll knobs (``tuning/loop_rewrites.py``): what they rewrite, what
they refuse, and that the rewritten kernels compute the same bytes.

The model is the tuner tests' int8 3x3 convolution (16x16x16, TFLite): its kernel's loop
nest is ``out_y, pixel_pair, channel_block`` (all separable) over the 2x2 micro-kernel's
taps, and each half of a pixel pair ends in a requantizing loop over 4 output channels (the
innermost loops of the main path). The references are independent of the rewrites: TFLite
Micro's outputs, and QEMU's instruction counts of the build without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tvm.script import tirx as T

import tvm_intermittent as ti
from tvm_intermittent import builder, sim
from tvm_intermittent.codegen.c_printer import statements
from tvm_intermittent.codegen.tiling import loop_chain
from tvm_intermittent.energy.kernel_cost import kernel_features
from tvm_intermittent.reference import run_tflite_micro
from tvm_intermittent.tuning import CandidateError, Knobs, ModelTasks, environment, knobs_of
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.describe import features_of
from tvm_intermittent.tuning.knobs import plan_of, tiled_func
from tvm_intermittent.tuning.loop_rewrites import innermost_loops, interchange
from tvm_intermittent.tuning.space import candidates, knob_choices, schedule_for

import tuning_candidates

BOARD = "qemu-an386"


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    return tuning_candidates.conv_model(tmp_path_factory.mktemp("model"), seed=3)


@pytest.fixture(scope="module")
def model_tasks(conv_model):
    return ModelTasks.of(builder.prepare(conv_model[0], "intermittent/" + BOARD))


def _loops(func) -> list:
    return [n for n in statements(func.body) if type(n).__name__ == "For"]


# ---- the rewrites in TIR (no QEMU) --------------------------------------------------------


def test_default_knobs_leave_the_kernel_and_old_records_unchanged(model_tasks):
    """Order 0 and unroll 1 are today's kernel itself, and a record written before the
    knobs existed (no such fields, no such annotations) reads as them."""
    task = model_tasks.tasks[0]
    assert tiled_func(task.func, Knobs(depth=1)) is task.func
    assert Knobs.from_dict({"depth": 1, "split": 0, "tiles_per_commit": 2, "chunks": 1}) == \
        Knobs(1, 0, 2, 1, order=0, unroll=1)
    knobs = Knobs(depth=1, order=1, unroll=4)
    assert knobs_of(schedule_for(task, knobs)) == knobs
    assert Knobs.from_dict(knobs.to_dict()) == knobs


def test_the_order_knob_swaps_the_two_loops_inside_the_tile(model_tasks):
    """Order 1 at depth 1 swaps pixel_pair (8) and channel_block (4): the tile loop stays,
    and the counts the cost model reads see the inner loop entered 4 x 8 fewer times."""
    task = model_tasks.tasks[0]
    swapped = tiled_func(task.func, Knobs(depth=1, order=1))
    chain = loop_chain(swapped)
    assert [(l.loop_var.name, int(l.extent)) for l in chain] == [
        ("out_y", 16), ("channel_block", 4), ("pixel_pair", 8)]
    assert chain[2].body.same_as(loop_chain(task.func)[2].body)  # the body is untouched
    before, after = task.features.counts, features_of(task, Knobs(1, order=1)).counts
    assert before["loop"] - after["loop"] == 16 * (8 - 4)


def test_the_unroll_knob_copies_the_innermost_loops_of_the_main_path(model_tasks):
    """Both requantizing loops of the interior path (4 output channels each) are unrolled:
    fully at 4 (no loop left, four stores each), into 2 x 2 at 2; the border path's loops
    (under the ``else``) are left alone."""
    task = model_tasks.tasks[0]
    inner = innermost_loops(task.func, 1)
    assert [(l.loop_var.name, int(l.extent)) for l in inner] == [("out_channel", 4)] * 2
    full = tiled_func(task.func, Knobs(depth=1, unroll=4))
    names = [l.loop_var.name for l in _loops(full)]
    assert len(_loops(full)) == len(_loops(task.func)) - 2
    assert names.count("out_channel") == 1  # the border path's
    half = tiled_func(task.func, Knobs(depth=1, unroll=2))
    outer = [l for l in _loops(half) if l.loop_var.name == "out_channel_o"]
    assert len(outer) == 2 and all(int(l.extent) == 2 for l in outer)
    stores = [n for n in statements(outer[0].body) if type(n).__name__ == "BufferStore"]
    assert len(stores) == 2  # two copies of the one store of each iteration
    before = kernel_features(task.func).counts["loop_iter"]
    assert features_of(task, Knobs(1, unroll=4)).counts["loop_iter"] < before


@pytest.mark.parametrize("knobs, message", [
    (Knobs(depth=1, unroll=3), "operator conv2d_s8: unroll factor 3 does not divide loop "
                               "out_channel's 4 iterations"),
    (Knobs(depth=1, order=2), "operator conv2d_s8: loop order 2: a tile of 1 fused loops has "
                              "no loops 2 and 3 to swap"),
    (Knobs(depth=3, unroll=2, tiles_per_commit=1), None),  # still inside the tile: valid
])
def test_knobs_the_kernel_cannot_take_are_refused_with_the_reason(model_tasks, knobs,
                                                                   message):
    task = model_tasks.tasks[0]
    if message is None:
        plan_of(knobs, task.func, task.kernel, usable=task.usable)
        return
    with pytest.raises(CandidateError, match=message):
        plan_of(knobs, task.func, task.kernel, usable=task.usable)
    with pytest.raises(CandidateError, match=message):
        check_candidate(task, knobs, ti.load_board(BOARD), environment("continuous"))
    assert knobs not in candidates(task)


# Inline kernels that an interchange must refuse, and one it may swap.

@T.prim_func
def _carried(a: T.Buffer((8,), "int32"), out: T.Buffer((32,), "int32")):
    acc = T.alloc_local((1,), "int32")
    for i, j in T.grid(4, 8):
        acc[0] = acc[0] + a[j]  # a running sum: iteration (i, j) needs the one before
        out[i * 8 + j] = acc[0]


@T.prim_func
def _reads_output(a: T.Buffer((8,), "int32"), out: T.Buffer((32,), "int32")):
    for i, j in T.grid(4, 8):
        out[i * 8 + j] = out[i * 8 + (j + 1) % 8] + a[j]


@T.prim_func
def _not_nested(a: T.Buffer((8,), "int32"), out: T.Buffer((32,), "int32")):
    for i in range(4):
        s = T.alloc_local((1,), "int32")
        for j in range(8):
            s[0] = a[j]
            out[i * 8 + j] = s[0]


@T.prim_func
def _independent(a: T.Buffer((8,), "int32"), out: T.Buffer((32,), "int32")):
    acc = T.alloc_local((1,), "int32")
    for i, j in T.grid(4, 8):
        acc[0] = a[j]
        for k in range(4):
            acc[0] = acc[0] + a[k] * i
        out[i * 8 + j] = acc[0]


@pytest.mark.parametrize("func, message", [
    (_carried, "loops i and j are not independent \\(it reads scratch acc before writing it"),
    (_reads_output, "loops i and j are not independent \\(it reads output out\\)"),
    (_not_nested, "loops i and j are not perfectly nested"),
])
def test_an_interchange_of_dependent_or_imperfect_loops_is_refused(func, message):
    with pytest.raises(CandidateError, match="operator toy: loop order 1: " + message):
        interchange(func.with_attr("global_symbol", "toy"), 0, 1)


def test_an_interchange_of_independent_loops_is_accepted():
    swapped = interchange(_independent.with_attr("global_symbol", "toy"), 0, 1)
    assert [l.loop_var.name for l in loop_chain(swapped)] == ["j", "i"]


def test_the_design_space_offers_few_loop_choices(model_tasks):
    choices = knob_choices(model_tasks.tasks[0])
    assert choices["order"] == [0, 1, 2] and choices["unroll"] == [1, 2, 4]
    found = candidates(model_tasks.tasks[0])
    assert {k.order for k in found} == {0, 1, 2} and {k.unroll for k in found} == {1, 2, 4}


# ---- the rewritten kernels on QEMU -----------------------------------------------------


@pytest.fixture(scope="module")
def reference(conv_model):
    path, inputs = conv_model
    return run_tflite_micro(Path(path).read_bytes(), inputs)


@pytest.fixture(scope="module")
def default_run(model_tasks, conv_model):
    """The default tiling at depth 1 (one output row per tile) without the loop knobs."""
    return _run(model_tasks, Knobs(depth=1), conv_model[1])


def _build(model_tasks, knobs):
    task = model_tasks.tasks[0]
    candidate = check_candidate(task, knobs, ti.load_board(BOARD), environment("board"))
    return builder.assemble(model_tasks.prepared, {task.kernel: (candidate.func,
                                                                  candidate.plan)})


def _run(model_tasks, knobs, inputs, **kwargs):
    return _build(model_tasks, knobs).run(inputs, **kwargs)


@pytest.mark.qemu
@pytest.mark.parametrize("knobs", [Knobs(depth=1, order=1), Knobs(depth=1, unroll=4)],
                         ids=["order", "unroll"])
def test_rewritten_kernels_give_the_reference_bytes_and_other_counts(model_tasks, conv_model,
                                                                    reference, default_run,
                                                                    knobs):
    """Each knob forced on the convolution: TFLite Micro's outputs bit for bit, and the
    convolution's task (task 0) runs a different number of instructions than without the
    knob, so the rewrite reached the firmware (unrolling the requantizing loops fully saves
    their compares and branches: fewer)."""
    np.testing.assert_array_equal(default_run.outputs[0], reference[0])
    run = _run(model_tasks, knobs, conv_model[1])
    np.testing.assert_array_equal(run.outputs[0], reference[0])
    before = default_run.traffic_by_task[0].instructions
    after = run.traffic_by_task[0].instructions
    assert after != before
    if knobs.unroll == 4:
        assert after < before * 0.99


@pytest.mark.qemu
def test_a_rewritten_kernel_under_random_failures_gives_the_reference_bytes(model_tasks,
                                                                           conv_model,
                                                                           reference):
    """Both knobs on the convolution, under seeded random power failures: every run
    finishes with TFLite Micro's outputs, and failures struck inside the rewritten
    kernel's tiles (task 0), not only at boot or in the other tasks."""
    artifact = _build(model_tasks, Knobs(depth=1, order=1, unroll=4))
    runs = []
    for seed in range(2):
        run = artifact.run(conv_model[1], power=sim.Random(seed, 20_000, 120_000))
        assert run.finished
        np.testing.assert_array_equal(run.outputs[0], reference[0])
        runs.append(run)
    points = [p for r in runs for p in r.failure_points]
    assert len(points) >= 8
    struck = set()
    for run in runs:
        for point in run.failure_points:
            before = [name for name, count in run.events if count < point]
            struck.add(before[-1] if before else "boot")
    assert "intm_task_0" in struck

"""The resident-operand knob: a tile's region of one operand copied into SRAM per tile.

One int8 pointwise convolution (8x8 pixels, 32 -> 32 channels) on msp430fr5994, whose DSP
kernels run the 2x2 micro-kernel: each input word is read once per two output channels, so
staging the tile's input pixels in SRAM trades one copy for most of its NVM reads. The
references are independent of the rewrite: TFLite Micro's outputs, the unstaged build's
outputs and QEMU's NVM access counts, and the region worked out by hand from the layout.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tvm.script import tirx as T

import tvm_intermittent as ti
from tvm_intermittent import builder, sim
from tvm_intermittent.codegen.tiling import loop_chain
from tvm_intermittent.energy.kernel_cost import kernel_features
from tvm_intermittent.reference import run_tflite_micro
from tvm_intermittent.tuning import CandidateError, Knobs, ModelTasks, environment
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.knobs import tiled_func
from tvm_intermittent.tuning.space import candidates, knob_choices
from tvm_intermittent.tuning.staging import (STAGED_PREFIX, stage_operand,
                                             stageable_parameters, staged_region)

import tflite_models

BOARD = "msp430fr5994"
CHANNELS = 32


@pytest.fixture(scope="module")
def pointwise(tmp_path_factory):
    data, inputs = tflite_models.conv2d(hw=(8, 8), cin=CHANNELS, cout=CHANNELS, kernel=(1, 1),
                                        seed=11)
    path = tmp_path_factory.mktemp("model") / "pointwise.tflite"
    path.write_bytes(data)
    return path, inputs


@pytest.fixture(scope="module")
def model_tasks(pointwise):
    return ModelTasks.of(builder.prepare(pointwise[0], "intermittent/" + BOARD))


def _staged_input(task):
    """The task's default tiling with its input staged, checked against the board."""
    stage = stageable_parameters(task.func).index("input") + 1
    knobs = dataclasses.replace(Knobs.of_plan(task.default), stage=stage)
    return knobs, check_candidate(task, knobs, ti.load_board(BOARD), environment("board"))


# ---- the rewrite (no QEMU) ----------------------------------------------------------------


def test_the_default_knob_leaves_the_kernel_as_it_was(model_tasks):
    """Records and builds without the knob read as ``stage`` 0: the kernel is not rewritten."""
    task = model_tasks.tasks[0]
    knobs = Knobs.of_plan(task.default)
    assert knobs.stage == 0 and Knobs.from_dict({"depth": knobs.depth}).stage == 0
    assert tiled_func(task.func, knobs).same_as(task.func)
    # In the design space: none, or one of the two large read-only operands.
    assert stageable_parameters(task.func) == ["input", "weights"]
    assert knob_choices(task)["stage"] == [0, 1, 2]
    assert any(k.stage == 1 for k in candidates(task))


def test_the_staged_region_is_the_tiles_input_pixels(model_tasks):
    """A tile of the pointwise kernel is one pixel pair (the chain's first loop): it reads
    the two pixels' 2 x 32 input bytes, starting at the pair's first pixel, and after the
    rewrite only the copy loop reads the input from NVM (once per word)."""
    task = model_tasks.tasks[0]
    assert task.default.depth == 1 and task.extents[0] == 8 * 8 // 2  # pixel pairs
    region = staged_region(task.func, 1, "input")
    assert region.elements == 2 * CHANNELS and region.nbytes == 2 * CHANNELS
    pair = loop_chain(task.func)[0].loop_var
    assert str(region.lo) == f"{pair.name} * {2 * CHANNELS}"
    staged = stage_operand(task.func, 1, "input")
    before = kernel_features(task.func, task.placement)
    after = kernel_features(staged, task.placement)
    # Unstaged, the micro-kernel reads each input word once per two output channels; staged,
    # the copy reads each once (and the weights are in flash).
    input_words = 8 * 8 * CHANNELS // 4
    assert before.nvm_loads == input_words * (CHANNELS // 2)
    assert after.nvm_loads == input_words


def test_staging_refuses_what_it_cannot_copy(model_tasks):
    task = model_tasks.tasks[0]
    with pytest.raises(CandidateError, match="writes it"):
        stage_operand(task.func, 1, "output")
    with pytest.raises(CandidateError, match="needs a tile loop"):
        stage_operand(task.func, 0, "input")
    with pytest.raises(CandidateError, match="no operand to stage"):
        tiled_func(task.func, Knobs(depth=1, stage=3))


# pylint: disable=no-self-argument,missing-function-docstring
@T.prim_func
def _words(x: T.Buffer((16,), "int8"), y: T.Buffer((4,), "int32")):
    for i in range(4):
        y[i] = T.call_pure_extern("int32", "intm_load_s8x4", T.address_of(x[i * 4]))


@T.prim_func
def _words_and_address(x: T.Buffer((16,), "int8"), y: T.Buffer((4,), "int32"),
                       z: T.Buffer((4,), "int32")):
    for i in range(4):
        y[i] = T.call_pure_extern("int32", "intm_load_s8x4", T.address_of(x[i * 4]))
        z[i] = T.call_extern("int32", "sum_from", T.address_of(x[i * 4]))
# pylint: enable=no-self-argument,missing-function-docstring


def test_an_address_handed_to_an_unknown_call_is_not_staged():
    # intm_load_s8x4 reads one word from its address; what sum_from reads is unknown, so
    # no region bounds the tile's reads of x.
    with pytest.raises(CandidateError, match=r"staging x: its address is passed to a call"):
        staged_region(_words_and_address, 1, "x")
    assert staged_region(_words, 1, "x").elements == 4


def test_the_sram_check_counts_the_staged_copy(model_tasks):
    """The staged input fits msp430fr5994's 8 KiB; on a board with a little less SRAM than
    the staged kernel needs (the same kernel without the copy still fits), the candidate is
    refused naming the operator, the bytes and the board."""
    task = model_tasks.tasks[0]
    knobs, candidate = _staged_input(task)
    assert candidate.func.body.seq[0].buffer.name == STAGED_PREFIX + "input"
    board = ti.load_board(BOARD)
    tiny = dataclasses.replace(board, sram_bytes=1)
    need, plain = (_sram_need(task, k, tiny) for k in (knobs, Knobs.of_plan(task.default)))
    assert need - plain == 2 * CHANNELS  # the copy of two pixels' 32 channels (stack)
    weights = dataclasses.replace(knobs, stage=stageable_parameters(task.func).index(
        "weights") + 1)
    assert _sram_need(task, weights, tiny) - plain == CHANNELS * CHANNELS  # static
    small = dataclasses.replace(board, name="small-sram", sram_bytes=need - 1)
    check_candidate(task, Knobs.of_plan(task.default), small, environment("board"))
    with pytest.raises(CandidateError) as refused:
        check_candidate(task, knobs, small, environment("board"))
    message = str(refused.value)
    assert f"operator {task.kernel}" in message and "small-sram" in message
    assert f"needs {need:,} bytes of SRAM ({2 * CHANNELS} of them its staged operand's copy)" \
        in message and f"has {need - 1:,}" in message


def _sram_need(task, knobs, board) -> int:
    """The bytes of SRAM the refusal on a board of one byte says the candidate needs."""
    with pytest.raises(CandidateError, match="bytes of SRAM") as refused:
        check_candidate(task, knobs, board, environment("board"))
    return int(str(refused.value).split("needs ")[1].split(" bytes")[0].replace(",", ""))


# ---- on QEMU --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builds(model_tasks):
    task = model_tasks.tasks[0]
    _, candidate = _staged_input(task)
    staged = builder.assemble(model_tasks.prepared, {task.kernel: (candidate.func,
                                                                    candidate.plan)})
    return model_tasks.artifact, staged


@pytest.mark.qemu
def test_a_staged_build_computes_the_reference_bytes_under_failures(pointwise, builds):
    """The staged kernel's outputs equal TFLite Micro's and the unstaged build's, without
    failures and under seeded random power failures that strike inside its tiles (where a
    re-run tile copies its region again)."""
    path, inputs = pointwise
    unstaged, staged = builds
    reference = run_tflite_micro(path.read_bytes(), inputs)
    np.testing.assert_array_equal(unstaged.run(inputs).outputs[0], reference[0])
    np.testing.assert_array_equal(staged.run(inputs).outputs[0], reference[0])
    struck = []
    for seed in range(3):
        run = staged.run(inputs, power=sim.Random(seed, 6_000, 20_000))
        assert run.finished
        np.testing.assert_array_equal(run.outputs[0], reference[0])
        for point in run.failure_points:
            before = [name for name, count in run.events if count < point]
            struck.append(before[-1] if before else "boot")
    assert len(struck) >= 10
    assert struck.count("intm_task_0") >= 5  # inside the staged kernel's tiles


@pytest.mark.qemu
def test_staging_cuts_the_nvm_reads_qemu_counts(pointwise, builds):
    """What the knob is for: QEMU's count of NVM loads falls by most of the input's re-reads
    (16 reads of each input word become one), while the instructions stay within the copy's
    cost."""
    _, inputs = pointwise
    unstaged, staged = (sim.measured_work(b.run(inputs)) for b in builds)
    input_words = 8 * 8 * CHANNELS // 4
    saved = unstaged.nvm_loads - staged.nvm_loads
    assert saved >= 0.9 * input_words * (CHANNELS // 2 - 1)
    assert staged.nvm_loads < 0.25 * unstaged.nvm_loads

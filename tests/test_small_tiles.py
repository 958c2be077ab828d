"""Smaller smallest tiles for the int8 kernels, where the default tile does not fit a charge.

Two one-operator models on msp430fr5994 (DSP):

- a FULLY_CONNECTED of 2,048 inputs and 16 units, whose default kernel computes 8 units
  per tile (about 26,000 instructions) and whose one-unit kernel needs about 6,400 per
  unit: at 1 uF one commit may take about 3,900, so the compiler builds it one unit per
  tile and the tiler splits each unit's reduction into chunks (partial sums in NVM);
- kws's depthwise shape (25 x 5 windows, 64 channels, 3x3, SAME), whose single-row tile (one
  pixel, every channel) needs about 2,600 instructions: at 0.5 uF one commit may take about
  1,900, so after the one-row step the compiler builds it in channel blocks of one pixel.

Each is checked against TFLite Micro under the capacitor's own power failures, with the
failures shown to have struck inside the rebuilt operator; the split reduction also with
an exhaustive sweep of the key points of its first chunk handoff (chunk 0 writes the partial
sum chunk 1 reads), and with a candidate of the tuner's ``reduction_chunks`` knob. A
capacitor that fits the default tile keeps the default kernel: its C is the one a build
without the rebuild step prints.
"""

import re

import numpy as np
import pytest
import tvm  # noqa: F401  first: its plugin autoload imports tvm_intermittent.transform

import tvm_intermittent as ti
from tvm_intermittent import builder, reference, sim
from tvm_intermittent.board import load_board
from tvm_intermittent.sim import campaign
from tvm_intermittent.transform.notices import (CHANNEL_BLOCK_TILES, ONE_ROW_TILES,
                                                ONE_UNIT_TILES, SPLIT_REDUCTION)
from tvm_intermittent.tuning.knobs import Knobs, plan_of, tiled_func
from tvm_intermittent.tuning.space import candidates, knob_choices
from tvm_intermittent.tuning.workload import ModelTasks

import tflite_models as tm
from failure_checks import failures_inside

pytestmark = pytest.mark.qemu

BOARD = "msp430fr5994"
DEPTH, UNITS = 2048, 16
#: One unit of the dense layer does not fit one commit: a split reduction.
DENSE_SMALL_F = 1.0e-6
#: The default 8-unit tile fits.
DENSE_LARGE_F = 10e-6
#: One pixel of the depthwise layer does not fit one commit: channel blocks.
DW_SMALL_F = 0.5e-6
#: One row's pixel fits (the one-row step only, ``test_pair_fit``).
DW_ROW_F = 1.0e-6
DENSE = "dense_s8"
DEPTHWISE = "depthwise_conv2d_s8"
#: What one commit may take, as a notice quotes it.
MISS = re.compile(r"needs about ([\d,]+) instructions, one charge of board \S+ pays [\d,]+ "
                  r"\(at most ([\d,]+) per commit\)")


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    data, inputs = tm.fully_connected(batch=1, depth=DEPTH, units=UNITS, in_scale=0.05,
                                      w_scale=0.002, out_scale=0.5, out_zp=3, seed=91)
    path = tmp_path_factory.mktemp("small_dense") / "fc.tflite"
    path.write_bytes(data)
    return path, inputs


@pytest.fixture(scope="module")
def dw_model(tmp_path_factory):
    data, inputs = tm.conv2d(depthwise=True, cin=64, hw=(25, 5), seed=81)
    path = tmp_path_factory.mktemp("small_dw") / "dw.tflite"
    path.write_bytes(data)
    return path, inputs


def _build(path, capacitor_f):
    return ti.build(path, f"intermittent/{BOARD}", name="m", capacitor_f=capacitor_f)


def _notice(artifact, path):
    [notice] = [n for n in artifact.notices if n.path == path]
    assert notice.to_dict() in artifact.manifest()["notices"]
    return notice


def _miss(reason: str) -> tuple[int, int]:
    found = MISS.search(reason)
    assert found, reason
    return tuple(int(g.replace(",", "")) for g in found.groups())


def _run_under_capacitor(artifact, path, inputs, capacitor_f, kernel, tmp_path):
    """Run under the capacitor's schedule; check TFLite Micro's outputs and that failures
    struck inside ``kernel``'s tile batches (after a batch's entry, before the next event:
    the batch's commit is the executor's, recorded as the next phase function's entry)."""
    project = artifact.export(tmp_path / "p")
    schedule = sim.power.Capacitor(load_board(BOARD), capacitor_f=capacitor_f)
    run = sim.run(project, inputs, power=schedule)
    want = reference.run_tflite_micro(path, inputs)
    assert run.finished
    np.testing.assert_array_equal(run.outputs[0], want[0])
    assert len(np.unique(want[0])) > 4, "a nearly constant output would test little"
    assert run.failures >= 5 and run.boots == run.failures + 1
    return run, failures_inside(run, artifact.manifest(), kernel)


def _without_shrink(path, capacitor_f, monkeypatch):
    """The build with the rebuild step switched off: the default kernels' C."""
    with monkeypatch.context() as patch:
        patch.setattr(builder, "_shrink_refused", lambda *args, **kwargs: {})
        return _build(path, capacitor_f)


def test_dense_too_large_is_built_one_unit_per_tile_with_a_split_reduction(dense_model,
                                                                            tmp_path):
    path, inputs = dense_model
    artifact = _build(path, DENSE_SMALL_F)
    notice = _notice(artifact, ONE_UNIT_TILES)
    assert notice.operator == DENSE and "its smallest tile (8 output units)" in notice.reason
    needed, target = _miss(notice.reason)
    assert needed > target
    plan = artifact.tiles[DENSE]
    # One unit does not fit either: every unit's reduction (512 quads of inputs) in chunks,
    # each chunk one tile committed alone, within one commit's share of the charge.
    assert plan.chunks > 1 and plan.extent == UNITS * plan.chunks
    assert plan.chunk_size * plan.chunks >= DEPTH // 4 > plan.chunk_size * (plan.chunks - 1)
    assert plan.tiles_per_commit == 1 and plan.tile_instructions <= target
    # The split says so too, with the one unit's need, which one commit cannot pay.
    split = _notice(artifact, SPLIT_REDUCTION)
    assert split.operator == DENSE
    assert f"in {plan.chunks} chunks of {plan.chunk_size} iterations" in split.reason
    unit, most = (int(g.replace(",", "")) for g in re.search(
        r"one output element needs about ([\d,]+) .* \(at most ([\d,]+) per commit\)",
        split.reason).groups())
    assert most == target and needed / 8 < unit and unit > target
    kernels = artifact.sources.files["model/kernels.c"]
    assert "_partial[2]" in kernels and "acc7" not in kernels, "not the one-unit split kernel"

    run, inside = _run_under_capacitor(artifact, path, inputs, DENSE_SMALL_F, DENSE, tmp_path)
    # The dense layer is nearly all of the work: most failures fell inside one of its
    # chunks, so a chunk after the first resumed from a committed partial sum.
    assert inside >= run.failures // 2 and inside >= plan.chunks, (inside, run.failures)


def test_dense_chunk_handoff_survives_a_failure_at_every_key_point(dense_model, tmp_path):
    """Chunk 0 of the first unit writes the partial sum that chunk 1 reads; one run per key
    point of both chunks and their commits (around every NVM store)."""
    path, inputs = dense_model
    artifact = _build(path, DENSE_SMALL_F)
    project = artifact.export(tmp_path / "p")
    continuous = sim.run(project, inputs)
    windows = campaign.phase_windows(continuous, campaign.task_table(artifact.manifest()))
    chunks = [w for w in windows if w.phase == "split"]
    assert [w.label.split()[-2:] for w in chunks[:2]] == [["chunk", "0"], ["chunk", "1"]]
    baseline = campaign.Baseline(continuous, reference.run_tflite_micro(path, inputs),
                                 artifact.power_cycle_budget)
    result = campaign.exhaustive_campaign(project, inputs, baseline.reference, chunks[:2],
                                          baseline=baseline, points=campaign.Window.key_points)
    assert result.ok, [r["problems"][:5] for r in result.details["by_window"]]
    assert result.runs >= 20 and result.failures == result.runs


def test_dense_that_fits_keeps_the_blocked_kernel(dense_model, monkeypatch):
    path, _ = dense_model
    artifact = _build(path, DENSE_LARGE_F)
    assert not [n for n in artifact.notices if n.path == ONE_UNIT_TILES]
    kernels = artifact.sources.files["model/kernels.c"]
    assert "acc7" in kernels and "_partial" not in kernels, "not the 8-unit kernel"
    assert kernels == _without_shrink(path, DENSE_LARGE_F, monkeypatch).sources.files[
        "model/kernels.c"]


def test_depthwise_pixel_too_large_is_built_in_channel_blocks(dw_model, tmp_path):
    path, inputs = dw_model
    artifact = _build(path, DW_SMALL_F)
    # The third step: pairs -> one row (its own notice) -> channel blocks of one pixel.
    assert _notice(artifact, ONE_ROW_TILES).operator == DEPTHWISE
    notice = _notice(artifact, CHANNEL_BLOCK_TILES)
    assert notice.operator == DEPTHWISE
    assert "its smallest tile (one output pixel, 64 channels)" in notice.reason
    needed, target = _miss(notice.reason)
    block = int(re.search(r"blocks of (\d+) channels", notice.reason).group(1))
    assert needed > target and 64 % block == 0 and block < 64
    plan = artifact.tiles[DEPTHWISE]
    assert plan.extent == 25 * 5 * (64 // block) and plan.tile_instructions <= target
    kernels = artifact.sources.files["model/kernels.c"]
    assert "int32_t channel_block" in kernels and "intm_smlabb(" in kernels

    run, inside = _run_under_capacitor(artifact, path, inputs, DW_SMALL_F, DEPTHWISE, tmp_path)
    assert inside >= run.failures // 2, (inside, run.failures)


def test_depthwise_row_that_fits_keeps_whole_pixels(dw_model, monkeypatch):
    path, _ = dw_model
    artifact = _build(path, DW_ROW_F)
    assert _notice(artifact, ONE_ROW_TILES).operator == DEPTHWISE
    assert not [n for n in artifact.notices if n.path == CHANNEL_BLOCK_TILES]
    kernels = artifact.sources.files["model/kernels.c"]
    assert "channel_block" not in kernels and artifact.tiles[DEPTHWISE].extent == 25 * 5
    assert kernels == _without_shrink(path, DW_ROW_F, monkeypatch).sources.files[
        "model/kernels.c"]


def test_tuner_chunk_knob_cuts_the_int8_dense_reduction(dense_model, tmp_path):
    """The tuner's ``reduction_chunks`` knob applies to the one-unit int8 kernel: the space
    lists chunk counts for it, and a candidate of 4 chunks (not the rule's 2), applied as a
    tuning log applies it, builds, and gives TFLite Micro's outputs under failures."""
    path, inputs = dense_model
    prepared = builder.prepare(path, f"intermittent/{BOARD}", capacitor_f=DENSE_SMALL_F)
    [task] = [t for t in ModelTasks.of(prepared).tasks if t.kernel == DENSE]
    assert 4 in knob_choices(task)["chunks"]
    knobs = Knobs(depth=len(task.extents), split=0, tiles_per_commit=1, chunks=4)
    assert knobs in candidates(task)
    plan = plan_of(knobs, task.func, DENSE, usable=task.usable)
    assert plan.chunks == 4 and plan.chunk_size == DEPTH // 4 // 4
    artifact = builder.assemble(prepared, {DENSE: (tiled_func(task.func, knobs), plan)})
    assert artifact.tiles[DENSE].chunks == 4
    run, inside = _run_under_capacitor(artifact, path, inputs, DENSE_SMALL_F, DENSE, tmp_path)
    assert inside >= run.failures // 2, (inside, run.failures)

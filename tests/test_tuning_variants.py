"""The kernel-variant knob: the tuner chooses among the kernels the lowering can build.

The case is the one DEPTHWISE_CONV_2D of ``test_pair_fit`` (kws's shape: 25 x 5 windows, 64
channels, 3x3, SAME) on msp430fr5994. At 1 uF the analytic rule (half of a charge) refuses
the faster kernel in vertical pairs of rows and builds one row per tile; the tuner's margin
(0.8) admits the paired tile, so variant 2 gives the pairs back. At 1.5 uF the pairs are
the default and variant 1 is one row per tile. A fully connected layer offers one output
unit per tile (variant 3). References: TFLite Micro for outputs, the capacitor's own
schedule for the failures.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tvm

import tvm_intermittent as ti
from tvm_intermittent import builder, reference, sim
from tvm_intermittent.board import load_board
from tvm_intermittent.cli import main as cli_main
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.transform.notices import ONE_ROW_TILES, ONE_UNIT_TILES
from tvm_intermittent.transform.shrink import VARIANT_ATTR
from tvm_intermittent.tuning import CandidateError, Knobs, ModelTasks, knobs_of
from tvm_intermittent.tuning.apply import SKIPPED, UNTUNED, VARIANT_BUILT, build_environment
from tvm_intermittent.tuning.constraints import TUNING_MARGIN, check_candidate
from tvm_intermittent.tuning.knobs import VARIANT_KEY
from tvm_intermittent.tuning.local import CandidateBuilder
from tvm_intermittent.tuning.measure import PROJECT_DIR
from tvm_intermittent.tuning.log import TuningLog
from tvm_intermittent.tuning import space
from tvm_intermittent.tuning.space import schedule_for, variant_candidates
from tvm_intermittent.tuning.variants import BLOCKED_UNITS, ONE_ROW, ONE_UNIT, PAIRS

import tflite_models as tm
from failure_checks import failures_inside
from depthwise_fit import (BOARD, DSP_MARK, KERNEL, LARGE_F, PAIR_MARK, SMALL_F,
                           write_model)

#: The record's measurement is from another board, so the build ranks it by prediction.
MEASURED_ON = "qemu-an386"


@pytest.fixture(scope="module")
def depthwise(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("variants"))


@pytest.fixture(scope="module")
def small(depthwise):
    """The depthwise model prepared at 1 uF and its tuning tasks."""
    prepared = builder.prepare(depthwise[0], f"intermittent/{BOARD}", capacitor_f=SMALL_F)
    return prepared, ModelTasks.of(prepared)


def _kernels_c(artifact) -> str:
    return artifact.sources.files["model/kernels.c"]


def _candidate(prepared, model, knobs):
    task = model.task(KERNEL)
    return check_candidate(task, knobs, prepared.board, build_environment(prepared),
                           static_scratch=model.static_scratch)


def test_pairs_back_at_a_small_capacitor_is_a_candidate_of_the_paired_kernel(depthwise, small,
                                                                             tmp_path):
    prepared, model = small
    task = model.task(KERNEL)
    assert list(task.variants) == [PAIRS]
    # The rule built one row per tile, and said why: the paired tile exceeds its half.
    default = _kernels_c(model.artifact)
    assert DSP_MARK in default and PAIR_MARK not in default
    [rule] = [n for n in model.artifact.notices if n.path == ONE_ROW_TILES]
    needed, rule_most = (int(g.replace(",", "")) for g in re.search(
        r"needs about ([\d,]+) .* \(at most ([\d,]+) per commit\)", rule.reason).groups())
    assert needed > rule_most
    # The tuner's margin admits one paired tile per commit: the candidate is valid ...
    knobs = Knobs(2, variant=PAIRS)
    assert knobs in variant_candidates(task.variants[PAIRS], PAIRS)
    candidate = _candidate(prepared, model, knobs)
    assert candidate.batch_cost <= candidate.batch_limit
    assert candidate.batch_limit > rule_most * TUNING_MARGIN / 0.5 * 0.9
    # ... and its kernel is the paired one: 13 pairs of rows (the last alone) x 5 columns.
    assert int(candidate.func.attrs[VARIANT_ATTR]) == PAIRS
    assert candidate.plan.extent == 13 * 5 and model.artifact.tiles[KERNEL].extent == 25 * 5
    artifact = builder.assemble(prepared, model.plans({KERNEL: (candidate.func,
                                                                 candidate.plan)}))
    assert PAIR_MARK in _kernels_c(artifact) and DSP_MARK in _kernels_c(artifact)
    assert not [n for n in artifact.notices if n.path == ONE_ROW_TILES]
    # The trace records the variant, and replaying it gives the knobs back.
    sch = schedule_for(task, knobs)
    assert knobs_of(sch) == knobs and VARIANT_KEY in str(sch.trace)
    # The tuner's builder makes the same candidate from its trace, lowered as the variant.
    built = CandidateBuilder(model, prepared.board, build_environment(prepared),
                             depthwise[1], tmp_path).build_one(sch.mod)
    assert (Path(built) / PROJECT_DIR / "model" / "kernels.c").read_text() == \
        _kernels_c(artifact)
    # Lowering the variant changed nothing of the default build.
    assert _kernels_c(builder.assemble(prepared)) == default


def test_one_row_per_tile_where_the_pairs_are_the_default(depthwise):
    prepared = builder.prepare(depthwise[0], f"intermittent/{BOARD}", capacitor_f=LARGE_F)
    model = ModelTasks.of(prepared)
    task = model.task(KERNEL)
    assert list(task.variants) == [ONE_ROW]
    assert PAIR_MARK in _kernels_c(model.artifact)
    candidate = _candidate(prepared, model, Knobs(2, variant=ONE_ROW))
    assert candidate.plan.extent == 25 * 5
    artifact = builder.assemble(prepared, model.plans({KERNEL: (candidate.func,
                                                                 candidate.plan)}))
    kernels = _kernels_c(artifact)
    assert PAIR_MARK not in kernels and DSP_MARK in kernels
    # A variant this lowering does not build for the kernel is no candidate.
    with pytest.raises(CandidateError, match="variant 2 .* is not a kernel the lowering builds"):
        _candidate(prepared, model, Knobs(2, variant=PAIRS))


@pytest.mark.qemu
def test_dense_one_unit_variant_is_lowered_with_its_own_kernel(tmp_path):
    data, inputs = tm.fully_connected(batch=1, depth=64, units=16)
    path = tmp_path / "fc.tflite"
    path.write_bytes(data)
    prepared = builder.prepare(path, "intermittent/qemu-an386")
    model = ModelTasks.of(prepared)
    [task] = [t for t in model.tasks if t.variants]
    assert list(task.variants) == [ONE_UNIT]
    blocked = model.artifact.tiles[task.kernel]
    candidate = check_candidate(task, Knobs(1, variant=ONE_UNIT), prepared.board,
                                build_environment(prepared))
    # One unit per tile: 16 tiles where the blocked kernel has fewer, larger ones.
    assert candidate.plan.extent == 16 > blocked.extent
    artifact = builder.assemble(prepared, model.plans({task.kernel: (candidate.func,
                                                                      candidate.plan)}))
    assert _kernels_c(artifact) != _kernels_c(model.artifact)
    # Its weights are laid out for it: the blocked kernel interleaves them.
    weights = artifact.sources.files["model/weights.c"]
    assert weights != model.artifact.sources.files["model/weights.c"]
    want = reference.run_tflite_micro(path, inputs)
    assert len(np.unique(want[0])) > 4
    # Under random power failures (seeded), some inside the kernel's tiles: TFLM's outputs.
    run = sim.run(artifact.export(tmp_path / "variant"), inputs,
                  power=sim.power.Random(7, 1200, 2400))
    assert run.finished and run.failures >= 3
    np.testing.assert_array_equal(run.outputs[0], want[0])
    inside = sum(1 for point in run.failure_points
                 if [n for n, c in run.events if c <= point][-1:] == ["intm_task_0"])
    assert inside >= 1, (run.failure_points, run.events)
    # The variant's kernel on the default lowering's constants computes something else:
    # the build must lower the model with the variant, not only swap its function.
    swapped = builder.assemble(prepared, model.plans({task.kernel: (
        candidate.func.without_attr(VARIANT_ATTR), candidate.plan)}))
    assert swapped.sources.files["model/weights.c"] != weights
    wrong = sim.run(swapped.export(tmp_path / "swapped"), inputs)
    assert not np.array_equal(wrong.outputs[0], want[0])


def _log_with(tmp_path, prepared, model, knobs, sch=None) -> TuningLog:
    """A tuning log holding one record of the depthwise task with ``knobs`` (as ``tune``
    commits it; ``sch``, its trace, when given), its measurement from another board, so
    that a build ranks it by the cost model's prediction."""
    task = model.task(KERNEL)
    log = TuningLog(tmp_path / "log", create=True)
    target = tvm.target.Target(f"intermittent/{BOARD}")
    log.commit(task, sch or schedule_for(task, knobs), target,
               {"run_secs": [1.0], "board": MEASURED_ON,
                "power_env": build_environment(prepared).name, "knobs": knobs.to_dict()})
    return log


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli_main([str(a) for a in argv], Environment(out, err, show_progress=False))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.qemu
def test_tuned_pairs_compile_and_match_tflite_micro_under_failures(depthwise, small,
                                                                   tmp_path):
    path, inputs = depthwise
    prepared, model = small
    log = _log_with(tmp_path, prepared, model, Knobs(2, variant=PAIRS))
    project = tmp_path / "project"
    status, out, err = _cli("compile", path, "--board", BOARD, "--capacitor", "1uF",
                            "--tuning-log", tmp_path / "log", "-o", project, "--json")
    assert status == 0, err
    # The compile output names the operator built as a variant, and from which record.
    assert f"notice: {KERNEL}: {VARIANT_BUILT}: built as DSP depthwise convolution, " \
           "vertical pairs of output rows (kernel variant 2) instead of one output row" in err
    assert f"notice: {KERNEL}: {ONE_ROW_TILES}:" not in err  # the rule's, no longer true
    manifest = json.loads(out)
    assert manifest["tuning"]["tuned"][KERNEL]["knobs"]["variant"] == PAIRS
    assert PAIR_MARK in (project / "model" / "kernels.c").read_text()
    assert manifest["tiles"][KERNEL]["extent"] == 13 * 5

    schedule = sim.power.Capacitor(load_board(BOARD), capacitor_f=SMALL_F)
    run = sim.run(project, inputs, power=schedule)
    want = reference.run_tflite_micro(path, inputs)
    assert run.finished
    np.testing.assert_array_equal(run.outputs[0], want[0])
    assert len(np.unique(want[0])) > 8, "a nearly constant output would test little"
    assert run.failures >= 10 and run.boots == run.failures + 1
    # Failures struck inside the paired kernel's tiles, not only in boots and commits.
    inside = failures_inside(run, manifest, KERNEL)
    assert inside >= run.failures // 2, (inside, run.failures)


def test_a_record_of_a_variant_not_built_here_is_skipped(depthwise, tmp_path):
    prepared = builder.prepare(depthwise[0], f"intermittent/{BOARD}", capacitor_f=LARGE_F)
    model = ModelTasks.of(prepared)
    # Pairs back on a kernel that is in pairs already: this lowering offers one row only,
    # so the trace is written by hand with the variant's number among its choices.
    task, knobs = model.task(KERNEL), Knobs(2, variant=PAIRS)
    with pytest.raises(CandidateError, match="not in its design space"):
        schedule_for(task, knobs)
    sch = tvm.s_tir.Schedule(task.mod)
    space._annotate(sch, {**space.knob_choices(task), "variant": [0, ONE_ROW, PAIRS]}, knobs)
    log = _log_with(tmp_path, prepared, model, knobs, sch)
    artifact = ti.build(depthwise[0], f"intermittent/{BOARD}", capacitor_f=LARGE_F,
                        tuning_log=log.path)
    [skipped] = [n for n in artifact.notices if n.path == SKIPPED]
    assert skipped.operator == KERNEL
    assert "variant 2 (DSP depthwise convolution, vertical pairs of output rows) is not a " \
           "kernel the lowering builds" in skipped.reason and "not applied" in skipped.reason
    assert [n.operator for n in artifact.notices if n.path == UNTUNED] == [KERNEL]
    assert not [n for n in artifact.notices if n.path == VARIANT_BUILT]
    assert artifact.manifest()["tuning"]["tuned"] == {}
    assert _kernels_c(artifact) == _kernels_c(model.artifact)


def test_records_without_the_knob_read_as_the_default_kernel(tmp_path):
    old = {"depth": 2, "split": 0, "tiles_per_commit": 4, "chunks": 1, "stage": 0,
           "order": 0, "unroll": 1}
    knobs = Knobs.from_dict(old)
    assert knobs.variant == 0 and knobs.to_dict() == old
    assert Knobs.from_dict({**old, "variant": 2}).to_dict() == {**old, "variant": 2}
    # A kernel without variants (a padded convolution) has no variant in its traces.
    data, _ = tm.conv2d(hw=(6, 6), cin=4, cout=4, seed=4)
    path = tmp_path / "conv.tflite"
    path.write_bytes(data)
    model = ModelTasks.of(builder.prepare(path, "intermittent/qemu-an386"))
    [task] = [t for t in model.tasks if t.kernel.startswith("conv2d")]
    assert task.variants == {}
    trace = str(schedule_for(task, Knobs(1)).trace)
    assert VARIANT_KEY not in trace and "intermittent.tile_depth" in trace


def test_blocked_units_back_where_the_rule_built_one_unit_per_tile(tmp_path):
    # At 0.7 uF the rule (half a charge) refuses a block of this layer's units and builds
    # one unit per tile; one block fits the tuner's margin: variant 4 gives it back.
    data, _ = tm.fully_connected(batch=1, depth=256, units=16)
    path = tmp_path / "fc.tflite"
    path.write_bytes(data)
    prepared = builder.prepare(path, "intermittent/qemu-an386", capacitor_f=0.7e-6)
    model = ModelTasks.of(prepared)
    [rule] = [n for n in model.artifact.notices if n.path == ONE_UNIT_TILES]
    task = model.task(rule.operator)
    assert list(task.variants) == [BLOCKED_UNITS]
    valid = []
    for knobs in variant_candidates(task.variants[BLOCKED_UNITS], BLOCKED_UNITS):
        try:
            valid.append(check_candidate(task, knobs, prepared.board,
                                         build_environment(prepared)))
        except CandidateError:
            continue
    [candidate] = valid  # one block per tile and per commit: the only one that fits
    assert candidate.plan.extent < model.artifact.tiles[task.kernel].extent == 16
    artifact = builder.assemble(prepared, model.plans({task.kernel: (candidate.func,
                                                                      candidate.plan)}))
    assert _kernels_c(artifact) != _kernels_c(model.artifact)
    assert artifact.sources.files["model/weights.c"] != \
        model.artifact.sources.files["model/weights.c"]
    assert not [n for n in artifact.notices if n.path == ONE_UNIT_TILES]

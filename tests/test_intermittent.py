"""Intermittent execution on QEMU: outputs under power failures equal the uninterrupted run.

Small ONNX models are compiled with a tiny capacitor so that each inference spans many
power cycles; every operator kind then gets random failures and an exhaustive sweep over
the end of its first tile batch and the commit after it. Longer campaigns (1000 random
failures per model, whole-tile sweeps) are in bench/failure_campaign.py.
"""

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.sim import campaign

import onnx_models

pytestmark = pytest.mark.qemu

#: 3 uF: a power cycle of about 24,000 instructions on the msp430fr5994 profile.
TINY_CAPACITOR = 3e-6
MODELS = ["small_cnn", "conv_depthwise", "averagepool_pad_exclude", "global_average_pool",
          "add_mul_broadcast", "concat", "gemm"]


def _tasks(artifact):
    return [(t["kernel"], t["commits"]) for t in artifact.manifest()["tasks"]]


@pytest.fixture(scope="module", params=MODELS)
def tiny_cycles(request, tmp_path_factory):
    model, inputs = onnx_models.CASES[request.param]()
    artifact = ti.build(model, "intermittent/msp430fr5994", capacitor_f=TINY_CAPACITOR)
    project = artifact.export(tmp_path_factory.mktemp(request.param) / "p")
    reference = sim.run(project, inputs).outputs
    return request.param, artifact, project, inputs, reference


def test_random_failures_give_the_uninterrupted_outputs(tiny_cycles):
    _, artifact, project, inputs, reference = tiny_cycles
    budget = artifact.power_cycle_budget
    result = campaign.random_campaign(project, inputs, reference, min_instructions=budget // 2,
                                      max_instructions=budget, min_failures=60)
    assert result.ok, result.to_dict()
    assert result.failures >= 60 or result.runs == 1


def test_a_failure_at_every_instruction_of_a_tile_end_and_commit(tiny_cycles):
    _, artifact, project, inputs, reference = tiny_cycles
    windows = campaign.task_windows(project, inputs, _tasks(artifact))
    result = campaign.exhaustive_campaign(project, inputs, reference, windows, max_points=40,
                                          max_redo=artifact.power_cycle_budget)
    assert result.ok, result.to_dict()
    assert result.runs == sum(min(40, b - a) for _, a, b in windows)


@pytest.fixture(scope="module")
def kws_msp430(tmp_path_factory):
    entry = zoo.get("kws")
    artifact = ti.build(entry.path, "intermittent/msp430fr5994")
    project = artifact.export(tmp_path_factory.mktemp("kws") / "p")
    inputs = [zoo.sample_inputs("kws", count=1)[0][0]]
    return artifact, project, inputs


def test_kws_under_the_100uF_capacitor_model(kws_msp430):
    artifact, project, inputs = kws_msp430
    board = artifact.board
    report = sim.measure_intermittent(project, inputs, sim.power.Capacitor(board), board=board)
    assert report.finished and report.outputs_match
    # The inference needs many charges of 100 uF: at least one failure per full budget.
    assert report.failures >= report.instructions_continuous // artifact.power_cycle_budget >= 5
    assert 0 < report.imo < 0.5
    assert report.recharge_seconds > 0 and report.latency_seconds > report.active_seconds


def test_restart_never_finishes_what_tiles_finish(kws_msp430):
    artifact, project, inputs = kws_msp430
    schedule = sim.power.Capacitor(artifact.board)
    restart = sim.run(project, inputs, power=schedule, mode="restart")
    assert not restart.finished and restart.stop_reason == "no_progress"
    tiles = sim.run(project, inputs, power=schedule, mode="tiles")
    assert tiles.finished


def test_random_failures_on_kws(kws_msp430):
    artifact, project, inputs = kws_msp430
    reference = sim.run(project, inputs).outputs
    budget = artifact.power_cycle_budget
    result = campaign.random_campaign(project, inputs, reference, min_instructions=budget // 2,
                                      max_instructions=budget, min_failures=100)
    assert result.ok and result.failures >= 100, result.to_dict()

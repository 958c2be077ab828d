"""Intermittent execution on QEMU: outputs under power failures equal the uninterrupted run.

Small ONNX models are compiled with a tiny capacitor so that each inference spans many
power cycles; every operator kind then gets random failures and an exhaustive sweep over
the end of its first tile batch and the commit after it. Longer campaigns (1000 random
failures per model, whole-tile sweeps) are in bench/failure_campaign.py.
"""

import subprocess
from importlib import resources

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


@pytest.mark.host_cc
def test_progress_record_ignores_other_firmware_and_torn_slots(tmp_path):
    """Host unit test of intm_progress.c: a record with another model hash reads as FRESH;
    commits alternate slots; a slot whose check word was cleared mid-commit is ignored."""
    source = r'''
#include <stdio.h>
#include <stdlib.h>
#include "intm_progress.h"
void intm_platform_log(const char* m) { fputs(m, stderr); }
void intm_platform_exit(int s) { exit(s); }
extern volatile unsigned intm_test_records[];
int main(void) {
  intm_resume_point_t at = intm_progress_restore(0xAAAAu);
  if (at.phase != INTM_PHASE_FRESH) return 10;
  intm_resume_point_t p = {INTM_PHASE_RUNNING, 3, 7};
  intm_progress_commit(&p);
  at = intm_progress_restore(0xAAAAu);
  if (at.phase != INTM_PHASE_RUNNING || at.task != 3 || at.tile != 7) return 11;
  at = intm_progress_restore(0xBBBBu);           /* new firmware: starts over */
  if (at.phase != INTM_PHASE_FRESH) return 12;
  at = intm_progress_restore(0xAAAAu);
  intm_resume_point_t q = {INTM_PHASE_RUNNING, 4, 0};
  intm_progress_commit(&q);
  at = intm_progress_restore(0xAAAAu);
  if (at.task != 4) return 13;
  /* Tear the next commit: clear its check word as the commit's first store does. */
  intm_resume_point_t r = {INTM_PHASE_DONE, 9, 9};
  intm_progress_commit(&r);
  intm_test_tear_last_commit();
  at = intm_progress_restore(0xAAAAu);
  if (at.phase != INTM_PHASE_RUNNING || at.task != 4) return 14;
  return 0;
}
'''
    source = source.replace("extern volatile unsigned intm_test_records[];",
                            "void intm_test_tear_last_commit(void);")
    (tmp_path / "t.c").write_text(source)
    runtime = resources.files("tvm_intermittent").joinpath("runtime")
    with resources.as_file(runtime) as rt:
        build = subprocess.run(
            ["cc", "-std=c99", "-O2", "-Wall", "-DINTM_PROGRESS_TESTING", f"-I{rt}", "t.c",
             str(rt / "intm_progress.c"), "-o", "t"], cwd=tmp_path, capture_output=True,
            text=True)
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0

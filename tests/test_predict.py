"""The progress simulation (``energy.predict``) against hand-worked schedules and QEMU.

The pure-Python tests follow small task tables by hand, boot by boot (the arithmetic is in
each docstring), so the expected boots and instructions are not computed by the code under
test. The QEMU tests predict with per-task costs measured by one continuous run
(``measure_costs``) and compare with failure runs of the same firmware under capacitor
schedules: boots, instructions and latency (the report's accounting) must agree within 1%,
and the power failures must fall in the same tasks. That is the simulation's own error; the
cost model's comes on top (bench/fidelity.py).
"""

import dataclasses

import pytest

from tvm_intermittent import sim, zoo
from tvm_intermittent.board import load_board
from tvm_intermittent.energy.model import Work
from tvm_intermittent.energy.predict import (
    MAX_FUTILE_BOOTS,
    Costs,
    MeasuredRuntime,
    MeasuredTask,
    PredictionError,
    error_interval,
    measure_costs,
    predict,
)
from tvm_intermittent.errors import InputError

import tvm_intermittent as ti


def _manifest(tasks):
    return {"name": "toy", "board": "qemu-an386",
            "inputs": [{"name": "x", "dtype": "int8", "shape": [1]}],
            "outputs": [{"name": "y", "dtype": "int8", "shape": [1]}],
            "tasks": [{"kernel": k, "tiles": n, "tiles_per_commit": b, "macs": 0}
                      for k, n, b in tasks]}


def _costs(tile=20, fixed=0, boot=10, restore=5, commit=5, io=10):
    tasks = (MeasuredTask(0, "conv", 4, 2, Work(instructions=tile), Work(instructions=fixed)),)
    runtime = MeasuredRuntime(Work(instructions=boot), Work(instructions=restore),
                              Work(instructions=commit), Work(instructions=io),
                              Work(instructions=io))
    return Costs(tasks, runtime, "hand")


# A board whose per-instruction energy is 1 and whose NVM costs nothing beyond instructions,
# so that a Periodic budget of N is N instructions.
BOARD = load_board("qemu-an386")


def test_a_hand_worked_schedule():
    """boot+restore = 15; input (10) + commit (5) = 15; task: 4 tiles of 20, 2 per commit:
    two batches of 45; output 10. Budget 70 per boot:

    boot 1: 15 + 15 = 30, the first batch would reach 75: fails after 70 instructions;
    boot 2: 15 + 45 = 60, the second batch would reach 105: fails after 70;
    boot 3: 15 + 45 = 60, output 10 = 70: done. 3 boots, 2 failures, 210 instructions."""
    prediction = predict(_manifest([("conv", 4, 2)]), BOARD, sim.power.Periodic(70),
                         costs=_costs())
    assert prediction.finished and prediction.schedulable
    assert (prediction.boots, prediction.failures) == (3, 2)
    assert prediction.executed.instructions == pytest.approx(210)
    assert prediction.continuous.instructions == pytest.approx(15 + 15 + 90 + 10)
    assert prediction.operators[0].failures == 2  # both failures struck the conv batches
    assert prediction.active_seconds == pytest.approx(210 / BOARD.clock_hz)
    assert prediction.recharge_seconds == 0  # a periodic schedule knows no time


def test_continuous_power_runs_once():
    prediction = predict(_manifest([("conv", 4, 2)]), BOARD, sim.power.NoFailures(),
                         costs=_costs())
    assert (prediction.boots, prediction.failures) == (1, 0)
    assert prediction.executed.instructions == pytest.approx(130)
    assert prediction.budget is None and prediction.schedulable


def test_a_batch_over_one_charge_is_named_and_never_finishes():
    """A batch needs 15 + 45 = 60 of a budget of 50: 10 over. The input (30 with the boot)
    fits, so boot 1 commits it; then every boot fails in the first batch, and the firmware's
    livelock guard stops after MAX_FUTILE_BOOTS + 1 boots without a commit."""
    prediction = predict(_manifest([("conv", 4, 2)]), BOARD, sim.power.Periodic(50),
                         costs=_costs())
    assert not prediction.schedulable and not prediction.finished
    assert prediction.stop_reason == "no_progress"
    assert prediction.boots == 1 + MAX_FUTILE_BOOTS + 1
    assert prediction.latency_seconds is None
    [block] = prediction.blocking
    assert block["operator"] == "conv" and block["task"] == 0
    assert block["need"] == pytest.approx(60) and block["over"] == pytest.approx(10)
    assert not prediction.operators[0].fits and prediction.operators[0].over == 10


def test_recharge_time_is_the_capacitors():
    """Under a capacitor, each failure adds E / P: the board's charge over its harvester
    (1 uW: too little to matter while the board computes)."""
    board = load_board("qemu-an386")
    schedule = sim.power.Capacitor(board, capacitor_f=1e-7, harvest_w=1e-6)
    charge_j = 0.5 * 1e-7 * (board.v_on ** 2 - board.v_off ** 2)
    budget = int(charge_j / (board.active_power_w / board.clock_hz))
    big = _costs(tile=budget // 4)
    prediction = predict(_manifest([("conv", 4, 2)]), board, schedule, costs=big)
    assert prediction.budget == pytest.approx(budget, abs=1)
    assert prediction.failures >= 1
    assert prediction.recharge_seconds == pytest.approx(prediction.failures * charge_j / 1e-6)
    assert prediction.latency_seconds == pytest.approx(prediction.active_seconds
                                                       + prediction.recharge_seconds)


class _PerAccess:
    """A schedule of 70 per boot that charges each NVM store one more instruction-equivalent,
    as the plugin charges ``nvm_store_cost`` per store."""

    nvm_load_cost, nvm_store_cost = 0.0, 1.0

    def budgets(self, count):
        return [70] * count

    def recharge_seconds(self, failures):
        return [0.0] * failures

    def to_dict(self):
        return {"kind": "per_access"}


def test_nvm_accesses_are_charged_to_the_budget():
    """A tile of 20 instructions and 10 NVM stores takes 30 of a boot's budget, so the
    hand-worked schedule above (budget 70) no longer fits a batch: 15 + 2 * 30 + 5 = 80."""
    costs = _costs()
    costs = dataclasses.replace(costs, tasks=(dataclasses.replace(
        costs.tasks[0], tile=Work(instructions=20, nvm_stores=10, nvm_store_bytes=40)),))
    prediction = predict(_manifest([("conv", 4, 2)]), BOARD, _PerAccess(), costs=costs)
    assert not prediction.schedulable
    assert prediction.blocking[0]["need"] == pytest.approx(80)
    # Under a schedule that charges no NVM energy (periodic), the same batch needs 60.
    periodic = predict(_manifest([("conv", 4, 2)]), BOARD, sim.power.Periodic(70),
                       costs=costs)
    assert periodic.schedulable and periodic.operators[0].need == pytest.approx(60)


def test_costs_for_another_project_are_refused():
    with pytest.raises(PredictionError, match="do not match"):
        predict(_manifest([("conv", 4, 2), ("dense", 1, 1)]), BOARD, sim.power.Periodic(70),
                costs=_costs())


def test_a_negative_deadline_is_refused():
    with pytest.raises(InputError, match="positive"):
        predict(_manifest([("conv", 4, 2)]), BOARD, sim.power.Periodic(70), costs=_costs(),
                deadline_s=-1)


# ---- Against QEMU -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    """kws on the msp430fr5994 profile, whose capacitor schedule charges every byte stored
    into NVM (the measured costs count those bytes per task)."""
    board = load_board("msp430fr5994")
    entry = zoo.get("kws")
    artifact = ti.build(entry.path, "intermittent/msp430fr5994")
    project = artifact.export(tmp_path_factory.mktemp("kws") / "p")
    inputs = [zoo.sample_inputs("kws", count=1)[0][0]]
    return board, project, artifact.manifest(), inputs, measure_costs(project, inputs)


def _task_of(run, point):
    """The task whose batch was running at instruction ``point`` of a failure run (from
    the run's own task-entry events), or None before the first."""
    entries = [(c, int(n.rsplit("_", 1)[1])) for n, c in run.events
               if n.startswith("intm_task_") and c <= point]
    return entries[-1][1] if entries else None


@pytest.mark.qemu
@pytest.mark.zoo
def test_measured_costs_add_up_to_the_continuous_run(kws):
    board, project, manifest, inputs, costs = kws
    continuous = sim.run(project, inputs)
    prediction = predict(manifest, board, sim.power.NoFailures(), costs=costs)
    # Only the first boot's restore differs (a blank record takes fewer instructions).
    assert prediction.executed.instructions == pytest.approx(continuous.instructions_total,
                                                             rel=1e-4)


@pytest.mark.qemu
@pytest.mark.zoo
@pytest.mark.parametrize("capacitor", [1e-5, 3e-5, 1e-4])
def test_prediction_matches_qemu_under_a_capacitor(kws, capacitor):
    board, project, manifest, inputs, costs = kws
    schedule = sim.power.Capacitor(board, capacitor_f=capacitor)
    measured = sim.measure_intermittent(project, inputs, schedule, board=board)
    failure_run = measured.failure_run
    assert measured.finished and measured.outputs_match
    assert measured.failures >= 5  # failures happened ...
    prediction = predict(manifest, board, schedule, costs=costs)
    assert prediction.finished and prediction.schedulable
    assert prediction.boots == pytest.approx(measured.boots, rel=0.01)
    assert prediction.executed.instructions == pytest.approx(measured.instructions_total,
                                                             rel=0.01)
    assert prediction.latency_seconds == pytest.approx(measured.latency_seconds, rel=0.01)
    # ... inside the tasks' batches, and the prediction puts them in the same tasks.
    where = {}
    for point in failure_run.failure_points:
        task = _task_of(failure_run, point)
        where[task] = where.get(task, 0) + 1
    assert None not in where
    predicted = {o.index: o.failures for o in prediction.operators if o.failures}
    # The per-tile mean moves a failure into a neighbouring task now and then.
    moved = sum(abs(predicted.get(t, 0) - where.get(t, 0)) for t in {*predicted, *where})
    assert moved / 2 <= max(2, 0.02 * measured.failures), (predicted, where)


@pytest.mark.qemu
@pytest.mark.zoo
def test_an_unschedulable_capacitor_is_predicted_to_stop(kws):
    """1 uF pays for about 8,000 instructions, less than a kws convolution tile: the
    firmware gives up (no progress), and the prediction says so and names the operator."""
    board, project, manifest, inputs, costs = kws
    schedule = sim.power.Capacitor(board, capacitor_f=1e-6)
    measured = sim.run(project, inputs, power=schedule)
    assert not measured.finished and measured.stop_reason == "no_progress"
    prediction = predict(manifest, board, schedule, costs=costs)
    assert not prediction.finished and prediction.stop_reason == "no_progress"
    assert not prediction.schedulable
    first_blocked = min(b["task"] for b in prediction.blocking if b["task"] is not None)
    assert _task_of(measured, measured.failure_points[-1]) == first_blocked
    assert prediction.boots == measured.boots


@pytest.mark.qemu
@pytest.mark.zoo
def test_prediction_matches_qemu_under_random_budgets(kws):
    """Budgets that change from boot to boot (half to all of 80,000 instructions, seeded):
    the simulation takes the schedule's own budgets in order, as the plugin does."""
    board, project, manifest, inputs, costs = kws
    schedule = sim.power.Random(3, 40_000, 80_000)
    measured = sim.run(project, inputs, power=schedule)
    assert measured.finished and measured.failures >= 50
    prediction = predict(manifest, board, schedule, costs=costs)
    assert prediction.boots == pytest.approx(measured.boots, rel=0.01)
    assert prediction.executed.instructions == pytest.approx(measured.instructions_total,
                                                             rel=0.01)


def _near_step_costs():
    """One batch of 2 tiles of 20 (``_costs`` with 2 tiles, 2 per commit)."""
    costs = _costs()
    task = dataclasses.replace(costs.tasks[0], tiles=2)
    return _manifest([("conv", 2, 2)]), dataclasses.replace(costs, tasks=(task,))


def test_a_prediction_near_a_boot_step_reports_both_sides():
    """boot+restore 15, input+commit 15, the batch 40 f + 5 (f: the kernels' true
    instructions over the predicted), output 10; 90 per boot. One boot holds it all while
    30 + 40 f + 5 + 10 <= 90, i.e. f <= 1.125: 85 instructions at f = 1. Above, boot 1
    fails in the output after 90 and boot 2 pays 15 + 10: 115 instructions at f = 1.2.
    With an error of 0.2 the step (1.125) is within it: sides [0.8, 1.125) and
    [1.125, 1.2], of probability (Phi(0.625) - Phi(-1)) and (Phi(1) - Phi(0.625)) under a
    normal error, normalised over the band: 0.843 and 0.157."""
    manifest, costs = _near_step_costs()
    nominal = predict(manifest, BOARD, sim.power.Periodic(90), costs=costs)
    assert nominal.boots == 1  # the single figure says one boot
    interval = error_interval(manifest, BOARD, sim.power.Periodic(90), costs=costs, error=0.2)
    assert interval.near_step
    low, high = interval.sides
    assert (low.boots, high.boots) == (1, 2)
    assert low.low == pytest.approx(0.8) and high.high == pytest.approx(1.2)
    assert low.high == high.low == pytest.approx(1.125, abs=1e-3)
    assert low.latency_seconds == pytest.approx(85 / BOARD.clock_hz)
    assert high.latency_seconds == pytest.approx(115 / BOARD.clock_hz)
    assert (low.probability, high.probability) == (pytest.approx(0.843, abs=2e-3),
                                                   pytest.approx(0.157, abs=2e-3))
    assert interval.likely == 0
    assert interval.latency_low_s == pytest.approx(77 / BOARD.clock_hz)  # 40 x 0.8
    assert interval.latency_high_s == pytest.approx(115 / BOARD.clock_hz)
    assert interval.contains(100 / BOARD.clock_hz) and not interval.contains(
        120 / BOARD.clock_hz)
    assert interval.distance(120 / BOARD.clock_hz) == pytest.approx(-5 / 120)
    assert interval.to_dict()["sides"][1]["boots"] == 2


def test_far_from_a_step_the_error_moves_only_the_latency():
    """At 200 per boot the whole inference (at most 85 + 8 at f = 1.2) fits one charge: one
    side, latency between 77 and 93 instructions (the batch's 40 scaled by 0.8 and 1.2)."""
    manifest, costs = _near_step_costs()
    interval = error_interval(manifest, BOARD, sim.power.Periodic(200), costs=costs, error=0.2)
    assert not interval.near_step and interval.likely == 0
    [side] = interval.sides
    assert side.boots == 1 and side.probability == pytest.approx(1.0)
    assert interval.latency_low_s == pytest.approx(77 / BOARD.clock_hz)
    assert interval.latency_high_s == pytest.approx(93 / BOARD.clock_hz)


def test_analyze_says_so_near_a_step():
    """The console text names both sides, their boots and latency, and the likelier one;
    the JSON carries the interval."""
    from tvm_intermittent.energy.analyze import Analysis, render

    manifest, costs = _near_step_costs()
    prediction = predict(manifest, BOARD, sim.power.Periodic(90), costs=costs)
    interval = error_interval(manifest, BOARD, sim.power.Periodic(90), costs=costs, error=0.2)
    memory = {"fits": True, "problems": [], "weight_bytes": 0, "sram_bytes": 0,
              "sram_available": 1, "arena_bytes": 0, "nvm_available": 1}
    analysis = Analysis(prediction, memory, [], interval)
    text = render(analysis)
    step = next(line for line in text.splitlines() if "BOOT STEP" in line)
    assert "1 boots" in step and "2 boots" in step and "more likely" in step
    assert step.index("more likely") < step.index("2 boots")  # the one-boot side is
    assert "+/-20.0 %" in text
    data = analysis.to_dict()["interval"]
    assert data["near_step"] and [s["boots"] for s in data["sides"]] == [1, 2]

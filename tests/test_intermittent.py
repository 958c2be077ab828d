"""Intermittent execution on QEMU: outputs under power failures equal the uninterrupted run,
and no committed work is lost.

Small models are compiled with a tiny capacitor so that each inference spans many power
cycles: the float ONNX models of the operator tests and int8 TFLite models (convolution,
depthwise convolution, fully connected), plus two reductions too long for one power cycle
(split into chunks). The failure points come from the firmware: one continuous run records
where every phase, tile batch and commit store falls (``campaign.phase_windows``), and each
test asserts that its sweep covered the window it claims and that every run failed exactly
where and as often as scheduled. Longer campaigns (every point of every phase of more
models, 10,000 random failures per zoo model) are in bench/failure_campaign.py.
"""

import dataclasses

import pytest

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.sim import campaign

import campaign_models

pytestmark = pytest.mark.qemu

#: 3 uF: a power cycle of about 24,000 instructions on the msp430fr5994 profile.
TINY_CAPACITOR = 3e-6
FLOAT_MODELS = ["small_cnn", "conv_depthwise", "averagepool_pad_exclude",
                "global_average_pool", "add_mul_broadcast", "concat", "gemm"]


@dataclasses.dataclass
class Compiled:
    """A model built for the tiny capacitor, its continuous run and its phase windows."""

    name: str
    artifact: object
    project: object
    inputs: list
    baseline: campaign.Baseline
    windows: list

    @property
    def continuous(self):
        return self.baseline.continuous

    def window(self, phase, label_part=""):
        return next(w for w in self.windows if w.phase == phase and label_part in w.label)


def _compile(name, tmp_path_factory) -> Compiled:
    directory = tmp_path_factory.mktemp(name)
    model, inputs = campaign_models.load(name, directory)
    artifact = ti.build(model, "intermittent/msp430fr5994", capacitor_f=TINY_CAPACITOR)
    project = artifact.export(directory / "p")
    continuous = sim.run(project, inputs)
    windows = campaign.phase_windows(continuous, campaign.task_table(artifact.manifest()))
    baseline = campaign.Baseline(continuous, continuous.outputs, artifact.power_cycle_budget)
    return Compiled(name, artifact, project, inputs, baseline, windows)


@pytest.fixture(scope="module", params=FLOAT_MODELS + list(campaign_models.INT8))
def tiny_cycles(request, tmp_path_factory):
    return _compile(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Models by name, compiled once for the tests that pick one."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _compile(name, tmp_path_factory)
        return cache[name]

    return get


def _sweep(model: Compiled, windows, points=None):
    return campaign.exhaustive_campaign(model.project, model.inputs, model.baseline.reference,
                                        windows, baseline=model.baseline, points=points)


def _swept(row) -> set:
    return {k for start, stop in row["swept"] for k in range(start, stop)}


def _assert_sweep(result, failures_per_run=1):
    """Every run finished with the uninterrupted outputs, kept its committed progress, and
    failed exactly at its scheduled points (``misplaced`` otherwise)."""
    assert result.ok, {k: v for k, v in result.to_dict().items() if k != "details"} | {
        "problems": [r["problems"][:5] for r in result.details["by_window"]]}
    assert result.runs > 0 and result.failures == failures_per_run * result.runs


def test_windows_come_from_the_firmware(built):
    """The phase windows are where the plugin saw the firmware: each batch window starts
    at an entry of its task function and ends just after the last NVM store of the next
    commit, which lies inside it, first store included."""
    model = built("small_cnn")
    run = model.continuous
    phases = [w.phase for w in model.windows]
    assert phases[0] == "boot" and phases[1] == "inputs" and phases[-1] == "outputs"
    entries = {count for name, count in run.events if name.startswith("intm_task_")}
    commit_stores = {count for name, count in run.stores if name == campaign.COMMIT}
    batches = [w for w in model.windows if w.phase == "batch"]
    kernels = [t["kernel"] for t in model.artifact.manifest()["tasks"]]
    assert {w.kernel for w in batches} == set(kernels)
    for w in batches:
        assert w.start in entries
        first, last = w.commit
        assert w.stores[0] == first and w.stores[-1] == last and set(w.stores) <= commit_stores
        assert w.start < first <= last == w.stop - 2
    boot, inputs, outputs = model.windows[0], model.windows[1], model.windows[-1]
    assert boot.start == 0 and boot.stop == inputs.start
    assert outputs.start == batches[-1].stop and outputs.stop == run.instructions_total


def test_random_failures_give_the_uninterrupted_outputs(tiny_cycles):
    """Seeded random power cycles, each at least the measured progress floor and shorter
    than the inference, so that every run fails; the failures fall exactly where the
    seeded budgets end, and committed progress is kept."""
    model = tiny_cycles
    floor = campaign.progress_floor(model.windows)
    longest = min(model.artifact.power_cycle_budget, model.continuous.instructions_total - 1)
    result = campaign.random_campaign(model.project, model.inputs, model.baseline.reference,
                                      min_instructions=floor, max_instructions=max(floor, longest),
                                      min_failures=60, baseline=model.baseline)
    assert result.ok, result.to_dict()
    assert result.failures >= 60
    assert all(f >= 1 for f in result.details["failures_per_run"])


def test_each_operator_first_and_last_batch_and_commit(tiny_cycles):
    """For every operator (float and int8 kernels), its first and last tile batch: the
    batch's first instructions, the instructions before its commit, and before and after
    each store of the commit."""
    model = tiny_cycles
    windows = [w for w in model.windows if w.phase == "batch"]
    result = _sweep(model, windows, points=campaign.Window.key_points)
    _assert_sweep(result)
    for window, row in zip(windows, result.details["by_window"]):
        assert {s for s in window.stores} | {s + 1 for s in window.stores} <= _swept(row)
        assert window.start in _swept(row)


def test_every_point_of_every_phase_of_a_float_inference(built):
    """One failure at every instruction of every phase of the smallest float inference:
    boot and restore, input load and the FRESH->RUNNING commit, its tile batch from its
    first instruction to its commit's last store, and the output write, final commit and
    exit. A failure after the final commit must not start a second inference."""
    model = built("relu")
    assert [w.phase for w in model.windows] == ["boot", "inputs", "batch", "outputs"]
    result = _sweep(model, model.windows)
    _assert_sweep(result)
    for window, row in zip(model.windows, result.details["by_window"]):
        assert _swept(row) == set(window.points)
    first, last = model.window("batch").commit
    assert {first, last + 1} <= set(model.window("batch").points)
    # Left out: only the executor's entry between the first commit and the first batch,
    # where nothing is stored into NVM.
    covered = set().union(*(_swept(r) for r in result.details["by_window"]))
    gap = set(range(model.window("inputs").stop, model.window("batch").start))
    assert set(range(model.continuous.instructions_total)) - covered == gap
    assert not gap & {count for _, count in model.continuous.stores}


def test_every_instruction_of_an_int8_commit(built):
    """An int8 kernel's commit, from its first store to just after its last, and the
    instructions leading to it."""
    model = built("int8_conv")
    window = model.window("batch", "first batch")
    first, last = window.commit
    assert last - first > 10
    result = _sweep(model, [window], points=lambda w: range(first - 16, last + 2))
    _assert_sweep(result)
    assert set(range(first, last + 2)) <= _swept(result.details["by_window"][0])


@pytest.mark.parametrize("name", list(campaign_models.SPLIT))
def test_split_reduction_chunk_handoff(built, name):
    """A reduction split into chunks (float and int8): chunk 0 writes the partial sum that
    chunk 1 reads, each commits; failures in both chunks and at every store of their
    commits."""
    model = built(name)
    (plan,) = model.artifact.tiles.values()
    assert plan.chunks > 1
    chunks = [w for w in model.windows if w.phase == "split"]
    assert [w.label.split()[-2:] for w in chunks[:2]] == [["chunk", "0"], ["chunk", "1"]]
    result = _sweep(model, chunks, points=campaign.Window.key_points)
    _assert_sweep(result)


def test_a_failure_during_the_recovery_boot_after_a_failure_in_a_commit(built):
    """Two failures per run: the first before or after each store of a commit, the second
    in the boot that recovers from it (at its first instruction, in its middle, and around
    each NVM store of the restore)."""
    model = built("int8_conv")
    windows = campaign.recovery_windows(model.continuous, commit_index=1)
    result = _sweep(model, windows, points=campaign.Window.key_points)
    _assert_sweep(result, failures_per_run=2)
    boot = model.window("boot")
    assert all(w.then[0] < len(boot) for w in windows)
    assert {0, boot.stop - 1} <= {w.then[0] for w in windows}


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
    schedule = sim.power.Capacitor(board)
    report = sim.measure_intermittent(project, inputs, schedule, board=board)
    assert report.finished and report.outputs_match
    # The inference needs many charges of 100 uF: at least one failure per full budget (a
    # charge's, with the harvest while computing).
    assert report.failures >= report.instructions_continuous // schedule.budget >= 5
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
    """An int8 zoo model under the power cycles of its own capacitor (half to all of the
    budget): every run fails where its budgets end and keeps its committed progress."""
    artifact, project, inputs = kws_msp430
    continuous = sim.run(project, inputs)
    budget = artifact.power_cycle_budget
    baseline = campaign.Baseline(continuous, continuous.outputs, budget)
    result = campaign.random_campaign(project, inputs, baseline.reference,
                                      min_instructions=budget // 2, max_instructions=budget,
                                      min_failures=100, baseline=baseline)
    assert result.ok and result.failures >= 100, result.to_dict()
    assert all(f >= 1 for f in result.details["failures_per_run"])

"""The tiling tuner: knobs and traces, hard constraints, measured tuning, logs across boards.

The QEMU tests share one small tuning run (an int8 3x3 convolution, 16x16x16, tuned for
qemu-an386 under the board's own capacitor, where one inference takes two charges). Their
references are independent of the tuner: TFLite Micro's outputs, the untuned build's, and
QEMU's instruction counts.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tvm

import tvm_intermittent as ti
from tvm_intermittent import builder, sim
from tvm_intermittent.cli import main as cli_main
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.codegen.tiling import loop_chain
from tvm_intermittent.reference import run_tflite_micro
from tvm_intermittent.tuning import (CandidateError, Knobs, ModelTasks, environment, knobs_of,
                                     plan_of)
from tvm_intermittent.tuning import local, search
from tvm_intermittent.tuning.apply import SKIPPED, UNTUNED
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.knobs import tiled_func
from tvm_intermittent.tuning.log import TuningLog
from tvm_intermittent.tuning.objective import TuningEnvironment
from tvm_intermittent.sim import environments
from tvm_intermittent.tuning.space import (RejectInvalid, candidates, design_space,
                                           schedule_for)

import tflite_models

BOARD = "qemu-an386"


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    data, inputs = tflite_models.conv2d(hw=(16, 16), cin=16, cout=16, seed=3)
    path = tmp_path_factory.mktemp("model") / "conv.tflite"
    path.write_bytes(data)
    return path, inputs


@pytest.fixture(scope="module")
def model_tasks(conv_model):
    return ModelTasks.of(builder.prepare(conv_model[0], "intermittent/" + BOARD))


# ---- knobs, traces and constraints (no QEMU) ----------------------------------------------


def test_a_trace_is_the_candidate(model_tasks):
    """The knobs survive a trip through the trace's JSON (what the database stores), and a
    split makes tiles of f iterations of the loop at the boundary."""
    task = model_tasks.tasks[0]
    assert task.extents == [16, 8, 4] and task.usable == 3  # out_y, pixel pairs, channels
    knobs = Knobs(depth=1, split=4, tiles_per_commit=2)
    sch = schedule_for(task, knobs)
    replayed = tvm.s_tir.Schedule(task.mod)
    tvm.s_tir.schedule.Trace.apply_json_to_schedule(sch.trace.as_json(), replayed)
    assert knobs_of(replayed) == knobs
    plan = plan_of(knobs, task.func, task.kernel, usable=task.usable)
    assert (plan.depth, plan.extent, plan.tiles_per_commit) == (2, 16 * 2, 2)
    chain = loop_chain(tiled_func(task.func, knobs))
    assert [int(loop.extent) for loop in chain[:2]] == [16, 2]  # out_y, then pairs by 4
    assert Knobs.from_dict(knobs.to_dict()) == knobs


@pytest.mark.parametrize("knobs, message", [
    (Knobs(depth=4), "past its 3 separable loops"),
    (Knobs(depth=1, split=3), "no proper divisor"),
    (Knobs(depth=3, split=2), "needs a separable loop"),
    (Knobs(depth=1, tiles_per_commit=32), "only 16 tiles"),
    (Knobs(depth=3, chunks=2), "reduction cannot be split"),
])
def test_knobs_that_name_no_tiling_are_refused(model_tasks, knobs, message):
    task = model_tasks.tasks[0]
    with pytest.raises(CandidateError, match=message):
        plan_of(knobs, task.func, task.kernel, usable=task.usable)
    assert knobs not in candidates(task)


def test_candidates_over_one_charge_are_rejected_before_measurement(model_tasks):
    """The same candidate fits the board's charge and not a 10 uF one; the postprocessor of
    the design space and the builder both refuse it there, the builder with the reason."""
    task = model_tasks.tasks[0]
    board = ti.load_board(BOARD)
    big = Knobs(depth=1, tiles_per_commit=2)
    check_candidate(task, big, board, environment("board"))
    tiny = TuningEnvironment("tiny", environments.from_args(capacitor="10uF"))
    with pytest.raises(CandidateError, match="per commit batch.*one power cycle"):
        check_candidate(task, big, board, tiny)
    sch = schedule_for(task, big)
    assert RejectInvalid(task, board, environment("board")).apply(sch)
    assert not RejectInvalid(task, board, tiny).apply(sch)
    built = local.CandidateBuilder(model_tasks, board, tiny, [], "/nonexistent").build(
        [tvm.s_tir.meta_schedule.builder.BuilderInput(sch.mod, tvm.target.Target("c"))])
    assert built[0].artifact_path is None and "per commit batch" in built[0].error_msg


def test_the_design_space_samples_the_knobs_and_rejects_invalid_ones(model_tasks):
    """As a MetaSchedule space generator: random decisions over the knob lists, and its
    postprocessor agrees with the constraints on every sample."""
    task = model_tasks.tasks[0]
    board, env = ti.load_board(BOARD), environment("board")
    space = design_space(task, board, env)
    space._initialize_with_tune_context(  # pylint: disable=protected-access
        search.tune_context(task.mod, tvm.target.Target("c"), task.kernel))
    postproc = space.postprocs[0]
    verdicts = set()
    for _ in range(96):  # about 1 draw in 10 is valid with the loop knobs in the space
        (sch,) = space.generate_design_space(task.mod)
        knobs = knobs_of(sch)
        try:
            check_candidate(task, knobs, board, env)
            valid = True
        except CandidateError:
            valid = False
        assert postproc.apply(sch) == valid
        verdicts.add(valid)
    assert verdicts == {True, False}  # both kinds were drawn


# ---- measured tuning (QEMU) -------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned(conv_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("tuning") / "log"
    result = search.tune(conv_model[0], board=BOARD, trials=4, log=log, workers=2,
                         cost_model="analytic")
    return log, result


@pytest.mark.qemu
def test_tuning_measures_and_logs_each_candidate(tuned):
    log, result = tuned
    assert result.measured == 4 and result.failed == 0 and result.trials == 4
    assert result.default["failures"] >= 1  # the default build loses power at least once
    row = result.rows[0]
    assert row.trials == 4 and row.measured_default_s == result.default["run_secs"][0]
    entries = TuningLog(log).measurements(kind="record", board=BOARD, power_env="board")
    assert len(entries) == 4 and len({json.dumps(e["knobs"]) for e in entries}) == 4
    for entry in entries:  # exact per-task counts from QEMU, not the model's
        assert entry["tasks"]["0"]["instructions"] > 0 and entry["boots"] >= 1
    assert "conv2d_s8" in result.table() and "end to end" in result.table()


@pytest.mark.qemu
def test_the_learned_cost_model_learns_from_each_measured_candidate(conv_model, tmp_path):
    """In a real tuning run MetaSchedule hands the cost model run times only; the learned
    model must still see each candidate's per-task counts (from the builder's artifacts)."""
    tuner = search.Tuner(conv_model[0], board=BOARD, log=tmp_path / "log", workers=2,
                         cost_model="xgb")
    result = tuner.run(2)
    assert result.measured == 2 and result.failed == 0
    assert len(tuner.cost.samples) == 2
    assert {sample.kernel for sample in tuner.cost.samples} == {"conv2d_s8"}


@pytest.mark.qemu
def test_the_log_round_trip_applies_the_best_record(tuned, conv_model):
    """compile --tuning-log: the applied plan is that of the record measured fastest."""
    log, result = tuned
    entries = TuningLog(log).measurements(kind="record", board=BOARD, power_env="board")
    best = min(entries, key=lambda e: e["run_secs"][0])
    assert best["run_secs"][0] < result.default["run_secs"][0]
    artifact = ti.build(conv_model[0], "intermittent/" + BOARD, tuning_log=log)
    task = ModelTasks.of(builder.prepare(conv_model[0], "intermittent/" + BOARD)).tasks[0]
    knobs = Knobs.from_dict(best["knobs"])
    expected = plan_of(knobs, task.func, task.kernel, usable=task.usable)
    got = artifact.tiles["conv2d_s8"]
    assert (got.depth, got.extent, got.tiles_per_commit, got.chunks) == (
        expected.depth, expected.extent, expected.tiles_per_commit, expected.chunks)
    tuning = artifact.manifest()["tuning"]
    assert tuning["log"] == str(log) and tuning["tuned"]["conv2d_s8"]["knobs"] == best["knobs"]
    assert tuning["tuned"]["conv2d_s8"]["ranked_by"] == "measured as a whole"
    renamed = ti.build(conv_model[0], "intermittent/" + BOARD, tuning_log=log, name="other")
    assert renamed.manifest()["tuning"]["tuned"] == tuning["tuned"]  # the network, not its name


@pytest.mark.qemu
def test_a_combination_measured_slower_as_a_whole_is_not_applied(tuned, conv_model, tmp_path):
    """Records measured one operator at a time need not add up; when every whole tuned
    build the log measured is no faster than the default build (here the tuner's appended by
    hand, slower, to a copy of the log), the analytic tiling is kept, with a notice."""
    import shutil  # pylint: disable=import-outside-toplevel

    log, result = tuned
    copy = tmp_path / "log"
    shutil.copytree(log, copy)
    chosen = ti.build(conv_model[0], "intermittent/" + BOARD, tuning_log=copy)
    knobs = {k: v["knobs"] for k, v in chosen.manifest()["tuning"]["tuned"].items()}
    assert knobs
    sidecar = copy / "measurements.jsonl"
    lines = [json.loads(line) for line in sidecar.read_text().splitlines()]
    for line in lines:
        if line["kind"] == "tuned":
            line["run_secs"] = [result.default["run_secs"][0] * 1.01]
    sidecar.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert any(line["kind"] == "tuned" for line in lines)
    kept = ti.build(conv_model[0], "intermittent/" + BOARD, tuning_log=copy)
    tuning = kept.manifest()["tuning"]
    assert tuning["tuned"] == {}
    assert set(tuning["untuned"].values()) == {
        "the tuned build measured fastest as a whole keeps its default"}
    assert kept.tiles["conv2d_s8"] == builder.assemble(
        builder.prepare(conv_model[0], "intermittent/" + BOARD)).tiles["conv2d_s8"]


@pytest.mark.qemu
def test_a_tuned_build_under_random_failures_gives_the_reference_outputs(conv_model,
                                                                        model_tasks):
    """A tuned plan with a split loop, under seeded random power failures that strike its
    tile batches: the outputs equal TFLite Micro's and the untuned build's, bit for bit."""
    path, inputs = conv_model
    task = model_tasks.tasks[0]
    board = ti.load_board(BOARD)
    knobs = Knobs(depth=1, split=4, tiles_per_commit=2)
    candidate = check_candidate(task, knobs, board, environment("board"))
    artifact = builder.assemble(model_tasks.prepared, {task.kernel: (candidate.func,
                                                                      candidate.plan)})
    assert artifact.tiles[task.kernel].extent == 16 * 2  # 8 pixel pairs by 4
    reference = run_tflite_micro(path.read_bytes(), inputs)
    untuned = model_tasks.artifact.run(inputs)
    np.testing.assert_array_equal(untuned.outputs[0], reference[0])
    with_failures = []
    for seed in range(3):
        run = artifact.run(inputs, power=sim.Random(seed, 20_000, 120_000))
        assert run.finished
        np.testing.assert_array_equal(run.outputs[0], reference[0])
        with_failures.append(run)
    points = [p for r in with_failures for p in r.failure_points]
    assert len(points) >= 10
    # Where they struck: the last phase or task entered before each failure.
    struck = set()
    for run in with_failures:
        for point in run.failure_points:
            before = [name for name, count in run.events if count < point]
            struck.add(before[-1] if before else "boot")
    assert "intm_task_0" in struck  # inside the tuned kernel's tile batches


@pytest.mark.qemu
def test_a_rerun_measures_nothing_already_measured(tuned, conv_model, monkeypatch):
    log, _ = tuned
    asked = []
    real = local.measure_artifact

    def counting(path):
        asked.append(json.loads((local.Path(path) / "measure.json").read_text())["knobs"])
        return real(path)

    monkeypatch.setattr(local, "measure_artifact", counting)
    again = search.tune(conv_model[0], board=BOARD, trials=4, log=log, cost_model="analytic")
    assert again.measured == 0 and asked == []
    before = {json.dumps(e["knobs"], sort_keys=True) for e in TuningLog(log).measurements()}
    # Idempotence is checked on the candidate picked, not on the whole space up-front: the
    # first pick refused there is neither built nor counted, and the next one is measured.
    checked = []

    def refuse_first(task, knobs, func, plan):
        checked.append(knobs)
        if len(checked) == 1:
            raise CandidateError(f"operator {task.kernel}: refused for the test")
        return real_check(task, knobs, func, plan)

    real_check = search.check_idempotent
    monkeypatch.setattr(search, "check_idempotent", refuse_first)
    more = search.tune(conv_model[0], board=BOARD, trials=5, log=log, cost_model="analytic")
    assert more.measured == 1 and len(asked) == 1 and len(checked) == 2
    assert Knobs.from_dict(asked[0]) == checked[1] != checked[0]
    assert json.dumps(asked[0], sort_keys=True) not in before
    logged = {Knobs.from_dict(e["knobs"]) for e in TuningLog(log).measurements()}
    assert checked[0] not in logged and checked[1] in logged
    assert more.trials == 5


@pytest.mark.qemu
def test_a_log_cut_short_by_an_interrupted_write_still_opens(tuned, tmp_path, caplog):
    """MetaSchedule's loader refuses a database whose last line is cut short; the log drops
    that line, says so, and keeps every whole record."""
    import shutil  # pylint: disable=import-outside-toplevel

    log, _ = tuned
    copy = tmp_path / "log"
    shutil.copytree(log, copy)
    records = copy / "database_tuning_record.json"
    whole = records.read_text()
    records.write_text(whole + whole.splitlines()[-1][:40])
    (copy / "measurements.jsonl").open("a").write('{"kind": "rec')
    opened = TuningLog(copy)
    assert len(opened.database) == len(whole.splitlines())
    assert records.read_text() == whole
    assert len(opened.measurements()) == len(TuningLog(log).measurements())
    assert "cut short by an interrupted write" in caplog.text


@pytest.mark.qemu
def test_reuse_on_another_cortex_m4_board_without_measuring(tuned, conv_model, monkeypatch):
    """The qemu-an386 log on apollo4-mram: every record that fits re-ranked by the cost
    model, nothing measured; the best is applied only where it beats the analytic rule on
    that board; the build runs on QEMU with the reference outputs."""
    log, _ = tuned
    path, inputs = conv_model

    def no_measurement(*args, **kwargs):
        raise AssertionError("a log applied to another board must not measure")

    monkeypatch.setattr(local, "measure_artifact", no_measurement)
    monkeypatch.setattr(search, "measure_artifact", no_measurement)
    artifact = ti.build(path, "intermittent/apollo4-mram", tuning_log=log)
    tuning = artifact.manifest()["tuning"]
    ranking = tuning["ranking"]["conv2d_s8"]
    logged = {json.dumps(e["knobs"], sort_keys=True) for e in TuningLog(log).measurements()}
    assert len(ranking) + len(tuning["skipped"]) == len(logged) >= 4
    assert all(r["ranked_by"] == "predicted" for r in ranking)
    assert [r["seconds"] for r in ranking] == sorted(r["seconds"] for r in ranking)
    if "conv2d_s8" in tuning["tuned"]:
        chosen = tuning["tuned"]["conv2d_s8"]
        assert chosen["knobs"] == ranking[0]["knobs"] and chosen["measured_on"] == [BOARD]
        assert chosen["seconds"] < chosen["default_seconds"]
    else:
        assert tuning["untuned"]["conv2d_s8"] == "the default is as fast"
        assert any(n.path == UNTUNED and "no faster" in n.reason for n in artifact.notices)
    monkeypatch.undo()
    run = artifact.run(inputs)
    np.testing.assert_array_equal(run.outputs[0], run_tflite_micro(path.read_bytes(),
                                                                   inputs)[0])


@pytest.mark.qemu
def test_a_record_that_does_not_fit_is_skipped_with_a_notice(tuned, conv_model):
    """On a 3 uF capacitor the records with the longest batches no longer fit one charge:
    each is skipped with a notice naming the operator and the numbers, never applied."""
    log, _ = tuned
    artifact = ti.build(conv_model[0], "intermittent/" + BOARD, tuning_log=log,
                        capacitor_f=3e-6)
    skipped = [n for n in artifact.notices if n.path == SKIPPED]
    assert skipped and all(n.operator == "conv2d_s8" for n in skipped)
    assert all("per commit batch" in n.reason and "not applied" in n.reason for n in skipped)
    tuning = artifact.manifest()["tuning"]
    skipped_knobs = [s["knobs"] for s in tuning["skipped"]]
    applied = tuning["tuned"].get("conv2d_s8", {}).get("knobs")
    assert applied not in skipped_knobs
    if applied is None:
        assert any(n.path == UNTUNED for n in artifact.notices)


@pytest.mark.qemu
def test_an_operator_without_a_record_keeps_the_default_and_is_named(tuned, tmp_path):
    log, _ = tuned
    data, _ = tflite_models.conv2d(hw=(8, 8), cin=4, cout=4, seed=4)
    other = tmp_path / "other.tflite"
    other.write_bytes(data)
    status, out, err = _cli("compile", str(other), "--board", BOARD, "--tuning-log", str(log),
                            "-o", str(tmp_path / "project"), "--json")
    assert status == 0, err
    assert "notice: conv2d_s8: default tiling: no record in tuning log" in err
    manifest = json.loads(out)
    assert manifest["tuning"]["untuned"] == {"conv2d_s8": "no record in the log"}


# ---- the command line ----------------------------------------------------------------------


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli_main(list(argv), Environment(out, err, show_progress=False))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("extra, message", [
    (["--trials", "-1"], "--trials must be at least 1"),
    (["--trials", "2", "--workers", "0"], "--workers must be at least 1"),
    (["--trials", "2", "--power-env", "moon"], "unknown power environment 'moon'"),
    (["--trials", "2", "--rpc-tracker", "localhost:9190"], "go together"),
    (["--trials", "2", "--board", "nope"], "nope"),
])
def test_tune_bad_input_exits_2_and_writes_nothing(conv_model, tmp_path, extra, message):
    log = tmp_path / "log"
    status, out, err = _cli("tune", str(conv_model[0]), "--log", str(log), *extra)
    assert status == 2 and message in err and "Traceback" not in err
    assert not log.exists()


def test_tune_refuses_a_log_path_that_is_no_log(conv_model, tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("x")
    for log, message in ((conv_model[0], "is a file"), (tmp_path / "stuff", "not a tuning log")):
        status, _, err = _cli("tune", str(conv_model[0]), "--trials", "1", "--log", str(log))
        assert status == 2 and message in err and "Traceback" not in err
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    status, _, err = _cli("tune", str(bad), "--trials", "1", "--log", str(tmp_path / "l"))
    assert status == 2 and not (tmp_path / "l").exists()


def test_compile_with_a_missing_tuning_log_exits_2(conv_model, tmp_path):
    status, _, err = _cli("compile", str(conv_model[0]), "--tuning-log",
                          str(tmp_path / "missing"), "-o", str(tmp_path / "p"))
    assert status == 2 and "does not exist" in err and not (tmp_path / "p").exists()

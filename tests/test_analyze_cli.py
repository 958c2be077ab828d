"""``tvm-intermittent analyze`` and ``compile --deadline`` from the command line, in-process.

Bad input is refused with exit status 2, a message and no traceback, before anything is
compiled or run. The predictions are checked against QEMU: ``--measure`` prints predicted
beside measured, and the measured figures are compared here with an independent failure
run of the same project under the same capacitor.
"""

import json

import pytest

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.board import load_board
from tvm_intermittent.energy import deadline
from tvm_intermittent.energy.predict import measure_costs

import tflite_models as tm
from test_cli import run_cli


CAPACITOR = 1e-6


@pytest.fixture(scope="module")
def conv_project(tmp_path_factory):
    """A small int8 convolution compiled for qemu-an386 and a 1 uF capacitor (7,272
    instructions per charge, about a tenth of the inference), and its model file."""
    directory = tmp_path_factory.mktemp("conv")
    model, _ = tm.conv2d(hw=(9, 7), cin=4, cout=6)
    path = directory / "conv.tflite"
    path.write_bytes(model)
    project = ti.build(path, "intermittent/qemu-an386", name="conv",
                       capacitor_f=CAPACITOR).export(directory / "p")
    return path, project


def _refused(*argv, match):
    status, out, err = run_cli("analyze", *argv, "--json")
    assert status == 2, (out, err)
    assert "Traceback" not in err and match in err, err
    assert json.loads(out)["error"]["exit_status"] == 2


def test_bad_input_is_refused(conv_project, tmp_path):
    model, project = conv_project
    _refused(str(project), "--board", "no-such-board", match="unknown board")
    _refused(str(project), "--board", "msp430fr5994", match="compiled for board")
    _refused(str(project), "--deadline", "-3", match="--deadline must be a positive")
    _refused(str(tmp_path / "missing"), match="neither a project directory nor a model file")
    _refused(str(project), "--power-env", "tinas-5mF", "--capacitor", "1mF",
             match="--power-env names a whole environment")
    _refused(str(project), "--capacitor=-1mF", match="capacitance")
    _refused(str(project), "--harvest", "lots", match="a power such as")
    _refused(str(project), "--input", str(tmp_path / "x.npy"), match="--input feeds")
    _refused(str(project), "--plot", str(tmp_path / "plot.svg"), match="PNG")
    (tmp_path / "empty").mkdir()
    _refused(str(tmp_path / "empty"), match="no model.json")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    _refused(str(bad), "--costs", "measured", match="bad.tflite")
    assert not (tmp_path / "plot.svg").exists()


def test_an_unknown_power_environment_is_refused(conv_project):
    _, project = conv_project
    status, _, err = run_cli("analyze", str(project), "--power-env", "no-such-environment")
    assert status == 2 and "Traceback" not in err and "no-such-environment" in err


def test_calibrated_costs_are_the_default(conv_project):
    """The default costs are the cost model's, never something else silently."""
    _, project = conv_project
    status, out, _ = run_cli("analyze", str(project), "--json")
    assert status == 0 and json.loads(out)["prediction"]["source"] == "calibrated"


@pytest.mark.qemu
def test_measure_agrees_with_an_independent_failure_run(conv_project):
    """--measure under the capacitor the project was compiled for: failures happen; the
    measured column is a QEMU failure run's (checked against one made here), and the
    prediction from measured costs is within one boot of it."""
    _, project = conv_project
    board = load_board("qemu-an386")
    capacitor = CAPACITOR
    status, out, err = run_cli("analyze", str(project), "--costs", "measured", "--measure",
                               "--json")
    assert status == 0, err
    data = json.loads(out)
    measured = data["measured"]
    independent = sim.measure_intermittent(
        project, measured_inputs(project), sim.power.Capacitor(board, capacitor_f=capacitor),
        board=board)
    assert independent.failures >= 5
    assert measured["finished"] and measured["outputs_match"]
    assert measured["boots"]["measured"] == independent.boots
    assert measured["latency_s"]["measured"] == pytest.approx(independent.latency_seconds)
    for key in ("boots", "instructions", "latency_s"):
        row = measured[key]
        assert row["error"] == pytest.approx((row["predicted"] - row["measured"])
                                             / row["measured"])
    # About ten boots: a commit more or less in one charge (each tile is charged its task's
    # mean NVM traffic) moves the count by one boot and the latency by one recharge.
    assert abs(measured["boots"]["predicted"] - measured["boots"]["measured"]) <= 1
    recharge = independent.recharge_seconds / independent.failures
    assert abs(measured["latency_s"]["predicted"] - measured["latency_s"]["measured"]) \
        <= 1.01 * recharge + 0.01 * independent.latency_seconds
    assert abs(measured["instructions"]["error"]) <= 0.02
    assert data["prediction"]["failures"] == data["prediction"]["boots"] - 1 > 0


def measured_inputs(project):
    """The seeded input analyze uses without --input (numpy seed 0, as `run` does)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    spec = json.loads((project / "model.json").read_text())["inputs"][0]
    rng = np.random.default_rng(0)
    info = np.iinfo(spec["dtype"])
    return [rng.integers(info.min, info.max, spec["shape"], endpoint=True,
                         dtype=spec["dtype"])]


@pytest.mark.qemu
def test_unschedulable_verdict_names_operator_and_fixes(conv_project, tmp_path):
    """1 nF pays for 7 instructions, less than boot and restore with any tile: the
    verdict is no, each operator is over, and the capacitor fix is checked by predicting
    at the capacitor it names and by running QEMU there."""
    model, project = conv_project
    status, out, err = run_cli("analyze", str(project), "--capacitor", "1nF", "--costs",
                               "measured", "--json", "--plot", str(tmp_path / "lat.png"))
    assert status == 0, err
    data = json.loads(out)
    prediction = data["prediction"]
    assert not prediction["schedulable"] and not data["ok"]
    assert prediction["stop_reason"] == "no_progress"
    assert {b["operator"] for b in prediction["blocking"]} >= {"input"}
    fix = next(f for f in data["fixes"] if f["kind"] == "capacitor")
    assert fix["goal"] == "schedulable" and fix["capacitor_f"] > 1e-9
    run = sim.run(project, measured_inputs(project),
                  power=sim.power.Capacitor(load_board("qemu-an386"),
                                            capacitor_f=fix["capacitor_f"] * 1.05))
    assert run.finished and run.failures > 0
    assert (tmp_path / "lat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.qemu
def test_a_model_file_is_compiled_for_the_environment(conv_project):
    model, _ = conv_project
    status, out, err = run_cli("analyze", str(model), "--capacitor", "1uF", "--costs",
                               "measured", "--json")
    assert status == 0, err
    prediction = json.loads(out)["prediction"]
    assert prediction["schedulable"] and prediction["finished"] and prediction["boots"] > 1


@pytest.mark.qemu
def test_deadline_search_refuses_with_the_best_latency(conv_project, tmp_path):
    """The search with a stand-in build (the same model for every candidate, the tiler's
    knobs not being in this build) and costs measured on QEMU: a deadline below the
    latency is refused, naming a best latency that QEMU confirms within a recharge; a deadline
    above it gives the build and records the choice in model.json."""
    model, _ = conv_project
    board = load_board("qemu-an386")
    schedule = sim.power.Capacitor(board, capacitor_f=CAPACITOR)

    def build(path, target, *, tiling, **kwargs):
        del tiling
        return ti.build(path, target, **kwargs)  # capacitor_f: the environment's

    def costs_for(artifact):
        project = artifact.export(tmp_path / "c", overwrite=True)
        return measure_costs(project, measured_inputs(project))

    policies = [_Policy(0.5, 1.0), _Policy(0.25, 2.0)]
    with pytest.raises(deadline.DeadlineError, match=r"predicted at ([0-9.e-]+) s") as info:
        deadline.compile_for_deadline(model, board, schedule, 1e-6, build=build,
                                      costs_for=costs_for, policies=policies)
    best = float(str(info.value).split("predicted at ")[1].split(" s")[0])
    project = tmp_path / "c"
    measured = sim.measure_intermittent(project, measured_inputs(project), schedule,
                                        board=board)
    assert measured.failures > 0
    # Within one recharge (see test_measure_agrees_with_an_independent_failure_run).
    recharge = measured.recharge_seconds / measured.failures
    assert abs(best - measured.latency_seconds) <= 1.01 * recharge + 0.01 * best
    result = deadline.compile_for_deadline(model, board, schedule, best * 2, build=build,
                                           costs_for=costs_for, policies=policies)
    result.artifact.records["deadline"] = result.record()
    manifest = json.loads((result.artifact.export(tmp_path / "chosen") / "model.json")
                          .read_text())
    assert manifest["deadline"]["deadline_s"] == best * 2
    assert manifest["deadline"]["prediction"]["latency_s"] <= best * 2
    assert manifest["deadline"]["candidates"] == 2


class _Policy:
    def __init__(self, margin, batch_scale):
        self.margin, self.batch_scale = margin, batch_scale


def test_compile_refuses_a_bad_deadline(conv_project, tmp_path):
    model, _ = conv_project
    status, _, err = run_cli("compile", str(model), "-o", str(tmp_path / "o"), "--deadline",
                             "0")
    assert status == 2 and "--deadline must be a positive" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.qemu
@pytest.mark.zoo
def test_kws_zoo_model_fits_and_meets_a_loose_deadline(tmp_path):
    entry = zoo.get("kws")
    project = ti.build(entry.path, "intermittent/msp430fr5994").export(tmp_path / "kws")
    status, out, err = run_cli("analyze", str(project), "--costs", "measured",
                               "--deadline", "100", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data["ok"] and data["prediction"]["meets_deadline"] and data["memory"]["fits"]
    assert data["fixes"] == []


@pytest.mark.qemu
def test_a_power_trace_sets_the_recharge_time(conv_project, tmp_path):
    """A trace that harvests 2 mW for 10 ms of every 190 ms (the last row lasts as long as
    the one before it): recharges follow the trace (the same Capacitor schedule as
    `run --trace`), predicted and measured alike."""
    _, project = conv_project
    trace = tmp_path / "trace.txt"
    trace.write_text("time_s power_w\n0 0.002\n0.01 0\n0.1 0\n")
    status, out, err = run_cli("analyze", str(project), "--trace", str(trace), "--costs",
                               "measured", "--measure", "--json")
    assert status == 0, err
    data = json.loads(out)
    prediction, measured = data["prediction"], data["measured"]
    assert prediction["failures"] > 0 and prediction["recharge_seconds"] > 0
    board = load_board("qemu-an386")
    per_charge = sim.power.Capacitor(board, capacitor_f=CAPACITOR).charge_energy_j / 0.002
    # Harvesting a nineteenth of the time, recharges take far longer than at a steady 2 mW.
    assert prediction["recharge_seconds"] > 5 * prediction["failures"] * per_charge
    assert abs(measured["latency_s"]["error"]) <= 0.01

"""``tune`` on bad or hopeless input, interrupted and resumed, and the measurement cap.

Every bad input must end with exit status 2, a message that says what is wrong and what would
fix it, no traceback, and no new log. Most fail before any measurement; the QEMU ones use an
int8 3x3 convolution of 8x8x4 (one charge of 0.3 uF pays for about a sixteenth of it) and
one or two candidates. References are QEMU's runs (boots, the run under failures) and the
log's files as they were before.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket

import pytest

import tvm_intermittent as ti
from tvm_intermittent.cli import main as cli_main
from tvm_intermittent.cli import tune as tune_cli
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.tuning import local, measure, search
from tvm_intermittent.tuning.log import RECORDS, SIDECAR, WORKLOADS, TuningLog
from tvm_intermittent.tuning.measure import MeasurementCap

import tflite_models

BOARD = "qemu-an386"
#: A capacitor the tiny model runs on in about 16 charges.
SMALL = "0.3uF"


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli_main(list(argv), Environment(out, err, show_progress=False))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    data, _ = tflite_models.conv2d(hw=(8, 8), cin=4, cout=4, seed=4)
    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    path.write_bytes(data)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- refused before anything is measured ---------------------------------------------------


@pytest.mark.parametrize("model, extra, message", [
    ("missing.tflite", [], "does not exist"),
    ("corrupt.onnx", [], "is not a valid ONNX file"),
    (None, ["--board", "nope"], "unknown board 'nope'; known boards"),
    (None, ["--trials", "0"], "--trials must be at least 1"),
    (None, ["--workers", "0"], "--workers must be at least 1"),
    (None, ["--capacitor", "abc"], "expected a capacitance such as 100uF"),
    (None, ["--capacitor", "0.01uF"], "use a larger capacitor"),
    (None, ["--rpc-tracker", "127.0.0.1:{port}", "--rpc-key", "k"],
     "no RPC tracker answers at 127.0.0.1:{port}"),
    (None, ["--rpc-tracker", "127.0.0.1"], "go together"),
])
def test_bad_input_exits_2_before_measuring_and_makes_no_log(tiny, tmp_path, monkeypatch,
                                                             model, extra, message):
    def no_measurement(*args, **kwargs):
        raise AssertionError("bad input must be refused before any measurement")

    monkeypatch.setattr(search, "measure_artifact", no_measurement)
    monkeypatch.setattr(local, "measure_artifact", no_measurement)
    port = _free_port()
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07 not protobuf")
    model = str(tiny) if model is None else str(tmp_path / model)
    log = tmp_path / "log"
    argv = ["--trials", "1", *[a.format(port=port) for a in extra]]
    if "--trials" in extra:
        argv = [a.format(port=port) for a in extra]
    status, out, err = _cli("tune", model, "--board", BOARD, "--log", str(log), *argv)
    assert status == 2, err
    assert message.format(port=port) in err and "Traceback" not in err
    assert out == "" and not log.exists()


def test_json_reports_the_error_on_stdout(tiny, tmp_path):
    status, out, err = _cli("tune", str(tiny), "--trials", "0", "--log", str(tmp_path / "l"),
                            "--json")
    assert status == 2 and json.loads(out)["error"]["exit_status"] == 2
    assert "--trials must be at least 1" in err


@pytest.mark.parametrize("damage, message", [
    ("file", "is a file; a tuning log is a directory"),
    ("other", "is not a tuning log"),
    ("records", "is damaged"),
    ("sidecar", "line 1 is damaged"),
])
def test_a_log_that_is_no_tuning_log_is_refused_and_left_alone(tiny, tmp_path, damage,
                                                               message):
    log = tmp_path / "log"
    if damage == "file":
        log.write_text("x")
    else:
        log.mkdir()
        if damage == "other":
            (log / "notes.txt").write_text("x")
        else:
            (log / WORKLOADS).write_text("")
            (log / RECORDS).write_text('["garbage"\n' if damage == "records" else "")
            if damage == "sidecar":
                (log / SIDECAR).write_text('{"kind": "rec\n{"kind": "default"}\n')
    before = {p.name: p.read_bytes() for p in ([log] if log.is_file() else log.iterdir())}
    status, out, err = _cli("tune", str(tiny), "--trials", "1", "--log", str(log))
    assert status == 2 and message in err and "Traceback" not in err
    after = {p.name: p.read_bytes() for p in ([log] if log.is_file() else log.iterdir())}
    assert after == before


# ---- hopeless: the default build does not finish ------------------------------------------


@pytest.mark.qemu
def test_a_default_build_that_does_not_finish_exits_2_and_leaves_no_log(tiny, tmp_path,
                                                                        monkeypatch):
    """A cap of 2 boots stops the default build's run under 0.3 uF (16 boots): nothing to
    compare candidates with, so tune says why and what to change, and removes its log."""
    monkeypatch.setattr(measure, "DEFAULT_CAP", MeasurementCap(boots_factor=0, boots_margin=2))
    log = tmp_path / "log"
    status, out, err = _cli("tune", str(tiny), "--trials", "1", "--log", str(log),
                            "--capacitor", SMALL)
    assert status == 2 and "Traceback" not in err and out == ""
    assert "the default build of tiny" in err and "could not be measured" in err
    assert "cut after 2 boots" in err and "tune for a larger capacitor" in err
    assert not log.exists()


# ---- the measurement cap -----------------------------------------------------------------


@pytest.mark.parametrize("energy, charge, boots", [
    (10.0, 3.0, 3 * 4 + 20),  # 4 charges
    (9.0, 3.0, 3 * 3 + 20),   # exactly 3
    (0.1, 3.0, 3 * 1 + 20),   # less than one charge: one
])
def test_the_cap_is_a_multiple_of_the_charges_the_energy_needs(energy, charge, boots):
    assert MeasurementCap().max_boots(energy, charge) == boots
    assert MeasurementCap().timeout(2.0, 600.0) == 20 * 2.0 + 60
    assert MeasurementCap().timeout(100.0, 600.0) == 600.0


@pytest.mark.qemu
def test_a_candidate_cut_by_the_cap_fails_with_the_reason_and_is_never_applied(
        tiny, tmp_path, monkeypatch):
    """The default build is measured under the default cap (its boots, well below the old
    fixed 10,000); the candidate under a cap of 2 boots is cut: the progress output names it
    as it fails, the log records the failure with the reason, and compile never applies it."""
    real_default = search.Tuner._default

    def default_then_tight_cap(self):
        measured = real_default(self)
        self.builder.cap = MeasurementCap(boots_factor=0, boots_margin=2)
        return measured

    monkeypatch.setattr(search.Tuner, "_default", default_then_tight_cap)
    log = tmp_path / "log"
    status, out, err = _cli("tune", str(tiny), "--trials", "1", "--log", str(log),
                            "--capacitor", SMALL, "--json", "--cost-model", "analytic")
    assert status == 0, err
    result = json.loads(out)
    assert result["measured"] == 1 and result["failed"] == 1 and result["tuned"] is None
    assert "notice: candidate failed: conv2d_s8" in err and "cut after 2 boots" in err
    default = result["default"]
    assert default["finished"] and default["boots"] <= default["max_boots"]
    assert default["max_boots"] <= 3 * default["boots"] + 20 < 10_000
    entries = TuningLog(log).measurements()
    assert len(entries) == 1 and "cut after 2 boots" in entries[0]["error"]
    assert entries[0]["run_secs"] == [search.FAILED_SECONDS]
    artifact = ti.build(tiny, "intermittent/" + BOARD, tuning_log=log, capacitor_f=0.3e-6)
    assert artifact.manifest()["tuning"]["tuned"] == {}


# ---- interrupted and resumed ---------------------------------------------------------------


@pytest.mark.qemu
def test_ctrl_c_keeps_the_log_resumable(tiny, tmp_path, monkeypatch):
    """A Ctrl-C while the first candidate is measured: that measurement ends and is logged,
    tune exits 130 saying what the log keeps; a rerun with the same command (after a torn
    last line, as a write cut by power loss leaves) says so and measures only the rest."""
    log = tmp_path / "log"
    real = local.measure_artifact
    asked = []

    def interrupting(path):
        asked.append(json.loads((local.Path(path) / "measure.json").read_text())["knobs"])
        if len(asked) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it
        return real(path)

    monkeypatch.setattr(local, "measure_artifact", interrupting)
    status, out, err = _cli("tune", str(tiny), "--trials", "2", "--log", str(log),
                            "--cost-model", "analytic")
    assert status == 130, err
    assert "interrupting: the measurements in flight are logged" in err
    assert "interrupted; the log" in err and "keeps the 1 candidate(s)" in err
    assert "run the same command again to continue" in err and "Traceback" not in err
    assert len(asked) == 1
    kept = TuningLog(log).measurements()
    assert [e["knobs"] for e in kept] == asked and "error" not in kept[0]

    with (log / SIDECAR).open("a") as sidecar:
        sidecar.write('{"kind": "record", "kno')
    status, out, err = _cli("tune", str(tiny), "--trials", "2", "--log", str(log), "--json",
                            "--cost-model", "analytic")
    assert status == 0, err
    assert "was cut short by an interrupted write; dropped it" in err
    assert "resuming with 1 candidate(s) of this model" in err
    assert json.loads(out)["measured"] == 1 and len(asked) == 2 and asked[1] != asked[0]
    assert len(TuningLog(log).measurements()) == 2

    # Another model tuned into this log: said before anything is measured, records kept.
    data, _ = tflite_models.conv2d(hw=(6, 6), cin=4, cout=8, seed=5)
    other = tmp_path / "other.tflite"
    other.write_bytes(data)
    before = (log / SIDECAR).read_text()
    tuner = search.Tuner(other, board=BOARD, log=log, cost_model="analytic")
    notes = tune_cli._log_notices(tuner, argparse.Namespace(log=str(log), trials=1))
    assert any("holds the records of 1 other model(s); this run adds other's beside them"
               in n for n in notes)
    assert (log / SIDECAR).read_text() == before


@pytest.mark.qemu
def test_a_tracker_that_goes_away_stops_the_run_without_logging_a_failure(tiny, tmp_path):
    """No server measured the candidate (here: no tracker listens any more): the run stops
    with what to start, and the candidate is not logged as failed, so a rerun measures it."""
    from tvm_intermittent.tuning.rpc import rpc_runner  # pylint: disable=import-outside-toplevel

    log = tmp_path / "log"
    tuner = search.Tuner(tiny, board=BOARD, log=log, cost_model="analytic",
                         runner=rpc_runner("127.0.0.1", _free_port(), "k"))
    with pytest.raises(search.MeasurementUnavailableError,
                       match="no RPC tracker answers.*tuning stopped.*keeps the candidates"):
        tuner.run(1)
    kept = TuningLog(log)
    assert kept.measurements() == [] and len(kept.measurements(kind="default")) == 1


def test_a_log_another_tune_run_is_writing_is_refused(tiny, tmp_path):
    """Two runs on one log would measure the same candidates twice: the second is refused,
    naming the process that holds the log, and the log is left as it was."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    log = tmp_path / "log"
    log.mkdir()
    for name in (WORKLOADS, RECORDS):
        (log / name).write_text("")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tvm_intermittent.tuning.log import TuningLog; "
         f"TuningLog({str(log)!r}).lock(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        status, out, err = _cli("tune", str(tiny), "--trials", "1", "--log", str(log))
        assert status == 2 and "Traceback" not in err
        assert f"is being written by another tune run (process {holder.pid})" in err
        assert (log / RECORDS).read_text() == "" and not (log / SIDECAR).exists()
    finally:
        holder.communicate("")

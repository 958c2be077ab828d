"""Measurement through TVM's RPC tracker: a tracker and two QEMU-backed servers on loopback.

The servers are started as users start them (``python -m
tvm_intermittent.tuning.rpc_server``), under one key; the runner's results must be those of
a local measurement of the same artifacts, count for count, and both servers must have
measured. The error paths (no server under the key, no tracker, a measurement that fails on
the server, one that outlasts the timeout) must come back as runner errors that say what to
do, quickly, never as a hang.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tvm_intermittent.errors import InputError
from tvm_intermittent.tuning import rpc
from tvm_intermittent.tuning.measure import MEASURE_FILE, MEASURED_FILE, measure_artifact
from tvm_intermittent.tuning.rpc_server import main as server_main

import tuning_candidates

KEY = "intm-test-m4"
SERVERS = ("server-a", "server-b")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(args, log):
    # Own session: the tracker and the servers fork workers that stop_process_tree ends.
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=log,
                            start_new_session=True)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """``(host, port)`` of a tracker with two measurement servers under KEY."""
    logs = tmp_path_factory.mktemp("rpc-logs")
    port = _free_port()
    procs = []
    try:
        with open(logs / "tracker.log", "w") as log:
            procs.append(_spawn(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                                 str(port), "--port-end", str(port + 1), "--silent"], log))
        for number, name in enumerate(SERVERS):
            first = _free_port()
            with open(logs / f"{name}.log", "w") as log:
                procs.append(_spawn(["tvm_intermittent.tuning.rpc_server", "--tracker",
                                     f"127.0.0.1:{port}", "--key", KEY, "--host", "127.0.0.1",
                                     "--port", str(first), "--port-end", str(first + 20),
                                     "--name", name], log))
        deadline = time.monotonic() + 60
        while True:
            try:
                if rpc.servers_under("127.0.0.1", port, KEY)[0] == len(SERVERS):
                    break
            except (RuntimeError, OSError):
                pass
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                text = "\n".join(f"{f.name}: {f.read_text()[-2000:]}" for f in logs.iterdir())
                pytest.fail(f"the tracker and its two servers did not come up:\n{text}")
            time.sleep(0.5)
        yield "127.0.0.1", port
    finally:
        for proc in procs:
            rpc.stop_process_tree(proc)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Four built candidates of one int8 convolution on qemu-an386 under its own capacitor."""
    root = tmp_path_factory.mktemp("rpc-candidates")
    model, inputs = tuning_candidates.conv_model(root)
    tasks, board, env = tuning_candidates.prepare(model, "qemu-an386", "board")
    task = tasks.tasks[0]
    valid = tuning_candidates.valid_knobs(tasks, task, board, env)
    picks = valid[::max(1, len(valid) // 4)][:4]
    return tuning_candidates.build_artifacts(tasks, task, board, env, inputs, picks,
                                             root / "built")


def _inputs(paths):
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    return [ms.runner.RunnerInput(str(p), "cpu", []) for p in paths]


@pytest.mark.qemu
def test_two_servers_measure_as_a_local_run(tracker, artifacts, tmp_path):
    host, port = tracker
    runner = rpc.rpc_runner(host, port, KEY, workers=2, timeout=120)
    results = [f.result() for f in runner.run(_inputs(artifacts))]
    assert [r.error_msg for r in results] == [None] * len(artifacts)
    remote = [json.loads((Path(p) / MEASURED_FILE).read_text())
              for p in artifacts]
    # Both servers measured (two workers, two servers: the tracker gives each its own).
    assert {m["server"] for m in remote} == set(SERVERS)
    # The failures happened: each candidate ran under its capacitor and lost power.
    assert all(m["failures"] >= 1 and m["boots"] == m["failures"] + 1 for m in remote)
    for path, result, measured in zip(artifacts, results, remote):
        copy = tmp_path / f"local-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(path, copy, ignore=shutil.ignore_patterns(MEASURED_FILE, "build"))
        local = measure_artifact(copy)
        for key in ("instructions", "continuous_instructions", "boots", "failures", "tasks",
                    "run_secs", "kernel", "knobs"):
            assert measured[key] == local[key], (path, key)
        assert [float(s) for s in result.run_secs] == local["run_secs"]


@pytest.mark.qemu
def test_no_server_under_the_key_is_an_error_at_once(tracker, artifacts):
    host, port = tracker
    started = time.monotonic()
    runner = rpc.rpc_runner(host, port, "no-such-key", timeout=60)
    (result,) = [f.result() for f in runner.run(_inputs(artifacts[:1]))]
    assert time.monotonic() - started < 15
    assert result.run_secs is None
    assert "no measurement server is registered under key 'no-such-key'" in result.error_msg
    assert repr(KEY) in result.error_msg  # the keys the tracker knows
    assert "tvm_intermittent.tuning.rpc_server --tracker" in result.error_msg


def test_no_tracker_is_an_error_at_once(tmp_path):
    spec = tmp_path / MEASURE_FILE
    spec.write_text("{}")
    started = time.monotonic()
    runner = rpc.rpc_runner("127.0.0.1", _free_port(), KEY, timeout=60)
    (result,) = [f.result() for f in runner.run(_inputs([tmp_path]))]
    assert time.monotonic() - started < 15
    assert "no RPC tracker answers at 127.0.0.1:" in result.error_msg
    assert "python -m tvm.exec.rpc_tracker" in result.error_msg


@pytest.mark.qemu
def test_a_failed_measurement_reports_the_server_and_its_reason(tracker, tmp_path):
    host, port = tracker
    (tmp_path / MEASURE_FILE).write_text('{"board": "qemu-an386"}')  # no inputs, no project
    runner = rpc.rpc_runner(host, port, KEY, timeout=60)
    (result,) = [f.result() for f in runner.run(_inputs([tmp_path]))]
    assert result.run_secs is None
    assert result.error_msg.startswith("RPCMeasureRunner: server server-")
    assert "is not a tuning candidate's artifact" in result.error_msg
    assert not (tmp_path / MEASURED_FILE).exists()


@pytest.mark.qemu
def test_a_measurement_past_the_timeout_is_ended(tracker, artifacts):
    host, port = tracker
    started = time.monotonic()
    runner = rpc.rpc_runner(host, port, KEY, timeout=0.5)
    (result,) = [f.result() for f in runner.run(_inputs(artifacts[:1]))]
    assert time.monotonic() - started < 30
    assert result.run_secs is None
    assert "took longer than 0.5 s" in result.error_msg


def test_packed_artifact_leaves_build_products_and_refuses_escapes(tmp_path):
    art = tmp_path / "art"
    (art / "project" / "build" / "qemu").mkdir(parents=True)
    (art / MEASURE_FILE).write_text("{}")
    (art / "project" / "model.json").write_text("{}")
    (art / "project" / "build" / "qemu" / "firmware.elf").write_bytes(b"\x7fELF")
    (art / MEASURED_FILE).write_text("{}")
    names = tarfile.open(fileobj=io.BytesIO(rpc.pack_artifact(art))).getnames()
    assert sorted(names) == [MEASURE_FILE, "project/model.json"]
    out = tmp_path / "out"
    out.mkdir()
    rpc.unpack_artifact(rpc.pack_artifact(art), out)
    assert (out / "project" / "model.json").is_file()

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as archive:
        info = tarfile.TarInfo("../escaped")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"no"))
    with pytest.raises(tarfile.TarError):
        rpc.unpack_artifact(evil.getvalue(), out)
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(InputError, match="not a tuning candidate's artifact"):
        rpc.pack_artifact(tmp_path / "out" / "project")


@pytest.mark.parametrize("argv, message", [
    (["--tracker", "localhost", "--key", "k"], "HOST:PORT"),
    (["--tracker", "127.0.0.1:9190", "--key", " "], "--key must not be empty"),
    (["--tracker", "127.0.0.1:9190", "--key", "k", "--port", "9300", "--port-end", "9200"],
     "name no ports"),
])
def test_server_bad_options_exit_2(argv, message, capsys):
    assert server_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

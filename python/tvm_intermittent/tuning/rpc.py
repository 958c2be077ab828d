"""Measurement of tuning candidates through TVM's RPC tracker, on QEMU-backed servers.

Many hosts can measure candidates at once: each runs an RPC server
(:mod:`.rpc_server`, ``python -m tvm_intermittent.tuning.rpc_server --tracker HOST:PORT
--key KEY``) that registers under a key with a tracker (``python -m tvm.exec.rpc_tracker``),
and the tuner's runner (:func:`rpc_runner`) asks the tracker for a free server under that
key for each candidate.

MetaSchedule's own ``RPCRunner`` does not fit: it uploads a shared library, allocates its
arguments on the remote device and calls a time evaluator, and a tuning candidate here is a
C project with the firmware of a whole model, measured by exact instruction counts on QEMU.
So :class:`RPCMeasureRunner` is a ``PyRunner`` that speaks the tracker's protocol itself
(``tvm.rpc.connect_tracker``, ``TrackerSession.request``): it packs the builder's artifact
directory into a tar archive (:func:`pack_artifact`), calls the server's global function
``tvm_intermittent.measure_artifact`` (:data:`MEASURE_FUNCTION`) with the archive's bytes,
and gets back the JSON that :func:`.measure.measure_artifact` returned there, run on a copy
of the directory in a temporary directory of the server. Only the artifact travels, and
the measurement depends on nothing else: a remote measurement equals a local one of the
same artifact, instruction for instruction, on hosts with the same cross compiler and QEMU.

Failures come back as ``RunnerResult(error_msg=...)`` saying what to do: no tracker at the
address, no server under the key (the message names the keys the tracker knows), no free
server within the timeout, a server that is a plain TVM RPC server, a connection that broke,
a measurement that takes longer than the timeout (the server ends the session), and any
error of the measurement itself (the server's message). The last two are the candidate's
own, and the tuner logs it as failed and goes on; the others (:class:`ServerUnavailableError`)
say nothing of the candidate, so the tuner stops with the message instead, its log keeping
what was measured, and a rerun continues from there. The cap of a candidate's run under
failures (:class:`.measure.MeasurementCap`) travels in its ``measure.json``, so a server
stops a hopeless candidate where a local worker would.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import os
import socket
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from ..errors import InputError, IntermittentError
from .local import MeasurementFuture
from .measure import MEASURE_FILE, MEASURED_FILE, PROJECT_DIR

logger = logging.getLogger(__name__)

#: The global function a measurement server registers: packed artifact bytes -> JSON text.
MEASURE_FUNCTION = "tvm_intermittent.measure_artifact"
#: Seconds one measurement may take on a server before its session is ended.
DEFAULT_TIMEOUT = 600.0
#: Seconds to reach the tracker before it counts as absent.
CONNECT_TIMEOUT = 10.0
#: What a measurement leaves in an artifact directory; not sent (the server makes its own).
_PRODUCTS = (MEASURED_FILE, f"{PROJECT_DIR}/build")


class RemoteMeasureError(IntermittentError, RuntimeError):
    """A measurement through the tracker did not happen or failed; the message says where
    (tracker, key, server) and what would fix it."""

    #: Whether the candidate itself failed (its measurement on a server), rather than the
    #: way to a server (:class:`ServerUnavailableError`).
    candidate_fault = True


class ServerUnavailableError(RemoteMeasureError):
    """No server measured the candidate: no tracker at the address, no server under the
    key, none free in time, a plain TVM RPC server, or a connection that broke. Nothing is
    known of the candidate, so the tuner stops rather than log it as failed."""

    candidate_fault = False


# ---- The artifact on the wire ------------------------------------------------------------


def pack_artifact(path) -> bytes:
    """The artifact directory ``path`` as the bytes of an uncompressed tar archive.

    Build products (``project/build``) and an earlier ``measured.json`` stay behind: the
    server builds the firmware from the sources, as a local measurement does.

    Raises
    ------
    InputError
        ``path`` is no candidate artifact (no ``measure.json``).
    """
    root = Path(path)
    if not (root / MEASURE_FILE).is_file():
        raise InputError(f"{str(root)!r} is not a tuning candidate's artifact (no "
                         f"{MEASURE_FILE}); the tuner's builder makes them")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for item in sorted(root.rglob("*")):
            relative = item.relative_to(root).as_posix()
            if any(relative == p or relative.startswith(p + "/") for p in _PRODUCTS):
                continue
            if item.is_file():
                archive.add(item, arcname=relative, recursive=False)
    return buffer.getvalue()


def unpack_artifact(data: bytes, directory) -> Path:
    """Unpack :func:`pack_artifact`'s bytes into ``directory`` (which must exist).

    The archive is extracted with tarfile's ``data`` filter: no member may leave
    ``directory`` (absolute paths, ``..``, links outside) or be a device file, since the
    bytes come from the network.
    """
    target = Path(directory)
    with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:") as archive:
        archive.extractall(target, filter="data")
    if not (target / MEASURE_FILE).is_file():
        raise InputError(f"the packed artifact has no {MEASURE_FILE}")
    return target


# ---- The server side ---------------------------------------------------------------------


def serve_measurement(data, server: str = "") -> str:
    """Measure a packed artifact here: unpack it into a temporary directory, run
    :func:`.measure.measure_artifact` there and return its result as JSON text.

    The reply carries ``server`` (this server's name) so that a client can tell who
    measured. A measurement that fails returns ``{"error": ..., "server": ...}`` instead of
    raising: the client turns it into a runner error and the tuning goes on.
    """
    from .measure import measure_artifact  # pylint: disable=import-outside-toplevel

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="intm-rpc-") as tmp:
        try:
            directory = unpack_artifact(data, tmp)
            result = measure_artifact(directory)
        except Exception as err:  # pylint: disable=broad-except
            # Every failure goes back to the client, which reports it as this candidate's
            # runner error; the server itself stays up for the next one.
            logger.warning("measurement failed: %s: %s", type(err).__name__, err)
            return json.dumps({"error": f"{type(err).__name__}: {err}", "server": server})
    result["server"] = server
    result["server_seconds"] = time.perf_counter() - started
    return json.dumps(result)


def register_measure_function(server: str = "") -> None:
    """Register :data:`MEASURE_FUNCTION` in this process (an RPC server's)."""
    import tvm_ffi  # pylint: disable=import-outside-toplevel

    def measure(data) -> str:
        return serve_measurement(data, server)

    tvm_ffi.register_global_func(MEASURE_FUNCTION, measure, override=True)


def _server_init(server: str) -> None:
    """Run in the RPC server's process before it serves (``server_init_callback``)."""
    # Imported by name so that the callback pickles as a reference to this module.
    from tvm_intermittent.tuning import rpc  # pylint: disable=import-outside-toplevel

    rpc.register_measure_function(server)


def default_server_name(port: int | None = None) -> str:
    """``host:pid`` of this process (and the port when known): unique on a tracker."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}:{port}" if port else name


def start_server(tracker: tuple[str, int], key: str, *, host: str = "127.0.0.1",
                 port: int = 9090, port_end: int = 9199, name: str | None = None):
    """Start a QEMU-backed measurement server registered under ``key`` with ``tracker``.

    It is TVM's ``tvm.rpc.Server`` (the one ``python -m tvm.exec.rpc_server`` starts) with
    :data:`MEASURE_FUNCTION` registered in its process; each session it serves is a fresh
    process forked from there, with its own working directory.

    Parameters
    ----------
    tracker : (str, int)
        The tracker's address.
    key : str
        The key clients request servers by.
    host, port, port_end : optional
        Where the server listens: the first free port in ``[port, port_end)``.
    name : str, optional
        How replies name this server (default: ``host:pid``).

    Returns
    -------
    tvm.rpc.Server
        ``.port`` is its port; ``.terminate()`` stops it.
    """
    from functools import partial  # pylint: disable=import-outside-toplevel

    from tvm import rpc  # pylint: disable=import-outside-toplevel

    name = name or default_server_name()
    return rpc.Server(host, port=port, port_end=port_end, key=key,
                      tracker_addr=(tracker[0], int(tracker[1])),
                      server_init_callback=partial(_server_init, name), silent=True)


# ---- The client side ---------------------------------------------------------------------


def parse_tracker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``, or an InputError saying what is wrong."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"an RPC tracker is given as HOST:PORT (such as 127.0.0.1:9190), "
                         f"got {text!r}")
    return host, int(port)


def _reach(host: str, port: int, timeout: float) -> None:
    """Fail at once when nothing listens at the tracker's address (TVM's own client
    retries a refused connection for a minute)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ServerUnavailableError(
            f"no RPC tracker answers at {host}:{port} ({err.strerror or err}); start one "
            f"with `python -m tvm.exec.rpc_tracker --host {host} --port {port}`") from err


def servers_under(host: str, port: int, key: str,
                  timeout: float = CONNECT_TIMEOUT) -> tuple[int, list[str]]:
    """``(servers registered under key, every key the tracker knows)`` at ``host:port``."""
    from tvm import rpc  # pylint: disable=import-outside-toplevel

    _reach(host, port, timeout)
    tracker = rpc.connect_tracker(host, port)
    try:
        summary = tracker.summary()
    finally:
        tracker.close()
    keys = [item["key"].split(":", 1)[-1] for item in summary.get("server_info", [])]
    return keys.count(key), sorted(set(keys))


def _no_server_message(host: str, port: int, key: str, keys: list[str]) -> str:
    known = ", ".join(repr(k) for k in keys) if keys else "none"
    return (f"no measurement server is registered under key {key!r} at the RPC tracker "
            f"{host}:{port} (keys it knows: {known}); start one with `python -m "
            f"tvm_intermittent.tuning.rpc_server --tracker {host}:{port} --key {key}`")


@derived_object
class RPCMeasureRunner(ms.runner.PyRunner):
    """Measures candidate artifacts on QEMU-backed servers under ``key`` at a tracker.

    Each artifact is sent to a free server under the key (the tracker picks it; requests
    of equal ``priority`` are served in order), ``workers`` at a time; the server's result,
    the dict of :func:`.measure.measure_artifact` with the ``server`` that measured it, is
    written to the artifact directory as ``measured.json``, as a local runner leaves it.

    Parameters
    ----------
    host, port : str, int
        The tracker.
    key : str
        The servers' key.
    priority : int
        Of the requests to the tracker (higher is served first).
    timeout : float
        Seconds one measurement may take on the server (its session is ended after that),
        and seconds to wait for a free server.
    workers : int, optional
        Measurements in flight at once (default: the servers under the key when the first
        batch is run, at least 1).
    """

    def __init__(self, host: str, port: int, key: str, *, priority: int = 1,
                 timeout: float = DEFAULT_TIMEOUT, workers: int | None = None):
        super().__init__()
        if not key:
            raise InputError("an RPC key is needed to request measurement servers "
                             "(--rpc-key, the --key the servers were started with)")
        if not timeout > 0:
            raise InputError(f"the RPC timeout must be a positive number of seconds, got "
                             f"{timeout!r}")
        self.host, self.port, self.key = str(host), int(port), str(key)
        self.priority, self.timeout = int(priority), float(timeout)
        self.workers = None if workers is None else max(1, int(workers))
        self._pool = None
        self._lock = threading.Lock()

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                workers = self.workers
                if workers is None:
                    try:
                        workers = max(1, servers_under(self.host, self.port, self.key)[0])
                    except (RemoteMeasureError, RuntimeError, OSError):
                        workers = 1  # each measurement reports the tracker's absence
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    workers, thread_name_prefix="intm-rpc")
            return self._pool

    def run(self, runner_inputs):
        pool = self._executor()
        return [MeasurementFuture(pool.submit(self.measure, item.artifact_path),
                                  "RPCMeasureRunner")
                for item in runner_inputs]

    def cancel(self) -> None:
        """Drop the measurements not sent yet (an interrupted tuning run)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def check(self) -> None:
        """Refuse at once a tracker that does not answer or has no server under the key,
        before anything is built.

        Raises
        ------
        ServerUnavailableError
            With what to start (the tracker, or a server under the key).
        """
        count, keys = self._servers()
        if count == 0:
            raise ServerUnavailableError(_no_server_message(self.host, self.port, self.key,
                                                            keys))

    # ---- one measurement ---------------------------------------------------------------

    def measure(self, artifact_path) -> dict:
        """Measure one artifact on a server under the key; its result (also written to
        ``<artifact>/measured.json``).

        Raises
        ------
        RemoteMeasureError
            With what went wrong and where (see the module docstring).
        """
        data = pack_artifact(artifact_path)
        count, keys = self._servers()
        if count == 0:
            raise ServerUnavailableError(_no_server_message(self.host, self.port, self.key, keys))
        session = self._request()
        try:
            try:
                function = session.get_function(MEASURE_FUNCTION)
            except (AttributeError, RuntimeError) as err:
                raise ServerUnavailableError(
                    f"the server under key {self.key!r} has no {MEASURE_FUNCTION} (a plain TVM "
                    "RPC server?); start measurement servers with `python -m "
                    "tvm_intermittent.tuning.rpc_server`") from err
            try:
                reply = json.loads(str(function(bytearray(data))))
            except RuntimeError as err:
                message, timed_out = self._call_failed(err)
                # A measurement that outlived the session is the candidate's; a connection
                # that broke says nothing of it.
                error = RemoteMeasureError if timed_out else ServerUnavailableError
                raise error(message) from err
        finally:
            del session  # closes the connection; the server re-registers as free
        if "error" in reply:
            raise RemoteMeasureError(f"server {reply.get('server') or '?'} under key "
                                     f"{self.key!r}: {reply['error']}")
        out = Path(artifact_path) / MEASURED_FILE
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(reply, indent=2) + "\n")
        os.replace(tmp, out)  # never a half-written measured.json
        return reply

    def _servers(self) -> tuple[int, list[str]]:
        try:
            return servers_under(self.host, self.port, self.key)
        except (RuntimeError, OSError) as err:
            if isinstance(err, RemoteMeasureError):
                raise
            raise ServerUnavailableError(f"the RPC tracker at {self.host}:{self.port} did not "
                                     f"answer a summary: {err}") from err

    def _request(self):
        """A session with a free server under the key, or an error after ``timeout``.

        ``TrackerSession.request`` waits as long as no server is free; it runs in a thread
        of its own, and when the timeout passes its socket is shut down, which ends the
        wait (and withdraws the request from the tracker's queue).
        """
        from tvm import rpc  # pylint: disable=import-outside-toplevel

        _reach(self.host, self.port, CONNECT_TIMEOUT)
        tracker = rpc.connect_tracker(self.host, self.port)
        outcome = {}

        def request():
            try:
                outcome["session"] = tracker.request(
                    self.key, priority=self.priority, session_timeout=self.timeout,
                    max_retry=1)
            except (RuntimeError, OSError) as err:
                outcome["error"] = err

        thread = threading.Thread(target=request, name="intm-rpc-request", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            sock = tracker._sock  # pylint: disable=protected-access
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            thread.join(CONNECT_TIMEOUT)
            tracker.close()
            raise ServerUnavailableError(
                f"no server under key {self.key!r} at the RPC tracker {self.host}:{self.port} "
                f"became free within {self.timeout:g} s; start more servers or raise the "
                "timeout")
        tracker.close()
        if "error" in outcome:
            raise ServerUnavailableError(f"the RPC tracker at {self.host}:{self.port} gave no "
                                     f"server under key {self.key!r}: {outcome['error']}")
        return outcome["session"]

    def _call_failed(self, err: Exception) -> tuple[str, bool]:
        """The message of a failed call, and whether it was the session's timeout."""
        text = str(err).strip().splitlines()
        last = text[-1] if text else type(err).__name__
        if "RPCSessionTimeoutError" in str(err) or "timeout" in last.lower():
            return (f"the measurement took longer than {self.timeout:g} s on the server under "
                    f"key {self.key!r}, which ended the session; raise the timeout"), True
        return (f"the connection to the server under key {self.key!r} failed during the "
                f"measurement ({type(err).__name__}: {last})"), False


def rpc_runner(host: str, port: int, key: str, *, priority: int = 1,
               timeout: float = DEFAULT_TIMEOUT, workers: int | None = None) -> RPCMeasureRunner:
    """MetaSchedule's runner for measurements on QEMU-backed servers under ``key``.

    Parameters
    ----------
    host, port : str, int
        The RPC tracker (``python -m tvm.exec.rpc_tracker``).
    key : str
        The key the servers registered under (``rpc_server --key``).
    priority, timeout, workers : optional
        See :class:`RPCMeasureRunner`.

    Returns
    -------
    RPCMeasureRunner
        A ``PyRunner``: ``run(runner_inputs)`` returns futures whose results are
        ``RunnerResult``s, a latency or an error message.

    Examples
    --------
    .. code-block:: python

        runner = rpc_runner("127.0.0.1", 9190, "qemu-m4", workers=2)
        results = [f.result() for f in runner.run(runner_inputs)]
    """
    return RPCMeasureRunner(host, port, key, priority=priority, timeout=timeout,
                            workers=workers)


def stop_process_tree(process) -> None:
    """Stop a ``subprocess.Popen`` started with ``start_new_session=True`` (a tracker or a
    server) and everything it forked: TVM's tracker and server run in worker processes of
    their own that outlive their parent otherwise."""
    import signal  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel

    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group's forked workers
    except ProcessLookupError:
        pass
    if process.poll() is None:
        process.wait(5)


__all__ = ["MEASURE_FUNCTION", "RPCMeasureRunner", "RemoteMeasureError",
           "ServerUnavailableError", "pack_artifact",
           "parse_tracker", "rpc_runner", "serve_measurement", "servers_under",
           "start_server", "unpack_artifact"]

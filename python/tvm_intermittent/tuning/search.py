"""The tuning loop: pick candidates by the cost model, build and measure them, log them.

Per kernel the design space is small enough to list (:func:`.space.candidates`), so the
search ranks every valid candidate not yet measured with the cost model
(``predict``, MetaSchedule's interface) and measures the best, batch by batch:
``workers`` candidates at a time, round robin over the kernels in the order of their
share of the default build's predicted work, until ``trials`` records exist in the log for
this model, board and environment. After each batch the cost model is updated with the
measurements (``update``), so a learned model re-ranks what is left. Candidates that break a
hard constraint are dropped before ranking (:mod:`.constraints`); a candidate whose
measurement fails is logged with MetaSchedule's failure latency (1e10 s) and its error, so
no later run measures it again. Each candidate's run under failures is capped relative to
the model's own energy (:class:`.measure.MeasurementCap`): one cut by the cap is such a
failure, with the reason, and is never applied.

A run stops with an error, leaving no new log behind, when the default build cannot be
measured (it does not finish under the environment, or does not build for the board):
there is nothing to compare candidates with. It stops too when no server measured a
candidate (:class:`.rpc.ServerUnavailableError`), since nothing is known of it; the log
keeps every candidate measured before, and an interrupted run (Ctrl-C) cancels the
measurements not started, so that a rerun with the same log continues.

A run resumes from its log: every candidate measured on this board under this environment
is known from the log's sidecar and not measured again, nor are the default and the tuned
builds once measured (:mod:`.log`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from ..board import load_board
from ..errors import DoesNotFitError, InputError, IntermittentError
from .analytic_model import AnalyticModel
from .constraints import check_candidate, check_idempotent
from .knobs import CandidateError, Knobs
from .local import CandidateBuilder, QemuRunner
from .log import TuningLog, model_key, workload_key
from .measure import (DEFAULT_CAP, MEASURED_FILE, PROJECT_DIR, CandidateCutError,
                      measure_artifact, write_measure_spec)
from .objective import environment, predicted_seconds
from ..sim.tensors import seeded_inputs
from .space import candidates, schedule_for
from .workload import ModelTasks

#: The latency MetaSchedule records for a candidate whose measurement failed.
FAILED_SECONDS = 1e10


class DefaultBuildError(DoesNotFitError):
    """The model's default build could not be measured on the board under the
    environment, so no candidate can be compared with it."""


class MeasurementUnavailableError(IntermittentError, RuntimeError):
    """No measurement happened for a reason that is not the candidate's (no tracker, no
    server under the key); the message says what to start, and that the log is kept."""


def tune_context(mod, target, task_name: str):
    """MetaSchedule's TuneContext of one task, for the cost models' ``predict`` and
    ``update`` (which the FFI hands a real TuneContext only).

    ``TuneContext(...)`` itself first imports every tensor intrinsic TVM has (about a minute
    here, for GPU intrinsics no candidate uses), so the context is made with its FFI
    constructor directly, as ``TuneContext.__init__`` ends, with no space generator or
    search strategy: the search is this module's.
    """
    # pylint: disable=import-outside-toplevel,protected-access
    from tvm.s_tir.meta_schedule import _ffi_api
    from tvm.s_tir.meta_schedule.logging import get_logger, get_logging_func

    context = ms.TuneContext.__new__(ms.TuneContext)
    context.__init_handle_by_constructor__(
        _ffi_api.TuneContext, mod, target, None, None, task_name, 1, -1,
        get_logging_func(get_logger(__name__)))
    return context


@dataclasses.dataclass
class OperatorRow:
    """One kernel in the tuning table: its default and its tuned tiling."""

    kernel: str
    default: dict
    tuned: dict | None
    predicted_default_s: float
    predicted_tuned_s: float | None
    measured_default_s: float
    measured_tuned_s: float | None
    instructions_default: int
    instructions_tuned: int | None
    trials: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TuneResult:
    """What ``tune`` did and found."""

    model: str
    board: str
    power_env: str
    log: str
    cost_model: str
    trials: int
    measured: int
    failed: int
    seconds: float
    rows: list
    default: dict
    tuned: dict | None
    errors: list
    #: The operators of the tuned build (``tuned``), each with its best record.
    combined: list = dataclasses.field(default_factory=list)
    #: ``kernel -> the analytic rule's refusal`` where the default is the tuner's smallest
    #: tile (:class:`.workload.ModelTasks`).
    refused: dict = dataclasses.field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        if not self.tuned:
            return None
        return self.default["run_secs"][0] / self.tuned["run_secs"][0]

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["rows"] = [r.to_dict() for r in self.rows]
        return data | {"speedup": self.speedup}

    def table(self) -> str:
        """The operator table: default vs tuned, predicted vs measured latency (end to end,
        with that operator tuned), and the measured instructions of its tasks."""
        head = (f"{'operator':<28} {'default':<22} {'tuned':<22} {'pred def':>9} "
                f"{'pred tun':>9} {'meas def':>9} {'meas tun':>9} {'instr def':>11} "
                f"{'instr tun':>11} {'trials':>6}")
        lines = [head]
        for r in self.rows:
            tuned_instructions = ("-" if r.instructions_tuned is None
                                  else f"{r.instructions_tuned:,}")
            lines.append(
                f"{r.kernel[:28]:<28} {_knobs_text(r.default):<22} "
                f"{_knobs_text(r.tuned) if r.tuned else '(default)':<22} "
                f"{_s(r.predicted_default_s):>9} {_s(r.predicted_tuned_s):>9} "
                f"{_s(r.measured_default_s):>9} {_s(r.measured_tuned_s):>9} "
                f"{r.instructions_default:>11,} "
                f"{tuned_instructions:>11} "
                f"{r.trials:>6}")
        total = (f"end to end on {self.board} under {self.power_env}: default "
                 f"{_s(self.default['run_secs'][0])} s")
        if self.tuned:
            total += (f", tuned {_s(self.tuned['run_secs'][0])} s with "
                      f"{', '.join(self.combined)} tuned ({self.speedup:.3f}x; "
                      f"{self.default['instructions']:,} -> {self.tuned['instructions']:,} "
                      f"instructions, {self.default['boots']} -> {self.tuned['boots']} boots)")
        else:
            total += ", no operator tuned better than its default"
        lines.append(total)
        lines.append(f"{self.measured} candidate(s) measured in this run ({self.failed} failed), "
                     f"{self.trials} in the log; {self.seconds / 60:.1f} min; cost model "
                     f"{self.cost_model}; log {self.log}")
        lines.append("pred/meas: latency of the whole model in seconds with that operator "
                     "tuned (def: every operator by the analytic rule); instr: measured "
                     "instructions of the operator's tasks")
        for kernel, reason in self.refused.items():
            lines.append(f"refused by the analytic rule, so its default is the tuner's "
                         f"smallest tile: {reason}")
        return "\n".join(lines)


def _s(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _knobs_text(knobs: dict) -> str:
    text = (f"v{knobs['variant']} " if knobs.get("variant") else "") + f"d{knobs['depth']}"
    if knobs.get("split"):
        text += f"/{knobs['split']}"
    if knobs.get("chunks", 1) > 1:
        text += f" c{knobs['chunks']}"
    if knobs.get("order", 0):
        text += f" o{knobs['order']}"
    if knobs.get("unroll", 1) > 1:
        text += f" u{knobs['unroll']}"
    text += f" x{knobs['tiles_per_commit']}"
    return text + (f" s{knobs['stage']}" if knobs.get("stage") else "")


def _task_instructions(measured: dict, indices) -> int:
    return int(sum(measured["tasks"].get(str(i), {}).get("instructions", 0) for i in indices))


class Tuner:
    """One tuning run of a model on a board under an environment (see :func:`tune`)."""

    def __init__(self, model, *, board, log, power_env=None, capacitor=None, workers: int = 1,
                 cost_model: str | None = None, runner=None, inputs=None, workdir=None):
        # pylint: disable=import-outside-toplevel
        from .. import builder
        from . import cost_model_for, default_cost_model

        self.board = load_board(board)
        self.env = environment(power_env, capacitor)
        TuningLog.check_path(log)
        self.target = tvm.target.Target("intermittent/" + self.board.name)
        self.prepared = builder.prepare(model, self.target, board=self.board,
                                        **self.env.build_options())
        self.model = ModelTasks.of(self.prepared)
        self.log = TuningLog(log, create=True)  # once the model fits: nothing half-made
        self.log.lock()  # one run writes a log at a time
        self.inputs = (list(inputs) if inputs is not None
                       else seeded_inputs(self.model.manifest["inputs"]))
        self._tmp = tempfile.TemporaryDirectory(prefix="intm-tune-")
        self.workdir = Path(workdir) if workdir is not None else Path(self._tmp.name)
        self.cost_kind = cost_model or default_cost_model()
        self.cost = cost_model_for(self.cost_kind, self.board, self.env, model=self.model,
                                   artifacts=self.workdir)
        self.analytic = (self.cost if isinstance(self.cost, AnalyticModel)
                         else AnalyticModel(self.board, self.env, self.model))
        self.builder = CandidateBuilder(self.model, self.board, self.env, self.inputs,
                                        self.workdir)
        self.runner = runner if runner is not None else QemuRunner(workers)
        self.workers = max(1, int(workers))
        self.contexts = {t.kernel: tune_context(t.mod, self.target, t.kernel)
                         for t in self.model.tasks}
        self.errors: list[str] = []
        self._schedules: dict = {}
        self._interrupted = threading.Event()

    def interrupt(self) -> None:
        """Stop after the measurements in flight (safe from a signal handler, which is how
        ``tune`` turns Ctrl-C into this: a KeyboardInterrupt raised inside a call through
        TVM's FFI comes out as a RuntimeError). :meth:`run` then logs the batch's
        successful measurements, drops its failures (the Ctrl-C may have stopped their
        QEMU processes: not the candidates' fault) and raises KeyboardInterrupt."""
        self._interrupted.set()

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    # ---- measurements of whole builds ---------------------------------------------------

    @property
    def model_hash(self) -> str:
        """The log's key of this model's whole builds (:func:`.log.model_key`)."""
        return model_key(self.model)

    def _whole(self, kind: str, overrides: dict) -> dict:
        """The measurement of the build with ``overrides`` (``kernel -> knobs``), from the
        log when it has it."""
        key = {k: v.to_dict() for k, v in sorted(overrides.items())}
        for entry in self.log.measurements(kind=kind, board=self.board.name,
                                           power_env=self.env.name):
            if entry.get("model_hash") == self.model_hash and entry.get("overrides") == key:
                return entry
        from ..builder import assemble  # pylint: disable=import-outside-toplevel

        plans = {}
        for kernel, knobs in overrides.items():
            candidate = check_candidate(self.model.task(kernel), knobs, self.board, self.env,
                                        static_scratch=self.model.static_scratch)
            plans[kernel] = (candidate.func, candidate.plan)
        artifact = (assemble(self.prepared, self.model.plans(plans)) if plans
                    else self.model.artifact)
        directory = self.workdir / kind
        artifact.export(directory / PROJECT_DIR, overwrite=True)
        write_measure_spec(directory, board=self.board.name, environment=self.env,
                           inputs=self.inputs, kernel="*", knobs={}, indices=[])
        measured = measure_artifact(directory)
        entry = {**measured, "model_hash": self.model_hash, "overrides": key}
        self.log.add_measurement(kind, entry)
        return entry

    # ---- the loop ------------------------------------------------------------------------

    def _pools(self, measured: dict) -> dict:
        """Per kernel: the candidates not in ``measured`` (``kernel -> measured knobs``) that
        meet every constraint but idempotence (``knobs -> Candidate``; :meth:`_idempotent`
        checks the ones picked)."""
        pools = {}
        for task in self.model.tasks:
            pool = {}
            for knobs in candidates(task):
                if knobs in measured[task.kernel]:
                    continue
                try:
                    pool[knobs] = check_candidate(task, knobs, self.board, self.env,
                                                  static_scratch=self.model.static_scratch,
                                                  idempotence=False)
                except CandidateError:
                    continue
            pools[task.kernel] = pool
        return pools

    @staticmethod
    def _idempotent(task, candidate) -> bool:
        """Whether a picked candidate passes the idempotence check too; one that does not
        is refused as any invalid candidate is, before it is built or counted."""
        try:
            check_idempotent(task, candidate.knobs, candidate.func, candidate.plan)
        except CandidateError:
            return False
        return True

    def _order(self) -> list:
        """Kernels by their share of the default build's predicted work, largest first."""
        work = {t.kernel: 0.0 for t in self.model.tasks}
        for spec in self.model.manifest["tasks"]:
            tile = spec["cost"]["tile"]["instructions"]
            work[spec["kernel"]] += tile * spec["tiles"]
        return sorted(self.model.tasks, key=lambda t: -work[t.kernel])

    def _pick(self, task, pool: list) -> Knobs:
        context = self.contexts[task.kernel]
        args = ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])
        scored = self.cost.predict(context, [ms.MeasureCandidate(self._schedule(task, k), args)
                                             for k in pool])
        return pool[int(np.argmax(scored))]

    def _schedule(self, task, knobs: Knobs):
        """:func:`.space.schedule_for`, made once per candidate: every pick scores the
        kernel's whole pool again."""
        key = (task.kernel, knobs)
        if key not in self._schedules:
            self._schedules[key] = schedule_for(task, knobs)
        return self._schedules[key]

    def _default(self) -> dict:
        """The default build's measurement (from the log when it has it); a build that does
        not measure stops the run, and a log made by this run is removed again."""
        try:
            default = self._whole("default", {})
        except IntermittentError as err:
            self.log.discard()
            how = ("a larger capacitor (--capacitor) or another power environment "
                   "(--power-env)" if isinstance(err, CandidateCutError)
                   or "did not finish" in str(err) else "a board it fits")
            raise DefaultBuildError(
                f"the default build of {self.model.manifest['name']} (every operator by the "
                f"analytic rule) could not be measured on {self.board.name} under "
                f"{self.env.name}, so no candidate can be compared with it: {err}; tune for "
                f"{how}") from None
        # A candidate's runs may take at most what the default's cap allows it.
        self.builder.timeout = DEFAULT_CAP.timeout(default.get("wall_seconds", 600.0),
                                                   self.builder.timeout)
        return default

    def run(self, trials: int, progress=None, report=None) -> TuneResult:
        """Measure candidates until the log holds ``trials`` for this model, board and
        environment; the result with the operator table.

        Parameters
        ----------
        trials : int
        progress : tqdm, optional
            Advanced by one per measured candidate.
        report : callable, optional
            Called with each failed candidate's message as it fails (``tune`` prints it
            above the progress bar).

        Raises
        ------
        DefaultBuildError
            The default build could not be measured (see :meth:`_default`).
        MeasurementUnavailableError
            No server measured a candidate; the log keeps the ones measured before.
        KeyboardInterrupt
            After cancelling the measurements not started; the log keeps every candidate
            whose measurement ended before.
        """
        if trials < 0:
            raise InputError(f"--trials must be 0 or more, got {trials}")
        started = time.perf_counter()
        default = self._default()
        try:
            count, failed = self._loop(trials, progress, report)
        except KeyboardInterrupt:
            cancel = getattr(self.runner, "cancel", None)
            if cancel is not None:
                cancel()
            raise
        return self._result(default, count, failed, time.perf_counter() - started)

    def _loop(self, trials: int, progress, report) -> tuple[int, int]:
        measured = {t.kernel: self.log.measured_knobs(t, self.board.name, self.env.name)
                    for t in self.model.tasks}
        left = max(0, trials - sum(len(m) for m in measured.values()))
        if not left:  # the log holds them all: nothing to rank
            if progress is not None:
                progress.reset(total=0)
            return 0, 0
        pools = self._pools(measured)
        order = [t for t in self._order() if pools[t.kernel]]
        if progress is not None:
            progress.reset(total=min(left, sum(len(p) for p in pools.values())))
        count = failed = 0
        while left > 0 and order:
            if self.interrupted:
                raise KeyboardInterrupt
            picks = []
            while len(picks) < min(self.workers, left) and order:
                for task in list(order):
                    if len(picks) >= min(self.workers, left):
                        break
                    pool = pools[task.kernel]
                    knobs = self._pick(task, list(pool))
                    if self._idempotent(task, pool.pop(knobs)):
                        picks.append((task, knobs))
                    if not pool:
                        order.remove(task)
            if not picks:
                break  # the rest of the space was not idempotent
            errors = len(self.errors)
            failed += self._measure(picks)
            count += len(picks)
            left -= len(picks)
            if report is not None:
                for error in self.errors[errors:]:
                    report(error)
            if progress is not None:
                progress.update(len(picks))
                if failed:
                    progress.set_postfix_str(f"{failed} failed", refresh=False)
        if progress is not None and progress.n < progress.total:
            progress.total = progress.n  # the space ran out: picks were not idempotent
            progress.refresh()
        return count, failed

    def _measure(self, picks) -> int:
        """Build, run and log ``picks``; the number that failed.

        Raises
        ------
        MeasurementUnavailableError
            A runner measured none of a candidate for a reason not the candidate's; the
            batch's other candidates are logged first.
        """
        schedules = [schedule_for(task, knobs) for task, knobs in picks]
        built = self.builder.build([ms.builder.BuilderInput(s.mod, self.target)
                                    for s in schedules])
        runnable = [(i, b.artifact_path) for i, b in enumerate(built) if b.error_msg is None]
        args = {i: ms.arg_info.ArgInfo.from_prim_func(picks[i][0].mod["main"])
                for i, _ in runnable}
        # Our runners are called as Python objects: through the FFI their futures come back
        # as bare RunnerFutures, without the state read below (``future``, ``unavailable``).
        runner = getattr(self.runner, "_inst", self.runner)
        futures = runner.run([ms.runner.RunnerInput(path, "cpu", args[i])
                              for i, path in runnable])
        future_of = {i: f for (i, _), f in zip(runnable, futures)}
        # Wait in Python first: a Ctrl-C raised inside ``result()``, a call through the FFI,
        # comes out as a RuntimeError, not as the KeyboardInterrupt that :meth:`run` handles.
        waiting = [getattr(f, "future", None) for f in futures]
        if all(isinstance(w, concurrent.futures.Future) for w in waiting):
            concurrent.futures.wait(waiting)
        results = {i: f.result() for i, f in future_of.items()}
        unavailable = {i: f.unavailable for i, f in future_of.items()
                       if getattr(f, "unavailable", None)}
        interrupted = self.interrupted
        failed = 0
        for i, ((task, knobs), sch) in enumerate(zip(picks, schedules)):
            if i in unavailable:
                continue  # not measured: nothing to log of it
            if interrupted and (i not in results or results[i].error_msg is not None):
                continue  # perhaps stopped by the same Ctrl-C: measured again next run
            base = {"workload": workload_key(task.mod), "kernel": task.kernel,
                    "knobs": knobs.to_dict(), "board": self.board.name,
                    "power_env": self.env.name, "model_hash": self.model_hash}
            error = built[i].error_msg if i not in results else results[i].error_msg
            if error is None:
                path = Path(built[i].artifact_path) / MEASURED_FILE
                measured = {**json.loads(path.read_text()), **base}
                self.cost.update(self.contexts[task.kernel],
                                 [ms.MeasureCandidate(sch, args[i])], [results[i]])
            else:
                failed += 1
                self.errors.append(f"{task.kernel} {knobs.describe()}: {error}")
                measured = {**base, "run_secs": [FAILED_SECONDS], "error": error, "tasks": {}}
            self.log.commit(task, sch, self.target, measured)
        if interrupted:
            raise KeyboardInterrupt
        if unavailable:
            first = next(iter(unavailable.values()))
            raise MeasurementUnavailableError(
                f"{first}; tuning stopped, the log {str(self.log.path)!r} keeps the candidates "
                "measured so far, and the same command continues from there")
        return failed

    def best(self) -> dict:
        """``kernel -> (knobs, measurement)`` of its fastest record on this board under this
        environment, where it beats the default build."""
        default = self._whole("default", {})["run_secs"][0]
        out = {}
        for task in self.model.tasks:
            done = self.log.measured_knobs(task, self.board.name, self.env.name)
            if not done:
                continue
            knobs, entry = min(done.items(), key=lambda kv: kv[1]["run_secs"][0])
            if entry["run_secs"][0] < default:
                out[task.kernel] = (knobs, entry)
        return out

    def combine(self, default: dict, best: dict) -> tuple[dict, dict | None]:
        """The records to build together, and that build's measurement: every kernel's best
        record; where that build is no faster than the default as a whole (records measured
        one operator at a time need not add up: a failure falls elsewhere), the record with
        the largest gain alone. Both builds' measurements go to the log, which
        ``compile --tuning-log`` ranks combinations by."""
        if not best:
            return {}, None
        whole = self._whole("tuned", {k: kn for k, (kn, _) in best.items()})
        if whole["run_secs"][0] < default["run_secs"][0] or len(best) == 1:
            return best, whole
        kernel = min(best, key=lambda k: best[k][1]["run_secs"][0])
        return {kernel: best[kernel]}, self._whole("tuned", {kernel: best[kernel][0]})

    def _result(self, default: dict, count: int, failed: int, seconds: float) -> TuneResult:
        best = self.best()
        chosen, tuned = self.combine(default, best)
        rows = []
        for task in self.model.tasks:
            done = self.log.measured_knobs(task, self.board.name, self.env.name)
            knobs, entry = best.get(task.kernel, (None, None))
            default_knobs = Knobs.of_plan(task.default)
            rows.append(OperatorRow(
                kernel=task.kernel, default=default_knobs.to_dict(),
                tuned=knobs.to_dict() if knobs else None,
                predicted_default_s=predicted_seconds(self.model.manifest, self.board,
                                                      self.env),
                predicted_tuned_s=self.analytic.predict_seconds(task, knobs) if knobs else None,
                measured_default_s=default["run_secs"][0],
                measured_tuned_s=entry["run_secs"][0] if entry else None,
                instructions_default=_task_instructions(default, task.indices),
                instructions_tuned=_task_instructions(entry, task.indices) if entry else None,
                trials=len(done)))
        total = sum(len(self.log.measured_knobs(t, self.board.name, self.env.name))
                    for t in self.model.tasks)
        return TuneResult(self.model.manifest["name"], self.board.name, self.env.name,
                          str(self.log.path), self.cost_kind, total, count, failed, seconds,
                          rows, default, tuned, list(self.errors), sorted(chosen),
                          dict(self.model.refused))


def tune(model, *, board, trials: int, log, power_env=None, capacitor=None, workers: int = 1,
         cost_model: str | None = None, runner=None, inputs=None, progress=None,
         workdir=None) -> TuneResult:
    """Tune the tiling of ``model`` for ``board`` under ``power_env``.

    Parameters
    ----------
    model : str, Path or anything ``build`` takes
    board : str or Board
    trials : int
        Records the log should hold for this model, board and environment at the end: a
        second run with the same count measures nothing, a larger one continues.
    log : str or Path
        The tuning log directory (created when missing, :mod:`.log`).
    power_env : str, optional
        ``continuous`` or a ``sim.environments`` preset (default ``board``).
    capacitor : str or float, optional
        Instead of ``power_env``: a capacitor with the board's voltages and harvester.
    workers : int
        Candidates measured at once (local QEMU workers).
    cost_model : str, optional
        ``analytic`` or ``xgb`` (default: :func:`.default_cost_model`).
    runner : MetaSchedule Runner, optional
        Measures the artifacts (default: :class:`.local.QemuRunner` with ``workers``); it
        must leave ``measured.json`` in each artifact directory.
    inputs : list of numpy.ndarray, optional
        The inference measured (default :func:`seeded_inputs`).
    progress : tqdm, optional
        Advanced by one per measured candidate.
    workdir : str or Path, optional
        Where candidates are built (default: a temporary directory).
    """
    tuner = Tuner(model, board=board, log=log, power_env=power_env, capacitor=capacitor,
                  workers=workers,
                  cost_model=cost_model, runner=runner, inputs=inputs, workdir=workdir)
    return tuner.run(trials, progress)


__all__ = ["DefaultBuildError", "FAILED_SECONDS", "MeasurementUnavailableError",
           "OperatorRow", "TuneResult", "Tuner", "tune", "tune_context"]

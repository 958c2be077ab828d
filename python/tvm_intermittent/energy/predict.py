"""Predict an inference under a power environment without running it: the progress simulation.

The firmware's progress is a walk along a fixed list of *segments*, each ended by a commit
(``runtime/intm_app.c``, ``intm_executor.c``):

1. every boot runs the startup code (``boot``) and reads the progress record (``restore``);
2. on a FRESH record it reads the inputs and commits RUNNING (the *input* segment);
3. each commit batch of each task runs its tiles and commits (the task's fixed work comes
   with its first batch); the last commit of the last task records DONE;
4. on a DONE record it writes the outputs (the *output* segment) and exits.

A boot has a budget (instruction-equivalents, :func:`.model.instruction_equivalents`) from
the environment's schedule. When the budget runs out inside a segment, the work since the
last commit is lost; the next boot pays ``boot + restore`` again and resumes at the first
segment not committed. So a segment that does not fit one charge together with ``boot +
restore`` never completes: the firmware's livelock guard (``INTM_MAX_FUTILE_BOOTS`` in
``runtime/intm_progress.h``) ends the run, and the prediction says which operator and by how
much it is over.

Latency is the active time of everything executed (lost work included, :func:`.model.seconds`)
plus the environment's recharge time after each failure (its schedule's
``recharge_seconds``), the same accounting as the measured report
(:class:`~tvm_intermittent.sim.report.IntermittentReport`), so a prediction and a measurement
differ only in where the work of each segment comes from:

* by default from the calibrated cost model, :func:`tvm_intermittent.energy.costs.task_costs`
  (per-task work predicted from the lowered TIR and written into ``model.json``) and
  :func:`~tvm_intermittent.energy.costs.runtime_costs` (boot, restore, commit, I/O);
* or from QEMU runs of the project (:func:`measure_costs`): each commit batch's own
  instructions, which leaves only the simulation's own error (where in a tile a failure
  strikes, and the restore of a blank record in the first boot).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from importlib import resources
from pathlib import Path

from ..board import Board, load_board
from ..errors import InputError
from .model import Work, energy_j, instruction_equivalents, seconds

#: Boots a prediction simulates before it gives up (the simulator's default limit).
DEFAULT_MAX_BOOTS = 10_000


def _max_futile_boots() -> int:
    """``INTM_MAX_FUTILE_BOOTS`` of the runtime: starts without a commit before it gives up."""
    header = resources.files("tvm_intermittent").joinpath("runtime", "intm_progress.h")
    match = re.search(r"#define\s+INTM_MAX_FUTILE_BOOTS\s+(\d+)", header.read_text())
    if match is None:
        raise RuntimeError("runtime/intm_progress.h defines no INTM_MAX_FUTILE_BOOTS")
    return int(match.group(1))


MAX_FUTILE_BOOTS = _max_futile_boots()


class PredictionError(InputError):
    """A prediction cannot be made: costs missing or not matching the project."""


# ---- Costs ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MeasuredTask:
    """One task's costs measured on QEMU, with the fields of ``energy.costs.TaskCost``.

    ``batches`` holds each commit batch's own work (its tiles, without the commit): tiles
    at a padded border or with a ragged last batch cost more than the mean ``tile``, and
    where a failure falls depends on it. Empty: every batch is ``tile`` times its tiles.
    """

    index: int
    kernel: str
    tiles: int
    tiles_per_commit: int
    tile: Work
    fixed: Work
    batches: tuple = ()


@dataclasses.dataclass(frozen=True)
class MeasuredRuntime:
    """The runtime's costs measured on QEMU, with the fields of ``energy.costs.RuntimeCosts``
    that the simulation charges (the executor's overheads are inside the tasks' work)."""

    boot: Work
    restore: Work
    commit: Work
    input_per_byte: Work
    output_per_byte: Work
    sources: dict = dataclasses.field(default_factory=dict, compare=False)
    #: The first boot's restore, of a blank record up to reading the inputs (``restore`` is
    #: a resumed boot's, of a committed record up to its first tile).
    fresh_restore: Work | None = None


@dataclasses.dataclass(frozen=True)
class Costs:
    """What the simulation charges: per-task costs and the runtime's constants.

    ``tasks`` hold ``index, kernel, tiles, tiles_per_commit, tile, fixed`` (``tile`` the work
    of one tile with the executor's share, ``fixed`` once per task); ``runtime`` holds
    ``boot, restore, commit, input_per_byte, output_per_byte`` (all :class:`.model.Work`).
    ``source`` says where they come from (``"calibrated"`` or ``"measured"``).
    """

    tasks: tuple
    runtime: object
    source: str


def calibrated_costs(manifest: dict, board: Board) -> Costs:
    """The cost model's predictions for a project (``model.json``'s ``tasks[].cost``)."""
    # Imported here: the cost model imports TVM, which measured costs do not need.
    from . import costs as cost_model  # pylint: disable=import-outside-toplevel

    return Costs(tuple(cost_model.task_costs(manifest)), cost_model.runtime_costs(board.isa),
                 "calibrated")


def measure_costs(project_dir, inputs, *, timeout: float = 600.0) -> Costs:
    """Per-task and runtime costs from QEMU runs of an exported project.

    One continuous run records the instruction count at every entry of the phase functions
    and of each task function (one entry per tile batch): the span from a batch's entry to
    the commit after it is the batch's tiles, the span from a commit's entry to the next
    batch is the commit (the mean over commits within tasks; what a task transition adds is
    the next task's fixed work). Two runs with one power failure each, in the middle of the
    third and of the fourth batch (both slots of the record sealed, as in every later boot),
    measure what a resumed boot pays before its first tile: startup up to the restore
    function (``boot``) and from there to the first tile (``restore``), their mean.
    The NVM accesses of each task's tiles and of each phase come from the plugin's traffic
    of the same run (``RunResult.traffic_by_task``, ``traffic_by_phase``).

    Parameters
    ----------
    project_dir : path-like
        A project from ``compile`` (or ``Artifact.export``), Cortex-M4 firmware.
    inputs : list of numpy.ndarray
        The model's inputs.
    timeout : float
        Seconds each QEMU run may take.

    Returns
    -------
    Costs
        With ``source == "measured"``.
    """
    from .. import sim  # pylint: disable=import-outside-toplevel

    project = Path(project_dir)
    manifest = load_project(project)
    isa = load_board(manifest["board"]).isa
    if isa != "arm":
        raise PredictionError(f"measured costs are QEMU's Cortex-M4 counts; this project's "
                              f"board {manifest['board']!r} runs {isa} firmware, whose "
                              "instructions they would not count")
    tasks = manifest["tasks"]
    run = sim.run(project, inputs, timeout=timeout, kind="qemu")
    spans = _spans(run, len(tasks))
    commits = spans["within"] or spans["transitions"][:1]
    commit = sum(commits) / len(commits)
    # Resumed boots: fail halfway through a batch once two commits sealed both slots of
    # the record (restore checks each), in two consecutive batches (the slots alternate).
    entries = spans["entries"]
    resumes = [_resumed_boot(project, inputs, entries, k, timeout)
               for k in sorted({min(2, len(entries) - 1), min(3, len(entries) - 1)})]
    point, _, _, resumed = resumes[0]
    boot_instructions = sum(r[1] - r[0] for r in resumes) / len(resumes)
    restore_instructions = sum(r[2] - r[1] for r in resumes) / len(resumes)
    measured = []
    for index, task in enumerate(tasks):
        tiles = int(task["tiles"])
        tile_instructions = sum(spans["batches"][index]) / tiles
        fixed = spans["fixed"][index] - commit  # the commit before the first batch
        tile = dataclasses.replace(run.traffic_by_task[index] * (1.0 / tiles),
                                   instructions=tile_instructions)
        per = max(1, int(task["tiles_per_commit"]))
        counts = [min(per, tiles - first) for first in range(0, tiles, per)]
        if len(counts) != len(spans["batches"][index]):
            raise PredictionError(f"task {index} ran {len(spans['batches'][index])} batches, "
                                  f"model.json promises {len(counts)}; compile it again")
        # Each batch's own instructions; its NVM traffic in proportion to its tiles (the
        # plugin counts traffic per task, not per batch: the task's mean per tile).
        batches = tuple(dataclasses.replace(tile * count, instructions=float(span))
                        for count, span in zip(counts, spans["batches"][index]))
        measured.append(MeasuredTask(index, task["kernel"], tiles, per, tile,
                                     Work(instructions=max(fixed, 0.0)), batches))
    in_bytes = sum(_nbytes(t) for t in manifest["inputs"]) or 1
    out_bytes = sum(_nbytes(t) for t in manifest["outputs"]) or 1
    output = spans["output"] + spans["transitions"][-1] - commit
    def phase(name, instructions, count=1):  # the plugin's traffic of a phase, per count
        return _phase_work(run, name, Work(instructions=instructions), count)

    runtime = MeasuredRuntime(
        boot=phase("boot", boot_instructions),
        restore=_resumed_restore(run, resumed, restore_instructions),
        fresh_restore=phase("restore", spans["read_at"] - spans["restore_at"]),
        commit=phase("commit", commit, len(run.commits)),
        input_per_byte=phase("input", spans["input"] / in_bytes, in_bytes),
        output_per_byte=phase("output", output / out_bytes, out_bytes),
        sources={"project": str(project), "continuous_instructions": run.instructions_total,
                 "resumed_boot_at": point,
                 "nvm": "per-task and per-phase traffic of the continuous run"})
    return Costs(tuple(measured), runtime, "measured")


def _resumed_boot(project, inputs, entries, k: int, timeout: float) -> tuple:
    """One failure halfway through batch ``k`` of a continuous run's batch ``entries``:
    ``(failure point, restore entry, first tile entry)`` of the boot after it, and the run."""
    from .. import sim  # pylint: disable=import-outside-toplevel

    after = entries[k + 1] if k + 1 < len(entries) else entries[k] + 2
    point = (entries[k] + after) // 2 if after > entries[k] + 1 else entries[k] + 1
    resumed = sim.run(project, inputs, timeout=timeout, kind="qemu",
                      power=sim.power.FailAt(point))
    restore_at = next(c for n, c in resumed.events if c >= point and n == "intm_progress_restore")
    task_at = next(c for n, c in resumed.events if c >= point and n.startswith("intm_task_"))
    return point, restore_at, task_at, resumed


def _resumed_restore(run, resumed, instructions: float) -> Work:
    """A resumed boot's restore: the failure run's restores (the first boot's and the
    resumed one's) less the continuous run's (the first boot's alone)."""
    both, first = resumed.traffic_by_phase["restore"], run.traffic_by_phase["restore"]
    return dataclasses.replace(both + first * -1.0, instructions=instructions)


def _phase_work(run, phase: str, work: Work, count: int) -> Work:
    """``work`` with the NVM accesses of ``phase`` per occurrence (``count`` of them), where
    the run counts them (``RunResult.traffic_by_phase``)."""
    by_phase = getattr(run, "traffic_by_phase", None)
    if not by_phase or phase not in by_phase or not count:
        return work
    return dataclasses.replace(by_phase[phase] * (1.0 / count), instructions=work.instructions)


def _nbytes(spec: dict) -> int:
    import numpy as np  # pylint: disable=import-outside-toplevel

    return int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize


def _spans(run, num_tasks: int) -> dict:
    """Instruction spans of a continuous run, from its recorded entries (see measure_costs)."""
    events = run.events
    entries = [(n, c) for n, c in events]
    task_of = {f"intm_task_{t}": t for t in range(num_tasks)}
    batches = [[] for _ in range(num_tasks)]
    fixed = [0.0] * num_tasks
    within, transitions = [], []
    read_at = next(c for n, c in entries if n == "intm_read_inputs")
    write_at = next(c for n, c in entries if n == "intm_write_outputs")
    first_commit = next(c for n, c in entries if n == "intm_progress_commit")
    last_task, pending = None, None  # pending: (task, entry count) of the open batch
    commit_at = None
    task_entries = []
    for name, count in entries:
        if name in task_of:
            task = task_of[name]
            task_entries.append(count)
            if commit_at is not None:
                span = count - commit_at
                if task == last_task:
                    within.append(span)
                else:
                    transitions.append(span)
                    fixed[task] += span
            pending, last_task, commit_at = (task, count), task, None
        elif name == "intm_progress_commit":
            if pending is not None:
                batches[pending[0]].append(count - pending[1])
                pending = None
            commit_at = count
        elif name == "intm_write_outputs" and commit_at is not None:
            transitions.append(count - commit_at)
            commit_at = None
    if any(not b for b in batches):
        raise PredictionError("a continuous run did not enter every task: the project's "
                              "firmware and its model.json disagree; compile it again")
    task_first = [next(c for n, c in entries if n == f"intm_task_{t}")
                  for t in range(num_tasks)]
    return {"batches": batches, "fixed": fixed, "within": within, "transitions": transitions,
            "input": first_commit - read_at, "output": run.instructions_total - write_at,
            "entries": task_entries, "task_first": task_first, "read_at": read_at,
            "write_at": write_at, "first_commit": first_commit,
            "restore_at": next(c for n, c in entries if n == "intm_progress_restore")}


# ---- The prediction ---------------------------------------------------------------------


@dataclasses.dataclass
class OperatorPrediction:
    """One task of the task table under the environment.

    ``batch`` is the work of one full commit batch with its commit; ``need`` is what the
    largest batch asks of one charge with the boot and restore before it, in
    instruction-equivalents, against ``budget`` (None under continuous power).
    """

    index: int
    kernel: str
    macs: int
    tiles: int
    tiles_per_commit: int
    commits: int
    tile: Work
    batch: Work
    work: Work
    energy_per_tile_j: float
    energy_per_batch_j: float
    need: float
    budget: float | None
    failures: int = 0

    @property
    def fits(self) -> bool:
        return self.budget is None or self.need <= self.budget

    @property
    def over(self) -> float:
        """Instruction-equivalents by which the largest batch exceeds one charge (0: fits)."""
        return 0.0 if self.fits else self.need - self.budget

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for key in ("tile", "batch", "work"):
            data[key] = getattr(self, key).to_dict()
        return data | {"fits": self.fits, "over": self.over}


@dataclasses.dataclass
class Prediction:
    """A model's predicted inference on a board under a power environment.

    Attributes
    ----------
    finished : bool
        Whether the simulated firmware writes its outputs (False: a segment never fits, or
        ``max_boots`` was reached; ``stop_reason`` says which).
    boots, failures : int
        Boots (the first included) and power failures.
    executed : Work
        Everything executed over all boots, lost work included.
    continuous : Work
        The same inference without failures.
    active_seconds, recharge_seconds, latency_seconds : float
        Time computing, recharging after failures, and their sum (None when not finished).
    energy_j : float
        Energy of ``executed``.
    schedulable : bool
        Every segment fits one charge with a boot and restore before it.
    blocking : list of dict
        The segments that do not: ``operator``, ``need``, ``budget``, ``over``.
    deadline_s : float or None
        The latency bound asked for; ``meets_deadline`` says whether it is met.
    """

    model: str
    board: str
    environment: dict
    source: str
    budget: float | None
    operators: list
    finished: bool
    stop_reason: str | None
    boots: int
    failures: int
    executed: Work
    continuous: Work
    active_seconds: float
    recharge_seconds: float
    latency_seconds: float | None
    energy_j: float
    schedulable: bool
    blocking: list
    deadline_s: float | None = None

    @property
    def meets_deadline(self) -> bool | None:
        if self.deadline_s is None:
            return None
        return self.latency_seconds is not None and self.latency_seconds <= self.deadline_s

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["operators"] = [o.to_dict() for o in self.operators]
        data["executed"] = self.executed.to_dict()
        data["continuous"] = self.continuous.to_dict()
        return data | {"meets_deadline": self.meets_deadline}


@dataclasses.dataclass(frozen=True)
class _Segment:
    """Work between two commits (or up to the exit), and the task it belongs to."""

    work: Work
    task: int | None  # None: the input or output segment
    label: str


def _schedule_of(environment, board: Board):
    """The per-run schedule of ``environment``: a PowerEnvironment (``.schedule(board)``) or
    a schedule itself (``budgets`` and ``recharge_seconds``)."""
    if hasattr(environment, "budgets"):
        return environment
    if hasattr(environment, "schedule"):
        return environment.schedule(board)
    raise TypeError(f"environment must be a power environment or a schedule, got "
                    f"{type(environment).__name__}")


def _environment_dict(environment, schedule) -> dict:
    if hasattr(environment, "to_dict"):
        return environment.to_dict()
    if dataclasses.is_dataclass(environment):
        return {k: v for k, v in dataclasses.asdict(environment).items()
                if isinstance(v, (str, int, float, type(None)))}
    return schedule.to_dict()


def charge(board: Board, schedule, work: Work) -> float:
    """What ``work`` takes from a boot's budget under ``schedule``, in instruction-equivalents.

    What the simulator's plugin charges: an instruction each, and each NVM access the
    schedule's ``nvm_load_cost`` / ``nvm_store_cost`` (the energy model's
    :func:`.model.access_costs` for a capacitor, 0 for schedules that know no energy). An
    object that is no schedule is charged :func:`.model.instruction_equivalents`.
    """
    if hasattr(schedule, "nvm_store_cost"):
        return (work.instructions + work.nvm_loads * float(schedule.nvm_load_cost)
                + work.nvm_stores * float(schedule.nvm_store_cost))
    return instruction_equivalents(board, work)


def _segments(manifest: dict, costs: Costs) -> list[_Segment]:
    runtime = costs.runtime
    in_bytes = sum(_nbytes(t) for t in manifest["inputs"])
    out_bytes = sum(_nbytes(t) for t in manifest["outputs"])
    segments = [_Segment(runtime.input_per_byte * in_bytes + runtime.commit, None, "input")]
    for task in costs.tasks:
        per = max(1, int(task.tiles_per_commit))
        own = getattr(task, "batches", ())
        for number, first in enumerate(range(0, int(task.tiles), per)):
            count = min(per, int(task.tiles) - first)
            work = (own[number] if own else task.tile * count) + runtime.commit
            if first == 0:
                work = work + task.fixed
            segments.append(_Segment(work, task.index, task.kernel))
    segments.append(_Segment(runtime.output_per_byte * out_bytes, None, "output"))
    return segments


def _check_costs(manifest: dict, costs: Costs) -> None:
    tasks = manifest.get("tasks", [])
    if len(costs.tasks) != len(tasks) or any(
            c.kernel != t["kernel"] or int(c.tiles) != int(t["tiles"])
            for c, t in zip(costs.tasks, tasks)):
        raise PredictionError(
            f"the costs ({costs.source}) describe {len(costs.tasks)} tasks that do not match "
            f"the {len(tasks)} tasks of model.json; measure or compile them for this project")


def predict(manifest: dict, board, environment, *, costs: Costs | None = None,
            deadline_s: float | None = None, max_boots: int = DEFAULT_MAX_BOOTS) -> Prediction:
    """Simulate one inference's progress under ``environment`` (see the module docstring).

    Parameters
    ----------
    manifest : dict
        The project's ``model.json``.
    board : str or Board
        The board profile (energy per instruction, NVM costs, clock).
    environment : PowerEnvironment or Schedule
        Per-boot budgets and recharge times (``sim.environments``, or a ``sim.power``
        schedule such as :class:`~tvm_intermittent.sim.power.Capacitor`).
    costs : Costs, optional
        Default: the calibrated cost model's (:func:`calibrated_costs`); or measured ones
        (:func:`measure_costs`).
    deadline_s : float, optional
        A latency bound to judge the prediction against.
    max_boots : int
        Boots to simulate at most.

    Returns
    -------
    Prediction

    Examples
    --------
    .. code-block:: python

        board = load_board("msp430fr5994")
        prediction = predict(manifest, board, sim.power.Capacitor(board))
        print(prediction.boots, prediction.latency_seconds)
    """
    board = load_board(board)
    if deadline_s is not None and not deadline_s > 0:
        raise InputError(f"a deadline must be a positive number of seconds, got {deadline_s!r}")
    costs = calibrated_costs(manifest, board) if costs is None else costs
    _check_costs(manifest, costs)
    schedule = _schedule_of(environment, board)
    segments = _segments(manifest, costs)
    runtime = costs.runtime
    resume = runtime.boot + runtime.restore
    fresh = runtime.boot + (getattr(runtime, "fresh_restore", None) or runtime.restore)
    budgets = schedule.budgets(max_boots)
    budget = float(budgets[0]) if budgets else None

    # Static check: each segment with the boot and restore before it fits one charge.
    need = [charge(board, schedule, resume + s.work) for s in segments]
    blocking = {}  # the worst segment of each step that does not fit
    for s, n in zip(segments, need):
        key = s.label if s.task is None else s.task
        if budget is not None and n > budget and n > blocking.get(key, {}).get("need", 0):
            blocking[key] = {"operator": s.label, "task": s.task, "need": n, "budget": budget,
                             "over": n - budget}
    blocking = list(blocking.values())
    worst = {}
    for s, n in zip(segments, need):
        if s.task is not None:
            worst[s.task] = max(worst.get(s.task, 0.0), n)

    # Each boot: boot + restore, then segments from the first not committed until the
    # budget runs out. ``runs[i]`` counts the executions of segment i (a fraction for the
    # one a failure cuts short).
    costs_of = [charge(board, schedule, s.work) for s in segments]
    resume_cost = charge(board, schedule, resume)
    runs = [0.0] * (len(segments) + 2)  # [-2]: boot 1's boot + restore, [-1]: the others'
    starts = {True: (-2, charge(board, schedule, fresh)), False: (-1, resume_cost)}
    committed, boots, failures, futile = 0, 0, 0, 0
    per_task_failures = {}
    stop_reason = None
    while committed < len(segments):
        if boots >= max_boots:
            stop_reason = "max_boots"
            break
        boots += 1
        left = float(budgets[boots - 1]) if boots <= len(budgets) else float("inf")
        progressed = False
        slot, start_cost = starts[boots == 1]
        if start_cost > left:
            runs[slot] += left / start_cost
            failed = True
        else:
            runs[slot] += 1.0
            left -= start_cost
            failed = False
            while committed < len(segments) and costs_of[committed] <= left:
                left -= costs_of[committed]
                runs[committed] += 1.0
                committed += 1
                progressed = True
            if committed < len(segments):
                runs[committed] += left / costs_of[committed]
                failed = True
        if failed:
            failures += 1
            task = segments[committed].task
            per_task_failures[task] = per_task_failures.get(task, 0) + 1
        futile = 0 if progressed else futile + 1
        if futile > MAX_FUTILE_BOOTS:
            stop_reason = "no_progress"
            break
    executed = fresh * runs[-2] + resume * runs[-1]
    for segment, count in zip(segments, runs):
        if count:
            executed = executed + segment.work * count
    finished = stop_reason is None
    active = seconds(board, executed)
    recharge = float(sum(schedule.recharge_seconds(failures))) if failures else 0.0
    continuous = fresh + Work()
    for s in segments:
        continuous = continuous + s.work
    operators = _operators(manifest, costs, board, schedule, worst, budget, per_task_failures)
    return Prediction(
        model=manifest.get("name", "model"), board=board.name,
        environment=_environment_dict(environment, schedule), source=costs.source,
        budget=budget, operators=operators, finished=finished, stop_reason=stop_reason,
        boots=boots, failures=failures, executed=executed, continuous=continuous,
        active_seconds=active, recharge_seconds=recharge,
        latency_seconds=active + recharge if finished else None,
        energy_j=energy_j(board, executed), schedulable=not blocking, blocking=blocking,
        deadline_s=deadline_s)


# ---- The cost model's error: both sides of a boot step -----------------------------------


@dataclasses.dataclass
class Side:
    """One outcome within the cost model's error: ``boots`` and ``latency_seconds`` (None:
    does not finish) while the kernels' true instructions are between ``low`` and
    ``high`` times the predicted, which happens with ``probability``."""

    boots: int
    finished: bool
    latency_seconds: float | None
    low: float
    high: float
    probability: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ErrorInterval:
    """What the prediction becomes when the kernels' instructions are off by the cost
    model's stated error (:func:`.costs.model_error`) either way.

    ``sides`` are the outcomes (boots, finished) met from ``1 - error`` to ``1 + error``
    times the predicted instructions, in that order: one when no boot step lies within
    the error, else the step's two sides (three when steps lie on both sides of the
    prediction; where several lie on one side, that side holds the boots at its end).
    ``likely`` is the index of the side with the most probability under a normal error of
    standard deviation ``error``. ``latency_low_s`` and ``latency_high_s`` are the least
    and the most latency within the error (None: some side does not finish).
    """

    error: float
    sides: list
    likely: int
    latency_low_s: float | None
    latency_high_s: float | None

    @property
    def near_step(self) -> bool:
        return len(self.sides) > 1

    def contains(self, latency_s: float) -> bool:
        """Whether ``latency_s`` lies within the error's latency range."""
        return (self.latency_low_s is not None and self.latency_high_s is not None
                and self.latency_low_s <= latency_s <= self.latency_high_s)

    def distance(self, latency_s: float) -> float | None:
        """Relative distance of ``latency_s`` from the latency range (0 inside it):
        ``(nearest end - latency_s) / latency_s``, signed like a prediction error."""
        if self.latency_low_s is None or self.latency_high_s is None:
            return None
        if latency_s < self.latency_low_s:
            return (self.latency_low_s - latency_s) / latency_s
        if latency_s > self.latency_high_s:
            return (self.latency_high_s - latency_s) / latency_s
        return 0.0

    def to_dict(self) -> dict:
        return {"error": self.error, "near_step": self.near_step, "likely": self.likely,
                "latency_low_s": self.latency_low_s, "latency_high_s": self.latency_high_s,
                "sides": [s.to_dict() for s in self.sides]}


def scaled_costs(costs: Costs, factor: float) -> Costs:
    """``costs`` with every task's instructions (its tiles' and its fixed part) times
    ``factor``; NVM accesses and the runtime's measured constants as they are."""
    def scale(work: Work) -> Work:
        return dataclasses.replace(work, instructions=work.instructions * factor)

    tasks = []
    for task in costs.tasks:
        changes = {"tile": scale(task.tile), "fixed": scale(task.fixed)}
        if getattr(task, "batches", ()):
            changes["batches"] = tuple(scale(b) for b in task.batches)
        tasks.append(dataclasses.replace(task, **changes))
    return dataclasses.replace(costs, tasks=tuple(tasks))


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def error_interval(manifest: dict, board, environment, *, costs: Costs | None = None,
                   error: float | None = None, max_boots: int = DEFAULT_MAX_BOOTS,
                   tolerance: float = 1e-4) -> ErrorInterval:
    """The prediction at the two ends of the cost model's error, and the boot steps
    between them.

    Latency is a step function of energy: one boot more adds a whole recharge. Where the
    predicted work is within the model's error of a whole number of charges, the true
    inference may fall on either side of the step, and a single figure is as likely to be
    wrong by a recharge as right. This predicts at ``1 - error``, 1 and ``1 + error``
    times the kernels' instructions, bisects (to ``tolerance``) for the factor where the
    boots change between them, and gives each side's boots, latency and probability.

    Parameters
    ----------
    manifest, board, environment, costs, max_boots
        As for :func:`predict` (default costs: the calibrated ones).
    error : float, optional
        The relative error of the kernels' instructions (default: the calibration's, for
        this model, :func:`.costs.model_error`).
    """
    board = load_board(board)
    costs = calibrated_costs(manifest, board) if costs is None else costs
    if error is None:
        from . import costs as cost_model  # pylint: disable=import-outside-toplevel

        error = cost_model.model_error(manifest, board.isa)
    error = max(0.0, min(float(error), 0.99))
    cache: dict = {}

    def outcome(factor: float) -> Prediction:
        if factor not in cache:
            cache[factor] = predict(manifest, board, environment,
                                    costs=scaled_costs(costs, factor), max_boots=max_boots)
        return cache[factor]

    def key(factor: float) -> tuple:
        return (outcome(factor).finished, outcome(factor).boots)

    def boundary(a: float, b: float) -> float:
        """The factor, within ``tolerance``, where the outcome stops being key(a)."""
        while b - a > tolerance:
            mid = 0.5 * (a + b)
            a, b = (mid, b) if key(mid) == key(a) else (a, mid)
        return b

    low, high = 1.0 - error, 1.0 + error
    cuts, representatives = [low], [1.0]
    if key(low) != key(1.0):
        cuts.append(boundary(low, 1.0))
        representatives.insert(0, low)
    if key(high) != key(1.0):
        cuts.append(boundary(1.0, high))
        representatives.append(high)
    cuts.append(high)
    spread = error or 1.0
    sides = []
    for at, start, stop in zip(representatives, cuts, cuts[1:]):
        p = outcome(at)
        sides.append(Side(p.boots, p.finished, p.latency_seconds if p.finished else None,
                          start, stop, _normal_cdf((stop - 1.0) / spread)
                          - _normal_cdf((start - 1.0) / spread)))
    total = sum(s.probability for s in sides) or 1.0
    for side in sides:
        side.probability /= total
    latencies = [outcome(f).latency_seconds if outcome(f).finished else None
                 for f in (low, 1.0, high)]
    finished = [v for v in latencies if v is not None]
    return ErrorInterval(error, sides, max(range(len(sides)), key=lambda i: sides[i].probability),
                         min(finished) if finished else None,
                         max(finished) if len(finished) == len(latencies) else None)


def _operators(manifest, costs, board, schedule, worst, budget, failures) -> list:
    commit = costs.runtime.commit
    rows = []
    for task, spec in zip(costs.tasks, manifest["tasks"]):
        per = max(1, int(task.tiles_per_commit))
        commits = -(-int(task.tiles) // per)
        batch = task.tile * min(per, int(task.tiles)) + commit
        work = task.tile * int(task.tiles) + commit * commits + task.fixed
        rows.append(OperatorPrediction(
            index=task.index, kernel=task.kernel, macs=int(spec.get("macs", 0)),
            tiles=int(task.tiles), tiles_per_commit=per, commits=commits, tile=task.tile,
            batch=batch, work=work, energy_per_tile_j=energy_j(board, task.tile),
            energy_per_batch_j=energy_j(board, batch), need=worst.get(task.index, 0.0),
            budget=budget, failures=failures.get(task.index, 0)))
    return rows


def load_project(project_dir) -> dict:
    """``model.json`` of a project, or a clear error."""
    path = Path(project_dir) / "model.json"
    if not path.is_file():
        raise InputError(f"{str(project_dir)!r} is not a project made by `tvm-intermittent "
                         "compile` (no model.json)")
    try:
        manifest = json.loads(path.read_text())
        for key in ("name", "board", "inputs", "outputs", "tasks"):
            manifest[key]  # pylint: disable=pointless-statement
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{str(path)!r} is damaged ({type(err).__name__}: {err}); compile "
                         "the project again") from err
    return manifest


def predict_project(project_dir, board=None, environment=None, **kwargs) -> Prediction:
    """:func:`predict` for an exported project: its ``model.json``, by default its own board
    and the capacitor it was compiled for (a :class:`~tvm_intermittent.sim.power.Capacitor`
    with the board's harvester)."""
    manifest = load_project(project_dir)
    board = load_board(board or manifest["board"])
    if environment is None:
        from ..sim.power import Capacitor  # pylint: disable=import-outside-toplevel

        environment = Capacitor(board, capacitor_f=manifest.get("capacitor_f"))
    return predict(manifest, board, environment, **kwargs)

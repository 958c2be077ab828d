"""Failure campaigns: many power failures against one firmware, every run checked.

The property under test is the project's promise: under any power failures, the outputs
equal those of an uninterrupted run, bit for bit, and no committed work is lost. Two
campaigns check it:

* :func:`random_campaign`: seeded random power-cycle lengths, run after run, until a number
  of failures has been injected;
* :func:`exhaustive_campaign`: one run per failure point of each :class:`Window`, with
  exactly one failure there (or two: a failure during the recovery boot as well).

Windows come from the firmware itself, not from estimates: :func:`phase_windows` reads the
events of one continuous run (the plugin records the instruction count at the entry of
every phase function and of every tile batch, and at every NVM store of the commit and
restore functions) and cuts the run into its phases: boot and restore; input load and the
FRESH -> RUNNING commit; per operator its first and last tile batch, each from the batch's
first instruction to the last store of the commit after it; the chunk handoff of split
reductions; and everything from the last operator's commit to the firmware's exit.

Every run is checked the same way (:class:`Baseline`): it finished; its outputs equal the
uninterrupted run's; the power failed exactly where the schedule said, and as often; and
committed progress was kept: each failure cost at most the one tile batch it interrupted
(the runs of the task functions beyond the uninterrupted run's number are at most the
number of failures) and at most ``max_redo`` instructions of re-executed work. Each
campaign logs its seeds and windows, so any failing case can be rerun.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from .power import Random
from .qemu import (
    PHASE_FUNCTIONS,
    PROGRESS_FUNCTIONS,
    TASK_FUNCTION,
    RunResult,
    run,
    run_exhaustive,
)

COMMIT, RESTORE = PROGRESS_FUNCTIONS
READ_INPUTS = "intm_read_inputs"


@dataclasses.dataclass(frozen=True)
class Window:
    """Failure points ``start <= k < stop`` of one phase of an inference.

    Attributes
    ----------
    phase : str
        ``"boot"`` (reset to the end of the restore), ``"inputs"`` (input load and the
        FRESH -> RUNNING commit), ``"batch"`` (a tile batch and its commit), ``"split"``
        (a chunk of a split reduction and its commit), ``"outputs"`` (from the last
        operator's commit to the firmware's exit) or ``"recovery"`` (two failures: one in
        a commit, one in the boot after it).
    label : str
        What the window covers, e.g. ``"conv2d first batch"``.
    start, stop : int
        The failure points (a point ``k`` fails after exactly ``k`` instructions).
    commit : (int, int) or None
        Counts of the first and last NVM store of the commit the window ends with (or, for
        ``"recovery"``, the commit its first failure falls in); the window holds
        ``commit[0] .. commit[1] + 1``, so that both "before" and "after" each store fail.
    kernel : str or None
        The operator of a batch window.
    then : tuple of int
        Further failures of every run, as offsets from its first (``"recovery"`` only).
    stores : tuple of int
        Counts of every NVM store of that commit (of the restore, for ``"boot"``; of any
        commit in it, for ``"outputs"``).
    entries : tuple of int
        Counts at the entries of the phase functions inside the window.
    """

    phase: str
    label: str
    start: int
    stop: int
    commit: tuple | None = None
    kernel: str | None = None
    then: tuple = ()
    stores: tuple = ()
    entries: tuple = ()

    @property
    def points(self) -> range:
        return range(self.start, self.stop)

    def __len__(self) -> int:
        return self.stop - self.start

    def sample(self, head: int, tail: int) -> list[int]:
        """The failure points to sweep when the whole window is too long: its first
        ``head`` points (the batch's start) and its last ``tail`` points (the end of the
        batch and its commit, which ``tail`` should cover), or every point if fewer."""
        if len(self) <= head + tail:
            return list(self.points)
        return [*range(self.start, self.start + head), *range(self.stop - tail, self.stop)]

    def key_points(self, margin: int = 4) -> list[int]:
        """A short sweep of the points that matter most: the first and last ``margin``
        points, the ``margin`` points before the first NVM store, before and after each
        store, and around each phase function's entry."""
        chosen = {*range(self.start, self.start + margin), *range(self.stop - margin, self.stop),
                  *(p for s in self.stores for p in (s, s + 1)),
                  *(p for e in self.entries for p in (e - 1, e, e + 1))}
        if self.stores:
            chosen.update(range(self.stores[0] - margin, self.stores[0]))
        return sorted(p for p in chosen if self.start <= p < self.stop)


def _commit_spans(probe: RunResult) -> list[tuple]:
    return [span for span in probe.store_spans(COMMIT) if span[1] is not None]


def _restore_spans(probe: RunResult) -> list[tuple]:
    return [span for span in probe.store_spans(RESTORE) if span[1] is not None]


def _stores_between(probe: RunResult, function: str, first: int, last: int) -> tuple:
    return tuple(c for name, c in probe.stores if name == function and first <= c <= last)


def _phase_entries(probe: RunResult, start: int, stop: int) -> tuple:
    return tuple(c for name, c in probe.events
                 if name in PHASE_FUNCTIONS and start <= c < stop)


def _task_entries(probe: RunResult) -> list[tuple[int, int]]:
    """``(task index, count)`` at each tile batch, in order."""
    entries = []
    for name, count in probe.events:
        match = TASK_FUNCTION.match(name)
        if match:
            entries.append((int(match.group(1)), count))
    return entries


def _commit_after(spans, count: int):
    for span in spans:
        if span[0] > count:
            return span
    raise ValueError(f"no commit after instruction {count}: is this the tiles firmware?")


def task_table(manifest: dict) -> list[dict]:
    """The task table of ``model.json`` (or ``Artifact.manifest()``) with each task's
    ``chunks`` (> 1 for a split reduction), as :func:`phase_windows` takes it."""
    tiles = manifest.get("tiles", {})
    return [dict(task, chunks=tiles.get(task["kernel"], {}).get("chunks", 1))
            for task in manifest["tasks"]]


def phase_windows(probe: RunResult, tasks, *, split_batches: int = 2) -> list[Window]:
    """Cut a continuous run into the windows of its phases (see the module docstring).

    Parameters
    ----------
    probe : RunResult
        A continuous QEMU run of the ``tiles`` firmware with the default events and stores.
    tasks : list of dict
        The model's task table, in order: ``kernel`` and optionally ``chunks`` (> 1 for a
        split reduction), as in ``model.json``'s ``tasks`` and ``tiles``.
    split_batches : int
        Leading batches of a split reduction to cover (chunk 0 writes the partial sum that
        chunk 1 reads: 2 covers the first handoff).

    Returns
    -------
    windows : list of Window
        In the order of the run; consecutive phases share no point, and the boot, input
        and output windows join their neighbours, so only the tile batches not chosen are
        left out.
    """
    if probe.failures or not probe.finished:
        raise ValueError("phase windows come from a continuous run that finished")
    commits = _commit_spans(probe)
    restores = _restore_spans(probe)
    entries = _task_entries(probe)
    if not commits or not entries:
        raise ValueError("the run recorded no commit or no tile batch: phase windows need "
                         "the tiles firmware and the plugin's events")
    windows = []
    # Boot: from power-on to the restore's last store into NVM (its boot counter).
    boot_end = restores[0][2] + 2 if restores else probe.event_counts(RESTORE)[0] + 1
    windows.append(Window("boot", "boot and restore", 0, boot_end,
                          stores=_stores_between(probe, RESTORE, 0, boot_end),
                          entries=_phase_entries(probe, 0, boot_end)))
    # Inputs: to the last store of the commit that starts the inference.
    first_commit = commits[0]
    if first_commit[0] < entries[0][1]:
        windows.append(Window("inputs", "input load and FRESH->RUNNING commit", boot_end,
                              first_commit[2] + 2, commit=first_commit[1:],
                              stores=_stores_between(probe, COMMIT, *first_commit[1:]),
                              entries=_phase_entries(probe, boot_end, first_commit[2] + 2)))
    by_task = collections.defaultdict(list)
    for task, count in entries:
        by_task[task].append(count)
    for task in sorted(by_task):
        info = dict(tasks[task]) if task < len(tasks) else {}
        kernel = info.get("kernel", f"task {task}")
        batches = by_task[task]
        split = int(info.get("chunks", 1) or 1) > 1
        chosen = ({i: f"chunk {i}" for i in range(min(split_batches, len(batches)))}
                  if split else {0: "first batch"})
        chosen.setdefault(len(batches) - 1, "last batch")
        for i in sorted(chosen):
            commit = _commit_after(commits, batches[i])
            label = f"{kernel} {chosen[i]}" + (" (only batch)" if len(batches) == 1 else "")
            windows.append(Window("split" if split else "batch", label, batches[i],
                                  commit[2] + 2, commit=commit[1:], kernel=kernel,
                                  stores=_stores_between(probe, COMMIT, *commit[1:])))
    # Outputs: from after the last operator's commit to the exit (output write, any final
    # commit, and the end of the run; a failure there must not start a second inference).
    last = _commit_after(commits, entries[-1][1])
    end = probe.instructions_total
    windows.append(Window("outputs", "output write, final commit and exit", last[2] + 2, end,
                          stores=_stores_between(probe, COMMIT, last[2] + 2, end),
                          entries=_phase_entries(probe, last[2] + 2, end)))
    return windows


def recovery_windows(probe: RunResult, commit_index: int = 1, offsets=None) -> list[Window]:
    """Two-failure windows: the first failure at every point of one commit (its first
    store to just after its last; :meth:`Window.key_points` picks those around each store),
    the second ``d`` instructions later, inside the boot that recovers from the first.

    Parameters
    ----------
    commit_index : int
        Which commit (in the order of the run; 0 is the FRESH -> RUNNING commit).
    offsets : sequence of int, optional
        The second failure's offsets ``d`` from the first. The recovery boot repeats the
        continuous run's boot, so ``d`` below the boot window's length falls inside it;
        the default takes the boot's first instruction, its middle, and each instruction
        from the restore's first NVM store to just after its last.
    """
    commits = _commit_spans(probe)
    _, first, last = commits[commit_index]
    if offsets is None:
        restores = _restore_spans(probe)
        _, r_first, r_last = restores[0]
        offsets = [0, r_first // 2, *range(r_first, r_last + 2)]
    stores = _stores_between(probe, COMMIT, first, last)
    return [Window("recovery", f"commit {commit_index}, then boot +{d}", first, last + 2,
                   commit=(first, last), then=(int(d),), stores=stores) for d in offsets]


@dataclasses.dataclass
class Baseline:
    """The uninterrupted run every run of a campaign is checked against.

    Attributes
    ----------
    continuous : RunResult
        The same firmware without failures (with the plugin's events and stores).
    reference : list of numpy.ndarray
        The expected outputs (usually ``continuous.outputs``).
    max_redo : int or None
        Instructions of re-executed work one failure may cost (one power cycle: the work
        since the last commit and a boot); None skips this bound.

    Committed progress is kept when a run re-executes no more than its failures allow.
    Up to its first failure a run is the continuous run, so the first failure point ``k``
    says exactly what may be redone: the tile batch it interrupted when ``k`` lies between
    a batch's first instruction and just after the last store of its commit (none
    elsewhere), and the input load when ``k`` comes no later than just after the
    FRESH -> RUNNING commit. Each later failure may redo one more batch, unless it falls
    inside the boot that follows the previous failure (a boot commits nothing, so a
    failure there must cost nothing more). A failure after the last operator's commit
    may redo nothing: a finished inference is never computed again.
    """

    continuous: RunResult
    reference: list
    max_redo: int | None = None

    def __post_init__(self):
        commits = _commit_spans(self.continuous)
        entries = [count for _, count in _task_entries(self.continuous)]
        self.batch_spans = [(e, _commit_after(commits, e)[2]) for e in entries]
        first = commits[0] if commits else None
        self.inputs_committed = (first[2] + 1 if first is not None and entries
                                 and first[0] < entries[0] else -1)
        self.input_reads = len(self.continuous.event_counts(READ_INPUTS))
        restores = _restore_spans(self.continuous)
        self.boot_length = restores[0][2] + 2 if restores else 0

    @property
    def batches(self) -> int:
        return len(self.batch_spans)

    def allowed_redo(self, failure_points) -> tuple[int, int]:
        """``(batches, input loads)`` a run with these failures may repeat."""
        if not failure_points:
            return 0, 0
        k = failure_points[0]
        batches = int(any(entry <= k <= last + 1 for entry, last in self.batch_spans))
        for before, after in zip(failure_points, failure_points[1:]):
            batches += int(after - before >= self.boot_length)
        inputs = len(failure_points) if k <= self.inputs_committed else 0
        return batches, inputs

    def problem(self, outcome: RunResult, scheduled=None) -> str | None:
        """What is wrong with ``outcome`` (None: nothing): ``"unfinished"``, ``"mismatch"``,
        ``"misplaced"`` (the failures are not the ``scheduled`` points) or
        ``"lost_progress"`` (more re-executed than the failures allow, see the class
        docstring)."""
        if not outcome.finished:
            return "unfinished"
        if not _same(outcome.outputs, self.reference):
            return "mismatch"
        if scheduled is not None and list(outcome.failure_points) != list(scheduled):
            return "misplaced"
        if len(outcome.failure_points) != outcome.failures:
            return "misplaced"
        batches, inputs = self.allowed_redo(outcome.failure_points)
        if len(_task_entries(outcome)) - self.batches > batches:
            return "lost_progress"
        if len(outcome.event_counts(READ_INPUTS)) - self.input_reads > inputs:
            return "lost_progress"
        extra = outcome.instructions_total - self.continuous.instructions_total
        if self.max_redo is not None and extra > self.max_redo * outcome.failures:
            return "lost_progress"
        return None


@dataclasses.dataclass
class CampaignResult:
    """What a campaign did and whether every run gave the uninterrupted outputs."""

    kind: str
    runs: int = 0
    failures: int = 0
    mismatches: list = dataclasses.field(default_factory=list)  # seeds or failure points
    unfinished: list = dataclasses.field(default_factory=list)
    #: Failure points after which the firmware redid more work than allowed: committed
    #: progress was lost even though the outputs came out right.
    lost_progress: list = dataclasses.field(default_factory=list)
    #: Runs whose failures were not where (or as many as) the schedule said.
    misplaced: list = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.unfinished or self.lost_progress or self.misplaced)

    def record(self, key, problem: str | None) -> None:
        if problem is not None:
            {"unfinished": self.unfinished, "mismatch": self.mismatches,
             "misplaced": self.misplaced, "lost_progress": self.lost_progress}[problem].append(key)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"ok": self.ok}


def _intervals(points) -> list[tuple[int, int]]:
    """Sorted points as half-open ``(start, stop)`` runs of consecutive values."""
    runs = []
    for p in sorted(points):
        if runs and runs[-1][1] == p:
            runs[-1][1] = p + 1
        else:
            runs.append([p, p + 1])
    return [tuple(r) for r in runs]


def _same(outputs, reference) -> bool:
    return (outputs is not None and len(outputs) == len(reference)
            and all(np.array_equal(a, b) for a, b in zip(outputs, reference)))


def progress_floor(windows) -> int:
    """The shortest power cycle that always makes progress: a boot plus the longest span
    from a boot's end (or a batch's first instruction) to the last store of the next
    commit. Random cycles at least this long cannot livelock."""
    boot = next(len(w) for w in windows if w.phase == "boot")
    longest = max(len(w) for w in windows if w.phase in ("inputs", "batch", "split"))
    return boot + longest + 1


def random_campaign(project, inputs, reference, *, min_instructions: int,
                    max_instructions: int, min_failures: int = 1000, first_seed: int = 0,
                    mode: str | None = None, timeout: float = 600.0,
                    baseline: Baseline | None = None, max_runs: int | None = None
                    ) -> CampaignResult:
    """Run with seeds ``first_seed, first_seed + 1, ...`` until ``min_failures`` failures
    (or ``max_runs`` runs).

    Each run must finish with the reference outputs and, given a ``baseline``, keep its
    committed progress and fail exactly where its seeded budgets end (see
    :meth:`Baseline.problem`). A run without any failure ends the campaign (the inference
    fits one power cycle of this schedule): callers that need failures assert
    ``result.failures``. ``details["failures_per_run"]`` lists each run's failures.
    """
    result = CampaignResult("random", details={"min": min_instructions, "max": max_instructions,
                                               "seeds": [], "failures_per_run": []})
    seed = first_seed
    while result.failures < min_failures and (max_runs is None or result.runs < max_runs):
        schedule = Random(seed, min_instructions, max_instructions)
        outcome = run(project, inputs, power=schedule, mode=mode, timeout=timeout)
        result.runs += 1
        result.failures += outcome.failures
        result.details["seeds"].append(seed)
        result.details["failures_per_run"].append(outcome.failures)
        if baseline is None:
            problem = ("unfinished" if not outcome.finished
                       else None if _same(outcome.outputs, reference) else "mismatch")
        else:
            # Boot i fails once its budget is spent: at the running sum of the budgets.
            ends = np.cumsum(schedule.budgets(outcome.failures)).tolist()
            problem = baseline.problem(outcome, ends)
        result.record(seed, problem)
        if problem == "unfinished" or outcome.failures == 0:
            break
        seed += 1
    return result


def task_windows(project, inputs, tasks, mode: str | None = None):
    """Per task: ``(kernel, start, stop)`` from its first tile batch's first instruction to
    just after the last NVM store of the commit that follows it, as recorded by the
    plugin in one continuous run.

    Parameters
    ----------
    tasks : list of (str, int) or dict
        The model's task table in order: kernel name (and number of commits, unused), or
        ``model.json``'s task dicts.
    """
    probe = run(project, inputs, mode=mode)
    table = [t if isinstance(t, dict) else {"kernel": t[0]} for t in tasks]
    return [(w.kernel, w.start, w.stop) for w in phase_windows(probe, table)
            if w.phase in ("batch", "split") and not w.label.endswith("last batch")]


def exhaustive_campaign(project, inputs, reference, windows, *, mode: str | None = None,
                        max_points: int | None = None, max_redo: int | None = None,
                        timeout: float = 600.0, baseline: Baseline | None = None,
                        head: int = 0, points=None) -> CampaignResult:
    """One run per failure point of each window, each checked by :meth:`Baseline.problem`.

    Parameters
    ----------
    windows : list of Window or (str, int, int)
        The windows; a ``(label, start, stop)`` tuple is a window of phase ``"batch"``.
    max_points : int, optional
        Sweep at most this many points per window: the first ``head`` and the last
        ``max_points - head`` (the end of the batch and its commit).
    max_redo : int, optional
        Re-executed instructions one failure may cost (one power cycle); more counts as
        lost progress, as does re-running more tile batches than there were failures.
    baseline : Baseline, optional
        The uninterrupted run (default: one continuous run of ``mode``).
    points : callable, optional
        ``points(window) -> list of int``, the points to sweep in a window (for instance
        ``Window.key_points``); overrides ``max_points``.

    ``details["windows"]`` lists ``(label, start, stop)`` per window and
    ``details["by_window"]`` the phase, points swept, failures and problems of each.
    """
    if baseline is None:
        continuous = run(project, inputs, mode=mode, timeout=timeout)
        baseline = Baseline(continuous, reference, max_redo)
    result = CampaignResult("exhaustive", details={"windows": [], "by_window": [],
                                                   "max_redo": baseline.max_redo})
    for window in windows:
        if not isinstance(window, Window):
            label, start, stop = window
            window = Window("batch", label, start, stop)
        if points is not None:
            chosen = list(points(window))
        elif max_points is not None:
            chosen = window.sample(head, max_points - head)
        else:
            chosen = list(window.points)
        outcomes = run_exhaustive(project, inputs, chosen, mode=mode, timeout=timeout,
                                  then=window.then)
        row = {"phase": window.phase, "label": window.label, "start": window.start,
               "stop": window.stop, "commit": window.commit, "points": len(chosen),
               "swept": _intervals(chosen),
               "failures": 0, "identical": 0, "progress_kept": 0, "problems": []}
        for k, outcome in zip(chosen, outcomes):
            scheduled = [k, *(k + d for d in window.then)]
            problem = baseline.problem(outcome, scheduled)
            result.runs += 1
            result.failures += outcome.failures
            result.record(k, problem)
            row["failures"] += outcome.failures
            row["identical"] += problem not in ("unfinished", "mismatch")
            row["progress_kept"] += problem is None
            if problem is not None:
                row["problems"].append((k, problem))
        result.details["windows"].append((window.label, window.start, window.stop))
        result.details["by_window"].append(row)
    return result

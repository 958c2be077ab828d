"""Failure campaigns: many power failures against one firmware, outputs always checked.

The property under test is the project's promise: under any power failures, the outputs
equal those of an uninterrupted run, bit for bit. Two campaigns check it:

* :func:`random_campaign`: seeded random power-cycle lengths, run after run, until a number
  of failures has been injected;
* :func:`exhaustive_campaign`: one run per instruction of a window, each with exactly one
  failure there. :func:`task_windows` finds, for every operator of the model, a window that
  starts at its first tile and covers a whole batch of tiles and the commit after it.

Each campaign logs its seeds and windows in its summary, so any failing case can be rerun.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .power import Random
from .qemu import MAX_FUNCTIONS, run, run_exhaustive

COMMIT = "intm_progress_commit"


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
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.unfinished and not self.lost_progress

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"ok": self.ok}


def _same(outputs, reference) -> bool:
    return outputs is not None and all(np.array_equal(a, b) for a, b in zip(outputs, reference))


def random_campaign(project, inputs, reference, *, min_instructions: int,
                    max_instructions: int, min_failures: int = 1000, first_seed: int = 0,
                    mode: str | None = None, timeout: float = 600.0) -> CampaignResult:
    """Run with seeds ``first_seed, first_seed + 1, ...`` until ``min_failures`` failures."""
    result = CampaignResult("random", details={"min": min_instructions, "max": max_instructions,
                                               "seeds": []})
    seed = first_seed
    while result.failures < min_failures:
        schedule = Random(seed, min_instructions, max_instructions)
        outcome = run(project, inputs, power=schedule, mode=mode, timeout=timeout)
        result.runs += 1
        result.failures += outcome.failures
        result.details["seeds"].append(seed)
        if not outcome.finished:
            result.unfinished.append(seed)
            break
        if not _same(outcome.outputs, reference):
            result.mismatches.append(seed)
        if outcome.failures == 0:
            break  # the inference fits one power cycle of this schedule: nothing to inject
        seed += 1
    return result


def task_windows(project, inputs, tasks, mode: str | None = None, margin: int = 300):
    """Per task: ``(name, start, stop)`` covering its first batch of tiles and its commit.

    Parameters
    ----------
    tasks : list of (str, int)
        The model's task table in order: kernel name and number of commits (see
        :class:`~tvm_intermittent.codegen.tiling.TilePlan`).
    margin : int
        Instructions added after the average batch, to cover the commit and the executor.

    The window starts at the task's first instruction (found with the plugin's function
    counters) and spans the task's length divided by its number of commits, plus ``margin``:
    batches are equal but the last, so that covers the first batch and the commit after it.
    """
    starts = []
    per_run = MAX_FUNCTIONS
    for first in range(0, len(tasks), per_run):
        names = tuple(f"intm_task_{i}" for i in range(first, min(len(tasks), first + per_run)))
        probe = run(project, inputs, mode=mode, functions=names)
        starts += [probe.range_first[n] for n in names]
        end = probe.marks[-1]
    windows = []
    for i, ((name, commits), start) in enumerate(zip(tasks, starts)):
        stop = starts[i + 1] if i + 1 < len(starts) else end
        length = -(-(stop - start) // max(commits, 1)) + margin
        windows.append((name, start, min(stop, start + length)))
    return windows


def exhaustive_campaign(project, inputs, reference, windows, *, mode: str | None = None,
                        max_points: int | None = None, max_redo: int | None = None,
                        timeout: float = 600.0) -> CampaignResult:
    """One run per failure point of each window; ``max_points`` keeps each window's last
    points (the end of the tile batch and its commit) when the window is longer.

    With ``max_redo``, a run that executes more than ``max_redo`` instructions beyond the
    uninterrupted run counts as lost progress: one failure may cost at most the work since
    the last commit and a boot, so more means a commit was lost (outputs can still be right,
    since starting over from the inputs is correct, only slow)."""
    result = CampaignResult("exhaustive", details={"windows": [], "max_redo": max_redo})
    continuous = run(project, inputs, mode=mode, timeout=timeout).instructions_total
    for name, start, stop in windows:
        if max_points is not None and stop - start > max_points:
            start = stop - max_points
        runs = run_exhaustive(project, inputs, (start, stop), mode=mode, timeout=timeout)
        result.details["windows"].append((name, start, stop))
        for k, outcome in zip(range(start, stop), runs):
            result.runs += 1
            result.failures += outcome.failures
            if not outcome.finished:
                result.unfinished.append(k)
            elif not _same(outcome.outputs, reference):
                result.mismatches.append(k)
            elif max_redo is not None and outcome.instructions_total - continuous > max_redo:
                result.lost_progress.append(k)
    return result

"""Per-operator profile of one continuous inference on QEMU: where the instructions go.

The executor runs the task table in order, each task once from its first tile to its last
(``runtime/intm_executor.c``), so in a run without power failures the instruction count at
the first entry of ``intm_task_<N>`` is where task N starts, and where task N - 1 ends.
The plugin records that count at every entry of every task function (``RunResult.events``),
so one continuous run gives every start; the spans between them add up to
``instructions_model`` exactly, with nothing estimated.

A task's span holds all it costs the inference: its kernel and the kernel's callees, the
executor's loop over its tiles and the commits after its batches of tiles (counted from
the commit function's entries, ``RunResult.commits``). What comes before the first task
(restoring the progress record) is its own row, ``startup``.

The NVM bytes a task reads and writes are those of its tiles (``RunResult.traffic_by_task``:
the kernel and its callees, commits apart): in a continuous run a task writes each byte of
its output once, so its written bytes are its output tensor's size (more where a kernel
keeps partial sums in NVM). The commits' own NVM traffic is the run's ``commit`` phase.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .qemu import run
from .toolchain import build_project, symbols

#: The C name of the function that runs the tiles of task N (``codegen/model_source.py``).
TASK_FUNCTION = "intm_task_{}"
#: The row of the instructions between the first mark and the first task.
STARTUP = "startup"


@dataclasses.dataclass
class ProfileRow:
    """One task of the task table (or the startup before the first).

    Attributes
    ----------
    task : int or None
        Index in the task table (None for the startup row).
    operator : str
        The task's kernel (``model.json``'s ``tasks[].kernel``).
    macs : int
        Its multiply-accumulates (0 for operators without MACs).
    instructions : int
        Instructions from its first entry to the next task's (to the closing mark for the
        last): kernel, executor loop and commits.
    commits : int
        Commits of the progress record within that span.
    share : float
        ``instructions`` over the model's instructions.
    nvm_read_bytes, nvm_written_bytes : int
        Bytes its tiles loaded from and stored into NVM (commits apart; 0 for startup).
    """

    task: int | None
    operator: str
    macs: int
    instructions: int
    commits: int
    share: float
    nvm_read_bytes: int = 0
    nvm_written_bytes: int = 0

    @property
    def instructions_per_mac(self) -> float | None:
        return self.instructions / self.macs if self.macs else None

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "instructions_per_mac": self.instructions_per_mac}


@dataclasses.dataclass
class Profile:
    """The rows of one inference, in execution order, and what they add up to."""

    rows: list
    instructions_model: int
    macs: int
    runs: int
    outputs: list

    def to_dict(self) -> dict:
        return {"instructions_model": self.instructions_model, "macs": self.macs,
                "runs": self.runs, "rows": [r.to_dict() for r in self.rows]}

    def table(self) -> str:
        """The rows as aligned text, with a total line."""
        head = f"{'task':>4}  {'operator':<32} {'MACs':>11} {'instructions':>13} " \
               f"{'instr/MAC':>9} {'commits':>7} {'share':>6} {'NVM read B':>11} " \
               f"{'NVM written B':>13}"
        lines = [head]
        for row in self.rows:
            ipm = f"{row.instructions_per_mac:.2f}" if row.macs else "-"
            task = "" if row.task is None else str(row.task)
            lines.append(f"{task:>4}  {row.operator:<32} {row.macs:>11,} "
                         f"{row.instructions:>13,} {ipm:>9} {row.commits:>7} "
                         f"{row.share:>6.1%} {row.nvm_read_bytes:>11,} "
                         f"{row.nvm_written_bytes:>13,}")
        total_ipm = f"{self.instructions_model / self.macs:.2f}" if self.macs else "-"
        read = sum(r.nvm_read_bytes for r in self.rows)
        written = sum(r.nvm_written_bytes for r in self.rows)
        lines.append(f"{'':>4}  {'total':<32} {self.macs:>11,} {self.instructions_model:>13,} "
                     f"{total_ipm:>9} {sum(r.commits for r in self.rows):>7} {1:>6.1%} "
                     f"{read:>11,} {written:>13,}")
        lines.append("(NVM bytes of the tiles; the commits' are apart)")
        return "\n".join(lines)


def profile(project_dir, inputs, *, timeout: float = 600.0) -> Profile:
    """Profile one continuous inference of an exported project on QEMU, per task.

    Parameters
    ----------
    project_dir : path-like
        A project from :meth:`~tvm_intermittent.builder.Artifact.export`.
    inputs : list of numpy.ndarray
        The model's inputs.
    timeout : float
        Seconds each QEMU run may take.

    Returns
    -------
    Profile
        One row per task plus the startup row; their instructions add up to the model's.
    """
    project = Path(project_dir)
    tasks = json.loads((project / "model.json").read_text())["tasks"]
    table = symbols(build_project(project, "qemu"))
    names = [TASK_FUNCTION.format(t) for t in range(len(tasks))]
    missing = [n for n in names if table.get(n, (0, 0))[1] == 0]
    if missing:
        raise RuntimeError(f"the firmware has no task functions {missing}: the project "
                           "predates the profile, or its task table changed; recompile it")
    result = run(project, inputs, timeout=timeout)
    if len(result.marks) != 2:
        raise RuntimeError(f"a continuous run marked {len(result.marks)} times, not 2")
    starts = {}
    for name, count in result.events:
        starts.setdefault(name, count)
    missing = [n for n in names if n not in starts]
    if missing:
        raise RuntimeError(f"the continuous run never entered {missing}")
    begin, end = result.marks
    edges = [begin] + [starts[n] for n in names] + [end]
    if any(b > a for a, b in zip(edges[1:], edges)):
        raise RuntimeError(f"tasks did not start in table order: {edges}")
    commits = list(result.commits)
    total = end - begin
    rows = []
    for index, (lo, hi) in enumerate(zip(edges, edges[1:])):
        task = None if index == 0 else index - 1
        spec = tasks[task] if task is not None else {"kernel": STARTUP}
        work = result.traffic_by_task.get(task)
        rows.append(ProfileRow(task, spec["kernel"], int(spec.get("macs", 0)), hi - lo,
                               sum(1 for c in commits if lo <= c < hi),
                               (hi - lo) / total if total else 0.0,
                               int(work.nvm_load_bytes) if work else 0,
                               int(work.nvm_store_bytes) if work else 0))
    return Profile(rows, total, sum(r.macs for r in rows), 1, result.outputs)

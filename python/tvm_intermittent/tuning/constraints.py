"""The hard constraints no candidate may violate, checked before it is measured.

A candidate that breaks one is refused with the reason (:class:`.knobs.CandidateError`) by
the builder and the design space's postprocessor alike, and a tuning record that breaks one
on the board a log is applied to is skipped with that reason (:mod:`.apply`):

* **idempotence**: the plan of the (split) kernel passes
  :func:`..codegen.idempotence.check_idempotence`, the compiler's own check;
* **one charge**: a commit batch, its commit and the boot and restore before it fit the
  power cycle budget of the board under the environment, by the tiler's own accounting
  (:func:`..codegen.tiling._sizing` with margin :data:`TUNING_MARGIN`, the batch's work from
  :func:`..energy.costs.tile_work`), and where QEMU measured the kernel's tiles on a board of
  the same ISA (the same instructions and NVM accesses), by the measured work too, whichever
  is larger;
* **SRAM**: the firmware's stack reserve, runtime variables and the kernels' scratch fit the
  board's SRAM (``builder._check_memory``'s accounting), a staged operand's buffer
  (:mod:`.staging`) included.

The tuner may use more of a charge than the analytic rule (margin 0.5): its candidates are
measured under the environment, where a batch that does not fit never commits and the
candidate fails; the margin left covers the spread of tiles around their mean.
"""

from __future__ import annotations

import dataclasses

from ..codegen.c_printer import stack_scratch_bytes
from ..codegen.idempotence import IdempotenceError, check_idempotence
from ..codegen.tiling import TilePlan, TilingPolicy, _sizing, commit_limit
from ..energy.costs import tile_work
from ..energy.model import Work
from .knobs import CandidateError, Knobs, plan_of, tiled_func
from .staging import staged_bytes

#: Share of the power cycle left after boot, restore and commit that a tuned batch may use.
TUNING_MARGIN = 0.8


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A valid candidate: its knobs, the kernel as they cut it and the plan."""

    knobs: Knobs
    func: object
    plan: TilePlan
    #: Predicted work of one batch with its commit, in the tiler's unit.
    batch_cost: int
    #: What one charge leaves for a batch, in the same unit (None: no limit).
    batch_limit: int | None


#: ``(workload hash, depth, split, chunks, stage, order, unroll) -> problem or ""``, the
#: workload a kernel variant's own: the check reads the kernel's TIR and the plan's depth
#: and chunks only (not its batch, not the board).
_IDEMPOTENCE: dict = {}


def _idempotence_problem(task, knobs: Knobs, func, plan: TilePlan) -> str:
    from .log import workload_key  # pylint: disable=import-outside-toplevel

    key = (workload_key(task.mod), knobs.depth, knobs.split, knobs.chunks, knobs.stage,
           knobs.order, knobs.unroll)
    if key not in _IDEMPOTENCE:
        try:
            check_idempotence(func, task.kernel, plan)
            _IDEMPOTENCE[key] = ""
        except IdempotenceError as err:
            _IDEMPOTENCE[key] = str(err)
    return _IDEMPOTENCE[key]


def check_idempotent(task, knobs: Knobs, func, plan: TilePlan) -> None:
    """Refuse (:class:`CandidateError`) a candidate whose tiles are not idempotent; ``func``
    and ``plan`` are the candidate's (:class:`Candidate`)."""
    task = task.for_knobs(knobs)  # a kernel variant's verdict is its own kernel's
    problem = _idempotence_problem(task, knobs, func, plan)
    if problem:
        raise CandidateError(f"operator {task.kernel}: {knobs.describe()} is not idempotent: "
                             f"{problem}")


def check_candidate(task, knobs: Knobs, board, env, *, static_scratch: int = 0,
                    measured_tile: Work | None = None, idempotence: bool = True) -> Candidate:
    """The candidate ``knobs`` make of ``task`` on ``board`` under ``env``, or the reason it
    is refused.

    Parameters
    ----------
    task : TuningTask
    knobs : Knobs
    board : Board
    env : TuningEnvironment
        Its power cycle budget (continuous power: the board's own capacitor's, so that the
        firmware still runs on it).
    static_scratch : int
        Bytes of static kernel scratch of the whole model (``ModelSources``).
    measured_tile : Work, optional
        One tile's work as QEMU measured it (a mean over the task's tiles, commits
        excluded), when this candidate was measured on a board of the same ISA.
    idempotence : bool
        False: every constraint but idempotence, for a caller that only ranks candidates
        and leaves that check to :func:`check_idempotent` on the few it picks (it walks the
        kernel's tiles and takes seconds on a large kernel: checking a whole design space
        up-front took most of a tuning run's time on small models). Whatever builds a
        candidate checks it whole.

    Raises
    ------
    CandidateError
        Naming the operator, the constraint and the numbers.
    """
    # pylint: disable=import-outside-toplevel
    from ..builder import RUNTIME_SRAM_BYTES, STACK_RESERVE_BYTES

    from .describe import features_of  # pylint: disable=import-outside-toplevel

    task = task.for_knobs(knobs)  # a kernel variant: its own kernel (CandidateError if none)
    features = features_of(task, knobs)
    func = tiled_func(task.func, knobs)
    tile = None

    def cost(tiled, plan):
        nonlocal tile
        tile = tile_work(tiled, plan, task.placement or None, features=features,
                         kernel=task.kernel)
        return max(1, int(round(tile.instructions)))

    plan = plan_of(knobs, task.func, task.kernel, usable=task.usable, tile_cost=cost)
    if idempotence:
        check_idempotent(task, knobs, func, plan)
    staged, staged_static = staged_bytes(func)
    need = STACK_RESERVE_BYTES + RUNTIME_SRAM_BYTES + static_scratch + stack_scratch_bytes(
        func, task.kernel) + staged_static
    if need > board.sram_bytes:
        copy = f" ({staged:,} of them its staged operand's copy)" if staged else ""
        raise CandidateError(f"operator {task.kernel}: {knobs.describe()} needs {need:,} bytes "
                             f"of SRAM{copy}, board {board.name} has {board.sram_bytes:,}")
    budget = env.tile_budget(board)
    sizing = _sizing(budget, board, TilingPolicy(margin=TUNING_MARGIN))
    batch = sizing.cost(tile * plan.tiles_per_commit)
    if measured_tile is not None:
        batch = max(batch, sizing.cost(measured_tile * plan.tiles_per_commit))
    if batch > sizing.target:
        raise CandidateError(
            f"operator {task.kernel}: {knobs.describe()} needs about {batch:,} instructions "
            f"per commit batch, but one power cycle of board {board.name} under {env.name} "
            f"pays for {budget:,} ({commit_limit(sizing.target, 'per batch')} with the tuner's "
            f"margin {TUNING_MARGIN})")
    return Candidate(knobs, func, dataclasses.replace(plan, tile_instructions=int(
        sizing.cost(tile))), batch, sizing.target)

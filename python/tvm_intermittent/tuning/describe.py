"""What a cost model knows of one candidate: its kernel's executed counts and its plan.

:func:`describe` is the one reading of a candidate that cost models share: the analytic model
(:mod:`.analytic_model`) turns it into predicted work through the calibrated kernel model,
and a learned model takes it as its features (the kernel's counts scaled to one tile, and
the plan's shape).
"""

from __future__ import annotations


from ..codegen.tiling import TilePlan
from ..energy.kernel_cost import Features, kernel_features
from .knobs import Knobs, knobs_of, plan_of, tiled_func


def _knobs(candidate_or_sch) -> Knobs:
    if isinstance(candidate_or_sch, Knobs):
        return candidate_or_sch
    sch = getattr(candidate_or_sch, "sch", candidate_or_sch)  # a MeasureCandidate
    return knobs_of(sch)


#: ``(knobs, workload, placement) -> Features`` of the rewritten kernel: the same kernel of
#: the same model is tuned again by a resumed run or for another board in one process.
_TILED_FEATURES: dict = {}


def _tiled_features(knobs: Knobs, task) -> Features:
    from .log import workload_key  # pylint: disable=import-outside-toplevel

    key = (knobs, workload_key(task.mod), tuple(sorted((task.placement or {}).items())))
    if key not in _TILED_FEATURES:
        _TILED_FEATURES[key] = kernel_features(tiled_func(task.func, knobs),
                                               task.placement or None)
    return _TILED_FEATURES[key]


def features_of(task, knobs: Knobs) -> Features:
    """Executed counts of ``task``'s kernel as ``knobs`` cut it (a split adds a loop and a
    bind, a loop order or an unroll changes the loops, a staged operand adds its copy;
    without any, the kernel's own; a kernel variant's are its own kernel's), computed once
    per kernel and rewrite."""
    task = task.for_knobs(knobs)
    if not knobs.split and not knobs.order and knobs.unroll == 1 and not knobs.stage:
        return task.features
    return _tiled_features(Knobs(knobs.depth, knobs.split, stage=knobs.stage,
                                 order=knobs.order, unroll=knobs.unroll), task)


def _tile_instructions(task, knobs: Knobs, func, plan) -> int:
    from ..energy.costs import tile_work  # pylint: disable=import-outside-toplevel

    work = tile_work(func, plan, task.placement or None, features=features_of(task, knobs),
                     kernel=task.kernel)
    return max(1, int(round(work.instructions)))


def describe(candidate_or_sch, task) -> tuple[Features, TilePlan]:
    """The executed counts of the candidate's kernel and the plan that cuts it.

    Parameters
    ----------
    candidate_or_sch : MeasureCandidate, tvm.s_tir.Schedule, IRModule or Knobs
        A candidate of ``task`` (its trace applied), or its knobs.
    task : TuningTask
        The kernel it tiles.

    Returns
    -------
    (Features, TilePlan)
        Counts of the whole kernel as the plan cuts it (a split loop adds its own) and the
        plan, whose ``tile_instructions`` is the calibrated prediction of one tile.

    Raises
    ------
    CandidateError
        Knobs that name no tiling of the kernel (or a variant the lowering does not build).
    """
    knobs = _knobs(candidate_or_sch)
    task = task.for_knobs(knobs)
    plan = plan_of(knobs, task.func, task.kernel, usable=task.usable,
                   tile_cost=lambda func, p: _tile_instructions(task, knobs, func, p))
    return features_of(task, knobs), plan

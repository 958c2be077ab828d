"""What a cost model knows of one candidate: its kernel's executed counts and its plan.

:func:`describe` is the one reading of a candidate that cost models share: the analytic model
(:mod:`.analytic_model`) turns it into predicted work through the calibrated kernel model,
and a learned model takes it as its features (the kernel's counts scaled to one tile, and
the plan's shape).
"""

from __future__ import annotations

import functools

from ..codegen.tiling import TilePlan
from ..energy.kernel_cost import Features, kernel_features
from .knobs import Knobs, knobs_of, plan_of, tiled_func


def _knobs(candidate_or_sch) -> Knobs:
    if isinstance(candidate_or_sch, Knobs):
        return candidate_or_sch
    sch = getattr(candidate_or_sch, "sch", candidate_or_sch)  # a MeasureCandidate
    return knobs_of(sch)


@functools.lru_cache(maxsize=4096)
def _tiled_features(knobs: Knobs, task) -> Features:
    return kernel_features(tiled_func(task.func, knobs), task.placement or None)


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
        Knobs that name no tiling of the kernel.
    """
    knobs = _knobs(candidate_or_sch)
    plan = plan_of(knobs, task.func, task.kernel, usable=task.usable,
                   features=task.features, placement=task.placement or None)
    features = (task.features if not knobs.split
                else _tiled_features(knobs, task))
    return features, plan

"""Compile for a deadline: the tiling whose predicted end-to-end latency is lowest.

Tile size and commit batch trade against each other under failures: small tiles and
frequent commits lose little work per failure but pay a commit (and its NVM writes) often;
large ones commit rarely and lose more. Which wins depends on the environment (budget per
charge, recharge time), so ``compile --deadline S --power-env E`` compiles the model once per
candidate of the tiler's knobs (``codegen.tiling.TilingPolicy``: ``margin``, the share of a
charge one batch may use, and ``batch_scale``, which scales the commit batch), predicts each
under the environment (:func:`.predict.predict`), and keeps the lowest latency. When no
candidate meets the deadline, it refuses with the reason and the best latency reached.
"""

from __future__ import annotations

import dataclasses
import itertools

from ..errors import DoesNotFitError, InputError
from .predict import Prediction, predict

#: The knobs tried: every margin with every batch scale (the tiler's default is 0.5, 1.0).
MARGINS = (0.25, 0.5, 0.75)
BATCH_SCALES = (0.5, 1.0, 2.0)


class DeadlineError(DoesNotFitError):
    """No tiling meets the deadline (or none is schedulable) under the environment."""


@dataclasses.dataclass
class DeadlineResult:
    """The chosen build, its prediction, and every candidate tried (knobs and outcome)."""

    artifact: object
    prediction: Prediction
    policy: dict
    tried: list

    def record(self) -> dict:
        """What ``model.json`` keeps of the search: the deadline, the choice, the prediction."""
        p = self.prediction
        return {"deadline_s": p.deadline_s, "policy": self.policy,
                "environment": p.environment, "candidates": len(self.tried),
                "prediction": {"latency_s": p.latency_seconds, "boots": p.boots,
                               "active_s": p.active_seconds, "recharge_s": p.recharge_seconds,
                               "energy_j": p.energy_j, "costs": p.source}}


def tiling_policies():
    """The candidates, as ``codegen.tiling.TilingPolicy`` values."""
    from ..codegen.tiling import TilingPolicy  # pylint: disable=import-outside-toplevel

    return [TilingPolicy(margin=m, batch_scale=s)
            for m, s in itertools.product(MARGINS, BATCH_SCALES)]


def compile_for_deadline(model, board, environment, deadline_s: float, *, build=None,
                         costs_for=None, policies=None, **build_kwargs) -> DeadlineResult:
    """Compile ``model`` once per tiling candidate; keep the lowest predicted latency.

    Parameters
    ----------
    model : path-like or IRModule
        What :func:`tvm_intermittent.build` takes.
    board : Board
        The board profile.
    environment : PowerEnvironment or Schedule
        Its per-boot budgets and recharge times; the tiles are sized for one of its charges
        (:func:`.analyze.build_options`).
    deadline_s : float
        The latency bound (seconds, > 0).
    build : callable, optional
        ``build(model, target, board=, tiling=, **build_kwargs)`` with ``capacitor_f=`` or
        ``power_env=`` (:func:`.analyze.build_options`); default :func:`tvm_intermittent.build`.
    costs_for : callable, optional
        ``artifact -> Costs``; default the calibrated costs of its manifest.
    policies : list, optional
        The candidates (default :func:`tiling_policies`).

    Raises
    ------
    DeadlineError
        No candidate is schedulable, or none meets the deadline (with the best latency).
    """
    from .analyze import build_options, capacitor_of  # pylint: disable=C0415

    if not deadline_s > 0:
        raise InputError(f"a deadline must be a positive number of seconds, got {deadline_s!r}")
    if build is None:
        from ..builder import build  # pylint: disable=import-outside-toplevel
    policies = tiling_policies() if policies is None else list(policies)
    sizing = build_options(environment, board, build)
    capacitor = capacitor_of(environment, board)
    tried, best = [], None
    for policy in policies:
        knobs = _knobs(policy)
        try:
            artifact = build(model, "intermittent/" + board.name, board=board,
                             tiling=policy, **sizing, **build_kwargs)
        except DoesNotFitError as err:
            tried.append({**knobs, "outcome": f"does not fit: {err}"})
            continue
        costs = costs_for(artifact) if costs_for else None
        prediction = predict(artifact.manifest(), board, environment, costs=costs,
                             deadline_s=deadline_s)
        ok = prediction.finished and prediction.schedulable
        tried.append({**knobs, "outcome": "ok" if ok else "not schedulable",
                      "latency_s": prediction.latency_seconds, "boots": prediction.boots})
        if ok and (best is None or prediction.latency_seconds < best[1].latency_seconds):
            best = (artifact, prediction, knobs)
    if best is None:
        raise DeadlineError(
            f"no tiling of the {len(policies)} tried is schedulable on {board.name} under this "
            f"environment (a capacitor of {capacitor:g} F): "
            + "; ".join(f"margin {t['margin']}, batch x{t['batch_scale']}: {t['outcome']}"
                        for t in tried[:3])
            + "; use a larger capacitor (tvm-intermittent analyze shows the smallest)")
    artifact, prediction, knobs = best
    if not prediction.meets_deadline:
        raise DeadlineError(
            f"no tiling meets the deadline of {deadline_s:g} s on {board.name}: the best of "
            f"{len(policies)} candidates (margin {knobs['margin']}, batch x"
            f"{knobs['batch_scale']}) is predicted at {prediction.latency_seconds:.4g} s "
            f"({prediction.boots} boots, {prediction.recharge_seconds:.4g} s of it recharging); "
            "relax the deadline, or give a larger capacitor or harvester (analyze --deadline "
            "names the capacitor that meets it)")
    return DeadlineResult(artifact, prediction, knobs, tried)


def _knobs(policy) -> dict:
    return {"margin": float(policy.margin), "batch_scale": float(policy.batch_scale)}

"""The analytic cost model: a candidate's predicted end-to-end latency under the environment.

For each candidate it builds the manifest of the whole model with that kernel cut by the
candidate's plan and every other kernel by its default (:func:`.objective.candidate_manifest`)
and simulates the inference's progress under the environment's schedule
(:func:`..energy.predict.predict`): the calibrated instructions and NVM accesses of each tile,
the commits, the boot and restore after each failure, the work lost to each failure and the
recharge time. The score MetaSchedule ranks by (higher is better) is ``1 / latency``; a
candidate that breaks a hard constraint, or whose firmware would never finish, scores 0.
The model has nothing to learn: ``update`` keeps the measurements only to report its error.
"""

from __future__ import annotations

import functools
import json

import numpy as np
from tvm.s_tir import meta_schedule as ms
from tvm.ir.utils import derived_object

from ..board import load_board
from .constraints import check_candidate
from .describe import features_of
from .knobs import CandidateError, Knobs, knobs_of
from .objective import candidate_manifest, predicted_seconds


@derived_object
class AnalyticModel(ms.cost_model.PyCostModel):
    """Predicted latency from the calibrated cost model and the progress simulation.

    Parameters
    ----------
    board : Board or str
    environment : TuningEnvironment
    model : ModelTasks
        The model whose kernels the candidates tile.
    """

    def __init__(self, board, environment, model):
        super().__init__()
        self.board = load_board(board)
        self.environment = environment
        self.model = model
        self.errors: list[float] = []
        self._seconds = functools.lru_cache(maxsize=None)(self._predict)

    def _predict(self, kernel: str, knobs: Knobs) -> float:
        task = self.model.task(kernel)
        try:
            # A ranking: the search checks idempotence on the candidates it picks.
            candidate = check_candidate(task, knobs, self.board, self.environment,
                                        static_scratch=self.model.static_scratch,
                                        idempotence=False)
        except CandidateError:
            return float("inf")
        manifest = candidate_manifest(self.model.manifest, task, candidate.func,
                                      candidate.plan, features_of(task, knobs))
        return predicted_seconds(manifest, self.board, self.environment)

    def predict_seconds(self, task, knobs: Knobs) -> float:
        """Predicted end-to-end latency (seconds) with ``task`` cut by ``knobs``; inf for a
        candidate that breaks a hard constraint or never finishes."""
        return self._seconds(task.kernel, knobs)

    def load(self, path: str) -> None:
        pass  # nothing learnt, nothing to load

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"kind": "analytic", "errors": self.errors}, out)

    def update(self, context, candidates, results) -> None:
        task = self.model.task_of(context.mod)
        for candidate, result in zip(candidates, results):
            if result.run_secs:
                predicted = self.predict_seconds(task, knobs_of(candidate.sch))
                measured = float(np.mean([float(s) for s in result.run_secs]))
                if np.isfinite(predicted) and measured > 0:
                    self.errors.append(abs(predicted - measured) / measured)

    def predict(self, context, candidates) -> np.ndarray:
        task = self.model.task_of(context.mod)
        seconds = np.array([self.predict_seconds(task, knobs_of(c.sch)) for c in candidates])
        with np.errstate(divide="ignore"):
            return np.where(np.isfinite(seconds) & (seconds > 0), 1.0 / seconds, 0.0)

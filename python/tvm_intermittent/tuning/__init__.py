"""Intermittency-aware tuning of the tiling with MetaSchedule.

The pieces, one job each:

* :mod:`.workload`: a kernel's tuning task and its MetaSchedule workload;
* :mod:`.knobs`: the tiling knobs, read from a candidate's trace, and the plan they make;
* :mod:`.loop_rewrites`: the loop order and unroll rewrites inside a tile;
* :mod:`.space`: the design space (traces that sample the knobs);
* :mod:`.constraints`: SRAM, one charge and idempotence, checked before measurement;
* :mod:`.objective`: the power environment (``continuous`` too) and the predicted latency;
* :mod:`.describe`: what a cost model knows of a candidate;
* :mod:`.analytic_model`: the analytic cost model; :func:`cost_model_for` chooses one;
* :mod:`.measure`: the artifact of a built candidate and its measurement on QEMU;
* :mod:`.local`: MetaSchedule's builder and runner for candidates (local workers);
* :mod:`.log`: the tuning log, a MetaSchedule JSON database and its measurement sidecar;
* :mod:`.search`: the tuning loop; :mod:`.apply`: a log applied to a build.

A learned cost model plugs in through :func:`cost_model_for` as ``kind="xgb"``: the module
``tuning/cost_model.py`` provides ``make_cost_model(board, environment, *, model,
describe)`` returning a MetaSchedule cost model, where ``model`` is the
:class:`~.workload.ModelTasks` and ``describe`` is :func:`.describe.describe`.
"""

from __future__ import annotations

from ..errors import InputError
from .describe import describe
from .knobs import CandidateError, Knobs, knobs_of, plan_of
from .measure import measure_artifact
from .objective import CONTINUOUS, environment
from .workload import ModelTasks, TuningTask, extract_tasks, workload_of

#: Cost model kinds :func:`cost_model_for` knows.
COST_MODELS = ("analytic", "xgb")


def learned_model_available() -> bool:
    """Whether the learned (XGBoost) cost model ships in this build."""
    try:
        from . import cost_model  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False
    return hasattr(cost_model, "make_cost_model")


def default_cost_model() -> str:
    """``"xgb"`` when the learned model ships, else ``"analytic"``."""
    return "xgb" if learned_model_available() else "analytic"


def cost_model_for(kind: str | None, board, environment, *, model=None, artifacts=None):
    """The cost model that ranks candidates for ``board`` under ``environment``.

    Parameters
    ----------
    kind : {"analytic", "xgb"} or None
        None: :func:`default_cost_model`.
    board : Board or str
    environment : TuningEnvironment or str
        (:func:`.objective.environment` resolves a name.)
    model : ModelTasks
        The model being tuned.
    artifacts : path-like, optional
        The builder's root directory: the learned model reads each measured candidate's
        per-task counts there when MetaSchedule calls ``update`` (run times alone say too
        little of a tile).

    Raises
    ------
    InputError
        An unknown kind, or ``xgb`` where the learned model does not ship.
    """
    kind = kind or default_cost_model()
    if isinstance(environment, str):
        environment = globals()["environment"](environment)
    if kind == "analytic":
        from .analytic_model import AnalyticModel  # pylint: disable=import-outside-toplevel

        return AnalyticModel(board, environment, model)
    if kind == "xgb":
        if not learned_model_available():
            raise InputError("the learned cost model (xgb) is not part of this build; use "
                             "--cost-model analytic")
        from .cost_model import make_cost_model  # pylint: disable=import-outside-toplevel

        return make_cost_model(board, environment, model=model, describe=describe,
                               artifacts=artifacts)
    raise InputError(f"unknown cost model {kind!r}; known: {', '.join(COST_MODELS)}")


__all__ = ["CONTINUOUS", "COST_MODELS", "CandidateError", "Knobs", "ModelTasks", "TuningTask",
           "cost_model_for", "default_cost_model", "describe", "environment", "extract_tasks",
           "knobs_of", "measure_artifact", "plan_of", "workload_of"]

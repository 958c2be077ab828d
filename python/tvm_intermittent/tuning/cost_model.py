"""The intermittency-aware cost model: learned work per tile, analytic power failures.

A candidate's end-to-end latency under intermittent power is predicted in two parts:

1. **Learned: the work of one tile on the ISA.** The calibrated kernel model
   (:func:`..energy.costs.tile_work`) predicts a tile's instructions and NVM accesses from
   the kernel's exact TIR counts; it is fitted on synthetic kernels, never on this one, and
   misses how GCC compiles this kernel cut this way (a split loop, a short batch). An
   XGBoost regressor per count learns the log-ratio of QEMU's measurement to that
   prediction from the candidates measured so far, on the features of :func:`row`: the
   kernel's counts per tile, the plan (depth, tiles, tiles per commit, chunks), the loop
   extents and the calibrated prediction itself. The counts are instructions and accesses,
   which do not depend on the board, so what is learned on one board holds on every board
   of the same ISA.
2. **Analytic: the board and the power environment.** The learned tiles go into the progress
   simulation of :func:`..energy.predict.predict` with the board's profile and the
   environment's schedule: the NVM wait states and access energy, the commits, boot and
   restore after each failure, the work since the last commit that each failure loses
   (about half a batch), and the recharge time. Its output, the predicted latency, is the
   objective; under ``continuous`` power no boot fails and it is the continuous latency.

The other kernels of the model stay at their default plans while one kernel is tuned; their
work is QEMU's measurement once any candidate of the model has been measured (every
candidate's firmware runs them), the calibrated prediction before.

MetaSchedule's own ``XGBModel`` was measured against this on the same candidates
(``bench/tuning_cost_model.py``): its feature extractor reads the workload's TIR, which is
the same for every candidate of a kernel (the knobs are root-block annotations), so it can
only predict one score per kernel; see ``bench/README.md``.

MetaSchedule hands ``update`` run times only; per-task counts come with :meth:`observe`
(the measurement dict of :func:`.measure.measure_artifact`) or :meth:`fit_log` (a tuning
log's measurements). ``update`` observes the ``measured.json`` a runner left beside the
candidate's artifact when the caller says where artifacts are (``artifacts``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from ..board import load_board
from ..energy import costs as _costs
from ..energy.model import Work
from ..errors import InputError
from .knobs import CandidateError, Knobs, knobs_of

if TYPE_CHECKING:
    import xgboost  # noqa: F401

logger = logging.getLogger(__name__)

#: Learned kinds: what the regressors predict the measured/calibrated log-ratio of.
TARGETS = ("instructions", "nvm_loads", "nvm_stores")
#: Loop extents of the kernel's chain in a row (deeper chains are cut, shorter padded).
MAX_LOOPS = 6
#: Fewest observed candidates before the regressors are used (fewer: the calibrated work).
MIN_SAMPLES = 3
#: Format of :meth:`IntermittentCostModel.save`'s file.
FORMAT = 1


class XGBConfig(NamedTuple):
    """Hyperparameters of the regressors (small trees: a few dozen samples per kernel)."""

    max_depth: int = 3
    eta: float = 0.2
    rounds: int = 120
    min_child_weight: float = 1.0
    subsample: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return {"max_depth": self.max_depth, "eta": self.eta,
                "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                "seed": self.seed, "objective": "reg:squarederror", "nthread": 1,
                "verbosity": 0}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One measured candidate: its row, the calibrated and the measured work of a tile."""

    kernel: str
    knobs: dict
    row: tuple
    calibrated: tuple
    measured: tuple


def feature_kinds() -> list[str]:
    """The kinds of executed node a row counts: those the calibrated kernel model has
    coefficients for (one definition: ``energy/calibration.json``)."""
    return sorted(_costs.kernel_model().coefficients)


def feature_names() -> list[str]:
    """Names of the columns of :func:`row`, in order."""
    return ([f"per_tile:{k}" for k in feature_kinds()]
            + ["per_tile:nvm_loads", "per_tile:nvm_stores", "depth", "log2_tiles",
               "tiles_per_commit", "chunks", "chunk_size", "nest_depth"]
            + [f"extent{i}" for i in range(MAX_LOOPS)]
            + [f"calibrated:{t}" for t in TARGETS])


def calibrated_tile(task, features, plan, tiled) -> Work:
    """One tile's work by the calibrated kernel model (what the regressors correct), of
    ``tiled`` (the kernel as the knobs cut it) with its ``features``."""
    return _costs.tile_work(tiled, plan, task.placement or None, features=features,
                            kernel=task.kernel)


def row(task, features, plan, calibrated: Work) -> np.ndarray:
    """The regressors' features of ``task`` cut by ``plan`` (see :func:`feature_names`)."""
    tiles = max(1, int(plan.extent))
    counts = [features.counts.get(k, 0.0) / tiles for k in feature_kinds()]
    counts += [features.nvm_loads / tiles, features.nvm_stores / tiles]
    shape = [plan.depth, math.log2(tiles), plan.tiles_per_commit, plan.chunks,
             plan.chunk_size, features.nest_depth]
    extents = (list(task.extents) + [0] * MAX_LOOPS)[:MAX_LOOPS]
    return np.array(counts + shape + extents
                    + [getattr(calibrated, t) for t in TARGETS], dtype="float64")


def _ratio(measured: float, calibrated: float) -> float:
    return math.log((measured + 1.0) / (calibrated + 1.0))


def measured_tile(measured: dict, indices, tiles: int) -> Work | None:
    """Mean work of one tile of the tasks ``indices`` in a measurement (None: not there)."""
    rows = [measured.get("tasks", {}).get(str(i)) for i in indices]
    if not rows or any(r is None for r in rows):
        return None
    total = Work()
    for item in rows:
        total = total + Work.from_dict(item)
    return total * (1.0 / (max(1, int(tiles)) * len(rows)))


@derived_object
class IntermittentCostModel(ms.cost_model.PyCostModel):
    """Predicted end-to-end latency under intermittent power (see the module docstring).

    Parameters
    ----------
    board : Board or str
        The board whose profile charges the work.
    environment : TuningEnvironment
        The power environment (``tuning.objective.environment``; ``continuous`` too).
    describe : callable
        ``(candidate or knobs, task) -> (Features, TilePlan)`` (:func:`.describe.describe`).
    model : ModelTasks
        The model whose kernels are tuned.
    learned : {"xgb", "none"}
        ``none``: the calibrated work only (the analytic model on the same simulation).
    config : XGBConfig, optional
    artifacts : path-like, optional
        Where the builder leaves artifacts; ``update`` then observes the ``measured.json``
        of each candidate there (``tuning.local.candidate_dir``).

    Examples
    --------
    .. code-block:: python

        model = IntermittentCostModel(board, environment("board"), describe, model=tasks)
        model.observe(task, knobs, measure_artifact(path))
        seconds = model.predict_plan(task, plan)
    """

    def __init__(self, board, environment, describe, *, model=None, learned: str = "xgb",
                 config: XGBConfig | None = None, artifacts=None):
        super().__init__()
        if learned not in ("xgb", "none"):
            raise InputError(f"learned must be 'xgb' or 'none', got {learned!r}")
        self.board = load_board(board)
        self.environment = environment
        self.describe = describe
        self.model = model
        self.learned = learned
        self.config = config or XGBConfig()
        self.artifacts = artifacts
        self.samples: list[Sample] = []
        #: ``(kernel, depth, tiles, tiles_per_commit, chunks) -> measured tile``: the other
        #: kernels at their default plans in measured candidates.
        self.known: dict[tuple, Work] = {}
        self._boosters = None
        self._noted = False
        self._noted_update = False

    # ---- learning ------------------------------------------------------------------------

    def observe(self, task, knobs: Knobs, measured: dict) -> None:
        """Learn from one measured candidate of ``task`` (``measure_artifact``'s dict)."""
        if measured.get("error") or not measured.get("tasks"):
            return
        features, plan = self.describe(knobs, task)
        tiled = _tiled(task, knobs)
        tile = measured_tile(measured, task.indices, plan.extent)
        if tile is None:
            return
        calibrated = calibrated_tile(task, features, plan, tiled)
        self.samples.append(Sample(
            task.kernel, knobs.to_dict(), tuple(row(task, features, plan, calibrated)),
            tuple(getattr(calibrated, t) for t in TARGETS),
            tuple(getattr(tile, t) for t in TARGETS)))
        if self.model is not None:
            for other in self.model.tasks:
                if other.kernel == task.kernel:
                    continue
                work = measured_tile(measured, other.indices, other.default.extent)
                if work is not None:
                    self.known[_plan_key(other.kernel, other.default)] = work
        self._boosters = None

    def fit_log(self, log, *, board: str | None = None) -> int:
        """Observe every measured record of the model's kernels in a tuning log (measured
        on ``board``, default any board of this ISA); the number observed."""
        from ..board import load_board as board_of  # pylint: disable=import-outside-toplevel
        from .log import workload_key  # pylint: disable=import-outside-toplevel

        count = 0
        for task in (self.model.tasks if self.model is not None else []):
            for entry in log.measurements(workload_key(task.mod), board=board):
                if board_of(entry["board"]).isa != self.board.isa:
                    continue
                try:
                    self.observe(task, Knobs.from_dict(entry["knobs"]), entry)
                except CandidateError:
                    continue
                count += 1
        return count

    def _fit(self):
        if self._boosters is not None or self.learned == "none":
            return self._boosters
        if len(self.samples) < MIN_SAMPLES:
            return None
        import xgboost as xgb  # pylint: disable=import-outside-toplevel

        rows = np.array([s.row for s in self.samples])
        boosters = []
        for k in range(len(TARGETS)):
            labels = np.array([_ratio(s.measured[k], s.calibrated[k]) for s in self.samples])
            data = xgb.DMatrix(rows, label=labels, feature_names=_xgb_names())
            boosters.append(xgb.train(self.config.to_dict(), data, self.config.rounds))
        self._boosters = boosters
        return boosters

    # ---- prediction ----------------------------------------------------------------------

    def tile(self, task, features, plan, tiled) -> Work:
        """Predicted work of one tile of ``tiled`` (``task``'s kernel as the knobs cut it,
        with its ``features``): the calibrated work times the learned ratios."""
        calibrated = calibrated_tile(task, features, plan, tiled)
        boosters = self._fit()
        if boosters is None:
            if self.learned == "xgb" and not self._noted:
                logger.info("cost model: %d measured candidate(s) observed, fewer than %d; "
                            "tiles are predicted by the calibrated kernel model alone",
                            len(self.samples), MIN_SAMPLES)
                self._noted = True
            return calibrated
        import xgboost as xgb  # pylint: disable=import-outside-toplevel

        data = xgb.DMatrix(row(task, features, plan, calibrated)[None, :],
                           feature_names=_xgb_names())
        values = {}
        for target, booster in zip(TARGETS, boosters):
            ratio = float(booster.predict(data)[0])
            values[target] = max(0.0, (getattr(calibrated, target) + 1.0) * math.exp(ratio)
                                 - 1.0)
        scale = {"nvm_loads": "nvm_load_bytes", "nvm_stores": "nvm_store_bytes"}
        extra = {scale[t]: getattr(calibrated, scale[t]) * values[t]
                 / max(getattr(calibrated, t), 1e-9) for t in scale}
        return Work(values["instructions"], values["nvm_loads"], values["nvm_stores"],
                    extra["nvm_load_bytes"], extra["nvm_store_bytes"])

    def predict_run(self, task, plan, *, features=None, knobs: Knobs | None = None,
                    board=None, environment=None):
        """The predicted inference (``energy.predict.Prediction``) with ``task`` cut by
        ``plan`` and every other kernel by its default plan, on ``board`` under
        ``environment`` (default: the model's)."""
        # pylint: disable=import-outside-toplevel
        from ..energy.predict import Costs, MeasuredTask, predict

        if self.model is None:
            raise InputError("predicting a whole inference needs the model's tasks "
                             "(IntermittentCostModel(model=...))")
        board = self.board if board is None else load_board(board)
        environment = self.environment if environment is None else environment
        tiled = task.func if knobs is None else _tiled(task, knobs)
        if features is None:
            features = task.features if knobs is None else self.describe(knobs, task)[0]
        tile = self.tile(task, features, plan, tiled)
        runtime = _costs.runtime_costs(board.isa)
        manifest = dict(self.model.manifest)
        specs = [dict(t) for t in manifest["tasks"]]
        tasks = []
        for index, spec in enumerate(specs):
            mine = index in task.indices
            if mine:
                spec.update(tiles=plan.extent, tiles_per_commit=plan.tiles_per_commit)
                work = tile
            else:
                other = self.model.task(spec["kernel"])
                work = self.known.get(_plan_key(other.kernel, other.default))
                if work is None:
                    work = Work.from_dict(spec["cost"]["tile"])
            tasks.append(MeasuredTask(index, spec["kernel"], int(spec["tiles"]),
                                      int(spec["tiles_per_commit"]), work,
                                      runtime.task_overhead))
        manifest["tasks"] = specs
        return predict(manifest, board, environment.schedule(board),
                       costs=Costs(tuple(tasks), runtime, "learned"))

    def predict_plan(self, task, plan, *, features=None, knobs: Knobs | None = None,
                     board=None, environment=None) -> float:
        """Predicted end-to-end latency (seconds) with ``task`` cut by ``plan`` (of the
        kernel as ``knobs`` cut it, when they split a loop); inf when the simulated firmware
        never finishes.

        To rank records for another board of the same ISA without measuring there, make
        the model for that board (its ``ModelTasks``, whose default plans are that board's)
        and train it on the other board's measurements (:meth:`observe`, :meth:`fit_log`):
        the learned counts are the ISA's. ``board`` and ``environment`` change only how
        the work is charged (another profile, capacitor or harvester)."""
        prediction = self.predict_run(task, plan, features=features, knobs=knobs,
                                      board=board, environment=environment)
        return prediction.latency_seconds if prediction.finished else float("inf")

    def predict_knobs(self, task, knobs: Knobs) -> float:
        """:meth:`predict_plan` of a candidate's knobs; inf when they break a hard
        constraint of the board (:mod:`.constraints`)."""
        from .constraints import check_candidate  # pylint: disable=import-outside-toplevel

        try:
            check_candidate(task, knobs, self.board, self.environment,
                            static_scratch=self.model.static_scratch if self.model else 0,
                            idempotence=False)  # a ranking: the search checks its picks
        except CandidateError:
            return float("inf")
        features, plan = self.describe(knobs, task)
        return self.predict_plan(task, plan, features=features, knobs=knobs)

    # ---- MetaSchedule's interface --------------------------------------------------------

    def update(self, context, candidates, results) -> None:
        """Learn from measured candidates, as the search strategy calls it after a batch:
        the per-task counts come from each candidate's ``measured.json`` under
        ``artifacts`` (run times alone say too little of a tile)."""
        if self.artifacts is None or self.model is None:
            if not self._noted_update:
                logger.warning("cost model: update() got run times only and no artifacts "
                               "directory to read per-task counts from, so it learns nothing "
                               "from them; pass artifacts= (the builder's root) or call "
                               "observe(task, knobs, measured)")
                self._noted_update = True
            return
        from .local import candidate_dir  # pylint: disable=import-outside-toplevel
        from .measure import MEASURED_FILE  # pylint: disable=import-outside-toplevel

        task = self.model.task_of(context.mod)
        for candidate, result in zip(candidates, results):
            if result.error_msg is not None:
                continue
            knobs = knobs_of(candidate.sch)
            path = candidate_dir(self.artifacts, task.kernel, knobs) / MEASURED_FILE
            if path.is_file():
                self.observe(task, knobs, json.loads(path.read_text()))

    def predict(self, context, candidates) -> np.ndarray:
        """Scores of ``candidates`` (higher is better): 1 / predicted latency, 0 for a
        candidate that breaks a constraint or never finishes."""
        task = self.model.task_of(context.mod)
        seconds = np.array([self.predict_knobs(task, knobs_of(c.sch)) for c in candidates],
                           dtype="float64")
        with np.errstate(divide="ignore"):
            return np.where(np.isfinite(seconds) & (seconds > 0), 1.0 / seconds, 0.0)

    def save(self, path: str) -> None:
        """Write the samples, the known tiles and the fitted regressors as JSON."""
        boosters = self._fit()
        data = {"format": FORMAT, "board": self.board.name, "learned": self.learned,
                "environment": getattr(self.environment, "name", None),
                "config": self.config._asdict(),
                "samples": [dataclasses.asdict(s) for s in self.samples],
                "known": [{"key": list(k), "work": w.to_dict()} for k, w in self.known.items()],
                "boosters": [bytes(b.save_raw("json")).decode() for b in boosters or []]}
        with open(path, "w", encoding="utf-8") as out:
            json.dump(data, out)

    def load(self, path: str) -> None:
        """Read what :meth:`save` wrote (the regressors as fitted, not refitted)."""
        try:
            with open(path, encoding="utf-8") as src:
                data = json.load(src)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            samples = [Sample(s["kernel"], s["knobs"], tuple(s["row"]), tuple(s["calibrated"]),
                              tuple(s["measured"])) for s in data["samples"]]
            known = {tuple(k["key"]): Work.from_dict(k["work"]) for k in data["known"]}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path!r} is not a saved intermittent cost model "
                             f"({type(err).__name__}: {err})") from None
        self.config = XGBConfig(**data["config"])
        self.learned = data["learned"]
        self.samples, self.known = samples, known
        self._boosters = None
        if data["boosters"]:
            import xgboost as xgb  # pylint: disable=import-outside-toplevel

            boosters = []
            for raw in data["boosters"]:
                booster = xgb.Booster()
                booster.load_model(bytearray(raw.encode()))
                boosters.append(booster)
            self._boosters = boosters


def _plan_key(kernel: str, plan) -> tuple:
    return (kernel, int(plan.depth), int(plan.extent), int(plan.tiles_per_commit),
            int(plan.chunks))


def _tiled(task, knobs: Knobs):
    from .knobs import tiled_func  # pylint: disable=import-outside-toplevel

    return tiled_func(task.for_knobs(knobs).func, knobs)  # a variant tiles its own kernel


def _xgb_names() -> list[str]:
    # XGBoost refuses "[", "]" and "<" in feature names.
    return [n.replace("[", "(").replace("]", ")").replace("<", "lt") for n in feature_names()]


def make_cost_model(board, environment, *, model, describe, learned: str = "xgb",
                    artifacts=None) -> IntermittentCostModel:
    """The learned cost model as ``tuning.cost_model_for(kind="xgb")`` makes it."""
    return IntermittentCostModel(board, environment, describe, model=model, learned=learned,
                                 artifacts=artifacts)


__all__ = ["IntermittentCostModel", "XGBConfig", "feature_names", "make_cost_model", "row"]

"""What the tuner minimises: end-to-end latency of one inference under a power environment.

The environment is a ``sim.environments`` preset, a capacitor with the board's voltages and
harvester (as ``compile --capacitor`` sizes tiles for and ``run --power capacitor`` runs
under), or ``continuous``: no power failure at all, the special case where the tuner looks
for the fastest tiling on a device that never loses power (tiles are still sized so that
the firmware also runs on the board's own capacitor). :func:`environment` is the one place
that name is resolved; the predicted objective comes from :func:`..energy.predict.predict`
with the same schedule the measured runs use (:meth:`TuningEnvironment.schedule`), so a
prediction and a measurement differ only in where the work comes from.
"""

from __future__ import annotations

import dataclasses

from ..board import Board, load_board
from ..errors import InputError
from ..sim.environments import CONTINUOUS, is_continuous



@dataclasses.dataclass(frozen=True)
class TuningEnvironment:
    """A power environment the tuner measures and predicts under.

    Attributes
    ----------
    name : str
        ``continuous``, a preset name (``tvm-intermittent power-envs``) or
        ``capacitor-<farads>F``.
    preset : PowerEnvironment or None
        The preset.
    capacitor_f : float or None
        The capacitor, when the environment is one (no preset).
    """

    name: str
    preset: object = None
    capacitor_f: float | None = None

    @property
    def continuous(self) -> bool:
        return self.preset is None and self.capacitor_f is None

    def schedule(self, board):
        """The per-run power schedule on ``board`` (``NoFailures`` for continuous power)."""
        # pylint: disable=import-outside-toplevel
        from ..sim.power import Capacitor, NoFailures

        board = load_board(board)
        if self.capacitor_f is not None:
            return Capacitor(board, capacitor_f=self.capacitor_f)
        return NoFailures() if self.preset is None else self.preset.schedule(board)

    def build_options(self) -> dict:
        """What ``build`` takes to size tiles for this environment: ``power_env`` or
        ``capacitor_f`` (neither for continuous power: the board's own capacitor)."""
        if self.capacitor_f is not None:
            return {"capacitor_f": self.capacitor_f}
        return {"power_env": self.preset} if self.preset is not None else {}

    def tile_budget(self, board: Board) -> int:
        """The power cycle budget, in the tiler's instructions, one batch must fit."""
        if self.capacitor_f is not None:
            return board.tile_budget(self.capacitor_f)
        if self.preset is None:
            return board.tile_budget()
        return self.preset.tile_budget(board)

    def to_dict(self) -> dict:
        return {"name": self.name, "capacitor_f": self.capacitor_f}


def environment(name: str | None = None, capacitor=None) -> TuningEnvironment:
    """The tuning environment called ``name``, or of ``capacitor`` (farads or ``"100uF"``);
    neither: the board's own (preset ``board``).

    Raises
    ------
    InputError
        For an unknown name (listing the known ones), a bad capacitance, or both given.
    """
    # pylint: disable=import-outside-toplevel
    from ..sim import environments
    from ..sim.power import parse_capacitance

    if capacitor is not None:
        if name is not None:
            raise InputError("--power-env and --capacitor both set the capacitor; give one")
        farads = parse_capacitance(capacitor) if isinstance(capacitor, str) else float(capacitor)
        return TuningEnvironment(f"capacitor-{farads:g}F", None, farads)
    if name is None:
        name = "board"
    if is_continuous(str(name)):
        return TuningEnvironment(CONTINUOUS)
    try:
        preset = environments.get(name)
    except InputError as err:
        raise InputError(f"{err}; or {CONTINUOUS!r} for no power failures") from None
    return TuningEnvironment(preset.name, preset)


def predicted_seconds(manifest: dict, board, env: TuningEnvironment) -> float:
    """Predicted latency of ``manifest``'s inference on ``board`` under ``env`` (seconds;
    inf when the simulated firmware never finishes)."""
    from ..energy.predict import predict  # pylint: disable=import-outside-toplevel

    board = load_board(board)
    prediction = predict(manifest, board, env.schedule(board))
    return prediction.latency_seconds if prediction.finished else float("inf")


def candidate_manifest(base: dict, task, tiled, plan, features=None) -> dict:
    """``base`` (a ``model.json`` of the model as built) with ``task``'s kernel cut by
    ``plan`` (of the kernel as ``tiled`` cuts it): the tasks' tiles, batches and predicted
    costs, which is all :func:`..energy.predict.predict` reads of them. ``features``:
    ``tiled``'s executed counts when the caller has them (:func:`.describe.features_of`
    remembers them per rewrite; counting them again takes most of a second on a large
    kernel)."""
    # pylint: disable=import-outside-toplevel
    from ..energy.costs import runtime_costs, task_cost_dict, tile_work

    runtime = runtime_costs()
    tile = tile_work(tiled, plan, task.placement or None, features=features,
                     kernel=task.kernel)
    cost = task_cost_dict(tile, runtime)
    manifest = dict(base)
    tasks = [dict(t) for t in base["tasks"]]
    for index in task.indices:
        tasks[index].update(tiles=plan.extent, tiles_per_commit=plan.tiles_per_commit,
                            commits=plan.commits, cost={**tasks[index]["cost"], **cost})
    manifest["tasks"] = tasks
    return manifest

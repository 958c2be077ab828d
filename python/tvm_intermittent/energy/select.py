"""Choosing the most accurate model that meets a deadline on a board and power environment.

The question iNAS and TiNAS answer with a neural architecture search, asked of a list of
models one already has: given candidates with their accuracies, which is the most accurate
one that fits the board (flash, SRAM, NVM), can make progress on one charge (every tile plus
its commit fits the capacitor's budget), and finishes an inference within the deadline?

Each candidate is compiled for the board, with tiles sized for the environment's capacitor,
and its latency is predicted by :func:`tvm_intermittent.energy.predict.predict` from the
compiled manifest: no emulation, so a list of models is judged in the time their compiles
take. :func:`choose` then applies the rule, and every candidate that lost says why (it does
not compile for the board, it is not schedulable, it is too slow by how much, or another one
is more accurate), so a user learns what to change as well as what won.

The selection itself (:func:`choose`) is pure: it reads the :class:`Assessment` of each
candidate and nothing else, so it is tested on assessments fixed in the test.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import DoesNotFitError, InputError

#: The prefix that names a zoo model on the command line (``zoo:kws``).
ZOO_PREFIX = "zoo:"

#: Verdicts of :class:`Row`, best first.
CHOSEN = "chosen"
LESS_ACCURATE = "less accurate"
TOO_SLOW = "too slow"
NOT_SCHEDULABLE = "not schedulable"
DOES_NOT_FIT = "does not fit"


@dataclasses.dataclass(frozen=True)
class Assessment:
    """What is known of one candidate on one board and power environment.

    Attributes
    ----------
    name : str
        The candidate as the user named it (a file, a project directory, ``zoo:kws``).
    accuracy : float
        Top-1 accuracy as a fraction.
    accuracy_source : str
        Where the accuracy comes from (given, measured on which data, or published where).
    fits : bool
        The model compiled for the board: its weights, activations and working set fit
        flash, NVM and SRAM, and each operator's smallest tile fits one charge.
    latency_s : float or None
        Predicted end-to-end latency (active plus recharge time); None when it does not fit.
    schedulable : bool
        The predictor found every tile plus commit within one charge of the environment.
    problem : str or None
        Why it does not fit or is not schedulable (the compiler's or predictor's message,
        which names the operator and the amount).
    boots : float or None
        Predicted power cycles of one inference.
    notices : tuple of str
        Operators the compiler put on a slower or less exact path (``model.json``'s
        ``notices``), so that a candidate's latency is never judged without saying so.
    """

    name: str
    accuracy: float
    accuracy_source: str
    fits: bool
    latency_s: float | None = None
    schedulable: bool = False
    problem: str | None = None
    boots: float | None = None
    notices: tuple = ()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Row:
    """One candidate in the selection table: its assessment, verdict and why."""

    assessment: Assessment
    verdict: str
    reason: str

    def to_dict(self) -> dict:
        return self.assessment.to_dict() | {"verdict": self.verdict, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Selection:
    """The outcome: the chosen candidate (None when none qualifies) and every row.

    Rows are in the order the candidates were given.
    """

    deadline_s: float
    rows: list
    chosen: Assessment | None

    def failure(self) -> str:
        """Why no candidate qualifies, every candidate's reason in one message."""
        lines = [f"no candidate meets the deadline of {self.deadline_s:g} s on this board:"]
        lines += [f"  {row.assessment.name}: {row.reason}" for row in self.rows]
        slow = [row.assessment for row in self.rows if row.verdict == TOO_SLOW]
        if slow:
            best = max(slow, key=lambda a: (a.accuracy, -a.latency_s))
            fastest = min(slow, key=lambda a: a.latency_s)
            lines.append(f"a deadline of {fastest.latency_s:.4g} s admits {fastest.name}, "
                         f"{best.latency_s:.4g} s the most accurate that is too slow "
                         f"({best.name}); a stronger harvester shortens the recharges")
        if any(row.verdict == NOT_SCHEDULABLE for row in self.rows):
            lines.append("a larger capacitor (--capacitor, --power-env) lets the operators "
                         "that are not schedulable finish a commit batch on one charge")
        if any(row.verdict == DOES_NOT_FIT for row in self.rows):
            lines.append("a board with more memory takes the models that do not fit "
                         "(tvm-intermittent boards)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"deadline_s": self.deadline_s,
                "chosen": self.chosen.name if self.chosen else None,
                "candidates": [row.to_dict() for row in self.rows]}


def _qualifies(a: Assessment, deadline_s: float) -> bool:
    return a.fits and a.schedulable and a.latency_s is not None and a.latency_s <= deadline_s


def _disqualified(a: Assessment, deadline_s: float) -> Row | None:
    """The row of a candidate that cannot win whatever the others are, or None."""
    if not a.fits:
        return Row(a, DOES_NOT_FIT, f"does not fit the board: {a.problem or 'see its compile'}")
    if not a.schedulable or a.latency_s is None:
        return Row(a, NOT_SCHEDULABLE, f"not schedulable: {a.problem or 'see analyze'}")
    if a.latency_s > deadline_s:
        late = a.latency_s - deadline_s
        return Row(a, TOO_SLOW, f"too slow by {late:.4g} s ({a.latency_s:.4g} s predicted, "
                                f"deadline {deadline_s:g} s)")
    return None


def choose(assessments: list[Assessment], deadline_s: float) -> Selection:
    """The most accurate candidate that fits, is schedulable and meets ``deadline_s``.

    Among equally accurate qualifying candidates the faster one wins (then the first
    given). Every other candidate's row says why it lost: the first of "does not fit",
    "not schedulable", "too slow by X s" that applies, else "less accurate than the chosen
    one" (or "as accurate but slower").

    Parameters
    ----------
    assessments : list of Assessment
        The candidates, in the order they were given.
    deadline_s : float
        The latency bound of one inference, seconds.

    Returns
    -------
    Selection
        ``chosen`` is None when no candidate qualifies; ``failure()`` then says why.
    """
    if not deadline_s > 0:
        raise InputError(f"the deadline must be a positive number of seconds, got {deadline_s}")
    qualifying = [a for a in assessments if _qualifies(a, deadline_s)]
    winner = None
    if qualifying:
        winner = min(qualifying, key=lambda a: (-a.accuracy, a.latency_s,
                                                assessments.index(a)))
    rows = []
    for a in assessments:
        row = _disqualified(a, deadline_s)
        if row is None and a is winner:
            row = Row(a, CHOSEN, f"the most accurate of {len(qualifying)} that meet the "
                                 f"deadline ({a.latency_s:.4g} s of {deadline_s:g} s)")
        elif row is None and a.accuracy < winner.accuracy:
            row = Row(a, LESS_ACCURATE, f"less accurate than {winner.name} "
                                        f"({100 * a.accuracy:.2f} % < "
                                        f"{100 * winner.accuracy:.2f} %)")
        elif row is None:
            row = Row(a, LESS_ACCURATE, f"as accurate as {winner.name} but slower "
                                        f"({a.latency_s:.4g} s >= {winner.latency_s:.4g} s)")
        rows.append(row)
    return Selection(deadline_s, rows, winner)


# ---- candidates: what a name on the command line means ---------------------------------


def resolve(name: str, progress=None) -> tuple[Path, str | None]:
    """The file or project a candidate names, and its zoo name if it is a zoo model.

    ``zoo:NAME`` is a model of :mod:`tvm_intermittent.zoo` (fetched on first use); anything
    else is a ``.tflite``/``.onnx`` file or a project directory made by ``compile``.
    """
    if name.startswith(ZOO_PREFIX):
        from .. import zoo  # pylint: disable=import-outside-toplevel

        key = name[len(ZOO_PREFIX):]
        try:
            model = zoo.get(key, progress)
        except KeyError as err:
            raise InputError(f"candidate {name!r}: {err.args[0]}") from None
        return model.path, model.name
    path = Path(name)
    if path.is_dir():
        if not (path / "model.json").is_file():
            raise InputError(f"candidate {name!r} is a directory but not a project made by "
                             "`tvm-intermittent compile` (no model.json)")
        return path, None
    if path.is_file() and path.suffix.lower() in (".tflite", ".onnx"):
        return path, None
    if path.is_file():
        raise InputError(f"candidate {name!r} is neither a .tflite/.onnx model nor a project "
                         "directory")
    raise InputError(f"candidate {name!r} does not exist (a model file, a project directory, "
                     f"or {ZOO_PREFIX}NAME for a zoo model)")


def reference_model(path: Path) -> Path:
    """The model file whose accuracy a candidate has: itself, or a project's original."""
    if not path.is_dir():
        return path
    manifest = json.loads((path / "model.json").read_text())
    original = path / f"original.{manifest.get('source_format')}"
    if not original.is_file():
        raise InputError(f"project {str(path)!r} keeps no original model file, so its accuracy "
                         "cannot be measured; give it with --accuracy")
    return original


# ---- assessing one candidate ------------------------------------------------------------


def prediction_summary(prediction) -> tuple[float | None, bool, str | None, float | None]:
    """What the selection reads of a :class:`~tvm_intermittent.energy.predict.Prediction`.

    Returns ``(latency_s, schedulable, reason, boots)``: the predicted end-to-end latency
    (active plus recharge time; None when the simulated inference does not finish), whether
    every commit batch fits one charge and the inference finishes, why not (the operator,
    what it needs of a charge and by how much it exceeds it), and the boots. This is the
    one place that reads those names.
    """
    schedulable = bool(prediction.schedulable) and bool(prediction.finished)
    reason = None
    if prediction.blocking:
        reason = "; ".join(
            f"at operator {b['operator']}: a commit batch needs {b['need']:,.0f} "
            f"instruction-equivalents of one charge, which holds {b['budget']:,.0f} "
            f"(over by {b['over']:,.0f})" for b in prediction.blocking)
    elif not prediction.finished:
        reason = (f"the predicted inference stops ({prediction.stop_reason}) after "
                  f"{prediction.boots:,} boots")
    latency = prediction.latency_seconds
    return (None if latency is None else float(latency), schedulable, reason,
            float(prediction.boots))


#: How the compiler's refusal of a tile that needs more than one charge begins
#: (:func:`tvm_intermittent.builder.build`); tests/test_select.py compiles such a model.
_POWER_CYCLE = "does not fit the power cycle budget"


def predictor():
    """:func:`tvm_intermittent.energy.predict.predict`, the default predictor."""
    from .predict import predict  # pylint: disable=import-outside-toplevel

    return predict


def _sizing(environment) -> dict:
    """How ``build`` sizes tiles for ``environment``.

    A :class:`~tvm_intermittent.sim.environments.PowerEnvironment` sizes them for the least
    budget any boot gets (its capacitor, its voltages and the harvest while computing:
    ``build(power_env=...)``); anything else that only names a capacitor (``capacitor_f``)
    sizes them for that capacitor between the board's voltages.
    """
    if hasattr(environment, "tile_budget"):
        return {"power_env": environment}
    return {"capacitor_f": getattr(environment, "capacitor_f", None)}


def compiled_manifest(path: Path, board, environment=None) -> dict:
    """The manifest of ``path`` compiled for ``board`` (a project's own, if a directory).

    Raises
    ------
    DoesNotFitError
        The model does not fit the board (the compiler's message names what and by how much).
    InputError
        A project compiled for another board.
    """
    if path.is_dir():
        manifest = json.loads((path / "model.json").read_text())
        if manifest.get("board") != board.name:
            raise InputError(f"project {str(path)!r} was compiled for {manifest.get('board')}, "
                             f"not {board.name}; pass its model file to compile it for "
                             f"{board.name}")
        return manifest
    from ..builder import build  # pylint: disable=import-outside-toplevel

    artifact = build(path, "intermittent/" + board.name, board=board, **_sizing(environment))
    return artifact.manifest()


def assess(name: str, path: Path, accuracy: float, accuracy_source: str, board, environment,
           predict=None) -> Assessment:
    """Compile one candidate for ``board`` and predict it under ``environment``.

    Parameters
    ----------
    name : str
        The candidate as named by the user.
    path : pathlib.Path
        Its model file or project directory (:func:`resolve`).
    accuracy, accuracy_source : float, str
        Its accuracy and where that comes from.
    board : Board
        The board profile.
    environment : PowerEnvironment
        The power environment (:mod:`tvm_intermittent.sim.environments`); it sizes the
        tiles (:func:`_sizing`) and the predictor charges its budgets and recharge times.
    predict : callable, optional
        ``predict(manifest, board, environment) -> Prediction``; by default
        :func:`tvm_intermittent.energy.predict.predict`.

    Returns
    -------
    Assessment
        ``fits`` False with the compiler's message when the model does not fit the board.
    """
    predict = predict or predictor()
    try:
        manifest = compiled_manifest(path, board, environment)
    except DoesNotFitError as err:
        # The compiler raises one class for both: an operator whose smallest tile needs
        # more than a charge (the tiler's "power cycle budget": the model fits the board's
        # memories but cannot make progress) and memories that are too small.
        message = str(err)
        if _POWER_CYCLE in message:
            return Assessment(name, accuracy, accuracy_source, fits=True, schedulable=False,
                              problem=message)
        return Assessment(name, accuracy, accuracy_source, fits=False, problem=message)
    latency, schedulable, reason, boots = prediction_summary(
        predict(manifest, board, environment))
    notices = tuple(f"{n['operator']}: {n['path']}: {n['reason']}"
                    for n in manifest.get("notices", []))
    return Assessment(name, accuracy, accuracy_source, fits=True, latency_s=latency,
                      schedulable=schedulable, problem=None if schedulable else reason,
                      boots=boots, notices=notices)

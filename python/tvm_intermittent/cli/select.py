"""``tvm-intermittent select``: the most accurate candidate that meets a deadline.

Everything the user can get wrong is checked before anything slow runs (a zoo download, an
accuracy measurement, a compile): the deadline, the power options, every candidate's name
and accuracy source, and every ``--accuracy``/``--labels`` option's candidate. The work is
in :mod:`tvm_intermittent.energy.select`; this module parses, orders and prints.
"""

from __future__ import annotations

from pathlib import Path

from ..board import DEFAULT_BOARD, load_board
from ..errors import ExitStatus, InputError


def add_parser(sub, common) -> None:
    """Register ``select`` on the CLI's subparsers (``common`` adds --json and --quiet)."""
    p = common(sub.add_parser(
        "select", help="choose the most accurate model that meets a deadline on a board"))
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="candidates: .tflite/.onnx files, project directories, or zoo:NAME")
    p.add_argument("--deadline", required=True, metavar="S",
                   help="latency bound of one inference, seconds (e.g. 300 or 300s)")
    p.add_argument("--board", default=DEFAULT_BOARD,
                   help=f"board profile (default {DEFAULT_BOARD})")
    p.add_argument("--power-env", metavar="NAME",
                   help="named power environment (e.g. tinas-5mF); default: the board's "
                        "capacitor and harvester")
    p.add_argument("--capacitor", metavar="C", help="capacitor instead of the board's, e.g. 1mF")
    p.add_argument("--harvest", metavar="P", help="harvested power instead of the board's, "
                                                   "e.g. 2mW")
    p.add_argument("--accuracy", action="append", default=[], metavar="MODEL=A",
                   help="top-1 accuracy of a candidate, as 0.87 or 87%% (repeat per model)")
    p.add_argument("--labels", action="append", default=[], metavar="[MODEL=]DATA",
                   help="measure accuracy on this labelled .npz on the reference runtime, "
                        "for every candidate without --accuracy, or for MODEL only")


def _deadline(text: str) -> float:
    value = text.strip().removesuffix("s").strip()
    try:
        seconds = float(value)
    except ValueError:
        raise InputError(f"--deadline {text!r}: expected seconds, e.g. 300 or 12.5s") from None
    if not seconds > 0 or seconds == float("inf"):
        raise InputError(f"--deadline {text!r}: the deadline must be a positive, finite number "
                         "of seconds")
    return seconds


def _fraction(text: str, option: str) -> float:
    value = text.strip()
    percent = value.endswith("%")
    try:
        number = float(value.removesuffix("%")) / (100 if percent else 1)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not an accuracy (e.g. 0.87 or 87%)") from None
    if not 0 <= number <= 1:
        hint = f"; did you mean {value}%?" if not percent and 1 < number <= 100 else ""
        raise InputError(f"{option}: accuracy {text!r} is outside 0..1 (or 0..100%){hint}")
    return number


def _keys(name: str, zoo_name: str | None) -> set:
    """The names by which ``--accuracy`` and ``--labels`` may refer to a candidate."""
    keys = {name}
    if zoo_name:
        keys |= {zoo_name, name.removeprefix("zoo:")}
    else:
        path = Path(name)
        keys |= {path.name, path.stem, str(path.resolve())}
    return keys


def _match(key: str, candidates: list, option: str, strict: bool = True):
    """The index of the candidate ``key`` names; None (when not strict) if it names none."""
    hits = [i for i, (_, _, keys) in enumerate(candidates) if key in keys]
    exact = [i for i in hits if candidates[i][0] == key]
    if len(hits) == 1 or len(exact) == 1:
        return (exact or hits)[0]
    if hits:
        raise InputError(f"{option}: {key!r} names several candidates "
                         f"({', '.join(candidates[i][0] for i in hits)}); write the candidate "
                         "as it is given")
    if not strict:
        return None
    raise InputError(f"{option}: {key!r} is not one of the candidates "
                     f"({', '.join(c[0] for c in candidates)})")


def _accuracy_options(args, candidates):
    """``--accuracy`` values and ``--labels`` files per candidate index."""
    given, labels, default_labels = {}, {}, None
    for item in args.accuracy:
        key, sep, value = item.rpartition("=")
        if not sep or not key:
            raise InputError(f"--accuracy {item!r}: expected MODEL=A, e.g. zoo:kws=0.94")
        index = _match(key, candidates, f"--accuracy {item!r}")
        if index in given:
            raise InputError(f"--accuracy: {candidates[index][0]} is given twice")
        given[index] = _fraction(value, f"--accuracy {item!r}")
    for item in args.labels:
        key, sep, data = item.partition("=")
        index = _match(key, candidates, f"--labels {item!r}", strict=False) if sep else None
        if index is None:
            if default_labels is not None:
                raise InputError(f"--labels {item!r}: a second file for every candidate; name "
                                 "the candidate of each (--labels MODEL=DATA)")
            default_labels = item
        else:
            labels[index] = data
    for path in [*labels.values(), default_labels]:
        if path is not None and not Path(path).is_file():
            raise InputError(f"--labels: {path!r} does not exist (a labelled .npz, see "
                             "docs/select.md)")
    return given, labels, default_labels


def _accuracy_plan(args, candidates):
    """Per candidate: ``("given", value)``, ``("labels", file)`` or ``("zoo", published)``.

    Every candidate without a source is reported at once, before anything is measured.
    """
    from .. import zoo  # pylint: disable=import-outside-toplevel

    given, labels, default_labels = _accuracy_options(args, candidates)
    plan, missing = [], []
    for index, (name, zoo_name, _) in enumerate(candidates):
        published = zoo.published_accuracy(zoo_name) if zoo_name else None
        if index in given:
            plan.append(("given", given[index]))
        elif index in labels or default_labels is not None:
            plan.append(("labels", labels.get(index, default_labels)))
        elif published is not None and published.metric == "top-1":
            plan.append(("zoo", published))
        else:
            why = (f" (its published figure is a {published.metric}, not top-1)"
                   if published is not None else "")
            missing.append(f"{name}{why}")
    if missing:
        raise InputError(f"no accuracy for {', '.join(missing)}: give it with --accuracy "
                         "MODEL=0.87, or measure it with --labels DATA (docs/select.md)")
    return plan


def _accuracy(kind, value, path, env) -> tuple[float, str]:
    from .. import accuracy  # pylint: disable=import-outside-toplevel
    from ..energy.select import reference_model  # pylint: disable=import-outside-toplevel

    if kind == "given":
        return value, "given (--accuracy)"
    if kind == "zoo":
        return value.value, (f"published: {100 * value.value:.2f} % of {value.samples:,} "
                             f"({value.dataset}), {value.source}")
    model = reference_model(path)
    with env.step(f"measuring the accuracy of {model.name} on {value}"):
        result = accuracy.evaluate(model, value, progress=env.progress)
    return result.top1, f"measured: {model.name} on {value}, {result.summary()}"


def _environment(board, args):
    """The power environment of ``--power-env`` or ``--capacitor``/``--harvest`` (the
    environments module refuses a contradictory combination)."""
    from ..sim import environments  # pylint: disable=import-outside-toplevel

    return environments.from_args(board, power_env=args.power_env, capacitor=args.capacitor,
                                  harvest=args.harvest)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _table(selection, board_name: str, environment_name: str) -> str:
    rows = [f"deadline {selection.deadline_s:g} s on {board_name}, power: {environment_name}",
            f"{'candidate':<28} {'accuracy':>9} {'latency':>12} {'boots':>8}  verdict and why"]
    for row in selection.rows:
        a = row.assessment
        known = a.schedulable and a.latency_s is not None
        latency = f"{a.latency_s:.4g} s" if known else "-"
        boots = f"{a.boots:,.0f}" if known and a.boots is not None else "-"
        rows.append(f"{a.name:<28} {100 * a.accuracy:>8.2f}% {latency:>12} {boots:>8}  "
                    f"{_one_line(row.reason)}")
    rows.append("accuracy from:")
    rows += [f"  {row.assessment.name}: {row.assessment.accuracy_source}"
             for row in selection.rows]
    if selection.chosen:
        rows.append(f"chosen: {selection.chosen.name}")
    return "\n".join(rows)


def cmd_select(args, env) -> int:
    """Assess every candidate, print the table, and exit 2 when none qualifies."""
    from ..energy import select  # pylint: disable=import-outside-toplevel
    from .core import _emit  # pylint: disable=import-outside-toplevel

    deadline = _deadline(args.deadline)
    board = load_board(args.board)
    if len(set(args.models)) != len(args.models):
        raise InputError("a candidate is given twice: "
                         + ", ".join(sorted({m for m in args.models if args.models.count(m) > 1})))
    candidates = []
    for name in args.models:
        if name.startswith(select.ZOO_PREFIX):
            from .. import zoo  # pylint: disable=import-outside-toplevel

            try:
                zoo_name = zoo.canonical_name(name[len(select.ZOO_PREFIX):])
            except KeyError as err:
                raise InputError(f"candidate {name!r}: {err.args[0]}") from None
        else:
            zoo_name = None
            path, _ = select.resolve(name)  # refused before anything slow runs
            if path.is_file():
                from ..frontend import check_model_file  # pylint: disable=C0415

                check_model_file(path)
        candidates.append((name, zoo_name, _keys(name, zoo_name)))
    plan = _accuracy_plan(args, candidates)
    environment = _environment(board, args)
    predict = select.predictor()
    # Every accuracy first: labelled data that does not fit a model is refused before any
    # compile.
    paths = [select.resolve(name, progress=env.log)[0] for name, _, _ in candidates]
    accuracies = [_accuracy(kind, value, path, env) for (kind, value), path in zip(plan, paths)]
    assessments = []
    for (name, _, _), path, (accuracy, source) in zip(candidates, paths, accuracies):
        with env.step(f"compiling {name} for {board.name} and predicting its latency"):
            assessment = select.assess(name, path, accuracy, source, board, environment,
                                       predict=predict)
        for notice in assessment.notices:  # not progress: shown with --quiet too
            print(f"notice: {name}: {notice}", file=env.stderr)
        assessments.append(assessment)
    selection = select.choose(assessments, deadline)
    environment_name = getattr(environment, "name", "the board's capacitor and harvester")
    result = selection.to_dict() | {"board": board.name, "power_env": environment_name}
    if selection.chosen is None:
        result["error"] = {"kind": "NoCandidate", "message": selection.failure(),
                           "exit_status": int(ExitStatus.BAD_INPUT)}
    _emit(env, args, result, _table(selection, board.name, environment_name))
    if selection.chosen is None:
        print(f"error: {selection.failure()}", file=env.stderr)
        return ExitStatus.BAD_INPUT
    return ExitStatus.OK

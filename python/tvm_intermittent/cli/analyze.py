"""``analyze``: predict latency, boots and energy under a power environment, without QEMU.

``tvm-intermittent analyze MODEL|PROJECT --board B [--power-env E | --capacitor C --harvest P]
[--deadline S] [--json] [--measure] [--plot PNG]``. A model file is compiled first (into a
temporary directory, its tiles sized for the environment's capacitor); a project is read
from its ``model.json``. The prediction is :func:`tvm_intermittent.energy.analyze.analyze`;
``--measure`` also runs the firmware on QEMU under the same environment's schedule and
prints each predicted figure beside the measured one, with the error; ``--costs measured``
predicts from per-task counts of QEMU runs instead of the cost model (which separates the
simulation's error from the cost model's).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..board import DEFAULT_BOARD, load_board
from ..errors import ExitStatus, InputError

#: Capacitances the plot sweeps, as multiples of the smallest schedulable one.
PLOT_RANGE = (1.0, 100.0)


def add_parser(sub, common) -> None:
    """Register ``analyze`` on the CLI's subparsers (``common`` adds --json and --quiet)."""
    p = common(sub.add_parser(
        "analyze", help="predict latency, boots and energy under a power environment"))
    p.add_argument("target", help="a project directory from `compile`, or a model file")
    p.add_argument("--board", help=f"board profile (default: the project's own, or "
                                   f"{DEFAULT_BOARD} for a model file)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="when TARGET is a model file: fix the shape of an input")
    p.add_argument("--power-env", metavar="NAME", help="a named power environment")
    p.add_argument("--capacitor", metavar="C", help="capacitance, e.g. 1mF (default: the "
                                                    "project's, or the board's)")
    p.add_argument("--harvest", metavar="P", help="harvested power, e.g. 2mW")
    p.add_argument("--trace", metavar="FILE", help="power trace file (time s, power W)")
    p.add_argument("--deadline", type=float, metavar="S",
                   help="latency bound in seconds: say whether it is met, and what would "
                        "meet it")
    p.add_argument("--costs", choices=["calibrated", "measured"], default="calibrated",
                   help="per-task costs from the cost model (default) or measured by QEMU "
                        "runs of the project")
    p.add_argument("--measure", action="store_true",
                   help="also run on QEMU under the same environment and print predicted "
                        "beside measured")
    p.add_argument("--input", help="input tensor(s) for --measure and --costs measured "
                                   "(default: a seeded random input)")
    p.add_argument("--plot", metavar="PNG",
                   help="plot predicted latency against capacitor size to this file")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per QEMU run")


def _check_options(args) -> None:
    problems = []
    if args.deadline is not None and not args.deadline > 0:
        problems.append(f"--deadline must be a positive number of seconds, got "
                        f"{args.deadline:g}")
    if args.power_env and (args.capacitor or args.harvest or args.trace):
        problems.append("--power-env names a whole environment; drop --capacitor, --harvest "
                        "and --trace, or drop --power-env")
    if args.harvest and args.trace:
        problems.append("give either --harvest (constant power) or --trace, not both")
    if args.input and not (args.measure or args.costs == "measured"):
        problems.append("--input feeds the QEMU runs of --measure and --costs measured; "
                        "add one of them or drop --input")
    if args.plot and not args.plot.lower().endswith(".png"):
        problems.append(f"--plot writes a PNG file; got {args.plot!r}")
    if not args.timeout > 0:
        problems.append(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if problems:
        raise InputError("analyze: " + "; ".join(problems))


def cmd_analyze(args, env) -> int:
    """Run ``analyze``; the CLI's exit status (0 whatever the verdict: it is the result)."""
    # pylint: disable=import-outside-toplevel
    from ..energy import analyze as analysis
    from .core import _emit, _inputs, _load_manifest, _parse_shapes

    _check_options(args)
    board = load_board(args.board) if args.board else None
    target = Path(args.target)
    with tempfile.TemporaryDirectory(prefix="intm-analyze-") as tmp:
        if target.is_dir():
            project = target
            manifest = _load_manifest(project)
            if "tasks" not in manifest:
                raise InputError(f"{str(target)!r} predates the task table in model.json; "
                                 "compile it again")
            if args.shape:
                raise InputError("--shape fixes input shapes when a model file is compiled; "
                                 "this project's shapes are fixed already")
            if board is not None and board.name != manifest["board"]:
                raise InputError(f"--board {board.name}: this project was compiled for board "
                                 f"{manifest['board']!r}; analyze it without --board, or "
                                 f"compile the model for {board.name}")
            board = load_board(manifest["board"])
            default_capacitor = manifest.get("capacitor_f")
        elif target.is_file():
            board = board or load_board(DEFAULT_BOARD)
            project, manifest = None, None
            default_capacitor = None
        else:
            raise InputError(f"{args.target!r} is neither a project directory nor a model file")
        capacitor = args.capacitor
        if capacitor is None and not args.power_env and default_capacitor:
            capacitor = default_capacitor
        environment = analysis.environment_from_args(
            board, power_env=args.power_env, capacitor=capacitor, harvest=args.harvest,
            trace=args.trace)
        if project is None:
            project, manifest = _compile(args, env, target, board, environment,
                                         Path(tmp), _parse_shapes(args.shape))
        inputs = None
        if args.measure or args.costs == "measured":
            inputs = _inputs(args, manifest["inputs"], env)
        costs = None
        if args.costs == "measured":
            from ..energy.predict import measure_costs

            with env.step("measuring per-task costs on QEMU (a continuous run, and one "
                          "stopped at each task)"):
                costs = measure_costs(project, inputs, timeout=args.timeout)
        with env.step("predicting"):
            result = analysis.analyze(
                manifest, board, environment, costs=costs, deadline_s=args.deadline,
                environment_for=lambda other: analysis.environment_from_args(
                    other, power_env=args.power_env, capacitor=capacitor,
                    harvest=args.harvest, trace=args.trace))
        data, text = result.to_dict(), result.render()
        if args.measure:
            comparison = _measure(args, env, project, board, environment, inputs,
                                  result.prediction)
            data["measured"] = comparison
            text += "\n" + _comparison_text(comparison)
        if args.plot:
            _plot(args, env, manifest, board, environment, costs, result)
    _emit(env, args, data, text)
    return ExitStatus.OK


def _compile(args, env, target: Path, board, environment, directory: Path, shapes):
    """Compile a model file for ``board``, its tiles sized for one charge of the environment."""
    # pylint: disable=import-outside-toplevel
    from .. import builder
    from ..energy.analyze import build_options
    from ..frontend import check_model_file

    check_model_file(target, shapes or None)
    with env.step(f"compiling {target.name} for {board.name}"):
        artifact = builder.build(target, "intermittent/" + board.name, board=board,
                                 shape_dict=shapes or None,
                                 **build_options(environment, board, builder.build))
    for notice in artifact.notices:
        print(f"notice: {notice}", file=env.stderr)
    project = artifact.export(directory / "project")
    return project, artifact.manifest()


def _measure(args, env, project, board, environment, inputs, prediction) -> dict:
    """Run on QEMU under the environment's schedule: the measured figures beside the
    predicted ones, and their relative errors."""
    from .. import sim  # pylint: disable=import-outside-toplevel
    from ..energy.predict import _schedule_of  # pylint: disable=import-outside-toplevel

    schedule = _schedule_of(environment, board)
    with env.step("running on QEMU under the same environment"):
        report = sim.measure_intermittent(project, inputs, schedule, board=board,
                                          mode="tiles", timeout=args.timeout)
    rows = {"boots": (prediction.boots, report.boots),
            "instructions": (prediction.executed.instructions, report.instructions_total),
            "latency_s": (prediction.latency_seconds,
                          report.latency_seconds if report.finished else None)}
    out = {"finished": report.finished, "outputs_match": report.outputs_match}
    for key, (predicted, measured) in rows.items():
        error = (None if predicted is None or not measured
                 else (predicted - measured) / measured)
        out[key] = {"predicted": predicted, "measured": measured, "error": error}
    return out


def _comparison_text(comparison: dict) -> str:
    lines = ["predicted beside measured (QEMU, same environment):",
             f"  {'':<14}{'predicted':>16}{'measured':>16}{'error':>9}"]
    for key in ("boots", "instructions", "latency_s"):
        row = comparison[key]
        fmt = (lambda v: "-" if v is None else f"{v:,.6g}") if key == "latency_s" else (
            lambda v: "-" if v is None else f"{v:,.0f}")
        error = "-" if row["error"] is None else f"{100 * row['error']:+.2f}%"
        lines.append(f"  {key:<14}{fmt(row['predicted']):>16}{fmt(row['measured']):>16}"
                     f"{error:>9}")
    if not comparison["finished"]:
        lines.append("  the QEMU run did not finish")
    elif not comparison["outputs_match"]:
        lines.append("  the QEMU run's outputs DIFFER from the uninterrupted run's")
    return "\n".join(lines)


def _plot(args, env, manifest, board, environment, costs, result) -> None:
    # pylint: disable=import-outside-toplevel
    from ..energy import analyze as analysis

    if not hasattr(environment, "capacitor_f"):
        raise InputError("--plot sweeps the capacitor, and this environment has none to "
                         "resize")
    prediction = result.prediction
    low = analysis.smallest_schedulable_capacitor(manifest, board, environment,
                                                  costs or analysis._costs_of(manifest, board),
                                                  prediction)
    if low is None:
        raise InputError("--plot: no capacitor makes this model schedulable, nothing to plot")
    capacitors = analysis.sweep_capacitors(low * PLOT_RANGE[0] * 1.0001, low * PLOT_RANGE[1])
    points = analysis.latency_sweep(manifest, board, environment,
                                    costs or analysis._costs_of(manifest, board), capacitors)
    analysis.plot_latency({f"{manifest['name']} on {board.name}": points}, args.plot,
                          "predicted latency against capacitor size")
    env.log(f"wrote the latency plot to {args.plot}")

"""Which options of ``run`` apply to which run, and the refusal of every other combination.

``run`` takes a project or a model file, runs on QEMU or the host, under one of five power
schedules (``--power-env NAME`` is ``--power capacitor`` in a named power environment).
Most options mean something for some of those runs only; given to another, an option
would be ignored and the user would believe a result it did not shape (a
``--seed`` that changes nothing, a ``--capacitor`` that sizes nothing). So each option
names the runs it applies to, here, once, and :func:`check_run_options` refuses the
others, all at once, each with what to do instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import InputError

#: Schedules that fail the power, i.e. every ``--power`` but ``none``.
FAILING = ("periodic", "random", "capacitor", "exhaustive")

#: Formats matplotlib writes, by file suffix (``--plot``).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class PowerOption:
    """An option that only shapes some power schedules."""

    flag: str
    dest: str
    schedules: tuple[str, ...]
    meaning: str


#: The options of the "power failures" group, the schedules each one shapes, and what.
POWER_OPTIONS = (
    PowerOption("--period", "period", ("periodic",), "the instructions per power cycle"),
    PowerOption("--seed", "seed", ("random",), "the seed of the random power cycles"),
    PowerOption("--min", "min_instructions", ("random",), "the shortest random power cycle"),
    PowerOption("--max", "max_instructions", ("random",), "the longest random power cycle"),
    PowerOption("--harvest", "harvest", ("capacitor",), "the power that recharges the "
                "capacitor"),
    PowerOption("--trace", "trace", ("capacitor",), "the power trace that recharges the "
                "capacitor"),
    PowerOption("--plot", "plot", ("capacitor",), "a plot of the capacitor's charge"),
    PowerOption("--window", "window", ("exhaustive",), "the failure points of the sweep"),
    PowerOption("--max-boots", "max_boots", FAILING, "the boots a run under failures may take"),
)


def resolve_power(args) -> list[str]:
    """Set ``args.power`` from ``--power`` and ``--power-env``; the problems of the pair.

    ``--power-env`` means ``--power capacitor`` in that environment, so it implies that
    schedule and contradicts any other.
    """
    if args.power_env is None:
        args.power = args.power or "none"
        return []
    if args.power not in (None, "capacitor"):
        problems = [f"--power-env {args.power_env} is --power capacitor in that environment; "
                    f"with --power {args.power} it would be ignored (drop one of them)"]
        return problems
    args.power = "capacitor"
    return []


def _environment_problems(args) -> list[str]:
    """A bad ``--power-env`` name, or one given with options that it contradicts."""
    from ..sim import environments  # pylint: disable=import-outside-toplevel

    if args.power_env is None:
        return []
    try:
        environments.from_args(None, power_env=args.power_env, capacitor=args.capacitor,
                               harvest=args.harvest, trace=args.trace)
    except InputError as err:
        return [str(err)]
    return []


def _power_problems(args) -> list[str]:
    problems = _environment_problems(args)
    for option in POWER_OPTIONS:
        if getattr(args, option.dest) is None or args.power in option.schedules:
            continue
        kinds = " or ".join(f"--power {s}" for s in option.schedules)
        problems.append(f"{option.flag} sets {option.meaning}, which only {kinds} uses; with "
                        f"--power {args.power} it would be ignored")
    if args.capacitor is not None and args.power not in ("random", "capacitor"):
        if not _is_model_file(args):
            problems.append(
                f"--capacitor with a project sizes the power cycles of --power random or "
                f"capacitor only; with --power {args.power} it would be ignored (the tiles "
                f"were sized when the project was compiled: `compile --capacitor`)")
    return problems


def _host_problems(args) -> list[str]:
    if not args.host:
        return []
    problems = []
    if args.power != "none":
        given = f"--power-env {args.power_env}" if args.power_env else f"--power {args.power}"
        problems.append(f"{given} needs QEMU, which injects the power failures; drop --host")
    elif args.mode is not None:
        problems.append("--mode picks the QEMU firmware variant; the host build has one "
                        "(tiles): drop --host or --mode")
    return problems


def _check_problems(args) -> list[str]:
    if args.max_lsb is not None and not args.check:
        return ["--max-lsb is the tolerance of --check; add --check or drop --max-lsb"]
    if args.max_lsb is not None and args.max_lsb < 0:
        return [f"--max-lsb must be 0 or more, got {args.max_lsb}"]
    return []


def _output_problems(args) -> list[str]:
    problems = []
    if args.output is not None and args.power == "exhaustive":
        problems.append("--output with --power exhaustive: the sweep is one run per failure "
                        "point and saves no outputs; save the uninterrupted outputs with "
                        "`run --output` (no --power), the sweep checks every run against them")
    if args.plot is not None and Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
        problems.append(f"--plot {args.plot!r}: name the file with one of "
                        f"{', '.join(PLOT_SUFFIXES)}")
    elif args.plot is not None and not Path(args.plot).resolve().parent.is_dir():
        problems.append(f"--plot {args.plot!r}: its directory does not exist; create it first")
    if args.timeout is not None and not args.timeout > 0:
        problems.append(f"--timeout must be a positive number of seconds, got {args.timeout}")
    return problems


def _is_model_file(args) -> bool:
    return Path(args.target).is_file()


def _target_problems(args) -> list[str]:
    if _is_model_file(args):
        return []
    problems = []
    if args.shape:
        problems.append("--shape fixes input shapes when a model file is compiled; this "
                        "project's shapes were fixed by `compile --shape`: recompile it, or "
                        "run the model file")
    return problems


def check_run_options(args) -> None:
    """Refuse every option of ``run`` that the run ``args`` describe would not honour.

    Raises
    ------
    InputError
        Listing every such option, why it does not apply and what to use instead.
    """
    problems = resolve_power(args)
    problems += (_power_problems(args) + _host_problems(args) + _check_problems(args)
                 + _output_problems(args) + _target_problems(args))
    if problems:
        raise InputError("run: " + "; ".join(problems) if len(problems) == 1 else
                         "run: these options do not apply:\n  " + "\n  ".join(problems))


def check_project_board(args, manifest: dict) -> None:
    """A project was compiled for one board: ``--board`` may only name that one."""
    if args.board is not None and args.board.removeprefix("intermittent/") != manifest["board"]:
        raise InputError(f"--board {args.board}: this project was compiled for board "
                         f"{manifest['board']!r}; --board applies when TARGET is a model file "
                         f"(recompile with `compile --board {args.board}`)")

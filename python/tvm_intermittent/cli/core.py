"""Command implementations. ``main`` maps our errors to exit statuses; ``program`` does the work.

Exit statuses (:class:`tvm_intermittent.errors.ExitStatus`): 0 ok, 1 the outputs did not
match the reference, 2 bad input or a model that does not fit, 3 the firmware failed to run.
Errors that are not ours surface with a traceback: they are bugs, not user mistakes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..board import DEFAULT_BOARD, list_boards, load_board
from ..errors import ExitStatus, InputError, IntermittentError
from .environment import Environment
from .run_options import check_project_board, check_run_options
from ..sim.tensors import seeded_inputs
from .tensor_files import check_output_path, load_inputs, save_outputs

#: CMSIS-NN s8 kernels on this QEMU board (-O2, cortex-m4, DSP on), MLPerf Tiny KWS:
#: instructions per inference, bit-exact with TFLite Micro. The anchor our reports show.
CMSIS_NN_KWS_INSTRUCTIONS = 7_697_328


class UsageError(InputError):
    """The command line itself is wrong (an unknown option, a missing argument)."""


class _ArgumentParser(argparse.ArgumentParser):
    """Bad usage raises :class:`UsageError` instead of printing to ``sys.stderr`` and
    exiting, so that ``main`` reports it like every other bad input: on the environment's
    stderr, in ``--json`` too, with exit status 2 (BAD_INPUT)."""

    def error(self, message):
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="tvm-intermittent",
        description="Compile neural networks to plain C for intermittently powered MCUs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p):
        p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
        p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
        return p

    p = common(sub.add_parser("compile", help="compile a .onnx/.tflite model to a C project"))
    p.add_argument("model", help="path to a .onnx or .tflite model")
    p.add_argument("--board", default=DEFAULT_BOARD, help=f"board profile (default {DEFAULT_BOARD})")
    p.add_argument("-o", "--output", required=True, help="directory for the C project")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="fix the shape of an input with symbolic dimensions")
    p.add_argument("--sram", type=int, metavar="BYTES",
                   help="override the board's SRAM size (to try a smaller part)")
    p.add_argument("--capacitor", metavar="C",
                   help="size tiles for this capacitor, e.g. 100uF or 1mF (default: the "
                        "board's)")
    p.add_argument("--power-env", metavar="NAME",
                   help="size tiles for the least budget a boot gets in this power "
                        "environment (see `tvm-intermittent power-envs`; continuous: the "
                        "board's capacitor, a tuning log ranked for no failures); not with "
                        "--capacitor")
    p.add_argument("--int8-only", action="store_true",
                   help="refuse a model that would keep any operator in float or any "
                        "epilogue unfused (exit 2, naming them)")
    p.add_argument("--deadline", type=float, metavar="S",
                   help="choose the tiling with the lowest predicted latency under the power "
                        "environment, and refuse (exit 2) when none meets S seconds")
    p.add_argument("--tuning-log", metavar="DB",
                   help="apply the best records of this tuning log (`tvm-intermittent tune "
                        "--log`) that fit the board; other operators keep the analytic tiling")

    p = common(sub.add_parser("run", help="run a compiled project (or a model) on QEMU"))
    p.add_argument("target", help="a project directory from `compile`, or a model file")
    p.add_argument("--board", help=f"board, when TARGET is a model file (default "
                                   f"{DEFAULT_BOARD}; a project runs on the board it was "
                                   f"compiled for)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="when TARGET is a model file: fix the shape of an input with symbolic "
                        "dimensions")
    p.add_argument("--input", help="input tensor(s): .npy for one input, .npz for several")
    p.add_argument("--output", help="write the outputs here (.npy, or .npz for several)")
    p.add_argument("--check", action="store_true",
                   help="compare with the reference runtime (TFLite Micro or onnxruntime)")
    p.add_argument("--max-lsb", type=int, default=None,
                   help="with --check: largest int8 difference allowed (default 0 for TFLite "
                        "models, which must equal TFLite Micro, and 1 for ONNX)")
    p.add_argument("--host", action="store_true", help="run the host build instead of QEMU")
    p.add_argument("--profile", action="store_true",
                   help="per task: operator, MACs, instructions, instructions per MAC, share")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    power = p.add_argument_group(
        "power failures (on the simulator, not --host; an option given to a schedule it "
        "does not shape is refused)")
    power.add_argument("--power", choices=["none", "periodic", "random", "capacitor",
                                           "exhaustive"], default=None,
                       help="when the power fails (default none)")
    power.add_argument("--power-env", metavar="NAME",
                       help="--power capacitor in this named power environment (capacitor, "
                            "voltages, harvester; see `tvm-intermittent power-envs`); with a "
                            "model file, the tiles are sized for it too")
    power.add_argument("--mode", choices=["tiles", "layer", "restart"],
                       help="QEMU firmware: checkpoints after batches of tiles (default), at "
                            "operator boundaries, or none (start over after every failure)")
    power.add_argument("--seed", type=int, help="random: seed (default 0)")
    power.add_argument("--period", type=int, help="periodic: instructions per power cycle")
    power.add_argument("--min", type=int, dest="min_instructions",
                       help="random: shortest power cycle (default: half the budget of the "
                            "capacitor the project was compiled for)")
    power.add_argument("--max", type=int, dest="max_instructions",
                       help="random: longest power cycle (default: that whole budget)")
    power.add_argument("--capacitor",
                       help="random, capacitor: e.g. 100uF (default: the one the project was "
                            "compiled for); with a model file, the tiles are sized for it too")
    power.add_argument("--harvest", help="capacitor: harvested power, e.g. 2mW")
    power.add_argument("--trace", help="capacitor: power trace file (time s, power W)")
    power.add_argument("--window", help="exhaustive: failure points A:B (instructions)")
    power.add_argument("--max-boots", type=int, default=None,
                       help="stop a run that needs more boots than this")
    power.add_argument("--plot", metavar="PNG",
                       help="capacitor: plot energy, boots and progress over time to this file")

    from .analyze import add_parser as add_analyze  # pylint: disable=import-outside-toplevel

    add_analyze(sub, common)

    from .tune import add_parser as add_tune  # pylint: disable=import-outside-toplevel

    add_tune(sub, common)

    common(sub.add_parser("boards", help="list the board profiles"))

    p = common(sub.add_parser("power-envs", help="list the power environments (--power-env) "
                                                 "with their budgets on a board"))
    p.add_argument("--board", default=DEFAULT_BOARD, help=f"board (default {DEFAULT_BOARD})")

    from .select import add_parser as add_select  # pylint: disable=import-outside-toplevel

    add_select(sub, common)

    p = common(sub.add_parser("demo", help="keyword spotting end to end on the emulated MCU"))
    p.add_argument("--count", type=int, default=3, help="number of speech clips (default 3)")
    p.add_argument("--board", default=DEFAULT_BOARD, help=f"board (default {DEFAULT_BOARD})")
    p.add_argument("--model", default="kws", help="zoo model (default kws)")
    p.add_argument("--plot", default="intm-demo-power-cycles.png", metavar="PNG",
                   help="where to plot the power cycles (default intm-demo-power-cycles.png)")
    return parser


def main(argv=None, env: Environment | None = None) -> int:
    """Run one command; return its exit status (never raises for our own errors)."""
    env = env or Environment()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except UsageError as err:
        return _report_error(err, env, json_output="--json" in argv)
    if getattr(args, "quiet", False):
        env.show_progress = False
    try:
        return program(args, env)
    except IntermittentError as err:
        return _report_error(err, env, json_output=args.json)


def _report_error(err: IntermittentError, env: Environment, json_output: bool) -> int:
    """Print ``err`` on stderr (and as ``{"error": ...}`` on stdout with ``--json``, so a
    script reading stdout learns why there is no result); return its exit status."""
    print(f"error: {err}", file=env.stderr)
    if json_output:
        json.dump({"error": {"kind": type(err).__name__, "message": str(err),
                             "exit_status": int(err.exit_status)}}, env.stdout, indent=2)
        env.stdout.write("\n")
    return int(err.exit_status)


def program(args, env: Environment) -> int:
    """Dispatch to the command; errors propagate.

    A model file given to ``compile`` or ``run`` is checked first, before the command
    imports TVM: a damaged file is refused in a fraction of a second.
    """
    target = getattr(args, "model", None) or getattr(args, "target", None)
    if args.command in ("compile", "run", "tune") and target and Path(target).suffix.lower() in (
            ".onnx", ".tflite") and not Path(target).is_dir():
        from ..frontend import check_model_file  # pylint: disable=import-outside-toplevel

        check_model_file(target, _parse_shapes(getattr(args, "shape", [])) or None)
    if args.command == "select":
        from .select import cmd_select  # pylint: disable=import-outside-toplevel

        return cmd_select(args, env)
    if args.command == "tune":
        from .tune import cmd_tune  # pylint: disable=import-outside-toplevel

        return cmd_tune(args, env)
    return {"compile": cmd_compile, "run": cmd_run, "boards": cmd_boards,
            "power-envs": cmd_power_envs, "demo": cmd_demo,
            "analyze": cmd_analyze}[args.command](args, env)


def _emit(env: Environment, args, result: dict, text: str) -> None:
    if args.json:
        json.dump(result, env.stdout, indent=2)
        env.stdout.write("\n")
    else:
        env.stdout.write(text.rstrip("\n") + "\n")


def _parse_shapes(items) -> dict:
    shapes = {}
    for item in items:
        name, _, dims = item.rpartition("=")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise InputError(f"--shape {item!r}: expected NAME=D0,D1,... with integers") from None
        if not name:
            raise InputError(f"--shape {item!r}: missing the input name before '='")
    return shapes


# ---- compile ---------------------------------------------------------------------------


def cmd_compile(args, env: Environment) -> int:
    from .. import builder  # pylint: disable=import-outside-toplevel

    board = load_board(args.board)  # fail fast on a bad board name
    if args.sram is not None:
        board = dataclasses.replace(board, sram_bytes=args.sram)
    # pylint: disable=import-outside-toplevel
    from ..sim import environments
    from ..sim.power import parse_capacitance

    capacitor = parse_capacitance(args.capacitor) if args.capacitor else None
    # continuous: no failures to size tiles for (the board's capacitor's), and a tuning
    # log's records ranked for continuous power.
    continuous = environments.is_continuous(args.power_env)
    if continuous and args.capacitor:
        raise InputError("--power-env continuous means no capacitor; drop --capacitor")
    power_env = None if continuous else _power_env_for_tiles(args, board)
    if args.tuning_log is not None:
        if args.deadline is not None:
            raise InputError("--tuning-log and --deadline both choose the tiling; give one")
        from ..tuning.log import TuningLog  # pylint: disable=import-outside-toplevel

        TuningLog.check_path(args.tuning_log, create=False)
    if args.deadline is not None:
        artifact = _compile_for_deadline(args, env, board)
    else:
        with env.step(f"compiling {args.model} for {args.board}"):
            artifact = builder.build(args.model, "intermittent/" + args.board, board=board,
                                     shape_dict=_parse_shapes(args.shape) or None,
                                     capacitor_f=capacitor, int8_only=args.int8_only,
                                     power_env=(environments.CONTINUOUS if continuous
                                                else power_env),
                                     tuning_log=args.tuning_log)
    for notice in artifact.notices:  # not progress: shown with --quiet too
        print(f"notice: {notice}", file=env.stderr)
    if power_env is not None and power_env.sizing_note(board):
        print(f"notice: {power_env.sizing_note(board)}", file=env.stderr)
    project = artifact.export(args.output, overwrite=args.force)
    manifest = artifact.manifest()
    text = (f"wrote {project}\n"
            f"  arena (inputs, activations, outputs): {manifest['arena_bytes']} bytes\n"
            f"  weights (const, in flash): {manifest['weight_bytes']} bytes\n"
            f"  compile time: {manifest['compile_seconds']} s\n"
            + (f"  {len(artifact.notices)} notice(s) above: operators on a slower or less "
               "exact path\n" if artifact.notices else "") +
            (_deadline_text(manifest["deadline"]) if "deadline" in manifest else "") +
            f"build and run it with `make -C {project}` and `tvm-intermittent run {project}`")
    _emit(env, args, {"project": str(project), **manifest}, text)
    return ExitStatus.OK


def _power_env_for_tiles(args, board):
    """The environment ``--power-env`` names for sizing tiles (None without it); refused
    with ``--capacitor``, which would size them for another capacitor."""
    from ..sim import environments  # pylint: disable=import-outside-toplevel

    if args.power_env is None:
        return None
    return environments.from_args(board, power_env=args.power_env, capacitor=args.capacitor)


def _compile_for_deadline(args, env: Environment, board):
    """``compile --deadline S``: the tiling with the lowest predicted latency, or exit 2."""
    # pylint: disable=import-outside-toplevel
    from ..energy.analyze import environment_from_args
    from ..energy.deadline import compile_for_deadline

    if not args.deadline > 0:
        raise InputError(f"--deadline must be a positive number of seconds, got "
                         f"{args.deadline:g}")
    environment = environment_from_args(
        board, power_env=getattr(args, "power_env", None), capacitor=args.capacitor,
        harvest=getattr(args, "harvest", None), trace=getattr(args, "trace", None))
    with env.step(f"compiling {args.model} for {args.board} once per tiling candidate"):
        result = compile_for_deadline(args.model, board, environment, args.deadline,
                                      shape_dict=_parse_shapes(args.shape) or None,
                                      int8_only=args.int8_only)
    result.artifact.records["deadline"] = result.record()
    return result.artifact


def _deadline_text(record: dict) -> str:
    p = record["prediction"]
    policy = record["policy"]
    return (f"  deadline {record['deadline_s']:g} s: met, {p['latency_s']:.4g} s predicted in "
            f"{p['boots']} boots (tiling margin {policy['margin']}, batch x"
            f"{policy['batch_scale']}, best of {record['candidates']})\n")


# ---- run -------------------------------------------------------------------------------


def _load_manifest(project: Path) -> dict:
    path = project / "model.json"
    if not path.is_file():
        raise InputError(f"{str(project)!r} is not a project made by `tvm-intermittent compile` "
                         "(no model.json); pass a project directory or a .onnx/.tflite file")
    try:
        manifest = json.loads(path.read_text())
        for key in ("name", "board", "inputs", "outputs"):
            manifest[key]  # pylint: disable=pointless-statement
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{str(path)!r} is damaged ({type(err).__name__}: {err}); compile the "
                         "project again") from err
    return manifest


def _inputs(args, specs: list[dict], env: Environment) -> list[np.ndarray]:
    """The ``--input`` file's arrays, or a seeded random input when there is none."""
    if args.input is not None:
        return load_inputs(args.input, specs)
    env.log("no --input given: using a seeded random input (numpy seed 0)")
    return seeded_inputs(specs)


def reference_outputs(project: Path, manifest: dict, inputs):
    """Outputs of the independent runtime for the project's original model file, and the
    LSB scales of its float outputs (see :func:`tvm_intermittent.reference.output_lsb_scales`).
    """
    from .. import reference  # pylint: disable=import-outside-toplevel

    fmt = manifest.get("source_format")
    original = project / f"original.{fmt}"
    if fmt == "tflite" and original.is_file():
        return (reference.run_tflite_micro(original, inputs),
                reference.output_lsb_scales(original))
    if fmt == "onnx" and original.is_file():
        return (reference.run_onnxruntime(original, inputs),
                reference.onnx_output_lsb_scales(original))
    raise InputError("--check needs the original .tflite/.onnx model, which this project "
                     "lacks; compile it from a model file")


def _max_lsb(args, manifest: dict) -> int:
    """--max-lsb, or its default: TFLite models must equal TFLite Micro exactly; ONNX QDQ
    models may differ from onnxruntime by 1 step (it rounds some ties differently)."""
    if args.max_lsb is not None:
        return args.max_lsb
    return 0 if manifest.get("source_format") == "tflite" else 1


def _check(args, env: Environment, project: Path, manifest: dict, inputs, outputs):
    """With ``--check``, the comparison of ``outputs`` with the reference runtime's."""
    from ..check import compare_outputs  # pylint: disable=import-outside-toplevel

    if not args.check:
        return None
    with env.step("running the reference runtime"):
        expected, scales = reference_outputs(project, manifest, inputs)
    return compare_outputs(outputs, expected, max_lsb=_max_lsb(args, manifest),
                           lsb_scales=scales)


def _compile_for_run(args, env: Environment, target: Path, directory: Path) -> Path:
    """``run model.onnx``: compile with the run's --board, --shape and --capacitor."""
    from .. import builder  # pylint: disable=import-outside-toplevel
    from ..sim.power import parse_capacitance  # pylint: disable=import-outside-toplevel

    board = load_board(args.board or DEFAULT_BOARD)
    capacitor = parse_capacitance(args.capacitor) if args.capacitor else None
    power_env = _power_env_for_tiles(args, board)
    with env.step(f"compiling {target.name} for {board.name}"):
        artifact = builder.build(target, "intermittent/" + board.name,
                                 shape_dict=_parse_shapes(args.shape) or None,
                                 capacitor_f=capacitor, power_env=power_env)
    return artifact.export(directory / "project")


def cmd_run(args, env: Environment) -> int:
    from .. import sim  # pylint: disable=import-outside-toplevel

    check_run_options(args)
    if args.output:
        check_output_path(args.output)
    target = Path(args.target)
    with tempfile.TemporaryDirectory(prefix="intm-cli-") as tmp:
        if target.is_file():
            project = _compile_for_run(args, env, target, Path(tmp))
        elif target.is_dir():
            project = target
        else:
            raise InputError(f"{args.target!r} is neither a project directory nor a model file")
        manifest = _load_manifest(project)
        check_project_board(args, manifest)
        if args.output:
            check_output_path(args.output, manifest["outputs"])
        inputs = _inputs(args, manifest["inputs"], env)
        if args.profile:
            from .profile import cmd_profile  # pylint: disable=import-outside-toplevel

            return cmd_profile(args, env, project, manifest, inputs)
        if args.power != "none":
            return _run_under_failures(args, env, project, manifest, inputs)
        # Without --host: the simulator of the board's ISA (QEMU, or mspdebug for MSP430).
        kind = "host" if args.host else sim.default_kind(project)
        where = {"host": "the host", "qemu": "QEMU mps2-an386", "msp430": "mspdebug's MSP430"}
        with env.step(f"running on {where[kind]}"):
            result = sim.run(project, inputs, kind=kind, timeout=args.timeout,
                             mode=args.mode)
        check = _check(args, env, project, manifest, inputs, result.outputs)
    if args.output:
        save_outputs(args.output, result.outputs, manifest["outputs"])
    report = {
        "outputs": [o.tolist() for o in result.outputs],
        "instructions_total": result.instructions_total,
        "instructions_model": result.instructions_model,
        "kind": kind,
        "check": check.to_dict() if check else None,
    }
    lines = []
    for spec, out in zip(manifest["outputs"], result.outputs):
        lines.append(f"output {spec['name']} {out.dtype}{list(out.shape)}: "
                     f"{np.array2string(out.reshape(-1), max_line_width=100, threshold=64)}")
    if result.instructions_total is not None:
        lines.append(f"instructions: {result.instructions_total:,} total, "
                     f"{result.instructions_model:,} in intm_model_run")
    if check:
        lines.append("check against the reference: " + check.summary())
    _emit(env, args, report, "\n".join(lines))
    return ExitStatus.MISMATCH if check is not None and not check.ok else ExitStatus.OK


def _compiled_capacitor(manifest: dict, board) -> float | None:
    """The capacitor the project's tiles were sized for (None: the board's).

    Projects record it in ``model.json``; for one that predates the record, the board's is
    the answer only if its budget is the one the project was compiled for.
    """
    if manifest.get("capacitor_f"):
        return float(manifest["capacitor_f"])
    budget = manifest.get("power_cycle_budget")
    if budget is None or budget == board.power_cycle_budget():
        return None
    raise InputError(f"this project was compiled for a capacitor model.json does not record "
                     f"(a budget of {budget:,} instructions per charge; the board's capacitor "
                     f"gives {board.power_cycle_budget():,}); pass --capacitor")


def _schedule(args, env: Environment, board, manifest: dict):
    """The power schedule the --power options describe.

    Random power cycles and the capacitor model default to the capacitor the project was
    compiled for, not to the board's: a project compiled with ``--capacitor 1mF`` has
    tiles ten times the board's default budget, which the board's capacitor would never
    let finish.
    """
    from ..sim import environments, power  # pylint: disable=import-outside-toplevel

    given = power.parse_capacitance(args.capacitor) if args.capacitor else None
    if args.power == "periodic":
        if args.period is None:
            raise InputError("--power periodic needs --period N (instructions per power cycle)")
        return power.Periodic(args.period)
    if args.power == "random":
        if given is not None:
            budget, source = board.power_cycle_budget(given), f"--capacitor {args.capacitor}"
        elif manifest.get("power_env"):
            budget = environments.get(manifest["power_env"]).power_cycle_budget(board)
            source = f"power environment {manifest['power_env']}, as the project was compiled"
        else:
            budget = board.power_cycle_budget(_compiled_capacitor(manifest, board))
            source = "the capacitor the project was compiled for"
        low = args.min_instructions if args.min_instructions is not None else budget // 2
        high = args.max_instructions if args.max_instructions is not None else budget
        seed = 0 if args.seed is None else args.seed
        if args.min_instructions is None or args.max_instructions is None:
            env.log(f"random power cycles of {low:,} to {high:,} instructions (one charge of "
                    f"{source} pays for {budget:,}), seed {seed}")
        return power.Random(seed, low, high)
    if args.power == "capacitor":
        options = (args.power_env, args.capacitor, args.harvest, args.trace)
        if all(o is None for o in options) and manifest.get("power_env"):
            env.log(f"power environment {manifest['power_env']}, the one the project was "
                    "compiled for")
            return environments.get(manifest["power_env"]).schedule(board)
        capacitor = None if args.power_env else (
            given if given is not None else _compiled_capacitor(manifest, board))
        return environments.from_args(board, power_env=args.power_env, capacitor=capacitor,
                                      harvest=args.harvest, trace=args.trace).schedule(board)
    raise InputError(f"--power {args.power}: unknown schedule")


def _run_exhaustive(args, env: Environment, project: Path, manifest: dict, inputs) -> int:
    """One run per failure point of --window, each compared with the uninterrupted run
    (and that run, with --check, with the reference runtime)."""
    from .. import sim  # pylint: disable=import-outside-toplevel

    if not args.window:
        raise InputError("--power exhaustive needs --window A:B (instructions)")
    start = sim.power.parse_window(args.window)[0]
    mode = args.mode or "tiles"
    with env.step("running continuously for the reference outputs"):
        reference = sim.run(project, inputs, mode=mode, timeout=args.timeout).outputs
    check = _check(args, env, project, manifest, inputs, reference)
    with env.step(f"one run per failure point in {args.window}"):
        runs = sim.run_exhaustive(project, inputs, args.window, mode=mode,
                                  timeout=args.timeout, max_boots=args.max_boots)
    bad = [i for i, r in enumerate(runs)
           if not r.finished or not all(np.array_equal(a, b)
                                        for a, b in zip(r.outputs, reference))]
    report = {"power": "exhaustive", "window": args.window, "runs": len(runs),
              "all_match": not bad, "mismatched_points": [start + i for i in bad],
              "check": check.to_dict() if check else None}
    text = (f"{len(runs)} runs, one power failure each at instructions {args.window}: "
            + ("every run finished with the uninterrupted outputs" if not bad else
               f"{len(bad)} runs DIFFER, first at instruction {start + bad[0]}"))
    if check:
        text += f"\nuninterrupted run against the reference: {check.summary()}"
    _emit(env, args, report, text)
    return ExitStatus.MISMATCH if bad or (check is not None and not check.ok) else ExitStatus.OK


def _run_under_failures(args, env: Environment, project: Path, manifest: dict, inputs) -> int:
    """Run with power failures: the report, and outputs compared with the uninterrupted run."""
    from .. import sim  # pylint: disable=import-outside-toplevel

    if args.power == "exhaustive":
        return _run_exhaustive(args, env, project, manifest, inputs)
    board = load_board(manifest["board"])
    schedule = _schedule(args, env, board, manifest)
    with env.step(f"running under {args.power} power failures, then continuously"):
        report = sim.measure_intermittent(project, inputs, schedule, board=board,
                                          mode=args.mode or "tiles", max_boots=args.max_boots,
                                          timeout=args.timeout)
    if args.plot:
        from ..sim.timeline import plot_power_cycles, power_timeline  # pylint: disable=C0415

        plot_power_cycles(power_timeline(report.failure_run, schedule, board), args.plot,
                          f"{manifest['name']} on {board.name}, {schedule.to_dict()}")
        env.log(f"wrote the power-cycle plot to {args.plot}")
    check = None
    if report.outputs is not None:
        check = _check(args, env, project, manifest, inputs, report.outputs)
        if args.output:
            save_outputs(args.output, report.outputs, manifest["outputs"])
    elif args.output or args.check:
        env.log("the run under failures did not finish: no outputs to "
                + ("save or check" if args.output and args.check else
                   "save" if args.output else "check"))
    data = report.to_dict() | {"check": check.to_dict() if check else None}
    text = report.render() + (f"\ncheck against the reference: {check.summary()}" if check else "")
    _emit(env, args, data, text)
    if not report.finished:
        return ExitStatus.RUN_FAILED
    if not report.outputs_match or (check is not None and not check.ok):
        return ExitStatus.MISMATCH
    return ExitStatus.OK


# ---- analyze ---------------------------------------------------------------------------


def cmd_analyze(args, env: Environment) -> int:
    from .analyze import cmd_analyze as analyze  # pylint: disable=import-outside-toplevel

    return analyze(args, env)


# ---- boards ----------------------------------------------------------------------------


def cmd_boards(args, env: Environment) -> int:
    boards = [load_board(name) for name in list_boards()]
    rows = [f"{'board':<14} {'SRAM':>9} {'NVM':>10} {'clock':>8}  {'budget/charge':>14}  description"]
    for b in boards:
        rows.append(f"{b.name:<14} {b.sram_bytes // 1024:>6} KiB {b.nvm_bytes // 1024:>6} KiB "
                    f"{b.clock_hz / 1e6:>5.0f} MHz  {b.power_cycle_budget():>14,}  {b.description}")
    rows.append("budget/charge: instructions one charge of the default capacitor pays for")
    result = [b.to_dict() | {"power_cycle_budget": b.power_cycle_budget()} for b in boards]
    _emit(env, args, {"boards": result}, "\n".join(rows))
    return ExitStatus.OK


# ---- power-envs ------------------------------------------------------------------------


def cmd_power_envs(args, env: Environment) -> int:
    from ..sim import environments  # pylint: disable=import-outside-toplevel

    board = load_board(args.board)

    def count(value):
        return f"{value:>13,}" if value is not None else f"{'never fails':>13}"

    rows = [f"{'environment':<13} {'C':>6} {'on/off V':>11} {'charge':>13} {'boot 1':>13} "
            f"{'tiles':>13} {'boot s':>7} {'recharge s':>10}  harvester"]
    result = []
    for name in environments.names():
        preset = environments.get(name)
        s = preset.summary(board)
        result.append(preset.to_dict() | s)
        times = (f"{s['boot_seconds']:>7.3g} {s['recharge_seconds']:>10.3g}"
                 if s["budget"] is not None else f"{'-':>7} {'-':>10}")
        rows.append(f"{name:<13} {s['capacitor_f'] * 1e3:>4.3g}mF "
                    f"{s['v_on']:>5.4g}/{s['v_off']:<5.4g} {count(s['charge_budget'])} "
                    f"{count(s['budget'])} {count(s['sizing_budget'])} {times}  "
                    f"{s['harvester']}")
    rows.append(f"board {board.name}, {board.active_power_w * 1e3:.3g} mW active; budgets in "
                "instruction-equivalents: charge = the charge alone, boot 1 = the first boot "
                "with the harvest while computing, tiles = what `compile --power-env` sizes "
                "tiles for (the least budget of any boot; the charge alone where the device "
                "never browns out); see docs/power.md")
    _emit(env, args, {"board": board.name, "power_envs": result}, "\n".join(rows))
    return ExitStatus.OK


# ---- demo ------------------------------------------------------------------------------


def cmd_demo(args, env: Environment) -> int:
    from .demo import run_demo  # pylint: disable=import-outside-toplevel

    report = run_demo(args.model, args.board, args.count, env, plot=args.plot)
    _emit(env, args, report.to_dict(), report.text())
    return ExitStatus.OK if report.all_match else ExitStatus.MISMATCH

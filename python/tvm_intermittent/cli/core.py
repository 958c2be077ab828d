"""Command implementations. ``main`` maps our errors to exit statuses; ``program`` does the work.

Exit statuses (:class:`tvm_intermittent.errors.ExitStatus`): 0 ok, 1 the outputs did not
match the reference, 2 bad input or a model that does not fit, 3 the firmware failed to run.
Errors that are not ours surface with a traceback: they are bugs, not user mistakes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from ..board import DEFAULT_BOARD, list_boards, load_board
from ..errors import ExitStatus, InputError, IntermittentError
from .environment import Environment

#: CMSIS-NN s8 kernels on this QEMU board (-O2, cortex-m4, DSP on), MLPerf Tiny KWS:
#: instructions per inference, bit-exact with TFLite Micro. The anchor our reports show.
CMSIS_NN_KWS_INSTRUCTIONS = 7_697_328


class _ArgumentParser(argparse.ArgumentParser):
    """argparse exits with status 2 on bad usage, which is our BAD_INPUT already."""


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
    p.add_argument("--int8-only", action="store_true",
                   help="refuse a model that would keep any operator in float or any "
                        "epilogue unfused (exit 2, naming them)")

    p = common(sub.add_parser("run", help="run a compiled project (or a model) on QEMU"))
    p.add_argument("target", help="a project directory from `compile`, or a model file")
    p.add_argument("--board", default=DEFAULT_BOARD, help="board, when TARGET is a model file")
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
    power = p.add_argument_group("power failures (QEMU only)")
    power.add_argument("--power", choices=["none", "periodic", "random", "capacitor",
                                           "exhaustive"], default="none",
                       help="when the power fails (default none)")
    power.add_argument("--mode", choices=["tiles", "layer", "restart"], default="tiles",
                       help="checkpointing: after batches of tiles (default), at operator "
                            "boundaries, or none (start over after every failure)")
    power.add_argument("--seed", type=int, default=0, help="random: seed (default 0)")
    power.add_argument("--period", type=int, help="periodic: instructions per power cycle")
    power.add_argument("--min", type=int, dest="min_instructions",
                       help="random: shortest power cycle (default: half the board's budget)")
    power.add_argument("--max", type=int, dest="max_instructions",
                       help="random: longest power cycle (default: the board's budget)")
    power.add_argument("--capacitor", help="capacitor: e.g. 100uF (default: the board's)")
    power.add_argument("--harvest", help="capacitor: harvested power, e.g. 2mW")
    power.add_argument("--trace", help="capacitor: power trace file (time s, power W)")
    power.add_argument("--window", help="exhaustive: failure points A:B (instructions)")
    power.add_argument("--max-boots", type=int, default=None,
                       help="stop a run that needs more boots than this")
    power.add_argument("--plot", metavar="PNG",
                       help="capacitor: plot energy, boots and progress over time to this file")

    common(sub.add_parser("boards", help="list the board profiles"))

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
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if getattr(args, "quiet", False):
        env.show_progress = False
    try:
        return program(args, env)
    except IntermittentError as err:
        print(f"error: {err}", file=env.stderr)
        return int(err.exit_status)


def program(args, env: Environment) -> int:
    """Dispatch to the command; errors propagate."""
    return {"compile": cmd_compile, "run": cmd_run, "boards": cmd_boards,
            "demo": cmd_demo}[args.command](args, env)


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
    from ..sim.power import parse_capacitance  # pylint: disable=import-outside-toplevel

    capacitor = parse_capacitance(args.capacitor) if args.capacitor else None
    with env.step(f"compiling {args.model} for {args.board}"):
        artifact = builder.build(args.model, "intermittent/" + args.board, board=board,
                                 shape_dict=_parse_shapes(args.shape) or None,
                                 capacitor_f=capacitor, int8_only=args.int8_only)
    for notice in artifact.notices:  # not progress: shown with --quiet too
        print(f"notice: {notice}", file=env.stderr)
    project = artifact.export(args.output, overwrite=args.force)
    manifest = artifact.manifest()
    text = (f"wrote {project}\n"
            f"  arena (inputs, activations, outputs): {manifest['arena_bytes']} bytes\n"
            f"  weights (const, in flash): {manifest['weight_bytes']} bytes\n"
            f"  compile time: {manifest['compile_seconds']} s\n"
            + (f"  {len(artifact.notices)} notice(s) above: operators on a slower or less "
               "exact path\n" if artifact.notices else "") +
            f"build and run it with `make -C {project}` and `tvm-intermittent run {project}`")
    _emit(env, args, {"project": str(project), **manifest}, text)
    return ExitStatus.OK


# ---- run -------------------------------------------------------------------------------


def _load_manifest(project: Path) -> dict:
    path = project / "model.json"
    if not path.is_file():
        raise InputError(f"{str(project)!r} is not a project made by `tvm-intermittent compile` "
                         "(no model.json); pass a project directory or a .onnx/.tflite file")
    return json.loads(path.read_text())


def load_inputs(path: str | None, specs: list[dict], env: Environment) -> list[np.ndarray]:
    """Read ``.npy``/``.npz`` inputs and check them against the model's tensors."""
    if path is None:
        env.log("no --input given: using a seeded random input (numpy seed 0)")
        rng = np.random.default_rng(0)
        arrays = []
        for spec in specs:
            dtype = np.dtype(spec["dtype"])
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                arrays.append(rng.integers(info.min, info.max, spec["shape"], endpoint=True,
                                           dtype=dtype))
            else:
                arrays.append(rng.standard_normal(spec["shape"]).astype(dtype))
        return arrays
    file = Path(path)
    if not file.is_file():
        raise InputError(f"input file {path!r} does not exist")
    try:
        loaded = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise InputError(f"cannot read {path!r} as .npy/.npz: {err}") from err
    if isinstance(loaded, np.ndarray):
        arrays = [loaded]
    else:
        names = list(loaded.files)
        by_name = [s["name"] for s in specs]
        order = by_name if all(n in names for n in by_name) else names
        arrays = [loaded[n] for n in order]
    if len(arrays) != len(specs):
        raise InputError(f"{path!r} holds {len(arrays)} array(s) but the model has "
                         f"{len(specs)} input(s): {[s['name'] for s in specs]}")
    for array, spec in zip(arrays, specs):
        if list(array.shape) != list(spec["shape"]) or str(array.dtype) != spec["dtype"]:
            raise InputError(
                f"input {spec['name']!r} must be {spec['dtype']} {spec['shape']}, but {path!r} "
                f"has {array.dtype} {list(array.shape)}"
            )
    return arrays


def _save_outputs(path: str, outputs: list[np.ndarray], specs: list[dict]) -> None:
    if len(outputs) == 1 and not path.endswith(".npz"):
        np.save(path, outputs[0])
    else:
        np.savez(path, **{s["name"]: o for s, o in zip(specs, outputs)})


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


def cmd_run(args, env: Environment) -> int:
    from .. import sim  # pylint: disable=import-outside-toplevel
    from ..check import compare_outputs  # pylint: disable=import-outside-toplevel

    target = Path(args.target)
    with tempfile.TemporaryDirectory(prefix="intm-cli-") as tmp:
        if target.is_file():
            from .. import builder  # pylint: disable=import-outside-toplevel

            with env.step(f"compiling {target.name} for {args.board}"):
                artifact = builder.build(target, "intermittent/" + load_board(args.board).name)
            project = artifact.export(Path(tmp) / "project")
        elif target.is_dir():
            project = target
        else:
            raise InputError(f"{args.target!r} is neither a project directory nor a model file")
        manifest = _load_manifest(project)
        inputs = load_inputs(args.input, manifest["inputs"], env)
        if args.profile:
            from .profile import cmd_profile  # pylint: disable=import-outside-toplevel

            return cmd_profile(args, env, project, manifest, inputs)
        if args.power != "none":
            if args.host:
                raise InputError("--power needs QEMU; drop --host")
            return _run_under_failures(args, env, project, manifest, inputs)
        kind = "host" if args.host else "qemu"
        with env.step(f"running on {'the host' if args.host else 'QEMU mps2-an386'}"):
            result = sim.run(project, inputs, kind=kind, timeout=args.timeout)
        check = None
        if args.check:
            with env.step("running the reference runtime"):
                expected, scales = reference_outputs(project, manifest, inputs)
            check = compare_outputs(result.outputs, expected, max_lsb=_max_lsb(args, manifest),
                                    lsb_scales=scales)
    if args.output:
        _save_outputs(args.output, result.outputs, manifest["outputs"])
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


def _schedule(args, board):
    """The power schedule the --power options describe."""
    from ..sim import power  # pylint: disable=import-outside-toplevel

    if args.power == "periodic":
        if args.period is None:
            raise InputError("--power periodic needs --period N (instructions per power cycle)")
        return power.Periodic(args.period)
    if args.power == "random":
        budget = board.power_cycle_budget(
            power.parse_capacitance(args.capacitor) if args.capacitor else None)
        low = args.min_instructions if args.min_instructions is not None else budget // 2
        high = args.max_instructions if args.max_instructions is not None else budget
        return power.Random(args.seed, low, high)
    if args.power == "capacitor":
        trace = power.PowerTrace.load(args.trace) if args.trace else None
        return power.Capacitor(
            board, capacitor_f=power.parse_capacitance(args.capacitor) if args.capacitor else None,
            harvest_w=power.parse_power(args.harvest) if args.harvest else None, trace=trace)
    raise InputError(f"--power {args.power}: unknown schedule")


def _run_under_failures(args, env: Environment, project: Path, manifest: dict, inputs) -> int:
    """Run with power failures: the report, and outputs compared with the uninterrupted run."""
    from .. import sim  # pylint: disable=import-outside-toplevel
    from ..check import compare_outputs  # pylint: disable=import-outside-toplevel

    board = load_board(manifest["board"])
    if args.power == "exhaustive":
        if not args.window:
            raise InputError("--power exhaustive needs --window A:B (instructions)")
        with env.step("running continuously for the reference outputs"):
            reference = sim.run(project, inputs, mode=args.mode, timeout=args.timeout).outputs
        with env.step(f"one run per failure point in {args.window}"):
            runs = sim.run_exhaustive(project, inputs, args.window, mode=args.mode,
                                      timeout=args.timeout, max_boots=args.max_boots)
        bad = [i for i, r in enumerate(runs)
               if not r.finished or not all(np.array_equal(a, b)
                                            for a, b in zip(r.outputs, reference))]
        start = sim.power.parse_window(args.window)[0]
        report = {"power": "exhaustive", "window": args.window, "runs": len(runs),
                  "all_match": not bad, "mismatched_points": [start + i for i in bad]}
        text = (f"{len(runs)} runs, one power failure each at instructions {args.window}: "
                + ("every run finished with the uninterrupted outputs" if not bad else
                   f"{len(bad)} runs DIFFER, first at instruction {start + bad[0]}"))
        _emit(env, args, report, text)
        return ExitStatus.OK if not bad else ExitStatus.MISMATCH
    schedule = _schedule(args, board)
    if args.plot and args.power != "capacitor":
        raise InputError("--plot needs --power capacitor (the plot shows the capacitor)")
    with env.step(f"running under {args.power} power failures, then continuously"):
        report = sim.measure_intermittent(project, inputs, schedule, board=board, mode=args.mode,
                                          max_boots=args.max_boots, timeout=args.timeout)
    if args.plot:
        from ..sim.timeline import plot_power_cycles, power_timeline  # pylint: disable=C0415

        plot_power_cycles(power_timeline(report.failure_run, schedule, board), args.plot,
                          f"{manifest['name']} on {board.name}, {schedule.to_dict()}")
        env.log(f"wrote the power-cycle plot to {args.plot}")
    check = None
    if args.check and report.outputs is not None:
        expected, scales = reference_outputs(project, manifest, inputs)
        check = compare_outputs(report.outputs, expected, max_lsb=_max_lsb(args, manifest),
                                lsb_scales=scales)
    if args.output and report.outputs is not None:
        _save_outputs(args.output, report.outputs, manifest["outputs"])
    data = report.to_dict() | {"check": check.to_dict() if check else None}
    text = report.render() + (f"\ncheck against the reference: {check.summary()}" if check else "")
    _emit(env, args, data, text)
    if not report.finished:
        return ExitStatus.RUN_FAILED
    if not report.outputs_match or (check is not None and not check.ok):
        return ExitStatus.MISMATCH
    return ExitStatus.OK


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


# ---- demo ------------------------------------------------------------------------------


def cmd_demo(args, env: Environment) -> int:
    from .demo import run_demo  # pylint: disable=import-outside-toplevel

    report = run_demo(args.model, args.board, args.count, env, plot=args.plot)
    _emit(env, args, report.to_dict(), report.text())
    return ExitStatus.OK if report.all_match else ExitStatus.MISMATCH

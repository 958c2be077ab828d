"""``tune``: search each operator's tiling on QEMU for a board and power environment.

``tvm-intermittent tune MODEL --board B --trials N --log DB [--power-env E | --capacitor C]
[--workers K] [--cost-model analytic|xgb] [--rpc-tracker HOST:PORT --rpc-key KEY]``. Candidates are
measured by local QEMU workers, or by the measurement servers registered under ``KEY`` at a
TVM RPC tracker (``tuning.rpc``). The log is a directory (:mod:`..tuning.log`); a second
run with the same log continues where the first stopped and measures nothing twice. The
run ends with the operator table: each operator's default and tuned tiling, predicted and
measured latency. ``compile --tuning-log DB`` applies the log.

Bad or hopeless input stops ``tune`` before it measures, with exit status 2 and a message
that says what would fix it, leaving no new log behind: a model that does not load or fit
the board, an unknown board or environment, a log path that is no tuning log or is damaged,
``--trials`` below 1, ``--workers`` below 1, an RPC tracker that does not answer or has no
server under the key, a capacitor too small for any tile, and a default build that cannot be
measured (it does not finish under the environment within its cap). Ctrl-C stops the run
with exit status 130; the log keeps every candidate measured before, and the same command
continues. Each candidate that fails (its build, its measurement, or the cap of its run
under failures) is printed as it fails.
"""

from __future__ import annotations

from ..board import DEFAULT_BOARD, load_board
from ..errors import ExitStatus, InputError


def add_parser(sub, common) -> None:
    """Register ``tune`` on the CLI's subparsers (``common`` adds --json and --quiet)."""
    p = common(sub.add_parser("tune", help="tune each operator's tiling on QEMU for a board "
                                           "and power environment"))
    p.add_argument("model", help="path to a .onnx or .tflite model")
    p.add_argument("--board", default=DEFAULT_BOARD,
                   help=f"board profile (default {DEFAULT_BOARD})")
    p.add_argument("--trials", type=int, required=True,
                   help="candidates the log should hold for this model, board and power "
                        "environment, 1 or more (a rerun continues up to this many; with "
                        "the log's own count it measures nothing and prints the table)")
    p.add_argument("--log", required=True, metavar="DB",
                   help="tuning log directory (created when missing; reused to resume)")
    p.add_argument("--power-env", metavar="E",
                   help="power environment to tune for: a preset of `tvm-intermittent "
                        "power-envs`, or continuous (default: board)")
    p.add_argument("--capacitor", metavar="C",
                   help="instead of --power-env: this capacitor (e.g. 100uF) with the board's "
                        "voltages and harvester, as `compile --capacitor` sizes tiles for")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="candidates measured at once on local QEMU (default 1)")
    p.add_argument("--cost-model", choices=["analytic", "xgb"],
                   help="what ranks the candidates (default: xgb where it ships, else "
                        "analytic)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT",
                   help="measure on the servers registered at this TVM RPC tracker")
    p.add_argument("--rpc-key", metavar="KEY", help="the servers' key at the tracker")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="fix the shape of an input with symbolic dimensions")


def _check_options(args) -> None:
    problems = []
    if args.trials < 1:
        problems.append(f"--trials must be at least 1, got {args.trials} (the number of "
                        "candidates the log should hold; a rerun with the log's own count "
                        "measures nothing and prints its table)")
    if args.workers < 1:
        problems.append(f"--workers must be at least 1, got {args.workers}")
    if bool(args.rpc_tracker) != bool(args.rpc_key):
        problems.append("--rpc-tracker and --rpc-key go together: the tracker's address and "
                        "the key its measurement servers registered under")
    if args.rpc_tracker:
        host, _, port = args.rpc_tracker.rpartition(":")
        if not host or not port.isdigit():
            problems.append(f"--rpc-tracker {args.rpc_tracker!r}: expected HOST:PORT")
    if problems:
        raise InputError("; ".join(problems))


def _runner(args):
    """The RPC runner, or None for local workers."""
    if not args.rpc_tracker:
        return None
    try:
        from ..tuning.rpc import rpc_runner  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise InputError("measurement through an RPC tracker (--rpc-tracker) is not part of "
                         "this build; measure on local QEMU workers (--workers K)") from None
    host, _, port = args.rpc_tracker.rpartition(":")
    runner = rpc_runner(host, int(port), args.rpc_key)
    runner.check()  # no tracker, or no server under the key: refused before any build
    return runner


def _log_notices(tuner, args) -> list[str]:
    """What the log says before the run: what opening it repaired, what it holds of this
    model, and other models' records beside it."""
    log = tuner.log
    notes = list(log.notices)
    mine = _logged(tuner)
    if mine:
        notes.append(f"tuning log {args.log}: resuming with {mine} candidate(s) of this model "
                     f"measured on {tuner.board.name} under {tuner.env.name}; "
                     f"{max(0, args.trials - mine)} more to measure for --trials {args.trials}")
    others = log.other_models(tuner.model_hash)
    if others and not any(e.get("model_hash") == tuner.model_hash
                          for e in log.measurements(kind="default")):
        notes.append(f"tuning log {args.log} holds the records of {others} other model(s); "
                     f"this run adds {tuner.model.manifest['name']}'s beside them (a record "
                     "applies only to its own operator's workload); give a new --log to keep "
                     "them apart")
    return notes


def _logged(tuner) -> int:
    """Candidates of the tuner's model the log holds on its board under its environment."""
    return sum(len(tuner.log.measured_knobs(t, tuner.board.name, tuner.env.name))
               for t in tuner.model.tasks)


def cmd_tune(args, env) -> int:
    # pylint: disable=import-outside-toplevel
    from ..tuning.log import TuningLog
    from ..tuning.objective import environment
    from ..tuning.search import Tuner
    from .core import _emit, _parse_shapes

    _check_options(args)
    board = load_board(args.board)
    environment(args.power_env, args.capacitor)  # fail fast on an unknown name
    TuningLog.check_path(args.log)
    shapes = _parse_shapes(args.shape) or None
    model = args.model
    if shapes:
        from ..frontend import load_model

        model = load_model(args.model, shapes)
    runner = _runner(args)
    tuner = bar = None
    interrupts = []

    def on_interrupt(signum, frame):
        # The first Ctrl-C of a run lets the measurements in flight end and be logged;
        # before the run, or the second time, stop at once.
        interrupts.append(signum)
        if tuner is None or len(interrupts) > 1:
            raise KeyboardInterrupt
        tuner.interrupt()
        print("\ninterrupting: the measurements in flight are logged when they end (Ctrl-C "
              "again to stop at once)", file=env.stderr)

    previous = _install_interrupt_handler(on_interrupt)
    try:
        with env.step(f"preparing {args.model} for {board.name}"):
            tuner = Tuner(model, board=board, log=args.log, power_env=args.power_env,
                          capacitor=args.capacitor,
                          workers=args.workers, cost_model=args.cost_model, runner=runner)
        for note in _log_notices(tuner, args):  # not progress: shown with --quiet too
            print(f"notice: {note}", file=env.stderr)
        if env.show_progress:
            from tqdm import tqdm

            bar = tqdm(total=0, desc="measuring candidates", unit="candidate",
                       file=env.stderr, leave=False)

        def report(error: str) -> None:
            line = f"notice: candidate failed: {error}"
            if bar is not None:
                bar.write(line, file=env.stderr)
            else:
                print(line, file=env.stderr)

        result = tuner.run(args.trials, bar, report)
    except (KeyboardInterrupt, RuntimeError) as err:
        # A KeyboardInterrupt raised inside a call through TVM's FFI comes out as a
        # RuntimeError: one after a Ctrl-C is that interrupt, any other a bug.
        if isinstance(err, RuntimeError) and not interrupts:
            raise
        if bar is not None:
            bar.close()
            bar = None
        return _interrupted(tuner, args, env)
    finally:
        if bar is not None:
            bar.close()
        _install_interrupt_handler(previous)
    how = (f" --power-env {args.power_env}" if args.power_env
           else f" --capacitor {args.capacitor}" if args.capacitor else "")
    _emit(env, args, result.to_dict(), result.table() + "\napply it with `tvm-intermittent "
          f"compile {args.model} --board {board.name} --tuning-log {args.log}{how}`")
    return ExitStatus.OK


def _install_interrupt_handler(handler):
    """Install ``handler`` for SIGINT where this thread may (the main thread); the previous
    handler, or None when nothing was installed."""
    import signal  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel

    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.signal(signal.SIGINT, handler)
    # None: a handler not set from Python; Python's own is what stands for it here.
    return signal.default_int_handler if previous is None else previous


def _interrupted(tuner, args, env) -> int:
    """Ctrl-C: say what the log keeps and how to continue; a log this run made and wrote
    nothing to is removed."""
    if tuner is None:
        kept = "no log was made"
    else:
        tuner.log.discard()
        kept = ("no log was made" if not tuner.log.path.exists() else
                f"the log {args.log} keeps the {_logged(tuner)} candidate(s) of this model "
                "measured before")
    print(f"error: interrupted; {kept}; run the same command again to continue",
          file=env.stderr)
    if args.json:
        import json  # pylint: disable=import-outside-toplevel

        json.dump({"error": {"kind": "KeyboardInterrupt", "message": "interrupted",
                             "exit_status": int(ExitStatus.INTERRUPTED)}}, env.stdout, indent=2)
        env.stdout.write("\n")
    return ExitStatus.INTERRUPTED

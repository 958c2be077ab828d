"""``tune``: search each operator's tiling on QEMU for a board and power environment.

``tvm-intermittent tune MODEL --board B --trials N --log DB [--power-env E | --capacitor C]
[--workers K] [--cost-model analytic|xgb] [--rpc-tracker HOST:PORT --rpc-key KEY]``. Candidates are
measured by local QEMU workers, or by the measurement servers registered under ``KEY`` at a
TVM RPC tracker (``tuning.rpc``). The log is a directory (:mod:`..tuning.log`); a second
run with the same log continues where the first stopped and measures nothing twice. The
run ends with the operator table: each operator's default and tuned tiling, predicted and
measured latency. ``compile --tuning-log DB`` applies the log.
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
                        "environment (a rerun continues up to this many)")
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
    if args.trials < 0:
        problems.append(f"--trials must be 0 or more, got {args.trials}")
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
    return rpc_runner(host, int(port), args.rpc_key)


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
    with env.step(f"preparing {args.model} for {board.name}"):
        tuner = Tuner(model, board=board, log=args.log, power_env=args.power_env,
                      capacitor=args.capacitor,
                      workers=args.workers, cost_model=args.cost_model, runner=runner)
    bar = None
    if env.show_progress:
        from tqdm import tqdm

        bar = tqdm(total=0, desc="measuring candidates", unit="candidate", file=env.stderr,
                   leave=False)
    try:
        result = tuner.run(args.trials, bar)
    finally:
        if bar is not None:
            bar.close()
    for error in result.errors:
        print(f"notice: candidate failed: {error}", file=env.stderr)
    how = (f" --power-env {args.power_env}" if args.power_env
           else f" --capacitor {args.capacitor}" if args.capacitor else "")
    _emit(env, args, result.to_dict(), result.table() + "\napply it with `tvm-intermittent "
          f"compile {args.model} --board {board.name} --tuning-log {args.log}{how}`")
    return ExitStatus.OK

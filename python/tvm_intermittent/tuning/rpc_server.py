"""A QEMU-backed measurement server for TVM's RPC tracker.

``python -m tvm_intermittent.tuning.rpc_server --tracker HOST:PORT --key KEY`` starts TVM's
RPC server (what ``python -m tvm.exec.rpc_server`` starts) with the measurement function of
:mod:`.rpc` registered, and registers it under ``KEY`` with the tracker; tuners on any host
then measure candidates on it (``tvm-intermittent tune --rpc-tracker HOST:PORT --rpc-key
KEY``). It refuses to start where it could not measure (no QEMU or no Arm cross compiler),
so that no tuner is ever sent to a server that can only fail. It runs until it is stopped
(SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import ExitStatus, InputError
from .rpc import default_server_name, parse_tracker, start_server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tvm_intermittent.tuning.rpc_server",
        description="Measure tuning candidates on QEMU for tuners that ask an RPC tracker.")
    parser.add_argument("--tracker", required=True, metavar="HOST:PORT",
                        help="the RPC tracker to register with")
    parser.add_argument("--key", required=True, help="the key tuners request servers by")
    parser.add_argument("--host", default="0.0.0.0",
                        help="the address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=9090,
                        help="first port to try (default 9090)")
    parser.add_argument("--port-end", type=int, default=9199,
                        help="end of the ports to try (default 9199)")
    parser.add_argument("--name", help="how replies name this server (default: host:pid)")
    return parser


def _check_measuring() -> None:
    # pylint: disable=import-outside-toplevel
    from ..sim import qemu_available, toolchain_available

    problems = [why for ok, why in (qemu_available(), toolchain_available()) if not ok]
    if problems:
        raise InputError("this host cannot measure candidates: " + "; ".join(problems)
                         + " (scripts/setup.sh installs QEMU and the cross compiler)")


def main(argv=None) -> int:
    """Run a server until it is stopped; the exit status (2: bad options or no QEMU)."""
    args = _parser().parse_args(argv)
    try:
        tracker = parse_tracker(args.tracker)
        if not args.key.strip():
            raise InputError("--key must not be empty")
        if not 0 < args.port < args.port_end <= 65536:
            raise InputError(f"--port {args.port} and --port-end {args.port_end} name no "
                             "ports (0 < port < port-end <= 65536)")
        _check_measuring()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    server = start_server(tracker, args.key, host=args.host, port=args.port,
                          port_end=args.port_end, name=args.name or default_server_name())

    def stop(signum, _frame):
        server.terminate()
        sys.exit(0 if signum in (signal.SIGINT, signal.SIGTERM) else 1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"measuring under key {args.key!r} for the RPC tracker {tracker[0]}:{tracker[1]} "
          f"on port {server.port}", file=sys.stderr, flush=True)
    server.proc.join()
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())

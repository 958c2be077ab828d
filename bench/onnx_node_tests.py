"""ONNX backend node tests of the targeted operators, compiled and run on QEMU.

Run:  .venv/bin/python bench/onnx_node_tests.py [--host] [--json out.json] [-k SUBSTRING]

Every case of ``tests/onnx_node_cases.py``'s subset (the onnx wheel's node tests whose
operators are all in ``OPERATORS``) is compiled for qemu-an386, run on QEMU (``--host``: the
host build) on each of its data sets, and compared with the expected outputs shipped with the
case (onnx's tolerance) and with onnxruntime's (the project's 1e-5). Prints one line per case
(pass / refused with the reason / wrong / error) and the counts; exits 1 when any case is
wrong or an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import onnx_node_cases  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", action="store_true", help="run the host build, not QEMU")
    parser.add_argument("-k", dest="pattern", default="", help="only cases whose name has it")
    parser.add_argument("--json", help="also write every outcome to this JSON file")
    args = parser.parse_args()
    kind = "host" if args.host else "qemu"
    cases = {n: c for n, c in onnx_node_cases.select_cases().items() if args.pattern in n}
    started = time.perf_counter()
    outcomes = []
    for name, case in cases.items():
        outcome = onnx_node_cases.run_case(case, kind=kind)
        outcomes.append(outcome)
        reason = outcome.detail.replace("the ONNX model cannot be compiled for firmware:\n  ", "")
        reason = reason.replace("\n  ", " | ")
        print(f"{outcome.status:8s} {name}" + (f": {reason}" if reason else ""), flush=True)
    counts = onnx_node_cases.counts(outcomes)
    operators = sorted({o.operator for o in outcomes})
    print(f"\n{len(outcomes)} cases of {len(operators)} operators on {kind}: "
          + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f" ({time.perf_counter() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"kind": kind, "counts": counts, "cases": [o.to_dict() for o in outcomes]},
            indent=1) + "\n")
    return 1 if counts["wrong"] or counts["error"] else 0


if __name__ == "__main__":
    sys.exit(main())

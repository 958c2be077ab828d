"""Zoo models under the capacitor model: all instructions of an inference that loses power.

Run:  .venv/bin/python bench/capacitor_bench.py [--models kws,...] [--capacitor 100uF]

For each zoo model: compile for msp430fr5994 with tiles sized for the capacitor, run on
QEMU under the board's capacitor model (each charge ends in a power failure at the exact
instruction the stored energy runs out), and count every instruction over all boots:
re-executed tiles, commits, restores and boots included (``instructions_total``). That
total stands beside TFLite Micro + CMSIS-NN's continuous count (``tflm_cmsis_nn.json``),
which under the same capacitor would never finish where an inference needs more than one
charge. The outputs are checked against TFLite Micro.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import tvm_intermittent as ti
from tvm_intermittent import reference, sim, zoo
from tvm_intermittent.board import load_board
from tvm_intermittent.check import compare_outputs

BOARD = "msp430fr5994"
TFLM_CMSIS_NN = json.loads(Path(__file__).with_name("tflm_cmsis_nn.json").read_text())["models"]


def bench_model(name: str, capacitor_f: float) -> dict:
    entry = zoo.get(name)
    board = load_board(BOARD)
    artifact = ti.build(entry.path, "intermittent/" + BOARD, name=name, capacitor_f=capacitor_f)
    array, _ = zoo.sample_inputs(name, count=1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = artifact.export(Path(tmp) / name)
        result = sim.run(project, [array], timeout=3600,
                         power=sim.Capacitor(board, capacitor_f=capacitor_f))
    check = compare_outputs(result.outputs, reference.run_tflite_micro(entry.path, [array]),
                            lsb_scales=reference.output_lsb_scales(entry.path))
    theirs = TFLM_CMSIS_NN[name]["instructions"]
    return {"model": name, "boots": result.boots, "failures": result.failures,
            "instructions_total": result.instructions_total, "tflm_cmsis_nn": theirs,
            "ratio": result.instructions_total / theirs,
            "bit_exact": bool(result.finished and check.ok
                              and all(o.max_lsb == 0 for o in check.outputs))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws,resnet8,vww,micro_speech,ad")
    parser.add_argument("--capacitor", default="100uF")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    capacitor_f = sim.parse_capacitance(args.capacitor)
    rows = []
    for name in args.models.split(","):
        print(f"running {name} under {args.capacitor} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, capacitor_f))
    print(f"| model ({BOARD}, {args.capacitor}) | boots | power failures | instructions, all "
          "boots | TFLM + CMSIS-NN continuous | ratio | bit-exact |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        exact = "yes" if r["bit_exact"] else "NO"
        print(f"| {r['model']} | {r['boots']} | {r['failures']} | {r['instructions_total']:,} "
              f"| {r['tflm_cmsis_nn']:,} | {r['ratio']:.2f} | {exact} |")
    print(f"\ngeometric mean of the ratios: "
          f"{math.prod(r['ratio'] for r in rows) ** (1 / len(rows)):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

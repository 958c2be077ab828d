"""Intermittency management overhead (IMO) per zoo model, capacitor and board.

Run:  .venv/bin/python bench/imo_bench.py [--models kws,resnet8] [--json out.json]

For each model, board (msp430fr5994, apollo4-mram) and capacitor (100 uF, 1 mF, 5 mF): compile
with tiles sized for that capacitor, run on QEMU under the board's capacitor model (each
charge spent by instructions and by NVM loads and stores at the board's cost per access),
and measure against the uninstrumented (restart) firmware run continuously. Two IMOs side
by side, from the same runs:

* in instructions, as before: (instructions under failures - uninstrumented instructions)
  / instructions under failures;
* in energy (``energy.model``, NVM accesses charged): the same with instruction-equivalents,
  against the restart firmware with its arena in SRAM where it fits the board's SRAM (its
  NVM accesses then free), in NVM otherwise (the "baseline arena" column).

The `layer` baseline (commit only at operator boundaries) runs the same way. All counts are
exact QEMU counts; latency is the measured work's active time on the board (NVM wait
states included) plus the modeled recharge time at the board's harvested power.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.board import load_board

BOARDS = ("msp430fr5994", "apollo4-mram")
CAPACITORS = (100e-6, 1e-3, 5e-3)


def measure(name: str, board_name: str, capacitor: float, tmp: Path) -> list[dict]:
    entry = zoo.get(name)
    board = load_board(board_name)
    artifact = ti.build(entry.path, "intermittent/" + board_name, capacitor_f=capacitor)
    project = artifact.export(tmp / f"{name}-{board_name}-{capacitor:g}")
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    schedule = sim.power.Capacitor(board, capacitor_f=capacitor)
    rows = []
    for mode in ("tiles", "layer"):
        report = sim.measure_intermittent(project, inputs, schedule, board=board, mode=mode,
                                          max_boots=2000, timeout=1800)
        rows.append({
            "model": name, "board": board_name, "capacitor_f": capacitor, "mode": mode,
            "finished": report.finished, "outputs_match": report.outputs_match,
            "boots": report.boots, "imo": report.imo if report.finished else None,
            "imo_energy": report.imo_energy if report.finished else None,
            "baseline_arena": report.baseline_arena,
            "nvm_read_bytes": report.nvm_load_bytes, "nvm_loads": report.nvm_loads,
            "nvm_stores": report.nvm_stores,
            "instructions": report.instructions_total,
            "uninstrumented": report.instructions_uninstrumented,
            "reexecuted": report.instructions_reexecuted, "commit": report.instructions_commit,
            "nvm_bytes_written": report.nvm_bytes_written,
            "latency_s": report.latency_seconds if report.finished else None,
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws,resnet8")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for board in BOARDS:
                for capacitor in CAPACITORS:
                    print(f"{name} on {board} at {capacitor * 1e6:g} uF ...", file=sys.stderr,
                          flush=True)
                    rows += measure(name, board, capacitor, Path(tmp))
    print("| model | board | capacitor | mode | boots | IMO instr | IMO energy | baseline arena "
          "| re-executed | commit | NVM read B | NVM written B | latency s | outputs |")
    print("|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cap = f"{r['capacitor_f'] * 1e6:g} uF" if r["capacitor_f"] < 1e-3 else (
            f"{r['capacitor_f'] * 1e3:g} mF")
        if not r["finished"]:
            print(f"| {r['model']} | {r['board']} | {cap} | {r['mode']} | {r['boots']} | "
                  "never finishes | | | | | | | | |")
            continue
        print(f"| {r['model']} | {r['board']} | {cap} | {r['mode']} | {r['boots']} | "
              f"{100 * r['imo']:.2f} % | {100 * r['imo_energy']:.2f} % | "
              f"{r['baseline_arena'].upper()} | {r['reexecuted']:,} | {r['commit']:,} | "
              f"{r['nvm_read_bytes']:,} | {r['nvm_bytes_written']:,} | {r['latency_s']:.2f} | "
              f"{'identical' if r['outputs_match'] else 'DIFFER'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

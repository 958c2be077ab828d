"""Zoo models in each named power environment: boots, IMO and end-to-end latency.

Run:  .venv/bin/python bench/power_env_bench.py [--models kws] [--boards msp430fr5994,...]

For each model, board and preset of ``tvm_intermittent.sim.environments``: compile with
tiles sized for the environment (``build(power_env=...)``, as ``compile --power-env``), run
on QEMU under the environment's schedule (each boot's budget with the harvest while
computing, a failure where it is spent), and measure it against the same firmware and the
uninstrumented one run continuously (``sim.measure_intermittent``). Latency is the active
time on the board plus the environment's recharge time after each failure. The outputs
under failures are compared with the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.sim import environments


def bench_one(name: str, board: str, env_name: str) -> dict:
    env = environments.get(env_name)
    entry = zoo.get(name)
    artifact = ti.build(entry.path, "intermittent/" + board, name=name, power_env=env)
    array, _ = zoo.sample_inputs(name, count=1)[0]
    schedule = env.schedule(board)
    with tempfile.TemporaryDirectory() as tmp:
        project = artifact.export(Path(tmp) / name)
        report = sim.measure_intermittent(project, [array], schedule, board=board,
                                          timeout=3600)
    return {"model": name, "board": board, "environment": env_name,
            "tile_budget": artifact.power_cycle_budget, "boot_budget": schedule.budget,
            "boots": report.boots, "failures": report.failures, "imo": report.imo,
            "active_s": report.active_seconds, "recharge_s": report.recharge_seconds,
            "latency_s": report.latency_seconds, "finished": report.finished,
            "outputs_match": report.outputs_match}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws")
    parser.add_argument("--boards", default="msp430fr5994,qemu-an386")
    parser.add_argument("--envs", default=",".join(environments.names()))
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        for board in args.boards.split(","):
            for env_name in args.envs.split(","):
                print(f"{name} on {board} in {env_name} ...", file=sys.stderr, flush=True)
                rows.append(bench_one(name, board, env_name))
    print("| model | board | environment | tile budget | boot 1 budget | boots | IMO | "
          "active s | recharge s | latency s | outputs |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        budget = f"{r['boot_budget']:,}" if r["boot_budget"] is not None else "never fails"
        outputs = ("identical" if r["finished"] and r["outputs_match"] else
                   "DIFFER" if r["finished"] else "never finishes")
        print(f"| {r['model']} | {r['board']} | {r['environment']} | {r['tile_budget']:,} | "
              f"{budget} | {r['boots']} | {r['imo'] * 100:.2f} % | {r['active_s']:.3g} | "
              f"{r['recharge_s']:.3g} | {r['latency_s']:.3g} | {outputs} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["finished"] and r["outputs_match"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

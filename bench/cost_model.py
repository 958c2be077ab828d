"""The cost model against QEMU on the zoo: predicted and measured instructions per task.

Run:  .venv/bin/python bench/cost_model.py [--models kws,ad,micro_speech,resnet8,vww]
      [--board qemu-an386] [--json out.json]

For each zoo model (compiled for the board at its own capacitor), the prediction is what
the compiler wrote into ``model.json`` (``tasks[i]["cost"]`` and ``runtime_costs``: no QEMU),
the measurement a per-task profile of one continuous run (``sim.profile``, exact QEMU
counts). A task's prediction is ``tile x tiles + fixed + commits x commit``; the model's is
the sum over tasks (the rows of the profile add up to ``instructions_model``), and the whole
run's adds boot, restore, reading the inputs, the first commit and writing the outputs.
The calibration (``scripts/calibrate.py``) never saw these models.

NVM accesses: the kernels' predicted loads and stores (``tile x tiles`` of every task,
counted from the TIR) against the plugin's per-task counts of the same continuous run
(``RunResult.traffic_by_task``), the model's sums and the worst task; beside them the
stores a count of one access per stored byte would predict (the count before GCC's store
merging and ``memcpy`` were modelled), from the same run. What that means for energy: the
kernels' measured and predicted work priced on ``--energy-board`` (default apollo4-mram,
whose NVM store costs 23 instruction-equivalents), with the predicted stores as accesses
and as bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.board import load_board
from tvm_intermittent.energy.model import Work, instruction_equivalents
from tvm_intermittent.energy.costs import RuntimeCosts, task_costs
from tvm_intermittent.sim.profile import profile


def _nbytes(tensors) -> int:
    return sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize for t in tensors)


def _total(works) -> Work:
    total = Work()
    for work in works:
        total = total + work
    return total


def measure(name: str, board: str, tmp: Path, energy_board) -> dict:
    entry = zoo.get(name)
    project = ti.build(entry.path, f"intermittent/{board}", name=name).export(tmp / name)
    manifest = json.loads((project / "model.json").read_text())
    runtime = RuntimeCosts.from_dict(manifest["runtime_costs"])
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    measured = profile(project, inputs, timeout=1800)
    whole = sim.run(project, inputs, timeout=1800)
    rows = []
    for cost, row in zip(task_costs(manifest), measured.rows[1:]):
        predicted = cost.work(runtime).instructions
        rows.append({"task": cost.index, "kernel": cost.kernel, "tiles": cost.tiles,
                     "measured": row.instructions, "predicted": round(predicted),
                     "error": predicted / row.instructions - 1.0})
    nvm = {}
    for what in ("nvm_loads", "nvm_stores"):
        pairs = [(getattr(whole.traffic_by_task[c.index], what), getattr(c.work(), what))
                 for c in task_costs(manifest)]
        nvm[what] = {"measured": sum(m for m, _ in pairs), "predicted": sum(p for _, p in pairs),
                     "task_max_abs_error": max(abs(p / m - 1) for m, p in pairs if m)}
    nvm["store_bytes_as_accesses"] = sum(c.work().nvm_store_bytes for c in task_costs(manifest))
    measured_work = _total(whole.traffic_by_task.values())
    predicted_work = _total(c.work() for c in task_costs(manifest))
    as_bytes = dataclasses.replace(predicted_work, nvm_stores=predicted_work.nvm_store_bytes)
    nvm["energy"] = {"board": energy_board.name,
                     **{k: instruction_equivalents(energy_board, w) for k, w in (
                         ("measured", measured_work), ("predicted", predicted_work),
                         ("stores_as_bytes", as_bytes))}}
    model = sum(r["predicted"] for r in rows)
    total = (model + (runtime.boot + runtime.restore + runtime.commit).instructions
             + runtime.input_work(_nbytes(manifest["inputs"])).instructions
             + runtime.output_work(_nbytes(manifest["outputs"])).instructions)
    errors = np.abs([r["error"] for r in rows])
    return {"model": name, "board": board, "tasks": len(rows), "rows": rows,
            "model_measured": measured.instructions_model, "model_predicted": model,
            "model_error": model / measured.instructions_model - 1.0,
            "total_measured": whole.instructions_total, "total_predicted": round(total),
            "total_error": total / whole.instructions_total - 1.0,
            "task_median_abs_error": float(np.median(errors)),
            "task_max_abs_error": float(np.max(errors)), "nvm": nvm}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws,ad,micro_speech,resnet8,vww")
    parser.add_argument("--board", default="qemu-an386")
    parser.add_argument("--energy-board", default="apollo4-mram",
                        help="board whose NVM charges price the kernels' work")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="intm-costs-") as tmp:
        for name in args.models.split(","):
            results.append(measure(name, args.board, Path(tmp),
                                   load_board(args.energy_board)))
            r = results[-1]
            print(f"{name}: model {r['model_predicted']:,} predicted / "
                  f"{r['model_measured']:,} measured ({100 * r['model_error']:+.1f} %)",
                  file=sys.stderr)
    print("| model | tasks | measured (model) | predicted | error | whole run error | "
          "task median abs error | task worst |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['tasks']} | {r['model_measured']:,} | "
              f"{r['model_predicted']:,} | {100 * r['model_error']:+.1f} % | "
              f"{100 * r['total_error']:+.1f} % | {100 * r['task_median_abs_error']:.1f} % | "
              f"{100 * r['task_max_abs_error']:.1f} % |")
    print()
    print("| model | NVM loads measured | predicted | error | task worst | NVM stores measured | "
          "predicted | error | task worst | stores as bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        loads, stores = r["nvm"]["nvm_loads"], r["nvm"]["nvm_stores"]
        as_bytes = r["nvm"]["store_bytes_as_accesses"]
        print(f"| {r['model']} | " + " | ".join(
            f"{x['measured']:,.0f} | {x['predicted']:,.0f} | "
            f"{100 * (x['predicted'] / x['measured'] - 1):+.1f} % | "
            f"{100 * x['task_max_abs_error']:.1f} %" for x in (loads, stores))
            + f" | {as_bytes:,.0f} ({100 * (as_bytes / stores['measured'] - 1):+.0f} %) |")
    print()
    print(f"| model | kernels' energy on {args.energy_board}, measured (instruction-equivalents) "
          "| predicted | error | error with stores as bytes |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        e = r["nvm"]["energy"]
        print(f"| {r['model']} | {e['measured']:,.0f} | {e['predicted']:,.0f} | "
              f"{100 * (e['predicted'] / e['measured'] - 1):+.1f} % | "
              f"{100 * (e['stores_as_bytes'] / e['measured'] - 1):+.1f} % |")
    print()
    for r in results:
        print(f"{r['model']}: " + ", ".join(f"{x['kernel']} {100 * x['error']:+.0f}%"
                                             for x in r["rows"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

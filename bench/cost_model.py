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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.energy.costs import RuntimeCosts, task_costs
from tvm_intermittent.sim.profile import profile


def _nbytes(tensors) -> int:
    return sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize for t in tensors)


def measure(name: str, board: str, tmp: Path) -> dict:
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
            "task_max_abs_error": float(np.max(errors))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws,ad,micro_speech,resnet8,vww")
    parser.add_argument("--board", default="qemu-an386")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="intm-costs-") as tmp:
        for name in args.models.split(","):
            results.append(measure(name, args.board, Path(tmp)))
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
    for r in results:
        print(f"{r['model']}: " + ", ".join(f"{x['kernel']} {100 * x['error']:+.0f}%"
                                             for x in r["rows"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

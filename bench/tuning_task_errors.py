"""Where the analytic cost model's error on a tuning log's candidates comes from, per task.

Run:  .venv/bin/python bench/tuning_task_errors.py LOG --model kws --capacitor 100uF
      [--board qemu-an386] [--json out.json]

``LOG`` is a tuning log of the model on the board under the capacitor (``tune --log``, or
``bench/tuning_bench.py --logs``), whose sidecar keeps what QEMU measured of every record:
the instructions and boots of the run under the capacitor and each task's instructions in
the continuous run. For each record the candidate's manifest is rebuilt as the tuner
predicts it (:func:`tvm_intermittent.tuning.objective.candidate_manifest`) and simulated
(:func:`tvm_intermittent.energy.predict.predict`); the script prints, against QEMU:

* the whole run under failures (the figure ``bench/tuning_bench.py`` reports as fidelity)
  and the boots;
* each of the tuned kernel's tasks, priced in the calibration family the candidate falls
  in (:func:`tvm_intermittent.energy.costs.kernel_family`: the kernel's name, DSP or not,
  and its loop nest depth), and priced in the family of the untuned kernel: a split loop
  adds a level to the nest, so a split candidate is priced by another family's fit.

Nothing is measured; the model is only prepared (to rebuild its tasks).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from tvm_intermittent import builder, zoo
from tvm_intermittent.board import load_board
from tvm_intermittent.energy.costs import kernel_family, tile_work
from tvm_intermittent.energy.kernel_cost import kernel_features
from tvm_intermittent.energy.predict import predict
from tvm_intermittent.tuning import ModelTasks, environment
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.log import TuningLog
from tvm_intermittent.tuning.objective import candidate_manifest


def _task_instructions(task, candidate, features) -> float:
    """Predicted instructions of one of the kernel's tasks (all its tiles)."""
    tile = tile_work(candidate.func, candidate.plan, task.placement or None,
                     features=features, kernel=task.kernel)
    return tile.instructions * candidate.plan.extent


def analyse(log_path, model: str, board_name: str, capacitor: str) -> list[dict]:
    """One row per measured record of ``log_path``."""
    board = load_board(board_name)
    env = environment(capacitor=capacitor)
    path = model if model.endswith((".onnx", ".tflite")) else zoo.get(model).path
    prepared = builder.prepare(path, "intermittent/" + board.name, board=board,
                               **env.build_options())
    tasks = ModelTasks.of(prepared)
    log = TuningLog(log_path)
    schedule = env.schedule(board)
    rows = []
    for task in tasks.tasks:
        untuned = kernel_features(task.func, task.placement or None)
        for knobs, entry in log.measured_knobs(task, board.name, env.name).items():
            if entry.get("error"):
                continue
            candidate = check_candidate(task, knobs, board, env,
                                        static_scratch=tasks.static_scratch)
            manifest = candidate_manifest(tasks.manifest, task, candidate.func,
                                          candidate.plan)
            run = predict(manifest, board, schedule)
            features = kernel_features(candidate.func, task.placement or None)
            as_untuned = dataclasses.replace(features, nest_depth=untuned.nest_depth)
            measured_task = entry["tasks"][str(task.indices[0])]["instructions"]
            rows.append({
                "kernel": task.kernel, "knobs": knobs.to_dict(), "describe": knobs.describe(),
                "instructions": entry["instructions"],
                "predicted_instructions": run.executed.instructions,
                "boots": entry["boots"], "predicted_boots": run.boots,
                "task_instructions": measured_task,
                "predicted_task": _task_instructions(task, candidate, features),
                "family": kernel_family(task.kernel, features),
                "predicted_task_untuned_family": _task_instructions(task, candidate,
                                                                    as_untuned),
                "untuned_family": kernel_family(task.kernel, as_untuned)})
    return rows


def _error(row, predicted: str, measured: str) -> float:
    return row[predicted] / row[measured] - 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("--model", default="kws", help="zoo name or model file")
    parser.add_argument("--board", default="qemu-an386")
    parser.add_argument("--capacitor", default="100uF")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    rows = analyse(args.log, args.model, args.board, args.capacitor)
    if not rows:
        print(f"no measured record of {args.model} on {args.board} under {args.capacitor} "
              f"in {args.log}", file=sys.stderr)
        return 2
    print("| kernel | knobs | run under failures | boots measured / predicted | task | "
          "family | task in the untuned kernel's family |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kernel']} | {r['describe']} | "
              f"{_error(r, 'predicted_instructions', 'instructions'):+.2%} | "
              f"{r['boots']} / {r['predicted_boots']} | "
              f"{_error(r, 'predicted_task', 'task_instructions'):+.2%} | {r['family']} | "
              f"{_error(r, 'predicted_task_untuned_family', 'task_instructions'):+.2%} "
              f"({r['untuned_family']}) |")

    def median(key, measured):
        return float(np.median([abs(_error(r, key, measured)) for r in rows]))

    print(f"\n{len(rows)} records; median |error|: run under failures "
          f"{median('predicted_instructions', 'instructions'):.2%} (worst "
          f"{max(abs(_error(r, 'predicted_instructions', 'instructions')) for r in rows):.2%})"
          f", task {median('predicted_task', 'task_instructions'):.2%}, task in the untuned "
          f"kernel's family {median('predicted_task_untuned_family', 'task_instructions'):.2%}"
          f"; boots predicted = measured in "
          f"{sum(r['boots'] == r['predicted_boots'] for r in rows)} of {len(rows)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

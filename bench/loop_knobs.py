"""The loop order and unroll knobs one at a time: measured effect and the cost model's price.

Run:  .venv/bin/python bench/loop_knobs.py [--models kws,resnet8] [--kernels 3]
      [--board qemu-an386] [--out loop_knobs.json]
      .venv/bin/python bench/loop_knobs.py --picked tuning_bench.json [...]

For each model, the kernels with the most instructions in the default (analytic) build,
measured on QEMU continuously; for each, the analytic plan's knobs (tile depth and batch)
with every value of the ``order`` and ``unroll`` knobs the design space offers
(``tuning.space.knob_choices``) that passes the hard constraints, one at a time. Each is
built as the tuner builds a candidate (the whole model, that kernel rewritten) and run
continuously on QEMU. Per candidate: the kernel's measured instructions (its tasks' exact
counts) against the default build's, and the calibrated kernel model's prediction
(``energy.costs.tile_work`` over the rewritten TIR, times the tiles) against its own
prediction of the default. The outputs of every run are compared with the default build's.

With ``--picked``, the loop knobs that tuned builds picked (``bench/tuning_bench.py`` rows):
each kernel with its tuned knobs and with the same knobs without the loop ones, both run
continuously, so that what the loop knobs moved in the tiles they were picked for is seen
apart from the rest of the tuned knobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import tvm

import tvm_intermittent as ti
from tvm_intermittent import builder, zoo
from tvm_intermittent.energy.costs import tile_work
from tvm_intermittent.tuning import CandidateError, Knobs, ModelTasks, environment
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.describe import features_of
from tvm_intermittent.tuning.space import knob_choices


def predicted(task, knobs, candidate) -> float:
    """The calibrated kernel model's instructions of the kernel's tasks (one per operator
    that shares it) as ``knobs`` cut it."""
    work = tile_work(candidate.func, candidate.plan, task.placement or None,
                     features=features_of(task, knobs), kernel=task.kernel)
    return work.instructions * int(candidate.plan.extent) * len(task.indices)


def measured(run, task) -> int:
    return int(sum(run.traffic_by_task[i].instructions for i in task.indices))


def bench_model(name: str, board_name: str, kernels: int) -> list[dict]:
    path = zoo.get(name).path
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    board, env = ti.load_board(board_name), environment("continuous")
    prepared = builder.prepare(path, tvm.target.Target("intermittent/" + board_name),
                               board=board, **env.build_options())
    model = ModelTasks.of(prepared)
    default = model.artifact.run(inputs)
    work = {t.kernel: measured(default, t) for t in model.tasks}
    rows = []
    for task in sorted(model.tasks, key=lambda t: -work[t.kernel])[:kernels]:
        base = Knobs.of_plan(model.artifact.tiles[task.kernel])
        base_candidate = check_candidate(task, base, board, env,
                                         static_scratch=model.static_scratch)
        base_predicted = predicted(task, base, base_candidate)
        choices = knob_choices(task)
        trials = [dataclasses.replace(base, order=o) for o in choices["order"][1:]]
        trials += [dataclasses.replace(base, unroll=u) for u in choices["unroll"][1:]]
        for knobs in trials:
            try:
                candidate = check_candidate(task, knobs, board, env,
                                            static_scratch=model.static_scratch)
            except CandidateError as err:
                rows.append({"model": name, "kernel": task.kernel, "knobs": knobs.to_dict(),
                             "refused": str(err)})
                continue
            artifact = builder.assemble(prepared, {task.kernel: (candidate.func,
                                                                 candidate.plan)})
            run = artifact.run(inputs)
            rows.append({
                "model": name, "kernel": task.kernel, "knobs": knobs.to_dict(),
                "measured_default": work[task.kernel], "measured": measured(run, task),
                "predicted_default": base_predicted,
                "predicted": predicted(task, knobs, candidate),
                "same_outputs": all(np.array_equal(a, b)
                                    for a, b in zip(default.outputs, run.outputs))})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def picked(files, board_name: str) -> list[dict]:
    """For every loop knob a tuned build picked (``bench/tuning_bench.py`` rows, one JSON
    object a line or a list): the kernel's instructions with the picked knobs and with the
    same knobs without the loop ones, both run continuously."""
    rows, seen = [], set()
    for file in files:
        text = Path(file).read_text()
        lines = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.startswith('{"model"')]
        for line in lines:
            if line["board"] != line["tuned_on"]:
                continue
            for kernel, knobs in line.get("tuned_knobs", {}).items():
                knobs = Knobs.from_dict(knobs)
                if (not knobs.order and knobs.unroll == 1) or (line["model"], kernel,
                                                                knobs) in seen:
                    continue
                seen.add((line["model"], kernel, knobs))
                rows.append(_with_and_without(line["model"], line["power"], kernel, knobs,
                                              board_name))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _with_and_without(name, power, kernel, knobs, board_name) -> dict:
    path = zoo.get(name).path
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    board, env = ti.load_board(board_name), environment("continuous")
    prepared = builder.prepare(path, tvm.target.Target("intermittent/" + board_name),
                               board=board, **env.build_options())
    model = ModelTasks.of(prepared)
    task = model.task(kernel)
    counts = {}
    for label, k in (("picked", knobs), ("without", dataclasses.replace(knobs, order=0,
                                                                         unroll=1))):
        candidate = check_candidate(task, k, board, env, static_scratch=model.static_scratch)
        run = builder.assemble(prepared, {kernel: (candidate.func, candidate.plan)}).run(
            inputs)
        counts[label] = measured(run, task)
        counts[label + "_outputs"] = run.outputs
    return {"model": name, "power": power, "kernel": kernel, "knobs": knobs.to_dict(),
            "picked": counts["picked"], "without": counts["without"],
            "same_outputs": all(np.array_equal(a, b) for a, b in
                                zip(counts["picked_outputs"], counts["without_outputs"]))}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | kernel | knob | measured default -> rewritten | measured change | "
             "predicted change | prediction error | outputs |", "|" + "---|" * 8]
    for r in rows:
        k = r["knobs"]
        knob = f"order {k['order']}" if k["order"] else f"unroll {k['unroll']}"
        if "refused" in r:
            lines.append(f"| {r['model']} | {r['kernel']} | {knob} | refused: {r['refused']} "
                         "| | | | |")
            continue
        change = r["measured"] / r["measured_default"] - 1
        guess = r["predicted"] / r["predicted_default"] - 1
        error = r["predicted"] / r["measured"] - 1
        lines.append(f"| {r['model']} | {r['kernel']} | {knob} | {r['measured_default']:,} -> "
                     f"{r['measured']:,} | {change:+.2%} | {guess:+.2%} | {error:+.2%} | "
                     f"{'same' if r['same_outputs'] else 'DIFFER'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="kws,resnet8")
    parser.add_argument("--kernels", type=int, default=3)
    parser.add_argument("--board", default="qemu-an386")
    parser.add_argument("--out", default="loop_knobs.json")
    parser.add_argument("--picked", nargs="*", metavar="ROWS",
                        help="instead: the loop knobs the tuned builds of these "
                             "bench/tuning_bench.py rows (its --out JSON, or its log's JSON "
                             "lines) picked, each with and without them")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.picked:
        rows = picked(args.picked, args.board)
        print("| model | power | kernel | knobs | instructions without -> with the loop "
              "knobs | change | outputs |\n|---|---|---|---|---|---|---|")
        for r in rows:
            k = r["knobs"]
            print(f"| {r['model']} | {r['power']} | {r['kernel']} | order {k['order']}, "
                  f"unroll {k['unroll']} | {r['without']:,} -> {r['picked']:,} | "
                  f"{r['picked'] / r['without'] - 1:+.2%} | "
                  f"{'same' if r['same_outputs'] else 'DIFFER'} |")
        return 0 if all(r["same_outputs"] for r in rows) else 1
    rows = []
    for name in args.models.split(","):
        rows += bench_model(name, args.board, args.kernels)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))
    print(f"\n{sum('refused' not in r for r in rows)} candidates measured in "
          f"{(time.perf_counter() - started) / 60:.1f} min")
    return 0 if all(r.get("same_outputs", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The smallest capacitor each zoo model completes on: the analytic rule against the tuner.

Run:  .venv/bin/python bench/smallest_capacitor.py [--board msp430fr5994]
      [--models kws,resnet8,vww,micro_speech,ad] [--trials 4] [--workers 2] [--no-tune]
      [--from-uF 10] [--logs DIR] [--json out.json]

For each model a capacitor grid (the E6 series from 10 uF, or ``--from-uF``, down to
0.47 uF; the board's voltages and harvester, as ``compile --capacitor``) is walked downwards:

* **analytic**: ``build(capacitor_f=C)`` (the analytic rule sizes the tiles), then the
  firmware runs on QEMU under that capacitor's schedule (``sim.measure_intermittent``); the
  capacitor counts when the build is not refused and the run finishes with the outputs of
  the uninterrupted run of the model's build at the grid's largest capacitor. The walk stops
  at the first capacitor that fails, and says why: refused at compile (the operators and
  their smallest tiles), or did not finish (``max_boots``, ``no_progress``, timeout).
* **tuned**: from the analytic rule's smallest capacitor down, ``tune`` at C with
  ``--trials`` QEMU measurements (the tuner sizes its candidates with its own margin, and
  takes its smallest tile as the default of an operator the rule refuses,
  ``tuning.workload.smallest_tiles``), then ``build(capacitor_f=C, tuning_log=...)`` and the
  same run and check.

A run that cannot finish is stopped early: after ``--boots-factor`` times the boots the
continuous run's energy needs (charges of the capacitor, the harvest while computing
ignored, so an upper estimate) plus 20, or after a timeout of 20 times the continuous run's
wall time plus a minute; the plugin also stops a firmware that makes no progress in a boot.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path


import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.errors import DoesNotFitError, SimulationError
from tvm_intermittent.tuning.search import Tuner

MODELS = ("kws", "resnet8", "vww", "micro_speech", "ad")
#: The E6 series from 10 uF down, in microfarads.
GRID_UF = (10.0, 6.8, 4.7, 3.3, 2.2, 1.5, 1.0, 0.68, 0.47)


def _operators(message: str) -> list[str]:
    """The operators a refusal names, each with its tile's need (one line each)."""
    return [line.strip() for line in message.splitlines() if line.strip().startswith("operator")]


def run_under(artifact, board, capacitor_f: float, inputs, reference, limits) -> dict:
    """Run ``artifact`` under the capacitor's schedule; whether it finished with
    ``reference``'s outputs, and its boots, IMO and latency."""
    schedule = sim.Capacitor(board, capacitor_f=capacitor_f)
    energy = limits["continuous_instructions"] / max(1, board.power_cycle_budget(capacitor_f))
    max_boots = int(limits["boots_factor"] * math.ceil(energy)) + 20
    timeout = 20 * limits["continuous_wall_s"] + 60
    with tempfile.TemporaryDirectory() as tmp:
        project = artifact.export(Path(tmp) / "p")
        started = time.perf_counter()
        try:
            report = sim.measure_intermittent(project, inputs, schedule, board=board,
                                              reference=reference, max_boots=max_boots,
                                              timeout=timeout)
        except SimulationError as err:
            return {"completed": False, "why": f"timeout or error: {str(err)[:200]}",
                    "max_boots": max_boots, "wall_s": round(time.perf_counter() - started, 1)}
    done = bool(report.finished and report.outputs_match)
    why = ("" if done else f"did not finish ({report.stop_reason}, {report.boots} boots)"
           if not report.finished else "outputs differ from the continuous run's")
    return {"completed": done, "why": why, "boots": report.boots, "imo": report.imo,
            "instructions": report.instructions_total, "latency_s": report.latency_seconds,
            "max_boots": max_boots, "wall_s": round(time.perf_counter() - started, 1)}


def walk_analytic(name, board, path, inputs, reference, limits, grid) -> list[dict]:
    steps = []
    for uf in grid:
        step = {"capacitor_uF": uf}
        try:
            artifact = ti.build(path, "intermittent/" + board.name, name=name,
                                capacitor_f=uf * 1e-6)
        except DoesNotFitError as err:
            steps.append({**step, "completed": False, "why": "refused at compile",
                          "operators": _operators(str(err))})
            break
        step.update(run_under(artifact, board, uf * 1e-6, inputs, reference, limits))
        steps.append(step)
        print(f"{name} analytic {uf} uF: {step}", file=sys.stderr, flush=True)
        if not step["completed"]:
            break
    return steps


def walk_tuned(name, board, path, inputs, reference, limits, grid, trials, workers,
               root) -> list[dict]:
    steps = []
    for uf in grid:
        step = {"capacitor_uF": uf}
        log = root / f"{name}-{board.name}-{uf}uF"
        started = time.perf_counter()
        try:
            tuner = Tuner(path, board=board, log=log, capacitor=uf * 1e-6, inputs=inputs,
                          workers=workers, cost_model="analytic")
        except DoesNotFitError as err:
            steps.append({**step, "completed": False, "why": "refused by the tuner",
                          "operators": _operators(str(err))})
            break
        try:
            result = tuner.run(trials)
        except SimulationError as err:  # its default build did not finish
            steps.append({**step, "completed": False, "why": f"tuning failed: "
                          f"{str(err)[:300]}"})
            break
        step.update({"trials": result.trials, "failed": result.failed,
                     "tuning_minutes": round((time.perf_counter() - started) / 60, 2),
                     "refused_by_rule": sorted(result.refused),
                     "smallest_tiles": sorted(tuner.model.base)})
        artifact = ti.build(path, "intermittent/" + board.name, name=name,
                            capacitor_f=uf * 1e-6, tuning_log=log)
        step["tuned_operators"] = sorted(artifact.manifest()["tuning"]["tuned"])
        step.update(run_under(artifact, board, uf * 1e-6, inputs, reference, limits))
        steps.append(step)
        print(f"{name} tuned {uf} uF: {step}", file=sys.stderr, flush=True)
        if not step["completed"]:
            break
    return steps


def smallest(steps: list[dict]):
    done = [s["capacitor_uF"] for s in steps if s["completed"]]
    return min(done) if done else None


def next_failure(steps: list[dict]) -> str:
    failed = [s for s in steps if not s["completed"]]
    if not failed:
        return "grid exhausted"
    s = failed[-1]
    text = f"{s['capacitor_uF']} uF: {s['why']}"
    if s.get("operators"):
        text += ": " + "; ".join(s["operators"])
    return text


def bench_model(name, board, trials, workers, root, tune: bool, grid=GRID_UF) -> dict:
    path = zoo.get(name).path
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    largest = ti.build(path, "intermittent/" + board.name, name=name,
                       capacitor_f=grid[0] * 1e-6)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        steady = sim.run(largest.export(Path(tmp) / "p"), inputs, timeout=3600)
        wall = time.perf_counter() - started
    limits = {"continuous_instructions": steady.instructions_total, "continuous_wall_s": wall,
              "boots_factor": 3}
    reference = steady.outputs
    analytic = walk_analytic(name, board, path, inputs, reference, limits, grid)
    row = {"model": name, "board": board.name,
           "continuous_instructions": steady.instructions_total,
           "analytic": analytic, "analytic_smallest_uF": smallest(analytic),
           "analytic_next": next_failure(analytic)}
    if tune and row["analytic_smallest_uF"] is not None:
        below = [uf for uf in grid if uf <= row["analytic_smallest_uF"]]
        tuned = walk_tuned(name, board, path, inputs, reference, limits, below, trials,
                           workers, root)
        row.update({"tuned": tuned, "tuned_smallest_uF": smallest(tuned),
                    "tuned_next": next_failure(tuned)})
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| model | board | analytic: smallest | why the next fails | tuned: smallest | "
             "why the next fails | boots, IMO at the smallest (analytic; tuned) |",
             "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        def at(steps, uf):
            s = next((s for s in steps if s["capacitor_uF"] == uf and s["completed"]), None)
            return "-" if s is None else f"{s['boots']}, {s['imo']:.1%}"

        a = r["analytic_smallest_uF"]
        t = r.get("tuned_smallest_uF")
        lines.append(
            f"| {r['model']} | {r['board']} | {'-' if a is None else f'{a} uF'} | "
            f"{r['analytic_next']} | {'-' if t is None else f'{t} uF'} | "
            f"{r.get('tuned_next', 'not tuned')} | {at(r['analytic'], a)}; "
            f"{at(r.get('tuned', []), t)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--board", default="msp430fr5994")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-tune", action="store_true", help="the analytic walk only")
    parser.add_argument("--from-uF", type=float, default=GRID_UF[0],
                        help="start the walk at this capacitor of the grid (default 10)")
    parser.add_argument("--logs", help="keep the tuning logs here (default: a temporary "
                                       "directory)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    board = ti.load_board(args.board)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.logs or tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in args.models.split(","):
            rows.append(bench_model(name, board, args.trials, args.workers, root,
                                    not args.no_tune,
                                    [uf for uf in GRID_UF if uf <= args.from_uF]))
            if args.json:  # after each model: a long run stopped keeps what it measured
                Path(args.json).write_text(json.dumps(rows, indent=2, default=float) + "\n")
    print(markdown(rows))
    print(f"\n{(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tuned tiling against the analytic rule: zoo models, two Cortex-M4 boards, three powers.

Run:  .venv/bin/python bench/tuning_bench.py [--models kws,resnet8] [--trials 16]
      [--workers 2] [--settings 100uF,1mF,continuous] [--logs DIR] [--out tuning_bench.json]

For each model and each power setting (a 100 uF and a 1 mF capacitor with the board's
voltages and harvester, and continuous power), the tiling is tuned on ``qemu-an386`` with
``--trials`` QEMU measurements (``tvm_intermittent.tuning.tune``, analytic cost model,
``--workers`` local QEMU workers), one log per setting. Each log is then applied on
``qemu-an386`` (records ranked by their measurements) and on ``apollo4-mram`` (the same ISA:
re-ranked by the cost model, no new measurement), and both the analytic-rule build and the
tuned build are run on QEMU under the same capacitor schedule (``sim.measure_intermittent``:
instructions under failures, boots, IMO against the uninstrumented firmware, modeled latency
= active time + recharge time) or continuously. The outputs of every run under failures are
compared with the uninterrupted run's.

The cost model's fidelity on the measured candidates: for each record, the analytic
prediction of the instructions executed under the capacitor (lost work, boots and restores
included, ``energy.predict``) against QEMU's count, as a median absolute error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.energy.model import seconds
from tvm_intermittent.energy.predict import predict
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.objective import candidate_manifest
from tvm_intermittent.tuning.search import Tuner

TUNED_ON = "qemu-an386"
BOARDS = ("qemu-an386", "apollo4-mram")
SETTINGS = (("100uF", 100e-6), ("1mF", 1e-3), ("continuous", None))


def measure(artifact, board: str, capacitor_f, inputs) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project = artifact.export(Path(tmp) / "p")
        if capacitor_f is None:
            run = sim.run(project, inputs, timeout=3600)
            return {"instructions": run.instructions_total, "boots": 1, "imo": None,
                    "latency_s": seconds(ti.load_board(board), sim.measured_work(run)),
                    "match": True, "outputs": run.outputs}
        schedule = sim.Capacitor(ti.load_board(board), capacitor_f=capacitor_f)
        report = sim.measure_intermittent(project, inputs, schedule, board=board, timeout=3600)
        return {"instructions": report.instructions_total, "boots": report.boots,
                "imo": report.imo, "latency_s": report.latency_seconds,
                "match": bool(report.outputs_match and report.finished),
                "outputs": report.outputs}


def fidelity(tuner: Tuner) -> list[float]:
    """|predicted - measured| / measured instructions under the schedule, per record."""
    errors = []
    board, env = tuner.board, tuner.env
    for task in tuner.model.tasks:
        for knobs, entry in tuner.log.measured_knobs(task, board.name, env.name).items():
            if entry.get("error"):
                continue
            candidate = check_candidate(task, knobs, board, env,
                                        static_scratch=tuner.model.static_scratch)
            manifest = candidate_manifest(tuner.model.manifest, task, candidate.func,
                                          candidate.plan)
            predicted = predict(manifest, board, env.schedule(board)).executed.instructions
            errors.append(abs(predicted - entry["instructions"]) / entry["instructions"])
    return errors


def bench_model(name: str, trials: int, workers: int, root: Path, settings) -> list[dict]:
    path = zoo.get(name).path
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    rows = []
    for label, capacitor_f in [s for s in SETTINGS if s[0] in settings]:
        log = root / f"{name}-{label}"
        started = time.perf_counter()
        tuner = Tuner(path, board=TUNED_ON, log=log, inputs=inputs, workers=workers,
                      cost_model="analytic",
                      **({"capacitor": capacitor_f} if capacitor_f else
                         {"power_env": "continuous"}))
        result = tuner.run(trials)
        minutes = (time.perf_counter() - started) / 60
        errors = fidelity(tuner) if capacitor_f else []
        print(result.table(), file=sys.stderr, flush=True)
        for board in BOARDS:
            options = ({"capacitor_f": capacitor_f} if capacitor_f
                       else {"power_env": "continuous"})
            analytic = ti.build(path, "intermittent/" + board, name=name, **options)
            tuned = ti.build(path, "intermittent/" + board, name=name, tuning_log=log,
                             **options)
            a = measure(analytic, board, capacitor_f, inputs)
            t = measure(tuned, board, capacitor_f, inputs)
            same = all(np.array_equal(x, y) for x, y in zip(a.pop("outputs"),
                                                              t.pop("outputs")))
            info = tuned.manifest()["tuning"]
            row = {"model": name, "power": label, "board": board, "trials": result.trials,
                   "tuning_minutes": round(minutes, 2) if board == TUNED_ON else 0.0,
                   "tuned_operators": sorted(info["tuned"]),
                   "ranked_by": sorted({v["ranked_by"] for v in info["tuned"].values()}),
                   "analytic": a, "tuned": t, "speedup": a["latency_s"] / t["latency_s"],
                   "same_outputs": same,
                   "fidelity_median": float(np.median(errors)) if errors else None,
                   "fidelity_max": float(np.max(errors)) if errors else None}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| model | power | board | trials | tuning min | instructions analytic -> tuned | "
            "boots | IMO | latency s analytic -> tuned | speedup | outputs |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        a, t = r["analytic"], r["tuned"]
        imo = ("-" if a["imo"] is None else f"{a['imo']:.3f} -> {t['imo']:.3f}")
        lines.append(
            f"| {r['model']} | {r['power']} | {r['board']} | {r['trials']} | "
            f"{r['tuning_minutes']:.1f} | {a['instructions']:,} -> {t['instructions']:,} | "
            f"{a['boots']} -> {t['boots']} | {imo} | {a['latency_s']:.4g} -> "
            f"{t['latency_s']:.4g} | {r['speedup']:.3f}x | "
            f"{'same' if r['same_outputs'] and a['match'] and t['match'] else 'DIFFER'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="kws,resnet8")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="tuning_bench.json")
    parser.add_argument("--settings", default=",".join(s[0] for s in SETTINGS),
                        help="power settings to run (default: all: 100uF,1mF,continuous)")
    parser.add_argument("--logs", help="keep the tuning logs here (default: a temporary "
                                       "directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.logs or tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in args.models.split(","):
            rows += bench_model(name, args.trials, args.workers, root, args.settings.split(","))
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))
    errors = [r["fidelity_median"] for r in rows if r["fidelity_median"] is not None]
    if errors:
        print(f"\ncost model: median absolute error of the predicted instructions under the "
              f"capacitor over each setting's records: "
              + ", ".join(f"{r['model']} {r['power']} {r['fidelity_median']:.1%} (worst "
                          f"{r['fidelity_max']:.1%})" for r in rows
                          if r["fidelity_median"] is not None and r["board"] == TUNED_ON))
    return 0 if all(r["same_outputs"] and r["analytic"]["match"] and r["tuned"]["match"]
                    for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

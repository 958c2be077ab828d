"""Tuned tiling against the analytic rule: zoo models, two Cortex-M4 boards, three powers.

Run:  .venv/bin/python bench/tuning_bench.py [--models kws,resnet8] [--trials 16]
      [--workers 2] [--settings 100uF,1mF,continuous] [--logs DIR] [--out tuning_bench.json]
      [--smallest smallest_msp430fr5994.json smallest_qemu-an386.json]
      [--tune-on BOARD] [--no-stage] [--no-variants] [--loop-knobs on|off|both]

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

With ``--smallest``, each model is also tuned at the smallest capacitor the analytic rule
completes it on (``bench/smallest_capacitor.py --json``), on the board of each file, and
applied there: the settings where the intermittency overhead is largest. Beside each
speedup under failures, the bound on any tiling's: the analytic build's latency over the
IMO-free floor (:func:`imo_free_floor`).

With ``--tune-on BOARD`` the power settings are tuned and applied on that board alone; with
``--no-stage`` the design space leaves out the resident-operand knob (``Knobs.stage``), for
the tuned build without it, and with ``--no-variants`` the kernel-variant knob
(``Knobs.variant``, ``tuning.variants``). With ``--loop-knobs both``, each setting is tuned twice, with
the loop order and unroll knobs in the design space and without them
(``tuning.space.LOOP_KNOBS``), one log each, and both tuned builds are measured against the
same analytic build.

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
from tvm_intermittent.tuning import search, space
from tvm_intermittent.tuning.search import Tuner

TUNED_ON = "qemu-an386"
BOARDS = ("qemu-an386", "apollo4-mram")
SETTINGS = (("100uF", 100e-6), ("1mF", 1e-3), ("continuous", None))


def imo_free_floor(report, schedule, board) -> float:
    """The latency of an inference with no intermittency overhead: the uninstrumented
    firmware's energy (``E_U``, NVM accesses charged) drawn from the same capacitor and
    harvester. The capacitor starts charged and the harvester charges it while the board
    computes and while it is off, so no tiling finishes sooner than
    ``(E_U - one charge) / harvest``, nor sooner than ``E_U``'s active time (where the
    harvest keeps up). A tiling's uninstrumented work may differ from the analytic
    build's by its loop overhead, so this bounds a speedup to within that."""
    energy = report.equivalents_uninstrumented * board.energy_per_instruction_j
    active = energy / board.active_power_w
    harvest = board.harvest_w if schedule.harvest_w is None else schedule.harvest_w
    if harvest >= board.active_power_w:
        return active
    return max(active, (energy - schedule.charge_energy_j) / harvest)


def measure(artifact, board: str, capacitor_f, inputs) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project = artifact.export(Path(tmp) / "p")
        if capacitor_f is None:
            run = sim.run(project, inputs, timeout=3600)
            return {"instructions": run.instructions_total, "boots": 1, "imo": None,
                    "nvm_loads": sim.measured_work(run).nvm_loads,
                    "latency_s": seconds(ti.load_board(board), sim.measured_work(run)),
                    "floor_s": None, "match": True, "outputs": run.outputs}
        schedule = sim.Capacitor(ti.load_board(board), capacitor_f=capacitor_f)
        report = sim.measure_intermittent(project, inputs, schedule, board=board, timeout=3600)
        return {"instructions": report.instructions_total, "boots": report.boots,
                "nvm_loads": report.nvm_loads,
                "imo": report.imo, "latency_s": report.latency_seconds,
                "floor_s": imo_free_floor(report, schedule, ti.load_board(board)),
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


def smallest_settings(files, models) -> dict:
    """``model -> [(label, capacitor_f, board, (board,))]``: the smallest capacitor the
    analytic rule completes each model on, per board, from ``bench/smallest_capacitor.py``'s
    ``--json`` files; tuned and applied on that board."""
    out = {}
    for file in files:
        for row in json.loads(Path(file).read_text()):
            if row["model"] in models and row.get("analytic_smallest_uF"):
                uf = row["analytic_smallest_uF"]
                out.setdefault(row["model"], []).append(
                    (f"{uf}uF (smallest)", uf * 1e-6, row["board"], (row["board"],)))
    return out


def bench_model(name: str, trials: int, workers: int, root: Path, settings,
                extra=(), tune_on: str | None = None, variants=(True,)) -> list[dict]:
    path = zoo.get(name).path
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    rows = []
    on, boards_of = (tune_on, (tune_on,)) if tune_on else (TUNED_ON, BOARDS)
    chosen = [(label, c, on, boards_of) for label, c in SETTINGS if label in settings]
    for (label, capacitor_f, tuned_on, boards), loops in [
            (s, v) for s in [*chosen, *extra] for v in variants]:
        key = label if (label, capacitor_f) in SETTINGS and not tune_on else \
            f"{label.split()[0]}-{tuned_on}"
        log = root / (f"{name}-{key}" + ("" if variants == (True,) else
                                         "-loops" if loops else "-noloops"))
        space.LOOP_KNOBS = loops
        started = time.perf_counter()
        tuner = Tuner(path, board=tuned_on, log=log, inputs=inputs, workers=workers,
                      cost_model="analytic",
                      **({"capacitor": capacitor_f} if capacitor_f else
                         {"power_env": "continuous"}))
        result = tuner.run(trials)
        minutes = (time.perf_counter() - started) / 60
        errors = fidelity(tuner) if capacitor_f else []
        print(result.table(), file=sys.stderr, flush=True)
        for board in boards:
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
                   "loop_knobs": loops,
                   "tuned_knobs": {k: v["knobs"] for k, v in info["tuned"].items()},
                   "tuned_on": tuned_on,
                   "tuning_minutes": round(minutes, 2) if board == tuned_on else 0.0,
                   "tuned_operators": sorted(info["tuned"]), "tuned_records": info["tuned"],
                   "ranked_by": sorted({v["ranked_by"] for v in info["tuned"].values()}),
                   "analytic": a, "tuned": t, "speedup": a["latency_s"] / t["latency_s"],
                   "bound": (a["latency_s"] / a["floor_s"]) if a["floor_s"] else None,
                   "same_outputs": same,
                   "fidelity_median": float(np.median(errors)) if errors else None,
                   "fidelity_max": float(np.max(errors)) if errors else None}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| model | power | board | loop knobs | trials | tuning min | instructions "
            "analytic -> tuned | boots | IMO | latency s analytic -> tuned | speedup | bound | "
            "outputs |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        a, t = r["analytic"], r["tuned"]
        imo = ("-" if a["imo"] is None else f"{a['imo']:.3f} -> {t['imo']:.3f}")
        lines.append(
            f"| {r['model']} | {r['power']} | {r['board']} | "
            f"{'yes' if r.get('loop_knobs', True) else 'no'} | {r['trials']} | "
            f"{r['tuning_minutes']:.1f} | {a['instructions']:,} -> {t['instructions']:,} | "
            f"{a['boots']} -> {t['boots']} | {imo} | {a['latency_s']:.4g} -> "
            f"{t['latency_s']:.4g} | {r['speedup']:.3f}x | {_bound(r)} | "
            f"{'same' if r['same_outputs'] and a['match'] and t['match'] else 'DIFFER'} |")
    return "\n".join(lines)


def bounds(models, board: str, settings) -> int:
    """Print the bound on any tiling's speedup at each capacitor setting (no tuning)."""
    print("| model | power | board | latency s analytic | IMO | IMO-free floor s | bound |")
    print("|---|---|---|---|---|---|---|")
    for name in models:
        path = zoo.get(name).path
        inputs = [zoo.sample_inputs(name, count=1)[0][0]]
        for label, capacitor_f in SETTINGS:
            if label not in settings or capacitor_f is None:
                continue
            a = measure(ti.build(path, "intermittent/" + board, name=name,
                                 capacitor_f=capacitor_f), board, capacitor_f, inputs)
            print(f"| {name} | {label} | {board} | {a['latency_s']:.4g} | {a['imo']:.3f} | "
                  f"{a['floor_s']:.4g} | {a['latency_s'] / a['floor_s']:.3f}x |", flush=True)
    return 0


def _bound(row: dict) -> str:
    return "-" if row.get("bound") is None else f"{row['bound']:.3f}x"


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
    parser.add_argument("--smallest", nargs="*", default=[], metavar="JSON",
                        help="also tune each model at the smallest capacitor the analytic "
                             "rule completes it on, on each board of these "
                             "bench/smallest_capacitor.py --json files")
    parser.add_argument("--tune-on", metavar="BOARD",
                        help=f"tune and apply the --settings on BOARD alone (default: tune on "
                             f"{TUNED_ON}, apply on {', '.join(BOARDS)})")
    parser.add_argument("--no-stage", action="store_true",
                        help="leave the resident-operand knob (Knobs.stage) out of the design "
                             "space")
    parser.add_argument("--no-variants", action="store_true",
                        help="leave the kernel-variant knob (Knobs.variant) out of the design "
                             "space")
    parser.add_argument("--loop-knobs", choices=("on", "off", "both"), default="on",
                        help="search the loop order and unroll knobs (on), not (off), or "
                             "tune each setting both ways (both)")
    parser.add_argument("--bound-only", metavar="BOARD",
                        help="no tuning: the analytic build's latency, IMO-free floor and "
                             "bound on BOARD at each capacitor setting")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    if args.bound_only:
        return bounds(models, args.bound_only, args.settings.split(","))
    extra = smallest_settings(args.smallest, models)
    if args.no_stage or args.no_variants:
        everything = search.candidates
        search.candidates = lambda task: [k for k in everything(task)
                                          if not (args.no_stage and k.stage)
                                          and not (args.no_variants and k.variant)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.logs or tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in models:
            rows += bench_model(name, args.trials, args.workers, root, args.settings.split(","),
                                extra.get(name, ()), args.tune_on,
                                {"on": (True,), "off": (False,),
                                 "both": (True, False)}[args.loop_knobs])
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))
    errors = [r["fidelity_median"] for r in rows if r["fidelity_median"] is not None]
    if errors:
        print(f"\ncost model: median absolute error of the predicted instructions under the "
              f"capacitor over each setting's records: "
              + ", ".join(f"{r['model']} {r['power']} {r['fidelity_median']:.1%} (worst "
                          f"{r['fidelity_max']:.1%})" for r in rows
                          if r["fidelity_median"] is not None and r["board"] == r["tuned_on"]))
    return 0 if all(r["same_outputs"] and r["analytic"]["match"] and r["tuned"]["match"]
                    for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Power-failure campaigns: outputs under failures must equal the uninterrupted run's, and
no committed work may be lost.

Run:  .venv/bin/python bench/failure_campaign.py [--part phases|random|all] [--quick]
                                                  [--json out.json]

``--part phases``: exhaustive sweeps, one run per failure point, over the phase windows
the firmware itself marks (``sim.campaign.phase_windows``: the plugin records every
phase function's entry, every tile batch and every NVM store of the commit and restore):

* small models on msp430fr5994 with tiles for 3 uF (power cycles of 24,424 instructions):
  float ONNX (``relu``, ``small_cnn``, ``conv_depthwise``, ``gemm``), int8 TFLite
  (``int8_conv``, ``int8_depthwise``, ``int8_dense``) and two reductions split into chunks
  (``wide_gemm``, ``int8_wide_dense``). Every window of up to --full points is swept in
  full (boot and restore; input load and the FRESH->RUNNING commit; each operator's first
  and last tile batch, from its first instruction to its commit's last store; the chunks
  of a split reduction; the output write to the exit); a longer batch window is swept
  over its first 50 points and from 50 points before its commit's first store to the end
  of the commit. The boot, input and output windows (the runtime's code, the same in
  every model) are swept in full for ``relu`` and ``int8_conv``, at their key points for
  the others. Two-failure schedules, for ``relu`` and ``int8_conv``: a failure at every
  point of a commit, then one in the recovery boot (at its first instruction, in its
  middle, and before and after the restore's first and last store).
* two zoo models (``micro_speech`` and ``kws``, at the board's 100 uF): a run takes a
  tenth of a second to a second, so the first batch of each kernel and the boot, input
  and output windows are swept at their key points (the first and last points, the points before the first NVM store, before
  and after every store, around every phase function's entry).

``--part random``: seeded random power cycles (uniform between half the budget and the
budget of the capacitor the tiles were compiled for, and never below the measured
progress floor) until at least --failures failures at each model's smallest capacitor
and a tenth of that at a larger one: every zoo model and the int8 small models.

Every run must finish with the uninterrupted outputs bit for bit, fail exactly at its
scheduled points, and keep committed progress (each failure may redo only the tile batch
it interrupted, never the input load after the FRESH->RUNNING commit nor anything after the
last operator's commit, and at most one power cycle of instructions):
``sim.campaign.Baseline.problem``. The tables print as Markdown.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import campaign_models  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import sim, zoo  # noqa: E402
from tvm_intermittent.sim import campaign  # noqa: E402

BOARD = "intermittent/msp430fr5994"
SMALL_CAPACITOR = 3e-6
PHASE_MODELS = ["relu", "small_cnn", "conv_depthwise", "gemm", "int8_conv", "int8_depthwise",
                "int8_dense", "wide_gemm", "int8_wide_dense"]
#: Models whose boot, input and output windows are swept in full (the runtime's code,
#: the same in every model; the others sweep those windows at their key points), and
#: which get the two-failure schedules.
FULL_PHASE_MODELS = ["relu", "int8_conv"]
ZOO_PHASE_MODELS = ["micro_speech", "kws"]
#: Model -> capacitors (farads) and the share of --failures each gets: the smallest
#: capacitor the model compiles for (its largest operator's smallest tile must fit half a
#: power cycle: the cheapest failures, since a run's cost grows with the cycle) and a
#: larger one.
RANDOM_MODELS = {
    "kws": ((2e-6, 1.0), (5e-6, 0.1)),
    "micro_speech": ((3e-6, 1.0), (10e-6, 0.1)),
    "vww": ((4e-6, 1.0), (10e-6, 0.1)),
    "resnet8": ((12e-6, 1.0), (20e-6, 0.1)),
    "ad": ((10e-6, 1.0), (20e-6, 0.1)),
    "int8_conv": ((2e-6, 1.0), (3e-6, 0.1)),
    "int8_depthwise": ((2e-6, 1.0), (3e-6, 0.1)),
    "int8_wide_dense": ((2e-6, 1.0), (3e-6, 0.1)),
}


def _build(name, capacitor_f, tmp: Path):
    """Compile ``name`` (a zoo model or a campaign model) and run it once continuously."""
    directory = tmp / f"{name}-{capacitor_f or 'board'}"
    directory.mkdir(parents=True, exist_ok=True)
    if name in zoo.list_models():
        model, inputs = zoo.get(name).path, [zoo.sample_inputs(name, count=1)[0][0]]
    else:
        model, inputs = campaign_models.load(name, directory)
    kwargs = {} if capacitor_f is None else {"capacitor_f": capacitor_f}
    artifact = ti.build(model, BOARD, **kwargs)
    project = artifact.export(directory / "p", overwrite=True)
    continuous = sim.run(project, inputs, timeout=1800)
    windows = campaign.phase_windows(continuous, campaign.task_table(artifact.manifest()))
    baseline = campaign.Baseline(continuous, continuous.outputs, artifact.power_cycle_budget)
    return artifact, project, inputs, baseline, windows


def _bench_points(full: int, every_phase: bool, margin: int = 50):
    """Batch windows of up to ``full`` points in full, longer ones over their first
    ``margin`` points and from ``margin`` points before the commit's first store to its
    end; boot, input and output windows in full when ``every_phase``, else at their key
    points."""
    def points(window):
        if window.phase in ("boot", "inputs", "outputs") and not every_phase:
            return window.key_points()
        if len(window) <= full or not window.stores:
            return list(window.points)
        return window.sample(margin, window.stop - (window.stores[0] - margin))
    return points


def _first_batch_of_each_kernel(windows):
    """The boot, input and output windows and the first batch window of each kernel (a
    zoo run takes seconds: a kernel repeated in several layers is the same code)."""
    kept, seen = [], set()
    for window in windows:
        if window.kernel is not None:
            if window.kernel in seen or "last batch" in window.label:
                continue
            seen.add(window.kernel)
        kept.append(window)
    return kept


def phases(args, tmp: Path) -> list[dict]:
    """The exhaustive part: one row per model and window."""
    rows = []
    for name in PHASE_MODELS + ZOO_PHASE_MODELS:
        if args.models and name not in args.models:
            continue
        small = name not in ZOO_PHASE_MODELS
        print(f"phases: {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        artifact, project, inputs, baseline, windows = _build(
            name, SMALL_CAPACITOR if small else None, tmp)
        points = (_bench_points(args.full, name in FULL_PHASE_MODELS)
                  if small and not args.quick else campaign.Window.key_points)
        if not small:
            windows = _first_batch_of_each_kernel(windows)
        if small and name in FULL_PHASE_MODELS:
            restores = [c for f, c in baseline.continuous.stores if f == campaign.RESTORE]
            offsets = [0, restores[0] // 2, restores[0], restores[0] + 1, restores[-1],
                       restores[-1] + 1]
            windows = windows + campaign.recovery_windows(baseline.continuous, commit_index=1,
                                                          offsets=offsets)
        if args.dry_run:
            for w in windows:
                print(f"  {w.phase} {w.label} [{w.start}, {w.stop}) then={w.then}: "
                      f"{len(points(w))} points", file=sys.stderr)
            continue
        result = campaign.exhaustive_campaign(project, inputs, baseline.reference, windows,
                                              baseline=baseline, points=points,
                                              timeout=1800)
        for row in result.details["by_window"]:
            rows.append({"model": name, "budget": artifact.power_cycle_budget,
                         "instructions": baseline.continuous.instructions_total, **row})
        print(f"  {result.runs} runs, ok={result.ok}, "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return rows


def random(args, tmp: Path) -> list[dict]:
    """The random part: one row per model and capacitor."""
    rows = []
    for name, capacitors in RANDOM_MODELS.items():
        if args.models and name not in args.models:
            continue
        for number, (capacitor_f, fraction) in enumerate(capacitors):
            share = int(args.failures * fraction)
            print(f"random: {name} at {capacitor_f * 1e6:g} uF ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            artifact, project, inputs, baseline, windows = _build(name, capacitor_f, tmp)
            budget = artifact.power_cycle_budget
            low = max(budget // 2, campaign.progress_floor(windows))
            high = max(low, min(budget, baseline.continuous.instructions_total - 1))
            first_seed = 1000 * number
            result = campaign.random_campaign(project, inputs, baseline.reference,
                                              min_instructions=low, max_instructions=high,
                                              min_failures=share, first_seed=first_seed,
                                              baseline=baseline, timeout=1800)
            seeds = result.details["seeds"]
            rows.append({"model": name, "capacitor_uF": capacitor_f * 1e6, "budget": budget,
                         "cycle": [low, high], "runs": result.runs,
                         "failures": result.failures,
                         "identical": result.runs - len(result.mismatches)
                         - len(result.unfinished),
                         "progress_kept": result.runs - len(result.mismatches)
                         - len(result.unfinished) - len(result.lost_progress)
                         - len(result.misplaced),
                         "seeds": [seeds[0], seeds[-1]] if seeds else [],
                         "ok": result.ok, "seconds": round(time.perf_counter() - started)})
            print(f"  {result.runs} runs, {result.failures} failures, ok={result.ok}, "
                  f"{rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    return rows


def _phase_table(rows) -> list[str]:
    lines = ["| model | phase | window | points injected | of the window | identical "
             "| progress kept |", "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        span = r["stop"] - r["start"]
        lines.append(f"| {r['model']} | {r['phase']} | {r['label']} [{r['start']:,}, "
                     f"{r['stop']:,}) | {r['points']:,} | {span:,} | {r['identical']:,} | "
                     f"{r['progress_kept']:,} |")
    return lines


def _phase_summary(rows) -> list[str]:
    totals = collections.defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        t = totals[(r["model"], r["phase"])]
        t[0] += 1
        t[1] += r["points"]
        t[2] += r["identical"]
        t[3] += r["progress_kept"]
    lines = ["| model | phase | windows | points injected | identical | progress kept |",
             "|---|---|---:|---:|---:|---:|"]
    for (model, phase), (windows, points, same, kept) in totals.items():
        lines.append(f"| {model} | {phase} | {windows} | {points:,} | {same:,} | {kept:,} |")
    return lines


def _random_table(rows) -> list[str]:
    lines = ["| model | capacitor | budget | cycles | runs | failures | identical "
             "| progress kept | seeds | s |", "|---|---:|---:|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['capacitor_uF']:g} uF | {r['budget']:,} | "
                     f"{r['cycle'][0]:,}-{r['cycle'][1]:,} | {r['runs']:,} | "
                     f"{r['failures']:,} | {r['identical']:,} | {r['progress_kept']:,} | "
                     f"{r['seeds'][0]}-{r['seeds'][-1]} | {r['seconds']} |")
    totals = collections.Counter()
    for r in rows:
        totals[r["model"]] += r["failures"]
    lines += ["", "| model | failures, all capacitors |", "|---|---:|"]
    lines += [f"| {model} | {count:,} |" for model, count in totals.items()]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("phases", "random", "all"), default="all")
    parser.add_argument("--quick", action="store_true",
                        help="key points only, 500 random failures per model")
    parser.add_argument("--full", type=int, default=600,
                        help="sweep windows of up to this many points in full")
    parser.add_argument("--failures", type=int, default=10_000,
                        help="random failures per model, over its capacitors")
    parser.add_argument("--models", help="comma-separated subset of the models")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the phase windows and their points, run nothing")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    args.models = set(args.models.split(",")) if args.models else None
    if args.quick:
        args.failures = min(args.failures, 500)
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("phases", "all"):
            results["phases"] = phases(args, Path(tmp))
        if args.part in ("random", "all"):
            results["random"] = random(args, Path(tmp))
    results["seconds"] = round(time.perf_counter() - started)
    ok = True
    if "phases" in results:
        rows = results["phases"]
        ok &= all(not r["problems"] for r in rows)
        print("\n".join(_phase_summary(rows) + [""] + _phase_table(rows)))
    if "random" in results:
        ok &= all(r["ok"] for r in results["random"])
        print("\n".join([""] + _random_table(results["random"])))
    print(f"\nwall time: {results['seconds']} s; all runs as required: {'yes' if ok else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

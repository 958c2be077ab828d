"""Power-failure campaigns: outputs under failures must equal the uninterrupted run's.

Run:  .venv/bin/python bench/failure_campaign.py [--quick] [--json out.json]

1. Every small ONNX model of the operator tests, on msp430fr5994 with tiles sized for a
   3 uF capacitor (power cycles of about 24,000 instructions): at least 1000 seeded random
   failures (power cycles between half and all of the budget), and an exhaustive sweep
   (one run per failure point) over each operator's first tile batch and the commit after
   it, in full.
2. Keyword spotting and ResNet-8 on msp430fr5994 at 100 uF: at least 1000 random failures
   each, and an exhaustive sweep over the end of each operator's first tile batch and its
   commit (the last --zoo-points instructions: a run of these models takes a second, so a
   sweep over a whole 20,000-instruction batch would take hours).

Every run's outputs are compared with the uninterrupted run bit for bit; an exhaustive run
that redoes more than one power cycle of work counts as lost progress.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import onnx_models  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import sim, zoo  # noqa: E402
from tvm_intermittent.sim import campaign  # noqa: E402


def _tasks(artifact):
    return [(t["kernel"], t["commits"]) for t in artifact.manifest()["tasks"]]


def check(name, artifact, inputs, tmp: Path, failures: int, points: int | None) -> dict:
    project = artifact.export(tmp / name)
    reference = sim.run(project, inputs, timeout=1800).outputs
    budget = artifact.power_cycle_budget
    started = time.perf_counter()
    rand = campaign.random_campaign(project, inputs, reference, min_instructions=budget // 2,
                                    max_instructions=budget, min_failures=failures)
    windows = campaign.task_windows(project, inputs, _tasks(artifact))
    exhaustive = campaign.exhaustive_campaign(project, inputs, reference, windows,
                                              max_points=points, max_redo=budget)
    return {"model": name, "budget": budget, "random": rand.to_dict(),
            "exhaustive": exhaustive.to_dict(), "seconds": round(time.perf_counter() - started)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 failures, short sweeps")
    parser.add_argument("--zoo-points", type=int, default=40)
    parser.add_argument("--models", default="all", help="comma-separated subset")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    failures = 100 if args.quick else 1000
    wanted = None if args.models == "all" else set(args.models.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in sorted(onnx_models.CASES):
            if wanted and case not in wanted:
                continue
            print(f"{case} ...", file=sys.stderr, flush=True)
            model, inputs = onnx_models.CASES[case]()
            artifact = ti.build(model, "intermittent/msp430fr5994", capacitor_f=3e-6)
            rows.append(check(case, artifact, inputs, Path(tmp), failures,
                              200 if args.quick else None))
        for name in ("kws", "resnet8"):
            if wanted and name not in wanted:
                continue
            print(f"{name} ...", file=sys.stderr, flush=True)
            artifact = ti.build(zoo.get(name).path, "intermittent/msp430fr5994")
            inputs = [zoo.sample_inputs(name, count=1)[0][0]]
            rows.append(check(name, artifact, inputs, Path(tmp), failures, args.zoo_points))
    print("| model | cycle budget | random: runs | failures | identical | exhaustive: points "
          "| identical | progress kept |")
    print("|---|---:|---:|---:|---|---:|---|---|")
    ok = True
    for r in rows:
        rnd, exh = r["random"], r["exhaustive"]
        ok &= rnd["ok"] and exh["ok"]
        print(f"| {r['model']} | {r['budget']:,} | {rnd['runs']} | {rnd['failures']:,} | "
              f"{'yes' if not rnd['mismatches'] and not rnd['unfinished'] else 'NO'} | "
              f"{exh['runs']:,} | "
              f"{'yes' if not exh['mismatches'] and not exh['unfinished'] else 'NO'} | "
              f"{'yes' if not exh['lost_progress'] else 'NO'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

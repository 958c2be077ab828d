"""What the kernel-variant knob adds to a model's design space, and what it costs to offer.

Run:  .venv/bin/python bench/variant_candidates.py [--model kws] [--board qemu-an386]
      [--capacitor 1e-6] [--measure N]

For each tuning task with a kernel variant (``tuning.variants``): the variants offered, the
variant's candidates (``space.variant_candidates``) and how many pass the hard constraints
(``constraints.check_candidate``) on the board at the capacitor, with the smallest batch's
predicted instructions against the tuner's limit per batch, beside the default kernel's
analytic plan. Also the seconds the knob adds to ``ModelTasks.of`` (``variants.attach``:
the model lowered once more with every variant chosen, and the variant tasks) beside those
of ``builder.prepare``.

With ``--measure N``, the N fitting candidates of each variant with the smallest predicted
latency (the analytic cost model's, as ``tune --cost-model analytic`` ranks them) are built
alone, every other operator as the rule tiles it, and run on QEMU under the capacitor's
schedule beside the analytic build (``tuning_bench.measure``: instructions under failures,
boots, latency); each run's outputs are compared with the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import tvm  # noqa: F401  first: its plugin autoload imports tvm_intermittent.transform

from tvm_intermittent import builder, zoo
from tvm_intermittent.transform.notices import ONE_ROW_TILES, ONE_UNIT_TILES
from tvm_intermittent.tuning import ModelTasks, variants
from tvm_intermittent.tuning.apply import build_environment
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.knobs import CandidateError, Knobs
from tvm_intermittent.tuning.space import variant_candidates
from tvm_intermittent.tuning.analytic_model import AnalyticModel
from tvm_intermittent.tuning.variants import describe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuning_bench import measure  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="kws")
    parser.add_argument("--board", default="qemu-an386")
    parser.add_argument("--capacitor", type=float, default=1e-6, help="farads")
    parser.add_argument("--measure", type=int, default=0, metavar="N",
                        help="run the N best-predicted fitting candidates of each variant on "
                             "QEMU under the capacitor, beside the analytic build")
    args = parser.parse_args(argv)
    path = zoo.get(args.model).path
    started = time.perf_counter()
    prepared = builder.prepare(path, "intermittent/" + args.board, capacitor_f=args.capacitor)
    prepare_s = time.perf_counter() - started
    model = ModelTasks.of(prepared)
    prepared.variant_lowerings.clear()
    started = time.perf_counter()
    variants.attach(prepared, [dataclasses.replace(t, variants={}) for t in model.tasks])
    attach_s = time.perf_counter() - started
    print(f"{args.model} on {args.board} at {args.capacitor * 1e6:g} uF: prepare "
          f"{prepare_s:.2f} s; the variants' lowering and tasks (variants.attach, in "
          f"ModelTasks.of) {attach_s:.2f} s")
    for notice in model.artifact.notices:
        if notice.path in (ONE_ROW_TILES, ONE_UNIT_TILES):
            print(f"  the rule: {notice.operator}: {notice.reason}")
    env = build_environment(prepared)
    runs = []
    for task in model.tasks:
        for number, variant in sorted(task.variants.items()):
            found = variant_candidates(variant, number)
            valid = []
            for knobs in found:
                try:
                    valid.append(check_candidate(task, knobs, prepared.board, env,
                                                 static_scratch=model.static_scratch))
                except CandidateError:
                    continue
            least = min(valid, key=lambda c: c.batch_cost, default=None)
            print(f"  {task.kernel}: {describe(number)}: {len(found)} candidates, "
                  f"{len(valid)} within the constraints"
                  + (f"; the smallest batch ({least.knobs.describe()}) about "
                     f"{least.batch_cost:,} instructions of at most {least.batch_limit:,}"
                     if least else "")
                  + f"; default plan {task.default.extent} tiles of about "
                    f"{task.default.tile_instructions:,}")
            if args.measure:
                runs.append((task, valid))
    if args.measure:
        _measure(args, prepared, model, env, runs)
    return 0


def _measure(args, prepared, model, env, runs) -> None:
    inputs = [zoo.sample_inputs(args.model, count=1)[0][0]]
    analytic = AnalyticModel(prepared.board, env, model)
    base = measure(model.artifact, args.board, args.capacitor, inputs)
    print(f"\n| kernel | knobs | predicted s | instructions analytic -> variant | boots | "
          f"latency s analytic -> variant | speedup | outputs |\n|---|---|---|---|---|---|---|---|")
    for task, valid in runs:
        ranked = sorted(valid, key=lambda c: analytic.predict_seconds(task, c.knobs))
        for candidate in ranked[:args.measure]:
            artifact = builder.assemble(prepared, model.plans(
                {task.kernel: (candidate.func, candidate.plan)}))
            got = measure(artifact, args.board, args.capacitor, inputs)
            same = base["match"] and got["match"]
            print(f"| {task.kernel} | {candidate.knobs.describe()} | "
                  f"{analytic.predict_seconds(task, candidate.knobs):.4g} (analytic build "
                  f"{analytic.predict_seconds(task, Knobs.of_plan(task.default)):.4g}) | "
                  f"{base['instructions']:,} -> {got['instructions']:,} | "
                  f"{base['boots']} -> {got['boots']} | {base['latency_s']:.4g} -> "
                  f"{got['latency_s']:.4g} | {base['latency_s'] / got['latency_s']:.3f}x | "
                  f"{'same' if same else 'DIFFER'} |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

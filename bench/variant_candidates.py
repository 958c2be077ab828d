"""What the kernel-variant knob adds to a model's design space, and what it costs to offer.

Run:  .venv/bin/python bench/variant_candidates.py [--model kws] [--board qemu-an386]
      [--capacitor 1e-6]

For each tuning task with a kernel variant (``tuning.variants``): the variants offered, the
variant's candidates (``space.variant_candidates``) and how many pass the hard constraints
(``constraints.check_candidate``) on the board at the capacitor, with the smallest batch's
predicted instructions against the tuner's limit per batch, beside the default kernel's
analytic plan. Also the seconds the knob adds to ``ModelTasks.of`` (``variants.attach``:
the model lowered once more with every variant chosen, and the variant tasks) beside those
of ``builder.prepare``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import tvm  # noqa: F401  first: its plugin autoload imports tvm_intermittent.transform

from tvm_intermittent import builder, zoo
from tvm_intermittent.transform.notices import ONE_ROW_TILES, ONE_UNIT_TILES
from tvm_intermittent.tuning import ModelTasks, variants
from tvm_intermittent.tuning.apply import build_environment
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.knobs import CandidateError
from tvm_intermittent.tuning.space import variant_candidates
from tvm_intermittent.tuning.variants import describe


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="kws")
    parser.add_argument("--board", default="qemu-an386")
    parser.add_argument("--capacitor", type=float, default=1e-6, help="farads")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

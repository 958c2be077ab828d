"""The cost model against QEMU on staged kernels: each operand of kws's convolutions staged.

Run:  .venv/bin/python bench/staging_cost.py [--model kws] [--board msp430fr5994]
      [--kernels conv2d_s81,depthwise_conv2d_s8,conv2d_s8]

For each kernel and each operand it may stage (``tuning.staging.stageable_parameters``), the
kernel's default tiling with that operand staged (``Knobs.stage``) is checked against the
board (``tuning.constraints.check_candidate``), built alone into the model and profiled on
QEMU (``sim.profile``: the operator's instructions and NVM bytes read). Printed: the cost
model's predicted instructions per tile and NVM loads per tile, unstaged -> staged, beside
QEMU's instructions and NVM bytes read for the whole operator, unstaged -> staged.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import tvm_intermittent as ti
from tvm_intermittent import builder, zoo
from tvm_intermittent.energy.costs import tile_work
from tvm_intermittent.sim.profile import profile
from tvm_intermittent.tuning import CandidateError, Knobs, ModelTasks, environment
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.staging import stageable_parameters


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="kws")
    parser.add_argument("--board", default="msp430fr5994")
    parser.add_argument("--kernels", default="conv2d_s81,depthwise_conv2d_s8,conv2d_s8")
    args = parser.parse_args(argv)
    path = zoo.get(args.model).path
    inputs = [zoo.sample_inputs(args.model, count=1)[0][0]]
    tasks = ModelTasks.of(builder.prepare(path, "intermittent/" + args.board))
    board, env = ti.load_board(args.board), environment("board")
    print("| kernel | staged | predicted instructions / tile | predicted NVM loads / tile | "
          "QEMU instructions (operator) | QEMU NVM bytes read (operator) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = {r.operator: r for r in profile(tasks.artifact.export(Path(tmp) / "base"),
                                               inputs).rows}
        for kernel in args.kernels.split(","):
            task = tasks.task(kernel)
            knobs = Knobs.of_plan(task.default)
            default = check_candidate(task, knobs, board, env)
            before = tile_work(default.func, default.plan, task.placement, kernel=kernel)
            for stage, name in enumerate(stageable_parameters(task.func), 1):
                try:
                    staged = check_candidate(task, dataclasses.replace(knobs, stage=stage),
                                             board, env)
                except CandidateError as err:
                    print(f"| {kernel} | {name} | refused: {err} | | | |")
                    continue
                after = tile_work(staged.func, staged.plan, task.placement, kernel=kernel)
                artifact = builder.assemble(tasks.prepared, {kernel: (staged.func,
                                                                      staged.plan)})
                row = {r.operator: r for r in profile(
                    artifact.export(Path(tmp) / f"{kernel}-{name}"), inputs).rows}[kernel]
                was = base[kernel]
                print(f"| {kernel} | {name} | {before.instructions:,.0f} -> "
                      f"{after.instructions:,.0f} ({after.instructions / before.instructions:.3f}x)"
                      f" | {before.nvm_loads:,.0f} -> {after.nvm_loads:,.0f} | "
                      f"{was.instructions:,} -> {row.instructions:,} "
                      f"({row.instructions / was.instructions:.3f}x) | {was.nvm_read_bytes:,} -> "
                      f"{row.nvm_read_bytes:,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

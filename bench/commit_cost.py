"""What the progress record costs: instructions per commit and restore, and a DONE boot.

Run:  .venv/bin/python bench/commit_cost.py [--models gemm,kws] [--json out.json]

For each model (``gemm``: the small ONNX test model at 3 uF; ``kws``: keyword spotting at
the board's 100 uF), on the msp430fr5994 profile, with the default build and with -flto
(``make qemu LTO=1``), all exact QEMU instruction counts:

* commit: instructions of one call of ``intm_progress_commit`` (every call takes the same
  path), and all commits of the inference as a share of its instructions;
* restore: ``intm_progress_restore`` on blank NVM (the first boot), and on a boot that
  finds both slots sealed (after a failure);
* DONE boot: the whole boot after a power failure right after the final commit returned:
  restore, output write and exit, never a task.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import onnx_models  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import sim, zoo  # noqa: E402

COMMIT, RESTORE = "intm_progress_commit", "intm_progress_restore"
BOARD = "msp430fr5994"


def _model(name: str):
    if name == "kws":
        return zoo.get("kws").path, [zoo.sample_inputs("kws", count=1)[0][0]], None
    model, inputs = onnx_models.CASES[name]()
    return model, inputs, 3e-6


def measure(name: str, tmp: Path) -> list[dict]:
    model, inputs, capacitor = _model(name)
    options = {"capacitor_f": capacitor} if capacitor else {}
    artifact = ti.build(model, f"intermittent/{BOARD}", **options)
    project = artifact.export(tmp / name)
    rows = []
    for lto in (False, True):
        run = sim.run(project, inputs, lto=lto, timeout=1800)
        per_commit = run.range_instructions[COMMIT] // len(run.commits)
        assert per_commit * len(run.commits) == run.range_instructions[COMMIT]
        after_done = sim.run(project, inputs, lto=lto, timeout=1800,
                             power=sim.power.FailAt(run.commits[-1] + per_commit))
        assert after_done.failures == 1 and after_done.boots == 2
        assert all((a == b).all() for a, b in zip(after_done.outputs, run.outputs))
        rows.append({
            "model": name, "build": "lto" if lto else "default", "commits": len(run.commits),
            "commit": per_commit,
            "commit_share": run.range_instructions[COMMIT] / run.instructions_total,
            "restore_blank": run.range_instructions[RESTORE],
            "restore_sealed": (after_done.range_instructions[RESTORE]
                               - run.range_instructions[RESTORE]),
            "done_boot": after_done.per_boot_instructions[1],
            "inference": run.instructions_total,
        })
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gemm,kws")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="intm-commit-") as tmp:
        for name in args.models.split(","):
            rows += measure(name, Path(tmp))
    print("| model | build | commits | commit | share of inference | restore, blank | "
          "restore, sealed | DONE boot | inference |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['build']} | {r['commits']:,} | {r['commit']} | "
              f"{100 * r['commit_share']:.2f} % | {r['restore_blank']} | "
              f"{r['restore_sealed']} | {r['done_boot']:,} | {r['inference']:,} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

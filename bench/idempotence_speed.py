"""The compile-time idempotence check against its TIR-interpreting form: verdicts and time.

Run:  .venv/bin/python bench/idempotence_speed.py [--old 5f42e97] [--models kws,...]
      [--boards qemu-an386,msp430fr5994] [--candidates micro_speech,kws] [--out FILE]

``codegen/idempotence.py`` as of the git revision ``--old`` (before the check translated
each kernel into Python closures: it evaluated the TIR through TVM's Python objects) is
loaded from git into a temporary module beside the package, and both it and the current
check are run on the same (kernel, plan) pairs:

* every kernel of the five zoo models (``--models``) at its default plan (the analytic rule's, as
  ``builder.assemble`` tiles it) on each board of ``--boards``;
* the tuner's candidates of every task of the models in ``--candidates`` on qemu-an386 at
  100 uF, one check per distinct (workload, depth, split, chunks, stage, order, unroll) as
  ``tuning.constraints.check_candidate`` makes them: ``tuning.space.candidates``, then
  ``tuning.knobs.tiled_func`` and ``plan_of``.

Per group: the number of checks, how many verdicts (passed or refused) and messages (the
refusal's text, or the report of a pass) are equal, and the seconds each check took in
all (the TIR rewrites and planning before the checks are not timed). The exit status is 1
when any verdict or message differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tvm_intermittent import builder, zoo
from tvm_intermittent.codegen import idempotence as new
from tvm_intermittent.tuning import CandidateError, space
from tvm_intermittent.tuning.knobs import plan_of, tiled_func
from tvm_intermittent.tuning.log import workload_key
from tvm_intermittent.tuning.workload import extract_tasks

_SOURCE = "python/tvm_intermittent/codegen/idempotence.py"


def load_old(revision: str):
    """The check as of ``revision``, imported from git as ``tvm_intermittent.codegen.
    _idempotence_old`` (a sibling module, so that its relative imports resolve); the file
    lives in a temporary directory only."""
    root = Path(__file__).resolve().parent.parent
    text = subprocess.run(["git", "show", f"{revision}:{_SOURCE}"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="idempotence_old_"))
    path = folder / "idempotence_old.py"
    path.write_text(text)
    name = "tvm_intermittent.codegen._idempotence_old"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def verdict(module, func, kernel, plan):
    """``(seconds, passed, message)``: the report's fields for a pass, the text of a
    refusal."""
    started = time.perf_counter()
    try:
        report = module.check_idempotence(func, kernel, plan)
        outcome = (True, repr(dataclasses.astuple(report)))
    except module.IdempotenceError as err:
        outcome = (False, str(err))
    return (time.perf_counter() - started, *outcome)


def default_cases(models, boards):
    for model in models:
        path = zoo.get(model).path
        for board in boards:
            prepared = builder.prepare(path, board=board)
            for task in extract_tasks(prepared):
                yield f"default plans, {board}", f"{model}/{task.kernel}", task.func, \
                    task.default


def candidate_cases(models):
    for model in models:
        prepared = builder.prepare(zoo.get(model).path, board="qemu-an386",
                                   capacitor_f=100e-6)
        seen = set()
        for task in extract_tasks(prepared):
            for knobs in space.candidates(task):
                key = (workload_key(task.mod), knobs.depth, knobs.split, knobs.chunks,
                       knobs.stage, knobs.order, knobs.unroll)
                if key in seen:
                    continue
                seen.add(key)
                try:
                    func = tiled_func(task.func, knobs)
                    plan = plan_of(knobs, task.func, task.kernel, usable=task.usable,
                                   tile_cost=lambda f, p: 1)
                except CandidateError:
                    continue
                yield f"candidates, {model}", f"{task.kernel} {knobs.describe()}", func, plan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="5f42e97",
                        help="git revision of the check to compare with (default: the last "
                             "one that evaluated the TIR objects)")
    parser.add_argument("--candidates", default="micro_speech,kws")
    parser.add_argument("--models", default=",".join(zoo.list_models()),
                        help="models whose default plans are checked")
    parser.add_argument("--boards", default="qemu-an386,msp430fr5994")
    parser.add_argument("--out", type=Path, help="JSON rows, one per check")
    args = parser.parse_args(argv)
    old = load_old(args.old)
    groups: dict[str, dict] = {}
    rows = []
    cases = [*default_cases([m for m in args.models.split(",") if m], args.boards.split(",")),
             *candidate_cases([m for m in args.candidates.split(",") if m])]
    for group, name, func, plan in cases:
        old_s, old_pass, old_text = verdict(old, func, name, plan)
        new_s, new_pass, new_text = verdict(new, func, name, plan)
        g = groups.setdefault(group, {"checks": 0, "refused": 0, "verdicts_equal": 0,
                                      "messages_equal": 0, "old_s": 0.0, "new_s": 0.0})
        g["checks"] += 1
        g["refused"] += not old_pass
        g["verdicts_equal"] += old_pass == new_pass
        g["messages_equal"] += old_text == new_text
        g["old_s"] += old_s
        g["new_s"] += new_s
        rows.append({"group": group, "case": name, "old_s": old_s, "new_s": new_s,
                     "passed": [old_pass, new_pass], "equal": old_text == new_text})
        if old_text != new_text:
            print(f"DIFFERS {group} {name}:\n  old: {old_text}\n  new: {new_text}", flush=True)
    total = {key: sum(g[key] for g in groups.values()) for key in next(iter(groups.values()))}
    print(f"{'group':34} {'checks':>6} {'refused':>7} {'verdicts =':>10} {'messages =':>10} "
          f"{'old s':>8} {'new s':>7} {'ratio':>6}")
    for group, g in [*groups.items(), ("all", total)]:
        print(f"{group:34} {g['checks']:6d} {g['refused']:7d} {g['verdicts_equal']:10d} "
              f"{g['messages_equal']:10d} {g['old_s']:8.1f} {g['new_s']:7.2f} "
              f"{g['old_s'] / max(g['new_s'], 1e-9):6.1f}")
    if args.out:
        args.out.write_text(json.dumps({"old": args.old, "groups": groups, "rows": rows},
                                       indent=1))
    same = total["verdicts_equal"] == total["checks"] == total["messages_equal"]
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

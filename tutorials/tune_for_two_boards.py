"""
.. _tutorial-tune-for-two-boards:

Tune the tiling for one board, reuse the log on another
=======================================================

The compiler cuts every operator into tiles by an analytic rule: the shallowest tiling whose
predicted batch fits half of one charge. That is safe but not the fastest on a device that
loses power: a longer batch commits less often, a shorter one loses less work per failure,
and which wins depends on the part, the capacitor and the operator. ``tvm-intermittent
tune`` measures candidate tilings on QEMU under the power environment and keeps the best in
a log; ``compile --tuning-log`` applies it.

We tune the micro-speech model for ``qemu-an386`` on a 10 uF capacitor with a handful of
trials, look at the operator table, run it again to see that it resumes from its log, and
then use the same log for ``apollo4-mram``, another Cortex-M4 profile: its records are
re-ranked by the cost model for that board and re-checked against its limits, without a
single new measurement, and the tuned firmware runs there under power failures with the
reference outputs.

Run it from a clone of the repository after ``./scripts/setup.sh``::

    .venv/bin/python tutorials/tune_for_two_boards.py

It takes a minute or two. Files go to a temporary directory (or to
``TVM_INTERMITTENT_TUTORIAL_DIR``).
"""

######################################################################
# Setup
# -----
# Every step is a command line, run in-process (``cli.core.main`` is what the
# ``tvm-intermittent`` script calls); ``--json`` gives the same result as data.

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from tvm_intermittent import sim, zoo
from tvm_intermittent.cli.core import main
from tvm_intermittent.cli.environment import Environment

for available, reason in (sim.toolchain_available(), sim.qemu_available()):
    if not available:
        raise SystemExit(f"this tutorial measures firmware on QEMU: {reason}")

if os.environ.get("TVM_INTERMITTENT_TUTORIAL_DIR"):
    workdir = Path(os.environ["TVM_INTERMITTENT_TUTORIAL_DIR"]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cleanup = False
else:
    workdir = Path(tempfile.mkdtemp(prefix="intm-tune-"))
    cleanup = True


def tvm_intermittent(*argv):
    """Run one command with ``--json``; print its messages, return its result."""
    out, err = io.StringIO(), io.StringIO()
    status = main([*argv, "--json"], Environment(stdout=out, stderr=err, show_progress=False))
    print(f"$ tvm-intermittent {' '.join(argv)}\n{err.getvalue()}", end="")
    if status != 0:
        raise SystemExit(f"exit status {status}")
    return json.loads(out.getvalue())


model = str(zoo.get("micro_speech").path)
log = workdir / "micro_speech.tuning"
shutil.rmtree(log, ignore_errors=True)

######################################################################
# Tune for qemu-an386 on 10 uF
# ----------------------------
# Each trial builds the whole model with one operator cut by a candidate (tile depth, a
# split of the loop at the tile boundary, tiles per commit) and the others by the analytic
# rule, and runs it on QEMU twice: without failures (exact instructions per task) and under
# the capacitor's schedule (the latency: active time plus recharge time). Candidates that
# would not fit one charge, or would not be idempotent, are refused before they are built.

result = tvm_intermittent("tune", model, "--board", "qemu-an386", "--capacitor", "10uF",
                          "--trials", "4", "--workers", "2", "--log", str(log))
for row in result["rows"]:
    print(f"  {row['kernel']:<28} default {row['default']} -> tuned {row['tuned']}: measured "
          f"{row['measured_default_s']:.4g} s -> "
          f"{'-' if row['measured_tuned_s'] is None else format(row['measured_tuned_s'], '.4g')} s")
print(f"end to end: {result['default']['run_secs'][0]:.4g} s by the analytic rule, "
      f"{(result['tuned'] or result['default'])['run_secs'][0]:.4g} s tuned")

######################################################################
# Resume
# ------
# The log is MetaSchedule's JSON database plus the measurements beside it. Asking for the
# same number of trials again measures nothing: every candidate is known.

again = tvm_intermittent("tune", model, "--board", "qemu-an386", "--capacitor", "10uF",
                         "--trials", "4", "--log", str(log))
assert again["measured"] == 0, again["measured"]
print(f"second run: {again['measured']} new measurements, {again['trials']} in the log")

######################################################################
# Reuse the log on apollo4-mram
# -----------------------------
# Another Cortex-M4 profile: the same instructions, but other clock, energy per instruction
# and MRAM costs, so another budget per charge; we give it a 2 uF capacitor, on which the
# inference spans several charges. ``compile --tuning-log`` re-ranks each operator's
# records by the predicted latency on this board and skips, with a notice, any that no
# longer fits one charge here. ``model.json`` records what it applied.

project = workdir / "micro_speech-apollo4"
compiled = tvm_intermittent("compile", model, "--board", "apollo4-mram", "--capacitor", "2uF",
                            "--tuning-log", str(log), "-o", str(project), "--force")
tuning = compiled["tuning"]
for kernel, choice in tuning["tuned"].items():
    print(f"  {kernel}: {choice['knobs']} ({choice['ranked_by']}, measured on "
          f"{', '.join(choice['measured_on'])})")
for kernel, why in tuning["untuned"].items():
    print(f"  {kernel}: analytic rule ({why})")
assert all(c["ranked_by"] == "predicted" for c in tuning["tuned"].values())

######################################################################
# Run it under power failures
# ---------------------------
# apollo4-mram's harvester keeps up with its active power, so its own capacitor schedule
# never browns out; we cut its power at random instead (seeded budgets between half and all
# of one 2 uF charge) on QEMU, and check the outputs against TensorFlow Lite Micro's for the
# original model.

run = tvm_intermittent("run", str(project), "--power", "random", "--seed", "1", "--check")
ok = run["finished"] and run["outputs_match"] and run["check"]["match"]
print(f"{run['boots']} boots, {run['failures']} power failures")
if ok and run["failures"] > 0:
    print("verdict: the log tuned on qemu-an386 runs on apollo4-mram with the reference "
          "outputs, nothing measured there")
else:
    print(f"verdict: check failed: {json.dumps(run)[:400]}")

######################################################################
# Summary
# -------
# A few trials found tilings faster than the analytic rule's under the capacitor's power
# failures; the log is reused for another board of the same ISA without measuring, and every
# record is checked against that board's charge, SRAM and the idempotence of its tiles
# before it is applied. ``docs/tuning.md`` describes the knobs, the constraints and the log.

if cleanup:
    shutil.rmtree(workdir, ignore_errors=True)

"""
.. _tutorial-predict-before-running:

Predict before running: will keyword spotting finish on this harvester?
=======================================================================

A batteryless device's designer asks one question before anything else: will this model,
on this part, powered by this harvester, finish, and how long will an inference take? The
published intermittent systems (iNAS, TiNAS) answer it with an analytic model of power
cycles per layer, recharge time and end-to-end latency. ``tvm-intermittent analyze`` answers
it for a compiled project in a fraction of a second, without running anything: it simulates
the firmware's progress from commit to commit under the environment's charges, with the cost
model's per-tile work.

We compile the keyword-spotting model for the TiNAS setup (a 5 mF capacitor), ask how it
does in the iNAS setup (1 mF at a lower voltage) against a deadline, read the verdict and
the fixes it proposes, apply one, and finally check the prediction against QEMU with
``--measure``.

Run it from a clone of the repository after ``./scripts/setup.sh``::

    .venv/bin/python tutorials/predict_before_running.py

It takes about a minute. Files go to a temporary directory (or to
``TVM_INTERMITTENT_TUTORIAL_DIR``).
"""

######################################################################
# Setup
# -----
# Every step is a command line, run in-process here (``cli.core.main`` is what the
# ``tvm-intermittent`` script calls); ``--json`` gives the same result as data, which the
# tutorial reads to decide what to do next.

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
        raise SystemExit(f"the last step of this tutorial runs firmware on QEMU: {reason}")

if os.environ.get("TVM_INTERMITTENT_TUTORIAL_DIR"):
    workdir = Path(os.environ["TVM_INTERMITTENT_TUTORIAL_DIR"]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cleanup = False
else:
    workdir = Path(tempfile.mkdtemp(prefix="intm-predict-"))
    cleanup = True


def tvm_intermittent(*argv, show=True):
    """Run one command; print its text output, return its ``--json`` result."""
    text, data = io.StringIO(), io.StringIO()
    status = main([*argv, "--quiet"], Environment(stdout=text, stderr=text))
    if show:
        print(f"$ tvm-intermittent {' '.join(argv)}\n{text.getvalue()}")
    if status != 0:
        raise SystemExit(f"exit status {status}")
    main([*argv, "--quiet", "--json"], Environment(stdout=data, stderr=io.StringIO()))
    return json.loads(data.getvalue())


model = zoo.get("kws").path
board = "msp430fr5994"

######################################################################
# Compile for the TiNAS setup
# ---------------------------
# The TiNAS preset is a 5 mF capacitor charged through 2,800 ohm from 5.892 V, on between
# 4.535 V and 3.29 V: one charge pays for tens of millions of instructions on this board, so
# the tiler makes large tiles and few commits.

tvm_intermittent("compile", str(model), "--board", board, "-o", str(workdir / "kws-tinas"),
                 "--power-env", "tinas-5mF", "--force")
tinas = tvm_intermittent("analyze", str(workdir / "kws-tinas"), "--power-env", "tinas-5mF")
print(f"under tinas-5mF: schedulable={tinas['prediction']['schedulable']}, "
      f"{tinas['prediction']['boots']} boot(s), {tinas['prediction']['latency_seconds']:.3g} s")

######################################################################
# The same firmware on the iNAS setup, with a deadline
# ----------------------------------------------------
# The iNAS preset with 1 mF, on between 2.99 V and 2.8 V, holds a small fraction of a TiNAS
# charge. The table shows each operator's ``need`` (its largest commit batch with the boot
# and restore before it) against one charge, so we see at once that every batch still fits;
# but the inference now spans several charges, and each recharge takes time. Say the
# application needs an answer in half the time predicted here: the verdict is then no, and
# the fixes say what would meet the deadline.

inas = tvm_intermittent("analyze", str(workdir / "kws-tinas"), "--power-env", "inas-1mF",
                        show=False)
deadline = round(inas["prediction"]["latency_seconds"] / 2, 3)
inas = tvm_intermittent("analyze", str(workdir / "kws-tinas"), "--power-env", "inas-1mF",
                        "--deadline", str(deadline))
prediction = inas["prediction"]
print(f"under inas-1mF: schedulable={prediction['schedulable']}, "
      f"{prediction['latency_seconds']:.3g} s, deadline of {deadline} s met: "
      f"{prediction['meets_deadline']}")
for fix in inas["fixes"]:
    print(f"  fix ({fix['kind']}): {fix['text']}")

######################################################################
# Fix it: another board
# ---------------------
# Among the fixes, a larger capacitor (the smallest that meets the deadline) and the other
# shipped boards on which the model fits and meets it under the same environment. We take
# the fastest board and compile for it, with the tiles sized for one iNAS charge.

boards = sorted((f for f in inas["fixes"] if f["kind"] == "board"),
                key=lambda f: f["latency_s"])
assert not prediction["meets_deadline"] and boards, inas["fixes"]
board = boards[0]["board"]
tvm_intermittent("compile", str(model), "--board", board, "-o", str(workdir / "kws-inas"),
                 "--power-env", "inas-1mF", "--force")
fixed = tvm_intermittent("analyze", str(workdir / "kws-inas"), "--power-env", "inas-1mF",
                         "--deadline", str(deadline))
assert fixed["prediction"]["meets_deadline"], fixed["prediction"]

######################################################################
# Check the predictions on QEMU
# -----------------------------
# ``--measure`` runs the firmware on the emulated Cortex-M4 under the same environment's
# schedule (a power failure whenever a charge is spent, counted exactly) and prints the
# prediction beside the measurement: here the MSP430FR5994-class project, which spans
# several iNAS charges, and the board we moved to.

errors, all_ok = [], True
for project in ("kws-tinas", "kws-inas"):
    checked = tvm_intermittent("analyze", str(workdir / project), "--power-env", "inas-1mF",
                               "--measure")
    measured = checked["measured"]
    all_ok &= measured["finished"] and measured["outputs_match"]
    errors += [abs(measured[k]["error"]) for k in ("boots", "latency_s")]
if all_ok and max(errors) <= 0.05:
    print("verdict: the prediction is within 5% of QEMU under inas-1mF")
else:
    print(f"verdict: the prediction is off by {100 * max(errors):.1f}% (finished and "
          f"matching: {all_ok})")

######################################################################
# Summary
# -------
# ``analyze`` predicted, without running anything, how many charges an inference takes
# under each environment and how long it waits for them, said that the deadline is missed
# on the iNAS setup, and proposed a larger capacitor and the boards that meet it. On the
# board we chose it meets the deadline, and QEMU confirmed the predicted boots and latency.
# When a batch does not fit one charge, the verdict names the operator and by how much, and
# the fixes add the largest batch that fits or a deeper tiling; ``compile --deadline S``
# picks the tiling with the lowest predicted latency.

if cleanup:
    shutil.rmtree(workdir, ignore_errors=True)

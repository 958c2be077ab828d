"""
.. _tutorial-run-under-power-failures:

Run keyword spotting on a batteryless microcontroller
=====================================================

A batteryless sensor computes on the energy of a small capacitor: it runs until the
capacitor drains, loses power and every bit of SRAM, waits for its harvester to recharge the
capacitor, and boots again. An inference that needs more energy than one charge never
finishes on a runtime that starts over after every failure. This tutorial compiles the
keyword-spotting model so that it does finish: every operator is cut into checkpointable
tiles, activations live in non-volatile memory (FRAM on the MSP430FR5994-class board used
here), and a tear-safe commit records progress after each batch of tiles.

We run it on the emulated Cortex-M4 under the board's capacitor model, compare the outputs
with an uninterrupted run, see what the power failures cost (the intermittency management
overhead, IMO), plot the power cycles, and check the two baselines: starting over after
every failure, and committing only at operator boundaries.

Run it from a clone of the repository after ``./scripts/setup.sh``::

    .venv/bin/python tutorials/run_under_power_failures.py

It takes about half a minute. Files go to a temporary directory (or to
``TVM_INTERMITTENT_TUTORIAL_DIR``); the plot is ``power_cycles.png`` there. The text after
each step shows what it printed when we ran it.
"""

######################################################################
# The board and its power cycle
# -----------------------------
# A board profile says how much energy one charge holds and what an instruction costs:
# ``E = C (Von^2 - Voff^2) / 2`` over the energy per instruction is the *power cycle
# budget*, the instructions one charge pays for.

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.sim.campaign import exhaustive_campaign, random_campaign, task_windows
from tvm_intermittent.sim.timeline import plot_power_cycles, power_timeline

for available, reason in (sim.toolchain_available(), sim.qemu_available()):
    if not available:
        raise SystemExit(f"this tutorial runs firmware on QEMU: {reason}")

if os.environ.get("TVM_INTERMITTENT_TUTORIAL_DIR"):
    workdir = Path(os.environ["TVM_INTERMITTENT_TUTORIAL_DIR"]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cleanup = False
else:
    workdir = Path(tempfile.mkdtemp(prefix="intm-power-"))
    cleanup = True

board = ti.load_board("msp430fr5994")
print(f"{board.name}: {board.sram_bytes // 1024} KiB SRAM, {board.nvm_bytes // 1024} KiB "
      f"{board.nvm_kind}, {board.clock_hz / 1e6:g} MHz")
print(f"one charge of {board.capacitor_f * 1e6:g} uF between {board.v_on} V and {board.v_off} V: "
      f"{board.charge_energy_j() * 1e6:.0f} uJ = {board.power_cycle_budget():,} instructions")

# msp430fr5994: 8 KiB SRAM, 256 KiB FRAM, 16 MHz
# one charge of 100 uF between 3.0 V and 1.8 V: 288 uJ = 814,134 instructions

######################################################################
# Compile with tiles sized for that budget
# ----------------------------------------
# ``ti.build`` cuts every operator into tiles: one tile is one iteration of the operator's
# outer loops, reads only committed tensors and writes only its own outputs, so it can run
# again after a failure. It groups tiles into commit batches sized for the budget. The
# manifest lists the plan.

entry = zoo.get("kws")
artifact = ti.build(entry.path, "intermittent/msp430fr5994")
project = artifact.export(workdir / "kws", overwrite=True)
manifest = artifact.manifest()
print(f"{len(manifest['tasks'])} operators, arena of {manifest['arena_bytes']:,} bytes in NVM")
for task in manifest["tasks"][:4]:
    print(f"  {task['kernel']:<48} {task['tiles']:>4} tiles, {task['tiles_per_commit']:>3} per "
          "commit")
print("  ...")

# 13 operators, arena of 16,000 bytes in NVM
#   ...                                                tiles, per commit for each operator
#   ...

######################################################################
# An inference on a batteryless device
# ------------------------------------
# ``sim.measure_intermittent`` runs the firmware three times on QEMU: under the capacitor
# model (a power failure each time a charge is spent, counted exactly in instructions plus
# the energy of NVM loads and stores), continuously, and as the uninstrumented build (no
# checkpoints) continuously. IMO is the share of the instructions under failures that the
# uninstrumented build does not need; the report gives it in energy too, NVM traffic
# charged, against the uninstrumented build with its arena in SRAM where it fits.

features = zoo.sample_inputs("kws", count=1)[0][0]
schedule = sim.power.Capacitor(board)
print(f"each boot: {schedule.budget:,} instruction-equivalents, the charge and what the 1 mW "
      "harvester adds while the MCU computes (docs/power.md)")
report = sim.measure_intermittent(project, [features], schedule, board=board)
print(report.render())
label = entry.labels[int(np.argmax(report.outputs[0]))]
print(f"top-1: {label!r}")

# each boot: 988,841 instruction-equivalents, the charge and what the 1 mW harvester adds ...
# tiles firmware on msp430fr5994 under capacitor (budget=988841, ...)
#   finished           yes, ... boots, ... power failures
#   outputs            match the reference
#   instructions       ... under failures
#   IMO                ... %
#   latency            ... s = ... s active + ... s recharging
# top-1: 'yes'

######################################################################
# The power cycles
# ----------------
# The plot shows the usable energy in the capacitor (draining while the MCU runs, refilling
# from the 1 mW harvester), each boot, and the committed progress.

plot = workdir / "power_cycles.png"
plot_power_cycles(power_timeline(report.failure_run, schedule, board), plot,
                  f"keyword spotting on {board.name}, 100 uF, 1 mW")
print(f"plot: {plot.name}, {len(report.failure_run.commits)} commits over "
      f"{report.boots} boots")

# plot: power_cycles.png, ... commits over 37 boots

######################################################################
# The baselines
# -------------
# Built from the same sources with ``make qemu MODE=restart`` (no checkpoints: every boot
# starts over) and ``MODE=layer`` (a commit only after a whole operator), they show what
# tiles buy: neither finishes, because the whole inference, and its largest operator, each
# need more than one charge. The firmware notices that it boots again and again without
# progress and stops with a clear status.

for mode in ("restart", "layer"):
    outcome = sim.run(project, [features], power=schedule, mode=mode)
    print(f"{mode:>7}: finished={outcome.finished} ({outcome.stop_reason}) after "
          f"{outcome.boots} boots")

# restart: finished=False (no_progress) after 17 boots
#   layer: finished=False (no_progress) after ... boots

######################################################################
# Checking the promise
# --------------------
# Whatever the failures, the outputs must equal the uninterrupted run's. Two campaigns
# check it: seeded random power cycles, and one run per instruction across the end of a
# tile batch and its commit (each run with a single failure there).

reference = sim.run(project, [features]).outputs
budget = artifact.power_cycle_budget
randomized = random_campaign(project, [features], reference, min_instructions=budget // 2,
                             max_instructions=budget, min_failures=100)
print(f"random: {randomized.failures} failures in {randomized.runs} runs, "
      f"{'all identical' if randomized.ok else 'MISMATCH'}")
tasks = [(t["kernel"], t["commits"]) for t in manifest["tasks"]]
window = task_windows(project, [features], tasks)[0]
sweep = exhaustive_campaign(project, [features], reference, [window], max_points=30,
                            max_redo=budget)
print(f"exhaustive: {sweep.runs} runs, one failure each in {sweep.details['windows'][0][1:]}, "
      f"{'all identical' if sweep.ok else 'MISMATCH'}")
verdict = report.finished and report.outputs_match and randomized.ok and sweep.ok
print("verdict: outputs under power failures equal the uninterrupted run" if verdict
      else "verdict: MISMATCH")

# random: ... failures in ... runs, all identical
# exhaustive: 30 runs, one failure each in (..., ...), all identical
# verdict: outputs under power failures equal the uninterrupted run

######################################################################
# The same from a shell
# ---------------------
# .. code-block:: sh
#
#     tvm-intermittent compile kws.tflite --board msp430fr5994 -o kws/
#     tvm-intermittent run kws/ --input x.npy --power capacitor --plot cycles.png --check
#     tvm-intermittent run kws/ --input x.npy --power random --seed 3
#     tvm-intermittent run kws/ --input x.npy --power exhaustive --window 1000:1200
#     tvm-intermittent run kws/ --input x.npy --power capacitor --mode restart   # exit 3

######################################################################
# Summary
# -------
# The compiler cut keyword spotting into tiles that fit one charge of a 100 uF capacitor,
# kept its activations in FRAM, and committed progress tear-safely; the firmware finished
# across dozens of power failures with the outputs of an uninterrupted run, at the IMO
# printed above, while restarting from scratch or checkpointing whole layers never finishes.

if cleanup:
    shutil.rmtree(workdir, ignore_errors=True)

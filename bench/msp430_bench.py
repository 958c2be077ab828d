"""The same generated C on a 16-bit MSP430 and on the Cortex-M4, and IMO under iNAS power.

Run:  .venv/bin/python bench/msp430_bench.py [--json out.json]

For each model (the iNAS-sized CNN of tests/msp430_models.py and three int8 operator models
of tests/tflite_models.py), one compile for ``msp430-sim`` (tiles sized for the board's own
capacitor, a smaller charge than any iNAS preset's) and one exported project,
built twice from the same sources: ``make msp430`` (clang --target=msp430 -O2, hardware
multiplier) run on mspdebug's simulator, and ``make qemu`` (arm-none-eabi-gcc -O2, the
portable kernels, as the profile has no DSP extension) run on QEMU.

Table 1, per inference: instructions of ``intm_model_run()`` on each ISA and their ratio,
MSP430 cycles by mspdebug's timing table (which over-counts some constant-generator
operands), per inference and per MAC, and the outputs' agreement with TFLite Micro on both.

Table 2, IMO under power environments: the MSP430 firmware on ``msp430-sim`` and the same
C on the Cortex-M4 on the ``msp430fr5994`` profile, each under
``environment.schedule(board)`` of the board's own capacitor (``board``), the iNAS presets
``inas-1mF``, ``inas-5mF``, ``inas-10mF``, and ``inas-100uF``: the iNAS supply (3.0 V
through 1 kohm, on 2.99 V, off 2.8 V) into 100 uF, defined here, under which the Cortex-M4
needs several boots. Accounted by ``sim.IntermittentReport.from_runs`` as
``sim.measure_intermittent`` does (the IMO baseline is the uninstrumented ``restart``
firmware run continuously, on the same ISA), with the reference the outputs of the
uninterrupted run of the same firmware. QEMU charges every NVM load and store against each
charge (``energy.model``); mspdebug counts none, so the MSP430's charges are spent by
instructions only (see docs/msp430.md, "NVM traffic"). Where a run never finishes, the
compiler is asked for tiles sized for that environment, and its refusal is printed.

Last, the price of the one exact way to count the MSP430's NVM accesses with mspdebug 0.22:
single-stepping (``step``, one instruction per command, registers printed) against ``run``,
in instructions per second on the tiny CNN.

The two constants of the ``msp430-sim`` profile come from here: ``cycles_per_instruction``
is total MSP430 cycles / total instructions over these models, ``instruction_scale`` the
largest MSP430 / Cortex-M4 instruction ratio, rounded up to a tenth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from macs import count_macs  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import reference, sim  # noqa: E402
from tvm_intermittent.errors import DoesNotFitError  # noqa: E402
from tvm_intermittent.sim import environments  # noqa: E402
from tvm_intermittent.sim import mspdebug  # noqa: E402

import msp430_models  # noqa: E402
import tflite_models as tm  # noqa: E402

BOARD = "msp430-sim"
#: The Cortex-M4 profile the same C is measured on: MSP430FR5994 sizes and energy.
M4_BOARD = "msp430fr5994"
MODELS = {
    "tiny_cnn": msp430_models.tiny_cnn,
    "conv2d": lambda: tm.conv2d(),
    "depthwise": lambda: tm.conv2d(depthwise=True),
    "fully_connected": lambda: tm.fully_connected(),
}
#: The iNAS supply into a tenth of its smallest capacitor: on the Cortex-M4 profile the
#: tiny CNN needs several charges here, where every iNAS preset holds it in one.
INAS_100UF = dataclasses.replace(
    environments.get("inas-1mF"), name="inas-100uF",
    description="the iNAS supply (3.0 V through 1 kohm, on 2.99 V, off 2.8 V) into 100 uF",
    capacitor_f=100e-6)
ENVIRONMENTS = ("board", "inas-1mF", "inas-5mF", "inas-10mF", INAS_100UF)
#: The boot limit of a failure run: a firmware whose tiles do not fit the charge stops far
#: earlier, by its own no-progress check.
MAX_BOOTS = 2000
#: Instructions the stepping measurement single-steps.
STEPS = 2000


def _environment(env) -> environments.PowerEnvironment:
    return env if isinstance(env, environments.PowerEnvironment) else environments.get(env)


def refusal(path: Path, env) -> str | None:
    """Why the compiler refuses tiles sized for ``env`` on the MSP430, or None if it makes
    them: where a run never finishes, whether any tiling would."""
    try:
        ti.build(path, f"intermittent/{BOARD}", power_env=env)
    except DoesNotFitError as err:
        return "; ".join(line.strip() for line in str(err).splitlines()[1:] if line.strip())
    return None


def imo_rows(name: str, path: Path, project: Path, inputs, continuous_runs: dict) -> list[dict]:
    """The model under every environment on both ISAs (table 2); ``continuous_runs`` holds
    the uninterrupted run of the firmware per run kind."""
    manifest = json.loads((project / "model.json").read_text())
    rows = []
    for kind, board in (("msp430", BOARD), ("qemu", M4_BOARD)):
        continuous = continuous_runs[kind]
        uninstrumented = sim.run(project, inputs, kind=kind, mode="restart")
        for env in map(_environment, ENVIRONMENTS):
            schedule = env.schedule(board)
            failed = sim.run(project, inputs, kind=kind, power=schedule, max_boots=MAX_BOOTS)
            report = sim.IntermittentReport.from_runs(
                failed, continuous, uninstrumented, board=board, schedule=schedule,
                reference=continuous.outputs, manifest=manifest)
            rows.append({
                "model": name, "environment": env.name, "isa": kind, "board": board,
                "boot_budget": schedule.budget, "finished": report.finished,
                "stop_reason": report.stop_reason, "boots": report.boots,
                "failures": report.failures,
                "instructions": report.instructions_total,
                "uninstrumented": report.instructions_uninstrumented,
                "reexecuted": report.instructions_reexecuted,
                "imo": report.imo if report.finished else None,
                "imo_energy": report.imo_energy if report.finished else None,
                "nvm_counted": report.nvm_counted, "baseline_arena": report.baseline_arena,
                "active_s": report.active_seconds, "recharge_s": report.recharge_seconds,
                "latency_s": report.latency_seconds if report.finished else None,
                "outputs_match": report.outputs_match,
                "refused": None if report.finished or kind != "msp430" else refusal(path, env),
            })
    return rows


def bench_model(name: str, tmp: Path) -> tuple[dict, list[dict], Path, list]:
    model, inputs = MODELS[name]()
    path = tmp / f"{name}.tflite"
    path.write_bytes(model)
    project = ti.build(path, f"intermittent/{BOARD}", name=name).export(tmp / name)
    want = reference.run_tflite_micro(path, inputs)
    msp = sim.run(project, inputs, kind="msp430")
    arm = sim.run(project, inputs, kind="qemu")
    same = lambda run: all((g == w).all() for g, w in zip(run.outputs, want))  # noqa: E731
    macs = count_macs(path)
    row = {
        "model": name,
        "macs": macs,
        "msp430_instructions": msp.instructions_model,
        "msp430_cycles": msp.cycles_model,
        "m4_instructions": arm.instructions_model,
        "ratio": msp.instructions_model / arm.instructions_model,
        "msp430_instructions_per_mac": msp.instructions_model / macs,
        "msp430_cycles_per_mac": msp.cycles_model / macs,
        "m4_instructions_per_mac": arm.instructions_model / macs,
        "msp430_equals_tflm": same(msp),
        "m4_equals_tflm": same(arm),
    }
    more = imo_rows(name, path, project, inputs, {"msp430": msp, "qemu": arm})
    return row, more, project, inputs


def stepping_rates(project: Path, inputs, steps: int = STEPS) -> dict:
    """Instructions per second of mspdebug's ``run`` and of ``step`` one at a time.

    Counting NVM accesses exactly on mspdebug 0.22 means decoding every executed
    instruction with the registers it ran with: the simulator reports accesses only below
    0x200 (its peripherals) and watches single addresses by halting, so the only source is a
    register dump per instruction, i.e. one ``step`` command each. This measures that
    against a free run of the same firmware, in the same process.
    """
    # pylint: disable=protected-access
    firmware = mspdebug._firmware(project, None, ())
    meta = sim.load_model_json(project)
    with tempfile.TemporaryDirectory(prefix="msp430-step-") as tmp:
        path = Path(tmp) / "input.bin"
        path.write_bytes(sim.encode_inputs(meta, inputs))
        session = mspdebug._Session(time.monotonic() + 600, "stepping")
        try:
            session("simio add hwmult mpy")
            session("simio add tracer tr")
            mspdebug._power_on(session, firmware, path)
            mspdebug._boot(session, mspdebug._sram_bytes(project))
            base = session.counts()[0]
            started = time.perf_counter()
            for _ in range(steps):
                session("step")
            stepped = time.perf_counter() - started
            if session.counts()[0] - base != steps:
                raise RuntimeError("mspdebug did not step one instruction per command")
            started = time.perf_counter()
            session("run")
            ran = time.perf_counter() - started
            total = session.counts()[0] - base - steps
        finally:
            session.close()
    return {"step_per_s": steps / stepped, "run_per_s": total / ran,
            "run_instructions": total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset of " + ", ".join(MODELS))
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}",
              file=sys.stderr)
        return 2
    for available, reason in (sim.mspdebug_available(), sim.toolchain_available(),
                              sim.qemu_available()):
        if not available:
            print(f"cannot run: {reason}", file=sys.stderr)
            return 2
    rows, imo, stepping = [], [], None
    with tempfile.TemporaryDirectory(prefix="msp430-bench-") as tmp:
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            row, more, project, inputs = bench_model(name, Path(tmp))
            rows.append(row)
            imo.extend(more)
            if name == "tiny_cnn":
                stepping = stepping_rates(project, inputs)
    print("| model | MACs | MSP430 instr | MSP430 cycles | M4 instr | MSP430/M4 | "
          "MSP430 instr/MAC | MSP430 cycles/MAC | M4 instr/MAC | = TFLM (MSP430, M4) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['macs']:,} | {r['msp430_instructions']:,} | "
              f"{r['msp430_cycles']:,} | {r['m4_instructions']:,} | {r['ratio']:.2f} | "
              f"{r['msp430_instructions_per_mac']:.1f} | {r['msp430_cycles_per_mac']:.1f} | "
              f"{r['m4_instructions_per_mac']:.2f} | {r['msp430_equals_tflm']}, "
              f"{r['m4_equals_tflm']} |")
    print("\n| model | environment | ISA on board | boot 1 budget | boots | IMO | "
          "IMO energy | re-executed | active s | recharge s | latency s | outputs |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in imo:
        isa = "MSP430" if r["isa"] == "msp430" else "M4"
        if r["finished"]:
            figures = (f"{r['boots']} | {100 * r['imo']:.2f} % | "
                       + (f"{100 * r['imo_energy']:.2f} %" if r["nvm_counted"] else "n/c")
                       + f" | {r['reexecuted']:,} | {r['active_s']:.3g} | "
                       f"{r['recharge_s']:.3g} | {r['latency_s']:.3g} | "
                       + ("identical" if r["outputs_match"] else "DIFFER"))
        else:
            figures = f"{r['boots']} | never finishes ({r['stop_reason']}) | | | | | | -"
        budget = f"{r['boot_budget']:,}" if r["boot_budget"] is not None else "sustained"
        print(f"| {r['model']} | {r['environment']} | {isa} on {r['board']} | {budget} | "
              f"{figures} |")
    for r in imo:
        if r["refused"]:
            print(f"\n{r['model']} under {r['environment']} on {r['board']}: tiles sized for it "
                  f"are refused: {r['refused']}")
    cpi = (sum(r["msp430_cycles"] for r in rows)
           / sum(r["msp430_instructions"] for r in rows))
    scale = math.ceil(10 * max(r["ratio"] for r in rows)) / 10
    print(f"\nmsp430-sim constants: cycles_per_instruction {cpi:.3f}, "
          f"instruction_scale {scale:.1f}")
    if stepping is not None:
        print(f"mspdebug on tiny_cnn: run {stepping['run_per_s']:,.0f} instructions/s "
              f"({stepping['run_instructions']:,} instructions), step "
              f"{stepping['step_per_s']:,.0f} instructions/s ({STEPS:,} steps): stepping is "
              f"{stepping['run_per_s'] / stepping['step_per_s']:,.0f} times slower")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"rows": rows, "imo": imo, "stepping": stepping, "cycles_per_instruction": cpi,
             "instruction_scale": scale}, indent=2) + "\n")
    ok = all(r["msp430_equals_tflm"] and r["m4_equals_tflm"] for r in rows)
    ok = ok and all(r["outputs_match"] for r in imo if r["finished"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The same generated C on a 16-bit MSP430 and on the Cortex-M4, and IMO on the MSP430.

Run:  .venv/bin/python bench/msp430_bench.py [--json out.json]

For each model (the iNAS-sized CNN of tests/msp430_models.py and three int8 operator models
of tests/tflite_models.py), one compile for ``msp430-sim`` and one exported project, built
twice from the same sources: ``make msp430`` (clang --target=msp430 -O2, hardware
multiplier) run on mspdebug's simulator, and ``make qemu`` (arm-none-eabi-gcc -O2, the
portable kernels, as the profile has no DSP extension) run on QEMU. Reported: instructions
of ``intm_model_run()`` on each ISA and their ratio, MSP430 cycles by mspdebug's timing table
(which over-counts some constant-generator operands), per inference and per MAC, and the
outputs' agreement with TFLite Micro on both. Then the MSP430 firmware under the board's own
capacitor (100 uF, 3.0 V on, 1.8 V off) with ``sim.measure_intermittent``: failures and IMO
against the uninstrumented (``restart``) build.

The two constants of the ``msp430-sim`` profile come from here: ``cycles_per_instruction``
is total MSP430 cycles / total instructions over these models, ``instruction_scale`` the
largest MSP430 / Cortex-M4 instruction ratio, rounded up to a tenth.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from macs import count_macs  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import reference, sim  # noqa: E402

import msp430_models  # noqa: E402
import tflite_models as tm  # noqa: E402

BOARD = "msp430-sim"
MODELS = {
    "tiny_cnn": msp430_models.tiny_cnn,
    "conv2d": lambda: tm.conv2d(),
    "depthwise": lambda: tm.conv2d(depthwise=True),
    "fully_connected": lambda: tm.fully_connected(),
}


def bench_model(name: str, tmp: Path) -> dict:
    model, inputs = MODELS[name]()
    path = tmp / f"{name}.tflite"
    path.write_bytes(model)
    project = ti.build(path, f"intermittent/{BOARD}", name=name).export(tmp / name)
    want = reference.run_tflite_micro(path, inputs)
    msp = sim.run(project, inputs, kind="msp430")
    arm = sim.run(project, inputs, kind="qemu")
    same = lambda run: all((g == w).all() for g, w in zip(run.outputs, want))  # noqa: E731
    macs = count_macs(path)
    report = sim.measure_intermittent(project, inputs, sim.Capacitor(BOARD), board=BOARD)
    return {
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
        "capacitor_failures": report.failures,
        "capacitor_imo": report.imo,
        "capacitor_outputs_match": report.outputs_match,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    for available, reason in (sim.mspdebug_available(), sim.toolchain_available(),
                              sim.qemu_available()):
        if not available:
            print(f"cannot run: {reason}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="msp430-bench-") as tmp:
        rows = [bench_model(name, Path(tmp)) for name in MODELS]
    print("| model | MACs | MSP430 instr | MSP430 cycles | M4 instr | MSP430/M4 | "
          "MSP430 instr/MAC | MSP430 cycles/MAC | M4 instr/MAC | = TFLM (MSP430, M4) | "
          "failures (100 uF) | IMO |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['macs']:,} | {r['msp430_instructions']:,} | "
              f"{r['msp430_cycles']:,} | {r['m4_instructions']:,} | {r['ratio']:.2f} | "
              f"{r['msp430_instructions_per_mac']:.1f} | {r['msp430_cycles_per_mac']:.1f} | "
              f"{r['m4_instructions_per_mac']:.2f} | {r['msp430_equals_tflm']}, "
              f"{r['m4_equals_tflm']} | {r['capacitor_failures']} | "
              f"{100 * r['capacitor_imo']:.2f} % |")
    cpi = (sum(r["msp430_cycles"] for r in rows)
           / sum(r["msp430_instructions"] for r in rows))
    scale = math.ceil(10 * max(r["ratio"] for r in rows)) / 10
    print(f"\nmsp430-sim constants: cycles_per_instruction {cpi:.3f}, "
          f"instruction_scale {scale:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "cycles_per_instruction": cpi,
                                               "instruction_scale": scale}, indent=2) + "\n")
    ok = all(r["msp430_equals_tflm"] and r["m4_equals_tflm"] and r["capacitor_outputs_match"]
             for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

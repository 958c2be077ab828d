"""Integer-only int8 kernels against the float lowering of the same models, per zoo model.

Run:  .venv/bin/python bench/int8_bench.py [--models kws,resnet8,...] [--json out.json]

For each zoo model, two builds for qemu-an386 from the same imported module: the default
(``QuantizedToInteger`` rewrites every quantized pattern into integer kernels) and the
float lowering TVM's importers produce (the function attribute
``intermittent.float_lowering`` makes the pass leave it alone). Each runs the first
realistic sample input on QEMU. Reported per build: instructions of ``intm_model_run``,
flash (text + data: code, weights, tables), SRAM (data + bss + the deepest stack, as in
``zoo_bench.py``), NVM (the ``.intm_nvm`` section: activations and progress record), the
weights' bytes, and the largest difference from TFLite Micro in int8 steps (LSB). The
int8 build also reports which kernels need floating point on a Cortex-M0 (only the float
boundary of kws, vww and ad should). The anchor: CMSIS-NN runs keyword spotting on this
board in 7,697,328 instructions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from macs import count_macs  # noqa: E402
from soft_float import float_calls  # noqa: E402
from zoo_bench import CMSIS_NN_KWS, peak_stack  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import reference, sim, zoo  # noqa: E402
from tvm_intermittent.check import compare_outputs  # noqa: E402
from tvm_intermittent.frontend import load_model  # noqa: E402
from tvm_intermittent.transform import FLOAT_LOWERING_ATTR  # noqa: E402


def bench_build(name: str, float_lowering: bool) -> dict:
    entry = zoo.get(name)
    imported = load_model(entry.path)  # a fresh module: marking it changes no other build
    if float_lowering:
        imported.mod["main"] = imported.mod["main"].with_attr(FLOAT_LOWERING_ATTR, True)
    artifact = ti.build(imported, "intermittent/qemu-an386", name=name)
    array, _ = zoo.sample_inputs(name, count=1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = artifact.export(Path(tmp) / name)
        elf = sim.build_project(project, kind="qemu")
        sizes = sim.section_sizes(elf)
        stack = peak_stack(sim.stack_usage(project / "build" / "qemu"))
        result = sim.run(project, [array], timeout=1800)
        floats = sorted(float_calls(project)) if not float_lowering else None
    check = compare_outputs(result.outputs, reference.run_tflite_micro(entry.path, [array]),
                            max_lsb=0, lsb_scales=reference.output_lsb_scales(entry.path))
    return {
        "instructions": result.instructions_model,
        "flash": sizes["text"] + sizes["data"],
        "sram": sizes["data"] + sizes["bss"] + stack,
        "nvm": sizes["nvm"],
        "weights": artifact.sources.weight_bytes,
        "max_lsb": check.outputs[0].max_lsb,
        "float_kernels": floats,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws,resnet8,vww,micro_speech,ad")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        rows.append({"model": name, "macs": count_macs(zoo.get(name).path),
                     "int8": bench_build(name, False), "float": bench_build(name, True)})
    print("| model | MACs | build | instructions | MACs/instr | flash B | SRAM B | NVM B "
          "| weights B | vs TFLM |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        for build in ("int8", "float"):
            r = row[build]
            print(f"| {row['model']} | {row['macs']:,} | {build} | {r['instructions']:,} | "
                  f"{row['macs'] / r['instructions']:.3f} | {r['flash']:,} | {r['sram']:,} | "
                  f"{r['nvm']:,} | {r['weights']:,} | {r['max_lsb']} LSB |")
    print()
    for row in rows:
        int8, flt = row["int8"], row["float"]
        print(f"{row['model']}: int8 takes {int8['instructions'] / flt['instructions']:.2f}x the "
              f"instructions, {int8['flash'] / flt['flash']:.2f}x the flash and "
              f"{int8['nvm'] / max(flt['nvm'], 1):.2f}x the NVM of the float lowering; "
              f"float kernels on a Cortex-M0: {int8['float_kernels'] or 'none'}")
    kws = next((r for r in rows if r["model"] == "kws"), None)
    if kws:
        print(f"\nkeyword spotting (int8): {kws['int8']['instructions'] / CMSIS_NN_KWS:.2f}x the "
              f"instructions of CMSIS-NN ({CMSIS_NN_KWS:,}, 0.345 MACs/instruction)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

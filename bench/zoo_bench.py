"""Per zoo model: instructions per inference on QEMU, flash and SRAM, compile time.

Run:  .venv/bin/python bench/zoo_bench.py [--models kws,resnet8,...] [--json out.json]
      .venv/bin/python bench/zoo_bench.py --sizes-only   (compile and link, no QEMU run)

For each model: compile for qemu-an386, build the firmware, run one realistic input on QEMU
(exact instruction counts), and check it against TFLite Micro. Memory: text/data/bss from
``arm-none-eabi-size``, NVM = the activation arena and progress record (section
``.intm_nvm``); peak SRAM = data + bss + the deepest stack (main, intm_model_run and
the largest kernel frame, from ``-fstack-usage``; newlib's libm frames are not included).
The comparison: TFLite Micro with CMSIS-NN on this board (``bench/tflm_cmsis_nn.json``),
per model and as a geometric mean of the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from macs import count_macs  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import reference, sim, zoo  # noqa: E402
from tvm_intermittent.check import compare_outputs  # noqa: E402
# bench/int8_bench.py reads this name from here.
from tvm_intermittent.cli.core import CMSIS_NN_KWS_INSTRUCTIONS as CMSIS_NN_KWS  # noqa: E402,F401
from tvm_intermittent.errors import IntermittentError  # noqa: E402


def peak_stack(usage: dict[str, int]) -> int:
    kernels = [v for k, v in usage.items() if k.startswith("intm_k_")]
    return usage.get("main", 0) + usage.get("intm_model_run", 0) + max(kernels, default=0)


TFLM_CMSIS_NN = json.loads(Path(__file__).with_name("tflm_cmsis_nn.json").read_text())["models"]


def bench_model(name: str, sizes_only: bool = False) -> dict:
    entry = zoo.get(name)
    row = {"model": name, "title": entry.title, "macs": count_macs(entry.path)}
    try:
        started = time.perf_counter()
        artifact = ti.build(entry.path, "intermittent/qemu-an386", name=name)
        row["compile_seconds"] = round(time.perf_counter() - started, 2)
    except IntermittentError as err:
        row["error"] = str(err)
        return row
    array, description = zoo.sample_inputs(name, count=1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = artifact.export(Path(tmp) / name)
        elf = sim.build_project(project, kind="qemu")
        sizes = sim.section_sizes(elf)
        stack = peak_stack(sim.stack_usage(project / "build" / "qemu"))
        if sizes_only:
            row.update({"text": sizes["text"], "nvm": sizes.get("nvm", 0)})
            return row
        result = sim.run(project, [array], timeout=1800)
    check = compare_outputs(result.outputs, reference.run_tflite_micro(entry.path, [array]),
                            lsb_scales=reference.output_lsb_scales(entry.path))
    row.update({
        "input": description,
        "instructions_model": result.instructions_model,
        "instructions_total": result.instructions_total,
        "macs_per_instruction": round(row["macs"] / result.instructions_model, 4),
        "tflm_cmsis_nn": TFLM_CMSIS_NN[name]["instructions"],
        "ratio": result.instructions_model / TFLM_CMSIS_NN[name]["instructions"],
        "text": sizes["text"], "data": sizes["data"], "bss": sizes["bss"],
        "nvm": sizes.get("nvm", 0),
        "peak_stack": stack,
        "peak_sram": sizes["data"] + sizes["bss"] + stack,
        "top1_match": check.outputs[0].top1_match,
        "max_lsb": check.outputs[0].max_lsb,
    })
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws,resnet8,vww,micro_speech,ad")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--sizes-only", action="store_true",
                        help="compile and link only: text and NVM bytes per model")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, args.sizes_only))
    if args.sizes_only:
        print("| model | text B | NVM B |\n|---|---:|---:|")
        for r in rows:
            print(f"| {r['model']} | {r['text']:,} | {r['nvm']:,} |")
        return 0
    print("| model | MACs | instructions | MACs/instr | text B | data B | bss B | NVM B "
          "| peak SRAM B | compile s | vs TFLM | TFLM + CMSIS-NN | ours / CMSIS-NN |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['macs']:,} | not compiled: {r['error'][:80]} |")
            continue
        verdict = f"top-1 {'same' if r['top1_match'] else 'DIFFERS'}, {r['max_lsb']} LSB"
        print(f"| {r['model']} | {r['macs']:,} | {r['instructions_model']:,} | "
              f"{r['macs_per_instruction']} | {r['text']:,} | {r['data']:,} | {r['bss']:,} | "
              f"{r['nvm']:,} | "
              f"{r['peak_sram']:,} | {r['compile_seconds']} | {verdict} | "
              f"{r['tflm_cmsis_nn']:,} | {r['ratio']:.2f} |")
    ratios = [r["ratio"] for r in rows if "error" not in r]
    if ratios:
        print(f"\ngeometric mean of ours / TFLM + CMSIS-NN: "
              f"{math.prod(ratios) ** (1 / len(ratios)):.2f} over {len(ratios)} models")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

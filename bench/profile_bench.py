"""Per zoo model and per operator: our instructions beside TFLite Micro + CMSIS-NN's.

Run:  .venv/bin/python bench/profile_bench.py [--models kws,resnet8,...] [--json out.json]

For each model: compile for qemu-an386, profile one continuous inference on the first
sample input (``tvm_intermittent.sim.profile``: exact QEMU counts per task, the rows adding
up to the instructions between the two marks), check the outputs against TFLite Micro, and
print one Markdown table per model. Where the TFLM + CMSIS-NN figures of
``bench/tflm_cmsis_nn.json`` name an operator of the same kind and MACs, they stand beside
ours with the ratio; "limit" is instructions per MAC over the Cortex-M4's 0.5 (one SMLAD,
two 16-bit MACs), i.e. how far the row is from that bound before loads and requantization;
a last table sums the rows per operator kind over all the models profiled.
"NVM read B" and "NVM written B" are the bytes the task's tiles loaded from and stored into
NVM (the activation arena), counted by the plugin; the commits' own bytes are apart.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import tvm_intermittent as ti
from tvm_intermittent import reference, zoo
from tvm_intermittent.check import compare_outputs
from tvm_intermittent.sim.profile import profile

REFERENCE = Path(__file__).with_name("tflm_cmsis_nn.json")
#: Instructions per MAC of one SMLAD per two MACs, before loads and requantization.
SMLAD_LIMIT = 0.5


def kind(kernel: str) -> str:
    """``conv2d_s81`` -> ``conv2d``: the operator kind of a task's kernel."""
    return re.sub(r"(_s8|_u8)?\d*$", "", kernel)


def match_reference(rows, operators: list[dict]) -> dict[int, int]:
    """``row index -> TFLM + CMSIS-NN instructions`` for the rows a reference figure names:
    same kind and MACs, taken in order (an ``each`` figure names every such row)."""
    matched, used = {}, set()
    for op in operators:
        for i, row in enumerate(rows):
            if i in used or kind(row.operator) != op["kind"] or row.macs != op["macs"]:
                continue
            matched[i] = op["instructions"]
            used.add(i)
            if not op.get("each"):
                break
    return matched


def bench_model(name: str, figures: dict) -> dict:
    entry = zoo.get(name)
    artifact = ti.build(entry.path, "intermittent/qemu-an386", name=name)
    array, _ = zoo.sample_inputs(name, count=1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = profile(artifact.export(Path(tmp) / name), [array], timeout=1800)
    check = compare_outputs(result.outputs, reference.run_tflite_micro(entry.path, [array]),
                            lsb_scales=reference.output_lsb_scales(entry.path))
    theirs = match_reference(result.rows, figures.get("operators", []))
    rows = []
    for i, row in enumerate(result.rows):
        rows.append({**row.to_dict(), "tflm_cmsis_nn": theirs.get(i),
                     "ratio": row.instructions / theirs[i] if i in theirs else None})
    return {"model": name, "instructions_model": result.instructions_model,
            "macs": result.macs, "tflm_cmsis_nn": figures.get("instructions"),
            "bit_exact": check.ok and all(o.max_lsb == 0 for o in check.outputs),
            "rows": rows}


def markdown(report: dict) -> str:
    total, theirs = report["instructions_model"], report["tflm_cmsis_nn"]
    lines = [f"### {report['model']}: {total:,} instructions"
             + (f", {total / theirs:.2f}x TFLM + CMSIS-NN ({theirs:,})" if theirs else "")
             + (", bit-exact with TFLM" if report["bit_exact"] else ", NOT bit-exact"),
             "",
             "| task | operator | MACs | instructions | instr/MAC | x limit | commits | share "
             "| NVM read B | NVM written B | TFLM + CMSIS-NN | ours / theirs |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        ipm, them, ratio = r["instructions_per_mac"], r["tflm_cmsis_nn"], r["ratio"]
        task = "" if r["task"] is None else r["task"]
        cells = [task, r["operator"], f"{r['macs']:,}", f"{r['instructions']:,}",
                 f"{ipm:.2f}" if ipm else "-", f"{ipm / SMLAD_LIMIT:.1f}" if ipm else "-",
                 r["commits"], f"{r['share']:.1%}", f"{r['nvm_read_bytes']:,}",
                 f"{r['nvm_written_bytes']:,}", f"{them:,}" if them else "",
                 f"{ratio:.2f}" if ratio else ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def kind_summary(reports: list[dict]) -> str:
    """One row per operator kind over all profiled models: its MACs and instructions, how
    far its instructions per MAC stand from the 0.5 limit, and, over the rows that have a
    TFLM + CMSIS-NN figure, ours against theirs."""
    kinds: dict = {}
    for report in reports:
        for r in report["rows"]:
            if r["task"] is None:
                continue
            k = kinds.setdefault(kind(r["operator"]), {"tasks": 0, "macs": 0, "instr": 0,
                                                       "ours_matched": 0, "theirs": 0})
            k["tasks"] += 1
            k["macs"] += r["macs"]
            k["instr"] += r["instructions"]
            if r["tflm_cmsis_nn"]:
                k["ours_matched"] += r["instructions"]
                k["theirs"] += r["tflm_cmsis_nn"]
    lines = ["| operator kind | tasks | MACs | instructions | instr/MAC | x limit "
             "| matched: ours | TFLM + CMSIS-NN | ours / theirs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, k in sorted(kinds.items(), key=lambda item: -item[1]["instr"]):
        ipm = k["instr"] / k["macs"] if k["macs"] else None
        cells = [name, k["tasks"], f"{k['macs']:,}", f"{k['instr']:,}",
                 f"{ipm:.2f}" if ipm else "-", f"{ipm / SMLAD_LIMIT:.1f}" if ipm else "-",
                 f"{k['ours_matched']:,}" if k["theirs"] else "",
                 f"{k['theirs']:,}" if k["theirs"] else "",
                 f"{k['ours_matched'] / k['theirs']:.2f}" if k["theirs"] else ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="kws,resnet8,vww,micro_speech,ad")
    parser.add_argument("--json", help="also write the reports to this JSON file")
    args = parser.parse_args()
    figures = json.loads(REFERENCE.read_text())["models"]
    reports = []
    for name in args.models.split(","):
        print(f"profiling {name} ...", file=sys.stderr, flush=True)
        reports.append(bench_model(name, figures.get(name, {})))
        print(markdown(reports[-1]) + "\n", flush=True)
    print("### Per operator kind, all models\n\n" + kind_summary(reports) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n")
    return 0 if all(r["bit_exact"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())

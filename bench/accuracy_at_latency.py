"""Accuracy at the latency bound: the zoo's published accuracies beside TiNAS and iNAS.

Run:  .venv/bin/python bench/accuracy_at_latency.py [--measure] [--costs measured]
          [--models resnet8,kws,vww] [--boards msp430fr5994,apollo4-mram]
          [--power-env tinas-5mF ...] [--json out.json] [--markdown out.md]

For each zoo model with a published top-1 accuracy (MLTK's evaluation of the very file,
``zoo.published_accuracy``), each board profile and each power environment of TiNAS and
iNAS (``tinas-5mF``, ``inas-1mF``, ``inas-5mF``, ``inas-10mF``): compile with tiles sized for
that environment, predict the end-to-end latency of one inference (``energy.predict``, no
emulation) and, with ``--measure``, run the firmware on QEMU under the same environment's
capacitor schedule (exact instruction counts, the same accounting) for the measured latency.
``--costs measured`` predicts from one continuous QEMU run's per-task counts instead of the
calibrated cost model, which leaves only the progress simulation's error.

The table is printed beside the figures TiNAS and iNAS publish for CIFAR-10. The hardware
differs: their networks run as 16-bit MSP430 code with the Low-Energy Accelerator on a real
MSP430FR5994 harvesting through a resistor; ours is Cortex-M4 code on QEMU, turned into time
and energy by a board profile (even ``msp430fr5994``'s, which models that part's memories,
clock and power, not its instruction set). Our accuracies are the MLPerf Tiny reference
networks as trained by Silicon Labs, not networks searched for the power budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tvm_intermittent import zoo
from tvm_intermittent.board import list_boards, load_board
from tvm_intermittent.errors import DoesNotFitError, IntermittentError

#: The power environments of the two published systems (``sim.environments`` presets).
PRESETS = ("tinas-5mF", "inas-1mF", "inas-5mF", "inas-10mF")

TINAS = ("H. R. Mendis, C.-H. Yen, C.-K. Kang, P.-C. Hsiu, Intermittent-Friendly Neural "
         "Architecture Search: Demystifying Accuracy and Overhead Tradeoffs, IEEE TCAD 2025 "
         "(doi 10.1109/TCAD.2025.3555963)")
INAS = ("H. R. Mendis, C.-K. Kang, P.-C. Hsiu, Intermittent-Aware Neural Architecture Search, "
        "ACM TECS 20(5s), article 64, 2021")

#: What the two systems report for CIFAR-10: (system, power, top-1 %, latency s, source).
PUBLISHED = (
    ("TiNAS", "5 mF", "70.18", "238.87", TINAS),
    ("TiNAS", "5 mF", "74.66", "393.04", TINAS),
    ("iNAS", "1 mF to 10 mF", "53.69 to 63.56", "159 to 1,556", INAS),
)


def _models(names: list[str] | None) -> list[str]:
    """Zoo models with a published top-1 figure (the autoencoder's is another metric)."""
    chosen = names or zoo.list_models()
    published = {n: zoo.published_accuracy(n) for n in chosen}
    return [n for n, p in published.items() if p is not None and p.metric == "top-1"]


def assess(name: str, board_name: str, preset: str, tmp: Path, measure: bool,
           costs_kind: str, timeout: float) -> dict:
    """One row: compile, predict and (optionally) measure one model on one board and preset."""
    # pylint: disable=import-outside-toplevel
    import tvm_intermittent as ti
    from tvm_intermittent import sim
    from tvm_intermittent.energy import predict as predictor
    from tvm_intermittent.sim import environments

    model = zoo.get(name)
    published = zoo.published_accuracy(name)
    board = load_board(board_name)
    environment = environments.get(preset)
    row = {"model": name, "top1": published.value, "samples": published.samples,
           "accuracy_source": published.source, "board": board_name, "power_env": preset,
           "fits": True, "problem": None}
    try:
        artifact = ti.build(model.path, "intermittent/" + board_name, board=board,
                            power_env=environment)
    except DoesNotFitError as err:
        return row | {"fits": False, "problem": " ".join(str(err).split())}
    manifest = artifact.manifest()
    inputs = [zoo.sample_inputs(name, count=1)[0][0]]
    project = None
    if measure or costs_kind == "measured":
        project = artifact.export(tmp / f"{name}-{board_name}-{preset}")
    costs = predictor.measure_costs(project, inputs, timeout=timeout) if (
        costs_kind == "measured") else None
    prediction = predictor.predict(manifest, board, environment, costs=costs)
    row |= {"costs": costs_kind, "schedulable": prediction.schedulable,
            "predicted_latency_s": prediction.latency_seconds,
            "predicted_boots": prediction.boots, "blocking": prediction.blocking}
    if measure:
        report = sim.measure_intermittent(project, inputs, environment.schedule(board),
                                          board=board, mode="tiles", timeout=timeout)
        row |= {"measured_latency_s": report.latency_seconds if report.finished else None,
                "measured_boots": report.boots, "outputs_match": report.outputs_match}
    return row


def _seconds(value) -> str:
    return "-" if value is None else f"{value:,.4g}"


def markdown(rows: list[dict]) -> str:
    """The accuracy-at-latency table, the published figures, and how the hardware differs."""
    lines = ["| model | top-1 (MLTK) | board | power | predicted s | boots | measured s | "
             "boots | predicted / measured |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {100 * r['top1']:.2f} % | {r['board']} | "
                         f"{r['power_env']} | error: {r['error']} | | | | |")
            continue
        if not r["fits"]:
            lines.append(f"| {r['model']} | {100 * r['top1']:.2f} % | {r['board']} | "
                         f"{r['power_env']} | not compiled: {r['problem']} | | | | |")
            continue
        measured = r.get("measured_latency_s")
        ratio = ("-" if measured in (None, 0) or r["predicted_latency_s"] is None
                 else f"{r['predicted_latency_s'] / measured:.3f}")
        lines.append(f"| {r['model']} | {100 * r['top1']:.2f} % | {r['board']} | "
                     f"{r['power_env']} | {_seconds(r['predicted_latency_s'])} | "
                     f"{r['predicted_boots']:,} | {_seconds(measured)} | "
                     f"{r.get('measured_boots', '-')} | {ratio} |")
    lines += ["", "| published system | power | CIFAR-10 top-1 % | latency s | source |",
              "|---|---|---:|---:|---|"]
    lines += [f"| {s} | {p} | {a} | {t} | {src} |" for s, p, a, t, src in PUBLISHED]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated zoo models (default: every one "
                                         "with a published top-1 accuracy)")
    parser.add_argument("--boards", help="comma-separated boards (default: every profile)")
    parser.add_argument("--power-env", action="append", default=[],
                        help=f"preset (repeat; default {', '.join(PRESETS)})")
    parser.add_argument("--measure", action="store_true",
                        help="also run each on QEMU under the same environment")
    parser.add_argument("--costs", choices=["calibrated", "measured"], default="calibrated")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--markdown", help="write the tables here")
    args = parser.parse_args()
    models = _models(args.models.split(",") if args.models else None)
    boards = args.boards.split(",") if args.boards else list_boards()
    presets = args.power_env or list(PRESETS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="intm-accuracy-") as tmp:
        for name in models:
            for board in boards:
                for preset in presets:
                    try:
                        row = assess(name, board, preset, Path(tmp), args.measure, args.costs,
                                     args.timeout)
                    except IntermittentError as err:  # reported in the row, the rest goes on
                        row = {"model": name, "board": board, "power_env": preset,
                               "top1": zoo.published_accuracy(name).value,
                               "error": " ".join(f"{type(err).__name__}: {err}".split())}
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
    table = markdown(rows)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

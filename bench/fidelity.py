"""Fidelity of the energy model: predicted against measured latency and boots.

For each zoo model x board x power environment: compile the model for the board with its
tiles sized for the environment's capacitor, predict the inference under the environment
(``energy.predict``, no QEMU), then run it on QEMU under the same environment's schedule and
account for it the same way (``sim.measure_intermittent``: active time of every instruction
executed, NVM traffic charged, plus the recharge after each failure). The table gives both
and the relative error; the summary gives the median and the worst absolute error.

``--costs calibrated`` (default) predicts from the cost model (per-task work from the
lowered TIR, calibrated runtime constants): the error a user of ``analyze`` meets.
``--costs measured`` predicts from per-task counts of QEMU runs of each project
(``energy.predict.measure_costs``): the simulation's own error, without the cost model's.

Environments are named presets (``--power-env`` names, where this installation has them) or
``CAPACITANCE@POWER`` (a capacitor at the board's voltages charged by constant power, such
as ``100uF@1mW``).

    .venv/bin/python bench/fidelity.py --costs measured --markdown bench/results/fidelity.md

``--plot PNG`` also draws every model's predicted latency against capacitor size on one
board (``--plot-board``), from ``--plot-range`` (tiles sized for its low end) at
``--plot-harvest``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tvm_intermittent as ti
from tvm_intermittent import sim, zoo
from tvm_intermittent.board import load_board
from tvm_intermittent.energy.analyze import (
    environment_from_args,
    latency_sweep,
    plot_latency,
    sizing_capacitor,
    sweep_capacitors,
)
from tvm_intermittent.energy.predict import (
    _schedule_of,
    error_interval,
    measure_costs,
    predict,
)
from tvm_intermittent.errors import IntermittentError

MODELS = "kws,resnet8,vww,micro_speech,ad"
BOARDS = "qemu-an386,msp430fr5994,apollo4-mram"
ENVIRONMENTS = "3uF@1mW,10uF@1mW,100uF@1mW"


def environment(board, spec: str):
    """A named preset, or ``CAPACITANCE@POWER``."""
    if "@" in spec:
        capacitor, harvest = spec.split("@", 1)
        return environment_from_args(board, capacitor=capacitor, harvest=harvest)
    return environment_from_args(board, power_env=spec)


def bench_one(model: str, board_name: str, spec: str, costs_kind: str, workdir: Path) -> dict:
    board = load_board(board_name)
    env = environment(board, spec)
    row = {"model": model, "board": board_name, "environment": spec}
    try:
        artifact = ti.build(zoo.get(model).path, "intermittent/" + board_name,
                            capacitor_f=sizing_capacitor(env, board), name=model)
    except IntermittentError as err:
        return row | {"error": f"does not compile: {str(err).splitlines()[0]}"}
    project = artifact.export(workdir / f"{model}-{board_name}-{spec}".replace("@", "-"))
    inputs = [zoo.sample_inputs(model, count=1)[0][0]]
    started = time.perf_counter()
    costs = measure_costs(project, inputs) if costs_kind == "measured" else None
    prediction = predict(artifact.manifest(), board, env, costs=costs)
    predict_s = time.perf_counter() - started
    interval = (error_interval(artifact.manifest(), board, env) if costs_kind == "calibrated"
                else None)
    measured = sim.measure_intermittent(project, inputs, _schedule_of(env, board), board=board,
                                        mode="tiles", timeout=1800)
    row |= {"predicted_boots": prediction.boots, "measured_boots": measured.boots,
            "predicted_latency_s": prediction.latency_seconds,
            "measured_latency_s": measured.latency_seconds if measured.finished else None,
            "predicted_finished": prediction.finished, "measured_finished": measured.finished,
            "outputs_match": measured.outputs_match, "predict_s": predict_s}
    if interval is not None:
        row["interval"] = interval.to_dict()
    if prediction.finished and measured.finished:
        row["latency_error"] = ((prediction.latency_seconds - measured.latency_seconds)
                                / measured.latency_seconds)
        row["boots_error"] = (prediction.boots - measured.boots) / measured.boots
        if interval is not None:
            # The rule (docs/energy.md): a single figure away from a boot step; near one,
            # the range of the step's sides, 0 inside it, else the distance to its nearest end.
            row["step_rule_error"] = (interval.distance(measured.latency_seconds)
                                      if interval.near_step else row["latency_error"])
    return row


def _side(side: dict) -> str:
    if not side["finished"]:
        return f"{side['boots']} boots, does not finish"
    return f"{side['boots']}: {side['latency_seconds']:.4g} s ({100 * side['probability']:.0f}%)"


def markdown(rows: list, costs_kind: str) -> str:
    intervals = any("interval" in r for r in rows)
    head = ("| model | board | environment | boots pred | boots meas | boots err | "
            "latency pred (s) | latency meas (s) | latency err |")
    rule = "|---|---|---|---:|---:|---:|---:|---:|---:|"
    if intervals:
        head += " model error | latency within it (s) | boot step: sides | step-rule err |"
        rule += "---:|---|---|---:|"
    lines = [f"Costs: {costs_kind}.", "", head, rule]
    fmt = (lambda v: "-" if v is None else f"{v:.4g}")
    err = (lambda v: "-" if v is None else f"{100 * v:+.2f}%")
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['board']} | {r['environment']} | "
                         f"{r['error']} ||||||" + ("||||" if intervals else ""))
            continue
        line = (f"| {r['model']} | {r['board']} | {r['environment']} | "
                f"{r['predicted_boots']} | {r['measured_boots']} | "
                f"{err(r.get('boots_error'))} | {fmt(r['predicted_latency_s'])} | "
                f"{fmt(r['measured_latency_s'])} | {err(r.get('latency_error'))} |")
        if intervals:
            i = r.get("interval") or {}
            step = (" / ".join(_side(s) for s in i["sides"]) if i.get("near_step") else "-")
            line += (f" {100 * i.get('error', 0):.1f}% | {fmt(i.get('latency_low_s'))} to "
                     f"{fmt(i.get('latency_high_s'))} | {step} | "
                     f"{err(r.get('step_rule_error'))} |")
        lines.append(line)
    lines += ["", summary(rows)]
    return "\n".join(lines) + "\n"


def summary(rows: list) -> str:
    both = [r for r in rows if "latency_error" in r]
    if not both:
        return "No configuration finished both predicted and measured."
    lat = [abs(r["latency_error"]) for r in both]
    boots = [abs(r["boots_error"]) for r in both]
    disagree = [r for r in rows if "error" not in r
                and r["predicted_finished"] != r["measured_finished"]]
    text = (f"{len(both)} configurations: latency error median "
            f"{100 * statistics.median(lat):.2f}%, worst {100 * max(lat):.2f}%; boots error median "
            f"{100 * statistics.median(boots):.2f}%, worst {100 * max(boots):.2f}%; "
            f"{len(disagree)} where prediction and measurement disagree on finishing.")
    judged = [r for r in both if r.get("step_rule_error") is not None]
    if judged:
        away = [abs(r["latency_error"]) for r in judged if not r["interval"]["near_step"]]
        near = [r for r in judged if r["interval"]["near_step"]]
        rule = [abs(r["step_rule_error"]) for r in judged]
        text += (f" Step rule (the figure held to the targets): latency error median "
                 f"{100 * statistics.median(rule):.2f}%, worst {100 * max(rule):.2f}%. "
                 f"{len(near)} configurations near a boot step: the measurement inside the "
                 f"sides' range in {sum(1 for r in near if r['step_rule_error'] == 0)}, on "
                 f"the side predicted more likely in "
                 f"{sum(1 for r in near if _on_likely_side(r))}; away from steps "
                 f"({len(away)}), point error median "
                 f"{100 * statistics.median(away) if away else 0:.2f}%, worst "
                 f"{100 * max(away, default=0):.2f}%.")
    return text


def _on_likely_side(row: dict) -> bool:
    interval = row["interval"]
    return interval["sides"][interval["likely"]]["boots"] == row["measured_boots"]


def plot(models, board_name: str, low: str, high: str, harvest: str, costs_kind: str,
         path: str, workdir: Path) -> dict:
    """Predicted latency against capacitance, one line per model, on one board."""
    board = load_board(board_name)
    low_env = environment(board, f"{low}@{harvest}")
    high_f = sizing_capacitor(environment(board, f"{high}@{harvest}"), board)
    series = {}
    for model in models:
        try:
            artifact = ti.build(zoo.get(model).path, "intermittent/" + board_name,
                                capacitor_f=sizing_capacitor(low_env, board), name=model)
        except IntermittentError as err:
            print(f"{model}: not plotted: {str(err).splitlines()[0]}", file=sys.stderr)
            continue
        project = artifact.export(workdir / f"plot-{model}")
        costs = (measure_costs(project, [zoo.sample_inputs(model, count=1)[0][0]])
                 if costs_kind == "measured" else None)
        if costs is None:
            from tvm_intermittent.energy.predict import calibrated_costs  # noqa: PLC0415

            costs = calibrated_costs(artifact.manifest(), board)
        capacitors = sweep_capacitors(sizing_capacitor(low_env, board), high_f, 12)
        series[model] = latency_sweep(artifact.manifest(), board, low_env, costs, capacitors)
    plot_latency(series, path, f"predicted latency on {board_name} at {harvest} "
                               f"({costs_kind} costs)")
    return {m: [(c, lat) for c, lat in points] for m, points in series.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--boards", default=BOARDS)
    parser.add_argument("--environments", default=ENVIRONMENTS)
    parser.add_argument("--costs", choices=["calibrated", "measured"], default="calibrated")
    parser.add_argument("--markdown", help="write the table to this file")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--plot", metavar="PNG", help="also plot latency against capacitor")
    parser.add_argument("--plot-board", default="msp430fr5994")
    parser.add_argument("--plot-range", default="3uF:1mF", metavar="LOW:HIGH")
    parser.add_argument("--plot-harvest", default="1mW")
    parser.add_argument("--skip-table", action="store_true", help="only the plot")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="intm-fidelity-") as tmp:
        if args.plot:
            low, high = args.plot_range.split(":")
            points = plot(args.models.split(","), args.plot_board, low, high,
                          args.plot_harvest, args.costs, args.plot, Path(tmp))
            print(json.dumps({"plot": args.plot, "points": points}), file=sys.stderr)
        for model in [] if args.skip_table else args.models.split(","):
            for board in args.boards.split(","):
                for spec in args.environments.split(","):
                    row = bench_one(model, board, spec, args.costs, Path(tmp))
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
    if args.skip_table:
        return 0
    text = markdown(rows, args.costs)
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

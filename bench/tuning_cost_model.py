"""Fidelity of the tuner's cost model on candidates it was not trained on.

For each zoo model x board: compile the model for the board under the power environment,
take the ``--kernels`` kernels with the most predicted work, draw ``--candidates`` valid
candidates of each from the tuner's design space (seeded), build them as the tuner does
(``tuning.local.CandidateBuilder``: the whole model, that kernel cut by the candidate) and
measure each on QEMU under the environment (``tuning.measure.measure_artifact``). Per
kernel a seeded ``--train`` share of the candidates trains the cost model
(``IntermittentCostModel.observe``); the others are held out. On them the table gives the
median absolute relative error of the predicted instructions under failures (re-executed
work and boots included) against QEMU's exact count, of one tile's instructions of the
tuned kernel (the other kernels' work is the same measured work in both, which dilutes
the whole run's error), and of the predicted latency, for:

* ``xgb``: the learned model (XGBoost on the measured/calibrated work per tile);
* ``none``: the calibrated kernel model alone, in the same progress simulation;
* ``metaschedule``: MetaSchedule's own ``XGBModel`` (its default feature extractor,
  ``PerStoreFeature``) trained on the same candidates' run times, latency only (it
  predicts a normalised score; the latency is the training set's best over the score);
* ``xgb from B``: the learned model trained on the first board's candidates and asked
  about the second board's held-out candidates without any of their measurements (the
  reuse of a tuning log on another board of the same ISA).

    .venv/bin/python bench/tuning_cost_model.py --models kws,resnet8 \\
        --boards qemu-an386,msp430fr5994 --kernels 3 --candidates 12 --workers 2

``--json PATH`` writes every measurement and prediction.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tvm

from tvm_intermittent import builder, zoo
from tvm_intermittent.board import load_board
from tvm_intermittent.errors import IntermittentError
from tvm_intermittent.tuning import ModelTasks, describe, environment
from tvm_intermittent.tuning.constraints import check_candidate
from tvm_intermittent.tuning.cost_model import IntermittentCostModel
from tvm_intermittent.tuning.knobs import CandidateError, tiled_func
from tvm_intermittent.tuning.local import CandidateBuilder
from tvm_intermittent.tuning.measure import measure_artifact
from tvm_intermittent.tuning.space import candidates, schedule_for


def _heaviest(tasks: ModelTasks, count: int) -> list:
    work = {t.kernel: 0.0 for t in tasks.tasks}
    for spec in tasks.manifest["tasks"]:
        work[spec["kernel"]] += spec["cost"]["tile"]["instructions"] * spec["tiles"]
    return sorted(tasks.tasks, key=lambda t: -work[t.kernel])[:count]


def _valid(tasks, task, board, env) -> list:
    out = []
    for knobs in candidates(task):
        try:
            check_candidate(task, knobs, board, env, static_scratch=tasks.static_scratch)
        except CandidateError:
            continue
        out.append(knobs)
    return out


def measure_board(model: str, board_name: str, power_env: str, kernels: int, count: int,
                  train: float, workers: int, seed: int, root: Path) -> dict:
    """Build and measure the candidates of one model on one board."""
    board = load_board(board_name)
    env = (environment(capacitor=power_env) if power_env[:1].isdigit()
           else environment(power_env))
    target = tvm.target.Target("intermittent/" + board.name)
    prepared = builder.prepare(zoo.get(model).path, target, board=board,
                               **env.build_options())
    tasks = ModelTasks.of(prepared)
    inputs = [zoo.sample_inputs(model, count=1)[0][0]]
    build = CandidateBuilder(tasks, board, env, inputs, root / f"{model}-{board.name}")
    jobs = []
    for task in _heaviest(tasks, kernels):
        valid = _valid(tasks, task, board, env)
        random.Random(f"{seed}:{model}:{task.kernel}").shuffle(valid)
        picks = valid[:count]
        cut = max(1, int(round(train * len(picks))))
        for number, knobs in enumerate(picks):
            jobs.append((task, knobs, number < cut))
    paths = []
    for task, knobs, _ in jobs:
        try:
            paths.append(build.build_one(schedule_for(task, knobs).mod))
        except (CandidateError, IntermittentError) as err:
            paths.append(err)
    started = time.perf_counter()

    def run(path):
        if isinstance(path, Exception):
            return {"error": str(path)}
        try:
            return measure_artifact(path)
        except IntermittentError as err:
            return {"error": str(err)}

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        measured = list(pool.map(run, paths))
    return {"tasks": tasks, "board": board, "env": env, "jobs": jobs, "measured": measured,
            "seconds": time.perf_counter() - started}


def _model(data, learned: str, train_from=None) -> IntermittentCostModel:
    model = IntermittentCostModel(data["board"], data["env"], describe, model=data["tasks"],
                                  learned=learned)
    source = train_from or data
    for (task, knobs, is_train), result in zip(source["jobs"], source["measured"]):
        if is_train and "error" not in result:
            model.observe(data["tasks"].task(task.kernel), knobs, result)
    return model


def _held_out(data):
    return [(task, knobs, result) for (task, knobs, is_train), result
            in zip(data["jobs"], data["measured"]) if not is_train and "error" not in result]


def evaluate(data, model: IntermittentCostModel) -> dict:
    """Relative errors on the held-out candidates: instructions under failures, latency."""
    rows = []
    for task, knobs, result in _held_out(data):
        features, plan = describe(knobs, task)
        prediction = model.predict_run(task, plan, features=features, knobs=knobs)
        latency = prediction.latency_seconds if prediction.finished else float("inf")
        tile = model.tile(task, features, plan, tiled_func(task.func, knobs))
        measured_tile = sum(result["tasks"][str(i)]["instructions"] for i in task.indices)
        measured_tile /= plan.extent * len(task.indices)
        rows.append({"kernel": task.kernel, "knobs": knobs.to_dict(),
                     "tile_instructions": measured_tile,
                     "predicted_tile_instructions": tile.instructions,
                     "instructions": result["instructions"],
                     "predicted_instructions": prediction.executed.instructions,
                     "failures": result["failures"], "predicted_failures": prediction.failures,
                     "latency": result["run_secs"][0], "predicted_latency": latency})
    return {"rows": rows,
            "tile": _median([abs(r["predicted_tile_instructions"] - r["tile_instructions"])
                             / r["tile_instructions"] for r in rows]),
            "instructions": _median([abs(r["predicted_instructions"] - r["instructions"])
                                     / r["instructions"] for r in rows]),
            "latency": _median([abs(r["predicted_latency"] - r["latency"]) / r["latency"]
                                for r in rows])}


def evaluate_metaschedule(data) -> dict:
    """MetaSchedule's XGBModel on the same candidates: latency error of its predictions."""
    # pylint: disable=import-outside-toplevel
    from tvm.s_tir import meta_schedule as ms

    target = tvm.target.Target("intermittent/" + data["board"].name)
    errors, constant = [], 0
    by_kernel = {}
    for (task, knobs, is_train), result in zip(data["jobs"], data["measured"]):
        if "error" not in result:
            by_kernel.setdefault(task.kernel, []).append((task, knobs, is_train, result))
    try:
        for items in by_kernel.values():
            task = items[0][0]
            context = ms.TuneContext(task.mod, target=target, task_name=task.kernel,
                                     num_threads=1)
            args = ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])
            model = ms.cost_model.XGBModel(num_warmup_samples=0)
            train = [i for i in items if i[2]]
            held = [i for i in items if not i[2]]
            model.update(context, [ms.MeasureCandidate(schedule_for(task, k), args)
                                   for _, k, _, _ in train],
                         [ms.runner.RunnerResult(r["run_secs"], None) for *_, r in train])
            best = min(r["run_secs"][0] for *_, r in train)
            scores = model.predict(context, [ms.MeasureCandidate(schedule_for(task, k), args)
                                             for _, k, _, _ in held])
            constant += int(np.ptp(scores) == 0)
            for score, (*_, result) in zip(scores, held):
                predicted = best / score if score > 0 else float("inf")
                errors.append(abs(predicted - result["run_secs"][0]) / result["run_secs"][0])
    except Exception as err:  # pylint: disable=broad-except
        # Reported in the table: whatever MetaSchedule's model cannot do with these workloads.
        return {"latency": None, "error": f"{type(err).__name__}: {str(err)[:200]}"}
    return {"latency": _median(errors), "constant_kernels": constant,
            "kernels": len(by_kernel)}


def _median(values) -> float | None:
    values = [v for v in values if np.isfinite(v)]
    return statistics.median(values) if values else None


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="kws,resnet8")
    parser.add_argument("--boards", default="qemu-an386,msp430fr5994",
                        help="boards of one ISA; the first trains the cross-board column")
    parser.add_argument("--power-env", default="board",
                        help="a preset name, continuous, or a capacitor such as 100uF")
    parser.add_argument("--kernels", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=12)
    parser.add_argument("--train", type=float, default=0.6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-metaschedule", action="store_true",
                        help="skip MetaSchedule's XGBModel (its first TuneContext imports "
                             "TVM's tensor intrinsics, a minute or more)")
    parser.add_argument("--json", help="write every measurement and prediction here")
    args = parser.parse_args(argv)
    boards = args.boards.split(",")
    report = []
    header = ("| model | board | held out | measured failures | xgb: tile | none: tile | "
              "xgb: instructions | none: instructions | xgb: latency | none: latency | "
              "metaschedule: latency | metaschedule: kernels predicted constant | "
              f"xgb from {boards[0]}: tile | xgb from {boards[0]}: instructions |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    with tempfile.TemporaryDirectory(prefix="intm-cm-bench-") as tmp:
        for model in args.models.split(","):
            per_board = {}
            for board in boards:
                data = measure_board(model, board, args.power_env, args.kernels,
                                     args.candidates, args.train, args.workers, args.seed,
                                     Path(tmp))
                per_board[board] = data
                learned, calibrated = evaluate(data, _model(data, "xgb")), evaluate(
                    data, _model(data, "none"))
                meta = ({"latency": None, "error": "skipped"} if args.no_metaschedule
                        else evaluate_metaschedule(data))
                cross = (evaluate(data, _model(data, "xgb", per_board[boards[0]]))
                         if board != boards[0] else None)
                held = _held_out(data)
                failures = [r["failures"] for *_, r in held]
                errors = [r["error"] for r in data["measured"] if "error" in r]
                lines.append(
                    f"| {model} | {board} | {len(held)} | "
                    f"{min(failures, default=0)}-{max(failures, default=0)} | "
                    f"{_pct(learned['tile'])} | {_pct(calibrated['tile'])} | "
                    f"{_pct(learned['instructions'])} | {_pct(calibrated['instructions'])} | "
                    f"{_pct(learned['latency'])} | {_pct(calibrated['latency'])} | "
                    f"{_pct(meta.get('latency'))} | "
                    f"{meta.get('constant_kernels', '-')}/{meta.get('kernels', '-')} | "
                    f"{_pct(cross['tile']) if cross else '-'} | "
                    f"{_pct(cross['instructions']) if cross else '-'} |")
                report.append({"model": model, "board": board, "xgb": learned,
                               "none": calibrated, "metaschedule": meta, "cross": cross,
                               "measure_seconds": data["seconds"], "build_errors": errors})
                print(lines[-1], f"({len(data['jobs'])} measured in {data['seconds']:.0f} s, "
                      f"{len(errors)} failed; metaschedule: {meta})", file=sys.stderr,
                      flush=True)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

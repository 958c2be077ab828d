"""Measure the cost model's constants on QEMU and write energy/calibration.json.

Run:  .venv/bin/python scripts/calibrate.py [--quick] [--out PATH]

What it measures, all from exact QEMU counts of continuous runs on qemu-an386:

* the runtime: a boot (the reset handler up to the entry of the progress record's restore,
  the SRAM scrub excluded), the restore on a committed record (a run that fails right after
  its last commit boots once more), one commit (instructions of the commit function per
  call, and its NVM stores from the plugin's store events), reading the inputs and writing
  the outputs (fitted as fixed + per byte over the models);
* the kernels: per task of synthetic single-operator models (TFLite int8 built with
  ``tests/tflite_models.py`` and float ONNX with ``tests/onnx_models.py``, many shapes,
  each at two capacitors so that batch counts vary; never the zoo), the instructions from
  the task's first entry to the next task's minus its commits, against the executed counts
  of its kernel (:mod:`tvm_intermittent.energy.kernel_cost`). A non-negative least-squares
  fit of relative error gives instructions per executed node of each kind, per tile, per
  batch of tiles (the executor's ``tile_overhead``) and per task (``task_overhead``).

* the kernels' NVM accesses are not fitted (they are counted from the TIR): every task's
  loads and stores as the plugin counted them are recorded beside the prediction
  (``fit.residuals``), and ``checks.nvm_accesses`` lists the tasks where they differ.

The file records the command, the date, the gcc and QEMU versions and every row's residual.
``--quick`` runs a handful of models (a smoke test of the script, not a calibration).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "python"))

import onnx_models  # noqa: E402
import tflite_models as tm  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import sim  # noqa: E402
from tvm_intermittent.board import load_board  # noqa: E402
from tvm_intermittent.energy import costs  # noqa: E402
from tvm_intermittent.energy.kernel_cost import Features  # noqa: E402
from tvm_intermittent.energy.model import Work  # noqa: E402

BOARD = "qemu-an386"
COMMIT, RESTORE = "intm_progress_commit", "intm_progress_restore"
READ, WRITE = "intm_read_inputs", "intm_write_outputs"
TASK = "intm_task_{}"
DEFAULT_OUT = ROOT / "python" / "tvm_intermittent" / "energy" / costs.CALIBRATION_FILE
#: Constants fitted jointly with the kernel kinds: per call of a task function (batch) and
#: per task.
BATCH, FIXED = "batch", "task"
#: Calibration models a kernel family needs before it gets a fit of its own.
MIN_FAMILY_MODELS = 2
#: The kinds a family's own fit may use beside the shared prediction: the shape of its loop
#: nest and its output (a family has a few rows; all kinds would fit them and not
#: generalize: the zoo's median task error was 3.8 % with all kinds, 3.1 % with these).
FAMILY_KINDS = frozenset(("tiles", "tile_divmod", "loop", "loop_iter", "branch", "store_nvm"))
#: What the tiler charges while it tiles the calibration models: one instruction per
#: executed node of every kind, 20 per call, 100 per commit and 50 per batch. These are
#: not constants of the model (the measurements do not depend on them); they only fix the
#: calibration models' tile and batch sizes, so that they do not depend on the calibration
#: that happens to exist and a rerun measures the same firmware.
_UNIT_KINDS = ("loop", "loop_iter", "branch", "select", "index", "load_nvm", "load_flash",
               "load_sram", "load_reg", "store_nvm", "store_sram", "store_reg", "alu",
               "alu64", "mul", "mul64", "cmp", "cmp64", "minmax", "cast", "cast64",
               "divconst", "div", "div64", "fadd", "fmul", "fdiv", "fcmp", "fminmax", "fcvt",
               "fother", "tiles", "tile_divmod")
_BOOTSTRAP = {"isas": {"arm": {
    "runtime": {**{f: {} for f in costs.RUNTIME_FIELDS},
                "commit": {"instructions": 100.0}, "tile_overhead": {"instructions": 50.0}},
    "kernel": {"coefficients": {k: 1.0 for k in _UNIT_KINDS}, "default_call": 20.0}}}}


def _conv(**kw):
    return lambda: tm.conv2d(**kw)


def _tflite_cases() -> dict:
    """Int8 TFLite single-operator models: every kernel family of the zoo, many shapes."""
    cases = {
        "conv3x3_c5": _conv(hw=(9, 7), cin=5, cout=6),
        "conv3x3_c8_s2": _conv(hw=(12, 10), cin=8, cout=8, stride=(2, 2)),
        "conv1x1_c16": _conv(hw=(6, 5), cin=16, cout=16, kernel=(1, 1)),
        "conv1x1_c32_64": _conv(hw=(5, 4), cin=32, cout=64, kernel=(1, 1)),
        "conv3x3_c16_valid": _conv(hw=(8, 8), cin=16, cout=8, padding=tm.VALID),
        "conv5x3_c1_s2": _conv(hw=(20, 10), cin=1, cout=16, kernel=(5, 3), stride=(2, 2)),
        "conv3x3_c3_relu": _conv(hw=(10, 10), cin=3, cout=8, activation=tm.RELU),
        "conv3x3_c8_16_s2": _conv(hw=(9, 9), cin=8, cout=16, stride=(2, 2)),
        "conv1x1_c64": _conv(hw=(5, 5), cin=64, cout=64, kernel=(1, 1)),
        "conv1x1_c8_32": _conv(hw=(8, 6), cin=8, cout=32, kernel=(1, 1)),
        "conv1x1_c48_16_s2": _conv(hw=(8, 8), cin=48, cout=16, kernel=(1, 1), stride=(2, 2)),
        "conv3x3_c32_valid": _conv(hw=(6, 6), cin=32, cout=16, padding=tm.VALID),
        "conv3x3_c16_same": _conv(hw=(8, 8), cin=16, cout=16),
        "conv3x3_c4_s2": _conv(hw=(16, 16), cin=4, cout=8, stride=(2, 2)),
        "conv3x3_c16_32_s2": _conv(hw=(8, 8), cin=16, cout=32, stride=(2, 2)),
        "conv3x3_c32_same": _conv(hw=(5, 5), cin=32, cout=32),
        "conv1x1_c16_32_s2": _conv(hw=(8, 8), cin=16, cout=32, kernel=(1, 1), stride=(2, 2)),
        "conv1x1_c128": _conv(hw=(4, 3), cin=128, cout=128, kernel=(1, 1)),
        "conv1x1_c96_128": _conv(hw=(3, 3), cin=96, cout=128, kernel=(1, 1)),
        "conv8x4_c1_s2": _conv(hw=(30, 12), cin=1, cout=32, kernel=(8, 4), stride=(2, 2)),
        "conv6x6_c1_s2": _conv(hw=(24, 20), cin=1, cout=8, kernel=(6, 6), stride=(2, 2)),
        "conv7x3_c2": _conv(hw=(14, 8), cin=2, cout=16, kernel=(7, 3)),
        "conv9x7_c1_s2": _conv(hw=(30, 24), cin=1, cout=8, kernel=(9, 7), stride=(2, 2)),
        "conv11x6_c1_s21": _conv(hw=(25, 20), cin=1, cout=4, kernel=(11, 6), stride=(2, 1)),
        "conv5x5_c3": _conv(hw=(12, 12), cin=3, cout=8, kernel=(5, 5)),
        # One input channel under a large window, padded: the nest keeps its tap loops,
        # and most outputs at a border test every tap.
        "conv8x10_c1_s2": _conv(hw=(36, 30), cin=1, cout=8, kernel=(8, 10), stride=(2, 2)),
        "conv12x8_c1_s2": _conv(hw=(40, 28), cin=1, cout=4, kernel=(12, 8), stride=(2, 2)),
        "conv10x6_c1": _conv(hw=(22, 18), cin=1, cout=4, kernel=(10, 6)),
        "conv7x9_c1_s2": _conv(hw=(28, 34), cin=1, cout=12, kernel=(7, 9), stride=(2, 2)),
        "conv9x9_c2_s2": _conv(hw=(20, 20), cin=2, cout=8, kernel=(9, 9), stride=(2, 2)),
        # The same with input zero point 0: a padded tap adds nothing, so the border test
        # guards the taps' accumulation with no else (GCC keeps fewer values in registers).
        "conv8x10_c1_s2_z0": _conv(hw=(36, 30), cin=1, cout=8, kernel=(8, 10), stride=(2, 2),
                                   in_zp=0),
        "conv12x8_c1_s2_z0": _conv(hw=(40, 28), cin=1, cout=4, kernel=(12, 8), stride=(2, 2),
                                   in_zp=0),
        "conv7x9_c1_s2_z0": _conv(hw=(28, 34), cin=1, cout=12, kernel=(7, 9), stride=(2, 2),
                                  in_zp=0),
        "conv10x6_c1_z0": _conv(hw=(22, 18), cin=1, cout=4, kernel=(10, 6), in_zp=0),
        # Rows of eight bytes (two words, unrolled) over eight output channels with zero
        # point 0: the row kernel's one-sided border rows in the nest of two pixels by a
        # block of four channels (eight accumulators), which no model above has.
        "conv10x8_c1_s2_z0": _conv(hw=(41, 36), cin=1, cout=8, kernel=(10, 8), stride=(2, 2),
                                   in_zp=0),
        "conv9x8_c1_s2_z0": _conv(hw=(45, 32), cin=1, cout=8, kernel=(9, 8), stride=(2, 2),
                                  in_zp=0),
        "conv10x8_c1_s2": _conv(hw=(41, 36), cin=1, cout=8, kernel=(10, 8), stride=(2, 2)),
        "conv5x5_c6_s2": _conv(hw=(14, 14), cin=6, cout=4, kernel=(5, 5), stride=(2, 2)),
        # Shapes of the classes the zoo's networks are made of (never their layers): a
        # 3x3 over 16 and 32 channels on a larger image (the row kernel's pixel pairs), a
        # first convolution over three channels with zero point 0, and pointwise layers of
        # 128 channels whose multipliers shift left for some channels (out_scale small), so
        # that the output stage takes its general 64-bit form, as float-scaled layers do.
        "conv3x3_c16_16x16": _conv(hw=(16, 16), cin=16, cout=16),
        "conv3x3_c32_8x8": _conv(hw=(8, 8), cin=32, cout=32, in_zp=0),
        "conv3x3_c3_16_z0": _conv(hw=(20, 20), cin=3, cout=16, in_zp=0, activation=tm.RELU),
        "conv1x1_c128_6x6_left": _conv(hw=(6, 6), cin=128, cout=128, kernel=(1, 1),
                                       out_scale=0.0005),
        "conv1x1_c64_128_left": _conv(hw=(5, 4), cin=64, cout=128, kernel=(1, 1),
                                      out_scale=0.0008, stride=(2, 2)),
        "conv1x1_c128_6x6": _conv(hw=(6, 6), cin=128, cout=128, kernel=(1, 1)),
        "dwconv3x3_c8": _conv(hw=(9, 7), cin=8, depthwise=True),
        "dwconv3x3_c16_s2": _conv(hw=(10, 10), cin=16, depthwise=True, stride=(2, 2)),
        "dwconv3x3_c32": _conv(hw=(5, 5), cin=32, depthwise=True, activation=tm.RELU),
        "dwconv5x5_c4": _conv(hw=(8, 8), cin=4, kernel=(5, 5), depthwise=True),
        "dwconv3x3_c64": _conv(hw=(6, 5), cin=64, depthwise=True, activation=tm.RELU),
        "dwconv3x3_c96_s2": _conv(hw=(8, 8), cin=96, depthwise=True, stride=(2, 2)),
        "dwconv3x3_c48_s2": _conv(hw=(12, 10), cin=48, depthwise=True, stride=(2, 2),
                                  activation=tm.RELU6),
        "dwconv3x3_c160": _conv(hw=(4, 4), cin=160, depthwise=True),
        # Depthwise 3x3 over 64 channels on tall narrow images (vertical row pairs), with
        # input zero point 0 (one-sided borders) and without.
        "dwconv3x3_c64_25x5_z0": _conv(hw=(25, 5), cin=64, depthwise=True, in_zp=0,
                                       activation=tm.RELU),
        "dwconv3x3_c64_20x6": _conv(hw=(20, 6), cin=64, depthwise=True, activation=tm.RELU),
        "dwconv3x3_c32_12x12_z0": _conv(hw=(12, 12), cin=32, depthwise=True, in_zp=0),
        "fc_40x9": lambda: tm.fully_connected(batch=2, depth=40, units=9),
        "fc_64x12": lambda: tm.fully_connected(batch=1, depth=64, units=12),
        "fc_256x32": lambda: tm.fully_connected(batch=1, depth=256, units=32),
        "fc_100x10_relu": lambda: tm.fully_connected(batch=1, depth=100, units=10,
                                                     activation=tm.RELU),
        "fc_640x128": lambda: tm.fully_connected(batch=1, depth=640, units=128),
        "fc_1200x4": lambda: tm.fully_connected(batch=1, depth=1200, units=4),
        "fc_2000x4": lambda: tm.fully_connected(batch=1, depth=2000, units=4, in_zp=-128),
        "avgpool_3x3": lambda: tm.pool("AVERAGE_POOL_2D"),
        "avgpool_global": lambda: tm.pool("AVERAGE_POOL_2D", hw=(6, 5), channels=32,
                                          size=(6, 5), stride=(1, 1), padding=tm.VALID),
        "maxpool_2x2": lambda: tm.pool("MAX_POOL_2D", hw=(8, 8), channels=8, size=(2, 2),
                                       padding=tm.VALID),
        "add_broadcast": lambda: tm.add(),
        "add_same": lambda: tm.add(lhs_shape=(1, 8, 8, 8), rhs_shape=(1, 8, 8, 8),
                                   activation=tm.RELU),
        # ADDs of whole feature maps with per-tensor scales (a residual connection's).
        "add_8192": lambda: tm.add(lhs_shape=(1, 16, 16, 32), rhs_shape=(1, 16, 16, 32),
                                   activation=tm.RELU),
        "add_4096": lambda: tm.add(lhs_shape=(1, 8, 8, 64), rhs_shape=(1, 8, 8, 64),
                                   lhs=(0.08, 3), rhs=(0.03, -20)),
        "mul_broadcast": lambda: tm.mul(),
        "mean_hw": lambda: tm.mean(),
        "pad": lambda: tm.pad(),
        "reshape": lambda: tm.reshape(shape=(1, 6, 5, 8), new_shape=(1, 240)),
        "concat": lambda: tm.concatenation(),
        "softmax_3x10": lambda: tm.softmax(),
        "softmax_1x12": lambda: tm.softmax(shape=(1, 12)),
        "softmax_1x100": lambda: tm.softmax(shape=(1, 100), in_q=(0.05, 3)),
        "logistic": lambda: tm.logistic(),
        "quantize_500": lambda: tm.quantize(
            np.random.default_rng(3).standard_normal((1, 50, 10, 1)) * 4),
        "quantize_3072": lambda: tm.quantize(
            np.random.default_rng(5).standard_normal((1, 32, 32, 3)) * 2),
        "quantize_64": lambda: tm.quantize(np.random.default_rng(4).standard_normal((1, 64))),
        "dequantize": lambda: tm.dequantize(),
        "dequantize_4": lambda: _dequantize(4),
        "dequantize_20": lambda: _dequantize(20),
        "reshape_16": lambda: tm.reshape(shape=(1, 2, 2, 4), new_shape=(1, 16)),
        "reshape_40": lambda: tm.reshape(shape=(1, 1, 1, 40), new_shape=(1, 40)),
        "softmax_1x2": lambda: tm.softmax(shape=(1, 2)),
        "softmax_1x5": lambda: tm.softmax(shape=(1, 5), in_q=(0.1, -4)),
        "avgpool_global_c48": lambda: tm.pool("AVERAGE_POOL_2D", hw=(10, 3), channels=48,
                                              size=(10, 3), stride=(1, 1), padding=tm.VALID),
        "avgpool_global_c16": lambda: tm.pool("AVERAGE_POOL_2D", hw=(7, 7), channels=16,
                                              size=(7, 7), stride=(1, 1), padding=tm.VALID),
        "requantize": lambda: tm.requantize(),
    }
    return cases


def _dequantize(count: int):
    """DEQUANTIZE int8 -> float32 of ``count`` values (tm.dequantize has 256)."""
    tensors = [tm.T((1, count), scale=0.037, zero_point=-5), tm.T((1, count), "float32")]
    x = np.arange(count, dtype=np.int64).astype(np.int8).reshape(1, count)
    return tm.build(tensors, [tm.Op("DEQUANTIZE", [0], [1])], [0], [1]), [x]


def _onnx_cases() -> dict:
    """Float ONNX single-operator (and one small CNN) models."""
    return {f"onnx_{k}": v for k, v in onnx_models.CASES.items()}


QUICK = ("conv1x1_c16", "fc_64x12", "dequantize", "softmax_1x12")


def _write_model(model, directory: Path) -> Path:
    if isinstance(model, bytes):
        path = directory / "model.tflite"
        path.write_bytes(model)
        return path
    import onnx  # pylint: disable=import-outside-toplevel

    path = directory / "model.onnx"
    onnx.save(model, path)
    return path


def measure(name: str, factory, capacitor_f, tmp: Path) -> dict:
    """Compile one model, run it once on QEMU, and cut the run into its parts."""
    model, inputs = factory()
    work = tmp / f"{name}-{capacitor_f}"
    work.mkdir()
    artifact = ti.build(_write_model(model, work), f"intermittent/{BOARD}", name=name,
                        capacitor_f=capacitor_f)
    project = artifact.export(work / "project")
    manifest = json.loads((project / "model.json").read_text())
    run = sim.run(project, inputs, timeout=600, functions=(COMMIT, RESTORE))
    per_commit = run.range_instructions[COMMIT] / len(run.commits)
    commit_stores = [c for f, c in run.stores if f == COMMIT]
    end = run.marks[1]
    tasks = manifest["tasks"]
    starts = [run.event_counts(TASK.format(i)) for i in range(len(tasks))]
    edges = [s[0] for s in starts] + [end]
    rows = []
    for i, task in enumerate(tasks):
        lo, hi = edges[i], edges[i + 1]
        commits = sum(1 for c in run.commits if lo <= c < hi)
        rows.append({"model": name, "capacitor_f": capacitor_f, "task": i,
                     "kernel": task["kernel"], "tiles": task["tiles"],
                     "depth": manifest["tiles"][task["kernel"]]["depth"],
                     "batches": len(starts[i]), "commits": commits,
                     "features": task["cost"]["features"],
                     "nest_depth": task["cost"]["nest_depth"],
                     "registers": task["cost"].get("registers", 0),
                     "nvm_store_bytes_predicted": task["cost"]["tile"]["nvm_store_bytes"]
                     * task["tiles"],
                     **_nvm_accesses(task, run.traffic_by_task.get(i, Work())),
                     "measured": hi - lo - commits * per_commit})
    read = run.event_counts(READ)[0]
    after_read = min(c for f, c in run.events if c > read)
    write = run.event_counts(WRITE)[0]
    in_bytes = sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
                   for t in manifest["inputs"])
    out_bytes = sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
                    for t in manifest["outputs"])
    return {
        "rows": rows, "project": project, "inputs": inputs,
        "boot": run.event_counts(RESTORE)[0], "restore_blank": run.range_instructions[RESTORE],
        "commit": per_commit, "commit_stores": len(commit_stores) / len(run.commits),
        "input": (in_bytes, after_read - read), "output": (out_bytes,
                                                         run.instructions_total - write),
        "nvm_bytes_written": run.nvm_bytes_written, "commits": len(run.commits),
    }


def _nvm_accesses(task: dict, measured: Work) -> dict:
    """A task's NVM loads and stores as the plugin counted them and as its cost predicts
    them (counted from the TIR, not fitted: the rows check the counting rules)."""
    tile, tiles = task["cost"]["tile"], task["tiles"]
    return {"nvm_loads": measured.nvm_loads, "nvm_stores": measured.nvm_stores,
            "nvm_loads_predicted": round(tile["nvm_loads"] * tiles, 3),
            "nvm_stores_predicted": round(tile["nvm_stores"] * tiles, 3)}


def nvm_access_check(rows: list[dict]) -> dict:
    """How well the counted NVM accesses match the plugin's, over every calibration task:
    the rows that differ (with their figures) and the worst relative error of each."""
    out = {"rows": len(rows)}
    for what in ("nvm_loads", "nvm_stores"):
        off = [r for r in rows if abs(r[f"{what}_predicted"] - r[what]) > 0.5]
        errors = [abs(r[f"{what}_predicted"] / r[what] - 1) for r in rows if r[what]]
        out[what] = {"exact_rows": len(rows) - len(off),
                     "max_abs_error": round(max(errors, default=0.0), 4),
                     "differing": [{k: r[k] for k in ("model", "capacitor_f", "task",
                                                      "kernel", what, f"{what}_predicted")}
                                   for r in off]}
    return out


def restore_sealed(sample: dict) -> tuple[int, int]:
    """Instructions and NVM stores of the restore that finds a committed record: fail right
    after the last commit returned, so the second boot restores a sealed record (and only
    delivers)."""
    project, inputs = sample["project"], sample["inputs"]
    run = sim.run(project, inputs, functions=(COMMIT, RESTORE))
    per_commit = run.range_instructions[COMMIT] // len(run.commits)
    again = sim.run(project, inputs, functions=(COMMIT, RESTORE),
                    power=sim.power.FailAt(run.commits[-1] + per_commit))
    assert again.failures == 1 and again.boots == 2, (again.failures, again.boots)
    second_boot = again.failure_points[0]
    stores = sum(1 for f, c in again.stores if f == RESTORE and c >= second_boot)
    return again.range_instructions[RESTORE] - run.range_instructions[RESTORE], stores


def _with_tiles(row: dict) -> dict:
    """A task's executed counts with its tile loop's (costs.tile_counts per tile)."""
    counts = dict(row["features"])
    for kind, count in costs.tile_counts(row["depth"]).items():
        counts[kind] = counts.get(kind, 0.0) + count * row["tiles"]
    return counts


def fit(rows: list[dict]) -> dict:
    """Instructions per kind by non-negative least squares on relative errors."""
    from scipy.optimize import nnls  # pylint: disable=import-outside-toplevel

    for row in rows:
        row["counts"] = _with_tiles(row)
    kinds = sorted({k for r in rows for k in r["counts"]})
    names = kinds + [BATCH, FIXED]
    matrix = np.array([[r["counts"].get(k, 0.0) for k in kinds] + [r["batches"], 1.0]
                       for r in rows])
    target = np.array([r["measured"] for r in rows], dtype=float)
    weight = 1.0 / np.maximum(target, 1.0)
    solution, _ = nnls(matrix * weight[:, None], target * weight, maxiter=50 * len(names))
    kernel_part = matrix[:, :len(kinds)] @ solution[:len(kinds)]
    overhead = matrix[:, len(kinds):] @ solution[len(kinds):]
    # Step 2. Per family of kernel (costs.kernel_family) that two or more calibration models
    # have: a second fit of the family's own rows, on its executed counts and the shared
    # model's prediction (so that a family can keep, scale or correct it), overheads fixed.
    members = {}
    for i, row in enumerate(rows):
        row["family"] = costs.kernel_family(row["kernel"], Features(
            row["features"], nest_depth=row["nest_depth"], registers=row.get("registers", 0)))
        members.setdefault(row["family"], []).append(i)
    families, predicted = {}, kernel_part + overhead
    for family, index in sorted(members.items()):
        if len({rows[i]["model"] for i in index}) < MIN_FAMILY_MODELS:
            continue
        own = sorted({k for i in index for k in rows[i]["counts"]
                      if FAMILY_KINDS is None or k in FAMILY_KINDS})
        sub = np.array([[rows[i]["counts"].get(k, 0.0) for k in own] + [kernel_part[i]]
                        for i in index])
        goal = target[index] - overhead[index]
        x, _ = nnls(sub * weight[index, None], goal * weight[index],
                    maxiter=50 * (len(own) + 1))
        families[family] = {"coefficients": {k: round(float(v), 4)
                                             for k, v in zip(own, x) if v > 0},
                            "shared": round(float(x[-1]), 4)}
        predicted[index] = sub @ x + overhead[index]
    for row, p in zip(rows, predicted):
        row["predicted"] = float(p)
        row["error"] = float(p / row["measured"] - 1.0) if row["measured"] else 0.0
    coef = dict(zip(names, (float(x) for x in solution)))
    calls = [coef[k] for k in kinds if k.startswith("call:") and coef[k] > 0]
    errors = np.abs([r["error"] for r in rows])
    return {
        "error_spread": round(error_spread(rows), 4),
        "coefficients": {k: round(coef[k], 4) for k in kinds},
        "per_batch": round(coef[BATCH], 4),
        "per_task": round(coef[FIXED], 4),
        "default_call": round(float(np.median(calls)) if calls else 0.0, 4),
        "families": families,
        "median_abs_error": round(float(np.median(errors)), 4),
        "max_abs_error": round(float(np.max(errors)), 4),
    }


def error_spread(rows: list[dict]) -> float:
    """The cost model's relative error of one kernel family's instructions, as a spread:
    the root mean square of the tasks' relative residuals, each weighted by its measured
    instructions (a task of 50 instructions says little about a model's total).
    :func:`tvm_intermittent.energy.costs.model_error` turns it into a model's."""
    measured = np.array([r["measured"] for r in rows], dtype=float)
    errors = np.array([r["error"] for r in rows], dtype=float)
    return float(np.sqrt(np.sum(measured * errors ** 2) / np.sum(measured)))


def _line(points) -> tuple[float, float]:
    """(fixed, per unit) of a least-squares line through ``(units, instructions)``."""
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    if len(set(x.tolist())) < 2:
        return float(np.mean(y)), 0.0
    slope, intercept = np.polyfit(x, y, 1)
    if slope < 0:  # no cost per unit (noise around a constant), not a negative one
        return float(np.mean(y)), 0.0
    return float(intercept), float(slope)


def _versions() -> dict:
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
            return out.splitlines()[0].strip() if out else "unknown"
        except OSError:
            return "unknown"

    return {"gcc": first_line(["arm-none-eabi-gcc", "--version"]),
            "qemu": first_line(["qemu-system-arm", "--version"])}


def calibrate(names: list[str], capacitors, log=print, rows_path: Path | None = None) -> dict:
    cases = {**_tflite_cases(), **_onnx_cases()}
    samples = []
    with tempfile.TemporaryDirectory(prefix="intm-calibrate-") as tmp:
        for name in names:
            for capacitor in capacitors:
                try:
                    samples.append(measure(name, cases[name], capacitor, Path(tmp)))
                except ti.errors.DoesNotFitError as err:
                    log(f"  {name} at {capacitor} F: skipped ({err})")
                    continue
                last = samples[-1]["rows"]
                log(f"  {name} at {capacitor} F: {len(last)} task(s), "
                    f"{sum(r['measured'] for r in last):,.0f} instructions")
        # The restore's path depends on which slot holds the record (the parity of the
        # commits): the largest of a few models, as a boot's budget must hold the worst.
        sealed, sealed_stores = max(restore_sealed(s) for s in samples[:4])
    rows = [r for s in samples for r in s["rows"]]
    if rows_path is not None:
        rows_path.write_text(json.dumps(rows, indent=0))
    kernel = fit(rows)
    boot = float(np.median([s["boot"] for s in samples]))
    commit = float(np.median([s["commit"] for s in samples]))
    commit_stores = float(np.median([s["commit_stores"] for s in samples]))
    in_fixed, in_per_byte = _line([s["input"] for s in samples])
    out_fixed, out_per_byte = _line([s["output"] for s in samples])
    runtime = costs.RuntimeCosts(
        boot=Work(boot),
        restore=Work(float(sealed), 0.0, float(sealed_stores), 0.0, 4.0 * sealed_stores),
        commit=Work(commit, 0.0, commit_stores, 0.0, 4.0 * commit_stores),
        task_overhead=Work(kernel["per_task"]), tile_overhead=Work(kernel["per_batch"]),
        input_fixed=Work(in_fixed), input_per_byte=Work(in_per_byte),
        output_fixed=Work(out_fixed), output_per_byte=Work(out_per_byte),
        sources={
            "boot": "instructions before the first entry of intm_progress_restore, "
                    "median over the calibration runs (the SRAM scrub is not counted)",
            "restore": "intm_progress_restore's own instructions on a boot that finds "
                       "a sealed record (a run failed right after its last commit), the most "
                       "of four models (the path depends on the slot); NVM "
                       "stores from the plugin's store events in that boot",
            "commit": "intm_progress_commit's own instructions per call; NVM stores from "
                      "the plugin's store events of that function (32-bit words)",
            "task_overhead": "fitted: instructions per task beyond its kernel and commits",
            "tile_overhead": "fitted: instructions per call of a task function (one batch "
                             "of tiles) beyond the kernel's executed nodes, commit excluded",
            "input_fixed": "line through (input bytes, intm_read_inputs entry to the next "
                           "recorded event) over the calibration runs",
            "input_per_byte": "slope of that line",
            "output_fixed": "line through (output bytes, intm_write_outputs entry to the "
                            "exit) over the calibration runs",
            "output_per_byte": "slope of that line",
            "nvm_loads": "the runtime's own NVM loads are not modelled (0): the kernels' "
                         "loads and stores are counted from the TIR, checked against the "
                         "plugin's per-task counts in checks.nvm_accesses",
        })
    return {"runtime": runtime.to_dict(),
            "kernel": {k: kernel[k] for k in ("coefficients", "default_call", "families",
                                              "error_spread")},
            "fit": {**{k: kernel[k] for k in ("median_abs_error", "max_abs_error",
                                              "per_batch", "per_task")},
                    "models": len({(r["model"]) for r in rows}), "rows": len(rows),
                    "residuals": [{k: (round(r[k], 4) if isinstance(r[k], float) else r[k])
                                   for k in ("model", "capacitor_f", "task", "kernel",
                                             "tiles", "batches", "measured", "predicted",
                                             "error", "nvm_loads", "nvm_loads_predicted",
                                             "nvm_stores", "nvm_stores_predicted")}
                                  for r in rows]},
            "checks": {"nvm_accesses": nvm_access_check(rows),
                       "nvm_bytes": [
                {"model": s["rows"][0]["model"], "measured": s["nvm_bytes_written"],
                 "kernel_stores_predicted": sum(r["nvm_store_bytes_predicted"]
                                                for r in s["rows"]),
                 "commits": s["commits"]} for s in samples]},
            }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"only {', '.join(QUICK)} at one capacitor (a smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--rows", type=Path,
                        help="also write every measured task (features, measurement) here")
    args = parser.parse_args(argv)
    costs._calibration_text.cache_clear()  # pylint: disable=protected-access
    costs._calibration_text = lambda: json.dumps(_BOOTSTRAP)  # noqa: E731
    board = load_board(BOARD)
    if args.quick:
        names, capacitors = list(QUICK), [None]
    else:
        names = list({**_tflite_cases(), **_onnx_cases()})
        capacitors = [None, board.capacitor_f / 40]
    started = datetime.datetime.now(datetime.timezone.utc)
    result = calibrate(names, capacitors, rows_path=args.rows)
    command = "python scripts/calibrate.py" + (" --quick" if args.quick else "")
    data = {"command": command, "date": started.strftime("%Y-%m-%d %H:%M UTC"),
            "board": BOARD, **_versions(), "isas": {"arm": result}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(args.out)
    fit_ = result["fit"]
    print(f"wrote {args.out}: {fit_['rows']} tasks of {fit_['models']} models, median |error| "
          f"{100 * fit_['median_abs_error']:.1f} %, worst {100 * fit_['max_abs_error']:.1f} %; "
          f"commit {result['runtime']['commit']['instructions']:.0f} instructions")
    nvm = result["checks"]["nvm_accesses"]
    print("NVM accesses counted from the TIR: " + ", ".join(
        f"{what[4:]} exact in {nvm[what]['exact_rows']}/{nvm['rows']} tasks (worst "
        f"{100 * nvm[what]['max_abs_error']:.1f} %)" for what in ("nvm_loads", "nvm_stores")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure a built candidate on QEMU: the artifact directory and :func:`measure_artifact`.

The builder (:class:`.builder.CandidateBuilder`) leaves one directory per candidate::

    <artifact>/project/        the exported C project (model.json, Makefile, sources)
    <artifact>/measure.json    board, power environment, input file, the candidate's kernel,
                               knobs and task indices
    <artifact>/inputs.npz      the inputs of the measured inference (arr_0, arr_1, ...)

and :func:`measure_artifact` needs nothing else, so a remote measurement server (TVM's RPC
tracker, ``tuning.rpc``) can run it on a copy of that directory. It runs the firmware once
without failures (exact per-task instructions and NVM traffic, ``RunResult.traffic_by_task``)
and, unless the environment is ``continuous``, once under the environment's capacitor
schedule, whose outputs must equal the continuous run's. ``run_secs`` is the measured
end-to-end latency under the environment: the active time of all the work executed (lost
work included, :func:`..energy.model.seconds`) plus the recharge time after each failure,
the accounting of :class:`~..sim.report.IntermittentReport`.

Every runner leaves the result as ``<artifact>/measured.json`` too; the tuner copies it into
the tuning log's sidecar (:mod:`.log`), which the operator table and the cost models read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError, SimulationError

MEASURE_FILE = "measure.json"
MEASURED_FILE = "measured.json"
INPUTS_FILE = "inputs.npz"
PROJECT_DIR = "project"


def write_measure_spec(directory, *, board: str, environment, inputs, kernel: str,
                       knobs: dict, indices: list, timeout: float = 600.0) -> Path:
    """Write ``measure.json`` and ``inputs.npz`` beside an exported ``project/``
    (``environment``: a :class:`.objective.TuningEnvironment`)."""
    directory = Path(directory)
    np.savez(directory / INPUTS_FILE, *[np.asarray(x) for x in inputs])
    spec = {"board": board, "power_env": environment.name,
            "capacitor_f": environment.capacitor_f, "inputs": INPUTS_FILE,
            "kernel": kernel, "knobs": dict(knobs), "tasks": list(indices),
            "timeout": float(timeout)}
    (directory / MEASURE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    return directory


def _work_dict(work) -> dict:
    return {"instructions": int(work.instructions), "nvm_loads": int(work.nvm_loads),
            "nvm_stores": int(work.nvm_stores), "nvm_load_bytes": int(work.nvm_load_bytes),
            "nvm_store_bytes": int(work.nvm_store_bytes)}


def measure_artifact(path) -> dict:
    """Run one built candidate on QEMU and return what it measured (JSON-able).

    Parameters
    ----------
    path : str or Path
        The builder's artifact directory (see the module docstring).

    Returns
    -------
    dict
        ``run_secs`` (a one-element list: the latency under the environment, seconds),
        ``instructions`` and ``boots``, ``failures``, ``finished`` of the run under the
        environment, ``continuous_instructions``, ``tasks`` (task index as a string ->
        ``instructions, nvm_loads, nvm_stores, nvm_load_bytes, nvm_store_bytes`` of its
        batches in the continuous run, commits excluded), ``kernel``, ``knobs``, ``board``,
        ``power_env``, ``active_seconds``, ``recharge_seconds``, ``wall_seconds``.

    Raises
    ------
    InputError
        The directory is not a candidate artifact.
    SimulationError
        From the runs; and when the run under failures does not finish or its outputs
        differ from the continuous run's (a candidate that is wrong is never fast).
    """
    # pylint: disable=import-outside-toplevel
    from .. import sim
    from ..board import load_board
    from ..energy.model import seconds
    from .objective import environment

    directory = Path(path)
    try:
        spec = json.loads((directory / MEASURE_FILE).read_text())
        with np.load(directory / spec["inputs"]) as data:
            inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{str(directory)!r} is not a tuning candidate's artifact "
                         f"({type(err).__name__}: {err})") from err
    board = load_board(spec["board"])
    env = (environment(capacitor=spec["capacitor_f"]) if spec.get("capacitor_f") is not None
           else environment(spec["power_env"]))
    project = directory / PROJECT_DIR
    timeout = float(spec.get("timeout", 600.0))
    steady = sim.run(project, inputs, timeout=timeout)
    wall = steady.seconds
    tasks = {str(i): _work_dict(w) for i, w in sorted(steady.traffic_by_task.items())}
    result = {"kernel": spec["kernel"], "knobs": spec["knobs"], "board": board.name,
              "power_env": env.name, "continuous_instructions": int(steady.instructions_total),
              "tasks": tasks, "measured_tasks": list(spec["tasks"])}
    if env.continuous:
        run, recharge = steady, 0.0
    else:
        schedule = env.schedule(board)
        run = sim.run(project, inputs, timeout=timeout, power=schedule)
        wall += run.seconds
        if not run.finished:
            raise SimulationError(f"candidate {spec['kernel']} {spec['knobs']}: the firmware "
                                  f"did not finish under {env.name} ({run.stop_reason})")
        if not all(np.array_equal(a, b) for a, b in zip(run.outputs, steady.outputs)):
            raise SimulationError(f"candidate {spec['kernel']} {spec['knobs']}: outputs under "
                                  f"{env.name} differ from the continuous run's")
        recharge = float(sum(schedule.recharge_seconds(run.failures))) if run.failures else 0.0
    active = seconds(board, sim.measured_work(run))
    result.update({"run_secs": [active + recharge], "active_seconds": active,
                   "recharge_seconds": recharge, "instructions": int(run.instructions_total),
                   "boots": int(run.boots), "failures": int(run.failures),
                   "finished": bool(run.finished), "wall_seconds": wall})
    (directory / MEASURED_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result

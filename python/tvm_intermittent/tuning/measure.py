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

The run under failures is capped relative to the model's own work (:class:`MeasurementCap`):
at a small multiple of the boots the continuous run's energy needs from the environment's
charges, plus a margin, and at a multiple of the continuous run's wall time, as
``bench/smallest_capacitor.py`` stops its runs. A candidate that would need more (one that
commits so often that its boots outnumber its work several times over) is far slower than
any tiling worth applying; the cap cuts it in seconds and it fails with the reason
(:class:`CandidateCutError`), where a fixed cap of 10,000 boots let it run for minutes.

Every runner leaves the result as ``<artifact>/measured.json`` too; the tuner copies it into
the tuning log's sidecar (:mod:`.log`), which the operator table and the cost models read.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputError, SimulationError

MEASURE_FILE = "measure.json"
MEASURED_FILE = "measured.json"
INPUTS_FILE = "inputs.npz"
PROJECT_DIR = "project"


class CandidateCutError(SimulationError):
    """A run under failures stopped by the :class:`MeasurementCap` (boots or time): the
    candidate is far slower than the model's energy allows a useful tiling to be."""


@dataclasses.dataclass(frozen=True)
class MeasurementCap:
    """Where a candidate's run under failures is stopped, relative to the model's own work.

    ``max_boots = boots_factor * ceil(E / charge) + boots_margin``, with ``E`` the energy
    of the continuous run (its measured instructions and NVM traffic, :mod:`..energy.model`)
    and ``charge`` the energy of one charge of the environment's capacitor: an upper
    estimate of the boots a tiling without overhead needs, since the harvest while computing
    is ignored. A candidate at the cap has spent ``boots_factor`` times that many charges,
    each with its recharge time, so its latency is several times any useful tiling's; the
    margin keeps models of a few charges from being cut by a boot or two of restore.
    ``timeout = timeout_factor * (continuous run's wall seconds) + timeout_margin_s``,
    at most the spec's own timeout.
    """

    boots_factor: float = 3.0
    boots_margin: int = 20
    timeout_factor: float = 20.0
    timeout_margin_s: float = 60.0

    def max_boots(self, energy_j: float, charge_j: float) -> int:
        """The boots a run may take: see the class docstring."""
        charges = math.ceil(energy_j / charge_j) if charge_j > 0 else 1
        return max(1, int(self.boots_factor * charges) + int(self.boots_margin))

    def timeout(self, continuous_seconds: float, limit: float) -> float:
        """Seconds the run under failures may take, at most ``limit``."""
        return min(float(limit), self.timeout_factor * continuous_seconds
                   + self.timeout_margin_s)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: The cap every candidate is measured under unless its spec says otherwise.
DEFAULT_CAP = MeasurementCap()


def write_measure_spec(directory, *, board: str, environment, inputs, kernel: str,
                       knobs: dict, indices: list, timeout: float = 600.0,
                       cap: MeasurementCap | None = None) -> Path:
    """Write ``measure.json`` and ``inputs.npz`` beside an exported ``project/``
    (``environment``: a :class:`.objective.TuningEnvironment`; ``cap``: where its run
    under failures is stopped, default :data:`DEFAULT_CAP`)."""
    directory = Path(directory)
    np.savez(directory / INPUTS_FILE, *[np.asarray(x) for x in inputs])
    spec = {"board": board, "power_env": environment.name,
            "capacitor_f": environment.capacitor_f, "inputs": INPUTS_FILE,
            "kernel": kernel, "knobs": dict(knobs), "tasks": list(indices),
            "timeout": float(timeout), "cap": (cap or DEFAULT_CAP).to_dict()}
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
    CandidateCutError
        The run under failures reached the cap (:class:`MeasurementCap`); the message gives
        the boots it took and the cap's reasoning.
    SimulationError
        From the runs; and when the run under failures does not finish otherwise (no
        progress in a boot) or its outputs differ from the continuous run's (a candidate
        that is wrong is never fast).
    """
    # pylint: disable=import-outside-toplevel
    from .. import sim
    from ..board import load_board
    from ..energy.model import energy_j, seconds
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
    what = ("the default build" if spec["kernel"] == "*"
            else f"candidate {spec['kernel']} {spec['knobs']}")
    if env.continuous:
        run, recharge = steady, 0.0
    else:
        schedule = env.schedule(board)
        cap = MeasurementCap(**spec.get("cap", {}))
        energy = energy_j(board, sim.measured_work(steady))
        max_boots = cap.max_boots(energy, schedule.charge_energy_j)
        limit = cap.timeout(steady.seconds, timeout)
        why = (f"the cap of {max_boots:,} boots is {cap.boots_factor:g} x the "
               f"{math.ceil(energy / schedule.charge_energy_j):,} charges the continuous "
               f"run's energy needs + {cap.boots_margin}")
        try:
            run = sim.run(project, inputs, timeout=limit, power=schedule, max_boots=max_boots)
        except SimulationError as err:
            if limit < timeout and "did not finish within" in str(err):
                raise CandidateCutError(
                    f"{what}: cut after {limit:.3g} s under {env.name}, {cap.timeout_factor:g} "
                    f"x the continuous run's {steady.seconds:.3g} s + "
                    f"{cap.timeout_margin_s:g} s") from None
            raise
        wall += run.seconds
        if not run.finished and run.stop_reason == "max_boots":
            raise CandidateCutError(f"{what}: cut after {run.boots:,} boots under {env.name} "
                                    f"without finishing ({why})")
        if not run.finished:
            raise SimulationError(f"{what}: the firmware did not finish under {env.name} "
                                  f"({run.stop_reason}, {run.boots:,} boots)")
        if not all(np.array_equal(a, b) for a, b in zip(run.outputs, steady.outputs)):
            raise SimulationError(f"{what}: outputs under {env.name} differ from the "
                                  "continuous run's")
        recharge = float(sum(schedule.recharge_seconds(run.failures))) if run.failures else 0.0
    active = seconds(board, sim.measured_work(run))
    result.update({"run_secs": [active + recharge], "active_seconds": active,
                   "recharge_seconds": recharge, "instructions": int(run.instructions_total),
                   "boots": int(run.boots), "failures": int(run.failures),
                   "finished": bool(run.finished), "wall_seconds": wall,
                   "max_boots": None if env.continuous else max_boots})
    (directory / MEASURED_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result

"""What power failures cost a firmware: re-executed work, IMO and modeled latency.

An :class:`IntermittentReport` puts three runs side by side:

* the failure run: the firmware under a power schedule;
* the continuous run of the same firmware (same build and mode, no failures): what its
  commits and restores cost when nothing fails;
* the continuous run of the uninstrumented firmware (mode ``"restart"``: no commits, no
  restores): the baseline that IMO is measured against.

The instruction accounting, with ``T`` the failure run's total, ``C`` the same firmware's
continuous total and ``U`` the uninstrumented continuous total (all without the SRAM
scrub, which stands for the loss of SRAM and not for work):

* **extra boot work**: what the boots after the first spend before they can resume. Each
  boot runs the same startup code (reset handler, ``.data``/``.bss``, platform) up to the
  restore function; the continuous run measures that startup as ``S``, the instructions
  before the restore function's first instruction. A boot cut short runs only part of
  it, so boot ``i > 1`` adds ``min(instructions of boot i, S)``. To that come the restore
  function's instructions beyond the single restore of the continuous run.
* **re-executed**: ``T - C - extra boot work``: work done again because a failure lost it,
  i.e. everything computed (and committed-to-be) after the last commit before each
  failure, plus the few harness instructions every resumed boot repeats (such as the
  calls of ``intm_mark``). Callees of the restore function count here too, since only its
  own body is measured.
* **IMO** (intermittency management overhead, as in TiNAS): ``(T - U) / T``, the share of
  the instructions under failures that a device with continuous power and no
  checkpointing would not have executed.

The same in energy, with NVM traffic charged (:mod:`~tvm_intermittent.energy.model`): the
failure run's measured work (instructions and NVM loads and stores, ``RunResult.traffic``)
in instruction-equivalents ``E_T``, against the baseline's ``E_U``, and **energy IMO**
``(E_T - E_U) / E_T``. The baseline is the uninstrumented firmware as a device without
intermittency would build it: with its activation arena in SRAM where the arena fits the
board's SRAM beside what the firmware already keeps there (:func:`arena_fits_sram`), its
NVM accesses then charged as SRAM accesses, i.e. free; otherwise in NVM, charged as
measured. ``baseline_arena`` says which.

Modeled latency on the board: the active time of the measured work,
:func:`~tvm_intermittent.energy.model.seconds` (instructions times CPI plus NVM wait
states, over the clock), plus the time to recharge the capacitor after each failure (from
the :class:`~tvm_intermittent.sim.power.Capacitor` schedule; zero for the other schedules,
which know nothing about energy).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..board import Board, load_board
from ..energy.model import Work, energy_j, instruction_equivalents, seconds
from .qemu import DEFAULT_TIMEOUT_S, PROGRESS_FUNCTIONS, RunResult, run

COMMIT_FUNCTION, RESTORE_FUNCTION = PROGRESS_FUNCTIONS


@dataclasses.dataclass
class IntermittentReport:
    """A failure run measured against continuous runs (see the module docstring).

    Attributes
    ----------
    board : str
        The board profile the latency is modeled on.
    schedule : dict
        The power schedule of the failure run.
    mode : str or None
        The firmware variant of the failure run.
    finished : bool
        Whether the failure run wrote its outputs.
    stop_reason : str or None
        Why it did not finish (``"max_boots"`` or ``"no_progress"``).
    outputs : list of numpy.ndarray or None
        The failure run's outputs.
    outputs_match : bool
        Whether they equal the reference exactly.
    boots, failures : int
        Boots (the first included) and power failures of the failure run.
    instructions_total : int
        Instructions under failures, all boots.
    instructions_continuous : int
        The same firmware without failures.
    instructions_uninstrumented : int
        The uninstrumented (``"restart"``) firmware without failures.
    instructions_reexecuted : int
        Work done again after failures.
    instructions_boot : int
        Extra boot work: startup and restore of the boots after the first.
    instructions_commit, instructions_restore : int
        Instructions inside the commit and restore functions under failures.
    imo : float
        ``(instructions_total - instructions_uninstrumented) / instructions_total``.
    nvm_bytes_written : int
        Bytes stored into NVM under failures.
    active_seconds, recharge_seconds, latency_seconds : float
        Modeled time computing (the measured work on the board), recharging, and their sum.
    nvm_loads, nvm_stores, nvm_load_bytes : int
        NVM load and store accesses and bytes loaded under failures (``nvm_bytes_written``
        the bytes stored).
    nvm_counted : bool
        Whether the simulator counted NVM accesses (QEMU does, mspdebug does not: then
        they are zero and charged nothing).
    energy_j : float
        Modeled energy of the failure run's work (recharging not included).
    equivalents_total, equivalents_uninstrumented : float
        ``E_T`` and ``E_U``: the failure run's and the baseline's energy in
        instruction-equivalents.
    imo_energy : float
        ``(E_T - E_U) / E_T``.
    baseline_arena : str
        ``"sram"`` or ``"nvm"``: where the baseline keeps its activation arena.
    """

    board: str
    schedule: dict
    mode: str | None
    finished: bool
    stop_reason: str | None
    outputs: list | None
    outputs_match: bool
    boots: int
    failures: int
    instructions_total: int
    instructions_continuous: int
    instructions_uninstrumented: int
    instructions_reexecuted: int
    instructions_boot: int
    instructions_commit: int
    instructions_restore: int
    imo: float
    nvm_bytes_written: int
    active_seconds: float
    recharge_seconds: float
    latency_seconds: float
    nvm_loads: int = 0
    nvm_stores: int = 0
    nvm_load_bytes: int = 0
    nvm_counted: bool = False
    energy_j: float = 0.0
    equivalents_total: float = 0.0
    equivalents_uninstrumented: float = 0.0
    imo_energy: float = 0.0
    baseline_arena: str = "nvm"

    @classmethod
    def from_runs(cls, failed: RunResult, continuous: RunResult,
                  uninstrumented: RunResult | None = None, *, board, schedule=None,
                  reference=None, commit: str = COMMIT_FUNCTION,
                  restore: str = RESTORE_FUNCTION,
                  manifest: dict | None = None) -> "IntermittentReport":
        """Account for a failure run.

        Parameters
        ----------
        failed : RunResult
            The run under failures.
        continuous : RunResult
            The same firmware without failures.
        uninstrumented : RunResult, optional
            The ``"restart"`` firmware without failures; defaults to ``continuous`` (for a
            firmware that has no other variant).
        board : str or Board
            Profile for the modeled latency.
        schedule : Schedule, optional
            The failure run's schedule, for its recharge times.
        reference : list of numpy.ndarray, optional
            Expected outputs; defaults to the uninstrumented run's.
        commit, restore : str
            Names of the progress record's commit and restore functions, as counted by
            :func:`~tvm_intermittent.sim.run`.
        manifest : dict, optional
            The project's ``model.json``, for where the baseline's arena fits
            (:func:`arena_fits_sram`); without it the baseline keeps its arena in NVM.
        """
        board = load_board(board)
        uninstrumented = continuous if uninstrumented is None else uninstrumented
        reference = uninstrumented.outputs if reference is None else reference
        total, same = failed.instructions_total, continuous.instructions_total
        restore_failed = failed.range_instructions.get(restore, 0)
        startup = continuous.range_first.get(restore) or 0
        boot_work = (sum(min(n, startup) for n in failed.per_boot_instructions[1:])
                     + restore_failed - continuous.range_instructions.get(restore, 0))
        work = measured_work(failed)
        arena = "sram" if manifest is not None and arena_fits_sram(manifest, board) else "nvm"
        baseline = measured_work(uninstrumented)
        if arena == "sram":  # its arena's accesses are SRAM accesses: inside the CPI
            baseline = Work(instructions=baseline.instructions)
        e_total = instruction_equivalents(board, work)
        e_base = instruction_equivalents(board, baseline)
        active = seconds(board, work)
        recharge = float(sum(schedule.recharge_seconds(failed.failures))) if schedule else 0.0
        return cls(
            board=board.name,
            schedule=failed.schedule or {},
            mode=failed.mode,
            finished=failed.finished,
            stop_reason=failed.stop_reason,
            outputs=failed.outputs,
            outputs_match=_outputs_equal(failed.outputs, reference),
            boots=failed.boots,
            failures=failed.failures,
            instructions_total=total,
            instructions_continuous=same,
            instructions_uninstrumented=uninstrumented.instructions_total,
            instructions_reexecuted=max(0, total - same - boot_work),
            instructions_boot=boot_work,
            instructions_commit=failed.range_instructions.get(commit, 0),
            instructions_restore=restore_failed,
            imo=(total - uninstrumented.instructions_total) / total if total else 0.0,
            nvm_bytes_written=failed.nvm_bytes_written or 0,
            active_seconds=active,
            recharge_seconds=recharge,
            latency_seconds=active + recharge,
            nvm_loads=int(work.nvm_loads),
            nvm_stores=int(work.nvm_stores),
            nvm_load_bytes=int(work.nvm_load_bytes),
            nvm_counted=failed.traffic is not None,
            energy_j=energy_j(board, work),
            equivalents_total=e_total,
            equivalents_uninstrumented=e_base,
            imo_energy=(e_total - e_base) / e_total if e_total else 0.0,
            baseline_arena=arena,
        )

    def to_dict(self) -> dict:
        """JSON-friendly: outputs become nested lists."""
        data = dataclasses.asdict(self)
        if self.outputs is not None:
            data["outputs"] = [np.asarray(o).tolist() for o in self.outputs]
        return data

    def render(self) -> str:
        """A short text table for the console."""
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in self.schedule.items()
                           if k not in ("kind", "board") and v is not None)
        kind = self.schedule.get("kind", "?") + (f" ({params})" if params else "")
        if self.finished:
            status = f"yes, {self.boots} boots, {self.failures} power failures"
        else:
            status = f"NO: stopped ({self.stop_reason}) after {self.boots} boots"
        rows = [
            ("finished", status),
            ("outputs", "match the reference" if self.outputs_match
             else "DIFFER from the reference"),
            ("instructions", f"{self.instructions_total:,} under failures"),
            ("  continuous", f"{self.instructions_continuous:,} (same firmware, no failures)"),
            ("  uninstrumented", f"{self.instructions_uninstrumented:,} (restart firmware, "
                                 "no failures)"),
            ("  re-executed", f"{self.instructions_reexecuted:,}"),
            ("  extra boot work", f"{self.instructions_boot:,}"),
            ("  commit", f"{self.instructions_commit:,}"),
            ("  restore", f"{self.instructions_restore:,}"),
            ("IMO", f"{100 * self.imo:.2f} % of instructions"),
            ("IMO in energy", f"{100 * self.imo_energy:.2f} %, "
                              + ("NVM charged: " if self.nvm_counted
                                 else "NVM not counted, instructions only: ")
                              + f"{self.equivalents_total:,.0f} instruction-equivalents against "
                              f"{self.equivalents_uninstrumented:,.0f} (restart firmware, "
                              f"arena in {self.baseline_arena.upper()})"),
            ("NVM read", self._nvm(self.nvm_loads, self.nvm_load_bytes)),
            ("NVM written", self._nvm(self.nvm_stores, self.nvm_bytes_written)),
            ("energy", f"{self.energy_j * 1e3:.4g} mJ computing"),
            ("latency", f"{_seconds(self.latency_seconds)} = {_seconds(self.active_seconds)} "
                        f"active + {_seconds(self.recharge_seconds)} recharging"),
        ]
        title = (f"{self.mode or 'tiles'} firmware on {self.board} under {kind}")
        width = max(len(name) for name, _ in rows) + 2
        return "\n".join([title] + [f"  {name:<{width}}{value}" for name, value in rows])

    __str__ = render

    def _nvm(self, accesses: int, nbytes: int) -> str:
        if not self.nvm_counted:
            return "not counted by this simulator (charged nothing)"
        return f"{accesses:,} accesses, {nbytes:,} bytes"


def measured_work(result: RunResult) -> Work:
    """A run's measured work: ``result.traffic``, or its instructions alone where the
    simulator counted no NVM accesses (mspdebug)."""
    if result.traffic is not None:
        return result.traffic
    return Work(instructions=result.instructions_total or 0)


def arena_fits_sram(manifest: dict, board: Board | str) -> bool:
    """Whether the model's activation arena fits the board's SRAM beside what the firmware
    already keeps there: the stack reserve, the runtime's variables and the kernels' static
    scratch (the compiler's own SRAM accounting, ``builder._check_memory``).

    Parameters
    ----------
    manifest : dict
        The project's ``model.json`` (``arena_bytes``, ``kernel_static_scratch_bytes``); False
        when it has no ``arena_bytes``.
    board : Board or str
    """
    # pylint: disable=import-outside-toplevel
    from ..builder import RUNTIME_SRAM_BYTES, STACK_RESERVE_BYTES

    if "arena_bytes" not in manifest:
        return False  # a hand-written project: nothing says where its arena could go
    board = load_board(board)
    used = (STACK_RESERVE_BYTES + RUNTIME_SRAM_BYTES
            + int(manifest.get("kernel_static_scratch_bytes", 0)))
    return int(manifest["arena_bytes"]) + used <= board.sram_bytes


def _outputs_equal(outputs, reference) -> bool:
    if outputs is None or reference is None or len(outputs) != len(reference):
        return False
    return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(outputs, reference))


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def measure_intermittent(project_dir, inputs, power, *, board, reference=None,
                         mode: str | None = None, max_boots: int | None = None,
                         timeout: float = DEFAULT_TIMEOUT_S, commit: str = COMMIT_FUNCTION,
                         restore: str = RESTORE_FUNCTION) -> IntermittentReport:
    """Run the firmware under ``power`` and continuously, and account for the difference.

    Three QEMU runs: ``mode`` under ``power``, ``mode`` without failures, and the
    ``"restart"`` firmware without failures (one run fewer when ``mode`` is ``"restart"``).

    Parameters
    ----------
    project_dir, inputs, mode, max_boots, timeout
        As for :func:`~tvm_intermittent.sim.run`.
    power : Schedule
        The power-failure schedule.
    board : str or Board
        Profile for the modeled latency (and usually the schedule's board).
    reference : list of numpy.ndarray, optional
        Expected outputs; defaults to the uninstrumented run's.
    commit, restore : str
        The progress record's commit and restore functions.

    Returns
    -------
    IntermittentReport

    Examples
    --------
    .. code-block:: python

        board = load_board("msp430fr5994")
        report = sim.measure_intermittent("out/kws", [x], sim.Capacitor(board), board=board)
        print(report)
    """
    functions = (commit, restore)
    options = dict(timeout=timeout, max_boots=max_boots, functions=functions)
    failed = run(project_dir, inputs, power=power, mode=mode, **options)
    continuous = run(project_dir, inputs, mode=mode, **options)
    uninstrumented = (continuous if mode == "restart"
                      else run(project_dir, inputs, mode="restart", **options))
    manifest = json.loads((Path(project_dir) / "model.json").read_text())
    report = IntermittentReport.from_runs(failed, continuous, uninstrumented, board=board,
                                          schedule=power, reference=reference, commit=commit,
                                          restore=restore, manifest=manifest)
    report.failure_run = failed  # not a field: kept for timelines, left out of to_dict()
    return report

"""The power cycles of a run over modeled time, and their plot.

From a run under a :class:`~tvm_intermittent.sim.power.Capacitor` schedule: each boot runs
on one charge, draining it by the energy of its instructions and NVM accesses
(:func:`~tvm_intermittent.energy.model.energy_j` of the boot's measured work); after a power
failure the capacitor recharges from the harvester. The timeline places every boot, every
commit and the capacitor's usable energy on one time axis, in the board's seconds (a boot's
active time from the same model; a commit inside a boot is placed by the share of the
boot's instructions before it).
"""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np

from ..board import Board
from ..energy.model import Work, energy_j, seconds


@dataclasses.dataclass
class Timeline:
    """Sampled energy, boot times and commit times of one run."""

    times: np.ndarray  # seconds
    energy_j: np.ndarray  # usable energy left in the capacitor
    boot_times: list[float]
    commit_times: list[float]
    full_energy_j: float
    finished: bool

    def progress(self) -> tuple[np.ndarray, np.ndarray]:
        """Step line: fraction of all commits done by each commit's time."""
        n = len(self.commit_times)
        return np.asarray(self.commit_times), np.arange(1, n + 1) / max(n, 1)


def power_timeline(result, schedule, board: Board) -> Timeline:
    """Build the timeline of ``result`` (a RunResult) under ``schedule`` (a Capacitor)."""
    full = schedule.charge_energy_j
    recharge = schedule.recharge_seconds(result.failures)
    # The harvester keeps charging while the device computes, so a boot spends its budget
    # (more than one charge) before it browns out: the charge falls by the work's energy
    # times charge / budget (nothing when the harvest keeps up with the load).
    budgets = schedule.budgets(len(result.per_boot_instructions))
    drain = [full / (b * board.energy_per_instruction_j) for b in budgets]
    times, energy, boots, starts = [], [], [], []
    clock, first_instruction = 0.0, 0
    for i, count in enumerate(result.per_boot_instructions):
        work = _boot_work(result, i)
        active = seconds(board, work)
        boots.append(clock)
        starts.append((clock, first_instruction, count, active))
        times += [clock, clock + active]
        share = drain[i] if i < len(drain) else 0.0
        energy += [full, max(full - energy_j(board, work) * share, 0.0)]
        clock += active
        first_instruction += count
        if i < len(recharge):
            times.append(clock + recharge[i])
            energy.append(full)
            clock += recharge[i]
    commit_times = []
    for c in result.commits:
        index = max(k for k, start in enumerate(starts) if start[1] <= c) if starts else 0
        start_time, first, count, active = starts[index] if starts else (0.0, 0, 0, 0.0)
        commit_times.append(start_time + (active * (c - first) / count if count else 0.0))
    return Timeline(np.asarray(times), np.asarray(energy), boots, commit_times, full,
                    result.finished)


def _boot_work(result, index: int) -> Work:
    """The measured work of boot ``index`` (NVM accesses where the run counted them)."""
    def at(values):
        return values[index] if index < len(values) else 0

    return Work(instructions=result.per_boot_instructions[index],
                nvm_loads=at(result.per_boot_nvm_loads),
                nvm_stores=at(result.per_boot_nvm_stores),
                nvm_load_bytes=at(result.per_boot_nvm_load_bytes),
                nvm_store_bytes=at(result.per_boot_nvm_bytes))


def plot_power_cycles(timeline: Timeline, path, title: str = "") -> None:
    """Write a PNG: capacitor energy over time, each boot, and the progress line."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, energy_axis = plt.subplots(figsize=(9, 4.2), dpi=110)
    energy_axis.plot(timeline.times, timeline.energy_j * 1e6, color="tab:orange", lw=1.2,
                     label="usable energy in the capacitor")
    energy_axis.set_xlabel("time on the board (s)")
    energy_axis.set_ylabel("energy (µJ)", color="tab:orange")
    energy_axis.set_ylim(0, timeline.full_energy_j * 1e6 * 1.08)
    for i, t in enumerate(timeline.boot_times):
        energy_axis.axvline(t, color="grey", lw=0.6, ls=":",
                            label="boot (power on)" if i == 0 else None)
    progress_axis = energy_axis.twinx()
    times, fraction = timeline.progress()
    if len(times):
        progress_axis.step(np.concatenate([[0.0], times]), np.concatenate([[0.0], fraction]),
                           where="post", color="tab:blue", lw=1.4, label="progress (commits)")
    progress_axis.set_ylim(0, 1.05)
    progress_axis.set_ylabel("inference committed (fraction)", color="tab:blue")
    handles = energy_axis.get_legend_handles_labels()
    more = progress_axis.get_legend_handles_labels()
    energy_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="lower right",
                       fontsize=8, framealpha=0.9)
    if title:  # wrapped: a schedule's parameters make a long title
        energy_axis.set_title("\n".join(textwrap.wrap(title, 120)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

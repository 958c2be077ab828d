"""Named power environments: a capacitor, its turn-on and brown-out voltages, a harvester.

An environment is everything about a device's power that is not the board: how large its
capacitor is, when it turns on and browns out, and what charges it. The simulator and the
predictor read an environment the same way, through :meth:`PowerEnvironment.schedule`,
so the budget each boot gets and the recharge time after each failure are one function
of (environment, board) for both. The presets (see ``docs/power.md`` for their numbers):

* ``board``: the board profile's own capacitor, voltages and constant harvested power;
* ``inas-1mF``, ``inas-5mF``, ``inas-10mF``: the iNAS bench setup, a 3.0 V supply through
  a 1 kohm resistor into 1, 5 or 10 mF, on at 2.99 V, off at 2.8 V;
* ``tinas-5mF``: the TiNAS bench setup, 5.892 V through 2,800 ohm into 5 mF, on at
  4.535 V, off at 3.29 V;
* ``office-solar``: an indoor photovoltaic cell under office lamps and window daylight, a
  generated 24 h trace of a few hundred uW;
* ``rf-bursty``: a Powercast-like 915 MHz harvester a few metres from a transmitter that
  comes and goes, a generated trace of tens of uW.

:func:`from_args` is the one place that turns the command line's options (``--power-env``,
``--capacitor``, ``--harvest``, ``--trace``) into an environment.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..board import Board, load_board
from ..errors import InputError
from .harvesters import ConstantPower, Harvester, PowerTrace, ResistorSupply, TraceHarvester
from .power import Capacitor, parse_capacitance, parse_power


@dataclasses.dataclass(frozen=True)
class PowerEnvironment:
    """A capacitor, its thresholds and its harvester; ``None`` fields are the board's.

    Attributes
    ----------
    name, description : str
        The preset's name (``--power-env``) and one line about it.
    capacitor_f : float or None
        Farads.
    v_on, v_off : float or None
        Turn-on and brown-out voltages.
    harvester : Harvester or None
        What charges the capacitor (None: the board's constant ``harvest_w``).
    sources : dict
        Where every number comes from.
    """

    name: str
    description: str
    capacitor_f: float | None = None
    v_on: float | None = None
    v_off: float | None = None
    harvester: Harvester | None = None
    sources: dict = dataclasses.field(default_factory=dict, compare=False)

    def schedule(self, board) -> Capacitor:
        """The per-run schedule on ``board``: each boot's budget and each recharge time."""
        return Capacitor(load_board(board), capacitor_f=self.capacitor_f, v_on=self.v_on,
                         v_off=self.v_off, harvester=self.harvester, environment=self.name)

    def for_board(self, board) -> "PowerEnvironment":
        """This environment with the board's values in place of every ``None``."""
        schedule = self.schedule(board)
        return dataclasses.replace(self, capacitor_f=schedule.farads, v_on=schedule.turn_on_v,
                                   v_off=schedule.brown_out_v, harvester=schedule.harvester)

    def power_cycle_budget(self, board) -> int:
        """Instruction-equivalents tiles are sized for: the least budget of any boot.

        When the harvest sustains the board (it never browns out), the charge alone, so
        that the tiles still fit wherever the harvest dips (:meth:`sizing_note` says so).
        """
        schedule = self.schedule(board)
        budget = schedule.guaranteed_budget
        if budget is None:
            return int(schedule.charge_energy_j / schedule.board.energy_per_instruction_j)
        return budget

    def tile_budget(self, board) -> int:
        """:meth:`power_cycle_budget` in the tiler's (Cortex-M4) instructions."""
        board = load_board(board)
        return int(self.power_cycle_budget(board) / board.instruction_scale)

    def sizing_note(self, board) -> str | None:
        """Why tiles are sized for less than the first boot's budget, or None."""
        schedule = self.schedule(board)
        if schedule.sustained:
            return (f"power environment {self.name}: the harvest keeps up with the "
                    f"{schedule.board.active_power_w * 1e3:.3g} mW of board "
                    f"{schedule.board.name}, which never browns out; tiles are sized for one "
                    f"charge alone ({self.power_cycle_budget(board):,} instruction-"
                    "equivalents), so that they also fit where the harvest dips")
        if schedule.guaranteed_budget != schedule.budget:
            return (f"power environment {self.name}: the budget varies from boot to boot "
                    f"along the trace; tiles are sized for the least any boot gets, "
                    f"{schedule.guaranteed_budget:,} instruction-equivalents (the first boot "
                    f"gets {schedule.budget:,})")
        return None

    def summary(self, board) -> dict:
        """The numbers of this environment on ``board``: what ``power-envs`` lists."""
        schedule = self.schedule(board)
        recharge = schedule.recharge_seconds(1)
        return {"name": self.name, "board": schedule.board.name,
                "capacitor_f": schedule.farads, "v_on": schedule.turn_on_v,
                "v_off": schedule.brown_out_v, "harvester": schedule.harvester.describe(),
                "charge_energy_j": schedule.charge_energy_j,
                "charge_budget": int(schedule.charge_energy_j
                                     / schedule.board.energy_per_instruction_j),
                "budget": schedule.budget, "guaranteed_budget": schedule.guaranteed_budget,
                "sizing_budget": self.power_cycle_budget(board),
                "boot_seconds": (schedule.boot_seconds(1) or [None])[0],
                "recharge_seconds": recharge[0] if recharge else None,
                "sustained": schedule.sustained}

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "capacitor_f": self.capacitor_f, "v_on": self.v_on, "v_off": self.v_off,
                "harvester": self.harvester.to_dict() if self.harvester else None,
                "sources": dict(self.sources)}


# ---- Generated traces ------------------------------------------------------------------

#: Seeds of the generated traces, so that every run of a preset sees the same trace.
_SOLAR_SEED, _RF_SEED = 20240501, 915


@functools.lru_cache(maxsize=None)
def office_solar_trace() -> PowerTrace:
    """24 h of an indoor photovoltaic cell, one row a minute, from 08:00 (lamps on).

    Lamps give 250 uW from 08:00 to 18:00; daylight through a window adds up to 150 uW
    between 06:00 and 20:00 (a half sine peaking at 13:00); people and blinds shade the
    cell by up to 15 % minute to minute (seeded); between 20:00 and 06:00 it harvests
    nothing.
    """
    minutes = np.arange(24 * 60)
    hour = (8.0 + minutes / 60.0) % 24.0
    lamps = np.where((hour >= 8.0) & (hour < 18.0), 250e-6, 0.0)
    daylight = np.where((hour >= 6.0) & (hour < 20.0),
                        150e-6 * np.sin(np.pi * np.clip(hour - 6.0, 0.0, 14.0) / 14.0), 0.0)
    shade = 1.0 - 0.15 * np.random.default_rng(_SOLAR_SEED).random(minutes.size)
    return PowerTrace(minutes * 60.0, (lamps + daylight) * shade, source="office-solar")


@functools.lru_cache(maxsize=None)
def rf_burst_trace() -> PowerTrace:
    """600 s of a 915 MHz harvester 5 m from a transmitter that is on in bursts, 0.1 s rows.

    The transmitter is on for 0.5 to 3 s, then off for 1 to 6 s (seeded, uniform); while it
    is on the harvester delivers 60 uW on average, each row scaled by a Rayleigh fading
    factor (exponential power, mean 1, capped at 3) as people move around.
    """
    rng = np.random.default_rng(_RF_SEED)
    rows = 6000
    on = np.zeros(rows, dtype=bool)
    row = 0
    while row < rows:
        burst = int(rng.uniform(0.5, 3.0) * 10)
        on[row:row + burst] = True
        row += burst + int(rng.uniform(1.0, 6.0) * 10)
    fading = np.minimum(rng.exponential(1.0, rows), 3.0)
    return PowerTrace(np.arange(rows) * 0.1, np.where(on, 60e-6 * fading, 0.0),
                      source="rf-bursty")


# ---- Presets ---------------------------------------------------------------------------

_INAS_SOURCES = {
    "capacitor_f": "iNAS (Mendis, Kang, Hsiu: Intermittent-Aware Neural Architecture Search, "
                   "ACM TECS 20(5s), 2021): energy budgets of 1, 5 and 10 mF capacitors",
    "v_on, v_off": "iNAS repository, iNAS/settings_files/config_default.json "
                   "(github.com/EMCLab-Sinica/Intermittent-aware-NAS): VON 2.99 V, VOFF 2.8 V",
    "harvester": "the same file: VSUP 3.0 V and REHM 1000 ohm, the equivalent resistance of "
                 "the energy-harvesting unit; iNAS publishes one resistance for every "
                 "capacitor, so the 1 and 10 mF presets use it too",
}


def _inas(farads: float, label: str) -> PowerEnvironment:
    return PowerEnvironment(
        f"inas-{label}", f"iNAS bench: 3.0 V through 1 kohm into {label}, on 2.99 V, off 2.8 V",
        farads, 2.99, 2.8, ResistorSupply(3.0, 1000.0), _INAS_SOURCES)


#: The capacitor and thresholds of the trace presets: iNAS's smallest, so that the three
#: small-capacitor environments differ in their harvester only.
_TRACE_CAPACITOR = (1e-3, 2.99, 2.8)

_PRESETS = (
    PowerEnvironment(
        "board", "the board profile's capacitor, voltages and constant harvested power",
        sources={"all": "the board profile's capacitor_f, v_on, v_off and harvest_w, and "
                        "their sources (tvm-intermittent boards --json)"}),
    _inas(1e-3, "1mF"),
    _inas(5e-3, "5mF"),
    _inas(10e-3, "10mF"),
    PowerEnvironment(
        "tinas-5mF", "TiNAS bench: 5.892 V through 2,800 ohm into 5 mF, on 4.535 V, off 3.29 V",
        5e-3, 4.535, 3.29, ResistorSupply(5.892, 2800.0),
        {"all": "TiNAS (Mendis, Yen, Kang, Hsiu: Intermittent-Friendly Neural Architecture "
                "Search, IEEE TCAD 2025) and its repository, TiNAS/settings.py "
                "(github.com/EMCLab-Sinica/TiNAS): CCAP 0.005 F, VON 4.535 V, VOFF 3.290 V, "
                "VSUP 5.892 V, REHM 2800 ohm (its REHM_TABLE entry for 5 mF)"}),
    PowerEnvironment(
        "office-solar", "indoor photovoltaic cell: office lamps 08:00-18:00 and window "
        "daylight, a generated 24 h trace (mean about 150 uW, peak about 400 uW) into 1 mF",
        *_TRACE_CAPACITOR, TraceHarvester(office_solar_trace(), "office-solar"),
        {"magnitude": "about 10 uW/cm2 from an indoor cell under office lighting (Teran et "
                      "al., IEEE Trans. Electron Devices 62(7), 2015: about 100 nW/mm2 at "
                      "250 lx): a 25 cm2 cell gives 250 uW under the lamps",
         "daylight and shading": "assumption: up to 150 uW more near a window at midday, and "
                                 "up to 15 % shading minute to minute",
         "shape": "generated by sim.environments.office_solar_trace (seeded)",
         "capacitor_f, v_on, v_off": "as inas-1mF"}),
    PowerEnvironment(
        "rf-bursty", "Powercast-like 915 MHz harvester 5 m from a 3 W transmitter that is on "
        "in bursts, a generated 600 s trace (mean about 20 uW) into 1 mF",
        *_TRACE_CAPACITOR, TraceHarvester(rf_burst_trace(), "rf-bursty"),
        {"magnitude": "Friis: a 3 W EIRP transmitter (Powercast TX91501) at 915 MHz gives a "
                      "1.5-gain antenna 5 m away 3 * 1.5 * (0.328 / (4 pi 5))^2 = 120 uW of "
                      "RF; at an assumed 50 % RF-to-DC efficiency of a P2110-class "
                      "harvester (its datasheet: operation down to -11.5 dBm) 60 uW while "
                      "the transmitter is on",
         "bursts and fading": "assumption: on 0.5-3 s, off 1-6 s, Rayleigh fading per 0.1 s",
         "shape": "generated by sim.environments.rf_burst_trace (seeded)",
         "capacitor_f, v_on, v_off": "as inas-1mF"}),
)

PRESETS = {env.name: env for env in _PRESETS}

#: The name that means no power failure at all (``--power-env continuous``): tiles are
#: sized for the board's own capacitor and a tuning log is ranked for continuous power.
CONTINUOUS = "continuous"


def is_continuous(name) -> bool:
    """Whether the power environment ``name`` is :data:`CONTINUOUS` (any case)."""
    return isinstance(name, str) and name.lower() == CONTINUOUS


def names() -> list[str]:
    """The preset names, in the order of the docs."""
    return list(PRESETS)


def get(name: str) -> PowerEnvironment:
    """The preset called ``name`` (case does not matter).

    Raises
    ------
    InputError
        For an unknown name, listing the known ones.
    """
    for known, env in PRESETS.items():
        if str(name).lower() == known.lower():
            return env
    raise InputError(f"unknown power environment {name!r}; known power environments: "
                     f"{', '.join(names())} (see `tvm-intermittent power-envs`)")


def from_args(board=None, power_env=None, capacitor=None, harvest=None,
              trace=None) -> PowerEnvironment:
    """The environment the command line's power options describe.

    Parameters
    ----------
    board : str or Board, optional
        When given, the result has the board's values in place of its ``None`` fields.
    power_env : str, optional
        A preset name (``--power-env``); it sets the capacitor and the harvester, so it
        cannot be combined with the three options below.
    capacitor : str or float, optional
        ``--capacitor`` (``"1mF"``, or farads), with the board's voltages.
    harvest : str or float, optional
        ``--harvest``: constant harvested power (``"2mW"``, or watts).
    trace : str or Path, optional
        ``--trace``: a power trace file (see :class:`PowerTrace`).

    Returns
    -------
    PowerEnvironment
        The preset, ``board`` when nothing is given, or ``custom`` from the options.
    """
    given = [flag for flag, value in (("--capacitor", capacitor), ("--harvest", harvest),
                                      ("--trace", trace)) if value is not None]
    if power_env is not None:
        env = get(power_env)
        if given:
            raise InputError(f"--power-env {env.name} sets the capacitor, its voltages and the "
                             f"harvester; {' and '.join(given)} would contradict it: give "
                             f"either --power-env or {' / '.join(given)}")
    elif not given:
        env = PRESETS["board"]
    else:
        if harvest is not None and trace is not None:
            raise InputError("--harvest and --trace both say what charges the capacitor; give "
                             "one of them")
        harvester = None
        if harvest is not None:
            harvester = ConstantPower(parse_power(harvest))
        elif trace is not None:
            harvester = TraceHarvester(PowerTrace.load(trace))
        env = PowerEnvironment(
            "custom", "given on the command line: " + ", ".join(
                f"{flag} {value}" for flag, value in (("--capacitor", capacitor),
                                                      ("--harvest", harvest),
                                                      ("--trace", trace)) if value is not None),
            capacitor_f=parse_capacitance(capacitor) if capacitor is not None else None,
            harvester=harvester, sources={"all": "the command line; the rest from the board"})
    if board is not None:
        env = env.for_board(board if isinstance(board, Board) else load_board(board))
    return env

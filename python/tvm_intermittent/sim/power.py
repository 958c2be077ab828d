"""Power-failure schedules: how many instructions each boot of the emulated device gets.

A batteryless device computes until its capacitor drains, loses SRAM, recharges and boots
again. The simulator emulates that as a system reset at an exact instruction count (see
``plugin/intm_icount.c``), so a schedule is a list of per-boot instruction budgets: boot 1
runs ``budgets[0]`` instructions and fails, boot 2 runs ``budgets[1]`` and fails, and so
on until the firmware finishes. Every schedule is deterministic, so a failing run can be
replayed exactly:

* :class:`NoFailures` - continuous power;
* :class:`Periodic` - the same budget every boot, the usual stress test;
* :class:`Random` - uniform budgets from a seeded generator (the seed is logged and kept);
* :class:`Capacitor` - the budget of each boot on a capacitor that a harvester charges
  (constant power, a resistor-fed supply or a power trace, :mod:`.harvesters`), the
  harvest while computing included, NVM loads and stores charged by their energy, and the
  recharge time each failure costs; named presets are in :mod:`.environments`;
* :class:`FailAt` - a single failure after exactly ``k`` instructions;
* :class:`FailAtEach` - a failure at each of several instruction counts (a failure during
  the recovery boot after a failure in a commit);
* :class:`Exhaustive` - one :class:`FailAt` run per instruction of a window, to prove a
  commit protocol correct at every possible failure point.

Budgets count instructions since the boot began, without the boot-time SRAM scrub (it
stands for SRAM losing its contents, not for work).
"""

from __future__ import annotations

import dataclasses
import decimal
import logging
import math
import re

import numpy as np

from ..board import Board, load_board
from ..energy.model import access_costs
from ..errors import InputError
from .harvesters import (ConstantPower, Harvester, PowerTrace, TraceHarvester,
                         charge_energy_j)

logger = logging.getLogger(__name__)

#: Failure points one run can take (INTM_MAX_FAIL_POINTS in the plugin).
MAX_FAIL_POINTS = 64

#: Powers of ten of the SI prefixes, applied in decimal so that "100uF" is exactly 1e-4.
_SI_PREFIXES = {"": 0, "p": -12, "n": -9, "u": -6, "µ": -6, "m": -3, "k": 3, "M": 6}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([pnuµmkM]?)(\w*)\s*$")


class Schedule:
    """Base of the per-run schedules: the budget of each boot and what NVM accesses cost.

    Subclasses are frozen dataclasses, so a schedule is a value: equal schedules produce
    equal runs.
    """

    #: Instruction-equivalents of budget that each NVM load / store access costs (see
    #: :class:`Capacitor`); 0 for schedules that know nothing about energy.
    nvm_load_cost: float = 0.0
    nvm_store_cost: float = 0.0

    def budgets(self, count: int) -> list[int]:
        """The instruction budgets of boots 1 to ``count`` (fewer, or none, when the schedule
        stops failing). A prefix never depends on ``count``."""
        raise NotImplementedError

    @property
    def fail_points(self) -> tuple[int, ...]:
        """Failures once this many instructions have run in total (counted from power-on,
        non-decreasing), on top of the budgets; empty for none."""
        return ()

    @property
    def fail_at(self) -> int | None:
        """The first of :attr:`fail_points`, or None."""
        return self.fail_points[0] if self.fail_points else None

    @property
    def injects_failures(self) -> bool:
        """Whether runs under this schedule can lose power at all."""
        return bool(self.fail_points) or bool(self.budgets(1))

    def recharge_seconds(self, failures: int) -> list[float]:
        """Seconds of recharging after each of the first ``failures`` failures (none here:
        only a capacitor model knows about time)."""
        return [0.0] * failures

    def to_dict(self) -> dict:
        """The schedule's kind and parameters, JSON-friendly, for reports and replays."""
        return {"kind": _kind(self), **dataclasses.asdict(self)}


def _kind(schedule) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(schedule).__name__).lower()


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise InputError(f"{what} must be a positive whole number of instructions, got "
                         f"{value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class NoFailures(Schedule):
    """Continuous power: the firmware runs from one boot to its exit."""

    def budgets(self, count: int) -> list[int]:
        return []


@dataclasses.dataclass(frozen=True)
class Periodic(Schedule):
    """The power fails every ``period`` instructions of every boot."""

    period: int

    def __post_init__(self):
        object.__setattr__(self, "period", _positive_int(self.period, "the period"))

    def budgets(self, count: int) -> list[int]:
        return [self.period] * count


@dataclasses.dataclass(frozen=True)
class Random(Schedule):
    """Budgets drawn uniformly from ``[min, max]`` (both included) by a seeded generator.

    ``seed=None`` draws a fresh seed from the operating system; either way the seed is
    logged and kept in :meth:`to_dict`, so any run can be replayed.
    """

    seed: int | None
    min: int
    max: int

    def __post_init__(self):
        low = _positive_int(self.min, "the smallest budget")
        high = _positive_int(self.max, "the largest budget")
        if high < low:
            raise InputError(f"random budgets need min <= max, got min={low}, max={high}")
        seed = np.random.SeedSequence().entropy if self.seed is None else int(self.seed)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "min", low)
        object.__setattr__(self, "max", high)
        logger.info("random power-failure schedule: seed=%d, budgets in [%d, %d]", seed, low,
                    high)

    def budgets(self, count: int) -> list[int]:
        # numpy draws bounded integers one after another, so the first k of `count` values
        # are the k values a shorter call returns.
        rng = np.random.default_rng(self.seed)
        return [int(b) for b in rng.integers(self.min, self.max, size=count, endpoint=True)]


@dataclasses.dataclass(frozen=True)
class FailAt(Schedule):
    """Exactly one failure, before the instruction that would make the total ``k + 1``.

    ``k`` counts every instruction since power-on (without the SRAM scrub); the boot after
    the failure runs to the end.
    """

    k: int

    def __post_init__(self):
        if isinstance(self.k, bool) or int(self.k) != self.k or self.k < 0:
            raise InputError(f"a failure point must be a whole number >= 0, got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))

    def budgets(self, count: int) -> list[int]:
        return []

    @property
    def fail_points(self) -> tuple[int, ...]:
        return (self.k,)


@dataclasses.dataclass(frozen=True)
class FailAtEach(Schedule):
    """One failure at each of ``points``: the ``i``-th once ``points[i]`` instructions have
    run in total since power-on (the SRAM scrub not counted).

    Two-failure schedules such as ``FailAtEach((k1, k2))`` with ``k2`` inside the boot
    that follows ``k1`` check that a failure during recovery loses nothing either; ``k2 ==
    k1`` fails that boot before its first instruction. The points must not decrease.
    """

    points: tuple[int, ...]

    def __post_init__(self):
        points = tuple(self.points)
        if not points or any(isinstance(p, bool) or int(p) != p or p < 0 for p in points):
            raise InputError(f"failure points must be one or more whole numbers >= 0, got "
                             f"{self.points!r}")
        points = tuple(int(p) for p in points)
        if any(b < a for a, b in zip(points, points[1:])):
            raise InputError(f"failure points must not decrease, got {points}")
        if len(points) > MAX_FAIL_POINTS:
            raise InputError(f"at most {MAX_FAIL_POINTS} failure points, got {len(points)}")
        object.__setattr__(self, "points", points)

    def budgets(self, count: int) -> list[int]:
        return []

    @property
    def fail_points(self) -> tuple[int, ...]:
        return self.points


@dataclasses.dataclass(frozen=True)
class Exhaustive:
    """One run per failure point: :class:`FailAt` ``k`` for every ``k`` in ``[A, B)``.

    Not a per-run schedule; :func:`tvm_intermittent.sim.run_exhaustive` runs the window.
    """

    window: tuple[int, int]

    def __post_init__(self):
        start, stop = (int(v) for v in self.window)
        if not 0 <= start < stop:
            raise InputError(f"an exhaustive window A:B needs 0 <= A < B, got {start}:{stop}")
        object.__setattr__(self, "window", (start, stop))

    def points(self) -> range:
        """The failure points, in order."""
        return range(*self.window)

    def schedules(self):
        """One :class:`FailAt` per failure point."""
        return (FailAt(k) for k in self.points())

    def to_dict(self) -> dict:
        return {"kind": "exhaustive", "window": list(self.window)}


@dataclasses.dataclass(frozen=True)
class Capacitor(Schedule):
    """The budget of each boot on a capacitor that a harvester charges, and the recharges.

    The device turns on with the capacitor at ``v_on`` and browns out at ``v_off``. While
    it computes, drawing the board's active power ``P``, the harvester keeps charging, so a
    boot lasts ``d`` seconds (:meth:`~.harvesters.Harvester.discharge_seconds`) and its
    budget is the energy the load draws in that time, ``P d``, in instruction-equivalents
    (``board.energy_per_instruction_j``): more than the charge ``E = C (v_on^2 - v_off^2)
    / 2`` alone pays for. NVM traffic is charged against the same budget by the
    power-failure plugin, per access (:attr:`nvm_load_cost`, :attr:`nvm_store_cost`,
    from :func:`~tvm_intermittent.energy.model.access_costs`). After each failure the capacitor recharges
    from ``v_off`` to ``v_on`` (:meth:`~.harvesters.Harvester.recharge_seconds`); the next
    boot starts when it is full. Boot 1 starts at time 0 with a full capacitor, and for a
    power trace every boot and recharge starts where the one before it ended, so budgets
    and recharge times differ from boot to boot. The recharge times feed the reports'
    modeled latency; the emulator does not wait.

    A harvest that keeps up with the load means no brown-out at all: the schedule then
    has no failures (:attr:`sustained`, ``budgets`` empty).

    The budget assumes the boot lasts ``d`` seconds at ``P``. Energy that NVM accesses draw
    beyond ``P`` (``board.nvm_*_energy_j``) is spent from it without taking time, so a boot
    with much NVM traffic is credited slightly more harvest than it gets (docs/power.md).

    Parameters
    ----------
    board : str or Board
        The board profile (active power, energy per instruction, and the defaults).
    capacitor_f : float, optional
        Capacitance in farads instead of the board's.
    harvest_w : float, optional
        Constant harvested power in watts instead of the board's.
    trace : str, Path or PowerTrace, optional
        A power trace (see :class:`PowerTrace`) instead of constant power.
    v_on, v_off : float, optional
        Turn-on and brown-out voltages instead of the board's.
    harvester : Harvester, optional
        Any harvester (:mod:`.harvesters`), instead of ``harvest_w`` or ``trace``.
    environment : str, optional
        The name of the power environment this schedule comes from, for reports.
    """

    board: Board
    capacitor_f: float | None = None
    harvest_w: float | None = None
    trace: str | None = None
    v_on: float | None = None
    v_off: float | None = None
    harvester: Harvester | None = None
    environment: str | None = None
    #: Boots computed so far: (start s, active s or None for "never browns out", recharge s).
    _boots: list = dataclasses.field(default_factory=list, init=False, repr=False,
                                     compare=False)

    def __post_init__(self):
        object.__setattr__(self, "board", load_board(self.board))
        if self.capacitor_f is not None and not self.capacitor_f > 0:
            raise InputError(f"the capacitance must be positive, got {self.capacitor_f!r}")
        if self.harvest_w is not None and not self.harvest_w > 0:
            raise InputError(f"the harvested power must be positive, got {self.harvest_w!r}")
        given = [what for what, value in (("a constant harvested power", self.harvest_w),
                                          ("a power trace", self.trace),
                                          ("a harvester", self.harvester)) if value is not None]
        if len(given) > 1:
            raise InputError(f"give one of a constant harvested power, a power trace or a "
                             f"harvester, not {' and '.join(given)}")
        if self.trace is not None:
            trace = self.trace if isinstance(self.trace, PowerTrace) else PowerTrace.load(
                self.trace)
            object.__setattr__(self, "trace", trace.source)
            object.__setattr__(self, "harvester", TraceHarvester(trace))
        elif self.harvester is None:
            watts = self.board.harvest_w if self.harvest_w is None else self.harvest_w
            if not watts > 0:
                raise InputError(f"board {self.board.name!r} harvests no power; give "
                                 "harvest_w or a trace")
            object.__setattr__(self, "harvester", ConstantPower(watts))
        if not self.turn_on_v > self.brown_out_v > 0:
            raise InputError(f"need v_on > v_off > 0, got v_on={self.turn_on_v}, "
                             f"v_off={self.brown_out_v}")
        if self.budget is not None and self.budget < 1:
            raise InputError(f"one charge of {self.charge_energy_j:.3g} J on board "
                             f"{self.board.name!r} pays for no instruction at all")

    @property
    def farads(self) -> float:
        """The capacitance (the board's unless given)."""
        return self.board.capacitor_f if self.capacitor_f is None else self.capacitor_f

    @property
    def turn_on_v(self) -> float:
        return self.board.v_on if self.v_on is None else self.v_on

    @property
    def brown_out_v(self) -> float:
        return self.board.v_off if self.v_off is None else self.v_off

    @property
    def charge_energy_j(self) -> float:
        """Energy of one charge alone, ``C (v_on^2 - v_off^2) / 2``."""
        return charge_energy_j(self.farads, self.turn_on_v, self.brown_out_v)

    @property
    def sustained(self) -> bool:
        """Whether the harvest keeps up with the board's active power: no failures ever."""
        return self.harvester.sustains(self.farads, self.turn_on_v, self.brown_out_v,
                                       self.board.active_power_w)

    @property
    def budget(self) -> int | None:
        """Instruction-equivalents of the first boot (None when the device never browns
        out); for a time-varying harvester the later boots differ (:meth:`budgets`)."""
        budgets = self.budgets(1)
        return budgets[0] if budgets else None

    @property
    def guaranteed_budget(self) -> int | None:
        """The least budget any boot gets, whenever it starts: what tiles are sized for.

        Equal to :attr:`budget` for a harvester that does not vary; for a trace, the boot
        that only gets the trace's lowest power (None when even that sustains the load).
        """
        if not self.harvester.time_varying:
            return self.budget
        lowest = float(self.harvester.trace.powers.min())
        return self._instructions(ConstantPower(lowest).discharge_seconds(
            self.farads, self.turn_on_v, self.brown_out_v, self.board.active_power_w)
            if lowest > 0 else self.charge_energy_j / self.board.active_power_w)

    @property
    def nvm_load_cost(self) -> float:
        return access_costs(self.board)[0]

    @property
    def nvm_store_cost(self) -> float:
        return access_costs(self.board)[1]

    def _instructions(self, active_s: float | None) -> int | None:
        """Instruction-equivalents the load draws in ``active_s`` seconds."""
        if active_s is None:
            return None
        return int(self.board.active_power_w * active_s / self.board.energy_per_instruction_j)

    def _timeline(self, count: int) -> list[tuple[float, float, float]]:
        """(start, active, recharge) seconds of the first ``count`` boots that brown out."""
        boots, board = self._boots, self.board
        args = (self.farads, self.turn_on_v, self.brown_out_v)
        while len(boots) < count and not (boots and boots[-1][1] is None):
            if boots and not self.harvester.time_varying:
                boots.extend([boots[0]] * (count - len(boots)))
                break
            start = sum(boots[-1]) if boots else 0.0
            active = self.harvester.discharge_seconds(*args, board.active_power_w, start)
            if active is None:
                logger.info("%s: the harvest keeps up with the %.3g W of board %s from %.6g s "
                            "on: no further power failures", self.environment or "capacitor",
                            board.active_power_w, board.name, start)
                boots.append((start, None, 0.0))
                break
            boots.append((start, active, self.harvester.recharge_seconds(*args,
                                                                          start + active)))
        return [b for b in boots[:count] if b[1] is not None]

    def budgets(self, count: int) -> list[int]:
        return [self._instructions(active) for _, active, _ in self._timeline(count)]

    def boot_seconds(self, count: int) -> list[float]:
        """Active seconds of each of the first ``count`` boots that brown out."""
        return [active for _, active, _ in self._timeline(count)]

    def recharge_seconds(self, failures: int) -> list[float]:
        return [recharge for _, _, recharge in self._timeline(failures)]

    def to_dict(self) -> dict:
        return {"kind": "capacitor", "board": self.board.name, "environment": self.environment,
                "capacitor_f": self.capacitor_f, "v_on": self.turn_on_v,
                "v_off": self.brown_out_v, "harvest_w": self.harvest_w,
                "trace": (self.harvester.trace.source if self.harvester.time_varying
                          else None),
                "harvester": self.harvester.describe(), "budget": self.budget,
                "sustained": self.sustained,
                "nvm_load_cost": self.nvm_load_cost, "nvm_store_cost": self.nvm_store_cost,
                "charge_energy_j": self.charge_energy_j}


# ---- Parsing command-line strings -----------------------------------------------------


def _parse_quantity(text, unit: str, what: str, example: str) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _QUANTITY.match(str(text))
        if match is None or match.group(3) not in ("", unit):
            raise InputError(f"expected {what} such as {example}, got {text!r}")
        value = float(decimal.Decimal(match.group(1)).scaleb(_SI_PREFIXES[match.group(2)]))
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"expected {what} greater than 0, such as {example}, got {text!r}")
    return value


def parse_capacitance(text) -> float:
    """Farads from ``"100uF"``, ``"1mF"``, ``"0.0001"`` (SI prefixes p n u m k M)."""
    return _parse_quantity(text, "F", "a capacitance", "100uF, 1mF or 0.0001 (farads)")


def parse_power(text) -> float:
    """Watts from ``"2mW"``, ``"500uW"``, ``"0.002"`` (SI prefixes p n u m k M)."""
    return _parse_quantity(text, "W", "a power", "2mW, 500uW or 0.002 (watts)")


def parse_window(text) -> tuple[int, int]:
    """``(A, B)`` from ``"A:B"``, the failure points ``A <= k < B`` of an exhaustive run."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = int(parts[0]), int(parts[1])
    except ValueError as err:
        raise InputError(f"expected a window of failure points A:B (whole numbers, "
                         f"0 <= A < B), such as 1000:2000, got {text!r}") from err
    return Exhaustive((start, stop)).window


def failure_points(window):
    """The failure points of an exhaustive campaign, from any of its spellings.

    ``"A:B"``, ``(A, B)`` or an :class:`Exhaustive` mean ``A <= k < B``; any other iterable
    is taken as the failure points themselves.
    """
    if isinstance(window, str):
        window = Exhaustive(parse_window(window))
    if isinstance(window, Exhaustive):
        return window.points()
    if isinstance(window, tuple) and len(window) == 2:
        return Exhaustive(window).points()
    return [int(k) for k in window]


def parse_schedule(text: str, board=None):
    """A schedule from its command-line spelling.

    ``none``, ``periodic:N``, ``random:SEED:MIN:MAX``, ``capacitor``,
    ``capacitor:CAPACITANCE``, ``capacitor:CAPACITANCE:POWER`` (``capacitor:100uF:2mW``),
    ``fail_at:K``, ``fail_at:K1,K2,...`` and ``exhaustive:A:B``. ``capacitor`` needs ``board``.

    Returns
    -------
    Schedule or Exhaustive
    """
    kind, _, rest = str(text).strip().partition(":")
    args = rest.split(":") if rest else []
    expected = ("none, periodic:N, random:SEED:MIN:MAX, capacitor[:100uF[:2mW]], "
                "fail_at:K[,K2...] or exhaustive:A:B")
    try:
        if kind == "none" and not args:
            return NoFailures()
        if kind == "periodic" and len(args) == 1:
            return Periodic(int(args[0]))
        if kind == "random" and len(args) == 3:
            return Random(int(args[0]), int(args[1]), int(args[2]))
        if kind == "fail_at" and len(args) == 1:
            points = [int(p) for p in args[0].split(",")]
            return FailAt(points[0]) if len(points) == 1 else FailAtEach(tuple(points))
        if kind == "exhaustive" and len(args) == 2:
            return Exhaustive(parse_window(rest))
        if kind == "capacitor" and len(args) <= 2:
            if board is None:
                raise InputError("a capacitor schedule needs a board profile")
            capacitance = parse_capacitance(args[0]) if args else None
            power = parse_power(args[1]) if len(args) > 1 else None
            return Capacitor(board, capacitor_f=capacitance, harvest_w=power)
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"bad power schedule {text!r}: {err}; expected {expected}") from err
    raise InputError(f"bad power schedule {text!r}; expected {expected}")

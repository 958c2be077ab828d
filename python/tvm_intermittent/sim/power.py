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
* :class:`Capacitor` - the budget one charge of a board's capacitor pays for, NVM loads
  and stores charged by their energy, and the recharge time each failure costs;
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
from pathlib import Path

import numpy as np

from ..board import Board, load_board
from ..energy.model import access_costs
from ..errors import InputError

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


class PowerTrace:
    """Harvested power over time, piecewise constant and repeating.

    Row ``i`` of the file (``time_s power_w``, whitespace or comma separated, ``#``
    comments, an optional header line) holds from its time until the next row's. The last
    row holds as long as the interval before it (a uniformly sampled trace), and then the
    trace starts over.
    """

    def __init__(self, times, powers, source: str = "<trace>"):
        times = np.asarray(times, dtype=np.float64)
        powers = np.asarray(powers, dtype=np.float64)
        problems = []
        if times.ndim != 1 or times.shape != powers.shape or times.size == 0:
            problems.append("needs one or more rows of two numbers: time (s), power (W)")
        elif np.any(np.diff(times) <= 0):
            problems.append("times must increase from row to row")
        elif np.any(powers < 0) or not np.all(np.isfinite(powers)):
            problems.append("powers must be finite and >= 0")
        elif not np.any(powers > 0):
            problems.append("harvests nothing (every power is 0): the device never recharges")
        if problems:
            raise InputError(f"power trace {source}: " + "; ".join(problems))
        last = times[-1] - times[-2] if times.size > 1 else 1.0
        self.durations = np.append(np.diff(times), last)
        self.powers = powers
        self.source = source
        #: Energy harvested from the trace's start to the start of each row, and in a period.
        self.cumulative = np.concatenate([[0.0], np.cumsum(self.durations * self.powers)])
        self.period_s = float(self.durations.sum())
        self.period_j = float(self.cumulative[-1])

    @classmethod
    def load(cls, path) -> "PowerTrace":
        """Read a two-column text file (see the class docstring)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise InputError(f"cannot read power trace {path}: {err}") from err
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split("#", 1)[0].replace(",", " ").split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError(f"{len(fields)} columns")
                rows.append((float(fields[0]), float(fields[1])))
            except ValueError as err:
                if not rows and not any(c.isdigit() for c in fields[0]):
                    continue  # a header line such as "time_s,power_w"
                raise InputError(f"power trace {path} line {number}: expected 'time_s "
                                 f"power_w', got {line.strip()!r} ({err})") from err
        times, powers = zip(*rows) if rows else ((), ())
        return cls(times, powers, source=str(path))

    def energy_until(self, t: float) -> float:
        """Joules harvested from time 0 to ``t``."""
        periods, phase = divmod(t, self.period_s)
        row = min(int(np.searchsorted(np.cumsum(self.durations), phase, side="right")),
                  len(self.powers) - 1)
        start = float(np.sum(self.durations[:row]))
        return (periods * self.period_j + float(self.cumulative[row])
                + (phase - start) * float(self.powers[row]))

    def time_to_harvest(self, start: float, energy: float) -> float:
        """Seconds from ``start`` until ``energy`` joules have been harvested."""
        target = self.energy_until(start) + energy
        periods = math.floor(target / self.period_j)
        left = target - periods * self.period_j
        if left <= 0:
            return periods * self.period_s - start
        # The first row whose end has harvested `left`; rows with zero power never are.
        row = int(np.searchsorted(self.cumulative[1:], left, side="left"))
        row_start = float(np.sum(self.durations[:row]))
        within = (left - float(self.cumulative[row])) / float(self.powers[row])
        return periods * self.period_s + row_start + within - start


@dataclasses.dataclass(frozen=True)
class Capacitor(Schedule):
    """The budget of one charge of the board's capacitor, and the time to recharge it.

    One charge holds ``E = C (Von^2 - Voff^2) / 2`` joules; the budget is ``E`` divided by
    the board's energy per instruction, and each NVM load and store access costs the
    instruction-equivalents of :func:`~tvm_intermittent.energy.model.access_costs`. After
    each failure the capacitor recharges from the harvester: ``E / harvest_w`` seconds at
    constant power, or the time the power trace needs to deliver ``E``, consecutive
    recharges following each other along the trace. The recharge times only feed the
    reports' modeled latency; the emulator does not wait.

    Parameters
    ----------
    board : str or Board
        The board profile (energy per instruction and per NVM byte, capacitor, voltages).
    capacitor_f : float, optional
        Capacitance in farads instead of the board's.
    harvest_w : float, optional
        Constant harvested power in watts instead of the board's.
    trace : str or Path, optional
        A power trace file (see :class:`PowerTrace`) instead of constant power.
    """

    board: Board
    capacitor_f: float | None = None
    harvest_w: float | None = None
    trace: str | None = None
    _power_trace: PowerTrace | None = dataclasses.field(default=None, init=False, repr=False,
                                                         compare=False)

    def __post_init__(self):
        object.__setattr__(self, "board", load_board(self.board))
        if self.capacitor_f is not None and not self.capacitor_f > 0:
            raise InputError(f"the capacitance must be positive, got {self.capacitor_f!r}")
        if self.harvest_w is not None and not self.harvest_w > 0:
            raise InputError(f"the harvested power must be positive, got {self.harvest_w!r}")
        if self.trace is not None and self.harvest_w is not None:
            raise InputError("give either a constant harvested power or a power trace, not "
                             "both")
        if self.trace is not None:
            object.__setattr__(self, "trace", str(self.trace))
            object.__setattr__(self, "_power_trace", PowerTrace.load(self.trace))
        if self.budget < 1:
            raise InputError(f"one charge of {self.charge_energy_j:.3g} J on board "
                             f"{self.board.name!r} pays for no instruction at all")

    @property
    def charge_energy_j(self) -> float:
        """Usable energy of one charge."""
        return self.board.charge_energy_j(self.capacitor_f)

    @property
    def budget(self) -> int:
        """Instructions one charge pays for (the power cycle budget)."""
        return self.board.power_cycle_budget(self.capacitor_f)

    @property
    def nvm_load_cost(self) -> float:
        return access_costs(self.board)[0]

    @property
    def nvm_store_cost(self) -> float:
        return access_costs(self.board)[1]

    def budgets(self, count: int) -> list[int]:
        return [self.budget] * count

    def recharge_seconds(self, failures: int) -> list[float]:
        energy = self.charge_energy_j
        if self.trace is None:
            power = self.board.harvest_w if self.harvest_w is None else self.harvest_w
            if not power > 0:
                raise InputError(f"board {self.board.name!r} harvests no power; give "
                                 "harvest_w or a trace")
            return [energy / power] * failures
        trace, clock, times = self._power_trace, 0.0, []
        for _ in range(failures):
            times.append(trace.time_to_harvest(clock, energy))
            clock += times[-1]
        return times

    def to_dict(self) -> dict:
        return {"kind": "capacitor", "board": self.board.name, "capacitor_f": self.capacitor_f,
                "harvest_w": self.harvest_w, "trace": self.trace, "budget": self.budget,
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

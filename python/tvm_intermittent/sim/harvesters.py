"""What charges the capacitor: constant power, a resistor-fed supply, or a power trace.

A batteryless device stores harvested energy in a capacitor ``C``. It turns on when the
capacitor reaches ``v_on`` and browns out at ``v_off``; while it computes it draws the
board's active power ``P`` *and the harvester keeps charging*, so one boot lasts longer
than the charge ``C (v_on^2 - v_off^2) / 2`` alone pays for. Each harvester answers two
questions about that circuit:

* :meth:`~Harvester.discharge_seconds`: how long a boot lasts, from ``v_on`` down to
  ``v_off`` with the load drawing ``P`` - or ``None`` when the harvest keeps up with the
  load and the device never browns out;
* :meth:`~Harvester.recharge_seconds`: how long the capacitor takes to charge from
  ``v_off`` back to ``v_on`` with the device off.

The load is a constant *power* (not a constant current): the energy model charges every
instruction the same energy (:mod:`tvm_intermittent.energy.model`), so a boot of ``d``
seconds delivers ``P d`` joules to the load, ``d clock / CPI`` instruction-equivalents.

Kinds:

* :class:`ConstantPower` ``P_h`` into the capacitor: a boot lasts ``E / (P - P_h)``, a
  recharge ``E / P_h``, with ``E = C (v_on^2 - v_off^2) / 2``.
* :class:`ResistorSupply`, a source ``Vs`` behind a resistor ``R`` (the bench setup of
  iNAS and TiNAS): ``C dV/dt = (Vs - V) / R - P / V``. With the device off the capacitor
  charges as an RC circuit, from ``v_off`` to ``v_on`` in ``R C ln((Vs - v_off) /
  (Vs - v_on))``. With it on, ``dt = -R C V dV / (V^2 - Vs V + P R)``, integrated in closed
  form over ``[v_off, v_on]``; a root of ``V^2 - Vs V + P R`` in that interval is a voltage
  where the supply's current feeds the load exactly, and the device never browns out.
* :class:`TraceHarvester`, a :class:`PowerTrace` (power into the capacitor over time,
  repeating): energy is followed row by row; while the harvest exceeds the load the
  capacitor fills up to its ``v_on`` charge and no further (the harvester's overvoltage
  limit), and the boot ends when the stored energy above ``v_off`` reaches zero.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ..errors import InputError


def charge_energy_j(capacitor_f: float, v_on: float, v_off: float) -> float:
    """Energy a capacitor holds between ``v_on`` and ``v_off``: ``C (v_on^2 - v_off^2) / 2``."""
    return 0.5 * capacitor_f * (v_on**2 - v_off**2)


class Harvester:
    """Base of the harvesters; subclasses are frozen dataclasses (values, comparable)."""

    #: Whether the answers depend on when a boot or a recharge starts (a trace).
    time_varying = False

    def discharge_seconds(self, capacitor_f: float, v_on: float, v_off: float,
                          load_w: float, start_s: float = 0.0) -> float | None:
        """Seconds from ``v_on`` to ``v_off`` while the load draws ``load_w`` (None: never)."""
        raise NotImplementedError

    def recharge_seconds(self, capacitor_f: float, v_on: float, v_off: float,
                         start_s: float = 0.0) -> float:
        """Seconds from ``v_off`` to ``v_on`` with the device off."""
        raise NotImplementedError

    def sustains(self, capacitor_f: float, v_on: float, v_off: float, load_w: float) -> bool:
        """Whether the harvest keeps up with the load whenever a boot starts."""
        return self.discharge_seconds(capacitor_f, v_on, v_off, load_w) is None

    def describe(self) -> str:
        """One line for tables."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"kind": _kind(self), **dataclasses.asdict(self)}


def _kind(harvester) -> str:
    return {"ConstantPower": "constant", "ResistorSupply": "resistor",
            "TraceHarvester": "trace"}[type(harvester).__name__]


@dataclasses.dataclass(frozen=True)
class ConstantPower(Harvester):
    """A constant power ``watts`` into the capacitor, whatever its voltage."""

    watts: float

    def __post_init__(self):
        if not (self.watts > 0 and math.isfinite(self.watts)):
            raise InputError(f"the harvested power must be positive, got {self.watts!r}")

    def discharge_seconds(self, capacitor_f, v_on, v_off, load_w, start_s=0.0):
        if self.watts >= load_w:
            return None
        return charge_energy_j(capacitor_f, v_on, v_off) / (load_w - self.watts)

    def recharge_seconds(self, capacitor_f, v_on, v_off, start_s=0.0):
        return charge_energy_j(capacitor_f, v_on, v_off) / self.watts

    def describe(self) -> str:
        return f"{self.watts * 1e6:.4g} uW constant"


@dataclasses.dataclass(frozen=True)
class ResistorSupply(Harvester):
    """A voltage source ``volts`` charging the capacitor through ``ohms``."""

    volts: float
    ohms: float

    def __post_init__(self):
        if not (self.volts > 0 and self.ohms > 0):
            raise InputError(f"a resistor-fed supply needs a positive voltage and resistance, "
                             f"got {self.volts!r} V through {self.ohms!r} ohm")

    def _check(self, v_on):
        if not self.volts > v_on:
            raise InputError(f"a {self.volts} V supply never charges the capacitor to its "
                             f"turn-on voltage {v_on} V; use a supply above v_on")

    def recharge_seconds(self, capacitor_f, v_on, v_off, start_s=0.0):
        self._check(v_on)
        return (self.ohms * capacitor_f
                * math.log((self.volts - v_off) / (self.volts - v_on)))

    def discharge_seconds(self, capacitor_f, v_on, v_off, load_w, start_s=0.0):
        self._check(v_on)
        b, c = self.volts, load_w * self.ohms
        # q(V) = V^2 - b V + c is the load's excess over the supply (times R / V). It must stay
        # positive on the whole way down; its minimum there is at b/2 clamped to the interval.
        lowest = min(max(b / 2, v_off), v_on)
        if lowest * lowest - b * lowest + c <= 0:
            return None
        return self.ohms * capacitor_f * (_antiderivative(v_on, b, c)
                                          - _antiderivative(v_off, b, c))

    def max_power_w(self, v_on: float, v_off: float) -> float:
        """The most the supply delivers into the capacitor between ``v_off`` and ``v_on``."""
        best = min(max(self.volts / 2, v_off), v_on)
        return best * (self.volts - best) / self.ohms

    def describe(self) -> str:
        return f"{self.volts:g} V through {self.ohms:g} ohm"


def _antiderivative(v: float, b: float, c: float) -> float:
    """A primitive of ``V / (V^2 - b V + c)`` at ``v`` (where the quadratic is positive)."""
    q = v * v - b * v + c
    disc = b * b - 4 * c
    if disc < 0:
        k = math.sqrt(-disc) / 2
        inner = math.atan((v - b / 2) / k) / k
    elif disc > 0:
        s = math.sqrt(disc)
        inner = math.log(abs((v - (b + s) / 2) / (v - (b - s) / 2))) / s
    else:
        inner = -1.0 / (v - b / 2)
    return 0.5 * math.log(q) + 0.5 * b * inner


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
        #: Start of each row within a period, and the period's end.
        self.starts = np.concatenate([[0.0], np.cumsum(self.durations)])
        #: Energy harvested from the trace's start to the start of each row, and in a period.
        self.cumulative = np.concatenate([[0.0], np.cumsum(self.durations * self.powers)])
        self.period_s = float(self.starts[-1])
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

    @property
    def mean_w(self) -> float:
        return self.period_j / self.period_s

    def _row(self, phase: float) -> int:
        return min(int(np.searchsorted(self.starts[1:], phase, side="right")),
                   len(self.powers) - 1)

    def energy_until(self, t: float) -> float:
        """Joules harvested from time 0 to ``t``."""
        periods, phase = divmod(t, self.period_s)
        row = self._row(phase)
        return (periods * self.period_j + float(self.cumulative[row])
                + (phase - float(self.starts[row])) * float(self.powers[row]))

    def time_to_harvest(self, start: float, energy: float) -> float:
        """Seconds from ``start`` until ``energy`` joules have been harvested."""
        return self._time_until(start, energy, self.cumulative)

    def time_to_drain(self, start: float, energy: float, load_w: float) -> float:
        """Seconds from ``start`` until a load of ``load_w`` has drawn ``energy`` joules
        more than the trace harvested; needs ``load_w`` above every power of the trace."""
        assert load_w > float(self.powers.max())
        return self._time_until(start, energy, load_w * self.starts - self.cumulative)

    def _time_until(self, start: float, energy: float, curve: np.ndarray) -> float:
        """Seconds from ``start`` until the non-decreasing, piecewise linear, period-additive
        ``curve`` (its values at the row starts and the period's end) has risen by ``energy``."""
        per_period = float(curve[-1])
        periods, phase = divmod(start, self.period_s)
        row = self._row(phase)
        slope = (curve[row + 1] - curve[row]) / self.durations[row]
        target = float(curve[row]) + (phase - float(self.starts[row])) * slope + energy
        more, left = divmod(target, per_period)
        if left <= 0:
            return (periods + more) * self.period_s - start
        # The first row whose end reaches `left`; flat rows (no power) never do first.
        row = int(np.searchsorted(curve[1:], left, side="left"))
        slope = (curve[row + 1] - curve[row]) / self.durations[row]
        within = (left - float(curve[row])) / slope
        return (periods + more) * self.period_s + float(self.starts[row]) + within - start

    def drain_with_limit(self, start: float, full: float, load_w: float) -> float | None:
        """Seconds from ``start`` until a load of ``load_w`` has emptied a store that holds
        ``full`` joules at most and starts full (None: it never empties).

        Row by row: a row whose power exceeds the load refills the store, up to ``full``.
        Each period maps the energy at its start to the energy at its end by a
        non-decreasing function, so the walk stops as soon as that energy does not fall
        from one period to the next (it never will), and skips whole periods that lose the
        same energy without touching the limit.
        """
        n = len(self.powers)
        periods, phase = divmod(start, self.period_s)
        row = self._row(phase)
        t, energy = start, full
        row_end = periods * self.period_s + float(self.starts[row + 1])
        at_boundary, touched, deepest = None, False, 0.0
        for _ in range(64 * n + 64):
            net = float(self.powers[row]) - load_w
            dt = row_end - t
            if net < 0 and energy + net * dt <= 0:
                return t + energy / -net - start
            energy += net * dt
            if energy >= full:
                energy, touched = full, True
            if at_boundary is not None:
                deepest = max(deepest, at_boundary - energy)
            t, row = row_end, row + 1
            if row == n:
                row = 0
                if at_boundary is not None:
                    loss = at_boundary - energy
                    if loss <= 0:
                        return None
                    if not touched:
                        skip = math.floor((energy - deepest) / loss) - 1
                        if skip > 0:
                            energy -= skip * loss
                            t += skip * self.period_s
                at_boundary, touched, deepest = energy, False, 0.0
            row_end = t + float(self.durations[row])
        raise AssertionError("drain_with_limit did not converge")  # unreachable: see above


@dataclasses.dataclass(frozen=True)
class TraceHarvester(Harvester):
    """Power into the capacitor from a repeating :class:`PowerTrace`."""

    trace: PowerTrace = dataclasses.field(compare=False)
    #: Where the trace comes from (a file, or the generator of a preset): its identity.
    name: str = ""

    time_varying = True

    def __post_init__(self):
        if not self.name:
            object.__setattr__(self, "name", self.trace.source)

    def discharge_seconds(self, capacitor_f, v_on, v_off, load_w, start_s=0.0):
        full = charge_energy_j(capacitor_f, v_on, v_off)
        if load_w > float(self.trace.powers.max()):
            return self.trace.time_to_drain(start_s, full, load_w)
        if float(self.trace.powers.min()) >= load_w:
            return None
        return self.trace.drain_with_limit(start_s, full, load_w)

    def recharge_seconds(self, capacitor_f, v_on, v_off, start_s=0.0):
        return self.trace.time_to_harvest(start_s, charge_energy_j(capacitor_f, v_on, v_off))

    def sustains(self, capacitor_f, v_on, v_off, load_w) -> bool:
        return float(self.trace.powers.min()) >= load_w

    def describe(self) -> str:
        return (f"trace {self.name}: mean {self.trace.mean_w * 1e6:.4g} uW, peak "
                f"{float(self.trace.powers.max()) * 1e6:.4g} uW, period {self.trace.period_s:g} s")

    def to_dict(self) -> dict:
        return {"kind": "trace", "name": self.name, "rows": len(self.trace.powers),
                "period_s": self.trace.period_s, "mean_w": self.trace.mean_w,
                "peak_w": float(self.trace.powers.max())}

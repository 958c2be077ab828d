"""``analyze``: a prediction made readable, with the fixes for what does not fit.

:func:`analyze` puts together what a user needs to decide before running anything: the
per-operator table and the model's verdict from :func:`.predict.predict`, whether the model
fits the board's memories (from ``model.json``), and, when the model is not schedulable or
misses its deadline, what would fix it:

* the smallest capacitor that makes every commit batch fit one charge, and the smallest (of
  a sweep) that meets the deadline;
* a smaller tile for each operator over budget: the largest batch of its tiles that fits,
  or, when one tile alone is too much, a deeper tiling (compile for this environment);
* the other shipped boards of the same instruction set on which it fits and meets it.

The environment comes from :func:`environment_from_args`, the one place that turns the
command line's power options into an environment.
"""

from __future__ import annotations

import dataclasses
import math

from ..board import Board, list_boards, load_board
from ..errors import InputError
from .predict import ErrorInterval, Prediction, charge, error_interval, predict

#: Capacitors the deadline fix and the plot sweep, as multiples of the smallest that makes
#: the model schedulable (a geometric series: latency changes slowly with size).
SWEEP_FACTORS = tuple(2 ** (k / 2) for k in range(0, 21))


# ---- Environments -----------------------------------------------------------------------


def environment_from_args(board, power_env=None, capacitor=None, harvest=None, trace=None):
    """The power environment the command line describes (``sim.environments.from_args``,
    which parses the options and refuses contradictory ones: a named preset, or the
    board's capacitor with the given capacitor, harvest or trace)."""
    from ..sim import environments  # pylint: disable=import-outside-toplevel

    return environments.from_args(load_board(board), power_env=power_env,
                                  capacitor=capacitor, harvest=harvest, trace=trace)


def with_capacitor(environment, capacitor_f: float):
    """``environment`` with another capacitor (same voltages, harvester and trace)."""
    if not dataclasses.is_dataclass(environment) or not hasattr(environment, "capacitor_f"):
        raise InputError(f"the environment {environment!r} has no capacitor to resize")
    return dataclasses.replace(environment, capacitor_f=capacitor_f)


def capacitor_of(environment, board: Board) -> float:
    """The capacitance ``environment`` gives ``board``."""
    value = getattr(environment, "capacitor_f", None)
    return float(value) if value else float(board.capacitor_f)


def sizing_capacitor(environment, board: Board) -> float:
    """The capacitance at ``board``'s voltages whose charge pays for the environment's first
    budget: what to size the tiles for (``build(capacitor_f=)``), whatever voltages and
    capacitor the environment has."""
    from .predict import _schedule_of  # pylint: disable=import-outside-toplevel

    if hasattr(environment, "power_cycle_budget"):  # the environment's own sizing budget
        budgets = [environment.power_cycle_budget(board)]
    else:
        budgets = _schedule_of(environment, board).budgets(1)
    if not budgets:
        return capacitor_of(environment, board)
    joules = float(budgets[0]) * board.energy_per_instruction_j
    # one more instruction's worth, so that rounding down in power_cycle_budget keeps it
    joules += board.energy_per_instruction_j * 0.5
    return 2.0 * joules / (board.v_on ** 2 - board.v_off ** 2)


def build_options(environment, board: Board, build=None) -> dict:
    """The options of ``build`` that size the tiles for ``environment``: the environment
    itself where ``build`` takes one (``power_env``, which model.json then names), else the
    capacitor at the board's voltages that pays for the same budget."""
    import inspect  # pylint: disable=import-outside-toplevel

    if build is None:
        from ..builder import build  # pylint: disable=import-outside-toplevel
    try:
        takes_env = "power_env" in inspect.signature(build).parameters
    except (TypeError, ValueError):
        takes_env = False
    if takes_env and hasattr(environment, "power_cycle_budget"):
        return {"power_env": environment}
    return {"capacitor_f": sizing_capacitor(environment, board)}


# ---- Memory fit -------------------------------------------------------------------------


def memory_fit(manifest: dict, board: Board) -> dict:
    """Whether the project's weights, working SRAM and arena fit ``board``.

    Flash holds the weights (code comes on top: ``make size`` tells the whole); SRAM the
    stack reserve, the runtime's variables and the kernels' static scratch (the compiler's
    own sum, ``builder.STACK_RESERVE_BYTES`` and ``RUNTIME_SRAM_BYTES``); NVM the arena.
    """
    from .. import builder  # pylint: disable=import-outside-toplevel
    from ..codegen.address_space import address_space_problems  # pylint: disable=C0415

    sram = (builder.STACK_RESERVE_BYTES + builder.RUNTIME_SRAM_BYTES
            + int(manifest.get("kernel_static_scratch_bytes", 0)))
    arena, weights = int(manifest.get("arena_bytes", 0)), int(manifest.get("weight_bytes", 0))
    problems = address_space_problems(weights, arena, board)
    if arena > board.nvm_bytes:
        problems.append(f"the arena needs {arena:,} bytes of NVM, {board.name} has "
                        f"{board.nvm_bytes:,}")
    if sram > board.sram_bytes:
        problems.append(f"the working SRAM needs {sram:,} bytes, {board.name} has "
                        f"{board.sram_bytes:,}")
    return {"weight_bytes": weights, "sram_bytes": sram, "sram_available": board.sram_bytes,
            "arena_bytes": arena, "nvm_available": board.nvm_bytes, "fits": not problems,
            "problems": problems}


# ---- Fixes ------------------------------------------------------------------------------


@dataclasses.dataclass
class Analysis:
    """A prediction, the memory fit, and the fixes (empty when nothing needs fixing)."""

    prediction: Prediction
    memory: dict
    fixes: list
    #: The prediction within the cost model's error (:func:`.predict.error_interval`);
    #: None for measured costs, which have no such error.
    interval: ErrorInterval | None = None

    @property
    def ok(self) -> bool:
        deadline = self.prediction.meets_deadline
        return (self.prediction.schedulable and self.prediction.finished
                and self.memory["fits"] and deadline is not False)

    def to_dict(self) -> dict:
        return {"prediction": self.prediction.to_dict(), "memory": self.memory,
                "fixes": self.fixes, "ok": self.ok,
                "interval": self.interval.to_dict() if self.interval else None}

    def render(self) -> str:
        return render(self)


def analyze(manifest: dict, board, environment, *, costs=None, deadline_s=None,
            environment_for=None, fixes: bool = True) -> Analysis:
    """Predict, check the memories and, when the verdict is no, find the fixes.

    Parameters
    ----------
    manifest, board, environment, costs, deadline_s
        As for :func:`.predict.predict`.
    environment_for : callable, optional
        ``board -> environment`` for the other boards of the board fix (default: this
        environment as it is).
    fixes : bool
        Look for fixes (several more predictions) when the verdict is no.
    """
    board = load_board(board)
    prediction = predict(manifest, board, environment, costs=costs, deadline_s=deadline_s)
    interval = None
    if prediction.source == "calibrated":
        interval = error_interval(manifest, board, environment, costs=costs)
    analysis = Analysis(prediction, memory_fit(manifest, board), [], interval)
    if fixes and not analysis.ok:
        costs = costs if costs is not None else _costs_of(manifest, board)
        analysis.fixes = (_capacitor_fixes(manifest, board, environment, costs, prediction)
                          + _tile_fixes(board, environment, costs, prediction)
                          + _board_fixes(manifest, board, environment_for, environment, costs,
                                         deadline_s))
    return analysis


def _costs_of(manifest, board):
    from .predict import calibrated_costs  # pylint: disable=import-outside-toplevel

    return calibrated_costs(manifest, board)


def _try(manifest, board, environment, costs, deadline_s=None) -> Prediction | None:
    try:
        return predict(manifest, board, environment, costs=costs, deadline_s=deadline_s)
    except InputError:
        return None  # a capacitor too small to pay for one instruction


def smallest_schedulable_capacitor(manifest, board, environment, costs,
                                   prediction: Prediction) -> float | None:
    """The smallest capacitance at which every batch fits one charge (None: no capacitor to
    resize). A charge's budget grows in proportion to the capacitance, so scale by the worst
    need over the budget, then step up past rounding."""
    if not hasattr(environment, "capacitor_f") or not prediction.budget:
        return None
    needs = [b["need"] for b in prediction.blocking] or [
        max((o.need for o in prediction.operators), default=0.0)]
    capacitor = capacitor_of(environment, board) * max(needs) / prediction.budget
    for _ in range(60):
        trial = _try(manifest, board, with_capacitor(environment, capacitor), costs)
        if trial is not None and trial.schedulable and trial.finished:
            return capacitor
        capacitor *= 1.01
    return None


def _capacitor_fixes(manifest, board, environment, costs, prediction) -> list:
    fixes = []
    smallest = smallest_schedulable_capacitor(manifest, board, environment, costs, prediction)
    if smallest is None:
        return fixes
    current = capacitor_of(environment, board)
    if not prediction.schedulable:
        fixes.append({"kind": "capacitor", "goal": "schedulable", "capacitor_f": smallest,
                      "text": f"a capacitor of at least {_farads(smallest)} (now "
                              f"{_farads(current)}) makes every batch fit one charge"})
    if prediction.deadline_s is not None and not prediction.meets_deadline:
        sweep = latency_sweep(manifest, board, environment, costs,
                              [smallest * f for f in SWEEP_FACTORS])
        met = [(c, lat) for c, lat in sweep if lat is not None and lat <= prediction.deadline_s]
        if met:
            c, lat = met[0]
            fixes.append({"kind": "capacitor", "goal": "deadline", "capacitor_f": c,
                          "latency_s": lat,
                          "text": f"a capacitor of {_farads(c)} meets the deadline of "
                                  f"{prediction.deadline_s:g} s ({lat:.4g} s predicted; the "
                                  "smallest of a sweep from the schedulable size up)"})
        else:
            best = min((lat for _, lat in sweep if lat is not None), default=None)
            fixes.append({"kind": "capacitor", "goal": "deadline", "capacitor_f": None,
                          "latency_s": best,
                          "text": "no capacitor up to "
                                  f"{_farads(smallest * SWEEP_FACTORS[-1])} meets the deadline "
                                  f"of {prediction.deadline_s:g} s"
                                  + (f" (best {best:.4g} s): the harvester is too weak or "
                                     "the model too large" if best is not None else "")})
    return fixes


def _tile_fixes(board, environment, costs, prediction) -> list:
    """For each operator over budget: the largest batch that fits, or a deeper tiling."""
    if prediction.budget is None:
        return []
    from .predict import _schedule_of  # pylint: disable=import-outside-toplevel

    schedule = _schedule_of(environment, board)
    runtime = costs.runtime
    fixed_cost = charge(board, schedule, runtime.boot + runtime.restore + runtime.commit)
    fixes, deeper = [], []
    for block in prediction.blocking:
        if block["task"] is None:
            fixes.append({"kind": "tile", "operator": block["operator"], "task": None,
                          "tiles_per_commit": None,
                          "text": f"the {block['operator']} step alone needs "
                                  f"{block['need']:,.0f} of {block['budget']:,.0f}: only a "
                                  "larger capacitor helps"})
            continue
        task = costs.tasks[block["task"]]
        per_tile = charge(board, schedule, task.tile)
        room = prediction.budget - fixed_cost - charge(board, schedule, task.fixed)
        fit = int(room // per_tile) if per_tile > 0 else 0
        if fit >= 1:
            fixes.append({"kind": "tile", "operator": task.kernel, "task": task.index,
                          "tiles_per_commit": fit,
                          "text": f"operator {task.kernel} (task {task.index}): commit every "
                                  f"{fit} tiles instead of {task.tiles_per_commit} (a batch "
                                  f"of {fit} fits one charge)"})
        else:
            deeper.append((task, per_tile + fixed_cost))
    if deeper:
        worst = max(need for _, need in deeper)
        names = ", ".join(f"{t.kernel} (task {t.index})" for t, _ in deeper)
        fixes.append({"kind": "tile", "operator": [t.kernel for t, _ in deeper],
                      "task": [t.index for t, _ in deeper], "tiles_per_commit": None,
                      "text": f"a deeper tiling of {names}: one tile with boot, restore and "
                              f"commit needs up to {worst:,.0f} instruction-equivalents, one "
                              f"charge pays {prediction.budget:,.0f}; compile for this "
                              "environment (compile --power-env or --capacitor), which "
                              "sizes the tiles for one charge"})
    return fixes


def _board_fixes(manifest, board, environment_for, environment, costs, deadline_s) -> list:
    fixes = []
    for name in list_boards():
        other = load_board(name)
        if other.name == board.name or other.isa != board.isa:
            continue
        if not memory_fit(manifest, other)["fits"]:
            continue
        env = environment_for(other) if environment_for else environment
        trial = _try(manifest, other, env, costs, deadline_s)
        if trial is None or not (trial.schedulable and trial.finished):
            continue
        if deadline_s is not None and not trial.meets_deadline:
            continue
        fixes.append({"kind": "board", "board": other.name,
                      "latency_s": trial.latency_seconds, "boots": trial.boots,
                      "text": f"board {other.name}: fits and is schedulable, "
                              f"{trial.latency_seconds:.4g} s in {trial.boots} boots"})
    return fixes


def latency_sweep(manifest, board, environment, costs, capacitors) -> list:
    """``(capacitance, predicted latency or None)`` for each capacitance."""
    board = load_board(board)
    points = []
    for capacitor in capacitors:
        trial = _try(manifest, board, with_capacitor(environment, capacitor), costs)
        ok = trial is not None and trial.finished and trial.schedulable
        points.append((capacitor, trial.latency_seconds if ok else None))
    return points


# ---- Text and plot ----------------------------------------------------------------------


def _farads(value: float) -> str:
    for scale, unit in ((1.0, "F"), (1e-3, "mF"), (1e-6, "uF"), (1e-9, "nF")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} F"


def _seconds(value) -> str:
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.4g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.4g} ms"
    return f"{value * 1e6:.4g} us"


def _joules(value: float) -> str:
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ"), (1e-12, "pJ")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value:.3g} J"


def render(analysis: Analysis) -> str:
    """The per-operator table, the model's lines and the fixes, as console text."""
    p, memory = analysis.prediction, analysis.memory
    env = p.environment
    name = env.get("name") or env.get("kind") or "environment"
    head = (f"{'task':>4}  {'operator':<28} {'MACs':>10} {'tiles':>6} {'/commit':>7} "
            f"{'instructions':>12} {'NVM read':>9} {'NVM write':>9} {'E/tile':>9} "
            f"{'E/batch':>9} {'need':>10} {'boots':>5}")
    lines = [f"{p.model} on {p.board} under {name} ({p.source} costs)", head]
    for o in p.operators:
        flag = "" if o.fits else "  OVER"
        lines.append(f"{o.index:>4}  {o.kernel:<28} {o.macs:>10,} {o.tiles:>6} "
                     f"{o.tiles_per_commit:>7} {o.work.instructions:>12,.0f} "
                     f"{o.work.nvm_load_bytes:>9,.0f} {o.work.nvm_store_bytes:>9,.0f} "
                     f"{_joules(o.energy_per_tile_j):>9} {_joules(o.energy_per_batch_j):>9} "
                     f"{o.need:>10,.0f} {o.failures:>5}{flag}")
    budget = "continuous power" if p.budget is None else f"{p.budget:,.0f} per charge"
    worst = sorted(p.blocking, key=lambda b: -b["over"])
    verdict = "yes" if p.schedulable else (
        f"NO: {len(worst)} step(s) do not fit one charge; worst " + "; ".join(
            f"{b['operator']}" + ("" if b["task"] is None else f" (task {b['task']})")
            + f" needs {b['need']:,.0f}, {b['over']:,.0f} over" for b in worst[:3]))
    rows = [
        ("memory", ("fits" if memory["fits"] else "DOES NOT FIT: " + "; ".join(
            memory["problems"])) + f" (weights {memory['weight_bytes']:,} B in flash, SRAM "
            f"{memory['sram_bytes']:,} of {memory['sram_available']:,} B, NVM "
            f"{memory['arena_bytes']:,} of {memory['nvm_available']:,} B)"),
        ("budget", f"{budget} (instruction-equivalents)"),
        ("schedulable", verdict),
        ("boots", f"{p.boots} ({p.failures} power failures)" if p.finished else
         f"{p.boots}, then stops ({p.stop_reason})"),
        ("instructions", f"{p.executed.instructions:,.0f} executed, "
                         f"{p.continuous.instructions:,.0f} without failures"),
        ("active", _seconds(p.active_seconds)),
        ("recharge", _seconds(p.recharge_seconds)),
        ("latency", _seconds(p.latency_seconds)),
        ("energy", _joules(p.energy_j)),
    ]
    rows += _interval_rows(analysis.interval)
    if p.deadline_s is not None:
        rows.append(("deadline", f"{p.deadline_s:g} s: " + ("met" if p.meets_deadline
                                                             else "MISSED")))
    width = max(len(n) for n, _ in rows) + 2
    lines += [f"  {n:<{width}}{v}" for n, v in rows]
    if analysis.fixes:
        lines.append("fixes:")
        lines += [f"  - {f['text']}" for f in analysis.fixes]
    elif not analysis.ok:
        lines.append("fixes: none found (no larger capacitor, batch or shipped board helps)")
    return "\n".join(lines)


def _interval_rows(interval: ErrorInterval | None) -> list:
    """The lines that say what the cost model's error does to the prediction."""
    if interval is None:
        return []
    span = (f"latency {_seconds(interval.latency_low_s)} to "
            f"{_seconds(interval.latency_high_s)}" if interval.latency_high_s is not None
            else "does not finish at its upper end")
    rows = [("model error", f"+/-{100 * interval.error:.1f} % on the kernels' instructions "
                            f"(from the calibration): {span}")]
    if interval.near_step:
        sides = []
        for number, side in enumerate(interval.sides):
            result = (f"{side.boots} boots, {_seconds(side.latency_seconds)}" if side.finished
                      else f"does not finish ({side.boots} boots)")
            sides.append(f"{result} if the work is {100 * (side.low - 1):+.1f} % to "
                         f"{100 * (side.high - 1):+.1f} % of the prediction "
                         f"({100 * side.probability:.0f} %"
                         + (", more likely)" if number == interval.likely else ")"))
        rows.append(("BOOT STEP", "the error spans a step: " + "; or ".join(sides)))
    return rows


def plot_latency(series: dict, path, title: str = "") -> None:
    """Write a PNG of predicted latency against capacitance, one line per model.

    ``series`` maps a label to ``[(capacitance, latency or None), ...]``; points that do not
    finish are left out.
    """
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, axis = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, points in series.items():
        kept = [(c, lat) for c, lat in points if lat is not None]
        if kept:
            axis.plot([c * 1e3 for c, _ in kept], [lat for _, lat in kept], marker="o", ms=3,
                      label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("capacitor (mF)")
    axis.set_ylabel("predicted end-to-end latency (s)")
    axis.grid(True, which="both", lw=0.3)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sweep_capacitors(low: float, high: float, count: int = 15) -> list:
    """``count`` capacitances spaced geometrically from ``low`` to ``high``."""
    if not 0 < low < high:
        raise InputError(f"a capacitor sweep needs 0 < low < high, got {low}, {high}")
    step = math.log(high / low) / (count - 1)
    return [low * math.exp(step * k) for k in range(count)]


__all__ = ["Analysis", "analyze", "build_options", "capacitor_of",
           "sizing_capacitor",
           "environment_from_args", "latency_sweep", "memory_fit",
           "plot_latency", "render", "smallest_schedulable_capacitor", "sweep_capacitors",
           "with_capacitor"]

"""A tuning log applied to a build: the best record per kernel that fits, or the default.

For each kernel the records of its workload are read from the log (MetaSchedule's JSON
database; traces replayed, :mod:`.log`) and ranked for the board and power environment the
model is built for:

* records measured on this board under this environment rank by their measured latency;
* otherwise (another board of the same ISA, another environment) every record is re-ranked
  by the analytic cost model's predicted latency on this board under this environment
  (:mod:`.analytic_model`), with no new measurement.

Each record is re-checked against this board's limits (:func:`.constraints.check_candidate`:
SRAM, one charge under the environment, idempotence; with the instructions and NVM accesses
QEMU measured where it measured the record on a board of the same ISA), and one that does
not fit is skipped with a notice naming the operator and the reason, never applied. The
best record that fits is applied when it beats the default (the analytic rule's plan,
measured or predicted the same way); a kernel left with its default gets a notice that says
why. Where the log measured whole tuned builds on this board under this environment, only
the records of the fastest one are applied, and none when it was no faster than the default
build (records measured one operator at a time need not add up). ``model.json``'s
``tuning`` records the log, each tuned operator and its knobs. A record whose knobs name a
kernel variant (:mod:`.variants`) is built as that kernel (the model lowered again with it,
its constants laid out for it), with a notice that names the operator and the record; one
whose variant this board's lowering does not build for the operator is skipped with a
notice.

A kernel the analytic rule refuses on this board (its smallest tile needs more than the
rule's half of a charge) is built from the log where the log has records of it: its best
record, else the tuner's smallest tile (:func:`.workload.smallest_tiles`, the default of
``tune``'s measured default build), with a notice (``refused by the analytic rule``) that
names it and the rule's reason; without any record of it the build is refused as without
the log.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..transform.notices import Notice, report
from .analytic_model import AnalyticModel
from .constraints import check_candidate
from .knobs import CandidateError, Knobs
from .log import TuningLog, model_key, workload_key
from .objective import CONTINUOUS, TuningEnvironment, environment, predicted_seconds
from .workload import ModelTasks

#: Notice paths of the tuning log (``Notice.path``).
UNTUNED = "default tiling"
SKIPPED = "tuning record skipped"
#: An operator the analytic rule refuses at this budget, tiled from the log.
TUNED_PAST_RULE = "refused by the analytic rule"
#: An operator built as another kernel variant than the lowering's rule builds.
VARIANT_BUILT = "tuned kernel variant"


@dataclasses.dataclass
class Applied:
    """What a log did to a build."""

    log: str
    board: str
    power_env: str
    overrides: dict  # kernel -> (tiled func, TilePlan)
    tuned: dict  # kernel -> {"knobs", "ranked_by", "seconds", "measured_on"}
    untuned: dict  # kernel -> why
    skipped: list  # {"operator", "knobs", "reason"}
    notices: list
    #: kernel -> [{"knobs", "seconds", "ranked_by"}] of the records that fit, best first.
    ranking: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"log": self.log, "board": self.board, "power_env": self.power_env,
                "tuned": self.tuned, "untuned": self.untuned, "skipped": self.skipped,
                "ranking": self.ranking}


def build_environment(prepared) -> TuningEnvironment:
    """The environment a prepared model's tiles are sized for, as the tuner names it."""
    if prepared.continuous:
        return environment(CONTINUOUS)
    if prepared.power_env is not None:
        return TuningEnvironment(prepared.power_env.name, prepared.power_env)
    if prepared.capacitor_f is None:
        return environment("board")
    return environment(capacitor=prepared.capacitor_f)


def _measured_tile(entry: dict | None, task, plan) -> object:
    """One tile's mean measured work from a sidecar entry, or None."""
    from ..energy.model import Work  # pylint: disable=import-outside-toplevel

    if not entry or not entry.get("tasks"):
        return None
    total = Work()
    for index in task.indices:
        spec = entry["tasks"].get(str(index))
        if spec is None:
            return None
        total = total + Work(float(spec["instructions"]), float(spec["nvm_loads"]),
                             float(spec["nvm_stores"]), float(spec["nvm_load_bytes"]),
                             float(spec["nvm_store_bytes"]))
    return total * (1.0 / (plan.extent * len(task.indices)))


def apply_log(prepared, log) -> Applied:
    """Choose each kernel's tiling of ``prepared`` from the tuning log ``log`` (see the
    module docstring)."""
    from ..board import load_board  # pylint: disable=import-outside-toplevel

    database = TuningLog(log)
    board = prepared.board
    env = build_environment(prepared)
    model = ModelTasks.of(prepared)
    analytic = AnalyticModel(board, env, model)
    default_predicted = predicted_seconds(model.manifest, board, env)
    defaults = [e for e in database.measurements(kind="default", board=board.name,
                                                 power_env=env.name)
                if e.get("model_hash") == model_key(model)]
    notices, overrides, tuned, untuned, skipped, ranking = [], {}, {}, {}, [], {}
    for task in model.tasks:
        records = database.records(task)
        if not records:
            untuned[task.kernel] = "no record in the log"
            report(notices, Notice(task.kernel, UNTUNED, f"no record in tuning log {log}; "
                                   "tiled by the analytic rule (tune it: tvm-intermittent tune)"))
            continue
        sidecar = {}
        for entry in database.measurements(workload_key(task.mod)):
            sidecar.setdefault(Knobs.from_dict(entry["knobs"]), []).append(entry)
        here = {k: e for k, es in sidecar.items() for e in es
                if e["board"] == board.name and e["power_env"] == env.name}
        ranked = []
        seen = set()
        for knobs, _record in records:
            if knobs in seen:
                continue
            seen.add(knobs)
            same_isa = [e for e in sidecar.get(knobs, [])
                        if load_board(e["board"]).isa == board.isa and e.get("tasks")]
            try:
                plan_probe = check_candidate(task, knobs, board, env,
                                             static_scratch=model.static_scratch)
                measured_tile = _measured_tile(same_isa[0] if same_isa else None, task,
                                               plan_probe.plan)
                candidate = check_candidate(task, knobs, board, env,
                                            static_scratch=model.static_scratch,
                                            measured_tile=measured_tile)
            except CandidateError as err:
                reason = str(err)
                skipped.append({"operator": task.kernel, "knobs": knobs.to_dict(),
                                "reason": reason})
                report(notices, Notice(task.kernel, SKIPPED, f"{reason}; not applied"))
                continue
            if here:
                if knobs not in here:
                    continue
                seconds, how = here[knobs]["run_secs"][0], "measured"
            else:
                seconds, how = analytic.predict_seconds(task, knobs), "predicted"
            ranked.append((seconds, knobs, candidate, how))
        if not ranked:
            untuned[task.kernel] = "no record fits"
            report(notices, Notice(task.kernel, UNTUNED, f"no record of tuning log {log} fits "
                                   f"board {board.name} under {env.name}; tiled by the "
                                   "analytic rule"))
            continue
        ranked.sort(key=lambda r: r[0])
        ranking[task.kernel] = [{"knobs": k.to_dict(), "seconds": sec, "ranked_by": h}
                                for sec, k, _, h in ranked]
        seconds, knobs, candidate, how = ranked[0]
        baseline = (defaults[-1]["run_secs"][0] if how == "measured" and defaults
                    else default_predicted)
        if not seconds < baseline:
            rule = ("the tuner's smallest tile" if task.kernel in model.refused
                    else "the analytic rule's tiling")
            untuned[task.kernel] = "the default is as fast"
            report(notices, Notice(task.kernel, UNTUNED, f"its best record in tuning log "
                                   f"{log} ({knobs.describe()}, {how} {seconds:.4g} s) is no "
                                   f"faster than {rule} ({baseline:.4g} s) "
                                   f"on board {board.name} under {env.name}; kept that"))
            continue
        overrides[task.kernel] = (candidate.func, candidate.plan)
        tuned[task.kernel] = {"knobs": knobs.to_dict(), "ranked_by": how, "seconds": seconds,
                              "default_seconds": baseline,
                              "measured_on": sorted({e["board"] for e in sidecar.get(knobs, [])})}
    _by_whole_builds(database, model, board, env, defaults, overrides, tuned, untuned,
                     notices, log)
    _refused_by_rule(database, model, defaults, overrides, tuned, untuned, notices, log)
    _variant_notices(tuned, notices, log)
    return Applied(str(Path(log)), board.name, env.name, overrides, tuned, untuned, skipped,
                   notices, ranking)


def _variant_notices(tuned: dict, notices: list, log) -> None:
    """A notice for each operator the applied records build as a kernel variant
    (:mod:`.variants`): which kernel, instead of which, and the record that chose it (the
    build lowers the model again with it, ``builder.assemble``)."""
    from .variants import VARIANTS  # pylint: disable=import-outside-toplevel

    for kernel, entry in sorted(tuned.items()):
        knobs = Knobs.from_dict(entry["knobs"])
        if not knobs.variant:
            continue
        variant = VARIANTS[knobs.variant]
        seconds = entry.get("seconds")
        how = (f", {entry['ranked_by']} {seconds:.4g} s against the default's "
               f"{entry['default_seconds']:.4g} s" if seconds and entry.get("default_seconds")
               else "")
        report(notices, Notice(kernel, VARIANT_BUILT, (
            f"built as {variant.name} (kernel variant {variant.number}) instead of "
            f"{variant.instead}: tuning log {log}'s record ({knobs.describe()}{how}) chose it; "
            "the model is lowered with that kernel and its constants")))


def _by_whole_builds(database, model, board, env, defaults, overrides, tuned, untuned,
                     notices, log) -> None:
    """Where the log measured whole tuned builds of this model on this board under this
    environment (``tune`` measures the combination of every operator's best record, and the
    best alone when that is no faster), apply the fastest of them if it beats the default
    build, else none: records measured one operator at a time need not add up."""
    wholes = [e for e in database.measurements(kind="tuned", board=board.name,
                                               power_env=env.name)
              if e.get("model_hash") == model_key(model)]
    if not wholes or not defaults:
        return
    fastest = min(wholes, key=lambda e: e["run_secs"][0])
    whole, default = fastest["run_secs"][0], defaults[-1]["run_secs"][0]
    keep = ({k: Knobs.from_dict(v) for k, v in fastest["overrides"].items()}
            if whole < default else {})
    made = {}
    for kernel, knobs in keep.items():  # the whole build's records, re-checked here
        try:
            made[kernel] = check_candidate(model.task(kernel), knobs, board, env,
                                           static_scratch=model.static_scratch)
        except (CandidateError, KeyError):
            return  # that build cannot be made here: judge by its parts, as without it
    for kernel, knobs in keep.items():
        overrides[kernel] = (made[kernel].func, made[kernel].plan)
        tuned[kernel] = {"knobs": knobs.to_dict(), "ranked_by": "measured as a whole",
                         "seconds": whole, "default_seconds": default,
                         "measured_on": [board.name]}
        untuned.pop(kernel, None)
    for kernel in list(tuned):
        if kernel in keep:
            continue
        del tuned[kernel]
        overrides.pop(kernel, None)
        untuned[kernel] = "the tuned build measured fastest as a whole keeps its default"
        report(notices, Notice(kernel, UNTUNED, f"the fastest tuned build tuning log {log} "
                               f"measured as a whole on board {board.name} under {env.name} "
                               f"({whole:.4g} s, the analytic rule's {default:.4g} s) keeps "
                               "this operator's analytic tiling; kept it"))


def _refused_by_rule(database, model, defaults, overrides, tuned, untuned, notices,
                     log) -> None:
    """Give every kernel the analytic rule refuses on this board (``model.refused``) a
    tiling from the log: its best record where one was applied, else the tuner's smallest
    tile, where the log measured this model's default build (which has that tile) on this
    board under this environment (``defaults``) or has records of the kernel. A refused
    kernel the log knows nothing of was never tuned, so the build is refused as without
    the log."""
    from ..errors import DoesNotFitError  # pylint: disable=import-outside-toplevel

    unmeasured = [reason for kernel, reason in model.refused.items()
                  if kernel not in overrides and not defaults
                  and not database.records(model.task(kernel))]
    if unmeasured:
        raise DoesNotFitError(
            "the model does not fit the power cycle budget:\n  " + "\n  ".join(unmeasured)
            + f"\ntuning log {log} has no record of "
            + ("these operators" if len(unmeasured) > 1 else "this operator")
            + ": tune the model for this board and capacitor (tvm-intermittent tune), or use "
            "a larger capacitor")
    for kernel, reason in model.refused.items():
        if kernel in overrides:
            knobs = Knobs.from_dict(tuned[kernel]["knobs"])
            report(notices, Notice(kernel, TUNED_PAST_RULE, f"{reason}; tiled by tuning log "
                                   f"{log}'s record ({knobs.describe()}) within the tuner's "
                                   "margin"))
            continue
        base = model.base[kernel]
        overrides[kernel] = (base.func, base.plan)
        tuned[kernel] = {"knobs": base.knobs.to_dict(), "ranked_by": "smallest tile",
                         "seconds": None, "default_seconds": None, "measured_on": []}
        untuned.pop(kernel, None)
        report(notices, Notice(kernel, TUNED_PAST_RULE, f"{reason}; tiled by the tuner's "
                               f"smallest tile ({base.knobs.describe()}, {base.batch_cost:,} "
                               f"of at most {base.batch_limit:,} per batch), "
                               + (f"as tuning log {log} measured it in the default build"
                                  if defaults else f"tuning log {log} has records of it, "
                                  "none applied here")))

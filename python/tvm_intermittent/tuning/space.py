"""The design space of one kernel's tiling, as MetaSchedule traces.

A candidate schedules the kernel's workload (:func:`.workload.workload_of`): it gets the
root block, samples each knob with ``sample_categorical`` over the values
:func:`knob_choices` lists for the kernel, and annotates the root block with the sampled
value (keys :data:`.knobs.KNOB_KEYS`). The trace is then the whole candidate: the JSON
database stores it, and replaying it gives back the annotations :func:`.knobs.knobs_of`
reads. :func:`schedule_for` makes the trace of given knobs (the search picks them);
:func:`design_space` is the same as a MetaSchedule ``ScheduleFn`` space generator whose
decisions are drawn at random, with :class:`RejectInvalid` as its postprocessor, so a
MetaSchedule search strategy can drive it too.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms
from tvm.ir.utils import derived_object

from ..codegen.tiling import reduction_parts, loop_chain
from .knobs import (BATCH_KEY, CHUNKS_KEY, DEPTH_KEY, ORDER_KEY, SPLIT_KEY, STAGE_KEY,
                    UNROLL_KEY, VARIANT_KEY, CandidateError, Knobs, chunk_candidates, knobs_of,
                    split_candidates)
from .loop_rewrites import MAX_ORDER, unroll_choices
from .staging import stageable_parameters
from .workload import ROOT_BLOCK

#: Most tiles per commit a candidate may take (powers of two up to it).
MAX_BATCH = 4096
#: Most reduction chunk counts listed per kernel (spread geometrically).
MAX_CHUNK_CHOICES = 12
#: Whether the loop order and unroll knobs are searched (False: only the order as built and
#: no unrolling, the space before those knobs; ``bench/tuning_bench.py --loop-knobs``).
LOOP_KNOBS = True


def knob_choices(task) -> dict[str, list[int]]:
    """The values each knob may take for ``task``: :func:`own_choices` of its kernel, with
    the values its kernel variants' candidates take appended to each list (so the
    default kernel's lists, and the traces of its records, are as they were) and the
    variant numbers it offers (:mod:`.variants`; ``[0]``: none)."""
    choices = own_choices(task)
    for number in sorted(task.variants):
        for name, values in _variant_choices(task.variants[number], LOOP_KNOBS):
            choices[name] += sorted(set(values) - set(choices[name]))
    choices["variant"] = [0, *sorted(task.variants)]
    return choices


@functools.lru_cache(maxsize=256)
def _variant_choices(variant_task, loop_knobs: bool) -> tuple:
    """:func:`own_choices` of a variant's task, once per task (``schedule_for`` asks for
    every candidate, and listing stageable operands reads the whole kernel)."""
    del loop_knobs  # own_choices reads LOOP_KNOBS itself: a key of the cache only
    return tuple((name, tuple(values)) for name, values in own_choices(variant_task).items())


def own_choices(task) -> dict[str, list[int]]:
    """The values each knob but ``variant`` may take for ``task``'s own kernel: every tile
    depth up to its separable loops, every proper divisor of a separable loop's extent as a
    split, powers of two as tiles per commit up to its most tiles, chunk counts of its
    reduction where the tiler can split it, 0 (none) or an operand to stage in SRAM
    (:func:`.staging.stageable_parameters`), loop pairs to swap (up to
    :data:`.loop_rewrites.MAX_ORDER`, while both loops are separable) and unroll factors of
    its innermost loop (:func:`.loop_rewrites.unroll_choices`). Not every combination is valid
    (:func:`candidates`)."""
    usable, extents = task.usable, task.extents
    depths = list(range(0, usable + 1))
    splits = sorted({f for d in range(usable) for f in split_candidates(extents[d])})
    most = int(np.prod(extents[:usable], dtype=np.int64)) if usable else 1
    chunks = [1]
    parts = reduction_parts(loop_chain(task.func)) if usable == len(extents) else None
    if parts is not None:
        found = chunk_candidates(int(parts[1].extent))
        if len(found) > MAX_CHUNK_CHOICES:
            picks = np.unique(np.geomspace(1, len(found), MAX_CHUNK_CHOICES).astype(int) - 1)
            found = [found[i] for i in picks]
        chunks += found
        most *= max(found, default=1)
    batches = [1 << k for k in range(0, 13) if (1 << k) <= min(most, MAX_BATCH)]
    stages = list(range(len(stageable_parameters(task.func)) + 1))
    return {"depth": depths, "split": [0, *splits], "tiles_per_commit": batches,
            "chunks": chunks, "stage": stages,
            "order": list(range(0, max(0, min(MAX_ORDER, usable - 1)) + 1))
            if LOOP_KNOBS else [0], "unroll": unroll_choices(task.func) if LOOP_KNOBS else [1]}


def candidates(task) -> list[Knobs]:
    """Every combination of :func:`own_choices` that names a tiling of ``task``, then the
    candidates of each of its kernel variants (:func:`variant_candidates`); whether one
    fits a board is :func:`.constraints.check_candidate`'s question."""
    # pylint: disable=import-outside-toplevel
    from .knobs import plan_of

    choices = own_choices(task)
    out = []
    for depth, split, batch, chunks, stage, order, unroll in itertools.product(
            choices["depth"], choices["split"], choices["tiles_per_commit"], choices["chunks"],
            choices["stage"], choices["order"], choices["unroll"]):
        knobs = Knobs(depth, split, batch, chunks, stage, order, unroll)
        try:
            plan_of(knobs, task.func, task.kernel, usable=task.usable, tile_cost=_no_cost)
        except CandidateError:
            continue
        out.append(knobs)
    for number in sorted(task.variants):
        out += variant_candidates(task.variants[number], number)
    return out


def variant_candidates(task, number: int) -> list[Knobs]:
    """The candidates of kernel variant ``number`` (``task`` is its task,
    :meth:`.workload.TuningTask.for_knobs`): its tilings only, every depth, the splits of
    the loop at the tile's boundary, the batches and chunk counts of its space, with the
    loops inside the tile as built and no operand staged. Few, since each candidate costs a
    build and QEMU runs; the loop and staging knobs are the default kernel's to explore."""
    # pylint: disable=import-outside-toplevel
    from .knobs import plan_of

    choices = own_choices(task)
    out = []
    for depth in choices["depth"]:
        splits = [0] + (split_candidates(task.extents[depth]) if depth < task.usable else [])
        for split, batch, chunks in itertools.product(splits, choices["tiles_per_commit"],
                                                      choices["chunks"]):
            knobs = Knobs(depth, split, batch, chunks, variant=number)
            try:
                plan_of(knobs, task.func, task.kernel, usable=task.usable, tile_cost=_no_cost)
            except CandidateError:
                continue
            out.append(knobs)
    return out


def _no_cost(func, plan) -> int:  # validity only: no cost needed
    return 0


def _annotate(sch: s_tir.Schedule, choices: dict, knobs: Knobs | None) -> None:
    root = sch.get_sblock(ROOT_BLOCK)
    for name, key in (("depth", DEPTH_KEY), ("split", SPLIT_KEY),
                      ("tiles_per_commit", BATCH_KEY), ("chunks", CHUNKS_KEY),
                      ("stage", STAGE_KEY), ("order", ORDER_KEY), ("unroll", UNROLL_KEY),
                      ("variant", VARIANT_KEY)):
        values = choices[name]
        if name in ("stage", "variant") and len(values) == 1:
            continue  # nothing to choose: the trace stays as it was before the knob
        decision = None if knobs is None else values.index(getattr(knobs, name))
        value = sch.sample_categorical(values, [1.0 / len(values)] * len(values), decision)
        sch.annotate(root, key, value)


def schedule_for(task, knobs: Knobs) -> s_tir.Schedule:
    """The candidate ``knobs`` as a schedule of ``task``'s workload (its trace records
    them)."""
    choices = knob_choices(task)
    for name, values in choices.items():
        if getattr(knobs, name) not in values:
            raise CandidateError(f"operator {task.kernel}: {name} {getattr(knobs, name)} is "
                                 f"not in its design space ({values})")
    sch = s_tir.Schedule(task.mod)
    _annotate(sch, choices, knobs)
    return sch


def design_space(task, board, env, *, static_scratch: int = 0) -> ms.space_generator.ScheduleFn:
    """``task``'s space as a MetaSchedule space generator: random decisions, invalid
    candidates rejected by :class:`RejectInvalid`."""
    choices = knob_choices(task)

    def sample(sch: s_tir.Schedule) -> None:
        _annotate(sch, choices, None)

    return ms.space_generator.ScheduleFn(
        sample, sch_rules=[], postprocs=[RejectInvalid(task, board, env, static_scratch)],
        mutator_probs={})


@derived_object
class RejectInvalid(ms.postproc.PyPostproc):
    """Postprocessor that refuses a candidate breaking a hard constraint
    (:func:`.constraints.check_candidate`), so that it is never measured."""

    def __init__(self, task, board, env, static_scratch: int = 0):
        super().__init__()
        self.task, self.board, self.env, self.static_scratch = task, board, env, static_scratch

    def _initialize_with_tune_context(self, context) -> None:
        pass

    def apply(self, sch: s_tir.Schedule) -> bool:
        from .constraints import check_candidate  # pylint: disable=import-outside-toplevel

        try:
            check_candidate(self.task, knobs_of(sch), self.board, self.env,
                            static_scratch=self.static_scratch)
        except CandidateError:
            return False
        return True

    def clone(self):
        return RejectInvalid(self.task, self.board, self.env, self.static_scratch)

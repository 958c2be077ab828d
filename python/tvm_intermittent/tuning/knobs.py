"""The tiling knobs of one kernel: what a tuning candidate chooses, and the plan it makes.

A candidate is a MetaSchedule trace over the kernel's workload (:mod:`.workload`): it samples
each knob with ``sample_categorical`` and records the value as an annotation of the root
block, the way MetaSchedule's own unroll rule records ``meta_schedule.unroll_explicit``. The
knobs are read back from the annotations (:func:`knobs_of`), so replaying a record's trace
is all it takes to recover the candidate. The knobs are:

``tile_depth`` (d)
    Leading loops fused into the tile index, as in :mod:`..codegen.tiling`.
``tile_split`` (f)
    0, or a proper divisor of loop ``d``'s extent: that loop is split at the tile boundary
    (``for v: ...`` becomes ``for v_o: for v_i in range(f): ... v_o * f + v_i ...``) and
    ``v_o`` joins the fused index, so a tile is ``f`` iterations of loop ``d`` (output
    rows, pixels or channel blocks, whichever loop is at the boundary). The rewrite is
    :func:`split_loop`; the tiles of the rewritten kernel are checked like any other.
``tiles_per_commit`` (b)
    Tiles of one commit batch.
``reduction_chunks`` (c)
    Chunks each output element's reduction is cut into (1: not split); only for a tile of
    one element (``d`` = every loop) whose reduction the tiler can split, and then every
    chunk commits (``b`` = 1), see :func:`..codegen.tiling._split_reduction`.
``stage`` (s)
    0, or ``k``: each tile first copies its region of the ``k``-th parameter of
    :func:`.staging.stageable_parameters` into SRAM and reads the copy
    (:func:`.staging.stage_operand`); not with a split reduction.
``order`` (o)
    0, or which two perfectly nested loops inside the tile are swapped (1: the two
    outermost), see :func:`.loop_rewrites.interchange`.
``unroll`` (u)
    1, or the factor the innermost loop inside the tile is unrolled by (its extent:
    fully), see :func:`.loop_rewrites.unroll_loop`.
``variant`` (v)
    0, the kernel the lowering's rule built, or the number of another kernel the lowering
    builds for the operator (:mod:`.variants`: depthwise row pairs or one row per tile,
    fully connected blocked units or one unit per tile). The other knobs then tile that
    kernel: :meth:`.workload.TuningTask.for_knobs` gives its task, whose ``func`` callers
    hand to :func:`tiled_func` and :func:`plan_of`.

:func:`plan_of` turns knobs into the :class:`~..codegen.tiling.TilePlan` of the (rewritten)
kernel with its predicted cost and refuses (:class:`CandidateError`) knobs that do not name
a tiling: a split that does not divide its loop, a depth past the separable loops, a batch
longer than the kernel. Whether a valid plan fits a board is :mod:`.constraints`' question.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tvm import tirx

from ..codegen.tiling import TilePlan, loop_chain, reduction_parts
from ..errors import ModelError

#: Annotation keys on the workload's root block, one per knob.
DEPTH_KEY = "intermittent.tile_depth"
SPLIT_KEY = "intermittent.tile_split"
BATCH_KEY = "intermittent.tiles_per_commit"
CHUNKS_KEY = "intermittent.reduction_chunks"
STAGE_KEY = "intermittent.stage"
ORDER_KEY = "intermittent.loop_order"
UNROLL_KEY = "intermittent.unroll"
VARIANT_KEY = "intermittent.kernel_variant"
KNOB_KEYS = {"depth": DEPTH_KEY, "split": SPLIT_KEY, "tiles_per_commit": BATCH_KEY,
             "chunks": CHUNKS_KEY, "stage": STAGE_KEY, "order": ORDER_KEY,
             "unroll": UNROLL_KEY, "variant": VARIANT_KEY}


class CandidateError(ModelError):
    """Knobs that name no valid tiling, or a tiling that does not fit the board; the message
    says which knob and why."""


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The knob values of one candidate (see the module docstring).

    Attributes
    ----------
    depth : int
        Loops fused into the tile index.
    split : int
        0, or the iterations of loop ``depth`` in one tile.
    tiles_per_commit : int
        Tiles of one commit batch.
    chunks : int
        Chunks of each element's reduction (1: not split).
    stage : int
        0, or 1 + the index of the staged parameter in
        :func:`.staging.stageable_parameters`.
    order : int
        Loop pair swapped inside the tile (0: the order as built).
    unroll : int
        Unroll factor of the innermost loop inside the tile (1: not unrolled).
    variant : int
        Kernel variant (:mod:`.variants`; 0: the kernel the lowering's rule built).
    """

    depth: int
    split: int = 0
    tiles_per_commit: int = 1
    chunks: int = 1
    stage: int = 0
    order: int = 0
    unroll: int = 1
    variant: int = 0

    def to_dict(self) -> dict:
        """The knobs by name; ``variant`` only when it is not 0, so that a record of the
        default kernel reads as it did before the knob (logs compare these dicts)."""
        out = dataclasses.asdict(self)
        if not self.variant:
            del out["variant"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Knobs":
        try:
            return cls(**{k: int(data[k]) for k in ("depth", "split", "tiles_per_commit",
                                                    "chunks", "stage", "order", "unroll",
                                                    "variant")
                                     if k in data})
        except (TypeError, ValueError) as err:
            raise CandidateError(f"knobs {data!r} are not whole numbers: {err}") from err

    @classmethod
    def of_plan(cls, plan: TilePlan) -> "Knobs":
        """The knobs of an analytic plan (which never splits a loop)."""
        return cls(plan.depth, 0, plan.tiles_per_commit, plan.chunks)

    def describe(self) -> str:
        parts = [f"{self.depth} fused loops"]
        if self.variant:
            from .variants import describe  # pylint: disable=import-outside-toplevel

            parts.insert(0, f"kernel {describe(self.variant)}")
        if self.split:
            parts.append(f"{self.split} iterations of the next")
        if self.chunks > 1:
            parts.append(f"reduction in {self.chunks} chunks")
        if self.order:
            parts.append(f"loop pair {self.order} inside the tile swapped")
        if self.unroll > 1:
            parts.append(f"innermost loop unrolled by {self.unroll}")
        parts.append(f"{self.tiles_per_commit} tiles per commit")
        if self.stage:
            parts.append(f"operand {self.stage} staged in SRAM")
        return ", ".join(parts)


def _root_annotations(obj) -> dict:
    """The root block's annotations of a Schedule, an IRModule or a PrimFunc."""
    mod = getattr(obj, "mod", obj)
    func = mod["main"] if hasattr(mod, "functions") else mod
    body = func.body
    block = getattr(body, "block", None)
    if block is None:
        raise CandidateError("not a tuning workload: its body is no root block "
                             "(tuning.workload.workload_of makes one)")
    return dict(block.annotations)


def knobs_of(sch_or_mod) -> Knobs:
    """The knobs a candidate's trace recorded on its workload's root block.

    Parameters
    ----------
    sch_or_mod : tvm.s_tir.Schedule, tvm.IRModule or tvm.tirx.PrimFunc
        A scheduled workload (a replayed trace).

    Raises
    ------
    CandidateError
        When the root block carries no ``intermittent.tile_depth``.
    """
    notes = _root_annotations(sch_or_mod)
    if DEPTH_KEY not in notes:
        raise CandidateError(f"the workload's root block has no {DEPTH_KEY!r} annotation; "
                             "it was not scheduled by the tiling design space")
    values = {name: int(notes[key]) for name, key in KNOB_KEYS.items() if key in notes}
    return Knobs(**values)


# ---- The rewrite and the plan -----------------------------------------------------------


def _divisors(n: int) -> list[int]:
    return [f for f in range(2, n) if n % f == 0]


def split_candidates(extent: int) -> list[int]:
    """Split factors of a loop of ``extent``: its proper divisors."""
    return _divisors(int(extent))


def chunk_candidates(iterations: int) -> list[int]:
    """Chunk counts a reduction of ``iterations`` can be cut into with equal chunks but the
    last: ``c`` such that chunks of ``ceil(I / c)`` iterations make exactly ``c``."""
    out = []
    for c in range(2, iterations + 1):
        size = -(-iterations // c)
        if -(-iterations // size) == c:
            out.append(c)
    return out


def split_loop(func: tirx.PrimFunc, depth: int, factor: int) -> tirx.PrimFunc:
    """``func`` with its loop ``depth`` (0-based, of :func:`..codegen.tiling.loop_chain`)
    split into an outer loop of ``extent / factor`` and an inner one of ``factor``.

    The loop variable becomes ``outer * factor + inner`` wherever it was used; since
    ``factor`` divides the extent the two loops visit exactly the iterations of the old
    one, in the same order, so the kernel computes the same bytes.
    """
    chain = loop_chain(func)
    if not 0 <= depth < len(chain):
        raise CandidateError(f"no loop {depth} to split (the kernel has {len(chain)})")
    loop = chain[depth]
    extent = int(loop.extent)
    if factor < 1 or extent % factor:
        raise CandidateError(f"split factor {factor} does not divide loop "
                             f"{loop.loop_var.name}'s {extent} iterations")
    var = loop.loop_var
    dtype = str(var.ty.dtype)  # Var.dtype is a buffer variable's only
    outer = tirx.Var(f"{var.name}_o", dtype)
    inner = tirx.Var(f"{var.name}_i", dtype)
    # The old variable stays, bound at the top of the inner body: nothing below changes.
    items = list(loop.body.seq) if type(loop.body).__name__ == "SeqStmt" else [loop.body]
    bind = tirx.Bind(var, outer * tirx.const(factor, dtype) + inner)
    zero = tirx.const(0, dtype)
    replacement = tirx.For(outer, zero, tirx.const(extent // factor, dtype), loop.kind,
                           tirx.For(inner, zero, tirx.const(factor, dtype), loop.kind,
                                    tirx.SeqStmt([bind, *items])))
    return func.with_body(_replace(func.body, loop, replacement))


def _replace(stmt, old, new):
    """``stmt`` with the statement ``old`` (on the loop chain) replaced by ``new``."""
    if stmt.same_as(old):
        return new
    kind = type(stmt).__name__
    if kind == "SeqStmt":
        return tirx.SeqStmt([_replace(s, old, new) for s in stmt.seq])
    if kind == "For":
        return tirx.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind,
                        _replace(stmt.body, old, new), stmt.thread_binding, stmt.annotations)
    return stmt


def tiled_func(func: tirx.PrimFunc, knobs: Knobs) -> tirx.PrimFunc:
    """The kernel the knobs' plan applies to: ``func``, with its loop ``depth`` split when
    ``knobs.split`` says so, then its loops inside the tile reordered and unrolled
    (:func:`.loop_rewrites.rewritten`), and an operand staged when ``knobs.stage`` says so.

    With ``knobs.variant``, ``func`` is the variant's kernel (the task
    :meth:`.workload.TuningTask.for_knobs` gives), and the result carries the variant's
    number (``intermittent.variant``): ``builder.assemble`` then lowers the model with that
    variant chosen, so the kernel compiled is the one tuned, with its own constants."""
    from ..transform.shrink import VARIANT_ATTR  # pylint: disable=import-outside-toplevel
    from .loop_rewrites import rewritten  # pylint: disable=import-outside-toplevel

    func = rewritten(func, knobs.depth, knobs.split, knobs.order, knobs.unroll, split_loop)
    func = _staged(func, knobs) if knobs.stage else func
    return func.with_attr(VARIANT_ATTR, knobs.variant) if knobs.variant else func


def _staged(func: tirx.PrimFunc, knobs: Knobs) -> tirx.PrimFunc:
    from . import staging  # pylint: disable=import-outside-toplevel

    names = staging.stageable_parameters(func)
    if not 0 < knobs.stage <= len(names) or knobs.chunks > 1:
        raise CandidateError(f"stage {knobs.stage} names no operand to stage (the kernel's "
                             f"stageable parameters: {names}; none with a split reduction)")
    return staging.stage_operand(func, knobs.depth + (1 if knobs.split else 0),
                                 names[knobs.stage - 1])


def plan_of(knobs: Knobs, func: tirx.PrimFunc, kernel: str, *, usable: int | None = None,
            features=None, placement: dict | None = None, tile_cost=None) -> TilePlan:
    """The tile plan the knobs make of ``func`` (the kernel as lowered, not yet split).

    The plan applies to :func:`tiled_func` ``(func, knobs)``: with a split its depth is
    ``knobs.depth + 1`` (the outer half of the split loop is fused too).

    Parameters
    ----------
    usable : int, optional
        Loops that give each iteration its own outputs (default: every loop of the chain).
    features, placement : optional
        The kernel's executed counts (:func:`..energy.kernel_cost.kernel_features`) and its
        parameters' places, for the predicted cost.
    tile_cost : callable, optional
        ``(tiled func, TilePlan) -> int``: the predicted cost of one tile in the tiler's
        unit, recorded as ``tile_instructions`` (default: instructions of
        :func:`..energy.costs.tile_work`).

    Raises
    ------
    CandidateError
        Knobs that name no tiling of this kernel.
    """
    from ..energy import costs  # pylint: disable=import-outside-toplevel

    chain = loop_chain(func)
    usable = len(chain) if usable is None else usable
    extents = [int(loop.extent) for loop in chain]
    if not 0 <= knobs.depth <= usable:
        raise CandidateError(f"operator {kernel}: tile depth {knobs.depth} is past its "
                             f"{usable} separable loops")
    if knobs.tiles_per_commit < 1:
        raise CandidateError(f"operator {kernel}: tiles per commit must be at least 1")
    depth, extent = knobs.depth, int(np.prod(extents[:knobs.depth], dtype=np.int64))
    chunks, chunk_size = 1, 0
    if knobs.split:
        if knobs.depth >= usable:
            raise CandidateError(f"operator {kernel}: a split of loop {knobs.depth} needs a "
                                 f"separable loop there (it has {usable})")
        if knobs.split not in split_candidates(extents[knobs.depth]):
            raise CandidateError(f"operator {kernel}: split factor {knobs.split} is no "
                                 f"proper divisor of loop {knobs.depth}'s "
                                 f"{extents[knobs.depth]} iterations")
        depth, extent = depth + 1, extent * (extents[knobs.depth] // knobs.split)
    if knobs.chunks > 1:
        parts = reduction_parts(chain) if usable == len(chain) else None
        if parts is None or knobs.depth != len(chain) or knobs.split:
            raise CandidateError(f"operator {kernel}: its reduction cannot be split at tile "
                                 f"depth {knobs.depth} (only a tile of one element of a "
                                 "kernel whose tile body is init, reduction loop, epilogue)")
        iterations = int(parts[1].extent)
        if knobs.chunks not in chunk_candidates(iterations):
            raise CandidateError(f"operator {kernel}: {knobs.chunks} chunks do not cut its "
                                 f"{iterations} reduction iterations evenly")
        if knobs.tiles_per_commit != 1:
            raise CandidateError(f"operator {kernel}: a split reduction commits every chunk "
                                 "(tiles per commit 1)")
        chunks, chunk_size = knobs.chunks, -(-iterations // knobs.chunks)
        extent *= chunks
    if knobs.tiles_per_commit > extent:
        raise CandidateError(f"operator {kernel}: {knobs.tiles_per_commit} tiles per commit "
                             f"but only {extent} tiles")
    plan = TilePlan(depth, extent, 0, knobs.tiles_per_commit, chunks, chunk_size)
    tiled = tiled_func(func, knobs)
    if tile_cost is None:
        # A rewrite (a split adds a loop and a bind): the kernel as lowered counts otherwise.
        features = None if tiled is not func else features
        work = costs.tile_work(tiled, plan, placement, features=features, kernel=kernel)
        cost = max(1, int(round(work.instructions)))
    else:
        cost = int(tile_cost(tiled, plan))
    return dataclasses.replace(plan, tile_instructions=cost)

"""Split each kernel into checkpointable tiles that fit one power cycle.

A tile is one iteration of a kernel's outer loop nest: the leading ``depth`` perfectly nested
loops, fused into one index. A tile reads only tensors that earlier, committed steps wrote,
and writes only its own output elements (every store's index depends on every fused loop
variable), so running it again after a power failure gives the same bytes: tiles are
idempotent. An output element's accumulation starts and ends inside its tile, except in a
split reduction (below).

The size rule uses the calibrated cost model (:mod:`tvm_intermittent.energy.costs`): the
predicted work of one tile, in instruction-equivalents of the board (its instructions plus
the energy of its NVM accesses, :func:`~tvm_intermittent.energy.model.instruction_equivalents`),
must fit ``margin`` of the power cycle budget left after the measured boot, restore and
commit. The compiler groups consecutive tiles into one commit batch up to a batch size that
balances two costs per power cycle of B: committing every b costs about (B / b) * c for a
commit (and the executor's per-batch work) of c, and a failure loses on average b / 2 of
uncommitted work; the sum is smallest at b = sqrt(2 * B * c), scaled by ``batch_scale``.
:class:`TilingPolicy` holds the two knobs (``margin``, ``batch_scale``) a deadline search
turns.

When even one output element is too much for a power cycle (a wide fully connected layer
on a small capacitor), its reduction is split into chunks: a tile is then one chunk of one
element, and the running sum passes from chunk to chunk through two NVM slots. Chunk c reads
slot c % 2 and writes slot (c + 1) % 2, so running chunk c again reads what it read the first
time; such kernels commit after every tile, so no later chunk can have overwritten that slot.
The element's output is computed by its last chunk only (which writes no slot): for an int8
kernel, the requantization of the int32 sum. A power failure anywhere in chunk c leaves the
progress record at chunk c (its commit is the last thing it does), so the boot runs chunk c
again from slot c % 2, which holds what chunk c - 1 committed (chunk 0 starts from the
bias and reads no slot); what chunk c wrote before the failure, to slot (c + 1) % 2 or to
the output, is overwritten with the same values. The form the split needs is the body
``acc = init; for r: acc += ...; out = f(acc)`` over one accumulator (:func:`reduction_parts`):
the float kernels have it, and the int8 fully connected kernel one unit per tile, which the
builder takes where its blocked tile does not fit (``transform/shrink.py``).

Idempotence is not taken on trust from this construction: every plan is checked from the
lowered TIR by :mod:`.idempotence` before it is used.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tvm import tirx

from ..energy import costs as _costs
from ..energy.kernel_cost import Features, kernel_features
from ..energy.model import Work, instruction_equivalents
from ..errors import DoesNotFitError
from .c_printer import statements
from .idempotence import IdempotenceError, check_idempotence

#: Default share of a power cycle (after boot, restore and commit) one commit batch may
#: use; the rest covers the error of the cost model and the spread of tiles around their
#: mean.
BUDGET_MARGIN = 0.5


@dataclasses.dataclass(frozen=True)
class TilingPolicy:
    """The knobs of the tile and batch sizes (recorded in ``model.json``'s ``tiling``).

    Attributes
    ----------
    margin : float
        Share of the power cycle budget left after boot, restore and commit that one batch
        of tiles may use (0 < margin <= 1).
    batch_scale : float
        Factor on the batch size b = sqrt(2 B c) that balances commits against work lost
        to failures (> 0; larger: fewer commits, more re-executed work).
    """

    margin: float = BUDGET_MARGIN
    batch_scale: float = 1.0

    def __post_init__(self):
        if not 0 < self.margin <= 1:
            raise ValueError(f"tiling margin must be in (0, 1], got {self.margin!r}")
        if not self.batch_scale > 0:
            raise ValueError(f"tiling batch_scale must be positive, got {self.batch_scale!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class _Sizing:
    """What one tiling decision works with: the cost of work in the tiler's unit (the
    board's Cortex-M4 instruction-equivalents), the target per batch and the batch size."""

    board: object
    budget: int
    target: int
    batch: int
    policy: TilingPolicy

    def cost(self, work: Work) -> int:
        """``work`` in the tiler's unit: instructions, plus the NVM accesses' energy in
        instruction-equivalents of the board scaled to Cortex-M4 instructions."""
        if self.board is None:
            return int(round(work.instructions))
        nvm = instruction_equivalents(self.board, dataclasses.replace(work, instructions=0.0))
        return int(round(work.instructions + nvm / self.board.instruction_scale))


def commit_limit(target: int, unit: str = "per commit") -> str:
    """How a refusal states ``target``, the most one commit may take: "at most N per commit",
    or, where the boot, the restore and one commit alone spend the whole charge (a negative
    target), that nothing is left for a tile."""
    if target > 0:
        return f"at most {target:,} {unit}"
    return "nothing left for a tile after the boot, the restore and one commit"


def _sizing(budget: int, board, policy: TilingPolicy | None) -> _Sizing:
    policy = policy or TilingPolicy()
    runtime = _costs.runtime_costs()
    probe = _Sizing(board, budget, 0, 0, policy)
    fixed = probe.cost(runtime.boot + runtime.restore + runtime.commit)
    target = int((budget - fixed) * policy.margin)
    per_batch = probe.cost(runtime.commit + runtime.tile_overhead)
    batch = min(target, int(policy.batch_scale * math.sqrt(2 * budget * per_batch)))
    return _Sizing(board, budget, target, batch, policy)


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """How one kernel is cut.

    Attributes
    ----------
    depth : int
        Number of leading loops fused into the tile index (0: the kernel is one tile).
    extent : int
        Number of tiles (iterations of the fused index).
    tile_instructions : int
        Estimated instructions of one tile.
    tiles_per_commit : int
        Tiles run between two commits.
    """

    depth: int
    extent: int
    tile_instructions: int
    tiles_per_commit: int
    #: Chunks each output element's reduction is split into (1: not split).
    chunks: int = 1
    #: Iterations of the outermost reduction loop per chunk (split kernels only).
    chunk_size: int = 0
    #: Why the idempotence check made this plan coarser than the cost alone chose ("": it
    #: did not).
    retiled: str = ""

    @property
    def commits(self) -> int:
        return -(-self.extent // self.tiles_per_commit)


def _strip_decls(stmt):
    """The statement below the function's leading DeclBuffer/AllocBuffer declarations."""
    while True:
        kind = type(stmt).__name__
        if kind == "SeqStmt":
            items = [s for s in stmt.seq if type(s).__name__ not in ("DeclBuffer", "AllocBuffer")]
            if len(items) != 1:
                return stmt
            stmt = items[0]
        else:
            return stmt


def loop_chain(func: tirx.PrimFunc) -> list:
    """The perfectly nested For loops at the top of a lowered kernel (may be empty)."""
    chain = []
    stmt = _strip_decls(func.body)
    while type(stmt).__name__ == "For":
        if not (isinstance(stmt.min, tirx.IntImm) and isinstance(stmt.extent, tirx.IntImm)):
            break
        chain.append(stmt)
        stmt = _strip_decls(stmt.body)
    return chain


def reduction_parts(chain):
    """(init, reduction loop, epilogue) when the innermost tile body is exactly
    ``acc = init; for r: acc += ...; out = f(acc)`` over a one-element scratch ``acc``."""
    if not chain:
        return None
    body = chain[-1].body
    if type(body).__name__ != "SeqStmt" or len(body.seq) != 3:
        return None
    init, loop, epilogue = body.seq
    kinds = [type(x).__name__ for x in (init, loop, epilogue)]
    if kinds != ["BufferStore", "For", "BufferStore"]:
        return None
    acc = init.buffer
    shape = [int(d) for d in acc.ty.shape] if hasattr(acc.ty, "shape") else []
    if shape != [1] or not isinstance(loop.extent, tirx.IntImm):
        return None
    return init, loop, epilogue


def _stores_to_params(stmt, params) -> list:
    """Every BufferStore in ``stmt`` whose buffer views a parameter."""
    return [node for node in statements(stmt)
            if type(node).__name__ == "BufferStore" and node.buffer.name in params]


def _uses_var(expr, var) -> bool:
    if type(expr).__name__ == "Var":
        return expr.same_as(var)
    for field in ("a", "b", "value", "condition", "true_value", "false_value"):
        child = getattr(expr, field, None)
        if child is not None and _uses_var(child, var):
            return True
    for seq_field in ("args", "indices"):
        for child in getattr(expr, seq_field, ()) or ():
            if _uses_var(child, var):
                return True
    return False


def _separable_depth(func, chain, written: set[str]) -> int:
    """How many leading loops give each iteration its own output elements."""
    inner = chain[-1].body if chain else func.body
    names = _view_names(func, written)
    stores = _stores_to_params(inner, names)
    depth = 0
    for loop in chain:
        if stores and all(any(_uses_var(i, loop.loop_var) for i in s.indices) for s in stores):
            depth += 1
        else:
            break
    return depth


def _view_names(func, written: set[str]) -> set[str]:
    """Names of written parameters and of the DeclBuffer views over them."""
    names = set(written)
    stmt = func.body
    items = stmt.seq if type(stmt).__name__ == "SeqStmt" else [stmt]
    for item in items:
        if type(item).__name__ == "DeclBuffer":
            data = item.data
            if type(data).__name__ == "Call" and data.args and data.args[0].name in written:
                names.add(item.buffer.name)
    return names


def plan_tiles(func: tirx.PrimFunc, op_name: str, written: set[str], budget: int,
               board_name: str, *, board=None, policy: TilingPolicy | None = None,
               placement: dict | None = None, features: Features | None = None) -> TilePlan:
    """Choose how to tile one lowered kernel for a power cycle of ``budget`` instructions.

    The tile is the shallowest fused loop prefix whose predicted cost
    (:func:`~tvm_intermittent.energy.costs.tile_work`) fits the target
    ``(budget - boot - restore - commit) * policy.margin``; deeper prefixes make smaller tiles
    but more commits. Raises DoesNotFitError when even one output element's tile does not fit.

    The plan is then checked from the TIR (:func:`.idempotence.check_idempotence`). A plan
    that fails is re-tiled with a shallower prefix (coarser tiles can merge the tiles that
    shared an element or carried scratch) when one fits the budget, and ``retiled`` says why;
    otherwise the kernel is refused with the reason (IdempotenceError).

    Parameters
    ----------
    board : Board, optional
        Charges the tiles' NVM accesses (its wait states and access energy); without it a
        tile costs its instructions only.
    policy : TilingPolicy, optional
        The margin and batch scale (default ``TilingPolicy()``).
    placement : dict, optional
        ``parameter name -> "nvm" | "flash"``: where the tensor passed there lives (default:
        every parameter in NVM).
    features : Features, optional
        ``kernel_features(func, placement)``, when the caller has it already.
    """
    sizing = _sizing(budget, board, policy)
    features = features or kernel_features(func, placement)
    plan = _plan_tiles(func, op_name, written, sizing, board_name, features)
    try:
        check_idempotence(func, op_name, plan)
        return plan
    except IdempotenceError as err:
        if plan.chunks > 1 or plan.depth == 0:
            raise
        reason = str(err)
    chain = loop_chain(func)
    for depth in range(plan.depth - 1, -1, -1):
        extent = int(np.prod([int(loop.extent) for loop in chain[:depth]], dtype=np.int64))
        cost = _tile_cost(func, depth, extent, sizing, features, op_name)
        if cost > sizing.target:
            break
        candidate = TilePlan(depth, extent, cost, _per_commit(extent, cost, sizing),
                             retiled=f"{depth} fused loops instead of {plan.depth}: {reason}")
        try:
            check_idempotence(func, op_name, candidate)
        except IdempotenceError:
            continue
        return candidate
    raise IdempotenceError(f"{reason}; no coarser tiling that fits one power cycle of board "
                           f"{board_name} ({budget:,} instructions) passes the check either, "
                           "so it is refused")


def smallest_tile_cost(func: tirx.PrimFunc, op_name: str, written: set[str], budget: int, *,
                       board=None, policy: TilingPolicy | None = None,
                       placement: dict | None = None) -> tuple[int, int]:
    """``(cost, target)``: the predicted cost of the smallest tile :func:`plan_tiles` can cut
    (one iteration of every separable loop), and the most one commit may take, so that a
    caller can say by how much a refused kernel misses (the same sizing as the refusal)."""
    sizing = _sizing(budget, board, policy)
    features = kernel_features(func, placement)
    chain = loop_chain(func)
    usable = _separable_depth(func, chain, written)
    extent = int(np.prod([int(loop.extent) for loop in chain[:usable]], dtype=np.int64))
    return _tile_cost(func, usable, extent, sizing, features, op_name), sizing.target


def _tile_cost(func, depth: int, extent: int, sizing: _Sizing, features: Features,
               kernel: str) -> int:
    """Predicted cost of one tile of ``depth`` fused loops of ``kernel``, committed alone."""
    work = _costs.tile_work(func, TilePlan(depth, extent, 0, 1), features=features,
                            kernel=kernel)
    return max(1, sizing.cost(work))


def _per_commit(extent: int, cost: int, sizing: _Sizing) -> int:
    return max(1, min(extent, sizing.batch // max(cost, 1)))


def _plan_tiles(func: tirx.PrimFunc, op_name: str, written: set[str], sizing: _Sizing,
                board_name: str, features: Features) -> TilePlan:
    """The tiling by predicted cost alone (see :func:`plan_tiles`)."""
    budget, target = sizing.budget, sizing.target
    chain = loop_chain(func)
    usable = _separable_depth(func, chain, written)
    if usable == 0:
        whole = _tile_cost(func, 0, 1, sizing, features, op_name)
        if whole > target:
            raise DoesNotFitError(
                f"operator {op_name}: cannot be split into tiles and needs about {whole:,} "
                f"instructions, but one power cycle of board {board_name} pays for {budget:,} "
                f"({commit_limit(target)}); use a larger capacitor")
        return TilePlan(0, 1, whole, 1)
    extent = 1
    for depth in range(1, usable + 1):
        extent *= int(chain[depth - 1].extent)
        cost = _tile_cost(func, depth, extent, sizing, features, op_name)
        if cost <= target or depth == usable:
            break
    if cost > target and usable == len(chain):
        split = _split_reduction(func, op_name, chain, extent, sizing, features)
        if split is not None:
            return split
    if cost > target:
        raise DoesNotFitError(
            f"operator {op_name}: its smallest tile (one iteration of {usable} fused loops) "
            f"needs about {cost:,} instructions, but one power cycle of board {board_name} pays "
            f"for {budget:,} ({commit_limit(target)}); use a larger capacitor")
    return TilePlan(depth, extent, cost, _per_commit(extent, cost, sizing))


def _split_reduction(func, op_name: str, chain, elements: int, sizing: _Sizing,
                     features: Features) -> TilePlan | None:
    """Cut each element's reduction into chunks that fit the target (see module docstring).

    An element's predicted work is spread evenly over the iterations of its reduction; a
    chunk adds the fixed part of a tile (the executor's per-batch work, the partial sum's
    NVM slot) on top.
    """
    parts = reduction_parts(chain)
    if parts is None:
        return None
    _, loop, _ = parts
    iterations = int(loop.extent)
    element = _tile_cost(func, len(chain), elements, sizing, features, op_name)
    probe = TilePlan(len(chain), elements * iterations, 0, 1, iterations, 1)
    fixed = sizing.cost(_costs.tile_work(func, probe, features=Features({})))
    per_iteration = max(1.0, (element - fixed) / iterations)
    if per_iteration + fixed > sizing.target:
        return None
    chunk = max(1, int((sizing.target - fixed) // per_iteration))
    chunks = -(-iterations // chunk)
    return TilePlan(len(chain), elements * chunks, int(fixed + chunk * per_iteration), 1,
                    chunks, chunk)

"""Split each kernel into checkpointable tiles that fit one power cycle.

A tile is one iteration of a kernel's outer loop nest: the leading ``depth`` perfectly nested
loops, fused into one index. A tile reads only tensors that earlier, committed steps wrote,
and writes only its own output elements (every store's index depends on every fused loop
variable), so running it again after a power failure gives the same bytes: tiles are
idempotent. Reductions are never split across tiles: an output element's accumulation starts
and ends inside its tile.

The size rule is analytic here (the tuner refines it later): an instruction estimate of one
tile, from the loop nest's structure, must fit the power cycle budget with a margin after
boot, restore and commit. The compiler groups consecutive tiles into one commit batch up to
a batch size that balances two costs per power cycle of B instructions: committing every b
instructions costs about (B / b) * c for a commit of c instructions, and a failure loses on
average b / 2 of uncommitted work; the sum is smallest at b = sqrt(2 * B * c).

When even one output element is too much for a power cycle (a wide fully connected layer
on a small capacitor), its reduction is split into chunks: a tile is then one chunk of one
element, and the running sum passes from chunk to chunk through two NVM slots. Chunk c reads
slot c % 2 and writes slot (c + 1) % 2, so running chunk c again reads what it read the first
time; such kernels commit after every tile, so no later chunk can have overwritten that slot.

Idempotence is not taken on trust from this construction: every plan is checked from the
lowered TIR by :mod:`.idempotence` before it is used.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tvm import tirx

from ..errors import DoesNotFitError
from .c_printer import statements
from .idempotence import IdempotenceError, check_idempotence

#: Fraction of a power cycle one commit batch may use; the rest covers boot, restore,
#: commit, and the error of the instruction estimate.
BUDGET_MARGIN = 0.5
#: Instructions of a boot without the SRAM scrub (vector table, .data/.bss, restore).
BOOT_INSTRUCTIONS = 4000
#: Cost of one commit in instruction-equivalents: the record update and the executor's
#: bookkeeping (about 100 instructions measured) plus the energy of its 24 NVM bytes.
COMMIT_INSTRUCTIONS = 250

# Instruction estimates of TIR nodes on a Cortex-M4 at -O2: deliberately on the high side.
_LOOP_OVERHEAD = 3
_CALL_COST = {"exp": 120, "expf": 120, "tanh": 200, "log": 120, "sqrt": 30, "pow": 300,
              "erf": 150, "sigmoid": 140, "nearbyint": 10, "round": 10}


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


def estimate_instructions(node) -> int:
    """Rough instruction count of executing ``node`` once (a statement or an expression)."""
    kind = type(node).__name__
    if kind == "SeqStmt":
        return sum(estimate_instructions(s) for s in node.seq)
    if kind == "For":
        return int(node.extent) * (estimate_instructions(node.body) + _LOOP_OVERHEAD) + 2
    if kind == "BufferStore":
        return 2 + estimate_instructions(node.value) + sum(
            estimate_instructions(i) for i in node.indices)
    if kind in ("TensorLoad", "BufferLoad"):
        return 2 + sum(estimate_instructions(i) for i in node.indices)
    if kind == "IfThenElse":
        branches = [estimate_instructions(node.then_case)]
        if node.else_case is not None:
            branches.append(estimate_instructions(node.else_case))
        return 2 + estimate_instructions(node.condition) + max(branches)
    if kind in ("Bind",):
        return 1 + estimate_instructions(node.value)
    if kind in ("DeclBuffer", "AllocBuffer", "IntImm", "FloatImm", "Var"):
        return 0
    if kind in ("AttrStmt",):
        return estimate_instructions(node.body)
    if kind == "Evaluate":
        return estimate_instructions(node.value)
    if kind == "Call":
        op = str(node.op.name).rsplit(".", 1)[-1]
        return _CALL_COST.get(op, 2) + sum(estimate_instructions(a) for a in node.args)
    children = [getattr(node, f) for f in ("a", "b", "value", "condition", "true_value",
                                           "false_value") if hasattr(node, f)]
    return 1 + sum(estimate_instructions(c) for c in children if c is not None)


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
               board_name: str) -> TilePlan:
    """Choose how to tile one lowered kernel for a power cycle of ``budget`` instructions.

    The tile is the shallowest fused loop prefix whose estimated cost fits the target
    ``(budget - BOOT_INSTRUCTIONS) * BUDGET_MARGIN``; deeper prefixes make smaller tiles but
    more commits. Raises DoesNotFitError when even one output element's tile does not fit.

    The plan is then checked from the TIR (:func:`.idempotence.check_idempotence`). A plan
    that fails is re-tiled with a shallower prefix (coarser tiles can merge the tiles that
    shared an element or carried scratch) when one fits the budget, and ``retiled`` says why;
    otherwise the kernel is refused with the reason (IdempotenceError).
    """
    plan = _plan_tiles(func, op_name, written, budget, board_name)
    try:
        check_idempotence(func, op_name, plan)
        return plan
    except IdempotenceError as err:
        if plan.chunks > 1 or plan.depth == 0:
            raise
        reason = str(err)
    target = int((budget - BOOT_INSTRUCTIONS) * BUDGET_MARGIN)
    batch = min(target, int(math.sqrt(2 * budget * COMMIT_INSTRUCTIONS)))
    chain = loop_chain(func)
    for depth in range(plan.depth - 1, -1, -1):
        extent = int(np.prod([int(loop.extent) for loop in chain[:depth]], dtype=np.int64))
        body = chain[depth - 1].body if depth else func.body
        cost = estimate_instructions(body) + (_LOOP_OVERHEAD + 8 if depth else 0)
        if cost > target:
            break
        candidate = TilePlan(depth, extent, cost, max(1, min(extent, batch // max(cost, 1))),
                             retiled=f"{depth} fused loops instead of {plan.depth}: {reason}")
        try:
            check_idempotence(func, op_name, candidate)
        except IdempotenceError:
            continue
        return candidate
    raise IdempotenceError(f"{reason}; no coarser tiling that fits one power cycle of board "
                           f"{board_name} ({budget:,} instructions) passes the check either, "
                           "so it is refused")


def _plan_tiles(func: tirx.PrimFunc, op_name: str, written: set[str], budget: int,
                board_name: str) -> TilePlan:
    """The tiling by estimated cost alone (see :func:`plan_tiles`)."""
    target = int((budget - BOOT_INSTRUCTIONS) * BUDGET_MARGIN)
    batch = min(target, int(math.sqrt(2 * budget * COMMIT_INSTRUCTIONS)))
    chain = loop_chain(func)
    usable = _separable_depth(func, chain, written)
    whole = estimate_instructions(func.body)
    if usable == 0:
        if whole > target:
            raise DoesNotFitError(
                f"operator {op_name}: cannot be split into tiles and needs about {whole:,} "
                f"instructions, but one power cycle of board {board_name} pays for {budget:,} "
                f"(at most {target:,} per commit); use a larger capacitor")
        return TilePlan(0, 1, whole, 1)
    extent = 1
    for depth in range(1, usable + 1):
        extent *= int(chain[depth - 1].extent)
        cost = estimate_instructions(chain[depth - 1].body) + _LOOP_OVERHEAD + 8
        if cost <= target or depth == usable:
            break
    if cost > target and usable == len(chain):
        split = _split_reduction(chain, extent, target)
        if split is not None:
            return split
    if cost > target:
        raise DoesNotFitError(
            f"operator {op_name}: its smallest tile (one iteration of {usable} fused loops) "
            f"needs about {cost:,} instructions, but one power cycle of board {board_name} pays "
            f"for {budget:,} (at most {target:,} per commit); use a larger capacitor")
    per_commit = max(1, min(extent, batch // max(cost, 1)))
    return TilePlan(depth, extent, cost, per_commit)


def _split_reduction(chain, elements: int, target: int) -> TilePlan | None:
    """Cut each element's reduction into chunks that fit ``target`` (see module docstring)."""
    parts = reduction_parts(chain)
    if parts is None:
        return None
    init, loop, epilogue = parts
    per_iteration = estimate_instructions(loop.body) + _LOOP_OVERHEAD
    fixed = estimate_instructions(init) + estimate_instructions(epilogue) + 40
    if per_iteration + fixed > target:
        return None
    chunk = max(1, (target - fixed) // per_iteration)
    chunks = -(-int(loop.extent) // chunk)
    return TilePlan(len(chain), elements * chunks, fixed + chunk * per_iteration, 1, chunks,
                    chunk)

"""Check, from a kernel's lowered TIR, that its tiles are idempotent.

A power failure can stop a batch of tiles anywhere, and the executor then runs the batch
again from its first tile. That gives the bytes of an uninterrupted run only if every tile

1. writes elements no other tile writes (otherwise running tile t again after tile t+1
   overwrites t+1's result),
2. reads no element of the kernel's outputs that this same tile has not written first
   (a read-modify-write ``out[i] += x[i]`` adds twice when run twice; reading another tile's
   output makes the result depend on the order in which tiles ran), and
3. reads no scratch element that it has not written first (scratch lives in SRAM, which a
   power failure erases, so data carried from one tile to the next is lost at the first
   failure between them).

The check is exact index arithmetic on the lowered TIR, not a proof from patterns: every
index expression of a store to an output parameter is evaluated over every iteration of the
loops it depends on (numpy arrays over the loop grid), giving each tile's exact write set;
reads of scratch and of written parameters are followed in program order through the tile
body by a small interpreter that runs a loop iteration by iteration only when the loop's
variable reaches a tracked index, and keeps which elements the tile has surely written (a
write under a condition it cannot decide does not count). An index it cannot evaluate (an
index loaded from memory, a loop with a computed extent) makes the kernel fail the check:
in doubt, the kernel is not accepted.

Split reductions (:mod:`.tiling`) pass a running sum from chunk to chunk through two NVM
slots on purpose. There a tile is one chunk of one output element; the check takes the
element-level tiles (all loops fused) through conditions 1-3, where the accumulator is
written at the start of every chunk (the init for chunk 0, the slot load for the others),
and then checks the protocol itself: the reduction loop writes the accumulator only, the
output is written after the loop only (in the last chunk), and each chunk is committed
alone (chunk c reads slot c % 2 and writes slot (c + 1) % 2, so running it again reads what
it read the first time only if no later chunk has run uncommitted).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from tvm import tirx

from ..errors import ModelError
from .c_printer import statements

#: Largest number of index evaluations one access may take (loop grid size).
MAX_GRID = 1 << 24
#: Largest number of tiles whose bodies the read interpreter walks one by one.
MAX_WALKED_TILES = 1 << 14


class IdempotenceError(ModelError):
    """A kernel whose tiles are not idempotent; the message names the kernel and why."""


class _Unanalyzable(Exception):
    """An index or loop the check cannot evaluate."""


@dataclasses.dataclass(frozen=True)
class IdempotenceReport:
    """What the check looked at in one kernel (for reports and tests)."""

    kernel: str
    tiles: int
    written_parameters: tuple[str, ...]
    writes_checked: int
    scratch_buffers: tuple[str, ...]


# ---- index arithmetic ------------------------------------------------------------------

def _trunc_div(a, b):
    q = np.abs(a) // np.abs(b)
    return np.where((np.asarray(a) < 0) != (np.asarray(b) < 0), -q, q)


_ARITH = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
    "FloorDiv": lambda a, b: a // b, "FloorMod": lambda a, b: a % b,
    "Div": _trunc_div, "Mod": lambda a, b: a - _trunc_div(a, b) * b,
    "Min": np.minimum, "Max": np.maximum,
    "EQ": lambda a, b: a == b, "NE": lambda a, b: a != b, "LT": lambda a, b: a < b,
    "LE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GE": lambda a, b: a >= b,
    "And": np.logical_and, "Or": np.logical_or,
}


def _evaluate(expr, env: dict, lets: dict):
    """Value of an integer/boolean TIR expression; ``env`` maps loop variables to ints or
    numpy arrays, ``lets`` maps Bind variables to their value expressions."""
    kind = type(expr).__name__
    if kind == "IntImm":
        return int(expr.value)
    if kind == "Var":
        if expr in env:
            return env[expr]
        if expr in lets:
            return _evaluate(lets[expr], env, lets)
        raise _Unanalyzable(f"index variable {expr.name} has no known value")
    if kind in _ARITH:
        return _ARITH[kind](_evaluate(expr.a, env, lets), _evaluate(expr.b, env, lets))
    if kind == "Not":
        return np.logical_not(_evaluate(expr.a, env, lets))
    if kind == "Cast":
        return _evaluate(expr.value, env, lets)
    if kind == "Select":
        return np.where(_evaluate(expr.condition, env, lets),
                        _evaluate(expr.true_value, env, lets),
                        _evaluate(expr.false_value, env, lets))
    if kind == "Call" and str(expr.op.name) in ("tirx.likely", "tirx.if_then_else"):
        args = [_evaluate(a, env, lets) for a in expr.args]
        return args[0] if len(args) == 1 else np.where(args[0], args[1], args[2])
    if kind in ("BufferLoad", "TensorLoad"):
        raise _Unanalyzable(f"an index loaded from memory, {expr}")
    raise _Unanalyzable(f"index expression of kind {kind} ({expr})")


def _free_vars(expr, lets: dict, out: set) -> set:
    """Loop variables ``expr`` depends on, through Bind values too."""
    kind = type(expr).__name__
    if kind == "Var":
        if expr in lets:
            _free_vars(lets[expr], lets, out)
        else:
            out.add(expr)
        return out
    if kind in ("BufferLoad", "TensorLoad"):
        for index in expr.indices:
            _free_vars(index, lets, out)
        return out
    for field in ("a", "b", "value", "condition", "true_value", "false_value"):
        child = getattr(expr, field, None)
        if child is not None and not isinstance(child, (int, float, str)):
            _free_vars(child, lets, out)
    for child in getattr(expr, "args", ()) or ():
        if not isinstance(child, (int, float, str)) and hasattr(child, "ty"):
            _free_vars(child, lets, out)
    return out


def _loads(expr, out: list) -> list:
    """Buffer loads and address_of arguments in ``expr``, in evaluation order."""
    kind = type(expr).__name__
    if kind in ("BufferLoad", "TensorLoad"):
        for index in expr.indices:
            _loads(index, out)
        out.append((expr, False))
        return out
    if kind == "Call" and str(expr.op.name) == "tirx.address_of":
        load = expr.args[0]
        for index in load.indices:
            _loads(index, out)
        out.append((load, True))  # a helper reads from here on: the rest of the buffer
        return out
    for field in ("a", "b", "value", "condition", "true_value", "false_value"):
        child = getattr(expr, field, None)
        if child is not None and hasattr(child, "ty"):
            _loads(child, out)
    for child in getattr(expr, "args", ()) or ():
        if hasattr(child, "ty"):
            _loads(child, out)
    return out


# ---- buffers ---------------------------------------------------------------------------

@dataclasses.dataclass
class _Storage:
    """A parameter or a scratch allocation, and how views address it (in elements)."""

    name: str
    kind: str  # "param" or "scratch"
    elements: int


def _storages(func: tirx.PrimFunc):
    """Map every buffer (parameter, DeclBuffer view, AllocBuffer) to its storage and the
    view's element offset."""
    views = {}
    for var in func.params:
        count = 1
        for dim in getattr(var.ty, "shape", ()) or ():
            count *= int(dim)
        views[var] = (_Storage(var.name, "param", count), 0)
    for node in statements(func.body):
        kind = type(node).__name__
        if kind == "DeclBuffer":
            data = node.data
            base = data.args[0] if (type(data).__name__ == "Call"
                                    and str(data.op.name) == "tirx.buffer_data") else None
            if base is None or base not in views:
                raise _Unanalyzable(f"buffer {node.buffer.name} views unknown storage")
            storage, offset = views[base]
            extra = getattr(node.buffer.ty, "elem_offset", None)
            if extra is not None and type(extra).__name__ != "IntImm":
                raise _Unanalyzable(f"view {node.buffer.name} has a computed offset")
            views[node.buffer] = (storage, offset + (int(extra) if extra is not None else 0))
        elif kind == "AllocBuffer":
            count = 1
            for dim in node.buffer.ty.shape:
                count *= int(dim)
            views[node.buffer] = (_Storage(node.buffer.name, "scratch", count), 0)
    return views


def _flat_index(access, views, env, lets):
    storage, offset = views[access.buffer if hasattr(access, "buffer") else access.source]
    if len(access.indices) != 1:
        raise _Unanalyzable(f"access to {storage.name} is not flattened")
    return storage, offset + _evaluate(access.indices[0], env, lets)


def _buffer_of(access):
    return access.buffer if type(access).__name__ == "BufferStore" else access.source


# ---- condition 1: exact write sets -------------------------------------------------------

def _param_stores(body, views):
    """(store, enclosing loops, lets in scope) of every store to a parameter under body."""
    found = []

    def walk(node, loops, lets):
        kind = type(node).__name__
        if kind == "SeqStmt":
            scope = dict(lets)
            for child in node.seq:
                if type(child).__name__ == "Bind":
                    scope[child.var] = child.value
                walk(child, loops, scope)
        elif kind == "For":
            walk(node.body, loops + [node], lets)
        elif kind == "BufferStore":
            if views[node.buffer][0].kind == "param":
                found.append((node, loops, lets))
        else:
            for field in ("body", "then_case", "else_case"):
                child = getattr(node, field, None)
                if child is not None:
                    walk(child, loops, lets)

    walk(body, [], {})
    return found


def _check_disjoint_writes(kernel, body, tile_loops, views) -> int:
    """Condition 1: no element of a parameter is written by two tiles. Returns the number
    of (tile, element) writes checked."""
    tile_vars = [loop.loop_var for loop in tile_loops]
    extents = [int(loop.extent) for loop in tile_loops]
    mins = [int(loop.min) for loop in tile_loops]
    per_storage: dict[str, list] = {}
    checked = 0
    for store, loops, lets in _param_stores(body, views):
        used = _free_vars(store.indices[0], lets, set())
        inner = [loop for loop in loops if loop.loop_var in used]
        axes = [(v, m, e) for v, m, e in zip(tile_vars, mins, extents)]
        for loop in inner:
            if type(loop.extent).__name__ != "IntImm" or type(loop.min).__name__ != "IntImm":
                raise _Unanalyzable(f"loop {loop.loop_var.name} has a computed extent")
            axes.append((loop.loop_var, int(loop.min), int(loop.extent)))
        size = int(np.prod([e for _, _, e in axes], dtype=np.int64)) if axes else 1
        if size > MAX_GRID:
            raise _Unanalyzable(f"store to {store.buffer.name} spans {size:,} iterations")
        grids = np.meshgrid(*[np.arange(m, m + e, dtype=np.int64) for _, m, e in axes],
                            indexing="ij") if axes else []
        env = {var: grid.reshape(-1) for (var, _, _), grid in zip(axes, grids)}
        missing = _free_vars(store.indices[0], lets, set()) - set(env)
        if missing:
            raise _Unanalyzable(f"store to {store.buffer.name} depends on "
                                f"{', '.join(v.name for v in missing)}")
        storage, index = _flat_index(store, views, env, lets)
        index = np.broadcast_to(np.asarray(index, dtype=np.int64), (size,))
        tile = np.zeros(size, dtype=np.int64)
        for var, low, extent in zip(tile_vars, mins, extents):
            tile = tile * extent + (env[var] - low)
        per_storage.setdefault(storage.name, []).append((index, tile))
        checked += size
    for name, parts in per_storage.items():
        index = np.concatenate([p[0] for p in parts])
        tile = np.concatenate([p[1] for p in parts])
        order = np.lexsort((tile, index))
        index, tile = index[order], tile[order]
        clash = np.nonzero((index[1:] == index[:-1]) & (tile[1:] != tile[:-1]))[0]
        if clash.size:
            k = int(clash[0])
            raise IdempotenceError(
                f"kernel {kernel}: tiles {int(tile[k])} and {int(tile[k + 1])} both write "
                f"element {int(index[k])} of {name}, so running one again after the other "
                "overwrites the other's result")
    return checked


# ---- conditions 2 and 3: reads covered by the tile's own writes ----------------------------

class _ReadWalker:
    """Follows one tile's body in program order, keeping the elements of the tracked
    buffers (scratch, written parameters) this tile has surely written so far."""

    def __init__(self, kernel, views, tracked: set, all_writes: dict):
        self.kernel = kernel
        self.views = views
        self.tracked = tracked  # storage names
        self.all_writes = all_writes  # written parameter name -> set of elements (any tile)
        self.tracked_buffers = {b for b, (s, _) in views.items() if s.name in tracked}
        # Both caches are keyed by the node's address (hash): the function keeps every node
        # alive while the walker lives, and lets are lexical, so a node sees the same ones.
        self._touch_cache: dict[int, set] = {}
        self._tracked_cache: dict[int, bool] = {}
        self._guard_cache: dict[int, list] = {}
        self._load_cache: dict[int, list] = {}

    def _tracked_loads(self, expr) -> list:
        key = hash(expr)
        if key not in self._load_cache:
            self._load_cache[key] = [(load, rest) for load, rest in _loads(expr, [])
                                     if load.source in self.tracked_buffers]
        return self._load_cache[key]

    def _touches(self, node, lets) -> set:
        """Loop variables the index of a tracked access below ``node`` uses. Conditions do
        not count: a condition on a variable left unknown is undecided, and the walk then
        keeps only the writes both branches make, which holds whatever the variable is."""
        key = hash(node)
        if key not in self._touch_cache:
            self._touch_cache[key] = self._compute_touches(node, lets)
        return self._touch_cache[key]

    def _has_tracked(self, node) -> bool:
        """Whether any tracked buffer is accessed below ``node``."""
        key = hash(node)
        if key not in self._tracked_cache:
            found = False
            for stmt in statements(node):
                kind = type(stmt).__name__
                if kind == "BufferStore" and stmt.buffer in self.tracked_buffers:
                    found = True
                for field in ("value", "condition"):
                    expr = getattr(stmt, field, None)
                    if expr is not None and hasattr(expr, "ty") and self._tracked_loads(expr):
                        found = True
                if found:
                    break
            self._tracked_cache[key] = found
        return self._tracked_cache[key]

    def _compute_touches(self, node, lets) -> set:
        used = set()
        for stmt in statements(node):
            kind = type(stmt).__name__
            exprs = []
            if kind == "BufferStore":
                if stmt.buffer in self.tracked_buffers:
                    exprs.append(stmt.indices[0])
                    # The element written is known only where the loops it names are.
                    _free_vars(stmt.indices[0], lets, used)
                exprs.append(stmt.value)
            elif kind in ("Bind", "Evaluate"):
                exprs.append(stmt.value)
            elif kind in ("IfThenElse", "While"):
                exprs.append(stmt.condition)
            for expr in exprs:
                for load, _ in self._tracked_loads(expr):
                    _free_vars(load.indices[0], lets, used)
        return used

    def reads(self, expr, env, lets, written):
        for load, rest in self._tracked_loads(expr):
            storage, index = _flat_index(load, self.views, env, lets)
            index = int(index)
            span = range(index, storage.elements) if rest else (index,)
            done = written.get(storage.name, set())
            for element in span:
                if element in done:
                    continue
                if storage.kind == "scratch":
                    raise IdempotenceError(
                        f"kernel {self.kernel}: scratch {storage.name}[{element}] is read "
                        "before this tile writes it, so it carries data from an earlier tile "
                        "(or from nothing) through SRAM, which a power failure erases")
                if element in self.all_writes.get(storage.name, ()):
                    raise IdempotenceError(
                        f"kernel {self.kernel}: a tile reads element {element} of its output "
                        f"{storage.name} before writing it (a read-modify-write), so running "
                        "the tile again reads its own earlier result")

    def walk(self, node, env, lets, written):
        kind = type(node).__name__
        if kind == "SeqStmt":
            scope = dict(lets)
            for child in node.seq:
                self.walk(child, env, scope, written)
                if type(child).__name__ == "Bind":
                    scope[child.var] = child.value
        elif kind == "Bind":
            self.reads(node.value, env, lets, written)
        elif kind == "BufferStore":
            self.reads(node.value, env, lets, written)
            if node.buffer in self.tracked_buffers:
                storage, index = _flat_index(node, self.views, env, lets)
                written.setdefault(storage.name, set()).add(int(index))
        elif kind == "Evaluate":
            self.reads(node.value, env, lets, written)
        elif kind == "For":
            self._walk_for(node, env, lets, written)
        elif kind == "IfThenElse":
            self.reads(node.condition, env, lets, written)
            try:
                taken = bool(_evaluate(node.condition, env, lets))
            except _Unanalyzable:
                taken = None
            if taken is not None:
                branch = node.then_case if taken else node.else_case
                if branch is not None:
                    self.walk(branch, env, lets, written)
                return
            # Undecided: either branch may run; only writes both make are sure.
            results = []
            for branch in (node.then_case, node.else_case):
                copy = {k: set(v) for k, v in written.items()}
                if branch is not None:
                    self.walk(branch, env, lets, copy)
                results.append(copy)
            for name in list(written) + list(results[0]):
                written[name] = results[0].get(name, set()) & results[1].get(name, set())
        elif kind in ("AttrStmt",):
            self.walk(node.body, env, lets, written)
        elif kind in ("DeclBuffer", "AllocBuffer", "AssertStmt"):
            return
        elif kind == "While":
            raise _Unanalyzable("a while loop")
        else:
            raise _Unanalyzable(f"statement {kind}")

    def _decides(self, node, env, lets) -> bool:
        """Whether running ``node`` iteration by iteration decides a condition that guards a
        tracked write below it (``if k == 0: acc = 0`` in a reduction over k): one that
        depends on the loop variable and otherwise only on known or inner loop variables."""
        key = hash(node)
        if key not in self._guard_cache:
            inner = {s.loop_var for s in statements(node.body) if type(s).__name__ == "For"}
            guards = []
            for stmt in statements(node.body):
                if type(stmt).__name__ == "IfThenElse" and any(
                        type(s).__name__ == "BufferStore" and s.buffer in self.tracked_buffers
                        for s in statements(stmt)):
                    guards.append(_free_vars(stmt.condition, lets, set()) - inner)
            self._guard_cache[key] = guards
        return any(node.loop_var in guard and guard - {node.loop_var} <= set(env)
                   for guard in self._guard_cache[key])

    def _walk_for(self, node, env, lets, written):
        if not self._has_tracked(node.body):
            return
        if node.loop_var in self._touches(node.body, lets) or self._decides(node, env, lets):
            if type(node.extent).__name__ != "IntImm" or type(node.min).__name__ != "IntImm":
                raise _Unanalyzable(f"loop {node.loop_var.name} has a computed extent")
            low = int(node.min)
            for value in range(low, low + int(node.extent)):
                self.walk(node.body, {**env, node.loop_var: value}, lets, written)
            return
        # The tracked accesses below do not depend on this loop: every iteration touches the
        # same elements, so one walk stands for all (writes of the first iteration precede
        # the reads of the later ones, which one walk also sees as covered or not).
        if type(node.extent).__name__ == "IntImm" and int(node.extent) <= 0:
            return
        self.walk(node.body, env, lets, written)


def _all_param_writes(body, views, tile_loops) -> dict:
    """Every element each written parameter receives, over all tiles: an uncovered read of
    one of them reads a result some tile wrote (its own earlier run or another tile)."""
    out: dict[str, set] = {}
    tile_axes = [(l.loop_var, int(l.min), int(l.extent)) for l in tile_loops]
    for store, loops, lets in _param_stores(body, views):
        used = _free_vars(store.indices[0], lets, set())
        inner = [l for l in loops if l.loop_var in used]
        if any(type(l.extent).__name__ != "IntImm" or type(l.min).__name__ != "IntImm"
               for l in inner):
            raise _Unanalyzable(f"a loop around the store to {store.buffer.name} has a "
                                "computed extent")
        axes = tile_axes + [(l.loop_var, int(l.min), int(l.extent)) for l in inner]
        if int(np.prod([e for _, _, e in axes], dtype=np.int64)) > MAX_GRID:
            raise _Unanalyzable(f"store to {store.buffer.name} spans too many iterations")
        grids = np.meshgrid(*[np.arange(m, m + e) for _, m, e in axes], indexing="ij") \
            if axes else []
        env = {v: g.reshape(-1) for (v, _, _), g in zip(axes, grids)}
        storage, index = _flat_index(store, views, env, lets)
        out.setdefault(storage.name, set()).update(np.asarray(index).reshape(-1).tolist())
    return out


def _check_reads(kernel, func, body, tile_loops, views) -> tuple[str, ...]:
    """Conditions 2 and 3 on every tile (one walk stands for all tiles when no tracked
    access depends on a tile variable)."""
    written_params = {s.name for s, _ in views.values() if s.kind == "param"} & {
        views[n.buffer][0].name for n in statements(body)
        if type(n).__name__ == "BufferStore" and views[n.buffer][0].kind == "param"}
    read_params = set()
    for node in statements(body):
        for field in ("value", "condition"):
            expr = getattr(node, field, None)
            if expr is not None and hasattr(expr, "ty"):
                read_params |= {views[l.source][0].name for l, _ in _loads(expr, [])
                                if l.source in views}
    rmw = written_params & read_params
    scratch = {s.name for s, _ in views.values() if s.kind == "scratch"}
    tracked = scratch | rmw
    if not tracked:
        return ()
    all_writes = _all_param_writes(body, views, tile_loops) if rmw else {}
    walker = _ReadWalker(kernel, views, tracked, all_writes)
    tile_vars = [loop.loop_var for loop in tile_loops]
    depends = walker._touches(body, {}) & set(tile_vars)  # pylint: disable=protected-access
    if not depends:
        # Tile variables stay unknown: a condition on them is undecided, so the walk covers
        # what any tile may do.
        walker.walk(body, {}, {}, {})
        return tuple(sorted(scratch))
    ranges = [range(int(l.min), int(l.min) + int(l.extent)) for l in tile_loops]
    count = int(np.prod([len(r) for r in ranges], dtype=np.int64))
    if count > MAX_WALKED_TILES:
        raise _Unanalyzable(f"{count:,} tiles whose tracked accesses depend on the tile")
    for values in itertools.product(*ranges):
        walker.walk(body, dict(zip(tile_vars, values)), {}, {})
    return tuple(sorted(scratch))


# ---- split reductions ------------------------------------------------------------------

def _check_split_protocol(kernel, chain, plan, views) -> None:
    from .tiling import reduction_parts  # pylint: disable=import-outside-toplevel

    parts = reduction_parts(chain)
    if parts is None:
        raise IdempotenceError(f"kernel {kernel}: its reduction is split into chunks but its "
                               "tile body is not init; reduce; epilogue")
    init, loop, epilogue = parts
    acc = views[init.buffer][0]
    for node in statements(loop.body):
        if type(node).__name__ == "BufferStore" and views[node.buffer][0] is not acc:
            raise IdempotenceError(
                f"kernel {kernel}: its split reduction loop writes {node.buffer.name}, not only "
                "the running sum, so a chunk run again would repeat that write")
    if views[epilogue.buffer][0].kind != "param":
        raise IdempotenceError(f"kernel {kernel}: the split reduction's epilogue writes "
                               "scratch, not the output")
    if plan.tiles_per_commit != 1:
        raise IdempotenceError(
            f"kernel {kernel}: a split reduction must commit after every chunk (it commits "
            f"every {plan.tiles_per_commit}): chunk c + 2 would overwrite the slot chunk c "
            "reads before chunk c is committed")


# ---- entry point -----------------------------------------------------------------------

def check_idempotence(func: tirx.PrimFunc, kernel: str, plan) -> IdempotenceReport:
    """Check conditions 1-3 of the module docstring on the tiles ``plan`` cuts ``func`` into.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        The lowered kernel (what the C printer prints).
    kernel : str
        Its name, for messages.
    plan : tvm_intermittent.codegen.tiling.TilePlan
        How it is tiled: the leading ``plan.depth`` loops fused into the tile index, each
        output element's reduction cut into ``plan.chunks`` chunks.

    Returns
    -------
    IdempotenceReport

    Raises
    ------
    IdempotenceError
        A condition fails, or the kernel cannot be analyzed; the message says which.
    """
    from .tiling import loop_chain  # pylint: disable=import-outside-toplevel

    try:
        views = _storages(func)
        chain = loop_chain(func)
        if plan.depth > len(chain):
            raise _Unanalyzable(f"the plan fuses {plan.depth} loops, the kernel has "
                                f"{len(chain)} perfectly nested ones")
        tile_loops = chain[:plan.depth] if plan.depth else []
        if plan.chunks > 1:
            tile_loops = chain  # a tile is one chunk of one element: check the elements
            _check_split_protocol(kernel, chain, plan, views)
        body = tile_loops[-1].body if tile_loops else func.body
        checked = _check_disjoint_writes(kernel, body, tile_loops, views)
        scratch = _check_reads(kernel, func, body, tile_loops, views)
    except _Unanalyzable as err:
        raise IdempotenceError(
            f"kernel {kernel}: cannot show its tiles are idempotent ({err}), so it is not "
            "accepted; this is a compiler limitation to report with the model") from err
    written = tuple(sorted({views[n.buffer][0].name for n in statements(func.body)
                            if type(n).__name__ == "BufferStore"
                            and views[n.buffer][0].kind == "param"}))
    tiles = plan.extent // max(plan.chunks, 1) if plan.chunks > 1 else plan.extent
    return IdempotenceReport(kernel, tiles, written, checked, scratch)

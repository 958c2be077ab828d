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

The walk visits up to :data:`MAX_WALKED_TILES` tiles, each through every iteration of the
loops that index a tracked buffer, so it reads no TVM object while it runs: each kernel's
tile body is first translated once into Python tuples (statements) and closures over plain
ints (index and condition expressions, loop variables looked up by their object handle,
``Bind`` values compiled where they are used). The translation keeps the walk's order of
evaluation, so an index that cannot be evaluated fails where and when it did in the TIR.
A loop whose body only stores to tracked buffers (the copy of a staged operand) is
evaluated over its whole range at once, and a read through an address, which reaches the
end of the buffer, is checked only against the elements not yet known written.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator

import numpy as np
from tvm import tirx

from ..errors import ModelError
from .c_printer import statements
from .tir_loads import ELEMENT, buffer_loads

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


def _key(obj) -> int:
    """A TVM object's identity, its handle: what TVM's ``==`` on two variables or buffers
    compares, without a call into TVM per dictionary lookup."""
    return obj.__chandle__()


# ---- index arithmetic ------------------------------------------------------------------

def _trunc_div(a, b):
    q = np.abs(a) // np.abs(b)
    return np.where((np.asarray(a) < 0) != (np.asarray(b) < 0), -q, q)


def _trunc_mod(a, b):
    return a - _trunc_div(a, b) * b


def _both(a, b):
    return bool(a) and bool(b)


def _either(a, b):
    return bool(a) or bool(b)


#: Binary operators over numpy arrays (the loop grids of the write sets).
_VECTOR = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul,
    "FloorDiv": operator.floordiv, "FloorMod": operator.mod,
    "Div": _trunc_div, "Mod": _trunc_mod, "Min": np.minimum, "Max": np.maximum,
    "EQ": operator.eq, "NE": operator.ne, "LT": operator.lt, "LE": operator.le,
    "GT": operator.gt, "GE": operator.ge, "And": np.logical_and, "Or": np.logical_or,
}
#: The same over Python ints (the read walk, one iteration at a time). Both operands are
#: evaluated before ``And``/``Or`` combine them, as over arrays: an operand that cannot be
#: evaluated makes the condition undecided even where the other one would settle it.
_SCALAR = {**_VECTOR, "Min": min, "Max": max, "And": _both, "Or": _either}


class _Env(dict):
    """Loop variable handle -> value (an int, or a numpy array over a loop grid). A variable
    without a value is an index the check cannot evaluate, raised when it is read."""

    __slots__ = ("names",)

    def __init__(self, names: dict, values=()):
        super().__init__(values)
        self.names = names

    def __missing__(self, key):
        raise _Unanalyzable(f"index variable {self.names[key]} has no known value")


def _fails(message):
    """An expression that raises when evaluated (not when translated: a condition that
    cannot be evaluated is undecided, which only its evaluation finds out)."""
    def evaluate(env):
        raise _Unanalyzable(message())
    return evaluate


def _constant(value):
    return lambda env: value


def _binary(op, a, b, b_value):
    if b_value is not None:
        return lambda env: op(a(env), b_value)
    return lambda env: op(a(env), b(env))


class _Compiler:
    """Translates integer/boolean TIR expressions into closures ``env -> value``.

    ``lets`` maps Bind variable handles to their value expressions; a Bind variable is
    compiled to its value (once per variable: TIR binds each one once), looked up in the
    environment first as before. Operands are evaluated left to right and every one of
    them, so an expression fails on the same sub-expression as a walk of the TIR would.
    """

    def __init__(self, names: dict, vector: bool):
        self.names = names
        self.vector = vector
        self.ops = _VECTOR if vector else _SCALAR
        self._lets: dict[int, object] = {}

    def __call__(self, expr, lets: dict):
        kind = type(expr).__name__
        if kind == "IntImm":
            return _constant(int(expr.value))
        if kind == "Var":
            key = _key(expr)
            self.names[key] = expr.name
            if key in lets:
                if key not in self._lets:
                    self._lets[key] = self(lets[key], lets)
                value = self._lets[key]
                return lambda env: env[key] if key in env else value(env)
            return operator.itemgetter(key)
        if kind in self.ops:
            b_value = int(expr.b.value) if type(expr.b).__name__ == "IntImm" else None
            return _binary(self.ops[kind], self(expr.a, lets), self(expr.b, lets), b_value)
        if kind == "Not":
            a = self(expr.a, lets)
            if self.vector:
                return lambda env: np.logical_not(a(env))
            return lambda env: not a(env)
        if kind == "Cast":
            return self(expr.value, lets)
        if kind == "Select":
            return self._select([self(expr.condition, lets), self(expr.true_value, lets),
                                 self(expr.false_value, lets)])
        if kind == "Call" and str(expr.op.name) in ("tirx.likely", "tirx.if_then_else"):
            args = [self(a, lets) for a in expr.args]
            return args[0] if len(args) == 1 else self._select(args)
        if kind in ("BufferLoad", "TensorLoad"):
            return _fails(lambda: f"an index loaded from memory, {expr}")
        return _fails(lambda: f"index expression of kind {kind} ({expr})")

    def _select(self, args):
        if self.vector:
            def select(env):
                values = [f(env) for f in args]
                return np.where(values[0], values[1], values[2])
        else:
            def select(env):
                values = [f(env) for f in args]
                return values[1] if values[0] else values[2]
        return select


# ---- buffers ---------------------------------------------------------------------------

@dataclasses.dataclass
class _Storage:
    """A parameter or a scratch allocation, and how views address it (in elements)."""

    name: str
    kind: str  # "param" or "scratch"
    elements: int


def _storages(func: tirx.PrimFunc) -> dict:
    """Map every buffer (parameter, DeclBuffer view, AllocBuffer), by handle, to its storage
    and the view's element offset."""
    views = {}
    for var in func.params:
        count = 1
        for dim in getattr(var.ty, "shape", ()) or ():
            count *= int(dim)
        views[_key(var)] = (_Storage(var.name, "param", count), 0)
    for node in statements(func.body):
        kind = type(node).__name__
        if kind == "DeclBuffer":
            data = node.data
            base = data.args[0] if (type(data).__name__ == "Call"
                                    and str(data.op.name) == "tirx.buffer_data") else None
            if base is None or _key(base) not in views:
                raise _Unanalyzable(f"buffer {node.buffer.name} views unknown storage")
            storage, offset = views[_key(base)]
            extra = getattr(node.buffer.ty, "elem_offset", None)
            if extra is not None and type(extra).__name__ != "IntImm":
                raise _Unanalyzable(f"view {node.buffer.name} has a computed offset")
            views[_key(node.buffer)] = (storage,
                                        offset + (int(extra) if extra is not None else 0))
        elif kind == "AllocBuffer":
            count = 1
            for dim in node.buffer.ty.shape:
                count *= int(dim)
            views[_key(node.buffer)] = (_Storage(node.buffer.name, "scratch", count), 0)
    return views


def _buffer_key(access) -> int:
    return _key(access.buffer if hasattr(access, "buffer") else access.source)


class _Kernel:
    """One kernel as the check reads it: its storages by buffer handle, the names of its
    variables (for messages), and the expression compilers over arrays and over ints."""

    def __init__(self, func: tirx.PrimFunc):
        self.views = _storages(func)
        self.names: dict[int, str] = {}
        self.vector = _Compiler(self.names, vector=True)
        self.scalar = _Compiler(self.names, vector=False)

    def storage(self, access) -> _Storage:
        return self.views[_buffer_key(access)][0]

    def access(self, access, compiler, lets):
        """``(storage, element offset, index closure)`` of a load or store; the closure
        raises when the access is not flattened."""
        storage, offset = self.views[_buffer_key(access)]
        if len(access.indices) != 1:
            return storage, offset, _fails(lambda: f"access to {storage.name} is not flattened")
        return storage, offset, compiler(access.indices[0], lets)

    def free_vars(self, expr, lets: dict, out: set) -> set:
        """Handles of the loop variables ``expr`` depends on, through Bind values too."""
        kind = type(expr).__name__
        if kind == "Var":
            key = _key(expr)
            if key in lets:
                self.free_vars(lets[key], lets, out)
            else:
                self.names[key] = expr.name
                out.add(key)
            return out
        if kind in ("BufferLoad", "TensorLoad"):
            for index in expr.indices:
                self.free_vars(index, lets, out)
            return out
        for field in ("a", "b", "value", "condition", "true_value", "false_value"):
            child = getattr(expr, field, None)
            if child is not None and not isinstance(child, (int, float, str)):
                self.free_vars(child, lets, out)
        for child in getattr(expr, "args", ()) or ():
            if not isinstance(child, (int, float, str)) and hasattr(child, "ty"):
                self.free_vars(child, lets, out)
        return out

    def param_stores(self, body) -> list:
        """(store, enclosing loops, lets in scope) of every store to a parameter under
        body."""
        found = []

        def walk(node, loops, lets):
            kind = type(node).__name__
            if kind == "SeqStmt":
                scope = dict(lets)
                for child in node.seq:
                    if type(child).__name__ == "Bind":
                        scope[_key(child.var)] = child.value
                    walk(child, loops, scope)
            elif kind == "For":
                walk(node.body, loops + [node], lets)
            elif kind == "BufferStore":
                if self.storage(node).kind == "param":
                    found.append((node, loops, lets))
            else:
                for field in ("body", "then_case", "else_case"):
                    child = getattr(node, field, None)
                    if child is not None:
                        walk(child, loops, lets)

        walk(body, [], {})
        return found


def _fixed(loop) -> bool:
    return type(loop.extent).__name__ == "IntImm" and type(loop.min).__name__ == "IntImm"


# ---- condition 1: exact write sets -------------------------------------------------------

def _check_disjoint_writes(kernel, body, tile_loops, k: _Kernel) -> int:
    """Condition 1: no element of a parameter is written by two tiles. Returns the number
    of (tile, element) writes checked."""
    tile_keys = [_key(loop.loop_var) for loop in tile_loops]
    extents = [int(loop.extent) for loop in tile_loops]
    mins = [int(loop.min) for loop in tile_loops]
    per_storage: dict[str, list] = {}
    checked = 0
    for store, loops, lets in k.param_stores(body):
        used = k.free_vars(store.indices[0], lets, set())
        inner = [loop for loop in loops if _key(loop.loop_var) in used]
        axes = list(zip(tile_keys, mins, extents))
        for loop in inner:
            if not _fixed(loop):
                raise _Unanalyzable(f"loop {loop.loop_var.name} has a computed extent")
            axes.append((_key(loop.loop_var), int(loop.min), int(loop.extent)))
        size = int(np.prod([e for _, _, e in axes], dtype=np.int64)) if axes else 1
        if size > MAX_GRID:
            raise _Unanalyzable(f"store to {store.buffer.name} spans {size:,} iterations")
        grids = np.meshgrid(*[np.arange(m, m + e, dtype=np.int64) for _, m, e in axes],
                            indexing="ij") if axes else []
        env = _Env(k.names, {key: grid.reshape(-1) for (key, _, _), grid in zip(axes, grids)})
        missing = k.free_vars(store.indices[0], lets, set()) - set(env)
        if missing:
            raise _Unanalyzable(f"store to {store.buffer.name} depends on "
                                f"{', '.join(k.names[v] for v in missing)}")
        storage, offset, index = k.access(store, k.vector, lets)
        index = np.broadcast_to(np.asarray(offset + index(env), dtype=np.int64), (size,))
        tile = np.zeros(size, dtype=np.int64)
        for key, low, extent in zip(tile_keys, mins, extents):
            tile = tile * extent + (env[key] - low)
        per_storage.setdefault(storage.name, []).append((index, tile))
        checked += size
    for name, parts in per_storage.items():
        index = np.concatenate([p[0] for p in parts])
        tile = np.concatenate([p[1] for p in parts])
        order = np.lexsort((tile, index))
        index, tile = index[order], tile[order]
        clash = np.nonzero((index[1:] == index[:-1]) & (tile[1:] != tile[:-1]))[0]
        if clash.size:
            j = int(clash[0])
            raise IdempotenceError(
                f"kernel {kernel}: tiles {int(tile[j])} and {int(tile[j + 1])} both write "
                f"element {int(index[j])} of {name}, so running one again after the other "
                "overwrites the other's result")
    return checked


def _all_param_writes(body, tile_loops, k: _Kernel) -> dict:
    """Every element each written parameter receives, over all tiles: an uncovered read of
    one of them reads a result some tile wrote (its own earlier run or another tile)."""
    out: dict[str, set] = {}
    tile_axes = [(_key(l.loop_var), int(l.min), int(l.extent)) for l in tile_loops]
    for store, loops, lets in k.param_stores(body):
        used = k.free_vars(store.indices[0], lets, set())
        inner = [l for l in loops if _key(l.loop_var) in used]
        if not all(_fixed(l) for l in inner):
            raise _Unanalyzable(f"a loop around the store to {store.buffer.name} has a "
                                "computed extent")
        axes = tile_axes + [(_key(l.loop_var), int(l.min), int(l.extent)) for l in inner]
        if int(np.prod([e for _, _, e in axes], dtype=np.int64)) > MAX_GRID:
            raise _Unanalyzable(f"store to {store.buffer.name} spans too many iterations")
        grids = np.meshgrid(*[np.arange(m, m + e) for _, m, e in axes], indexing="ij") \
            if axes else []
        env = _Env(k.names, {key: g.reshape(-1) for (key, _, _), g in zip(axes, grids)})
        storage, offset, index = k.access(store, k.vector, lets)
        out.setdefault(storage.name, set()).update(
            np.asarray(offset + index(env)).reshape(-1).tolist())
    return out


# ---- conditions 2 and 3: reads covered by the tile's own writes ----------------------------

# Statements of a translated tile body (tuples whose first item is one of these):
_SEQ = 0  # (_SEQ, children)
_READ = 1  # (_READ, loads): a Bind, an Evaluate, a store to an untracked buffer
_STORE = 2  # (_STORE, loads, storage name, offset, index, index over arrays): a tracked store
_FOR = 3  # (_FOR, handle, name, iterate, guards, bounds, empty, body, stores)
# (``stores``: (storage name, offset, index over arrays) of each statement of a body that
# is tracked stores only, evaluated over the whole range at once; else None)
_IF = 4  # (_IF, loads, condition, then, else)
_FAIL = 5  # (_FAIL, reason): a statement the walk cannot follow
# A load is (storage, offset, index closure, whether it reads on to the buffer's end).
# Statements that read and write no tracked buffer are left out: walking them does nothing.

_UNSET = object()


class _ReadWalker:
    """Follows one tile's body in program order, keeping the elements of the tracked
    buffers (scratch, written parameters) this tile has surely written so far.

    The body is translated once (:meth:`translate`), then walked once per tile
    (:meth:`walk`) over the translation, which holds no TVM object but the ones messages
    print."""

    def __init__(self, kernel, k: _Kernel, tracked: set, all_writes: dict):
        self.kernel = kernel
        self.k = k
        self.all_writes = all_writes  # written parameter name -> set of elements (any tile)
        self.tracked_buffers = {key for key, (s, _) in k.views.items() if s.name in tracked}
        # Keyed by the node's handle: the function keeps every node alive while the walker
        # lives, and lets are lexical, so a node sees the same ones wherever it is reached.
        self._load_cache: dict[int, list] = {}
        self._touch_cache: dict[int, set] = {}
        self._tracked_cache: dict[int, bool] = {}
        self._guard_cache: dict[int, list] = {}
        # Storage name -> (set of written elements, first element from which the set holds
        # every element to the end); the set is kept alive with its entry.
        self._covered: dict[str, tuple] = {}

    # -- what the translation needs to know of a subtree -------------------------------

    def _tracked_loads(self, expr) -> list:
        key = _key(expr)
        if key not in self._load_cache:
            self._load_cache[key] = [(load, reach != ELEMENT)
                                     for load, reach in buffer_loads(expr)
                                     if _key(load.source) in self.tracked_buffers]
        return self._load_cache[key]

    def touches(self, node, lets) -> set:
        """Loop variables the index of a tracked access below ``node`` uses. Conditions do
        not count: a condition on a variable left unknown is undecided, and the walk then
        keeps only the writes both branches make, which holds whatever the variable is."""
        key = _key(node)
        if key not in self._touch_cache:
            used = set()
            for stmt in statements(node):
                kind = type(stmt).__name__
                exprs = []
                if kind == "BufferStore":
                    if _key(stmt.buffer) in self.tracked_buffers:
                        exprs.append(stmt.indices[0])
                        # The element written is known only where the loops it names are.
                        self.k.free_vars(stmt.indices[0], lets, used)
                    exprs.append(stmt.value)
                elif kind in ("Bind", "Evaluate"):
                    exprs.append(stmt.value)
                elif kind in ("IfThenElse", "While"):
                    exprs.append(stmt.condition)
                for expr in exprs:
                    for load, _ in self._tracked_loads(expr):
                        self.k.free_vars(load.indices[0], lets, used)
            self._touch_cache[key] = used
        return self._touch_cache[key]

    def _has_tracked(self, node) -> bool:
        """Whether any tracked buffer is accessed below ``node``."""
        key = _key(node)
        if key not in self._tracked_cache:
            found = False
            for stmt in statements(node):
                kind = type(stmt).__name__
                if kind == "BufferStore" and _key(stmt.buffer) in self.tracked_buffers:
                    found = True
                for field in ("value", "condition"):
                    expr = getattr(stmt, field, None)
                    if expr is not None and hasattr(expr, "ty") and self._tracked_loads(expr):
                        found = True
                if found:
                    break
            self._tracked_cache[key] = found
        return self._tracked_cache[key]

    def _guards(self, node, lets) -> list:
        """Loop variables of each condition below the loop ``node`` that guards a tracked
        write (inner loops' variables left out)."""
        key = _key(node)
        if key not in self._guard_cache:
            inner = {_key(s.loop_var) for s in statements(node.body)
                     if type(s).__name__ == "For"}
            guards = []
            for stmt in statements(node.body):
                if type(stmt).__name__ == "IfThenElse" and any(
                        type(s).__name__ == "BufferStore"
                        and _key(s.buffer) in self.tracked_buffers for s in statements(stmt)):
                    guards.append(self.k.free_vars(stmt.condition, lets, set()) - inner)
            self._guard_cache[key] = guards
        return self._guard_cache[key]

    # -- the translation -----------------------------------------------------------------

    def _loads(self, expr, lets) -> tuple:
        loads = []
        for load, rest in self._tracked_loads(expr):
            storage, offset, index = self.k.access(load, self.k.scalar, lets)
            loads.append((storage, offset, index, rest))
        return tuple(loads)

    def translate(self, node, lets):
        """The walk's form of ``node`` (see ``_SEQ``...), or None where walking it does
        nothing."""
        kind = type(node).__name__
        if kind == "SeqStmt":
            scope = dict(lets)
            children = []
            for child in node.seq:
                op = self.translate(child, scope)
                if op is not None:
                    children.append(op)
                if type(child).__name__ == "Bind":
                    scope[_key(child.var)] = child.value
            return (_SEQ, tuple(children)) if children else None
        if kind in ("Bind", "Evaluate"):
            loads = self._loads(node.value, lets)
            return (_READ, loads) if loads else None
        if kind == "BufferStore":
            loads = self._loads(node.value, lets)
            if _key(node.buffer) in self.tracked_buffers:
                storage, offset, index = self.k.access(node, self.k.scalar, lets)
                vector = self.k.access(node, self.k.vector, lets)[2]
                return (_STORE, loads, storage.name, offset, index, vector)
            return (_READ, loads) if loads else None
        if kind == "For":
            return self._translate_for(node, lets)
        if kind == "IfThenElse":
            loads = self._loads(node.condition, lets)
            then = self.translate(node.then_case, lets)
            other = None if node.else_case is None else self.translate(node.else_case, lets)
            if not loads and then is None and other is None:
                return None
            return (_IF, loads, self.k.scalar(node.condition, lets), then, other)
        if kind == "AttrStmt":
            return self.translate(node.body, lets)
        if kind in ("DeclBuffer", "AllocBuffer", "AssertStmt"):
            return None
        if kind == "While":
            return (_FAIL, "a while loop")
        return (_FAIL, f"statement {kind}")

    def _translate_for(self, node, lets):
        if not self._has_tracked(node.body):
            return None
        var = _key(node.loop_var)
        name = node.loop_var.name
        self.k.names[var] = name
        iterate = var in self.touches(node.body, lets)
        # Running the loop iteration by iteration decides a condition that guards a tracked
        # write below it (``if k == 0: acc = 0`` in a reduction over k) when the condition
        # depends on the loop variable and otherwise only on known or inner loop variables:
        # the variables other than this one that must be known, per such condition.
        guards = () if iterate else tuple(
            frozenset(guard - {var}) for guard in self._guards(node, lets) if var in guard)
        bounds = (int(node.min), int(node.min) + int(node.extent)) if _fixed(node) else None
        empty = type(node.extent).__name__ == "IntImm" and int(node.extent) <= 0
        body = self.translate(node.body, lets)
        # A body that only writes tracked elements (reads none, decides nothing: a staged
        # operand's copy) writes the same set whatever the order of its iterations, so all of
        # them are evaluated at once over the loop's range.
        ops = () if body is None else body[1] if body[0] == _SEQ else (body,)
        stores = tuple((op[2], op[3], op[5]) for op in ops) if ops and all(
            op[0] == _STORE and not op[1] for op in ops) else None
        return (_FOR, var, name, iterate, guards, bounds, empty, body, stores)

    # -- the walk ------------------------------------------------------------------------

    def reads(self, loads, env, written):
        for storage, offset, index, rest in loads:
            index = int(offset + index(env))
            done = written.get(storage.name, ())
            if not rest:
                if index not in done:
                    self._uncovered(storage, index)
                continue
            # An address read on to the buffer's end (the copy of a staged operand is read
            # a word at a time through intm_load_s8x4, each read reaching its end). A set of
            # written elements only grows while it is the same object (an undecided
            # condition replaces it), so once it holds every element from ``low`` on, that
            # holds for every later read from ``low`` or above.
            stop = storage.elements
            known = self._covered.get(storage.name)
            if known is not None and known[0] is done:
                stop = min(stop, known[1])
            span = range(index, stop)
            if not all(map(done.__contains__, span)):
                for element in span:
                    if element not in done:
                        self._uncovered(storage, element)
                continue
            if known is None or known[0] is not done or index < known[1]:
                self._covered[storage.name] = (done, index)

    def _uncovered(self, storage, element):
        """A read of ``element`` that this tile has not written before."""
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

    def walk(self, op, env: _Env, written: dict):
        """Walk the translated ``op`` with the loop variables ``env`` holds (updated in
        place for the loops it runs, restored after them)."""
        code = op[0]
        if code == _SEQ:
            for child in op[1]:
                self.walk(child, env, written)
        elif code == _READ:
            self.reads(op[1], env, written)
        elif code == _STORE:
            _, loads, name, offset, index, _ = op
            if loads:
                self.reads(loads, env, written)
            element = int(offset + index(env))
            written.setdefault(name, set()).add(element)
        elif code == _FOR:
            self._walk_for(op, env, written)
        elif code == _IF:
            self._walk_if(op, env, written)
        else:
            raise _Unanalyzable(op[1])

    @staticmethod
    def _write_all(stores, var, bounds, env, written):
        """Every iteration of a loop of tracked stores at once (numpy over its range)."""
        values = np.arange(*bounds, dtype=np.int64)
        if not values.size:
            return
        grid = _Env(env.names, env)
        grid[var] = values
        for name, offset, index in stores:
            elements = np.broadcast_to(np.asarray(offset + index(grid), dtype=np.int64),
                                       values.shape)
            written.setdefault(name, set()).update(elements.tolist())

    def _walk_if(self, op, env, written):
        _, loads, condition, then, other = op
        if loads:
            self.reads(loads, env, written)
        try:
            taken = bool(condition(env))
        except _Unanalyzable:
            taken = None
        if taken is not None:
            branch = then if taken else other
            if branch is not None:
                self.walk(branch, env, written)
            return
        # Undecided: either branch may run; only writes both make are sure.
        results = []
        for branch in (then, other):
            copy = {k: set(v) for k, v in written.items()}
            if branch is not None:
                self.walk(branch, env, copy)
            results.append(copy)
        for name in list(written) + list(results[0]):
            written[name] = results[0].get(name, set()) & results[1].get(name, set())

    def _walk_for(self, op, env, written):
        _, var, name, iterate, guards, bounds, empty, body, stores = op
        if iterate or any(env.keys() >= guard for guard in guards):
            if bounds is None:
                raise _Unanalyzable(f"loop {name} has a computed extent")
            if body is None:
                return
            if stores is not None:
                self._write_all(stores, var, bounds, env, written)
                return
            outer = env.get(var, _UNSET)
            for value in range(*bounds):
                env[var] = value
                self.walk(body, env, written)
            if outer is _UNSET:
                env.pop(var, None)
            else:
                env[var] = outer
            return
        # The tracked accesses below do not depend on this loop: every iteration touches the
        # same elements, so one walk stands for all (writes of the first iteration precede
        # the reads of the later ones, which one walk also sees as covered or not).
        if empty or body is None:
            return
        self.walk(body, env, written)


def _check_reads(kernel, body, tile_loops, k: _Kernel) -> tuple[str, ...]:
    """Conditions 2 and 3 on every tile (one walk stands for all tiles when no tracked
    access depends on a tile variable)."""
    written_params = {s.name for s, _ in k.views.values() if s.kind == "param"} & {
        k.storage(n).name for n in statements(body)
        if type(n).__name__ == "BufferStore" and k.storage(n).kind == "param"}
    read_params = set()
    for node in statements(body):
        for field in ("value", "condition"):
            expr = getattr(node, field, None)
            if expr is not None and hasattr(expr, "ty"):
                read_params |= {k.views[_key(l.source)][0].name for l, _ in buffer_loads(expr)
                                if _key(l.source) in k.views}
    rmw = written_params & read_params
    scratch = {s.name for s, _ in k.views.values() if s.kind == "scratch"}
    tracked = scratch | rmw
    if not tracked:
        return ()
    all_writes = _all_param_writes(body, tile_loops, k) if rmw else {}
    walker = _ReadWalker(kernel, k, tracked, all_writes)
    tile_keys = [_key(loop.loop_var) for loop in tile_loops]
    for loop in tile_loops:
        k.names[_key(loop.loop_var)] = loop.loop_var.name
    depends = walker.touches(body, {}) & set(tile_keys)
    program = walker.translate(body, {})
    if not depends:
        # Tile variables stay unknown: a condition on them is undecided, so the walk covers
        # what any tile may do.
        if program is not None:
            walker.walk(program, _Env(k.names), {})
        return tuple(sorted(scratch))
    ranges = [range(int(l.min), int(l.min) + int(l.extent)) for l in tile_loops]
    count = int(np.prod([len(r) for r in ranges], dtype=np.int64))
    if count > MAX_WALKED_TILES:
        raise _Unanalyzable(f"{count:,} tiles whose tracked accesses depend on the tile")
    if program is not None:
        for values in itertools.product(*ranges):
            walker.walk(program, _Env(k.names, zip(tile_keys, values)), {})
    return tuple(sorted(scratch))


# ---- split reductions ------------------------------------------------------------------

def _check_split_protocol(kernel, chain, plan, k: _Kernel) -> None:
    from .tiling import reduction_parts  # pylint: disable=import-outside-toplevel

    parts = reduction_parts(chain)
    if parts is None:
        raise IdempotenceError(f"kernel {kernel}: its reduction is split into chunks but its "
                               "tile body is not init; reduce; epilogue")
    init, loop, epilogue = parts
    acc = k.storage(init)
    for node in statements(loop.body):
        if type(node).__name__ == "BufferStore" and k.storage(node) is not acc:
            raise IdempotenceError(
                f"kernel {kernel}: its split reduction loop writes {node.buffer.name}, not only "
                "the running sum, so a chunk run again would repeat that write")
    if k.storage(epilogue).kind != "param":
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
        k = _Kernel(func)
        chain = loop_chain(func)
        if plan.depth > len(chain):
            raise _Unanalyzable(f"the plan fuses {plan.depth} loops, the kernel has "
                                f"{len(chain)} perfectly nested ones")
        tile_loops = chain[:plan.depth] if plan.depth else []
        if plan.chunks > 1:
            tile_loops = chain  # a tile is one chunk of one element: check the elements
            _check_split_protocol(kernel, chain, plan, k)
        body = tile_loops[-1].body if tile_loops else func.body
        checked = _check_disjoint_writes(kernel, body, tile_loops, k)
        scratch = _check_reads(kernel, body, tile_loops, k)
    except _Unanalyzable as err:
        raise IdempotenceError(
            f"kernel {kernel}: cannot show its tiles are idempotent ({err}), so it is not "
            "accepted; this is a compiler limitation to report with the model") from err
    written = tuple(sorted({k.storage(n).name for n in statements(func.body)
                            if type(n).__name__ == "BufferStore"
                            and k.storage(n).kind == "param"}))
    tiles = plan.extent // max(plan.chunks, 1) if plan.chunks > 1 else plan.extent
    return IdempotenceReport(kernel, tiles, written, checked, scratch)

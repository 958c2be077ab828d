"""Executed counts of a lowered kernel, by kind of node: the features of the cost model.

A kernel after :func:`~tvm_intermittent.transform.lower_prim_func` is flat TIR with static
loop extents, so how often each node runs is known without running it: a node inside
loops of extents e1..ek runs e1 x .. x ek times, times the fraction of those iterations
in which the guards above it hold (``if`` statements and the branches of ``Select``/
``if_then_else``). Guards over loop variables (the padding tests of a convolution) are
evaluated exactly, on every point of the loop variables they read; a guard that reads
memory cannot be, and counts as taken half the time (``Features.estimated_guards`` says how
many did).

What is counted is what the C printer turns into instructions: loads and stores per
memory (the NVM arena, weights in flash, scratch in SRAM, and one-element scratch that GCC
keeps in a register), arithmetic by kind, calls by name (the DSP helpers of
``intm_kernel_ops.h``, libm). GCC evaluates a repeated subexpression of one statement once,
so a subexpression is counted once per statement, and a word loaded or unpacked twice in
one block once (``_Counter._value_key``); a run of an assembly micro-kernel counts as its
runs and words (``_Counter._micro_kernel``); index arithmetic is counted apart
(``index``), since GCC strength-reduces most of it into pointer increments. How many
instructions each kind costs is the calibration's business (:mod:`.costs`); this module
only counts.

NVM accesses (``Features.nvm_loads``/``nvm_stores``) are counted as the firmware makes
them, which is not always one per element: GCC merges four consecutive int8 stores of a
basic block into one word store, and turns a copy loop into ``memcpy``, which copies words
(``_Counter._merge_stores``, ``_Counter._copy_loop``). A board charges NVM per access, so
these are what its energy depends on; the bytes stay the bytes.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
import tvm
import tvm_ffi
from tvm import tirx

#: Where a buffer lives: the NVM activation arena, flash (constant weights), SRAM scratch,
#: or a one-element scratch that the compiled code keeps in a register.
NVM, FLASH, SRAM, REGISTER = "nvm", "flash", "sram", "reg"
#: Loop-variable points a guard is evaluated on before it is sampled instead.
_MAX_POINTS = 1 << 20
#: The key of the ``AttrStmt`` around a run of an assembly micro-kernel
#: (``transform.conv_blocks.MICRO_KERNEL_ATTR``, spelled here so that counting does not
#: import the kernels; ``tests/test_cost_model.py`` checks the two agree).
MICRO_KERNEL_ATTR = "intermittent.micro_kernel"
#: The DSP helpers of ``intm_kernel_ops.h`` that load a word (4 bytes) through a pointer.
_WORD_LOADS = ("intm_load_s8x4",)
_BINARY = ("Add", "Sub", "Mul", "Div", "Mod", "FloorDiv", "FloorMod", "Min", "Max",
           "EQ", "NE", "LT", "LE", "GT", "GE", "And", "Or")


@dataclasses.dataclass
class Features:
    """Executed counts of one kernel run over all its tiles.

    Attributes
    ----------
    counts : dict
        ``kind -> executions`` (see :func:`kernel_features` for the kinds).
    nvm_loads, nvm_stores, nvm_load_bytes, nvm_store_bytes : float
        Executed loads and stores of the NVM arena and their bytes (a word load of
        ``intm_load_s8x4`` is one access of 4 bytes).
    estimated_guards : int
        Guards that could not be evaluated exactly and were taken as true half the time.
    nest_depth : int
        The deepest nesting of loops (a shape of the loop nest, not a count: kernels of one
        name whose nests differ compile differently, see ``costs.kernel_family``).
    """

    counts: dict
    nvm_loads: float = 0.0
    nvm_stores: float = 0.0
    nvm_load_bytes: float = 0.0
    nvm_store_bytes: float = 0.0
    estimated_guards: int = 0
    nest_depth: int = 0
    copies: tuple = ()
    registers: int = 0

    @property
    def nvm_caveats(self) -> list[str]:
        """Where the NVM accesses rest on an assumption rather than an exact rule."""
        inner = sum(1 for c in self.copies if not c.outermost)
        if not inner:
            return []
        return [f"{inner} copy loop(s) inside a tile counted as memcpy from a word boundary "
                "(up to 4 more NVM accesses per run if a run starts inside a word)"]

    def scaled(self, factor: float) -> "Features":
        return Features({k: v * factor for k, v in self.counts.items()},
                        self.nvm_loads * factor, self.nvm_stores * factor,
                        self.nvm_load_bytes * factor, self.nvm_store_bytes * factor,
                        self.estimated_guards, self.nest_depth, self.copies, self.registers)


@dataclasses.dataclass(frozen=True)
class CopyLoop:
    """A loop that GCC compiles into a call of ``memcpy`` (see ``_Counter._copy_loop``).

    Its NVM accesses in :class:`Features` are those of ``runs`` calls that each copy
    ``extent x size`` bytes from a word boundary. When the loop is the kernel's outermost
    and is cut into tiles, each batch of tiles is its own ``memcpy`` from wherever the batch
    starts; :func:`~.costs.tile_work`, which knows the batches, counts them
    (:func:`memcpy_accesses`).
    """

    outermost: bool
    extent: int
    size: int
    runs: float
    nvm_dst: bool
    nvm_src: bool


def _dtype(expr) -> str:
    return str(expr.ty.dtype)


def _bytes(dtype: str) -> int:
    return max(1, tvm.DataType(dtype).bits // 8)


def buffer_places(func: tirx.PrimFunc, placement: dict | None = None) -> dict:
    """``buffer -> (place, element bytes)`` for every buffer of ``func``.

    ``placement`` maps parameter names to :data:`NVM` or :data:`FLASH` (what the memory
    plan gives the tensor passed there); parameters it does not name are taken to be in
    the NVM arena, the cautious choice for NVM traffic.
    """
    placement = placement or {}
    places = {}
    for var in func.params:
        places[var] = (placement.get(var.name, NVM), _bytes(str(var.ty.dtype)))
    from ..codegen.c_printer import statements  # pylint: disable=import-outside-toplevel

    for node in statements(func.body):
        kind = type(node).__name__
        if kind == "DeclBuffer":
            data = node.data
            base = data.args[0] if type(data).__name__ == "Call" and data.args else None
            place = places.get(base, (SRAM, 0))[0]
            places[node.buffer] = (place, _bytes(str(node.buffer.ty.dtype)))
        elif kind == "AllocBuffer":
            shape = [int(d) for d in node.buffer.ty.shape]
            place = REGISTER if math.prod(shape) == 1 else SRAM
            places[node.buffer] = (place, _bytes(str(node.buffer.ty.dtype)))
    # A DeclBuffer over a scratch buffer's data (a reinterpreting view) keeps its place.
    for node in statements(func.body):
        if type(node).__name__ == "DeclBuffer" and node.buffer not in places:
            places[node.buffer] = (SRAM, _bytes(str(node.buffer.ty.dtype)))
    return places


class _Domain:
    """The enclosing loops and guards of a node, and how often it therefore runs."""

    def __init__(self, loops=(), guards=(), binds=None):
        self.loops = tuple(loops)  # (var, min, extent)
        self.guards = tuple(guards)  # (condition, wanted truth)
        self.binds = binds if binds is not None else {}

    def trips(self) -> float:
        return float(math.prod(extent for _, _, extent in self.loops))


class _Evaluator:
    """Evaluates an integer expression over loop variables with numpy broadcasting."""

    def __init__(self, axes: dict, binds: dict):
        self.axes = axes
        self.binds = binds

    def __call__(self, expr):
        kind = type(expr).__name__
        if kind == "IntImm":
            return np.int64(int(expr.value))
        if kind == "FloatImm":
            return np.float64(float(expr.value))
        if kind == "Var":
            if expr in self.axes:
                return self.axes[expr]
            if expr in self.binds:
                return self(self.binds[expr])
            raise _NotEvaluable
        if kind == "Cast":
            value = self(expr.value)
            return value.astype(np.float64) if _dtype(expr).startswith("float") else value
        if kind == "Not":
            return np.logical_not(self(expr.a))
        if kind == "Select":
            return np.where(self(expr.condition), self(expr.true_value), self(expr.false_value))
        if kind == "Call":
            op = str(expr.op.name).rsplit(".", 1)[-1]
            if op == "likely":
                return self(expr.args[0])
            if op == "if_then_else":
                return np.where(self(expr.args[0]), self(expr.args[1]), self(expr.args[2]))
            raise _NotEvaluable
        if kind in _BINARY:
            a, b = self(expr.a), self(expr.b)
            return _BINARY_NUMPY[kind](a, b)
        raise _NotEvaluable


class _NotEvaluable(Exception):
    pass


_BINARY_NUMPY = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
    "Div": lambda a, b: np.trunc(a / b).astype(np.int64) if np.issubdtype(
        np.asarray(a).dtype, np.integer) else a / b,
    "Mod": np.fmod, "FloorDiv": np.floor_divide, "FloorMod": np.mod,
    "Min": np.minimum, "Max": np.maximum,
    "EQ": np.equal, "NE": np.not_equal, "LT": np.less, "LE": np.less_equal,
    "GT": np.greater, "GE": np.greater_equal, "And": np.logical_and, "Or": np.logical_or,
}


def _free_vars(expr, binds, out):
    kind = type(expr).__name__
    if kind == "Var":
        if expr in binds:
            _free_vars(binds[expr], binds, out)
        else:
            out.add(expr)
        return
    for field in ("a", "b", "value", "condition", "true_value", "false_value"):
        child = getattr(expr, field, None)
        if child is not None and not isinstance(child, (int, float)):
            _free_vars(child, binds, out)
    for child in getattr(expr, "args", ()) or ():
        if not isinstance(child, (int, float, str)) and hasattr(child, "ty"):
            _free_vars(child, binds, out)


class _Counter:
    """Walks a kernel once, adding executed counts of each node into ``counts``."""

    def __init__(self, places: dict, body):
        self.places = places
        self.used = _uses(body)
        self.counts = defaultdict(float)
        self.nvm = defaultdict(float)
        self.estimated = 0
        self._fractions: dict = {}
        self._seen: set = set()
        self._values: set = set()  # keys of the values computed in this block
        self._probes: dict = {}  # loop variable -> its values at the probe points
        self.nest_depth = 0
        self.copies: list = []
        self._one_sided = 0  # inside the then-block of an if without else

    # ---- how often a node runs -------------------------------------------------------

    def fraction(self, domain: _Domain, extra=()) -> float:
        """Share of the iterations of ``domain.loops`` in which every guard holds."""
        guards = domain.guards + tuple(extra)
        if not guards:
            return 1.0
        key = (tuple(id(v) for v, _, _ in domain.loops), tuple((id(c), w) for c, w in guards))
        if key in self._fractions:
            return self._fractions[key]
        loops = {v: (lo, ext) for v, lo, ext in domain.loops}
        used = set()
        for cond, _ in guards:
            _free_vars(cond, domain.binds, used)
        if not used <= set(loops):
            self.estimated += 1
            value = 0.5 ** len(guards)
        else:
            value = self._enumerate(guards, [(v, *loops[v]) for v in used], domain.binds)
        self._fractions[key] = value
        return value

    def _enumerate(self, guards, loops, binds) -> float:
        points = math.prod(ext for _, _, ext in loops)
        axes = {}
        if points <= _MAX_POINTS:
            for axis, (var, lo, ext) in enumerate(loops):
                shape = [1] * len(loops)
                shape[axis] = ext
                axes[var] = (np.arange(ext, dtype=np.int64) + lo).reshape(shape)
        else:  # sampled uniformly: a fixed seed keeps the estimate reproducible
            rng = np.random.default_rng(0)
            for var, lo, ext in loops:
                axes[var] = rng.integers(lo, lo + ext, size=_MAX_POINTS)
        evaluate = _Evaluator(axes, binds)
        ok = np.ones([1] * max(1, len(loops)), dtype=bool)
        try:
            for cond, wanted in guards:
                value = np.asarray(evaluate(cond)).astype(bool)
                ok = np.logical_and(ok, value if wanted else np.logical_not(value))
        except _NotEvaluable:
            self.estimated += 1
            return 0.5 ** len(guards)
        full = np.broadcast_to(ok, [ext for _, _, ext in loops] if points <= _MAX_POINTS
                               else ok.shape)
        return float(np.mean(full)) if full.size else 1.0

    # ---- statements ------------------------------------------------------------------

    def stmt(self, node, domain: _Domain):
        kind = type(node).__name__
        if kind == "SeqStmt":
            for child in node.seq:
                self.stmt(child, domain)
            self._merge_stores(node.seq, domain)
        elif kind == "For":
            extent = int(node.extent)
            runs = domain.trips() * self.fraction(domain)
            self.counts["loop"] += runs
            self.counts["loop_iter"] += runs * extent
            inner = _Domain(domain.loops + ((node.loop_var, int(node.min), extent),),
                            domain.guards, domain.binds)
            self.nest_depth = max(self.nest_depth, len(inner.loops))
            if _word_copy(node):
                # A staged operand's copy (tuning.staging): one word loaded, its four bytes
                # stored, which GCC's store merging makes one word store.
                self._block(node.body.seq[0], inner)
                store = node.body.seq[1]
                place, _ = self.places.get(store.buffer, (SRAM, 1))
                self.counts[f"store_{self._reg(place)}"] += inner.trips() * self.fraction(inner)
            else:
                self._block(node.body, inner)
            self._copy_loop(node, runs, domain.binds, not domain.loops)
        elif kind == "IfThenElse":
            runs = domain.trips() * self.fraction(domain)
            self.counts["branch"] += runs
            self.expr_tree(node.condition, runs, domain, False)
            one_sided = node.else_case is None and _reads_innermost(node.condition, domain)
            self._one_sided += one_sided
            self._block(node.then_case, _Domain(domain.loops,
                                                domain.guards + ((node.condition, True),),
                                                domain.binds))
            self._one_sided -= one_sided
            if node.else_case is not None:
                self._block(node.else_case, _Domain(domain.loops,
                                                    domain.guards + ((node.condition, False),),
                                                    domain.binds))
        elif kind == "BufferStore":
            runs = domain.trips() * self.fraction(domain)
            place, size = self.places.get(node.buffer, (SRAM, _bytes(_dtype(node.value))))
            self.counts[f"store_{self._reg(place)}"] += runs
            if place == NVM:
                self.nvm["stores"] += runs
                self.nvm["store_bytes"] += runs * size
            self.expr_tree(node.value, runs, domain, False)
            for index in node.indices:
                self.expr_tree(index, runs, domain, True)
        elif kind == "Bind":
            domain.binds[node.var] = node.value
            if node.var not in self.used:
                return  # a value nothing reads: GCC emits no code for it
            runs = domain.trips() * self.fraction(domain)
            self.expr_tree(node.value, runs, domain, False)
        elif kind == "AttrStmt":
            if str(node.attr_key) == MICRO_KERNEL_ATTR:
                self._micro_kernel(node, domain)
            else:
                self.stmt(node.body, domain)
        elif kind == "Evaluate":
            if not isinstance(node.value, tirx.IntImm):
                runs = domain.trips() * self.fraction(domain)
                self.expr_tree(node.value, runs, domain, False)
        elif kind == "While":
            self.estimated += 1
            runs = domain.trips() * self.fraction(domain)
            self.counts["loop"] += runs
            self.expr_tree(node.condition, runs, domain, False)
            self.stmt(node.body, domain)
        # DeclBuffer, AllocBuffer, AssertStmt: no code

    def _micro_kernel(self, node, domain: _Domain):
        """A run of an assembly micro-kernel (the ``AttrStmt`` whose value is its call).

        The C has the call, not the TIR of the body: GCC neither schedules nor spills its
        instructions, so the body's nodes say nothing of its cost. A run costs a fixed part
        (the accumulators in and out, the test of an odd word: ``micro:<name>``) and the
        same instructions per word (``micro:<name>/word``, the words being the call's last
        argument; the count's SUBS/BNE every two words is part of it). Its memory traffic is
        the body's: the assembly loads the same words of the same buffers, so the body is
        walked for its NVM accesses and its instruction kinds are dropped.
        """
        name = str(node.value.args[0].value)
        words = node.value.args[-1]
        words = int(words.value) if isinstance(words, tirx.IntImm) else 1
        runs = domain.trips() * self.fraction(domain)
        saved = dict(self.counts)
        self.stmt(node.body, domain)
        self.counts.clear()
        self.counts.update(saved)
        self.counts[f"micro:{name}"] += runs
        self.counts[f"micro:{name}/word"] += runs * words

    def _value_key(self, value, domain: _Domain):
        """A key that two values of one straight-line block share when GCC computes them
        once: a word load (``intm_load_s8x4``) of the same address of the same buffer, and
        a pure helper of ``intm_kernel_ops.h`` over the same values; None for anything else
        (the block's structurally equal subexpressions are ``_seen``'s).

        Two loads can be one although their TIR differs: the depthwise row pairs' second row
        reads, at tap ``f_y``, ``(2t + 1) * s - top + f_y``, the first row's address at tap
        ``f_y + 1`` when the stride is 1. Addresses are compared at probe points of the loop
        variables (as :func:`_step` compares indices); the kernels' pointers are
        ``restrict`` and such a block stores only to its accumulators, so the second load
        reads what the first did, and GCC keeps the word and its SXTB16 halves in
        registers."""
        kind = type(value).__name__
        if kind == "Var":
            if value in domain.binds:
                return self._value_key(domain.binds[value], domain)
            return ("var", hash(value))
        if kind == "IntImm":
            return ("imm", int(value.value))
        if kind != "Call" or str(value.op.name).rsplit(".", 1)[-1] != "call_pure_extern":
            return None
        name, args = str(value.args[0].value), list(value.args[1:])
        if name in _WORD_LOADS:
            if type(args[0]).__name__ != "Call":
                return None
            load = args[0].args[0]
            points = [self._probe(i, domain.binds) for i in load.indices]
            if any(p is None for p in points):
                return None
            return (name, hash(load.source), tuple(tuple(p.tolist()) for p in points))
        if not name.startswith("intm_") or not args:
            return None
        parts = tuple(self._value_key(arg, domain) for arg in args)
        return None if None in parts else (name, parts)

    def _probe(self, expr, binds) -> np.ndarray | None:
        """``expr`` at the probe points (each loop variable's values drawn once per kernel),
        or None when it reads memory."""
        free = set()
        _free_vars(expr, binds, free)
        rng = np.random.default_rng(len(self._probes) + 2)
        for var in free:
            if var not in self._probes:
                self._probes[var] = rng.integers(0, 1 << 12, size=_PROBES)
        try:
            value = _Evaluator({v: self._probes[v] for v in free}, binds)(expr)
        except _NotEvaluable:
            return None
        return np.broadcast_to(np.asarray(value, dtype=np.int64), (_PROBES,))

    # ---- NVM accesses as GCC makes them -----------------------------------------------

    def _merge_stores(self, seq, domain: _Domain):
        """Count the narrow NVM stores of one straight-line block as the word stores GCC
        merges them into.

        GCC's store merging (on at -O2; the Cortex-M4 stores unaligned words) turns stores
        of four consecutive bytes of one buffer in one basic block into one word store:
        the four or eight int8 outputs of a channel block that the kernels write one by
        one are one or two ``str``; a block of two stays two ``strb``
        (:func:`merged_stores`). The stores of a run may be separated by ``Bind``
        statements and by stores to other buffers (every pointer of a kernel is
        ``restrict``), not by a loop, a branch or a call, which end the block, nor by a
        value that GCC computes with branches or a library call (:func:`_splits_block`:
        the 64-bit requantization of a float-scaled convolution stores byte by byte).
        """
        runs = domain.trips() * self.fraction(domain)
        if runs == 0:
            return
        open_runs: dict = {}  # buffer -> (indices of the last store, elements so far)

        def close(buffer):
            elements = open_runs.pop(buffer)[1]
            size = self.places[buffer][1]
            saved = elements - merged_stores(elements, size)
            self.nvm["stores"] -= saved * runs

        for child in seq:
            kind = type(child).__name__
            if kind in ("Bind", "BufferStore") and _splits_block(child.value):
                for buffer in list(open_runs):  # the value's branches end the block
                    close(buffer)
            if kind == "Bind":
                continue
            if kind != "BufferStore":
                for buffer in list(open_runs):
                    close(buffer)
                continue
            place, size = self.places.get(child.buffer, (SRAM, 4))
            if place != NVM or size >= 4:
                continue
            last = open_runs.get(child.buffer)
            if last is not None and _next_element(last[0], child.indices, domain.binds):
                open_runs[child.buffer] = (child.indices, last[1] + 1)
                continue
            if last is not None:
                close(child.buffer)
            open_runs[child.buffer] = (child.indices, 1)
        for buffer in list(open_runs):
            close(buffer)

    def _copy_loop(self, loop, runs: float, binds: dict, outermost: bool):
        """Count a copy loop as the ``memcpy`` GCC turns it into.

        A loop whose whole body is ``dst[i] = src[i]`` over contiguous elements of one
        type is replaced by a call of ``memcpy`` (GCC's loop distribution, on at -O2), and
        newlib's ``memcpy`` for the Cortex-M4 copies words between the first and the last
        word boundary and a halfword and a byte at either end (:func:`memcpy_accesses`).
        Here each run copies from a word boundary (tensors of the arena start on one); a
        tiled copy's batches start anywhere, which :func:`~.costs.tile_work` counts.
        """
        body = loop.body
        while type(body).__name__ == "AttrStmt":
            body = body.body
        if type(body).__name__ != "BufferStore" or runs == 0:
            return
        value = body.value
        if type(value).__name__ not in ("BufferLoad", "TensorLoad") or (
                str(value.source.ty.dtype) != str(body.buffer.ty.dtype)):
            return
        dst, dst_size = self.places.get(body.buffer, (SRAM, 1))
        src, src_size = self.places.get(value.source, (SRAM, 1))
        var = loop.loop_var
        if dst_size != src_size or not (_unit_stride(body.indices, var, binds)
                                        and _unit_stride(value.indices, var, binds)):
            return
        extent = int(loop.extent)
        accesses = memcpy_accesses(0, extent * dst_size)
        if dst == NVM:
            self.nvm["stores"] += (accesses - extent) * runs
        if src == NVM:
            self.nvm["loads"] += (accesses - extent) * runs
        if NVM in (dst, src):
            self.copies.append(CopyLoop(outermost, extent, dst_size, runs, dst == NVM,
                                        src == NVM))

    def _block(self, node, domain: _Domain):
        """A loop body or branch: a straight-line block with its own common subexpressions."""
        outer = self._seen, self._values
        self._seen, self._values = set(), set()
        self.stmt(node, domain)
        self._seen, self._values = outer

    # ---- expressions -----------------------------------------------------------------

    def expr_tree(self, expr, runs: float, domain: _Domain, index: bool):
        """Count ``expr``; a subexpression already computed in this block counts nothing
        (GCC evaluates a repeated pure subexpression of straight-line code once)."""
        self.expr(expr, runs, domain, index)

    def expr(self, node, runs: float, domain: _Domain, index: bool):
        kind = type(node).__name__
        if kind in ("IntImm", "FloatImm", "Var", "StringImm") or runs == 0:
            return
        key = tvm_ffi.structural_hash(node)
        if key in self._seen:
            return
        self._seen.add(key)
        if kind == "Call":
            value = self._value_key(node, domain)
            if value is not None:
                if value in self._values:
                    return  # the same word, or its halves, computed earlier in the block
                self._values.add(value)
        runs = self._hoisted(node, runs, domain)
        dtype = _dtype(node)
        is_float = dtype.startswith("float")
        if kind == "Cast" and type(node.value).__name__ in ("BufferLoad", "TensorLoad") and \
                not is_float and not _dtype(node.value).startswith("float") and \
                tvm.DataType(dtype).bits == 32 and tvm.DataType(_dtype(node.value)).bits < 32:
            # ldrsb/ldrb/ldrsh/ldrh extend as they load: the cast is no instruction
            self.expr(node.value, runs, domain, index)
            return
        if kind in ("Add", "Sub") and not index and not is_float and dtype == "int32":
            product = _product(node)
            if product is not None:
                # a + b * c is one mla (a - b * c one mls)
                self.counts["mac"] += runs
                mul, other = product
                self._seen.add(tvm_ffi.structural_hash(mul))
                for child in (other, mul.a, mul.b):
                    if hasattr(child, "ty"):
                        self.expr(child, runs, domain, index)
                return
        if kind in ("BufferLoad", "TensorLoad"):
            self._load(node.source, runs, 1)
            for i in node.indices:
                self.expr(i, runs, domain, True)
            return
        if kind == "Select":
            self.expr(node.condition, runs, domain, index)
            share = self.fraction(domain, ((node.condition, True),))
            base = self.fraction(domain) or 1.0
            taken = share / base
            self.counts["index" if index else "select"] += runs
            self.expr(node.true_value, runs * taken, domain, index)
            self.expr(node.false_value, runs * (1 - taken), domain, index)
            return
        if kind == "Call":
            self._call(node, runs, domain, index)
            return
        if index:
            self.counts["index"] += runs
        else:
            self.counts[_op_kind(node, kind, dtype, is_float)] += runs
        for field in ("a", "b", "value"):
            child = getattr(node, field, None)
            if child is not None and hasattr(child, "ty"):
                self.expr(child, runs, domain, index)

    def _reg(self, place: str) -> str:
        """``place``, or ``reg_cond`` for a register value read or written only where an
        ``if`` without ``else`` holds: the value must be the same on both paths where
        they join, and GCC keeps such accumulators on the stack (micro_speech's first
        convolution: a padded tap adds nothing, so its border taps are one-sided)."""
        return "reg_cond" if place == REGISTER and self._one_sided else place

    def _hoisted(self, node, runs: float, domain: _Domain) -> float:
        """How often ``node`` runs once GCC has moved it out of the loops it does not
        depend on (loop-invariant code motion, on at -O2): ``runs`` divided by the extents
        of the loops inside the innermost one whose variable it reads.

        Only arithmetic on loop variables moves (the index and border-test arithmetic of
        an outer loop). What reads memory stays: a value hoisted out of a loop holds a
        register across it, and GCC keeps few (kws's first convolution loads its 40 taps'
        inputs in every channel block but 11 %; counted here as the TIR has them)."""
        if not domain.loops:
            return runs
        reads, loads = set(), set()
        _dependencies(node, domain.binds, reads, loads)
        if loads:
            return runs
        depth = 0
        for position, (var, _, _) in enumerate(domain.loops):
            if var in reads:
                depth = position + 1
        for _, _, extent in domain.loops[depth:]:
            runs /= extent
        return runs

    def _load(self, buffer, runs: float, width_elements: int):
        place, size = self.places.get(buffer, (SRAM, _bytes(str(buffer.ty.dtype))))
        self.counts[f"load_{self._reg(place)}"] += runs
        if place == NVM:
            self.nvm["loads"] += runs
            self.nvm["load_bytes"] += runs * size * width_elements

    def _call(self, node, runs: float, domain: _Domain, index: bool):
        op = str(node.op.name).rsplit(".", 1)[-1]
        args = list(node.args)
        if op == "call_pure_extern" or op == "call_extern":
            name = str(args[0].value)
            args = args[1:]
            if name in _WORD_LOADS and type(args[0]).__name__ == "Call":
                load = args[0].args[0]  # address_of(buffer[index])
                place, size = self.places.get(load.source, (SRAM, 1))
                self.counts[f"load_{place}"] += runs
                if place == NVM:
                    self.nvm["loads"] += runs
                    self.nvm["load_bytes"] += runs * 4
                for i in load.indices:
                    self.expr(i, runs, domain, True)
                return
            self.counts[f"call:{name}"] += runs
        elif op == "address_of":
            load = args[0]
            self.counts["index"] += runs
            for i in load.indices:
                self.expr(i, runs, domain, True)
            return
        elif op == "likely":
            self.expr(args[0], runs, domain, index)
            return
        elif op == "if_then_else":
            self.expr(args[0], runs, domain, index)
            share = self.fraction(domain, ((args[0], True),))
            base = self.fraction(domain) or 1.0
            taken = share / base
            self.counts["index" if index else "select"] += runs
            self.expr(args[1], runs * taken, domain, index)
            self.expr(args[2], runs * (1 - taken), domain, index)
            return
        elif op in ("shift_left", "shift_right", "bitwise_and", "bitwise_or", "bitwise_xor",
                    "bitwise_not"):
            self.counts["index" if index else
                        ("alu64" if _dtype(node) == "int64" else "alu")] += runs
        else:
            self.counts[f"call:{op}"] += runs
        for arg in args:
            if hasattr(arg, "ty"):
                self.expr(arg, runs, domain, index)


def _reads_innermost(cond, domain: _Domain) -> bool:
    """Whether ``cond`` reads the variable of the innermost enclosing loop (a test GCC
    cannot move out of that loop)."""
    if not domain.loops:
        return False
    reads = set()
    _dependencies(cond, domain.binds, reads, set())
    return domain.loops[-1][0] in reads


def _children(expr):
    for field in ("a", "b", "value", "condition", "true_value", "false_value"):
        child = getattr(expr, field, None)
        if child is not None and hasattr(child, "ty"):
            yield child
    for child in list(getattr(expr, "args", ()) or ()) + list(getattr(expr, "indices", ())
                                                            or ()):
        if hasattr(child, "ty"):
            yield child


def _dependencies(expr, binds, reads: set, loads: set):
    """The variables ``expr`` reads (through ``Bind`` values) and the buffers it loads."""
    kind = type(expr).__name__
    if kind == "Var":
        if expr in binds:
            _dependencies(binds[expr], binds, reads, loads)
        else:
            reads.add(expr)
        return
    if kind in ("BufferLoad", "TensorLoad"):
        loads.add(expr.source)
    elif kind == "Call" and str(expr.op.name).rsplit(".", 1)[-1] == "call_extern":
        loads.add(None)  # a call with effects runs where it is
    for child in _children(expr):
        _dependencies(child, binds, reads, loads)


def _uses(body) -> set:
    """Every variable read anywhere in ``body`` (a ``Bind`` nothing reads is dead code)."""
    used = set()

    def expr_vars(expr):
        if type(expr).__name__ == "Var":
            used.add(expr)
        for child in _children(expr):
            expr_vars(child)

    def walk(node):
        if type(node).__name__ == "SeqStmt":
            for child in node.seq:
                walk(child)
            return
        for index in getattr(node, "indices", ()) or ():
            expr_vars(index)
        for field in ("value", "condition", "min", "extent"):
            child = getattr(node, field, None)
            if child is not None and hasattr(child, "ty"):
                expr_vars(child)
        for field in ("body", "then_case", "else_case"):
            child = getattr(node, field, None)
            if child is not None:
                walk(child)

    walk(body)
    return used


def _product(expr):
    """``(mul, other)`` when ``expr`` is ``other + mul`` or ``other - mul`` with ``mul`` a
    32-bit multiplication, else None."""
    kind = type(expr).__name__
    for mul, other in ((expr.b, expr.a), (expr.a, expr.b)):
        if type(mul).__name__ == "Mul" and _dtype(mul) == "int32":
            if kind == "Sub" and mul is expr.a:
                continue  # b * c - a is a multiply and a subtract
            return mul, other
    return None


def merged_stores(elements: int, size: int) -> int:
    """Stores GCC makes of ``elements`` consecutive elements of ``size`` bytes written in one
    basic block: a word store per four bytes, and the elements left over one by one (GCC
    merges no pair of int8 into a halfword: the measured firmware keeps two ``strb``)."""
    nbytes = elements * size
    return nbytes // 4 + (nbytes % 4) // size


def _splits_block(expr) -> bool:
    """Whether GCC compiles ``expr`` with branches or a call, so that what is stored before
    and after it is in different basic blocks: a 64-bit shift by a variable amount (Thumb-2
    has no such instruction; GCC branches on the amount), a 64-bit division that is not a
    shift (``__aeabi_ldivmod``), or a call of a function that is not an inline helper of
    ``intm_kernel_ops.h`` (libm)."""
    kind = type(expr).__name__
    if kind == "Call":
        op = str(expr.op.name).rsplit(".", 1)[-1]
        args = list(expr.args)
        if op in ("shift_left", "shift_right") and _dtype(expr) in ("int64", "uint64") and \
                not isinstance(args[1], tirx.IntImm):
            return True
        if op in ("call_extern", "call_pure_extern"):
            if not str(args[0].value).startswith("intm_"):
                return True
            args = args[1:]
        return any(_splits_block(a) for a in args if hasattr(a, "ty"))
    if kind in ("LShift", "RShift") and _dtype(expr) in ("int64", "uint64") and \
            not isinstance(expr.b, tirx.IntImm):
        return True
    if kind in ("Div", "Mod", "FloorDiv", "FloorMod") and _dtype(expr) in ("int64", "uint64"):
        divisor = expr.b
        if not (isinstance(divisor, tirx.IntImm) and int(divisor.value) > 0
                and int(divisor.value) & (int(divisor.value) - 1) == 0):
            return True
    for field in ("a", "b", "value", "condition", "true_value", "false_value"):
        child = getattr(expr, field, None)
        if child is not None and hasattr(child, "ty") and _splits_block(child):
            return True
    return False


def _halfword_and_byte(nbytes: int) -> int:
    """Accesses of ``memcpy`` for fewer than four bytes: a halfword, then a byte."""
    return nbytes // 2 + nbytes % 2


def memcpy_accesses(offset: int, nbytes: int) -> int:
    """Loads (and as many stores) of newlib's ``memcpy`` of ``nbytes`` whose destination is
    ``offset`` bytes past a word boundary (the source equally placed): a halfword and a
    byte up to the first boundary, words, a halfword and a byte after the last."""
    head = min((-offset) % 4, nbytes)
    rest = nbytes - head
    return _halfword_and_byte(head) + rest // 4 + _halfword_and_byte(rest % 4)


#: Points at which two index expressions are compared (an affine index that agrees at
#: this many random points agrees everywhere; a wrong "equal" would need a polynomial
#: coincidence at every one of them).
_PROBES = 16


def _step(before, after, binds, var=None) -> np.ndarray | None:
    """``after - before`` at random points of the loop variables both read (with ``var``
    one greater in ``after`` when given); None when an index reads memory."""
    free = set()
    _free_vars(before, binds, free)
    _free_vars(after, binds, free)
    rng = np.random.default_rng(1)
    axes = {v: rng.integers(0, 1 << 12, size=_PROBES) for v in free}
    try:
        first = _Evaluator(axes, binds)(before)
        if var is not None:
            axes = {**axes, var: axes.get(var, np.zeros(_PROBES, np.int64)) + 1}
        second = _Evaluator(axes, binds)(after)
    except _NotEvaluable:
        return None
    return np.broadcast_to(np.asarray(second) - np.asarray(first), (_PROBES,))


def _next_element(previous, indices, binds) -> bool:
    """Whether ``indices`` address the element right after ``previous`` (same buffer)."""
    if len(previous) != len(indices) or not indices:
        return False
    steps = [_step(a, b, binds) for a, b in zip(previous, indices)]
    if any(s is None for s in steps):
        return False
    return all(not s.any() for s in steps[:-1]) and bool(np.all(steps[-1] == 1))


def _word_copy(loop) -> bool:
    """Whether ``loop``'s body is ``v = intm_load_s8x4(...)`` and the four bytes of ``v``
    stored into one int8 scratch buffer (``(int8)v``, ``(int8)(v >> 8)``, ...)."""
    body = loop.body
    if type(body).__name__ != "SeqStmt" or len(body.seq) != 5:
        return False
    bind, stores = body.seq[0], body.seq[1:]
    if type(bind).__name__ != "Bind" or type(bind.value).__name__ != "Call" or \
            str(bind.value.op.name) != "tirx.call_pure_extern" or \
            str(bind.value.args[0].value) not in _WORD_LOADS:
        return False
    for k, store in enumerate(stores):
        if type(store).__name__ != "BufferStore" or not store.buffer.same_as(stores[0].buffer) \
                or str(store.buffer.ty.dtype) != "int8":
            return False
        value = store.value.value if type(store.value).__name__ == "Cast" else None
        if k and type(value).__name__ == "RShift":
            value = value.a
        if value is None or not value.same_as(bind.var):
            return False
    return True


def _unit_stride(indices, var, binds) -> bool:
    """Whether ``indices`` move by exactly one element when ``var`` grows by one."""
    if not indices:
        return False
    steps = [_step(i, i, binds, var) for i in indices]
    if any(s is None for s in steps):
        return False
    return all(not s.any() for s in steps[:-1]) and bool(np.all(steps[-1] == 1))


def _op_kind(node, kind: str, dtype: str, is_float: bool) -> str:
    """The feature an arithmetic node counts into."""
    wide = dtype in ("int64", "uint64")
    if kind == "Cast":
        source = _dtype(node.value)
        if is_float != source.startswith("float"):
            return "fcvt"
        return "cast64" if wide or source in ("int64", "uint64") else "cast"
    if is_float:
        return {"Add": "fadd", "Sub": "fadd", "Mul": "fmul", "Div": "fdiv", "Min": "fminmax",
                "Max": "fminmax"}.get(kind, "fcmp" if kind in ("EQ", "NE", "LT", "LE", "GT",
                                                               "GE") else "fother")
    if kind in ("EQ", "NE", "LT", "LE", "GT", "GE"):
        operand = _dtype(node.a)
        if operand.startswith("float"):
            return "fcmp"
        return "cmp64" if operand in ("int64", "uint64") else "cmp"
    if kind == "Mul":
        return "mul64" if wide else "mul"
    if kind in ("Div", "Mod", "FloorDiv", "FloorMod"):
        divisor = node.b
        if isinstance(divisor, tirx.IntImm):
            value = abs(int(divisor.value))
            if value and value & (value - 1) == 0:
                return "alu64" if wide else "alu"
            return "div64" if wide else "divconst"
        return "div64" if wide else "div"
    if kind in ("Min", "Max"):
        return "minmax"
    return "alu64" if wide else "alu"


def kernel_features(func: tirx.PrimFunc, placement: dict | None = None) -> Features:
    """Executed counts of one whole run of a lowered kernel (every tile).

    Kinds: ``loop`` (loops entered), ``loop_iter`` (iterations), ``branch`` (``if``
    statements), ``select`` (``Select``/``if_then_else``), ``load_<place>`` and
    ``store_<place>`` (places :data:`NVM`, :data:`FLASH`, :data:`SRAM`, :data:`REGISTER`),
    ``index`` (arithmetic in buffer indices), ``alu``/``alu64``, ``mul``/``mul64``,
    ``cmp``/``cmp64``, ``minmax``, ``cast``/``cast64``, ``divconst``/``div``/``div64``,
    ``fadd``/``fmul``/``fdiv``/``fcmp``/``fminmax``/``fcvt``/``fother``, and ``call:<name>``
    for every helper or intrinsic by name (``call:intm_smlad``, ``call:exp``, ...), and
    ``micro:<name>`` and ``micro:<name>/word`` for the runs and words of an assembly
    micro-kernel (``_Counter._micro_kernel``).

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A kernel after ``lower_prim_func``.
    placement : dict, optional
        ``parameter name -> place`` (:func:`buffer_places`).
    """
    places = buffer_places(func, placement)
    counter = _Counter(places, func.body)
    counter.stmt(func.body, _Domain())
    registers = sum(1 for place, _ in places.values() if place == REGISTER)
    return Features(dict(counter.counts), counter.nvm["loads"], counter.nvm["stores"],
                    counter.nvm["load_bytes"], counter.nvm["store_bytes"], counter.estimated,
                    counter.nest_depth, tuple(counter.copies), registers)

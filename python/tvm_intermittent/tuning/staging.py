"""A resident operand: one read-only parameter's tile region copied into SRAM per tile.

Activations live in NVM. On an FRAM part every NVM access costs a wait state and energy
(``nvm_read_wait_cycles``, ``nvm_read_energy_j`` of the board profile), and the int8 kernels
read some operands many times per tile: the 2x2 pointwise micro-kernel reads each input
word once per two output channels, the depthwise kernel reads each input word once per tap
that covers it. :func:`stage_operand` rewrites a kernel so that each tile first copies the
region of one parameter it reads into a local SRAM buffer (``staged_<param>``) and then
reads only that buffer: a copy of the region against most of its NVM reads. On a board
whose NVM is as fast as SRAM it only adds the copy, so whether to stage, and which operand,
is a tuning knob (``Knobs.stage``), priced and measured like the others.

The region is found from the TIR, not assumed: for every load of the parameter in the tile
body (plain loads, and the words ``intm_load_s8x4`` reads through ``address_of``, as
:func:`..codegen.tir_loads.buffer_loads` finds them; an address handed to any other call
has no bound and is refused), the index with the body's ``Bind`` values substituted is
bounded over the inner loops' ranges (``tvm.sym.Analyzer.int_set``, the tile loops'
variables left free), which gives the region's first element ``lo`` as a function of the
tile (the first element of one load where it is provably the least of all, else their
``min``); every index minus ``lo`` is
then bounded over all loops, tile loops included (``const_int_bound``), or tile by tile
where that bound is looser than the parameter (a ``min`` in an index, as the last pixel
pair of an odd row has), and its largest value is the span. A span that is no
compile-time constant is refused. The loads of an assembly
micro-kernel's run are its ``AttrStmt``'s TIR body (the same sums), so its pointer
arguments stay inside the region the body's loads span.

Guards (the padding tests of a convolution) are not used: the region is the union over
every branch, so it may reach outside the parameter at a border. The copy is then shifted
inside (``lo`` clamped to ``[0, size - span]``): every element the tile does read lies in
``[0, size)`` and in ``[lo, lo + span)``, hence in the shifted window too, and the copy never
reads past the parameter. int8 regions are copied a word at a time (one
``intm_load_s8x4`` and four byte stores, which GCC's store merging makes one word store:
a ``ldr``/``str`` loop), not as a byte loop, which GCC would turn into a call of the C
library's ``memcpy``; the cost model counts the word copy as it compiles
(``energy.kernel_cost._word_copy``). Other dtypes are copied one element per iteration.

Idempotence: the copy reads only the parameter, which the kernel never writes (a written
parameter is refused), so it reads committed data, and it writes only volatile SRAM. A
tile that re-runs after a power failure copies its region again before it reads it;
nothing of a half-finished copy survives the failure, and nothing persistent is written
by it. The compile-time check (:mod:`..codegen.idempotence`) sees the copy as scratch
written and then read within the tile, as it sees an accumulator.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

import tvm
import tvm_ffi
from tvm import ir, sym, tirx

from ..codegen.c_printer import STACK_SCRATCH_LIMIT, statements, written_parameters
from ..codegen.tiling import loop_chain
from ..codegen.tir_loads import ADDRESS, WORD, WORD_BYTES, buffer_loads
from .knobs import CandidateError, _replace

#: Name prefix of the SRAM buffer a staged parameter is copied into (``staged_input``).
STAGED_PREFIX = "staged_"
#: Parameters offered for staging per kernel: the largest read-only ones.
MAX_STAGED_CHOICES = 2


@dataclasses.dataclass(frozen=True)
class StagedRegion:
    """Where one tile's region of a staged parameter lies.

    Attributes
    ----------
    param : str
        The parameter's name.
    lo : tvm.ir.Expr
        Its first element, over the tile loops' variables (before the shift inside).
    elements : int
        Elements copied per tile (the span, rounded up to whole words for int8).
    nbytes : int
        Bytes of the SRAM buffer.
    """

    param: str
    lo: object
    elements: int
    nbytes: int


def _views(func: tirx.PrimFunc) -> dict:
    """``buffer variable -> (parameter name, element offset)`` for the parameters and their
    ``DeclBuffer`` views."""
    views = {var: (var.name, 0) for var in func.params}
    for node in statements(func.body):
        if type(node).__name__ != "DeclBuffer":
            continue
        data = node.data
        if type(data).__name__ == "Call" and str(data.op.name) == "tirx.buffer_data":
            base = data.args[0]
            if base in views:
                offset = getattr(node.buffer.ty, "elem_offset", None)
                offset = 0 if offset is None else offset
                if not isinstance(offset, tirx.IntImm):
                    offset = None
                views[node.buffer] = (views[base][0], None if offset is None else
                                      views[base][1] + int(offset))
    return views


def _elements(var) -> int:
    count = 1
    for extent in var.ty.shape:
        count *= int(extent)
    return count


def _bytes(dtype) -> int:
    return tvm.DataType(str(dtype)).bits // 8


def stageable_parameters(func: tirx.PrimFunc) -> list[str]:
    """The parameters a kernel may stage: read and never written, the
    :data:`MAX_STAGED_CHOICES` largest in bytes, in parameter order.

    Per-channel parameters (bias, multipliers) are read once per output element, so copying
    them saves nothing; the large operands (input, weights) are the ones read many times
    per tile. Remembered per kernel (by structural hash): the design space asks once per
    staged candidate, and a walk of a large kernel takes tens of milliseconds."""
    key = tvm_ffi.structural_hash(func)
    if key not in _STAGEABLE:
        _STAGEABLE[key] = _stageable(func)
    return list(_STAGEABLE[key])


#: ``structural hash -> stageable parameter names`` (:func:`stageable_parameters`).
_STAGEABLE: dict = {}


def _stageable(func: tirx.PrimFunc) -> tuple:
    written = written_parameters(func)
    views = _views(func)
    read = set()
    for node in statements(func.body):
        for expr in _exprs_of(node):
            for load, _ in buffer_loads(expr):
                if load.source in views:
                    read.add(views[load.source][0])
    params = [v for v in func.params if v.name in read and v.name not in written]
    largest = sorted(params, key=lambda v: -_elements(v) * _bytes(v.ty.dtype))
    keep = {v.name for v in largest[:MAX_STAGED_CHOICES]}
    return tuple(v.name for v in params if v.name in keep)


# ---- walking and rewriting TIR ------------------------------------------------------------

_BINARY = ("Add", "Sub", "Mul", "Div", "Mod", "FloorDiv", "FloorMod", "Min", "Max", "EQ", "NE",
           "LT", "LE", "GT", "GE", "And", "Or", "LShift", "RShift", "BitwiseAnd", "BitwiseOr",
           "BitwiseXor")
#: Most tile points the span is computed on one by one where the bound over all tiles at
#: once is too loose (a ``min`` in an index: the last pixel pair of an odd row).
MAX_TILE_POINTS = 4096


def _exprs_of(node) -> list:
    """The expressions a statement evaluates itself (not those of its children)."""
    kind = type(node).__name__
    if kind == "BufferStore":
        return [node.value, *node.indices]
    if kind in ("Bind", "Evaluate"):
        return [node.value]
    if kind == "AttrStmt":
        return [node.value] if isinstance(node.value, ir.Expr) else []
    if kind in ("IfThenElse", "While"):
        return [node.condition]
    if kind == "For":
        return [node.min, node.extent]
    return []


class _Rewriter:
    """Rebuilds expressions with variables substituted and the staged parameter's loads
    redirected to the SRAM buffer."""

    def __init__(self, values: dict, views: dict | None = None, param: str = "",
                 stage=None, lo=None):
        self.values, self.views, self.param, self.stage, self.lo = values, views or {}, \
            param, stage, lo

    def expr(self, e):
        kind = type(e).__name__
        if kind == "Var":
            return self.values.get(e, e)
        if kind in ("IntImm", "FloatImm", "StringImm"):
            return e
        if kind in ("BufferLoad", "TensorLoad"):
            indices = [self.expr(i) for i in e.indices]
            if self.views.get(e.source, (None,))[0] == self.param and self.stage is not None:
                return tirx.BufferLoad(self.stage, [indices[0] - self.lo])
            if all(a.same_as(b) for a, b in zip(indices, e.indices)):
                return e
            return tirx.BufferLoad(e.source, indices)
        if kind in _BINARY:
            a, b = self.expr(e.a), self.expr(e.b)
            return e if a.same_as(e.a) and b.same_as(e.b) else type(e)(a, b)
        if kind == "BitwiseNot":
            a = self.expr(e.a)
            return e if a.same_as(e.a) else tirx.BitwiseNot(a)
        if kind == "Not":
            a = self.expr(e.a)
            return e if a.same_as(e.a) else tirx.Not(a)
        if kind == "Cast":
            v = self.expr(e.value)
            return e if v.same_as(e.value) else tirx.Cast(str(e.ty.dtype), v)
        if kind == "Select":
            c, t, f = self.expr(e.condition), self.expr(e.true_value), self.expr(e.false_value)
            return tirx.Select(c, t, f)
        if kind == "Call":
            args = [self.expr(a) if isinstance(a, ir.Expr) else a for a in e.args]
            if all(a.same_as(b) for a, b in zip(args, e.args)):
                return e
            return ir.Call(e.op, args, ret_ty=e.ty)
        raise CandidateError(f"cannot stage through a TIR expression {kind}")

    def stmt(self, s):
        kind = type(s).__name__
        if kind == "SeqStmt":
            return tirx.SeqStmt([self.stmt(x) for x in s.seq])
        if kind == "For":
            return tirx.For(s.loop_var, self.expr(s.min), self.expr(s.extent), s.kind,
                            self.stmt(s.body), s.thread_binding, s.annotations)
        if kind == "Bind":
            return tirx.Bind(s.var, self.expr(s.value))
        if kind == "BufferStore":
            return tirx.BufferStore(s.buffer, self.expr(s.value),
                                    [self.expr(i) for i in s.indices])
        if kind == "IfThenElse":
            other = None if s.else_case is None else self.stmt(s.else_case)
            return tirx.IfThenElse(self.expr(s.condition), self.stmt(s.then_case), other)
        if kind == "Evaluate":
            return tirx.Evaluate(self.expr(s.value))
        if kind == "AttrStmt":
            value = self.expr(s.value) if isinstance(s.value, ir.Expr) else s.value
            return tirx.AttrStmt(s.node, s.attr_key, value, self.stmt(s.body))
        if kind in ("AllocBuffer", "DeclBuffer", "AssertStmt"):
            return s
        raise CandidateError(f"cannot stage through a TIR statement {kind}")


def _domains(body) -> tuple[dict, dict]:
    """``loop variable -> For`` and ``Bind variable -> value`` (itself substituted) of the
    statements under ``body``."""
    loops, values = {}, {}
    rewrite = _Rewriter(values)

    def walk(node):
        kind = type(node).__name__
        if kind == "For":
            loops[node.loop_var] = node
        elif kind == "Bind":
            values[node.var] = rewrite.expr(node.value)
        if kind == "SeqStmt":
            for child in node.seq:
                walk(child)
            return
        for field in ("body", "then_case", "else_case"):
            child = getattr(node, field, None)
            if child is not None:
                walk(child)

    walk(body)
    return loops, values


# ---- the rewrite --------------------------------------------------------------------------


def staged_region(func: tirx.PrimFunc, depth: int, param: str, kernel: str | None = None
                  ) -> StagedRegion:
    """The region of ``param`` one tile of ``func`` (tile loops: the first ``depth`` of its
    loop chain) reads, or the reason it cannot be staged.

    Raises
    ------
    CandidateError
        When the kernel writes ``param``, reads none of it in the tile, or the span is not a
        compile-time constant.
    """
    chain = loop_chain(func)
    where = f"staging {param}" if kernel is None else f"operator {kernel}: staging {param}"
    if not 1 <= depth <= len(chain):
        raise CandidateError(f"{where} needs a tile loop (tile depth {depth}, the kernel has "
                             f"{len(chain)} loops)")
    params = {v.name: v for v in func.params}
    if param not in params:
        raise CandidateError(f"{where}: the kernel has no parameter {param!r} "
                             f"({', '.join(params)})")
    if param in written_parameters(func):
        raise CandidateError(f"{where}: the kernel writes it, so a copy would go stale")
    views = _views(func)
    body = chain[depth - 1].body
    loops, values = _domains(body)
    rewrite = _Rewriter(values)
    size = _elements(params[param])
    accesses = []
    for node in statements(body):
        for expr in _exprs_of(node):
            for load, reach in buffer_loads(expr):
                name, offset = views.get(load.source, (None, 0))
                if name != param:
                    continue
                if offset is None:
                    raise CandidateError(f"{where}: a view of it has a variable offset")
                if reach == ADDRESS:
                    raise CandidateError(f"{where}: its address is passed to a call that may "
                                         "read any part of it from there on, so no region "
                                         "bounds what a tile reads")
                word = reach == WORD
                extra = max(0, WORD_BYTES // _bytes(params[param].ty.dtype) - 1) if word else 0
                accesses.append((rewrite.expr(load.indices[0]) + offset, extra))
    if not accesses:
        raise CandidateError(f"{where}: the tile reads none of it")
    inner = sym.Analyzer()
    for var, loop in loops.items():
        inner.bind(var, ir.Range.from_min_extent(loop.min, loop.extent))
    full = sym.Analyzer()
    for loop in chain[:depth]:
        full.bind(loop.loop_var, ir.Range.from_min_extent(loop.min, loop.extent))
    firsts = []
    for index, _ in accesses:
        first = full.simplify(inner_min(inner, index))
        if not any(first.same_as(f) or tvm_ffi.structural_equal(first, f) for f in firsts):
            firsts.append(first)
    # The region starts at the first element some load reads: one of the loads' own first
    # elements where it is provably the least (else their min, evaluated per tile).
    lo = next((f for f in firsts if all(full.can_prove(f <= g) for g in firsts)), None)
    if lo is None:
        lo = full.simplify(functools.reduce(tirx.min, firsts))
    for var, loop in loops.items():
        full.bind(var, ir.Range.from_min_extent(loop.min, loop.extent))
    low, high = 0, 0
    for index, extra in accesses:
        offset = full.simplify(index - lo)
        bound = full.const_int_bound(offset)
        first, last = bound.min_value, bound.max_value
        if first < 0 or last >= size:
            first, last = _per_tile(full, chain[:depth], offset)
        low, high = min(low, first), max(high, last + extra)
    if low < 0 or high >= (1 << 30):
        raise CandidateError(f"{where}: the span of its region in one tile is not a "
                             f"compile-time constant (region start {lo})")
    span = high + 1
    if _bytes(params[param].ty.dtype) == 1:
        span = -(-span // WORD_BYTES) * WORD_BYTES
    span = min(span, size)
    return StagedRegion(param, lo, span, span * _bytes(params[param].ty.dtype))


def inner_min(analyzer, index):
    """The least value of ``index`` over the loops bound in ``analyzer``."""
    return analyzer.int_set(index).min_value


def _per_tile(analyzer, tile_loops, offset) -> tuple[int, int]:
    """The least and largest ``offset`` over every point of the tile loops, bounded point by
    point (the inner loops' ranges bound in ``analyzer``); an unbounded result when there
    are too many points."""
    extents = [int(loop.extent) for loop in tile_loops]
    if not extents or int(np.prod(extents)) > MAX_TILE_POINTS:
        return -1, 1 << 40
    first, last = 1 << 40, -(1 << 40)
    for point in itertools.product(*(range(int(loop.min), int(loop.min) + e)
                                     for loop, e in zip(tile_loops, extents))):
        values = {loop.loop_var: tirx.const(v, "int32") for loop, v in zip(tile_loops, point)}
        bound = analyzer.const_int_bound(analyzer.simplify(_Rewriter(values).expr(offset)))
        first, last = min(first, bound.min_value), max(last, bound.max_value)
    return first, last


def stage_operand(func: tirx.PrimFunc, depth: int, param: str, kernel: str | None = None
                  ) -> tirx.PrimFunc:
    """``func`` with each tile copying its region of ``param`` into SRAM first and reading
    the copy (see the module docstring for the region, the copy and why a re-run tile is
    safe).

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        The kernel as tiled (a split already applied).
    depth : int
        Loops of its loop chain fused into the tile index (the plan's depth).
    param : str
        The parameter to stage (:func:`stageable_parameters`).
    kernel : str, optional
        Its name in the model, for messages.

    Raises
    ------
    CandidateError
        As :func:`staged_region`.
    """
    key = (tvm_ffi.structural_hash(func), depth, param)
    if key not in _STAGED:
        try:
            _STAGED[key] = _stage(func, depth, param, kernel)
        except CandidateError as err:
            _STAGED[key] = err
    if isinstance(_STAGED[key], CandidateError):
        raise CandidateError(str(_STAGED[key]))
    return _STAGED[key]


#: ``(structural hash of the kernel, depth, param) -> staged kernel or its refusal``: the
#: design space asks for the same staging once per batch size of a depth.
_STAGED: dict = {}


def _stage(func: tirx.PrimFunc, depth: int, param: str, kernel) -> tirx.PrimFunc:
    region = staged_region(func, depth, param, kernel)
    params = {v.name: v for v in func.params}
    dtype = str(params[param].ty.dtype)
    size, span = _elements(params[param]), region.elements
    views = _views(func)
    view = next(v for v, (name, offset) in views.items()
                if name == param and offset == 0 and len(v.ty.shape) == 1)
    stage = tirx.decl_buffer((span,), dtype, STAGED_PREFIX + param, scope="local")
    i32 = "int32"
    lo = tirx.Var(f"{STAGED_PREFIX}{param}_lo", i32)
    if span >= size:
        start = tirx.const(0, i32)
    else:
        start = sym.Analyzer().simplify(
            tirx.max(tirx.const(0, i32), tirx.min(region.lo, tirx.const(size - span, i32))))
    chain = loop_chain(func)
    bounded = sym.Analyzer()
    for loop in chain[:depth]:
        bounded.bind(loop.loop_var, ir.Range.from_min_extent(loop.min, loop.extent))
    start = bounded.simplify(start)
    copy = _copy_loop(view, stage, lo, span, dtype)
    tile = chain[depth - 1]
    body = _Rewriter({}, views, param, stage, lo).stmt(tile.body)
    new_tile = tirx.For(tile.loop_var, tile.min, tile.extent, tile.kind,
                        tirx.SeqStmt([tirx.Bind(lo, start), copy, body]), tile.thread_binding,
                        tile.annotations)
    staged = _replace(func.body, tile, new_tile)
    items = list(staged.seq) if type(staged).__name__ == "SeqStmt" else [staged]
    return func.with_body(tirx.SeqStmt([tirx.AllocBuffer(stage), *items]))


def _copy_loop(view, stage, lo, span: int, dtype: str):
    """``stage[k] = view[lo + k]`` for ``k < span``: for int8 one word per iteration (an
    ``intm_load_s8x4`` and its four bytes stored), else one element."""
    i32 = "int32"
    if dtype == "int8" and span % WORD_BYTES == 0:
        word = tirx.Var("staged_word", i32)
        value = tirx.Var("staged_value", i32)
        base = word * WORD_BYTES
        load = tirx.call_pure_extern(i32, "intm_load_s8x4", tirx.address_of(
            tirx.BufferLoad(view, [lo + base])))
        stores = [tirx.BufferStore(stage, tirx.Cast("int8", value if k == 0 else
                                                    value >> tirx.const(8 * k, i32)),
                                   [base + k]) for k in range(WORD_BYTES)]
        return tirx.For(word, tirx.const(0, i32), tirx.const(span // WORD_BYTES, i32),
                        tirx.ForKind.SERIAL, tirx.SeqStmt([tirx.Bind(value, load), *stores]))
    k = tirx.Var("staged_k", i32)
    return tirx.For(k, tirx.const(0, i32), tirx.const(span, i32), tirx.ForKind.SERIAL,
                    tirx.BufferStore(stage, tirx.BufferLoad(view, [lo + k]), [k]))


def staged_bytes(func: tirx.PrimFunc) -> tuple[int, int]:
    """``(all, static)``: bytes of the staged SRAM buffers of ``func``, and of those the C
    printer makes ``static`` (larger than its stack limit; the stack ones are in
    ``stack_scratch_bytes`` already)."""
    total = static = 0
    for node in statements(func.body):
        if type(node).__name__ == "AllocBuffer" and node.buffer.name.startswith(STAGED_PREFIX):
            nbytes = _elements(node.buffer) * _bytes(node.buffer.ty.dtype)
            total += nbytes
            static += nbytes if nbytes > STACK_SCRATCH_LIMIT else 0
    return total, static

"""Loop order and unrolling inside a tile: the ``order`` and ``unroll`` knobs' rewrites.

Both rewrite the kernel's TIR, after the split of :func:`.knobs.split_loop` and before
anything reads it, so the cost model's counts (:func:`..energy.kernel_cost.kernel_features`),
the hard constraints and the C printer all see the rewritten kernel. Neither touches the
tile loops (the first ``depth`` loops of :func:`..codegen.tiling.loop_chain`), so the plan's
tiles, and what each tile writes, stay what the other knobs made them; only the order of
the work inside one tile changes.

:func:`interchange` swaps two perfectly nested loops inside the tile. The iterations of
both must be independent, which is the tiler's own test for a loop at a tile boundary
(``tiling._separable_depth``: every output store is indexed by the loop's variable, so each
iteration writes its own outputs), plus two things a tile boundary does not need but an
order inside one does: no iteration reads an output (it could be another's), and every
scratch buffer declared outside the pair is written in an iteration, on every path, before
that iteration reads it (so no iteration carries a value into the next). Then every iteration computes
what it computed before, and only their order differs.

:func:`unroll_loop` unrolls the innermost loops of the tile body explicitly, as
MetaSchedule's ``meta_schedule.unroll_explicit`` does: each loop is split into an outer loop
and an inner one of ``factor`` iterations (or, when ``factor`` is the whole extent, just
the inner one), the inner one is marked ``ForKind.UNROLLED`` and TVM's own ``UnrollLoop``
pass copies its body, substituting ``min + i`` for the loop variable in copy ``i``; the
inner loop starts at ``outer * factor``, so copy ``i`` computes iteration
``outer * factor + i``, every iteration once, in the old order. GCC -O2 keeps
these loops as loops (it unrolls no loop at -O2, see ``docs/tuning.md``), so an unrolled
kernel is a different program: fewer compares and branches, constant offsets in the
loads.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from ..codegen.c_printer import statements, written_parameters
from ..codegen.tiling import _separable_depth, _strip_decls, _view_names, loop_chain
from ..energy.kernel_cost import MICRO_KERNEL_ATTR
from .knobs import CandidateError

#: The most iterations a loop is fully unrolled at (``unroll`` = its extent).
FULL_UNROLL_MAX = 16
#: Partial unroll factors offered where they divide the innermost loop's extent.
PARTIAL_FACTORS = (2, 4)
#: Most statements the copies of one unrolled body may hold (factor x the body's): beyond
#: it the kernel grows past what GCC keeps in registers (kws's depthwise kernel fully
#: unrolled ran 2.8% slower, ``bench/loop_knobs.py``) and its checks grow with it.
MAX_COPIED_STATEMENTS = 1024
#: Most loop pairs the ``order`` knob names (1: the two outermost loops inside the tile).
MAX_ORDER = 2


def _name(func: tirx.PrimFunc) -> str:
    return str(func.attrs["global_symbol"]) if func.attrs and "global_symbol" in func.attrs \
        else "kernel"


def _rebuild(stmt, old, new):
    """``stmt`` with the statement ``old`` (anywhere below it) replaced by ``new``; the
    statements off the path to ``old`` stay the same objects."""
    if stmt.same_as(old):
        return new
    kind = type(stmt).__name__
    if kind == "SeqStmt":
        items = [_rebuild(s, old, new) for s in stmt.seq]
        if all(a.same_as(b) for a, b in zip(items, stmt.seq)):
            return stmt
        return tirx.SeqStmt(items)
    if kind == "For":
        body = _rebuild(stmt.body, old, new)
        return stmt if body.same_as(stmt.body) else tirx.For(
            stmt.loop_var, stmt.min, stmt.extent, stmt.kind, body, stmt.thread_binding,
            stmt.annotations)
    if kind == "IfThenElse":
        then = _rebuild(stmt.then_case, old, new)
        other = None if stmt.else_case is None else _rebuild(stmt.else_case, old, new)
        if then.same_as(stmt.then_case) and (other is None or other.same_as(stmt.else_case)):
            return stmt
        return tirx.IfThenElse(stmt.condition, then, other)
    if kind == "AttrStmt":
        body = _rebuild(stmt.body, old, new)
        return stmt if body.same_as(stmt.body) else tirx.AttrStmt(
            stmt.node, stmt.attr_key, stmt.value, body)
    return stmt


def _tile_body(func: tirx.PrimFunc, depth: int):
    chain = loop_chain(func)
    if depth > len(chain):
        raise CandidateError(f"operator {_name(func)}: no tile of {depth} fused loops "
                             f"(it has {len(chain)})")
    return chain[depth - 1].body if depth else _strip_decls(func.body)


def innermost_loops(func: tirx.PrimFunc, depth: int) -> list:
    """The loops :func:`unroll_loop` unrolls inside a tile of ``depth`` fused loops (maybe
    none): of the loops of constant extent that hold no other loop, those on the main path
    (not under an ``else``: the kernels' ``else`` branches are the padded border pixels)
    that run the most iterations per tile, with the first one's extent (several: the two
    output halves of a pixel pair each have one)."""
    found = []

    def walk(stmt, trips, border):
        kind = type(stmt).__name__
        if kind == "SeqStmt":
            for child in stmt.seq:
                walk(child, trips, border)
            return
        if kind == "AttrStmt" and stmt.attr_key == MICRO_KERNEL_ATTR:
            return  # printed as one call of the assembly micro-kernel: no loop in C
        if kind == "For":
            constant = isinstance(stmt.min, tirx.IntImm) and isinstance(stmt.extent,
                                                                        tirx.IntImm)
            if not constant:
                return
            runs = trips * int(stmt.extent)
            inner = [n for n in _c_statements(stmt.body) if type(n).__name__ == "For"]
            if not inner:
                found.append(((not border, runs), stmt))
            walk(stmt.body, runs, border)
            return
        if kind == "IfThenElse":
            walk(stmt.then_case, trips, border)
            if stmt.else_case is not None:
                walk(stmt.else_case, trips, True)
            return
        body = getattr(stmt, "body", None)
        if body is not None:
            walk(body, trips, border)

    walk(_tile_body(func, depth), 1, False)
    if not found:
        return []
    best = max(key for key, _ in found)
    first = next(loop for key, loop in found if key == best)
    return [loop for key, loop in found
            if key == best and int(loop.extent) == int(first.extent)]


def _c_statements(node):
    """:func:`..codegen.c_printer.statements`, but not into a run of an assembly
    micro-kernel (the C printer prints its call, not the TIR of its sums)."""
    yield node
    if type(node).__name__ == "AttrStmt" and node.attr_key == MICRO_KERNEL_ATTR:
        return
    if type(node).__name__ == "SeqStmt":
        for child in node.seq:
            yield from _c_statements(child)
        return
    for field in ("body", "then_case", "else_case"):
        child = getattr(node, field, None)
        if child is not None:
            yield from _c_statements(child)


def unroll_choices(func: tirx.PrimFunc) -> list[int]:
    """Unroll factors worth trying on ``func``'s innermost loops (of the whole kernel): 1,
    the :data:`PARTIAL_FACTORS` that divide their extent, and the extent itself when at most
    :data:`FULL_UNROLL_MAX`; none whose copies would hold more than
    :data:`MAX_COPIED_STATEMENTS` statements."""
    loops = innermost_loops(func, 0)
    if not loops:
        return [1]
    extent = int(loops[0].extent)
    size = sum(1 for _ in statements(loops[0].body))
    out = [1] + [f for f in PARTIAL_FACTORS if f < extent and extent % f == 0]
    if 2 <= extent <= FULL_UNROLL_MAX:
        out.append(extent)
    return sorted({f for f in out if f == 1 or f * size <= MAX_COPIED_STATEMENTS})


def unroll_loop(func: tirx.PrimFunc, depth: int, factor: int) -> tirx.PrimFunc:
    """``func`` with the innermost loops of its tile body (:func:`innermost_loops`) unrolled
    by ``factor`` (their extent: fully).

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        The kernel (split already, when the candidate splits).
    depth : int
        Loops fused into the tile index; only loops below them are unrolled.
    factor : int
        Copies of the loop body per iteration of what is left of the loop (1: unchanged).

    Raises
    ------
    CandidateError
        When the tile body has no loop, or ``factor`` does not divide its extent.
    """
    if factor == 1:
        return func
    loops = innermost_loops(func, depth)
    if not loops:
        raise CandidateError(f"operator {_name(func)}: unroll {factor}: a tile of {depth} "
                             "fused loops holds no loop to unroll")
    var, extent = loops[0].loop_var, int(loops[0].extent)
    if factor < 1 or extent % factor:
        raise CandidateError(f"operator {_name(func)}: unroll factor {factor} does not "
                             f"divide loop {var.name}'s {extent} iterations")
    body = func.body
    for loop in loops:
        if any(type(n).__name__ in ("AllocBuffer", "DeclBuffer")
               for n in statements(loop.body)):
            raise CandidateError(f"operator {_name(func)}: loop {loop.loop_var.name} "
                                 "declares a buffer in its body; its copies would share it")
        rebuilt = _rebuild(body, loop, _unrolled(loop, factor))
        if rebuilt.same_as(body):  # under a statement _rebuild does not enter
            raise CandidateError(f"operator {_name(func)}: loop {loop.loop_var.name} sits "
                                 "where the unroll rewrite cannot reach it")
        body = rebuilt
    mod = tvm.IRModule({"main": func.with_body(body)})
    # Only loops marked UNROLLED are touched: the automatic unrolling is off (max step 0).
    with tvm.transform.PassContext(config={"tirx.UnrollLoop": {
            "auto_max_step": 0, "explicit_unroll": True}}):
        return tirx.transform.UnrollLoop()(mod)["main"]


def _unrolled(loop, factor: int):
    """``loop`` as an outer loop over an inner one of ``factor`` iterations marked
    UNROLLED (only the inner one when ``factor`` is the whole extent)."""
    var, extent = loop.loop_var, int(loop.extent)
    dtype = str(var.ty.dtype)
    # UnrollLoop substitutes ``min + i`` for the variable in copy i: with the inner loop
    # starting at ``outer * factor`` the copies compute iterations outer * factor + i.
    if factor == extent:
        return tirx.For(var, loop.min, loop.extent, tirx.ForKind.UNROLLED, loop.body)
    outer = tirx.Var(f"{var.name}_o", dtype)
    start = outer * tirx.const(factor, dtype)
    if int(loop.min):
        start = loop.min + start
    return tirx.For(outer, tirx.const(0, dtype), tirx.const(extent // factor, dtype),
                    loop.kind, tirx.For(var, start, tirx.const(factor, dtype),
                                        tirx.ForKind.UNROLLED, loop.body))


def interchange(func: tirx.PrimFunc, depth: int, order: int) -> tirx.PrimFunc:
    """``func`` with loops ``depth + order - 1`` and ``depth + order`` of its loop chain
    swapped (``order`` 1: the two outermost loops inside a tile of ``depth`` fused loops).

    Raises
    ------
    CandidateError
        When there is no such pair, the two loops are not perfectly nested, or their
        iterations are not independent (see the module docstring), saying which.
    """
    if order == 0:
        return func
    name, chain = _name(func), loop_chain(func)
    first = depth + order - 1
    if order < 0 or first + 1 >= len(chain):
        raise CandidateError(f"operator {name}: loop order {order}: a tile of {depth} fused "
                             f"loops has no loops {first} and {first + 1} to swap (its "
                             f"loop nest has {len(chain)})")
    outer, inner = chain[first], chain[first + 1]
    pair = f"loops {outer.loop_var.name} and {inner.loop_var.name}"
    if not outer.body.same_as(inner):
        raise CandidateError(f"operator {name}: loop order {order}: {pair} are not "
                             "perfectly nested (a declaration sits between them)")
    written = written_parameters(func)
    if _separable_depth(func, chain, written) < first + 2:
        raise CandidateError(f"operator {name}: loop order {order}: {pair} are not "
                             "independent (an output store is not indexed by both)")
    problem = _carried(func, inner.body, written)
    if problem:
        raise CandidateError(f"operator {name}: loop order {order}: {pair} are not "
                             f"independent ({problem})")
    swapped = tirx.For(inner.loop_var, inner.min, inner.extent, inner.kind,
                       tirx.For(outer.loop_var, outer.min, outer.extent, outer.kind,
                                inner.body, outer.thread_binding, outer.annotations),
                       inner.thread_binding, inner.annotations)
    body = _rebuild(func.body, outer, swapped)
    if body.same_as(func.body):  # under a statement _rebuild does not enter
        raise CandidateError(f"operator {name}: loop order {order}: {pair} sit where the "
                             "rewrite cannot reach them")
    return func.with_body(body)


def _carried(func, body, written: set[str]) -> str | None:
    """Why an iteration of ``body`` may depend on another, or None: it reads an output, or
    may read a scratch buffer declared outside it before writing it (then the value would
    come from the iteration before)."""
    outputs = _view_names(func, written)
    for node in statements(body):
        for buffer in _loads(node):
            if buffer.name in outputs:
                return f"it reads output {buffer.name}"
    scratch = {n.buffer.name for n in statements(func.body) if type(n).__name__ == "AllocBuffer"}
    scratch -= {n.buffer.name for n in statements(body) if type(n).__name__ == "AllocBuffer"}
    return _read_before_write(body, scratch, set())


def _read_before_write(stmt, scratch: set, done: set) -> str | None:
    """Walk ``stmt`` in program order, adding to ``done`` the scratch buffers surely written
    (on every path), and say which one is read before that, if any. A loop of constant
    extent runs at least once; of an ``if`` only the writes of both branches are sure."""
    kind = type(stmt).__name__
    for buffer in _loads(stmt):
        if buffer.name in scratch and buffer.name not in done:
            return f"it reads scratch {buffer.name} before writing it"
    if kind == "SeqStmt":
        for child in stmt.seq:
            problem = _read_before_write(child, scratch, done)
            if problem:
                return problem
    elif kind == "BufferStore":
        if stmt.buffer.name in scratch:
            done.add(stmt.buffer.name)
    elif kind == "IfThenElse":
        then, other = set(done), set(done)
        problem = _read_before_write(stmt.then_case, scratch, then)
        if not problem and stmt.else_case is not None:
            problem = _read_before_write(stmt.else_case, scratch, other)
        if problem:
            return problem
        done |= then & other if stmt.else_case is not None else set()
    elif kind in ("For", "AttrStmt"):
        if kind == "For" and not (isinstance(stmt.extent, tirx.IntImm)
                                  and int(stmt.extent) > 0):
            return _read_before_write(stmt.body, scratch, set(done))
        return _read_before_write(stmt.body, scratch, done)
    return None


def _loads(node) -> list:
    """The buffers one statement's own expressions load from (not its children's)."""
    out = []

    def visit(expr):
        if isinstance(expr, (int, float, str)) or expr is None:
            return
        if type(expr).__name__ in ("BufferLoad", "TensorLoad"):
            out.append(expr.source)
        for field in ("a", "b", "value", "condition", "true_value", "false_value"):
            visit(getattr(expr, field, None))
        for seq_field in ("args", "indices"):
            for child in getattr(expr, seq_field, ()) or ():
                visit(child)

    kind = type(node).__name__
    if kind == "BufferStore":
        visit(node.value)
        for index in node.indices:
            visit(index)
    elif kind in ("Bind", "Evaluate", "AttrStmt"):
        visit(node.value)
    elif kind == "IfThenElse":
        visit(node.condition)
    return out


def rewrite(func: tirx.PrimFunc, depth: int, order: int, unroll: int) -> tirx.PrimFunc:
    """``func`` reordered, then unrolled, inside a tile of ``depth`` fused loops (``order``
    0 and ``unroll`` 1 return ``func`` itself)."""
    return unroll_loop(interchange(func, depth, order), depth, unroll)


#: (kernel handle, depth, split, order, unroll) -> (kernel, rewritten kernel or refusal).
_REWRITTEN: dict = {}


def rewritten(func, depth: int, split: int, order: int, unroll: int, split_loop):
    """``func`` split at loop ``depth`` by ``split`` (``split_loop``, when non-zero), then
    :func:`rewrite` inside the tile, computed once per kernel and knobs: a design space
    asks for the same rewrite once per batch size and again for each constraint."""
    if not split and not order and unroll == 1:
        return func
    key = (func.__hash__(), depth, split, order, unroll)
    hit = _REWRITTEN.get(key)
    if hit is None or not hit[0].same_as(func):
        try:
            out = split_loop(func, depth, split) if split else func
            hit = (func, rewrite(out, depth + bool(split), order, unroll))
        except CandidateError as err:
            hit = (func, err)
        if len(_REWRITTEN) > 4096:
            _REWRITTEN.clear()
        _REWRITTEN[key] = hit
    if isinstance(hit[1], CandidateError):
        raise CandidateError(str(hit[1]))
    return hit[1]

"""Every buffer load in a TIR expression, and how much of the buffer it reads.

Two passes need the loads of an expression: the idempotence check
(:mod:`.idempotence`, which elements a tile reads before it writes them) and operand
staging (:mod:`..tuning.staging`, which region of a parameter a tile reads). Both must see
the same loads, in the same order, and agree on how far a load reaches, so the walk is
defined here once.

A load reads one element, except where its address is taken (``address_of``): the callee
then reads from that element on. For ``intm_load_s8x4`` the reach is known, one 32-bit
word (:data:`WORD`); for any other callee it is not (:data:`ADDRESS`), and a pass that
needs a bound must treat it as reaching the end of the buffer or refuse it.
"""

from __future__ import annotations

#: A plain load: one element.
ELEMENT = "element"
#: The address ``intm_load_s8x4`` reads one 32-bit word from.
WORD = "word"
#: An address handed to another call, which may read anything from there on.
ADDRESS = "address"

#: Helpers whose address argument is read as one 32-bit word.
WORD_LOADS = ("intm_load_s8x4",)
#: Bytes a :data:`WORD_LOADS` helper reads from its address.
WORD_BYTES = 4

_EXTERN = ("tirx.call_pure_extern", "tirx.call_extern")
_FIELDS = ("a", "b", "value", "condition", "true_value", "false_value")


def buffer_loads(expr, out: list | None = None) -> list:
    """``(load, reach)`` for every buffer load in ``expr``, in evaluation order (a load's
    own index loads come before it); ``reach`` is :data:`ELEMENT`, :data:`WORD` or
    :data:`ADDRESS`.

    Parameters
    ----------
    expr : tvm.ir.Expr
        Any TIR expression.
    out : list, optional
        Appended to and returned (a fresh list by default).
    """
    out = [] if out is None else out
    kind = type(expr).__name__
    if kind in ("BufferLoad", "TensorLoad"):
        for index in expr.indices:
            buffer_loads(index, out)
        out.append((expr, ELEMENT))
        return out
    if kind == "Call":
        op = str(expr.op.name)
        if op == "tirx.address_of":
            # Not inside a word helper (that case is below): the reader is unknown.
            _address(expr, ADDRESS, out)
            return out
        word = op in _EXTERN and str(getattr(expr.args[0], "value", "")) in WORD_LOADS
        for arg in expr.args:
            if word and type(arg).__name__ == "Call" and str(arg.op.name) == "tirx.address_of":
                _address(arg, WORD, out)
            elif hasattr(arg, "ty"):
                buffer_loads(arg, out)
        return out
    for field in _FIELDS:
        child = getattr(expr, field, None)
        if child is not None and hasattr(child, "ty"):
            buffer_loads(child, out)
    return out


def _address(call, reach: str, out: list) -> None:
    load = call.args[0]
    for index in load.indices:
        buffer_loads(index, out)
    out.append((load, reach))

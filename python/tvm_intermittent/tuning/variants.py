"""Kernel variants: the other kernels the lowering can build for an operator, as a knob.

The lowering builds some int8 operators in more than one form and picks one by a fixed rule
(``builder.prepare``): the DSP depthwise convolution in vertical pairs of output rows, or
one row per tile where the paired tile does not fit the analytic rule's half of a charge;
the fully connected kernel in blocks of units, or one unit per tile where a block does not
fit. The rule's margin (0.5) is not the tuner's (:data:`.constraints.TUNING_MARGIN`), and
the faster kernel's tiles are not the only ones worth measuring, so the tuner takes the
choice as a knob, ``variant``: 0 is the kernel the rule built, and each other number names
one flip of the rule's choice (:data:`VARIANTS`), offered where the lowering can make it
(:func:`offered`):

=====  ==========================================  ==========================================
 no.    the variant kernel                          instead of (the rule's)
=====  ==========================================  ==========================================
 1      DSP depthwise, one output row per tile      vertical pairs of output rows
 2      DSP depthwise, vertical pairs of rows       one row per tile (paired tile too large)
 3      fully connected, one output unit per tile   blocked output units
 4      fully connected, blocked output units       one unit per tile (block too large)
=====  ==========================================  ==========================================

A number keeps its meaning on every board, so that a record reused on another board names
the same kernel; where that board's lowering does not offer it (no DSP depthwise kernel,
the kernel already the other form), the record is refused (:class:`.knobs.CandidateError`)
and skipped with a notice.

A variant is another lowering, not a rewrite of the default kernel's TIR: the kernels are
built by ``QuantizedToInteger`` with their constants laid out for them. So the tuner lowers
the model once more with every offered variant chosen (:func:`attach`, one extra lowering
per tuning run or log applied; ``bench/variant_candidates.py`` times it), matches each variant
kernel to the task it replaces by its kernel name and its calls in the task table, and
makes a variant task of it (:meth:`.workload.TuningTask.for_knobs`); a build whose
candidate is a variant is lowered again with that variant chosen (:func:`relowered`, which
``builder.assemble`` calls when a kernel carries ``intermittent.variant``).
"""

from __future__ import annotations

import dataclasses

import tvm

from ..errors import ModelError
from ..transform.depthwise_kernels import PAIRS_ATTR
from ..transform.notices import CHANNEL_BLOCK_TILES, ONE_ROW_TILES, ONE_UNIT_TILES
from ..transform.shrink import DENSE_ONE_UNIT, Shrink, kernel_key


@dataclasses.dataclass(frozen=True)
class Variant:
    """One flip of the lowering's rule.

    Attributes
    ----------
    number : int
        The knob's value.
    name : str
        What the variant kernel is.
    instead : str
        What the rule built instead.
    """

    number: int
    name: str
    instead: str


ONE_ROW, PAIRS, ONE_UNIT, BLOCKED_UNITS = 1, 2, 3, 4
#: ``number -> Variant``: the kernel variants the knob can name.
VARIANTS = {
    ONE_ROW: Variant(ONE_ROW, "DSP depthwise convolution, one output row per tile",
                     "vertical pairs of output rows"),
    PAIRS: Variant(PAIRS, "DSP depthwise convolution, vertical pairs of output rows",
                   "one output row per tile, the analytic rule's choice for this capacitor"),
    ONE_UNIT: Variant(ONE_UNIT, "fully connected, one output unit per tile",
                      "blocked output units"),
    BLOCKED_UNITS: Variant(BLOCKED_UNITS, "fully connected, blocked output units",
                           "one output unit per tile, the analytic rule's choice for this "
                           "capacitor"),
}
#: Notice paths of the rule's finer kernels (``builder.prepare``), dropped for a kernel whose
#: variant is chosen.
_RULE_PATHS = (ONE_ROW_TILES, ONE_UNIT_TILES, CHANNEL_BLOCK_TILES)
#: The reason handed to the lowering for a variant it builds (the kernel builders log it).
_TUNED = "a tuned kernel variant"


def describe(number: int) -> str:
    """``"variant 1 (DSP depthwise convolution, one output row per tile)"``."""
    found = VARIANTS.get(number)
    return f"variant {number}" + (f" ({found.name})" if found else " (unknown)")


def offered(prepared) -> dict[str, list[int]]:
    """``kernel -> variant numbers`` the lowering can build for each kernel of ``prepared``
    (kernels with none are left out).

    A depthwise kernel in pairs offers one row per tile; one the rule built one row per
    tile offers the pairs back (unless the rule cut it further, into channel blocks); a
    fully connected kernel the lowering offered to rebuild one unit per tile
    (``Offer``) offers that; one the rule built one unit per tile offers the blocks back.
    """
    requests = prepared.requests
    if requests is None:
        return {}
    shrunk = {kernel: shrink for kernel, shrink, _ in requests.shrunk.values()}
    out = {}
    for kernel, func in prepared.lowered.items():
        found = []
        if func.attrs is not None and PAIRS_ATTR in func.attrs:
            found.append(ONE_ROW)
        if kernel in requests.paired_keys and kernel not in shrunk:
            found.append(PAIRS)
        offer = requests.offers.get(kernel_key(prepared.graph.kernels[kernel]))
        if offer is not None and offer.kind == DENSE_ONE_UNIT:
            found.append(ONE_UNIT)
        if kernel in shrunk and shrunk[kernel].kind == DENSE_ONE_UNIT:
            found.append(BLOCKED_UNITS)
        if found:
            out[kernel] = found
    return out


def relowered(prepared, chosen: dict):
    """``prepared`` lowered again with ``chosen`` (``kernel -> variant number``) built, every
    other kernel as the rule built it; made once per choice and kept on ``prepared``.

    Raises
    ------
    ModelError
        A variant the lowering does not offer for its kernel, or a lowering whose kernels
        are not called as before (the variant could not be matched to its task).
    """
    # pylint: disable=import-outside-toplevel,protected-access
    from .. import builder
    from ..codegen.memory_plan import plan_memory

    key = frozenset(chosen.items())
    if key in prepared.variant_lowerings:
        return prepared.variant_lowerings[key]
    offers = offered(prepared)
    wrong = [f"operator {kernel}: {describe(number)} is not a variant the lowering builds for "
             f"it on board {prepared.board.name} (it offers {offers.get(kernel, [])})"
             for kernel, number in sorted(chosen.items()) if number not in offers.get(kernel, [])]
    if wrong:
        raise ModelError("\n".join(wrong))
    requests = prepared.requests
    unpaired, paired_keys = dict(requests.unpaired), dict(requests.paired_keys)
    shrunk = {k: shrink for k, (_, shrink, _) in requests.shrunk.items()}
    for kernel, number in chosen.items():
        func = prepared.lowered[kernel]
        default_key = kernel_key(prepared.graph.kernels[kernel])
        if number == ONE_ROW:
            unpaired[str(func.attrs[PAIRS_ATTR])] = _TUNED
        elif number == PAIRS:
            del unpaired[paired_keys.pop(kernel)]
        elif number == ONE_UNIT:
            shrunk[default_key] = Shrink(DENSE_ONE_UNIT, _TUNED)
        else:  # BLOCKED_UNITS: the rule's shrink is keyed by the blocked kernel
            del shrunk[next(k for k, (name, _, _) in requests.shrunk.items() if name == kernel)]
    target = tvm.target.Target("intermittent/" + prepared.board.name)
    _, graph, lowered, placements, offered_now = builder._lower(
        prepared.imported.mod, target, prepared.int8_only, unpaired, shrunk)
    steps = [step.kernel for step in graph.steps]
    if steps != [step.kernel for step in prepared.graph.steps] or set(lowered) != set(
            prepared.lowered):
        raise ModelError(f"the model lowered with kernel variants {sorted(chosen.items())} "
                         "calls other kernels than the default lowering; the variants cannot "
                         "be matched to their operators")
    kept = {k: v for k, v in requests.shrunk.items() if k in shrunk}
    made = dataclasses.replace(
        prepared, graph=graph, lowered=lowered, memory=plan_memory(graph),
        placements=placements, variant_lowerings={},
        notices=[n for n in prepared.notices
                 if not (n.operator in chosen and n.path in _RULE_PATHS)],
        requests=builder.Requests(unpaired, paired_keys, kept, offered_now))
    prepared.variant_lowerings[key] = made
    return made


def attach(prepared, tasks: list) -> None:
    """Give each task of ``prepared`` its variant tasks (``TuningTask.variants``): one
    lowering more per rank of variant (one for every model today: no kernel offers two)."""
    # pylint: disable=import-outside-toplevel
    from .workload import variant_task

    offers = offered(prepared)
    mine = {task.kernel: task for task in tasks if task.kernel in offers}
    rank = 0
    while True:
        chosen = {k: ns[rank] for k, ns in offers.items() if k in mine and len(ns) > rank}
        if not chosen:
            return
        other = relowered(prepared, chosen)
        for kernel, number in chosen.items():
            task = mine[kernel]
            task.variants[number] = variant_task(task, other.lowered[kernel],
                                                 other.placements.get(kernel) or {}, number)
        rank += 1

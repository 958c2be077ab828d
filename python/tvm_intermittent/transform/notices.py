"""Notices: where the compiler takes a slower or less exact path than it could, and why.

``QuantizedToInteger`` leaves an operator of a quantized model in float when it matches no
integer pattern; ``FuseEpilogue`` leaves an intermediate buffer when an epilogue cannot be
computed inside its producer's loops. Neither makes a model fail, so each says so here: a
:class:`Notice` is appended to the list the caller passed (``tvm_intermittent.build`` keeps
them on the artifact, in ``model.json`` and in ``compile --json``; ``compile`` prints them)
and logged on the ``tvm_intermittent`` logger. The library never prints: the logger has a
``NullHandler`` until the application configures logging.
"""

from __future__ import annotations

import dataclasses
import logging

LOGGER = logging.getLogger("tvm_intermittent")
LOGGER.addHandler(logging.NullHandler())

#: The operator computes in float between integer neighbours (or at the model's output).
FLOAT_LOWERING = "float lowering"
#: A fused operator keeps an intermediate buffer: its epilogue could not be fused.
UNFUSED_EPILOGUE = "unfused epilogue"
#: A reshape copies its input instead of being a view of it (see codegen/graph.py).
RESHAPE_COPY = "reshape copy"
#: A depthwise kernel computes one output row per tile, not a pair: the paired tile did not
#: fit one charge (see ``builder._unpair_refused``).
ONE_ROW_TILES = "one output row per tile"
#: A fully connected int8 kernel computes one output unit per tile, not a block of units:
#: the block's tile did not fit one charge (see ``builder._shrink_refused``).
ONE_UNIT_TILES = "one output unit per tile"
#: A depthwise kernel computes a block of channels of one output pixel per tile, not the
#: whole pixel: one row's pixel did not fit one charge (see ``builder._shrink_refused``).
CHANNEL_BLOCK_TILES = "channel blocks of one pixel per tile"
#: A kernel's reduction is split into chunks, the running sum through NVM, one commit per
#: chunk: one output element did not fit one charge (see ``codegen.tiling``).
SPLIT_REDUCTION = "split reduction"


@dataclasses.dataclass(frozen=True)
class Notice:
    """One operator on a slower or less exact path.

    Attributes
    ----------
    operator : str
        The operator and its result, e.g. ``"exp -> float32[1, 8]"``, or a kernel name.
    path : str
        One of this module's paths (:data:`FLOAT_LOWERING`, :data:`UNFUSED_EPILOGUE`, ...).
    reason : str
        Why, and where it helps, what would avoid it.
    """

    operator: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.operator}: {self.path}: {self.reason}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def report(notices: list | None, notice: Notice) -> None:
    """Log ``notice`` and append it to ``notices`` (when the caller collects them), once."""
    if notices is not None:
        if notice in notices:
            return
        notices.append(notice)
    LOGGER.warning("%s", notice)

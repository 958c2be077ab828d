"""Which simulator runs a project: the instruction set of the board it was exported for.

``sim.run`` and ``sim.run_exhaustive`` (and so the reports and campaigns built on them) run
a project on the simulator of its board's ``isa`` when the caller names none: QEMU's
Cortex-M4 for ``"arm"``, mspdebug's MSP430 for ``"msp430"``. The board is read from the
project's ``model.json`` (its ``board_profile`` when the compiler wrote one, otherwise the
shipped profile of its ``board``).
"""

from __future__ import annotations

from pathlib import Path

from ..board import list_boards, load_board
from . import tensors

#: The simulator (run kind) of each instruction set.
KIND_OF_ISA = {"arm": "qemu", "msp430": "msp430"}


def project_isa(project_dir) -> str:
    """The instruction set of the board ``project_dir`` was exported for (default ``arm``)."""
    meta = tensors.load_model_json(Path(project_dir))
    profile = meta.get("board_profile")
    if isinstance(profile, dict) and profile.get("isa"):
        return str(profile["isa"])
    board = meta.get("board")
    if isinstance(board, str) and board in list_boards():
        return load_board(board).isa
    return "arm"


def default_kind(project_dir) -> str:
    """The run kind ``sim.run`` uses for ``project_dir`` when none is given."""
    isa = project_isa(project_dir)
    if isa not in KIND_OF_ISA:
        raise ValueError(f"{project_dir}: unknown instruction set {isa!r} in model.json")
    return KIND_OF_ISA[isa]

"""TVM target tags ``intermittent/<board>``: a C target carrying the board's name.

New target kinds cannot be made from Python, so the tag is a ``c`` target whose ``mcpu`` and
``keys`` describe the core. A Target made from a tag forgets the tag's name, so the board's
name also travels in the target's ``model`` attribute and is read back by :func:`board_of`.
"""

from __future__ import annotations

import tvm

from .board import Board, list_boards, load_board

TAG_PREFIX = "intermittent/"


def _target_config(board: Board) -> dict:
    return {"kind": "c", "keys": ["arm_cpu", "cpu"], "mcpu": board.cpu, "model": board.name}


def register_target_tags() -> None:
    """Register one tag per shipped board profile (idempotent)."""
    for name in list_boards():
        tvm.target.tag.register_tag(TAG_PREFIX + name, _target_config(load_board(name)),
                                    override=True)


def board_of(target, board=None) -> Board:
    """The board profile for ``target`` (a tag name, a Target) or an explicit ``board``."""
    if board is not None:
        return load_board(board)
    if isinstance(target, str) and target.startswith(TAG_PREFIX):
        return load_board(target)
    if isinstance(target, tvm.target.Target):
        model = str(target.attrs.get("model", ""))
        if target.kind.name == "c" and model in list_boards():
            return load_board(model)
    from .board import DEFAULT_BOARD  # pylint: disable=import-outside-toplevel

    return load_board(DEFAULT_BOARD)

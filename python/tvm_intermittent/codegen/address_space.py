"""Whether a model fits the address space of its board's instruction set, before any C is
compiled.

A 16-bit MSP430 addresses 64 KiB: its code, its constants (the weights) and its NVM (the
activation arena, the progress record, the I/O mailbox) share the FRAM below the vectors,
``board.nvm_bytes`` of it (bsp/msp430_sim/linker.ld.in). A model whose weights and arena
alone exceed that cannot be built whatever the code size, so the compiler refuses it here
with the sizes; one that fits here may still fail to link once code is added, and the
toolchain then names the region and the overflow (sim/toolchain.py).
"""

from __future__ import annotations

from ..board import Board


def address_space_problems(weight_bytes: int, arena_bytes: int, board: Board) -> list[str]:
    """What does not fit the board's address space; empty when it fits (or is 32-bit).

    Parameters
    ----------
    weight_bytes, arena_bytes : int
        The model's constants and its activation arena.
    board : Board
        The target board; only ``isa == "msp430"`` has a 64 KiB address space.

    Returns
    -------
    problems : list of str
        One sentence, with the sizes, when the model cannot fit.
    """
    if board.isa != "msp430":
        return []
    need = weight_bytes + arena_bytes
    if need <= board.nvm_bytes:
        return []
    return [f"the weights ({weight_bytes:,} bytes) and activations ({arena_bytes:,} bytes) "
            f"need {need:,} bytes of FRAM before any code; a 16-bit MSP430 ({board.name}) "
            f"addresses {board.nvm_bytes:,} bytes of FRAM for code, constants and NVM "
            "together: choose a smaller model or a 32-bit board"]

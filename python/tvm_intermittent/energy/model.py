"""Work on a board in cycles, seconds and joules.

The work of a stretch of firmware is what QEMU can count exactly: instructions, and the
loads and stores that reach the NVM window (each access one bus transfer of 1, 2 or 4
bytes; a load or store multiple is one access per register). A board profile charges
them:

* cycles = instructions x ``cycles_per_instruction``
  + NVM loads x ``nvm_read_wait_cycles`` + NVM stores x ``nvm_write_wait_cycles``
  (the wait states an access beyond the core's zero-wait memory costs);
* seconds = cycles / ``clock_hz``;
* joules = ``active_power_w`` x seconds + NVM loads x ``nvm_read_energy_j``
  + NVM stores x ``nvm_write_energy_j`` (what an access draws beyond the core's active
  power during its cycles).

SRAM accesses are inside ``cycles_per_instruction`` and ``active_power_w``: SRAM is the
core's zero-wait memory. A capacitor's charge is spent in *instruction-equivalents*, the
energy of one instruction that touches no NVM (``board.energy_per_instruction_j``); the
power-failure plugin charges each NVM access that many of them (:func:`access_costs`).
"""

from __future__ import annotations

import dataclasses

#: The counts a :class:`Work` holds, in the order of its fields.
COUNTS = ("instructions", "nvm_loads", "nvm_stores", "nvm_load_bytes", "nvm_store_bytes")


@dataclasses.dataclass(frozen=True)
class Work:
    """What a stretch of firmware executes: instructions and NVM accesses (and their bytes).

    Counts are floats so that an estimate (a mean per tile) and a measurement (exact
    integers) are the same type; ``Work`` values add and scale.
    """

    instructions: float = 0.0
    nvm_loads: float = 0.0
    nvm_stores: float = 0.0
    nvm_load_bytes: float = 0.0
    nvm_store_bytes: float = 0.0

    def __add__(self, other: "Work") -> "Work":
        return Work(*(getattr(self, f) + getattr(other, f) for f in COUNTS))

    def __mul__(self, factor: float) -> "Work":
        return Work(*(getattr(self, f) * factor for f in COUNTS))

    __rmul__ = __mul__

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Work":
        return cls(**{f: float(data.get(f, 0.0)) for f in COUNTS})


def cycles(board, work: Work) -> float:
    """Clock cycles of ``work`` on ``board``: instructions plus NVM wait states."""
    return (work.instructions * board.cycles_per_instruction
            + work.nvm_loads * board.nvm_read_wait_cycles
            + work.nvm_stores * board.nvm_write_wait_cycles)


def seconds(board, work: Work) -> float:
    """Active time of ``work`` on ``board``."""
    return cycles(board, work) / board.clock_hz


def energy_j(board, work: Work) -> float:
    """Joules ``work`` draws on ``board``: active power over its time plus NVM access energy."""
    return (board.active_power_w * seconds(board, work)
            + work.nvm_loads * board.nvm_read_energy_j
            + work.nvm_stores * board.nvm_write_energy_j)


def access_costs(board) -> tuple[float, float]:
    """Instruction-equivalents one NVM load and one NVM store cost on ``board``.

    ``energy_j(board, Work(1, loads, stores)) == (1 + loads * load + stores * store)
    * board.energy_per_instruction_j``: what the plugin charges a boot's budget per access.
    """
    unit = board.energy_per_instruction_j
    load = energy_j(board, Work(nvm_loads=1)) / unit
    store = energy_j(board, Work(nvm_stores=1)) / unit
    return load, store


def instruction_equivalents(board, work: Work) -> float:
    """``work``'s energy in instruction-equivalents, the unit of a power cycle budget."""
    return energy_j(board, work) / board.energy_per_instruction_j

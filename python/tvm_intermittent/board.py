"""Board profiles: data files that describe a microcontroller for the compiler and the reports.

A profile says how much volatile SRAM and non-volatile memory (NVM) a part has, its clock,
and the energy model that turns emulated instruction counts into time and energy:

* ``cycles_per_instruction`` scales QEMU's exact instruction count to cycles;
* ``active_power_w`` is the power drawn while computing;
* ``nvm_read_wait_cycles`` / ``nvm_write_wait_cycles`` and ``nvm_read_energy_j`` /
  ``nvm_write_energy_j`` are what each NVM load / store access adds, in wait-state cycles
  and in joules beyond the active power (:mod:`.energy.model` turns them into time and
  energy);
* ``capacitor_f``, ``v_on`` and ``v_off`` give the energy of one charge,
  ``E = C (v_on^2 - v_off^2) / 2`` (the power cycle budget);
* ``harvest_w`` is the harvested power that recharges the capacitor.

Each profile has a ``sources`` table that says where every value comes from, and an ``isa``
that picks the firmware's instruction set, board support package and simulator: ``"arm"``
(Cortex-M4 on QEMU, the default) or ``"msp430"`` (16-bit MSP430 on mspdebug's simulator).
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

from .errors import BoardError

DEFAULT_BOARD = "qemu-an386"
#: Instruction sets a board's firmware can be built for and simulated on.
ISAS = ("arm", "msp430")


@dataclasses.dataclass(frozen=True)
class Board:
    """One board profile, loaded from ``boards/<name>.json``."""

    name: str
    description: str
    cpu: str
    fpu: bool
    dsp: bool
    sram_bytes: int
    nvm_bytes: int
    nvm_kind: str
    clock_hz: int
    cycles_per_instruction: float
    active_power_w: float
    capacitor_f: float
    v_on: float
    v_off: float
    harvest_w: float
    sources: dict = dataclasses.field(default_factory=dict, compare=False)
    isa: str = "arm"
    #: Instructions this ISA executes for one Cortex-M4 instruction of the same C (measured
    #: per profile, see its ``sources``): the tiler's instruction estimates are Cortex-M4's,
    #: so it sizes tiles for ``power_cycle_budget / instruction_scale`` of them.
    instruction_scale: float = 1.0
    #: Wait-state cycles one NVM load / store access adds (see :mod:`.energy.model`).
    nvm_read_wait_cycles: float = 0.0
    nvm_write_wait_cycles: float = 0.0
    #: Joules one NVM load / store access draws beyond the active power of its cycles.
    nvm_read_energy_j: float = 0.0
    nvm_write_energy_j: float = 0.0

    def __post_init__(self):
        problems = []
        if not self.instruction_scale >= 1.0:
            problems.append(f"instruction_scale must be >= 1, got {self.instruction_scale!r}")
        if self.isa not in ISAS:
            problems.append(f"isa must be one of {', '.join(ISAS)}, got {self.isa!r}")
        for field in ("sram_bytes", "nvm_bytes", "clock_hz", "cycles_per_instruction",
                      "active_power_w", "capacitor_f"):
            if not getattr(self, field) > 0:
                problems.append(f"{field} must be positive, got {getattr(self, field)!r}")
        for field in ("nvm_read_wait_cycles", "nvm_write_wait_cycles", "nvm_read_energy_j",
                      "nvm_write_energy_j"):
            if not getattr(self, field) >= 0:
                problems.append(f"{field} must be >= 0, got {getattr(self, field)!r}")
        if not self.v_on > self.v_off > 0:
            problems.append(f"need v_on > v_off > 0, got v_on={self.v_on}, v_off={self.v_off}")
        if problems:
            raise BoardError(f"board profile {self.name!r}: " + "; ".join(problems))

    @property
    def energy_per_instruction_j(self) -> float:
        """Energy of one instruction: active power times the time of its cycles."""
        return self.active_power_w * self.cycles_per_instruction / self.clock_hz

    def charge_energy_j(self, capacitor_f: float | None = None) -> float:
        """Usable energy of one capacitor charge, ``C (Von^2 - Voff^2) / 2``."""
        c = self.capacitor_f if capacitor_f is None else capacitor_f
        return 0.5 * c * (self.v_on**2 - self.v_off**2)

    def power_cycle_budget(self, capacitor_f: float | None = None) -> int:
        """Instructions one charge pays for (the power cycle budget)."""
        return int(self.charge_energy_j(capacitor_f) / self.energy_per_instruction_j)

    def tile_budget(self, capacitor_f: float | None = None) -> int:
        """The power cycle budget in the tiler's (Cortex-M4) instructions."""
        return int(self.power_cycle_budget(capacitor_f) / self.instruction_scale)

    def seconds(self, instructions: int) -> float:
        """Active time of ``instructions`` that touch no NVM on this board (for work with
        NVM accesses, :func:`.energy.model.seconds`)."""
        from .energy.model import Work, seconds  # pylint: disable=import-outside-toplevel

        return seconds(self, Work(instructions=instructions))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def list_boards() -> list[str]:
    """Names of the board profiles shipped with the package, sorted."""
    files = resources.files(__package__).joinpath("boards").iterdir()
    return sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json"))


def load_board(name: str | Board) -> Board:
    """Load a shipped board profile by name (``msp430fr5994``) or tag (``intermittent/...``)."""
    if isinstance(name, Board):
        return name
    name = str(name).removeprefix("intermittent/")
    if name not in list_boards():
        raise BoardError(
            f"unknown board {name!r}; known boards: {', '.join(list_boards())} "
            "(see `tvm-intermittent boards`)"
        )
    text = resources.files(__package__).joinpath("boards").joinpath(f"{name}.json").read_text()
    data = json.loads(text)
    try:
        return Board(**data)
    except TypeError as err:
        raise BoardError(f"board profile {name!r} has bad fields: {err}") from err

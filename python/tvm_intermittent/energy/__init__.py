"""The energy model: work (instructions and memory traffic) to cycles, seconds and joules.

One module (:mod:`.model`) turns the work a firmware does on a board into time and energy,
and every consumer reads it: the tiler sizing tiles for one charge, the simulator's
capacitor schedule charging a boot's budget, the run report, and the predictions of
``analyze``. A prediction and a measurement are therefore computed by the same formulas
and differ only in where the work comes from (an estimate, or QEMU's exact counts).
"""

from .model import Work, access_costs, cycles, energy_j, instruction_equivalents, seconds

__all__ = ["Work", "access_costs", "cycles", "energy_j", "instruction_equivalents", "seconds"]

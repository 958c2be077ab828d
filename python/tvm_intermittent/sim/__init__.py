"""Build exported projects and run them on QEMU mps2-an386, on the host, or on an emulated
MSP430 (mspdebug's simulator, :mod:`~tvm_intermittent.sim.mspdebug`), chosen by the board's
ISA (:mod:`~tvm_intermittent.sim.isa`).

``run`` returns the outputs and exact instruction counts, under continuous power or under
the power failures of a schedule (:mod:`~tvm_intermittent.sim.power`), and the loads and
stores into NVM and SRAM per phase (:data:`PHASES`) and per task; ``run_exhaustive``
fails once at every instruction of a window; :class:`IntermittentReport` turns a failure
run into the numbers the compiler is judged by (re-executed work, IMO, modeled latency).
``build_project`` and the ELF inspection helpers (``section_sizes``, ``stack_usage``,
``forbidden_symbols``) serve the compiler's checks and the reports.
"""

from . import power
from .power import (
    Capacitor,
    Exhaustive,
    FailAt,
    FailAtEach,
    NoFailures,
    Periodic,
    Random,
    Schedule,
    parse_capacitance,
    parse_power,
    parse_schedule,
    parse_window,
)
from .qemu import (
    DEFAULT_MAX_BOOTS,
    NO_PROGRESS_STATUS,
    PHASE_FUNCTIONS,
    PHASES,
    PROGRESS_FUNCTIONS,
    RunResult,
    plugin_path,
    qemu_available,
    run,
    run_exhaustive,
)
from .isa import default_kind, project_isa
from .mspdebug import Msp430RunResult, mspdebug_available
from .report import IntermittentReport, arena_fits_sram, measure_intermittent, measured_work
from .tensors import decode_outputs, encode_inputs, load_model_json
from .toolchain import (
    MODES,
    build_project,
    msp430_toolchain_available,
    forbidden_symbols,
    host_compiler_available,
    section_sizes,
    stack_usage,
    symbols,
    toolchain_available,
)

__all__ = [
    "Capacitor",
    "DEFAULT_MAX_BOOTS",
    "Exhaustive",
    "FailAt",
    "FailAtEach",
    "IntermittentReport",
    "MODES",
    "Msp430RunResult",
    "NO_PROGRESS_STATUS",
    "NoFailures",
    "PHASE_FUNCTIONS",
    "PHASES",
    "PROGRESS_FUNCTIONS",
    "Periodic",
    "Random",
    "RunResult",
    "Schedule",
    "arena_fits_sram",
    "build_project",
    "decode_outputs",
    "default_kind",
    "encode_inputs",
    "forbidden_symbols",
    "host_compiler_available",
    "load_model_json",
    "measure_intermittent",
    "measured_work",
    "msp430_toolchain_available",
    "mspdebug_available",
    "parse_capacitance",
    "parse_power",
    "parse_schedule",
    "parse_window",
    "plugin_path",
    "power",
    "project_isa",
    "qemu_available",
    "run",
    "run_exhaustive",
    "section_sizes",
    "stack_usage",
    "symbols",
    "toolchain_available",
]

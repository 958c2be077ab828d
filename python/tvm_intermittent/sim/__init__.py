"""Build exported projects and run them on QEMU mps2-an386 or on the host.

``run`` returns the outputs and exact instruction counts; ``build_project`` and the ELF
inspection helpers (``section_sizes``, ``stack_usage``, ``forbidden_symbols``) serve the
compiler's checks and the reports.
"""

from .qemu import RunResult, plugin_path, qemu_available, run
from .tensors import decode_outputs, encode_inputs, load_model_json
from .toolchain import (
    build_project,
    forbidden_symbols,
    host_compiler_available,
    section_sizes,
    stack_usage,
    symbols,
    toolchain_available,
)

__all__ = [
    "RunResult",
    "build_project",
    "decode_outputs",
    "encode_inputs",
    "forbidden_symbols",
    "host_compiler_available",
    "load_model_json",
    "plugin_path",
    "qemu_available",
    "run",
    "section_sizes",
    "stack_usage",
    "symbols",
    "toolchain_available",
]

"""Errors the library raises, and every exit status: the CLI's and the firmware's.

The library never prints or exits; the CLI maps these classes to :class:`ExitStatus`.
Classes inherit from a built-in exception too, so callers may catch ``ValueError`` or
``NotImplementedError`` without knowing this module.

Two status spaces meet here, and this module is the only place that defines either:

* :class:`ExitStatus`: what ``tvm-intermittent`` returns (0 ok, 1 mismatch, 2 bad input,
  3 the firmware did not run to its end, 130 interrupted);
* :class:`FirmwareStatus`: what the firmware's ``main`` returns through semihosting
  (``intm_status_t``), plus 128 + n for CPU exception n. The C enum is generated from it
  (:func:`status_header`, written as ``runtime/intm_status.h`` at export), so the C runtime,
  the simulator's messages (:func:`explain_firmware_status`) and the CLI
  (:func:`cli_status_for_firmware`) cannot disagree.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit statuses of the command line (and of the simulator's verdict on a run)."""

    OK = 0
    #: The outputs did not match the reference runtime.
    MISMATCH = 1
    #: Bad input, or a model that cannot fit the board.
    BAD_INPUT = 2
    #: The firmware ran but did not finish (crash, timeout, no progress).
    RUN_FAILED = 3
    #: Interrupted (Ctrl-C): 128 + SIGINT, as a shell reports a command it interrupted.
    INTERRUPTED = 130


class FirmwareStatus(IntEnum):
    """Statuses of the firmware and its C runtime, as ``intm_status_t`` (``INTM_<NAME>``).

    Each member carries the console text the firmware prints (``text``) and the longer
    explanation the simulator gives (``meaning``). Values are stable: a firmware exports its
    status to QEMU's exit status, and old projects keep the numbers they were built with.
    """

    def __new__(cls, value: int, text: str, meaning: str):
        member = int.__new__(cls, value)
        member._value_ = value
        member.text = text
        member.meaning = meaning
        return member

    OK = 0, "ok", "the outputs were written"
    #: An input could not be read or an output written.
    ERROR_IO = 1, "I/O error", "I/O error reading input.bin or writing output.bin"
    #: An input has the wrong number of bytes.
    ERROR_SIZE = 2, "wrong number of bytes", "input.bin has the wrong number of bytes"
    #: A kernel (or an application's callback) reported failure.
    ERROR_KERNEL = 3, "kernel error", "a kernel reported failure"
    #: Boots kept failing before the next commit (livelock guard).
    ERROR_NO_PROGRESS = 4, "no progress", "no progress: boots kept failing before the next commit"


#: The firmware exits with FAULT_STATUS_BASE + n after CPU exception n (bsp startup code).
FAULT_STATUS_BASE = 128

#: ARMv7-M exception names by number, for the fault statuses.
EXCEPTION_NAMES = {2: "NMI", 3: "HardFault", 4: "MemManage", 5: "BusFault", 6: "UsageFault",
                   11: "SVCall", 12: "DebugMonitor", 14: "PendSV", 15: "SysTick"}


def explain_firmware_status(status: int) -> str:
    """What a firmware exit status means, for messages: one of :class:`FirmwareStatus`, a CPU
    fault (128 + exception number), or a negative value (the process got a signal)."""
    if status in FirmwareStatus._value2member_map_:
        return FirmwareStatus(status).meaning
    if status >= FAULT_STATUS_BASE:
        number = status - FAULT_STATUS_BASE
        name = EXCEPTION_NAMES.get(number, "interrupt" if number >= 16 else "exception")
        return f"CPU fault: {name} (exception {number})"
    if status < 0:
        return f"killed by signal {-status}"
    return "unknown status"


def cli_status_for_firmware(status: int) -> ExitStatus:
    """The CLI's exit status for a firmware that exited with ``status``.

    The two spaces overlap in numbers only: firmware status 2 (an input of the wrong size)
    is not the CLI's 2 (bad input), since the simulator checks inputs against
    ``model.json`` before the firmware sees them, so a firmware that still finds the size
    wrong was built for other tensors. Everything but 0 is therefore a run that failed.
    """
    return ExitStatus.OK if status == FirmwareStatus.OK else ExitStatus.RUN_FAILED


def status_header() -> str:
    """The C header ``intm_status.h``: ``intm_status_t`` and its console texts.

    Generated from :class:`FirmwareStatus`; the exporter writes it into every project, and
    the package keeps a copy (``runtime/intm_status.h``) for code compiled straight from the
    package, which a test compares with this text.
    """
    width = max(len(m.name) for m in FirmwareStatus) + len("INTM_ = 0,")
    members, cases, exceptions = [], [], []
    for member in FirmwareStatus:
        entry = f"INTM_{member.name} = {member.value},"
        members.append(f"  {entry:<{width}} /**< {member.meaning} */")
        cases.append(f"    case INTM_{member.name}:\n      return \"{member.text}\";")
    for number, name in EXCEPTION_NAMES.items():
        exceptions.append(f"    case {number}u:\n      return \"{name}\";")
    return "\n".join([
        "/*",
        " * intm_status.h - statuses of the C runtime and the firmware's exit statuses.",
        " *",
        " * GENERATED from tvm_intermittent/errors.py (FirmwareStatus) by status_header();",
        " * do not edit: change errors.py, then run",
        " *   python -c \"import tvm_intermittent.errors as e; e.write_status_header()\"",
        " * The firmware exits with these values, or with "
        f"{FAULT_STATUS_BASE} + n after CPU exception n.",
        " */",
        "#ifndef INTM_STATUS_H_",
        "#define INTM_STATUS_H_",
        "",
        "/** Status returned by every runtime and model function, and the firmware's exit. */",
        "typedef enum {",
        *members,
        "} intm_status_t;",
        "",
        "/** Exit status after CPU exception n: INTM_FAULT_STATUS_BASE + n. */",
        f"#define INTM_FAULT_STATUS_BASE {FAULT_STATUS_BASE}",
        "",
        "/** Console text of `status`. */",
        "static inline const char* intm_status_text(intm_status_t status) {",
        "  switch (status) {",
        *cases,
        "  }",
        "  return \"unknown error\";",
        "}",
        "",
        "/** Name of ARMv7-M exception `number`, as the fault report prints it. */",
        "static inline const char* intm_exception_name(unsigned number) {",
        "  switch (number) {",
        *exceptions,
        "    default:",
        "      return number >= 16u ? \"unexpected interrupt\" : \"reserved exception\";",
        "  }",
        "}",
        "",
        "#endif /* INTM_STATUS_H_ */",
        "",
    ])


def write_status_header(path=None):
    """Write :func:`status_header` to ``path`` (default: the package's runtime copy).

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    from pathlib import Path  # pylint: disable=import-outside-toplevel

    if path is None:
        path = Path(__file__).resolve().parent / "runtime" / "intm_status.h"
    path = Path(path)
    path.write_text(status_header(), encoding="utf-8")
    return path


class IntermittentError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_status = ExitStatus.BAD_INPUT


class ModelError(IntermittentError, ValueError):
    """The model file is malformed, dynamic, or otherwise not compilable."""


class UnsupportedOperatorError(ModelError, NotImplementedError):
    """The model uses operators we cannot compile; the message lists all of them."""


class BoardError(IntermittentError, ValueError):
    """Unknown board, or a board profile with bad values."""


class DoesNotFitError(IntermittentError, ValueError):
    """The model does not fit the board: names the operator, the budget and the need."""


class InputError(IntermittentError, ValueError):
    """An input or output file does not match the model's tensors."""


class ToolchainError(IntermittentError, RuntimeError):
    """A required external tool (cross compiler, QEMU, cc) is missing or failed."""

    exit_status = ExitStatus.RUN_FAILED


class SimulationError(IntermittentError, RuntimeError):
    """The firmware crashed, timed out, or exited with an error status.

    ``firmware_status`` is the firmware's own exit status when it exited with one (None
    for a timeout or unreadable outputs); the CLI's status follows from it through
    :func:`cli_status_for_firmware`.
    """

    def __init__(self, message: str, firmware_status: int | None = None):
        super().__init__(message)
        self.firmware_status = firmware_status

    @property
    def exit_status(self) -> ExitStatus:
        if self.firmware_status is None:
            return ExitStatus.RUN_FAILED
        return cli_status_for_firmware(self.firmware_status)

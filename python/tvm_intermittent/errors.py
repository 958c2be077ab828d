"""Errors the library raises, and the exit status each maps to on the command line.

The library never prints or exits; the CLI maps these classes to :class:`ExitStatus`.
Classes inherit from a built-in exception too, so callers may catch ``ValueError`` or
``NotImplementedError`` without knowing this module.
"""

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit statuses shared by the CLI and the simulator."""

    OK = 0
    #: The outputs did not match the reference runtime.
    MISMATCH = 1
    #: Bad input, or a model that cannot fit the board.
    BAD_INPUT = 2
    #: The firmware ran but did not finish (crash, timeout, no progress).
    RUN_FAILED = 3


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
    """The firmware crashed, timed out, or exited with an error status."""

    exit_status = ExitStatus.RUN_FAILED

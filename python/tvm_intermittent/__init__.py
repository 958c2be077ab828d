"""tvm-intermittent: compile neural networks to plain C for intermittently powered MCUs.

``import tvm`` loads this package through the ``tvm.backends`` entry point, which registers
the target tags ``intermittent/<board>`` and the Relax pipeline ``intermittent``.
"""

from .board import Board, list_boards, load_board
from .errors import (
    BoardError,
    DoesNotFitError,
    ExitStatus,
    InputError,
    IntermittentError,
    ModelError,
    SimulationError,
    ToolchainError,
    UnsupportedOperatorError,
)

__version__ = "0.1.0"

_REGISTERED = False


def _autoload() -> None:
    """Entry point of the ``tvm.backends`` group: register tags and the pipeline once."""
    global _REGISTERED  # pylint: disable=global-statement
    if _REGISTERED:
        return
    _REGISTERED = True
    from .target import register_target_tags  # pylint: disable=import-outside-toplevel
    from .transform import pipeline  # pylint: disable=import-outside-toplevel,unused-import

    register_target_tags()


def __getattr__(name):
    # Lazy: the compiler pulls in TVM, which is slow to import; `tvm-intermittent boards`
    # and the simulator should not pay for it.
    if name in ("build", "Artifact"):
        from . import builder as _build  # pylint: disable=import-outside-toplevel

        return getattr(_build, name)
    if name in ("frontend", "sim", "zoo", "codegen", "transform", "reference"):
        import importlib  # pylint: disable=import-outside-toplevel

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

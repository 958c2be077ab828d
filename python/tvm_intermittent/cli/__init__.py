"""The ``tvm-intermittent`` command line: compile, run, boards, demo."""

from .core import main

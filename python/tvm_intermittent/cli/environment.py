"""Streams and progress reporting of one CLI invocation; tests replace it."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import IO


@dataclasses.dataclass
class Environment:
    """Where the CLI writes. ``stdout`` carries results (JSON with ``--json``); ``stderr``
    carries progress and errors, so ``--json`` output stays machine-readable."""

    stdout: IO = dataclasses.field(default_factory=lambda: sys.stdout)
    stderr: IO = dataclasses.field(default_factory=lambda: sys.stderr)
    show_progress: bool = True

    def log(self, message: str) -> None:
        if self.show_progress:
            print(message, file=self.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, message: str):
        """Report a long step: its name before, its duration after."""
        import time  # pylint: disable=import-outside-toplevel

        self.log(f"{message} ...")
        started = time.perf_counter()
        yield
        self.log(f"{message}: done in {time.perf_counter() - started:.1f} s")

    def progress(self, iterable, total=None, desc=""):
        """Wrap an iterable in a progress bar on stderr (tqdm), if progress is shown."""
        if not self.show_progress:
            return iterable
        from tqdm import tqdm  # pylint: disable=import-outside-toplevel

        return tqdm(iterable, total=total, desc=desc, file=self.stderr, leave=False)

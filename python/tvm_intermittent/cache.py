"""The per-user cache: where it is, and how two processes fill one entry at the same time.

The cache holds what is expensive to make and the same for every run: the QEMU plugin's
shared object (compiled on first use) and the model zoo's files (downloaded once). Several
processes may want the same missing entry at once: two test workers, a tuner's measurement
servers, two terminals. Every entry is therefore

- written under a temporary name in the same directory and renamed into place, so a reader
  sees either no file or a whole one, never a half-written file it would trust; and
- made under an exclusive lock (:func:`exclusive`), so the second process waits for the
  first and then finds the entry made, instead of doing the same download or compile again.

The lock is ``fcntl.flock`` on a lock file beside the entry: the kernel drops it when its
holder exits, even by a crash, so a killed process never leaves the cache locked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: The environment variable that moves the whole cache (zoo and plugin) elsewhere.
CACHE_VARIABLE = "TVM_INTERMITTENT_CACHE"


def cache_root() -> Path:
    """The cache directory (not created here).

    ``$TVM_INTERMITTENT_CACHE`` when set, else ``$XDG_CACHE_HOME/tvm-intermittent`` with
    ``~/.cache`` when ``XDG_CACHE_HOME`` is unset or empty.
    """
    root = os.environ.get(CACHE_VARIABLE)
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "tvm-intermittent"


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (created if absent) for the ``with`` body.

    Callers check for their entry again once inside: another process may have made it while
    this one waited. Where ``fcntl`` is missing (not POSIX) the body runs unlocked; the
    rename into place still keeps readers from half-written files, and the worst case is
    the same work done twice.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a", encoding="utf-8") as lock:
        try:
            import fcntl  # pylint: disable=import-outside-toplevel
        except ImportError:
            yield
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

"""Shared fixtures and the test tiers: pure Python, host-compiled C, QEMU.

QEMU tests are marked ``qemu`` and skipped, with the reason, where QEMU or the Arm cross
compiler is missing (``scripts/setup.sh`` installs both); MSP430 tests are marked ``msp430``
and skipped where mspdebug, clang or ld.lld is missing.

Test files run longest first, by the seconds measured in ``durations.json`` (written by
``scripts/test_durations.py``). ``scripts/test.sh`` runs the suite on every core with
pytest-xdist, ``--dist loadfile`` (a file goes whole to one worker, so its module fixtures
are built once) and ``--no-loadscope-reorder`` (files are handed out in this order): the long
files start first and the short ones fill in at the end, so no worker is left alone on a long
file while the other idles. Tests within a file keep their order.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

DURATIONS = Path(__file__).parent / "durations.json"


def _file_seconds() -> dict[str, float]:
    """Measured seconds per test file, keyed by its path from the repository's root."""
    try:
        return json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return {}


def _qemu_reason():
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "make")
               if shutil.which(t) is None]
    return f"missing {', '.join(missing)} (run scripts/setup.sh)" if missing else None


def _cc_reason():
    return None if shutil.which("cc") and shutil.which("make") else "no host C compiler or make"


def _msp430_reason():
    missing = [t for t in ("mspdebug", "clang", "ld.lld", "llvm-nm", "make")
               if shutil.which(t) is None]
    return f"missing {', '.join(missing)} (run scripts/setup.sh)" if missing else None


def _longest_files_first(config, items):
    """Order test files longest first; a file not measured yet counts as the longest, so a
    new slow file cannot end up last."""
    seconds = _file_seconds()
    root = Path(config.rootpath)
    unknown = max(seconds.values(), default=0.0) + 1.0

    def cost(item):
        path = Path(item.path)
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        return -seconds.get(name, unknown)

    items.sort(key=cost)  # stable: each file's tests keep their order


# Last, after pytest has grouped the tests by their module fixtures' parameters.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    qemu, cc, msp430 = _qemu_reason(), _cc_reason(), _msp430_reason()
    for item in items:
        if msp430 and "msp430" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=msp430))
        if qemu and "qemu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=qemu))
        if cc and "host_cc" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=cc))
    _longest_files_first(config, items)

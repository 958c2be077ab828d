"""Shared fixtures and the test tiers: pure Python, host-compiled C, QEMU.

QEMU tests are marked ``qemu`` and skipped, with the reason, where QEMU or the Arm cross
compiler is missing (``scripts/setup.sh`` installs both); MSP430 tests are marked ``msp430``
and skipped where mspdebug, clang or ld.lld is missing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


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


def pytest_collection_modifyitems(config, items):
    qemu, cc, msp430 = _qemu_reason(), _cc_reason(), _msp430_reason()
    for item in items:
        if msp430 and "msp430" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=msp430))
        if qemu and "qemu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=qemu))
        if cc and "host_cc" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=cc))

#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for tvm-intermittent; safe to run again (idempotent).
#   - Debian packages: the Arm cross compiler, newlib and QEMU (for the emulated Cortex-M4);
#     clang, lld and mspdebug (for the emulated 16-bit MSP430)
#   - a virtual environment in .venv with the package installed editable, plus test extras
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi make gcc
              clang lld mspdebug)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating the virtual environment .venv" >&2
    "$PYTHON" -m venv .venv
fi
# Reinstall only when the project's requirements changed.
stamp=.venv/.tvm-intermittent-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing Python packages into .venv (a few minutes the first time)" >&2
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
fi

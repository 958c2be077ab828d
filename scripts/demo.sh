#!/usr/bin/env bash
# Set up (if needed) and run the main job: keyword spotting compiled for the emulated MCU.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/tvm-intermittent demo "$@"

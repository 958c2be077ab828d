#!/usr/bin/env bash
# Set up (if needed) and run the test suite (about seventeen minutes on 2 cores once set up).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"

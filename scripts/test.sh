#!/usr/bin/env bash
# Set up (if needed) and run the test suite on every core: 832 tests, about 14 minutes on 2 cores
# from a fresh clone. How it was measured: README.md,
# "Quick start".
#
# pytest-xdist runs one worker per logical CPU (-n logical, so a machine whose 2 vCPUs share
# one physical core still gets 2; TEST_WORKERS=N sets another count, 0 runs in this process).
# --dist loadfile gives each test file whole to one worker, so a module fixture (a compiled
# project, a tracker and its servers) is built once; with --no-loadscope-reorder the files go
# out in the order tests/conftest.py gives them, longest first. The options are here, not in
# setup.cfg's addopts, so `pytest tests/test_x.py` alone runs in one process; options passed
# to this script come after them and win (e.g. -n 0).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-logical}" --dist loadfile \
    --no-loadscope-reorder "$@"

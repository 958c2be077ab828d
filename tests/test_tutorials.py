"""Every tutorial runs top to bottom, as a user would run it, and reaches its conclusion.

Each script in ``tutorials/`` runs in a fresh interpreter (this test's Python, so the same
environment), with its working directory in pytest's temporary directory. A tutorial must
exit with status 0 and print the line that states its result, listed in ``VERDICTS``; a new
tutorial without an entry there fails, so that every tutorial says what it checks.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"

#: Tutorial file name -> text its output must contain.
VERDICTS = {
    "port_keyword_spotting.py": "verdict: MATCH on 4 of 4 inputs",
    "run_under_power_failures.py": "verdict: outputs under power failures equal the "
                                   "uninterrupted run",
    "predict_before_running.py": "verdict: the prediction is within 5% of QEMU under "
                                 "inas-1mF",
    "tune_for_two_boards.py": "verdict: the log tuned on qemu-an386 runs on apollo4-mram with "
                              "the reference outputs, nothing measured there",
}


#: Seconds before a tutorial counts as hung (they take about ten seconds with a warm zoo
#: cache; the first run also downloads the 34 MB zoo wheel).
TIMEOUT_S = 600


def _tutorials():
    return sorted(p.name for p in TUTORIALS.glob("*.py"))


def test_there_are_tutorials():
    assert _tutorials(), f"no tutorials found in {TUTORIALS}"


@pytest.mark.qemu
@pytest.mark.zoo
@pytest.mark.parametrize("name", _tutorials())
def test_tutorial_runs(name, tmp_path):
    assert name in VERDICTS, f"add the line that {name} must print to VERDICTS"
    env = dict(os.environ, TVM_INTERMITTENT_TUTORIAL_DIR=str(tmp_path / "work"))
    result = subprocess.run(
        [sys.executable, str(TUTORIALS / name)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=TIMEOUT_S, check=False,
    )
    log = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{name} exited with status {result.returncode}\n{log}"
    assert VERDICTS[name] in result.stdout, log

"""The order of test files: measured seconds per file, and the longest handed out first.

``scripts/test_durations.py`` sums a JUnit XML's test cases per file; ``tests/conftest.py``
sorts the collected tests by those figures, whole files at a time, so that pytest-xdist
(``--dist loadfile --no-loadscope-reorder``) starts the longest files first.
"""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import conftest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "test_durations_script", ROOT / "scripts" / "test_durations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_cache" name="test_a" time="1.25" />
<testcase classname="tests.test_cache" name="test_b[x]" time="2.5" />
<testcase classname="tests.test_zoo" name="test_c" time="7.0"><skipped /></testcase>
<testcase classname="elsewhere.test_d" name="test_d" time="100" />
</testsuite></testsuites>
"""


def test_seconds_are_summed_per_file_and_written_longest_first(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    output = tmp_path / "durations.json"
    assert _script().main([str(junit), "--output", str(output)]) == 0
    written = json.loads(output.read_text())
    # A file that is not in this repository (elsewhere/test_d.py) is left out.
    assert written == {"tests/test_zoo.py": 7.0, "tests/test_cache.py": 3.8}
    assert list(written) == ["tests/test_zoo.py", "tests/test_cache.py"]
    assert not list(tmp_path.glob("*.part"))


def test_unreadable_xml_exits_2_and_writes_nothing(tmp_path, capsys):
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuites")
    output = tmp_path / "durations.json"
    assert _script().main([str(junit), "--output", str(output)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not output.exists()


def test_files_run_longest_first_and_keep_their_order_inside(monkeypatch, tmp_path):
    seconds = {"tests/test_a.py": 5.0, "tests/test_b.py": 50.0}
    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps(seconds))
    monkeypatch.setattr(conftest, "DURATIONS", durations)
    names = ["test_a.py::one", "test_b.py::one", "test_new.py::one", "test_a.py::two",
             "test_b.py::two"]
    items = [types.SimpleNamespace(path=ROOT / "tests" / n.split("::")[0], name=n)
             for n in names]
    conftest._longest_files_first(  # pylint: disable=protected-access
        types.SimpleNamespace(rootpath=ROOT), items)
    # A file not measured yet goes first (it may be long), then by seconds, longest first.
    assert [i.name for i in items] == ["test_new.py::one", "test_b.py::one", "test_b.py::two",
                                       "test_a.py::one", "test_a.py::two"]


def test_each_workers_seconds_come_from_its_lines_of_the_verbose_log(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    log = tmp_path / "run.log"
    log.write_text("created: 2/2 workers\n"
                   "[gw1] [ 25%] PASSED tests/test_zoo.py::test_c \n"
                   "[gw0] [ 50%] PASSED tests/test_cache.py::test_a \n"
                   "[gw0] [100%] FAILED tests/test_cache.py::test_b[x] \n")
    assert _script().worker_seconds(junit, log) == {"gw0": 3.75, "gw1": 7.0}

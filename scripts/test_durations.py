#!/usr/bin/env python3
"""Write ``tests/durations.json``, the measured seconds of each test file, from a JUnit XML.

``scripts/test.sh`` runs the suite on every core with ``--dist loadfile``: each test file
goes whole to one worker (so its module fixtures are built once), and ``tests/conftest.py``
hands the files out longest first, which keeps one worker from starting a long file while
the other runs out of work. This script measures what "longest" is::

    ./scripts/test.sh -q --junitxml=/tmp/junit.xml
    .venv/bin/python scripts/test_durations.py /tmp/junit.xml

A test case's time in pytest's XML is its setup, call and teardown, so a module fixture
counts towards the file that builds it. The figures only order the files: a stale or missing
entry makes the run slower, never wrong. With ``--workers LOG``, the output of the same run
with ``-v`` (``./scripts/test.sh -v --junitxml=/tmp/junit.xml > LOG``), it also prints the
seconds of tests each worker ran, which shows how evenly the files were shared out.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "tests" / "durations.json"


def _test_file(classname: str) -> str | None:
    """``tests.test_x`` (or ``tests.test_x.TestClass``) -> ``tests/test_x.py``."""
    parts = classname.split(".")
    while parts:
        candidate = "/".join(parts) + ".py"
        if (ROOT / candidate).is_file():
            return candidate
        parts.pop()
    return None


def file_seconds(junit_xml: Path) -> dict[str, float]:
    """Seconds per test file, summed over its test cases."""
    seconds: dict[str, float] = collections.defaultdict(float)
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = _test_file(case.get("classname", ""))
        if name is not None:
            seconds[name] += float(case.get("time", 0))
    return dict(seconds)


def _case_seconds(junit_xml: Path) -> dict[str, float]:
    """Seconds per test id (``tests/test_x.py::name``)."""
    seconds = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = _test_file(case.get("classname", ""))
        if name is not None:
            seconds[f"{name}::{case.get('name')}"] = float(case.get("time", 0))
    return seconds


def worker_seconds(junit_xml: Path, verbose_log: Path) -> dict[str, float]:
    """Seconds of tests per xdist worker, from the ``[gwN] ... PASSED tests/x.py::name``
    lines of a ``-v`` run and the times of the same run's XML."""
    seconds = _case_seconds(junit_xml)
    line = re.compile(r"^\[(gw\d+)\] \[\s*\d+%\] \w+ (\S+)")
    busy: dict[str, float] = collections.defaultdict(float)
    for text in verbose_log.read_text(errors="replace").splitlines():
        match = line.match(text)
        if match:
            busy[match.group(1)] += seconds.get(match.group(2), 0.0)
    return dict(sorted(busy.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit_xml", type=Path, help="pytest --junitxml output of a full run")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help=f"where to write (default {OUTPUT.relative_to(ROOT)})")
    parser.add_argument("--workers", type=Path, metavar="LOG",
                        help="the -v output of the same run: print each worker's seconds")
    args = parser.parse_args(argv)
    try:
        seconds = file_seconds(args.junit_xml)
        busy = worker_seconds(args.junit_xml, args.workers) if args.workers else {}
    except (OSError, ET.ParseError) as err:
        print(f"error: cannot read {args.junit_xml} as JUnit XML: {err}", file=sys.stderr)
        return 2
    if not seconds:
        print(f"error: {args.junit_xml} has no test case of a file under {ROOT}",
              file=sys.stderr)
        return 2
    ordered = dict(sorted(((k, round(v, 1)) for k, v in seconds.items()),
                          key=lambda item: (-item[1], item[0])))
    staging = args.output.with_name(args.output.name + ".part")
    staging.write_text(json.dumps(ordered, indent=1) + "\n")
    staging.replace(args.output)
    print(f"{args.output}: {len(ordered)} files, {sum(ordered.values()):.0f} s")
    for worker, total in busy.items():
        print(f"{worker}: {total:.0f} s of tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())

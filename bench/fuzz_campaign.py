"""Bad input in volume: hundreds of malformed models and input files through the CLI.

Run:  .venv/bin/python bench/fuzz_campaign.py [--per-kind 3] [--json bench/results/fuzz.json]

Every case of ``tests/bad_inputs.py`` (mutated ``.onnx`` files from the operator-test
models, mutated ``.tflite`` files from the kernel-test models and keyword spotting, files
that are no model, and wrong ``run --input`` files for three projects) runs as a user would
run it: ``tvm-intermittent compile CASE -o OUT`` or ``tvm-intermittent run PROJECT --input
CASE --output OUT``, in a subprocess with a timeout, every other case with ``--json``.
An outcome is one of:

* ``refused``: exit status 2, ``error: <message>`` on stderr, no traceback, with ``--json``
  an ``{"error": ...}`` object on stdout, and nothing written (no output directory or
  file, no leftover staging files);
* ``compiled``: the mutation left a valid model (a flipped bit in a weight), exit status 0
  and a whole project;
* anything else is a failure: another exit status, a traceback, a signal (crash), a hang
  (timeout), a half-written output. The script lists each one and exits 1 if any.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import bad_inputs  # noqa: E402
import onnx_models  # noqa: E402
import tflite_models  # noqa: E402

CLI = [sys.executable, "-m", "tvm_intermittent.cli"]


def _environment() -> dict:
    env = dict(os.environ)
    package = str(Path(__file__).resolve().parents[1] / "python")
    env["PYTHONPATH"] = package + os.pathsep + env.get("PYTHONPATH", "")
    return env


def classify(proc, seconds: float, json_output: bool, written: list[str],
             expect_written: Path | None) -> tuple[str, str]:
    """The outcome of one case and its message (or what went wrong)."""
    if proc is None:
        return "hang", f"no exit within {seconds:.0f} s"
    stderr = proc.stderr
    if proc.returncode < 0:
        return "crash", f"killed by signal {-proc.returncode}"
    if "Traceback (most recent call last)" in stderr:
        return "traceback", stderr.strip().splitlines()[-1]
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("error: ")), None)
    message = (" ".join(line.strip() for line in lines[start:])[len("error: "):]
               if start is not None else None)
    if proc.returncode == 0:
        if expect_written is not None and not (expect_written / "model.json").is_file():
            return "half-written", "exit 0 without a whole project"
        return "compiled", ""
    if proc.returncode != 2:
        return "other-status", f"exit {proc.returncode}: {stderr.strip()[-200:]}"
    if not message:
        return "no-message", stderr.strip()[-200:]
    if written:
        return "half-written", f"left {written}"
    if json_output:
        try:
            error = json.loads(proc.stdout)["error"]
            assert error["exit_status"] == 2 and error["message"]
        except (ValueError, KeyError, TypeError, AssertionError):
            return "bad-json", proc.stdout[:200]
    return "refused", message


def run_case(command: list[str], folder: Path, json_output: bool, timeout: float,
             output: Path):
    """Run one CLI command in ``folder``; return (proc or None, seconds, files it left)."""
    before = set(os.listdir(folder))
    started = time.perf_counter()
    try:
        proc = subprocess.run(CLI + command + (["--json"] if json_output else []) + ["--quiet"],
                              cwd=folder, env=_environment(), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        proc = None
    seconds = time.perf_counter() - started
    left = sorted(set(os.listdir(folder)) - before - {output.name})
    if output.exists():
        left.append(output.name)
    return proc, seconds, left


def check_case(index: int, case, how, root: Path, timeout: float) -> dict:
    """Write one case, run its command in a folder of its own, and classify the outcome."""
    folder = root / f"case{index}"
    folder.mkdir()
    path = case.write(folder)
    json_output = index % 2 == 0
    if how == "compile":
        output = folder / "out"
        command = ["compile", path.name, "-o", output.name]
        expect = output
    else:
        output = folder / "y.npy"
        command = ["run", str(how[1]), "--host", "--input", path.name, "--output",
                   output.name]
        expect = None
    proc, seconds, left = run_case(command, folder, json_output, timeout, output)
    if proc is not None and proc.returncode == 0 and how == "compile":
        left = []  # a compiled case writes its project, as it should
    outcome, message = classify(proc, seconds, json_output, left, expect)
    return {"kind": case.kind, "case": case.name, "file": case.filename,
            "command": "compile" if how == "compile" else "run", "json": json_output,
            "outcome": outcome, "message": message, "seconds": round(seconds, 2)}


def _projects(root: Path) -> dict:
    """Three compiled projects for the input-file cases: a float ONNX CNN, an int8 TFLite
    convolution, and a two-input ONNX concatenation."""
    sources = {"cnn": ("cnn.onnx", onnx_models.small_cnn()[0].SerializeToString()),
               "int8conv": ("conv.tflite", tflite_models.conv2d()[0]),
               "concat": ("concat.onnx", onnx_models.concat()[0].SerializeToString())}
    projects = {}
    for name, (filename, data) in sources.items():
        path = root / filename
        path.write_bytes(data)
        out = root / f"project_{name}"
        subprocess.run(CLI + ["compile", str(path), "-o", str(out), "--quiet"], check=True,
                       env=_environment(), capture_output=True)
        projects[name] = (out, json.loads((out / "model.json").read_text())["inputs"])
    return projects


def _zoo_case():
    try:
        from tvm_intermittent import zoo  # pylint: disable=import-outside-toplevel

        return "kws", zoo.get("kws").path.read_bytes()
    except Exception as err:  # pylint: disable=broad-except
        print(f"keyword spotting not available ({err}); mutating the small models only",
              file=sys.stderr)
        return None


def all_cases(per_kind: int, seed: int, root: Path):
    """(case, command builder) pairs: model cases compile, input cases run a project."""
    onnx_data = onnx_models.small_cnn()[0].SerializeToString()
    tflite_data = tflite_models.conv2d()[0]
    cases = [(c, "compile") for c in bad_inputs.onnx_cases(seed, per_kind)]
    cases += [(c, "compile") for c in bad_inputs.tflite_cases(
        seed + 1, per_kind, bad_inputs.tflite_bases(_zoo_case()))]
    cases += [(c, "compile") for c in bad_inputs.file_cases(onnx_data, tflite_data)]
    for name, (project, specs) in _projects(root).items():
        cases += [(c, ("run", project)) for c in bad_inputs.input_cases(specs, name, seed)]
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=3,
                        help="mutations of each kind per base model (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--limit", type=int, help="run only the first N cases")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--json", help="also write every case's outcome to this JSON file")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="intm-fuzz-") as tmp:
        root = Path(tmp)
        cases = all_cases(args.per_kind, args.seed, root)[:args.limit]

        def one(item):
            index, (case, how) = item
            result = check_case(index, case, how, root, args.timeout)
            print(f"[{index + 1}/{len(cases)}] {result['outcome']:<10} {case.name}: "
                  f"{result['message'][:110]}", flush=True)
            return result

        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, enumerate(cases)))

    by_kind = collections.defaultdict(collections.Counter)
    for r in results:
        by_kind[(r["command"], r["kind"])][r["outcome"]] += 1
    outcomes = sorted({r["outcome"] for r in results})
    print(f"\n{len(results)} cases in {time.perf_counter() - started:.0f} s")
    print("| command | mutation | cases | " + " | ".join(outcomes) + " |")
    print("|---|---|---:|" + "---:|" * len(outcomes))
    for (command, kind), counts in sorted(by_kind.items()):
        print(f"| {command} | {kind} | {sum(counts.values())} | "
              + " | ".join(str(counts[o]) for o in outcomes) + " |")
    total = collections.Counter(r["outcome"] for r in results)
    print(f"| all | | {len(results)} | " + " | ".join(str(total[o]) for o in outcomes) + " |")
    print(f"slowest case: {max(r['seconds'] for r in results):.1f} s")
    failures = [r for r in results if r["outcome"] not in ("refused", "compiled")]
    for r in failures:
        print(f"FAILED {r['outcome']}: {r['file']} ({r['case']}): {r['message']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"cases": results, "totals": dict(total)},
                                              indent=1) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())

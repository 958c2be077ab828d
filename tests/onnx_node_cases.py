"""The ONNX backend node tests of the operators this compiler targets, and how to judge one.

The onnx wheel generates its node test cases (a one-operator model, inputs and the expected
outputs its case generator computed with numpy) with
``onnx.backend.test.loader.load_model_tests(kind="node")``. The expected outputs are an
independent reference; the tolerance is the one onnx's own backend test uses (``rtol`` and
``atol`` of each case, 1e-3 and 1e-7 for every case here) for float outputs, and exact
equality for integer and boolean outputs.

The shipped expected outputs are sometimes typed-in literals rounded to four decimals
(``test_averagepool_2d_ceil_last_window_starts_on_pad`` expects 0.1511 for 1.3595 / 9 =
0.151056): 2.9e-4 relative off the exact average, inside onnx's tolerance but outside the
project's own 1e-5. So each output is also compared with onnxruntime's on the same inputs at
the project's float bound (:data:`tvm_intermittent.check.FLOAT_RTOL`, relative to the
output's largest magnitude; integers exact) wherever onnxruntime runs the case: a case passes
when both references agree with it.

A case ends in one of four ways:

- ``pass``: compiled, ran, every output within tolerance.
- ``refused``: the compiler raised one of our errors (exit status 2 on the command line)
  with a message that names the operator and says what to do.
- ``wrong``: compiled and ran, and an output is out of tolerance of either reference.
  Never acceptable.
- ``error``: anything else (a crash, a refusal whose message names no operator or gives
  no remedy, an exception that is not ours). Never acceptable either.

Used by ``bench/onnx_node_tests.py`` (the whole subset) and
``tests/test_onnx_node_conformance.py`` (a sample, and the no-wrong-output check).
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import warnings
from pathlib import Path

import numpy as np

#: ONNX operator types this compiler targets (the float operators of the frontend's tests
#: and models, and the quantized forms ONNX files use). A case is in the subset when every
#: node of its model is one of these; the ``_expanded`` cases (the same operator written as
#: a function body of other operators) are left out.
OPERATORS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "ConvInteger",
    "Flatten", "Gemm", "GlobalAveragePool", "MatMul", "MatMulInteger", "MaxPool", "Mul",
    "Pad", "QLinearConv", "QLinearMatMul", "Relu", "Reshape", "Softmax",
})

#: What a refusal must say: the remedy for each kind of refusal, as a phrase its message
#: contains (lower case).
REMEDIES = ("make it an initializer", "initializer", "quantize", "use ", "export",
            "pass shape_dict", "choose", "remove", "replace")

_STATUSES = ("pass", "refused", "wrong", "error")


@dataclasses.dataclass
class Outcome:
    """How one case ended; ``detail`` is the refusal message, the error or the mismatch."""

    name: str
    operator: str
    status: str
    detail: str = ""
    max_abs_diff: float = 0.0
    #: Largest difference from onnxruntime's outputs (None: onnxruntime cannot run the case).
    max_abs_diff_onnxruntime: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@functools.lru_cache(maxsize=1)
def _all_node_cases() -> tuple:
    from onnx.backend.test.loader import load_model_tests  # pylint: disable=C0415

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(load_model_tests(kind="node"))


def operator_of(case) -> str:
    """The operator a case tests (its model's node types, joined if there are several)."""
    return "+".join(sorted({node.op_type for node in case.model.graph.node}))


def select_cases() -> dict:
    """The subset, by case name, in the loader's order."""
    chosen = {}
    for case in _all_node_cases():
        if "_expanded" in case.name or not case.data_sets:
            continue
        if {node.op_type for node in case.model.graph.node} <= OPERATORS:
            chosen[case.name] = case
    return chosen


def compare(ours, expected, rtol: float, atol: float) -> tuple[bool, float, str]:
    """onnx's backend-test judgement: allclose for floats, equality for the rest."""
    worst, notes = 0.0, []
    if len(ours) != len(expected):
        return False, float("inf"), f"{len(ours)} outputs, expected {len(expected)}"
    ok = True
    for i, (a, b) in enumerate(zip(ours, expected)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            ok = False
            notes.append(f"output {i} is {a.dtype}{list(a.shape)}, expected "
                         f"{b.dtype}{list(b.shape)}")
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        worst = max(worst, float(np.nanmax(diff)) if diff.size else 0.0)
        if np.issubdtype(b.dtype, np.floating):
            close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        else:
            close = a == b
        if not np.all(close):
            ok = False
            k = int(np.argmin(close.reshape(-1)))
            notes.append(f"output {i}: {int((~close).sum())} of {close.size} elements out of "
                         f"tolerance, e.g. [{k}] = {a.reshape(-1)[k]!r}, expected "
                         f"{b.reshape(-1)[k]!r}")
    return ok, worst, "; ".join(notes)


def onnxruntime_outputs(model, inputs):
    """onnxruntime's outputs (graph optimizations off), or None when it cannot run the case."""
    import onnxruntime as ort  # pylint: disable=import-outside-toplevel

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return session.run(None, dict(zip(names, inputs)))
    except Exception:  # pylint: disable=broad-except
        return None


def compare_onnxruntime(ours, reference) -> tuple[bool, float, str]:
    """The project's own bound against onnxruntime: floats to FLOAT_RTOL of the largest
    magnitude, integers exactly."""
    from tvm_intermittent.check import compare_outputs  # pylint: disable=C0415

    try:
        check = compare_outputs(ours, [np.asarray(r) for r in reference], max_lsb=0)
    except ValueError as err:
        return False, float("inf"), str(err)
    worst = max((o.max_abs_diff for o in check.outputs), default=0.0)
    return check.ok, worst, "" if check.ok else f"against onnxruntime: {check.summary()}"


def refusal_is_clear(message: str, operator: str) -> bool:
    """A refusal names the operator (or the tensor at fault) and says what to do."""
    text = message.lower()
    names_it = any(op.lower() in text for op in operator.split("+")) or "output" in text
    return names_it and any(remedy in text for remedy in REMEDIES)


def run_case(case, kind: str = "qemu", board: str = "qemu-an386") -> Outcome:
    """Compile one case, run it (``kind`` "qemu" or "host") on each data set, judge it."""
    import tvm_intermittent as ti  # pylint: disable=import-outside-toplevel
    from tvm_intermittent.errors import IntermittentError  # pylint: disable=C0415

    operator = operator_of(case)
    try:
        artifact = ti.build(case.model, target=f"intermittent/{board}", name=case.name)
    except IntermittentError as err:
        message = str(err)
        if err.exit_status != 2 or not refusal_is_clear(message, operator):
            return Outcome(case.name, operator, "error", f"unclear refusal: {message}")
        return Outcome(case.name, operator, "refused", message)
    except Exception as err:  # pylint: disable=broad-except
        return Outcome(case.name, operator, "error", f"{type(err).__name__}: {err}")
    worst, worst_ort = 0.0, None
    with tempfile.TemporaryDirectory(prefix="intm-node-") as tmp:
        try:
            project = artifact.export(Path(tmp) / "project")
        except Exception as err:  # pylint: disable=broad-except
            return Outcome(case.name, operator, "error", f"export: {err}")
        from tvm_intermittent import sim  # pylint: disable=import-outside-toplevel

        for inputs, expected in case.data_sets:
            try:
                result = sim.run(project, [np.asarray(x) for x in inputs], kind=kind)
            except Exception as err:  # pylint: disable=broad-except
                return Outcome(case.name, operator, "error", f"{type(err).__name__}: {err}")
            ok, diff, note = compare(result.outputs, expected, case.rtol, case.atol)
            worst = max(worst, diff)
            reference = onnxruntime_outputs(case.model, [np.asarray(x) for x in inputs])
            if reference is not None:
                ort_ok, ort_diff, ort_note = compare_onnxruntime(result.outputs, reference)
                worst_ort = max(worst_ort or 0.0, ort_diff)
                ok, note = ok and ort_ok, "; ".join(n for n in (note, ort_note) if n)
            if not ok:
                return Outcome(case.name, operator, "wrong", note, worst, worst_ort)
    return Outcome(case.name, operator, "pass", "", worst, worst_ort)


def counts(outcomes) -> dict:
    """Cases per status."""
    return {status: sum(o.status == status for o in outcomes) for status in _STATUSES}

"""ONNX's own backend node tests of the operators we target (see ``onnx_node_cases.py``).

A sample runs on QEMU: the average-pooling case whose last window starts on the padding,
a few cases of each operator, and one refusal of each kind, which must also exit 2 from the
command line with a message naming the operator and the remedy, and write nothing. Then the
whole subset runs on the host build, where no case may give a wrong output or fail in any
way other than a clear refusal. ``bench/onnx_node_tests.py`` runs the whole subset on QEMU.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import onnx_node_cases

CASES = onnx_node_cases.select_cases()

#: One refused case of each kind, and what its message must say.
REFUSALS = {
    "test_reshape_reordered_all_dims": r"operator Reshape.*'shape'.*make it an initializer",
    "test_edge_pad": r"operator Pad.*'pads'.*make it an initializer",
    "test_clip_default_inbounds": r"output 0 'y': operator Clip passes input 'x' through "
                                  r"unchanged.*remove that output",
    "test_qlinearconv": r"QLinearConv.*quantized-operator form.*QDQ",
    "test_convinteger_with_padding": r"ConvInteger.*QDQ",
    "test_qlinearmatmul_2D_int8_float32": r"QLinearMatMul.*QDQ",
    "test_maxpool_with_argmax_2d_precomputed_pads": r"operator MaxPool.*Indices.*remove it",
    "test_batchnorm_example_training_mode": r"BatchNormalization.*training_mode=1.*inference",
    "test_add_uint16": r"input 'x' has element type UINT16.*export the model with a supported input type",
}


#: Run on QEMU: the average-pooling case of the issue and one or two cases of every operator
#: that compiles (the others are all refusals, covered by REFUSALS); the host-build test
#: below runs every case.
SAMPLE = [
    "test_averagepool_2d_ceil_last_window_starts_on_pad", "test_add_bcast",
    "test_batchnorm_epsilon", "test_clip_splitbounds", "test_concat_3d_axis_negative_2",
    "test_conv_with_strides_and_asymmetric_padding", "test_flatten_negative_axis2",
    "test_gemm_all_attributes", "test_globalaveragepool_precomputed", "test_matmul_1d_1d",
    "test_matmulinteger", "test_maxpool_2d_ceil_output_size_reduce_by_one", "test_mul_int8",
    "test_relu", "test_softmax_large_number",
]


def test_the_subset_covers_the_targeted_operators():
    operators = {onnx_node_cases.operator_of(c) for c in CASES.values()}
    assert operators == set(onnx_node_cases.OPERATORS)
    assert len(CASES) >= 140
    assert set(REFUSALS) <= set(CASES) and set(SAMPLE) <= set(CASES)


def test_the_judge_fails_a_wrong_output():
    """The comparison can fail: an output one part in 100 off is wrong."""
    case = CASES["test_averagepool_2d_ceil_last_window_starts_on_pad"]
    (inputs, expected) = case.data_sets[0]
    ok, _, note = onnx_node_cases.compare([expected[0] * 1.01], expected, case.rtol, case.atol)
    assert not ok and "out of tolerance" in note
    reference = onnx_node_cases.onnxruntime_outputs(case.model, inputs)
    ok, _, _ = onnx_node_cases.compare_onnxruntime([reference[0] * (1 + 1e-4)], reference)
    assert not ok


@pytest.mark.qemu
@pytest.mark.parametrize("name", SAMPLE)
def test_sample_on_qemu(name):
    outcome = onnx_node_cases.run_case(CASES[name], kind="qemu")
    assert outcome.status == "pass", outcome.detail


@pytest.mark.qemu
def test_averagepool_last_window_on_the_pad_equals_onnxruntime_exactly():
    """The case's expected outputs are four-decimal literals (0.1511 for 1.3595 / 9); the
    firmware computes the exact average: equal to onnxruntime's to the last bit."""
    case = CASES["test_averagepool_2d_ceil_last_window_starts_on_pad"]
    outcome = onnx_node_cases.run_case(case, kind="qemu")
    assert outcome.status == "pass"
    assert outcome.max_abs_diff_onnxruntime == 0.0
    assert 4e-5 < outcome.max_abs_diff < 6e-5  # the literals' rounding, not ours


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal_names_the_operator_and_the_remedy(name):
    outcome = onnx_node_cases.run_case(CASES[name], kind="host")
    assert outcome.status == "refused", outcome.detail
    assert re.search(REFUSALS[name], outcome.detail, re.S), outcome.detail


def test_refusals_exit_2_from_the_command_line_and_write_nothing(tmp_path):
    for name in ("test_reshape_reordered_all_dims", "test_qlinearconv",
                 "test_clip_default_inbounds"):
        model = tmp_path / f"{name}.onnx"
        model.write_bytes(CASES[name].model.SerializeToString())
        out = tmp_path / f"{name}-project"
        proc = subprocess.run(
            [sys.executable, "-m", "tvm_intermittent.cli", "compile", str(model), "-o",
             str(out)], capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        assert re.search(REFUSALS[name], proc.stderr, re.S), proc.stderr
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")] == []


@pytest.mark.host_cc
def test_no_case_of_the_subset_is_wrong_on_the_host_build():
    outcomes = [onnx_node_cases.run_case(case, kind="host") for case in CASES.values()]
    counts = onnx_node_cases.counts(outcomes)
    bad = [(o.name, o.status, o.detail) for o in outcomes if o.status in ("wrong", "error")]
    assert not bad, bad
    assert counts["pass"] >= 110
    # Every passing case was also compared with onnxruntime.
    assert all(o.max_abs_diff_onnxruntime is not None for o in outcomes if o.status == "pass")
    assert np.isfinite([o.max_abs_diff for o in outcomes]).all()

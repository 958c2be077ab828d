"""The DSP depthwise, ADD, average pooling and float QUANTIZE kernels against TFLite Micro.

Each case is a one-operator TFLite model (``tflite_models.py``, seeded data) compiled for
the Cortex-M4 board and run on QEMU; the reference is the ``tflite-micro`` interpreter.
The depthwise cases cover the shape classes the kernel treats differently: stride 1 and 2,
padded (border split from the interior, zero point added back for padded taps) and
unpadded, output rows in vertical pairs (even and odd row counts, stride 1 and 2, padded
and not) or one at a time (one pair inside the image or fewer), a single interior row (no
split), a zero point of 0 (nothing to add back),
per-channel and per-tensor multipliers, multipliers that shift left (the general
requantization), and a fused activation's clamp; the ADD cases different, equal (the exact
1/2 multiplier) and far-apart scales and saturation; the pools a window of 256 values at
both extremes; QUANTIZE ties of both signs, values just below a half, and saturation.
The cases the kernels do not serve (channel multiplier 2, channels not in quads, broadcast
ADD, padded pools) check that they keep the portable kernels. The host build of the same C
must give the same bytes, and so must runs with power failures inside each kernel."""

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference, sim
from tvm_intermittent.sim import campaign

import tflite_models as tm

pytestmark = pytest.mark.qemu

DSP_MARK = "intm_smlabb("

DEPTHWISE = {
    "stride1_same": lambda: tm.conv2d(depthwise=True, cin=8, hw=(9, 7), seed=41),
    # Eight output rows in pairs, padded below only (SAME, stride 2 over 16 rows).
    "stride2_same": lambda: tm.conv2d(depthwise=True, cin=12, hw=(16, 9), stride=(2, 2),
                                      seed=42),
    "stride2_valid": lambda: tm.conv2d(depthwise=True, cin=16, hw=(8, 7), stride=(2, 2),
                                       padding=tm.VALID, seed=43),
    "valid_relu6": lambda: tm.conv2d(depthwise=True, cin=8, hw=(6, 6), padding=tm.VALID,
                                     activation=tm.RELU6, out_scale=0.02, seed=44),
    "one_interior_row": lambda: tm.conv2d(depthwise=True, cin=8, hw=(3, 3), seed=45),
    "zero_point_0_dilated": lambda: tm.conv2d(depthwise=True, cin=8, hw=(9, 9), in_zp=0,
                                              dilation=(2, 2), seed=46),
    "zero_point_min_relu": lambda: tm.conv2d(depthwise=True, cin=4, hw=(5, 6), in_zp=-128,
                                             out_zp=-128, activation=tm.RELU, seed=47),
    # Padded left and right only, seven rows: the last pair's second row does not exist.
    "one_by_three_odd_rows": lambda: tm.conv2d(depthwise=True, cin=8, hw=(7, 6),
                                               kernel=(1, 3), seed=57),
    # Rows 1 to 4 of 6 inside the image: pairs (1, 2) and (3, 4), rows 0 and 5 alone.
    "per_tensor": lambda: tm.conv2d(depthwise=True, cin=8, hw=(6, 6), w_scales=[0.01] * 8,
                                    seed=48),
    "left_shifts": lambda: tm.conv2d(depthwise=True, cin=8, out_scale=0.05, seed=49,
                                     w_scales=[1e-12, 1e-7, 0.01, 0.5, 3.0, 80.0, 0.02, 1.0]),
}
#: The cases whose output rows go in vertical pairs: two rows or more and, when padded,
#: at least two pairs and two columns of windows inside the image. An odd row count
#: (stride1_same, stride2_valid, zero_point_0_dilated, one_by_three_odd_rows) computes or
#: stores its last row alone; per_tensor pairs rows from row 1 (two pairs inside where pairs from row 0 have
#: one); one_interior_row (no pair inside) and zero_point_min_relu (one) keep one row at a
#: time.
PAIRED = {"stride1_same", "stride2_same", "stride2_valid", "valid_relu6",
          "zero_point_0_dilated", "per_tensor", "left_shifts", "one_by_three_odd_rows"}
PAIR_MARK = "int32_t out_pair"
#: Served by the portable kernel of integer_kernels.py (and still bit-exact).
PORTABLE = {
    "multiplier2": lambda: tm.conv2d(depthwise=True, cin=4, multiplier=2, stride=(2, 2),
                                     seed=50),
    "channels_not_quads": lambda: tm.conv2d(depthwise=True, cin=6, seed=51),
}


SHAPE = (1, 6, 7, 8)
ADD = {
    "different_scales": lambda: tm.add(lhs_shape=SHAPE, rhs_shape=SHAPE, lhs=(0.05, -7),
                                       rhs=(0.2, 12), out=(0.1, -3), seed=60),
    # Equal scales: both real multipliers are exactly 1/2, the kernel's shortcut.
    "equal_scales_relu": lambda: tm.add(lhs_shape=SHAPE, rhs_shape=SHAPE, lhs=(0.1, 5),
                                        rhs=(0.1, -20), out=(0.15, -128),
                                        activation=tm.RELU, seed=61),
    # Scales 400x apart: the smaller input's multiplier shifts right by 9.
    "scales_far_apart": lambda: tm.add(lhs_shape=SHAPE, rhs_shape=SHAPE, lhs=(1e-3, -128),
                                       rhs=(0.4, 100), out=(0.2, -10), seed=65),
    "saturating": lambda: tm.add(lhs_shape=SHAPE, rhs_shape=SHAPE, lhs=(0.02, 0),
                                 rhs=(0.03, 3), out=(0.004, 0), seed=62),
}
#: Kept on the TE definition (integer_ops.add): broadcasting, an output multiplier >= 1/2.
ADD_TE = {
    "broadcast": lambda: tm.add(seed=63),
    # Output multiplier 0.4 / (2**20 * 5.1e-7), about 0.75: no right shift (TFLM refuses
    # multipliers of 1 and more).
    "output_multiplier_above_half": lambda: tm.add(lhs_shape=SHAPE, rhs_shape=SHAPE,
                                                   lhs=(0.05, -7), rhs=(0.2, 12),
                                                   out=(5.1e-7, 0), seed=64),
}
ADD_MARK = "intm_ssat8_asr1("

AVG = "AVERAGE_POOL_2D"
POOL = {
    "valid_3x3_stride2": lambda: tm.pool(AVG, hw=(9, 9), channels=8, padding=tm.VALID,
                                         seed=70),
    "valid_relu": lambda: tm.pool(AVG, hw=(6, 8), channels=12, size=(2, 2),
                                  padding=tm.VALID, activation=tm.RELU, seed=71),
    # 256 values per window, the most a 16-bit half sums; all at the extremes below.
    "global_256": lambda: tm.pool(AVG, hw=(16, 16), channels=8, size=(16, 16), stride=(1, 1),
                                  padding=tm.VALID, seed=72),
}
#: Kept on the TE definition: padded (window sizes vary), windows over 256 values.
POOL_TE = {
    "same_padded": lambda: tm.pool(AVG, channels=8, seed=73),
    "global_272": lambda: tm.pool(AVG, hw=(17, 16), channels=8, size=(17, 16), stride=(1, 1),
                                  padding=tm.VALID, seed=74),
}
POOL_MARK = "intm_sxtab16("


def _build(tmp_path, model, target="intermittent/qemu-an386", **kwargs):
    path = tmp_path / "op.tflite"
    path.write_bytes(model)
    return path, ti.build(path, target, name="op", **kwargs)


def _tflm(path, inputs):
    return reference.run_tflite_micro(path, inputs)


def _assert_equal(got, want):
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.fixture(scope="module")
def depthwise_build(tmp_path_factory):
    """``case -> (path, artifact, inputs, QEMU run)`` of :data:`DEPTHWISE`, built and run
    once for the checks that share them."""
    built = {}

    def get(case):
        if case not in built:
            model, inputs = DEPTHWISE[case]()
            path, artifact = _build(tmp_path_factory.mktemp(case), model)
            built[case] = (path, artifact, inputs, artifact.run(inputs))
        return built[case]
    return get


@pytest.mark.parametrize("case", sorted(DEPTHWISE))
def test_dsp_depthwise_equals_tflite_micro(depthwise_build, case):
    path, artifact, inputs, run = depthwise_build(case)
    kernels = artifact.sources.files["model/kernels.c"]
    assert DSP_MARK in kernels, "the DSP depthwise kernel was not chosen"
    assert (PAIR_MARK in kernels) == (case in PAIRED), "rows paired where they should not be"
    # Every multiplier of the fast output stage is TFLM's, in [2**30, 2**31): one SMMLAR.
    assert ("intm_high_mul_2m(" in kernels) == (case != "left_shifts")
    assert "float" not in kernels and "double" not in kernels
    _assert_equal(run.outputs, _tflm(path, inputs))
    assert len(np.unique(run.outputs[0])) > 8, "a nearly constant output would test little"


def test_rows_go_in_pairs_where_two_pairs_lie_inside_the_image():
    """The pairing rule, shape by shape, and the reason the compiler logs when it keeps
    one row at a time."""
    from tvm_intermittent.transform.depthwise_kernels import _pair_phase, _why_not_pairs

    # kws: 25 rows, 3x3, padded by one: pairs (2, 3) .. (22, 23) inside, 11 either way.
    assert _pair_phase(25, 1, 1, 2, 25) == (0, 11)
    assert _why_not_pairs(25, 1, 1, 2, 25, 3, True, True) is None
    # vww's 6x6 layers: rows 1 to 4 inside, pairs (1, 2) and (3, 4) from row 1, one from 0.
    assert _pair_phase(6, 1, 1, 2, 6) == (1, 2)
    assert _why_not_pairs(6, 1, 1, 2, 6, 4, True, True) is None
    # Five rows, rows 1 to 3 inside: one pair whichever the phase.
    assert _pair_phase(5, 1, 1, 2, 5)[1] == 1
    assert "1 pair(s)" in _why_not_pairs(5, 1, 1, 2, 5, 4, True, True)
    assert "1 column(s)" in _why_not_pairs(25, 1, 1, 2, 25, 1, True, True)
    assert _why_not_pairs(3, 2, 0, 2, 8, 1, False, True) is None  # unpadded: any two rows
    assert _why_not_pairs(1, 1, 0, 2, 3, 1, False, True) == "one output row"
    assert "taps" in _why_not_pairs(25, 1, 1, 2, 25, 3, True, False)


@pytest.mark.parametrize("case", sorted(PORTABLE))
def test_other_depthwise_keep_the_portable_kernel(tmp_path, case):
    model, inputs = PORTABLE[case]()
    path, artifact = _build(tmp_path, model)
    assert DSP_MARK not in artifact.sources.files["model/kernels.c"]
    _assert_equal(artifact.run(inputs).outputs, _tflm(path, inputs))


def test_dsp_depthwise_is_faster_than_the_portable_kernel(tmp_path, monkeypatch,
                                                         depthwise_build):
    """The same layer with the DSP kernel and, with the board's DSP extension hidden from
    the kernel choice, the portable one: the same bytes in fewer instructions."""
    from tvm_intermittent.transform import depthwise_kernels

    path, _, inputs, fast = depthwise_build("stride1_same")
    monkeypatch.setattr(depthwise_kernels, "_dsp_available", lambda: False)
    _, portable = _build(tmp_path, path.read_bytes())
    assert DSP_MARK not in portable.sources.files["model/kernels.c"]
    slow = portable.run(inputs)
    _assert_equal(slow.outputs, fast.outputs)
    assert fast.instructions_total < 0.85 * slow.instructions_total


@pytest.mark.host_cc
def test_host_build_of_the_depthwise_kernel_computes_the_same_bytes(tmp_path,
                                                                    depthwise_build):
    """Rows in pairs inside, one at a time at the border; the portable forms of SMMLAR,
    SXTB16 and SMLAxy give the bytes of the QEMU build, which are TFLM's."""
    path, artifact, inputs, qemu = depthwise_build("stride1_same")
    assert PAIR_MARK in artifact.sources.files["model/kernels.c"]
    project = artifact.export(tmp_path / "p")
    _assert_equal(sim.run(project, inputs, kind="host").outputs, qemu.outputs)
    _assert_equal(qemu.outputs, _tflm(path, inputs))


@pytest.mark.parametrize("case", sorted(ADD))
def test_folded_add_equals_tflite_micro(tmp_path, case):
    model, inputs = ADD[case]()
    path, artifact = _build(tmp_path, model)
    kernels = artifact.sources.files["model/kernels.c"]
    assert ADD_MARK in kernels and "float" not in kernels
    ours = artifact.run(inputs).outputs
    _assert_equal(ours, _tflm(path, inputs))
    assert len(np.unique(ours[0])) > 8
    if case == "saturating":
        assert ours[0].min() == -128 and ours[0].max() == 127


@pytest.mark.parametrize("case", sorted(ADD_TE))
def test_other_adds_keep_the_te_kernel(tmp_path, case):
    model, inputs = ADD_TE[case]()
    path, artifact = _build(tmp_path, model)
    assert ADD_MARK not in artifact.sources.files["model/kernels.c"]
    _assert_equal(artifact.run(inputs).outputs, _tflm(path, inputs))


@pytest.mark.parametrize("case", sorted(POOL))
def test_sxtab16_average_pool_equals_tflite_micro(tmp_path, case):
    model, inputs = POOL[case]()
    path, artifact = _build(tmp_path, model)
    kernels = artifact.sources.files["model/kernels.c"]
    assert POOL_MARK in kernels and "float" not in kernels
    _assert_equal(artifact.run(inputs).outputs, _tflm(path, inputs))
    if case == "global_256":  # the 16-bit sums at both ends: every value -128, then 127
        for value in (-128, 127):
            extreme = [np.full_like(inputs[0], value)]
            _assert_equal(artifact.run(extreme).outputs, _tflm(path, extreme))


@pytest.mark.parametrize("case", sorted(POOL_TE))
def test_other_average_pools_keep_the_te_kernel(tmp_path, case):
    model, inputs = POOL_TE[case]()
    path, artifact = _build(tmp_path, model)
    assert POOL_MARK not in artifact.sources.files["model/kernels.c"]
    _assert_equal(artifact.run(inputs).outputs, _tflm(path, inputs))


#: Quotients x / scale at halves (both signs), just below a half (where adding 0.5 in
#: float would round up), at zero, beyond int8 (saturation) and far beyond.
QUANTIZE_INPUTS = np.array(
    [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 1.4999999, -1.4999999,
     0.0, -0.0, 3.25, -3.75, 127.5, -128.5, 130.0, -140.0, 1e6, -1e6, 8388607.5, 16777216.0,
     200.49, -200.51], np.float32)


@pytest.mark.parametrize("scale,zero_point,shape", [
    (1.0, 0, (1, -1)), (0.5, -3, (1, -1)), (0.1, 10, (1, -1)),
    (1.0, 0, (1, 2, 4, 3))])  # an image's last axis of 3: unrolled
def test_quantize_rounds_and_saturates_as_tflite_micro(tmp_path, scale, zero_point, shape):
    x = (QUANTIZE_INPUTS * np.float32(scale)).reshape(shape)
    model, inputs = tm.quantize(x, scale=scale, zero_point=zero_point)
    path, artifact = _build(tmp_path, model)
    assert "intm_quantize_s8(" in artifact.sources.files["model/kernels.c"]
    ours = artifact.run(inputs).outputs
    want = _tflm(path, inputs)
    _assert_equal(ours, want)
    out = ours[0].reshape(-1)
    assert out.min() == -128 and out.max() == 127  # saturation was exercised
    if scale == 1.0:  # halves away from zero, and 0.49999997 stays 0
        assert out[:8].tolist() == [1, -1, 2, -2, 3, -3, 0, 0]


def test_quantize_to_uint8_as_numpy_rounds(tmp_path):
    """The uint8 form (USAT), which TFLite Micro does not run (its QUANTIZE of float
    input has no uint8 output): against numpy, the float32 quotient rounded half away
    from zero in float64 (exact), plus the zero point, clamped."""
    scale, zero_point = np.float32(0.5), 120
    x = (QUANTIZE_INPUTS * scale).reshape(1, -1)
    tensors = [tm.T(x.shape, "float32"), tm.T(x.shape, "uint8", scale=float(scale),
                                                zero_point=zero_point)]
    model = tm.build(tensors, [tm.Op("QUANTIZE", [0], [1])], [0], [1])
    _, artifact = _build(tmp_path, model)
    assert "intm_quantize_u8(" in artifact.sources.files["model/kernels.c"]
    quotient = (x / scale).astype(np.float64)
    rounded = np.sign(quotient) * np.floor(np.abs(quotient) + 0.5)
    want = np.clip(rounded + zero_point, 0, 255).astype(np.uint8)
    ours = artifact.run([x]).outputs[0]
    np.testing.assert_array_equal(ours, want)
    assert ours.min() == 0 and ours.max() == 255
    assert ours.reshape(-1)[:6].tolist() == [121, 119, 122, 118, 123, 117]  # +-0.5, 1.5, 2.5


HOST_CASES = {  # the depthwise kernel's: test_host_build_of_the_depthwise_kernel_...
    "quantize": lambda: tm.quantize((QUANTIZE_INPUTS * np.float32(0.5)).reshape(1, -1),
                                    scale=0.5, zero_point=-3),
    "add": ADD["different_scales"],
    "average_pool": POOL["valid_3x3_stride2"],
}


@pytest.mark.parametrize("case", sorted(HOST_CASES))
def test_host_build_computes_the_same_bytes(tmp_path, case):
    """The portable forms of the helpers (the host has neither the DSP extension nor the
    M4's FPU conversions) give what the QEMU build gives, and TFLM."""
    model, inputs = HOST_CASES[case]()
    path, artifact = _build(tmp_path, model)
    project = artifact.export(tmp_path / "p")
    qemu = sim.run(project, inputs, kind="qemu").outputs
    _assert_equal(sim.run(project, inputs, kind="host").outputs, qemu)
    _assert_equal(qemu, _tflm(path, inputs))


def _tflm_high_mul(x: int, m: int) -> int:
    """TFLM's SaturatingRoundingDoublingHighMul as its C is written: a nudge toward zero
    for negative products, then C's division, which truncates."""
    if x == m == -(1 << 31):
        return (1 << 31) - 1
    product = x * m
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    total = product + nudge
    quotient = abs(total) // (1 << 31)
    return quotient if total >= 0 else -quotient


@pytest.mark.host_cc
def test_high_multiply_by_twice_m_is_tflms_for_every_int32(tmp_path):
    """intm_high_mul_2m's portable form (the host build's) at the ends of int32 and of
    TFLM's multiplier range, against TFLM's definition evaluated in Python integers."""
    import subprocess
    from importlib import resources

    rng = np.random.default_rng(58)
    xs = [-(1 << 31), -(1 << 31) + 1, -(1 << 30) - 1, -(1 << 30), -1, 0, 1, 1 << 30,
          (1 << 31) - 1] + rng.integers(-(1 << 31), 1 << 31, 40).tolist()
    ms = [1 << 30, (1 << 30) + 1, (1 << 31) - 1] + rng.integers(1 << 30, 1 << 31, 6).tolist()
    pairs = [(x, m) for x in xs for m in ms]
    rows = ",\n".join(f"{{{x}LL, {2 * m - (1 << 32)}LL}}" for x, m in pairs)
    (tmp_path / "t.c").write_text(f"""#include <stdio.h>
#include "intm_kernel_ops_dw.h"
static const long long cases[][2] = {{{rows}}};
int main(void) {{
  for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; ++i)
    printf("%ld\\n", (long)intm_high_mul_2m((int32_t)cases[i][0], (int32_t)cases[i][1]));
  return 0;
}}
""")
    runtime = resources.files("tvm_intermittent").joinpath("runtime")
    with resources.as_file(runtime) as rt:
        subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Werror", f"-I{rt}", "t.c", "-o",
                        "t"], cwd=tmp_path, check=True)
    got = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True,
                         check=True).stdout.split()
    assert [int(v) for v in got] == [_tflm_high_mul(x, m) for x, m in pairs]


#: ``(model, kernel name, marker in kernels.c)`` per kernel, for the power-failure test.
FAILURE_CASES = {
    "depthwise": (lambda: tm.conv2d(depthwise=True, cin=16, hw=(12, 10), seed=54),
                  "depthwise", DSP_MARK),
    "add": (lambda: tm.add(lhs_shape=(1, 8, 10, 8), rhs_shape=(1, 8, 10, 8), seed=55),
            "add", ADD_MARK),
    "average_pool": (lambda: tm.pool(AVG, hw=(16, 16), channels=16, size=(4, 4),
                                     stride=(2, 2), padding=tm.VALID, seed=56),
                     "avg_pool", POOL_MARK),
    "quantize": (lambda: tm.quantize(np.linspace(-70, 70, 960, dtype=np.float32)
                                     .reshape(1, 16, 20, 3), scale=0.5, zero_point=-3),
                 "quantize", "intm_quantize_s8("),
}


@pytest.mark.parametrize("case", sorted(FAILURE_CASES))
def test_kernels_under_power_failures(tmp_path, case):
    """Built for a 3 uF capacitor on msp430fr5994 (a Cortex-M4 profile with the DSP
    extension): one failure at points spread over the kernel's first and last tile batches
    (kernel code and commit stores), then seeded random failures over the whole
    inference; every run ends with TFLM's bytes and keeps its committed progress."""
    make, kernel, mark = FAILURE_CASES[case]
    model, inputs = make()
    path, artifact = _build(tmp_path, model, "intermittent/msp430fr5994", capacitor_f=3e-6)
    assert mark in artifact.sources.files["model/kernels.c"]
    project = artifact.export(tmp_path / "p")
    continuous = sim.run(project, inputs)
    reference_out = _tflm(path, inputs)
    _assert_equal(continuous.outputs, reference_out)
    windows = campaign.phase_windows(continuous, campaign.task_table(artifact.manifest()))
    batches = [w for w in windows if w.phase == "batch" and kernel in w.kernel]
    assert batches, f"no tile batch of {kernel}"
    baseline = campaign.Baseline(continuous, reference_out, artifact.power_cycle_budget)

    def spread(window):
        return sorted(set(np.linspace(window.start, window.stop - 1, 8).astype(int).tolist()))

    swept = campaign.exhaustive_campaign(project, inputs, reference_out, batches,
                                         baseline=baseline, points=spread)
    assert swept.ok, swept.to_dict()
    assert swept.failures == swept.runs >= 6 * len(batches)
    for window, row in zip(batches, swept.details["by_window"]):
        points = {k for start, stop in row["swept"] for k in range(start, stop)}
        assert points and all(window.start <= k < window.stop for k in points)

    floor = campaign.progress_floor(windows)
    longest = min(artifact.power_cycle_budget, continuous.instructions_total - 1)
    random = campaign.random_campaign(project, inputs, reference_out, min_instructions=floor,
                                      max_instructions=max(floor, longest), min_failures=12,
                                      baseline=baseline)
    assert random.ok, random.to_dict()
    assert random.failures >= 12
    assert all(f >= 1 for f in random.details["failures_per_run"])

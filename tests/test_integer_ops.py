"""Each integer operator on QEMU against TFLite Micro running the same one-operator model.

The models are written with the ``tflite`` flatbuffer package (``tflite_models.py``) with
seeded data; the reference is the ``tflite-micro`` interpreter, so agreement means our
kernels compute what TFLM computes, byte for byte. Edge cases: saturation at both ends,
negative zero points, per-channel multipliers from tiny (shift below -31, multiplier 0) to
large (left shifts), rounding ties, softmax rows that are flat or one-hot.
"""

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference

import tflite_models as tm

pytestmark = pytest.mark.qemu


def _compare(tmp_path, made, integer_only=True):
    """Compile and run the model; assert every output equals TFLM's; return ours."""
    model, inputs = made
    path = tmp_path / "op.tflite"
    path.write_bytes(model)
    artifact = ti.build(path, name="op")
    if integer_only:
        kernels = artifact.sources.files["model/kernels.c"]
        assert "float" not in kernels and "double" not in kernels, "a kernel stayed float"
    ours = artifact.run(inputs).outputs
    for got, want in zip(ours, reference.run_tflite_micro(path, inputs)):
        np.testing.assert_array_equal(got, want)
    return ours


def test_tflm_rounds_twice_and_so_do_we(tmp_path):
    """TFLM's requantization (the pip package is built without TFLITE_SINGLE_ROUNDING):
    a doubling high multiply rounding half up, then a right shift rounding half away from
    zero. With a real multiplier of 1/4 (multiplier 2**30, shift -1) the two roundings give
    0.25 -> 1 and -0.5 -> -1, where one rounding would give 0 and 0."""
    x = np.arange(-8, 9, dtype=np.int8).reshape(-1, 1)
    tensors = [tm.T((17, 1), scale=0.25), tm.T((1, 1), scale=1.0, data=np.ones((1, 1))),
               tm.T((1,), "int32", scale=0.25, data=np.zeros(1)), tm.T((17, 1), scale=1.0)]
    model = tm.build(tensors, [tm.Op("FULLY_CONNECTED", [0, 1, 2], [3],
                                     "FullyConnectedOptions", {})], [0], [3])
    high = (x.astype(np.int64) * (1 << 30) + (1 << 30)) >> 31  # half up
    double = np.where(high >= 0, (high + 1) >> 1, -((-high + 1) >> 1))  # half away from 0
    single = (x.astype(np.int64) * (1 << 30) + (1 << 31)) >> 32
    ours = _compare(tmp_path, (model, [x]))[0]
    np.testing.assert_array_equal(ours, double)
    assert (double != single).any()
    assert ours[9, 0] == 1 and ours[6, 0] == -1  # x = 1 and x = -2


CASES = {
    "conv2d_same_stride1": lambda: tm.conv2d(),
    "conv2d_valid_stride2": lambda: tm.conv2d(padding=tm.VALID, stride=(2, 2)),
    "conv2d_dilated_relu6": lambda: tm.conv2d(dilation=(2, 2), activation=tm.RELU6),
    "conv2d_relu_zero_points_min": lambda: tm.conv2d(activation=tm.RELU, in_zp=-128,
                                                     out_zp=-128),
    "conv2d_1x1_wide": lambda: tm.conv2d(kernel=(1, 1), cin=24, cout=16, padding=tm.VALID),
    "conv2d_10x4_one_channel": lambda: tm.conv2d(hw=(20, 10), cin=1, cout=8, kernel=(10, 4),
                                                 stride=(2, 2)),
    # Input channels in quads: SMLAD taps on DSP boards (padded, strided, dilated; the
    # border's taps undone from the per-tap table, or with a zero point of 0 not at all).
    "conv2d_quads_same": lambda: tm.conv2d(hw=(8, 8), cin=16, cout=16, seed=31),
    "conv2d_quads_same_stride2": lambda: tm.conv2d(hw=(9, 8), cin=8, cout=12,
                                                   stride=(2, 2), seed=32),
    "conv2d_quads_1x1_stride2": lambda: tm.conv2d(hw=(9, 7), cin=16, cout=8, kernel=(1, 1),
                                                  stride=(2, 2), padding=tm.VALID, seed=36),
    "conv2d_quads_valid_odd_pixels": lambda: tm.conv2d(hw=(7, 5), cin=8, cout=6,
                                                       padding=tm.VALID, seed=37),
    "conv2d_quads_zero_point_0": lambda: tm.conv2d(cin=4, cout=4, in_zp=0, seed=33),
    "conv2d_quads_dilated_zp_min": lambda: tm.conv2d(cin=12, cout=8, dilation=(2, 2),
                                                     in_zp=-128, activation=tm.RELU, seed=34),
    "depthwise": lambda: tm.conv2d(depthwise=True),
    "depthwise_multiplier2_stride2": lambda: tm.conv2d(depthwise=True, multiplier=2,
                                                       stride=(2, 2)),
    "fully_connected": lambda: tm.fully_connected(),
    "fully_connected_no_bias_relu": lambda: tm.fully_connected(bias=False,
                                                               activation=tm.RELU),
    "fully_connected_one_row_deep": lambda: tm.fully_connected(batch=1, depth=128, units=12),
    "fully_connected_rows_pairs": lambda: tm.fully_connected(batch=3, depth=32, units=6,
                                                             in_zp=-128),
    "fully_connected_depth_not_quads": lambda: tm.fully_connected(depth=10, units=8),
    "average_pool_same": lambda: tm.pool("AVERAGE_POOL_2D"),
    "average_pool_valid_relu": lambda: tm.pool("AVERAGE_POOL_2D", padding=tm.VALID,
                                               activation=tm.RELU),
    "max_pool_relu": lambda: tm.pool("MAX_POOL_2D", activation=tm.RELU),
    "add_broadcast": lambda: tm.add(),
    "add_relu": lambda: tm.add(activation=tm.RELU, rhs_shape=(1, 5, 6, 4)),
    "mul_broadcast_relu": lambda: tm.mul(activation=tm.RELU),
    "mean_spatial": lambda: tm.mean(),
    "mean_channels": lambda: tm.mean(axes=(3,), keep_dims=False),
    "pad": lambda: tm.pad(),
    "reshape": lambda: tm.reshape(),
    "concatenation": lambda: tm.concatenation(),
    "softmax": lambda: tm.softmax(),
    "softmax_fine_input_scale": lambda: tm.softmax(in_q=(0.01, -3)),
    "softmax_coarse_input_scale": lambda: tm.softmax(in_q=(1.0, 0)),
    "logistic": lambda: tm.logistic(),
    "logistic_wide_zero_point": lambda: tm.logistic(in_q=(0.2, -100)),
    "requantize": lambda: tm.requantize(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_equals_tflite_micro(tmp_path, case):
    out = _compare(tmp_path, CASES[case]())[0]
    assert len(np.unique(out)) > 1, "a constant output would test nothing"


def test_quantize_rounds_ties_away_from_zero(tmp_path):
    """The float input boundary: x / scale with halves away from zero, as TFLM."""
    x = np.array([0.25, -0.25, 0.75, -0.75, 1.25, -1.25, 0.1, 100.0, -100.0, 2.5],
                 np.float32).reshape(1, 10)
    out = _compare(tmp_path, tm.quantize(x, scale=0.5, zero_point=-3), integer_only=False)[0]
    assert out[0, 0] == -2 and out[0, 1] == -4  # 0.5 -> 1 and -0.5 -> -1, then -3
    assert out[0, 7] == 127 and out[0, 8] == -128


def test_dequantize_every_value(tmp_path):
    _compare(tmp_path, tm.dequantize(), integer_only=False)


EDGE_CASES = {
    # Per-channel multipliers from below 2**-31 (multiplier 0) to 80 (a left shift of 7).
    "conv2d_tiny_and_huge_multipliers": lambda: tm.conv2d(
        w_scales=[1e-12, 1e-7, 0.01, 0.5, 3.0, 80.0], seed=11),
    "depthwise_tiny_and_huge_multipliers": lambda: tm.conv2d(
        depthwise=True, cin=6, w_scales=[1e-12, 1e-7, 0.01, 0.5, 3.0, 80.0], seed=14),
    "conv2d_saturates_high": lambda: tm.conv2d(x_range=(127, 127), in_zp=-128, out_zp=-128,
                                               out_scale=0.01, seed=12),
    "conv2d_saturates_low": lambda: tm.conv2d(x_range=(-128, -128), in_zp=127, out_zp=127,
                                              out_scale=0.01, seed=13),
    "fully_connected_multiplier_above_one": lambda: tm.fully_connected(
        w_scale=2.0, out_scale=0.05, depth=8),
    "add_extreme_scales": lambda: tm.add(lhs=(1e-4, -128), rhs=(10.0, 127),
                                         out=(0.001, -128)),
    "requantize_up_1000x": lambda: tm.requantize(in_q=(1.0, -128), out_q=(0.001, 127)),
    "requantize_down": lambda: tm.requantize(in_q=(1e-5, 100), out_q=(10.0, -100)),
    "average_pool_negative_sums": lambda: tm.pool("AVERAGE_POOL_2D", zero_point=-128,
                                                  size=(2, 2), stride=(1, 1)),
    "mean_saturates": lambda: tm.mean(in_q=(0.5, -128), out_q=(0.001, 127)),
    "softmax_flat_and_one_hot": lambda: tm.softmax(x=np.array(
        [[0] * 10, [127] + [-128] * 9, list(range(-128, 127, 26))], np.int8)),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_case_equals_tflite_micro(tmp_path, case):
    out = _compare(tmp_path, EDGE_CASES[case]())[0]
    if "saturates" in case or "1000x" in case or "huge" in case:
        assert out.min() == -128 or out.max() == 127, "the case should reach the int8 limits"


@pytest.mark.parametrize("depth,dsp", [(40, True), (10, False)])
def test_dense_uses_smlad_where_features_come_in_quads_and_the_host_agrees(tmp_path, depth,
                                                                          dsp):
    """On a DSP board a fully connected layer whose features divide by 4 runs the SMLAD
    kernel (four features per input word); others the portable loop. The host build of the
    same C, through the portable helpers, gives TFLM's values too."""
    model, inputs = tm.fully_connected(batch=2, depth=depth, units=9, seed=21)
    path = tmp_path / "fc.tflite"
    path.write_bytes(model)
    artifact = ti.build(path, name="fc")
    kernels = artifact.sources.files["model/kernels.c"]
    assert ("intm_smlad(" in kernels) == dsp
    expected = reference.run_tflite_micro(path, inputs)[0]
    np.testing.assert_array_equal(artifact.run(inputs).outputs[0], expected)
    np.testing.assert_array_equal(artifact.run(inputs, kind="host").outputs[0], expected)


def test_padded_conv_uses_smlad_taps_and_the_host_agrees(tmp_path):
    """A 3x3 SAME convolution over 16 channels (ResNet-8's shape class) takes the SMLAD tap
    loop on a DSP board; TFLM's values on QEMU, and on the host through the portable C."""
    model, inputs = tm.conv2d(hw=(6, 5), cin=16, cout=8, in_zp=-9, seed=35)
    path = tmp_path / "conv.tflite"
    path.write_bytes(model)
    artifact = ti.build(path, name="conv")
    kernels = artifact.sources.files["model/kernels.c"]
    assert "intm_smlad(" in kernels and "float" not in kernels
    expected = reference.run_tflite_micro(path, inputs)[0]
    assert len(np.unique(expected)) > 1
    np.testing.assert_array_equal(artifact.run(inputs).outputs[0], expected)
    np.testing.assert_array_equal(artifact.run(inputs, kind="host").outputs[0], expected)

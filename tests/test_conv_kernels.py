"""The SMLAD convolution and fully connected kernels, one shape class at a time, against
TFLite Micro running the same one-operator model.

Each case is a TFLite model written with ``tflite_models.py`` (seeded data, nothing shared
with the compiler), compiled for the DSP board and run on QEMU, then built for the host
(the same C through the portable helpers of ``intm_kernel_ops.h``): both must give the
``tflite-micro`` interpreter's bytes. The unpadded convolutions on the 2x2 micro-kernel
(``transform/conv_blocks.py``) are covered with an odd pixel count, a stride, and odd and
even word counts, and the pixel pairs they fall back to; the convolutions over filter rows
(``transform/conv_rows.py``) where their code paths differ: pairs of windows inside the
image on the micro-kernel, rows above and below it (zero point folded or not), border
columns with segments of their own, and images so narrow that every column crosses an edge
(tap by tap); the fully
connected layers where theirs differ: units in eights (``transform/dense_dsp.py``), other
units, and a single block of outputs whose reduction the tiling splits. Under
power failures, each case runs with a tiny capacitor: seeded random failures, and one
failure at each key point of the kernel's first and last tile batch, all ending with the
uninterrupted outputs.
"""

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference, sim
from tvm_intermittent.sim import campaign

import tflite_models as tm

pytestmark = pytest.mark.qemu

#: 3 uF: a power cycle of about 24,000 instructions on the msp430fr5994 profile.
TINY_CAPACITOR = 3e-6

#: name -> (model factory, kernel marker expected in the generated C).
CASES = {
    # 1x1 stride 1 on the 2x2 micro-kernel (conv_blocks): three words per pixel (one alone,
    # then a turn of two), an odd pixel count (the last pixel paired with itself), six
    # output channels (three pairs, not a whole block of four).
    "pointwise": (lambda: tm.conv2d(hw=(5, 5), cin=12, cout=6, kernel=(1, 1),
                                    padding=tm.VALID, in_zp=-7, seed=51), "intm_mac_2x2_s8("),
    # ResNet-8's 1x1 stride 2: pairs whose second pixel starts a new row (the offset
    # between the two pixels is computed per pair).
    "pointwise_strided": (lambda: tm.conv2d(hw=(7, 6), cin=8, cout=4, kernel=(1, 1),
                                            stride=(2, 2), padding=tm.VALID, in_zp=3,
                                            seed=60), "intm_mac_2x2_s8("),
    # Output channels not in pairs: the pixel pairs of integer_kernels instead.
    "pointwise_odd_channels": (lambda: tm.conv2d(hw=(4, 3), cin=8, cout=5, kernel=(1, 1),
                                                 padding=tm.VALID, in_zp=-7, seed=61),
                               "intm_smlad("),
    # 3x3 SAME over 16 channels: rows of 48 bytes (twelve words), the pairs inside the
    # image on the micro-kernel, border columns 0 and 5 specialised.
    "3x3_padded": (lambda: tm.conv2d(hw=(7, 6), cin=16, cout=8, in_zp=-9, seed=52),
                   "intm_mac_2x2_s8("),
    # 3x3 stride 2 over 12 channels (rows of nine words: one alone, four turns of two),
    # input zero point 0 (no zero-point segments).
    "strided": (lambda: tm.conv2d(hw=(9, 8), cin=12, cout=8, stride=(2, 2), in_zp=0,
                                  activation=tm.RELU, seed=53), "intm_mac_2x2_s8("),
    # micro_speech's first layer: 10x8 over ONE channel, stride 2, 8 outputs.
    "single_channel_10x8": (lambda: tm.conv2d(hw=(21, 16), cin=1, cout=8, kernel=(10, 8),
                                              stride=(2, 2), in_zp=-128, seed=54),
                            "intm_smlad("),
    # A first layer over RGB: 3x3x3 rows of nine bytes (two words and a byte), an even
    # width: pairs inside the image in C (rows not of whole words: no micro-kernel).
    "three_channel": (lambda: tm.conv2d(hw=(8, 8), cin=3, cout=8, in_zp=5, seed=55),
                      "intm_smlad("),
    # Every output column crosses an edge (more than conv_rows.MAX_EDGE_COLUMNS): tap by
    # tap, in a loop (nine taps).
    "narrow_wide_kernel": (lambda: tm.conv2d(hw=(5, 7), cin=2, cout=4, kernel=(3, 9),
                                             in_zp=-3, seed=56), "intm_smlad("),
    # Several rows, units not in eights: four units per pass sharing the unpacked input.
    "dense_multi_row": (lambda: tm.fully_connected(batch=3, depth=64, units=12, in_zp=-11,
                                                   seed=57), "intm_smlad("),
    # Units in eights (dense_dsp): eight per pass over weights rearranged in loop order.
    "dense_eight_units": (lambda: tm.fully_connected(batch=1, depth=96, units=24, in_zp=9,
                                                     seed=58), "(in_quad * 32)"),
    # One block of outputs: one unit per tile with SMLAD, its reduction long enough to be
    # split into chunks across power cycles on the tiny capacitor.
    "dense_one_block": (lambda: tm.fully_connected(batch=1, depth=12000, units=2, in_zp=-2,
                                                   out_scale=8.0, seed=59), "in_quad"),
}


def _write(tmp_path, name):
    factory, marker = CASES[name]
    model, inputs = factory()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    return path, inputs, marker


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_equals_tflite_micro_on_qemu_and_host(tmp_path, name):
    path, inputs, marker = _write(tmp_path, name)
    artifact = ti.build(path, name="op")
    kernels = artifact.sources.files["model/kernels.c"]
    assert marker in kernels, "the DSP kernel was not chosen"
    assert "float" not in kernels and "double" not in kernels
    if name == "pointwise":
        # The micro-kernel's run is one call in the C, and the cost model (which sizes the
        # tiles) counts its runs and words: 13 pixel pairs (the 25th pixel computed twice)
        # by 3 channel pairs, each over 12 / 4 = 3 words of 16 multiply-accumulates.
        assert "intm_smlad(" not in kernels
        conv = next(t for t in artifact.manifest()["tasks"] if t["kernel"].startswith("conv"))
        features = conv["cost"]["features"]
        assert features["micro:intm_mac_2x2_s8"] == 13 * 3
        assert features["micro:intm_mac_2x2_s8/word"] * 16 == 13 * 2 * 6 * 12
        assert "call:intm_smlad" not in features
    if name == "single_channel_10x8":
        # The rows as words: two input words per filter row (eight taps), no tap-by-tap
        # load inside the image.
        body = kernels[kernels.index("intm_k_conv2d"):]
        assert body.count("intm_load_s8x4((&input[") >= 2
    expected = reference.run_tflite_micro(path, inputs)[0]
    if expected.size >= 16:
        assert len(np.unique(expected)) > 8, "outputs too uniform to tell kernels apart"
    else:  # a few outputs: none saturated, so that every product counts
        assert ((expected > -128) & (expected < 127)).all(), expected
    np.testing.assert_array_equal(artifact.run(inputs).outputs[0], expected)
    np.testing.assert_array_equal(artifact.run(inputs, kind="host").outputs[0], expected)


# The micro-kernel inside the image and the row paths at its border (3x3_padded), the
# single-channel rows, and a reduction split across power cycles (dense_one_block); the
# units-in-eights dense kernel tiles like the others and is left to the first test.
@pytest.mark.parametrize("name", ["3x3_padded", "single_channel_10x8", "dense_one_block"])
def test_kernel_under_power_failures(tmp_path, name):
    """Random failures (seeded) and one failure at each key point of the kernel's first and
    last tile batch: every run ends with the uninterrupted outputs (which equal TFLM's)."""
    path, inputs, _ = _write(tmp_path, name)
    artifact = ti.build(path, "intermittent/msp430fr5994", capacitor_f=TINY_CAPACITOR,
                        name="op")
    project = artifact.export(tmp_path / "p")
    continuous = sim.run(project, inputs)
    np.testing.assert_array_equal(continuous.outputs[0],
                                  reference.run_tflite_micro(path, inputs)[0])
    baseline = campaign.Baseline(continuous, continuous.outputs, artifact.power_cycle_budget)
    windows = campaign.phase_windows(continuous, campaign.task_table(artifact.manifest()))
    kernel = artifact.manifest()["tasks"][0]["kernel"]
    # Tile batches, or the chunks of a reduction split across power cycles.
    batches = [w for w in windows if w.phase in ("batch", "split") and w.kernel == kernel]
    assert len(batches) >= 2, "the kernel should need several power cycles"

    floor = campaign.progress_floor(windows)
    longest = min(artifact.power_cycle_budget, continuous.instructions_total - 1)
    result = campaign.random_campaign(project, inputs, baseline.reference,
                                      min_instructions=floor, max_instructions=max(floor, longest),
                                      min_failures=12, baseline=baseline, max_runs=20)
    assert result.ok, result.to_dict()
    assert result.failures >= 12

    batches = [batches[0], batches[-1]]
    swept = campaign.exhaustive_campaign(project, inputs, baseline.reference, batches,
                                         baseline=baseline, points=campaign.Window.key_points)
    assert swept.ok, {k: v for k, v in swept.to_dict().items() if k != "details"}
    assert swept.runs > 0 and swept.failures == swept.runs
    for window, row in zip(batches, swept.details["by_window"]):
        hit = {k for start, stop in row["swept"] for k in range(start, stop)}
        assert window.start in hit and set(window.stores) <= hit  # the batch and its commit

"""The one-operator depthwise model whose row pairs fit one charge or not, and its facts.

One DEPTHWISE_CONV_2D of kws's shape (25 x 5 windows, 64 channels, 3x3, SAME) on
msp430fr5994: at :data:`SMALL_F` the paired tile exceeds the analytic rule's half of a
charge (not the tuner's 0.8), so the compiler builds one output row per tile; at
:data:`LARGE_F` the pairs fit. Shared by the tests of the rule (``test_pair_fit``) and of
the tuner's kernel variants (``test_tuning_variants``).
"""

from __future__ import annotations

from pathlib import Path

import tflite_models

BOARD = "msp430fr5994"
#: Where the paired tile does not fit one commit but one row's does.
SMALL_F = 1.0e-6
#: Where the paired tile fits.
LARGE_F = 1.5e-6
KERNEL = "depthwise_conv2d_s8"
#: What the paired kernel's C declares, and what the DSP kernels' C calls.
PAIR_MARK = "int32_t out_pair"
DSP_MARK = "intm_smlabb("


def write_model(directory):
    """``(path, inputs)`` of the model written as ``dw.tflite`` in ``directory``."""
    data, inputs = tflite_models.conv2d(depthwise=True, cin=64, hw=(25, 5), seed=81)
    path = Path(directory) / "dw.tflite"
    path.write_bytes(data)
    return path, inputs

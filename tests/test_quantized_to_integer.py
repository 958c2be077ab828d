"""The QuantizedToInteger pass, its fixed-point arithmetic and the TFLite frontend's part.

Pure Python: structural comparisons of small Relax modules (``Expected = Before`` means "no
change"), fixed-point facts checked against ``math``, and the static shapes the frontend
gives TFLite's computed RESHAPE targets.
"""

import math

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from tvm_intermittent.transform import QuantizedToInteger
from tvm_intermittent.transform import fixed_point as fp


def _assert_rewrites_to(before, expected):
    tvm.ir.assert_structural_equal(QuantizedToInteger()(before), expected)


def test_requantizing_to_the_same_parameters_is_the_identity():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 8), "int8")) -> R.Tensor((1, 8), "int8"):
            with R.dataflow():
                a = R.dequantize(x, R.const(0.5, "float32"), R.const(-3, "int32"),
                                 out_dtype="float32", axis=0)
                b = R.quantize(a, R.const(0.5, "float32"), R.const(-3, "int32"),
                               out_dtype="int8", axis=0)
                R.output(b)
            return b

    @I.ir_module
    class Expected:
        @R.function
        def main(x: R.Tensor((1, 8), "int8")) -> R.Tensor((1, 8), "int8"):
            with R.dataflow():
                b: R.Tensor((1, 8), "int8") = x
                R.output(b)
            return b

    _assert_rewrites_to(Before, Expected)


def test_a_float_model_is_left_alone():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 8), "float32")) -> R.Tensor((1, 8), "float32"):
            with R.dataflow():
                y = R.nn.relu(R.exp(x))
                R.output(y)
            return y

    _assert_rewrites_to(Before, Before)


def test_integer_layout_operators_are_left_alone():
    """TFLite imports int8 RESHAPE and MAX_POOL_2D as integer operators already."""

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 4, 4, 2), "int8")) -> R.Tensor((1, 8), "int8"):
            with R.dataflow():
                p = R.nn.max_pool2d(x, pool_size=[2, 2], strides=[2, 2], layout="NHWC")
                y = R.reshape(p, R.shape([1, 8]))
                R.output(y)
            return y

    _assert_rewrites_to(Before, Before)


def test_an_unknown_float_operator_keeps_its_float_lowering():
    """quantize(exp(dequantize(x))): exp has no integer form here, so it stays float; the
    dequantize stays and only the final quantize becomes an explicit kernel."""

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 8), "int8")) -> R.Tensor((1, 8), "int8"):
            with R.dataflow():
                a = R.dequantize(x, R.const(0.5, "float32"), R.const(-3, "int32"),
                                 out_dtype="float32", axis=0)
                e = R.exp(a)
                b = R.quantize(e, R.const(0.5, "float32"), R.const(-3, "int32"),
                               out_dtype="int8", axis=0)
                R.output(b)
            return b

    after = QuantizedToInteger()(Before)
    script = after.script()
    assert "R.exp(" in script and "R.dequantize(" in script and "R.quantize(" not in script


def test_float_operators_are_reported_with_their_reason():
    """exp between dequantize and quantize has no integer form; relu on the float input runs
    before the first quantize. Both stay float, and each gets a notice saying why."""

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 8), "int8"), f: R.Tensor((1, 8), "float32")):
            with R.dataflow():
                a = R.dequantize(x, R.const(0.5, "float32"), R.const(-3, "int32"),
                                 out_dtype="float32", axis=0)
                e = R.exp(a)
                b = R.quantize(e, R.const(0.5, "float32"), R.const(-3, "int32"),
                               out_dtype="int8", axis=0)
                r = R.nn.relu(f)
                c = R.quantize(r, R.const(0.25, "float32"), R.const(0, "int32"),
                               out_dtype="int8", axis=0)
                y = (b, c)
                R.output(y)
            return y

    notices = []
    QuantizedToInteger(notices)(Before)
    assert [(n.operator, n.path) for n in notices] == [
        ("exp -> float32[1, 8]", "float lowering"), ("nn.relu -> float32[1, 8]", "float lowering")]
    assert "exp has no integer form" in notices[0].reason
    assert "float input before the first quantize" in notices[1].reason


def test_an_integer_rewrite_and_a_float_model_have_no_notices():
    @I.ir_module
    class Quantized:
        @R.function
        def main(x: R.Tensor((1, 8), "int8")) -> R.Tensor((1, 8), "int8"):
            with R.dataflow():
                a = R.dequantize(x, R.const(0.5, "float32"), R.const(-3, "int32"),
                                 out_dtype="float32", axis=0)
                b = R.quantize(R.nn.relu(a), R.const(0.25, "float32"), R.const(-128, "int32"),
                               out_dtype="int8", axis=0)
                R.output(b)
            return b

    @I.ir_module
    class Float:
        @R.function
        def main(x: R.Tensor((1, 8), "float32")) -> R.Tensor((1, 8), "float32"):
            with R.dataflow():
                y = R.nn.relu(R.exp(x))
                R.output(y)
            return y

    for module in (Quantized, Float):
        notices = []
        QuantizedToInteger(notices)(module)
        assert notices == []


def test_quantized_conv2d_becomes_an_integer_kernel():
    """TFLite's CONV_2D as TVM imports it: dequantize -> conv2d -> add bias -> quantize."""
    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, size=(3, 3, 4, 8)).astype(np.int8)
    w_scale = rng.uniform(0.01, 0.02, size=8).astype(np.float32)
    bias = rng.integers(-100, 100, size=8).astype(np.int32)
    x = relax.Var("x", relax.TensorType((1, 6, 6, 4), "int8"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(relax.op.dequantize(x, relax.const(0.1, "float32"),
                                            relax.const(-5, "int32"), axis=0))
            w = bb.emit(relax.op.dequantize(relax.const(weight), relax.const(w_scale),
                                            relax.const(0, "int32"), axis=3))
            c = bb.emit(relax.op.nn.conv2d(a, w, padding=[1, 1, 1, 1], data_layout="NHWC",
                                           kernel_layout="HWIO"))
            b = bb.emit(relax.op.dequantize(relax.const(bias), relax.const(0.1 * w_scale),
                                            relax.const(0, "int32"), axis=0))
            s = bb.emit(relax.op.add(c, b))
            q = bb.emit_output(relax.op.quantize(s, relax.const(0.2, "float32"),
                                                 relax.const(3, "int32"), axis=0))
        bb.emit_func_output(q)
    after = QuantizedToInteger()(bb.get())
    script = after["main"].script()
    assert "conv2d_s8" in script and "dequantize" not in script and "float32" not in script
    kernel = next(f for gv, f in after.functions_items() if gv.name_hint == "conv2d_s8")
    assert {str(p.ty.dtype) for p in kernel.params} == {"int8", "int32"}


# ---- fixed-point arithmetic ---------------------------------------------------------------


@pytest.mark.parametrize("real, expected", [
    (0.5, (1 << 30, 0)), (0.25, (1 << 30, -1)), (1.0, (1 << 30, 1)), (0.75, (3 << 29, 0)),
    (2.0 ** -40, (0, 0)),  # below 2**-31: no multiplier at all
    (1 - 2.0 ** -40, (1 << 30, 1)),  # the mantissa rounds up to 2**31: halve, shift + 1
])
def test_quantize_multiplier(real, expected):
    assert fp.quantize_multiplier(real) == expected


def test_requantization_is_within_half_a_step_of_the_real_product():
    rng = np.random.default_rng(1)
    for real in rng.uniform(1e-5, 3.0, size=50):
        multiplier, shift = fp.quantize_multiplier(real)
        for x in rng.integers(-100_000, 100_000, size=20):
            got = fp.multiply_by_quantized_multiplier(int(x), multiplier, shift)
            assert abs(got - x * real) <= 0.5 + abs(x * real) * 2e-9 + 1


def test_single_rounding_is_the_exact_product_rounded_half_up():
    """The requantization of models checked against onnxruntime: one rounding of the exact
    product, checked with exact rational arithmetic."""
    from fractions import Fraction

    rng = np.random.default_rng(2)
    for real in list(rng.uniform(1e-4, 2.0, size=40)) + [0.25, 0.5, 80.0]:
        multiplier, shift = fp.quantize_multiplier(real)
        exact = Fraction(multiplier) * Fraction(2) ** (shift - 31)
        for x in list(rng.integers(-(1 << 31), 1 << 31, size=10)) + [-2, -1, 1, 2, 7]:
            want = math.floor(Fraction(int(x)) * exact + Fraction(1, 2))
            assert fp.multiply_by_quantized_multiplier_single(int(x), multiplier, shift) == want


def test_double_rounding_departs_from_single_rounding_at_second_ties():
    """Why onnxruntime models round once: with a right shift of r bits, TFLM's two roundings
    differ from one whenever the high multiply lands on a tie of the shift."""
    rng = np.random.default_rng(3)
    multiplier, shift = fp.quantize_multiplier(0.0371)  # shift -4: r = 4
    xs = rng.integers(-20_000, 20_000, size=20_000)
    differ = sum(fp.multiply_by_quantized_multiplier(int(x), multiplier, shift)
                 != fp.multiply_by_quantized_multiplier_single(int(x), multiplier, shift)
                 for x in xs)
    assert shift == -4 and 0.5 / 2 ** 5 < differ / xs.size < 2 / 2 ** 5


def test_fixed_point_exp_and_logistic_follow_the_functions():
    for value in (0.0, -0.125, -0.5, -1.0, -3.7, -10.0, -31.0):
        got = fp.exp_on_negative_values(round(value * 2**26), 5) / 2**31
        assert abs(got - math.exp(value)) < 2e-7
    for value in (-7.5, -1.0, 0.0, 0.3, 4.0):
        got = fp.logistic(round(value * 2**27), 4) / 2**31
        assert abs(got - 1 / (1 + math.exp(-value))) < 2e-7


def test_rounding_helpers_round_as_documented():
    assert [fp.rdbp(x, 1) for x in (-3, -2, -1, 1, 2, 3)] == [-2, -1, -1, 1, 1, 2]
    assert fp.srdhm(1 << 30, 1) == 1 and fp.srdhm(-(1 << 30), 1) == 0  # halves round up
    assert fp.srdhm(fp.INT32_MIN, fp.INT32_MIN) == fp.INT32_MAX


# ---- the TFLite frontend -------------------------------------------------------------------


@pytest.mark.zoo
def test_anomaly_detection_computed_reshape_target_is_static():
    from tvm_intermittent import zoo
    from tvm_intermittent.frontend import load_model

    imported = load_model(zoo.get("ad").path)
    script = imported.mod.script(show_meta=False)
    assert "shape_of" not in script and "strided_slice" not in script
    assert "R.shape([1, 5, 128, 1])" in script
    assert imported.mod["main"].attrs["intermittent.quantize_rounding"] == "away"

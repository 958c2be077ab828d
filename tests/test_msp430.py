"""The generated C on an emulated 16-bit MSP430 (mspdebug's simulator), under power failures.

References are independent of the code under test: numpy for the run-time helpers and the
soft float, TFLite Micro for the int8 models, onnxruntime for the ONNX float models, and
the uninterrupted run for the failure runs. Marked
``msp430`` and skipped where mspdebug, clang or ld.lld is missing; the tests that also run
the same project on QEMU skip that half without QEMU.
"""

import io
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference, sim
from tvm_intermittent.board import load_board
from tvm_intermittent.check import compare_outputs
from tvm_intermittent.cli import main
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.codegen.project_files import copy_support_files
from tvm_intermittent.errors import DoesNotFitError, ToolchainError
from tvm_intermittent.sim import environments

import msp430_models
import onnx_models
import tflite_models as tm

pytestmark = pytest.mark.msp430

FIXTURES = Path(__file__).parent / "fixtures"
BOARD = "msp430-sim"


def _export(tmp_path, made, name="op", **build_options):
    model, inputs = made
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    artifact = ti.build(path, f"intermittent/{BOARD}", name=name, **build_options)
    return artifact.export(tmp_path / name), path, inputs


# ---- The run-time helpers: clang's calls for 16-bit int, checked against numpy ----------


def _trunc_div(a, b):
    """C's division and remainder (toward zero), on Python integers."""
    q = [abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1) for x, y in zip(a, b)]
    return q, [x - qq * y for x, y, qq in zip(a, b, q)]


def test_run_time_helpers_equal_numpy(tmp_path):
    project = tmp_path / "arith"
    shutil.copytree(FIXTURES / "msp430_arith", project)
    copy_support_files(project, BOARD)
    rng = np.random.default_rng(4)
    a = np.concatenate([[np.iinfo(np.int64).min + 1, -1, 7, -123456789012345, 2**40 + 3],
                        rng.integers(-2**62, 2**62, size=7)]).astype(np.int64)
    b = np.concatenate([[3, -7, -2, 1000003, -(2**33) - 5],
                        rng.integers(-2**31, 2**31, size=7) | 1]).astype(np.int64)
    s = np.array([0, 1, 15, 16, 17, 31, 32, 33, 47, 62, 63, 5], dtype=np.int16)
    result = sim.run(project, [a, b, s])
    assert result.kind == "msp430"
    got = dict(zip(["mul64", "div64", "rem64", "udiv64", "shl64", "sar64", "shr64", "mul32",
                    "div32", "rem32", "sar32", "mul16", "shl32", "shr32"], result.outputs))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got["mul64"], a * b)
    ai, bi = [int(x) for x in a], [int(y) for y in b]
    q, r = _trunc_div(ai, bi)
    np.testing.assert_array_equal(got["div64"], q)
    np.testing.assert_array_equal(got["rem64"], r)
    ua, ub = a.view(np.uint64), b.view(np.uint64)
    np.testing.assert_array_equal(got["udiv64"].view(np.uint64), ua // ub)
    k = s.astype(np.uint64) & 63
    np.testing.assert_array_equal(got["shl64"].view(np.uint64), ua << k)
    np.testing.assert_array_equal(got["sar64"], a >> k.astype(np.int64))
    np.testing.assert_array_equal(got["shr64"].view(np.uint64), ua >> k)
    a32, b32 = a.astype(np.int32), b.astype(np.int32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got["mul32"], a32 * b32)
        np.testing.assert_array_equal(got["mul16"], a.astype(np.int16) * b.astype(np.int16))
    q32, r32 = _trunc_div([int(x) for x in a32], [int(y) for y in b32])
    np.testing.assert_array_equal(got["div32"], q32)
    np.testing.assert_array_equal(got["rem32"], r32)
    np.testing.assert_array_equal(got["sar32"], a32 >> (s.astype(np.int32) & 31))
    k32 = s.astype(np.uint32) & 31
    np.testing.assert_array_equal(got["shl32"].view(np.uint32), a32.view(np.uint32) << k32)
    np.testing.assert_array_equal(got["shr32"].view(np.uint32), a32.view(np.uint32) >> k32)
    assert result.instructions_model > 0 and result.cycles_model > result.instructions_model


def _float_operands(seed=5, n=64):
    """Float32 operands: the special values first (zeros, subnormals, the largest finite,
    infinities, NaN, exact ties), then random values over the whole exponent range."""
    special_a = [0.0, -0.0, 1.0, -1.0, 1e-45, 1e-40, 3.4e38, np.inf, -np.inf, np.nan,
                 1.0 + 2**-23, 16777217.0, 1e-38, -2.5e-39, 3.0, 0.1]
    special_b = [-0.0, -0.0, 1.0, 1.0, 1e-45, -3e-40, 3.4e38, np.inf, 5.0, 1.0,
                 2**-24, 1.0, -1e-38, 2.5e-39, 0.0, 0.3]
    rng = np.random.default_rng(seed)
    rest = n - len(special_a)
    mant = rng.uniform(-2, 2, size=(2, rest))
    expo = rng.integers(-60, 60, size=(2, rest))
    a = np.array(special_a + list(mant[0] * 2.0 ** expo[0]), dtype=np.float32)
    b = np.array(special_b + list(mant[1] * 2.0 ** expo[1]), dtype=np.float32)
    c = rng.integers(-2**31, 2**31, size=n).astype(np.int32)
    c[:4] = [0, -1, 2**31 - 1, -2**31]
    return a, b, c


def _same_floats(got, want):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok].view(np.uint32), want[ok].view(np.uint32))


def test_soft_float_equals_numpy(tmp_path):
    project = tmp_path / "float"
    shutil.copytree(FIXTURES / "msp430_float", project)
    copy_support_files(project, BOARD)
    a, b, c = _float_operands()
    add, sub, mul, div, cmp, i2f, f2i, exp = sim.run(project, [a, b, c]).outputs
    with np.errstate(all="ignore"):
        # Bit for bit: IEEE single precision, round to nearest even, subnormals kept.
        _same_floats(add, a + b)
        _same_floats(sub, a - b)
        _same_floats(mul, a * b)
        _same_floats(div, a / b)
        _same_floats(i2f, c.astype(np.float32))
        want_cmp = ((a < b).astype(np.int16) | (a <= b) << 1 | (a == b) << 2
                    | (a != b) << 3)
        np.testing.assert_array_equal(cmp, want_cmp)
        fits = np.abs(a) < 2**31  # C leaves other conversions undefined
        np.testing.assert_array_equal(f2i[fits], np.trunc(a[fits]).astype(np.int32))
        want_exp = np.exp(a.astype(np.float64) / 8).astype(np.float32)
    finite = np.isfinite(want_exp) & (want_exp > 1e-37)
    np.testing.assert_allclose(exp[finite], want_exp[finite], rtol=3e-7 * 8)
    np.testing.assert_array_equal(exp[np.isposinf(want_exp)], np.inf)


# ---- The small ONNX float operator models, against onnxruntime ---------------------------


#: A cross-section of tests/onnx_models.py (all of it passes; this keeps the test time).
ONNX_CASES = ["add_mul_broadcast", "averagepool_pad_exclude", "conv_depthwise", "conv_groups2",
              "conv_stride2_pad", "gemm", "global_average_pool", "matmul", "maxpool",
              "small_cnn", "softmax"]


@pytest.mark.parametrize("case", ONNX_CASES)
def test_onnx_operator_matches_onnxruntime(case):
    import onnxruntime as ort  # pylint: disable=import-outside-toplevel

    model, inputs = onnx_models.CASES[case]()
    result = ti.build(model, f"intermittent/{BOARD}", name=case).run(inputs)
    assert result.kind == "msp430" and result.finished
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    want = session.run(None, dict(zip(names, inputs)))
    check = compare_outputs(result.outputs, want, rtol=1e-5)
    assert check.ok, check.summary()


# ---- Operator models and the tiny CNN, bit-exact with TFLite Micro -----------------------

CASES = {
    "conv2d": lambda: tm.conv2d(),
    "conv2d_stride2_relu": lambda: tm.conv2d(stride=(2, 2), activation=tm.RELU, out_zp=-128),
    "depthwise": lambda: tm.conv2d(depthwise=True),
    "fully_connected": lambda: tm.fully_connected(),
    "average_pool": lambda: tm.pool("AVERAGE_POOL_2D"),
    "max_pool_relu": lambda: tm.pool("MAX_POOL_2D", activation=tm.RELU),
    "add_broadcast": lambda: tm.add(),
    "mul_broadcast_relu": lambda: tm.mul(activation=tm.RELU),
    "mean_spatial": lambda: tm.mean(),
    "softmax": lambda: tm.softmax(),
    "logistic": lambda: tm.logistic(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_equals_tflite_micro(tmp_path, case):
    project, path, inputs = _export(tmp_path, CASES[case]())
    result = sim.run(project, inputs)
    assert result.kind == "msp430" and result.finished and result.failures == 0
    want = reference.run_tflite_micro(path, inputs)
    for got, expected in zip(result.outputs, want):
        np.testing.assert_array_equal(got, expected)
    assert len(np.unique(result.outputs[0])) > 1, "a constant output would test nothing"


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory):
    """The iNAS-sized CNN, tiled for the board's capacitor."""
    tmp = tmp_path_factory.mktemp("tiny_cnn")
    project, path, inputs = _export(tmp, msp430_models.tiny_cnn(), name="tiny_cnn")
    continuous = sim.run(project, inputs)
    return project, path, inputs, continuous


def test_tiny_cnn_equals_tflite_micro_and_fits_inas_budget(tiny_cnn):
    project, path, inputs, continuous = tiny_cnn
    want = reference.run_tflite_micro(path, inputs)
    np.testing.assert_array_equal(continuous.outputs[0], want[0])
    assert len(np.unique(want[0])) > 1
    sizes = ti.build(path, f"intermittent/{BOARD}").sources
    assert sizes.weight_bytes < 8 * 1024  # a few KB of weights
    # iNAS's 2 KB SRAM budget: .data, .bss and the stack reserve (llvm-size, not our code).
    listing = subprocess.run(["llvm-size", "-A", str(project / "build/msp430/firmware.elf")],
                             capture_output=True, text=True, check=True).stdout
    section = dict(line.split()[:2] for line in listing.splitlines()[2:] if line.strip())
    sram = sum(int(section.get(name, 0)) for name in (".data", ".bss", ".intm_stack"))
    assert sram <= 2048, listing
    # Two commits or more per operator: the run really is cut into tiles.
    assert len(continuous.commits) >= 6
    assert continuous.commits == sorted(continuous.commits)
    assert continuous.range_first["intm_progress_restore"] < continuous.commits[0]
    # Each commit costs instructions, all within the model's run.
    calls = continuous.call_instructions
    assert len(continuous.commits) <= calls["intm_progress_commit"] < continuous.instructions_model
    assert calls["intm_progress_restore"] > 0
    assert continuous.instructions_model > 0 and continuous.cycles_model > 0


def test_same_sources_build_and_agree_on_cortex_m4(tiny_cnn):
    project, _, inputs, continuous = tiny_cnn
    for available, reason in (sim.toolchain_available(), sim.qemu_available()):
        if not available:
            pytest.skip(reason)
    on_arm = sim.run(project, inputs, kind="qemu")
    assert on_arm.kind == "qemu"
    np.testing.assert_array_equal(on_arm.outputs[0], continuous.outputs[0])
    # Different ISAs: the instruction counts differ, by a lot.
    assert continuous.instructions_model > 1.5 * on_arm.instructions_model


def test_tiny_cnn_under_1000_random_failures(tiny_cnn):
    """Seeded random budgets between half and all of one charge, run after run until more
    than 1,000 failures have hit the inference; every run gives the continuous outputs."""
    project, _, inputs, continuous = tiny_cnn
    budget = load_board(BOARD).power_cycle_budget()
    failures, seed = 0, 0
    while failures < 1000:
        seed += 1
        power = sim.Random(seed=seed, min=budget // 2, max=budget)
        failed = sim.run(project, inputs, power=power)
        assert failed.finished, (seed, failed.stop_reason)
        assert failed.failures > 10 and failed.boots == failed.failures + 1
        # Every boot but the last ran out its budget exactly.
        assert failed.per_boot_instructions[:-1] == power.budgets(failed.boots)[:-1]
        assert failed.instructions_total > continuous.instructions_total
        np.testing.assert_array_equal(failed.outputs[0], continuous.outputs[0])
        failures += failed.failures
    assert seed < 40


def test_tiny_cnn_periodic_and_capacitor(tiny_cnn):
    project, _, inputs, continuous = tiny_cnn
    budget = load_board(BOARD).power_cycle_budget()
    for power in (sim.Periodic(budget), sim.Capacitor(BOARD)):
        each = power.budgets(1)[0]  # the capacitor's counts the harvest while computing
        failed = sim.run(project, inputs, power=power)
        assert failed.finished and failed.failures > 20 * budget // each
        assert set(failed.per_boot_instructions[:-1]) == {each}
        np.testing.assert_array_equal(failed.outputs[0], continuous.outputs[0])


def test_tiny_cnn_exhaustive_around_first_commits(tiny_cnn):
    project, _, inputs, continuous = tiny_cnn
    # Failure points just before, at and inside the first and second commits.
    windows = [(c - 3, c + 5) for c in continuous.commits[:2]]
    for window in windows:
        runs = sim.run_exhaustive(project, inputs, window)
        assert len(runs) == window[1] - window[0]
        for k, failed in zip(range(*window), runs):
            assert failed.failures == 1 and failed.per_boot_instructions[0] == k
            np.testing.assert_array_equal(failed.outputs[0], continuous.outputs[0])


def test_intermittent_report_reads_msp430_runs(tiny_cnn):
    project, _, inputs, continuous = tiny_cnn
    budget = load_board(BOARD).power_cycle_budget()
    report = sim.measure_intermittent(project, inputs, sim.Periodic(budget), board=BOARD)
    assert report.finished and report.outputs_match and report.failures > 20
    assert report.instructions_continuous == continuous.instructions_total
    assert 0 < report.imo < 1 and report.instructions_reexecuted > 0


def _inas_boot(board, capacitor_f=1e-3, supply_v=3.0, ohms=1000.0, v_on=2.99, v_off=2.8):
    """(instructions of one boot, seconds of one recharge) on the iNAS bench, integrated
    numerically from the circuit: while the part draws its active power ``P`` the
    capacitor obeys ``C dV/dt = (Vs - V) / R - P / V``; while it is off, ``C dV/dt =
    (Vs - V) / R``. A boot's instructions are ``P t`` over the energy per instruction."""
    volts = np.linspace(v_off, v_on, 200_001)
    power = board.active_power_w

    def integral(dt_dv):  # the trapezoidal rule over the voltage grid
        return float(np.sum((dt_dv[1:] + dt_dv[:-1]) / 2 * np.diff(volts)))

    discharge = integral(capacitor_f / (power / volts - (supply_v - volts) / ohms))
    recharge = integral(capacitor_f * ohms / (supply_v - volts))
    return power * discharge / board.energy_per_instruction_j, recharge


def test_tiny_cnn_under_inas_preset_fails_where_the_budgets_say(tiny_cnn, caplog):
    """The iNAS 1 mF bench on the MSP430: every boot but the last loses power after the
    instructions its charge pays for (checked against the circuit integrated here), inside
    the inference, and the outputs are those of the uninterrupted run and TFLite Micro."""
    project, path, inputs, continuous = tiny_cnn
    board = load_board(BOARD)
    schedule = environments.get("inas-1mF").schedule(BOARD)
    each, recharge = _inas_boot(board)
    with caplog.at_level(logging.WARNING, logger="tvm_intermittent.sim.mspdebug"):
        report = sim.measure_intermittent(project, inputs, schedule, board=BOARD)
    failed = report.failure_run
    assert report.finished and failed.kind == "msp430"
    # A charge pays for about a tenth of the inference: about ten failures.
    assert 5 <= report.failures == failed.boots - 1 <= 20
    budgets = schedule.budgets(failed.boots)
    assert failed.per_boot_instructions[:-1] == budgets[:-1]
    assert budgets[0] == pytest.approx(each, rel=1e-4)
    assert failed.per_boot_instructions[-1] < budgets[0]
    # Each failure hits past the boot code, inside the model's run.
    assert continuous.range_first["intm_progress_restore"] < budgets[0]
    assert budgets[0] < continuous.instructions_model
    # The modeled latency: the recharge after each failure, and the work at the board's CPI.
    assert report.recharge_seconds == pytest.approx(report.failures * recharge, rel=1e-6)
    assert report.active_seconds == pytest.approx(
        failed.instructions_total * board.cycles_per_instruction / board.clock_hz)
    assert report.latency_seconds == report.active_seconds + report.recharge_seconds
    assert report.outputs_match and report.instructions_reexecuted > 0 and 0 < report.imo < 1
    np.testing.assert_array_equal(failed.outputs[0], continuous.outputs[0])
    np.testing.assert_array_equal(failed.outputs[0], reference.run_tflite_micro(path, inputs)[0])
    # mspdebug counts no NVM access: nothing is charged for them, and the run says so.
    assert not report.nvm_counted and failed.traffic is None
    assert any("not charged on the MSP430 run" in r.getMessage() for r in caplog.records)


# ---- What the MSP430 refuses -------------------------------------------------------------


def test_model_too_big_for_address_space_is_refused_at_compile(tmp_path):
    model, _ = msp430_models.too_big_for_msp430()
    path = tmp_path / "big.tflite"
    path.write_bytes(model)
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), show_progress=False)
    out = tmp_path / "out"
    # A large capacitor, so that the tiles fit a charge and memory is what fails.
    status = main(["compile", str(path), "--board", BOARD, "--capacitor", "1mF", "-o",
                   str(out)], env)
    message = env.stderr.getvalue()
    assert status == 2, message
    assert "Traceback" not in message
    # 600 x 100 int8 weights and 100 int32 biases; the board's FRAM below the vectors.
    assert f"{600 * 100 + 4 * 100:,} bytes" in message, message
    assert f"{0xFF80 - 0x4000:,} bytes" in message, message
    assert not out.exists(), "nothing half-written"
    # The same model is fine on the Cortex-M4 board.
    ti.build(path, "intermittent/qemu-an386")


def test_code_that_overflows_fram_names_the_region(tmp_path):
    project = tmp_path / "arith"
    shutil.copytree(FIXTURES / "msp430_arith", project)
    copy_support_files(project, BOARD)
    # A 40 KB constant table the model reads, on top of the code: FRAM overflows at link.
    model_c = project / "model" / "model.c"
    text = model_c.read_text()
    old = "intm_status_t intm_model_run(void) {\n"
    assert old in text
    model_c.write_text(text.replace(old, "static const uint8_t table[40000] = {1};\n" + old
                                    + "  if (table[(uint16_t)s[0]] == 2) return INTM_OK;\n"))
    with pytest.raises(DoesNotFitError, match=r"FRAM overflowed by at least \d+ bytes"):
        sim.build_project(project, "msp430")


def test_missing_libm_function_is_refused_with_the_reason(tmp_path):
    project = tmp_path / "fake"
    shutil.copytree(FIXTURES / "fake_model", project)
    copy_support_files(project, BOARD)
    model_c = project / "model" / "model.c"
    old = "intm_fake_y[i] = 2.0f * intm_fake_scratch[i] + 1.0f;"
    text = model_c.read_text()
    assert old in text
    model_c.write_text("#include <math.h>\n" + text.replace(
        old, "intm_fake_y[i] = tanhf(intm_fake_scratch[i]);"))
    with pytest.raises(ToolchainError, match=r"floating-point functions .*\(tanhf;"):
        sim.build_project(project, "msp430")

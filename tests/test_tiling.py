"""Tiles: the analytic plan, idempotent re-execution of tile ranges, and refusals."""

import io
import json
import subprocess
from importlib import resources

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_intermittent.cli import main as cli_main
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.codegen.c_printer import CFunctionPrinter
from tvm_intermittent.codegen.tiling import loop_chain, plan_tiles
from tvm_intermittent.errors import DoesNotFitError
from tvm_intermittent.frontend import load_model
from tvm_intermittent.transform import lower_prim_func

import onnx_models


@pytest.fixture(scope="module")
def conv_kernel():
    """The fused conv + bias + relu kernel of the small CNN, lowered."""
    model, inputs = onnx_models.conv(strides=(1, 1), pads=(1, 1, 1, 1), cin=3, cout=4, hw=6)
    mod = relax.get_pipeline("intermittent")(load_model(model).mod)
    name = next(gv.name_hint for gv, f in mod.functions.items()
                if isinstance(f, tvm.tirx.PrimFunc) and "conv" in gv.name_hint)
    return lower_prim_func(mod[name], name), model, inputs


def _calibrated(field: str) -> float:
    """A runtime constant as calibration.json records it (read as data, not through the
    cost model under test)."""
    path = resources.files("tvm_intermittent").joinpath("energy", "calibration.json")
    return json.loads(path.read_text())["isas"]["arm"]["runtime"][field]["instructions"]


def test_smaller_budgets_give_smaller_tiles(conv_kernel):
    func, _, _ = conv_kernel
    written = {func.params[-1].name}
    big = plan_tiles(func, "conv", written, 10_000_000, "b")
    small = plan_tiles(func, "conv", written, 20_000, "b")
    assert big.depth >= 1
    assert small.depth > big.depth and small.extent > big.extent
    assert small.tile_instructions < big.tile_instructions
    # The documented rule with the measured constants: a batch may use half of what boot,
    # restore and commit leave, and holds about sqrt(2 B c) of work, c = commit + the
    # executor's per-batch work.
    fixed = sum(_calibrated(f) for f in ("boot", "restore", "commit"))
    per_batch = _calibrated("commit") + _calibrated("tile_overhead")
    for plan, budget in ((big, 10_000_000), (small, 20_000)):
        target = int((budget - round(fixed)) * 0.5)
        batch = min(target, int((2 * budget * round(per_batch)) ** 0.5))
        assert plan.tile_instructions <= target
        assert plan.tiles_per_commit == max(1, min(plan.extent, batch // plan.tile_instructions))


def test_the_tiler_charges_nvm_traffic_on_a_board_that_charges_it(conv_kernel):
    """A board whose NVM accesses cost energy gets finer tiles for the same budget."""
    import dataclasses

    from tvm_intermittent.board import load_board

    func, _, _ = conv_kernel
    written = {func.params[-1].name}
    board = load_board("qemu-an386")
    costly = dataclasses.replace(board, nvm_read_energy_j=50 * board.energy_per_instruction_j,
                                 nvm_write_energy_j=50 * board.energy_per_instruction_j)
    free = plan_tiles(func, "conv", written, 20_000, "b", board=board)
    charged = plan_tiles(func, "conv", written, 20_000, "b", board=costly)
    # The same budget holds fewer NVM-heavy iterations: finer tiles, each within the target.
    assert charged.depth > free.depth and charged.extent > free.extent


def test_budget_below_one_output_element_is_refused_with_numbers(conv_kernel):
    func, _, _ = conv_kernel
    with pytest.raises(DoesNotFitError, match=r"operator conv.*needs about [\d,]+ instructions.*"
                                              r"board tiny pays for 600"):
        plan_tiles(func, "conv", {func.params[-1].name}, 600, "tiny")


def test_a_charge_spent_by_boot_and_commit_alone_is_said_so_not_as_a_negative_limit(
        conv_kernel):
    """A budget below the boot, restore and commit leaves a negative per-commit target:
    the refusal says nothing is left for a tile instead of "at most -N"."""
    func, _, _ = conv_kernel
    with pytest.raises(DoesNotFitError, match=r"nothing left for a tile after the boot") as err:
        plan_tiles(func, "conv", {func.params[-1].name}, 20, "tiny")
    assert "at most -" not in str(err.value)


@pytest.mark.host_cc
def test_tile_ranges_in_any_order_and_repeated_give_the_same_output(conv_kernel, tmp_path):
    """Idempotence: re-running tiles (as after a power failure) never changes the result."""
    func, _, inputs = conv_kernel
    chain = loop_chain(func)
    depth = len(chain)  # the finest tiles: one output element each
    extent = int(np.prod([int(loop.extent) for loop in chain]))
    tiled = CFunctionPrinter(func, "k_tiled", chain).print_function()
    whole = CFunctionPrinter(func, "k_whole").print_function()
    sizes = [int(np.prod([int(d) for d in p.ty.shape])) for p in func.params]
    rng = np.random.default_rng(0)
    data = [rng.standard_normal(n).astype(np.float32) for n in sizes[:-1]]
    order = rng.permutation(extent).tolist()
    repeats = rng.choice(extent, size=extent // 3).tolist()
    calls = "".join(f"  k_tiled({', '.join(f'in{i}' for i in range(len(data)))}, tiled, {t}, "
                    f"{t + 1});\n" for t in order + repeats)
    decls = "".join(f"static const float in{i}[{len(d)}] = {{{', '.join(map(repr, d.tolist()))}}};\n"
                    for i, d in enumerate(data))
    args = ", ".join(f"in{i}" for i in range(len(data)))
    n_out = sizes[-1]
    source = (f'#include <stdio.h>\n#include <string.h>\n#include "intm_kernel_ops.h"\n'
              f"{tiled}\n{whole}\n{decls}static float tiled[{n_out}], whole[{n_out}];\n"
              f"int main(void) {{\n  memset(tiled, 0x7f, sizeof tiled);\n{calls}"
              f"  k_whole({args}, whole);\n"
              f"  return memcmp(tiled, whole, sizeof tiled) != 0;\n}}\n")
    (tmp_path / "t.c").write_text(source)
    with resources.as_file(resources.files("tvm_intermittent").joinpath("runtime")) as rt:
        subprocess.run(["cc", "-std=c99", "-O2", f"-I{rt}", "t.c", "-o", "t", "-lm"],
                       cwd=tmp_path, check=True)
    assert depth >= 2 and extent > 8
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0


def test_cli_refuses_a_board_with_too_little_sram_and_writes_nothing(tmp_path):
    import onnx

    model, _ = onnx_models.small_cnn()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), show_progress=False)
    out = tmp_path / "project"
    status = cli_main(["compile", str(path), "--board", "msp430fr5994", "--sram", "256",
                       "-o", str(out)], env)
    message = env.stderr.getvalue()
    assert status == 2
    assert "operator fused_conv2d" in message and "board msp430fr5994 has 256" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.onnx"]


def _wide_matmul(k=3000, seed=0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, [rng.standard_normal((1, k)).astype(np.float32)]


@pytest.mark.qemu
def test_a_reduction_too_long_for_one_power_cycle_is_split_and_still_correct():
    import onnxruntime as ort

    import tvm_intermittent as ti
    from tvm_intermittent.check import compare_outputs

    model, inputs = _wide_matmul()
    artifact = ti.build(model, "intermittent/msp430fr5994", capacitor_f=2e-6)
    (plan,) = artifact.tiles.values()
    assert plan.chunks > 1 and plan.tiles_per_commit == 1
    assert "_partial[2]" in artifact.sources.files["model/kernels.c"]
    reference = ort.InferenceSession(model.SerializeToString()).run(None, {"x": inputs[0]})
    result = artifact.run(inputs)
    assert compare_outputs(result.outputs, reference, rtol=1e-4).ok

"""The TIR-to-C printer and the memory planner, checked against numpy on the host compiler."""

import shutil
import subprocess

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

from tvm_intermittent.codegen.c_printer import STACK_SCRATCH_LIMIT, CFunctionPrinter
from tvm_intermittent.codegen.graph import Graph, Step, Tensor
from tvm_intermittent.codegen.memory_plan import lifetimes, plan_memory
from tvm_intermittent.transform import lower_prim_func

from importlib import resources

RUNTIME = resources.files("tvm_intermittent").joinpath("runtime")


def _compile_and_call(tmp_path, c_function: str, call: str, inputs, out_count, out_dtype):
    """Compile ``c_function`` with a main that feeds ``inputs`` and prints the output."""
    decls = []
    for name, array in inputs.items():
        ctype = {"int32": "int32_t", "float32": "float"}[str(array.dtype)]
        values = ", ".join(repr(v) + ("f" if ctype == "float" else "") for v in array.tolist())
        decls.append(f"static const {ctype} {name}[{array.size}] = {{{values}}};")
    ctype = {"int32": "int32_t", "float32": "float"}[out_dtype]
    fmt = '"%d\\n"' if ctype == "int32_t" else '"%.9g\\n"'
    source = (f'#include <stdio.h>\n#include <stdint.h>\n#include "intm_kernel_ops.h"\n'
              f"{c_function}\n" + "\n".join(decls) +
              f"\nstatic {ctype} out[{out_count}];\nint main(void) {{ {call};\n"
              f"  for (int i = 0; i < {out_count}; ++i) printf({fmt}, out[i]);\n  return 0; }}\n")
    (tmp_path / "t.c").write_text(source)
    with resources.as_file(RUNTIME) as runtime:
        subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Werror", "-Wno-unused-variable",
                        f"-I{runtime}", "t.c", "-o", "t", "-lm"], cwd=tmp_path, check=True)
    text = subprocess.run([str(tmp_path / "t")], check=True, capture_output=True, text=True).stdout
    return np.array([float(v) for v in text.split()], dtype=out_dtype)


@T.prim_func(s_tir=True)
def floor_ops(a: T.Buffer((8,), "int32"), b: T.Buffer((8,), "int32"), out: T.Buffer((16,), "int32")):
    for i in range(8):
        with T.sblock("div"):
            vi = T.axis.spatial(8, i)
            out[vi] = T.floordiv(a[vi], b[vi])
    for i in range(8):
        with T.sblock("mod"):
            vi = T.axis.spatial(8, i)
            out[vi + 8] = T.floormod(a[vi], b[vi])


@pytest.mark.host_cc
def test_floordiv_and_floormod_round_toward_negative_infinity(tmp_path):
    """C's / and % truncate; TIR's floordiv/floormod must not (numpy // and % agree with TIR)."""
    a = np.array([7, -7, 7, -7, 0, -1, 9, -9], dtype=np.int32)
    b = np.array([2, 2, -2, -2, 3, 4, -4, 5], dtype=np.int32)
    c = CFunctionPrinter(lower_prim_func(floor_ops, "floor_ops"), "k").print_function()
    got = _compile_and_call(tmp_path, c, "k(a, b, out)", {"a": a, "b": b}, 16, "int32")
    np.testing.assert_array_equal(got, np.concatenate([a // b, a % b]))


@T.prim_func(s_tir=True)
def fixed_point(x: T.Buffer((12,), "int32"), shift: T.Buffer((12,), "int32"),
                out: T.Buffer((24,), "int32")):
    for i in range(12):
        with T.sblock("general"):
            vi = T.axis.spatial(12, i)
            out[vi] = T.q_multiply_shift(x[vi], 1518500250, 31, shift[vi])
    for i in range(12):
        with T.sblock("power_of_two"):
            vi = T.axis.spatial(12, i)
            out[vi + 12] = T.q_multiply_shift(x[vi], 1 << 30, 31, -2)


@pytest.mark.host_cc
def test_fixed_point_intrinsics_print_as_arithmetic_with_their_rounding(tmp_path):
    """TVM's ``q_multiply_shift(x, m, 31, s)`` is ``x * m * 2**(s - 31)`` rounded half up
    (the 2**30 multiplier, a power of two, rounds the shift alone). The printer must emit no
    call to a function no header defines: the helper compiles with -Werror, which makes an
    implicitly declared function an error."""
    x = np.array([0, 1, -1, 5, -5, 1000, -1000, 123456, -123456, 7, 2**30, -(2**30)],
                 dtype=np.int32)
    shift = np.array([0, -1, -1, -3, -3, 2, 2, -10, -10, 1, -31, -20], dtype=np.int32)
    c = CFunctionPrinter(lower_prim_func(fixed_point, "fixed_point"), "k").print_function()
    assert "q_multiply_shift" not in c
    got = _compile_and_call(tmp_path, c, "k(x, shift, out)", {"x": x, "shift": shift}, 24,
                            "int32")
    want = []
    for value, s in zip(x.tolist(), shift.tolist()):
        total = 31 - s  # Python ints: the exact product, rounded half up
        want.append((value * 1518500250 + (1 << (total - 1))) >> total)
    want += [(value + 4) >> 3 for value in x.tolist()]  # 2**30 * 2**-31 * 2**-2 = 1/8
    np.testing.assert_array_equal(got, np.array(want, dtype=np.int32))


@T.prim_func(s_tir=True)
def big_scratch(x: T.Buffer((1024,), "float32"), y: T.Buffer((1024,), "float32")):
    tmp = T.sblock_alloc_buffer((1024,), "float32")
    for i in range(1024):
        with T.sblock("square"):
            vi = T.axis.spatial(1024, i)
            tmp[vi] = x[vi] * x[vi]
    for i in range(1024):
        with T.sblock("reverse"):
            vi = T.axis.spatial(1024, i)
            y[vi] = tmp[1023 - vi] + T.float32(1)


@pytest.mark.host_cc
def test_large_scratch_goes_to_static_memory_not_the_stack(tmp_path):
    printer = CFunctionPrinter(lower_prim_func(big_scratch, "big"), "k")
    c = printer.print_function()
    assert printer.static_scratch_bytes == 4096 and printer.stack_scratch_bytes == 0
    assert c.startswith("static float") and "[1024]" in c.splitlines()[0]
    assert 4096 > STACK_SCRATCH_LIMIT
    x = np.linspace(-2, 2, 1024, dtype=np.float32)
    got = _compile_and_call(tmp_path, c, "k(x, out)", {"x": x}, 1024, "float32")
    np.testing.assert_allclose(got, (x * x)[::-1] + 1, rtol=1e-6)


def test_parameters_are_const_unless_written():
    printer = CFunctionPrinter(lower_prim_func(floor_ops, "floor_ops"), "k")
    header = printer.print_function().splitlines()[0]
    assert "const int32_t* restrict a" in header and "const int32_t* restrict b" in header
    assert "int32_t* restrict out" in header and "const int32_t* restrict out" not in header


def _chain_graph(sizes, branch=False):
    """x -> t0 -> t1 -> ... -> out; with ``branch`` step 2 also reads t0 (a skip link)."""
    tensors = {"x": Tensor("x", (sizes[0],), "float32", "input")}
    steps, prev = [], "x"
    for i, n in enumerate(sizes[1:]):
        name = f"t{i}"
        tensors[name] = Tensor(name, (n,), "float32", "intermediate")
        ins = [prev] + (["t0"] if branch and i == 2 else [])
        steps.append(Step(f"k{i}", ins, [name]))
        prev = name
    tensors[prev].kind = "output"
    return Graph(tensors, steps, ["x"], [prev], {})


@pytest.mark.parametrize("branch", [False, True])
def test_memory_plan_never_overlaps_live_tensors(branch):
    graph = _chain_graph([100, 300, 50, 400, 20, 7], branch)
    plan = plan_memory(graph)
    live = lifetimes(graph)
    names = list(plan.placements)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pa, pb = plan.placements[a], plan.placements[b]
            overlap_time = not (live[a][1] < live[b][0] or live[b][1] < live[a][0])
            overlap_space = pa.offset < pb.offset + pb.size and pb.offset < pa.offset + pa.size
            assert not (overlap_time and overlap_space), (a, b)
        assert plan.placements[a].offset % 8 == 0
    assert plan.arena_bytes < plan.naive_bytes


def test_memory_plan_of_a_chain_needs_only_the_largest_neighbour_pair():
    sizes = [100, 300, 50, 400, 20, 7]
    plan = plan_memory(_chain_graph(sizes))
    byte_sizes = [((4 * s + 7) // 8) * 8 for s in sizes]
    # Inputs and the output stay live throughout; within the chain, only neighbours overlap.
    assert plan.arena_bytes <= byte_sizes[0] + byte_sizes[-1] + max(
        a + b for a, b in zip(byte_sizes[1:-1], byte_sizes[2:-1]))


def _declares_every_call(tmp_path, artifact):
    """Compile the generated kernels with implicit declarations as errors (C99 requires a
    declaration; a call to a function no header defines fails here, not at link time)."""
    project = artifact.export(tmp_path / "project")
    result = subprocess.run(
        ["cc", "-std=c99", "-O0", "-Werror=implicit-function-declaration", "-Iruntime",
         "-Imodel", "-c", "model/kernels.c", "-o", str(tmp_path / "kernels.o")],
        cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return project


@pytest.mark.host_cc
def test_a_model_with_fixed_point_multiplies_calls_only_defined_functions(tmp_path):
    """TOPI's fixed_point_multiply (TIR q_multiply_shift) through the whole build: the C
    compiles with -Werror=implicit-function-declaration and computes TVM's rounding."""
    import tvm_intermittent as ti
    from tvm import relax, topi

    x = relax.Var("x", relax.TensorType((1, 16), "int32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit_te(topi.fixed_point_multiply, x, 1518500250, -3)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    artifact = ti.build(bb.get(), name="fixed_point")
    assert "q_multiply_shift" not in artifact.sources.files["model/kernels.c"]
    _declares_every_call(tmp_path, artifact)
    data = np.array([[0, 1, -1, 9, -9, 77, -77, 1 << 20, -(1 << 20), 5, -5, 123, -123,
                      2**31 - 1, -(2**31), 42]], dtype=np.int32)
    got = artifact.run([data], kind="host").outputs[0]
    want = [(int(v) * 1518500250 + (1 << 33)) >> 34 for v in data.reshape(-1)]  # 2**(31+3)
    np.testing.assert_array_equal(got.reshape(-1), np.array(want, dtype=np.int32))


@T.prim_func(s_tir=True)
def sum_then_neighbours(a: T.Buffer((8, 4), "float32"), c: T.Buffer((8,), "float32")):
    b = T.sblock_alloc_buffer((8,), "float32")
    for i, k in T.grid(8, 4):
        with T.sblock("row_sum"):
            vi, vk = T.axis.remap("SR", [i, k])
            with T.init():
                b[vi] = T.float32(0)
            b[vi] = b[vi] + a[vi, vk]
    for i in range(8):
        with T.sblock("pairs"):
            vi = T.axis.spatial(8, i)
            c[vi] = b[vi] + b[(vi + 1) % 8]


@T.prim_func(s_tir=True)
def sum_then_scale(a: T.Buffer((8, 4), "float32"), c: T.Buffer((8,), "float32")):
    b = T.sblock_alloc_buffer((8,), "float32")
    for i, k in T.grid(8, 4):
        with T.sblock("row_sum"):
            vi, vk = T.axis.remap("SR", [i, k])
            with T.init():
                b[vi] = T.float32(0)
            b[vi] = b[vi] + a[vi, vk]
    for i in range(8):
        with T.sblock("scale"):
            vi = T.axis.spatial(8, i)
            c[vi] = T.max(b[vi] * T.float32(0.5), T.float32(0))


def test_an_epilogue_that_cannot_be_fused_is_reported():
    """An epilogue reading its reduction's neighbouring outputs cannot run inside the
    reduction's loops: FuseEpilogue keeps the buffer and says so; a plain epilogue fuses
    without a notice."""
    from tvm_intermittent.transform import FuseEpilogue

    target = tvm.target.Target({"kind": "c"})
    notices = []
    FuseEpilogue(notices).apply(sum_then_neighbours, target, False)
    assert [(n.path, n.operator) for n in notices] == [("unfused epilogue", "sum_then_neighbours")]
    assert "'pairs'" in notices[0].reason
    clean = []
    sch = FuseEpilogue(clean).apply(sum_then_scale, target, False)
    assert clean == []
    outer = [sch.get(sch.get_loops(sch.get_sblock(name))[0])
             for name in ("row_sum_update", "scale")]
    assert outer[0].same_as(outer[1])  # the epilogue runs inside the reduction's row loop

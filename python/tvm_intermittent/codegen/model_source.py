"""Emit a model's C sources: kernels, weights, the static arena and ``intm_model_run``.

The output is plain C99 with no TVM runtime and no heap: kernels are functions with
``restrict`` pointer arguments, weights are ``const`` arrays (they stay in flash), and every
other tensor lives at a fixed offset of one static arena planned by :mod:`.memory_plan`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from .c_printer import C_TYPES, CFunctionPrinter, float_literal
from .graph import Graph
from .memory_plan import MemoryPlan
from .tiling import TilePlan, loop_chain

DTYPE_ENUM = {
    "float32": "INTM_FLOAT32",
    "int8": "INTM_INT8",
    "uint8": "INTM_UINT8",
    "int16": "INTM_INT16",
    "int32": "INTM_INT32",
    "int64": "INTM_INT64",
    "bool": "INTM_BOOL",
}


@dataclasses.dataclass
class TensorInfo:
    """What users see of a model input or output: its name, type and quantization."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float = 0.0
    zero_point: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "scale": self.scale, "zero_point": self.zero_point}


@dataclasses.dataclass
class ModelSources:
    """The generated files (relative path -> text) and facts about them."""

    files: dict[str, str]
    arena_bytes: int
    weight_bytes: int
    kernel_static_scratch_bytes: int
    model_hash: int = 0


def _c_array_values(array: np.ndarray) -> list[str]:
    flat = array.ravel()
    if flat.dtype == np.float32 or flat.dtype == np.float64:
        out = []
        for value in flat.astype(np.float64).tolist():
            if math.isnan(value):
                out.append("NAN")
            elif math.isinf(value):
                out.append("INFINITY" if value > 0 else "-INFINITY")
            else:
                out.append(float_literal(value, str(flat.dtype)))
        return out
    if flat.dtype == np.bool_:
        return [str(int(v)) for v in flat.tolist()]
    suffix = {"int64": "LL", "uint32": "u", "uint64": "uLL"}.get(str(flat.dtype), "")
    if flat.dtype == np.int32:
        return [str(v) if v != -(2**31) else "INT32_MIN" for v in flat.tolist()]
    return [f"{v}{suffix}" if v >= 0 or not suffix else f"({v}{suffix})" for v in flat.tolist()]


def _wrap(values: list[str], per_line: int) -> str:
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return ",\n  ".join(lines)


def _desc(info: TensorInfo, nbytes: int) -> str:
    dims = ", ".join(str(d) for d in info.shape) or "0"
    return (f'  {{"{info.name}", {DTYPE_ENUM[info.dtype]}, {len(info.shape)}, {{{dims}}}, '
            f"{nbytes}u, {info.scale!r}f, {info.zero_point}}},")


def emit_model_sources(graph: Graph, plan: MemoryPlan, lowered: dict, name: str,
                       input_infos: list[TensorInfo], output_infos: list[TensorInfo],
                       board_name: str, tiles: dict[str, TilePlan]) -> ModelSources:
    """Generate ``model/model.h``, ``model/model.c``, ``model/kernels.c`` and weights.

    Parameters
    ----------
    graph : Graph
        Tensors and kernel calls of the model.
    plan : MemoryPlan
        Arena offsets of every non-weight tensor.
    lowered : dict[str, tvm.tirx.PrimFunc]
        Lowered kernel of every step, by kernel name.
    name : str
        Model name, used in comments.
    input_infos, output_infos : list[TensorInfo]
        Descriptors users see (names and quantization from the original model).
    board_name : str
        Board the sources are generated for, used in comments.
    tiles : dict[str, TilePlan]
        How each kernel is cut into tiles (see :mod:`.tiling`).
    """
    kernel_c, kernel_protos = [], []
    static_scratch = 0
    for kernel in sorted({step.kernel for step in graph.steps}):
        depth = tiles[kernel].depth
        tile_loops = loop_chain(lowered[kernel])[:depth] if depth else ()
        printer = CFunctionPrinter(lowered[kernel], f"intm_k_{kernel}", tile_loops,
                                   tiles[kernel].chunks, tiles[kernel].chunk_size)
        kernel_c.append(printer.print_function())
        static_scratch += printer.static_scratch_bytes
        kernel_protos.append(kernel_c[-1].split(" {\n", 1)[0].splitlines()[-1] + ";")

    weight_c, weight_decls = [], []
    weight_bytes = 0
    for tensor in graph.tensors.values():
        if tensor.kind != "weight":
            continue
        ctype = C_TYPES[tensor.dtype]
        count = max(1, int(np.prod(tensor.shape)))
        values = _c_array_values(tensor.value) or ["0"]
        per_line = 6 if tensor.dtype.startswith("float") else 16
        weight_decls.append(f"extern const {ctype} intm_{tensor.name}[{count}];")
        weight_c.append(
            f"/* shape {list(tensor.shape)} */\n"
            f"const {ctype} intm_{tensor.name}[{count}] __attribute__((aligned(8))) = {{\n"
            f"  {_wrap(values, per_line)}\n}};\n"
        )
        weight_bytes += tensor.nbytes

    header = f"/* Generated by tvm-intermittent for model {name!r}, board {board_name!r}. */\n"
    files = {
        "model/kernels.h": _kernels_h(header, kernel_protos),
        "model/kernels.c": header + "#include <math.h>\n#include <stdint.h>\n\n"
        + '#include "intm_kernel_ops.h"\n#include "intm_runtime.h"\n#include "kernels.h"\n\n'
        + "\n".join(kernel_c),
        "model/weights.h": header + "#ifndef INTM_MODEL_WEIGHTS_H_\n#define INTM_MODEL_WEIGHTS_H_\n"
        "\n#include <stdint.h>\n\n" + "\n".join(weight_decls) + "\n\n#endif\n",
        "model/weights.c": header + '#include <math.h>\n#include <stdint.h>\n\n#include "weights.h"\n\n'
        + "\n".join(weight_c),
        "model/model.h": _model_h(header, graph, plan, input_infos, output_infos),
    }
    # The hash names this model and memory layout in the NVM progress record: firmware that
    # finds a record with another hash starts over instead of resuming someone else's work.
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(files[rel].encode())
    digest.update(repr(sorted((k, dataclasses.astuple(t)) for k, t in tiles.items())).encode())
    model_hash = int.from_bytes(digest.digest()[:4], "little")
    files["model/model.c"] = _model_c(header, graph, plan, input_infos, output_infos, tiles,
                                      model_hash)
    return ModelSources(files, plan.arena_bytes, weight_bytes, static_scratch, model_hash)


def _kernels_h(header: str, protos: list[str]) -> str:
    return (header + "#ifndef INTM_MODEL_KERNELS_H_\n#define INTM_MODEL_KERNELS_H_\n\n"
            "#include <stdint.h>\n\n" + "\n".join(protos) + "\n\n#endif\n")


def _model_h(header, graph, plan, inputs, outputs) -> str:
    def doc(infos, what):
        lines = []
        for i, info in enumerate(infos):
            quant = (f", quantized: real = {info.scale!r} * (q - {info.zero_point})"
                     if info.scale else "")
            lines.append(f" *   {what} {i} \"{info.name}\": {info.dtype} {list(info.shape)}{quant}")
        return "\n".join(lines)

    return f"""{header}#ifndef INTM_MODEL_H_
#define INTM_MODEL_H_

#include "intm_runtime.h"

#ifdef __cplusplus
extern "C" {{
#endif

#define INTM_MODEL_NUM_INPUTS {len(graph.inputs)}
#define INTM_MODEL_NUM_OUTPUTS {len(graph.outputs)}
/** Bytes of the static arena that holds every input, intermediate and output tensor. */
#define INTM_MODEL_ARENA_BYTES {plan.arena_bytes}u

/** Inputs and outputs, in order (layouts are row-major, as in the original model):
{doc(inputs, "input")}
{doc(outputs, "output")}
 */
extern const intm_tensor_desc_t intm_model_inputs[INTM_MODEL_NUM_INPUTS];
extern const intm_tensor_desc_t intm_model_outputs[INTM_MODEL_NUM_OUTPUTS];

/** Operators as tiles: the executor's task table (see intm_executor.h). */
#define INTM_MODEL_NUM_TASKS {len(graph.steps)}u
extern const intm_task_t intm_model_tasks[INTM_MODEL_NUM_TASKS];
/** Hash of this model and its memory layout, kept in the NVM progress record. */
extern const uint32_t intm_model_hash;

/** Buffer to fill with input `index` before intm_model_run(); NULL if out of range. */
void* intm_model_input(int index);

/** Output `index`, valid after intm_model_run() returned INTM_OK; NULL if out of range. */
const void* intm_model_output(int index);

/**
 * Run one inference on the inputs in intm_model_input() buffers, without committing
 * progress (continuous power). The firmware harness resumes through the task table instead.
 *
 * @return INTM_OK. Kernels cannot fail at run time: shapes are fixed at compile time.
 */
intm_status_t intm_model_run(void);

#ifdef __cplusplus
}}
#endif

#endif /* INTM_MODEL_H_ */
"""


def _model_c(header, graph, plan, inputs, outputs, tiles, model_hash) -> str:
    def ptr(name):
        tensor = graph.tensors[name]
        ctype = C_TYPES[tensor.dtype]
        if tensor.kind == "weight":
            return f"intm_{name}"
        return f"(({ctype}*)(intm_arena + {plan.placements[name].offset}u))"

    lines = [header, '#include "model.h"\n', '#include "intm_executor.h"', '#include "kernels.h"',
             '#include "weights.h"\n']
    lines.append("/* Every non-constant tensor, at offsets planned from the tensors' lifetimes, in")
    lines.append(" * non-volatile memory: a tile's output survives the power failures after it. */")
    lines.append("INTM_NVM static uint8_t intm_arena[INTM_MODEL_ARENA_BYTES + 1u] "
                 "__attribute__((aligned(8)));\n")
    lines.append(f"const uint32_t intm_model_hash = 0x{model_hash:08x}u;\n")
    lines.append("const intm_tensor_desc_t intm_model_inputs[INTM_MODEL_NUM_INPUTS] = {")
    lines += [_desc(info, graph.tensors[n].nbytes) for info, n in zip(inputs, graph.inputs)]
    lines.append("};\n")
    lines.append("const intm_tensor_desc_t intm_model_outputs[INTM_MODEL_NUM_OUTPUTS] = {")
    lines += [_desc(info, graph.tensors[n].nbytes) for info, n in zip(outputs, graph.outputs)]
    lines.append("};\n")
    for which, names in (("input", graph.inputs), ("output", graph.outputs)):
        const = "const " if which == "output" else ""
        lines.append(f"{const}void* intm_model_{which}(int index) {{")
        lines.append("  switch (index) {")
        for i, name in enumerate(names):
            lines.append(f"    case {i}: return intm_arena + {plan.placements[name].offset}u;")
        lines.append("    default: return NULL;\n  }\n}\n")
    table = []
    for i, step in enumerate(graph.steps):
        tile = tiles[step.kernel]
        args = ", ".join(ptr(n) for n in step.inputs + step.outputs)
        lines.append(f"/* {step.kernel}: {tile.extent} tile(s) of about {tile.tile_instructions:,} "
                     f"instructions, {tile.tiles_per_commit} per commit */")
        lines.append(f"static void intm_task_{i}(int32_t begin, int32_t end) {{")
        if tile.depth:
            lines.append(f"  intm_k_{step.kernel}({args}, begin, end);\n}}\n")
        else:
            lines.append(f"  (void)begin;\n  (void)end;\n  intm_k_{step.kernel}({args});\n}}\n")
        table.append(f'  {{intm_task_{i}, {tile.extent}, {tile.tiles_per_commit}, "{step.kernel}"}},')
    lines.append("const intm_task_t intm_model_tasks[INTM_MODEL_NUM_TASKS] = {")
    lines += table
    lines.append("};\n")
    lines.append("intm_status_t intm_model_run(void) {")
    lines.append("  intm_resume_point_t at = {INTM_PHASE_RUNNING, 0u, 0u};")
    lines.append("  intm_executor_resume(intm_model_tasks, INTM_MODEL_NUM_TASKS, &at, 0);")
    lines.append("  return INTM_OK;\n}")
    return "\n".join(lines) + "\n"

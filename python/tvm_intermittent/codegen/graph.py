"""Read the Relax ``main`` left by the intermittent pipeline as a static list of kernel calls.

After legalization and fusion, ``main`` is a straight line of ``call_tir`` bindings. This
module turns it into plain data the C emitter and the memory planner can use: the tensors
(inputs, weights, intermediates, outputs) and the ordered steps that read and write them.
Anything else left in ``main`` (an operator TVM could not legalize, a dynamic shape) is an
error that names it.

A reshape (flatten, squeeze, expand_dims: any kernel that copies its input in row-major
order) becomes no step at all: its result is a *view* of its input's bytes, which the memory
plan gives the same arena offset. On a device that commits its progress to NVM the copy is
not free: micro_speech's 4,000-byte flatten took 5,141 instructions, 19 commits and a kernel
in flash.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax, s_tir, tirx

from ..errors import ModelError, UnsupportedOperatorError
from ..transform.notices import RESHAPE_COPY, Notice, report


@dataclasses.dataclass
class Tensor:
    """One tensor of the model; ``kind`` is input, weight, intermediate or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    value: np.ndarray | None = None  # weights only
    view_of: str | None = None  # a reshape's result: the tensor whose bytes it reads

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclasses.dataclass
class Step:
    """One kernel call: ``kernel(*inputs, *outputs)``, in execution order."""

    kernel: str
    inputs: list[str]
    outputs: list[str]


@dataclasses.dataclass
class Graph:
    tensors: dict[str, Tensor]
    steps: list[Step]
    inputs: list[str]
    outputs: list[str]
    kernels: dict[str, tirx.PrimFunc]


def _static_shape(ty, what: str) -> tuple[int, tuple[int, ...]]:
    shape = getattr(ty, "shape", None)
    if shape is None or not hasattr(shape, "values"):
        raise ModelError(f"{what} has no static shape ({ty}); give the model fixed input shapes")
    dims = []
    for dim in shape.values:
        if not isinstance(dim, tirx.IntImm):
            raise ModelError(
                f"{what} has a dynamic dimension {dim} in shape {list(shape.values)}; "
                "export the model with fixed shapes or pass shape_dict to the frontend"
            )
        dims.append(int(dim))
    return str(ty.dtype), tuple(dims)


def _call_op_name(value) -> str | None:
    op = getattr(value, "op", None)
    return str(op.name) if op is not None and hasattr(op, "name") else None


def extract_graph(mod, notices: list | None = None) -> Graph:
    """Turn the pipeline's ``main`` into a :class:`Graph`; errors name what is unsupported.

    ``notices``, when given, receives a :class:`~..transform.notices.Notice` for each
    reshape that stays a copy (see :func:`_drop_reshapes`).
    """
    main = mod["main"]
    tensors: dict[str, Tensor] = {}
    names: dict = {}  # relax Var -> tensor name
    used_names: set[str] = set()

    def fresh(hint: str) -> str:
        base = "".join(ch if ch.isalnum() else "_" for ch in hint) or "t"
        name, k = base, 1
        while name in used_names:
            name, k = f"{base}_{k}", k + 1
        used_names.add(name)
        return name

    inputs = []
    for param in main.params:
        dtype, shape = _static_shape(param.ty, f"model input {param.name!r}")
        name = fresh(param.name)
        tensors[name] = Tensor(name, shape, dtype, "input")
        names[param] = name
        inputs.append(name)

    steps: list[Step] = []
    unsupported: dict[str, int] = {}
    weight_count = 0
    for block in main.body.blocks:
        for binding in block.bindings:
            var, value = binding.var, binding.value
            kind = type(value).__name__
            if kind in ("Var", "DataflowVar") and value in names:
                names[var] = names[value]  # alias
                continue
            if kind == "Tuple":
                names[var] = [names[f] for f in value.fields]
                continue
            if kind == "TupleGetItem":
                names[var] = names[value.tuple_value][value.index]
                continue
            op = _call_op_name(value)
            if op != "relax.call_tir":
                label = op.removeprefix("relax.") if op else kind
                unsupported[label] = unsupported.get(label, 0) + 1
                continue
            kernel = value.args[0].name_hint
            args = []
            for arg in value.args[1].fields:
                arg_kind = type(arg).__name__
                if arg_kind in ("Constant", "GenericConst"):
                    array = arg.value.numpy()
                    name = fresh(f"weight_{weight_count}")
                    weight_count += 1
                    tensors[name] = Tensor(name, array.shape, str(array.dtype), "weight", array)
                    args.append(name)
                elif arg in names:
                    args.append(names[arg])
                else:
                    raise ModelError(f"call to {kernel} has an argument of kind {arg_kind}")
            out_types = var.ty.fields if type(var.ty).__name__ == "TupleType" else [var.ty]
            outs = []
            for i, ty in enumerate(out_types):
                dtype, shape = _static_shape(ty, f"result of {kernel}")
                name = fresh(var.name if len(out_types) == 1 else f"{var.name}_{i}")
                tensors[name] = Tensor(name, shape, dtype, "intermediate")
                outs.append(name)
            names[var] = outs[0] if len(out_types) == 1 else outs
            steps.append(Step(kernel, args, outs))

    if unsupported:
        listed = ", ".join(f"{op} (x{n})" for op, n in sorted(unsupported.items()))
        raise UnsupportedOperatorError(
            f"these operators have no TIR lowering for the C backend: {listed}"
        )

    result = main.body.body
    result_names = names.get(result) if type(result).__name__ != "Tuple" else [
        names[f] for f in result.fields
    ]
    if result_names is None:
        raise ModelError("the model's result is not a tensor computed by the model")
    outputs = result_names if isinstance(result_names, list) else [result_names]
    for i, name in enumerate(outputs):
        if tensors[name].kind != "intermediate":
            raise ModelError(f"model output {i} is a {tensors[name].kind}, not a computed tensor")
        tensors[name].kind = "output"

    kernels = {gv.name_hint: f for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}
    steps = _drop_reshapes(tensors, steps, inputs, outputs, kernels, notices)
    return Graph(tensors, steps, inputs, outputs, kernels)


def is_reshape(func: tirx.PrimFunc) -> bool:
    """Whether ``func`` only copies its one input to its one output in row-major order.

    Relax's own test (``has_reshape_pattern``, with which the Relax VM turns such calls into
    views); it needs the unscheduled form, a root block, which our scheduled kernels (every
    convolution, dense, softmax) no longer have: those are not reshapes.
    """
    if not isinstance(func.body, s_tir.SBlockRealize) or len(func.params) != 2:
        return False
    return bool(relax.analysis.has_reshape_pattern(func))


def view_root(tensors: dict[str, Tensor], name: str) -> str:
    """The tensor that owns the bytes ``name`` reads (itself unless it is a view)."""
    while tensors[name].view_of is not None:
        name = tensors[name].view_of
    return name


def _drop_reshapes(tensors, steps, inputs, outputs, kernels, notices=None) -> list[Step]:
    """Turn every reshape step into a view of its input; return the steps left.

    A view needs the same dtype and byte count (a reshape has them; the test guards against
    a kernel of another kind passing ``is_reshape``). One reshape stays a copy: a model
    output that would be a view of a model input. That output would be the input's own
    bytes, computed by no step, which is what :func:`extract_graph` refuses for an output
    that is an input; the copy keeps such a model compiling as it did.
    """
    kept = []
    for step in steps:
        src = step.inputs[0] if len(step.inputs) == 1 else None
        dst = step.outputs[0] if len(step.outputs) == 1 else None
        if (src is None or dst is None or step.kernel not in kernels
                or tensors[src].kind == "weight" or not is_reshape(kernels[step.kernel])
                or (tensors[src].dtype, tensors[src].nbytes)
                != (tensors[dst].dtype, tensors[dst].nbytes)):
            kept.append(step)
            continue
        if dst in outputs and view_root(tensors, src) in inputs:
            report(notices, Notice(
                f"{step.kernel} -> {tensors[dst].dtype}{list(tensors[dst].shape)}", RESHAPE_COPY,
                "its result, a model output, would be a view of a model input, and every "
                "output is computed by a step: the reshape copies the input"))
            kept.append(step)
            continue
        tensors[dst].view_of = src
    return kept

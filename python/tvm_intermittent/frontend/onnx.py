"""ONNX import through ``tvm.relax.frontend.onnx``.

Before TVM's importer runs, the graph is checked for what firmware cannot take, so that the
refusal names the operator and says what to do instead of surfacing the importer's own
error from deep inside a converter:

- a shape, size or axis given as a runtime input (a ``Reshape`` target shape, ``Pad``'s
  pads): firmware has fixed shapes, so it must be an initializer;
- an empty (zero-sized) input;
- the ONNX "quantized operator" form (``QLinearConv``, ``ConvInteger``...): quantized
  models are taken in QDQ form;
- a second ``MaxPool`` output (the indices);
- ``BatchNormalization`` in training mode (batch statistics, which inference does not use).

After the import, a model output that is a graph input passed through unchanged (``Clip``
without bounds, ``BatchNormalization``'s running statistics in training mode) is refused:
the firmware computes its outputs, and there is nothing to compute.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np

from ..codegen.model_source import TensorInfo
from ..errors import ModelError, UnsupportedOperatorError

#: Inputs (by position) that give a shape, size, axis or padding, per operator type. Firmware
#: has fixed shapes, so these must be constants of the file (initializers or Constant nodes).
SHAPE_INPUTS = {
    "Reshape": (1,), "Pad": (1, 2, 3), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4),
    "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "Resize": (1, 2, 3), "Upsample": (1,),
    "ConstantOfShape": (0,), "Range": (0, 1, 2), "TopK": (1,), "OneHot": (1,),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,),
}

#: ONNX's quantized-operator form; this compiler lowers the QDQ form to integer kernels.
QOPERATOR_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "QLinearAdd",
                           "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool",
                           "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu",
                           "QLinearSoftmax"})

QDQ_HINT = ("this compiler takes quantized ONNX models in QDQ form (QuantizeLinear and "
            "DequantizeLinear around float operators, as onnxruntime.quantization."
            "quantize_static(..., quant_format=QuantFormat.QDQ) writes them): quantize the "
            "float model that way")


def _value_info_shape(value_info, shape_dict) -> list[int]:
    """Static shape of a graph input/output; symbolic or empty dimensions are an error."""
    name = value_info.name
    if shape_dict and name in shape_dict:
        return [int(d) for d in shape_dict[name]]
    dims = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_value"):
            shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?"
                     for d in value_info.type.tensor_type.shape.dim]
            raise ModelError(
                f"input {name!r} has a zero-sized dimension (shape {shape}): an empty tensor "
                "gives firmware nothing to compute; export the model with a non-empty input")
        else:
            symbol = dim.dim_param or "?"
            raise ModelError(
                f"input {name!r} has a dynamic dimension {symbol!r}; firmware needs fixed shapes: "
                f"pass shape_dict={{{name!r}: [...]}} (CLI: --shape {name}=1,...)"
            )
    return dims


def _node_label(node) -> str:
    return f"{node.op_type} (node {node.name!r})" if node.name else node.op_type


def _check_graph(graph, runtime_inputs: set[str]) -> None:
    """Refuse, all at once, what firmware cannot take (see the module docstring)."""
    problems, qoperators = [], set()
    for node in graph.node:
        label = _node_label(node)
        for index in SHAPE_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] in runtime_inputs:
                problems.append(
                    f"operator {label}: input {index} {node.input[index]!r} gives a shape, size, "
                    f"axis or pad value at run time, but firmware has fixed shapes; make it an "
                    f"initializer (a constant stored in the model file)")
        if node.op_type in QOPERATOR_OPS:
            qoperators.add(node.op_type)
        if node.op_type == "BatchNormalization" and any(
                a.name == "training_mode" and a.i for a in node.attribute):
            problems.append(f"operator {label}: training_mode=1 normalizes with the batch's own "
                            "statistics and updates the running ones, which is training; export "
                            "the model for inference (training_mode=0)")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            problems.append(f"operator {label}: its second output (Indices) is not supported; "
                            "remove it from the model (keep MaxPool's first output only)")
    if qoperators:
        problems.append(f"operators {', '.join(sorted(qoperators))} are ONNX's quantized-"
                        f"operator form, which is not supported; {QDQ_HINT}")
    if problems:
        error = UnsupportedOperatorError if qoperators else ModelError
        raise error("the ONNX model cannot be compiled for firmware:\n  " + "\n  ".join(problems))


def _passthrough_outputs(mod, graph) -> None:
    """Refuse outputs that the imported ``main`` returns as one of its own parameters."""
    main = mod["main"]
    params = {p: p.name for p in main.params}
    bound = {}
    for block in main.body.blocks:
        for binding in block.bindings:
            bound[binding.var] = binding.value
    result = main.body.body
    if result in bound and type(bound[result]).__name__ == "Tuple":
        result = bound[result]
    fields = list(result.fields) if type(result).__name__ == "Tuple" else [result]
    producers = {out: node for node in graph.node for out in node.output}
    problems = []
    for index, (var, vi) in enumerate(zip(fields, graph.output)):
        while var in bound and type(bound[var]).__name__ in ("Var", "DataflowVar"):
            var = bound[var]
        if var not in params:
            continue
        node = producers.get(vi.name)
        what = f"operator {_node_label(node)} passes" if node is not None else "the graph passes"
        problems.append(
            f"model output {index} {vi.name!r}: {what} input {params[var]!r} through unchanged, "
            "so there is nothing for the firmware to compute; remove that output from the "
            "model (the caller already has the input)")
    if problems:
        raise ModelError("the ONNX model cannot be compiled for firmware:\n  "
                         + "\n  ".join(problems))


def import_onnx(model, shape_dict=None, name="model"):
    """Import an ONNX model given as a path or a ``ModelProto``."""
    import onnx  # pylint: disable=import-outside-toplevel
    from onnx import helper  # pylint: disable=import-outside-toplevel
    from tvm.relax.frontend.onnx import from_onnx  # pylint: disable=import-outside-toplevel

    from . import ImportedModel  # pylint: disable=import-outside-toplevel

    source = None
    if isinstance(model, Path):
        source = model.read_bytes()
        try:
            model = onnx.load_from_string(source)
        except Exception as err:  # protobuf raises its own DecodeError types
            raise ModelError(f"{str(model)!r} is not a valid ONNX file: {err}") from err
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        # Unknown operators are reported below, all at once, by TVM's importer.
        if "No Op registered" not in str(err):
            raise ModelError(f"the ONNX model is malformed: {str(err).splitlines()[0]}") from err

    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in initializers]
    _check_graph(model.graph, {vi.name for vi in graph_inputs})
    shapes = {vi.name: _value_info_shape(vi, shape_dict) for vi in graph_inputs}
    dtypes = {vi.name: str(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
              for vi in graph_inputs}
    printed = io.StringIO()  # TVM prints the failing converter's name on stdout
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")
            mod = from_onnx(model, shape_dict=shapes, dtype_dict=dtypes)
    except Exception as err:  # TVM raises OpNotImplemented, TVMError, ValueError...
        raise _importer_error(err, printed.getvalue()) from err
    _passthrough_outputs(mod, model.graph)

    inputs = [TensorInfo(vi.name, dtypes[vi.name], tuple(shapes[vi.name])) for vi in graph_inputs]
    outputs = []
    for vi in model.graph.output:
        dtype = str(np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)))
        dims = tuple(int(d.dim_value) for d in vi.type.tensor_type.shape.dim)
        outputs.append(TensorInfo(vi.name, dtype, dims))
    if source is None:
        source = model.SerializeToString()
    return ImportedModel(mod, name, "onnx", inputs, outputs, source)


def _importer_error(err: Exception, printed: str) -> ModelError:
    """Our error for a failure inside TVM's importer, naming the operator it was converting."""
    message = str(err).strip().splitlines()
    text = next((line for line in message if "not supported" in line or "Unsupported" in line),
                message[-1] if message else repr(err))
    if "not supported" in text or "OpNotImplemented" in type(err).__name__:
        found = re.search(r"not supported for frontend ONNX: (.*)", text)
        ops = {op.strip() for op in found.group(1).split(",")} if found else set()
        hint = (QDQ_HINT if ops and ops <= QOPERATOR_OPS else
                "replace them with supported operators (docs/conformance.md lists the "
                "operators checked against ONNX's node tests)")
        return UnsupportedOperatorError(f"ONNX model: {text}; {hint}")
    converting = re.search(r"Error converting operator (\w+)", printed)
    where = f" on operator {converting.group(1)}" if converting else ""
    return ModelError(f"TVM's ONNX importer failed{where}: {text}; simplify or re-export that "
                      "operator with constant attributes and fixed shapes")

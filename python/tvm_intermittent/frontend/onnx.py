"""ONNX import through ``tvm.relax.frontend.onnx``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..codegen.model_source import TensorInfo
from ..errors import ModelError, UnsupportedOperatorError


def _value_info_shape(value_info, shape_dict) -> list[int]:
    """Static shape of a graph input/output; symbolic dimensions are an error."""
    name = value_info.name
    if shape_dict and name in shape_dict:
        return [int(d) for d in shape_dict[name]]
    dims = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            symbol = dim.dim_param or "?"
            raise ModelError(
                f"input {name!r} has a dynamic dimension {symbol!r}; firmware needs fixed shapes: "
                f"pass shape_dict={{{name!r}: [...]}} (CLI: --shape {name}=1,...)"
            )
    return dims


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
    shapes = {vi.name: _value_info_shape(vi, shape_dict) for vi in graph_inputs}
    dtypes = {vi.name: str(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
              for vi in graph_inputs}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = from_onnx(model, shape_dict=shapes, dtype_dict=dtypes)
    except Exception as err:  # TVM raises OpNotImplemented, TVMError, ValueError...
        message = str(err).strip().splitlines()
        text = next((line for line in message if "not supported" in line or "Unsupported" in line),
                    message[-1] if message else repr(err))
        if "not supported" in text or "OpNotImplemented" in type(err).__name__:
            raise UnsupportedOperatorError(f"ONNX model: {text}") from err
        raise ModelError(f"TVM's ONNX importer failed: {text}") from err

    inputs = [TensorInfo(vi.name, dtypes[vi.name], tuple(shapes[vi.name])) for vi in graph_inputs]
    outputs = []
    for vi in model.graph.output:
        dtype = str(np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)))
        dims = tuple(int(d.dim_value) for d in vi.type.tensor_type.shape.dim)
        outputs.append(TensorInfo(vi.name, dtype, dims))
    if source is None:
        source = model.SerializeToString()
    return ImportedModel(mod, name, "onnx", inputs, outputs, source)

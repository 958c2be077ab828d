"""Model importers: ONNX and TFLite files to a Relax IRModule, through TVM's own frontends.

This layer stays thin. It adds what a compiler for fixed-size firmware needs and TVM's
importers leave out: a clear error for a malformed file, every unsupported operator listed
at once, a refusal of dynamic shapes, and the input/output names and quantization
parameters users see in the generated ``model.h``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import tvm

from ..codegen.model_source import TensorInfo
from ..errors import ModelError


@dataclasses.dataclass
class ImportedModel:
    """A model imported to Relax, with what the original file said about its tensors."""

    mod: tvm.IRModule
    name: str
    format: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    source: bytes | None = None  # the original file, for reference runs


def load_model(model, shape_dict: dict | None = None) -> ImportedModel:
    """Import an ONNX (path or ``onnx.ModelProto``) or TFLite (path) model.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
        The model. The format is taken from the file extension (``.onnx``, ``.tflite``).
    shape_dict : dict[str, list[int]], optional
        Fixed shapes for inputs whose dimensions are symbolic in the file.

    Returns
    -------
    ImportedModel
        The Relax module plus input/output descriptors.
    """
    if type(model).__name__ == "ModelProto":
        from .onnx import import_onnx  # pylint: disable=import-outside-toplevel

        return import_onnx(model, shape_dict, name=model.graph.name or "model")
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model file {str(path)!r} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            from .onnx import import_onnx  # pylint: disable=import-outside-toplevel

            return import_onnx(path, shape_dict, name=path.stem)
        if suffix == ".tflite":
            from .tflite import import_tflite  # pylint: disable=import-outside-toplevel

            return import_tflite(path, shape_dict, name=path.stem)
        raise ModelError(
            f"cannot tell the format of {str(path)!r} from its extension {suffix!r}; "
            "use a .onnx or .tflite file"
        )
    raise ModelError(
        f"expected a path to a .onnx/.tflite file or an onnx.ModelProto, got {type(model).__name__}"
    )

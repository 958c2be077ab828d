"""Model importers: ONNX and TFLite files to a Relax IRModule, through TVM's own frontends.

This layer stays thin. It adds what a compiler for fixed-size firmware needs and TVM's
importers leave out: a clear error for a malformed file, every unsupported operator listed
at once, a refusal of dynamic shapes, and the input/output names and quantization
parameters users see in the generated ``model.h``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import IntermittentError, ModelError
from . import validate

if TYPE_CHECKING:  # importing TVM takes a second; checking a file needs none of it
    import tvm

    from ..codegen.model_source import TensorInfo


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

    The file is checked (:mod:`.validate`) before TVM's importer reads it, and any error the
    importer still raises becomes a :class:`~tvm_intermittent.errors.ModelError` naming the
    file and the cause: a bad model file is a user's input, never a crash.

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

    Raises
    ------
    ModelError
        The file is missing, empty, of another format than its extension says, malformed,
        or uses operators the compiler does not support (then all of them are listed).
    """
    if type(model).__name__ == "ModelProto":
        from .onnx import import_onnx  # pylint: disable=import-outside-toplevel

        label = model.graph.name or "model"
        validate.check_onnx(model, repr(label), shape_dict)
        return _imported(lambda: import_onnx(model, shape_dict, name=label), label)
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError(f"expected a path to a .onnx/.tflite file or an onnx.ModelProto, got "
                         f"{type(model).__name__}")
    path = Path(model)
    data, proto = check_model_file(path, shape_dict)
    if proto is not None:
        from .onnx import import_onnx  # pylint: disable=import-outside-toplevel

        return _imported(lambda: import_onnx(proto, shape_dict, name=path.stem), str(path),
                         source=data)
    from .tflite import import_tflite  # pylint: disable=import-outside-toplevel

    return _imported(lambda: import_tflite(path, shape_dict, name=path.stem), str(path))


def check_model_file(path, shape_dict: dict | None = None):
    """Read and check a ``.onnx``/``.tflite`` file without TVM (see :mod:`.validate`).

    Neither this function nor :mod:`.validate` imports TVM, so the command line refuses a
    bad file before it pays for that import (about a second).

    Returns
    -------
    data, proto : bytes and onnx.ModelProto or None
        The file's bytes, and the parsed model for an ONNX file.

    Raises
    ------
    ModelError
        As :func:`load_model`, for everything but what only TVM's importer finds.
    """
    path = Path(path)
    data = _read_model_file(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        proto = _parse_onnx(data, path)
        validate.check_onnx(proto, repr(str(path)), shape_dict)
        return data, proto
    if suffix == ".tflite":
        validate.check_tflite(data, str(path))
        return data, None
    found = validate.sniff(data)
    kind = {"onnx": "an ONNX", "tflite": "a TFLite"}.get(found)
    hint = (f"its content looks like {kind} model: name it {path.stem}.{found}" if kind else
            "use a .onnx or .tflite file")
    raise ModelError(f"cannot tell the format of {str(path)!r} from its extension "
                     f"{suffix or '(none)'!r}; {hint}")


def _read_model_file(path: Path) -> bytes:
    """The bytes of a model file, or a ModelError saying why there are none."""
    if path.is_dir():
        raise ModelError(f"{str(path)!r} is a directory; pass the .onnx or .tflite model file")
    if not path.exists():
        raise ModelError(f"model file {str(path)!r} does not exist")
    if not path.is_file():
        raise ModelError(f"{str(path)!r} is not a regular file (a device or a pipe?); pass "
                         "the .onnx or .tflite model file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read model file {str(path)!r}: {err.strerror}") from err
    if not data:
        raise ModelError(f"model file {str(path)!r} is empty")
    return data


def _parse_onnx(data: bytes, path: Path):
    import onnx  # pylint: disable=import-outside-toplevel

    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # protobuf raises its own DecodeError types
        raise ModelError(f"{str(path)!r} is not a valid ONNX file ({err}); export the model "
                         f"again{validate.content_hint(data, 'onnx')}") from err
    if not model.graph.node and not model.graph.input:
        # Protobuf parses many byte strings as an empty message.
        raise ModelError(f"{str(path)!r} is not an ONNX model (it holds no graph)"
                         f"{validate.content_hint(data, 'onnx')}")
    return model


def _imported(run, label: str, source: bytes | None = None) -> ImportedModel:
    """Run an importer; an error of TVM's or of the parsers becomes a ModelError."""
    printed = io.StringIO()
    try:
        # TVM's ONNX importer prints the operator it failed on to stdout, which is where
        # `--json` writes its result; keep it, for the message.
        with contextlib.redirect_stdout(printed):
            imported = run()
    except IntermittentError:
        raise
    except Exception as err:  # the importers raise TVMError, KeyError, AssertionError...
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        cause = lines[-1] if lines else ""
        where = next((line.split(",")[0] for line in printed.getvalue().splitlines()
                      if line.startswith("Error converting operator")), None)
        raise ModelError(f"importing {label} failed"
                         f"{' (' + where.lower() + ')' if where else ''}: {type(err).__name__}"
                         f"{': ' + cause if cause else ''}; the file is probably damaged or "
                         f"uses a feature TVM's importer does not handle") from err
    if source is not None:
        imported.source = source
    _check_declared_outputs(imported, label)
    return imported


def _check_declared_outputs(imported: ImportedModel, label: str) -> None:
    """Refuse a file whose declared output shapes are not what its operators compute.

    The importers build the graph from the operators and leave the declared shapes unread,
    so a damaged shape field would otherwise compile to firmware whose outputs have a shape
    the file, and every runtime that reads it, disagree with.
    """
    ret = imported.mod["main"].ret_ty
    computed = list(ret.fields) if hasattr(ret, "fields") else [ret]
    if len(computed) != len(imported.outputs):
        return
    problems = []
    for info, ty in zip(imported.outputs, computed):
        values = getattr(getattr(ty, "shape", None), "values", None)
        declared = tuple(int(d) for d in info.shape)
        # An ONNX output may leave its shape out; a TFLite output without one is a scalar.
        unknown = not declared and imported.format != "tflite"
        if values is None or unknown or any(d <= 0 for d in declared):
            continue  # unknown on one side
        try:
            dims = tuple(int(d) for d in values)
        except TypeError:
            continue  # a symbolic dimension
        if dims != declared:
            problems.append(f"output {info.name!r} is declared {list(declared)} but the "
                            f"operators compute {list(dims)}")
    if problems:
        raise ModelError(f"{label} is inconsistent: " + "; ".join(problems)
                         + "; the file is damaged: export the model again")

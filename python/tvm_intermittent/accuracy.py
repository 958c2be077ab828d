"""Top-1 accuracy of a model on labelled data, measured on the reference runtime.

A compiled model computes what the reference runtime computes (bit for bit for TFLite
models, within one step for ONNX QDQ models; see :mod:`.reference`), so its accuracy is the
reference runtime's on the same data (for ONNX, up to scores tied within a step): the TFLite Micro interpreter for a ``.tflite`` file,
ONNX Runtime for an ``.onnx`` file. Measuring there runs natively on the host, far faster
than one emulated inference per sample, and shares no code with the compiler.

The labelled data is one ``.npz`` file (:func:`load_labelled` checks it):

* ``labels``: integer class ids, shape ``[N]``, each in ``0 .. classes - 1`` (the index of
  the model's output score for that class);
* one array per model input, named as the input, or ``x`` when the model has one input:
  the N samples stacked on a new first axis, ``[N, *input_shape]``; for an input whose
  shape starts with a batch of 1, ``[N, *input_shape[1:]]`` is accepted too.

Samples have the input's dtype, with one conversion: float data for an integer (int8,
uint8) input is quantized with the input's own scale and zero point,
``q = clamp(round(x / scale) + zero_point)`` rounding half away from zero as TFLite does,
so a CIFAR-10 batch in pixel units can be given to an int8 model as ``pixel - 128``. Float
data of another width for a float input is converted to the input's float type. Anything
else (integer data for a float input, a wrong shape, NaN) is refused: a silent cast would
give a plausible but wrong accuracy.

Examples
--------
.. code-block:: python

    import numpy as np
    from tvm_intermittent import accuracy

    np.savez("cifar_test.npz", labels=labels, x=images)   # images: int8 [N, 32, 32, 3]
    result = accuracy.evaluate("resnet8.tflite", "cifar_test.npz")
    print(result.summary())
"""

from __future__ import annotations

import dataclasses
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import InputError, ModelError, ToolchainError

#: The name of the labels array in a labelled-data file.
LABELS = "labels"
#: The name of the samples array when the model has a single input.
SINGLE_INPUT = "x"

_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
_EXTRA_HINT = "pip install 'tvm-intermittent[test]'"


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What one model input takes: name, shape, dtype and (for an integer input) the affine
    quantization ``real = scale * (q - zero_point)`` that float data is converted with."""

    name: str
    shape: tuple
    dtype: np.dtype
    scale: float | None = None
    zero_point: int | None = None


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy of a model on labelled data.

    Attributes
    ----------
    correct, count : int
        Samples whose highest output score is at the labelled class, and all samples.
    per_class : dict of int to (int, int)
        ``class id -> (correct, count)`` for every class that has samples.
    runtime : str
        The reference runtime that computed the scores (``"tflite-micro"`` or
        ``"onnxruntime"``).
    model, data : str
        The files, for reports.
    """

    correct: int
    count: int
    per_class: dict
    runtime: str
    model: str
    data: str

    @property
    def top1(self) -> float:
        """Fraction of samples classified right."""
        return self.correct / self.count

    def summary(self) -> str:
        return (f"top-1 {100 * self.top1:.2f} % ({self.correct:,} of {self.count:,} samples, "
                f"{self.runtime})")

    def to_dict(self) -> dict:
        return {"top1": self.top1, "correct": self.correct, "count": self.count,
                "per_class": {str(k): {"correct": c, "count": n}
                              for k, (c, n) in sorted(self.per_class.items())},
                "runtime": self.runtime, "model": self.model, "data": self.data}


# ---- the model's inputs and outputs ----------------------------------------------------


def _tflite_specs(path: Path):
    from .reference import tflite_io_details  # pylint: disable=import-outside-toplevel

    inputs, outputs = tflite_io_details(path)
    specs = [InputSpec(i.name, tuple(i.shape), i.dtype,
                       i.scale if isinstance(i.scale, float) else None,
                       i.zero_point if isinstance(i.zero_point, int) else None)
             for i in inputs]
    return specs, [tuple(o.shape) for o in outputs]


def _onnx_specs(path: Path):
    import onnx  # pylint: disable=import-outside-toplevel
    from onnx import helper  # pylint: disable=import-outside-toplevel

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and friends
        raise ModelError(f"cannot read ONNX model {str(path)!r}: {err}") from err
    constants = {i.name for i in model.graph.initializer}

    def shape(value):
        dims = value.type.tensor_type.shape.dim
        return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)

    specs = []
    for value in model.graph.input:
        if value.name in constants:
            continue
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        specs.append(InputSpec(value.name, shape(value), dtype))
    return specs, [shape(o) for o in model.graph.output]


def model_io(model_path) -> tuple[list[InputSpec], list[tuple]]:
    """The inputs a model takes and the shapes of its outputs, read from its file.

    Raises
    ------
    InputError
        The file is not a ``.tflite`` or ``.onnx`` model, or does not exist.
    """
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"model {str(path)!r} does not exist; pass a .tflite or .onnx file")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return _tflite_specs(path)
    if suffix == ".onnx":
        return _onnx_specs(path)
    raise InputError(f"model {str(path)!r}: accuracy is measured on .tflite (TFLite Micro) or "
                     ".onnx (onnxruntime) files")


def _classes(output_shapes: list[tuple], path) -> int:
    """The number of classes: the size of the one output, less a leading batch of 1."""
    if len(output_shapes) != 1:
        raise InputError(f"model {str(path)!r} has {len(output_shapes)} outputs; top-1 "
                         "accuracy needs a classifier with one output of class scores")
    shape = output_shapes[0]
    scores = shape[1:] if len(shape) > 1 and shape[0] == 1 else shape
    if len(scores) != 1 or scores[0] < 2:
        raise InputError(f"model {str(path)!r} outputs {list(shape)}, not one score per class "
                         "([1, classes] or [classes]); top-1 accuracy needs a classifier "
                         "(an autoencoder or detector is measured by other metrics)")
    return int(scores[0])


# ---- the labelled data -----------------------------------------------------------------


def _how_to_save(specs: list[InputSpec]) -> str:
    if len(specs) == 1:
        return (f"save it with np.savez(path, {LABELS}=labels, {SINGLE_INPUT}=samples) where "
                f"samples is {specs[0].dtype} [N, {', '.join(map(str, specs[0].shape))}]")
    names = ", ".join(f"{s.name}=..." for s in specs)
    return f"save it with np.savez(path, {LABELS}=labels, {names})"


def _round_half_away(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def _convert(array: np.ndarray, spec: InputSpec, path: str) -> np.ndarray:
    """The samples in the input's dtype: as they are, or converted as the module says."""
    if array.dtype == spec.dtype:
        converted = array
    elif np.issubdtype(array.dtype, np.floating) and np.issubdtype(spec.dtype, np.floating):
        converted = array.astype(spec.dtype)
    elif np.issubdtype(array.dtype, np.floating) and np.issubdtype(spec.dtype, np.integer):
        if spec.scale is None or spec.zero_point is None:
            raise InputError(f"{path!r}: {spec.name!r} holds {array.dtype} data but the model's "
                             f"{spec.dtype} input has no single scale and zero point to "
                             f"quantize it with; give the samples as {spec.dtype}")
        info = np.iinfo(spec.dtype)
        if not np.all(np.isfinite(array)):
            raise InputError(f"{path!r}: {spec.name!r} holds NaN or infinite values")
        q = _round_half_away(array.astype(np.float64) / spec.scale) + spec.zero_point
        converted = np.clip(q, info.min, info.max).astype(spec.dtype)
    else:
        raise InputError(f"{path!r}: {spec.name!r} holds {array.dtype} data but the model "
                         f"takes {spec.dtype}; convert the samples (x.astype(np.{spec.dtype})) "
                         "if that is what they mean")
    if np.issubdtype(converted.dtype, np.floating) and not np.all(np.isfinite(converted)):
        raise InputError(f"{path!r}: {spec.name!r} holds NaN or infinite values")
    return converted


def _samples(array: np.ndarray, spec: InputSpec, path: str) -> np.ndarray:
    """``[N, *shape]`` samples of one input, from ``[N, *shape]`` or ``[N, *shape[1:]]``."""
    shape = tuple(spec.shape)
    if -1 in shape:
        raise InputError(f"input {spec.name!r} has a symbolic shape {list(shape)}; accuracy "
                         "needs a model with fixed input shapes")
    if array.shape[1:] == shape:
        return array
    if shape and shape[0] == 1 and array.shape[1:] == shape[1:]:
        return array.reshape((array.shape[0],) + shape)
    batch = f"[N, {', '.join(map(str, shape))}]"
    alt = f" or [N, {', '.join(map(str, shape[1:]))}]" if shape and shape[0] == 1 else ""
    raise InputError(f"{path!r}: {spec.name!r} has shape {list(array.shape)}, the model's "
                     f"input {list(shape)} needs samples stacked as {batch}{alt}")


def load_labelled(data_path, specs: list[InputSpec], classes: int | None = None):
    """Read and check a labelled-data file for a model with inputs ``specs``.

    Parameters
    ----------
    data_path : str or os.PathLike
        The ``.npz`` file (format in the module docstring).
    specs : list of InputSpec
        The model's inputs (:func:`model_io`).
    classes : int, optional
        The number of classes; labels outside ``0 .. classes - 1`` are refused.

    Returns
    -------
    labels : numpy.ndarray
        int64 ``[N]``.
    samples : list of numpy.ndarray
        Per input, in the model's order, ``[N, *input_shape]`` in the input's dtype.

    Raises
    ------
    InputError
        Not an ``.npz``, no ``labels``, labels not integer ids in range, an input missing,
        an array the model does not take, a wrong shape or dtype, or counts that differ.
    """
    path = str(data_path)
    file = Path(path)
    if not file.is_file():
        raise InputError(f"labelled data {path!r} does not exist; {_how_to_save(specs)}")
    try:
        archive = np.load(file, allow_pickle=False)
    except _READ_ERRORS as err:
        raise InputError(f"cannot read {path!r} as .npz: {err}; {_how_to_save(specs)}") from err
    if isinstance(archive, np.ndarray):
        raise InputError(f"{path!r} is a single .npy array; labelled data is an .npz with "
                         f"'{LABELS}' and the samples: {_how_to_save(specs)}")
    with archive:
        names = list(archive.files)
        wanted = [s.name for s in specs]
        if len(specs) == 1 and SINGLE_INPUT in names and wanted[0] not in names:
            keys = {wanted[0]: SINGLE_INPUT}
        else:
            keys = {n: n for n in wanted}
        problems = []
        if LABELS not in names:
            problems.append(f"has no '{LABELS}' array")
        missing = [n for n, key in keys.items() if key not in names]
        if missing:
            problems.append(f"lacks the samples of input(s) {missing}")
        extra = sorted(set(names) - set(keys.values()) - {LABELS})
        if extra:
            problems.append(f"has arrays the model does not take: {extra}")
        if problems:
            raise InputError(f"labelled data {path!r} {'; '.join(problems)}; the model's "
                             f"inputs are {wanted}: {_how_to_save(specs)}")
        try:
            labels = archive[LABELS]
            raw = [archive[keys[s.name]] for s in specs]
        except _READ_ERRORS as err:
            raise InputError(f"cannot read {path!r}: {err}") from err
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{path!r}: '{LABELS}' must be integer class ids of shape [N], got "
                         f"{labels.dtype} {list(labels.shape)} (one-hot labels: "
                         "labels.argmax(axis=1))")
    if labels.size == 0:
        raise InputError(f"{path!r} holds no samples ('{LABELS}' is empty)")
    if classes is not None:
        bad = labels[(labels < 0) | (labels >= classes)]
        if bad.size:
            raise InputError(f"{path!r}: {bad.size} label(s) outside 0..{classes - 1} (the "
                             f"model has {classes} classes), e.g. {int(bad[0])}")
    samples = []
    for array, spec in zip(raw, specs):
        if array.ndim == 0 or array.shape[0] != labels.shape[0]:
            raise InputError(f"{path!r}: {labels.shape[0]} labels but "
                             f"{array.shape[0] if array.ndim else 'no'} samples of "
                             f"{spec.name!r} (shape {list(array.shape)}); one sample per label")
        samples.append(_convert(_samples(array, spec, path), spec, path))
    return labels.astype(np.int64), samples


# ---- the runtimes ----------------------------------------------------------------------


def _tflite_micro_scores(path: Path, samples, count: int):
    """Class scores of each sample, one TFLite Micro interpreter for all of them."""
    try:
        # pylint: disable-next=import-outside-toplevel
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as err:
        raise ToolchainError(f"accuracy on a .tflite model needs the 'tflite-micro' package: "
                             f"{_EXTRA_HINT}") from err
    data = path.read_bytes()
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=10 * len(data) + (64 << 10))
    for i in range(count):
        for j, array in enumerate(samples):
            interpreter.set_input(np.ascontiguousarray(array[i]), j)
        interpreter.invoke()
        yield np.asarray(interpreter.get_output(0)).reshape(-1)


def _onnxruntime_scores(path: Path, specs, samples, count: int):
    try:
        import onnxruntime  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise ToolchainError(f"accuracy on an .onnx model needs the 'onnxruntime' package: "
                             f"{_EXTRA_HINT}") from err
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped exception classes
        raise ModelError(f"ONNX Runtime could not load {str(path)!r}: {err}") from err
    for i in range(count):
        feeds = {s.name: np.ascontiguousarray(a[i]) for s, a in zip(specs, samples)}
        yield np.asarray(session.run(None, feeds)[0]).reshape(-1)


def evaluate(model_path, data, progress=None) -> Accuracy:
    """Top-1 accuracy of a ``.tflite`` or ``.onnx`` model on labelled data.

    Parameters
    ----------
    model_path : str or os.PathLike
        The model file: TFLite Micro runs a ``.tflite`` file, ONNX Runtime an ``.onnx`` one.
    data : str or os.PathLike
        Labelled data, an ``.npz`` in the format of the module docstring.
    progress : callable, optional
        Wraps the iteration over samples (``progress(iterable, total=N, desc=...)``), e.g.
        the CLI environment's progress bar.

    Returns
    -------
    Accuracy

    Raises
    ------
    InputError
        The data does not fit the model (see :func:`load_labelled`), or the model is not a
        classifier with one output of class scores.
    """
    path = Path(model_path)
    specs, outputs = model_io(path)
    classes = _classes(outputs, path)
    labels, samples = load_labelled(data, specs, classes)
    count = labels.shape[0]
    if path.suffix.lower() == ".tflite":
        runtime, scores = "tflite-micro", _tflite_micro_scores(path, samples, count)
    else:
        runtime, scores = "onnxruntime", _onnxruntime_scores(path, specs, samples, count)
    if progress is not None:
        scores = progress(scores, total=count, desc=f"accuracy of {path.name}")
    hits = np.zeros(count, dtype=bool)
    for i, score in enumerate(scores):
        if score.size != classes:
            raise ModelError(f"{str(path)!r} gave {score.size} scores, expected {classes}")
        hits[i] = int(np.argmax(score)) == labels[i]
    per_class = {int(c): (int(hits[labels == c].sum()), int((labels == c).sum()))
                 for c in np.unique(labels)}
    return Accuracy(int(hits.sum()), count, per_class, runtime, str(path), str(data))

"""The ``.npy``/``.npz`` files of ``run --input`` and ``run --output``.

Inputs are checked strictly against ``model.json`` rather than converted (a float64 array
cast to float32, or a transposed image reshaped to fit, gives plausible but wrong outputs),
and every problem is reported with what the model expects and how to make such a file.
Outputs are written to a temporary file that is renamed into place, so an error or an
interruption never leaves a half-written file under the user's name.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError

#: What every ``.npy`` file starts with, and every ``.npz`` (a zip archive).
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"

#: Errors numpy, zipfile and zlib raise on a damaged file; none of them is a bug of ours.
_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _how_to_save(specs: list[dict]) -> str:
    if len(specs) == 1:
        spec = specs[0]
        return (f"save it with np.save(path, x) where x is a {spec['dtype']} array of shape "
                f"{list(spec['shape'])}")
    names = ", ".join(f"{s['name']}=..." for s in specs)
    return f"save them with np.savez(path, {names})"


def _describe(specs: list[dict]) -> str:
    return ", ".join(f"{s['name']!r} {s['dtype']} {list(s['shape'])}" for s in specs)


def _arrays_of_npz(archive, path: str, specs: list[dict]) -> list[np.ndarray]:
    """The arrays of an ``.npz`` in the model's input order, by name.

    ``np.savez(path, a, b)`` names its arrays ``arr_0``, ``arr_1``, ...; those positional
    names are taken in order. Any other set of names must be exactly the model's: an extra
    array is a sign of the wrong file, and guessing an order from the archive would feed
    one input's data to another.
    """
    names = list(archive.files)
    wanted = [s["name"] for s in specs]
    positional = [f"arr_{i}" for i in range(len(specs))]
    if sorted(names) == sorted(wanted):
        order = wanted
    elif sorted(names) == sorted(positional) and not set(wanted) & set(names):
        order = positional
    else:
        missing = [n for n in wanted if n not in names]
        extra = [n for n in names if n not in wanted]
        parts = []
        if missing:
            parts.append(f"lacks {missing}")
        if extra:
            parts.append(f"has arrays the model does not take: {extra}")
        raise InputError(f"input file {path!r} {' and '.join(parts)}; the model's inputs are "
                         f"{_describe(specs)}: {_how_to_save(specs)}")
    arrays = []
    for name in order:
        try:
            arrays.append(archive[name])
        except _READ_ERRORS as err:
            raise InputError(f"cannot read array {name!r} of {path!r}: {err}; "
                             f"{_how_to_save(specs)}") from err
    return arrays


def _check_values(array: np.ndarray, spec: dict, path: str) -> None:
    """Refuse NaN and infinity in a float input.

    A quantized model converts its float input to int8 in C, where converting a NaN or an
    infinity to an integer is undefined behaviour; a float model carries them to its
    outputs, where no comparison (``--check``, the failure runs) can tell right from wrong.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise InputError(f"input {spec['name']!r} in {path!r} holds {bad} NaN or infinite "
                         f"value(s); the firmware needs finite numbers (replace them, e.g. "
                         f"with np.nan_to_num)")


def load_inputs(path: str, specs: list[dict]) -> list[np.ndarray]:
    """Read the inputs of ``run --input`` and check them against the model's tensors.

    Parameters
    ----------
    path : str
        A ``.npy`` file (a model with one input) or an ``.npz`` file (any number of
        inputs, by name or in ``np.savez``'s positional order).
    specs : list of dict
        The ``inputs`` of ``model.json``.

    Returns
    -------
    list of numpy.ndarray
        One array per input, in the model's order.

    Raises
    ------
    InputError
        The file is missing, empty, not a numpy file, damaged, or holds arrays of the
        wrong count, names, shape, dtype or values; the message says what the model
        expects and how to write such a file.
    """
    file = Path(path)
    if file.is_dir():
        raise InputError(f"input {path!r} is a directory; pass a .npy or .npz file "
                         f"({_how_to_save(specs)})")
    if not file.is_file():
        raise InputError(f"input file {path!r} does not exist")
    with open(file, "rb") as handle:
        head = handle.read(len(NPY_MAGIC))
    if not head:
        raise InputError(f"input file {path!r} is empty; {_how_to_save(specs)}")
    if not (head.startswith(NPY_MAGIC) or head.startswith(ZIP_MAGIC)):
        raise InputError(f"input file {path!r} is not a .npy or .npz file (numpy's binary "
                         f"formats); {_how_to_save(specs)}")
    try:
        loaded = np.load(file, allow_pickle=False)
    except _READ_ERRORS as err:
        raise InputError(f"cannot read {path!r} as .npy/.npz: {err}; "
                         f"{_how_to_save(specs)}") from err
    if isinstance(loaded, np.ndarray):
        arrays = [loaded]
    else:
        with loaded:
            arrays = _arrays_of_npz(loaded, path, specs)
    if len(arrays) != len(specs):
        raise InputError(f"{path!r} holds {len(arrays)} array(s) but the model has "
                         f"{len(specs)} input(s), {_describe(specs)}: {_how_to_save(specs)}")
    for array, spec in zip(arrays, specs):
        if list(array.shape) != list(spec["shape"]) or array.dtype != np.dtype(spec["dtype"]):
            raise InputError(
                f"input {spec['name']!r} must be {spec['dtype']} {list(spec['shape'])}, but "
                f"{path!r} has {array.dtype} {list(array.shape)}; convert it with "
                f"x.astype(np.{spec['dtype']}) or reshape it as the model expects"
            )
        _check_values(array, spec, path)
    return arrays


def check_output_path(path: str, specs: list[dict] | None = None) -> None:
    """Refuse an ``--output`` path before any work is done, rather than after it.

    ``np.save`` appends ``.npy`` to a name without it and ``np.savez`` appends ``.npz``, so
    the file would not be where the user asked; several outputs need an ``.npz``.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InputError(f"--output {path!r}: name the file .npy (one output) or .npz "
                         "(several, or any number)")
    if specs is not None and len(specs) > 1 and suffix == ".npy":
        raise InputError(f"--output {path!r}: the model has {len(specs)} outputs "
                         f"({', '.join(s['name'] for s in specs)}), which a .npy file cannot "
                         f"hold; use {file.with_suffix('.npz').name}")
    if file.is_dir():
        raise InputError(f"--output {path!r} is a directory; name a .npy/.npz file")
    parent = file.parent
    if not parent.is_dir():
        raise InputError(f"--output {path!r}: directory {str(parent)!r} does not exist; "
                         "create it first")
    if not os.access(parent, os.W_OK):
        raise InputError(f"--output {path!r}: directory {str(parent)!r} is not writable")


def save_outputs(path: str, outputs: list[np.ndarray], specs: list[dict]) -> None:
    """Write ``outputs`` to ``path`` (see :func:`check_output_path`), all or nothing."""
    file = Path(path)
    handle, staging = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            if file.suffix.lower() == ".npy":
                np.save(stream, outputs[0])
            else:
                np.savez(stream, **{s["name"]: o for s, o in zip(specs, outputs)})
        os.replace(staging, file)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise

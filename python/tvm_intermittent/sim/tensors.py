"""The byte protocol between the simulator and the firmware, described by ``model.json``.

The firmware reads every input tensor, in order, from one ``input.bin`` and writes every
output tensor, in order, to one ``output.bin``: raw little-endian elements in C order, with
no header. ``model.json`` (written by the compiler next to ``model/``) is the only place
that says how to cut those bytes into tensors::

    {"name": str, "board": str,
     "inputs":  [{"name", "dtype", "shape", "scale", "zero_point"}, ...],
     "outputs": [same]}

Inputs are checked strictly (count, shape and dtype) rather than converted: a float64 array
silently cast to float32, or a transposed image reshaped to fit, would produce plausible
but wrong outputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError


def load_model_json(project_dir) -> dict:
    """Read and sanity-check ``<project_dir>/model.json``."""
    path = Path(project_dir) / "model.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ModelError(f"{path} not found; is {project_dir} an exported project?") from err
    except json.JSONDecodeError as err:
        raise ModelError(f"{path} is not valid JSON: {err}") from err
    for side in ("inputs", "outputs"):
        for spec in meta.get(side, []):
            try:
                np.dtype(spec["dtype"])
                tuple(int(d) for d in spec["shape"])
            except (KeyError, TypeError, ValueError) as err:
                raise ModelError(f"{path}: bad {side} entry {spec!r}: {err}") from err
    return meta


def _dtype(spec: dict) -> np.dtype:
    return np.dtype(spec["dtype"]).newbyteorder("<")


def _shape(spec: dict) -> tuple[int, ...]:
    return tuple(int(d) for d in spec["shape"])


def nbytes(spec: dict) -> int:
    """Bytes one tensor takes in ``input.bin`` / ``output.bin``."""
    return math.prod(_shape(spec)) * _dtype(spec).itemsize


def encode_inputs(meta: dict, inputs) -> bytes:
    """Check ``inputs`` against ``meta`` and return the contents of ``input.bin``.

    Raises
    ------
    InputError
        Listing every input that has the wrong shape or dtype (or the wrong count), each
        with the tensor's name, what the model expects and what was given.
    """
    specs = meta.get("inputs", [])
    inputs = list(inputs)
    if len(inputs) != len(specs):
        names = ", ".join(repr(s["name"]) for s in specs)
        raise InputError(f"model {meta.get('name')!r} takes {len(specs)} input(s) ({names}), "
                         f"got {len(inputs)}")
    problems, chunks = [], []
    for index, (spec, value) in enumerate(zip(specs, inputs)):
        array = np.asarray(value)
        want_shape, want_dtype = _shape(spec), np.dtype(spec["dtype"])
        if array.shape != want_shape or array.dtype != want_dtype:
            problems.append(
                f"input {index} {spec['name']!r}: expected shape {want_shape} {want_dtype}, "
                f"got shape {array.shape} {array.dtype}"
            )
            continue
        chunks.append(np.ascontiguousarray(array, dtype=_dtype(spec)).tobytes())
    if problems:
        raise InputError("; ".join(problems))
    return b"".join(chunks)


def decode_outputs(meta: dict, data: bytes) -> list[np.ndarray]:
    """Cut the contents of ``output.bin`` into arrays; ``ValueError`` on a size mismatch."""
    specs = meta.get("outputs", [])
    expected = sum(nbytes(spec) for spec in specs)
    if len(data) != expected:
        raise ValueError(f"output.bin has {len(data)} bytes, the model's outputs take {expected}")
    outputs, offset = [], 0
    for spec in specs:
        size = nbytes(spec)
        chunk = np.frombuffer(data, dtype=_dtype(spec), count=size // _dtype(spec).itemsize,
                              offset=offset)
        outputs.append(chunk.astype(np.dtype(spec["dtype"])).reshape(_shape(spec)))
        offset += size
    return outputs


def seeded_inputs(specs: list[dict], seed: int = 0) -> list[np.ndarray]:
    """A reproducible inference for the inputs ``specs`` (model.json's): numpy seed ``seed``,
    integers over the whole range of their dtype, floats standard normal. ``run`` without
    ``--input`` and the tuner's measurements both use it, so they measure the same input."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        dtype = np.dtype(spec["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, spec["shape"], endpoint=True,
                                       dtype=dtype))
        else:
            arrays.append(rng.standard_normal(spec["shape"]).astype(dtype))
    return arrays

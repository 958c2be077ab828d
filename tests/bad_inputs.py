"""Malformed models and input files, made from the test models by seeded mutations.

Each case is a file (or a directory) that the command line must refuse with exit status 2
and a message, or, for a mutation that happens to leave a valid model (a flipped bit in a
weight), compile. ``bench/fuzz_campaign.py`` runs hundreds of them through the CLI;
``tests/test_bad_input.py`` keeps a sample. Nothing here calls the compiler.

ONNX mutations edit the ``ModelProto`` (sizes, shapes, dtypes, initializers, operators,
attributes) or its bytes (truncation, bit flips). TFLite mutations edit the flatbuffer in
place at positions found by reading it with the ``tflite`` package: a tensor's shape,
type or buffer index, an operator's opcode or tensor indices, a vector's length.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile

import numpy as np
import onnx
from onnx import TensorProto

import onnx_models
import tflite_models


@dataclasses.dataclass
class Case:
    """One bad file: its mutation kind, a name that says what was done, and its bytes
    (None with ``directory=True``: a directory of that name)."""

    kind: str
    name: str
    filename: str
    data: bytes | None
    directory: bool = False

    def write(self, folder):
        """Create the case under ``folder``; return its path."""
        path = folder / self.filename
        if self.directory:
            path.mkdir()
        else:
            path.write_bytes(self.data)
        return path


# ---- the models mutated ----------------------------------------------------------------


def onnx_bases() -> dict[str, onnx.ModelProto]:
    """Small ONNX models of the operator tests, one or a few operators each."""
    return {
        "small_cnn": onnx_models.small_cnn()[0],
        "conv": onnx_models.conv()[0],
        "gemm": onnx_models.gemm()[0],
        "concat": onnx_models.concat()[0],
        "reshape": onnx_models.reshape_flatten()[0],
        "softmax": onnx_models.softmax()[0],
        "add_mul": onnx_models.add_mul()[0],
        "maxpool": onnx_models.pool("MaxPool")[0],
        "global_average_pool": onnx_models.global_average_pool()[0],
        "clip_relu": onnx_models.clip_relu()[0],
        "matmul": onnx_models.matmul()[0],
    }


def tflite_bases(zoo_model=None) -> dict[str, bytes]:
    """Small int8 TFLite models of the kernel tests, plus a zoo model's bytes if given."""
    bases = {
        "conv2d": tflite_models.conv2d()[0],
        "depthwise": tflite_models.conv2d(depthwise=True)[0],
        "fully_connected": tflite_models.fully_connected()[0],
        "add": tflite_models.add()[0],
        "avg_pool": tflite_models.pool("AVERAGE_POOL_2D")[0],
        "softmax": tflite_models.softmax()[0],
    }
    if zoo_model is not None:
        bases[zoo_model[0]] = zoo_model[1]
    return bases


# ---- byte-level mutations ----------------------------------------------------------------


def truncated(data: bytes, rng) -> tuple[str, bytes]:
    cut = int(rng.integers(1, len(data)))
    return f"cut at {cut}/{len(data)}", data[:cut]


def bit_flipped(data: bytes, rng) -> tuple[str, bytes]:
    out = bytearray(data)
    flips = int(rng.integers(1, 9))
    for _ in range(flips):
        pos = int(rng.integers(0, len(out)))
        out[pos] ^= 1 << int(rng.integers(0, 8))
    return f"{flips} bits flipped", bytes(out)


def overwritten(data: bytes, rng) -> tuple[str, bytes]:
    out = bytearray(data)
    pos = int(rng.integers(0, len(out) - 8))
    out[pos:pos + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    return f"8 random bytes at {pos}", bytes(out)


BYTE_MUTATIONS = {"truncated": truncated, "bit_flipped": bit_flipped, "overwritten": overwritten}


# ---- ONNX mutations ----------------------------------------------------------------------

ABSURD_DIMS = (0, -3, 2**31, 10**12, 65536)
ONNX_BAD_TYPES = (TensorProto.STRING, TensorProto.DOUBLE, TensorProto.BOOL, TensorProto.INT64,
                  TensorProto.FLOAT16, TensorProto.COMPLEX64, TensorProto.UNDEFINED, 99)
UNSUPPORTED_OPS = ("NonMaxSuppression", "Loop", "NoSuchOperator", "Einsum", "STFT", "Scan")


def _pick(rng, items):
    return items[int(rng.integers(0, len(items)))]


def _initializers(model):
    inits = list(model.graph.initializer)
    if not inits:
        raise LookupError("no initializer")
    return inits


def onnx_initializer_size(model, rng):
    init = _pick(rng, _initializers(model))
    data = onnx.numpy_helper.to_array(init).reshape(-1)
    keep = int(rng.integers(0, max(1, data.size)))
    init.ClearField("float_data")
    init.raw_data = data[:keep].tobytes()
    return f"initializer {init.name!r} holds {keep} of {data.size} elements"


def onnx_initializer_dims(model, rng):
    init = _pick(rng, _initializers(model))
    dim = int(rng.integers(0, len(init.dims))) if init.dims else None
    value = _pick(rng, ABSURD_DIMS + (7,))
    if dim is None:
        init.dims.append(value)
        return f"initializer {init.name!r} gets a dimension {value}"
    init.dims[dim] = value
    return f"initializer {init.name!r} dimension {dim} set to {value}"


def onnx_initializer_dtype(model, rng):
    init = _pick(rng, _initializers(model))
    init.data_type = _pick(rng, (TensorProto.INT8, TensorProto.DOUBLE, TensorProto.STRING,
                                 TensorProto.INT64, 99))
    return f"initializer {init.name!r} data type set to {init.data_type}"


def onnx_input_shape(model, rng):
    inputs = [i for i in model.graph.input
              if i.name not in {t.name for t in model.graph.initializer}]
    value = _pick(rng, inputs)
    dims = value.type.tensor_type.shape.dim
    dim = int(rng.integers(0, len(dims)))
    absurd = _pick(rng, ABSURD_DIMS)
    if absurd < 0:
        dims[dim].dim_param = "N"  # a symbolic dimension, given no --shape
        return f"input {value.name!r} dimension {dim} made symbolic"
    dims[dim].dim_value = absurd
    return f"input {value.name!r} dimension {dim} set to {absurd}"


def onnx_input_dtype(model, rng):
    value = _pick(rng, list(model.graph.input))
    value.type.tensor_type.elem_type = _pick(rng, ONNX_BAD_TYPES)
    return f"input {value.name!r} element type set to {value.type.tensor_type.elem_type}"


def onnx_missing_initializer(model, rng):
    init = _pick(rng, _initializers(model))
    model.graph.initializer.remove(init)
    return f"initializer {init.name!r} removed"


def onnx_unsupported_op(model, rng):
    node = _pick(rng, list(model.graph.node))
    old, node.op_type = node.op_type, _pick(rng, UNSUPPORTED_OPS)
    return f"{old} node {node.name or node.output[0]!r} replaced by {node.op_type}"


def onnx_dangling_input(model, rng):
    node = _pick(rng, list(model.graph.node))
    slot = int(rng.integers(0, len(node.input)))
    node.input[slot] = "no_such_tensor"
    return f"{node.op_type} input {slot} names a tensor nothing produces"


def onnx_attribute(model, rng):
    nodes = [n for n in model.graph.node if n.attribute]
    if not nodes:
        raise LookupError("no attribute")
    node = _pick(rng, nodes)
    attr = _pick(rng, list(node.attribute))
    value = _pick(rng, (0, -5, 10**9, 2**40))
    if attr.ints:
        attr.ints[int(rng.integers(0, len(attr.ints)))] = value
    elif attr.type == onnx.AttributeProto.INT:
        attr.i = value
    elif attr.type == onnx.AttributeProto.FLOAT:
        attr.f = float("nan")
        value = "nan"
    else:
        attr.type = onnx.AttributeProto.GRAPH
    return f"{node.op_type} attribute {attr.name!r} set to {value}"


def onnx_output(model, rng):
    output = model.graph.output[0]
    choice = int(rng.integers(0, 3))
    if choice == 0:
        output.name = "not_produced"
        return "the graph output names a tensor nothing produces"
    if choice == 1:
        del model.graph.node[:]
        return "every node removed"
    model.graph.node.append(onnx.helper.make_node("Relu", [output.name], [model.graph.node[0]
                                                                        .input[0]]))
    return "a node writes the graph input (a cycle)"


def onnx_opset(model, rng):
    version = _pick(rng, (1, 3, 999))
    model.opset_import[0].version = version
    return f"opset set to {version}"


ONNX_MUTATIONS = {
    "initializer_size": onnx_initializer_size,
    "initializer_dims": onnx_initializer_dims,
    "initializer_dtype": onnx_initializer_dtype,
    "input_shape": onnx_input_shape,
    "input_dtype": onnx_input_dtype,
    "missing_initializer": onnx_missing_initializer,
    "unsupported_op": onnx_unsupported_op,
    "dangling_input": onnx_dangling_input,
    "attribute": onnx_attribute,
    "output": onnx_output,
    "opset": onnx_opset,
}


def onnx_cases(seed: int = 0, per_kind: int = 2, bases=None):
    """Mutated ``.onnx`` files: every structural and byte mutation, ``per_kind`` times per
    base model, each with its own seed."""
    bases = bases if bases is not None else onnx_bases()
    rng = np.random.default_rng(seed)
    for base_name, base in bases.items():
        data = base.SerializeToString()
        for kind, mutate in ONNX_MUTATIONS.items():
            for index in range(per_kind):
                model = onnx.ModelProto()
                model.CopyFrom(base)
                try:
                    what = mutate(model, rng)
                except LookupError:
                    continue  # the model has nothing this mutation changes
                yield Case(kind, f"{base_name}: {what}", f"{base_name}_{kind}_{index}.onnx",
                           model.SerializeToString())
        for kind, mutate in BYTE_MUTATIONS.items():
            for index in range(per_kind):
                what, mutated = mutate(data, rng)
                yield Case(kind, f"{base_name}: {what}", f"{base_name}_{kind}_{index}.onnx",
                           mutated)


# ---- TFLite mutations --------------------------------------------------------------------


@dataclasses.dataclass
class _Slot:
    """Where a value sits in the flatbuffer: byte offset, numpy dtype, and what it is."""

    offset: int
    dtype: str
    what: str


def _field(table, slot):
    """Absolute offset of a table field's value, or None if the field is absent."""
    relative = table._tab.Offset(slot)  # pylint: disable=protected-access
    return table._tab.Pos + relative if relative else None  # pylint: disable=protected-access


def _vector(table, slot):
    """(absolute offset of the first element, length) of a vector field, or None."""
    relative = table._tab.Offset(slot)  # pylint: disable=protected-access
    if not relative:
        return None
    return table._tab.Vector(relative), table._tab.VectorLen(relative)  # pylint: disable=W0212


def tflite_slots(data: bytes) -> dict[str, list[_Slot]]:
    """The positions of the values the TFLite mutations change, by mutation kind.

    vtable slots (schema.fbs): Tensor shape 4, type 6, buffer 8; Operator opcode_index 4,
    inputs 6; OperatorCode deprecated_builtin_code 4, builtin_code 10; Buffer data 4.
    """
    import tflite  # pylint: disable=import-outside-toplevel

    model = tflite.Model.GetRootAsModel(data, 0)
    slots = {"tensor_shape": [], "tensor_type": [], "tensor_buffer": [], "operator_code": [],
             "opcode_index": [], "operator_tensors": [], "vector_length": []}
    graph = model.Subgraphs(0)
    for t in range(graph.TensorsLength()):
        tensor = graph.Tensors(t)
        shape = _vector(tensor, 4)
        if shape:
            start, length = shape
            for d in range(length):
                slots["tensor_shape"].append(_Slot(start + 4 * d, "<i4", f"tensor {t} dim {d}"))
            slots["vector_length"].append(_Slot(start - 4, "<u4", f"tensor {t} shape length"))
        if _field(tensor, 6) is not None:
            slots["tensor_type"].append(_Slot(_field(tensor, 6), "i1", f"tensor {t} type"))
        if _field(tensor, 8) is not None:
            slots["tensor_buffer"].append(_Slot(_field(tensor, 8), "<u4", f"tensor {t} buffer"))
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        if _field(op, 4) is not None:
            slots["opcode_index"].append(_Slot(_field(op, 4), "<u4", f"operator {o} opcode"))
        inputs = _vector(op, 6)
        if inputs:
            for i in range(inputs[1]):
                slots["operator_tensors"].append(
                    _Slot(inputs[0] + 4 * i, "<i4", f"operator {o} input {i}"))
    for c in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(c)
        for slot, dtype, field in ((4, "i1", "8-bit"), (10, "<i4", "32-bit")):
            if _field(code, slot) is not None:
                slots["operator_code"].append(_Slot(_field(code, slot), dtype,
                                                    f"operator code {c} ({field})"))
    for b in range(model.BuffersLength()):
        vector = _vector(model.Buffers(b), 4)
        if vector and vector[1]:
            slots["vector_length"].append(_Slot(vector[0] - 4, "<u4", f"buffer {b} length"))
    return {kind: found for kind, found in slots.items() if found}


def tflite_set(data: bytes, kind: str, what: str, value: int) -> bytes:
    """``data`` with the value of one slot (by its kind and description, e.g.
    ``("tensor_shape", "tensor 0 dim 2")``) replaced."""
    slot = next(s for s in tflite_slots(data)[kind] if s.what == what)
    out = bytearray(data)
    width = np.dtype(slot.dtype).itemsize
    out[slot.offset:slot.offset + width] = np.array(value, slot.dtype).tobytes()
    return bytes(out)


#: Values written into a slot, by mutation kind: absurd, out of range, unsupported.
_TFLITE_VALUES = {
    "tensor_shape": (0, -1, 2**31 - 1, 1 << 20, 3),
    "tensor_type": (5, 6, 8, 11, 17, 127, 0, 3),  # string, bool, complex64, float64...
    "tensor_buffer": (10**6, 0, 1, 2**32 - 1),
    "operator_code": (16, 32, 119, 99, 127, 2**20),  # LSTM, CUSTOM, WHILE, ...
    "opcode_index": (7, 10**5, 2**32 - 1),
    "operator_tensors": (10**6, -7, 0, 2**31 - 1),
    "vector_length": (0, 1, 10**7, 2**32 - 1),
}


def tflite_cases(seed: int = 0, per_kind: int = 2, bases=None):
    """Mutated ``.tflite`` files: in-place field changes and byte mutations."""
    bases = bases if bases is not None else tflite_bases()
    rng = np.random.default_rng(seed)
    for base_name, data in bases.items():
        slots = tflite_slots(data)
        for kind, found in sorted(slots.items()):
            for index in range(per_kind):
                slot = _pick(rng, found)
                value = _pick(rng, _TFLITE_VALUES[kind])
                info = np.iinfo(np.dtype(slot.dtype))
                value = int(np.clip(value, info.min, info.max))
                yield Case(kind, f"{base_name}: {slot.what} set to {value}",
                           f"{base_name}_{kind}_{index}.tflite",
                           tflite_set(data, kind, slot.what, value))
        for kind, mutate in BYTE_MUTATIONS.items():
            for index in range(per_kind):
                what, mutated = mutate(data, rng)
                yield Case(kind, f"{base_name}: {what}", f"{base_name}_{kind}_{index}.tflite",
                           mutated)
        out = bytearray(data)
        out[4:8] = b"TFL2"
        yield Case("identifier", f"{base_name}: file identifier TFL2",
                   f"{base_name}_identifier.tflite", bytes(out))


def file_cases(onnx_data: bytes, tflite_data: bytes):
    """Files that are no model at all, or a model under the wrong name."""
    yield Case("empty", "empty .onnx", "empty.onnx", b"")
    yield Case("empty", "empty .tflite", "empty.tflite", b"")
    yield Case("directory", "a directory named .onnx", "folder.onnx", None, directory=True)
    yield Case("directory", "a directory named .tflite", "folder.tflite", None,
               directory=True)
    yield Case("extension", "an ONNX model named .tflite", "swapped.tflite", onnx_data)
    yield Case("extension", "a TFLite model named .onnx", "swapped.onnx", tflite_data)
    yield Case("extension", "an ONNX model named .pb", "model.pb", onnx_data)
    yield Case("extension", "a TFLite model without extension", "model", tflite_data)
    yield Case("extension", "text named .onnx", "text.onnx", b"this is not a model\n")
    yield Case("extension", "a zip archive named .tflite", "archive.tflite",
               _npz({"x": np.zeros(3, np.float32)}))
    yield Case("extension", "an ONNX model in upper case .ONNX", "upper.ONNX", onnx_data)


# ---- input files for `run` ---------------------------------------------------------------


def _npy(array, **kwargs) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, **kwargs)
    return stream.getvalue()


def _npz(arrays: dict) -> bytes:
    stream = io.BytesIO()
    np.savez(stream, **arrays)
    return stream.getvalue()


def input_cases(specs: list[dict], prefix: str, seed: int = 0):
    """Wrong ``run --input`` files for a model whose inputs ``model.json`` lists as
    ``specs``: wrong shape, dtype, values, names, or no numpy file at all."""
    rng = np.random.default_rng(seed)
    first = specs[0]
    shape, dtype = tuple(first["shape"]), np.dtype(first["dtype"])
    good = [np.zeros(s["shape"], s["dtype"]) for s in specs]
    several = len(specs) > 1

    def single(array):
        if several:
            return _npz({s["name"]: a for s, a in zip(specs, [array] + good[1:])})
        return _npy(array)

    ext = ".npz" if several else ".npy"
    yield Case("input_shape", "one element short", f"{prefix}_short{ext}",
               single(np.zeros((int(np.prod(shape)) - 1,), dtype)))
    yield Case("input_shape", "an extra batch dimension", f"{prefix}_batch{ext}",
               single(np.zeros((2,) + shape, dtype)))
    yield Case("input_shape", "dimensions reversed", f"{prefix}_reversed{ext}",
               single(np.zeros(shape[::-1], dtype)) if shape != shape[::-1] else
               single(np.zeros(shape + (1,), dtype)))
    yield Case("input_shape", "a scalar", f"{prefix}_scalar{ext}", single(np.zeros((), dtype)))
    for wrong in ("float64", "int32", "float16", "uint8", ">f4", "bool"):
        if np.dtype(wrong) != dtype:
            yield Case("input_dtype", f"dtype {wrong}", f"{prefix}_{wrong.strip('>')}{ext}",
                       single(np.zeros(shape, wrong)))
    if np.issubdtype(dtype, np.floating):
        for value in ("nan", "inf", "-inf"):
            array = rng.standard_normal(shape).astype(dtype)
            array.reshape(-1)[int(rng.integers(0, array.size))] = float(value)
            yield Case("input_values", f"one {value}", f"{prefix}_{value}{ext}", single(array))
    good_bytes = single(good[0])
    yield Case("input_file", "empty file", f"{prefix}_empty.npy", b"")
    yield Case("input_file", "text", f"{prefix}_text.npy", b"1 2 3\n")
    yield Case("input_file", "a CSV named .csv", f"{prefix}_values.csv", b"0,0,0\n")
    yield Case("input_file", "truncated", f"{prefix}_truncated{ext}",
               good_bytes[:len(good_bytes) // 2])
    yield Case("input_file", "header only", f"{prefix}_header.npy", _npy(good[0])[:40])
    yield Case("input_file", "random bytes after the magic", f"{prefix}_garbage.npy",
               b"\x93NUMPY" + rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
    yield Case("input_file", "pickled objects", f"{prefix}_objects.npy",
               _npy(np.array([{"x": 1}], dtype=object), allow_pickle=True))
    yield Case("input_file", "a directory", f"{prefix}_folder.npy", None, directory=True)
    corrupt = bytearray(_npz({s["name"]: a for s, a in zip(specs, good)}))
    corrupt[len(corrupt) // 2:len(corrupt) // 2 + 16] = b"\xff" * 16
    yield Case("input_npz", "damaged archive", f"{prefix}_damaged.npz", bytes(corrupt))
    yield Case("input_npz", "a name the model lacks", f"{prefix}_wrongname.npz",
               _npz({"not_an_input": good[0], **{s["name"]: a for s, a in
                                                 zip(specs[1:], good[1:])}}))
    yield Case("input_npz", "an extra array", f"{prefix}_extra.npz",
               _npz({**{s["name"]: a for s, a in zip(specs, good)}, "extra": good[0]}))
    yield Case("input_npz", "no arrays", f"{prefix}_none.npz", _zip_without_arrays())
    if several:
        yield Case("input_npz", "one input missing", f"{prefix}_missing.npz",
                   _npz({specs[0]["name"]: good[0]}))
        yield Case("input_file", "several inputs in one .npy", f"{prefix}_one.npy",
                   _npy(good[0]))


def _zip_without_arrays() -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("readme.txt", "no arrays here")
    return stream.getvalue()

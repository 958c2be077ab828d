"""Checks of a model file before TVM's importers see it.

TVM's importers trust their input. Given a malformed file they fail far from the cause
(``'int' object has no attribute 'ShapeLength'``, ``cannot reshape array of size 0``), or
build a graph that fails later in the pipeline (a shape of 2^31 elements overflows the
int32 index arithmetic of the lowered loops), or allocate what the file claims. So the
structure is checked here first, in Python, with the ``onnx`` and ``tflite`` packages,
and each problem is reported with the tensor or operator it concerns:

* every tensor index, buffer index and opcode index is in range;
* every shape is positive and indexable by the generated C (fewer than 2^31 elements);
* every constant's data holds exactly what its shape and type need;
* element types are numbers the compiler knows, quantization scales are positive;
* for ONNX, the ``onnx`` checker and strict shape inference pass, which check every
  operator's attributes and inputs against the operator's schema.

Operators the compiler does not support are not refused here: the importers list them all
at once, which is the message users need.
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import DTYPE_ENUM
from ..errors import ModelError

#: Elements a tensor may hold: the generated C and TVM's lowered loops index with int32.
MAX_ELEMENTS = 2**31 - 1

#: TFLite tensor types with a numpy equivalent this compiler can hold in memory.
_TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
                  7: "int16", 9: "int8", 10: "float64", 15: "uint32", 16: "uint16",
                  12: "uint64"}


def _count(shape, what: str) -> int:
    """Elements of ``shape``; a zero, negative or overflowing shape is refused."""
    dims = [int(d) for d in shape]
    if any(d <= 0 for d in dims):
        raise ModelError(f"{what} has the shape {dims}: every dimension must be at least 1 "
                         "(an empty tensor gives firmware nothing to compute); export the "
                         "model with non-empty tensors")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise ModelError(f"{what} has the shape {dims}, {count:,} elements: more than the "
                         f"{MAX_ELEMENTS:,} the generated C can index (int32)")
    return count


# ---- TFLite ------------------------------------------------------------------------------


def _tflite_tensor_problems(model, graph, index: int, size: int) -> list[str]:
    tensor = graph.Tensors(index)
    name = tensor.Name().decode("utf-8", "replace") if tensor.Name() else f"#{index}"
    what = f"tensor {name!r} (#{index})"
    type_code = tensor.Type()
    if type_code not in _TFLITE_DTYPES:
        return [f"{what} has element type {type_code}, which is no numeric TFLite type "
                f"(float32, int8, uint8, int16, int32, int64, bool)"]
    dtype = np.dtype(_TFLITE_DTYPES[type_code])
    problems = []
    shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.zeros(0, np.int32)
    buffer_index = tensor.Buffer()
    if buffer_index >= model.BuffersLength():
        return [f"{what} refers to buffer {buffer_index}, but the file has "
                f"{model.BuffersLength()} buffers"]
    buffer = model.Buffers(buffer_index)
    stored = buffer.DataLength()
    if buffer.Offset() > 1:  # data stored after the flatbuffer (models over 2 GB)
        stored = buffer.Size()
        if buffer.Offset() + buffer.Size() > size:
            problems.append(f"{what}: its buffer ends at byte {buffer.Offset() + buffer.Size()}"
                            f", past the end of the file ({size} bytes)")
    if any(int(d) == -1 for d in shape) and not stored and index in _graph_inputs(graph):
        return problems  # a dynamic input dimension; the importer asks for a fixed shape
    try:
        count = _count(shape, what) if len(shape) else 1
    except ModelError as err:
        return problems + [str(err)]
    if stored and stored != count * dtype.itemsize:
        problems.append(f"{what} is {dtype} {[int(d) for d in shape]}, which takes "
                        f"{count * dtype.itemsize:,} bytes, but its buffer {buffer_index} "
                        f"holds {stored:,}")
    quantization = tensor.Quantization()
    if quantization is not None and quantization.ScaleLength():
        scales = quantization.ScaleAsNumpy()
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            problems.append(f"{what} has quantization scales {scales[:4].tolist()}...: scales "
                            f"must be finite and positive")
        points = quantization.ZeroPointLength()
        axis = quantization.QuantizedDimension()
        if len(scales) > 1:
            if not 0 <= axis < len(shape) or int(shape[axis]) != len(scales):
                problems.append(f"{what} has {len(scales)} per-channel scales on dimension "
                                f"{axis} of its shape {[int(d) for d in shape]}")
        if points not in (0, 1, len(scales)):
            problems.append(f"{what} has {len(scales)} scale(s) but {points} zero points")
    return problems


def _graph_inputs(graph) -> set[int]:
    return {int(graph.Inputs(i)) for i in range(graph.InputsLength())}


#: Operators whose data input, output and (for the first three) bias types TFLite ties:
#: the output has the data input's type, and the bias is int32 for int8/uint8 data (int64
#: for int16), float32 for float32. TVM's importer does not check it.
_SAME_TYPE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                  "MAX_POOL_2D", "SOFTMAX", "ADD", "MUL", "SUB", "RESHAPE", "CONCATENATION",
                  "MEAN", "PAD", "PADV2", "LOGISTIC", "RELU", "RELU6", "TANH", "SQUEEZE",
                  "TRANSPOSE", "HARD_SWISH", "L2_NORMALIZATION")
_BIAS_TYPES = {9: 2, 3: 2, 7: 4, 0: 0}  # data type -> bias type (TensorType codes)


def _tflite_type_problems(model, graph) -> list[str]:
    import tflite  # pylint: disable=import-outside-toplevel

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    tensors = graph.TensorsLength()
    problems = []
    for number in range(graph.OperatorsLength()):
        op = graph.Operators(number)
        if op.OpcodeIndex() >= model.OperatorCodesLength():
            continue
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.DeprecatedBuiltinCode(), code.BuiltinCode()))
        if name not in _SAME_TYPE_OPS or not op.InputsLength() or not op.OutputsLength():
            continue
        ids = [int(op.Inputs(i)) for i in range(op.InputsLength())]
        out = int(op.Outputs(0))
        if not all(-1 <= i < tensors for i in ids) or not 0 <= out < tensors:
            continue  # reported by the index checks
        data, result = graph.Tensors(ids[0]).Type(), graph.Tensors(out).Type()
        what = f"operator {number} ({name})"
        if data != result:
            problems.append(f"{what} reads {_TFLITE_DTYPES.get(data, data)} but writes "
                            f"{_TFLITE_DTYPES.get(result, result)}; TFLite requires one type")
        peers = ids[1:] if name in ("ADD", "MUL", "SUB", "CONCATENATION") else []
        for i in peers:
            if i >= 0 and graph.Tensors(i).Type() != data:
                problems.append(f"{what} mixes input types {_TFLITE_DTYPES.get(data, data)} "
                                f"and {_TFLITE_DTYPES.get(graph.Tensors(i).Type())}")
        if name in _SAME_TYPE_OPS[:3] and len(ids) > 2 and ids[2] >= 0:
            bias = graph.Tensors(ids[2]).Type()
            if data in _BIAS_TYPES and bias != _BIAS_TYPES[data]:
                problems.append(f"{what} has a {_TFLITE_DTYPES.get(bias, bias)} bias for "
                                f"{_TFLITE_DTYPES[data]} data; TFLite requires "
                                f"{_TFLITE_DTYPES[_BIAS_TYPES[data]]}")
    return problems


def _tflite_opcode_problems(model) -> list[str]:
    """An operator code is written twice: an 8-bit field (codes up to 127) and, since TFLite
    2.4, a 32-bit one. Writers store ``min(code, 127)`` in the first; TFLite reads the
    larger of the two. The ``tflite`` package TVM reads it with prefers the 8-bit field, so
    on a file where they disagree TVM would compile another operator than TFLite runs."""
    import flatbuffers  # pylint: disable=import-outside-toplevel

    problems = []
    for number in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(number)
        small = code.DeprecatedBuiltinCode()
        slot = code._tab.Offset(10)  # pylint: disable=protected-access
        wide = (code._tab.Get(flatbuffers.number_types.Int32Flags,  # pylint: disable=W0212
                              slot + code._tab.Pos) if slot else 0)  # pylint: disable=W0212
        if wide < 0 or small < 0:
            problems.append(f"operator code {number} is negative ({small}, {wide})")
        elif wide and small != min(wide, 127):
            problems.append(f"operator code {number} is {small} in its 8-bit field but {wide} "
                            f"in its 32-bit field; TFLite would run operator {max(small, wide)}")
    return problems


def _tflite_index_problems(model, graph) -> list[str]:
    tensors, codes = graph.TensorsLength(), model.OperatorCodesLength()
    problems = []
    for side in ("Inputs", "Outputs"):
        length = getattr(graph, f"{side}Length")()
        if side == "Outputs" and length == 0:
            problems.append("the subgraph has no outputs")
        for slot in range(length):
            index = int(getattr(graph, side)(slot))
            if not 0 <= index < tensors:
                problems.append(f"subgraph {side.lower()[:-1]} {slot} is tensor {index}, but "
                                f"the subgraph has {tensors} tensors")
    problems += _tflite_opcode_problems(model)
    for number in range(graph.OperatorsLength()):
        op = graph.Operators(number)
        if op.OpcodeIndex() >= codes:
            problems.append(f"operator {number} has opcode {op.OpcodeIndex()}, but the file "
                            f"defines {codes} operator codes")
        for side, optional in (("Inputs", True), ("Outputs", False)):
            for slot in range(getattr(op, f"{side}Length")()):
                index = int(getattr(op, side)(slot))
                if (optional and index == -1) or 0 <= index < tensors:
                    continue
                problems.append(f"operator {number} {side.lower()[:-1]} {slot} is tensor "
                                f"{index}, but the subgraph has {tensors} tensors")
    return problems


def check_tflite(data: bytes, path: str) -> None:
    """Refuse a ``.tflite`` file whose structure TVM's importer would trip over.

    Raises
    ------
    ModelError
        Listing every problem found (indices out of range, bad shapes, constants whose
        data does not match their shape, bad quantization), or the flatbuffer error of a
        file too damaged to read.
    """
    import tflite  # pylint: disable=import-outside-toplevel

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path!r} is not a TFLite flatbuffer (no 'TFL3' identifier at byte "
                         f"4){content_hint(data, 'tflite')}")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{path!r} has no subgraph: there is no model in it")
        graph = model.Subgraphs(0)
        problems = _tflite_index_problems(model, graph)
        for index in range(graph.TensorsLength()):
            problems += _tflite_tensor_problems(model, graph, index, len(data))
        if not problems:
            problems = _tflite_type_problems(model, graph)
    except ModelError:
        raise
    except Exception as err:  # flatbuffers raises struct, index and value errors
        raise ModelError(f"{path!r} is a corrupt TFLite file ({type(err).__name__}: {err}); "
                         "export the model again") from err
    if problems:
        raise ModelError(f"{path!r} is a malformed TFLite model:\n  " + "\n  ".join(problems))


# ---- ONNX --------------------------------------------------------------------------------

def _onnx_firmware_dtype(elem: int) -> str | None:
    """The numpy name of ONNX element type ``elem`` when a firmware tensor can have it."""
    from onnx import helper  # pylint: disable=import-outside-toplevel

    try:
        name = str(np.dtype(helper.tensor_dtype_to_np_dtype(elem)))
    except (KeyError, TypeError, ValueError):
        return None
    return name if name in DTYPE_ENUM else None


def _onnx_io_problems(model, shape_dict) -> list[str]:
    from onnx import TensorProto  # pylint: disable=import-outside-toplevel

    problems = []
    initializers = {init.name for init in model.graph.initializer}
    for side, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            elem = value.type.tensor_type.elem_type
            type_name = TensorProto.DataType.Name(elem) if elem in \
                TensorProto.DataType.values() else str(elem)
            if _onnx_firmware_dtype(elem) is None:
                problems.append(f"graph {side} {value.name!r} has element type {type_name}; "
                                f"the firmware takes {', '.join(DTYPE_ENUM)} tensors: export "
                                f"the model with a supported {side} type (or add a Cast at "
                                "that boundary)")
                continue
            if side == "input" and shape_dict and value.name in shape_dict:
                dims = list(shape_dict[value.name])
            elif side == "input":
                dims = [d.dim_value if d.HasField("dim_value") else -1
                        for d in value.type.tensor_type.shape.dim]
                if -1 in dims:
                    continue  # symbolic: the importer asks for --shape
            else:
                continue
            try:
                _count(dims, f"graph input {value.name!r}")
            except ModelError as err:
                problems.append(str(err))
    if shape_dict:
        names = {v.name for v in model.graph.input} - initializers
        unknown = sorted(set(shape_dict) - names)
        if unknown:
            problems.append(f"--shape names {unknown}, which are not inputs of the model "
                            f"(its inputs: {sorted(names)})")
    return problems


def _onnx_initializer_problems(model) -> list[str]:
    from onnx import TensorProto  # pylint: disable=import-outside-toplevel

    problems = []
    for init in model.graph.initializer:
        what = f"initializer {init.name!r}"
        if init.data_location == TensorProto.EXTERNAL:
            problems.append(f"{what} keeps its data in an external file, which a single model "
                            f"file cannot carry; save the model with "
                            f"onnx.save(model, path, save_as_external_data=False)")
            continue
        try:
            _count(init.dims, what) if len(init.dims) else 1
        except ModelError as err:
            problems.append(str(err))
    return problems


def _inferred_problems(model):
    """Strict shape inference: every operator's attributes and input shapes must agree
    with its schema, and every inferred intermediate tensor must be indexable.

    Returns the problems and the model with its inferred shapes (the model itself when
    inference failed)."""
    import onnx  # pylint: disable=import-outside-toplevel

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as err:
        if "No Op registered" in str(err) or "not a registered" in str(err):
            return [], model  # unknown operators: the importer names them all
        return [f"shape inference fails: {_message(err)}"], model
    except Exception as err:  # pylint: disable=broad-except
        # onnx raises checker and value errors here too on malformed graphs.
        return [f"shape inference fails: {_message(err)}"], model
    problems = []
    for value in inferred.graph.value_info:
        dims = value.type.tensor_type.shape.dim
        if not dims or any(not d.HasField("dim_value") for d in dims):
            continue
        try:
            _count([d.dim_value for d in dims], f"intermediate tensor {value.name!r}")
        except ModelError as err:
            problems.append(str(err))
    return problems, inferred


def _message(err, lines: int = 4) -> str:
    """The first lines of an onnx error on one line: the checker says what is wrong on the
    first and which node on the next ones."""
    text = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return " ".join(text[:lines])[:500] or repr(err)


def _opset_problems(model) -> list[str]:
    import onnx  # pylint: disable=import-outside-toplevel

    newest = onnx.defs.onnx_opset_version()
    problems = []
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not 1 <= opset.version <= newest:
            problems.append(f"the model uses ONNX opset {opset.version}, but operator sets run "
                            f"from 1 to {newest}; convert it with "
                            f"onnx.version_converter.convert_version(model, 13)")
    return problems


def _ranks(model) -> dict[str, int]:
    values = list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in values
             if v.type.tensor_type.HasField("shape")}
    ranks.update({init.name: len(init.dims) for init in model.graph.initializer})
    return ranks


#: Attributes of the convolution and pooling family, whatever the operator, that have a
#: least meaningful value; shape inference lets a group of -5 through to TVM.
_ATTRIBUTE_MINIMUM = {"group": 1, "kernel_shape": 1, "strides": 1, "dilations": 1, "pads": 0}


def _attribute_problems(model) -> list[str]:
    """Attributes no operator means: non-finite floats, an axis outside its tensor's rank.

    Shape inference lets both through (an axis of 2^40 on a rank-2 Softmax wraps around in
    its int64 arithmetic), and TVM's importer then compiles an operator the file does not
    describe.
    """
    from onnx import AttributeProto  # pylint: disable=import-outside-toplevel

    ranks = _ranks(model)
    problems = []
    for node in model.graph.node:
        what = f"{node.op_type} node {node.name or node.output[0]!r}"
        for attr in node.attribute:
            floats = [attr.f] if attr.type == AttributeProto.FLOAT else list(attr.floats)
            if any(not math.isfinite(f) for f in floats):
                problems.append(f"{what} has attribute {attr.name!r} = {floats}: attributes "
                                f"must be finite numbers")
            ints = [attr.i] if attr.type == AttributeProto.INT else list(attr.ints)
            low = _ATTRIBUTE_MINIMUM.get(attr.name)
            if low is not None and any(i < low for i in ints):
                problems.append(f"{what} has attribute {attr.name!r} = {ints}: each must be at "
                                f"least {low}")
            if attr.name != "axis" or attr.type != AttributeProto.INT or not node.input:
                continue
            rank = ranks.get(node.input[0])
            if rank is None or node.op_type == "OneHot":
                continue
            high = rank if node.op_type == "Flatten" else rank - 1
            if not -rank <= attr.i <= high:
                problems.append(f"{what} has axis {attr.i}, outside [{-rank}, {high}] for its "
                                f"rank-{rank} input")
    return problems


def check_onnx(model, path: str, shape_dict=None) -> None:
    """Refuse an ONNX model whose graph TVM's importer would trip over.

    Raises
    ------
    ModelError
        Listing every problem found: graph inputs and outputs of element types or shapes
        the firmware cannot hold, initializers with external or oversized data, and what
        the ``onnx`` checker and strict shape inference report.
    """
    import onnx  # pylint: disable=import-outside-toplevel

    problems = _opset_problems(model)
    if problems:
        raise ModelError(f"the ONNX model {path} is malformed: {problems[0]}")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        # Unknown operators are reported by TVM's importer, all at once.
        if "No Op registered" not in str(err):
            raise ModelError(f"the ONNX model {path} is malformed: {_message(err)}") from err
    except Exception as err:  # pylint: disable=broad-except
        raise ModelError(f"the ONNX model {path} is malformed: {_message(err)}") from err
    if not model.graph.node:
        raise ModelError(f"the ONNX model {path} has no operators: there is nothing to compile")
    problems = (_onnx_io_problems(model, shape_dict) + _onnx_initializer_problems(model))
    if not problems:
        problems, inferred = _inferred_problems(model)
        problems += _attribute_problems(inferred)
    if problems:
        raise ModelError(f"the ONNX model {path} is malformed:\n  " + "\n  ".join(problems))


# ---- the format of a file ----------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """What a file's bytes look like: "tflite", "onnx", "npy", "zip", or None."""
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return "tflite"
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    try:
        import onnx  # pylint: disable=import-outside-toplevel

        model = onnx.load_from_string(data)
    except Exception:  # pylint: disable=broad-except
        return None
    return "onnx" if model.graph.node else None


def content_hint(data: bytes, expected: str) -> str:
    """A hint for an error message when a file's content is not its extension's format."""
    found = sniff(data)
    names = {"tflite": "a TFLite model: name it .tflite", "onnx": "an ONNX model: name it "
             ".onnx", "npy": "a numpy .npy array, not a model", "zip": "a zip archive (an .npz?)"
             ", not a model"}
    if found is None or found == expected:
        return ""
    return f"; its content looks like {names[found]}"

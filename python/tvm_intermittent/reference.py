"""Reference runtimes: what our generated C must agree with.

Two independent interpreters check the compiler from outside TVM: the TensorFlow Lite Micro
interpreter (the runtime the zoo's int8 models were built for, with its exact integer kernels)
and ONNX Runtime. Neither shares code with TVM, so agreement is evidence, not a tautology.
``tflite_io_details`` reads a model's inputs and outputs with the ``tflite`` flatbuffer package,
which needs no interpreter.

``tflite-micro`` and ``onnxruntime`` are optional: they are imported when first used, and a
missing one raises :class:`~tvm_intermittent.errors.ToolchainError` naming the pip extra.
"""

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from .errors import InputError, ModelError, ToolchainError

_EXTRA_HINT = "pip install 'tvm-intermittent[test]'"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a TFLite model.

    Attributes
    ----------
    name : str
        Tensor name in the flatbuffer.
    index : int
        Tensor index in the (first) subgraph.
    shape : tuple of int
        Static shape; a dynamic dimension (-1 in ``shape_signature``) keeps its stored value.
    dtype : numpy.dtype
        Element type.
    scale, zero_point : float and int, or None
        Affine quantization ``real = scale * (q - zero_point)``; None for float tensors.
        Per-channel parameters (rare on graph inputs) are given as tuples.
    inner_quantization : (float, int) or None
        For a float32 input consumed by a QUANTIZE operator (or an output produced by a
        DEQUANTIZE), the int8 scale and zero point on the other side. The zoo's KWS, VWW and
        AD models have such float boundaries around an int8 graph; a compiler that drops the
        boundary ops needs these numbers, and input checks use them to measure saturation.
    """

    name: str
    index: int
    shape: tuple
    dtype: np.dtype
    scale: object = None
    zero_point: object = None
    inner_quantization: tuple = None


def _tflite_dtype(type_code):
    import tflite  # pylint: disable=import-outside-toplevel

    names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    name = names.get(type_code)
    mapping = {
        "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8,
        "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32,
        "UINT32": np.uint32, "INT64": np.int64, "BOOL": np.bool_,
    }
    if name not in mapping:
        raise ModelError(f"unsupported TFLite tensor type {name or type_code}")
    return np.dtype(mapping[name])


def _quantization(tensor):
    quant = tensor.Quantization()
    if quant is None or quant.ScaleLength() == 0:
        return None, None
    scales, zeros = quant.ScaleAsNumpy(), quant.ZeroPointAsNumpy()
    if len(scales) == 1:
        return float(scales[0]), int(zeros[0])
    return tuple(float(s) for s in scales), tuple(int(z) for z in zeros)


def _read_model(model):
    """Accept a path or the flatbuffer bytes; return (bytes, tflite.Model)."""
    import tflite  # pylint: disable=import-outside-toplevel

    if isinstance(model, (str, PathLike)):
        try:
            data = Path(model).read_bytes()
        except OSError as err:
            raise ModelError(f"cannot read TFLite model {model}: {err}") from err
    else:
        data = bytes(model)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError("not a TFLite flatbuffer (missing the 'TFL3' identifier)")
    return data, tflite.Model.GetRootAsModel(data, 0)


def tflite_io_details(model):
    """Names, shapes, dtypes and quantization of a TFLite model's inputs and outputs.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        The ``.tflite`` file or its contents.

    Returns
    -------
    inputs, outputs : list of TensorInfo
        In the order of the first subgraph's input and output lists, which is the order
        :func:`run_tflite_micro` takes and returns arrays in.
    """
    import tflite  # pylint: disable=import-outside-toplevel

    _, fb = _read_model(model)
    graph = fb.Subgraphs(0)
    boundary = {}  # tensor index -> quantization of the tensor on the other side
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = fb.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == tflite.BuiltinOperator.QUANTIZE:
            boundary.setdefault(op.Inputs(0), _quantization(graph.Tensors(op.Outputs(0))))
        elif builtin == tflite.BuiltinOperator.DEQUANTIZE:
            boundary.setdefault(op.Outputs(0), _quantization(graph.Tensors(op.Inputs(0))))

    def info(index):
        tensor = graph.Tensors(index)
        scale, zero_point = _quantization(tensor)
        inner = boundary.get(index)
        return TensorInfo(
            name=tensor.Name().decode(),
            index=index,
            shape=tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else (),
            dtype=_tflite_dtype(tensor.Type()),
            scale=scale,
            zero_point=zero_point,
            inner_quantization=inner if inner and inner[0] is not None else None,
        )

    inputs = [info(graph.Inputs(i)) for i in range(graph.InputsLength())]
    outputs = [info(graph.Outputs(i)) for i in range(graph.OutputsLength())]
    return inputs, outputs


def _check_inputs(expected, inputs):
    """Raise one InputError listing every input whose dtype or shape is wrong."""
    if len(inputs) != len(expected):
        raise InputError(f"model takes {len(expected)} input(s), got {len(inputs)}")
    problems = []
    arrays = []
    for info, value in zip(expected, inputs):
        array = np.asarray(value)
        if array.dtype != info.dtype:
            problems.append(f"{info.name}: dtype {array.dtype}, expected {info.dtype}")
        if tuple(array.shape) != tuple(info.shape):
            problems.append(f"{info.name}: shape {tuple(array.shape)}, expected {info.shape}")
        arrays.append(np.ascontiguousarray(array))
    if problems:
        raise InputError("inputs do not match the model: " + "; ".join(problems))
    return arrays


def run_tflite_micro(model, inputs, arena_size=None):
    """Run one inference with the TensorFlow Lite Micro interpreter.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        The ``.tflite`` file or its contents.
    inputs : list of numpy.ndarray
        One array per model input, with exactly the model's dtype and shape (no implicit
        casts: a silently converted input would hide a bug in the caller).
    arena_size : int, optional
        Tensor arena in bytes; by default ten times the model size plus 64 KiB, enough for
        every zoo model.

    Returns
    -------
    list of numpy.ndarray
        The outputs, in the model's output order.
    """
    try:
        # pylint: disable-next=import-outside-toplevel
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as err:
        raise ToolchainError(
            f"the TFLite Micro reference needs the 'tflite-micro' package: {_EXTRA_HINT}"
        ) from err
    data, _ = _read_model(model)
    expected, outputs = tflite_io_details(data)
    arrays = _check_inputs(expected, inputs)
    size = arena_size if arena_size is not None else 10 * len(data) + (64 << 10)
    try:
        interpreter = runtime.Interpreter.from_bytes(data, arena_size=size)
        for i, array in enumerate(arrays):
            interpreter.set_input(array, i)
        interpreter.invoke()
        return [np.array(interpreter.get_output(i)) for i in range(len(outputs))]
    except RuntimeError as err:
        raise ModelError(f"TFLite Micro could not run the model: {err}") from err


def run_onnxruntime(model, inputs):
    """Run one inference with ONNX Runtime on the CPU.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
        The ``.onnx`` file or a loaded model.
    inputs : list of numpy.ndarray
        One array per graph input that has no initializer, in graph order.

    Returns
    -------
    list of numpy.ndarray
        The outputs, in graph order.
    """
    try:
        import onnxruntime  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise ToolchainError(
            f"the ONNX reference needs the 'onnxruntime' package: {_EXTRA_HINT}"
        ) from err
    if isinstance(model, (str, PathLike)):
        source = str(model)
    else:
        source = model.SerializeToString()
    options = onnxruntime.SessionOptions()
    # Single thread and no graph rewrites: the reference should compute each node as written.
    options.intra_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = onnxruntime.InferenceSession(
            source, options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own untyped exception classes
        raise ModelError(f"ONNX Runtime could not load the model: {err}") from err
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise InputError(f"model takes {len(names)} input(s), got {len(inputs)}")
    feeds = {name: np.ascontiguousarray(value) for name, value in zip(names, inputs)}
    try:
        return [np.asarray(out) for out in session.run(None, feeds)]
    except Exception as err:  # wrong dtype or shape surfaces here as an ORT exception
        raise InputError(f"ONNX Runtime rejected the inputs: {err}") from err


def onnx_output_lsb_scales(model):
    """Per output of an ONNX model, the step of the ``DequantizeLinear`` producing it, or None.

    A QDQ model's float output is a quantized value dequantized; onnxruntime and an integer
    build can only be compared in units of that step (see :func:`output_lsb_scales`).
    """
    import onnx  # pylint: disable=import-outside-toplevel
    from onnx import numpy_helper  # pylint: disable=import-outside-toplevel

    if isinstance(model, (str, PathLike)):
        model = onnx.load(str(model))
    constants = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    scales = []
    for output in model.graph.output:
        node = producers.get(output.name)
        scale = None
        if node is not None and node.op_type == "DequantizeLinear" and node.input[1] in constants:
            values = numpy_helper.to_array(constants[node.input[1]])
            if values.size == 1:
                scale = float(values.reshape(-1)[0])
        scales.append(scale)
    return scales


def output_lsb_scales(model):
    """Per output of a TFLite model, the int8 step behind a float (DEQUANTIZE) output, or None.

    A float output computed from an int8 graph can only be compared in units of that step:
    compilers that keep the graph in float differ from TFLite Micro's integer kernels by a
    few steps, which is meaningless as a relative float error.
    """
    _, outputs = tflite_io_details(model)
    return [info.inner_quantization[0] if info.inner_quantization and info.dtype.kind == "f"
            else None for info in outputs]

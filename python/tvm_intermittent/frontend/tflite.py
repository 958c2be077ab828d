"""TFLite import through ``tvm.relax.frontend.tflite``.

Two additions to TVM's importer, both through its ``op_converter`` extension point:

- Shapes are static in firmware, so a RESHAPE whose target shape is computed at run time
  (the MLPerf Tiny anomaly detector computes it with SHAPE -> STRIDED_SLICE -> PACK from an
  int8 tensor) takes its output tensor's stored shape instead, when that holds as many
  elements as the input; the shape computation is then dead and removed. TVM refuses SHAPE
  on a quantized tensor only because it checks every quantized operator against a list;
  SHAPE reads no quantized values.
- PAD and PADV2 on quantized tensors are accepted: TVM pads them with the zero point, which
  is what TFLite does.

The imported ``main`` is marked with the rounding TFLite uses when it quantizes a float
(halves away from zero), which :class:`~tvm_intermittent.transform.QuantizedToInteger`
reproduces at the model's float boundaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codegen.model_source import TensorInfo
from ..errors import ModelError, UnsupportedOperatorError
from ..reference import tflite_io_details

def _tensor_info(info) -> TensorInfo:
    """Our descriptor of a graph input or output (see ``reference.tflite_io_details``);
    per-channel quantization, which no graph boundary uses in practice, is left out."""
    per_tensor = isinstance(info.scale, float)
    return TensorInfo(info.name, str(info.dtype), tuple(info.shape),
                      info.scale if per_tensor else 0.0, info.zero_point if per_tensor else 0)


def _static_shape_converter():
    """TVM's operator converter, with the two additions of the module docstring."""
    from tvm import relax  # pylint: disable=import-outside-toplevel
    from tvm.relax.frontend.tflite.tflite_frontend import (  # pylint: disable=C0415
        OperatorConverter,
    )

    class StaticShapeConverter(OperatorConverter):
        """Static RESHAPE targets; quantized SHAPE, PAD and PADV2 accepted."""

        _SUPPORTED_QUANTIZED_OPS = OperatorConverter._SUPPORTED_QUANTIZED_OPS | {
            "SHAPE", "PAD", "PADV2"}

        def convert_reshape(self, op):
            inputs = self.get_input_tensors(op)
            computed = len(inputs) == 2 and self.has_expr(inputs[1].tensor_idx)
            data = self.get_expr(inputs[0].tensor_idx)
            shape = [int(d) for d in self.get_output_tensors(op)[0].tensor.ShapeAsNumpy()]
            count = 1
            for dim in data.ty.shape.values:
                count *= int(dim)
            if not computed or int(np.prod(shape)) != count:
                return super().convert_reshape(op)
            return relax.op.reshape(data, shape)

    return StaticShapeConverter


def import_tflite(path: Path, shape_dict=None, name="model"):
    """Import a ``.tflite`` flatbuffer file."""
    import tflite  # pylint: disable=import-outside-toplevel
    from tvm import relax  # pylint: disable=import-outside-toplevel
    from tvm.relax.frontend.tflite import from_tflite  # pylint: disable=import-outside-toplevel

    from ..transform.quantized_to_integer import ROUNDING_ATTR  # pylint: disable=C0415
    from . import ImportedModel  # pylint: disable=import-outside-toplevel

    source = Path(path).read_bytes()
    if len(source) < 8 or source[4:8] != b"TFL3":
        raise ModelError(f"{str(path)!r} is not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        model = tflite.Model.GetRootAsModel(source, 0)
        details = tflite_io_details(source)
        inputs, outputs = ([_tensor_info(info) for info in infos] for infos in details)
    except ModelError:
        raise
    except Exception as err:  # flatbuffers raises struct/index errors on corrupt files
        raise ModelError(f"{str(path)!r} is a corrupt TFLite file: {err}") from err
    for info in inputs:
        if any(d <= 0 for d in info.shape) and not (shape_dict and info.name in shape_dict):
            raise ModelError(f"input {info.name!r} has a dynamic shape {list(info.shape)}; "
                             "pass shape_dict with a fixed shape")
    try:
        mod = from_tflite(model, shape_dict=shape_dict, op_converter=_static_shape_converter())
    except Exception as err:  # TVM raises OpNotImplemented, TVMError, ValueError...
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        text = next((line for line in lines if "not supported" in line),
                    lines[-1] if lines else repr(err))
        if "not supported" in text or "OpNotImplemented" in type(err).__name__:
            raise UnsupportedOperatorError(f"TFLite model: {text.strip()}") from err
        raise ModelError(f"TVM's TFLite importer failed on {Path(path).name}: {text}") from err
    mod = relax.transform.DeadCodeElimination()(mod)  # e.g. the shape computation of RESHAPE
    mod["main"] = mod["main"].with_attr(ROUNDING_ATTR, "away")
    return ImportedModel(mod, name, "tflite", inputs, outputs, source)

"""Relax and TIR passes of the intermittent pipeline."""

# TVM first: its import loads this package's backend entry point, which imports the pipeline
# module; started from inside one of this package's modules instead, that is a circular import.
import tvm  # noqa: F401  pylint: disable=unused-import

from .fuse_epilogue import FuseEpilogue
from .lower import lower_prim_func
from .pipeline import PIPELINE_NAME, intermittent_pipeline
from .quantized_to_integer import FLOAT_LOWERING_ATTR, QuantizedToInteger

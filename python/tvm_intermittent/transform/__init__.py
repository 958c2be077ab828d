"""Relax and TIR passes of the intermittent pipeline."""

from .fuse_epilogue import FuseEpilogue
from .lower import lower_prim_func
from .pipeline import PIPELINE_NAME, intermittent_pipeline
from .quantized_to_integer import FLOAT_LOWERING_ATTR, QuantizedToInteger

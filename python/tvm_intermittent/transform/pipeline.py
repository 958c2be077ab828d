"""The ``intermittent`` Relax pipeline: from an imported model to scheduled TIR kernels.

Registered with :func:`tvm.relax.pipeline.register_pipeline`, so
``relax.get_pipeline("intermittent")`` returns it. The result keeps a Relax ``main`` that is
a straight sequence of ``call_tir`` bindings, which :mod:`tvm_intermittent.codegen` turns into
a static schedule of C kernel calls.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.s_tir import dlight

from .fuse_epilogue import FuseEpilogue
from .quantized_to_integer import QuantizedToInteger

PIPELINE_NAME = "intermittent"


def intermittent_pipeline(target: tvm.target.Target | None = None,
                          notices: list | None = None,
                          unpaired: dict | None = None, shrunk: dict | None = None,
                          offers: dict | None = None) -> tvm.transform.Pass:
    """Build the pass sequence; ``target`` is the ``intermittent/<board>`` target.

    ``notices``, when given, receives a :class:`~.notices.Notice` for each operator left on
    a slower or less exact path (kept in float, epilogue not fused); they are logged too.
    ``unpaired`` (``key -> reason``) names the depthwise kernels to build one output
    row per tile (:class:`~.quantized_to_integer.QuantizedToInteger`); ``shrunk``
    (``kernel_key -> Shrink``) the int8 kernels to build with a smaller smallest tile, and
    ``offers``, when given, receives the kernels that have such a form (:mod:`.shrink`).
    """
    target = target or tvm.target.Target({"kind": "c"})

    @tvm.transform.module_pass(opt_level=0, name="intermittent")
    def _pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        passes = [
            # Quantized patterns become integer-only int8 operators (QuantizedToInteger).
            QuantizedToInteger(notices, unpaired, shrunk, offers),
            # Inference-only rewrites (batch norm to scale and shift) before lowering.
            relax.transform.DecomposeOpsForInference(),
            # Every Relax operator becomes a TIR PrimFunc called through call_tir.
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            # Weight-only subgraphs (transposes, reshapes of constants) run at compile time.
            relax.transform.FoldConstant(),
            # Fuse elementwise epilogues into their producers, one kernel per fused group.
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
            relax.transform.DeadCodeElimination(),
            # Remove the intermediates inside each fused kernel (see FuseEpilogue).
            dlight.ApplyDefaultSchedule(FuseEpilogue(notices)),
        ]
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline


tvm.relax.pipeline.register_pipeline(PIPELINE_NAME)(intermittent_pipeline)

"""Lower a scheduled PrimFunc to the flat, block-free TIR that the C printer reads.

These are the s_tir lowering passes up to buffer flattening and simplification, without
``MakePackedAPI`` and the rest of the host lowering that would bring in the TVM runtime's
calling convention.
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx


def _lowering_passes() -> tvm.transform.Pass:
    return tvm.transform.Sequential(
        [
            s_tir.transform.CanonicalizeLoop(),
            s_tir.transform.LowerInitBlock(),
            s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
            s_tir.transform.ConvertBlocksToOpaque(),
            s_tir.transform.CompactBufferAllocation(),
            s_tir.transform.LowerMatchBuffer(),
            s_tir.transform.StmtSimplify(),
            s_tir.transform.LowerOpaqueBlock(),
            tirx.transform.FlattenBuffer(),
            tirx.transform.NarrowDataType(32),
            s_tir.transform.LoopPartition(),
            tirx.transform.StorageRewrite(),
            tirx.transform.StmtSimplify(),
            tirx.transform.RemoveNoOp(),
            s_tir.transform.RewriteUnsafeSelect(),
        ],
        name="intermittent.lower_prim_func",
    )


def lower_prim_func(func: tirx.PrimFunc, name: str) -> tirx.PrimFunc:
    """Lower one scheduled PrimFunc; ``name`` becomes its global symbol."""
    func = func.with_attr("global_symbol", name)
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        mod = _lowering_passes()(tvm.IRModule({name: func}))
    return mod[name]
